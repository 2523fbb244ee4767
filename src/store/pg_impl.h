/*
 * pg_impl.h — what the files of the PostgreSQL engine share, private to
 * them: the engine's store and connection, and the helpers every file runs
 * its SQL through.
 *
 *   pg_conn.c    errors, URLs, connections and reconnection, the statement
 *                cache, open/close
 *   pg_txn.c     transactions and savepoints
 *   pg_docs.c    documents as jsonb text; get, insert, replace, delete,
 *                count, metadata, truncate, ping
 *   pg_scan.c    index range scans, and their plans (tests)
 *   pg_ddl.c     the schema's DDL and migration
 *   pg_notify.c  commit notifications and listeners
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
#include "store/sqlbuf.h"
#include "store/store_impl.h"

#define PG_STMT_CACHE_SLOTS 256 /* prepared statements kept per connection */
#define PG_SQL_BYTES_MAX 16384  /* a generated DML statement */
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
} pg_conn;

extern const store_ops pg_ops;

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

/* --- pg_docs.c --------------------------------------------------------------------- */

/* "%.17g": a double as text that reads back as the same double. */
void pg_format_double(char out[PG_NUMBER_BYTES_MAX], double v);
/* The doc column of row `row` of res, parsed as PostgreSQL prints jsonb. */
int pg_result_doc(const PGresult *res, int row, const char *table, json_t **out, err_t *e);

/* --- pg_ddl.c ---------------------------------------------------------------------- */

/* The index columns of one key field, comma-separated, each followed by
 * suffix (" DESC" or ""). */
void pg_key_exprs(sqlbuf *b, const char *field, const char *suffix);
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
int pg_get(store_conn *sc, const schema_table *t, const char *id, json_t **doc_out, err_t *e);
int pg_insert(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e);
int pg_replace(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e);
int pg_delete(store_conn *sc, const schema_table *t, const char *id, err_t *e);
int pg_count(store_conn *sc, const schema_table *t, int64_t *n_out, err_t *e);
int pg_meta_get(store_conn *sc, const char *key, char **value_out, err_t *e);
int pg_meta_set(store_conn *sc, const char *key, const char *value, err_t *e);
int pg_truncate_all(store_conn *sc, err_t *e);
int pg_ping(store_conn *sc, err_t *e);
int pg_scan(store_conn *sc, const store_range *r, json_t **rows_out, err_t *e);
int pg_count_range(store_conn *sc, const store_range *r, int64_t *n_out, err_t *e);
int pg_notify_commit(store_conn *sc, const char *payload, err_t *e);
int pg_listener_open(store *st, store_listener **out, err_t *e);
int pg_listener_fd(const store_listener *sl);
int pg_listener_drain(store_listener *sl, void (*cb)(void *data, const char *payload), void *data,
                      err_t *e);
int pg_listener_meta_get(store_listener *sl, const char *key, char **value_out, err_t *e);
void pg_listener_close(store_listener *sl);

#endif
