/*
 * remote.c — commits of other processes sharing the database (ARCHITECTURE
 * "Scale-out"), and the glue that reports every commit, this process's
 * own included, to the commit listeners in the database's commit order
 * (the rules are in commit_order.h).
 *
 * Each committing group sends a commit notice (notice.h) inside its
 * transaction; the store delivers it to every process's listener after the
 * commit, in commit order. This file watches the listener's socket on the
 * loop, decodes the notices, feeds them and the storage thread's own commit
 * records to the commit order, and reports what the order lets through with
 * engine_process_commit. Two things it does for the order:
 *   - reading the deployment variables again (a system query on a reader
 *     thread) when another process's commit touched them, before that
 *     commit is reported, so that the listeners (auth configuration) see the
 *     new values; the same query gives the timestamp of a commit announced
 *     without a notice (an import: the store's empty payload);
 *   - listening again when the listener's connection is lost: off the loop,
 *     with a growing delay; then it reads the newest commit timestamp X and
 *     reports one commit at X that touches everything (commits in the gap
 *     are unknown), after which every subscription computed before X runs
 *     again. Until then, this process's own commits wait too.
 *
 * Thread: the event loop, except remote_open (the main thread, before the
 * loop runs) and the reconnect, which runs on libuv's thread pool.
 */
#include "engine/engine_impl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"
#include "base/log.h"

#define REMOTE_RECONNECT_DELAY_MS_MIN 100
#define REMOTE_RECONNECT_DELAY_MS_MAX 5000
#define REMOTE_ENV_RETRY_MS 200
#define REMOTE_ENV_ATTEMPTS_MAX 25 /* then carry on with the variables as they were */

struct remote {
    engine *en;
    commit_order order;
    store_listener *listener; /* NULL while disconnected */
    uv_poll_t *poll;          /* watches the listener's socket; NULL while disconnected */
    bool started;             /* the timers are initialised */
    bool stopping;
    uv_timer_t reconnect_timer;
    uint64_t reconnect_delay_ms;
    uv_work_t work; /* a reconnect on the thread pool */
    bool working;
    store_listener *dialed; /* the work's result, NULL when it failed */
    uint64_t dialed_ts;     /* the newest commit timestamp after it listened */
    err_t dial_err;
    uv_timer_t env_timer;
    bool env_reloading;
    int env_attempts;
};

/* --- reporting in order ----------------------------------------------------------- */

static void start_env_reload(remote *r);
static void on_env_timer(uv_timer_t *t);

/* Reports the commits at the head of the order that are ready. */
static void report_ready(remote *r)
{
    commit_order_state state;
    while ((state = commit_order_head(&r->order)) == COMMIT_ORDER_READY) {
        uint64_t ts;
        write_set writes;
        bool from_elsewhere;
        commit_order_pop(&r->order, &ts, &writes, &from_elsewhere);
        engine_process_commit(r->en, ts, &writes, from_elsewhere);
    }
    if (state == COMMIT_ORDER_NEEDS_READ && !r->env_reloading) start_env_reload(r);
}

static void on_notice(void *data, const char *payload)
{
    remote *r = data;
    engine *en = r->en;
    notice n;
    err_t e;
    err_init(&e);
    if (notice_decode(en->schema, payload, &n, &e) != 0) {
        /* A commit without a notice of ours (an import: the store's empty
         * payload) or a notice that cannot be read: it touched anything, at
         * a timestamp read from the database before it is reported. */
        if (payload[0])
            log_error("commit notifications: %s", e.msg);
        else
            log_info("commit notifications: a commit from outside the servers (an import?)");
        commit_order_unknown(&r->order, en->last_ts_loop);
    } else if (strcmp(n.node_id, en->node_id) == 0) {
        commit_order_own_notice(&r->order, n.ts);
        write_set_free(&n.writes); /* the storage thread's own record is exact */
    } else {
        commit_order_remote(&r->order, n.ts, &n.writes);
    }
    err_clear(&e);
}

void remote_local_commit(engine *en, uint64_t ts, write_set *writes)
{
    remote *r = en->remote;
    ASSERT(r);
    if (r->stopping) {
        engine_process_commit(en, ts, writes, false);
        return;
    }
    commit_order_local(&r->order, ts, writes);
    report_ready(r);
}

/* --- deployment variables --------------------------------------------------------- */

