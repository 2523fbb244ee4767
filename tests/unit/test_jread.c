/*
 * test_jread.c — the typed readers of untrusted JSON and query strings:
 * every wrong presence, type, range, length or U+0000 is INVALID_ARGUMENT
 * with a message naming the field; right values are handed out; absent
 * optional values leave the caller's default.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "base/jread.h"

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    return v;
}

/* The last reader refused with INVALID_ARGUMENT and its message holds part. */
static void refused_with(int rc, err_t *e, const char *part)
{
    assert_int_equal(rc, ERR_INVALID_ARGUMENT);
    assert_int_equal(e->code, ERR_INVALID_ARGUMENT);
    if (!strstr(e->msg, part)) fail_msg("message \"%s\" lacks \"%s\"", e->msg, part);
    err_clear(e);
    err_init(e);
}

static void a_string_of_any_other_type_is_refused_by_name(void **state)
{
    (void)state;
    const char *types[] = {"5", "-1", "0.5", "true", "[1,2]", "{\"a\":1}"};
    const char *names[] = {"an integer", "an integer", "a number",
                           "a boolean",  "an array",   "an object"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"componentPath\":%s}", types[i]);
        json_t *mod = parse(text);
        const char *out = "untouched";
        err_t e;
        err_init(&e);
        int rc = jr_string(mod, "Add", "componentPath", JR_OPTIONAL | JR_NULLABLE, 100, &out, &e);
        refused_with(rc, &e, "Add.componentPath must be a string or null");
        char tail[64];
        snprintf(tail, sizeof tail, "not %s", names[i]);
        rc = jr_string(mod, "Add", "componentPath", JR_OPTIONAL | JR_NULLABLE, 100, &out, &e);
        refused_with(rc, &e, tail);
        assert_string_equal(out, "untouched");
        json_decref(mod);
    }
}

static void absent_and_null_follow_the_presence_flags(void **state)
{
    (void)state;
    json_t *obj = parse("{\"n\":null}");
    const char *s = "default";
    err_t e;
    err_init(&e);
    assert_int_equal(jr_string(obj, "M", "x", JR_OPTIONAL, 10, &s, &e), 0);
    assert_string_equal(s, "default");
    refused_with(jr_string(obj, "M", "x", 0, 10, &s, &e), &e, "M.x is missing");
    assert_int_equal(jr_string(obj, "M", "n", JR_NULLABLE, 10, &s, &e), 0);
    assert_string_equal(s, "default");
    refused_with(jr_string(obj, "M", "n", JR_OPTIONAL, 10, &s, &e), &e, "not null");
    /* Not an object at all: every field is absent. */
    json_t *arr = parse("[1]");
    refused_with(jr_string(arr, "M", "x", 0, 10, &s, &e), &e, "missing");
    refused_with(jr_as_object(arr, "the body", &e), &e, "the body must be an object");
    refused_with(jr_as_object(NULL, "the body", &e), &e, "the body is missing");
    json_decref(arr);
    json_decref(obj);
}

static void strings_never_hold_nul_and_fit_their_bound(void **state)
{
    (void)state;
    json_t *obj = parse("{\"path\":\"users:me\\u0000x\",\"long\":\"abcdef\",\"empty\":\"\"}");
    const char *s = NULL;
    err_t e;
    err_init(&e);
    refused_with(jr_string(obj, "", "path", 0, 100, &s, &e), &e, "path must not contain U+0000");
    refused_with(jr_string(obj, "", "long", 0, 5, &s, &e), &e, "at most 5 bytes, not 6");
    assert_int_equal(jr_string(obj, "", "long", 0, 6, &s, &e), 0);
    assert_string_equal(s, "abcdef");
    assert_int_equal(jr_string(obj, "", "empty", 0, 6, &s, &e), 0);
    refused_with(jr_string(obj, "", "empty", JR_NONEMPTY, 6, &s, &e), &e, "must not be empty");
    assert_string_equal(jr_string_or(obj, "path", "fallback"), "fallback");
    assert_string_equal(jr_string_or(obj, "long", "fallback"), "abcdef");
    assert_true(jr_string_is(obj, "long", "abcdef"));
    assert_false(jr_string_is(obj, "path", "users:me"));
    json_decref(obj);
}

