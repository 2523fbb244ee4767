/*
 * ctx.c — the database API of a function's transaction (see ctx.h): reads
 * that record their ranges, writes that validate and record their documents,
 * and cursor-based paging.
 * Thread: the thread running the transaction (reader or storage thread).
 */
#include "engine/ctx.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "engine/system_tables.h"
#include "engine/validator.h"

#define CURSOR_END "END"
#define CURSOR_BYTES_MAX 4096

void ctx_init(ctx *c, store_conn *conn, const schema *s, bool writable)
{
    memset(c, 0, sizeof *c);
    c->conn = conn;
    c->schema = s;
    c->writable = writable;
    c->rows_max = LIMIT_QUERY_ROWS_MAX;
    read_set_init(&c->reads);
    write_set_init(&c->writes);
    c->log_lines = json_array();
    err_init(&c->err);
}

void ctx_release(ctx *c)
{
    json_decref(c->owned);
    read_set_free(&c->reads);
    write_set_free(&c->writes);
    json_decref(c->log_lines);
    free(c->journal_out);
    err_clear(&c->err);
    memset(c, 0, sizeof *c);
}

json_t *ctx_own(ctx *c, json_t *v)
{
    if (!v) return NULL;
    if (!c->owned && !(c->owned = json_array())) {
        json_decref(v);
        return NULL;
    }
    ASSERT(v != c->owned);
    /* The array takes the reference, or releases v when it cannot grow. */
    return json_array_append_new(c->owned, v) == 0 ? v : NULL;
}

size_t ctx_mark(const ctx *c)
{
    return c->owned ? json_array_size(c->owned) : 0;
}

void ctx_rewind(ctx *c, size_t mark)
{
    size_t n = ctx_mark(c);
    ASSERT(mark <= n && "a mark of another ctx, or rewound past already");
    while (n > mark)
        json_array_remove(c->owned, --n);
}

/* Hands a read's output to the ctx (see ctx_own); out of memory fails the
 * call. */
static int own_output(ctx *c, json_t **out)
{
    if (!*out || ctx_own(c, *out)) return 0;
    *out = NULL;
    return ctx_fail(c, ERR_NOMEM, NULL, "out of memory");
}

const char *ctx_public_url(const ctx *c)
{
    return c->public_url ? c->public_url : "";
}

const json_t *ctx_identity(const ctx *c)
{
    return c->identity;
}

const char *ctx_token_identifier(const ctx *c)
{
    return c->identity ? json_string_value(json_object_get(c->identity, "tokenIdentifier")) : NULL;
}

int ctx_fail(ctx *c, int code, json_t *extra, const char *fmt, ...)
{
    char msg[ERR_MSG_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err_is_application(code)) return err_app(&c->err, code, extra, "%s", msg);
    json_decref(extra);
    return err_set(&c->err, code, "%s", msg);
}

void ctx_log(ctx *c, const char *level, const char *fmt, ...)
{
    char line[LIMIT_LOG_LINE_BYTES_MAX];
    int n = snprintf(line, sizeof line, "[%s] ", level);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    json_array_append_new(c->log_lines, json_string(line));
}

const char *ctx_table_of_id(const schema *s, const char *id)
{
    const schema_table *t = schema_table_by_number(s, id_table_number(id));
    return t ? t->name : NULL;
}

static const schema_table *table_or_die(ctx *c, const char *name)
{
    const schema_table *t = schema_table_by_name(c->schema, name);
    ASSERT(t && "unknown table: a programmer error in app/");
    return t;
}

/* Store errors are operating errors: keep the detail for the log. */
static int store_failed(ctx *c, int rc, err_t *e)
{
    err_move(&c->err, e);
    return rc;
}

/* --- reads ------------------------------------------------------------------ */

int db_get(ctx *c, const char *table, const char *id, json_t **doc_out)
{
    const schema_table *t = table_or_die(c, table);
    *doc_out = NULL;
    if (c->record_reads) read_set_add_point(&c->reads, t, id);
    if (id_table_number(id) != t->number) return 0;
    err_t e;
    err_init(&e);
    int rc = store_get(c->conn, t, id, doc_out, &e);
    if (rc) return store_failed(c, rc, &e);
    c->rows_read++;
    return own_output(c, doc_out);
}

