/*
 * test_store_pg.c — the store's contract (store.h, schema.h) on the
 * PostgreSQL engine: the shared cases of store_cases.h (schema reports,
 * migration and repair, document round trips, guards also against raw SQL
 * through libpq, savepoints, injected faults, reader snapshots, truncation,
 * scans in schema.c's key order, also on random mixed values), and what only
 * PostgreSQL has — the tables, indexes and triggers it creates, simultaneous
 * opens, connection settings per role, a failed statement that fails its
 * transaction, documents jsonb cannot hold, writers of two connections
 * taking turns, busy conflicts, lost connections, and the plans PostgreSQL
 * picks for scans.
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

#include "store_cases.h"
#include "store_pg_url.h"

#define PLAN_BYTES_MAX 8192

/* --- the PostgreSQL fixture -------------------------------------------------------- */

typedef struct pg_fixture {
    fixture base; /* base.url: DOJO_TEST_PG_URL restricted to schema_name */
    char schema_name[64];
    PGconn *raw; /* plain libpq on the same schema, for raw SQL */
} pg_fixture;

static pg_fixture *pg_of(fixture *f)
{
    return (pg_fixture *)f;
}

static PGconn *raw_connect(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", url, PQerrorMessage(pg));
    PQclear(PQexec(pg, "SET client_min_messages = warning; SET lock_timeout = '10s'"));
    return pg;
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

static long raw_pg_long(PGconn *pg, const char *sql)
{
    char *text = raw_text(pg, sql);
    long v = strtol(text, NULL, 10);
    free(text);
    return v;
}

/* store_engine.exec_raw: the SQLSTATE ("" on success) and primary message. */
static void exec_on_raw(fixture *f, const char *sql, char code[RAW_CODE_BYTES_MAX],
                        char msg[RAW_MSG_BYTES_MAX])
{
    PGresult *res = PQexec(pg_of(f)->raw, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(code, RAW_CODE_BYTES_MAX, "%s", ok ? "" : state ? state : "?");
    snprintf(msg, RAW_MSG_BYTES_MAX, "%s", ok ? "" : primary ? primary : PQresultErrorMessage(res));
    PQclear(res);
}

static char *query_on_raw(fixture *f, const char *sql)
{
    return raw_text(pg_of(f)->raw, sql);
}

static const char *const more_guarded_writes[] = {"TRUNCATE transactions", NULL};
static const char *const damage_sql[] = {
    "DROP TRIGGER transactions_append_only_update ON transactions",
    "COMMENT ON INDEX users_by_email IS 'made by hand'",
    NULL,
};

static const store_engine pg_engine = {
    .name = "postgres",
    .migrated_report = "migrated schema 1 → 2: created 1 table, 11 indexes, 3 triggers; "
                       "rebuilt 3 tables; dropped 1 index",
    .unique_refusal = "duplicate key value",
    .check_refusal = "insert into users: new row for relation \"users\" violates "
                     "check constraint \"users_credits_nonnegative\"",
    .read_only_refusal = "read-only transaction",
    .booleans_in_keys = true,
    .prepare_count = store_pg_prepare_count,
    .exec_raw = exec_on_raw,
    .query_raw = query_on_raw,
    .guard_code = "23001", /* restrict_violation */
    .check_code = "23514", /* check_violation */
    .more_guarded_writes = more_guarded_writes,
    .bytes_open = "'\\x",
    .bytes_close = "'::bytea",
    .creation_time_sql = "SELECT creation_time::text FROM users",
    .damage_sql = damage_sql,
};

static void new_schema_name(char out[64])
{
    static int serial;
    snprintf(out, 64, "dojo_test_%d_%d", (int)getpid(), ++serial);
}

static int setup(void **state)
{
    pg_fixture *pf = calloc(1, sizeof *pf);
    assert_non_null(pf);
    fixture *f = &pf->base;
    f->eng = &pg_engine;
    new_schema_name(pf->schema_name);
    schema_url(pf->schema_name, f->url, sizeof f->url);
    PGconn *admin = raw_connect(base_url());
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", pf->schema_name);
    raw_ok(admin, sql);
    PQfinish(admin);
    pf->raw = raw_connect(f->url);
    fixture_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    pg_fixture *pf = *state;
    fixture_close(&pf->base);
    PQfinish(pf->raw);
    PGconn *admin = raw_connect(base_url());
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", pf->schema_name);
    raw_ok(admin, sql);
    PQfinish(admin);
    free(pf);
    return 0;
}

/* --- PostgreSQL only ------------------------------------------------------------------ */

static void open_creates_tables_and_reports(void **state)
{
    fixture *f = *state;
    assert_string_equal(f->report, "created 3 tables, 9 indexes, 3 triggers (schema version 1)");
    char *columns =
        raw_text(pg_of(f)->raw, "SELECT string_agg(column_name || ' ' || data_type, ', ' "
                                "ORDER BY ordinal_position) FROM information_schema.columns "
                                "WHERE table_schema = current_schema() AND table_name = 'runs'");
    assert_string_equal(columns, "id text, creation_time double precision, k_userId bytea, "
                                 "k_status bytea, data bytea");
    free(columns);
    char *indexes = raw_text(pg_of(f)->raw, "SELECT string_agg(indexname, ' ' ORDER BY indexname) "
                                            "FROM pg_indexes WHERE schemaname = current_schema()");
    assert_string_equal(indexes, "_dojo_meta_pkey runs_by_creation_time runs_by_status "
                                 "runs_by_user runs_pkey transactions_by_creation_time "
                                 "transactions_by_user transactions_pkey users_by_creation_time "
                                 "users_by_email users_by_token users_by_token_unique users_pkey");
    free(indexes);
    char *triggers =
        raw_text(pg_of(f)->raw, "SELECT string_agg(tgname, ' ' ORDER BY tgname) FROM pg_trigger "
                                "WHERE tgrelid = 'transactions'::regclass AND NOT tgisinternal");
    assert_string_equal(triggers,
                        "transactions_append_only_delete transactions_append_only_truncate "
                        "transactions_append_only_update");
    free(triggers);
    char *version =
        raw_text(pg_of(f)->raw, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'");
    assert_string_equal(version, "1");
    free(version);
}

typedef struct opener {
    char url[STORE_TEST_URL_BYTES_MAX];
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
    raw_ok(pg_of(f)->raw, sql);
    enum { OPENERS = 4 };
    opener o[OPENERS];
    pthread_t threads[OPENERS];
    for (int i = 0; i < OPENERS; i++) {
        memset(&o[i], 0, sizeof o[i]);
        err_init(&o[i].e);
        schema_url(name, o[i].url, sizeof o[i].url);
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
    raw_ok(pg_of(f)->raw, sql);
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
        assert_string_equal(v, pg_of(f)->schema_name);
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
    raw_ok(pg_of(f)->raw, "UPDATE users SET creation_time = creation_time");
    json_object_set_new(u, "credits", json_integer(11));
    assert_int_equal(store_replace(f->w, table("users"), u, &f->e), ERR_BUSY);
    assert_non_null(strstr(f->e.msg, "replace in users: could not serialize access"));
    store_rollback(f->w);
    json_decref(u);
}

/* With deferred writes on, a write the database refuses is reported by the
 * next call that waits — marked as a deferred failure — and by every call
 * after it until the transaction is rolled back; nothing of the
 * transaction is written, and the next one works. */
static void a_refused_deferred_write_sticks_until_rollback(void **state)
{
    fixture *f = *state;
    json_t *a = user_doc(1, 0), *b = user_doc(2, 0), *dup = user_doc(3, 0);
    json_object_set_new(dup, "tokenIdentifier", json_string("issuer|user1"));
    insert_all(f, "users", json_pack("[O]", a));
    store_defer_writes(f->w, true);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), dup, &f->e)); /* sent, not answered */
    int64_t n = 0;
    assert_int_equal(store_count(f->w, table("users"), &n, &f->e), ERR_CONSTRAINT);
    assert_true(store_deferred_failure(f->w));
    assert_non_null(strstr(f->e.msg, "users_by_token_unique"));
    assert_int_equal(store_ping(f->w, &f->e), ERR_CONSTRAINT);
    assert_true(store_deferred_failure(f->w));
    assert_int_equal(store_commit(f->w, &f->e), ERR_CONSTRAINT);
    store_rollback(f->w);
    assert_int_equal(count_rows(f, f->w, "users"), 1);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_insert(f->w, table("users"), b, &f->e));
    assert_ok(f, store_commit(f->w, &f->e));
    assert_false(store_deferred_failure(f->w));
    assert_int_equal(count_rows(f, f->w, "users"), 2);
    store_defer_writes(f->w, false);
    json_decref(a);
    json_decref(b);
    json_decref(dup);
}

