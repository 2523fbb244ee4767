/*
 * subs.h — subscriptions: shared, reactive query instances.
 *
 * A subscribed query is one instance per (function, arguments, identity,
 * pinned page end): identical subscriptions share one execution and one
 * result. Each result remembers the snapshot timestamp it was computed at and
 * the index ranges it read. When a commit is reported (engine_on_commit), an
 * instance whose result predates the commit and whose read set intersects
 * the commit's write set is invalidated and re-run; every other instance
 * stays valid. A result computed at snapshot S is valid at every timestamp
 * from S up to the next commit that invalidates it, so once the manager has
 * processed commits up to P ("processed_ts"), every fresh result is valid at
 * P, and a client can be shown all of its queries at P as one consistent
 * state.
 *
 * Listeners (sync sessions) are told whenever an instance they hold gets a
 * new result, and after each processed commit.
 *
 * The same table is the query cache. An instance whose last listener left,
 * and the result of an HTTP query or batch entry (subs_cache_store), stay
 * as cached entries: no listeners, not re-run, dropped by the first commit
 * that writes into what they read, and evicted least recently used past
 * the cache's byte bound. An HTTP query finds its answer there
 * (subs_cache_lookup) without a reader thread or the store; a session that
 * subscribes to a cached query gets its result at once. Admin calls are
 * never cached.
 * Thread: the event-loop thread only.
 */
#ifndef DOJO_ENGINE_SUBS_H
#define DOJO_ENGINE_SUBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

typedef struct subs subs;
typedef struct sub_query sub_query;

/* Called when q has a new result (changed = it differs from the previous
 * one). */
typedef void (*sub_result_cb)(void *listener, sub_query *q, bool changed);

typedef struct sub_listener {
    sub_result_cb cb;
    void *listener;
} sub_listener;

struct sub_query {
    /* Identity of the instance (immutable). */
    char *key;
    const fn_def *fn;
    json_t *args, *identity;
    bool admin;
    bool worker;   /* the worker key */
    char *journal; /* pinned end of page; set by the first run of a paginated query */

    /* The latest result (valid when has_result). */
    bool has_result;
    int rc;        /* 0, or the function's error code */
    json_t *value; /* result, or NULL (always NULL when the manager encodes results) */
    err_t err;
    json_t *log_lines;
    uint64_t result_ts; /* snapshot the result was computed at */
    uint64_t version;   /* increases whenever the result changes */
    read_set reads;
    /* The result as the sync layer sends it, encoded once per version by the
     * manager's encoder (subs_set_encoder) and shared by every session
     * pushing it; the instance holds one reference. */
    struct rcbuf *wire_value;
    uint64_t wire_value_version;

    /* Scheduling. */
    uint64_t invalidated_ts; /* newest commit that changed what it read */
    bool running;
    int notifying;           /* listeners are being told: freeing waits */
    bool retry;              /* run again at retry_at_ms: the engine was overloaded, or the
                                run failed for a passing reason (storage) */
    uint64_t retry_at_ms;    /* monotonic clock */
    uint32_t retry_delay_ms; /* the last wait; doubles while failures go on, 0 after a result */
    uint32_t table_mask[8];  /* tables its read set touches (by table number) */

    /* The query cache: an instance without listeners kept for its result. */
    bool cached;
    struct sub_query *lru_prev, *lru_next; /* while cached; most recently used first */
    size_t cache_bytes;                    /* its estimated heap bytes while cached */
    struct rcbuf *http_body[2];            /* the HTTP answer per wire format, made once */
    uint64_t http_body_version[2];         /* the result version each was made from */

    /* Holders. */
    sub_listener *listeners;
    int n_listeners, cap_listeners;
    struct sub_query *hash_next;
    subs *owner;
};

subs *subs_new(engine *en);
/* Frees every instance; in-flight runs are discarded when they return. */
void subs_free(subs *s);

/* Finds or creates the instance for these inputs and adds the listener.
 * References to args and identity are taken (not stolen). journal may be NULL.
 * A new instance is run at once. */
sub_query *subs_subscribe(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                          bool admin, const char *journal, sub_result_cb cb, void *listener);
/* The same for a caller with the worker key (api.md §10). */
sub_query *subs_subscribe_worker(subs *s, const fn_def *fn, const json_t *args, const char *journal,
                                 sub_result_cb cb, void *listener);
/* Removes the listener; the instance is freed when it has none left. */
void subs_unsubscribe(subs *s, sub_query *q, void *listener);

/* True when q's result is valid at subs_processed_ts(). */
bool sub_query_fresh(const subs *s, const sub_query *q);
uint64_t subs_processed_ts(const subs *s);

/* Called after every processed commit (after invalidation was scheduled). */
void subs_on_advance(subs *s, void (*cb)(void *data), void *data);

/* The engine_on_commit listener; register it with
 * engine_on_commit(en, subs_commit, s). */
void subs_commit(void *data, uint64_t ts, const write_set *writes);

/* Runs again the instances whose run failed for a passing reason (overload,
 * storage) once their wait is over; call it about once a second. Runs that
 * finish do the same. */
void subs_retry_due(subs *s);

/* Whether no commit in (from, to] wrote into what reads covered, as far as
 * the history of recent commits tells (false when it cannot tell: to not
 * yet processed, or from older than the history). */
bool subs_unchanged_between(const subs *s, uint64_t from, uint64_t to, const read_set *reads);

/* --- the query cache --------------------------------------------------------------- */

/* Keeps every result encoded by encode (a malloc'd text; the sync layer's
 * wire encoding) instead of as a value: compared as text, pushed from it,
 * a fraction of the value's memory. Without one, values are kept. */
void subs_set_encoder(subs *s, char *(*encode)(const json_t *value));
/* Caches at most bytes_max bytes of results without listeners (0: none). */
void subs_cache_configure(subs *s, size_t bytes_max);
/* The instance whose result answers (fn, args, identity, admin) now, or
 * NULL (counted as a hit or a miss). A hit is a result valid at the
 * processed timestamp, which is at least answered_ts — the newest snapshot
 * or commit any caller has been answered with — so nobody is ever shown
 * an answer older than one they saw. Used on the loop, at once: the
 * instance may go away on the next commit. */
sub_query *subs_cache_lookup(subs *s, const fn_def *fn, const json_t *args, const json_t *identity,
                             bool admin, bool worker, uint64_t answered_ts);
/* Keeps the outcome of a finished query call (run with record_reads) as a
 * cached entry, when it is a result or an application error and no commit
 * processed since its snapshot wrote into what it read. References are
 * taken; the call's read set is moved out. */
void subs_cache_store(subs *s, call *c);
/* Keeps body (reference stolen) as q's HTTP answer in format f (0 json, 1
 * convex-encoded) and counts its bytes; q stays (it is not evicted for it). */
void subs_cache_set_body(subs *s, sub_query *q, int f, struct rcbuf *body);

typedef struct subs_cache_stats {
    uint64_t hits, misses, evictions, invalidations;
    size_t entries, bytes, bytes_max;
} subs_cache_stats;
void subs_cache_stats_get(const subs *s, subs_cache_stats *out);

int subs_instance_count(const subs *s);
/* Bytes held by the history of recent commits (≤ LIMIT_COMMIT_HISTORY_BYTES_MAX). */
size_t subs_history_bytes(const subs *s);
/* Runs started since the manager was created (tests and metrics). */
uint64_t subs_runs_started(const subs *s);

#endif
