/*
 * schedule.h — `dojo serve --backup-dir DIR --backup-every DURATION
 * --backup-keep N`: backups of the server's SQLite database on a schedule.
 *
 * A timer on the event loop says when one is due; a thread of its own
 * takes it (backup_take, so the loop never waits on the copy) into
 * DIR/dojo-backup-<UTC time>.tar, complete or absent, then removes the
 * oldest complete backups beyond N. Only names of that exact shape are ever
 * removed. A backup still running when the next is due makes the next one
 * wait for the following tick (logged). At start, temporary files a killed
 * server left in DIR are removed, and the first backup is due one interval
 * after the newest backup found there (at once when that is overdue).
 * Stopping cancels a backup in progress (its temporary files are removed)
 * and joins the thread.
 * Thread: start, stop and the done callback on the event-loop thread.
 */
#ifndef DOJO_BACKUP_SCHEDULE_H
#define DOJO_BACKUP_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backup/backup.h"
#include "base/err.h"

#define BACKUP_SCHEDULE_PREFIX "dojo-backup-"
#define BACKUP_SCHEDULE_SUFFIX ".tar"
/* "dojo-backup-20260102T030405.678Z.tar" */
#define BACKUP_SCHEDULE_NAME_BYTES 36
#define BACKUP_SCHEDULE_DIR_ENTRIES_MAX 100000 /* entries of DIR looked at when pruning */

typedef struct backup_schedule_config {
    const char *db_path;   /* the SQLite file */
    const char *files_dir; /* NULL: beside the database */
    const char *dir;       /* where backups go; created (0700) when missing */
    uint64_t every_ms;
    int keep; /* complete backups kept, >= 1 */
} backup_schedule_config;

typedef struct backup_outcome {
    bool ok;
    uint64_t finished_at_ms; /* wall clock */
    uint64_t bytes, duration_ms;
    int64_t files;
    int pruned; /* old backups removed */
    char path[BACKUP_PATH_BYTES_MAX];
    char error[ERR_MSG_BYTES_MAX];
} backup_outcome;

typedef void (*backup_done_fn)(void *data, const backup_outcome *o);

typedef struct backup_schedule backup_schedule;

/* Prepares DIR and starts the thread and the timer. done runs on the loop
 * after every backup, good or failed. */
int backup_schedule_start(uv_loop_t *loop, const backup_schedule_config *cfg, backup_done_fn done,
                          void *data, backup_schedule **out, err_t *e);
/* Cancels and waits for a backup in progress; closes the handles and frees
 * s once the loop has closed them. */
void backup_schedule_stop(backup_schedule *s);

/* "90s", "15m", "6h", "1d" (or plain seconds) within the limits of
 * LIMIT_BACKUP_INTERVAL_S_*; -1 otherwise. */
int backup_parse_duration(const char *text, uint64_t *ms_out);

/* Whether name is exactly the name of a scheduled backup. */
bool backup_schedule_name_ok(const char *name);

#endif