/* A read in a write transaction that already read or wrote the same thing
 * is answered from what the transaction holds (no statement), and sees the
 * transaction's own writes. */
static void a_write_transaction_reads_again_without_a_statement(void **state)
{
    fixture *f = *state;
    json_t *u = user_doc(1, 10);
    insert_all(f, "users", json_pack("[O]", u));
    store_defer_writes(f->w, true);
    assert_ok(f, store_begin(f->w, true, &f->e));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    json_decref(got);
    json_t *eq = json_pack("[s]", "issuer|user1");
    store_range r = range_of("users", "by_token", eq, true, eq, true, false, 1);
    json_t *rows = NULL;
    assert_ok(f, store_scan(f->w, &r, &rows, &f->e));
    json_decref(rows);
    /* Any statement now would strike the armed fault. */
    store_inject_fault_after(1);
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 10);
    json_decref(got);
    assert_ok(f, store_scan(f->w, &r, &rows, &f->e));
    assert_int_equal(json_array_size(rows), 1);
    json_decref(rows);
    assert_int_equal(store_fault_pending(), 1);
    store_inject_fault_after(0);
    /* Its own write, then: the scan of that table runs again and sees it. */
    json_object_set_new(u, "credits", json_integer(11));
    assert_ok(f, store_replace(f->w, table("users"), u, &f->e));
    assert_ok(f, store_scan(f->w, &r, &rows, &f->e));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "credits")), 11);
    json_decref(rows);
    assert_ok(f, store_get(f->w, table("users"), id_of(u), &got, &f->e));
    assert_int_equal(json_integer_value(json_object_get(got, "credits")), 11);
    json_decref(got);
    assert_ok(f, store_commit(f->w, &f->e));
    store_defer_writes(f->w, false);
    json_decref(eq);
    json_decref(u);
}

