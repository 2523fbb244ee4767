/*
 * engine.c — the engine object: opening and closing it, commit listeners,
 * the loop's copy of the deployment variables, periodic system calls, the
 * accessors. The top of the engine's room: it starts the storage thread
 * (writer.c), the reader threads (reader.c) and the listener for other
 * processes' commits (remote.c); calls travel through calls.c, the
 * deployment variables are read by env.c. Nothing below calls back up here:
 * remote.c takes this process's commits through en->order_commit, which
 * engine_open points at it.
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
    /* Commits reach the listeners in the database's order (remote.c)
     * when other processes share it. */
    en->order_commit = en->remote ? remote_local_commit : NULL;
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
    uv_async_init(en->loop, &en->async, engine_on_async);
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
    engine_process_completions(en);
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
