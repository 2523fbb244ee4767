/*
 * store_fixture.h — what the shared store cases (store_cases.h) run on: the
 * test schema, the fixture of one open store with its writer, the
 * description of what differs between the engines (store_engine), and the
 * helpers that make documents, write them, and check scans against
 * schema.c's key order.
 *
 * Included through store_cases.h by test_store.c (SQLite) and
 * test_store_pg.c (PostgreSQL).
 * Thread: the test's main thread.
 */
#ifndef DOJO_TEST_STORE_FIXTURE_H
#define DOJO_TEST_STORE_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ids.h"
#include "store/key_codec.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/store_impl.h"

#define STORE_TEST_URL_BYTES_MAX 1024
#define RAW_CODE_BYTES_MAX 32
#define RAW_MSG_BYTES_MAX 512

/* --- the test schema ------------------------------------------------------------- */

static const char *const users_nonnegative[] = {"credits", NULL};
static const schema_index users_indexes_v1[] = {
    {.name = "by_token", .fields = {"tokenIdentifier"}, .n_fields = 1, .unique = true},
    {.name = "by_email", .fields = {"email"}, .n_fields = 1},
};
static const schema_index transactions_indexes[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
};
static const schema_index runs_indexes_v1[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
    {.name = "by_status", .fields = {"status", "_creationTime"}, .n_fields = 2},
};
static const schema_table tables_v1[] = {
    {.name = "users",
     .number = 1,
     .indexes = users_indexes_v1,
     .n_indexes = 2,
     .nonnegative_fields = users_nonnegative},
    {.name = "transactions",
     .number = 2,
     .indexes = transactions_indexes,
     .n_indexes = 1,
     .append_only = true},
    {.name = "runs", .number = 3, .indexes = runs_indexes_v1, .n_indexes = 2},
};
static const schema schema_v1 = {.version = 1, .tables = tables_v1, .n_tables = 3};

/* Version 2: users lose by_email; transactions and runs gain a nonnegative
 * field (a table rebuilt on SQLite, altered on PostgreSQL); runs gain
 * by_workflow; a new table workflows. */
static const char *const transactions_nonnegative_v2[] = {"balanceAfter", NULL};
static const char *const runs_nonnegative_v2[] = {"cost", NULL};
static const schema_index runs_indexes_v2[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
    {.name = "by_status", .fields = {"status", "_creationTime"}, .n_fields = 2},
    {.name = "by_workflow", .fields = {"workflowId"}, .n_fields = 1},
};
static const schema_index workflows_indexes[] = {
    {.name = "by_owner", .fields = {"owner", "updatedAt"}, .n_fields = 2},
};
static const schema_table tables_v2[] = {
    {.name = "users",
     .number = 1,
     .indexes = users_indexes_v1,
     .n_indexes = 1,
     .nonnegative_fields = users_nonnegative},
    {.name = "transactions",
     .number = 2,
     .indexes = transactions_indexes,
     .n_indexes = 1,
     .append_only = true,
     .nonnegative_fields = transactions_nonnegative_v2},
    {.name = "runs",
     .number = 3,
     .indexes = runs_indexes_v2,
     .n_indexes = 3,
     .nonnegative_fields = runs_nonnegative_v2},
    {.name = "workflows", .number = 4, .indexes = workflows_indexes, .n_indexes = 1},
};
static const schema schema_v2 = {.version = 2, .tables = tables_v2, .n_tables = 4};

/* --- the fixture and what differs between the engines ------------------------------ */

typedef struct fixture fixture;

typedef struct store_engine {
    const char *name; /* store_engine_name */
    /* The report of reopening schema_v1's database with schema_v2. */
    const char *migrated_report;
    /* In the message of an insert refused by the unique index. */
    const char *unique_refusal;
    /* The whole message of an insert refused by users_credits_nonnegative. */
    const char *check_refusal;
    /* In the message of a write on a reader connection. */
    const char *read_only_refusal;
    /* Whether index keys order booleans as schema.h does (SQLite indexes
     * them as the numbers 1 and 0; schema.h keeps them out of index fields). */
    bool booleans_in_keys;
    uint64_t (*prepare_count)(store_conn *c);

    /* Raw SQL, run outside the store on the same database. exec_raw writes
     * what refused sql ("" when it ran) and the database's message;
     * query_raw returns the first column of the first row (malloc'd). */
    void (*exec_raw)(fixture *f, const char *sql, char code[RAW_CODE_BYTES_MAX],
                     char msg[RAW_MSG_BYTES_MAX]);
    char *(*query_raw)(fixture *f, const char *sql);
    /* The code of a refusal by an append-only guard, and by a CHECK. */
    const char *guard_code;
    const char *check_code;
    /* Writes to the append-only "transactions" the guards refuse besides
     * UPDATE and DELETE (NULL-terminated, as the lists below). */
    const char *const *more_guarded_writes;
    /* How the engine's SQL spells bytes: before and after their hex digits. */
    const char *bytes_open, *bytes_close;
    /* users.creation_time of the only user, as text with 17 digits. */
    const char *creation_time_sql;
    /* With runs_by_status dropped and runs_stray added (by the case), drops
     * transactions_append_only_update and changes users_by_email's
     * recorded DDL. */
    const char *const *damage_sql;
} store_engine;

