/*
 * archive.c — the ustar container of a backup (see archive.h): writing
 * members with their SHA-256, and reading them back with every header and
 * byte count checked.
 *
 * Header layout (POSIX ustar, 512 bytes): name[100] mode[8] uid[8] gid[8]
 * size[12] mtime[12] chksum[8] typeflag[1] linkname[100] magic[6]
 * version[2] uname[32] gname[32] devmajor[8] devminor[8] prefix[155] pad[12].
 * Thread: one thread per writer or reader.
 */
#include "backup/archive.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARCHIVE_CHUNK_BYTES (256u * 1024)
#define ARCHIVE_PATH_BYTES_MAX 4096
#define ARCHIVE_OCTAL_SIZE_MAX 077777777777ull /* 11 octal digits: 8 GiB - 1 */

enum {
    H_NAME = 0,
    H_MODE = 100,
    H_UID = 108,
    H_GID = 116,
    H_SIZE = 124,
    H_MTIME = 136,
    H_CHKSUM = 148,
    H_TYPE = 156,
    H_MAGIC = 257,
    H_VERSION = 263,
    H_UNAME = 265,
    H_GNAME = 297,
    H_PREFIX = 345,
};
#define H_NAME_BYTES 100
#define H_PREFIX_BYTES 155

struct archive_writer {
    int fd;
    bool unnamed; /* an O_TMPFILE inode: linked to `path` by archive_finish */
    uint64_t written;
    char path[ARCHIVE_PATH_BYTES_MAX];    /* the final name */
    char partial[ARCHIVE_PATH_BYTES_MAX]; /* the temporary name when not unnamed */
    unsigned char *chunk;                 /* ARCHIVE_CHUNK_BYTES */
};

struct archive_reader {
    int fd;
    uint64_t offset;    /* bytes consumed */
    uint64_t remaining; /* data bytes of the current member not yet read */
    uint64_t padding;   /* zero bytes after them */
    char member[ARCHIVE_NAME_BYTES];
    unsigned char *chunk;
};

/* --- hashing ------------------------------------------------------------------ */

static void hex_of(const unsigned char *digest, char out[ARCHIVE_SHA256_HEX_BYTES])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[digest[i] >> 4];
        out[2 * i + 1] = digits[digest[i] & 15];
    }
    out[64] = '\0';
}

void archive_sha256_hex(const void *data, size_t len, char out[ARCHIVE_SHA256_HEX_BYTES])
{
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL);
    hex_of(digest, out);
}

static int hash_start(EVP_MD_CTX **h, err_t *e)
{
    *h = EVP_MD_CTX_new();
    if (!*h || EVP_DigestInit_ex(*h, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(*h);
        *h = NULL;
        return err_set(e, ERR_NOMEM, "cannot start a SHA-256 digest");
    }
    return 0;
}

static void hash_end(EVP_MD_CTX *h, char out[ARCHIVE_SHA256_HEX_BYTES])
{
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h, digest, &n);
    EVP_MD_CTX_free(h);
    hex_of(digest, out);
}

/* --- headers ------------------------------------------------------------------ */

/* width - 1 octal digits, zero-padded, and a NUL; v must fit. */
static void put_octal(unsigned char *field, size_t width, uint64_t v)
{
    field[width - 1] = '\0';
    for (size_t i = width - 1; i > 0; i--, v >>= 3)
        field[i - 1] = (unsigned char)('0' + (v & 7));
    assert(v == 0);
}

static unsigned header_checksum(const unsigned char *h)
{
    unsigned sum = 0;
    for (int i = 0; i < ARCHIVE_BLOCK_BYTES; i++)
        sum += (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
    return sum;
}

/* Splits name into ustar prefix and name; -1 when it cannot be stored. */
static int put_name(unsigned char *h, const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > LIMIT_BACKUP_NAME_BYTES_MAX) return -1;
    if (len <= H_NAME_BYTES) {
        memcpy(h + H_NAME, name, len);
        return 0;
    }
    /* The last '/' that leaves at most 100 bytes after it and 155 before. */
    for (size_t i = len - 1; i > 0; i--) {
        if (name[i] != '/') continue;
        if (len - i - 1 > H_NAME_BYTES) return -1;
        if (i > H_PREFIX_BYTES) continue;
        memcpy(h + H_PREFIX, name, i);
        memcpy(h + H_NAME, name + i + 1, len - i - 1);
        return 0;
    }
    return -1;
}