static json_t *array_concat(const json_t *prefix, const json_t *last)
{
    json_t *a = prefix ? json_copy((json_t *)prefix) : json_array();
    if (last) json_array_append(a, (json_t *)last);
    return a;
}

/* The rows of one store range (up to r->limit); a range with more rows than
 * the ctx's row budget has left fails "Too many documents read". Records
 * the part of the range the rows covered (the whole range unless the limit
 * cut it short, in which case it ends at the last row returned). */
static int scan_range(ctx *c, store_range *r, json_t **rows_out)
{
    int budget = c->rows_max - c->rows_read;
    if (budget <= 0)
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Too many documents read: a function may read at most %d", c->rows_max);
    /* One row past the budget tells a range that does not fit from one
     * that just fits: never a silently shortened answer. */
    bool capped = r->limit > budget;
    if (capped) r->limit = budget + 1;
    err_t e;
    err_init(&e);
    int rc = store_scan(c->conn, r, rows_out, &e);
    if (rc) return store_failed(c, rc, &e);
    int n = (int)json_array_size(*rows_out);
    if (capped && n > budget) {
        json_decref(*rows_out);
        *rows_out = NULL;
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Too many documents read: a function may read at most %d", c->rows_max);
    }
    c->rows_read += n;
    if (!c->record_reads) return 0;
    json_t *lo = r->lo, *hi = r->hi;
    bool lo_incl = r->lo_inclusive, hi_incl = r->hi_inclusive;
    json_t *edge = NULL;
    if (n == r->limit && n > 0) {
        edge = schema_key_of(r->index, json_array_get(*rows_out, (size_t)n - 1));
        if (r->descending)
            lo = edge, lo_incl = true;
        else
            hi = edge, hi_incl = true;
    }
    read_set_add(&c->reads, r->table, r->index, lo, lo_incl, hi, hi_incl);
    json_decref(edge);
    return 0;
}

static int query_range(ctx *c, const db_query *q, store_range *r, json_t **lo, json_t **hi)
{
    const schema_table *t = table_or_die(c, q->table);
    const schema_index *ix =
        q->index ? schema_index_by_name(t, q->index) : &schema_by_creation_time;
    ASSERT(ix && "unknown index: a programmer error in app/");
    ASSERT(!q->eq || (int)json_array_size(q->eq) <= ix->n_fields);
    memset(r, 0, sizeof *r);
    r->table = t;
    r->index = ix;
    r->descending = q->descending;
    r->limit = q->limit > 0 ? q->limit : INT_MAX; /* scan_range bounds it by the budget */
    *lo = *hi = NULL;
    if (q->eq && json_array_size(q->eq) > 0) {
        *lo = json_incref(q->eq);
        *hi = json_incref(q->eq);
        r->lo_inclusive = r->hi_inclusive = true;
    }
    if (q->after) {
        json_decref(*lo);
        *lo = array_concat(q->eq, q->after);
        r->lo_inclusive = false;
    }
    if (q->upto) {
        json_decref(*hi);
        *hi = array_concat(q->eq, q->upto);
        r->hi_inclusive = true;
    }
    r->lo = *lo;
    r->hi = *hi;
    return 0;
}

int db_query_rows(ctx *c, const db_query *q, json_t **rows_out)
{
    store_range r;
    json_t *lo, *hi;
    query_range(c, q, &r, &lo, &hi);
    int rc = scan_range(c, &r, rows_out);
    json_decref(lo);
    json_decref(hi);
    return rc ? rc : own_output(c, rows_out);
}

int db_query_first(ctx *c, const db_query *q, json_t **doc_out)
{
    db_query one = *q;
    one.limit = 1;
    json_t *rows = NULL;
    int rc = db_query_rows(c, &one, &rows);
    *doc_out = rc == 0 ? json_array_get(rows, 0) : NULL; /* rows, and so it, are the ctx's */
    return rc;
}

