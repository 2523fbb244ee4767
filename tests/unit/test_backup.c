/*
 * test_backup.c — the parts of online backups that the end-to-end suite
 * (tests/e2e/backup.test.mjs) cannot aim at precisely:
 *   - the copy is one committed state even while another connection commits
 *     between its steps (the row count equals the commit counter it read);
 *   - names longer than a ustar name field survive the round trip;
 *   - an archive with a member outside files/ ("..", absolute), a member out
 *     of order, or a duplicate is refused and leaves nothing behind;
 *   - durations and scheduled names parse as documented.
 * Thread: the test's main thread, plus one writer thread in the first test.
 */
#include "support.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "backup/archive.h"
#include "backup/backup.h"
#include "backup/schedule.h"
#include "engine/validator.h"
#include "store/sqlite_snapshot.h"
#include "store/store.h"

static const schema_table tables[] = {{.name = "blobs", .number = 1, .doc = &v_any}};
static const schema test_schema = {.version = 1, .tables = tables, .n_tables = 1};

#define PREFILL_ROWS 3000 /* ~50 MiB: many copy steps */
#define ROW_BYTES (16 * 1024)

typedef struct writer_state {
    store_conn *w;
    int next; /* rows so far; each commit adds one and stores the count as "ts" */
    volatile int stop;
    int committed_while_running;
} writer_state;

static void insert_row(store_conn *w, int i)
{
    static char big[ROW_BYTES];
    memset(big, 'x', sizeof big - 1);
    err_t e;
    err_init(&e);
    char id[32], count[32];
    snprintf(id, sizeof id, "b%06d", i);
    snprintf(count, sizeof count, "%d", i + 1);
    assert_int_equal(store_begin(w, true, &e), 0);
    json_t *doc = json_pack("{s:s, s:f, s:s}", "_id", id, "_creationTime", (double)i, "v", big);
    assert_int_equal(store_insert(w, &tables[0], doc, &e), 0);
    json_decref(doc);
    assert_int_equal(store_meta_set(w, "ts", count, &e), 0);
    assert_int_equal(store_commit(w, &e), 0);
}

static void writer_main(void *arg)
{
    writer_state *ws = arg;
    while (!ws->stop) {
        insert_row(ws->w, ws->next++);
        ws->committed_while_running++;
    }
}

