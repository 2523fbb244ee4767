/*
 * files_dir.c — the directory file store of SQLite deployments (files.h):
 * content-addressed files under one directory,
 *   <root>/tmp/<storage id>.<random>   an upload being written
 *   <root>/<aa>/<sha256 hex>           a stored file (aa: its first two digits)
 * An upload is written to tmp/, fsynced, renamed to its digest's name (or
 * dropped when a file of that content is there already), and the
 * directory fsynced, before its storage id is returned.
 *
 * Bytes are removed when no `_storage` document names their digest. The
 * check and the unlink happen under one mutex, and every upload registers
 * its digest as pending under the same mutex before the rename and keeps it
 * until its document is committed or given up — so a removal never takes
 * the bytes an upload is about to name. SQLite serves one process, so this
 * process's uploads are the only ones there are.
 * Thread: any (blocking); the pending digests and the check connection are
 * guarded by the mutex.
 */
#include "store/files_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/limits.h"
#include "base/log.h"

#define DIR_TMP "tmp"
#define DIR_STORAGE_TABLE "_storage" /* api.md §1: the documents that name the files */
#define DIR_PENDING_MAX (4 * LIMIT_FILE_UPLOADS_MAX)
/* The root's path, short enough that every path below it fits
 * FILES_PATH_BYTES_MAX (a subdirectory, a digest or a listed name). */
#define DIR_ROOT_BYTES_MAX (FILES_PATH_BYTES_MAX - 512)
#define DIR_SUB_BYTES_MAX (DIR_ROOT_BYTES_MAX + 16)

typedef struct pending {
    char sha[SHA256_HEX_BYTES];
    int count;
} pending;

typedef struct dir_files {
    files base;
    char root[DIR_ROOT_BYTES_MAX];
    uv_mutex_t lock;
    pending pending[DIR_PENDING_MAX]; /* digests uploads are about to name */
    int n_pending;
    store_conn *check_conn; /* reads which digests documents name; under lock */
} dir_files;

typedef struct dir_writer {
    file_writer base;
    int fd;
    char tmp_path[FILES_PATH_BYTES_MAX];
    bool registered; /* its digest is in the pending list */
} dir_writer;

static dir_files *dir_of(files *fs)
{
    return (dir_files *)fs;
}

static int io_error(err_t *e, const char *what, const char *path)
{
    return err_set(e, ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

static int fsync_dir(const char *path, err_t *e)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return io_error(e, "cannot open the directory", path);
    int rc = fsync(fd) == 0 ? 0 : io_error(e, "cannot sync the directory", path);
    close(fd);
    return rc;
}

static int make_dir(const char *path, err_t *e)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
    return io_error(e, "cannot create the directory", path);
}

static void file_path(const dir_files *d, const char *sha, char out[FILES_PATH_BYTES_MAX])
{
    snprintf(out, FILES_PATH_BYTES_MAX, "%s/%.2s/%s", d->root, sha, sha);
}

/* --- pending digests (under lock) --------------------------------------------------- */

static pending *pending_find(dir_files *d, const char *sha)
{
    for (int i = 0; i < d->n_pending; i++)
        if (strcmp(d->pending[i].sha, sha) == 0) return &d->pending[i];
    return NULL;
}

static int pending_add(dir_files *d, const char *sha, err_t *e)
{
    pending *p = pending_find(d, sha);
    if (p) {
        p->count++;
        return 0;
    }
    if (d->n_pending == DIR_PENDING_MAX)
        return err_set(e, ERR_BUSY, "more than %d uploads are being finished at once",
                       DIR_PENDING_MAX);
    p = &d->pending[d->n_pending++];
    snprintf(p->sha, sizeof p->sha, "%s", sha);
    p->count = 1;
    return 0;
}

static void pending_drop(dir_files *d, const char *sha)
{
    pending *p = pending_find(d, sha);
    if (!p) return;
    if (--p->count > 0) return;
    *p = d->pending[--d->n_pending];
}

/* Whether a `_storage` document names the digest (a read transaction of its
 * own, so it sees every commit so far). Under lock. */
static int named_by_document(dir_files *d, const char *sha, bool *named, err_t *e)
{
    *named = true; /* when in doubt, keep */
    const schema_table *t = schema_table_by_name(store_schema(d->base.st), DIR_STORAGE_TABLE);
    const schema_index *ix = t ? schema_index_by_name(t, "by_sha256") : NULL;
    if (!ix) return err_set(e, ERR_INTERNAL, "the schema has no %s.by_sha256", DIR_STORAGE_TABLE);
    int rc = 0;
    if (!d->check_conn) rc = store_connect(d->base.st, false, &d->check_conn, e);
    if (rc) return rc;
    json_t *key = json_pack("[s]", sha);
    store_range r = {.table = t,
                     .index = ix,
                     .lo = key,
                     .hi = key,
                     .lo_inclusive = true,
                     .hi_inclusive = true,
                     .limit = 1};
    json_t *rows = NULL;
    rc = store_begin(d->check_conn, false, e);
    if (rc == 0) rc = store_scan(d->check_conn, &r, &rows, e);
    store_rollback(d->check_conn);
    if (rc == 0) *named = json_array_size(rows) > 0;
    json_decref(rows);
    json_decref(key);
    return rc;
}

