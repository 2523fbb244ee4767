/*
 * archive.h — the container of a dojo backup: a POSIX ustar archive (so
 * `tar tf` lists it and `tar xf` unpacks it), whose every member's SHA-256
 * is computed while it is written or read. Only what dojo writes is read
 * back: regular files, ustar names (prefix + name), sizes in octal or, past
 * 8 GiB, GNU base-256; every header's checksum is checked, and the end is
 * two zero blocks — anything else is named as damage or truncation.
 *
 * A writer writes an unnamed file (O_TMPFILE, mode 0600) in the directory
 * of its path and names it only when finished (end blocks, fsync, then
 * linkat): a process killed half-way leaves no file at all, and a finished
 * archive never replaces an existing file. On a file system without
 * O_TMPFILE it writes "<path>.partial" and links that to path when done.
 * Either way an archive is complete under its name, or absent.
 * Callers: backup/backup.c.
 * Thread: one thread per writer or reader.
 */
#ifndef DOJO_BACKUP_ARCHIVE_H
#define DOJO_BACKUP_ARCHIVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/limits.h"

#define ARCHIVE_BLOCK_BYTES 512
#define ARCHIVE_SHA256_HEX_BYTES 65 /* 64 hex digits and the NUL */
#define ARCHIVE_NAME_BYTES (LIMIT_BACKUP_NAME_BYTES_MAX + 1)
#define ARCHIVE_PARTIAL_SUFFIX ".partial"

typedef struct archive_writer archive_writer;
typedef struct archive_reader archive_reader;

/* Starts the archive that will be path (which must not exist). */
int archive_create(const char *path, archive_writer **out, err_t *e);
/* Adds a member named name holding the next size bytes of fd (read from its
 * current offset); the file must still hold them (a shorter one is an
 * error). cancel (may be NULL) is checked between chunks. */
int archive_add_fd(archive_writer *w, const char *name, int fd, uint64_t size, int64_t mtime_s,
                   const atomic_int *cancel, char sha256_hex[ARCHIVE_SHA256_HEX_BYTES], err_t *e);
/* Adds a member holding len bytes of data. */
int archive_add_bytes(archive_writer *w, const char *name, const void *data, size_t len,
                      int64_t mtime_s, char sha256_hex[ARCHIVE_SHA256_HEX_BYTES], err_t *e);
/* Bytes written so far. */
uint64_t archive_written(const archive_writer *w);
/* Writes the end blocks, fsyncs, names the file path (and the caller
 * fsyncs its directory); frees w whatever the outcome (on failure nothing
 * is left). */
int archive_finish(archive_writer *w, err_t *e);
/* Drops the unfinished file; frees w. NULL is fine. */
void archive_abort(archive_writer *w);

int archive_open(const char *path, archive_reader **out, err_t *e);
/* The next member: 1 with its name and size, 0 at the end of the archive
 * (after the two end blocks), or an error (damage, truncation). The
 * previous member's data must have been read. */
int archive_next(archive_reader *r, char name[ARCHIVE_NAME_BYTES], uint64_t *size_out, err_t *e);
/* Reads the current member's data, writing it to fd (-1: only hash it),
 * and gives its SHA-256. */
int archive_read_data(archive_reader *r, int fd, char sha256_hex[ARCHIVE_SHA256_HEX_BYTES],
                      err_t *e);
void archive_close(archive_reader *r);

/* SHA-256 of len bytes as lowercase hex. */
void archive_sha256_hex(const void *data, size_t len, char out[ARCHIVE_SHA256_HEX_BYTES]);

#endif
