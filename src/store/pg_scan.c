/*
 * pg_scan.c — index range scans on the PostgreSQL engine (store_scan), and
 * their plans for tests (store_pg_scan_plan).
 *
 * Every field of an index key is indexed as three typed columns (rank, num,
 * str; see pg_ddl.c), none of them ever NULL, so row-value bounds (rank, num,
 * str, creation_time, id) > ($1, …) compare definitely, and PostgreSQL seeks
 * the index with them directly. A bound value is encoded into the same three
 * parameters here, by the client. A scan fixes the prefix both bounds share
 * with equalities and compares the rest of each bound as a row value — all of
 * them index conditions of "T_<index>" — ordered as the index.
 *
 * Callers: store.c through pg_ops, on the thread that owns the connection.
 * Thread: the thread that owns the connection.
 */
#include "base/invariant.h"
#include "store/pg_impl.h"

#include "store/sql_common.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters: per key value 1 (a column) or 3 (rank, num, str), for the
 * equality prefix and both bounds, then the LIMIT. */
#define SCAN_PARAMS_MAX (3 * 3 * SCHEMA_KEY_LEN_MAX + 1)

/* The statement of a scan and its parameters, in order; the LIMIT last. */
typedef struct scan_sql {
    char text[PG_SQL_BYTES_MAX];
    sqlbuf b;
    const char *values[SCAN_PARAMS_MAX];
    char numbers[SCAN_PARAMS_MAX][PG_NUMBER_BYTES_MAX]; /* storage for formatted values */
    int n_params;
    int n_conditions;
    bool empty; /* the bounds admit no key: nothing to run */
    bool count; /* SELECT count(*) of the range (up to the LIMIT) instead of its documents */
} scan_sql;

/* Appends the placeholder of a new parameter whose value is text; text NULL
 * means "formatted into this parameter's own buffer", which is returned. */
static char *scan_param(scan_sql *q, const char *text)
{
    ASSERT(q->n_params < SCAN_PARAMS_MAX);
    int i = q->n_params++;
    q->values[i] = text ? text : q->numbers[i];
    sqlbuf_add(&q->b, "$%d", i + 1);
    return q->numbers[i];
}

/* The three parameters (rank, num, str) of an extracted field's value. */
static void scan_typed(scan_sql *q, const char *rank, const char *num, const char *str)
{
    scan_param(q, rank);
    sqlbuf_add(&q->b, ", ");
    scan_param(q, num);
    sqlbuf_add(&q->b, ", ");
    scan_param(q, str);
}