struct fixture {
    const store_engine *eng;
    char url[STORE_TEST_URL_BYTES_MAX]; /* what store_open is given */
    store *st;
    store_conn *w; /* the writer */
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
};

#define assert_ok(f, call)                                                                         \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) fail_msg("%s returned %d: %s", #call, rc_, (f)->e.msg);                      \
    } while (0)

/* Opens f->url with schema_v1 and connects the writer (setup). */
static void fixture_open(fixture *f)
{
    err_init(&f->e);
    assert_ok(f, store_open(f->url, &schema_v1, &f->st, f->report, &f->e));
    assert_ok(f, store_connect(f->st, true, &f->w, &f->e));
}

/* Disarms faults, disconnects and closes (teardown). */
static void fixture_close(fixture *f)
{
    store_inject_fault_after(0);
    store_disconnect(f->w);
    store_close(f->st);
    err_clear(&f->e);
}

static void reopen(fixture *f, const schema *s)
{
    store_disconnect(f->w);
    store_close(f->st);
    f->w = NULL;
    f->st = NULL;
    assert_ok(f, store_open(f->url, s, &f->st, f->report, &f->e));
    assert_ok(f, store_connect(f->st, true, &f->w, &f->e));
}

static const schema_table *table(const char *name)
{
    const schema_table *t = schema_table_by_name(&schema_v1, name);
    assert_non_null(t);
    return t;
}

static long raw_long(fixture *f, const char *sql)
{
    char *text = f->eng->query_raw(f, sql);
    long v = strtol(text, NULL, 10);
    free(text);
    return v;
}

/* --- documents ------------------------------------------------------------------------ */

static json_t *new_doc(const char *table_name, double creation_time)
{
    char id[ID_BYTES_MAX];
    assert_int_equal(id_new(table(table_name)->number, id), 0);
    return json_pack("{s:s, s:f}", "_id", id, "_creationTime", creation_time);
}

static const char *id_of(const json_t *doc)
{
    return json_string_value(json_object_get(doc, "_id"));
}

static json_t *user_doc(int n, json_int_t credits)
{
    json_t *d = new_doc("users", 1000.0 + n);
    char token[32];
    snprintf(token, sizeof token, "issuer|user%d", n);
    json_object_set_new(d, "tokenIdentifier", json_string(token));
    json_object_set_new(d, "credits", json_integer(credits));
    return d;
}

static json_t *run_doc(const char *user_id, double creation_time, json_t *status)
{
    json_t *d = new_doc("runs", creation_time);
    json_object_set_new(d, "userId", json_string(user_id));
    if (status) json_object_set_new(d, "status", status);
    json_object_set_new(d, "cost", json_integer(1));
    return d;
}

static json_t *ledger_doc(const char *user_id, double creation_time, json_int_t amount)
{
    json_t *d = new_doc("transactions", creation_time);
    json_object_set_new(d, "userId", json_string(user_id));
    json_object_set_new(d, "amount", json_integer(amount));
    json_object_set_new(d, "balanceAfter", json_integer(amount));
    return d;
}

