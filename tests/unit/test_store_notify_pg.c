/*
 * test_store_notify_pg.c — the store's commit notifications (store.h,
 * "Commit notifications") on PostgreSQL: a notification reaches the
 * listeners of its deployment only once its transaction commits, in commit
 * order; a write transaction that sent none still announces itself; a lost
 * listener connection is reported. And SQLite has none.
 *
 * Needs a server: DOJO_TEST_PG_URL=postgres://… (scripts/pg.sh starts a
 * throwaway one); each test gets a schema of its own. Without it the
 * PostgreSQL tests are skipped.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "engine/validator.h"
#include "store/schema.h"
#include "store/store.h"
#include "store_pg_url.h"

#define URL_BYTES_MAX 1024
#define GOT_MAX 16
#define PAYLOAD_BYTES_MAX 256
#define ARRIVAL_MS 5000 /* a notification that should come comes well before */
#define SILENCE_MS 300  /* one that should not come has had time to */

static const schema_table tables[] = {
    {.name = "notes", .number = 1, .doc = &v_any},
};
static const schema test_schema = {.version = 1, .tables = tables, .n_tables = 1};

typedef struct got {
    char payloads[GOT_MAX][PAYLOAD_BYTES_MAX];
    int n;
} got;

typedef struct deployment {
    char schema_name[64];
    char url[URL_BYTES_MAX];
    store *st;
    store_conn *w;
    store_listener *l;
    got got;
} deployment;

typedef struct fixture {
    deployment a;
    err_t e;
} fixture;

#define assert_ok(f, call)                                                                         \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) fail_msg("%s returned %d: %s", #call, rc_, (f)->e.msg);                      \
    } while (0)

static void raw_sql(const char *sql)
{
    PGconn *pg = PQconnectdb(base_url());
    if (PQstatus(pg) != CONNECTION_OK) fail_msg("cannot connect: %s", PQerrorMessage(pg));
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(pg);
}

static void deployment_open(fixture *f, deployment *d)
{
    static int serial;
    snprintf(d->schema_name, sizeof d->schema_name, "dojo_notify_%d_%d", (int)getpid(), ++serial);
    schema_url(d->schema_name, d->url, sizeof d->url);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", d->schema_name);
    raw_sql(sql);
    char report[STORE_REPORT_BYTES_MAX];
    assert_ok(f, store_open(d->url, &test_schema, &d->st, report, &f->e));
    assert_ok(f, store_connect(d->st, true, &d->w, &f->e));
    assert_ok(f, store_listener_open(d->st, &d->l, &f->e));
}

static void deployment_close(deployment *d)
{
    store_listener_close(d->l);
    store_disconnect(d->w);
    store_close(d->st);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", d->schema_name);
    raw_sql(sql);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    err_init(&f->e);
    deployment_open(f, &f->a);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    deployment_close(&f->a);
    err_clear(&f->e);
    free(f);
    return 0;
}

static void collect(void *data, const char *payload)
{
    got *g = data;
    if (g->n < GOT_MAX) snprintf(g->payloads[g->n], PAYLOAD_BYTES_MAX, "%s", payload);
    g->n++;
}

/* Waits until d's listener has delivered want payloads in all, or wait_ms
 * passed; returns the last drain's result. */
static int await_payloads(deployment *d, int want, int wait_ms, err_t *e)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)wait_ms;
    for (;;) {
        int rc = store_listener_drain(d->l, collect, &d->got, e);
        if (rc || d->got.n >= want) return rc;
        uint64_t now = clock_mono_ms();
        if (now >= deadline) return 0;
        struct pollfd p = {.fd = store_listener_fd(d->l), .events = POLLIN};
        poll(&p, 1, (int)(deadline - now));
    }
}

/* One write transaction on d's writer that inserts a note and, unless
 * payload is NULL, notifies payload; commits or rolls back. */
static void write_note(fixture *f, deployment *d, const char *payload, bool commit)
{
    static int serial;
    char id[32];
    snprintf(id, sizeof id, "n%d", ++serial);
    json_t *doc = json_pack("{s:s, s:f}", "_id", id, "_creationTime", 1.0 + serial);
    assert_ok(f, store_begin(d->w, true, &f->e));
    assert_ok(f, store_insert(d->w, &tables[0], doc, &f->e));
    if (payload) assert_ok(f, store_notify_commit(d->w, payload, &f->e));
    if (commit)
        assert_ok(f, store_commit(d->w, &f->e));
    else
        store_rollback(d->w);
    json_decref(doc);
}

static void a_notification_arrives_only_once_its_transaction_commits(void **state)
{
    fixture *f = *state;
    assert_true(store_notifies(f->a.st));
    assert_ok(f, store_begin(f->a.w, true, &f->e));
    assert_ok(f, store_notify_commit(f->a.w, "first", &f->e));
    assert_ok(f, await_payloads(&f->a, 1, SILENCE_MS, &f->e));
    assert_int_equal(f->a.got.n, 0);
    assert_ok(f, store_commit(f->a.w, &f->e));
    assert_ok(f, await_payloads(&f->a, 1, ARRIVAL_MS, &f->e));
    assert_int_equal(f->a.got.n, 1);
    assert_string_equal(f->a.got.payloads[0], "first");
}

static void a_rolled_back_transaction_notifies_nothing(void **state)
{
    fixture *f = *state;
    write_note(f, &f->a, "lost", false);
    assert_ok(f, await_payloads(&f->a, 1, SILENCE_MS, &f->e));
    assert_int_equal(f->a.got.n, 0);
}