static void integers_are_exact_and_within_range(void **state)
{
    (void)state;
    json_t *obj = parse("{\"a\":7,\"b\":1e3,\"c\":0.5,\"d\":-1,\"e\":1e300,\"f\":\"7\","
                        "\"g\":9007199254740993}");
    int64_t n = 42;
    err_t e;
    err_init(&e);
    assert_int_equal(jr_int(obj, "m", "a", 0, 0, 10, &n, &e), 0);
    assert_int_equal(n, 7);
    assert_int_equal(jr_int(obj, "m", "b", 0, 0, 5000, &n, &e), 0);
    assert_int_equal(n, 1000);
    refused_with(jr_int(obj, "m", "c", 0, 0, 10, &n, &e), &e, "m.c must be an integer");
    refused_with(jr_int(obj, "m", "d", 0, 0, UINT32_MAX, &n, &e), &e, "from 0 to 4294967295");
    refused_with(jr_int(obj, "m", "e", 0, INT64_MIN, INT64_MAX, &n, &e), &e, "an integer");
    refused_with(jr_int(obj, "m", "f", 0, 0, 10, &n, &e), &e, "not a string");
    refused_with(jr_int(obj, "m", "g", 0, 0, INT32_MAX, &n, &e), &e, "m.g must be from");
    assert_int_equal(n, 1000); /* refusals leave it */
    double d = 0;
    assert_int_equal(jr_number(obj, "m", "c", 0, 0, 1, &d, &e), 0);
    assert_true(d == 0.5);
    refused_with(jr_number(obj, "m", "e", 0, 0, 1e10, &d, &e), &e, "m.e must be from");
    json_decref(obj);
}

static void booleans_objects_and_arrays(void **state)
{
    (void)state;
    json_t *obj = parse("{\"b\":true,\"o\":{},\"a\":[1,2,3],\"x\":1}");
    bool b = false;
    const json_t *v = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jr_bool(obj, "m", "b", 0, &b, &e), 0);
    assert_true(b);
    refused_with(jr_bool(obj, "m", "x", 0, &b, &e), &e, "m.x must be a boolean");
    assert_int_equal(jr_object(obj, "m", "o", 0, &v, &e), 0);
    assert_non_null(v);
    refused_with(jr_object(obj, "m", "a", 0, &v, &e), &e, "m.a must be an object");
    assert_null(v);
    assert_int_equal(jr_array(obj, "m", "a", 0, 3, &v, &e), 0);
    assert_int_equal(json_array_size(v), 3);
    refused_with(jr_array(obj, "m", "a", 0, 2, &v, &e), &e, "at most 2, not 3");
    assert_int_equal(jr_array(obj, "m", "none", JR_OPTIONAL, 2, &v, &e), 0);
    assert_null(v);
    assert_null(jr_item(v, 0));
    char name[JR_NAME_BYTES_MAX];
    assert_string_equal(jr_item_name(name, "modifications", 3), "modifications[3]");
    json_decref(obj);
}

static void query_parameters_decode_or_are_refused(void **state)
{
    (void)state;
    char *v = NULL;
    err_t e;
    err_init(&e);
    assert_int_equal(jr_query_string("path=users%3Ame&args=%7B%7D", "args", 0, 100, &v, &e), 0);
    assert_string_equal(v, "{}");
    free(v);
    assert_int_equal(jr_query_string("a=x+y", "a", 0, 100, &v, &e), 0);
    assert_string_equal(v, "x y");
    free(v);
    assert_int_equal(jr_query_string("a=1", "args", JR_OPTIONAL, 100, &v, &e), 0);
    assert_null(v);
    assert_int_equal(jr_query_string(NULL, "args", JR_OPTIONAL, 100, &v, &e), 0);
    refused_with(jr_query_string("args=%zz%4", "args", JR_OPTIONAL, 100, &v, &e), &e,
                 "`args` is not valid percent-encoding");
    assert_null(v);
    refused_with(jr_query_string("args=%4", "args", JR_OPTIONAL, 100, &v, &e), &e,
                 "not valid percent-encoding");
    refused_with(jr_query_string("path=a%00b", "path", 0, 100, &v, &e), &e, "U+0000");
    refused_with(jr_query_string("path=abcdef", "path", 0, 3, &v, &e), &e, "at most 3 bytes");
    refused_with(jr_query_string("x=1", "path", 0, 3, &v, &e), &e, "`path` is missing");
    int64_t n = 5;
    assert_int_equal(jr_query_int("after=12", "after", JR_OPTIONAL, 0, 100, &n, &e), 0);
    assert_int_equal(n, 12);
    assert_int_equal(jr_query_int("", "after", JR_OPTIONAL, 0, 100, &n, &e), 0);
    assert_int_equal(n, 12);
    refused_with(jr_query_int("after=-1", "after", 0, 0, 100, &n, &e), &e, "from 0 to 100");
    refused_with(jr_query_int("after=1x", "after", 0, 0, 100, &n, &e), &e, "an integer");
    refused_with(jr_query_int("after=", "after", 0, 0, 100, &n, &e), &e, "an integer");
    refused_with(jr_query_int("after=99999999999999999999", "after", 0, 0, INT64_MAX, &n, &e), &e,
                 "an integer");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_string_of_any_other_type_is_refused_by_name),
        cmocka_unit_test(absent_and_null_follow_the_presence_flags),
        cmocka_unit_test(strings_never_hold_nul_and_fit_their_bound),
        cmocka_unit_test(integers_are_exact_and_within_range),
        cmocka_unit_test(booleans_objects_and_arrays),
        cmocka_unit_test(query_parameters_decode_or_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
