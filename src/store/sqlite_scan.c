/*
 * sqlite_scan.c — index range scans on the SQLite engine (store_scan), and
 * the plan of one for tests (store_sqlite_scan_plan).
 *
 * Nulls: a field in an index key is indexed as
 * ifnull(json_extract(doc,'$.f'), -9e999) (sqlite_key_expr), i.e. a missing
 * or null field as -Infinity, below every JSON number. That is the key order
 * of schema.h, and unlike a SQL NULL it compares definitely, so that
 * row-value bounds such as (f, creation_time, id) < (?, ?, ?) treat missing
 * fields as the smallest values instead of as unknown. A null bound is bound
 * as -Infinity.
 *
 * Scans force the index with INDEXED BY (a statement that cannot use it fails
 * to prepare instead of silently scanning the table), fix the leading fields
 * both bounds share with equalities, and seek the rest with row values; SQLite
 * can seek row values over plain columns only, so a bound that starts at an
 * extracted field also gets a scalar bound on that field to seek by.
 *
 * Callers: store.c through sqlite_ops, on the thread that owns the connection.
 * Thread: the thread that owns the connection.
 */
#include "base/invariant.h"
#include "store/sqlite_impl.h"

#include "store/ddl_common.h"
#include "store/sql_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Binds an index value the way json_extract yields it: strings as TEXT,
 * integers as INTEGER, reals as REAL, booleans as 1/0, null as -Infinity. The
 * value must outlive the statement's execution. */
static int bind_value(sqlite3_stmt *st, int i, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
                                 SQLITE_STATIC);
    case JSON_INTEGER:
        return sqlite3_bind_int64(st, i, json_integer_value(v));
    case JSON_REAL:
        return sqlite3_bind_double(st, i, json_real_value(v));
    case JSON_TRUE:
        return sqlite3_bind_int(st, i, 1);
    case JSON_FALSE:
        return sqlite3_bind_int(st, i, 0);
    case JSON_NULL:
        return sqlite3_bind_double(st, i, -INFINITY);
    default:
        return SQLITE_MISMATCH;
    }
}

/* --- scans ------------------------------------------------------------------------- */

/* The statement of a scan and the values its parameters are bound to, in
 * order; the LIMIT comes last. */
typedef struct scan_sql {
    char text[SQLITE_SQL_BYTES_MAX];
    sqlbuf b;
    const json_t *params[3 * SCHEMA_KEY_LEN_MAX + 2];
    int n_params;
    int n_conditions;
    bool empty; /* the bounds admit no key: nothing to run */
    bool count; /* SELECT count(*) of the range (up to the LIMIT) instead of its documents */
} scan_sql;

static void scan_param(scan_sql *q, const json_t *v)
{
    ASSERT(q->n_params < (int)(sizeof q->params / sizeof q->params[0]));
    q->params[q->n_params++] = v;
}

static void scan_condition_start(scan_sql *q)
{
    sqlbuf_add(&q->b, q->n_conditions++ ? " AND " : " WHERE ");
}

/* "(E_from, …, E_to-1) op (?, …)" for the bound's values from..to. */
static void scan_row_condition(scan_sql *q, const schema_index *ix, const json_t *bound, int from,
                               int to, const char *op)
{
    scan_condition_start(q);
    sqlbuf_add(&q->b, "(");
    for (int i = from; i < to; i++) {
        if (i > from) sqlbuf_add(&q->b, ", ");
        sqlite_key_expr(&q->b, sql_key_field(ix, i));
    }
    sqlbuf_add(&q->b, ") %s (", op);
    for (int i = from; i < to; i++) {
        sqlbuf_add(&q->b, i > from ? ", ?" : "?");
        scan_param(q, json_array_get(bound, (size_t)i));
    }
    sqlbuf_add(&q->b, ")");
}

/* The part of a bound past the equality prefix: a row value, plus a scalar
 * bound on its first field when that is an extracted field, to seek by. */
static void scan_bound(scan_sql *q, const schema_index *ix, const json_t *bound, int from,
                       bool lower, bool inclusive)
{
    int to = (int)json_array_size(bound);
    const char *op = lower ? (inclusive ? ">=" : ">") : (inclusive ? "<=" : "<");
    if (to - from > 1 && !sql_system_column(sql_key_field(ix, from))) {
        scan_condition_start(q);
        sqlite_key_expr(&q->b, sql_key_field(ix, from));
        sqlbuf_add(&q->b, " %s ?", lower ? ">=" : "<=");
        scan_param(q, json_array_get(bound, (size_t)from));
    }
    scan_row_condition(q, ix, bound, from, to, op);
}

static void scan_order(scan_sql *q, const schema_index *ix, int from, bool descending)
{
    int key_len = schema_key_len(ix);
    for (int i = from; i < key_len; i++) {
        sqlbuf_add(&q->b, i > from ? ", " : " ORDER BY ");
        sqlite_key_expr(&q->b, sql_key_field(ix, i));
        if (descending) sqlbuf_add(&q->b, " DESC");
    }
}

