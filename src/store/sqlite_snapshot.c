/*
 * sqlite_snapshot.c — a consistent copy of a live SQLite database with the
 * online backup API, and the integrity check of a copy (see
 * sqlite_snapshot.h).
 *
 * The read transaction is opened first, by a statement that reads
 * _dojo_meta, so the state copied is exactly the one whose commit timestamp
 * is reported. sqlite3_backup_step reuses a read transaction its source
 * connection already holds, so every step reads that same snapshot however
 * many commits the server makes meanwhile; no step ever sees a change, so
 * the copy never restarts.
 * Thread: any; each call owns its connections from open to close.
 */
#include "store/sqlite_snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/limits.h"

#define SNAPSHOT_BUSY_TIMEOUT_MS 5000
#define SNAPSHOT_BUSY_RETRY_US 10000
#define SNAPSHOT_BUSY_RETRIES_MAX 500 /* 5 s of a locked destination or source */
#define SNAPSHOT_PATH_BYTES_MAX 4096

static int snapshot_fail(err_t *e, sqlite3 *db, int rc, const char *what)
{
    return err_set(e, ERR_STORAGE, "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* The first column of the first row of sql as text into out ("" when no row). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t out_bytes, err_t *e)
{
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return snapshot_fail(e, db, rc, "read the database's metadata");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(st, 0);
        snprintf(out, out_bytes, "%s", text ? (const char *)text : "");
        rc = SQLITE_DONE;
    }
    int code = rc == SQLITE_DONE ? 0 : snapshot_fail(e, db, rc, "read the database's metadata");
    sqlite3_finalize(st);
    return code;
}

static void remove_dest(const char *dest_path)
{
    char side[SNAPSHOT_PATH_BYTES_MAX];
    unlink(dest_path);
    snprintf(side, sizeof side, "%s-journal", dest_path);
    unlink(side);
}

/* Copies every page of the source snapshot into dest, a step at a time. */
static int copy_pages(sqlite3 *src, sqlite3 *dest, const atomic_int *cancel,
                      sqlite_snapshot_info *info, err_t *e)
{
    sqlite3_backup *b = sqlite3_backup_init(dest, "main", src, "main");
    if (!b) return snapshot_fail(e, dest, SQLITE_ERROR, "start the copy");
    int rc, busy = 0, code = 0;
    for (;;) {
        if (cancel && atomic_load(cancel)) {
            code = err_set(e, ERR_INTERNAL, "cancelled (the server is stopping)");
            break;
        }
        rc = sqlite3_backup_step(b, LIMIT_BACKUP_SNAPSHOT_STEP_PAGES);
        if (rc == SQLITE_DONE) break;
        if (rc == SQLITE_OK) {
            busy = 0;
            continue;
        }
        if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && busy++ < SNAPSHOT_BUSY_RETRIES_MAX) {
            usleep(SNAPSHOT_BUSY_RETRY_US);
            continue;
        }
        code = err_set(e, ERR_STORAGE, "copy the database: %s", sqlite3_errstr(rc));
        break;
    }
    info->pages = sqlite3_backup_pagecount(b);
    rc = sqlite3_backup_finish(b);
    if (code == 0 && rc != SQLITE_OK) code = snapshot_fail(e, dest, rc, "finish the copy");
    return code;
}

int sqlite_snapshot_copy(const char *src_path, const char *dest_path, const atomic_int *cancel,
                         sqlite_snapshot_info *info, err_t *e)
{
    memset(info, 0, sizeof *info);
    if (strlen(dest_path) + 16 >= SNAPSHOT_PATH_BYTES_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT, "the path %s is too long", dest_path);
    int fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return err_set(e, ERR_IO, "cannot create %s: %s", dest_path, strerror(errno));
    close(fd);
    sqlite3 *src = NULL, *dest = NULL;
    int code = 0;
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) code = snapshot_fail(e, src, rc, "open the database");
    if (code == 0) {
        sqlite3_busy_timeout(src, SNAPSHOT_BUSY_TIMEOUT_MS);
        rc = sqlite3_exec(src, "PRAGMA query_only=1; BEGIN", NULL, NULL, NULL);
        if (rc != SQLITE_OK) code = snapshot_fail(e, src, rc, "begin a read transaction");
    }
    /* The first read fixes the snapshot: the commit timestamp is that of the
     * state every page below comes from. */
    if (code == 0 && query_text(src, "SELECT value FROM _dojo_meta WHERE key = 'ts'",
                                info->commit_ts, sizeof info->commit_ts, e) != 0) {
        char why[ERR_MSG_BYTES_MAX];
        snprintf(why, sizeof why, "%s", e->msg);
        code = err_set(e, ERR_INVALID_ARGUMENT, "%s is not a dojo database (%s)", src_path, why);
    }
    if (code == 0)
        code = query_text(src, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'",
                          info->schema_version, sizeof info->schema_version, e);
    char page_size[24] = "";
    if (code == 0) code = query_text(src, "PRAGMA page_size", page_size, sizeof page_size, e);
    info->page_bytes = atoll(page_size);
    if (code == 0) {
        rc = sqlite3_open_v2(dest_path, &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        /* A scratch file: no journal beside it (nothing to leave behind if
         * the process is killed), no syncs (the archive is synced). */
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(dest, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL, NULL,
                              NULL);
        if (rc != SQLITE_OK) code = snapshot_fail(e, dest, rc, "open the copy");
    }
    if (code == 0) code = copy_pages(src, dest, cancel, info, e);
    if (src) {
        sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(src);
    }
    if (dest && sqlite3_close(dest) != SQLITE_OK && code == 0)
        code = err_set(e, ERR_STORAGE, "close the copy %s", dest_path);
    if (code) remove_dest(dest_path);
    return code;
}

int sqlite_snapshot_integrity(const char *path, err_t *e)
{
    sqlite3 *db = NULL;
    /* Read-write (query_only): a file in WAL mode needs its shared-memory file. */
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = snapshot_fail(e, db, rc, "open the database");
        sqlite3_close(db);
        return code;
    }
    char verdict[256];
    int code = query_text(db, "PRAGMA integrity_check(1)", verdict, sizeof verdict, e);
    if (code == 0 && strcmp(verdict, "ok") != 0)
        code = err_set(e, ERR_STORAGE, "SQLite's integrity check fails: %s", verdict);
    sqlite3_close(db);
    return code;
}
