/*
 * sql_scan.c — index range scans (store_scan), written once for both
 * engines over their drivers.
 *
 * Every value of an index key is a plain column: the key columns hold the
 * order-preserving bytes of key_codec.h (a missing or null field is 00, the
 * smallest), then creation_time and id. None is ever NULL, so row-value
 * bounds such as (k_userId, creation_time, id) > (?, ?, ?) compare
 * definitely, and both databases seek the index with them directly. A scan
 * fixes the prefix both bounds share with equalities, compares the rest of
 * each bound as a row value, and orders by the index's remaining columns —
 * all of them conditions and order of the index "T_<index>", which SQLite is
 * told to use (INDEXED BY: a statement that cannot use it fails to prepare
 * instead of silently scanning the table).
 *
 * U+0000 in a bound on _id: no stored id holds one, and a text parameter
 * cannot carry one to PostgreSQL; the bound is cut after that value, whose
 * text up to the U+0000 (prefix p) is what is sent. No stored id lies
 * strictly between p and p+"\0…", so "> or >= that value" is "> p", and
 * "< or <=" is "<= p". (Key columns are bytes: they carry U+0000 as it is.)
 *
 * Callers: store.c, on the thread that owns the connection; the engines'
 * plan test hooks (sql_scan_build).
 * Thread: the thread that owns the connection.
 */
#include "store/sql_docs.h"

#include "base/invariant.h"
#include "store/ddl_common.h"
#include "store/sql_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool has_nul(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

/* Appends the placeholder of v, the value of key field `field`, bound as that
 * field's column holds it. */
static int scan_value(const sql_driver *d, sql_scan_stmt *q, const char *field, const json_t *v,
                      err_t *e)
{
    ASSERT(q->n_params < SQL_SCAN_PARAMS_MAX - 1);
    int i = q->n_params++;
    const char *column = sql_system_column(field);
    if (column && strcmp(column, SQL_CREATION_TIME_COLUMN) == 0) {
        q->params[i] = sqlv_double(json_number_value(v));
    } else if (column) {
        const char *s = json_string_value(v);
        q->params[i] = sqlv_text(s, strlen(s)); /* cut at a U+0000: see the file comment */
    } else {
        if (key_encode(v, &q->keys[i]) != 0) return err_set(e, ERR_NOMEM, "scan: out of memory");
        q->params[i] = sqlv_blob(q->keys[i].bytes, q->keys[i].len);
    }
    d->param(&q->b, i + 1);
    return 0;
}

static void condition_start(sql_scan_stmt *q)
{
    sqlbuf_add(&q->b, q->n_conditions++ ? " AND " : " WHERE ");
}

static void column(sql_scan_stmt *q, const schema_index *ix, int i)
{
    char name[SQL_COLUMN_BYTES_MAX];
    sql_column_of(sql_key_field(ix, i), name);
    sqlbuf_add(&q->b, "\"%s\"", name);
}

/* "(columns from..to-1) op (values)" for the bound's values from..to. */
static int row_condition(const sql_driver *d, sql_scan_stmt *q, const schema_index *ix,
                         const json_t *bound, int from, int to, const char *op, err_t *e)
{
    condition_start(q);
    sqlbuf_add(&q->b, "(");
    for (int i = from; i < to; i++) {
        if (i > from) sqlbuf_add(&q->b, ", ");
        column(q, ix, i);
    }
    sqlbuf_add(&q->b, ") %s (", op);
    for (int i = from; i < to; i++) {
        if (i > from) sqlbuf_add(&q->b, ", ");
        int rc = scan_value(d, q, sql_key_field(ix, i), json_array_get(bound, (size_t)i), e);
        if (rc) return rc;
    }
    sqlbuf_add(&q->b, ")");
    return 0;
}

/* How many values of a bound to use (see the file comment on U+0000). */
static int bound_length(const store_range *r, const json_t *bound, int from, bool *inclusive,
                        bool lower)
{
    int n = (int)json_array_size(bound);
    for (int i = from; i < n; i++)
        if (sql_system_column(sql_key_field(r->index, i)) &&
            has_nul(json_array_get(bound, (size_t)i))) {
            *inclusive = !lower;
            return i + 1;
        }
    return n;
}

void sql_scan_free(sql_scan_stmt *q)
{
    for (int i = 0; i < q->n_params; i++)
        key_buf_free(&q->keys[i]);
    q->n_params = 0;
}