/* Removes the file of sha unless a document or an upload names it. Under
 * lock. *removed (may be NULL) tells. */
static int collect(dir_files *d, const char *sha, bool *removed, err_t *e)
{
    if (removed) *removed = false;
    if (pending_find(d, sha)) return 0;
    bool named;
    int rc = named_by_document(d, sha, &named, e);
    if (rc || named) return rc;
    char path[FILES_PATH_BYTES_MAX];
    file_path(d, sha, path);
    int gone = unlink(path);
    if (gone != 0 && errno != ENOENT) return io_error(e, "cannot remove", path);
    if (removed) *removed = gone == 0;
    return 0;
}

/* --- writing ---------------------------------------------------------------------------- */

static int dir_write_begin(files *fs, const char *storage_id, file_writer **out, err_t *e)
{
    dir_files *d = dir_of(fs);
    dir_writer *w = calloc(1, sizeof *w);
    if (!w) return err_set(e, ERR_NOMEM, "out of memory starting an upload");
    char suffix[17];
    if (id_random_hex(suffix, 8) != 0) {
        free(w);
        return err_set(e, ERR_INTERNAL, "no randomness for a temporary file name");
    }
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s/" DIR_TMP "/%s.%s", d->root, storage_id, suffix);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = io_error(e, "cannot create", w->tmp_path);
        free(w);
        return rc;
    }
    w->base.fs = fs;
    *out = &w->base;
    return 0;
}

static int dir_write(file_writer *fw, const void *data, size_t len, err_t *e)
{
    dir_writer *w = (dir_writer *)fw;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return io_error(e, "cannot write", w->tmp_path);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int dir_seal(file_writer *fw, err_t *e)
{
    dir_writer *w = (dir_writer *)fw;
    dir_files *d = dir_of(fw->fs);
    if (fsync(w->fd) != 0) return io_error(e, "cannot sync", w->tmp_path);
    close(w->fd);
    w->fd = -1;
    char sub[DIR_SUB_BYTES_MAX], path[FILES_PATH_BYTES_MAX];
    snprintf(sub, sizeof sub, "%s/%.2s", d->root, fw->digest_hex);
    file_path(d, fw->digest_hex, path);
    struct stat st;
    bool new_sub = stat(sub, &st) != 0;
    int rc = new_sub ? make_dir(sub, e) : 0;
    if (rc == 0 && new_sub) rc = fsync_dir(d->root, e);
    if (rc) return rc;
    uv_mutex_lock(&d->lock);
    rc = pending_add(d, fw->digest_hex, e);
    if (rc == 0) {
        w->registered = true;
        if (stat(path, &st) == 0 && (uint64_t)st.st_size == fw->size) {
            unlink(w->tmp_path); /* the same content is stored already (and durable) */
        } else if (rename(w->tmp_path, path) != 0) {
            rc = io_error(e, "cannot rename into", path);
        }
    }
    uv_mutex_unlock(&d->lock);
    if (rc == 0) rc = fsync_dir(sub, e);
    if (rc == 0) w->tmp_path[0] = '\0';
    return rc;
}

static void dir_end(file_writer *fw, bool keep)
{
    dir_writer *w = (dir_writer *)fw;
    dir_files *d = dir_of(fw->fs);
    if (w->fd >= 0) close(w->fd);
    if (w->tmp_path[0]) unlink(w->tmp_path);
    if (w->registered) {
        uv_mutex_lock(&d->lock);
        pending_drop(d, fw->digest_hex);
        err_t e;
        err_init(&e);
        if (!keep && collect(d, fw->digest_hex, NULL, &e) != 0)
            log_warn("files: could not remove the bytes of an abandoned upload: %s", e.msg);
        err_clear(&e);
        uv_mutex_unlock(&d->lock);
    }
    free(w);
}

/* --- reading ---------------------------------------------------------------------------- */

static bool is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

static bool is_digest(const char *sha)
{
    if (!sha || strlen(sha) != SHA256_HEX_BYTES - 1) return false;
    for (const char *p = sha; *p; p++)
        if (!is_hex(*p)) return false;
    return true;
}

static int dir_open_fd(files *fs, const char *sha, int *fd_out, uint64_t *size_out, err_t *e)
{
    if (!is_digest(sha)) return err_set(e, ERR_INVALID_ARGUMENT, "not a SHA-256 digest");
    char path[FILES_PATH_BYTES_MAX];
    file_path(dir_of(fs), sha, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return err_set(e, ERR_NOT_FOUND, "no bytes at %s", path);
    if (fd < 0) return io_error(e, "cannot open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = io_error(e, "cannot read the size of", path);
        close(fd);
        return rc;
    }
    *fd_out = fd;
    *size_out = (uint64_t)st.st_size;
    return 0;
}

static int dir_read(files *fs, const char *storage_id, const char *sha, uint64_t offset, void *buf,
                    size_t len, size_t *n_out, err_t *e)
{
    (void)storage_id;
    int fd;
    uint64_t size;
    int rc = dir_open_fd(fs, sha, &fd, &size, e);
    if (rc) return rc;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = err_set(e, ERR_IO, "cannot read the file %s: %s", sha, strerror(errno));
            break;
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    close(fd);
    *n_out = done;
    return rc;
}

/* --- removing ----------------------------------------------------------------------------- */

static int dir_forget(files *fs, const char *storage_id, const char *sha, err_t *e)
{
    (void)storage_id;
    if (!is_digest(sha)) return 0;
    dir_files *d = dir_of(fs);
    uv_mutex_lock(&d->lock);
    int rc = collect(d, sha, NULL, e);
    uv_mutex_unlock(&d->lock);
    return rc;
}

static int sweep_tmp(dir_files *d, err_t *e)
{
    char path[DIR_SUB_BYTES_MAX];
    snprintf(path, sizeof path, "%s/" DIR_TMP, d->root);
    DIR *dir = opendir(path);
    if (!dir) return io_error(e, "cannot list", path);
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.') continue;
        char file[FILES_PATH_BYTES_MAX];
        if (snprintf(file, sizeof file, "%s/%s", path, de->d_name) < (int)sizeof file) unlink(file);
    }
    closedir(dir);
    return 0;
}

static int sweep_sub(dir_files *d, const char *sub, int64_t *removed, err_t *e)
{
    char path[DIR_SUB_BYTES_MAX];
    snprintf(path, sizeof path, "%s/%s", d->root, sub);
    DIR *dir = opendir(path);
    if (!dir) return io_error(e, "cannot list", path);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dir))) {
        if (!is_digest(de->d_name) || strncmp(de->d_name, sub, 2) != 0) continue;
        bool gone = false;
        uv_mutex_lock(&d->lock);
        rc = collect(d, de->d_name, &gone, e);
        uv_mutex_unlock(&d->lock);
        if (gone) (*removed)++;
    }
    closedir(dir);
    return rc;
}

