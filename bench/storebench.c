/*
 * storebench.c — the write path without HTTP: the app's mutations run
 * in-process through the real engine (storage thread, group commit, the
 * store), `inflight` calls kept outstanding at all times as that many
 * connections would, for a few seconds. It prints mutations per second,
 * latency, mutations per commit, the bytes the storage thread wrote per
 * mutation (its wchar in /proc: WAL frames and statement journals) and the
 * process's CPU per mutation: the ceiling the HTTP figures of bench/run.sh
 * are compared with, and the measurement behind the storage format
 * (docs/ARCHITECTURE.md "Storage").
 *
 *   dojo-storebench --db sqlite:/tmp/x.db [--users 256] [--inflight 64]
 *                   [--seconds 10] [--prefill N] [--fn runs:create]
 *
 * --prefill N first creates N runs (the same mutation, as fast as it goes),
 * to measure on a grown database. Needs SIGNUP_CREDITS large enough for
 * every run (it sets SIGNUP_CREDITS and PRICING itself when unset).
 * Thread: the main thread runs the loop; the engine its own threads.
 */
#include <dirent.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/memory.h"
#include "engine/engine.h"

#define LATENCIES_MAX 4000000

typedef struct bench {
    uv_loop_t loop;
    registry reg;
    engine *en;
    const fn_def *fn;
    int users, inflight, outstanding;
    long next_user;
    long done, failed, target; /* target: stop submitting after this many (prefill) */
    bool stopping;
    uint64_t *latencies_us;
    long n_latencies;
    char last_error[ERR_MSG_BYTES_MAX];
} bench;

static json_t *identity_of(long i)
{
    char tid[64];
    snprintf(tid, sizeof tid, "bench|user%ld", i);
    return json_pack("{s:s, s:s, s:s, s:s}", "tokenIdentifier", tid, "subject", tid, "issuer",
                     "bench", "email", "bench@example.com");
}

static void submit(bench *b, const fn_def *fn, json_t *args, long user);

static void on_done(call *c)
{
    bench *b = c->data;
    b->outstanding--;
    if (c->rc) {
        b->failed++;
        snprintf(b->last_error, sizeof b->last_error, "%s", c->err.msg);
    } else {
        b->done++;
    }
    if (b->latencies_us && b->n_latencies < LATENCIES_MAX)
        b->latencies_us[b->n_latencies++] = c->finished_us - c->submitted_us;
    call_free(c);
    if (!b->stopping && (b->target == 0 || b->done + b->failed + b->outstanding < b->target))
        submit(b, b->fn, NULL, b->next_user++ % b->users);
}

static json_t *create_args(void)
{
    return json_pack("{s:{s:s, s:s}}", "input", "model", "flux-schnell", "prompt",
                     "a red fox in the snow");
}

static void submit(bench *b, const fn_def *fn, json_t *args, long user)
{
    call *c = call_new();
    c->fn = fn;
    c->args = args ? args : (fn == b->fn ? create_args() : json_object());
    c->identity = identity_of(user);
    c->done = on_done;
    c->data = b;
    c->submitted_us = clock_mono_us();
    if (engine_submit(b->en, c) != 0) {
        call_free(c);
        b->failed++;
        return;
    }
    b->outstanding++;
}

static void drain(bench *b)
{
    while (b->outstanding > 0)
        uv_run(&b->loop, UV_RUN_ONCE);
}

/* Bytes written so far by the thread that wrote most (the storage thread
 * during a write load), and by the whole process. */
static void wchar_now(unsigned long long *max_thread, unsigned long long *process)
{
    *max_thread = *process = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *ent;
    while (d && (ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char path[300], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%s/io", ent->d_name);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f)) {
            unsigned long long v;
            if (sscanf(line, "wchar: %llu", &v) == 1 && v > *max_thread) *max_thread = v;
        }
        if (f) fclose(f);
    }
    if (d) closedir(d);
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "wchar: %llu", &v) == 1) *process = v;
    }
    if (f) fclose(f);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void on_tick(uv_timer_t *t)
{
    bench *b = t->data;
    b->stopping = true;
    uv_timer_stop(t);
}

static const char *arg(int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return fallback;
}

