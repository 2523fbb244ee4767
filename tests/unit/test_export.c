/*
 * test_export.c — the export file format of cli/export_format.h: the header
 * and document lines that `dojo export` writes read back to the same
 * values, and every line `dojo import` must refuse on its own is refused
 * with a message that says why (wrong shape, unknown table, an id of another
 * table, a document its table's validator refuses, a document over 1 MiB, a
 * header of another format or schema version); the line reader's 16 MiB
 * bound. The format module lives with the command line, so it is compiled
 * into this test directly.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "base/ids.h"
#include "base/limits.h"
#include "cli/export_format.c"

static const schema *S;

static int group_setup(void **state)
{
    (void)state;
    S = app_schema();
    return 0;
}

static int index_of(const char *table)
{
    for (int i = 0; i < S->n_tables; i++)
        if (strcmp(S->tables[i].name, table) == 0) return i;
    fail_msg("no table %s", table);
    return -1;
}

static json_t *user_doc(void)
{
    char id[ID_BYTES_MAX];
    assert_int_equal(id_new(schema_table_by_name(S, "users")->number, id), 0);
    return json_pack("{s:s, s:f, s:s, s:i, s:s, s:{s:s}}", "_id", id, "_creationTime",
                     1795615200123.4567, "email", "ada@example.com", "credits", 99,
                     "tokenIdentifier", "https://issuer|user_1", "identity", "subject", "user_1");
}

/* Parses text as a document line; returns the error code, message in e. */
static int parse(const char *text, err_t *e, json_t **doc_out, int *table_out)
{
    json_t *doc = NULL;
    int ti = -1;
    err_init(e);
    int rc = export_line_parse(text, strlen(text), S, &ti, &doc, e);
    if (doc_out)
        *doc_out = doc;
    else
        json_decref(doc);
    if (table_out) *table_out = ti;
    return rc;
}

static void assert_refused(const char *text, const char *needle)
{
    err_t e;
    int rc = parse(text, &e, NULL, NULL);
    assert_int_equal(rc, ERR_INVALID_ARGUMENT);
    if (!strstr(e.msg, needle)) fail_msg("message \"%s\" does not contain \"%s\"", e.msg, needle);
    err_clear(&e);
}

static char *line_of(const char *table, json_t *doc)
{
    char *text = export_line_build(schema_table_by_name(S, table), doc);
    assert_non_null(text);
    return text;
}

/* ---- document lines ------------------------------------------------------------ */

static void test_document_line_round_trips_exactly(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    char *text = line_of("users", doc);
    json_t *back = NULL;
    int ti;
    err_t e;
    assert_int_equal(parse(text, &e, &back, &ti), 0);
    assert_int_equal(ti, index_of("users"));
    assert_true(json_equal(doc, back));
    /* _creationTime keeps every bit of its float. */
    assert_true(json_number_value(json_object_get(back, "_creationTime")) ==
                json_number_value(json_object_get(doc, "_creationTime")));
    assert_true(json_is_integer(json_object_get(back, "credits")));
    free(text);
    json_decref(back);
    json_decref(doc);
}

static void test_line_that_is_not_json_is_refused(void **state)
{
    (void)state;
    assert_refused("{\"table\":\"users\",", "not JSON");
}

static void test_line_with_extra_fields_is_refused(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    json_t *line = json_pack("{s:s, s:O, s:i}", "table", "users", "doc", doc, "extra", 1);
    char *text = json_dumps(line, JSON_COMPACT);
    assert_refused(text, "nothing else");
    free(text);
    json_decref(line);
    json_decref(doc);
}

static void test_unknown_table_is_refused(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    json_t *line = json_pack("{s:s, s:O}", "table", "accounts", "doc", doc);
    char *text = json_dumps(line, JSON_COMPACT);
    assert_refused(text, "unknown table \"accounts\"");
    free(text);
    json_decref(line);
    json_decref(doc);
}

static void test_id_of_another_table_is_refused(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    char run_id[ID_BYTES_MAX];
    assert_int_equal(id_new(schema_table_by_name(S, "runs")->number, run_id), 0);
    json_object_set_new(doc, "_id", json_string(run_id));
    char *text = line_of("users", doc);
    assert_refused(text, "is an id of table runs, not of users");
    free(text);
    json_decref(doc);
}

