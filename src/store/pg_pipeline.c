/*
 * pg_pipeline.c — deferred writes on the PostgreSQL engine: libpq's
 * pipeline mode on the writer connection (store_defer_writes).
 *
 * Why: a mutation's writes (its savepoint, inserts, updates, deletes, its
 * release; the group's metadata, notice and COMMIT) return nothing the
 * mutation needs, yet sent one at a time each costs a round trip to the
 * server. With deferred writes on, they are sent without waiting, in order,
 * and their answers are read at the next statement that must wait — a
 * read, which goes out in the same flight, or the COMMIT: a runs:create
 * costs the round trips of its reads, not of its ten statements.
 *
 * Failures: PostgreSQL fails the transaction at a failed statement (and
 * skips what was sent after it until the sync), so a failure among
 * deferred writes is reported by the call that waits next, whichever
 * mutation it belongs to, and it sticks: every later call of the
 * transaction reports it until the transaction is rolled back, so no
 * mutation can act on a state that lacks a write that failed, and the group
 * cannot commit. store_deferred_failure says so, for the writer to tell an
 * innocent call from the one whose write failed (it runs the group again
 * without deferring, where the failure lands on its author).
 *
 * Every send is where an injected fault may strike, as for a statement run
 * at once: the fault sweep strikes each of them.
 * Callers: pg_conn.c (the driver, the statement cache), pg_txn.c
 * (transactions and savepoints), pg_notify.c (the commit notification).
 * Thread: the thread that owns the connection.
 */
#include "store/pg_impl.h"

#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool pg_pipeline_wanted(const pg_conn *c)
{
    return c->defer_writes && c->in_txn;
}

void pg_defer_writes(store_conn *sc, bool on)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(!c->in_pipeline && "deferred writes switched with writes in flight");
    c->defer_writes = on;
}

bool pg_deferred_failure(const store_conn *sc)
{
    return ((const pg_conn *)sc)->last_failure_deferred;
}

static int enter(pg_conn *c, const char *what, err_t *e)
{
    if (c->deferred_rc) {
        c->last_failure_deferred = true;
        return err_set(e, c->deferred_rc, "%s", c->deferred_err.msg);
    }
    if (c->in_pipeline) {
        if (c->n_pending < PG_PIPELINE_PENDING_MAX) return 0;
        return pg_pipeline_sync(c, NULL, e) ? c->deferred_rc : enter(c, what, e);
    }
    if (PQstatus(c->pg) != CONNECTION_OK)
        return err_set(e, ERR_STORAGE, "%s: the connection to %s was lost mid-transaction", what,
                       pg_store_of(c)->shown_url);
    if (PQenterPipelineMode(c->pg) != 1) return pg_error(e, c->pg, NULL, what);
    c->in_pipeline = true;
    return 0;
}

static int pushed(pg_conn *c, int sent, const char *what, const char *not_found, bool keep,
                  const char *stmt_name, err_t *e)
{
    if (sent != 1) return pg_error(e, c->pg, NULL, what);
    pg_pending *p = &c->pending[c->n_pending++];
    *p = (pg_pending){.what = what, .keep = keep};
    if (not_found && !(p->not_found = strdup(not_found)))
        return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    if (stmt_name) snprintf(p->stmt_name, sizeof p->stmt_name, "%s", stmt_name);
    return 0;
}

int pg_pipeline_send_prepared(pg_conn *c, const char *name, int n_params, const pg_params *p,
                              const char *what, const char *not_found, bool keep, err_t *e)
{
    int rc = enter(c, what, e);
    if (rc) return rc;
    int sent = PQsendQueryPrepared(c->pg, name, n_params, p ? p->values : NULL,
                                   p ? p->lengths : NULL, p ? p->formats : NULL, 1 /* binary */);
    return pushed(c, sent, what, not_found, keep, NULL, e);
}

int pg_pipeline_send_prepare(pg_conn *c, const char *name, const char *sql, int n_params,
                             const Oid *types, const char *what, err_t *e)
{
    int rc = enter(c, what, e);
    if (rc) return rc;
    return pushed(c, PQsendPrepare(c->pg, name, sql, n_params, types), what, NULL, false, name, e);
}

int pg_pipeline_send_text(pg_conn *c, const char *sql, int n_params, const char *const *values,
                          const char *what, bool keep, err_t *e)
{
    int rc = enter(c, what, e);
    if (rc) return rc;
    int sent = PQsendQueryParams(c->pg, sql, n_params, NULL, values, NULL, NULL, 0);
    return pushed(c, sent, what, NULL, keep, NULL, e);
}

/* Records the first failure of the flight (from its pending statement
 * `index`); it sticks. */
