/*
 * calls.c — how calls travel: their lifecycle, engine_submit (checks, then
 * the queue of the storage thread or of the readers), the threads waiting
 * for work, and the completions — finished calls and commits — back to the
 * loop, which answers the calls and hands commits to the listeners (through
 * en->order_commit first when other processes share the database).
 * Below engine.c, writer.c, reader.c and remote.c, which all use it; it
 * calls none of them.
 * Thread: engine_submit, completions and listeners on the event loop; the
 * queues and engine_complete_* from any thread.
 */
#include "engine/engine_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "base/memory.h"

call *call_new(void)
{
    call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    err_init(&c->err);
    read_set_init(&c->reads);
    write_set_init(&c->writes);
    c->request_id = -1;
    return c;
}

void call_free(call *c)
{
    if (!c) return;
    json_decref(c->args);
    json_decref(c->identity);
    free(c->session_id);
    free(c->journal_in);
    err_clear(&c->err);
    json_decref(c->result);
    json_decref(c->log_lines);
    free(c->journal_out);
    read_set_free(&c->reads);
    write_set_free(&c->writes);
    for (int i = 0; i < c->n_batch; i++)
        call_free(c->batch[i]);
    free(c->batch);
    free(c);
}

void engine_wait_for_work(uv_cond_t *cond, uv_mutex_t *lock, const int *queue_len,
                          const bool *stopping, store_conn *conn)
{
    bool released = false;
    while (*queue_len == 0 && !*stopping) {
        if (released) {
            uv_cond_wait(cond, lock);
            continue;
        }
        int rc = uv_cond_timedwait(cond, lock, (uint64_t)ENGINE_IDLE_RELEASE_MS * 1000000u);
        if (rc == UV_ETIMEDOUT && *queue_len == 0 && !*stopping) {
            uv_mutex_unlock(lock);
            store_release_memory(conn);
            memory_trim_now();
            uv_mutex_lock(lock);
            released = true;
        }
    }
}

/* --- queues ------------------------------------------------------------------ */

void call_queue_push(call_queue *q, call *c)
{
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->len++;
    q->bytes += c->queue_bytes;
}

void call_queue_push_front(call_queue *q, call *c)
{
    c->next = q->head;
    q->head = c;
    if (!q->tail) q->tail = c;
    q->len++;
    q->bytes += c->queue_bytes;
}

call *call_queue_pop(call_queue *q)
{
    call *c = q->head;
    if (!c) return NULL;
    q->head = c->next;
    if (!q->head) q->tail = NULL;
    q->len--;
    q->bytes -= c->queue_bytes;
    c->next = NULL;
    return c;
}

/* --- completions: worker threads → loop ----------------------------------------- */

static void completion_push(engine *en, completion *item)
{
    uv_mutex_lock(&en->cq_lock);
    item->next = NULL;
    if (en->cq_tail)
        en->cq_tail->next = item;
    else
        en->cq_head = item;
    en->cq_tail = item;
    uv_mutex_unlock(&en->cq_lock);
    uv_async_send(&en->async);
}

void engine_complete_call(engine *en, call *c)
{
    completion *item = calloc(1, sizeof *item);
    ASSERT(item);
    c->finished_us = clock_mono_us();
    item->call = c;
    completion_push(en, item);
}

void engine_complete_commit(engine *en, uint64_t ts, write_set *writes)
{
    completion *item = calloc(1, sizeof *item);
    ASSERT(item);
    item->is_commit = true;
    item->ts = ts;
    item->writes = *writes;
    write_set_init(writes);
    completion_push(en, item);
}

void engine_process_commit(engine *en, uint64_t ts, write_set *writes, bool from_elsewhere)
{
    if (ts > en->last_ts_loop) en->last_ts_loop = ts;
    if (from_elsewhere)
        engine_bump_ts(en, ts);
    else
        engine_env_apply(en, writes);
    for (int i = 0; i < en->n_listeners; i++)
        en->listeners[i].cb(en->listeners[i].data, ts, writes);
    write_set_free(writes);
}

void engine_process_completions(engine *en)
{
    uv_mutex_lock(&en->cq_lock);
    completion *item = en->cq_head;
    en->cq_head = en->cq_tail = NULL;
    uv_mutex_unlock(&en->cq_lock);
    while (item) {
        completion *next = item->next;
        if (item->is_commit && en->order_commit) {
            en->order_commit(en, item->ts, &item->writes); /* in the database's order */
        } else if (item->is_commit) {
            engine_process_commit(en, item->ts, &item->writes, false);
        } else {
            en->in_flight--;
            call *c = item->call;
            /* The newest state any caller has been shown: the query cache
             * answers nobody with an older one. */
            if ((c->rc == 0 || err_is_application(c->rc)) && c->ts > en->answered_ts)
                en->answered_ts = c->ts;
            c->done(c);
        }
        free(item);
        item = next;
    }
}

