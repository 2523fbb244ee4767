/*
 * sqlite_impl.h — what the files of the SQLite engine share, private to
 * them: the engine's store and connection, and the statement helpers every
 * file runs its SQL through.
 *
 *   sqlite.c       connections, transactions, the statement cache, open/close
 *   sqlite_docs.c  get, insert, replace, delete, count, metadata, truncate, ping
 *   sqlite_scan.c  index range scans
 *   sqlite_ddl.c   the schema's DDL, migration, WAL mode
 *
 * Thread: a store is immutable after open; a sqlite_conn belongs to one
 * thread at a time (connections are opened SQLITE_OPEN_NOMUTEX).
 */
#ifndef DOJO_STORE_SQLITE_IMPL_H
#define DOJO_STORE_SQLITE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "base/invariant.h"
#include "store/sqlbuf.h"
#include "store/sqlite_checkpoint.h"
#include "store/store_impl.h"

#define SQLITE_STMT_CACHE_SLOTS 128 /* prepared statements kept per connection */
#define SQLITE_SQL_BYTES_MAX 4096   /* a generated DML statement */

typedef struct sqlite_store {
    store base;
    sqlite_checkpointer *checkpointer; /* started with the writer connection */
    int wal_pages_seen;                /* writer thread: log size after the last commit */
    int next_wake_pages;               /* writer thread: wake the checkpointer at this size */
    char path[];                       /* the database file */
} sqlite_store;

typedef struct stmt_slot {
    uint64_t hash; /* of sql */
    char *sql;
    sqlite3_stmt *stmt;
    uint64_t used_at; /* the connection's use_clock when last handed out */
} stmt_slot;

typedef struct sqlite_conn {
    store_conn base;
    sqlite3 *db;
    bool writer;
    int savepoint_depth;
    uint64_t use_clock;
    uint64_t prepares; /* statements prepared into the cache, for tests */
    stmt_slot cache[SQLITE_STMT_CACHE_SLOTS];
} sqlite_conn;

extern const store_ops sqlite_ops;

static inline sqlite_conn *sqlite_conn_of(store_conn *c)
{
    ASSERT(c && c->ops == &sqlite_ops);
    return (sqlite_conn *)c;
}

/* --- sqlite.c: errors and statements ----------------------------------------------- */

/* Maps a SQLite result code to the project's codes, naming the operation. */
int sqlite_error(err_t *e, sqlite3 *db, int rc, const char *what);
/* A prepared statement for sql from the connection's cache, prepared on first
 * use. The caller resets it (sqlite_stmt_done) before it uses another
 * statement that might evict it. */
int sqlite_stmt_get(sqlite_conn *c, const char *sql, sqlite3_stmt **out, err_t *e);
void sqlite_stmt_done(sqlite3_stmt *st);
/* Steps st once: 1 = a row, 0 = done, < 0 = an error code. The first step of
 * every execution is where an injected fault strikes. */
int sqlite_stmt_step(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e);
/* Runs a statement that returns no rows, then resets it. */
int sqlite_stmt_run(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e);
/* Runs one statement without caching it (DDL), with fault injection. */
int sqlite_run_once(sqlite_conn *c, const char *sql, const char *what, err_t *e);
/* A bind's result code as the project's. */
int sqlite_bind_check(sqlite_conn *c, int rc, const char *what, err_t *e);
/* sqlite3_exec without fault injection (opening, the schema). */
int sqlite_exec(sqlite3 *db, const char *sql, const char *what, err_t *e);
/* The first column of the first row of sql as text into out ("" when none). */
int sqlite_query_text(sqlite3 *db, const char *sql, char *out, size_t out_bytes, err_t *e);
/* Opens a connection with the settings every connection has; only
 * store_open creates the file, connections expect it. */
int sqlite_open_db(const char *path, bool create, bool writer, sqlite3 **out, err_t *e);

/* --- sqlite_ddl.c: the schema ------------------------------------------------------ */

/* The expression a field is indexed by in an ordered (non-unique) index. */
void sqlite_key_expr(sqlbuf *b, const char *field);
/* The operations an append-only table refuses ("delete", "update"), and the
 * CREATE TRIGGER of the guard against sqlite_guard_ops[op]. */
#define SQLITE_GUARD_OPS 2
extern const char *const sqlite_guard_ops[SQLITE_GUARD_OPS];
void sqlite_guard_trigger(sqlbuf *b, const schema_table *t, int op);
/* Opens path, puts it in WAL mode and migrates it to s in one transaction. */
int sqlite_prepare_file(const char *path, const schema *s, char *report, err_t *e);

/* --- the store_ops of sqlite_docs.c and sqlite_scan.c ------------------------------- */

int sqlite_get(store_conn *sc, const schema_table *t, const char *id, json_t **doc_out, err_t *e);
int sqlite_insert(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e);
int sqlite_replace(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e);
int sqlite_delete(store_conn *sc, const schema_table *t, const char *id, err_t *e);
int sqlite_count(store_conn *sc, const schema_table *t, int64_t *n_out, err_t *e);
int sqlite_meta_get(store_conn *sc, const char *key, char **value_out, err_t *e);
int sqlite_meta_set(store_conn *sc, const char *key, const char *value, err_t *e);
int sqlite_truncate_all(store_conn *sc, err_t *e);
int sqlite_ping(store_conn *sc, err_t *e);
int sqlite_scan(store_conn *sc, const store_range *r, json_t **rows_out, err_t *e);
int sqlite_count_range(store_conn *sc, const store_range *r, int64_t *n_out, err_t *e);
/* Parses the doc column of the current row. */
int sqlite_column_doc(sqlite3_stmt *st, int col, const char *table, json_t **out, err_t *e);

#endif
