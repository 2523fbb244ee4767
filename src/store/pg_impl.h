/*
 * pg_impl.h — what the files of the PostgreSQL engine share, private to
 * them: the engine's store and connection, and the helpers every file runs
 * its SQL through.
 *
 *   pg_conn.c    errors, URLs, connections and reconnection, the statement
 *                cache, the driver of the statement layer (sql_driver.h),
 *                open/close, test hooks
 *   pg_txn.c     transactions and savepoints
 *   pg_pipeline.c  deferred writes: libpq pipeline mode on the writer
 *   pg_ddl.c     the schema's DDL, migration and format upgrade, truncation
 *   pg_notify.c  commit notifications and listeners
 * (documents and scans are the statement layer's: sql_docs.c, sql_scan.c)
 *
 * Thread: a store is immutable after open; a pg_conn or pg_listener belongs
 * to one thread at a time.
 */
#ifndef DOJO_STORE_PG_IMPL_H
#define DOJO_STORE_PG_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "base/invariant.h"
#include "store/sql_docs.h"
#include "store/sql_driver.h"
#include "store/sqlbuf.h"
#include "store/store_impl.h"

#define PG_STMT_CACHE_SLOTS 256 /* prepared statements kept per connection */
#define PG_URL_BYTES_MAX 1024   /* a URL as shown in messages */
#define PG_NUMBER_BYTES_MAX 40  /* "%.17g" of a double, or an int64 */
#define PG_IDENT_BYTES_MAX 63   /* PostgreSQL truncates longer names */
#define PG_WRITE_LOCK_SQL "LOCK TABLE _dojo_meta IN EXCLUSIVE MODE"

typedef struct pg_store {
    store base;
    char *url;                            /* as given, for libpq */
    char shown_url[PG_URL_BYTES_MAX];     /* password redacted, for messages */
    char channel[PG_IDENT_BYTES_MAX + 1]; /* commit notifications (pg_notify.c) */
} pg_store;

typedef struct pg_stmt {
    uint64_t hash; /* of sql */
    char *sql;
    char name[24]; /* server-side name, "dojo_<n>" */
    uint64_t used_at;
} pg_stmt;

/* A statement sent in pipeline mode whose answer has not been read yet. */
typedef struct pg_pending {
    const char *what;   /* names it in messages (static text, or in `text`) */
    char *not_found;    /* malloc'd: the error when it changed no row, or NULL */
    char stmt_name[24]; /* a PQsendPrepare's statement: dropped from the cache if it fails */
    bool keep;          /* the caller waits for this one's result */
} pg_pending;

#define PG_PIPELINE_PENDING_MAX 256 /* statements in flight before a sync */

typedef struct pg_conn {
    store_conn base;
    PGconn *pg;
    bool writer;
    bool in_txn;    /* a BEGIN of ours is open (PQtransactionStatus lies once the link is gone) */
    bool write_txn; /* that transaction is a write transaction */
    bool notified;  /* and it sent its commit notification (store_notify_commit) */
    int savepoint_depth;
    uint64_t use_clock;
    uint64_t stmt_serial; /* names of prepared statements */
    uint64_t prepares;    /* statements prepared into the cache, for tests */
    pg_stmt cache[PG_STMT_CACHE_SLOTS];
    /* Deferred writes (pg_pipeline.c): wanted by the owner, and the
     * pipeline in flight. A failure among them sticks until the
     * transaction ends: every later call reports it. */
    bool defer_writes;
    bool in_pipeline;
    int n_pending;
    pg_pending pending[PG_PIPELINE_PENDING_MAX];
    int deferred_rc;
    int failed_index; /* the pending statement that failed first */
    err_t deferred_err;
    bool last_failure_deferred;
} pg_conn;

extern const store_ops pg_ops;
extern const sql_driver pg_driver;

static inline pg_conn *pg_conn_of(store_conn *c)
{
    ASSERT(c && c->ops == &pg_ops);
    return (pg_conn *)c;
}

static inline const pg_store *pg_store_of(const pg_conn *c)
{
    return (const pg_store *)c->base.st;
}

/* --- pg_conn.c: errors, connections, statements --------------------------------- */

/* Copies a libpq message into out on one line, without its trailing newline. */
void pg_one_line(const char *msg, char *out, size_t out_bytes);
/* Maps a failed result (or, when res is NULL, the connection's last error)
 * to the project's codes, naming the operation. */
int pg_error(err_t *e, PGconn *pg, const PGresult *res, const char *what);
/* Opens one libpq connection with the session settings of its role; a
 * listener's probes its link with TCP keepalives. */
int pg_dial(const pg_store *ps, bool writer, bool listener, PGconn **out, err_t *e);
/* Runs a cached statement with text parameters. *res_out (when asked) gets
 * the result, which the caller PQclears. Every execution is where an
 * injected fault may strike. */
