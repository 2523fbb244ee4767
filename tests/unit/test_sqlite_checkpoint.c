/*
 * test_sqlite_checkpoint.c — WAL checkpoints happen on the background
 * checkpointer, not in the committing writer: after enough committed log,
 * the checkpointer has copied frames back, the writer's connection has
 * automatic checkpoints off, and the data reads back. Under writes that
 * never pause, the log stays within its bound: the writer checkpoints it
 * all and starts it again.
 * Thread: the test's main thread (the store starts the checkpointer thread).
 */
#include "support.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/validator.h"
#include "store/store.h"
#include "store/store_impl.h"

static const schema_table tables[] = {{.name = "blobs", .number = 1, .doc = &v_any}};
static const schema test_schema = {.version = 1, .tables = tables, .n_tables = 1};

static void checkpoints_run_off_the_writer(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/ckpt.db", dir);
    store *st;
    store_conn *w;
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    assert_int_equal(store_open(url, &test_schema, &st, report, &e), 0);
    store_sqlite_set_log_bounds(st, 1024 * 1024, 256 * 1024 * 1024);
    assert_int_equal(store_connect(st, true, &w, &e), 0);
    char autockpt[32];
    assert_int_equal(
        store_sqlite_query_text(w, "PRAGMA wal_autocheckpoint", autockpt, sizeof autockpt, &e), 0);
    assert_string_equal(autockpt, "0");
    static char big[16 * 1024];
    memset(big, 'x', sizeof big - 1);
    /* 600 commits of ~16 KiB: well past a threshold of 1 MiB. */
    for (int i = 0; i < 600; i++) {
        assert_int_equal(store_begin(w, true, &e), 0);
        char id[32];
        snprintf(id, sizeof id, "b%04d", i);
        json_t *doc = json_pack("{s:s, s:f, s:s}", "_id", id, "_creationTime", (double)i, "v", big);
        assert_int_equal(store_insert(w, &tables[0], doc, &e), 0);
        json_decref(doc);
        assert_int_equal(store_commit(w, &e), 0);
    }
    for (int tries = 0; tries < 200 && store_sqlite_checkpoints(st) == 0; tries++)
        usleep(10000);
    assert_true(store_sqlite_checkpoints(st) > 0); /* and they copied frames back */
    int64_t n = 0;
    assert_int_equal(store_begin(w, false, &e), 0);
    assert_int_equal(store_count(w, &tables[0], &n, &e), 0);
    store_rollback(w);
    assert_int_equal((int)n, 600);
    store_disconnect(w);
    store_close(st);
    test_rmtree(dir);
    free(dir);
}

static void the_log_stays_within_its_bound(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char url[600], wal[600];
    snprintf(url, sizeof url, "sqlite:%s/bound.db", dir);
    snprintf(wal, sizeof wal, "%s/bound.db-wal", dir);
    store *st;
    store_conn *w;
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    assert_int_equal(store_open(url, &test_schema, &st, report, &e), 0);
    enum { BOUND = 1024 * 1024 };
    store_sqlite_set_log_bounds(st, BOUND / 4, BOUND);
    assert_int_equal(store_connect(st, true, &w, &e), 0);
    static char big[16 * 1024];
    memset(big, 'y', sizeof big - 1);
    long biggest = 0;
    /* ~10 MiB of log, commit after commit. */
    for (int i = 0; i < 600; i++) {
        assert_int_equal(store_begin(w, true, &e), 0);
        char id[32];
        snprintf(id, sizeof id, "c%04d", i);
        json_t *doc = json_pack("{s:s, s:f, s:s}", "_id", id, "_creationTime", (double)i, "v", big);
        assert_int_equal(store_insert(w, &tables[0], doc, &e), 0);
        json_decref(doc);
        assert_int_equal(store_commit(w, &e), 0);
        struct stat sb;
        if (stat(wal, &sb) == 0 && sb.st_size > biggest) biggest = (long)sb.st_size;
    }
    assert_true(store_sqlite_log_restarts(st) > 0);
    /* The bound, plus what one commit may add past it. */
    if (biggest > BOUND + 256 * 1024) fail_msg("the log reached %ld bytes", biggest);
    store_disconnect(w);
    store_close(st);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checkpoints_run_off_the_writer),
        cmocka_unit_test(the_log_stays_within_its_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
