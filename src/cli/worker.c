/*
 * worker.c — `dojo worker --exec CMD` (api.md §10): the generation worker.
 * It subscribes to runs:queue over the sync protocol (worker_sync.c) and,
 * whenever runs are queued and fewer than --concurrency commands run,
 * claims one (runs:claim, with --lease) and runs CMD for it
 * (worker_exec.c), heartbeating the lease every third of it; when the
 * command ends the run is completed with the uploaded file (or the URL it
 * printed), or failed with the cause and the last line of its stderr, which
 * refunds the user. One log line per run: id, model, duration, outcome.
 *
 * SIGTERM or SIGINT: nothing more is claimed, running commands may finish
 * for LIMIT_WORKER_DRAIN_MS, the rest are killed and failed "Worker
 * stopped"; the worker exits once every run is reported (or the server can
 * no longer be told, in which case the lease expires).
 * Thread: the main thread, which runs the event loop.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/jread.h"
#include "base/clock.h"
#include "base/log.h"
#include "cli/cli.h"
#include "cli/worker.h"

#define WORKER_LEASE_S_DEFAULT 60
#define WORKER_ID_BYTES_MAX 201
#define WORKER_REPORT_GRACE_MS 10000 /* after the drain, to tell the server how runs ended */

typedef struct worker worker;

typedef struct job {
    worker *w;
    json_t *run; /* the claimed document */
    char id[64];
    char model[128];
    uint64_t started_us;
    wexec *exec;
    uv_timer_t heartbeat;
    bool reporting; /* complete/fail sent */
    struct job *next;
} job;

struct worker {
    uv_loop_t *loop;
    cli_target target;
    char key[LIMIT_ADMIN_KEY_BYTES_MAX + 2];
    const char *key_kind; /* "worker key" or "admin key" */
    char worker_id[WORKER_ID_BYTES_MAX];
    const char *command;
    char upload_url[600];
    int concurrency;
    uint64_t timeout_ms;
    int lease_s;
    wsync *sync;
    job *jobs;
    int running; /* jobs, until reported */
    bool claiming;
    int64_t queued; /* runs:queue's latest count */
    bool draining, stopping;
    int exit_status;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer;
};

static void maybe_claim(worker *w);
static void maybe_stop(worker *w);

/* --- reporting a run -------------------------------------------------------------------- */

static void on_heartbeat_closed(uv_handle_t *h)
{
    job *j = h->data;
    worker *w = j->w;
    json_decref(j->run);
    free(j);
    w->running--;
    maybe_claim(w);
    maybe_stop(w);
}

