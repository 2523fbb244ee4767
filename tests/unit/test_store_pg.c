/*
 * test_store_pg.c — the store's contract (store.h, schema.h) on the
 * PostgreSQL engine: schema creation, migration and repair, document round
 * trips, index scans and their order (also against schema_value_cmp on
 * random mixed values), the guards the database enforces by itself (also
 * against raw SQL through libpq), savepoints, injected faults, reader
 * snapshots, writers of two connections taking turns, lost connections, and
 * the plans PostgreSQL picks for scans.
 *
 * Needs a server: DOJO_TEST_PG_URL=postgres://… (scripts/pg.sh starts a
 * throwaway one; scripts/test.sh always does). Without it every test is
 * skipped. Each test gets a fresh PostgreSQL schema of its own, selected
 * through the URL (options=-csearch_path=…), and drops it afterwards.
 * Thread: the test's main thread, plus the threads a test starts itself.
 */
#include "support.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/ids.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/store_impl.h"

#define URL_BYTES_MAX 1024
#define PLAN_BYTES_MAX 8192

/* --- the test schema (as in test_store.c) ------------------------------------------ */

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
 * field (an altered table); runs gain by_workflow; a new table workflows. */
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
    char schema_name[64];
    char url[URL_BYTES_MAX]; /* DOJO_TEST_PG_URL restricted to schema_name */
    PGconn *raw;             /* plain libpq on the same schema, for raw SQL */
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

static const char *base_url(void)
{
    const char *url = getenv("DOJO_TEST_PG_URL");
    return url && url[0] ? url : NULL;
}

/* The base URL with a search_path of schema_name, as libpq reads URLs. */
static void schema_url(const char *schema_name, char out[URL_BYTES_MAX])
{
    const char *base = base_url();
    snprintf(out, URL_BYTES_MAX, "%s%soptions=-csearch_path%%3D%s", base,
             strchr(base, '?') ? "&" : "?", schema_name);
}

static PGconn *raw_connect(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(pg));
    PQclear(PQexec(pg, "SET client_min_messages = warning; SET lock_timeout = '10s'"));
    return pg;
}

/* Runs raw SQL; returns its SQLSTATE ("" on success) into state. */
static void raw_exec(PGconn *pg, const char *sql, char state[6])
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(state, 6, "%s",
             st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? ""
             : code                                          ? code
                                                             : "?");
    PQclear(res);
}