static int build_header(unsigned char h[ARCHIVE_BLOCK_BYTES], const char *name, uint64_t size,
                        int64_t mtime_s)
{
    memset(h, 0, ARCHIVE_BLOCK_BYTES);
    if (put_name(h, name) != 0) return -1;
    put_octal(h + H_MODE, 8, 0600);
    put_octal(h + H_UID, 8, 0);
    put_octal(h + H_GID, 8, 0);
    if (size <= ARCHIVE_OCTAL_SIZE_MAX) {
        put_octal(h + H_SIZE, 12, size);
    } else { /* GNU base-256: the high bit of the first byte, then big-endian */
        h[H_SIZE] = 0x80;
        for (int i = 11; i >= 4; i--, size >>= 8)
            h[H_SIZE + i] = (unsigned char)(size & 0xff);
    }
    put_octal(h + H_MTIME, 12, mtime_s > 0 ? (uint64_t)mtime_s : 0);
    h[H_TYPE] = '0';
    memcpy(h + H_MAGIC, "ustar", 6);
    memcpy(h + H_VERSION, "00", 2);
    memcpy(h + H_UNAME, "dojo", 4);
    memcpy(h + H_GNAME, "dojo", 4);
    char sum[8];
    snprintf(sum, sizeof sum, "%06o", header_checksum(h));
    memcpy(h + H_CHKSUM, sum, 7);
    h[H_CHKSUM + 7] = ' ';
    return 0;
}

/* --- writing ------------------------------------------------------------------ */

static int write_all(archive_writer *w, const void *data, size_t len, err_t *e)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return err_set(e, ERR_IO, "cannot write %s: %s", w->path,
                           n < 0 ? strerror(errno) : "no progress");
        p += n;
        len -= (size_t)n;
        w->written += (uint64_t)n;
    }
    return 0;
}

static int write_padding(archive_writer *w, uint64_t size, err_t *e)
{
    static const unsigned char zeros[ARCHIVE_BLOCK_BYTES];
    size_t pad = (size_t)((ARCHIVE_BLOCK_BYTES - size % ARCHIVE_BLOCK_BYTES) % ARCHIVE_BLOCK_BYTES);
    return pad ? write_all(w, zeros, pad, e) : 0;
}

/* An unnamed file in the directory of path (Linux O_TMPFILE): it gets its
 * name only when complete, and a process killed before that leaves nothing.
 * -1 when the file system cannot (then a ".partial" name is used). */
