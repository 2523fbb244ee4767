/*
 * writer.c — the storage thread: owns the writer connection and runs the
 * mutations of the write queue in groups. One group is one database
 * transaction with a savepoint per mutation: a mutation that fails (an
 * application error) is rolled back alone, the others commit together with
 * one durable commit. A storage failure inside the group rolls the whole
 * group back; the mutation that hit it fails, the others are run again once
 * in the next group (their writes were lost with the rollback).
 *
 * Each committing group gets one commit timestamp, persisted in the same
 * transaction (meta "ts"), so timestamps keep increasing across restarts.
 * When the store notifies (PostgreSQL), the group also sends its commit
 * notice (notice.h) inside the transaction, for the other processes sharing
 * the database.
 * WebSocket mutations carry (sessionId, requestId); their outcome is written
 * to _session_requests in their own savepoint, and a mutation that is already
 * recorded is answered from the record instead of being run again.
 * Thread: the storage thread (writer_main); writer_load_clock at open.
 */
#include "engine/engine_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "base/log.h"
#include "engine/system_tables.h"

#define WRITER_ATTEMPTS_MAX 2

static int meta_u64(store_conn *conn, const char *key, uint64_t *out, err_t *e)
{
    char *text = NULL;
    int rc = store_meta_get(conn, key, &text, e);
    *out = text ? strtoull(text, NULL, 10) : 0;
    free(text);
    return rc;
}

int writer_load_clock(engine *en, err_t *e)
{
    int rc = store_begin(en->writer_conn, false, e);
    uint64_t ts = 0, ct_us = 0;
    if (rc == 0) rc = meta_u64(en->writer_conn, "ts", &ts, e);
    if (rc == 0) rc = meta_u64(en->writer_conn, "creation_time_us", &ct_us, e);
    store_rollback(en->writer_conn);
    en->last_ts_writer = ts;
    en->creation_clock = (double)ct_us / 1000.0;
    return rc;
}

static uint64_t next_ts(engine *en)
{
    uint64_t t = clock_now_ns();
    if (t <= en->last_ts_writer) t = en->last_ts_writer + 1;
    uint64_t floor = atomic_load(&en->ts_floor);
    if (t <= floor) t = floor + 1;
    ASSERT(t > en->last_ts_writer && t > floor); /* commit timestamps never go back */
    return t;
}

/* Failures that poison the group transaction (ERR_BUSY: a serialization
 * failure or lock timeout on PostgreSQL) — the group is rolled back and its
 * innocent mutations run again. */
static bool is_storage_failure(int rc)
{
    return rc == ERR_STORAGE || rc == ERR_NOMEM || rc == ERR_IO || rc == ERR_INTERNAL ||
           rc == ERR_BUSY;
}

/* Other processes may share the database (PostgreSQL): with the write lock
 * held, continue from the newest clocks any of them committed. */
static int catch_up_clocks(engine *en, err_t *e)
{
    uint64_t ts = 0, ct_us = 0;
    int rc = meta_u64(en->writer_conn, "ts", &ts, e);
    if (rc == 0) rc = meta_u64(en->writer_conn, "creation_time_us", &ct_us, e);
    if (rc) return rc;
    if (ts > en->last_ts_writer) en->last_ts_writer = ts;
    double ct = (double)ct_us / 1000.0;
    if (ct > en->creation_clock) en->creation_clock = ct;
    return 0;
}

/* Who is calling, as the exactly-once record keeps it: the token's
 * tokenIdentifier, "admin" (acting as one, "admin|" + it), "worker" or "anonymous". */
static void caller_of(const call *c, char *out, size_t out_bytes)
{
    const char *tid = json_string_value(json_object_get(c->identity, "tokenIdentifier"));
    if (c->admin)
        snprintf(out, out_bytes, "admin%s%s", tid ? "|" : "", tid ? tid : "");
    else if (c->worker)
        snprintf(out, out_bytes, "worker");
    else
        snprintf(out, out_bytes, "%s", tid ? tid : "anonymous");
}

/* Answers c from its exactly-once record when there is one. A record of
 * another caller or function is not an answer: the (sessionId, requestId)
 * was reused — a client that replays someone else's session id must learn
 * nothing — and the call fails without running. */
