/*
 * test_codecs.c — storage format 2's two encodings: a document comes back
 * from doc_codec exactly (field order, integers and reals, _id and
 * _creationTime from their columns), damaged bytes are refused with a
 * message naming the damage, and key_codec's bytes sort as schema.h's key
 * order (null < numbers < strings < booleans; 1 and 1.0 equal; integers
 * past 2^53 kept apart).
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "store/doc_codec.h"
#include "store/key_codec.h"

static json_t *decode(const uint8_t *bytes, size_t len, err_t *e)
{
    json_t *doc = NULL;
    err_init(e);
    int rc = doc_decode(bytes, len, "id1", 12.5, &doc, "test read", e);
    assert_true(rc == 0 ? doc != NULL : doc == NULL);
    return doc;
}

static void a_document_comes_back_as_it_was_written(void **state)
{
    (void)state;
    json_t *doc =
        json_loads("{\"_id\":\"id1\",\"_creationTime\":12.5,\"name\":\"fox\","
                   "\"credits\":-7,\"big\":9007199254740993,\"price\":0.25,"
                   "\"small\":63,\"tags\":[null,true,false,\"\",{\"a\":[]}],"
                   "\"long\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
                   0, NULL);
    assert_non_null(doc);
    uint8_t *bytes;
    size_t len;
    assert_int_equal(doc_encode(doc, &bytes, &len), 0);
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_true(len < strlen(text)); /* smaller than its compact JSON */
    err_t e;
    json_t *back = decode(bytes, len, &e);
    assert_non_null(back);
    char *again = json_dumps(back, JSON_COMPACT);
    assert_string_equal(again, text); /* same fields, same order, same numbers */
    free(again);
    free(text);
    free(bytes);
    json_decref(back);
    json_decref(doc);
}

static void damaged_bytes_are_refused_with_the_damage_named(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } cases[] = {
        {"", 0, "not a document of this format"},
        {"\x7b\x7d", 2, "not a document of this format"}, /* JSON text of format 1 */
        {"\xd1\x07\x01\x01\x61", 5, ""},                  /* a field with no value */
        {"\xd1\x07\x02\x01\x61\x80\x01\x61\x81", 9, "a field name repeats"},
        {"\xd1\x07\x01\x01\x61\x08", 6, "an unknown value tag"}, /* _id's marker elsewhere */
        {"\xd1\x07\x01\x03_id\x09", 8, "an unknown value tag"},  /* the wrong marker */
        {"\xd1\x07\x01\x01\x61\x04\x00\x00\x00\x00\x00\x00\xf0\x7f", 14, "a number is not finite"},
        {"\xd1\x07\x01\x01\x61\xc2\xff\xfe", 8, "a string is not UTF-8"},
        {"\xd1\x06\x00", 3, "not an object"},
        {"\xd1\x07\x00\x00", 4, "bytes after the document"},
        {"\xd1\x06\xff\xff\xff\xff\x0f", 7, "counts more items than bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err_t e;
        json_t *doc = decode((const uint8_t *)cases[i].bytes, cases[i].len, &e);
        assert_null(doc);
        assert_int_equal(e.code, ERR_STORAGE);
        assert_non_null(strstr(e.msg, "test read: a stored document is damaged"));
        if (!strstr(e.msg, cases[i].why)) fail_msg("case %zu: %s", i, e.msg);
        err_clear(&e);
    }
}

static void deep_nesting_is_refused_not_recursed(void **state)
{
    (void)state;
    size_t depth = DOC_CODEC_DEPTH_MAX + 10, len = 3 + 2 * depth;
    uint8_t *bytes = calloc(len + 1, 1);
    bytes[0] = DOC_CODEC_VERSION;
    bytes[1] = 0x07; /* an object of one field "a" holding an array of one array … */
    bytes[2] = 0x01;
    size_t n = 3;
    bytes[n++] = 0x01;
    bytes[n++] = 'a';
    while (n + 2 <= len) {
        bytes[n++] = 0x06;
        bytes[n++] = 0x01;
    }
    bytes[n++] = 0x00;
    err_t e;
    assert_null(decode(bytes, n, &e));
    assert_non_null(strstr(e.msg, "nested too deep"));
    err_clear(&e);
    free(bytes);
}

static int key_cmp(const char *a_json, const char *b_json)
{
    json_t *a = json_loads(a_json, JSON_DECODE_ANY, NULL);
    json_t *b = json_loads(b_json, JSON_DECODE_ANY, NULL);
    assert_non_null(a);
    assert_non_null(b);
    key_buf ka, kb;
    assert_int_equal(key_encode(a, &ka), 0);
    assert_int_equal(key_encode(b, &kb), 0);
    int c = key_bytes_cmp(ka.bytes, ka.len, kb.bytes, kb.len);
    key_buf_free(&ka);
    key_buf_free(&kb);
    json_decref(a);
    json_decref(b);
    return c < 0 ? -1 : c > 0;
}

static void keys_sort_in_the_schemas_order(void **state)
{
    (void)state;
    const char *ascending[] = {"null",
                               "-1e300",
                               "-2.5",
                               "-1",
                               "-0.5",
                               "0",
                               "0.5",
                               "1",
                               "2",
                               "9007199254740992",
                               "9007199254740993",
                               "1e300",
                               "\"\"",
                               "\"A\"",
                               "\"a\"",
                               "\"ab\"",
                               "\"b\"",
                               "false",
                               "true"};
    size_t n = sizeof ascending / sizeof ascending[0];
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(key_cmp(ascending[i], ascending[i + 1]), -1);
    assert_int_equal(key_cmp("1", "1.0"), 0);
    assert_int_equal(key_cmp("0", "-0.0"), 0);
    assert_int_equal(key_cmp("\"fox\"", "\"fox\""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_document_comes_back_as_it_was_written),
        cmocka_unit_test(damaged_bytes_are_refused_with_the_damage_named),
        cmocka_unit_test(deep_nesting_is_refused_not_recursed),
        cmocka_unit_test(keys_sort_in_the_schemas_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
