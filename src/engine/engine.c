/*
 * engine.c — the engine object: opening, the queues between the event loop
 * and the worker threads, completions back to the loop, commit listeners,
 * the loop's copy of the deployment variables, periodic system calls.
 * The storage thread lives in writer.c, the reader threads in reader.c, the
 * commits of other processes sharing the database in remote.c (which also
 * puts this process's commits in the database's order before they reach the
 * listeners).
 * Thread: the event loop (engine_submit, completions, listeners, timers);
 * engine_open/engine_close on the main thread.
 */
#include "engine/engine_impl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/ids.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/memory.h"
#include "store/sql_cache.h"
#include "engine/system_tables.h"

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

static void env_apply_writes(engine *en, const write_set *ws)
{
    for (int i = 0; i < ws->n_recs; i++) {
        const write_rec *w = &ws->recs[i];
        if (strcmp(w->table->name, SYSTEM_TABLE_ENV) != 0) continue;
        const json_t *doc = w->new_doc ? w->new_doc : w->old_doc;
        const char *name = json_string_value(json_object_get(doc, "name"));
        if (!name) continue;
        if (w->new_doc)
            json_object_set(en->env, name, json_object_get(w->new_doc, "value"));
        else
            json_object_del(en->env, name);
    }
}

void engine_process_commit(engine *en, uint64_t ts, write_set *writes, bool from_elsewhere)
{
    if (ts > en->last_ts_loop) en->last_ts_loop = ts;
    if (from_elsewhere)
        engine_bump_ts(en, ts);
    else
        env_apply_writes(en, writes);
    for (int i = 0; i < en->n_listeners; i++)
        en->listeners[i].cb(en->listeners[i].data, ts, writes);
    write_set_free(writes);
}