int pg_stmt_run(pg_conn *c, const char *sql, int n_params, const char *const *values,
                const char *what, PGresult **res_out, err_t *e);
/* Runs parameterless SQL (transaction control, DDL; several statements
 * allowed) through the simple protocol, with fault injection. */
int pg_run_simple(pg_conn *c, const char *sql, const char *what, err_t *e);
/* Runs a rollback-like statement: faults are never injected here, since it
 * is how a caller recovers from one. Failures are logged, not returned. */
void pg_run_undo(pg_conn *c, const char *sql);

/* The binary form of a statement's parameters (pg_params_of): values,
 * lengths, formats and types, as PQexecPrepared and PQprepare take them. */
#define PG_PARAMS_MAX (SQL_KEY_COLUMNS_MAX + SQL_SCAN_PARAMS_MAX)
typedef struct pg_params {
    const char *values[PG_PARAMS_MAX];
    int lengths[PG_PARAMS_MAX];
    int formats[PG_PARAMS_MAX];
    Oid types[PG_PARAMS_MAX];
    uint8_t numbers[PG_PARAMS_MAX][8];
} pg_params;
void pg_params_of(const sql_value *v, int n, pg_params *p);
/* A column of a binary result as a double or an int64 (8 big-endian bytes). */
double pg_binary_double(const PGresult *res, int row, int col);

/* --- pg_pipeline.c: deferred writes ------------------------------------------------ */

/* Whether a deferrable statement goes into the pipeline now (deferred
 * writes wanted, inside a transaction). */
bool pg_pipeline_wanted(const pg_conn *c);
/* Sends a prepared statement's execution (binary parameters and results)
 * into the pipeline, entering pipeline mode if needed; keep: the caller
 * will wait for its result (pg_pipeline_sync's *last). */
int pg_pipeline_send_prepared(pg_conn *c, const char *name, int n_params, const pg_params *p,
                              const char *what, const char *not_found, bool keep, err_t *e);
/* Sends PQsendPrepare of sql into the pipeline. */
int pg_pipeline_send_prepare(pg_conn *c, const char *name, const char *sql, int n_params,
                             const Oid *types, const char *what, err_t *e);
/* Sends parameterless SQL (one statement: SAVEPOINT, COMMIT, DEALLOCATE …),
 * or with text parameters. */
int pg_pipeline_send_text(pg_conn *c, const char *sql, int n_params, const char *const *values,
                          const char *what, bool keep, err_t *e);
/* Ends the pipeline: sends a sync, reads every answer, leaves pipeline mode.
 * Returns the first failure (also one already stuck from an earlier sync);
 * *last (when asked) gets the kept statement's result, which the caller
 * PQclears. Nothing to do outside pipeline mode but report a stuck failure. */
int pg_pipeline_sync(pg_conn *c, PGresult **last, err_t *e);
/* The same, with the results of up to kept_max kept statements, in order. */
int pg_pipeline_sync_all(pg_conn *c, PGresult **kept, int kept_max, err_t *e);
/* Ends the pipeline discarding answers (the transaction is being rolled
 * back), and forgets a stuck failure. */
void pg_pipeline_discard(pg_conn *c);
/* A statement the pipeline prepared failed: forget it in the cache. */
void pg_stmt_forget(pg_conn *c, const char *name);
/* store_defer_writes, store_deferred_failure. */
void pg_defer_writes(store_conn *sc, bool on);
bool pg_deferred_failure(const store_conn *sc);

/* --- pg_ddl.c ---------------------------------------------------------------------- */

/* Connects once, migrates the database to s in one transaction, and names
 * the deployment's notification channel. */
int pg_prepare_database(pg_store *ps, const schema *s, char *report, err_t *e);

/* --- pg_notify.c ------------------------------------------------------------------- */

/* Names ps's notification channel after the schema pg's tables live in. */
int pg_name_channel(PGconn *pg, pg_store *ps, err_t *e);
/* The empty payload of a write transaction that sent none, at its commit. */
int pg_notify_unknown_commit(pg_conn *c, err_t *e);

/* --- the store_ops of the other files ----------------------------------------------- */

int pg_begin(store_conn *sc, bool write, err_t *e);
int pg_commit(store_conn *sc, err_t *e);
void pg_rollback(store_conn *sc);
int pg_savepoint(store_conn *sc, err_t *e);
int pg_savepoint_release(store_conn *sc, err_t *e);
void pg_savepoint_rollback(store_conn *sc);
int pg_truncate_all(store_conn *sc, err_t *e);
int pg_notify_commit(store_conn *sc, const char *payload, err_t *e);
int pg_listener_open(store *st, store_listener **out, err_t *e);
int pg_listener_fd(const store_listener *sl);
int pg_listener_drain(store_listener *sl, void (*cb)(void *data, const char *payload), void *data,
                      err_t *e);
int pg_listener_meta_get(store_listener *sl, const char *key, char **value_out, err_t *e);
void pg_listener_close(store_listener *sl);

#endif