static void job_end(job *j)
{
    worker *w = j->w;
    for (job **p = &w->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    uv_timer_stop(&j->heartbeat);
    uv_close((uv_handle_t *)&j->heartbeat, on_heartbeat_closed);
}

typedef struct report {
    job *j;
    bool completed;
    char outcome[2 * LIMIT_WORKER_STDERR_LINE_BYTES_MAX + 64];
} report;

static void on_reported(void *data, const json_t *value, const char *err, const char *code)
{
    (void)value;
    report *r = data;
    job *j = r->j;
    double s = (double)(clock_mono_us() - j->started_us) / 1e6;
    if (err)
        log_warn("run %s (model %s): %s in %.2f s, but the server did not take it: %s%s%s", j->id,
                 j->model, r->completed ? "completed" : "failed", s, err, code ? " " : "",
                 code ? code : "");
    else
        log_info("run %s (model %s): %s in %.2f s", j->id, j->model, r->outcome, s);
    free(r);
    job_end(j);
}

static void on_exec_done(void *data, const wexec_result *res)
{
    job *j = data;
    worker *w = j->w;
    j->exec = NULL;
    j->reporting = true;
    uv_timer_stop(&j->heartbeat);
    report *r = calloc(1, sizeof *r);
    if (!r) {
        job_end(j);
        return;
    }
    r->j = j;
    json_t *args = json_pack("{s:s, s:s}", "id", j->id, "workerId", w->worker_id);
    const char *path;
    if (res->outcome == WEXEC_FILE) {
        json_object_set_new(args, "storageId", json_string(res->storage_id));
        path = "runs:complete";
        r->completed = true;
        snprintf(r->outcome, sizeof r->outcome, "completed with file %s", res->storage_id);
    } else if (res->outcome == WEXEC_URL) {
        json_object_set_new(args, "output", json_string(res->url));
        path = "runs:complete";
        r->completed = true;
        snprintf(r->outcome, sizeof r->outcome, "completed with %.200s", res->url);
    } else {
        json_object_set_new(args, "error", json_string(res->error));
        path = "runs:fail";
        snprintf(r->outcome, sizeof r->outcome, "failed (refunded): %s", res->error);
    }
    wsync_mutation(w->sync, path, args, on_reported, r);
}

/* --- heartbeats ---------------------------------------------------------------------------- */

static void on_heartbeat_answer(void *data, const json_t *value, const char *err, const char *code)
{
    (void)value;
    job *j = data;
    if (!err) return;
    log_warn("run %s: heartbeat refused: %s", j->id, err);
    /* The lease is lost (expired and the run claimed again, or ended): the
     * command's work is not this worker's to report any more. */
    if (code && strcmp(code, "INVALID_TRANSITION") == 0 && j->exec)
        wexec_kill(j->exec, "The worker lost the run's lease");
}

static void on_heartbeat(uv_timer_t *t)
{
    job *j = t->data;
    worker *w = j->w;
    if (j->reporting) return;
    json_t *args = json_pack("{s:s, s:s, s:i}", "id", j->id, "workerId", w->worker_id,
                             "leaseSeconds", w->lease_s);
    wsync_mutation(w->sync, "runs:heartbeat", args, on_heartbeat_answer, j);
}

/* --- claiming ------------------------------------------------------------------------------ */

static void start_job(worker *w, const json_t *run)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->w = w;
    j->run = json_deep_copy(run);
    snprintf(j->id, sizeof j->id, "%s", jr_string_or(run, "_id", "?"));
    snprintf(j->model, sizeof j->model, "%s", jr_string_or(jr_field(run, "input"), "model", "?"));
    j->started_us = clock_mono_us();
    uv_timer_init(w->loop, &j->heartbeat);
    j->heartbeat.data = j;
    j->next = w->jobs;
    w->jobs = j;
    w->running++;
    uint64_t every_ms = (uint64_t)w->lease_s * 1000 / 3;
    uv_timer_start(&j->heartbeat, on_heartbeat, every_ms, every_ms);
    wexec_config xc = {.loop = w->loop,
                       .command = w->command,
                       .run = j->run,
                       .timeout_ms = w->timeout_ms,
                       .upload_url = w->upload_url,
                       .key = w->key,
                       .done = on_exec_done,
                       .data = j};
    err_t e;
    err_init(&e);
    if (wexec_start(&xc, &j->exec, &e) != 0) {
        wexec_result r = {.outcome = WEXEC_FAILED};
        snprintf(r.error, sizeof r.error, "The worker could not start the command: %s", e.msg);
        err_clear(&e);
        on_exec_done(j, &r);
    }
}

static void on_claimed(void *data, const json_t *value, const char *err, const char *code)
{
    worker *w = data;
    w->claiming = false;
    if (err) {
        log_warn("worker: runs:claim failed: %s", err);
        if (code && strcmp(code, "FORBIDDEN") == 0) {
            cli_error("worker", "the server refused the %s: %s", w->key_kind, err);
            w->exit_status = 1;
            kill(getpid(), SIGTERM);
        }
        return;
    }
    if (json_is_object(value)) {
        start_job(w, value);
        maybe_claim(w); /* more may wait: claim until the queue is empty or the slots full */
    }
}

static void maybe_claim(worker *w)
{
    if (w->draining || w->claiming || w->queued <= 0 || w->running >= w->concurrency) return;
    w->claiming = true;
    json_t *args = json_pack("{s:s, s:i}", "workerId", w->worker_id, "leaseSeconds", w->lease_s);
    wsync_mutation(w->sync, "runs:claim", args, on_claimed, w);
}

static void on_queue(void *data, const json_t *value, const char *err)
{
    worker *w = data;
    if (err) {
        cli_error("worker", "runs:queue failed: %s", err);
        if (strstr(err, "worker key") || strstr(err, "admin key")) {
            w->exit_status = 1;
            kill(getpid(), SIGTERM);
        }
        return;
    }
    int64_t queued = 0;
    err_t why;
    err_init(&why);
    if (jr_int(value, "runs:queue", "queued", 0, 0, INT64_MAX, &queued, &why) != 0)
        log_warn("worker: runs:queue answered something unexpected: %s", why.msg);
    err_clear(&why);
    w->queued = queued;
    maybe_claim(w);
}

static void on_fatal(void *data, const char *message)
{
    worker *w = data;
    cli_error("worker", "the server refused the %s: %s", w->key_kind, message);
    w->exit_status = 1;
    kill(getpid(), SIGTERM);
}

/* --- stopping --------------------------------------------------------------------------------- */

static void on_sync_stopped(void *data)
{
    worker *w = data;
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
}