/* Builds the statement of a scan (see the file comment). */
static int scan_build(const store_range *r, scan_sql *q, err_t *e)
{
    int rc = sql_check_bounds(r, e);
    if (rc) return rc;
    sqlbuf_init(&q->b, q->text, sizeof q->text);
    q->n_params = q->n_conditions = 0;
    int eq = sql_equal_prefix(r);
    int n_lo = r->lo ? (int)json_array_size(r->lo) : 0;
    int n_hi = r->hi ? (int)json_array_size(r->hi) : 0;
    /* K[0..eq) == lo[0..eq): an exclusive bound that ends there admits nothing. */
    q->empty =
        (r->lo && n_lo == eq && !r->lo_inclusive) || (r->hi && n_hi == eq && !r->hi_inclusive);
    const char *t = r->table->name, *ix = r->index->name;
    char index_name[STORE_SQL_NAME_BYTES_MAX];
    ddl_index_name(r->table, r->index, index_name);
    sqlbuf_add(&q->b, "%s FROM \"%s\" INDEXED BY \"%s\"",
               q->count ? "SELECT count(*) FROM (SELECT 1" : "SELECT doc", t, index_name);
    for (int i = 0; i < eq; i++) {
        scan_condition_start(q);
        sqlite_key_expr(&q->b, sql_key_field(r->index, i));
        sqlbuf_add(&q->b, " = ?");
        scan_param(q, json_array_get(r->lo, (size_t)i));
    }
    if (n_lo > eq) scan_bound(q, r->index, r->lo, eq, true, r->lo_inclusive);
    if (n_hi > eq) scan_bound(q, r->index, r->hi, eq, false, r->hi_inclusive);
    scan_order(q, r->index, eq, r->descending);
    sqlbuf_add(&q->b, q->count ? " LIMIT ?)" : " LIMIT ?");
    if (q->b.overflow)
        return err_set(e, ERR_INTERNAL, "scan %s.%s: statement longer than %d bytes", t, ix,
                       SQLITE_SQL_BYTES_MAX);
    return 0;
}

static int scan_bind(sqlite_conn *c, sqlite3_stmt *st, const scan_sql *q, int limit,
                     const char *what, err_t *e)
{
    for (int i = 0; i < q->n_params; i++) {
        int rc = bind_value(st, i + 1, q->params[i]);
        if (rc != SQLITE_OK) return sqlite_bind_check(c, rc, what, e);
    }
    return sqlite_bind_check(c, sqlite3_bind_int(st, q->n_params + 1, limit), what, e);
}

static int scan_rows(sqlite_conn *c, sqlite3_stmt *st, const char *table, json_t *rows,
                     const char *what, err_t *e)
{
    int rc;
    while ((rc = sqlite_stmt_step(c, st, what, e)) == 1) {
        json_t *doc;
        rc = sqlite_column_doc(st, 0, table, &doc, e);
        if (rc) return rc;
        if (json_array_append_new(rows, doc) != 0)
            return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    }
    return rc;
}

int sqlite_scan(store_conn *sc, const store_range *r, json_t **rows_out, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    scan_sql q;
    q.count = false;
    int rc = scan_build(r, &q, e);
    if (rc) return rc;
    json_t *rows = json_array();
    if (!rows) return err_set(e, ERR_NOMEM, "scan %s: out of memory", r->table->name);
    if (q.empty) {
        *rows_out = rows;
        return 0;
    }
    char what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "scan %s.%s", r->table->name, r->index->name);
    sqlite3_stmt *st;
    rc = sqlite_stmt_get(c, q.text, &st, e);
    if (rc == 0) {
        rc = scan_bind(c, st, &q, r->limit, what, e);
        if (rc == 0) rc = scan_rows(c, st, r->table->name, rows, what, e);
        sqlite_stmt_done(st);
    }
    if (rc) {
        json_decref(rows);
        return rc;
    }
    *rows_out = rows;
    return 0;
}

int sqlite_count_range(store_conn *sc, const store_range *r, int64_t *n_out, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    scan_sql q;
    q.count = true;
    int rc = scan_build(r, &q, e);
    if (rc || q.empty) return rc;
    char what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "count %s.%s", r->table->name, r->index->name);
    sqlite3_stmt *st;
    rc = sqlite_stmt_get(c, q.text, &st, e);
    if (rc) return rc;
    rc = scan_bind(c, st, &q, r->limit, what, e);
    if (rc == 0) {
        rc = sqlite_stmt_step(c, st, what, e);
        if (rc == 1) {
            *n_out = sqlite3_column_int64(st, 0);
            rc = 0;
        } else if (rc == 0) {
            rc = err_set(e, ERR_STORAGE, "%s: no row", what);
        }
    }
    sqlite_stmt_done(st);
    return rc;
}

/* --- test hooks -------------------------------------------------------------------- */

int store_sqlite_scan_plan(store_conn *sc, const store_range *r, char *out, size_t out_bytes,
                           err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    scan_sql q;
    q.count = false;
    int rc = scan_build(r, &q, e);
    if (rc) return rc;
    char sql[SQLITE_SQL_BYTES_MAX + 32];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", q.text);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sqlite_error(e, c->db, rc, "explain scan");
    rc = scan_bind(c, st, &q, r->limit, "explain scan", e);
    sqlbuf b;
    sqlbuf_init(&b, out, out_bytes);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
        sqlbuf_add(&b, "%s\n", (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    return rc;
}
