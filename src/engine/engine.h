/*
 * engine.h — running functions as serializable transactions.
 *
 * The engine owns the store and two kinds of threads:
 *   - the storage thread, which owns the one writer connection and runs
 *     mutations in groups: one database transaction per group, a savepoint
 *     per mutation (a failing mutation rolls back alone), one durable commit
 *     for the whole group, then every caller of the group is answered;
 *   - reader threads, each with its own connection, which run queries on the
 *     latest committed snapshot.
 * Callers on the event loop submit a `call` and get it back, completed, in
 * its done callback on the loop. After each commit the engine tells its
 * commit listeners (subscriptions, the deployment-variable cache) the commit
 * timestamp and the write set.
 *
 * Commit timestamps are nanoseconds since the epoch, strictly increasing,
 * persisted with every commit so that they keep increasing across restarts.
 *
 * Thread: engine_* functions are called on the event-loop thread, except
 * engine_open/engine_close which run on the main thread around the loop.
 */
#ifndef DOJO_ENGINE_ENGINE_H
#define DOJO_ENGINE_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "engine/registry.h"
#include "engine/rwset.h"
#include "store/store.h"

typedef struct engine engine;
typedef struct call call;
typedef void (*call_done_cb)(call *c);

struct call {
    /* Set by the caller. */
    const fn_def *fn;
    json_t *args;     /* owned: the decoded argument object */
    json_t *identity; /* owned: NULL when anonymous */
    bool admin;
    bool worker;      /* the worker key (api.md §10): only fn->worker functions */
    char *session_id; /* owned: WebSocket mutations, for exactly-once; NULL otherwise */
    int64_t request_id;
    char *journal_in;  /* owned: pinned page end of an earlier run, or NULL */
    bool record_reads; /* keep the read set (subscriptions) */
    /* owned: a query batch (engine_submit_batch): these queries run in
     * this call's read transaction, all at its snapshot; each gets its own
     * outcome. */
    struct call **batch;
    int n_batch;
    call_done_cb done;
    void *data;

    /* Set by the engine before done is called. */
    int rc; /* 0, or an ERR_* code explained by err */
    err_t err;
    json_t *result;    /* owned: the return value (json null for none) */
    json_t *log_lines; /* owned: array of strings */
    uint64_t ts;       /* snapshot (query) or commit (mutation) timestamp */
    char *journal_out; /* owned */
    read_set reads;
    bool replayed; /* answered from the exactly-once record, not run again */
    uint64_t submitted_us, started_us, finished_us;

    /* Private to the engine. */
    write_set writes;
    int attempts;
    bool innocent;      /* saw a storage failure that an earlier write of its group caused */
    size_t queue_bytes; /* what it holds while queued (its arguments), counted in its queue */
    call *next;
};

call *call_new(void);
void call_free(call *c);

typedef struct engine_config {
    uv_loop_t *loop;
    const char *db_url;
    const schema *schema;
    const registry *registry;
    int reader_threads; /* 0 = 2 */
} engine_config;

/* Opens the store (applying the schema; report says what changed), starts the
 * threads. */
int engine_open(const engine_config *cfg, engine **out, char report[STORE_REPORT_BYTES_MAX],
                err_t *e);
/* Finishes every submitted call, stops the threads, closes the store. The
 * loop must still run afterwards long enough to close the engine's handles
 * (engine_close runs it itself). */
void engine_close(engine *en);

/* Queues a call. Returns 0 (done will be called later, never before this
 * returns), or ERR_BUSY when the queue is full (done is not called). */
int engine_submit(engine *en, call *c);
/* The checks engine_submit makes before queueing c (permission, argument
 * validation): 0, or c->rc and c->err say why. */
int engine_check(engine *en, call *c);
/* Submits c as a query batch: its c->batch queries (each checked already
 * with engine_check) run on one snapshot — but those with rc set, refused
 * before running, are skipped; done is called once, for c. */
int engine_submit_batch(engine *en, call *c);

/* The engine's bounded structures, as (name, bytes held, bound) — the
 * queues of calls and the commit group in progress — for /metrics. */
void engine_bounded(engine *en,
                    void (*add)(void *data, const char *name, size_t bytes, size_t bytes_max),
                    void *data);

/* Commit listeners, called on the loop in commit order, after the done
 * callbacks of the commit's calls. */
typedef void (*engine_commit_cb)(void *data, uint64_t ts, const write_set *writes);
void engine_on_commit(engine *en, engine_commit_cb cb, void *data);

/* The newest commit timestamp the loop has been told about. */
/* The newest snapshot or commit timestamp a finished call was answered with
 * (what some caller has seen). */
uint64_t engine_answered_ts(const engine *en);
uint64_t engine_last_ts(const engine *en);
/* Makes sure future commit timestamps exceed ts (a client saw ts before a
 * restart, or another node committed it). */
void engine_bump_ts(engine *en, uint64_t ts);

/* A deployment variable as the loop sees it: stored value, else process
 * environment, else NULL. Valid until the next commit that changes it. */
const char *engine_env(const engine *en, const char *name);

/* Runs the (admin, argument-less) function `path` every interval_ms. */
int engine_every(engine *en, const char *path, uint64_t interval_ms);

/* The deployment's URL as clients reach it ("http://127.0.0.1:3210", no
 * trailing '/'), from which functions build file URLs (ctx_public_url). Set
 * once by the server after it listens, before the loop runs. */
#define ENGINE_PUBLIC_URL_BYTES_MAX 512
void engine_set_public_url(engine *en, const char *url);
const char *engine_public_url(const engine *en);

const schema *engine_schema(const engine *en);
const registry *engine_registry(const engine *en);
store *engine_store(engine *en);

/* Runs a function synchronously on the caller's own connection (command-line
 * tools without a server: verify). Not for the server. */
int engine_run_local(store_conn *conn, const schema *s, const fn_def *fn, const json_t *args,
                     json_t **result, err_t *e);

#endif