static void test_malformed_id_is_refused(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    json_object_set_new(doc, "_id", json_string("not-an-id"));
    char *text = line_of("users", doc);
    assert_refused(text, "is not a dojo document id");
    free(text);
    json_decref(doc);
}

static void test_missing_creation_time_is_refused(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    json_object_del(doc, "_creationTime");
    char *text = line_of("users", doc);
    assert_refused(text, "_creationTime");
    free(text);
    json_decref(doc);
}

static void test_document_the_validator_refuses_is_refused_naming_the_field(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    json_object_set_new(doc, "credits", json_integer(-5));
    char *text = line_of("users", doc);
    assert_refused(text, "credits");
    free(text);
    json_object_set_new(doc, "credits", json_integer(5));
    json_object_set_new(doc, "nickname", json_string("ada"));
    text = line_of("users", doc);
    assert_refused(text, "nickname");
    free(text);
    json_decref(doc);
}

static void test_id_field_naming_another_table_is_refused(void **state)
{
    (void)state;
    char tx_id[ID_BYTES_MAX], wrong_user[ID_BYTES_MAX];
    assert_int_equal(id_new(schema_table_by_name(S, "transactions")->number, tx_id), 0);
    assert_int_equal(id_new(schema_table_by_name(S, "workflows")->number, wrong_user), 0);
    json_t *doc = json_pack("{s:s, s:f, s:s, s:i, s:i, s:s, s:s}", "_id", tx_id, "_creationTime",
                            1.0e12, "userId", wrong_user, "amount", 100, "balanceAfter", 100,
                            "kind", "grant", "actor", "admin");
    char *text = line_of("transactions", doc);
    assert_refused(text, "userId");
    free(text);
    json_decref(doc);
}

static void test_document_over_one_mib_is_refused(void **state)
{
    (void)state;
    json_t *doc = user_doc();
    size_t n = LIMIT_DOC_BYTES_MAX + 16;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    json_object_set_new(doc, "name", json_string(big));
    free(big);
    char *text = line_of("users", doc);
    assert_refused(text, "at most");
    free(text);
    json_decref(doc);
}

/* ---- the header ------------------------------------------------------------------- */

static void test_header_round_trips_counts(void **state)
{
    (void)state;
    int64_t counts[EXPORT_TABLES_MAX] = {0};
    for (int i = 0; i < S->n_tables; i++)
        counts[i] = 10 + i;
    json_t *h = export_header_build(S, counts, 0, 1795615200000.5);
    char *text = json_dumps(h, EXPORT_DUMP_FLAGS);
    export_header back;
    err_t e;
    err_init(&e);
    assert_int_equal(export_header_parse(text, strlen(text), S, &back, &e), 0);
    assert_int_equal(back.version, EXPORT_FORMAT_VERSION);
    assert_int_equal(back.schema_version, S->version);
    for (int i = 0; i < S->n_tables; i++)
        assert_int_equal(back.counts[i], counts[i]);
    assert_string_equal(json_string_value(json_object_get(h, "format")), "dojo-export");
    free(text);
    json_decref(h);
}

static void assert_header_refused(const char *text, const char *needle)
{
    export_header h;
    err_t e;
    err_init(&e);
    assert_int_equal(export_header_parse(text, strlen(text), S, &h, &e), ERR_INVALID_ARGUMENT);
    if (!strstr(e.msg, needle)) fail_msg("message \"%s\" does not contain \"%s\"", e.msg, needle);
}

static void test_header_of_another_format_is_refused(void **state)
{
    (void)state;
    assert_header_refused("{\"table\":\"users\",\"doc\":{}}", "not a dojo export header");
    assert_header_refused("[1,2]", "not a dojo export header");
}

static void test_header_of_a_newer_version_is_refused(void **state)
{
    (void)state;
    assert_header_refused("{\"format\":\"dojo-export\",\"version\":2,\"schemaVersion\":1,"
                          "\"tables\":{}}",
                          "newer dojo");
}

static void test_header_of_another_schema_version_is_refused(void **state)
{
    (void)state;
    char text[256];
    snprintf(text, sizeof text,
             "{\"format\":\"dojo-export\",\"version\":1,\"schemaVersion\":%d,\"tables\":{}}",
             S->version + 1);
    assert_header_refused(text, "schema version");
}

