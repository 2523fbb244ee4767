/*
 * test_store.c — the store's contract (store.h, schema.h) on the SQLite
 * engine: schema creation and migration, document round trips, index scans
 * and their order, the guards the database enforces by itself (also against
 * raw SQL), savepoints, injected faults, WAL settings and reader snapshots.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/ids.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/store_impl.h"

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
 * field (a table rebuild); runs gain by_workflow; a new table workflows. */
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

/* --- fixture ------------------------------------------------------------------------ */

typedef struct fixture {
    char *dir;
    char path[1024];
    store *st;
    store_conn *w; /* the writer */
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
} fixture;

#define assert_ok(f, call)                                                                         \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) fail_msg("%s returned %d: %s", #call, rc_, (f)->e.msg);                      \
    } while (0)

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    err_init(&f->e);
    f->dir = test_mkdtemp();
    assert_non_null(f->dir);
    snprintf(f->path, sizeof f->path, "%s/dojo.db", f->dir);
    assert_ok(f, store_open(f->path, &schema_v1, &f->st, f->report, &f->e));
    assert_ok(f, store_connect(f->st, true, &f->w, &f->e));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    store_inject_fault_after(0);
    store_disconnect(f->w);
    store_close(f->st);
    test_rmtree(f->dir);
    free(f->dir);
    err_clear(&f->e);
    free(f);
    return 0;
}

static void reopen(fixture *f, const schema *s)
{
    store_disconnect(f->w);
    store_close(f->st);
    f->w = NULL;
    f->st = NULL;
    assert_ok(f, store_open(f->path, s, &f->st, f->report, &f->e));
    assert_ok(f, store_connect(f->st, true, &f->w, &f->e));
}

static const schema_table *table(const char *name)
{
    const schema_table *t = schema_table_by_name(&schema_v1, name);
    assert_non_null(t);
    return t;
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

static sqlite3 *raw_open(fixture *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* --- schema ------------------------------------------------------------------------------ */

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

static void reopen_reports_schema_up_to_date(void **state)
{
    fixture *f = *state;
    reopen(f, &schema_v1);
    assert_string_equal(f->report, "schema up to date (version 1)");
}

static void newer_schema_version_is_refused(void **state)
{
    fixture *f = *state;
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_meta_set(f->w, "schema_version", "7", &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    store *st = NULL;
    int rc = store_open(f->path, &schema_v1, &st, f->report, &f->e);
    assert_int_equal(rc, ERR_STORAGE);
    assert_null(st);
    assert_string_equal(f->e.msg,
                        "database schema version 7 is newer than this dojo (1); upgrade dojo");
}

static void migration_adds_rebuilds_and_drops_keeping_rows(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 5);
    json_t *run = run_doc(id_of(u), 2000, json_string("queued"));
    json_object_set_new(run, "workflowId", json_string("wf1"));
    insert_all(f, "users", json_pack("[O]", u));
    insert_all(f, "runs", json_pack("[O]", run));
    json_t *ledger = ledger_doc(id_of(u), 2001, 5);
    insert_all(f, "transactions", json_pack("[O]", ledger));

    reopen(f, &schema_v2);
    assert_string_equal(f->report, "migrated schema 1 → 2: created 1 table, 8 indexes, 2 triggers; "
                                   "rebuilt 2 tables; dropped 1 index");
    assert_int_equal(count_rows(f, f->w, "runs"), 1);
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);

    /* The new index answers, the new guard refuses, the old guard still holds. */
    const schema_table *runs = schema_table_by_name(&schema_v2, "runs");
    json_t *eq = json_pack("[s]", "wf1");
    store_range r = {.table = runs,
                     .index = schema_index_by_name(runs, "by_workflow"),
                     .lo = eq,
                     .hi = eq,
                     .lo_inclusive = true,
                     .hi_inclusive = true,
                     .limit = 10};
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(run));
    json_decref(rows);
    json_decref(eq);
    json_object_set_new(run, "cost", json_integer(-1));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_replace(f->w, runs, run, &f->e), ERR_CONSTRAINT);
    assert_int_equal(
        store_delete(f->w, schema_table_by_name(&schema_v2, "transactions"), id_of(ledger), &f->e),
        ERR_CONSTRAINT);
    store_rollback(f->w);

    reopen(f, &schema_v2);
    assert_string_equal(f->report, "schema up to date (version 2)");
    store *st = NULL;
    assert_int_equal(store_open(f->path, &schema_v1, &st, f->report, &f->e), ERR_STORAGE);
    assert_string_equal(f->e.msg,
                        "database schema version 2 is newer than this dojo (1); upgrade dojo");
    json_decref(u);
    json_decref(run);
    json_decref(ledger);
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

