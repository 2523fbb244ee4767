/*
 * execute.c — running one function body in a prepared ctx and moving its
 * outcome into the call; also the synchronous runner for command-line tools.
 * Thread: the thread that owns the ctx's connection.
 */
#include "engine/engine_impl.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

int engine_execute(ctx *x, call *c)
{
    x->identity = c->identity;
    x->admin = c->admin;
    x->worker = c->worker;
    x->journal_in = c->journal_in;
    x->record_reads = c->record_reads;
    json_t *result = NULL;
    int rc = c->fn->impl(x, c->args, &result);
    json_decref(c->log_lines);
    c->log_lines = json_incref(x->log_lines);
    /* Also on failure: an error that depends on the data (NOT_FOUND, a
     * balance) must be re-run as a subscription when that data changes. */
    read_set_free(&c->reads);
    c->reads = x->reads;
    read_set_init(&x->reads);
    /* result is borrowed (ctx.h): the ctx's, or the arguments'. */
    if (rc) {
        err_move(&c->err, &x->err);
        if (c->err.code == ERR_OK) err_set(&c->err, rc, "%s failed", c->fn->path);
        return rc;
    }
    json_decref(c->result);
    c->result = result ? json_incref(result) : json_null();
    free(c->journal_out);
    c->journal_out = x->journal_out;
    x->journal_out = NULL;
    return 0;
}

int engine_run_local(store_conn *conn, const schema *s, const fn_def *fn, const json_t *args,
                     json_t **result, err_t *e)
{
    bool write = fn->kind == FN_MUTATION;
    int rc = store_begin(conn, write, e);
    if (rc) return rc;
    call *c = call_new();
    c->fn = fn;
    c->args = json_deep_copy(args);
    c->admin = true;
    double clock = 0;
    ctx x;
    ctx_init(&x, conn, s, write);
    x.now_ms = clock_now_ms();
    x.creation_clock = &clock;
    rc = engine_execute(&x, c);
    ctx_release(&x);
    if (rc == 0 && write) rc = store_commit(conn, &c->err);
    if (rc)
        store_rollback(conn);
    else
        store_rollback(conn); /* ends a read transaction; no-op after commit */
    if (rc) err_move(e, &c->err);
    *result = rc ? NULL : json_incref(c->result);
    call_free(c);
    return rc;
}