static int open_unnamed(const char *path)
{
    char dir[ARCHIVE_PATH_BYTES_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
#ifdef O_TMPFILE
    return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
#else
    errno = EOPNOTSUPP;
    return -1;
#endif
}

int archive_create(const char *path, archive_writer **out, err_t *e)
{
    if (strlen(path) + sizeof ARCHIVE_PARTIAL_SUFFIX >= ARCHIVE_PATH_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "the path %s is too long", path);
    if (access(path, F_OK) == 0)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s exists already: choose a new file", path);
    archive_writer *w = calloc(1, sizeof *w);
    if (w) w->chunk = malloc(ARCHIVE_CHUNK_BYTES);
    if (!w || !w->chunk) {
        if (w) free(w);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->partial, sizeof w->partial, "%s%s", path, ARCHIVE_PARTIAL_SUFFIX);
    w->fd = open_unnamed(path);
    w->unnamed = w->fd >= 0;
    if (!w->unnamed) {
        unlink(w->partial); /* left by a process that was killed */
        w->fd = open(w->partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (w->fd < 0) {
        int code = err_set(e, ERR_IO, "cannot create %s: %s", w->partial, strerror(errno));
        free(w->chunk);
        free(w);
        return code;
    }
    *out = w;
    return 0;
}

static int add_header(archive_writer *w, const char *name, uint64_t size, int64_t mtime_s, err_t *e)
{
    if (size > LIMIT_BACKUP_MEMBER_BYTES_MAX)
        return err_set(e, ERR_LIMIT, "%s is %llu bytes, over LIMIT_BACKUP_MEMBER_BYTES_MAX (%llu)",
                       name, (unsigned long long)size,
                       (unsigned long long)LIMIT_BACKUP_MEMBER_BYTES_MAX);
    unsigned char h[ARCHIVE_BLOCK_BYTES];
    if (build_header(h, name, size, mtime_s) != 0)
        return err_set(e, ERR_LIMIT,
                       "the name %s cannot be stored in the archive (at most %d bytes, parts of "
                       "at most 100)",
                       name, LIMIT_BACKUP_NAME_BYTES_MAX);
    return write_all(w, h, sizeof h, e);
}

int archive_add_fd(archive_writer *w, const char *name, int fd, uint64_t size, int64_t mtime_s,
                   const atomic_int *cancel, char sha256_hex[ARCHIVE_SHA256_HEX_BYTES], err_t *e)
{
    int rc = add_header(w, name, size, mtime_s, e);
    EVP_MD_CTX *h = NULL;
    if (rc == 0) rc = hash_start(&h, e);
    uint64_t left = size;
    while (rc == 0 && left > 0) {
        if (cancel && atomic_load(cancel)) {
            rc = err_set(e, ERR_INTERNAL, "cancelled (the server is stopping)");
            break;
        }
        size_t want = left < ARCHIVE_CHUNK_BYTES ? (size_t)left : ARCHIVE_CHUNK_BYTES;
        ssize_t n = read(fd, w->chunk, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = err_set(e, ERR_IO, "cannot read %s: %s", name, strerror(errno));
        } else if (n == 0) {
            rc = err_set(e, ERR_IO, "%s shrank while it was copied (%llu bytes missing)", name,
                         (unsigned long long)left);
        } else {
            EVP_DigestUpdate(h, w->chunk, (size_t)n);
            rc = write_all(w, w->chunk, (size_t)n, e);
            left -= (uint64_t)n;
        }
    }
    if (h) {
        char hex[ARCHIVE_SHA256_HEX_BYTES];
        hash_end(h, hex);
        if (rc == 0) memcpy(sha256_hex, hex, sizeof hex);
    }
    return rc ? rc : write_padding(w, size, e);
}

int archive_add_bytes(archive_writer *w, const char *name, const void *data, size_t len,
                      int64_t mtime_s, char sha256_hex[ARCHIVE_SHA256_HEX_BYTES], err_t *e)
{
    int rc = add_header(w, name, len, mtime_s, e);
    if (rc == 0) rc = write_all(w, data, len, e);
    if (rc == 0) rc = write_padding(w, len, e);
    if (rc == 0) archive_sha256_hex(data, len, sha256_hex);
    return rc;
}

uint64_t archive_written(const archive_writer *w)
{
    return w->written;
}

static void writer_free(archive_writer *w)
{
    free(w->chunk);
    free(w);
}

/* Gives the finished file its name; never replaces an existing file. */
static int publish(archive_writer *w, err_t *e)
{
    if (w->unnamed) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->fd);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, w->path, AT_SYMLINK_FOLLOW) == 0) return 0;
        if (errno == EEXIST || linkat(w->fd, "", AT_FDCWD, w->path, AT_EMPTY_PATH) != 0)
            return err_set(e, ERR_IO, "cannot name %s: %s", w->path, strerror(errno));
        return 0;
    }
    if (link(w->partial, w->path) != 0)
        return err_set(e, ERR_IO, "cannot rename %s to %s: %s", w->partial, w->path,
                       strerror(errno));
    unlink(w->partial);
    return 0;
}

int archive_finish(archive_writer *w, err_t *e)
{
    static const unsigned char zeros[2 * ARCHIVE_BLOCK_BYTES];
    int rc = write_all(w, zeros, sizeof zeros, e);
    if (rc == 0 && fsync(w->fd) != 0)
        rc = err_set(e, ERR_IO, "cannot sync %s: %s", w->path, strerror(errno));
    if (rc == 0) rc = publish(w, e);
    close(w->fd);
    if (!w->unnamed) unlink(w->partial);
    writer_free(w);
    return rc;
}

