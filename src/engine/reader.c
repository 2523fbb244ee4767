/*
 * reader.c — a reader thread: takes queries from the read queue and runs each
 * in a read transaction on its own connection, i.e. on the latest committed
 * snapshot; the snapshot's commit timestamp (meta "ts", read first, inside the
 * same transaction) becomes the call's ts. A query batch runs all its
 * queries in that one transaction.
 * Thread: one of the engine's reader threads.
 */
#include "engine/engine_impl.h"

#include <stdlib.h>

#include "base/clock.h"

static void run_query(engine *en, store_conn *conn, call *c)
{
    c->started_us = clock_mono_us();
    err_t e;
    err_init(&e);
    char *ts_text = NULL;
    int rc = store_begin(conn, false, &e);
    if (rc == 0) rc = store_meta_get(conn, "ts", &ts_text, &e);
    if (rc) {
        err_move(&c->err, &e);
        c->rc = rc;
        store_rollback(conn);
        return;
    }
    c->ts = ts_text ? strtoull(ts_text, NULL, 10) : 0;
    free(ts_text);
    if (c->n_batch > 0) {
        /* A batch: each query on this one snapshot, with its own outcome. */
        for (int i = 0; i < c->n_batch; i++) {
            call *q = c->batch[i];
            if (q->rc) continue; /* refused before running: that is its answer */
            q->ts = c->ts;
            q->started_us = clock_mono_us();
            ctx x;
            ctx_init(&x, conn, en->schema, false);
            x.now_ms = clock_now_ms();
            x.public_url = en->public_url;
            q->rc = engine_execute(&x, q);
            ctx_release(&x);
            q->finished_us = clock_mono_us();
        }
        c->rc = 0;
    } else {
        ctx x;
        ctx_init(&x, conn, en->schema, false);
        x.now_ms = clock_now_ms();
        x.public_url = en->public_url;
        c->rc = engine_execute(&x, c);
        ctx_release(&x);
    }
    store_rollback(conn);
}

void reader_main(void *arg)
{
    reader_arg *ra = arg;
    engine *en = ra->en;
    for (;;) {
        uv_mutex_lock(&en->rq_lock);
        engine_wait_for_work(&en->rq_cond, &en->rq_lock, &en->read_queue.len, &en->readers_stopping,
                             ra->conn);
        call *c = call_queue_pop(&en->read_queue);
        uv_mutex_unlock(&en->rq_lock);
        if (!c) break;
        run_query(en, ra->conn, c);
        engine_complete_call(en, c);
    }
}
