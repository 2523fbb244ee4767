/*
 * sqlite_checkpoint.c — the WAL checkpointer thread (see
 * sqlite_checkpoint.h).
 * Thread: its own; wake from any thread.
 */
#include "store/sqlite_checkpoint.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

#include "base/log.h"

#define CHECKPOINT_BUSY_TIMEOUT_MS 5000

struct sqlite_checkpointer {
    sqlite3 *db;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    bool wanted;          /* guarded by lock */
    bool stopping;        /* guarded by lock */
    unsigned long done;   /* guarded by lock: checkpoints that copied frames */
    unsigned long frames; /* guarded by lock: frames they copied */
};

static void checkpoint_main(void *arg)
{
    sqlite_checkpointer *cp = arg;
    for (;;) {
        uv_mutex_lock(&cp->lock);
        while (!cp->wanted && !cp->stopping)
            uv_cond_wait(&cp->cond, &cp->lock);
        bool stop = cp->stopping;
        cp->wanted = false;
        uv_mutex_unlock(&cp->lock);
        if (stop) break;
        int log_frames = 0, copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(cp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                           &copied);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn("sqlite: checkpoint failed: %s", sqlite3_errmsg(cp->db));
        sqlite3_db_release_memory(cp->db); /* its pages are of no use until the next one */
        uv_mutex_lock(&cp->lock);
        if (copied > 0) {
            cp->done++;
            cp->frames += (unsigned long)copied;
        }
        uv_mutex_unlock(&cp->lock);
    }
}

int sqlite_checkpointer_start(const char *path, sqlite_checkpointer **out, err_t *e)
{
    sqlite_checkpointer *cp = calloc(1, sizeof *cp);
    if (!cp) return err_set(e, ERR_NOMEM, "checkpointer for %s: out of memory", path);
    int rc = sqlite3_open_v2(path, &cp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int code = err_set(e, ERR_STORAGE, "checkpointer cannot open %s: %s", path,
                           cp->db ? sqlite3_errmsg(cp->db) : sqlite3_errstr(rc));
        sqlite3_close(cp->db);
        free(cp);
        return code;
    }
    sqlite3_busy_timeout(cp->db, CHECKPOINT_BUSY_TIMEOUT_MS);
    /* A connection learns that the file is in WAL mode, and opens its log,
     * at its first read: until then a checkpoint on it does nothing at all
     * (it reports a log of -1 frames). */
    rc = sqlite3_exec(cp->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = err_set(e, ERR_STORAGE, "checkpointer cannot read %s: %s", path,
                           sqlite3_errmsg(cp->db));
        sqlite3_close(cp->db);
        free(cp);
        return code;
    }
    uv_mutex_init(&cp->lock);
    uv_cond_init(&cp->cond);
    if (uv_thread_create(&cp->thread, checkpoint_main, cp) != 0) {
        uv_mutex_destroy(&cp->lock);
        uv_cond_destroy(&cp->cond);
        sqlite3_close(cp->db);
        free(cp);
        return err_set(e, ERR_INTERNAL, "cannot start the checkpointer thread for %s", path);
    }
    *out = cp;
    return 0;
}

void sqlite_checkpointer_wake(sqlite_checkpointer *cp)
{
    uv_mutex_lock(&cp->lock);
    cp->wanted = true;
    uv_cond_signal(&cp->cond);
    uv_mutex_unlock(&cp->lock);
}

unsigned long sqlite_checkpointer_frames(sqlite_checkpointer *cp)
{
    uv_mutex_lock(&cp->lock);
    unsigned long n = cp->frames;
    uv_mutex_unlock(&cp->lock);
    return n;
}

unsigned long sqlite_checkpointer_count(sqlite_checkpointer *cp)
{
    uv_mutex_lock(&cp->lock);
    unsigned long n = cp->done;
    uv_mutex_unlock(&cp->lock);
    return n;
}

void sqlite_checkpointer_stop(sqlite_checkpointer *cp)
{
    if (!cp) return;
    uv_mutex_lock(&cp->lock);
    cp->stopping = true;
    uv_cond_signal(&cp->cond);
    uv_mutex_unlock(&cp->lock);
    uv_thread_join(&cp->thread);
    uv_mutex_destroy(&cp->lock);
    uv_cond_destroy(&cp->cond);
    sqlite3_close(cp->db);
    free(cp);
}