static void a_write_without_a_notification_still_announces_itself(void **state)
{
    fixture *f = *state;
    write_note(f, &f->a, NULL, true);
    assert_ok(f, await_payloads(&f->a, 1, ARRIVAL_MS, &f->e));
    assert_int_equal(f->a.got.n, 1);
    assert_string_equal(f->a.got.payloads[0], "");
    /* A read transaction announces nothing. */
    assert_ok(f, store_begin(f->a.w, false, &f->e));
    assert_ok(f, store_commit(f->a.w, &f->e));
    assert_ok(f, await_payloads(&f->a, 2, SILENCE_MS, &f->e));
    assert_int_equal(f->a.got.n, 1);
}

static void notifications_arrive_in_commit_order_from_every_writer(void **state)
{
    fixture *f = *state;
    /* A second process on the same deployment. */
    store *other_st;
    store_conn *other;
    char report[STORE_REPORT_BYTES_MAX];
    assert_ok(f, store_open(f->a.url, &test_schema, &other_st, report, &f->e));
    assert_ok(f, store_connect(other_st, true, &other, &f->e));
    deployment b = {.st = other_st, .w = other};
    const char *order[] = {"1", "2", "3", "4", "5", "6"};
    for (int i = 0; i < 6; i++)
        write_note(f, i % 3 ? &f->a : &b, order[i], true);
    assert_ok(f, await_payloads(&f->a, 6, ARRIVAL_MS, &f->e));
    assert_int_equal(f->a.got.n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(f->a.got.payloads[i], order[i]);
    store_disconnect(other);
    store_close(other_st);
}

static void another_deployment_hears_nothing(void **state)
{
    fixture *f = *state;
    deployment b = {0};
    deployment_open(f, &b);
    write_note(f, &b, "for b", true);
    assert_ok(f, await_payloads(&b, 1, ARRIVAL_MS, &f->e));
    assert_int_equal(b.got.n, 1);
    assert_ok(f, await_payloads(&f->a, 1, SILENCE_MS, &f->e));
    assert_int_equal(f->a.got.n, 0);
    deployment_close(&b);
}

static void a_listener_reads_metadata_in_its_own_snapshot(void **state)
{
    fixture *f = *state;
    assert_ok(f, store_begin(f->a.w, true, &f->e));
    assert_ok(f, store_meta_set(f->a.w, "ts", "12345", &f->e));
    assert_ok(f, store_notify_commit(f->a.w, "meta", &f->e));
    assert_ok(f, store_commit(f->a.w, &f->e));
    char *value = NULL;
    assert_ok(f, store_listener_meta_get(f->a.l, "ts", &value, &f->e));
    assert_string_equal(value, "12345");
    free(value);
    assert_ok(f, store_listener_meta_get(f->a.l, "absent", &value, &f->e));
    assert_null(value);
    /* The notification that came in meanwhile is kept for the next drain. */
    assert_ok(f, await_payloads(&f->a, 1, ARRIVAL_MS, &f->e));
    assert_int_equal(f->a.got.n, 1);
}

static void a_lost_listener_connection_is_reported(void **state)
{
    fixture *f = *state;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE application_name = 'dojo-listener-%ld'",
             (long)getpid());
    raw_sql(sql);
    int rc = 0;
    uint64_t deadline = clock_mono_ms() + ARRIVAL_MS;
    while (rc == 0 && clock_mono_ms() < deadline)
        rc = await_payloads(&f->a, 1, 50, &f->e);
    assert_int_equal(rc, ERR_STORAGE);
    /* Another listener hears later commits. */
    store_listener_close(f->a.l);
    f->a.l = NULL;
    assert_ok(f, store_listener_open(f->a.st, &f->a.l, &f->e));
    write_note(f, &f->a, "after", true);
    assert_ok(f, await_payloads(&f->a, 1, ARRIVAL_MS, &f->e));
    assert_string_equal(f->a.got.payloads[f->a.got.n - 1], "after");
}

static void sqlite_has_no_notifications(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char url[URL_BYTES_MAX];
    snprintf(url, sizeof url, "sqlite:%s/n.db", dir);
    err_t e;
    err_init(&e);
    store *st;
    store_conn *w;
    char report[STORE_REPORT_BYTES_MAX];
    assert_int_equal(store_open(url, &test_schema, &st, report, &e), 0);
    assert_int_equal(store_connect(st, true, &w, &e), 0);
    assert_false(store_notifies(st));
    assert_int_equal(store_begin(w, true, &e), 0);
    assert_int_equal(store_notify_commit(w, "ignored", &e), 0);
    assert_int_equal(store_commit(w, &e), 0);
    store_listener *l = NULL;
    assert_int_equal(store_listener_open(st, &l, &e), ERR_INTERNAL);
    assert_null(l);
    store_disconnect(w);
    store_close(st);
    test_rmtree(dir);
    free(dir);
}

static void postgres_tests_need_DOJO_TEST_PG_URL(void **state)
{
    (void)state;
    print_message("DOJO_TEST_PG_URL is not set (scripts/pg.sh start): skipping the PostgreSQL "
                  "notification tests\n");
    skip();
}

int main(void)
{
    if (!base_url()) {
        const struct CMUnitTest skipped[] = {
            cmocka_unit_test(sqlite_has_no_notifications),
            cmocka_unit_test(postgres_tests_need_DOJO_TEST_PG_URL),
        };
        return cmocka_run_group_tests(skipped, NULL, NULL);
    }
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_notification_arrives_only_once_its_transaction_commits),
        T(a_rolled_back_transaction_notifies_nothing),
        T(a_write_without_a_notification_still_announces_itself),
        T(notifications_arrive_in_commit_order_from_every_writer),
        T(another_deployment_hears_nothing),
        T(a_listener_reads_metadata_in_its_own_snapshot),
        T(a_lost_listener_connection_is_reported),
        cmocka_unit_test(sqlite_has_no_notifications),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
