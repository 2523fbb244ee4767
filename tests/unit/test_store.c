/*
 * test_store.c — the store's contract (store.h, schema.h) on the SQLite
 * engine: the shared cases of store_cases.h (schema reports, migration and
 * repair, document round trips, guards also against raw SQL, savepoints,
 * injected faults, reader snapshots, truncation, scans in schema.c's key
 * order), and what only SQLite has — the file it creates, WAL and
 * synchronous=FULL, a failed statement that leaves its transaction usable,
 * the plans it picks for scans — plus schema.c's key order and lookups.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_cases.h"

/* --- the SQLite fixture ------------------------------------------------------------ */

typedef struct sqlite_fixture {
    fixture base; /* base.url: the database file */
    char *dir;
} sqlite_fixture;

static sqlite3 *raw_open(fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->url, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void sqlite_exec_raw(fixture *f, const char *sql, char code[RAW_CODE_BYTES_MAX],
                            char msg[RAW_MSG_BYTES_MAX])
{
    sqlite3 *db = raw_open(f);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    snprintf(code, RAW_CODE_BYTES_MAX, "%s", rc == SQLITE_OK ? "" : sqlite3_errstr(rc));
    snprintf(msg, RAW_MSG_BYTES_MAX, "%s", rc == SQLITE_OK ? "" : sqlite3_errmsg(db));
    sqlite3_close(db);
}

static char *sqlite_query_raw(fixture *f, const char *sql)
{
    sqlite3 *db = raw_open(f);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW) fail_msg("%s: no row (%s)", sql, sqlite3_errmsg(db));
    const unsigned char *text = sqlite3_column_text(st, 0);
    char *copy = strdup(text ? (const char *)text : "");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return copy;
}

static const char *const more_guarded_writes[] = {NULL};
static const char *const damage_sql[] = {
    "DROP TRIGGER transactions_append_only_update",
    "DROP INDEX users_by_email",
    "CREATE INDEX users_by_email ON users (creation_time)",
    NULL,
};

static const store_engine sqlite_engine = {
    .name = "sqlite",
    .migrated_report = "migrated schema 1 → 2: created 1 table, 11 indexes, 2 triggers; "
                       "rebuilt 3 tables; dropped 1 index",
    .unique_refusal = "UNIQUE constraint failed",
    .check_refusal = "insert into users: CHECK constraint failed: users_credits_nonnegative",
    .read_only_refusal = "readonly database",
    .booleans_in_keys = false,
    .prepare_count = store_sqlite_prepare_count,
    .exec_raw = sqlite_exec_raw,
    .query_raw = sqlite_query_raw,
    .guard_code = "constraint failed", /* sqlite3_errstr(SQLITE_CONSTRAINT) */
    .check_code = "constraint failed",
    .more_guarded_writes = more_guarded_writes,
    .bytes_open = "x'",
    .bytes_close = "'",
    .creation_time_sql = "SELECT printf('%!.17g', creation_time) FROM users",
    .damage_sql = damage_sql,
};

static int setup(void **state)
{
    sqlite_fixture *sf = calloc(1, sizeof *sf);
    assert_non_null(sf);
    fixture *f = &sf->base;
    f->eng = &sqlite_engine;
    sf->dir = test_mkdtemp();
    assert_non_null(sf->dir);
    snprintf(f->url, sizeof f->url, "%s/dojo.db", sf->dir);
    fixture_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    sqlite_fixture *sf = *state;
    fixture_close(&sf->base);
    test_rmtree(sf->dir);
    free(sf->dir);
    free(sf);
    return 0;
}

/* --- SQLite only ------------------------------------------------------------------ */

static void open_creates_tables_and_reports(void **state)
{
    fixture *f = *state;
    assert_string_equal(f->report, "created 3 tables, 9 indexes, 2 triggers (schema version 1)");
    sqlite3 *db = raw_open(f);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                           "AND name IN ('users', 'transactions', 'runs', '_dojo_meta')",
                           -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 4);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void wal_and_synchronous_full_are_in_effect(void **state)
{
    fixture *f = *state;
    store_conn *r;
    assert_ok(f, store_connect(f->st, false, &r, &f->e));
    store_conn *conns[] = {f->w, r};
    for (int i = 0; i < 2; i++) {
        char v[64];
        assert_ok(f, store_sqlite_query_text(conns[i], "PRAGMA journal_mode", v, sizeof v, &f->e));
        assert_string_equal(v, "wal");
        assert_ok(f, store_sqlite_query_text(conns[i], "PRAGMA synchronous", v, sizeof v, &f->e));
        assert_string_equal(v, "2"); /* FULL */
        assert_ok(f, store_sqlite_query_text(conns[i], "PRAGMA busy_timeout", v, sizeof v, &f->e));
        assert_string_equal(v, "5000");
        assert_ok(f, store_sqlite_query_text(conns[i], "PRAGMA query_only", v, sizeof v, &f->e));
        assert_string_equal(v, i == 0 ? "0" : "1");
    }
    store_disconnect(r);
}