static void raw_ok(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

/* The first column of the first row of sql, as text (malloc'd). */
static char *raw_text(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    char *text = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return text;
}

static long raw_long(PGconn *pg, const char *sql)
{
    char *text = raw_text(pg, sql);
    long v = strtol(text, NULL, 10);
    free(text);
    return v;
}

static void new_schema_name(char out[64])
{
    static int serial;
    snprintf(out, 64, "dojo_test_%d_%d", (int)getpid(), ++serial);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    err_init(&f->e);
    new_schema_name(f->schema_name);
    schema_url(f->schema_name, f->url);
    PGconn *admin = raw_connect(base_url());
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", f->schema_name);
    raw_ok(admin, sql);
    PQfinish(admin);
    f->raw = raw_connect(f->url);
    assert_ok(f, store_open(f->url, &schema_v1, &f->st, f->report, &f->e));
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
    PQfinish(f->raw);
    PGconn *admin = raw_connect(base_url());
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", f->schema_name);
    raw_ok(admin, sql);
    PQfinish(admin);
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
    assert_ok(f, store_open(f->url, s, &f->st, f->report, &f->e));
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

/* --- schema ------------------------------------------------------------------------------ */

static void open_creates_tables_and_reports(void **state)
{
    fixture *f = *state;
    assert_string_equal(f->report, "created 3 tables, 9 indexes, 3 triggers (schema version 1)");
    char *columns =
        raw_text(f->raw, "SELECT string_agg(column_name || ' ' || data_type, ', ' "
                         "ORDER BY ordinal_position) FROM information_schema.columns "
                         "WHERE table_schema = current_schema() AND table_name = 'runs'");
    assert_string_equal(columns, "id text, creation_time double precision, doc jsonb");
    free(columns);
    char *indexes = raw_text(f->raw, "SELECT string_agg(indexname, ' ' ORDER BY indexname) "
                                     "FROM pg_indexes WHERE schemaname = current_schema()");
    assert_string_equal(indexes, "_dojo_meta_pkey runs_by_creation_time runs_by_status "
                                 "runs_by_user runs_pkey transactions_by_creation_time "
                                 "transactions_by_user transactions_pkey users_by_creation_time "
                                 "users_by_email users_by_token users_by_token_unique users_pkey");
    free(indexes);
    char *triggers =
        raw_text(f->raw, "SELECT string_agg(tgname, ' ' ORDER BY tgname) FROM pg_trigger "
                         "WHERE tgrelid = 'transactions'::regclass AND NOT tgisinternal");
    assert_string_equal(triggers,
                        "transactions_append_only_delete transactions_append_only_truncate "
                        "transactions_append_only_update");
    free(triggers);
    char *version = raw_text(f->raw, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'");
    assert_string_equal(version, "1");
    free(version);
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
    int rc = store_open(f->url, &schema_v1, &st, f->report, &f->e);
    assert_int_equal(rc, ERR_STORAGE);
    assert_null(st);
    assert_string_equal(f->e.msg,
                        "database schema version 7 is newer than this dojo (1); upgrade dojo");
}

static void migration_adds_alters_and_drops_keeping_rows(void **state)
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
    assert_string_equal(f->report, "migrated schema 1 → 2: created 1 table, 3 indexes; "
                                   "altered 2 tables; dropped 1 index");
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
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_replace(f->w, runs, run, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "runs_cost_nonnegative"));
    store_savepoint_rollback(f->w);
    assert_int_equal(
        store_delete(f->w, schema_table_by_name(&schema_v2, "transactions"), id_of(ledger), &f->e),
        ERR_CONSTRAINT);
    store_rollback(f->w);

    reopen(f, &schema_v2);
    assert_string_equal(f->report, "schema up to date (version 2)");
    store *st = NULL;
    assert_int_equal(store_open(f->url, &schema_v1, &st, f->report, &f->e), ERR_STORAGE);
    assert_string_equal(f->e.msg,
                        "database schema version 2 is newer than this dojo (1); upgrade dojo");
    json_decref(u);
    json_decref(run);
    json_decref(ledger);
}

static void missing_and_changed_objects_are_repaired(void **state)
{
    fixture *f = *state;
    raw_ok(f->raw, "DROP INDEX runs_by_status");
    raw_ok(f->raw, "DROP TRIGGER transactions_append_only_update ON transactions");
    raw_ok(f->raw, "CREATE INDEX runs_stray ON runs (creation_time)");
    raw_ok(f->raw, "COMMENT ON INDEX users_by_email IS 'made by hand'");
    reopen(f, &schema_v1);
    assert_string_equal(f->report, "repaired schema (version 1): created 2 indexes, 1 trigger; "
                                   "dropped 2 indexes");
    reopen(f, &schema_v1);
    assert_string_equal(f->report, "schema up to date (version 1)");
}

typedef struct opener {
    char url[URL_BYTES_MAX];
    char report[STORE_REPORT_BYTES_MAX];
    int rc;
    err_t e;
} opener;

static void *open_in_thread(void *arg)
{
    opener *o = arg;
    store *st = NULL;
    o->rc = store_open(o->url, &schema_v1, &st, o->report, &o->e);
    store_close(st);
    return NULL;
}

static void simultaneous_opens_apply_the_schema_once(void **state)
{
    fixture *f = *state;
    char name[64], sql[128];
    new_schema_name(name);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", name);
    raw_ok(f->raw, sql);
    enum { OPENERS = 4 };
    opener o[OPENERS];
    pthread_t threads[OPENERS];
    for (int i = 0; i < OPENERS; i++) {
        memset(&o[i], 0, sizeof o[i]);
        err_init(&o[i].e);
        schema_url(name, o[i].url);
        assert_int_equal(pthread_create(&threads[i], NULL, open_in_thread, &o[i]), 0);
    }
    int created = 0;
    for (int i = 0; i < OPENERS; i++) {
        pthread_join(threads[i], NULL);
        if (o[i].rc) fail_msg("open %d: %s", i, o[i].e.msg);
        if (strcmp(o[i].report, "schema up to date (version 1)") != 0) {
            assert_string_equal(o[i].report,
                                "created 3 tables, 9 indexes, 3 triggers (schema version 1)");
            created++;
        }
        err_clear(&o[i].e);
    }
    assert_int_equal(created, 1);
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", name);
    raw_ok(f->raw, sql);
}

static void connections_are_set_up_for_their_role(void **state)
{
    fixture *f = *state;
    store_conn *r;
    assert_ok(f, store_connect(f->st, false, &r, &f->e));
    store_conn *conns[] = {f->w, r};
    for (int i = 0; i < 2; i++) {
        char v[64];
        assert_ok(f, store_pg_query_text(conns[i], "SHOW default_transaction_read_only", v,
                                         sizeof v, &f->e));
        assert_string_equal(v, i == 0 ? "off" : "on");
        assert_ok(f, store_pg_query_text(conns[i], "SHOW lock_timeout", v, sizeof v, &f->e));
        assert_string_equal(v, "30s");
        assert_ok(f, store_pg_query_text(conns[i], "SHOW client_encoding", v, sizeof v, &f->e));
        assert_string_equal(v, "UTF8");
        assert_ok(f, store_pg_query_text(conns[i], "SHOW search_path", v, sizeof v, &f->e));
        assert_string_equal(v, f->schema_name);
    }
    /* A read transaction is REPEATABLE READ, a write transaction SERIALIZABLE
     * and holds the write lock from its start. */
    char v[64];
    assert_ok(f, store_begin(r, false, &f->e));
    assert_ok(f, store_pg_query_text(r, "SHOW transaction_isolation", v, sizeof v, &f->e));
    assert_string_equal(v, "repeatable read");
    store_rollback(r);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_pg_query_text(f->w, "SHOW transaction_isolation", v, sizeof v, &f->e));
    assert_string_equal(v, "serializable");
    assert_ok(f, store_pg_query_text(f->w,
                                     "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() "
                                     "AND relation = '_dojo_meta'::regclass AND granted",
                                     v, sizeof v, &f->e));
    assert_string_equal(v, "ExclusiveLock");
    store_rollback(f->w);
    store_disconnect(r);
}