/* --- point scans read ahead (store_prefetch) ------------------------------------------- */

/* users.by_token eq [issuer|user<n>], limit 1: the scan app_find_user
 * makes. *eq (its bounds) is the caller's to free. */
static store_range caller_range(int n, json_t **eq)
{
    char token[32];
    snprintf(token, sizeof token, "issuer|user%d", n);
    *eq = json_pack("[s]", token);
    return range_of("users", "by_token", *eq, true, *eq, true, false, 1);
}

/* Begins a write transaction with deferred writes, as the storage thread
 * does, and reads the callers users[0..n) ahead. */
static void begin_and_prefetch(fixture *f, const int *users, int n)
{
    store_range r[8];
    json_t *eq[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++)
        r[i] = caller_range(users[i], &eq[i]);
    store_defer_writes(f->w, true);
    assert_ok(f, store_begin(f->w, true, &f->e));
    assert_ok(f, store_prefetch(f->w, r, n, &f->e));
    for (int i = 0; i < n; i++)
        json_decref(eq[i]);
}

static void end_transaction(fixture *f)
{
    store_rollback(f->w);
    store_defer_writes(f->w, false);
}

/* How many rows user n's caller scan gives inside the transaction. */
static size_t caller_rows(fixture *f, int n)
{
    json_t *eq, *rows = NULL;
    store_range r = caller_range(n, &eq);
    assert_ok(f, store_scan(f->w, &r, &rows, &f->e));
    size_t len = json_array_size(rows);
    json_decref(rows);
    json_decref(eq);
    return len;
}

/* Whether user n's caller scan is answered without a statement: one armed
 * fault would strike a statement (and fail the scan, before sending it). */
static bool caller_cached(fixture *f, int n)
{
    json_t *eq, *rows = NULL;
    store_range r = caller_range(n, &eq);
    store_inject_fault_after(1);
    int rc = store_scan(f->w, &r, &rows, &f->e);
    bool cached = rc == 0 && store_fault_pending() == 1;
    store_inject_fault_after(0);
    json_decref(rows);
    json_decref(eq);
    return cached;
}

/* The callers a group reads ahead — found or not — are then read without a
 * statement, and so are the documents they found. */