static void open_names_the_file_it_cannot_open(void **state)
{
    sqlite_fixture *sf = *state;
    fixture *f = &sf->base;
    store *st = NULL;
    char path[1100];
    snprintf(path, sizeof path, "sqlite:%s/missing/dir/dojo.db", sf->dir);
    assert_int_equal(store_open(path, &schema_v1, &st, NULL, &f->e), ERR_STORAGE);
    assert_non_null(strstr(f->e.msg, "cannot open database"));
    assert_non_null(strstr(f->e.msg, "missing/dir/dojo.db"));
}

/* Unlike PostgreSQL, SQLite leaves a transaction usable after a statement
 * of it failed: the rest of it commits. */
static void a_failed_statement_leaves_the_transaction_usable(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *dup = user_doc(1, 0), *b = user_doc(2, 0);
    insert_all(f, "users", json_pack("[O]", a));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), dup, &f->e), ERR_CONSTRAINT);
    assert_ok(f, store_ping(f->w, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_int_equal(count_rows(f, f->w, "users"), 2);
    json_decref(a);
    json_decref(dup);
    json_decref(b);
}

/* The plan of r is exactly one step, `want`: a seek (or walk) of the index,
 * with no table scan and no sort. */
static void assert_plan(fixture *f, const store_range *r, const char *want)
{
    char plan[2048], want_line[512];
    assert_ok(f, store_sqlite_scan_plan(f->w, r, plan, sizeof plan, &f->e));
    snprintf(want_line, sizeof want_line, "%s\n", want);
    if (strcmp(plan, want_line) != 0)
        fail_msg("plan of %s.%s:\n%swanted:\n%s", r->table->name, r->index->name, plan, want_line);
}

static void scans_seek_their_index_without_sorting(void **state)
{
    fixture *f = *state;
    json_decref(insert_runs(f, "alice", 10));
    static const char *const plans[PLAN_CASES] = {
        "SEARCH runs USING INDEX runs_by_user (k_userId=?)",
        "SEARCH runs USING INDEX runs_by_user (k_userId=? AND (creation_time,id)<(?,?))",
        "SEARCH runs USING INDEX runs_by_user (k_userId=? AND (creation_time,id)>(?,?))",
        "SEARCH runs USING INDEX runs_by_status ((k_status,creation_time,id)<(?,?,?))",
        "SEARCH runs USING INDEX runs_by_status ((k_status,creation_time,id)>(?,?,?))",
        "SEARCH runs USING INDEX runs_by_creation_time ((creation_time,id)>(?,?))",
        "SEARCH runs USING INDEX runs_by_creation_time ((creation_time,id)<(?,?))",
        "SEARCH users USING INDEX users_by_token (k_tokenIdentifier=?)",
        /* Unbounded, the whole index is walked in order. */
        "SCAN runs USING INDEX runs_by_status",
    };
    plan_ranges p;
    plan_ranges_make(&p);
    for (int i = 0; i < PLAN_CASES; i++)
        assert_plan(f, &p.r[i], plans[i]);
    plan_ranges_free(&p);
}

/* --- schema.c ---------------------------------------------------------------------------- */

static int cmp_new(json_t *a, json_t *b)
{
    int c = schema_value_cmp(a, b);
    json_decref(a);
    json_decref(b);
    return c;
}

static void schema_value_cmp_orders_null_numbers_strings_others(void **state)
{
    (void)state;
    assert_int_equal(schema_value_cmp(NULL, json_null()), 0);
    assert_true(cmp_new(json_null(), json_integer(-5)) < 0);
    assert_true(cmp_new(json_real(-1e300), json_null()) > 0);
    assert_true(cmp_new(json_integer(2), json_real(2.5)) < 0);
    assert_true(cmp_new(json_real(2.5), json_integer(3)) < 0);
    assert_int_equal(cmp_new(json_integer(3), json_real(3.0)), 0);
    assert_true(cmp_new(json_integer(9007199254740993LL), json_real(9007199254740992.0)) > 0);
    assert_true(cmp_new(json_real(1e300), json_string("")) < 0);
    assert_true(cmp_new(json_string("B"), json_string("a")) < 0);
    assert_true(cmp_new(json_string("a"), json_string("ab")) < 0);
    assert_true(cmp_new(json_string("z"), json_string("\xc3\xa9")) < 0);
    assert_int_equal(cmp_new(json_string("same"), json_string("same")), 0);
    assert_true(cmp_new(json_string("zzz"), json_true()) < 0);
    assert_true(cmp_new(json_false(), json_true()) < 0);
    assert_true(cmp_new(json_true(), json_pack("[]")) < 0);
    assert_true(cmp_new(json_pack("[i]", 1), json_pack("[i,i]", 1, 0)) < 0);
    assert_true(cmp_new(json_pack("[i]", 9), json_pack("{}")) < 0);
    assert_int_equal(cmp_new(json_pack("{s:i}", "a", 1), json_pack("{s:i}", "a", 1)), 0);
}

static void schema_key_cmp_prefix_compares_the_first_n_values(void **state)
{
    (void)state;
    json_t *a = json_pack("[s,i,s]", "u", 5, "id1");
    json_t *b = json_pack("[s,f,s]", "u", 5.0, "id2");
    json_t *p = json_pack("[s]", "u");
    assert_int_equal(schema_key_cmp_prefix(a, b, 2), 0);
    assert_true(schema_key_cmp_prefix(a, b, 3) < 0);
    assert_true(schema_key_cmp_prefix(b, a, 99) > 0);
    assert_int_equal(schema_key_cmp_prefix(a, p, 3), 0); /* clamped to the shorter */
    assert_int_equal(schema_key_cmp_prefix(a, b, 0), 0);
    json_decref(a);
    json_decref(b);
    json_decref(p);
}

static void schema_keys_follow_fields_then_creation_time_then_id(void **state)
{
    (void)state;
    const schema_table *runs = table("runs"), *users = table("users");
    const schema_index *by_user = schema_index_by_name(runs, "by_user");
    const schema_index *by_email = schema_index_by_name(users, "by_email");
    assert_int_equal(schema_key_len(by_user), 3);
    assert_int_equal(schema_key_len(by_email), 3);
    assert_int_equal(schema_key_len(&schema_by_creation_time), 2);
    json_t *doc = json_pack("{s:s, s:f, s:s}", "_id", "x", "_creationTime", 12.5, "userId", "u");
    json_t *key = schema_key_of(by_user, doc);
    json_t *want = json_pack("[s,f,s]", "u", 12.5, "x");
    assert_true(json_equal(key, want));
    json_decref(key);
    json_decref(want);
    key = schema_key_of(by_email, doc);
    want = json_pack("[n,f,s]", 12.5, "x");
    assert_true(json_equal(key, want));
    json_decref(key);
    json_decref(want);
    json_decref(doc);
}

static void schema_lookups_find_tables_and_indexes(void **state)
{
    (void)state;
    assert_ptr_equal(schema_table_by_number(&schema_v1, 2), table("transactions"));
    assert_null(schema_table_by_number(&schema_v1, 9));
    assert_null(schema_table_by_name(&schema_v1, "nope"));
    assert_ptr_equal(schema_index_by_name(table("runs"), "by_creation_time"),
                     &schema_by_creation_time);
    assert_ptr_equal(schema_index_by_name(table("runs"), "by_status"), &runs_indexes_v1[1]);
    assert_null(schema_index_by_name(table("runs"), "by_nothing"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(open_creates_tables_and_reports),
        T(wal_and_synchronous_full_are_in_effect),
        T(open_names_the_file_it_cannot_open),
        T(a_failed_statement_leaves_the_transaction_usable),
        T(scans_seek_their_index_without_sorting),
        STORE_SHARED_CASES(T),
        cmocka_unit_test(schema_value_cmp_orders_null_numbers_strings_others),
        cmocka_unit_test(schema_key_cmp_prefix_compares_the_first_n_values),
        cmocka_unit_test(schema_keys_follow_fields_then_creation_time_then_id),
        cmocka_unit_test(schema_lookups_find_tables_and_indexes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