int sql_scan_build(const sql_driver *d, const store_range *r, bool count, sql_scan_stmt *q,
                   err_t *e)
{
    memset(q->keys, 0, sizeof q->keys);
    q->n_params = q->n_conditions = 0;
    q->empty = false;
    sqlbuf_init(&q->b, q->text, sizeof q->text);
    int rc = sql_check_bounds(r, e);
    if (rc) return rc;
    int eq = sql_equal_prefix(r);
    for (int i = 0; i < eq; i++)
        if (sql_system_column(sql_key_field(r->index, i)) &&
            has_nul(json_array_get(r->lo, (size_t)i)))
            q->empty = true; /* no stored id equals it */
    bool lo_incl = r->lo_inclusive, hi_incl = r->hi_inclusive;
    int n_lo = r->lo ? bound_length(r, r->lo, eq, &lo_incl, true) : 0;
    int n_hi = r->hi ? bound_length(r, r->hi, eq, &hi_incl, false) : 0;
    /* K[0..eq) == lo[0..eq): an exclusive bound that ends there admits nothing. */
    q->empty = q->empty || (r->lo && n_lo == eq && !lo_incl) || (r->hi && n_hi == eq && !hi_incl);
    char index_name[STORE_SQL_NAME_BYTES_MAX];
    ddl_index_name(r->table, r->index, index_name);
    sqlbuf_add(&q->b, "%s FROM \"%s\"",
               count ? "SELECT count(*) FROM (SELECT 1" : "SELECT " SQL_ROW_COLUMNS,
               r->table->name);
    d->use_index(&q->b, index_name);
    for (int i = 0; i < eq && rc == 0; i++) {
        condition_start(q);
        column(q, r->index, i);
        sqlbuf_add(&q->b, " = ");
        rc = scan_value(d, q, sql_key_field(r->index, i), json_array_get(r->lo, (size_t)i), e);
    }
    /* PostgreSQL: a bound past the equalities is compared from the index's
     * first column on (the equal ones included): only this index can take
     * that as a condition, so a planner that sees few rows per value does
     * not prefer another index whose order merely matches the rest. SQLite
     * seeks a row value only when it starts past the equalities. */
    int from = d->bounds_from_first_column ? 0 : eq;
    if (rc == 0 && n_lo > eq)
        rc = row_condition(d, q, r->index, r->lo, from, n_lo, lo_incl ? ">=" : ">", e);
    if (rc == 0 && n_hi > eq)
        rc = row_condition(d, q, r->index, r->hi, from, n_hi, hi_incl ? "<=" : "<", e);
    for (int i = eq; i < schema_key_len(r->index) && rc == 0; i++) {
        sqlbuf_add(&q->b, i > eq ? ", " : " ORDER BY ");
        column(q, r->index, i);
        if (r->descending) sqlbuf_add(&q->b, " DESC");
    }
    if (rc == 0) {
        sqlbuf_add(&q->b, " LIMIT ");
        q->params[q->n_params] = sqlv_int64(r->limit);
        d->param(&q->b, ++q->n_params);
        if (count) sqlbuf_add(&q->b, ") AS range_rows");
    }
    if (rc == 0 && q->b.overflow)
        rc = err_set(e, ERR_INTERNAL, "scan %s.%s: statement longer than %d bytes", r->table->name,
                     r->index->name, SQL_TEXT_BYTES_MAX);
    if (rc) sql_scan_free(q);
    return rc;
}

/* --- the transaction's cache (sql_cache.h) --------------------------------------------- */

/* A scan's key in the cache: its statement and the bytes of its parameters. */
static uint8_t *cache_key(const sql_scan_stmt *q, size_t *len_out)
{
    size_t len = q->b.len + 1;
    for (int i = 0; i < q->n_params; i++)
        len += 1 + sizeof(size_t) + (q->params[i].bytes ? q->params[i].len : sizeof(double));
    uint8_t *key = malloc(len), *p = key;
    if (!key) return NULL;
    memcpy(p, q->text, q->b.len + 1);
    p += q->b.len + 1;
    for (int i = 0; i < q->n_params; i++) {
        const sql_value *v = &q->params[i];
        *p++ = (uint8_t)v->type;
        size_t n = v->bytes ? v->len : sizeof(double);
        memcpy(p, &n, sizeof n);
        p += sizeof n;
        if (v->bytes)
            memcpy(p, v->bytes, n);
        else if (v->type == SQLV_DOUBLE)
            memcpy(p, &v->d, n);
        else
            memcpy(p, &v->i, n);
        p += n;
    }
    *len_out = (size_t)(p - key);
    return key;
}

/* Rows of a scan, copied as they are read, for the cache. */
typedef struct scan_copy {
    sql_cached_row *rows;
    int n, cap;
    bool failed;
} scan_copy;