static void prefetched_callers_are_read_without_a_statement(void **state)
{
    fixture *f = *state;
    json_t *u1 = user_doc(1, 0);
    insert_all(f, "users", json_pack("[O, o]", u1, user_doc(2, 0)));
    begin_and_prefetch(f, (int[]){1, 2, 9}, 3);
    assert_true(caller_cached(f, 1));
    assert_true(caller_cached(f, 2));
    assert_true(caller_cached(f, 9));
    assert_int_equal(caller_rows(f, 1), 1);
    assert_int_equal(caller_rows(f, 9), 0);
    store_inject_fault_after(1);
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u1), &got, &f->e));
    assert_string_equal(json_string_value(json_object_get(got, "tokenIdentifier")), "issuer|user1");
    assert_int_equal(store_fault_pending(), 1);
    store_inject_fault_after(0);
    json_decref(got);
    end_transaction(f);
    json_decref(u1);
}

/* A prefetched point scan that found nobody sees the user inserted with
 * its token. */
static void an_insert_of_its_values_forgets_a_point_scan(void **state)
{
    fixture *f = *state;
    begin_and_prefetch(f, (int[]){9}, 1);
    assert_int_equal(caller_rows(f, 9), 0);
    json_t *u9 = user_doc(9, 0);
    assert_ok(f, store_insert(f->w, table("users"), u9, &f->e));
    assert_int_equal(caller_rows(f, 9), 1);
    end_transaction(f);
    json_decref(u9);
}

/* An update moving a user from one token to another changes the point
 * scans of both: the old one no longer finds it, the new one does. */
static void an_update_forgets_the_point_scans_of_its_old_and_new_values(void **state)
{
    fixture *f = *state;
    json_t *u1 = user_doc(1, 0);
    insert_all(f, "users", json_pack("[O]", u1));
    begin_and_prefetch(f, (int[]){1, 8}, 2);
    json_t *old = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u1), &old, &f->e));
    json_t *moved = json_deep_copy(old);
    json_object_set_new(moved, "tokenIdentifier", json_string("issuer|user8"));
    assert_ok(f, store_update(f->w, table("users"), old, moved, &f->e));
    assert_int_equal(caller_rows(f, 1), 0);
    assert_int_equal(caller_rows(f, 8), 1);
    end_transaction(f);
    json_decref(old);
    json_decref(moved);
    json_decref(u1);
}

/* A deleted user is no longer found by the point scan of its token. */
static void a_delete_forgets_the_point_scan_of_its_values(void **state)
{
    fixture *f = *state;
    json_t *u1 = user_doc(1, 0);
    insert_all(f, "users", json_pack("[O]", u1));
    begin_and_prefetch(f, (int[]){1}, 1);
    assert_ok(f, store_delete(f->w, table("users"), id_of(u1), &f->e));
    assert_int_equal(caller_rows(f, 1), 0);
    end_transaction(f);
    json_decref(u1);
}

/* A replace whose stored document the store is not given may have moved
 * any user: every point scan of the table is read again. */
static void a_write_of_an_unknown_old_document_forgets_every_point_scan(void **state)
{
    fixture *f = *state;
    json_t *u1 = user_doc(1, 0);
    insert_all(f, "users", json_pack("[O, o]", u1, user_doc(2, 0)));
    begin_and_prefetch(f, (int[]){1, 2}, 2);
    json_object_set_new(u1, "tokenIdentifier", json_string("issuer|user3"));
    assert_ok(f, store_replace(f->w, table("users"), u1, &f->e));
    assert_false(caller_cached(f, 2));
    assert_int_equal(caller_rows(f, 1), 0);
    assert_int_equal(caller_rows(f, 2), 1);
    end_transaction(f);
    json_decref(u1);
}

/* Writes of documents that neither had nor have a point's values leave it
 * cached: an insert, an update and a delete of other users. */
static void writes_of_other_values_keep_a_point_scan(void **state)
{
    fixture *f = *state;
    json_t *u2 = user_doc(2, 5), *u3 = user_doc(3, 0), *u7 = user_doc(7, 0);
    insert_all(f, "users", json_pack("[o, O, O]", user_doc(1, 0), u2, u3));
    begin_and_prefetch(f, (int[]){1}, 1);
    assert_ok(f, store_insert(f->w, table("users"), u7, &f->e));
    json_t *richer = json_deep_copy(u2);
    json_object_set_new(richer, "credits", json_integer(6));
    assert_ok(f, store_update(f->w, table("users"), u2, richer, &f->e));
    json_t *got = NULL;
    assert_ok(f, store_get(f->w, table("users"), id_of(u3), &got, &f->e));
    json_decref(got);
    assert_ok(f, store_delete(f->w, table("users"), id_of(u3), &f->e));
    assert_true(caller_cached(f, 1));
    assert_int_equal(caller_rows(f, 1), 1);
    end_transaction(f);
    json_decref(richer);
    json_decref(u2);
    json_decref(u3);
    json_decref(u7);
}