static void maybe_stop(worker *w)
{
    if (!w->draining || w->stopping || w->running > 0 || w->claiming) return;
    w->stopping = true;
    log_info("worker: stopped");
    wsync_stop(w->sync, on_sync_stopped, w);
}

/* The server could not be told in time (it is down): the leases expire. */
static void on_give_up(uv_timer_t *t)
{
    worker *w = t->data;
    if (w->stopping) return;
    log_warn("worker: %d run%s could not be reported: their leases will expire", w->running,
             w->running == 1 ? "" : "s");
    w->stopping = true;
    wsync_stop(w->sync, on_sync_stopped, w); /* answers what waits, with an error */
}

static void on_drain_expired(uv_timer_t *t)
{
    worker *w = t->data;
    for (job *j = w->jobs; j; j = j->next)
        if (j->exec) wexec_kill(j->exec, "Worker stopped");
    uv_timer_start(&w->drain_timer, on_give_up, WORKER_REPORT_GRACE_MS, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    worker *w = s->data;
    if (w->draining) return;
    w->draining = true;
    if (w->running > 0)
        log_info("worker: %s: claiming nothing more; %d run%s may finish for %d s",
                 signum == SIGTERM ? "SIGTERM" : "SIGINT", w->running, w->running == 1 ? "" : "s",
                 LIMIT_WORKER_DRAIN_MS / 1000);
    uv_timer_start(&w->drain_timer, on_drain_expired, LIMIT_WORKER_DRAIN_MS, 0);
    maybe_stop(w);
}

/* --- the command --------------------------------------------------------------------------------
 */

static void worker_usage(FILE *out)
{
    fprintf(out,
            "Usage: dojo worker --exec CMD [--concurrency N] [--worker-id ID]\n"
            "                   [--timeout SECONDS] [--lease SECONDS] [--url URL]\n\n"
            "The generation worker: claims queued runs and runs CMD (with /bin/sh -c) for\n"
            "each, in a fresh temporary directory, with the run's input as JSON on standard\n"
            "input and DOJO_RUN_ID, DOJO_MODEL, DOJO_PROMPT and DOJO_OUTPUT in the\n"
            "environment. CMD writes the generated file to $DOJO_OUTPUT (or prints one\n"
            "https:// URL as its last line) and exits 0; the file is uploaded and the run\n"
            "completed. A failure (non-zero exit, no output, the timeout) fails the run with\n"
            "the cause and the last line of CMD's standard error, and refunds the user.\n"
            "It wakes on runs:queue (a subscription over the sync protocol), never polls.\n"
            "SIGTERM: claim nothing more, let running commands finish for %d s, then\n"
            "fail the rest with \"Worker stopped\".\n\n"
            "  --exec CMD          the command (required); see examples/worker/\n"
            "  --concurrency N     commands at once, 1 to %d (default 1)\n"
            "  --worker-id ID      the name runs record (default <hostname>-<pid>)\n"
            "  --timeout SECONDS   a command running longer is killed, with its process\n"
            "                      group (default %d)\n"
            "  --lease SECONDS     the lease claimed and renewed every third of it (default %d)\n"
            "  --url URL           the server (default $DOJO_URL, else %s)\n"
            "  --worker-key KEY    the deployment's WORKER_KEY (default $DOJO_WORKER_KEY);\n"
            "                      without one, the admin key (--admin-key, $DOJO_ADMIN_KEY\n"
            "                      or ./.dojo/admin_key)\n",
            LIMIT_WORKER_DRAIN_MS / 1000, LIMIT_WORKER_CONCURRENCY_MAX,
            LIMIT_WORKER_TIMEOUT_S_DEFAULT, WORKER_LEASE_S_DEFAULT, CLI_DEFAULT_URL);
}

static int parse_number(const char *text, long min, long max, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"exec", required_argument, NULL, 'x'},
        {"concurrency", required_argument, NULL, 'c'},
        {"worker-id", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 't'},
        {"lease", required_argument, NULL, 'l'},
        {"url", required_argument, NULL, 'u'},
        {"worker-key", required_argument, NULL, 'w'},
        {"admin-key", required_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *command = NULL, *url = NULL, *worker_key = getenv("DOJO_WORKER_KEY"),
               *admin_key = NULL, *id = NULL;
    long concurrency = 1, timeout_s = LIMIT_WORKER_TIMEOUT_S_DEFAULT,
         lease_s = WORKER_LEASE_S_DEFAULT;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'x':
            command = optarg;
            break;
        case 'c':
            if (parse_number(optarg, 1, LIMIT_WORKER_CONCURRENCY_MAX, &concurrency) != 0) {
                cli_error("worker", "--concurrency wants 1 to %d, got \"%s\"",
                          LIMIT_WORKER_CONCURRENCY_MAX, optarg);
                return 2;
            }
            break;
        case 'i':
            id = optarg;
            break;
        case 't':
            if (parse_number(optarg, 1, LIMIT_WORKER_TIMEOUT_S_MAX, &timeout_s) != 0) {
                cli_error("worker", "--timeout wants seconds from 1 to %d, got \"%s\"",
                          LIMIT_WORKER_TIMEOUT_S_MAX, optarg);
                return 2;
            }
            break;
        case 'l':
            if (parse_number(optarg, LIMIT_LEASE_SECONDS_MIN, LIMIT_LEASE_SECONDS_MAX, &lease_s) !=
                    0 ||
                lease_s < 3) {
                cli_error("worker", "--lease wants seconds from 3 to %d, got \"%s\"",
                          LIMIT_LEASE_SECONDS_MAX, optarg);
                return 2;
            }
            break;
        case 'u':
            url = optarg;
            break;
        case 'w':
            worker_key = optarg;
            break;
        case 'k':
            admin_key = optarg;
            break;
        case 'L':
            if (cli_parse_log_level(optarg) < 0) {
                cli_error("worker", "--log-level is debug, info, warn or error");
                return 2;
            }
            log_init(cli_parse_log_level(optarg));
            break;
        case 'h':
            worker_usage(stdout);
            return 0;
        default:
            worker_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("worker", "unexpected argument \"%s\" (the command is --exec CMD)", argv[optind]);
        return 2;
    }
    if (!command || !*command) {
        cli_error("worker", "which command? dojo worker --exec CMD (see examples/worker/)");
        return 2;
    }
    worker *w = calloc(1, sizeof *w);
    if (!w) return 1;
    err_t e;
    err_init(&e);
    bool with_worker_key = worker_key && *worker_key;
    if (cli_target_resolve(&w->target, url, admin_key, !with_worker_key, &e) != 0) {
        cli_error("worker",
                  "%s; or give the deployment's WORKER_KEY with --worker-key or "
                  "DOJO_WORKER_KEY",
                  e.msg);
        free(w);
        return 2;
    }
    if (strncmp(w->target.url, "http://", 7) != 0 && strncmp(w->target.url, "https://", 8) != 0) {
        cli_error("worker", "the server URL must be http:// or https://, got \"%s\"",
                  w->target.url);
        free(w);
        return 2;
    }
    snprintf(w->key, sizeof w->key, "%s", with_worker_key ? worker_key : w->target.admin_key);
    if (strlen(w->key) > LIMIT_ADMIN_KEY_BYTES_MAX) {
        cli_error("worker", "the key is longer than %d bytes", LIMIT_ADMIN_KEY_BYTES_MAX);
        free(w);
        return 2;
    }
    w->key_kind = with_worker_key ? "worker key" : "admin key";
    if (id) {
        if (strlen(id) == 0 || strlen(id) >= WORKER_ID_BYTES_MAX) {
            cli_error("worker", "--worker-id is 1 to %d characters", WORKER_ID_BYTES_MAX - 1);
            free(w);
            return 2;
        }
        snprintf(w->worker_id, sizeof w->worker_id, "%s", id);
    } else {
        char host[128] = "worker";
        gethostname(host, sizeof host - 1);
        snprintf(w->worker_id, sizeof w->worker_id, "%s-%ld", host, (long)getpid());
    }
    w->loop = uv_default_loop();
    w->command = command;
    w->concurrency = (int)concurrency;
    w->timeout_ms = (uint64_t)timeout_s * 1000;
    w->lease_s = (int)lease_s;
    snprintf(w->upload_url, sizeof w->upload_url, "%s/api/storage/upload", w->target.url);
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(w->loop, &w->sigterm);
    uv_signal_init(w->loop, &w->sigint);
    uv_timer_init(w->loop, &w->drain_timer);
    w->sigterm.data = w->sigint.data = w->drain_timer.data = w;
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    wsync_config sc = {.loop = w->loop,
                       .url = w->target.url,
                       .key = w->key,
                       .query_path = "runs:queue",
                       .on_query = on_queue,
                       .on_fatal = on_fatal,
                       .data = w};
    if (wsync_start(&sc, &w->sync, &e) != 0) {
        cli_error("worker", "%s", e.msg);
        return 1;
    }
    log_info("worker %s: serving %s with the %s: up to %d at once, timeout %ld s, lease %ld s: %s",
             w->worker_id, w->target.url, w->key_kind, w->concurrency, timeout_s, lease_s, command);
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_loop_close(w->loop);
    int status = w->exit_status;
    wsync_free(w->sync);
    free(w);
    return status;
}