static void engine_is_named_and_answers_ping(void **state)
{
    fixture *f = *state;
    assert_string_equal(store_engine_name(f->st), "postgres");
    assert_ptr_equal(store_schema(f->st), &schema_v1);
    assert_ok(f, store_ping(f->w, &f->e));
}

static void open_names_the_server_and_hides_the_password(void **state)
{
    fixture *f = *state;
    store *st = NULL;
    const char *url = "postgresql://dojo:s3cret@127.0.0.1:1/somedb?connect_timeout=2";
    assert_int_equal(store_open(url, &schema_v1, &st, NULL, &f->e), ERR_STORAGE);
    assert_null(st);
    assert_non_null(strstr(f->e.msg, "cannot connect to postgresql://dojo:***@127.0.0.1:1/somedb"));
    assert_non_null(strstr(f->e.msg, "127.0.0.1"));
    assert_null(strstr(f->e.msg, "s3cret"));
    assert_null(strchr(f->e.msg, '\n'));

    char shown[256];
    store_redact_url("postgres://u@h/db?sslmode=require&password=pw&x=1", shown, sizeof shown);
    assert_string_equal(shown, "postgres://u@h/db?sslmode=require&password=***&x=1");
    store_redact_url("postgres://u:p@ss@h:5/db", shown, sizeof shown);
    assert_string_equal(shown, "postgres://u:***@h:5/db");
    store_redact_url("postgres://h/db", shown, sizeof shown);
    assert_string_equal(shown, "postgres://h/db");
    store_redact_url("sqlite:/tmp/x.db", shown, sizeof shown);
    assert_string_equal(shown, "sqlite:/tmp/x.db");
}

/* --- documents ------------------------------------------------------------------------------ */

static void insert_get_replace_delete_round_trip(void **state)
{
    fixture *f = *state;
    const schema_table *users = table("users");
    json_t *u = user_doc(1, 10);
    json_object_set_new(u, "_creationTime", json_real(1712345678901.2346));
    json_object_set_new(u, "ratio", json_real(0.1));
    json_object_set_new(u, "whole", json_real(5.0));
    json_object_set_new(u, "big", json_integer(9007199254740993LL));
    json_object_set_new(u, "name", json_string("Zoë \"quoted\" \\ \t 日本"));
    json_object_set_new(u, "identity", json_pack("{s:[i,b,n], s:{}}", "nested", 1, 1, "empty"));
    insert_all(f, "users", json_pack("[O]", u));

    json_t *got = NULL;
    assert_ok(f, store_get(f->w, users, id_of(u), &got, &f->e));
    assert_true(json_equal(got, u));
    assert_true(json_is_integer(json_object_get(got, "big")));
    assert_true(json_is_integer(json_object_get(got, "credits")));
    assert_true(json_is_real(json_object_get(got, "whole")));
    assert_true(json_real_value(json_object_get(got, "_creationTime")) == 1712345678901.2346);
    json_decref(got);
    /* The column holds the same time. */
    char *ct = raw_text(f->raw, "SELECT creation_time::text FROM users");
    assert_string_equal(ct, "1712345678901.2346");
    free(ct);

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

/* jsonb prints a real such as 1e300 as 301 digits; it comes back a real. */
static void huge_reals_come_back_as_reals(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 0);
    json_object_set_new(u, "huge", json_real(1e300));
    json_object_set_new(u, "negative", json_real(-2.5e40));
    json_object_set_new(u, "tiny", json_real(5e-324));
    json_object_set_new(u, "text", json_string("100000000000000000000000 stays text"));
    json_object_set_new(u, "list", json_pack("[f, I]", 1e20, (json_int_t)-9223372036854775807LL));
    insert_all(f, "users", json_pack("[O]", u));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_non_null(got);
    assert_true(json_real_value(json_object_get(got, "huge")) == 1e300);
    assert_true(json_real_value(json_object_get(got, "negative")) == -2.5e40);
    assert_true(json_real_value(json_object_get(got, "tiny")) == 5e-324);
    assert_string_equal(json_string_value(json_object_get(got, "text")),
                        "100000000000000000000000 stays text");
    json_t *list = json_object_get(got, "list");
    assert_true(json_real_value(json_array_get(list, 0)) == 1e20);
    assert_true(json_integer_value(json_array_get(list, 1)) == -9223372036854775807LL);
    json_decref(got);
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
    assert_non_null(strstr(f->e.msg, "read-only transaction"));
    assert_ok(f, store_begin(r, false, &f->e));
    assert_int_equal(store_insert(r, table("users"), u, &f->e), ERR_STORAGE);
    store_rollback(r);
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
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), b, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "duplicate key value"));
    assert_non_null(strstr(f->e.msg, "users_by_token_unique"));
    store_savepoint_rollback(f->w);
    /* Documents without the field, or with null, do not collide. */
    json_object_del(b, "tokenIdentifier");
    json_t *c = user_doc(3, 0), *d = user_doc(4, 0), *g = user_doc(5, 0);
    json_object_del(c, "tokenIdentifier");
    json_object_set_new(d, "tokenIdentifier", json_null());
    json_object_set_new(g, "tokenIdentifier", json_null());
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), c, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), d, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), g, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_int_equal(count_rows(f, f->w, "users"), 5);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(g);
}

