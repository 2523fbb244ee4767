/*
 * schedule.c — scheduled backups inside `dojo serve` (see schedule.h).
 *
 * Three parties: the loop's timer (decides a backup is due and wakes the
 * thread, unless one is running), the backup thread (takes it, prunes, and
 * hands the outcome back), and the loop's async handle (delivers the
 * outcome to done). `busy`, `wanted`, `stopping` and `outcome` are guarded
 * by `lock`; `cancel` is atomic, read by the copy between steps.
 * Thread: the loop thread, except backup_main (the backup thread).
 */
#include "backup/schedule.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"

#define SCHEDULE_FIRST_DELAY_MS 1000 /* an overdue backup starts this soon after start */

struct backup_schedule {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_async_t async;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    bool wanted, busy, stopping, delivered; /* guarded by lock */
    backup_outcome outcome;                 /* guarded by lock */
    atomic_int cancel;
    int handles_open;
    backup_done_fn done;
    void *data;
    char db_path[BACKUP_PATH_BYTES_MAX];
    char files_dir[BACKUP_PATH_BYTES_MAX];
    char dir[BACKUP_PATH_BYTES_MAX];
    uint64_t every_ms;
    int keep;
};

/* --- names ---------------------------------------------------------------------- */

static void backup_name(uint64_t now_ms, char out[BACKUP_SCHEDULE_NAME_BYTES + 1])
{
    time_t s = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    snprintf(out, BACKUP_SCHEDULE_NAME_BYTES + 1, "%s%.15s.%03uZ%s", BACKUP_SCHEDULE_PREFIX, stamp,
             (unsigned)(now_ms % 1000), BACKUP_SCHEDULE_SUFFIX);
}