void archive_abort(archive_writer *w)
{
    if (!w) return;
    close(w->fd);
    if (!w->unnamed) unlink(w->partial);
    writer_free(w);
}

/* --- reading ------------------------------------------------------------------ */

int archive_open(const char *path, archive_reader **out, err_t *e)
{
    archive_reader *r = calloc(1, sizeof *r);
    if (r) r->chunk = malloc(ARCHIVE_CHUNK_BYTES);
    if (!r || !r->chunk) {
        if (r) free(r);
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int code = err_set(e, ERR_IO, "cannot open %s: %s", path, strerror(errno));
        free(r->chunk);
        free(r);
        return code;
    }
    *out = r;
    return 0;
}

void archive_close(archive_reader *r)
{
    if (!r) return;
    close(r->fd);
    free(r->chunk);
    free(r);
}

/* Reads exactly len bytes; 0, or 1 at a clean end of file before any byte,
 * or an error. */
static int read_exact(archive_reader *r, void *buf, size_t len, bool *eof_at_start, err_t *e)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(r->fd, p + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return err_set(e, ERR_IO, "cannot read the backup: %s", strerror(errno));
        if (n == 0) {
            if (eof_at_start) *eof_at_start = got == 0;
            bool inside = r->remaining > 0 || r->padding > 0;
            return err_set(e, ERR_IO, "the backup is truncated: it ends at byte %llu%s%s%s",
                           (unsigned long long)(r->offset + got),
                           !r->member[0] ? ""
                           : inside      ? ", inside "
                                         : ", after ",
                           r->member, r->member[0] ? " (was it copied whole?)" : "");
        }
        got += (size_t)n;
    }
    r->offset += len;
    return 0;
}

/* An octal field (NUL or space terminated) or a GNU base-256 one. */
static int parse_number(const unsigned char *field, size_t width, uint64_t *out)
{
    uint64_t v = 0;
    if (field[0] & 0x80) {
        if (field[0] != 0x80) return -1; /* negative, or too large */
        for (size_t i = 1; i < width; i++) {
            if (v >> 56) return -1;
            v = (v << 8) | field[i];
        }
        *out = v;
        return 0;
    }
    size_t i = 0;
    while (i < width && field[i] == ' ')
        i++;
    bool digits = false;
    for (; i < width && field[i] >= '0' && field[i] <= '7'; i++) {
        if (v >> 60) return -1;
        v = v * 8 + (uint64_t)(field[i] - '0');
        digits = true;
    }
    if (!digits) return -1;
    for (; i < width; i++)
        if (field[i] != ' ' && field[i] != '\0') return -1;
    *out = v;
    return 0;
}

static bool all_zero(const unsigned char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (b[i]) return false;
    return true;
}