static int try_replay(engine *en, call *c, bool *replayed)
{
    *replayed = false;
    ctx x;
    ctx_init(&x, en->writer_conn, en->schema, false);
    json_t *eq = ctx_own(&x, json_pack("[sI]", c->session_id, (json_int_t)c->request_id));
    db_query q = {.table = SYSTEM_TABLE_SESSION_REQUESTS, .index = "by_session_request", .eq = eq};
    json_t *row = NULL;
    int rc = db_query_first(&x, &q, &row);
    char caller[LIMIT_JWT_BYTES_MAX];
    caller_of(c, caller, sizeof caller);
    const char *row_caller = json_string_value(json_object_get(row, "caller"));
    const char *row_path = json_string_value(json_object_get(row, "udfPath"));
    if (rc) {
        err_move(&c->err, &x.err);
    } else if (row && (!row_caller || strcmp(row_caller, caller) != 0 || !row_path ||
                       strcmp(row_path, c->fn->path) != 0)) {
        rc = err_app(&c->err, ERR_INVALID_ARGUMENT, NULL,
                     "Request %lld of this session was already used for another call; a client "
                     "must not reuse a session id",
                     (long long)c->request_id);
    } else if (row) {
        *replayed = true;
        c->replayed = true;
        c->result = json_incref(json_object_get(row, "result"));
        c->log_lines = json_incref(json_object_get(row, "logLines"));
        c->ts = strtoull(json_string_value(json_object_get(row, "ts")), NULL, 10);
    }
    ctx_release(&x);
    return rc;
}

static int record_outcome(ctx *x, const call *c, uint64_t ts)
{
    char ts_text[24];
    snprintf(ts_text, sizeof ts_text, "%" PRIu64, ts);
    char caller[LIMIT_JWT_BYTES_MAX];
    caller_of(c, caller, sizeof caller);
    json_t *doc = json_pack("{s:s, s:I, s:O, s:O, s:s, s:f, s:s, s:s}", "sessionId", c->session_id,
                            "requestId", (json_int_t)c->request_id, "result", c->result, "logLines",
                            c->log_lines, "ts", ts_text, "expiresAt",
                            x->now_ms + (double)LIMIT_SESSION_REQUEST_RETENTION_MS, "caller",
                            caller, "udfPath", c->fn->path);
    int rc = doc ? db_insert(x, SYSTEM_TABLE_SESSION_REQUESTS, doc, NULL) : ERR_NOMEM;
    json_decref(doc);
    return rc;
}

/* Runs one mutation inside its savepoint. Returns 0, an application error
 * (the mutation is rolled back alone), or a storage failure (the caller rolls
 * the group back). */
static int run_mutation(engine *en, call *c, uint64_t ts, write_set *group_writes)
{
    c->started_us = clock_mono_us();
    if (c->session_id) {
        bool replayed;
        int rc = try_replay(en, c, &replayed);
        if (rc || replayed) return c->rc = rc;
    }
    err_t e;
    err_init(&e);
    int rc = store_savepoint(en->writer_conn, &e);
    if (rc) {
        err_move(&c->err, &e);
        return c->rc = rc;
    }
    ctx x;
    ctx_init(&x, en->writer_conn, en->schema, true);
    x.now_ms = clock_now_ms();
    x.creation_clock = &en->creation_clock;
    x.public_url = en->public_url;
    rc = engine_execute(&x, c);
    if (rc == 0 && c->session_id) {
        rc = record_outcome(&x, c, ts);
        if (rc) err_move(&c->err, &x.err);
    }
    if (rc == 0) rc = store_savepoint_release(en->writer_conn, &c->err);
    if (rc == 0) {
        write_set_append(group_writes, &x.writes);
    } else {
        store_savepoint_rollback(en->writer_conn);
        json_decref(c->result);
        c->result = NULL;
    }
    ctx_release(&x);
    return c->rc = rc;
}

static void reset_for_retry(call *c)
{
    json_decref(c->result);
    json_decref(c->log_lines);
    c->result = c->log_lines = NULL;
    c->rc = 0;
    c->replayed = false;
    err_clear(&c->err);
}

static void requeue_front(engine *en, call_queue *retry)
{
    /* Reverse onto the front so the original order is kept. */
    call *items[LIMIT_COMMIT_GROUP_MAX];
    int n = 0;
    call *c;
    while ((c = call_queue_pop(retry)))
        items[n++] = c;
    uv_mutex_lock(&en->wq_lock);
    for (int i = n - 1; i >= 0; i--)
        call_queue_push_front(&en->write_queue, items[i]);
    uv_mutex_unlock(&en->wq_lock);
}

static void fail_call(call *c, int code, const char *why)
{
    reset_for_retry(c);
    c->rc = err_set(&c->err, code, "%s", why);
}

/* Adds the group's commit notice to its transaction (other processes
 * sharing the database learn of the commit from it; so does this one, to
 * keep its commits in the database's order: remote.c). */