/* Inserts docs (stolen) in one write transaction. */
static void insert_all(fixture *f, const char *table_name, json_t *docs)
{
    assert_ok(f, store_begin(f->w, true, &f->e));
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) assert_ok(f, store_insert(f->w, table(table_name), d, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    json_decref(docs);
}

static int64_t count_rows(fixture *f, store_conn *c, const char *table_name)
{
    int64_t n = -1;
    assert_ok(f, store_begin(c, false, &f->e));
    assert_ok(f, store_count(c, table(table_name), &n, &f->e));
    store_rollback(c);
    return n;
}

/* A range of an index of the v1 schema; lo and hi are borrowed. */
static store_range range_of(const char *table_name, const char *index, json_t *lo, bool lo_incl,
                            json_t *hi, bool hi_incl, bool descending, int limit)
{
    const schema_table *t = table(table_name);
    const schema_index *ix = schema_index_by_name(t, index);
    assert_non_null(ix);
    return (store_range){.table = t,
                         .index = ix,
                         .lo = lo,
                         .hi = hi,
                         .lo_inclusive = lo_incl,
                         .hi_inclusive = hi_incl,
                         .descending = descending,
                         .limit = limit};
}

static json_t *scan(fixture *f, const store_range *r)
{
    json_t *rows = NULL;
    assert_ok(f, store_begin(f->w, false, &f->e));
    assert_ok(f, store_scan(f->w, r, &rows, &f->e));
    store_rollback(f->w);
    assert_true(json_is_array(rows));
    return rows;
}

/* Inserts n runs of user_id (and as many of "other") with creation times
 * that repeat in threes, so that ids break ties; returns user_id's runs. */
static json_t *insert_runs(fixture *f, const char *user_id, int n)
{
    json_t *mine = json_array(), *all = json_array();
    for (int i = 0; i < n; i++) {
        json_t *d = run_doc(user_id, 5000 + i / 3, json_string(i % 2 ? "queued" : "failed"));
        json_array_append(mine, d);
        json_array_append_new(all, d);
        json_array_append_new(all, run_doc("other", 5000 + i, json_string("queued")));
    }
    insert_all(f, "runs", all);
    return mine;
}

/* --- scans, checked against schema.c ------------------------------------------------ */

static const schema_index *key_index;

static int key_order(const void *a, const void *b)
{
    json_t *ka = schema_key_of(key_index, *(json_t *const *)a);
    json_t *kb = schema_key_of(key_index, *(json_t *const *)b);
    int c = schema_key_cmp_prefix(ka, kb, SCHEMA_KEY_LEN_MAX);
    json_decref(ka);
    json_decref(kb);
    return c;
}

/* The docs in the order of index ix (descending when asked), by schema.c. */
static json_t *sorted_by_key(const json_t *docs, const schema_index *ix, bool descending)
{
    size_t n = json_array_size(docs);
    json_t **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(docs, i);
    key_index = ix;
    qsort(v, n, sizeof *v, key_order);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[descending ? n - 1 - i : i]);
    free(v);
    return out;
}

static void assert_same_ids(const json_t *got, const json_t *want)
{
    assert_int_equal(json_array_size(got), json_array_size(want));
    for (size_t i = 0; i < json_array_size(want); i++)
        assert_string_equal(id_of(json_array_get(got, i)), id_of(json_array_get(want, i)));
}

/* Pages through index ix two rows at a time with exclusive cursors. */
static json_t *page_through(fixture *f, const char *index, const char *user, bool descending)
{
    json_t *seen = json_array();
    json_t *prefix = json_pack("[s]", user), *cursor = NULL;
    for (int page = 0; page < 100; page++) {
        store_range r = range_of("runs", index, prefix, true, prefix, true, descending, 2);
        if (cursor && descending) r.hi = cursor, r.hi_inclusive = false;
        if (cursor && !descending) r.lo = cursor, r.lo_inclusive = false;
        json_t *rows = scan(f, &r);
        size_t n = json_array_size(rows);
        json_array_extend(seen, rows);
        json_decref(cursor);
        cursor = n ? schema_key_of(r.index, json_array_get(rows, n - 1)) : NULL;
        json_decref(rows);
        if (n < 2) break;
    }
    json_decref(cursor);
    json_decref(prefix);
    return seen;
}

/* Rows whose status is missing, null, numbers of both kinds (also beyond
 * 2^53), strings, and booleans where the engine orders them. */
static json_t *insert_mixed_statuses(fixture *f)
{
    json_t *statuses = json_pack("[n,n,i,f,i,f,s,s,s,s,s,s,I,f,I,b,b]", 3, 2.5, -1, -0.5, "B", "a",
                                 "ab", "\xc3\xa9", "", "a", (json_int_t)9007199254740993LL, 1e300,
                                 (json_int_t)9007199254740992LL, 1, 0);
    json_t *all = json_array();
    json_array_append_new(all, run_doc("u", 7000, NULL)); /* missing */
    json_array_append_new(all, run_doc("u", 6999, NULL));
    for (size_t i = 0; i < json_array_size(statuses); i++) {
        json_t *status = json_array_get(statuses, i);
        if (json_is_boolean(status) && !f->eng->booleans_in_keys) continue;
        json_array_append_new(all, run_doc("u", 7000 - (double)(i % 4), json_incref(status)));
    }
    json_array_append_new(all, run_doc("u", 7000, json_integer(3))); /* ties broken by id */
    json_array_append_new(all, run_doc("u", 7000, json_real(9007199254740992.0)));
    json_decref(statuses);
    json_t *copy = json_copy(all);
    insert_all(f, "runs", all);
    return copy;
}