/* The stored deployment variables as one object, read on a reader thread. */
static int env_snapshot(ctx *x, const json_t *args, json_t **result)
{
    (void)args;
    err_t e;
    err_init(&e);
    int rc = engine_env_scan(x->conn, x->schema, result, &e);
    if (rc) {
        ctx_fail(x, rc, NULL, "%s", e.msg);
        err_clear(&e);
    }
    ctx_own(x, *result);
    return rc;
}

static const fn_def env_snapshot_fn = {
    .path = "_system:envSnapshot",
    .kind = FN_QUERY,
    .visibility = FN_SYSTEM,
    .args = &v_no_args,
    .impl = env_snapshot,
    .doc = "The stored deployment variables (after another process changed them).",
};

/* The variables were read (or reading them was given up) at a snapshot
 * whose newest commit is snapshot_ts (0: unknown). */
static void env_reload_finished(remote *r, uint64_t snapshot_ts)
{
    r->env_attempts = 0;
    if (commit_order_head(&r->order) == COMMIT_ORDER_NEEDS_READ)
        commit_order_head_read(&r->order, snapshot_ts);
    report_ready(r);
}

static void on_env_reload_done(call *c)
{
    remote *r = c->data;
    engine *en = r->en;
    r->env_reloading = false;
    if (r->stopping) {
        call_free(c);
        return;
    }
    if (c->rc == 0 && json_is_object(c->result)) {
        json_decref(en->env);
        en->env = json_incref(c->result);
        log_info("deployment variables read again after another process's commit");
        env_reload_finished(r, c->ts);
    } else if (++r->env_attempts >= REMOTE_ENV_ATTEMPTS_MAX) {
        log_error("deployment variables changed by another process, but reading them failed "
                  "%d times (%s): carrying on with the values as they were",
                  r->env_attempts, c->err.msg);
        env_reload_finished(r, 0);
    } else {
        uv_timer_start(&r->env_timer, on_env_timer, REMOTE_ENV_RETRY_MS, 0);
    }
    call_free(c);
}

static void start_env_reload(remote *r)
{
    if (r->stopping || r->env_reloading) return;
    call *c = call_new();
    ASSERT(c && "out of memory reading the deployment variables");
    c->fn = &env_snapshot_fn;
    c->admin = true;
    c->done = on_env_reload_done;
    c->data = r;
    r->env_reloading = true;
    if (engine_submit(r->en, c) == 0) return;
    /* The read queue is full: done is not called; try again shortly. */
    r->env_reloading = false;
    call_free(c);
    uv_timer_start(&r->env_timer, on_env_timer, REMOTE_ENV_RETRY_MS, 0);
}

static void on_env_timer(uv_timer_t *t)
{
    start_env_reload(t->data);
}

/* --- the listener ------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    remote *r = h->data;
    r->en->open_handles--;
    if (h->type == UV_POLL) free(h);
}

static void schedule_reconnect(remote *r);

static void close_listener(remote *r)
{
    if (r->poll) {
        uv_poll_stop(r->poll);
        uv_close((uv_handle_t *)r->poll, on_handle_closed);
        r->poll = NULL;
    }
    store_listener_close(r->listener);
    r->listener = NULL;
}

static void read_notices(remote *r)
{
    err_t e;
    err_init(&e);
    int rc = store_listener_drain(r->listener, on_notice, r, &e);
    report_ready(r);
    if (rc) {
        log_warn("commit notifications lost (%s): listening again; until then this process's "
                 "subscriptions wait",
                 e.msg);
        close_listener(r);
        r->reconnect_delay_ms = REMOTE_RECONNECT_DELAY_MS_MIN;
        schedule_reconnect(r);
    }
    err_clear(&e);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    remote *r = h->data;
    if (status < 0) log_warn("commit notifications: polling failed: %s", uv_strerror(status));
    read_notices(r); /* a failed poll shows as a failed read */
}

/* Watches l's socket and reads what it already holds. */
static void install_listener(remote *r, store_listener *l)
{
    ASSERT(!r->listener && !r->poll);
    r->listener = l;
    r->poll = malloc(sizeof *r->poll);
    ASSERT(r->poll && "out of memory watching the listener");
    int rc = uv_poll_init(r->en->loop, r->poll, store_listener_fd(l));
    ASSERT(rc == 0 && "uv_poll_init on the listener's socket");
    (void)rc;
    r->poll->data = r;
    r->en->open_handles++;
    uv_poll_start(r->poll, UV_READABLE, on_poll);
    read_notices(r);
}