/* Unlike SQLite, PostgreSQL keeps a transaction failed after a failed
 * statement until a savepoint rollback or a rollback; commit refuses it. */
static void a_failed_statement_fails_the_transaction_until_rolled_back(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *dup = user_doc(1, 0), *b = user_doc(2, 0);
    insert_all(f, "users", json_pack("[O]", a));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), dup, &f->e), ERR_CONSTRAINT);
    assert_int_equal(store_ping(f->w, &f->e), ERR_STORAGE);
    assert_non_null(strstr(f->e.msg, "current transaction is aborted"));
    assert_int_equal(store_commit(f->w, &f->e), ERR_STORAGE);
    assert_non_null(strstr(f->e.msg, "roll it back"));
    store_rollback(f->w);
    assert_int_equal(count_rows(f, f->w, "users"), 1);
    json_decref(a);
    json_decref(dup);
    json_decref(b);
}

static void append_only_table_refuses_update_and_delete(void **state)
{
    fixture *f = *state;
    json_t *t = ledger_doc("u", 1, 5);
    insert_all(f, "transactions", json_pack("[O]", t));
    json_object_set_new(t, "amount", json_integer(500));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_replace(f->w, table("transactions"), t, &f->e), ERR_CONSTRAINT);
    assert_string_equal(f->e.msg, "replace in transactions: transactions is append-only: rows are "
                                  "never updated or deleted");
    store_savepoint_rollback(f->w);
    assert_ok(f, store_savepoint(f->w, &f->e));
    assert_int_equal(store_delete(f->w, table("transactions"), id_of(t), &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "append-only"));
    store_savepoint_rollback(f->w);
    assert_ok(f, store_commit(f->w, &f->e));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("transactions"), id_of(t), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "amount")), 5);
    json_decref(got);
    json_decref(t);
}

static void append_only_table_refuses_raw_sql(void **state)
{
    fixture *f = *state;
    insert_all(f, "transactions", json_pack("[o]", ledger_doc("u", 1, 5)));
    const char *refused[] = {
        "UPDATE transactions SET doc = '{}'",
        "DELETE FROM transactions",
        "TRUNCATE transactions",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        PGresult *res = PQexec(f->raw, refused[i]);
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23001");
        assert_string_equal(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
                            "transactions is append-only: rows are never updated or deleted");
        PQclear(res);
    }
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);
}

