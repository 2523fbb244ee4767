/*
 * backup.h — dojo's online backups of a SQLite deployment: taking one
 * (`dojo backup`, the `dojo serve --backup-dir` schedule) and checking and
 * unpacking one (`dojo restore`).
 *
 * A backup is one archive (archive.h, a plain ustar file) holding, in order:
 *   dojo.db          a consistent copy of the database (sqlite_snapshot.h),
 *                    taken while the server keeps committing;
 *   files/…          every file of the files directory beside the database
 *                    (api.md §9: content-addressed, written once and renamed
 *                    into place, so a file never changes under its name),
 *                    when that directory exists, less its tmp/ (uploads in
 *                    flight);
 *   MANIFEST.jsonl   a header line {"format":"dojo-backup","version":1,
 *                    "createdAt", "dojoVersion", "engine", "schemaVersion",
 *                    "commitTs", "files", "members"}, then one line
 *                    {"name","size","sha256"} per member above, in order;
 *   MANIFEST.sha256  "<sha256 of MANIFEST.jsonl>  MANIFEST.jsonl\n".
 * The database is copied before the files: every file the copied state
 * names was written and renamed before the commit that named it.
 *
 * The archive is written as an unnamed file, fsynced, and only then given
 * its name (and the directory fsynced): a backup is complete or absent,
 * even when the process is killed half-way (archive.h). The database copy
 * is made first into "<FILE>.db.partial" beside it, removed as soon as it
 * is in the archive (and by the next backup, should a kill leave it). backup_extract refuses an
 * archive whose structure, any member's bytes or size, or the manifest itself does not match.
 * Thread: any thread (the scheduler's backup thread, a CLI's main thread).
 */
#ifndef DOJO_BACKUP_BACKUP_H
#define DOJO_BACKUP_BACKUP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BACKUP_DB_MEMBER "dojo.db"
#define BACKUP_FILES_PREFIX "files/"
#define BACKUP_MANIFEST_MEMBER "MANIFEST.jsonl"
#define BACKUP_MANIFEST_SUM_MEMBER "MANIFEST.sha256"
#define BACKUP_FORMAT_NAME "dojo-backup"
#define BACKUP_FORMAT_VERSION 1
#define BACKUP_PARTIAL_SUFFIX ".partial"
#define BACKUP_FILES_DIR_NAME "files"
#define BACKUP_FILES_TMP_DIR "tmp" /* the file store's uploads in flight: never backed up */
#define BACKUP_PATH_BYTES_MAX 4096

typedef struct backup_result {
    uint64_t bytes;       /* the archive's size */
    uint64_t duration_ms; /* from the first page copied to the archive named */
    int64_t files;        /* files of the files directory included */
    char commit_ts[24];   /* commit timestamp of the copied state */
} backup_result;

/* The files directory of the SQLite database at db_path (api.md §9), as
 * the directory file store names it: "files" beside a database named
 * dojo.db (./.dojo/files/ for dojo dev), "<stem>.files" beside any other. */
void backup_files_dir(const char *db_path, char *out, size_t out_bytes);

/* Takes a backup of the database at db_path (and of files_dir when it
 * exists; NULL: backup_files_dir) into out_path, which must not exist.
 * cancel (may be NULL) stops it; nothing is left behind then or on any
 * failure. */
int backup_take(const char *db_path, const char *files_dir, const char *out_path,
                const atomic_int *cancel, backup_result *res, err_t *e);

typedef struct backup_contents {
    char created_at[40];
    char dojo_version[32];
    char schema_version[24];
    char commit_ts[24];
    int64_t files;
    uint64_t db_bytes;
} backup_contents;

/* Checks the archive at path member by member against its manifest while
 * unpacking it: the database into db_out (a new file), the files into
 * files_out (a new directory; NULL: checked, not kept). On any failure
 * what was unpacked is removed and the message says what is wrong (damaged,
 * truncated, not a dojo backup). It does not look inside the database:
 * that is the caller's (integrity check, invariants). */
int backup_extract(const char *path, const char *db_out, const char *files_out,
                   backup_contents *info, err_t *e);

/* Removes a directory tree this module unpacked (bounded depth). */
void backup_remove_tree(const char *dir);

/* fsyncs the directory holding path, so a new name in it is durable. */
int backup_sync_parent(const char *path, err_t *e);

#endif