static void engine_is_named_and_answers_ping(void **state)
{
    fixture *f = *state;
    assert_string_equal(store_engine_name(f->st), "sqlite");
    assert_ptr_equal(store_schema(f->st), &schema_v1);
    assert_ok(f, store_ping(f->w, &f->e));
}

static void open_names_the_file_it_cannot_open(void **state)
{
    fixture *f = *state;
    store *st = NULL;
    char path[1100];
    snprintf(path, sizeof path, "sqlite:%s/missing/dir/dojo.db", f->dir);
    assert_int_equal(store_open(path, &schema_v1, &st, NULL, &f->e), ERR_STORAGE);
    assert_non_null(strstr(f->e.msg, "cannot open database"));
    assert_non_null(strstr(f->e.msg, "missing/dir/dojo.db"));
}

/* --- documents ------------------------------------------------------------------------------ */

static void insert_get_replace_delete_round_trip(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users");
    json_t *u = user_doc(1, 10);
    json_object_set_new(u, "ratio", json_real(0.1));
    json_object_set_new(u, "big", json_integer(9007199254740993LL));
    json_object_set_new(u, "name", json_string("Zoë \"quoted\""));
    json_object_set_new(u, "identity", json_pack("{s:[i,b,n]}", "nested", 1, 1));
    insert_all(f, "users", json_pack("[O]", u));

    json_t *got = NULL;
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_true(json_equal(got, u));
    assert_true(json_is_integer(json_object_get(got, "big")));
    json_decref(got);

    json_object_set_new(u, "credits", json_integer(3));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_replace(f->w, users, u, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 3);
    json_decref(got);

    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_delete(f->w, users, id_of(u), &f->e));
    assert_int_equal(store_delete(f->w, users, id_of(u), &f->e), ERR_NOT_FOUND);
    assert_int_equal(store_replace(f->w, users, u, &f->e), ERR_NOT_FOUND);
    assert_ok(f, store_commit(f->w, &f->e));
    got = json_true();
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_null(got);
    assert_int_equal(count_rows(f, f->w, "users"), 0);
    json_decref(u);
}

static void metadata_is_read_and_overwritten(void **state)
{
    fixture *f = *state;
    char *v = (char *)"unset";
    assert_ok(f, store_meta_get(f->w, "ts", &v, &f->e));
    assert_null(v);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_meta_set(f->w, "ts", "41", &f->e));
    assert_ok(f, store_meta_set(f->w, "ts", "42", &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_ok(f, store_meta_get(f->w, "ts", &v, &f->e));
    assert_string_equal(v, "42");
    free(v);
}

static void reader_connection_cannot_write(void **state)
{
    fixture *f = *state;
    store_conn *r;
    assert_ok(f, store_connect(f->st, false, &r, &f->e));
    json_t *u = user_doc(1, 1);
    assert_int_equal(store_insert(r, table("users"), u, &f->e), ERR_STORAGE);
    assert_non_null(strstr(f->e.msg, "insert into users"));
    json_decref(u);
    store_disconnect(r);
    assert_int_equal(count_rows(f, f->w, "users"), 0);
}

/* --- guards ------------------------------------------------------------------------------ */

static void unique_index_refuses_a_duplicate(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *b = user_doc(2, 0);
    json_object_set_new(b, "tokenIdentifier", json_string("issuer|user1"));
    insert_all(f, "users", json_pack("[O]", a));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), b, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "UNIQUE constraint failed"));
    assert_non_null(strstr(f->e.msg, "users_by_token_unique"));
    /* Documents without the field do not collide. */
    json_object_del(b, "tokenIdentifier");
    json_t *c = user_doc(3, 0);
    json_object_del(c, "tokenIdentifier");
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), c, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_int_equal(count_rows(f, f->w, "users"), 3);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void append_only_table_refuses_update_and_delete(void **state)
{
    fixture *f = *state;
    json_t *t = ledger_doc("u", 1, 5);
    insert_all(f, "transactions", json_pack("[O]", t));
    json_object_set_new(t, "amount", json_integer(500));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_replace(f->w, table("transactions"), t, &f->e), ERR_CONSTRAINT);
    assert_non_null(
        strstr(f->e.msg, "transactions is append-only: rows are never updated or deleted"));
    assert_int_equal(store_delete(f->w, table("transactions"), id_of(t), &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "append-only"));
    store_rollback(f->w);
    json_decref(t);
}