/* The time a scheduled backup's name gives (ms), or 0 when it is not one. */
static uint64_t name_time_ms(const char *name)
{
    if (!backup_schedule_name_ok(name)) return 0;
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(name + strlen(BACKUP_SCHEDULE_PREFIX), "%4d%2d%2dT%2d%2d%2d.%3dZ", &tm.tm_year,
               &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t s = timegm(&tm);
    return s < 0 ? 0 : (uint64_t)s * 1000 + (uint64_t)ms;
}

bool backup_schedule_name_ok(const char *name)
{
    static const char shape[] = "dojo-backup-DDDDDDDDTDDDDDD.DDDZ.tar";
    if (strlen(name) != BACKUP_SCHEDULE_NAME_BYTES) return false;
    for (int i = 0; i < BACKUP_SCHEDULE_NAME_BYTES; i++) {
        if (shape[i] == 'D') {
            if (name[i] < '0' || name[i] > '9') return false;
        } else if (name[i] != shape[i]) {
            return false;
        }
    }
    return true;
}

int backup_parse_duration(const char *text, uint64_t *ms_out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-') return -1;
    uint64_t unit_s = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        unit_s = 60, end++;
    else if (*end == 'h')
        unit_s = 3600, end++;
    else if (*end == 'd')
        unit_s = 86400, end++;
    if (*end != '\0') return -1;
    if (n > (unsigned long long)LIMIT_BACKUP_INTERVAL_S_MAX) return -1;
    uint64_t s = (uint64_t)n * unit_s;
    if (s < LIMIT_BACKUP_INTERVAL_S_MIN || s > LIMIT_BACKUP_INTERVAL_S_MAX) return -1;
    *ms_out = s * 1000;
    return 0;
}

/* --- the directory ---------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The complete scheduled backups in dir, oldest first (names malloc'd). */
static int list_backups(const char *dir, char ***names_out, int *n_out, err_t *e)
{
    *names_out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(e, ERR_IO, "cannot read %s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, seen = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && seen++ < BACKUP_SCHEDULE_DIR_ENTRIES_MAX) {
        if (!backup_schedule_name_ok(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown) {
                rc = err_set(e, ERR_NOMEM, "out of memory");
                break;
            }
            names = grown;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = err_set(e, ERR_NOMEM, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_names);
    *names_out = names;
    *n_out = n;
    return rc;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Removes the oldest complete backups beyond keep; returns how many. */
static int prune(backup_schedule *s)
{
    char **names;
    int n, removed = 0;
    err_t e;
    err_init(&e);
    if (list_backups(s->dir, &names, &n, &e) != 0) {
        log_warn("backup: cannot prune %s: %s", s->dir, e.msg);
        err_clear(&e);
    }
    for (int i = 0; i + s->keep < n; i++) {
        char path[BACKUP_PATH_BYTES_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", s->dir, names[i]);
        if (unlink(path) == 0)
            removed++;
        else
            log_warn("backup: cannot remove %s: %s", path, strerror(errno));
    }
    free_names(names, n);
    return removed;
}

/* Removes what a killed backup left: "<scheduled name>.partial", ".db.partial". */
static void remove_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    int seen = 0;
    while ((de = readdir(d)) != NULL && seen++ < BACKUP_SCHEDULE_DIR_ENTRIES_MAX) {
        size_t len = strlen(de->d_name);
        if (len <= BACKUP_SCHEDULE_NAME_BYTES ||
            strncmp(de->d_name, BACKUP_SCHEDULE_PREFIX, strlen(BACKUP_SCHEDULE_PREFIX)) != 0)
            continue;
        char base[BACKUP_SCHEDULE_NAME_BYTES + 1];
        snprintf(base, sizeof base, "%.*s", BACKUP_SCHEDULE_NAME_BYTES, de->d_name);
        const char *rest = de->d_name + BACKUP_SCHEDULE_NAME_BYTES;
        if (!backup_schedule_name_ok(base) || (strcmp(rest, BACKUP_PARTIAL_SUFFIX) != 0 &&
                                               strcmp(rest, ".db" BACKUP_PARTIAL_SUFFIX) != 0))
            continue;
        char path[BACKUP_PATH_BYTES_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (unlink(path) == 0) log_info("backup: removed %s, left by an interrupted backup", path);
    }
    closedir(d);
}

/* --- the backup thread ------------------------------------------------------------- */

static void run_one(backup_schedule *s, backup_outcome *o)
{
    memset(o, 0, sizeof *o);
    char name[BACKUP_SCHEDULE_NAME_BYTES + 1];
    backup_name((uint64_t)clock_now_ms(), name);
    if (snprintf(o->path, sizeof o->path, "%s/%s", s->dir, name) >= (int)sizeof o->path) {
        snprintf(o->error, sizeof o->error, "the backup directory's path is too long");
        return;
    }
    backup_result res;
    err_t e;
    err_init(&e);
    int rc = backup_take(s->db_path, s->files_dir[0] ? s->files_dir : NULL, o->path, &s->cancel,
                         &res, &e);
    o->finished_at_ms = (uint64_t)clock_now_ms();
    if (rc) {
        snprintf(o->error, sizeof o->error, "%s", e.msg);
        err_clear(&e);
        return;
    }
    o->ok = true;
    o->bytes = res.bytes;
    o->duration_ms = res.duration_ms;
    o->files = res.files;
    o->pruned = prune(s);
}

static void backup_main(void *arg)
{
    backup_schedule *s = arg;
    for (;;) {
        uv_mutex_lock(&s->lock);
        while (!s->wanted && !s->stopping)
            uv_cond_wait(&s->cond, &s->lock);
        if (s->stopping) {
            uv_mutex_unlock(&s->lock);
            break;
        }
        s->wanted = false;
        uv_mutex_unlock(&s->lock);
        backup_outcome o;
        run_one(s, &o);
        uv_mutex_lock(&s->lock);
        s->outcome = o;
        s->delivered = false;
        s->busy = false;
        uv_mutex_unlock(&s->lock);
        uv_async_send(&s->async);
    }
}

/* --- the loop side ------------------------------------------------------------------- */

static void on_outcome(uv_async_t *h)
{
    backup_schedule *s = h->data;
    uv_mutex_lock(&s->lock);
    bool fresh = !s->delivered && s->outcome.finished_at_ms;
    backup_outcome o = s->outcome;
    s->delivered = true;
    uv_mutex_unlock(&s->lock);
    if (!fresh) return;
    if (o.ok)
        log_info("backup: wrote %s (%llu bytes, %lld files) in %llu ms; removed %d older", o.path,
                 (unsigned long long)o.bytes, (long long)o.files, (unsigned long long)o.duration_ms,
                 o.pruned);
    else
        log_error("backup: %s failed: %s", o.path, o.error);
    if (s->done) s->done(s->data, &o);
}

static void on_due(uv_timer_t *t)
{
    backup_schedule *s = t->data;
    uv_mutex_lock(&s->lock);
    bool running = s->busy;
    if (!running) {
        s->busy = true;
        s->wanted = true;
        uv_cond_signal(&s->cond);
    }
    uv_mutex_unlock(&s->lock);
    if (running)
        log_warn("backup: the previous backup is still running; this one waits for the next "
                 "interval");
}

/* When the first backup is due: one interval after the newest one in DIR. */
static uint64_t first_delay_ms(backup_schedule *s)
{
    char **names;
    int n;
    err_t e;
    err_init(&e);
    uint64_t newest = 0;
    if (list_backups(s->dir, &names, &n, &e) == 0 && n > 0) newest = name_time_ms(names[n - 1]);
    err_clear(&e);
    free_names(names, n);
    uint64_t now = (uint64_t)clock_now_ms();
    if (newest == 0 || newest > now) return s->every_ms;
    uint64_t due = newest + s->every_ms;
    return due <= now + SCHEDULE_FIRST_DELAY_MS ? SCHEDULE_FIRST_DELAY_MS : due - now;
}

int backup_schedule_start(uv_loop_t *loop, const backup_schedule_config *cfg, backup_done_fn done,
                          void *data, backup_schedule **out, err_t *e)
{
    if (cfg->keep < 1 || cfg->keep > LIMIT_BACKUP_KEEP_MAX || cfg->every_ms == 0)
        return err_set(e, ERR_INVALID_ARGUMENT, "--backup-keep must be 1..%d",
                       LIMIT_BACKUP_KEEP_MAX);
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST)
        return err_set(e, ERR_IO, "cannot create the backup directory %s: %s", cfg->dir,
                       strerror(errno));
    if (access(cfg->dir, W_OK | X_OK) != 0)
        return err_set(e, ERR_IO, "cannot write into the backup directory %s: %s", cfg->dir,
                       strerror(errno));
    backup_schedule *s = calloc(1, sizeof *s);
    if (!s) return err_set(e, ERR_NOMEM, "out of memory");
    s->loop = loop;
    s->done = done;
    s->data = data;
    s->every_ms = cfg->every_ms;
    s->keep = cfg->keep;
    snprintf(s->db_path, sizeof s->db_path, "%s", cfg->db_path);
    snprintf(s->files_dir, sizeof s->files_dir, "%s", cfg->files_dir ? cfg->files_dir : "");
    snprintf(s->dir, sizeof s->dir, "%s", cfg->dir);
    atomic_init(&s->cancel, 0);
    remove_leftovers(s->dir);
    uv_mutex_init(&s->lock);
    uv_cond_init(&s->cond);
    if (uv_thread_create(&s->thread, backup_main, s) != 0) {
        uv_mutex_destroy(&s->lock);
        uv_cond_destroy(&s->cond);
        free(s);
        return err_set(e, ERR_INTERNAL, "cannot start the backup thread");
    }
    uv_timer_init(loop, &s->timer);
    uv_async_init(loop, &s->async, on_outcome);
    s->timer.data = s->async.data = s;
    s->handles_open = 2;
    uint64_t first = first_delay_ms(s);
    uv_timer_start(&s->timer, on_due, first, s->every_ms);
    log_info("backup: every %llu s into %s, keeping %d; the next in %llu s",
             (unsigned long long)(s->every_ms / 1000), s->dir, s->keep,
             (unsigned long long)(first / 1000));
    *out = s;
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    backup_schedule *s = h->data;
    if (--s->handles_open > 0) return;
    uv_mutex_destroy(&s->lock);
    uv_cond_destroy(&s->cond);
    free(s);
}

void backup_schedule_stop(backup_schedule *s)
{
    if (!s) return;
    atomic_store(&s->cancel, 1);
    uv_mutex_lock(&s->lock);
    s->stopping = true;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->lock);
    uv_thread_join(&s->thread);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->async, on_handle_closed);
}
