/*
 * files_impl.h — what a file store provides, private to src/store/files*.c:
 * files.c forwards the public functions of files.h through a table of
 * operations to the directory store (files_dir.c) or the PostgreSQL store
 * (files_pg.c), each of which embeds `struct files` / `struct file_writer`
 * as its first member.
 * Thread: as files.h.
 */
#ifndef DOJO_STORE_FILES_IMPL_H
#define DOJO_STORE_FILES_IMPL_H

#include "base/ids.h"
#include "store/files.h"

typedef struct files_ops {
    void (*close)(files *fs);
    int (*write_begin)(files *fs, const char *storage_id, file_writer **out, err_t *e);
    int (*write)(file_writer *w, const void *data, size_t len, err_t *e);
    int (*seal)(file_writer *w, err_t *e);
    void (*end)(file_writer *w, bool keep);
    int (*open_fd)(files *fs, const char *sha256_hex, int *fd_out, uint64_t *size_out, err_t *e);
    int (*read)(files *fs, const char *storage_id, const char *sha256_hex, uint64_t offset,
                void *buf, size_t len, size_t *n_out, err_t *e);
    int (*forget)(files *fs, const char *storage_id, const char *sha256_hex, err_t *e);
    int (*sweep)(files *fs, bool at_start, int64_t *removed_out, err_t *e);
    int (*remove_all)(files *fs, err_t *e);
} files_ops;

struct files {
    const files_ops *ops;
    store *st;    /* borrowed: the database whose documents name the files */
    bool has_fds; /* the directory store */
    char describe[FILES_PATH_BYTES_MAX + 64];
};

/* The common part of a writer: the digest computed as the bytes go by. */
struct file_writer {
    files *fs;
    char storage_id[ID_BYTES_MAX];
    sha256_ctx *hash; /* NULL once sealed */
    uint8_t digest[SHA256_BYTES];
    char digest_hex[SHA256_HEX_BYTES];
    uint64_t size;
    bool sealed;
};

int files_dir_open(const char *dir, store *st, bool create, files **out, err_t *e);
int files_pg_open(const char *url, store *st, bool create, files **out, err_t *e);

#endif