/* Thread pool: connect, listen, then read the newest commit timestamp. */
static void reconnect_work(uv_work_t *w)
{
    remote *r = w->data;
    store_listener *l = NULL;
    char *ts_text = NULL;
    int rc = store_listener_open(r->en->st, &l, &r->dial_err);
    if (rc == 0) rc = store_listener_meta_get(l, "ts", &ts_text, &r->dial_err);
    if (rc) {
        store_listener_close(l);
        l = NULL;
    }
    r->dialed = l;
    r->dialed_ts = ts_text ? strtoull(ts_text, NULL, 10) : 0;
    free(ts_text);
}

static void on_reconnected(uv_work_t *w, int status)
{
    remote *r = w->data;
    r->working = false;
    r->en->open_handles--;
    store_listener *l = r->dialed;
    r->dialed = NULL;
    if (r->stopping || status != 0) {
        store_listener_close(l);
    } else if (!l) {
        log_warn("commit notifications: %s; trying again in %" PRIu64 " ms", r->dial_err.msg,
                 r->reconnect_delay_ms);
        schedule_reconnect(r);
        r->reconnect_delay_ms *= 2;
        if (r->reconnect_delay_ms > REMOTE_RECONNECT_DELAY_MS_MAX)
            r->reconnect_delay_ms = REMOTE_RECONNECT_DELAY_MS_MAX;
    } else {
        log_info("commit notifications: listening again; every subscription runs again "
                 "(commits up to %" PRIu64 " were not seen)",
                 r->dialed_ts);
        commit_order_resync(&r->order, r->dialed_ts);
        report_ready(r);
        install_listener(r, l);
    }
    err_clear(&r->dial_err);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    remote *r = t->data;
    if (r->stopping || r->working) return;
    r->working = true;
    r->en->open_handles++;
    err_init(&r->dial_err);
    r->work.data = r;
    uv_queue_work(r->en->loop, &r->work, reconnect_work, on_reconnected);
}

static void schedule_reconnect(remote *r)
{
    if (r->stopping || r->working) return;
    uv_timer_start(&r->reconnect_timer, on_reconnect_timer, r->reconnect_delay_ms, 0);
}

/* --- life cycle ----------------------------------------------------------------------- */

int remote_open(engine *en, err_t *e)
{
    ASSERT(!en->remote);
    if (!store_notifies(en->st)) return 0;
    remote *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, ERR_NOMEM, "out of memory");
    r->en = en;
    err_init(&r->dial_err);
    int rc = store_listener_open(en->st, &r->listener, e);
    if (rc) {
        free(r);
        return rc;
    }
    en->remote = r;
    return 0;
}

void remote_start(engine *en)
{
    remote *r = en->remote;
    if (!r) return;
    commit_order_init(&r->order, en->last_ts_loop); /* read after the listener listened */
    r->reconnect_delay_ms = REMOTE_RECONNECT_DELAY_MS_MIN;
    uv_timer_init(en->loop, &r->reconnect_timer);
    uv_timer_init(en->loop, &r->env_timer);
    r->reconnect_timer.data = r->env_timer.data = r;
    en->open_handles += 2;
    r->started = true;
    store_listener *l = r->listener;
    r->listener = NULL;
    install_listener(r, l);
}

void remote_stop(engine *en)
{
    remote *r = en->remote;
    if (!r || r->stopping) return;
    r->stopping = true;
    close_listener(r);
    if (r->started) {
        uv_close((uv_handle_t *)&r->reconnect_timer, on_handle_closed);
        uv_close((uv_handle_t *)&r->env_timer, on_handle_closed);
    }
    if (r->working) uv_cancel((uv_req_t *)&r->work);
    /* Report what is queued; own commits still on their way from the
     * storage thread are reported directly when they come. */
    uint64_t ts;
    write_set writes;
    bool from_elsewhere;
    while (commit_order_pop_any(&r->order, &ts, &writes, &from_elsewhere))
        engine_process_commit(en, ts, &writes, from_elsewhere);
}

void remote_free(engine *en)
{
    remote *r = en->remote;
    if (!r) return;
    ASSERT(!r->working && !r->poll);
    store_listener_close(r->listener);
    commit_order_free(&r->order);
    err_clear(&r->dial_err);
    free(r);
    en->remote = NULL;
}