static int dir_sweep(files *fs, bool at_start, int64_t *removed, err_t *e)
{
    dir_files *d = dir_of(fs);
    int rc = at_start ? sweep_tmp(d, e) : 0;
    DIR *dir = rc ? NULL : opendir(d->root);
    if (rc == 0 && !dir) return io_error(e, "cannot list", d->root);
    struct dirent *de;
    while (rc == 0 && (de = readdir(dir))) {
        const char *n = de->d_name;
        if (strlen(n) == 2 && is_hex(n[0]) && is_hex(n[1])) rc = sweep_sub(d, n, removed, e);
    }
    if (dir) closedir(dir);
    return rc;
}

static int dir_remove_all(files *fs, err_t *e)
{
    dir_files *d = dir_of(fs);
    DIR *dir = opendir(d->root);
    if (!dir) return io_error(e, "cannot list", d->root);
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (strlen(de->d_name) != 2 || !is_hex(de->d_name[0]) || !is_hex(de->d_name[1])) continue;
        char sub[DIR_SUB_BYTES_MAX];
        snprintf(sub, sizeof sub, "%s/%.2s", d->root, de->d_name);
        DIR *inner = opendir(sub);
        struct dirent *f;
        while (inner && (f = readdir(inner))) {
            if (!is_digest(f->d_name)) continue;
            char path[FILES_PATH_BYTES_MAX];
            if (snprintf(path, sizeof path, "%s/%s", sub, f->d_name) < (int)sizeof path)
                unlink(path);
        }
        if (inner) closedir(inner);
    }
    closedir(dir);
    return 0;
}

static void dir_close(files *fs)
{
    dir_files *d = dir_of(fs);
    if (d->check_conn) store_disconnect(d->check_conn);
    uv_mutex_destroy(&d->lock);
    free(d);
}

static const files_ops dir_ops = {
    .close = dir_close,
    .write_begin = dir_write_begin,
    .write = dir_write,
    .seal = dir_seal,
    .end = dir_end,
    .open_fd = dir_open_fd,
    .read = dir_read,
    .forget = dir_forget,
    .sweep = dir_sweep,
    .remove_all = dir_remove_all,
};

int files_dir_open(const char *root, store *st, bool create, files **out, err_t *e)
{
    if (strlen(root) >= DIR_ROOT_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "the files directory's path is over %d bytes",
                       DIR_ROOT_BYTES_MAX - 1);
    dir_files *d = calloc(1, sizeof *d);
    if (!d) return err_set(e, ERR_NOMEM, "out of memory opening the file store");
    snprintf(d->root, sizeof d->root, "%s", root);
    char tmp[DIR_SUB_BYTES_MAX];
    snprintf(tmp, sizeof tmp, "%s/" DIR_TMP, root);
    int rc = create ? make_dir(root, e) : 0;
    if (rc == 0 && create) rc = make_dir(tmp, e);
    if (rc) {
        free(d);
        return rc;
    }
    uv_mutex_init(&d->lock);
    d->base.ops = &dir_ops;
    d->base.st = st;
    d->base.has_fds = true;
    snprintf(d->base.describe, sizeof d->base.describe, "directory %s", root);
    *out = &d->base;
    return 0;
}