static void copy_row(const sql_driver *d, sql_result *res, scan_copy *sc)
{
    if (sc->failed) return;
    if (sc->n == sc->cap) {
        int cap = sc->cap ? sc->cap * 2 : 16;
        sql_cached_row *grown = realloc(sc->rows, (size_t)cap * sizeof *grown);
        if (!grown) {
            sc->failed = true;
            return;
        }
        sc->rows = grown;
        sc->cap = cap;
    }
    size_t id_len = 0, data_len = 0;
    const uint8_t *id = d->col_bytes(res, 0, &id_len), *data = d->col_bytes(res, 2, &data_len);
    uint8_t *copy = id && data ? malloc(id_len + data_len + 1) : NULL;
    if (!copy) {
        sc->failed = true;
        return;
    }
    memcpy(copy, id, id_len);
    memcpy(copy + id_len, data, data_len);
    sc->rows[sc->n++] = (sql_cached_row){.id = (const char *)copy,
                                         .id_len = id_len,
                                         .creation_time = d->col_double(res, 1),
                                         .data = copy + id_len,
                                         .data_len = data_len};
}

static void scan_copy_free(scan_copy *sc)
{
    for (int i = 0; i < sc->n; i++)
        free((void *)sc->rows[i].id);
    free(sc->rows);
}

/* A scan answered from the cache into rows; false when it has no answer. */
static bool scan_cached(store_conn *c, const uint8_t *key, size_t key_len, const char *what,
                        json_t *rows, int *rc, err_t *e)
{
    const sql_cached_row *cached;
    int n;
    if (!key || !sql_cache_get_scan(c->cache, key, key_len, &cached, &n)) return false;
    *rc = 0;
    for (int i = 0; i < n && *rc == 0; i++) {
        json_t *doc;
        *rc = sql_cached_doc(&cached[i], what, &doc, e);
        if (*rc == 0 && json_array_append_new(rows, doc) != 0)
            *rc = err_set(e, ERR_NOMEM, "%s: out of memory", what);
    }
    return true;
}

/* The point a scan fixes (sql_cache.h), when it is one: its equalities
 * fix every field of an index that has points. */
static bool scan_point(const store_range *r, const sql_scan_stmt *q, sql_cache_point *p)
{
    const schema_index *ix = r->index;
    if (q->empty || !sql_point_index(ix) || sql_equal_prefix(r) < ix->n_fields) return false;
    sql_cache_point_start(p, ix);
    for (int i = 0; i < ix->n_fields; i++) {
        /* the equalities are the first parameters, key bytes for document fields */
        ASSERT(q->params[i].type == SQLV_BLOB && q->keys[i].bytes);
        if (!sql_cache_point_add(p, q->keys[i].bytes, q->keys[i].len)) return false;
    }
    return true;
}

/* Reads the rows of a scan that ran, and ends its result: each row kept in
 * the transaction's cache by id and copied for the scan's own entry, and
 * (rows not NULL) decoded into rows. */
static int read_rows(const sql_driver *d, store_conn *c, const store_range *r, sql_result *res,
                     const char *what, json_t *rows, scan_copy *copy, err_t *e)
{
    int rc, n = 0;
    while ((rc = d->next(res, what, e)) == 1) {
        ASSERT(++n <= r->limit);
        sql_cache_row(d, c, r->table, res, 0);
        copy_row(d, res, copy);
        if (!rows) continue;
        json_t *doc;
        rc = sql_read_doc(d, res, 0, what, &doc, e);
        if (rc == 0 && json_array_append_new(rows, doc) != 0)
            rc = err_set(e, ERR_NOMEM, "%s: out of memory", what);
        if (rc) break;
    }
    d->done(res);
    return rc;
}

/* Keeps the rows of a scan read whole (copy) under its key, as a point
 * scan when it is one. */
static void keep_scan(store_conn *c, const store_range *r, const sql_scan_stmt *q,
                      const uint8_t *key, size_t key_len, const scan_copy *copy)
{
    if (copy->failed) return;
    sql_cache_point p;
    bool point = scan_point(r, q, &p);
    sql_cache_put_scan(c->cache, r->table, key, key_len, copy->rows, copy->n, point ? &p : NULL);
}

/* --- scans -------------------------------------------------------------------------------- */

int sql_scan(const sql_driver *d, store_conn *c, const store_range *r, json_t **rows_out, err_t *e)
{
    sql_scan_stmt *q = malloc(sizeof *q);
    json_t *rows = json_array();
    if (!q || !rows) {
        free(q);
        json_decref(rows);
        return err_set(e, ERR_NOMEM, "scan %s: out of memory", r->table->name);
    }
    int rc = sql_scan_build(d, r, false, q, e);
    size_t key_len = 0;
    uint8_t *key = rc == 0 && !q->empty && c->cache ? cache_key(q, &key_len) : NULL;
    char what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(what, sizeof what, "scan %s.%s", r->table->name, r->index->name);
    if (rc == 0 && !q->empty && !scan_cached(c, key, key_len, what, rows, &rc, e)) {
        sql_stmt s = {.sql = q->text, .params = q->params, .n_params = q->n_params, .what = what};
        sql_result res;
        scan_copy copy = {.failed = !key};
        rc = d->run(c, &s, &res, e);
        if (rc == 0) rc = read_rows(d, c, r, &res, what, rows, &copy, e);
        if (rc == 0) keep_scan(c, r, q, key, key_len, &copy);
        scan_copy_free(&copy);
    }
    free(key);
    sql_scan_free(q);
    free(q);
    if (rc) {
        json_decref(rows);
        return rc;
    }
    *rows_out = rows;
    return 0;
}