static void format_number(char out[PG_NUMBER_BYTES_MAX], const json_t *v)
{
    if (json_is_integer(v))
        snprintf(out, PG_NUMBER_BYTES_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        pg_format_double(out, json_real_value(v));
}

/* The parameters of value v at key position `field`, as its index columns
 * are computed (see pg_ddl.c). */
static int scan_value(scan_sql *q, const char *field, const json_t *v, err_t *e)
{
    const char *column = sql_system_column(field);
    if (column && strcmp(column, "creation_time") == 0) {
        if (!json_is_number(v))
            return err_set(e, ERR_INTERNAL, "scan: a bound on _creationTime is not a number");
        format_number(scan_param(q, NULL), v);
        return 0;
    }
    if (column) {
        if (!json_is_string(v))
            return err_set(e, ERR_INTERNAL, "scan: a bound on _id is not a string");
        scan_param(q, json_string_value(v));
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        scan_param(q, "1");
        sqlbuf_add(&q->b, ", ");
        format_number(scan_param(q, NULL), v);
        sqlbuf_add(&q->b, ", ");
        scan_param(q, "");
        return 0;
    case JSON_STRING: /* cut at a U+0000: see bound_length */
        scan_typed(q, "2", "0", json_string_value(v));
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        scan_typed(q, "3", "0", json_is_true(v) ? "true" : "false");
        return 0;
    case JSON_NULL:
        scan_typed(q, "0", "0", "");
        return 0;
    default:
        return err_set(e, ERR_INTERNAL, "scan: a bound value is not a scalar");
    }
}

static void scan_condition_start(scan_sql *q)
{
    sqlbuf_add(&q->b, q->n_conditions++ ? " AND " : " WHERE ");
}

/* "(cols of from..to-1) op ($…)" for the bound's values from..to. */
static int scan_row_condition(scan_sql *q, const schema_index *ix, const json_t *bound, int from,
                              int to, const char *op, err_t *e)
{
    scan_condition_start(q);
    sqlbuf_add(&q->b, "(");
    for (int i = from; i < to; i++) {
        if (i > from) sqlbuf_add(&q->b, ", ");
        pg_key_exprs(&q->b, sql_key_field(ix, i), "");
    }
    sqlbuf_add(&q->b, ") %s (", op);
    for (int i = from; i < to; i++) {
        if (i > from) sqlbuf_add(&q->b, ", ");
        int rc = scan_value(q, sql_key_field(ix, i), json_array_get(bound, (size_t)i), e);
        if (rc) return rc;
    }
    sqlbuf_add(&q->b, ")");
    return 0;
}

static bool has_nul(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

/* A string holding U+0000 cannot be stored in jsonb, nor sent as a text
 * parameter; the bound is cut after the first such value, whose text up to
 * the U+0000 (prefix p) is what gets sent. No stored string lies strictly
 * between p and p+"\0…", so "> or >= that value" is "> p", and "< or <=" is
 * "<= p": the cut bound is exclusive below and inclusive above. */
static int bound_length(const json_t *bound, int from, bool *inclusive, bool lower)
{
    int n = (int)json_array_size(bound);
    for (int i = from; i < n; i++)
        if (has_nul(json_array_get(bound, (size_t)i))) {
            *inclusive = !lower;
            return i + 1;
        }
    return n;
}

static void scan_order(scan_sql *q, const schema_index *ix, int from, bool descending)
{
    int key_len = schema_key_len(ix);
    for (int i = from; i < key_len; i++) {
        sqlbuf_add(&q->b, i > from ? ", " : " ORDER BY ");
        pg_key_exprs(&q->b, sql_key_field(ix, i), descending ? " DESC" : "");
    }
}

/* Builds the statement of a scan: equalities for the prefix both bounds
 * share, then a row-value comparison for the rest of each bound — all of
 * them index conditions of "T_<index>" — ordered as the index. */
static int scan_build(const store_range *r, scan_sql *q, err_t *e)
{
    int rc = sql_check_bounds(r, e);
    if (rc) return rc;
    sqlbuf_init(&q->b, q->text, sizeof q->text);
    q->n_params = q->n_conditions = 0;
    q->empty = false;
    int eq = sql_equal_prefix(r);
    for (int i = 0; i < eq; i++)
        if (has_nul(json_array_get(r->lo, (size_t)i))) q->empty = true; /* no key equals it */
    bool lo_incl = r->lo_inclusive, hi_incl = r->hi_inclusive;
    int n_lo = r->lo ? bound_length(r->lo, eq, &lo_incl, true) : 0;
    int n_hi = r->hi ? bound_length(r->hi, eq, &hi_incl, false) : 0;
    /* K[0..eq) == lo[0..eq): an exclusive bound that ends there admits nothing. */
    q->empty = q->empty || (r->lo && n_lo == eq && !lo_incl) || (r->hi && n_hi == eq && !hi_incl);
    const char *t = r->table->name;
    sqlbuf_add(&q->b, "%s FROM \"%s\"", q->count ? "SELECT count(*) FROM (SELECT 1" : "SELECT doc",
               t);
    for (int i = 0; i < eq && rc == 0; i++) {
        const char *field = sql_key_field(r->index, i);
        scan_condition_start(q);
        sqlbuf_add(&q->b, "(");
        pg_key_exprs(&q->b, field, "");
        sqlbuf_add(&q->b, ") = (");
        rc = scan_value(q, field, json_array_get(r->lo, (size_t)i), e);
        sqlbuf_add(&q->b, ")");
    }
    if (rc == 0 && n_lo > eq)
        rc = scan_row_condition(q, r->index, r->lo, eq, n_lo, lo_incl ? ">=" : ">", e);
    if (rc == 0 && n_hi > eq)
        rc = scan_row_condition(q, r->index, r->hi, eq, n_hi, hi_incl ? "<=" : "<", e);
    if (rc) return rc;
    scan_order(q, r->index, eq, r->descending);
    sqlbuf_add(&q->b, " LIMIT ");
    snprintf(scan_param(q, NULL), PG_NUMBER_BYTES_MAX, "%d", r->limit);
    if (q->count) sqlbuf_add(&q->b, ") AS range_rows");
    if (q->b.overflow)
        return err_set(e, ERR_INTERNAL, "scan %s.%s: statement longer than %d bytes", t,
                       r->index->name, PG_SQL_BYTES_MAX);
    return 0;
}

int pg_scan(store_conn *sc, const store_range *r, json_t **rows_out, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    scan_sql *q = malloc(sizeof *q);
    json_t *rows = json_array();
    if (!q || !rows) {
        free(q);
        json_decref(rows);
        return err_set(e, ERR_NOMEM, "scan %s: out of memory", r->table->name);
    }
    q->count = false;
    int rc = scan_build(r, q, e);
    if (rc == 0 && !q->empty) {
        char what[STORE_SQL_NAME_BYTES_MAX];
        snprintf(what, sizeof what, "scan %s.%s", r->table->name, r->index->name);
        PGresult *res;
        rc = pg_stmt_run(c, q->text, q->n_params, q->values, what, &res, e);
        int n = rc == 0 ? PQntuples(res) : 0;
        ASSERT(n <= r->limit);
        for (int i = 0; i < n && rc == 0; i++) {
            json_t *doc;
            rc = pg_result_doc(res, i, r->table->name, &doc, e);
            if (rc == 0 && json_array_append_new(rows, doc) != 0)
                rc = err_set(e, ERR_NOMEM, "%s: out of memory", what);
        }
        PQclear(res);
    }
    free(q);
    if (rc) {
        json_decref(rows);
        return rc;
    }
    *rows_out = rows;
    return 0;
}

int pg_count_range(store_conn *sc, const store_range *r, int64_t *n_out, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    scan_sql *q = malloc(sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "count %s: out of memory", r->table->name);
    q->count = true;
    int rc = scan_build(r, q, e);
    if (rc == 0 && !q->empty) {
        char what[STORE_SQL_NAME_BYTES_MAX];
        snprintf(what, sizeof what, "count %s.%s", r->table->name, r->index->name);
        PGresult *res;
        rc = pg_stmt_run(c, q->text, q->n_params, q->values, what, &res, e);
        if (rc == 0 && PQntuples(res) == 1)
            *n_out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (rc == 0)
            rc = err_set(e, ERR_STORAGE, "%s: no row", what);
        PQclear(res);
    }
    free(q);
    return rc;
}

/* --- test hooks -------------------------------------------------------------------- */

/* EXPLAIN of a scan's statement: with its parameters bound (the custom plan
 * an unnamed statement gets), or, when generic, of the statement prepared
 * under a name with plan_cache_mode = force_generic_plan — the plan a cached
 * statement may settle on after a few executions. */
static int explain_scan(pg_conn *c, const scan_sql *q, bool generic, sqlbuf *out, err_t *e)
{
    size_t bytes = 2 * PG_SQL_BYTES_MAX;
    char *sql = malloc(bytes);
    if (!sql) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    sqlbuf b;
    sqlbuf_init(&b, sql, bytes);
    PGresult *res = NULL;
    int rc = 0;
    if (!generic) {
        sqlbuf_add(&b, "EXPLAIN (COSTS OFF) %s", q->text);
        res = PQexecParams(c->pg, sql, q->n_params, NULL, q->values, NULL, NULL, 0);
    } else {
        PGresult *prep = PQprepare(c->pg, "dojo_explain", q->text, q->n_params, NULL);
        if (PQresultStatus(prep) != PGRES_COMMAND_OK) rc = pg_error(e, c->pg, prep, "explain scan");
        PQclear(prep);
        sqlbuf_add(&b, "EXPLAIN (COSTS OFF) EXECUTE dojo_explain(");
        for (int i = 0; i < q->n_params && rc == 0; i++) {
            char *literal = PQescapeLiteral(c->pg, q->values[i], strlen(q->values[i]));
            if (!literal) rc = pg_error(e, c->pg, NULL, "explain scan");
            sqlbuf_add(&b, "%s%s", i ? ", " : "", literal ? literal : "");
            PQfreemem(literal);
        }
        sqlbuf_add(&b, ")");
        if (rc == 0) {
            PQclear(PQexec(c->pg, "SET plan_cache_mode = force_generic_plan"));
            res = PQexec(c->pg, sql);
            PQclear(PQexec(c->pg, "RESET plan_cache_mode"));
        }
        PQclear(PQexec(c->pg, "DEALLOCATE dojo_explain"));
    }
    ASSERT(!b.overflow);
    if (rc == 0 && PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_error(e, c->pg, res, "explain scan");
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        sqlbuf_add(out, "%s\n", PQgetvalue(res, i, 0));
    PQclear(res);
    free(sql);
    return rc;
}

int store_pg_scan_plan(store_conn *sc, const store_range *r, bool generic, char *out,
                       size_t out_bytes, err_t *e)
{
    scan_sql *q = malloc(sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "explain scan: out of memory");
    sqlbuf b;
    sqlbuf_init(&b, out, out_bytes);
    q->count = false;
    int rc = scan_build(r, q, e);
    if (rc == 0) rc = explain_scan(pg_conn_of(sc), q, generic, &b, e);
    free(q);
    return rc;
}