int db_count(ctx *c, const db_query *q, int64_t *n_out)
{
    ASSERT(q->limit > 0 && "a count is bounded");
    store_range r;
    json_t *lo, *hi;
    query_range(c, q, &r, &lo, &hi);
    err_t e;
    err_init(&e);
    int rc = store_count_range(c->conn, &r, n_out, &e);
    if (rc)
        store_failed(c, rc, &e);
    else if (c->record_reads)
        read_set_add(&c->reads, r.table, r.index, r.lo, r.lo_inclusive, r.hi, r.hi_inclusive);
    json_decref(lo);
    json_decref(hi);
    return rc;
}

/* --- cursors ------------------------------------------------------------------ */

static char *cursor_encode(const json_t *key)
{
    char *text = json_dumps(key, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!text) return NULL;
    size_t len = strlen(text);
    char *out = malloc(b64_encoded_size(len));
    if (out) b64url_encode((const uint8_t *)text, len, out);
    free(text);
    return out;
}

/* Index keys hold strings, numbers, booleans and nulls only. */
static bool all_scalars(const json_t *key)
{
    size_t i;
    const json_t *v;
    json_array_foreach(key, i, v)
    {
        if (json_is_object(v) || json_is_array(v)) return false;
    }
    return true;
}

/* NULL with c->err set ("InvalidCursor") when the cursor is not a full key of
 * ix that starts with the query's equality prefix. */
static json_t *cursor_decode(ctx *c, const char *cursor, const schema_index *ix, const json_t *eq)
{
    size_t len = strlen(cursor);
    json_t *key = NULL;
    if (len > 0 && len < CURSOR_BYTES_MAX) {
        uint8_t *raw = malloc(len);
        long n = raw ? b64_decode(cursor, len, raw) : -1;
        if (n > 0) key = json_loadb((const char *)raw, (size_t)n, 0, NULL);
        free(raw);
    }
    size_t eq_len = eq ? json_array_size(eq) : 0;
    if (!json_is_array(key) || (int)json_array_size(key) != schema_key_len(ix) ||
        !all_scalars(key) || (eq_len && schema_key_cmp_prefix(key, eq, eq_len) != 0)) {
        json_decref(key);
        ctx_fail(c, ERR_INVALID_ARGUMENT, json_pack("{s:s}", "paginationError", "InvalidCursor"),
                 "InvalidCursor: the cursor does not belong to this query; start again from the "
                 "first page");
        return NULL;
    }
    return key;
}

static const char *opt_string(const json_t *opts, const char *name)
{
    return json_string_value(json_object_get(opts, name));
}

typedef struct page_plan {
    json_t *start; /* decoded cursor (exclusive), NULL = from the beginning */
    json_t *end;   /* decoded end cursor (inclusive), NULL = none */
    bool start_at_end, end_is_end;
} page_plan;

static int plan_page(ctx *c, const store_range *r, const db_query *q, const json_t *opts,
                     page_plan *p)
{
    memset(p, 0, sizeof *p);
    const char *cursor = opt_string(opts, "cursor");
    const char *end = opt_string(opts, "endCursor");
    if (!end) end = c->journal_in;
    if (cursor && strcmp(cursor, CURSOR_END) == 0)
        p->start_at_end = true;
    else if (cursor && !(p->start = cursor_decode(c, cursor, r->index, q->eq)))
        return c->err.code;
    if (end && strcmp(end, CURSOR_END) == 0)
        p->end_is_end = true;
    else if (end && !(p->end = cursor_decode(c, end, r->index, q->eq))) {
        json_decref(p->start);
        p->start = NULL;
        return c->err.code;
    }
    return 0;
}

static const char *end_cursor_text(const ctx *c, const json_t *opts)
{
    const char *end = opt_string(opts, "endCursor");
    return end ? end : c->journal_in;
}

/* A page as the client's usePaginatedQuery reads it. split (may be NULL)
 * with status "SplitRecommended" or "SplitRequired" asks the client to
 * replace the page by two: up to split, and after it. */
static json_t *page_result(json_t *page, bool done, const char *cont, const char *split,
                           const char *status)
{
    json_t *out = json_pack("{s:o, s:b, s:s, s:n, s:n}", "page", page, "isDone", done,
                            "continueCursor", cont, "splitCursor", "pageStatus");
    if (out && split) {
        json_object_set_new(out, "splitCursor", json_string(split));
        json_object_set_new(out, "pageStatus", json_string(status));
    }
    return out;
}

