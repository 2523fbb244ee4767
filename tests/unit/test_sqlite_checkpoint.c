/*
 * test_sqlite_checkpoint.c — WAL checkpoints happen on the background
 * checkpointer, not in the committing writer: after enough committed log,
 * the checkpointer has run, the writer's connection has automatic
 * checkpoints off, and the data reads back.
 * Thread: the test's main thread (the store starts the checkpointer thread).
 */
#include "support.h"

#include <stdio.h>
#include <string.h>
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
    assert_int_equal(store_connect(st, true, &w, &e), 0);
    char autockpt[32];
    assert_int_equal(
        store_sqlite_query_text(w, "PRAGMA wal_autocheckpoint", autockpt, sizeof autockpt, &e), 0);
    assert_string_equal(autockpt, "0");
    static char big[16 * 1024];
    memset(big, 'x', sizeof big - 1);
    /* 600 commits of ~16 KiB: well past the 1,000-page threshold. */
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
    assert_true(store_sqlite_checkpoints(st) > 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checkpoints_run_off_the_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
