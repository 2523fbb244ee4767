/*
 * test_wire.c — Convex-encoded JSON on the wire: $integer and $float decode
 * to plain numbers, unsupported forms are refused, args may be an object or
 * a one-element array, depth and size are bounded, -0.0 keeps its sign.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <math.h>
#include <string.h>

#include "base/limits.h"
#include "proto/wire.h"

static json_t *decode(const char *text, err_t *e)
{
    json_t *in = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(in);
    err_init(e);
    json_t *out = wire_decode(in, e);
    json_decref(in);
    return out;
}

static void integer_form_decodes_to_a_number(void **state)
{
    (void)state;
    err_t e;
    json_t *v = decode("{\"n\":{\"$integer\":\"BQAAAAAAAAA=\"}}", &e);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "n")), 5);
    json_decref(v);
}

static void special_floats_are_refused_but_negative_zero_kept(void **state)
{
    (void)state;
    err_t e;
    assert_null(decode("{\"$float\":\"AAAAAAAA+H8=\"}", &e)); /* NaN */
    assert_int_equal(e.code, ERR_INVALID_ARGUMENT);
    json_t *z = decode("{\"$float\":\"AAAAAAAAAIA=\"}", &e); /* -0.0 */
    assert_non_null(z);
    assert_true(signbit(json_real_value(z)));
    char *text = wire_dumps(z, WIRE_ENCODED);
    assert_string_equal(text, "{\"$float\":\"AAAAAAAAAIA=\"}");
    free(text);
    json_decref(z);
    /* A normal number in a $float is refused (protocol §4): 1.0, and +0. */
    assert_null(decode("{\"$float\":\"AAAAAAAA8D8=\"}", &e));
    assert_non_null(strstr(e.msg, "plain number"));
    assert_null(decode("{\"$float\":\"AAAAAAAAAAA=\"}", &e));
}

static void dollar_keys_and_bytes_are_refused(void **state)
{
    (void)state;
    err_t e;
    assert_null(decode("{\"$set\":1}", &e));
    assert_null(decode("{\"a\":1,\"$b\":2}", &e));
    assert_null(decode("{\"$bytes\":\"AQID\"}", &e));
    assert_int_equal(e.code, ERR_INVALID_ARGUMENT);
}

static void args_may_be_an_object_or_a_one_element_array(void **state)
{
    (void)state;
    err_t e;
    err_init(&e);
    json_t *obj = json_loads("{\"a\":1}", 0, NULL), *arr = json_loads("[{\"a\":1}]", 0, NULL),
           *two = json_loads("[{},{}]", 0, NULL), *num = json_loads("[5]", 0, NULL);
    json_t *a = wire_args(obj, &e), *b = wire_args(arr, &e);
    assert_true(json_equal(a, b));
    assert_null(wire_args(two, &e));
    assert_null(wire_args(num, &e));
    assert_non_null(strstr(e.msg, "object"));
    json_decref(a);
    json_decref(b);
    json_decref(obj);
    json_decref(arr);
    json_decref(two);
    json_decref(num);
}

static void field_names_outside_printable_ascii_are_refused_by_path(void **state)
{
    (void)state;
    err_t e;
    /* The client could never decode such a document again: refuse it. */
    assert_null(decode("{\"nodes\":[{\"donn\u00e9es\":1}]}", &e));
    assert_int_equal(e.code, ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.msg, "`nodes[0].donn"));
    assert_non_null(strstr(e.msg, "printable ASCII"));
    assert_null(decode("{\"a\\tb\":1}", &e));
    json_t *ok = decode("{\"with space-and_dots.ok\":1}", &e);
    assert_non_null(ok);
    json_decref(ok);
}

static void nesting_is_bounded(void **state)
{
    (void)state;
    char deep[1024] = "";
    for (int i = 0; i < LIMIT_VALUE_DEPTH_MAX + 2; i++)
        strcat(deep, "[");
    for (int i = 0; i < LIMIT_VALUE_DEPTH_MAX + 2; i++)
        strcat(deep, "]");
    err_t e;
    assert_null(decode(deep, &e));
    assert_non_null(strstr(e.msg, "deeper"));
}

static void formats_are_recognised(void **state)
{
    (void)state;
    wire_format f;
    assert_int_equal(wire_parse_format("json", &f), 0);
    assert_int_equal(f, WIRE_CLEAN);
    assert_int_equal(wire_parse_format("convex_encoded_json", &f), 0);
    assert_int_equal(f, WIRE_ENCODED);
    assert_int_equal(wire_parse_format("convex_json", &f), 0);
    assert_int_equal(wire_parse_format("xml", &f), -1);
}

static void reals_round_trip_with_full_precision(void **state)
{
    (void)state;
    json_t *v = json_real(1764000000000.1234);
    char *text = wire_dumps(v, WIRE_ENCODED);
    json_t *back = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_true(json_real_value(back) == json_real_value(v));
    free(text);
    json_decref(v);
    json_decref(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(integer_form_decodes_to_a_number),
        cmocka_unit_test(special_floats_are_refused_but_negative_zero_kept),
        cmocka_unit_test(dollar_keys_and_bytes_are_refused),
        cmocka_unit_test(args_may_be_an_object_or_a_one_element_array),
        cmocka_unit_test(field_names_outside_printable_ascii_are_refused_by_path),
        cmocka_unit_test(nesting_is_bounded),
        cmocka_unit_test(formats_are_recognised),
        cmocka_unit_test(reals_round_trip_with_full_precision),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