/* What a point scan learned inside a savepoint goes with its rollback: the
 * user inserted there and rolled back is not found again. */
static void a_savepoint_rollback_forgets_the_point_scans_learned_in_it(void **state)
{
    fixture *f = *state;
    begin_and_prefetch(f, (int[]){9}, 1);
    assert_ok(f, store_savepoint(f->w, &f->e));
    json_t *u9 = user_doc(9, 0);
    assert_ok(f, store_insert(f->w, table("users"), u9, &f->e));
    assert_int_equal(caller_rows(f, 9), 1); /* read again, and kept */
    store_savepoint_rollback(f->w);
    assert_int_equal(caller_rows(f, 9), 0);
    end_transaction(f);
    json_decref(u9);
}

/* Ends the server process of c's connection, and waits until it is gone. */
static void kill_backend(fixture *f, store_conn *c)
{
    char pid[32], sql[128];
    assert_ok(f, store_pg_query_text(c, "SELECT pg_backend_pid()", pid, sizeof pid, &f->e));
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", pid);
    raw_ok(pg_of(f)->raw, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
    for (int i = 0; i < 500 && raw_pg_long(pg_of(f)->raw, sql) > 0; i++) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    assert_int_equal(raw_pg_long(pg_of(f)->raw, sql), 0);
}

/* A writer that waits for the write lock past lock_timeout (30 s; 200 ms
 * here) gives up with ERR_BUSY and leaves no transaction open. */
static void a_writer_kept_waiting_too_long_is_busy(void **state)
{
    fixture *f = *state;
    char v[16];
    assert_ok(f, store_pg_query_text(f->w, "SET lock_timeout = 200", v, sizeof v, &f->e));
    raw_ok(pg_of(f)->raw, "BEGIN; LOCK TABLE _dojo_meta IN EXCLUSIVE MODE");
    assert_int_equal(store_begin(f->w, true, &f->e), ERR_BUSY);
    assert_string_equal(f->e.msg, "begin write transaction: another writer kept the write lock "
                                  "past lock_timeout; try again");
    raw_ok(pg_of(f)->raw, "COMMIT");
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
    raw_ok(pg_of(f)->raw, "ANALYZE");
    static const struct {
        const char *index;
        bool backward;
    } plans[PLAN_CASES] = {
        {"runs_by_user", false},         {"runs_by_user", true},
        {"runs_by_user", false},         {"runs_by_status", true},
        {"runs_by_status", false},       {"runs_by_creation_time", false},
        {"runs_by_creation_time", true}, {"users_by_token", false},
        {"runs_by_status", true},
    };
    plan_ranges p;
    plan_ranges_make(&p);
    for (int i = 0; i < PLAN_CASES; i++)
        assert_index_plan(f, &p.r[i], plans[i].index, plans[i].backward);
    plan_ranges_free(&p);
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
        T(simultaneous_opens_apply_the_schema_once),
        T(connections_are_set_up_for_their_role),
        T(open_names_the_server_and_hides_the_password),
        T(a_failed_statement_fails_the_transaction_until_rolled_back),
        T(writers_on_two_connections_take_turns),
        T(a_conflict_with_a_foreign_writer_is_busy),
        T(a_refused_deferred_write_sticks_until_rollback),
        T(a_write_transaction_reads_again_without_a_statement),
        T(prefetched_callers_are_read_without_a_statement),
        T(an_insert_of_its_values_forgets_a_point_scan),
        T(an_update_forgets_the_point_scans_of_its_old_and_new_values),
        T(a_delete_forgets_the_point_scan_of_its_values),
        T(a_write_of_an_unknown_old_document_forgets_every_point_scan),
        T(writes_of_other_values_keep_a_point_scan),
        T(a_savepoint_rollback_forgets_the_point_scans_learned_in_it),
        T(a_writer_kept_waiting_too_long_is_busy),
        T(a_lost_connection_is_opened_again),
        T(scans_use_their_index_without_sorting),
        STORE_SHARED_CASES(T),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
