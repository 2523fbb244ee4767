/*
 * files.c — the public functions of the file stores (files.h): choosing the
 * store from the database URL, the digest every writer computes, and the
 * checks both stores share (files_check reads a file through the store's
 * own read path). The stores are files_dir.c and files_pg.c.
 * Thread: any (blocking; never the event loop).
 */
#include "base/invariant.h"
#include "store/files_impl.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/limits.h"

#define FILES_CHECK_BUFFER_BYTES (256u * 1024)

int files_dir_of_sqlite(const char *db_path, char out[FILES_PATH_BYTES_MAX])
{
    const char *slash = strrchr(db_path, '/');
    const char *name = slash ? slash + 1 : db_path;
    int dir_len = slash ? (int)(slash - db_path) : 0;
    const char *dot = strrchr(name, '.');
    int stem_len = dot && dot != name ? (int)(dot - name) : (int)strlen(name);
    int n;
    if (strcmp(name, "dojo.db") == 0)
        n = snprintf(out, FILES_PATH_BYTES_MAX, "%.*s%sfiles", dir_len, db_path, slash ? "/" : "");
    else
        n = snprintf(out, FILES_PATH_BYTES_MAX, "%.*s%s%.*s.files", dir_len, db_path,
                     slash ? "/" : "", stem_len, name);
    return n > 0 && n < FILES_PATH_BYTES_MAX ? 0 : -1;
}

int files_open(const char *db_url, store *st, bool create, files **out, err_t *e)
{
    *out = NULL;
    if (strncmp(db_url, "postgres://", 11) == 0 || strncmp(db_url, "postgresql://", 13) == 0)
        return files_pg_open(db_url, st, create, out, e);
    const char *path = strncmp(db_url, "sqlite:", 7) == 0 ? db_url + 7 : db_url;
    char dir[FILES_PATH_BYTES_MAX];
    if (files_dir_of_sqlite(path, dir) != 0)
        return err_set(e, ERR_INVALID_ARGUMENT, "the database path is too long for its files");
    return files_dir_open(dir, st, create, out, e);
}

void files_close(files *fs)
{
    if (fs) fs->ops->close(fs);
}

const char *files_describe(const files *fs)
{
    return fs->describe;
}

bool files_has_fds(const files *fs)
{
    return fs->has_fds;
}

int files_write_begin(files *fs, const char *storage_id, file_writer **out, err_t *e)
{
    ASSERT(storage_id && strlen(storage_id) < ID_BYTES_MAX);
    *out = NULL;
    file_writer *w = NULL;
    int rc = fs->ops->write_begin(fs, storage_id, &w, e);
    if (rc) return rc;
    w->fs = fs;
    snprintf(w->storage_id, sizeof w->storage_id, "%s", storage_id);
    w->hash = sha256_new();
    if (!w->hash) {
        fs->ops->end(w, false);
        return err_set(e, ERR_NOMEM, "out of memory starting an upload");
    }
    *out = w;
    return 0;
}

int file_writer_write(file_writer *w, const void *data, size_t len, err_t *e)
{
    ASSERT(!w->sealed && w->hash);
    if (len == 0) return 0;
    int rc = w->fs->ops->write(w, data, len, e);
    if (rc) return rc;
    sha256_update(w->hash, data, len);
    w->size += len;
    return 0;
}

int file_writer_seal(file_writer *w, uint8_t digest_out[SHA256_BYTES], uint64_t *size_out, err_t *e)
{
    ASSERT(!w->sealed && w->hash);
    sha256_finish(w->hash, w->digest);
    w->hash = NULL;
    sha256_to_hex(w->digest, w->digest_hex);
    int rc = w->fs->ops->seal(w, e);
    if (rc) return rc;
    w->sealed = true;
    memcpy(digest_out, w->digest, SHA256_BYTES);
    *size_out = w->size;
    return 0;
}

void file_writer_end(file_writer *w, bool keep)
{
    if (!w) return;
    sha256_free(w->hash);
    w->hash = NULL;
    w->fs->ops->end(w, keep && w->sealed);
}

int files_open_fd(files *fs, const char *sha256_hex, int *fd_out, uint64_t *size_out, err_t *e)
{
    *fd_out = -1;
    if (!fs->ops->open_fd) return err_set(e, ERR_INTERNAL, "this file store has no files");
    return fs->ops->open_fd(fs, sha256_hex, fd_out, size_out, e);
}

int files_read(files *fs, const char *storage_id, const char *sha256_hex, uint64_t offset,
               void *buf, size_t len, size_t *n_out, err_t *e)
{
    *n_out = 0;
    return fs->ops->read(fs, storage_id, sha256_hex, offset, buf, len, n_out, e);
}

int files_check(files *fs, const char *storage_id, const char *sha256_hex, uint64_t size, err_t *e)
{
    uint8_t *buf = malloc(FILES_CHECK_BUFFER_BYTES);
    sha256_ctx *h = sha256_new();
    if (!buf || !h) {
        free(buf);
        sha256_free(h);
        return err_set(e, ERR_NOMEM, "out of memory checking a file");
    }
    uint64_t at = 0;
    int rc = 0;
    for (;;) {
        size_t n = 0;
        rc = files_read(fs, storage_id, sha256_hex, at, buf, FILES_CHECK_BUFFER_BYTES, &n, e);
        if (rc || n == 0) break;
        sha256_update(h, buf, n);
        at += n;
        if (at > size) break; /* longer than it should be: no need to read on */
    }
    free(buf);
    if (rc) {
        sha256_free(h);
        return rc;
    }
    uint8_t digest[SHA256_BYTES];
    char hex[SHA256_HEX_BYTES];
    sha256_finish(h, digest);
    sha256_to_hex(digest, hex);
    if (at != size)
        return err_set(e, ERR_CONSTRAINT, "its bytes are %s%llu long, the document says %llu",
                       at > size ? "more than " : "", (unsigned long long)at,
                       (unsigned long long)size);
    if (strcmp(hex, sha256_hex) != 0)
        return err_set(e, ERR_CONSTRAINT, "its bytes hash to %s, the document says %s", hex,
                       sha256_hex);
    return 0;
}

int files_forget(files *fs, const char *storage_id, const char *sha256_hex, err_t *e)
{
    return fs->ops->forget(fs, storage_id, sha256_hex, e);
}

int files_sweep(files *fs, bool at_start, int64_t *removed_out, err_t *e)
{
    *removed_out = 0;
    return fs->ops->sweep(fs, at_start, removed_out, e);
}

int files_remove_all(files *fs, err_t *e)
{
    return fs->ops->remove_all(fs, e);
}