/* Whether doc's key is inside r, by schema.c's order. */
static bool in_range(const store_range *r, const json_t *doc)
{
    json_t *key = schema_key_of(r->index, doc);
    bool in = true;
    if (r->lo) {
        int c = schema_key_cmp_prefix(key, r->lo, json_array_size(r->lo));
        in = in && (c > 0 || (c == 0 && r->lo_inclusive));
    }
    if (r->hi) {
        int c = schema_key_cmp_prefix(key, r->hi, json_array_size(r->hi));
        in = in && (c < 0 || (c == 0 && r->hi_inclusive));
    }
    json_decref(key);
    return in;
}

static void check_scan_against_schema_order(fixture *f, const json_t *docs, store_range r)
{
    json_t *want = json_array(), *sorted = sorted_by_key(docs, r.index, r.descending);
    for (size_t i = 0; i < json_array_size(sorted); i++)
        if (in_range(&r, json_array_get(sorted, i)))
            json_array_append(want, json_array_get(sorted, i));
    json_t *rows = scan(f, &r);
    if (json_array_size(rows) != json_array_size(want)) {
        char *lo = r.lo ? json_dumps(r.lo, JSON_ENCODE_ANY) : NULL;
        char *hi = r.hi ? json_dumps(r.hi, JSON_ENCODE_ANY) : NULL;
        fail_msg("range %s%s .. %s%s%s: %zu rows, want %zu", r.lo_inclusive ? "[" : "(",
                 lo ? lo : "-", hi ? hi : "-", r.hi_inclusive ? "]" : ")",
                 r.descending ? " desc" : "", json_array_size(rows), json_array_size(want));
    }
    assert_same_ids(rows, want);
    json_decref(rows);
    json_decref(want);
    json_decref(sorted);
}

/* A deterministic pseudo-random value of any index kind (booleans become
 * the numbers 1 and 0 where the engine does not order booleans). */
static json_t *random_value(unsigned *seed, bool booleans)
{
    static const char *const strings[] = {
        "",      "a",   "ab", "abc", "b", "B", "Z", "\xc3\xa9", "\xc3\xa9t\xc3\xa9",
        "z\x7f", "a b", "0",  "10",  "9"};
    switch (rand_r(seed) % 7) {
    case 0:
        return NULL; /* missing */
    case 1:
        return json_null();
    case 2:
        return json_integer((json_int_t)(rand_r(seed) % 41) - 20);
    case 3:
        return json_real(((double)(rand_r(seed) % 81) - 40) / 4.0); /* halves and quarters */
    case 4:
        return json_real(((double)rand_r(seed) / RAND_MAX - 0.5) * 1e6);
    case 5: {
        int b = rand_r(seed) % 2;
        return booleans ? json_boolean(b) : json_integer(b);
    }
    default:
        return json_string(strings[rand_r(seed) % (sizeof strings / sizeof strings[0])]);
    }
}

/* The ranges whose plans each engine checks (scans_*_without_sorting): an
 * equality prefix, cursors below and above it, cursors on plain columns,
 * a unique index, and an unbounded walk. */
enum { PLAN_CASES = 9 };

typedef struct plan_ranges {
    json_t *user, *cursor, *status_cursor, *ct_cursor, *token;
    store_range r[PLAN_CASES];
} plan_ranges;

static void plan_ranges_make(plan_ranges *p)
{
    p->user = json_pack("[s]", "alice");
    p->cursor = json_pack("[s,f,s]", "alice", 5001.0, "zz");
    p->status_cursor = json_pack("[s,f,s]", "queued", 5001.0, "zz");
    p->ct_cursor = json_pack("[f,s]", 5001.0, "zz");
    p->token = json_pack("[s]", "issuer|user1");
    const store_range r[PLAN_CASES] = {
        range_of("runs", "by_user", p->user, true, p->user, true, false, 10),
        range_of("runs", "by_user", p->user, true, p->cursor, false, true, 10),
        range_of("runs", "by_user", p->cursor, false, p->user, true, false, 10),
        range_of("runs", "by_status", NULL, false, p->status_cursor, false, true, 10),
        range_of("runs", "by_status", p->status_cursor, false, NULL, false, false, 10),
        range_of("runs", "by_creation_time", p->ct_cursor, false, NULL, false, false, 10),
        range_of("runs", "by_creation_time", NULL, false, p->ct_cursor, true, true, 10),
        range_of("users", "by_token", p->token, true, p->token, true, false, 2),
        range_of("runs", "by_status", NULL, false, NULL, false, true, 10),
    };
    memcpy(p->r, r, sizeof r);
}

static void plan_ranges_free(plan_ranges *p)
{
    json_decref(p->user);
    json_decref(p->cursor);
    json_decref(p->status_cursor);
    json_decref(p->ct_cursor);
    json_decref(p->token);
}

#endif