static void append_only_table_refuses_raw_sql(void **state)
{
    fixture *f = *state;
    insert_all(f, "transactions", json_pack("[o]", ledger_doc("u", 1, 5)));
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db, "UPDATE transactions SET doc = '{}'", NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    assert_int_equal(sqlite3_exec(db, "DELETE FROM transactions", NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    assert_non_null(strstr(sqlite3_errmsg(db), "append-only"));
    sqlite3_close(db);
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);
}

static void negative_credits_are_refused_by_the_database(void **state)
{
    fixture *f = *state;
    json_t *neg = user_doc(1, -1);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), neg, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "CHECK constraint failed: users_credits_nonnegative"));
    store_rollback(f->w);
    json_t *ok = user_doc(2, 0);
    insert_all(f, "users", json_pack("[O]", ok));

    sqlite3 *db = raw_open(f);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE users SET doc = json_set(doc, '$.credits', -5)", NULL, NULL, NULL),
        SQLITE_CONSTRAINT);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO users VALUES ('x', 1, '{\"credits\": -1}')",
                                  NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    sqlite3_close(db);
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(ok), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 0);
    json_decref(got);
    json_decref(neg);
    json_decref(ok);
}

/* --- transactions ------------------------------------------------------------------------- */

static void savepoint_rollback_undoes_only_that_mutation(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *b = user_doc(2, 0), *c = user_doc(3, 0);
    const schema_table *users = table("users");
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_ok(f, store_insert(f->w, users, a, &f->e));
    assert_ok(f, store_savepoint_release(f->w, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_ok(f, store_insert(f->w, users, b, &f->e));
    store_savepoint_rollback(f->w);
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_ok(f, store_insert(f->w, users, c, &f->e));
    assert_ok(f, store_savepoint_release(f->w, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));

    json_t *got;
    assert_ok(f, store_get(f->w, users, id_of(a), &got, &f->e));
    assert_non_null(got);
    json_decref(got);
    assert_ok(f, store_get(f->w, users, id_of(b), &got, &f->e));
    assert_null(got);
    assert_ok(f, store_get(f->w, users, id_of(c), &got, &f->e));
    assert_non_null(got);
    json_decref(got);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void injected_fault_mid_transaction_writes_nothing(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users"), *ledger = table("transactions");
    assert_ok(f, store_begin(f->w, true, &f->e));
    for (int i = 0; i < 3; i++) {
        json_t *u = user_doc(i, 10);
        assert_ok(f, store_insert(f->w, users, u, &f->e));
        json_t *t = ledger_doc(id_of(u), 1, 10);
        assert_ok(f, store_insert(f->w, ledger, t, &f->e));
        json_decref(u);
        json_decref(t);
    }
    store_inject_fault_after(2);
    json_t *u = user_doc(7, 1), *v = user_doc(8, 1);
    assert_ok(f, store_insert(f->w, users, u, &f->e));
    assert_int_equal(store_insert(f->w, users, v, &f->e), ERR_STORAGE);
    assert_string_equal(f->e.msg, "insert into users: injected fault");
    store_rollback(f->w);
    json_decref(u);
    json_decref(v);

    assert_int_equal(count_rows(f, f->w, "users"), 0);
    assert_int_equal(count_rows(f, f->w, "transactions"), 0);
    sqlite3 *db = raw_open(f);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM users) + "
                                        "(SELECT count(*) FROM transactions)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void injected_fault_at_commit_writes_nothing(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 10);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), u, &f->e));
    store_inject_fault_after(1);
    assert_int_equal(store_commit(f->w, &f->e), ERR_STORAGE);
    store_rollback(f->w);
    store_rollback(f->w); /* safe twice */
    assert_int_equal(count_rows(f, f->w, "users"), 0);
    json_decref(u);
}

static void injected_fault_strikes_the_nth_statement_once(void **state)
{
    fixture *f = *state;
    store_inject_fault_after(3);
    assert_ok(f, store_ping(f->w, &f->e));
    assert_ok(f, store_ping(f->w, &f->e));
    assert_int_equal(store_ping(f->w, &f->e), ERR_STORAGE);
    assert_ok(f, store_ping(f->w, &f->e));
}

static void reader_snapshot_ignores_later_commits_until_it_ends(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users");
    store_conn *r;
    assert_ok(f, store_connect(f->st, false, &r, &f->e));
    insert_all(f, "users", json_pack("[o]", user_doc(1, 1)));

    assert_ok(f, store_begin(r, false, &f->e));
    int64_t n;
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 1);
    json_t *later = user_doc(2, 2);
    insert_all(f, "users", json_pack("[O]", later)); /* the writer is not blocked */
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 1);
    json_t *got = json_true();
    assert_ok(f, store_get(r, users, id_of(later), &got, &f->e));
    assert_null(got);
    assert_ok(f, store_commit(r, &f->e));

    assert_ok(f, store_begin(r, false, &f->e));
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 2);
    store_rollback(r);
    store_disconnect(r);
    json_decref(later);
}