static void negative_credits_are_refused_by_the_database(void **state)
{
    fixture *f = *state;
    json_t *neg = user_doc(1, -1);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), neg, &f->e), ERR_CONSTRAINT);
    assert_string_equal(f->e.msg, "insert into users: new row for relation \"users\" violates "
                                  "check constraint \"users_credits_nonnegative\"");
    store_rollback(f->w);
    json_t *ok = user_doc(2, 0);
    insert_all(f, "users", json_pack("[O]", ok));

    char state_code[6];
    raw_exec(f->raw, "UPDATE users SET doc = jsonb_set(doc, '{credits}', '-5')", state_code);
    assert_string_equal(state_code, "23514");
    raw_exec(f->raw, "UPDATE users SET doc = jsonb_set(doc, '{credits}', '-0.5')", state_code);
    assert_string_equal(state_code, "23514");
    raw_exec(f->raw, "INSERT INTO users VALUES ('x', 1, '{\"credits\": -1}')", state_code);
    assert_string_equal(state_code, "23514");
    /* Not a number, or missing: not the guard's business (as with SQLite). */
    raw_exec(f->raw, "INSERT INTO users VALUES ('y', 1, '{\"credits\": \"-1\"}')", state_code);
    assert_string_equal(state_code, "");
    raw_exec(f->raw, "INSERT INTO users VALUES ('z', 1, '{}')", state_code);
    assert_string_equal(state_code, "");
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(ok), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 0);
    json_decref(got);
    json_decref(neg);
    json_decref(ok);
}

static void a_document_jsonb_cannot_hold_is_refused(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 0);
    json_object_set_new(u, "name", json_stringn("a\0b", 3));
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_int_equal(store_insert(f->w, table("users"), u, &f->e), ERR_CONSTRAINT);
    assert_non_null(strstr(f->e.msg, "insert into users: unsupported Unicode escape sequence"));
    store_rollback(f->w);
    json_decref(u);
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
    assert_int_equal(
        raw_long(f->raw,
                 "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM transactions)"),
        0);
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
    assert_string_equal(f->e.msg, "ping: injected fault");
    assert_ok(f, store_ping(f->w, &f->e));
    /* At begin too: no transaction is left open. */
    store_inject_fault_after(1);
    assert_int_equal(store_begin(f->w, true, &f->e), ERR_STORAGE);
    assert_ok(f, store_begin(f->w, true, &f->e));
    store_rollback(f->w);
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
    char *ts = NULL;
    assert_ok(f, store_meta_get(r, "ts", &ts, &f->e)); /* reading meta is not blocked either */
    assert_ok(f, store_commit(r, &f->e));

    assert_ok(f, store_begin(r, false, &f->e));
    assert_ok(f, store_count(r, users, &n, &f->e));
    assert_int_equal(n, 2);
    store_rollback(r);
    store_disconnect(r);
    json_decref(later);
}

typedef struct second_writer {
    store_conn *c;
    const char *user_id;
    atomic_bool began;
    int64_t users_seen;
    json_int_t credits_seen;
    int rc;
    err_t e;
} second_writer;

/* Begins a write transaction (waiting for the first writer), then reads and
 * updates the user the first writer inserted. */
static void *second_writer_main(void *arg)
{
    second_writer *s = arg;
    const schema_table *users = table("users");
    s->rc = store_begin(s->c, true, &s->e);
    atomic_store(&s->began, true);
    json_t *u = NULL;
    if (s->rc == 0) s->rc = store_count(s->c, users, &s->users_seen, &s->e);
    if (s->rc == 0) s->rc = store_get(s->c, users, s->user_id, &u, &s->e);
    if (s->rc == 0 && u) {
        s->credits_seen = json_integer_value(json_object_get(u, "credits"));
        json_object_set_new(u, "credits", json_integer(s->credits_seen + 1));
        s->rc = store_replace(s->c, users, u, &s->e);
    }
    if (s->rc == 0) s->rc = store_commit(s->c, &s->e);
    if (s->rc) store_rollback(s->c);
    json_decref(u);
    return NULL;
}

static void writers_on_two_connections_take_turns(void **state)
{
    fixture *f = *state;
    second_writer s = {.rc = -1};
    err_init(&s.e);
    assert_ok(f, store_connect(f->st, true, &s.c, &f->e));
    json_t *u = user_doc(1, 10);
    s.user_id = id_of(u);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), u, &f->e));

    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, second_writer_main, &s), 0);
    struct timespec wait = {.tv_sec = 0, .tv_nsec = 400 * 1000 * 1000};
    nanosleep(&wait, NULL);
    assert_false(atomic_load(&s.began)); /* queued behind the first writer */
    assert_ok(f, store_commit(f->w, &f->e));
    pthread_join(thread, NULL);

    if (s.rc) fail_msg("second writer: %s", s.e.msg);
    assert_int_equal(s.users_seen, 1);    /* it saw the first writer's commit */
    assert_int_equal(s.credits_seen, 10); /* and updated it without a conflict */
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 11);
    json_decref(got);
    json_decref(u);
    store_disconnect(s.c);
    err_clear(&s.e);
}

/* A writer outside dojo (it does not take the write lock) that changes a row
 * a dojo write transaction has read makes that transaction's write fail
 * with ERR_BUSY: a serialization failure to retry. */
