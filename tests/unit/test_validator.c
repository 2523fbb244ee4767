/*
 * test_validator.c — argument and document validators: each refusal is
 * INVALID_ARGUMENT and names the field by its path; unknown fields are
 * refused; bounds and kinds hold.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <string.h>

#include "base/ids.h"
#include "engine/validator.h"

static const validator title = V_STRING_LEN_INIT(1, 200);
static const validator amount = V_INTEGER_RANGE_INIT(1, 1000);
static const char *const statuses[] = {"queued", "processing"};
static const validator status = V_ENUM_INIT(statuses);
static const validator items = V_ARRAY_INIT(&v_number);
static const v_field inner_fields[] = {{"numItems", &amount, false}};
static const validator inner = V_OBJECT_INIT(inner_fields);
static const validator user_id = V_ID_INIT("users");
static const v_field fields[] = {
    {"title", &title, false}, {"amount", &amount, true}, {"status", &status, true},
    {"items", &items, true},  {"opts", &inner, true},    {"userId", &user_id, true},
};
static const validator args = V_OBJECT_INIT(fields);

static const schema_table tables[] = {
    {.name = "users", .number = 1, .doc = &v_any},
    {.name = "runs", .number = 3, .doc = &v_any},
};
static const schema test_schema = {.version = 1, .tables = tables, .n_tables = 2};

static int check(const char *json, err_t *e)
{
    json_t *v = json_loads(json, 0, NULL);
    assert_non_null(v);
    err_init(e);
    int rc = validate(&args, v, "argument", &test_schema, e);
    json_decref(v);
    return rc;
}

static void refusal_names(const char *json, const char *field)
{
    err_t e;
    assert_int_equal(check(json, &e), ERR_INVALID_ARGUMENT);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "`%s`", field);
    if (!strstr(e.msg, quoted)) fail_msg("\"%s\" does not name %s", e.msg, quoted);
    err_clear(&e);
}

static void valid_arguments_pass(void **state)
{
    (void)state;
    err_t e;
    assert_int_equal(check("{\"title\":\"x\",\"amount\":5,\"status\":\"queued\",\"items\":[1,2.5],"
                           "\"opts\":{\"numItems\":3}}",
                           &e),
                     0);
}

static void missing_required_field_is_named(void **state)
{
    (void)state;
    refusal_names("{}", "title");
}

static void unknown_field_is_refused_and_named(void **state)
{
    (void)state;
    refusal_names("{\"title\":\"x\",\"cost\":1}", "cost");
}

static void string_length_bounds_count_characters(void **state)
{
    (void)state;
    refusal_names("{\"title\":\"\"}", "title");
    char big[260];
    memset(big, 'a', 201);
    big[201] = '\0';
    char json[300];
    snprintf(json, sizeof json, "{\"title\":\"%s\"}", big);
    refusal_names(json, "title");
    err_t e;
    /* 200 two-byte characters are 200 characters. */
    char wide[1024] = "{\"title\":\"";
    for (int i = 0; i < 200; i++)
        strcat(wide, "\xc3\xa9");
    strcat(wide, "\"}");
    assert_int_equal(check(wide, &e), 0);
}

static void integers_are_whole_and_within_bounds(void **state)
{
    (void)state;
    refusal_names("{\"title\":\"x\",\"amount\":1.5}", "amount");
    refusal_names("{\"title\":\"x\",\"amount\":0}", "amount");
    refusal_names("{\"title\":\"x\",\"amount\":1001}", "amount");
    refusal_names("{\"title\":\"x\",\"amount\":\"5\"}", "amount");
    err_t e;
    assert_int_equal(check("{\"title\":\"x\",\"amount\":5.0}", &e), 0);
}

static void enum_accepts_only_its_literals(void **state)
{
    (void)state;
    refusal_names("{\"title\":\"x\",\"status\":\"done\"}", "status");
}

static void nested_paths_are_named(void **state)
{
    (void)state;
    refusal_names("{\"title\":\"x\",\"opts\":{\"numItems\":0}}", "opts.numItems");
    refusal_names("{\"title\":\"x\",\"items\":[1,\"two\"]}", "items[1]");
}

static void id_of_another_table_is_refused(void **state)
{
    (void)state;
    char run[ID_BYTES_MAX], user[ID_BYTES_MAX];
    id_new(3, run);
    id_new(1, user);
    char json[200];
    snprintf(json, sizeof json, "{\"title\":\"x\",\"userId\":\"%s\"}", run);
    refusal_names(json, "userId");
    refusal_names("{\"title\":\"x\",\"userId\":\"not-an-id\"}", "userId");
    err_t e;
    snprintf(json, sizeof json, "{\"title\":\"x\",\"userId\":\"%s\"}", user);
    assert_int_equal(check(json, &e), 0);
}

static void ids_name_their_table_and_resist_tampering(void **state)
{
    (void)state;
    char id[ID_BYTES_MAX];
    for (int t = 1; t < 255; t += 37) {
        assert_int_equal(id_new(t, id), 0);
        assert_int_equal((int)strlen(id), ID_CHARS);
        assert_int_equal(id_table_number(id), t);
        id[5] = id[5] == 'a' ? 'b' : 'a'; /* a changed character breaks the checksum */
        assert_int_equal(id_table_number(id), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_arguments_pass),
        cmocka_unit_test(missing_required_field_is_named),
        cmocka_unit_test(unknown_field_is_refused_and_named),
        cmocka_unit_test(string_length_bounds_count_characters),
        cmocka_unit_test(integers_are_whole_and_within_bounds),
        cmocka_unit_test(enum_accepts_only_its_literals),
        cmocka_unit_test(nested_paths_are_named),
        cmocka_unit_test(id_of_another_table_is_refused),
        cmocka_unit_test(ids_name_their_table_and_resist_tampering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