static int count_rows(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM blobs", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void the_copy_is_one_committed_state_while_commits_go_on(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char url[700], src[600], dest[600];
    snprintf(src, sizeof src, "%s/live.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", src);
    snprintf(dest, sizeof dest, "%s/copy.db", dir);
    store *st;
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    assert_int_equal(store_open(url, &test_schema, &st, report, &e), 0);
    writer_state ws = {0};
    assert_int_equal(store_connect(st, true, &ws.w, &e), 0);
    for (; ws.next < PREFILL_ROWS; ws.next++)
        insert_row(ws.w, ws.next);
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, writer_main, &ws), 0);
    while (ws.committed_while_running < 5)
        usleep(1000);
    sqlite_snapshot_info info;
    int rc = sqlite_snapshot_copy(src, dest, NULL, &info, &e);
    int during = ws.committed_while_running;
    usleep(20000);
    ws.stop = 1;
    uv_thread_join(&t);
    assert_int_equal(rc, 0);
    assert_true(ws.committed_while_running > during || during > 5); /* commits went on */
    assert_true(info.pages > LIMIT_BACKUP_SNAPSHOT_STEP_PAGES * 2);
    int ts = atoi(info.commit_ts);
    assert_true(ts >= PREFILL_ROWS);
    assert_true(ts < ws.next);              /* not the final state */
    assert_int_equal(count_rows(dest), ts); /* exactly the state it reports */
    assert_int_equal(sqlite_snapshot_integrity(dest, &e), 0);
    /* The destination may not exist. */
    assert_int_not_equal(sqlite_snapshot_copy(src, dest, NULL, &info, &e), 0);
    err_clear(&e);
    store_disconnect(ws.w);
    store_close(st);
    test_rmtree(dir);
    free(dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A dojo database (it has _dojo_meta) at path, with one row. */
static void make_db(const char *path)
{
    char url[700];
    snprintf(url, sizeof url, "sqlite:%s", path);
    store *st;
    store_conn *w;
    char report[STORE_REPORT_BYTES_MAX];
    err_t e;
    err_init(&e);
    assert_int_equal(store_open(url, &test_schema, &st, report, &e), 0);
    assert_int_equal(store_connect(st, true, &w, &e), 0);
    insert_row(w, 0);
    store_disconnect(w);
    store_close(st);
}

static void long_and_deep_file_names_round_trip(void **state)
{
    (void)state;
    char *dir = test_mkdtemp();
    char db[600], files[600], deep[900], leaf[1200], out[600], back_db[600], back_files[600];
    snprintf(db, sizeof db, "%s/dojo.db", dir);
    make_db(db);
    snprintf(files, sizeof files, "%s/files", dir);
    snprintf(deep, sizeof deep, "%s/%s", files,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(mkdir(files, 0700), 0);
    assert_int_equal(mkdir(deep, 0700), 0);
    strcat(deep, "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_int_equal(mkdir(deep, 0700), 0);
    snprintf(leaf, sizeof leaf, "%s/%s", deep,
             "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
    write_file(leaf, "deep bytes");
    snprintf(leaf, sizeof leaf, "%s/.upload-in-flight", files);
    write_file(leaf, "skipped: a dot file");
    snprintf(leaf, sizeof leaf, "%s/plain", files);
    write_file(leaf, "plain bytes");
    /* The file store's uploads in flight are not part of a backup. */
    snprintf(leaf, sizeof leaf, "%s/tmp", files);
    assert_int_equal(mkdir(leaf, 0700), 0);
    snprintf(leaf, sizeof leaf, "%s/tmp/sid.0123", files);
    write_file(leaf, "an upload being written");
    snprintf(out, sizeof out, "%s/b.tar", dir);
    backup_result res;
    err_t e;
    err_init(&e);
    assert_int_equal(backup_take(db, NULL, out, NULL, &res, &e), 0);
    assert_int_equal((int)res.files, 2);
    assert_true(res.bytes > 0);
    /* The scratch copy of the database is gone. */
    char scratch[700];
    snprintf(scratch, sizeof scratch, "%s.db.partial", out);
    assert_int_not_equal(access(scratch, F_OK), 0);
    snprintf(back_db, sizeof back_db, "%s/back.db", dir);
    snprintf(back_files, sizeof back_files, "%s/back-files", dir);
    backup_contents info;
    assert_int_equal(backup_extract(out, back_db, back_files, &info, &e), 0);
    assert_int_equal((int)info.files, 2);
    assert_string_equal(info.commit_ts, "1");
    assert_int_equal(count_rows(back_db), 1);
    snprintf(leaf, sizeof leaf, "%s/%s/%s/%s", back_files,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
    size_t len = 0;
    char *text = test_read_file(leaf, &len);
    assert_non_null(text);
    assert_string_equal(text, "deep bytes");
    free(text);
    snprintf(leaf, sizeof leaf, "%s/.upload-in-flight", back_files);
    assert_int_not_equal(access(leaf, F_OK), 0);
    /* A backup never replaces a file. */
    assert_int_not_equal(backup_take(db, NULL, out, NULL, &res, &e), 0);
    assert_non_null(strstr(e.msg, "exists already"));
    err_clear(&e);
    test_rmtree(dir);
    free(dir);
}

/* An archive of the given members (name, text), finished. */
static void hand_made(const char *path, const char *const *names, int n)
{
    archive_writer *w;
    err_t e;
    err_init(&e);
    assert_int_equal(archive_create(path, &w, &e), 0);
    for (int i = 0; i < n; i++) {
        char sha[ARCHIVE_SHA256_HEX_BYTES];
        assert_int_equal(archive_add_bytes(w, names[i], "bytes", 5, 0, sha, &e), 0);
    }
    assert_int_equal(archive_finish(w, &e), 0);
}

static void hostile_archives_are_refused_and_leave_nothing(void **state)
{
    (void)state;
    static const struct {
        const char *names[3];
        int n;
        const char *error;
    } cases[] = {
        {{"dojo.db", "files/../escape"}, 2, "unexpected member files/../escape"},
        {{"dojo.db", "/etc/escape"}, 2, "unexpected member /etc/escape"},
        {{"dojo.db", "files/a/../../escape"}, 2, "unexpected member files/a/../../escape"},
        {{"dojo.db", "files/.hidden"}, 2, "unexpected member files/.hidden"},
        {{"dojo.db", "dojo.db"}, 2, "unexpected member dojo.db"},
        {{"files/x", "dojo.db"}, 2, "is not a dojo backup (its first member is files/x"},
        {{"dojo.db", "MANIFEST.sha256"}, 2, "unexpected member MANIFEST.sha256"},
        {{"dojo.db", "files/x"}, 2, "truncated: it ends before its MANIFEST.jsonl"},
    };
    char *dir = test_mkdtemp();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tar[600], db[600], files[600];
        snprintf(tar, sizeof tar, "%s/h%zu.tar", dir, i);
        snprintf(db, sizeof db, "%s/out.db", dir);
        snprintf(files, sizeof files, "%s/out-files", dir);
        hand_made(tar, cases[i].names, cases[i].n);
        backup_contents info;
        err_t e;
        err_init(&e);
        assert_int_not_equal(backup_extract(tar, db, files, &info, &e), 0);
        if (!strstr(e.msg, cases[i].error)) fail_msg("case %zu: %s", i, e.msg);
        err_clear(&e);
        assert_int_not_equal(access(db, F_OK), 0);
        assert_int_not_equal(access(files, F_OK), 0);
        char escaped[700];
        snprintf(escaped, sizeof escaped, "%s/escape", dir);
        assert_int_not_equal(access(escaped, F_OK), 0);
    }
    test_rmtree(dir);
    free(dir);
}

static void durations_and_scheduled_names(void **state)
{
    (void)state;
    char dir[256];
    backup_files_dir("/var/lib/dojo/dojo.db", dir, sizeof dir);
    assert_string_equal(dir, "/var/lib/dojo/files");
    backup_files_dir("/srv/shop.sqlite", dir, sizeof dir);
    assert_string_equal(dir, "/srv/shop.files");
    backup_files_dir("plain", dir, sizeof dir);
    assert_string_equal(dir, "./plain.files");
    uint64_t ms = 0;
    assert_int_equal(backup_parse_duration("90s", &ms), 0);
    assert_int_equal((int)ms, 90000);
    assert_int_equal(backup_parse_duration("15m", &ms), 0);
    assert_int_equal((int)ms, 900000);
    assert_int_equal(backup_parse_duration("6h", &ms), 0);
    assert_int_equal(backup_parse_duration("1d", &ms), 0);
    assert_true(ms == 86400000ull);
    assert_int_equal(backup_parse_duration("3600", &ms), 0);
    assert_true(ms == 3600000ull);
    const char *bad[] = {"", "0", "0s", "-1s", "1x", "1.5h", "367d", "s", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(backup_parse_duration(bad[i], &ms), -1);
    assert_true(backup_schedule_name_ok("dojo-backup-20260102T030405.678Z.tar"));
    assert_false(backup_schedule_name_ok("dojo-backup-20260102T030405.678Z.tar.partial"));
    assert_false(backup_schedule_name_ok("dojo-backup-2026010xT030405.678Z.tar"));
    assert_false(backup_schedule_name_ok("my-backup.tar"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_copy_is_one_committed_state_while_commits_go_on),
        cmocka_unit_test(long_and_deep_file_names_round_trip),
        cmocka_unit_test(hostile_archives_are_refused_and_leave_nothing),
        cmocka_unit_test(durations_and_scheduled_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