static int send_notice(engine *en, uint64_t ts, const write_set *writes, err_t *e)
{
    char *payload = notice_encode(en->node_id, ts, writes, STORE_NOTIFY_PAYLOAD_BYTES_MAX);
    if (!payload) return err_set(e, ERR_NOMEM, "commit notice: out of memory");
    int rc = store_notify_commit(en->writer_conn, payload, e);
    free(payload);
    return rc;
}

/* Cuts a commit's write set down to the documents' index keys (the
 * deployment variables stay whole, for the loop's copy of them): what
 * subscriptions match and the history of recent commits keeps is then the
 * size of the keys, not of the documents (a 1 MiB workflow saved is a few
 * hundred bytes from here on). Done here, off the loop — and before any
 * call of the group is answered: the documents are shared with the calls'
 * results, which the loop owns once they are handed over. */
static void keep_keys(engine *en, write_set *writes)
{
    write_set_keep_keys(writes, schema_table_by_name(en->schema, SYSTEM_TABLE_ENV));
}

/* After a storage failure seen by c: when it was a deferred write of the
 * group that failed (store_defer_writes), c is innocent: it will run again,
 * and so will the group, without deferring, so that the write that fails
 * fails in its own mutation. Returns whether it was. */
static bool deferred_failure_spares(engine *en, call *c)
{
    if (!store_deferred_failure(en->writer_conn)) return false;
    en->no_defer_next = true;
    if (c) {
        c->innocent = true;
        c->rc = 0;
        err_clear(&c->err);
        c->attempts--; /* its own attempt did not fail */
    }
    return true;
}

/* Reads the caller of every call of the group in one round trip, where a
 * read costs one (store_prefetch): nearly every function starts by finding
 * its caller (the registry's caller_table and caller_index, eq
 * [tokenIdentifier], as app_find_user asks), and with its caller in hand a
 * mutation's writes are all deferred: it runs without waiting for the
 * database. */
static int prefetch_callers(engine *en, call_queue *group, err_t *e)
{
    const registry *reg = en->registry;
    if (!reg->caller_table || !store_prefetches(en->st)) return 0;
    const schema_table *t = schema_table_by_name(en->schema, reg->caller_table);
    const schema_index *ix = t ? schema_index_by_name(t, reg->caller_index) : NULL;
    if (!ix) return 0;
    store_range *ranges = calloc(LIMIT_COMMIT_GROUP_MAX, sizeof *ranges);
    if (!ranges) return 0; /* an optimisation: without it, the reads happen one by one */
    int n = 0;
    for (call *c = group->head; c && n < LIMIT_COMMIT_GROUP_MAX; c = c->next) {
        const char *tid = json_string_value(json_object_get(c->identity, "tokenIdentifier"));
        bool seen = !tid;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(json_string_value(json_array_get(ranges[i].lo, 0)), tid) == 0;
        if (seen) continue;
        json_t *eq = json_pack("[s]", tid);
        if (!eq) break;
        ranges[n++] = (store_range){.table = t,
                                    .index = ix,
                                    .lo = eq,
                                    .hi = eq,
                                    .lo_inclusive = true,
                                    .hi_inclusive = true,
                                    .limit = 1};
    }
    int rc = store_prefetch(en->writer_conn, ranges, n, e);
    for (int i = 0; i < n; i++)
        json_decref(ranges[i].lo);
    free(ranges);
    return rc;
}