int main(int argc, char **argv)
{
    const char *db = arg(argc, argv, "--db", NULL);
    if (!db) {
        fprintf(stderr, "usage: %s --db URL [--users N] [--inflight N] [--seconds S] "
                        "[--prefill N] [--fn PATH]\n",
                argv[0]);
        return 2;
    }
    bench b = {0};
    b.users = atoi(arg(argc, argv, "--users", "256"));
    b.inflight = atoi(arg(argc, argv, "--inflight", "64"));
    double seconds = atof(arg(argc, argv, "--seconds", "10"));
    long prefill = atol(arg(argc, argv, "--prefill", "0"));
    const char *fn_path = arg(argc, argv, "--fn", "runs:create");
    setenv("SIGNUP_CREDITS", "1000000000", 0);
    setenv("PRICING", "{\"default\":1}", 0);
    log_init(LOG_WARN);

    uv_loop_init(&b.loop);
    registry_init(&b.reg);
    app_register(&b.reg);
    b.fn = registry_find(&b.reg, fn_path);
    const fn_def *sign_up = registry_find(&b.reg, "users:getOrCreate");
    if (!b.fn || !sign_up) {
        fprintf(stderr, "no function %s\n", fn_path);
        return 2;
    }
    engine_config cfg = {.loop = &b.loop, .db_url = db, .schema = app_schema(), .registry = &b.reg};
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    if (engine_open(&cfg, &b.en, report, &e) != 0) {
        fprintf(stderr, "engine_open: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "storebench: %s\n", report);
    for (long u = 0; u < b.users; u++) {
        b.stopping = true; /* no resubmission */
        submit(&b, sign_up, json_object(), u);
        if (b.outstanding >= b.inflight) drain(&b);
    }
    drain(&b);
    b.stopping = false;
    if (b.failed) fprintf(stderr, "storebench: signing up failed: %s\n", b.last_error);

    if (prefill > 0) {
        double t0 = clock_mono_us() / 1e6;
        b.done = b.failed = 0;
        b.target = prefill;
        for (int i = 0; i < 256 && i < prefill; i++)
            submit(&b, b.fn, NULL, b.next_user++ % b.users);
        drain(&b);
        fprintf(stderr, "storebench: prefilled %ld runs in %.1f s (%ld failed)\n", b.done,
                clock_mono_us() / 1e6 - t0, b.failed);
        b.target = 0;
    }

    b.latencies_us = malloc(sizeof *b.latencies_us * LATENCIES_MAX);
    b.done = b.failed = 0;
    b.n_latencies = 0;
    unsigned long long w_thread0, w_proc0, w_thread1, w_proc1;
    wchar_now(&w_thread0, &w_proc0);
    double cpu0 = cpu_s(), t0 = clock_mono_us() / 1e6;
    uv_timer_t timer;
    uv_timer_init(&b.loop, &timer);
    timer.data = &b;
    uv_timer_start(&timer, on_tick, (uint64_t)(seconds * 1000), 0);
    for (int i = 0; i < b.inflight; i++)
        submit(&b, b.fn, NULL, b.next_user++ % b.users);
    while (!b.stopping)
        uv_run(&b.loop, UV_RUN_ONCE);
    double t1 = clock_mono_us() / 1e6;
    drain(&b);
    double cpu1 = cpu_s();
    wchar_now(&w_thread1, &w_proc1);
    uv_close((uv_handle_t *)&timer, NULL);

    qsort(b.latencies_us, (size_t)b.n_latencies, sizeof *b.latencies_us, cmp_u64);
    double p50 = b.n_latencies ? b.latencies_us[b.n_latencies / 2] / 1000.0 : 0;
    double p99 = b.n_latencies ? b.latencies_us[b.n_latencies * 99 / 100] / 1000.0 : 0;
    double max = b.n_latencies ? b.latencies_us[b.n_latencies - 1] / 1000.0 : 0;
    long n = b.done > 0 ? b.done : 1;
    printf("%s %s: %.0f mutations/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms; storage thread wrote "
           "%.1f KiB/"
           "mutation (process %.1f); CPU %.0f us/mutation (%ld ok, %ld failed)\n",
           db, fn_path, b.done / (t1 - t0), p50, p99, max, (double)(w_thread1 - w_thread0) / n / 1024,
           (double)(w_proc1 - w_proc0) / n / 1024, (cpu1 - cpu0) / n * 1e6, b.done, b.failed);
    if (b.failed) printf("last error: %s\n", b.last_error);
    if (getenv("STOREBENCH_IDLE_S")) {
        /* What the load left behind once the engine has been idle a while. */
        sleep((unsigned)atoi(getenv("STOREBENCH_IDLE_S")));
        uv_run(&b.loop, UV_RUN_NOWAIT);
        struct mallinfo2 mi = mallinfo2();
        printf("after %s s idle: RSS %.1f MiB; heap in use %.1f MiB, free %.1f MiB, mmapped %.1f "
               "MiB\n",
               getenv("STOREBENCH_IDLE_S"), memory_rss_bytes() / 1048576.0,
               mi.uordblks / 1048576.0, mi.fordblks / 1048576.0, mi.hblkhd / 1048576.0);
    }
    free(b.latencies_us);
    engine_close(b.en);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    return b.failed ? 1 : 0;
}