static void test_header_with_unknown_table_is_refused(void **state)
{
    (void)state;
    assert_header_refused("{\"format\":\"dojo-export\",\"version\":1,\"schemaVersion\":1,"
                          "\"tables\":{\"accounts\":3}}",
                          "\"accounts\"");
    assert_header_refused("{\"format\":\"dojo-export\",\"version\":1,\"schemaVersion\":1,"
                          "\"tables\":{\"users\":-1}}",
                          "non-negative");
}

/* ---- the reader ------------------------------------------------------------------------ */

static void test_reader_returns_lines_without_newlines_and_counts_them(void **state)
{
    (void)state;
    const char text[] = "first\r\nsecond\n\nlast-without-newline";
    FILE *f = fmemopen((void *)text, sizeof text - 1, "r");
    export_reader r;
    export_reader_init(&r, f);
    const char *line;
    size_t len;
    err_t e;
    err_init(&e);
    const char *want[] = {"first", "second", "", "last-without-newline"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(export_read_line(&r, &line, &len, &e), 1);
        assert_string_equal(line, want[i]);
        assert_int_equal(len, strlen(want[i]));
        assert_int_equal(r.line_no, i + 1);
    }
    assert_int_equal(export_read_line(&r, &line, &len, &e), 0);
    export_reader_free(&r);
    fclose(f);
}

static void test_reader_refuses_a_line_over_16_mib_naming_its_number(void **state)
{
    (void)state;
    size_t big = EXPORT_LINE_BYTES_MAX + 10;
    char *text = malloc(big + 16);
    memcpy(text, "header\n", 7);
    memset(text + 7, 'x', big);
    text[7 + big] = '\n';
    FILE *f = fmemopen(text, big + 8, "r");
    export_reader r;
    export_reader_init(&r, f);
    const char *line;
    size_t len;
    err_t e;
    err_init(&e);
    assert_int_equal(export_read_line(&r, &line, &len, &e), 1);
    assert_int_equal(export_read_line(&r, &line, &len, &e), ERR_LIMIT);
    assert_non_null(strstr(e.msg, "line 2"));
    assert_non_null(strstr(e.msg, "16 MiB"));
    export_reader_free(&r);
    fclose(f);
    free(text);
}

static void test_reader_accepts_a_line_of_exactly_16_mib(void **state)
{
    (void)state;
    size_t n = EXPORT_LINE_BYTES_MAX;
    char *text = malloc(n + 2);
    memset(text, 'y', n);
    text[n] = '\n';
    FILE *f = fmemopen(text, n + 1, "r");
    export_reader r;
    export_reader_init(&r, f);
    const char *line;
    size_t len;
    err_t e;
    err_init(&e);
    assert_int_equal(export_read_line(&r, &line, &len, &e), 1);
    assert_int_equal(len, n);
    export_reader_free(&r);
    fclose(f);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_line_round_trips_exactly),
        cmocka_unit_test(test_line_that_is_not_json_is_refused),
        cmocka_unit_test(test_line_with_extra_fields_is_refused),
        cmocka_unit_test(test_unknown_table_is_refused),
        cmocka_unit_test(test_id_of_another_table_is_refused),
        cmocka_unit_test(test_malformed_id_is_refused),
        cmocka_unit_test(test_missing_creation_time_is_refused),
        cmocka_unit_test(test_document_the_validator_refuses_is_refused_naming_the_field),
        cmocka_unit_test(test_id_field_naming_another_table_is_refused),
        cmocka_unit_test(test_document_over_one_mib_is_refused),
        cmocka_unit_test(test_header_round_trips_counts),
        cmocka_unit_test(test_header_of_another_format_is_refused),
        cmocka_unit_test(test_header_of_a_newer_version_is_refused),
        cmocka_unit_test(test_header_of_another_schema_version_is_refused),
        cmocka_unit_test(test_header_with_unknown_table_is_refused),
        cmocka_unit_test(test_reader_returns_lines_without_newlines_and_counts_them),
        cmocka_unit_test(test_reader_refuses_a_line_over_16_mib_naming_its_number),
        cmocka_unit_test(test_reader_accepts_a_line_of_exactly_16_mib),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