static void process_completions(engine *en)
{
    uv_mutex_lock(&en->cq_lock);
    completion *item = en->cq_head;
    en->cq_head = en->cq_tail = NULL;
    uv_mutex_unlock(&en->cq_lock);
    while (item) {
        completion *next = item->next;
        if (item->is_commit && en->remote) {
            remote_local_commit(en, item->ts, &item->writes); /* in the database's order */
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

static void on_async(uv_async_t *h)
{
    process_completions(h->data);
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

void engine_bounded(engine *en,
                    void (*add)(void *data, const char *name, size_t bytes, size_t bytes_max),
                    void *data)
{
    uv_mutex_lock(&en->wq_lock);
    size_t writes = en->write_queue.bytes;
    uv_mutex_unlock(&en->wq_lock);
    uv_mutex_lock(&en->rq_lock);
    size_t reads = en->read_queue.bytes;
    uv_mutex_unlock(&en->rq_lock);
    add(data, "write_queue", writes, LIMIT_WRITE_QUEUE_BYTES_MAX);
    add(data, "read_queue", reads, LIMIT_READ_QUEUE_BYTES_MAX);
    add(data, "commit_group", atomic_load(&en->group_bytes), LIMIT_COMMIT_GROUP_BYTES_MAX);
    add(data, "store_read_cache", atomic_load(&en->read_cache_bytes), SQL_CACHE_BYTES_MAX);
}

void engine_on_commit(engine *en, engine_commit_cb cb, void *data)
{
    ASSERT(en->n_listeners < ENGINE_LISTENERS_MAX);
    en->listeners[en->n_listeners].cb = cb;
    en->listeners[en->n_listeners].data = data;
    en->n_listeners++;
}

uint64_t engine_answered_ts(const engine *en)
{
    return en->answered_ts;
}

uint64_t engine_last_ts(const engine *en)
{
    return en->last_ts_loop;
}

void engine_bump_ts(engine *en, uint64_t ts)
{
    uint64_t cur = atomic_load(&en->ts_floor);
    while (ts > cur && !atomic_compare_exchange_weak(&en->ts_floor, &cur, ts)) {
    }
}

const char *engine_env(const engine *en, const char *name)
{
    const char *v = json_string_value(json_object_get(en->env, name));
    return v ? v : getenv(name);
}

void engine_set_public_url(engine *en, const char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n >= sizeof en->public_url) n = sizeof en->public_url - 1;
    memcpy(en->public_url, url, n);
    en->public_url[n] = '\0';
}

const char *engine_public_url(const engine *en)
{
    return en->public_url;
}

const schema *engine_schema(const engine *en)
{
    return en->schema;
}

const registry *engine_registry(const engine *en)
{
    return en->registry;
}

store *engine_store(engine *en)
{
    return en->st;
}

/* --- periodic system calls ------------------------------------------------------- */

static void periodic_done(call *c)
{
    periodic *p = c->data;
    p->busy = false;
    if (c->rc) log_warn("%s failed: %s", c->fn->path, c->err.msg);
    call_free(c);
}

static void on_periodic(uv_timer_t *t)
{
    periodic *p = t->data;
    if (p->busy) return; /* the previous run has not finished: skip this tick */
    call *c = call_new();
    c->fn = p->fn;
    c->admin = true;
    c->done = periodic_done;
    c->data = p;
    if (engine_submit(p->en, c) == 0)
        p->busy = true;
    else
        call_free(c);
}

int engine_every(engine *en, const char *path, uint64_t interval_ms)
{
    const fn_def *fn = registry_find(en->registry, path);
    ASSERT(fn && "periodic function not registered");
    ASSERT(en->n_periodic < ENGINE_PERIODIC_MAX);
    periodic *p = &en->periodic[en->n_periodic++];
    p->en = en;
    p->fn = fn;
    uv_timer_init(en->loop, &p->timer);
    p->timer.data = p;
    en->open_handles++;
    return uv_timer_start(&p->timer, on_periodic, interval_ms, interval_ms);
}

/* --- open and close ------------------------------------------------------------------ */

int engine_env_scan(store_conn *conn, const schema *s, json_t **env_out, err_t *e)
{
    *env_out = NULL;
    const schema_table *t = schema_table_by_name(s, SYSTEM_TABLE_ENV);
    ASSERT(t);
    store_range r = {.table = t, .index = &schema_by_creation_time, .limit = LIMIT_QUERY_ROWS_MAX};
    json_t *rows = NULL;
    int rc = store_scan(conn, &r, &rows, e);
    if (rc) return rc;
    json_t *env = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *name = json_string_value(json_object_get(row, "name"));
        if (env && name) json_object_set(env, name, json_object_get(row, "value"));
    }
    json_decref(rows);
    if (!env) return err_set(e, ERR_NOMEM, "read the deployment variables: out of memory");
    *env_out = env;
    return 0;
}

static int load_env(engine *en, err_t *e)
{
    json_t *env = NULL;
    int rc = store_begin(en->writer_conn, false, e);
    if (rc == 0) rc = engine_env_scan(en->writer_conn, en->schema, &env, e);
    store_rollback(en->writer_conn);
    if (rc) return rc;
    json_decref(en->env);
    en->env = env;
    return 0;
}

int engine_open(const engine_config *cfg, engine **out, char report[STORE_REPORT_BYTES_MAX],
                err_t *e)
{
    engine *en = calloc(1, sizeof *en);
    if (!en) return err_set(e, ERR_NOMEM, "out of memory");
    en->loop = cfg->loop;
    en->schema = cfg->schema;
    en->registry = cfg->registry;
    en->env = json_object();
    int rc = store_open(cfg->db_url, cfg->schema, &en->st, report, e);
    if (rc == 0 && id_random_hex(en->node_id, NOTICE_NODE_ID_HEX_CHARS / 2) != 0)
        rc = err_set(e, ERR_INTERNAL, "no randomness for the process id");
    if (rc == 0) rc = store_connect(en->st, true, &en->writer_conn, e);
    /* Listen before reading the clock and the variables: a commit after
     * that read is notified, one before it is in what was read. */
    if (rc == 0) rc = remote_open(en, e);
    en->notifies = en->remote != NULL;
    if (rc == 0) rc = writer_load_clock(en, e);
    if (rc == 0) rc = load_env(en, e);
    en->n_readers = cfg->reader_threads > 0 ? cfg->reader_threads : 2;
    if (en->n_readers > ENGINE_READERS_MAX) en->n_readers = ENGINE_READERS_MAX;
    for (int i = 0; rc == 0 && i < en->n_readers; i++)
        rc = store_connect(en->st, false, &en->reader_conns[i], e);
    if (rc) {
        for (int i = 0; i < en->n_readers; i++)
            if (en->reader_conns[i]) store_disconnect(en->reader_conns[i]);
        remote_free(en);
        if (en->writer_conn) store_disconnect(en->writer_conn);
        if (en->st) store_close(en->st);
        json_decref(en->env);
        free(en);
        return rc;
    }
    en->last_ts_loop = en->last_ts_writer;
    uv_mutex_init(&en->wq_lock);
    uv_cond_init(&en->wq_cond);
    uv_mutex_init(&en->rq_lock);
    uv_cond_init(&en->rq_cond);
    uv_mutex_init(&en->cq_lock);
    uv_async_init(en->loop, &en->async, on_async);
    en->async.data = en;
    en->open_handles = 1;
    remote_start(en);
    uv_thread_create(&en->writer_thread, writer_main, en);
    for (int i = 0; i < en->n_readers; i++) {
        en->reader_args[i].en = en;
        en->reader_args[i].conn = en->reader_conns[i];
        uv_thread_create(&en->readers[i], reader_main, &en->reader_args[i]);
    }
    *out = en;
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    engine *en = h->data;
    if (h->type == UV_TIMER) en = ((periodic *)h->data)->en;
    en->open_handles--;
}

void engine_close(engine *en)
{
    for (int i = 0; i < en->n_periodic; i++) {
        uv_timer_stop(&en->periodic[i].timer);
        uv_close((uv_handle_t *)&en->periodic[i].timer, on_handle_closed);
    }
    remote_stop(en);
    /* Let every call already submitted finish and be answered. */
    while (en->in_flight > 0)
        uv_run(en->loop, UV_RUN_ONCE);
    uv_mutex_lock(&en->wq_lock);
    en->stopping = true;
    uv_cond_broadcast(&en->wq_cond);
    uv_mutex_unlock(&en->wq_lock);
    uv_mutex_lock(&en->rq_lock);
    en->readers_stopping = true;
    uv_cond_broadcast(&en->rq_cond);
    uv_mutex_unlock(&en->rq_lock);
    uv_thread_join(&en->writer_thread);
    for (int i = 0; i < en->n_readers; i++)
        uv_thread_join(&en->readers[i]);
    process_completions(en);
    uv_close((uv_handle_t *)&en->async, on_handle_closed);
    while (en->open_handles > 0)
        uv_run(en->loop, UV_RUN_ONCE);
    remote_free(en);
    for (int i = 0; i < en->n_readers; i++)
        store_disconnect(en->reader_conns[i]);
    store_disconnect(en->writer_conn);
    store_close(en->st);
    uv_mutex_destroy(&en->wq_lock);
    uv_cond_destroy(&en->wq_cond);
    uv_mutex_destroy(&en->rq_lock);
    uv_cond_destroy(&en->rq_cond);
    uv_mutex_destroy(&en->cq_lock);
    json_decref(en->env);
    free(en);
}