static void a_conflict_with_a_foreign_writer_is_busy(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 10);
    insert_all(f, "users", json_pack("[O]", u));
    assert_ok(f, store_begin(f->w, true, &f->e));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    json_decref(got);
    raw_ok(f->raw, "UPDATE users SET doc = jsonb_set(doc, '{credits}', '99')");
    json_object_set_new(u, "credits", json_integer(11));
    assert_int_equal(store_replace(f->w, table("users"), u, &f->e), ERR_BUSY);
    assert_non_null(strstr(f->e.msg, "replace in users: could not serialize access"));
    store_rollback(f->w);
    json_decref(u);
}

/* Ends the server process of c's connection, and waits until it is gone. */
static void kill_backend(fixture *f, store_conn *c)
{
    char pid[32], sql[128];
    assert_ok(f, store_pg_query_text(c, "SELECT pg_backend_pid()", pid, sizeof pid, &f->e));
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", pid);
    raw_ok(f->raw, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
    for (int i = 0; i < 500 && raw_long(f->raw, sql) > 0; i++) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    assert_int_equal(raw_long(f->raw, sql), 0);
}

/* A writer that waits for the write lock past lock_timeout (30 s; 200 ms
 * here) gives up with ERR_BUSY and leaves no transaction open. */
static void a_writer_kept_waiting_too_long_is_busy(void **state)
{
    fixture *f = *state;
    char v[16];
    assert_ok(f, store_pg_query_text(f->w, "SET lock_timeout = 200", v, sizeof v, &f->e));
    raw_ok(f->raw, "BEGIN; LOCK TABLE _dojo_meta IN EXCLUSIVE MODE");
    assert_int_equal(store_begin(f->w, true, &f->e), ERR_BUSY);
    assert_string_equal(f->e.msg, "begin write transaction: another writer kept the write lock "
                                  "past lock_timeout; try again");
    raw_ok(f->raw, "COMMIT");
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
}

static void a_lost_connection_is_opened_again(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 10);
    insert_all(f, "users", json_pack("[O]", u));

    /* Lost mid-transaction: the transaction fails, the next one works. */
    assert_ok(f, store_begin(f->w, true, &f->e));
    kill_backend(f, f->w);
    json_t *v = user_doc(2, 1);
    assert_int_equal(store_insert(f->w, table("users"), v, &f->e), ERR_STORAGE);
    store_rollback(f->w);
    insert_all(f, "users", json_pack("[O]", v));
    assert_int_equal(count_rows(f, f->w, "users"), 2);

    /* Lost between transactions: the statement that notices fails, and the
     * connection comes back (with its prepared statements) for the next. */
    kill_backend(f, f->w);
    int rc = store_ping(f->w, &f->e);
    if (rc) assert_int_equal(rc, ERR_STORAGE);
    assert_ok(f, store_ping(f->w, &f->e));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_non_null(got);
    json_decref(got);
    json_decref(u);
    json_decref(v);
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
    /* A truncation that is rolled back keeps rows and guards. */
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_truncate_all(f->w, &f->e));
    store_rollback(f->w);
    assert_int_equal(count_rows(f, f->w, "transactions"), 1);
    char code[6];
    raw_exec(f->raw, "DELETE FROM transactions", code);
    assert_string_equal(code, "23001");
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
    json_t *statuses = json_pack("[n,n,i,f,i,f,s,s,s,s,s,s,I,f,I,b,b]", 3, 2.5, -1, -0.5, "B", "a",
                                 "ab", "\xc3\xa9", "", "a", (json_int_t)9007199254740993LL, 1e300,
                                 (json_int_t)9007199254740992LL, 1, 0);
    json_t *all = json_array();
    json_array_append_new(all, run_doc("u", 7000, NULL)); /* missing */
    json_array_append_new(all, run_doc("u", 6999, NULL));
    for (size_t i = 0; i < json_array_size(statuses); i++)
        json_array_append_new(
            all, run_doc("u", 7000 - (double)(i % 4), json_incref(json_array_get(statuses, i))));
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
        json_pack("[I]", (json_int_t)9007199254740993LL),
        json_pack("[f]", 9007199254740992.0),
        json_pack("[b]", 0),
        json_pack("[s]", ""),
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

/* A deterministic pseudo-random value of any index kind. */
static json_t *random_value(unsigned *seed)
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
    case 5:
        return json_boolean(rand_r(seed) % 2);
    default:
        return json_string(strings[rand_r(seed) % (sizeof strings / sizeof strings[0])]);
    }
}

/* A property: for random documents and random bounds, every scan returns
 * exactly the documents schema_key_cmp_prefix puts inside, in its order. */