int archive_next(archive_reader *r, char name[ARCHIVE_NAME_BYTES], uint64_t *size_out, err_t *e)
{
    if (r->remaining || r->padding)
        return err_set(e, ERR_INTERNAL, "archive_next before the data of %s was read", r->member);
    unsigned char h[ARCHIVE_BLOCK_BYTES];
    bool eof = false;
    bool at_start = r->offset == 0;
    int rc = read_exact(r, h, sizeof h, &eof, e);
    if (rc && at_start && rc == ERR_IO && strstr(e->msg, "truncated"))
        return err_set(e, ERR_IO, "this is not a dojo backup (it is %s)",
                       eof ? "empty" : "shorter than one archive header");
    if (rc) {
        if (eof)
            return err_set(e, ERR_IO,
                           "the backup is truncated: it ends after %s without the end of the "
                           "archive (was it copied whole?)",
                           r->member[0] ? r->member : "its start");
        return rc;
    }
    if (all_zero(h, sizeof h)) {
        rc = read_exact(r, h, sizeof h, NULL, e);
        if (rc) return rc;
        if (!all_zero(h, sizeof h))
            return err_set(e, ERR_IO, "the backup is damaged: a lone end block at byte %llu",
                           (unsigned long long)(r->offset - ARCHIVE_BLOCK_BYTES));
        return 0;
    }
    uint64_t stored = 0;
    bool first = r->offset == ARCHIVE_BLOCK_BYTES;
    if (first && memcmp(h + H_MAGIC, "ustar", 5) != 0)
        return err_set(e, ERR_IO,
                       "this is not a dojo backup (it does not start with an archive "
                       "header)");
    if (parse_number(h + H_CHKSUM, 8, &stored) != 0 || stored != header_checksum(h))
        return err_set(e, ERR_IO,
                       "the backup is damaged: the header at byte %llu fails its checksum",
                       (unsigned long long)(r->offset - ARCHIVE_BLOCK_BYTES));
    if (memcmp(h + H_MAGIC, "ustar", 5) != 0 || (h[H_TYPE] != '0' && h[H_TYPE] != '\0'))
        return err_set(e, ERR_IO,
                       "the header at byte %llu is not one dojo writes (a ustar regular file)",
                       (unsigned long long)(r->offset - ARCHIVE_BLOCK_BYTES));
    uint64_t size = 0;
    if (parse_number(h + H_SIZE, 12, &size) != 0)
        return err_set(e, ERR_IO, "the backup is damaged: a member size at byte %llu is unreadable",
                       (unsigned long long)(r->offset - ARCHIVE_BLOCK_BYTES));
    size_t plen = strnlen((const char *)h + H_PREFIX, H_PREFIX_BYTES);
    size_t nlen = strnlen((const char *)h + H_NAME, H_NAME_BYTES);
    if (nlen == 0 || plen + 1 + nlen > LIMIT_BACKUP_NAME_BYTES_MAX)
        return err_set(e, ERR_IO, "the backup is damaged: a member name at byte %llu",
                       (unsigned long long)(r->offset - ARCHIVE_BLOCK_BYTES));
    if (plen)
        snprintf(name, ARCHIVE_NAME_BYTES, "%.*s/%.*s", (int)plen, (const char *)h + H_PREFIX,
                 (int)nlen, (const char *)h + H_NAME);
    else
        snprintf(name, ARCHIVE_NAME_BYTES, "%.*s", (int)nlen, (const char *)h + H_NAME);
    if (size > LIMIT_BACKUP_MEMBER_BYTES_MAX)
        return err_set(e, ERR_LIMIT, "%s is %llu bytes, over LIMIT_BACKUP_MEMBER_BYTES_MAX (%llu)",
                       name, (unsigned long long)size,
                       (unsigned long long)LIMIT_BACKUP_MEMBER_BYTES_MAX);
    snprintf(r->member, sizeof r->member, "%s", name);
    r->remaining = size;
    r->padding = (ARCHIVE_BLOCK_BYTES - size % ARCHIVE_BLOCK_BYTES) % ARCHIVE_BLOCK_BYTES;
    *size_out = size;
    return 1;
}

int archive_read_data(archive_reader *r, int fd, char sha256_hex[ARCHIVE_SHA256_HEX_BYTES],
                      err_t *e)
{
    EVP_MD_CTX *h = NULL;
    int rc = hash_start(&h, e);
    while (rc == 0 && r->remaining > 0) {
        size_t want =
            r->remaining < ARCHIVE_CHUNK_BYTES ? (size_t)r->remaining : ARCHIVE_CHUNK_BYTES;
        rc = read_exact(r, r->chunk, want, NULL, e);
        if (rc) break;
        EVP_DigestUpdate(h, r->chunk, want);
        r->remaining -= want;
        for (size_t done = 0; fd >= 0 && done < want;) {
            ssize_t n = write(fd, r->chunk + done, want - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                rc = err_set(e, ERR_IO, "cannot write %s out of the backup: %s", r->member,
                             n < 0 ? strerror(errno) : "no progress");
                break;
            }
            done += (size_t)n;
        }
    }
    if (rc == 0 && r->padding) {
        rc = read_exact(r, r->chunk, (size_t)r->padding, NULL, e);
        r->padding = 0;
    }
    if (h) {
        char hex[ARCHIVE_SHA256_HEX_BYTES];
        hash_end(h, hex);
        if (rc == 0) memcpy(sha256_hex, hex, sizeof hex);
    }
    return rc;
}