static void truncate_all_empties_tables_and_keeps_guards(void **state)
{
    fixture *f = *state;
    insert_all(f, "users", json_pack("[o]", user_doc(1, 1)));
    json_t *t = ledger_doc("u", 1, 5);
    insert_all(f, "transactions", json_pack("[O]", t));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_meta_set(f->w, "ts", "9", &f->e));
    assert_ok(f, store_truncate_all(f->w, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_int_equal(count_rows(f, f->w, "users"), 0);
    assert_int_equal(count_rows(f, f->w, "transactions"), 0);
    char *ts = NULL;
    assert_ok(f, store_meta_get(f->w, "ts", &ts, &f->e));
    assert_string_equal(ts, "9");
    free(ts);

    insert_all(f, "transactions", json_pack("[O]", t));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_delete(f->w, table("transactions"), id_of(t), &f->e), ERR_CONSTRAINT);
    store_rollback(f->w);
    json_decref(t);
}

/* --- scans --------------------------------------------------------------------------------- */

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

static void scan_with_prefix_equality_returns_that_prefix_ascending(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 7);
    json_t *eq = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", eq, true, eq, true, false, 100);
    json_t *rows = scan(f, &r);
    json_t *want = sorted_by_key(mine, r.index, false);
    assert_same_ids(rows, want);
    json_decref(rows);
    json_decref(want);
    json_decref(eq);
    json_decref(mine);
}

static void scan_descending_stops_at_an_exclusive_cursor(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 9);
    json_t *want_all = sorted_by_key(mine, schema_index_by_name(table("runs"), "by_user"), true);
    json_t *cursor =
        schema_key_of(schema_index_by_name(table("runs"), "by_user"), json_array_get(want_all, 3));
    json_t *lo = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", lo, true, cursor, false, true, 100);
    json_t *rows = scan(f, &r);
    json_t *want = json_array();
    for (size_t i = 4; i < json_array_size(want_all); i++)
        json_array_append(want, json_array_get(want_all, i));
    assert_same_ids(rows, want);
    json_decref(rows);
    json_decref(want);
    json_decref(want_all);
    json_decref(cursor);
    json_decref(lo);
    json_decref(mine);
}

static void scan_ascending_starts_after_an_exclusive_cursor(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 9);
    const schema_index *ix = schema_index_by_name(table("runs"), "by_user");
    json_t *want_all = sorted_by_key(mine, ix, false);
    json_t *cursor = schema_key_of(ix, json_array_get(want_all, 4));
    json_t *hi = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", cursor, false, hi, true, false, 100);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 4);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(json_array_get(want_all, 5)));
    /* Inclusive, the cursor row comes back first. */
    r.lo_inclusive = true;
    json_decref(rows);
    rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 5);
    assert_string_equal(id_of(json_array_get(rows, 0)), id_of(json_array_get(want_all, 4)));
    json_decref(rows);
    json_decref(want_all);
    json_decref(cursor);
    json_decref(hi);
    json_decref(mine);
}

