/*
 * sql_driver.h — the small per-dialect driver under the store's one
 * statement layer. sql_docs.c and sql_scan.c write every statement the store
 * runs on documents (get, insert, replace, delete, count, scans, metadata)
 * once, for both engines; what differs between SQLite and PostgreSQL is
 * only how a statement is prepared, how its parameters are bound and its
 * rows read, and how a parameter is spelled — this table of functions. Each
 * engine fills one (sqlite.c, pg_conn.c) and points its store at it.
 *
 * A statement's parameters are typed values (sql_value), bound natively
 * (sqlite3_bind_*, or libpq's binary format); its rows are read column by
 * column, also natively. Every statement a driver runs is where an injected
 * fault (store_inject_fault_after) may strike, and goes through the
 * connection's cache of prepared statements.
 *
 * Deferred statements: a write whose caller needs neither rows nor a count
 * back may be marked SQL_DEFER. PostgreSQL's driver then only queues it in
 * the connection's pipeline (libpq pipeline mode) and goes on; its outcome
 * arrives with the next statement that waits for an answer, and a failure
 * is reported there (or at commit) — the transaction is failed then anyway.
 * SQLite's driver runs it at once. A deferred statement that must change a
 * row says what to report when it changed none (not_found).
 * Thread: the thread that owns the connection.
 */
#ifndef DOJO_STORE_SQL_DRIVER_H
#define DOJO_STORE_SQL_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/sqlbuf.h"
#include "store/store.h"

typedef enum { SQLV_NULL, SQLV_TEXT, SQLV_BLOB, SQLV_DOUBLE, SQLV_INT64 } sql_value_type;

/* A parameter: bytes (TEXT, BLOB) are borrowed and must outlive the
 * statement's run. */
typedef struct sql_value {
    sql_value_type type;
    const void *bytes;
    size_t len;
    double d;
    int64_t i;
} sql_value;

static inline sql_value sqlv_text(const char *s, size_t len)
{
    return (sql_value){.type = SQLV_TEXT, .bytes = s, .len = len};
}
static inline sql_value sqlv_blob(const void *p, size_t len)
{
    return (sql_value){.type = SQLV_BLOB, .bytes = p, .len = len};
}
static inline sql_value sqlv_double(double d)
{
    return (sql_value){.type = SQLV_DOUBLE, .d = d};
}
static inline sql_value sqlv_int64(int64_t i)
{
    return (sql_value){.type = SQLV_INT64, .i = i};
}

#define SQL_DEFER 1         /* see the file comment */
#define SQL_RUN_MANY_MAX 64 /* statements of one run_many: one round trip */

/* One statement to run. */
typedef struct sql_stmt {
    const char *sql;
    const sql_value *params;
    int n_params;
    const char *what; /* names the operation in messages */
    int flags;
    /* When set: the statement must change a row, else ERR_NOT_FOUND with
     * this message (used by deferred statements; others count themselves). */
    const char *not_found;
} sql_stmt;

/* The rows (or the count of changed rows) of a statement that ran. */
typedef struct sql_result {
    store_conn *conn;
    void *impl;      /* the driver's: a sqlite3_stmt, a PGresult */
    int row;         /* the driver's cursor */
    int64_t changes; /* rows an INSERT, UPDATE or DELETE changed */
} sql_result;

typedef struct sql_driver {
    const char *engine; /* "SQLite", "PostgreSQL", in messages */
    /* Appends the placeholder of parameter n (1-based). */
    void (*param)(sqlbuf *b, int n);
    /* Appends what follows "FROM T" to make a scan use index `index` (SQLite's
     * INDEXED BY, so that a statement that cannot use it fails instead of
     * scanning the table), or nothing. */
    void (*use_index)(sqlbuf *b, const char *index);
    /* Whether a scan's row-value bounds start at the index's first column
     * (PostgreSQL) or after the columns fixed by equalities (SQLite); see
     * sql_scan.c. */
    bool bounds_from_first_column;
    /* Whether a write transaction keeps what it reads and writes (see
     * sql_cache.h): where a read costs a round trip. */
    bool cache_reads;
    /* Runs s. When res is not NULL it is ready for next/col_* (rows) and
     * holds the count of changed rows; the caller ends it with done. */
    int (*run)(store_conn *c, const sql_stmt *s, sql_result *res, err_t *e);
    /* Runs n (1..SQL_RUN_MANY_MAX) statements that return rows in one
     * round trip, with the writes in flight (res[i] for s[i], each ended
     * with done); NULL where a round trip costs nothing. */
    int (*run_many)(store_conn *c, const sql_stmt *s, int n, sql_result *res, err_t *e);
    /* 1: a row is current; 0: no more rows; < 0: an error. */
    int (*next)(sql_result *res, const char *what, err_t *e);
    /* Columns of the current row; bytes stay valid until next or done. */
    const uint8_t *(*col_bytes)(sql_result *res, int col, size_t *len);
    double (*col_double)(sql_result *res, int col);
    int64_t (*col_int64)(sql_result *res, int col);
    void (*done)(sql_result *res);
} sql_driver;

#endif