int sql_count_range(const sql_driver *d, store_conn *c, const store_range *r, int64_t *n_out,
                    err_t *e)
{
    sql_scan_stmt *q = malloc(sizeof *q);
    if (!q) return err_set(e, ERR_NOMEM, "count %s: out of memory", r->table->name);
    int rc = sql_scan_build(d, r, true, q, e);
    if (rc == 0 && !q->empty) {
        char what[STORE_SQL_NAME_BYTES_MAX];
        snprintf(what, sizeof what, "count %s.%s", r->table->name, r->index->name);
        sql_stmt s = {.sql = q->text, .params = q->params, .n_params = q->n_params, .what = what};
        sql_result res;
        rc = d->run(c, &s, &res, e);
        if (rc == 0) {
            rc = d->next(&res, what, e);
            if (rc == 1) {
                *n_out = d->col_int64(&res, 0);
                rc = 0;
            } else if (rc == 0) {
                rc = err_set(e, ERR_STORAGE, "%s: no row", what);
            }
            d->done(&res);
        }
    }
    sql_scan_free(q);
    free(q);
    return rc;
}

/* --- prefetching a group's reads ------------------------------------------------------------ */

/* One scan read ahead: its statement and its key in the cache. */
typedef struct prefetched {
    sql_scan_stmt q;
    bool built;
    uint8_t *key;
    size_t key_len;
} prefetched;

/* Reads n (at most SQL_RUN_MANY_MAX) scans the cache does not hold yet in
 * one round trip, and keeps them. */
static int prefetch_batch(const sql_driver *d, store_conn *c, const store_range *ranges, int n,
                          err_t *e)
{
    ASSERT(n > 0 && n <= SQL_RUN_MANY_MAX);
    prefetched *p = calloc((size_t)n, sizeof *p);
    if (!p) return err_set(e, ERR_NOMEM, "prefetch: out of memory");
    sql_stmt stmts[SQL_RUN_MANY_MAX];
    sql_result res[SQL_RUN_MANY_MAX];
    int of[SQL_RUN_MANY_MAX]; /* the range of each statement */
    int m = 0, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = sql_scan_build(d, &ranges[i], false, &p[i].q, e);
        p[i].built = rc == 0;
        const sql_cached_row *cached;
        int hits;
        if (rc || p[i].q.empty || !(p[i].key = cache_key(&p[i].q, &p[i].key_len)) ||
            sql_cache_get_scan(c->cache, p[i].key, p[i].key_len, &cached, &hits))
            continue; /* nothing to read, or read already */
        stmts[m] = (sql_stmt){.sql = p[i].q.text,
                              .params = p[i].q.params,
                              .n_params = p[i].q.n_params,
                              .what = "prefetch"};
        of[m++] = i;
    }
    int ran = rc == 0 && m > 0 && (rc = d->run_many(c, stmts, m, res, e)) == 0 ? m : 0;
    for (int j = 0; j < ran; j++) {
        prefetched *x = &p[of[j]];
        scan_copy copy = {0};
        if (rc == 0) {
            rc = read_rows(d, c, &ranges[of[j]], &res[j], "prefetch", NULL, &copy, e);
            if (rc == 0) keep_scan(c, &ranges[of[j]], &x->q, x->key, x->key_len, &copy);
        } else {
            d->done(&res[j]);
        }
        scan_copy_free(&copy);
    }
    for (int i = 0; i < n; i++) {
        if (p[i].built) sql_scan_free(&p[i].q);
        free(p[i].key);
    }
    free(p);
    return rc;
}

int sql_prefetch(const sql_driver *d, store_conn *c, const store_range *ranges, int n, err_t *e)
{
    if (!c->cache || !d->run_many) return 0;
    int rc = 0;
    for (int from = 0; from < n && rc == 0; from += SQL_RUN_MANY_MAX) {
        int batch = n - from < SQL_RUN_MANY_MAX ? n - from : SQL_RUN_MANY_MAX;
        rc = prefetch_batch(d, c, ranges + from, batch, e);
    }
    return rc;
}