static void scan_returns_at_most_limit_rows(void **state)
{
    fixture *f = *state;
    json_decref(insert_runs(f, "alice", 6));
    store_range r = range_of("runs", "by_creation_time", NULL, false, NULL, false, false, 4);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 4);
    json_decref(rows);
    r.limit = 1000;
    rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 12);
    json_decref(rows);
}

static void scan_of_an_exclusive_equal_bound_is_empty(void **state)
{
    fixture *f = *state;
    json_decref(insert_runs(f, "alice", 3));
    json_t *eq = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", eq, false, eq, true, false, 100);
    json_t *rows = scan(f, &r);
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    json_decref(eq);
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

static void paging_two_at_a_time_yields_each_row_once_in_order(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 25);
    const schema_index *ix = schema_index_by_name(table("runs"), "by_user");
    for (int descending = 0; descending < 2; descending++) {
        json_t *seen = page_through(f, "by_user", "alice", descending);
        json_t *want = sorted_by_key(mine, ix, descending);
        assert_int_equal(json_array_size(seen), 25);
        assert_same_ids(seen, want);
        json_decref(seen);
        json_decref(want);
    }
    json_decref(mine);
}

/* Rows whose status is missing, null, numbers of both kinds, and strings. */
static json_t *insert_mixed_statuses(fixture *f)
{
    json_t *statuses = json_pack("[n,n,i,f,i,f,s,s,s,s,s,s,I,f]", 3, 2.5, -1, -0.5, "B", "a", "ab",
                                 "\xc3\xa9", "", "a", (json_int_t)9007199254740993LL, 1e300);
    json_t *all = json_array();
    json_array_append_new(all, run_doc("u", 7000, NULL)); /* missing */
    json_array_append_new(all, run_doc("u", 6999, NULL));
    for (size_t i = 0; i < json_array_size(statuses); i++)
        json_array_append_new(
            all, run_doc("u", 7000 - (double)(i % 4), json_incref(json_array_get(statuses, i))));
    json_array_append_new(all, run_doc("u", 7000, json_integer(3))); /* ties broken by id */
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
    assert_same_ids(rows, want);
    json_decref(rows);
    json_decref(want);
    json_decref(sorted);
}