int db_paginate(ctx *c, const db_query *q, const json_t *opts, json_t **page_out)
{
    ASSERT(!q->after && !q->upto);
    *page_out = NULL;
    double num = json_number_value(json_object_get(opts, "numItems"));
    if (num < 1 || num > LIMIT_PAGE_ITEMS_MAX || num != floor(num))
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Invalid argument `paginationOpts.numItems`: expected an integer from 1 "
                        "to %d",
                        LIMIT_PAGE_ITEMS_MAX);
    int num_items = (int)num;
    store_range r;
    json_t *lo, *hi;
    query_range(c, q, &r, &lo, &hi);
    page_plan p;
    int rc = plan_page(c, &r, q, opts, &p);
    if (rc) goto out;
    if (p.start_at_end) {
        free(c->journal_out);
        c->journal_out = strdup(CURSOR_END);
        *page_out = page_result(json_array(), true, CURSOR_END, NULL, NULL);
        goto out;
    }
    /* The start cursor replaces the bound on the reading side, the end cursor
     * the bound on the far side. */
    if (p.start) {
        if (q->descending)
            r.hi = p.start, r.hi_inclusive = false;
        else
            r.lo = p.start, r.lo_inclusive = false;
    }
    if (p.end) {
        if (q->descending)
            r.lo = p.end, r.lo_inclusive = true;
        else
            r.hi = p.end, r.hi_inclusive = true;
    }
    /* A pinned page reads up to its end — but no further than the row
     * budget: a page that reaches it is cut there and must be split. */
    bool pinned = p.end || p.end_is_end;
    int budget = c->rows_max - c->rows_read;
    r.limit = !pinned ? num_items + 1 : budget > 0 ? budget : 1;
    json_t *rows = NULL;
    /* Record the covered range ourselves: up to the page's end, not the
     * look-ahead row. */
    bool record = c->record_reads;
    c->record_reads = false;
    rc = scan_range(c, &r, &rows);
    c->record_reads = record;
    if (rc) goto out;
    bool done;
    char *cont, *split = NULL;
    const char *status = NULL;
    json_t *edge = NULL;
    int n = (int)json_array_size(rows);
    if (pinned) {
        /* A page grows as rows arrive between its ends: past twice its size
         * the client is asked to split it at the middle (at once when it hit
         * the row budget: then it is incomplete). */
        bool cut = n == r.limit && budget > 0;
        done = p.end_is_end && !cut;
        cont = strdup(p.end_is_end ? CURSOR_END : end_cursor_text(c, opts));
        if ((cut || n > 2 * num_items) && n >= 2) {
            json_t *mid = schema_key_of(r.index, json_array_get(rows, (size_t)(n / 2 - 1)));
            split = cursor_encode(mid);
            json_decref(mid);
            status = cut ? "SplitRequired" : "SplitRecommended";
        }
    } else if (n > num_items) {
        json_array_remove(rows, (size_t)num_items);
        done = false;
        edge = schema_key_of(r.index, json_array_get(rows, (size_t)num_items - 1));
        cont = cursor_encode(edge);
    } else {
        done = true;
        cont = strdup(CURSOR_END);
    }
    if (record) {
        if (edge) {
            if (q->descending)
                r.lo = edge, r.lo_inclusive = true;
            else
                r.hi = edge, r.hi_inclusive = true;
        }
        read_set_add(&c->reads, r.table, r.index, r.lo, r.lo_inclusive, r.hi, r.hi_inclusive);
    }
    json_decref(edge);
    free(c->journal_out);
    c->journal_out = cont ? strdup(cont) : NULL;
    *page_out = page_result(rows, done, cont ? cont : CURSOR_END, split, status);
    free(cont);
    free(split);
out:
    json_decref(p.start);
    json_decref(p.end);
    json_decref(lo);
    json_decref(hi);
    return rc ? rc : own_output(c, page_out);
}

/* --- writes ------------------------------------------------------------------ */

