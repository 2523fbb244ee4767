/*
 * pg_txn.c — transactions and savepoints on the PostgreSQL engine.
 *
 * A write transaction is BEGIN ISOLATION LEVEL SERIALIZABLE followed by
 * LOCK TABLE _dojo_meta IN EXCLUSIVE MODE: writers of every process queue on
 * that lock instead of failing. The lock is a table lock, not
 * pg_advisory_xact_lock(), on purpose: a serializable transaction fixes its
 * snapshot at its first SELECT, so a writer that waited inside
 * `SELECT pg_advisory_xact_lock()` would read data older than the commit it
 * waited for, and fail with a serialization error on its first write to the
 * same rows. LOCK TABLE takes no snapshot. Plain SELECTs (readers, meta
 * reads) are not blocked by it. A read transaction is REPEATABLE READ, its
 * snapshot fixed by its first statement. After a statement fails inside a
 * transaction PostgreSQL refuses further statements until the caller rolls
 * back (store_savepoint_rollback or store_rollback) — unlike SQLite, whose
 * failed statement leaves the transaction usable. A write transaction that
 * sent no commit notification sends an empty one at commit (pg_notify.c).
 *
 * Callers: store.c through pg_ops — the storage thread on the writer, reader
 * threads on theirs.
 * Thread: the thread that owns the connection.
 */
#include "store/pg_impl.h"

#include <stdio.h>
#include <string.h>

#include "base/invariant.h"
#include "base/log.h"

#define PG_SAVEPOINT_DEPTH_MAX 4
#define PG_SAVEPOINT_SQL_NAME "dojo_mutation"

/* --- transactions ------------------------------------------------------------------ */

static int begin_once(pg_conn *c, bool write, err_t *e)
{
    int rc;
    if (write) {
        rc = pg_run_simple(c, "BEGIN ISOLATION LEVEL SERIALIZABLE; " PG_WRITE_LOCK_SQL,
                           "begin write transaction", e);
        if (rc && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            pg_run_undo(c, "ROLLBACK");
        if (rc == ERR_BUSY)
            rc = err_set(e, ERR_BUSY,
                         "begin write transaction: another writer kept the write lock past "
                         "lock_timeout; try again");
    } else {
        rc = pg_run_simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", "begin read transaction", e);
    }
    return rc;
}

int pg_begin(store_conn *sc, bool write, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(!c->in_txn && "store_begin inside a transaction");
    ASSERT((c->writer || !write) && "a write transaction on a reader connection");
    c->savepoint_depth = 0;
    int rc = begin_once(c, write, e);
    /* A connection the server dropped while idle (a restart, a terminated
     * backend) still reads as OK until a statement fails: that is the
     * BEGIN, when nothing has been done yet. Reconnect and begin again,
     * once, rather than fail the call. */
    if (rc && PQstatus(c->pg) != CONNECTION_OK) {
        log_info("store: the connection to %s was lost while idle; reconnecting",
                 pg_store_of(c)->shown_url);
        err_clear(e);
        rc = begin_once(c, write, e);
    }
    c->in_txn = rc == 0;
    c->write_txn = write;
    c->notified = false;
    return rc;
}

int pg_commit(store_conn *sc, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->in_txn && "store_commit outside a transaction");
    if (store_fault_due()) return err_set(e, ERR_STORAGE, "commit: injected fault");
    if (PQstatus(c->pg) != CONNECTION_OK)
        return err_set(e, ERR_STORAGE, "commit: the connection to %s was lost",
                       pg_store_of(c)->shown_url);
    if (PQtransactionStatus(c->pg) == PQTRANS_INERROR)
        return err_set(e, ERR_STORAGE,
                       "commit: a statement of this transaction failed; roll it back");
    int rc = c->write_txn && !c->notified ? pg_notify_unknown_commit(c, e) : 0;
    if (rc) return rc;
    PGresult *res = PQexec(c->pg, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_error(e, c->pg, res, "commit");
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = err_set(e, ERR_STORAGE, "commit: the server rolled the transaction back");
    PQclear(res);
    /* A COMMIT that fails ends the transaction all the same. */
    if (rc == 0 || PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        c->in_txn = false;
        c->savepoint_depth = 0;
    }
    return rc;
}

void pg_rollback(store_conn *sc)
{
    pg_conn *c = pg_conn_of(sc);
    if (c->in_txn) pg_run_undo(c, "ROLLBACK");
    c->in_txn = false;
    c->savepoint_depth = 0;
}

int pg_savepoint(store_conn *sc, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->writer && c->in_txn && "a savepoint outside a transaction");
    ASSERT(c->savepoint_depth < PG_SAVEPOINT_DEPTH_MAX);
    int rc = pg_run_simple(c, "SAVEPOINT " PG_SAVEPOINT_SQL_NAME, "savepoint", e);
    if (rc == 0) c->savepoint_depth++;
    return rc;
}

int pg_savepoint_release(store_conn *sc, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->savepoint_depth > 0 && "no savepoint to release");
    int rc = pg_run_simple(c, "RELEASE SAVEPOINT " PG_SAVEPOINT_SQL_NAME, "release savepoint", e);
    if (rc == 0) c->savepoint_depth--;
    return rc;
}

/* Also how a transaction recovers from a failed statement: PostgreSQL
 * accepts ROLLBACK TO in a failed transaction. */
void pg_savepoint_rollback(store_conn *sc)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->savepoint_depth > 0 && "no savepoint to roll back");
    c->savepoint_depth--;
    pg_run_undo(c, "ROLLBACK TO SAVEPOINT " PG_SAVEPOINT_SQL_NAME);
    pg_run_undo(c, "RELEASE SAVEPOINT " PG_SAVEPOINT_SQL_NAME);
}