static void run_group(engine *en, call_queue *group)
{
    err_t e;
    err_init(&e);
    call_queue ran = {0}, retry = {0};
    call *c;
    store_defer_writes(en->writer_conn, !en->no_defer_next);
    if (store_begin(en->writer_conn, true, &e) != 0 || catch_up_clocks(en, &e) != 0 ||
        prefetch_callers(en, group, &e) != 0) {
        store_rollback(en->writer_conn);
        log_error("storage: cannot begin a write transaction: %s", e.msg);
        while ((c = call_queue_pop(group))) {
            fail_call(c, ERR_STORAGE, e.msg);
            engine_complete_call(en, c);
        }
        err_clear(&e);
        return;
    }
    uint64_t ts = next_ts(en);
    double clock_before = en->creation_clock;
    write_set writes;
    write_set_init(&writes);
    bool broken = false;
    call_queue later = {0}; /* past the group's bound in bytes: the next group's */
    while ((c = call_queue_pop(group))) {
        if (store_txn_bytes(en->writer_conn) >= LIMIT_COMMIT_GROUP_BYTES_MAX) {
            call_queue_push(&later, c);
            continue;
        }
        c->attempts++;
        if (broken) {
            call_queue_push(&retry, c);
            continue;
        }
        int rc = run_mutation(en, c, ts, &writes);
        atomic_store(&en->group_bytes, store_txn_bytes(en->writer_conn));
        /* A failure of a deferred write breaks the group whatever the call
         * that saw it made of it. */
        if (rc && deferred_failure_spares(en, c))
            broken = true;
        else if (is_storage_failure(rc))
            broken = true;
        call_queue_push(&ran, c);
    }
    bool committed = false, uncertain = false;
    if (!broken && writes.n_recs > 0) {
        char text[24];
        snprintf(text, sizeof text, "%" PRIu64, ts);
        char ct[24];
        snprintf(ct, sizeof ct, "%" PRIu64, (uint64_t)(en->creation_clock * 1000.0) + 1);
        int rc = store_meta_set(en->writer_conn, "ts", text, &e);
        if (rc == 0) rc = store_meta_set(en->writer_conn, "creation_time_us", ct, &e);
        if (rc == 0 && en->notifies) rc = send_notice(en, ts, &writes, &e);
        if (rc == 0) {
            rc = store_commit(en->writer_conn, &e);
            /* A COMMIT that fails (the link lost) may still have committed,
             * and then its notice is on its way — unless a deferred write
             * failed first: then the server skipped the COMMIT. */
            uncertain = rc != 0 && en->notifies && !deferred_failure_spares(en, NULL);
        } else {
            deferred_failure_spares(en, NULL);
        }
        if (rc) {
            log_error("storage: commit failed, %d mutations not written: %s", ran.len, e.msg);
            broken = true;
        } else {
            committed = true;
            en->last_ts_writer = ts;
            en->no_defer_next = false;
        }
    }
    if (!committed) store_rollback(en->writer_conn);
    /* A group has one outcome: committed, or not (maybe uncertain) — never both. */
    ASSERT(!(committed && broken) && !(committed && uncertain));
    ASSERT(!committed || en->last_ts_writer == ts);
    if (committed || uncertain) keep_keys(en, &writes);
    if (broken) {
        en->creation_clock = clock_before > en->creation_clock ? clock_before : en->creation_clock;
        if (uncertain) {
            /* Report it as if it committed: if it did not, a few queries run
             * again for nothing. Later commits take later timestamps. */
            engine_bump_ts(en, ts);
            engine_complete_commit(en, ts, &writes);
        }
        write_set_free(&writes);
    }
    /* Answer the calls that ran. After a rollback, the ones that had
     * succeeded lost their writes: run them again (once) in a new group —
     * but never after a commit whose outcome is unknown: it may have
     * committed, and running them again would apply them twice. */
    while ((c = call_queue_pop(&ran))) {
        /* A resent mutation answered from the record an earlier call of
         * this same group wrote lost that record with the rollback: it is
         * retried like the call that wrote it (which runs first again). */
        if (broken && c->replayed && c->ts == ts) c->replayed = false;
        if (broken && !c->replayed && (c->rc == 0 || is_storage_failure(c->rc))) {
            if (c->attempts < WRITER_ATTEMPTS_MAX && c->rc == 0 && !uncertain) {
                reset_for_retry(c);
                call_queue_push(&retry, c);
                continue;
            }
            if (c->rc == 0)
                fail_call(c, ERR_STORAGE,
                          uncertain ? "the commit's outcome is unknown (the database link was lost)"
                          : e.msg[0] ? e.msg
                                     : "storage failure");
            log_error("storage: %s failed: %s", c->fn->path, c->err.msg);
        }
        if (c->rc == 0 && !c->replayed) c->ts = committed ? ts : en->last_ts_writer;
        engine_complete_call(en, c);
    }
    if (committed) engine_complete_commit(en, ts, &writes);
    while ((c = call_queue_pop(&later)))
        call_queue_push(&retry, c);
    if (retry.len) requeue_front(en, &retry);
    atomic_store(&en->group_bytes, 0);
    atomic_store(&en->read_cache_bytes, store_cache_bytes(en->writer_conn));
    err_clear(&e);
}

void writer_main(void *arg)
{
    engine *en = arg;
    for (;;) {
        call_queue group = {0};
        uv_mutex_lock(&en->wq_lock);
        engine_wait_for_work(&en->wq_cond, &en->wq_lock, &en->write_queue.len, &en->stopping,
                             en->writer_conn);
        if (en->write_queue.len == 0 && en->stopping) {
            uv_mutex_unlock(&en->wq_lock);
            break;
        }
        while (group.len < LIMIT_COMMIT_GROUP_MAX && en->write_queue.len > 0)
            call_queue_push(&group, call_queue_pop(&en->write_queue));
        uv_mutex_unlock(&en->wq_lock);
        run_group(en, &group);
    }
}
