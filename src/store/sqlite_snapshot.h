/*
 * sqlite_snapshot.h — a consistent copy of a live SQLite database, taken
 * with SQLite's online backup API, and the structural check of a copy.
 *
 * The copy is one committed state: a read transaction is opened on a
 * connection of the copier's own before the first page is copied and held
 * until the last, and pages are copied from that snapshot a step at a time
 * (LIMIT_BACKUP_SNAPSHOT_STEP_PAGES), checking `cancel` in between. In WAL
 * mode a reader never blocks the writer: the server keeps committing, into
 * the WAL, while the copy runs (the checkpointer is PASSIVE, so it never
 * waits for the copy either). Why the backup API and not VACUUM INTO:
 * docs/OPERATIONS.md "Online backups".
 *
 * Callers: backup/backup.c (dojo backup, the serve scheduler), cli/restore.c.
 * Thread: any thread; each call opens and closes its own connections.
 */
#ifndef DOJO_STORE_SQLITE_SNAPSHOT_H
#define DOJO_STORE_SQLITE_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/err.h"

typedef struct sqlite_snapshot_info {
    char commit_ts[24];      /* _dojo_meta "ts" of the copied state ("" when none) */
    char schema_version[24]; /* _dojo_meta "schema_version" ("" when none) */
    int64_t pages;           /* pages copied */
    int64_t page_bytes;      /* bytes per page */
} sqlite_snapshot_info;

/* Copies the database at src_path into a new file dest_path (which must not
 * exist). cancel may be NULL; when it becomes non-zero the copy stops with
 * ERR_INTERNAL "cancelled" and dest_path is removed. On any failure
 * dest_path is removed. */
int sqlite_snapshot_copy(const char *src_path, const char *dest_path, const atomic_int *cancel,
                         sqlite_snapshot_info *info, err_t *e);

/* PRAGMA integrity_check on the database file at path (query_only):
 * 0 when SQLite finds it sound, else ERR_STORAGE with SQLite's first
 * complaint in the message. */
int sqlite_snapshot_integrity(const char *path, err_t *e);

#endif