void engine_on_async(uv_async_t *h)
{
    engine_process_completions(h->data);
}

/* --- submitting ------------------------------------------------------------------ */

static int check_permission(const call *c)
{
    if (c->worker && !c->admin) {
        if (c->fn->worker) return 0;
        return err_app((err_t *)&c->err, ERR_FORBIDDEN, NULL,
                       "%s is not for the worker key: it may only claim, heartbeat, complete and "
                       "fail runs, read runs:queue and upload files",
                       c->fn->path);
    }
    if (c->fn->visibility == FN_PUBLIC || c->admin) return 0;
    return err_app((err_t *)&c->err, ERR_FORBIDDEN, NULL,
                   "%s is an internal function: it needs the admin key", c->fn->path);
}

int engine_check(engine *en, call *c)
{
    ASSERT(c->fn);
    if (!c->args) c->args = json_object();
    int rc = check_permission(c);
    if (rc) return c->rc = rc;
    rc = validate(c->fn->args, c->args, "argument", en->schema, &c->err);
    if (rc) {
        if (c->err.code == ERR_INVALID_ARGUMENT && !c->err.data) {
            char msg[ERR_MSG_BYTES_MAX];
            snprintf(msg, sizeof msg, "%s", c->err.msg);
            err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "%s", msg);
        }
        return c->rc = rc;
    }
    return 0;
}

/* The function a query batch is submitted as: never run itself (the reader
 * runs the batch's queries instead). */
static int batch_impl(ctx *x, const json_t *args, json_t **result)
{
    (void)x;
    (void)args;
    (void)result;
    ASSERT(!"a query batch runs its queries, not this");
    return ERR_INTERNAL;
}

static const fn_def batch_fn = {
    .path = "(query batch)", .kind = FN_QUERY, .args = &v_no_args, .impl = batch_impl};

int engine_submit_batch(engine *en, call *c)
{
    ASSERT(c->n_batch > 0 && !c->fn);
    for (int i = 0; i < c->n_batch; i++)
        ASSERT(c->batch[i]->rc || (c->batch[i]->fn && c->batch[i]->fn->kind == FN_QUERY));
    c->fn = &batch_fn;
    return engine_submit(en, c);
}

/* A call about to cross to another thread gets an identity of its own: the
 * one it came with is shared with its session or request, which the loop
 * keeps using, and a jansson value must not be referenced from two threads
 * at once (its counts are atomic, the values around them are not). Its
 * arguments are its own already (decoded for it, or copied by subs.c). */
static void own_identity(call *c)
{
    if (!c->identity) return;
    json_t *copy = json_deep_copy(c->identity);
    json_decref(c->identity);
    c->identity = copy;
}

int engine_submit(engine *en, call *c)
{
    ASSERT(c->fn && c->done);
    int rc = engine_check(en, c);
    if (rc) return rc;
    own_identity(c);
    for (int i = 0; i < c->n_batch; i++)
        own_identity(c->batch[i]);
    c->submitted_us = clock_mono_us();
    bool is_query = c->fn->kind == FN_QUERY;
    call_queue *q = is_query ? &en->read_queue : &en->write_queue;
    uv_mutex_t *lock = is_query ? &en->rq_lock : &en->wq_lock;
    uv_cond_t *cond = is_query ? &en->rq_cond : &en->wq_cond;
    int max = is_query ? LIMIT_READ_QUEUE_MAX : LIMIT_WRITE_QUEUE_MAX;
    size_t bytes_max = is_query ? LIMIT_READ_QUEUE_BYTES_MAX : LIMIT_WRITE_QUEUE_BYTES_MAX;
    c->queue_bytes = sizeof *c + ctx_json_bytes(c->args);
    for (int i = 0; i < c->n_batch; i++)
        c->queue_bytes += sizeof *c + ctx_json_bytes(c->batch[i]->args);
    uv_mutex_lock(lock);
    if (q->len >= max) {
        uv_mutex_unlock(lock);
        return c->rc = err_set(&c->err, ERR_BUSY,
                               "Server busy: %d %s calls are already waiting (the limit)", max,
                               is_query ? "query" : "mutation");
    }
    if (q->len > 0 && q->bytes + c->queue_bytes > bytes_max) {
        uv_mutex_unlock(lock);
        return c->rc = err_set(&c->err, ERR_BUSY,
                               "Server busy: %zu MiB of %s calls are already waiting (the limit)",
                               bytes_max >> 20, is_query ? "query" : "mutation");
    }
    call_queue_push(q, c);
    uv_cond_signal(cond);
    uv_mutex_unlock(lock);
    en->in_flight++;
    return 0;
}

void engine_bump_ts(engine *en, uint64_t ts)
{
    uint64_t cur = atomic_load(&en->ts_floor);
    while (ts > cur && !atomic_compare_exchange_weak(&en->ts_floor, &cur, ts)) {
    }
}