static void scan_order_and_bounds_agree_with_schema_key_order(void **state)
{
    fixture *f = *state;
    json_t *docs = insert_mixed_statuses(f);
    json_t *bounds[] = {
        NULL,
        json_pack("[s]", "a"),
        json_pack("[f]", 2.5),
        json_pack("[i]", 3),
        json_pack("[n]"),
        json_pack("[i,f]", 3, 6999.0),
        json_pack("[s,f,s]", "a", 6999.0, "zzzz"),
    };
    size_t n_bounds = sizeof bounds / sizeof bounds[0];
    for (size_t lo = 0; lo < n_bounds; lo++)
        for (size_t hi = 0; hi < n_bounds; hi++)
            for (int flags = 0; flags < 8; flags++) {
                store_range r = range_of("runs", "by_status", bounds[lo], flags & 1, bounds[hi],
                                         flags & 2, flags & 4, 1000);
                check_scan_against_schema_order(f, docs, r);
            }
    for (size_t i = 0; i < n_bounds; i++)
        json_decref(bounds[i]);
    json_decref(docs);
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
    json_t *user = json_pack("[s]", "alice");
    json_t *cursor = json_pack("[s,f,s]", "alice", 5001.0, "zz");
    json_t *status_cursor = json_pack("[s,f,s]", "queued", 5001.0, "zz");
    json_t *ct_cursor = json_pack("[f,s]", 5001.0, "zz");
    json_t *token = json_pack("[s]", "issuer|user1");
    struct {
        store_range r;
        const char *plan;
    } cases[] = {
        {range_of("runs", "by_user", user, true, user, true, false, 10),
         "SEARCH runs USING INDEX runs_by_user (<expr>=?)"},
        {range_of("runs", "by_user", user, true, cursor, false, true, 10),
         "SEARCH runs USING INDEX runs_by_user (<expr>=? AND (creation_time,id)<(?,?))"},
        {range_of("runs", "by_user", cursor, false, user, true, false, 10),
         "SEARCH runs USING INDEX runs_by_user (<expr>=? AND (creation_time,id)>(?,?))"},
        {range_of("runs", "by_status", NULL, false, status_cursor, false, true, 10),
         "SEARCH runs USING INDEX runs_by_status (<expr><?)"},
        {range_of("runs", "by_status", status_cursor, false, NULL, false, false, 10),
         "SEARCH runs USING INDEX runs_by_status (<expr>>?)"},
        {range_of("runs", "by_creation_time", ct_cursor, false, NULL, false, false, 10),
         "SEARCH runs USING INDEX runs_by_creation_time ((creation_time,id)>(?,?))"},
        {range_of("runs", "by_creation_time", NULL, false, ct_cursor, true, true, 10),
         "SEARCH runs USING INDEX runs_by_creation_time ((creation_time,id)<(?,?))"},
        {range_of("users", "by_token", token, true, token, true, false, 2),
         "SEARCH users USING INDEX users_by_token (<expr>=?)"},
        /* Unbounded, the whole index is walked in order. */
        {range_of("runs", "by_status", NULL, false, NULL, false, true, 10),
         "SCAN runs USING INDEX runs_by_status"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_plan(f, &cases[i].r, cases[i].plan);
    json_decref(user);
    json_decref(cursor);
    json_decref(status_cursor);
    json_decref(ct_cursor);
    json_decref(token);
}

static void hot_statements_are_prepared_once(void **state)
{
    fixture *f = *state;
    json_t *mine = insert_runs(f, "alice", 4);
    json_t *eq = json_pack("[s]", "alice");
    store_range r = range_of("runs", "by_user", eq, true, eq, true, true, 2);
    uint64_t before = 0;
    for (int round = 0; round < 3; round++) {
        if (round == 1) before = store_sqlite_prepare_count(f->w);
        json_t *rows = scan(f, &r);
        json_decref(rows);
        json_t *got;
        assert_ok(f, store_get(f->w, table("runs"), id_of(json_array_get(mine, 0)), &got, &f->e));
        json_decref(got);
        insert_all(f, "users", json_pack("[o]", user_doc(round, 1)));
    }
    assert_int_equal(store_sqlite_prepare_count(f->w), before);
    json_decref(eq);
    json_decref(mine);
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
        T(reopen_reports_schema_up_to_date),
        T(newer_schema_version_is_refused),
        T(migration_adds_rebuilds_and_drops_keeping_rows),
        T(wal_and_synchronous_full_are_in_effect),
        T(engine_is_named_and_answers_ping),
        T(open_names_the_file_it_cannot_open),
        T(insert_get_replace_delete_round_trip),
        T(metadata_is_read_and_overwritten),
        T(reader_connection_cannot_write),
        T(unique_index_refuses_a_duplicate),
        T(append_only_table_refuses_update_and_delete),
        T(append_only_table_refuses_raw_sql),
        T(negative_credits_are_refused_by_the_database),
        T(savepoint_rollback_undoes_only_that_mutation),
        T(injected_fault_mid_transaction_writes_nothing),
        T(injected_fault_at_commit_writes_nothing),
        T(injected_fault_strikes_the_nth_statement_once),
        T(reader_snapshot_ignores_later_commits_until_it_ends),
        T(truncate_all_empties_tables_and_keeps_guards),
        T(scan_with_prefix_equality_returns_that_prefix_ascending),
        T(scan_descending_stops_at_an_exclusive_cursor),
        T(scan_ascending_starts_after_an_exclusive_cursor),
        T(scan_returns_at_most_limit_rows),
        T(scan_of_an_exclusive_equal_bound_is_empty),
        T(paging_two_at_a_time_yields_each_row_once_in_order),
        T(scan_order_and_bounds_agree_with_schema_key_order),
        T(scans_seek_their_index_without_sorting),
        T(hot_statements_are_prepared_once),
        cmocka_unit_test(schema_value_cmp_orders_null_numbers_strings_others),
        cmocka_unit_test(schema_key_cmp_prefix_compares_the_first_n_values),
        cmocka_unit_test(schema_keys_follow_fields_then_creation_time_then_id),
        cmocka_unit_test(schema_lookups_find_tables_and_indexes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