static void random_ranges_agree_with_schema_key_order(void **state)
{
    fixture *f = *state;
    unsigned seed = 20240611;
    json_t *docs = json_array();
    for (int i = 0; i < 150; i++) {
        json_t *d = run_doc("u", 8000 + rand_r(&seed) % 5, random_value(&seed));
        json_array_append_new(docs, d);
    }
    json_t *copy = json_copy(docs);
    insert_all(f, "runs", copy);
    const schema_index *ix = schema_index_by_name(table("runs"), "by_status");
    for (int round = 0; round < 300; round++) {
        json_t *b[2] = {NULL, NULL};
        for (int k = 0; k < 2; k++) {
            int shape = rand_r(&seed) % 4;
            if (shape == 0) continue; /* unbounded */
            const json_t *doc = json_array_get(docs, (size_t)rand_r(&seed) % json_array_size(docs));
            json_t *key = schema_key_of(ix, doc);
            if (json_is_null(json_array_get(key, 0)) || rand_r(&seed) % 3 == 0) {
                json_t *v = random_value(&seed);
                json_array_set_new(key, 0, v && !json_is_null(v) ? v : json_string("m"));
            }
            size_t len = (size_t)shape; /* 1..3 values */
            while (json_array_size(key) > len)
                json_array_remove(key, json_array_size(key) - 1);
            b[k] = key;
        }
        store_range r = {.table = table("runs"),
                         .index = ix,
                         .lo = b[0],
                         .hi = b[1],
                         .lo_inclusive = rand_r(&seed) % 2,
                         .hi_inclusive = rand_r(&seed) % 2,
                         .descending = rand_r(&seed) % 2,
                         .limit = 1000};
        check_scan_against_schema_order(f, docs, r);
        json_decref(b[0]);
        json_decref(b[1]);
    }
    json_decref(docs);
}

/* A bound holding U+0000 (which no stored string can) still cuts in the
 * right place. */
static void a_bound_with_a_nul_character_cuts_in_the_right_place(void **state)
{
    fixture *f = *state;
    json_t *docs = json_array();
    const char *statuses[] = {"a", "a\x01", "ab", "b", ""};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        json_array_append_new(docs, run_doc("u", 9000 + (double)i, json_string(statuses[i])));
    insert_all(f, "runs", json_copy(docs));
    json_t *nul = json_pack("[s%]", "a\0z", (size_t)3);
    json_t *nul_key = json_pack("[s%,f,s]", "a\0z", (size_t)3, 1.0, "id");
    for (int flags = 0; flags < 8; flags++) {
        json_t *lo = flags & 4 ? nul_key : nul;
        store_range r = range_of("runs", "by_status", lo, flags & 1, NULL, false, flags & 2, 100);
        check_scan_against_schema_order(f, docs, r);
        r = range_of("runs", "by_status", NULL, false, lo, flags & 1, flags & 2, 100);
        check_scan_against_schema_order(f, docs, r);
        r = range_of("runs", "by_status", nul, true, nul, true, flags & 2, 100);
        check_scan_against_schema_order(f, docs, r);
    }
    json_decref(nul);
    json_decref(nul_key);
    json_decref(docs);
}

/* The plans of r (for its parameters, and the generic one) read index_name
 * (forward or backward) with every bound as an index condition: no
 * sequential scan, no sort, no filter. */
static void assert_index_plan(fixture *f, const store_range *r, const char *index_name,
                              bool backward)
{
    for (int generic = 0; generic < 2; generic++) {
        char plan[PLAN_BYTES_MAX], want[256];
        assert_ok(f, store_pg_scan_plan(f->w, r, generic, plan, sizeof plan, &f->e));
        snprintf(want, sizeof want, "Index Scan%s using %s on %s", backward ? " Backward" : "",
                 index_name, r->table->name);
        bool bounded = r->lo || r->hi;
        if (!strstr(plan, want) || strstr(plan, "Seq Scan") || strstr(plan, "Sort") ||
            strstr(plan, "Filter") || (bounded && !strstr(plan, "Index Cond")))
            fail_msg("%s plan of %s.%s:\n%swanted %s with all bounds in its Index Cond",
                     generic ? "generic" : "custom", r->table->name, r->index->name, plan, want);
    }
}