static void fail(pg_conn *c, int rc, const err_t *why, int index)
{
    if (c->deferred_rc) return;
    c->deferred_rc = rc;
    c->failed_index = index;
    snprintf(c->deferred_err.msg, sizeof c->deferred_err.msg, "%s", why->msg);
}

/* Reads the answer of one pending statement: its results up to the NULL
 * that ends them. */
static void read_answer(pg_conn *c, int index, PGresult **kept, int *n_kept, int kept_max)
{
    pg_pending *p = &c->pending[index];
    PGresult *res;
    bool first = true;
    while ((res = PQgetResult(c->pg))) {
        ExecStatusType status = PQresultStatus(res);
        err_t why;
        err_init(&why);
        if (!first || status == PGRES_PIPELINE_ABORTED) {
            /* skipped after an earlier failure, already recorded — and a
             * statement it was to prepare is not there */
            if (first && p->stmt_name[0]) pg_stmt_forget(c, p->stmt_name);
        } else if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            fail(c, pg_error(&why, c->pg, res, p->what), &why, index);
            if (p->stmt_name[0]) pg_stmt_forget(c, p->stmt_name);
        } else if (p->not_found && strtoll(PQcmdTuples(res), NULL, 10) == 0) {
            fail(c, err_set(&why, ERR_NOT_FOUND, "%s", p->not_found), &why, index);
        } else if (p->keep && kept && *n_kept < kept_max) {
            kept[(*n_kept)++] = res;
            res = NULL;
        }
        PQclear(res);
        first = false;
    }
    if (first) { /* no result at all: the connection failed */
        err_t why;
        err_init(&why);
        fail(c, pg_error(&why, c->pg, NULL, p->what), &why, index);
        if (p->stmt_name[0]) pg_stmt_forget(c, p->stmt_name);
    }
}

/* Reads up to the sync's own answer and leaves pipeline mode. */
static void end_flight(pg_conn *c)
{
    PGresult *res;
    while ((res = PQgetResult(c->pg))) {
        ExecStatusType status = PQresultStatus(res);
        PQclear(res);
        if (status == PGRES_PIPELINE_SYNC) break;
    }
    if (PQexitPipelineMode(c->pg) != 1) {
        /* Answers are missing (the link broke): what is left is lost. */
        log_error("store: leaving pipeline mode: %s", PQerrorMessage(c->pg));
    }
    for (int i = 0; i < c->n_pending; i++)
        free(c->pending[i].not_found);
    c->n_pending = 0;
    c->in_pipeline = false;
}

int pg_pipeline_sync_all(pg_conn *c, PGresult **kept, int kept_max, err_t *e)
{
    for (int i = 0; i < kept_max; i++)
        kept[i] = NULL;
    bool own = false;
    int n_kept = 0;
    if (c->in_pipeline) {
        bool had = c->deferred_rc != 0;
        int last_kept = c->pending[c->n_pending - 1].keep ? c->n_pending - 1 : -1;
        if (PQpipelineSync(c->pg) != 1) {
            err_t why;
            err_init(&why);
            fail(c, pg_error(&why, c->pg, NULL, "send the pipeline"), &why, -1);
        } else {
            for (int i = 0; i < c->n_pending; i++)
                read_answer(c, i, kept, &n_kept, kept_max);
        }
        end_flight(c);
        /* The caller's own failure: its (last) kept statement failed, and
         * nothing sent before it did. */
        own = !had && c->deferred_rc && last_kept >= 0 && c->failed_index == last_kept;
    }
    if (!c->deferred_rc) return 0;
    for (int i = 0; i < n_kept; i++) {
        PQclear(kept[i]);
        kept[i] = NULL;
    }
    c->last_failure_deferred = !own;
    return err_set(e, c->deferred_rc, "%s", c->deferred_err.msg);
}

int pg_pipeline_sync(pg_conn *c, PGresult **last, err_t *e)
{
    PGresult *ignored;
    return pg_pipeline_sync_all(c, last ? last : &ignored, last ? 1 : 0, e);
}

void pg_pipeline_discard(pg_conn *c)
{
    if (c->in_pipeline) {
        if (PQpipelineSync(c->pg) == 1) {
            PGresult *res;
            for (int i = 0; i < c->n_pending; i++) {
                bool prepared = false;
                while ((res = PQgetResult(c->pg))) {
                    prepared |= PQresultStatus(res) == PGRES_COMMAND_OK;
                    PQclear(res);
                }
                if (!prepared && c->pending[i].stmt_name[0])
                    pg_stmt_forget(c, c->pending[i].stmt_name);
            }
        } else
            for (int i = 0; i < c->n_pending; i++)
                if (c->pending[i].stmt_name[0]) pg_stmt_forget(c, c->pending[i].stmt_name);
        end_flight(c);
    }
    c->deferred_rc = 0;
    err_clear(&c->deferred_err);
}