static void require_writable(const ctx *c)
{
    ASSERT(c->writable && "a query tried to write: a programmer error in app/");
    (void)c;
}

/* The length of s as jansson writes it in JSON: quoted, with '"', '\\' and
 * control characters escaped. */
static size_t json_text_bytes(const char *s, size_t len)
{
    size_t n = len + 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' || ch == '\r' ||
            ch == '\t')
            n += 1;
        else if (ch < 0x20)
            n += 5; /* \u00XX */
    }
    return n;
}

size_t ctx_json_bytes(const json_t *v)
{
    if (!v) return 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = 2;
        const char *key;
        size_t key_len;
        json_t *item;
        json_object_keylen_foreach((json_t *)v, key, key_len, item)
        {
            n += json_text_bytes(key, key_len) + 1 + ctx_json_bytes(item) + 1;
        }
        return n;
    }
    case JSON_ARRAY: {
        size_t n = 2, i;
        const json_t *item;
        json_array_foreach(v, i, item) n += ctx_json_bytes(item) + 1;
        return n;
    }
    case JSON_STRING:
        return json_text_bytes(json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        size_t n = i < 0 ? 2 : 1;
        for (uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i; u >= 10; u /= 10)
            n++;
        return n;
    }
    case JSON_REAL:
        return 26;
    case JSON_TRUE:
        return 4;
    case JSON_FALSE:
        return 5;
    default:
        return 4;
    }
}

/* Validates a document's user fields against its table and its encoded size
 * against LIMIT_DOC_BYTES_MAX. A document too large is blamed on its largest
 * field among those this write sets (changed; all of them when NULL). */
static int check_document(ctx *c, const schema_table *t, const json_t *doc, const json_t *changed)
{
    json_t *user = json_copy((json_t *)doc);
    json_object_del(user, "_id");
    json_object_del(user, "_creationTime");
    char what[96];
    snprintf(what, sizeof what, "field of %s", t->name);
    int rc = validate(t->doc, user, what, c->schema, &c->err);
    json_decref(user);
    if (rc) return rc;
    if (ctx_json_bytes(doc) <= LIMIT_DOC_BYTES_MAX) return 0;
    size_t bytes = json_dumpb(doc, NULL, 0, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (bytes <= LIMIT_DOC_BYTES_MAX) return 0;
    /* Name the field that makes it big, as INVALID_ARGUMENT does elsewhere. */
    const char *key, *biggest = "?";
    json_t *value;
    size_t biggest_bytes = 0;
    json_object_foreach((json_t *)doc, key, value)
    {
        if (changed && !json_object_get(changed, key)) continue;
        size_t n =
            json_dumpb(value, NULL, 0, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY);
        if (n > biggest_bytes) biggest = key, biggest_bytes = n;
    }
    return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                    "Invalid argument `%s`: document too large: the %s document would be %zu "
                    "bytes (`%s` is %zu); the limit is %u bytes (1 MiB)",
                    biggest, t->name, bytes, biggest, biggest_bytes, LIMIT_DOC_BYTES_MAX);
}

static double next_creation_time(ctx *c)
{
    ASSERT(c->creation_clock);
    double t = c->now_ms;
    if (t <= *c->creation_clock) t = nextafter(*c->creation_clock, INFINITY);
    *c->creation_clock = t;
    return t;
}

static int record_write(ctx *c, const schema_table *t, const char *id, json_t *old_doc,
                        json_t *new_doc)
{
    int rc = write_set_add(&c->writes, t, id, old_doc, new_doc);
    if (rc == ERR_LIMIT)
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Too many writes: a mutation may write at most %d documents",
                        LIMIT_WRITES_PER_MUTATION_MAX);
    if (rc) return ctx_fail(c, rc, NULL, "out of memory recording a write");
    return 0;
}