static void scans_use_their_index_without_sorting(void **state)
{
    fixture *f = *state;
    /* Enough rows, and fresh statistics, that a table scan would be the
     * cheaper plan were the index unusable. */
    json_decref(insert_runs(f, "alice", 1500));
    json_t *users = json_array();
    for (int i = 0; i < 500; i++)
        json_array_append_new(users, user_doc(i, 1));
    insert_all(f, "users", users);
    raw_ok(f->raw, "ANALYZE");
    json_t *user = json_pack("[s]", "alice");
    json_t *cursor = json_pack("[s,f,s]", "alice", 5001.0, "zz");
    json_t *status_cursor = json_pack("[s,f,s]", "queued", 5001.0, "zz");
    json_t *ct_cursor = json_pack("[f,s]", 5001.0, "zz");
    json_t *token = json_pack("[s]", "issuer|user1");
    struct {
        store_range r;
        const char *index;
        bool backward;
    } cases[] = {
        {range_of("runs", "by_user", user, true, user, true, false, 10), "runs_by_user", false},
        {range_of("runs", "by_user", user, true, cursor, false, true, 10), "runs_by_user", true},
        {range_of("runs", "by_user", cursor, false, user, true, false, 10), "runs_by_user", false},
        {range_of("runs", "by_status", NULL, false, status_cursor, false, true, 10),
         "runs_by_status", true},
        {range_of("runs", "by_status", status_cursor, false, NULL, false, false, 10),
         "runs_by_status", false},
        {range_of("runs", "by_creation_time", ct_cursor, false, NULL, false, false, 10),
         "runs_by_creation_time", false},
        {range_of("runs", "by_creation_time", NULL, false, ct_cursor, true, true, 10),
         "runs_by_creation_time", true},
        {range_of("users", "by_token", token, true, token, true, false, 2), "users_by_token",
         false},
        {range_of("runs", "by_status", NULL, false, NULL, false, true, 10), "runs_by_status", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_index_plan(f, &cases[i].r, cases[i].index, cases[i].backward);
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
        if (round == 1) before = store_pg_prepare_count(f->w);
        json_t *rows = scan(f, &r);
        json_decref(rows);
        json_t *got;
        assert_ok(f, store_get(f->w, table("runs"), id_of(json_array_get(mine, 0)), &got, &f->e));
        json_decref(got);
        insert_all(f, "users", json_pack("[o]", user_doc(round, 1)));
    }
    assert_int_equal(store_pg_prepare_count(f->w), before);
    json_decref(eq);
    json_decref(mine);
}

/* --- without a server --------------------------------------------------------------- */

static void postgres_tests_need_DOJO_TEST_PG_URL(void **state)
{
    (void)state;
    print_message("DOJO_TEST_PG_URL is not set (scripts/pg.sh start): skipping the PostgreSQL "
                  "store tests\n");
    skip();
}

int main(void)
{
    if (!base_url()) {
        const struct CMUnitTest skipped[] = {
            cmocka_unit_test(postgres_tests_need_DOJO_TEST_PG_URL),
        };
        return cmocka_run_group_tests(skipped, NULL, NULL);
    }
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(open_creates_tables_and_reports),
        T(reopen_reports_schema_up_to_date),
        T(newer_schema_version_is_refused),
        T(migration_adds_alters_and_drops_keeping_rows),
        T(missing_and_changed_objects_are_repaired),
        T(simultaneous_opens_apply_the_schema_once),
        T(connections_are_set_up_for_their_role),
        T(engine_is_named_and_answers_ping),
        T(open_names_the_server_and_hides_the_password),
        T(insert_get_replace_delete_round_trip),
        T(huge_reals_come_back_as_reals),
        T(metadata_is_read_and_overwritten),
        T(reader_connection_cannot_write),
        T(unique_index_refuses_a_duplicate),
        T(a_failed_statement_fails_the_transaction_until_rolled_back),
        T(append_only_table_refuses_update_and_delete),
        T(append_only_table_refuses_raw_sql),
        T(negative_credits_are_refused_by_the_database),
        T(a_document_jsonb_cannot_hold_is_refused),
        T(savepoint_rollback_undoes_only_that_mutation),
        T(injected_fault_mid_transaction_writes_nothing),
        T(injected_fault_at_commit_writes_nothing),
        T(injected_fault_strikes_the_nth_statement_once),
        T(reader_snapshot_ignores_later_commits_until_it_ends),
        T(writers_on_two_connections_take_turns),
        T(a_conflict_with_a_foreign_writer_is_busy),
        T(a_writer_kept_waiting_too_long_is_busy),
        T(a_lost_connection_is_opened_again),
        T(truncate_all_empties_tables_and_keeps_guards),
        T(scan_with_prefix_equality_returns_that_prefix_ascending),
        T(scan_descending_stops_at_an_exclusive_cursor),
        T(scan_ascending_starts_after_an_exclusive_cursor),
        T(scan_returns_at_most_limit_rows),
        T(scan_of_an_exclusive_equal_bound_is_empty),
        T(paging_two_at_a_time_yields_each_row_once_in_order),
        T(scan_order_and_bounds_agree_with_schema_key_order),
        T(random_ranges_agree_with_schema_key_order),
        T(a_bound_with_a_nul_character_cuts_in_the_right_place),
        T(scans_use_their_index_without_sorting),
        T(hot_statements_are_prepared_once),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
