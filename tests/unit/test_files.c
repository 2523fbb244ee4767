/*
 * test_files.c — the directory file store of store/files.h on a real SQLite
 * database with the app's schema: bytes written are stored under their
 * SHA-256 (durable, in place, nothing left in tmp/), read back, checked; an
 * upload that is given up leaves nothing unless a document names the same
 * content; the sweep at start removes bytes no document names and the
 * temporary files of a crash, and keeps the rest; a file whose bytes
 * changed fails its check; where a database's files live; and the random
 * ids of `_storage`.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "base/ids.h"
#include "base/sha256.h"
#include "engine/system_tables.h"
#include "store/files.h"

typedef struct fixture {
    char *dir;
    char url[600];
    char files_dir[FILES_PATH_BYTES_MAX];
    store *st;
    files *fs;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_mkdtemp();
    snprintf(f->url, sizeof f->url, "sqlite:%s/dojo.db", f->dir);
    snprintf(f->files_dir, sizeof f->files_dir, "%s/files", f->dir);
    err_t e;
    err_init(&e);
    char report[STORE_REPORT_BYTES_MAX];
    assert_int_equal(store_open(f->url, app_schema(), &f->st, report, &e), 0);
    assert_int_equal(files_open(f->url, f->st, true, &f->fs, &e), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    files_close(f->fs);
    store_close(f->st);
    test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void hex_of(const void *data, size_t n, char out[SHA256_HEX_BYTES])
{
    uint8_t d[SHA256_BYTES];
    sha256_bytes(data, n, d);
    sha256_to_hex(d, out);
}

static void path_of(const fixture *f, const char *sha, char *out, size_t n)
{
    snprintf(out, n, "%s/%.2s/%s", f->files_dir, sha, sha);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int count_entries(const char *dir)
{
    char cmd[FILES_PATH_BYTES_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

/* Stores bytes through a writer (sealed, not ended); *w_out is left open. */
static file_writer *store_bytes(fixture *f, const char *id, const char *bytes, size_t n,
                                char hex_out[SHA256_HEX_BYTES])
{
    err_t e;
    err_init(&e);
    file_writer *w = NULL;
    assert_int_equal(files_write_begin(f->fs, id, &w, &e), 0);
    /* in pieces, as an upload arrives */
    for (size_t at = 0; at < n; at += 7) {
        size_t k = n - at < 7 ? n - at : 7;
        assert_int_equal(file_writer_write(w, bytes + at, k, &e), 0);
    }
    uint8_t digest[SHA256_BYTES];
    uint64_t size = 0;
    assert_int_equal(file_writer_seal(w, digest, &size, &e), 0);
    assert_int_equal((int)size, (int)n);
    sha256_to_hex(digest, hex_out);
    return w;
}

/* Commits a `_storage` document naming sha. */
static void add_document(fixture *f, const char *id, const char *sha, size_t size)
{
    err_t e;
    err_init(&e);
    store_conn *c = NULL;
    assert_int_equal(store_connect(f->st, true, &c, &e), 0);
    assert_int_equal(store_begin(c, true, &e), 0);
    json_t *doc = json_pack("{s:s, s:f, s:s, s:I}", "_id", id, "_creationTime", 1.0e12, "sha256",
                            sha, "size", (json_int_t)size);
    const schema_table *t = schema_table_by_name(app_schema(), SYSTEM_TABLE_STORAGE);
    assert_int_equal(store_insert(c, t, doc, &e), 0);
    assert_int_equal(store_commit(c, &e), 0);
    json_decref(doc);
    store_disconnect(c);
}

static void new_id(char id[ID_BYTES_MAX])
{
    assert_int_equal(id_new_random(SYSTEM_TABLE_NUMBER_STORAGE, id), 0);
}

static void bytes_are_stored_under_their_digest_and_read_back(void **state)
{
    fixture *f = *state;
    static const char text[] = "the bytes of a picture, more or less";
    char id[ID_BYTES_MAX], sha[SHA256_HEX_BYTES], want[SHA256_HEX_BYTES], path[4200];
    new_id(id);
    file_writer *w = store_bytes(f, id, text, sizeof text - 1, sha);
    hex_of(text, sizeof text - 1, want);
    assert_string_equal(sha, want);
    path_of(f, sha, path, sizeof path);
    assert_true(exists(path));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/tmp", f->files_dir);
    assert_int_equal(count_entries(tmp), 0);
    add_document(f, id, sha, sizeof text - 1);
    file_writer_end(w, true);

    err_t e;
    err_init(&e);
    char buf[64];
    size_t n = 0;
    assert_int_equal(files_read(f->fs, id, sha, 4, buf, sizeof buf, &n, &e), 0);
    assert_int_equal((int)n, (int)sizeof text - 1 - 4);
    assert_memory_equal(buf, text + 4, n);
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(files_open_fd(f->fs, sha, &fd, &size, &e), 0);
    assert_int_equal((int)size, (int)sizeof text - 1);
    close(fd);
    assert_int_equal(files_check(f->fs, id, sha, sizeof text - 1, &e), 0);
}

static void an_upload_given_up_leaves_nothing(void **state)
{
    fixture *f = *state;
    char id[ID_BYTES_MAX], sha[SHA256_HEX_BYTES], path[4200];
    new_id(id);
    file_writer *w = store_bytes(f, id, "never recorded", 14, sha);
    path_of(f, sha, path, sizeof path);
    assert_true(exists(path));
    file_writer_end(w, false);
    assert_false(exists(path));
    /* and one not even sealed */
    err_t e;
    err_init(&e);
    assert_int_equal(files_write_begin(f->fs, id, &w, &e), 0);
    assert_int_equal(file_writer_write(w, "half", 4, &e), 0);
    file_writer_end(w, true);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/tmp", f->files_dir);
    assert_int_equal(count_entries(tmp), 0);
}

