/*
 * engine_impl.h — the engine's private state, shared by the files of the
 * engine: engine.c (open, close, listeners), calls.c (submitting, queues,
 * completions), env.c (deployment variables), writer.c (storage thread),
 * reader.c (reader threads), remote.c (other processes' commits) and
 * execute.c. Dependencies go one way: engine.c over writer.c, reader.c and
 * remote.c, all of them over calls.c and env.c. Nothing outside src/engine/
 * includes it.
 * Thread: see each field's comment.
 */
#ifndef DOJO_ENGINE_ENGINE_IMPL_H
#define DOJO_ENGINE_ENGINE_IMPL_H

#include <stdatomic.h>

#include "engine/commit_order.h"
#include "engine/ctx.h"
#include "engine/engine.h"
#include "engine/notice.h"

#define ENGINE_READERS_MAX 16
#define ENGINE_LISTENERS_MAX 4
#define ENGINE_PERIODIC_MAX 8
/* A storage or reader thread idle this long gives back its connection's
 * caches (store_release_memory). */
#define ENGINE_IDLE_RELEASE_MS 1000

typedef struct call_queue {
    call *head, *tail;
    int len;
    size_t bytes; /* the queued calls' queue_bytes */
} call_queue;

void call_queue_push(call_queue *q, call *c);
void call_queue_push_front(call_queue *q, call *c);
call *call_queue_pop(call_queue *q);

/* A finished call, or a commit record, on its way to the loop. */
typedef struct completion {
    bool is_commit;
    call *call;
    uint64_t ts;
    write_set writes;
    struct completion *next;
} completion;

typedef struct periodic {
    engine *en;
    const fn_def *fn;
    uv_timer_t timer;
    bool busy;
} periodic;

typedef struct remote remote; /* remote.c */

typedef struct reader_arg {
    engine *en;
    store_conn *conn;
} reader_arg;

struct engine {
    uv_loop_t *loop;
    const schema *schema;
    const registry *registry;
    store *st;
    /* This process among those sharing the database: random, set at open. */
    char node_id[NOTICE_NODE_ID_BYTES];
    bool notifies; /* set at open: every commit sends a notice (engine/notice.h) */
    /* Where clients reach the deployment: set once before the loop runs
     * (engine_set_public_url), read by the threads building file URLs. */
    char public_url[ENGINE_PUBLIC_URL_BYTES_MAX];

    /* Storage thread. The queue is guarded by wq_lock. */
    uv_thread_t writer_thread;
    store_conn *writer_conn;
    uv_mutex_t wq_lock;
    uv_cond_t wq_cond;
    call_queue write_queue;
    bool stopping;
    uint64_t last_ts_writer; /* storage thread only (and open) */
    /* Storage thread: run the next group without deferred writes (a
     * deferred write broke the last one: this time failures land on their
     * authors). */
    bool no_defer_next;
    /* Bytes of documents the group in progress has written (a gauge; the
     * storage thread writes it, /metrics reads it). */
    _Atomic size_t group_bytes;
    _Atomic size_t read_cache_bytes; /* the writer's cache of reads after its last group */
    double creation_clock;           /* storage thread only: last _creationTime handed out */
    _Atomic uint64_t ts_floor;       /* any thread: commit timestamps must exceed it */

    /* Reader threads. The queue is guarded by rq_lock. */
    int n_readers;
    uv_thread_t readers[ENGINE_READERS_MAX];
    store_conn *reader_conns[ENGINE_READERS_MAX];
    reader_arg reader_args[ENGINE_READERS_MAX];
    uv_mutex_t rq_lock;
    uv_cond_t rq_cond;
    call_queue read_queue;
    bool readers_stopping;

    /* Completions, guarded by cq_lock; drained on the loop. */
    uv_async_t async;
    uv_mutex_t cq_lock;
    completion *cq_head, *cq_tail;

    /* Loop side. */
    int in_flight;
    int open_handles;
    uint64_t last_ts_loop;
    uint64_t answered_ts; /* newest snapshot or commit a finished call reported (loop) */
    json_t *env;          /* stored deployment variables: name -> value */
    remote *remote;       /* other processes' commits; NULL when the store has none */
    /* Where the loop sends this process's commits before the listeners:
     * remote_local_commit, set by engine_open when remote is; else NULL
     * (straight to engine_process_commit). */
    void (*order_commit)(engine *en, uint64_t ts, write_set *writes);
    struct {
        engine_commit_cb cb;
        void *data;
    } listeners[ENGINE_LISTENERS_MAX];
    int n_listeners;
    periodic periodic[ENGINE_PERIODIC_MAX];
    int n_periodic;
};

/* calls.c: waits on cond (lock held) until *has_work or *stopping; once
 * idle ENGINE_IDLE_RELEASE_MS, gives back conn's caches (store_release_memory,
 * lock released meanwhile), once per idle stretch. */
void engine_wait_for_work(uv_cond_t *cond, uv_mutex_t *lock, const int *queue_len,
                          const bool *stopping, store_conn *conn);
/* writer.c */
int writer_load_clock(engine *en, err_t *e);
void writer_main(void *arg);
/* reader.c */
void reader_main(void *arg);
/* calls.c: hand results to the loop (any thread); the loop's side of it. */
void engine_complete_call(engine *en, call *c);
void engine_complete_commit(engine *en, uint64_t ts, write_set *writes);
void engine_on_async(uv_async_t *h);
void engine_process_completions(engine *en); /* also at close, after the threads ended */
/* calls.c, loop: tells the commit listeners about a commit (writes are
 * consumed). from_elsewhere: another process's, whose write set is a summary
 * (the deployment variables were read again instead of applied). */
void engine_process_commit(engine *en, uint64_t ts, write_set *writes, bool from_elsewhere);
/* env.c: the stored deployment variables as one new object, read inside
 * the caller's transaction on conn; a commit's writes applied to the loop's
 * copy (en->env). */
int engine_env_scan(store_conn *conn, const schema *s, json_t **env_out, err_t *e);
void engine_env_apply(engine *en, const write_set *ws);
/* remote.c. remote_open (main thread, before the clocks are read) starts
 * listening when the store notifies; remote_start (main thread, loop set up)
 * watches the listener on the loop; remote_local_commit (loop) takes this
 * process's commits in their place in the order; remote_stop (loop, at
 * close) reports what is queued and stops; remote_free after the loop
 * closed the handles. */
int remote_open(engine *en, err_t *e);
void remote_start(engine *en);
void remote_local_commit(engine *en, uint64_t ts, write_set *writes);
void remote_stop(engine *en);
void remote_free(engine *en);
/* Runs c's function in x (shared by reader, writer and engine_run_local). */
int engine_execute(ctx *x, call *c);

#endif