static int insert_doc(ctx *c, const schema_table *t, const json_t *fields, const char *id)
{
    json_t *doc = json_deep_copy(fields);
    if (!doc) return ctx_fail(c, ERR_NOMEM, NULL, "out of memory");
    json_object_set_new(doc, "_id", json_string(id));
    json_object_set_new(doc, "_creationTime", json_real(next_creation_time(c)));
    int rc = check_document(c, t, doc, NULL);
    if (rc == 0) {
        err_t e;
        err_init(&e);
        rc = store_insert(c->conn, t, doc, &e);
        if (rc) store_failed(c, rc, &e);
    }
    if (rc == 0) rc = record_write(c, t, id, NULL, doc);
    json_decref(doc);
    return rc;
}

int db_insert(ctx *c, const char *table, const json_t *fields, char id_out[ID_BYTES_MAX])
{
    require_writable(c);
    const schema_table *t = table_or_die(c, table);
    char id[ID_BYTES_MAX];
    int made = t->random_ids ? id_new_random(t->number, id) : id_new(t->number, id);
    if (made != 0) return ctx_fail(c, ERR_INTERNAL, NULL, "no randomness for a new id");
    int rc = insert_doc(c, t, fields, id);
    if (rc == 0 && id_out) memcpy(id_out, id, ID_BYTES_MAX);
    return rc;
}

int db_insert_with_id(ctx *c, const char *table, const json_t *fields, const char *id)
{
    require_writable(c);
    const schema_table *t = table_or_die(c, table);
    if (id_table_number(id) != t->number)
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL, "Invalid id for %s: \"%.40s\"", t->name, id);
    return insert_doc(c, t, fields, id);
}

/* Loads the current document for a write; ERR_NOT_FOUND when absent. */
static int load_for_write(ctx *c, const schema_table *t, const char *id, json_t **old_out)
{
    *old_out = NULL;
    if (id_table_number(id) != t->number)
        return ctx_fail(c, ERR_NOT_FOUND, NULL, "Document not found in %s", t->name);
    err_t e;
    err_init(&e);
    int rc = store_get(c->conn, t, id, old_out, &e);
    if (rc) return store_failed(c, rc, &e);
    if (!*old_out) return ctx_fail(c, ERR_NOT_FOUND, NULL, "Document not found in %s", t->name);
    return 0;
}

int db_patch(ctx *c, const char *table, const char *id, const json_t *fields)
{
    require_writable(c);
    const schema_table *t = table_or_die(c, table);
    json_t *old_doc;
    int rc = load_for_write(c, t, id, &old_doc);
    if (rc) return rc;
    json_t *doc = json_deep_copy(old_doc);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)fields, key, value)
    {
        ASSERT(key[0] != '_' && "system fields are never patched");
        if (json_is_null(value))
            json_object_del(doc, key);
        else
            json_object_set_new(doc, key, json_deep_copy(value));
    }
    rc = check_document(c, t, doc, fields);
    if (rc == 0) {
        err_t e;
        err_init(&e);
        rc = store_update(c->conn, t, old_doc, doc, &e);
        if (rc) store_failed(c, rc, &e);
    }
    if (rc == 0) rc = record_write(c, t, id, old_doc, doc);
    json_decref(old_doc);
    json_decref(doc);
    return rc;
}

int db_delete(ctx *c, const char *table, const char *id)
{
    require_writable(c);
    const schema_table *t = table_or_die(c, table);
    json_t *old_doc;
    int rc = load_for_write(c, t, id, &old_doc);
    if (rc) return rc;
    err_t e;
    err_init(&e);
    rc = store_delete(c->conn, t, id, &e);
    if (rc) store_failed(c, rc, &e);
    if (rc == 0) rc = record_write(c, t, id, old_doc, NULL);
    json_decref(old_doc);
    return rc;
}

/* --- deployment variables ------------------------------------------------------ */

int ctx_env(ctx *c, const char *name, char **value_out)
{
    *value_out = NULL;
    json_t *eq = json_pack("[s]", name);
    db_query q = {.table = SYSTEM_TABLE_ENV, .index = "by_name", .eq = eq, .limit = 1};
    json_t *row = NULL;
    int rc = db_query_first(c, &q, &row);
    json_decref(eq);
    if (rc) return rc;
    const char *value = row ? json_string_value(json_object_get(row, "value")) : getenv(name);
    if (value) *value_out = strdup(value);
    json_decref(row);
    return 0;
}