static void equal_content_is_kept_while_a_document_names_it(void **state)
{
    fixture *f = *state;
    char a[ID_BYTES_MAX], b[ID_BYTES_MAX], sha_a[SHA256_HEX_BYTES], sha_b[SHA256_HEX_BYTES];
    char path[4200];
    new_id(a);
    new_id(b);
    file_writer *wa = store_bytes(f, a, "same content", 12, sha_a);
    file_writer *wb = store_bytes(f, b, "same content", 12, sha_b);
    assert_string_equal(sha_a, sha_b);
    add_document(f, a, sha_a, 12);
    file_writer_end(wa, true);
    file_writer_end(wb, false); /* b is given up: a still names the bytes */
    path_of(f, sha_a, path, sizeof path);
    assert_true(exists(path));
    err_t e;
    err_init(&e);
    assert_int_equal(files_forget(f->fs, b, sha_b, &e), 0);
    assert_true(exists(path)); /* a document still names the bytes */
}

static void the_sweep_at_start_removes_orphans_and_temporary_files(void **state)
{
    fixture *f = *state;
    char kept[ID_BYTES_MAX], lost[ID_BYTES_MAX], sha_k[SHA256_HEX_BYTES], sha_l[SHA256_HEX_BYTES];
    char path_k[4200], path_l[4200], stray[4300];
    new_id(kept);
    new_id(lost);
    file_writer *wk = store_bytes(f, kept, "kept bytes", 10, sha_k);
    add_document(f, kept, sha_k, 10);
    file_writer_end(wk, true);
    /* a crash between storing and recording: bytes, no document */
    file_writer *wl = store_bytes(f, lost, "lost bytes", 10, sha_l);
    snprintf(stray, sizeof stray, "%s/tmp/%s.0123", f->files_dir, lost);
    FILE *s = fopen(stray, "w");
    fputs("half an upload", s);
    fclose(s);
    path_of(f, sha_k, path_k, sizeof path_k);
    path_of(f, sha_l, path_l, sizeof path_l);
    /* the writer of the lost upload is still pending: a sweep now keeps it */
    err_t e;
    err_init(&e);
    int64_t removed = -1;
    assert_int_equal(files_sweep(f->fs, false, &removed, &e), 0);
    assert_int_equal((int)removed, 0);
    assert_true(exists(path_l));
    /* the process dies (no end); the next start sweeps */
    free(wl); /* what the crash leaves: the writer's memory, never its end */
    files_close(f->fs);
    assert_int_equal(files_open(f->url, f->st, true, &f->fs, &e), 0);
    assert_int_equal(files_sweep(f->fs, true, &removed, &e), 0);
    assert_int_equal((int)removed, 1);
    assert_false(exists(path_l));
    assert_false(exists(stray));
    assert_true(exists(path_k));
}

static void a_file_whose_bytes_changed_fails_its_check(void **state)
{
    fixture *f = *state;
    char id[ID_BYTES_MAX], sha[SHA256_HEX_BYTES], path[4200];
    new_id(id);
    file_writer *w = store_bytes(f, id, "original", 8, sha);
    add_document(f, id, sha, 8);
    file_writer_end(w, true);
    path_of(f, sha, path, sizeof path);
    FILE *p = fopen(path, "w");
    fputs("tampered", p);
    fclose(p);
    err_t e;
    err_init(&e);
    assert_int_equal(files_check(f->fs, id, sha, 8, &e), ERR_CONSTRAINT);
    assert_non_null(strstr(e.msg, "hash to"));
    p = fopen(path, "w");
    fclose(p);
    assert_int_equal(files_check(f->fs, id, sha, 8, &e), ERR_CONSTRAINT);
    assert_non_null(strstr(e.msg, "0 long"));
    unlink(path);
    assert_int_equal(files_check(f->fs, id, sha, 8, &e), ERR_NOT_FOUND);
}

static void files_live_beside_their_database(void **state)
{
    (void)state;
    char out[FILES_PATH_BYTES_MAX];
    assert_int_equal(files_dir_of_sqlite(".dojo/dojo.db", out), 0);
    assert_string_equal(out, ".dojo/files");
    assert_int_equal(files_dir_of_sqlite("/var/lib/app.db", out), 0);
    assert_string_equal(out, "/var/lib/app.files");
    assert_int_equal(files_dir_of_sqlite("dojo.db", out), 0);
    assert_string_equal(out, "files");
    assert_int_equal(files_dir_of_sqlite("/data/dojo.db", out), 0);
    assert_string_equal(out, "/data/files");
}

static void storage_ids_carry_136_random_bits_and_their_table(void **state)
{
    (void)state;
    char a[ID_BYTES_MAX], b[ID_BYTES_MAX];
    assert_int_equal(id_new_random(SYSTEM_TABLE_NUMBER_STORAGE, a), 0);
    assert_int_equal(id_new_random(SYSTEM_TABLE_NUMBER_STORAGE, b), 0);
    assert_int_equal((int)strlen(a), ID_RANDOM_CHARS);
    assert_string_not_equal(a, b);
    assert_int_equal(id_table_number(a), SYSTEM_TABLE_NUMBER_STORAGE);
    a[5] = a[5] == '0' ? '1' : '0'; /* one character off: the checksum refuses it */
    assert_int_equal(id_table_number(a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bytes_are_stored_under_their_digest_and_read_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_upload_given_up_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(equal_content_is_kept_while_a_document_names_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_sweep_at_start_removes_orphans_and_temporary_files,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_whose_bytes_changed_fails_its_check, setup,
                                        teardown),
        cmocka_unit_test(files_live_beside_their_database),
        cmocka_unit_test(storage_ids_carry_136_random_bits_and_their_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
