/*
 * test_codegen.c — the contract of codegen_write (codegen.h): the app's
 * public functions under `api` with their argument and result types, the
 * internal ones only under `internal`, system functions and tables nowhere,
 * files rewritten only when their content changes, and the TypeScript spelling
 * of every validator kind, checked on a small schema made for the purpose.
 * (tests/e2e/codegen.test.mjs compiles the output with tsc.)
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/app.h"
#include "codegen/codegen.h"

/* --- helpers ------------------------------------------------------------------------ */

typedef struct fixture {
    char *dir;      /* a fresh temporary folder */
    char out[1024]; /* dir/convex/_generated */
    registry r;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = test_mkdtemp();
    assert_non_null(f->dir);
    snprintf(f->out, sizeof f->out, "%s/convex/_generated", f->dir);
    registry_init(&f->r);
    app_register(&f->r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static char *read_generated(const char *out, const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", out, name);
    char *text = test_read_file(path, NULL);
    if (!text) fail_msg("%s was not written", path);
    return text;
}

static void write_app_bindings(fixture *f, char *report)
{
    err_t e;
    err_init(&e);
    int rc = codegen_write(app_schema(), &f->r, f->out, report, CODEGEN_REPORT_BYTES_MAX, &e);
    if (rc) fail_msg("codegen_write: %s", e.msg);
}

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle)) fail_msg("expected to find:\n%s\nin:\n%s", needle, text);
}

static void assert_lacks(const char *text, const char *needle)
{
    if (strstr(text, needle)) fail_msg("did not expect to find \"%s\"", needle);
}

/* The part of api.d.ts that declares `api` and the part that declares `internal`. */
static void split_api(char *api_dts, char **api_part, char **internal_part)
{
    char *api = strstr(api_dts, "export declare const api: {");
    char *internal = strstr(api_dts, "export declare const internal: {");
    assert_non_null(api);
    assert_non_null(internal);
    assert_true(api < internal);
    internal[-1] = '\0';
    *api_part = api;
    *internal_part = internal;
}

/* --- the app's bindings ------------------------------------------------------------ */

static void public_functions_are_under_api_with_their_argument_and_result_types(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char *text = read_generated(f->out, "api.d.ts");
    char *api, *internal;
    split_api(text, &api, &internal);
    assert_contains(api, "  workflows: {\n"
                         "    /** Creates a workflow owned by the caller. */\n"
                         "    create: FunctionReference<\n"
                         "      \"mutation\",\n"
                         "      \"public\",\n"
                         "      { title: string; nodes?: any[]; edges?: any[] },\n"
                         "      Id<\"workflows\">\n"
                         "    >;\n");
    assert_contains(api, "    me: FunctionReference<\n"
                         "      \"query\",\n"
                         "      \"public\",\n"
                         "      Record<string, never>,\n"
                         "      Doc<\"users\"> | null\n"
                         "    >;\n");
    assert_contains(api,
                    "      { paginationOpts: PaginationOptions; workflowId?: Id<\"workflows\">; "
                    "status?: \"queued\" | \"processing\" | \"completed\" | \"failed\" },\n"
                    "      PaginationResult<Doc<\"runs\">>\n");
    assert_lacks(internal, "\"public\"");
    free(text);
}

static void internal_functions_are_only_under_internal(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char *text = read_generated(f->out, "api.d.ts");
    char *api, *internal;
    split_api(text, &api, &internal);
    assert_contains(internal, "    claim: FunctionReference<\n"
                              "      \"mutation\",\n"
                              "      \"internal\",\n"
                              "      { workerId: string; leaseSeconds?: number },\n"
                              "      Doc<\"runs\"> | null\n");
    assert_contains(internal, "  admin: {\n");
    assert_lacks(api, "claim:");
    assert_lacks(api, "admin:");
    assert_lacks(api, "grantCredits");
    assert_lacks(internal, "getOrCreate");
    free(text);
}

static void system_functions_and_tables_are_never_generated(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char *api = read_generated(f->out, "api.d.ts");
    char *model = read_generated(f->out, "dataModel.d.ts");
    assert_lacks(api, "_system");
    assert_lacks(api, "expireLeases");
    assert_lacks(api, "envSet");
    assert_lacks(model, "_env");
    assert_lacks(model, "_session_requests");
    assert_contains(
        model, "export type TableNames = \"users\" | \"workflows\" | \"runs\" | \"transactions\";");
    free(api);
    free(model);
}

static void documents_have_system_fields_and_every_declared_field(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char *model = read_generated(f->out, "dataModel.d.ts");
    assert_contains(model, "import type { GenericId } from \"convex/values\";");
    assert_contains(model, "export type Id<TableName extends TableNames | SystemTableNames> =\n"
                           "  GenericId<TableName>;");
    assert_contains(
        model,
        "export type Doc<TableName extends TableNames> = DataModel[TableName][\"document\"];");
    assert_contains(model,
                    "  runs: {\n"
                    "    document: {\n"
                    "      _id: Id<\"runs\">;\n"
                    "      _creationTime: number;\n"
                    "      userId: Id<\"users\">;\n"
                    "      workflowId?: Id<\"workflows\">;\n"
                    "      status: \"queued\" | \"processing\" | \"completed\" | \"failed\";\n"
                    "      input: { model: string; prompt: string; settings?: Record<string, "
                    "any> };\n");
    assert_contains(model, "      by_user: [\"userId\", \"_creationTime\"];\n");
    assert_contains(model, "      by_token: [\"tokenIdentifier\", \"_creationTime\"];\n");
    assert_contains(model, "      | `identity.${string}`");
    free(model);
}

static void api_js_is_the_any_api_proxy(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char *js = read_generated(f->out, "api.js");
    assert_contains(js, "import { anyApi } from \"convex/server\";\n\n"
                        "export const api = anyApi;\n"
                        "export const internal = anyApi;\n");
    free(js);
}

static void every_file_says_it_is_generated(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    static const char *const names[] = {"api.d.ts", "api.js", "dataModel.d.ts", "README.md"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *text = read_generated(f->out, names[i]);
        assert_contains(text, "Generated by dojo codegen. Do not edit.");
        free(text);
    }
    char *readme = read_generated(f->out, "README.md");
    assert_contains(readme, "`dojo codegen`");
    free(readme);
}

static void the_report_counts_what_was_written(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char expected[1400];
    snprintf(expected, sizeof expected,
             "%s: wrote dataModel.d.ts, api.d.ts, api.js, README.md; 4 tables, 16 public and 7 "
             "internal functions",
             f->out);
    assert_string_equal(report, expected);
}

static void a_second_run_leaves_every_file_untouched(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    static const char *const names[] = {"api.d.ts", "api.js", "dataModel.d.ts", "README.md"};
    struct stat first[4], second[4];
    write_app_bindings(f, report);
    for (int i = 0; i < 4; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", f->out, names[i]);
        assert_int_equal(stat(path, &first[i]), 0);
    }
    write_app_bindings(f, report);
    assert_non_null(strstr(report, ": up to date;"));
    for (int i = 0; i < 4; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", f->out, names[i]);
        assert_int_equal(stat(path, &second[i]), 0);
        /* A rename would bring a new inode; a rewrite a new mtime. */
        assert_int_equal(first[i].st_ino, second[i].st_ino);
        assert_int_equal(first[i].st_mtim.tv_sec, second[i].st_mtim.tv_sec);
        assert_int_equal(first[i].st_mtim.tv_nsec, second[i].st_mtim.tv_nsec);
    }
}

static void a_changed_file_is_put_back_and_the_others_are_left_alone(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char *original = read_generated(f->out, "api.js");
    char path[1200];
    snprintf(path, sizeof path, "%s/api.js", f->out);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("// edited by hand\n", file);
    fclose(file);
    write_app_bindings(f, report);
    assert_non_null(strstr(report, ": wrote api.js (3 unchanged);"));
    char *restored = read_generated(f->out, "api.js");
    assert_string_equal(restored, original);
    free(original);
    free(restored);
}

static void the_output_does_not_depend_on_the_run(void **state)
{
    fixture *f = *state;
    char report[CODEGEN_REPORT_BYTES_MAX];
    write_app_bindings(f, report);
    char other[1024];
    snprintf(other, sizeof other, "%s/elsewhere/deeper/_generated", f->dir);
    registry r2;
    registry_init(&r2);
    app_register(&r2);
    err_t e;
    err_init(&e);
    assert_int_equal(codegen_write(app_schema(), &r2, other, NULL, 0, &e), 0);
    static const char *const names[] = {"api.d.ts", "api.js", "dataModel.d.ts", "README.md"};
    for (int i = 0; i < 4; i++) {
        char *a = read_generated(f->out, names[i]);
        char *b = read_generated(other, names[i]);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
}

static void an_output_folder_that_is_a_file_is_an_io_error_naming_it(void **state)
{
    fixture *f = *state;
    char path[1200];
    snprintf(path, sizeof path, "%s/occupied", f->dir);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fclose(file);
    err_t e;
    err_init(&e);
    char report[CODEGEN_REPORT_BYTES_MAX] = "untouched";
    assert_int_equal(codegen_write(app_schema(), &f->r, path, report, sizeof report, &e), ERR_IO);
    assert_non_null(strstr(e.msg, "occupied"));
    assert_string_equal(report, "untouched");
}

/* --- the TypeScript spelling, on a schema made for it -------------------------------- */

static const char *const colours[] = {"red", "green"};
static const validator colour = V_ENUM_INIT(colours);
static const validator colour_list = V_ARRAY_INIT(&colour);
static const validator *const string_or_number_options[] = {&v_string, &v_number};
static const validator string_or_number = V_UNION_INIT(string_or_number_options);
static const validator mixed_list = V_ARRAY_INIT(&string_or_number);
static const validator number_record = V_RECORD_INIT(&v_number);
static const validator widget_id = V_ID_INIT("widgets");
static const validator env_id = V_ID_INIT("_env");
static const validator custom = {.kind = V_ANY, .ts_type = "Map<string, Id<\"widgets\">>"};
static const v_field point_fields[] = {{"x", &v_integer, false}, {"y", &v_integer, true}};
static const validator point = V_OBJECT_INIT(point_fields);
static const validator empty_object = {.kind = V_OBJECT};
static const v_field widget_fields[] = {
    {"colour", &colour, false},   {"colours", &colour_list, false},
    {"mixed", &mixed_list, true}, {"scores", &number_record, false},
    {"at", &point, false},        {"data-key", &v_boolean, true},
    {"nothing", &v_null, true},   {"empty", &empty_object, true},
};
static const validator widget_doc = V_OBJECT_INIT(widget_fields);
static const schema_index widget_indexes[] = {
    {.name = "by_colour", .fields = {"colour"}, .n_fields = 1},
};
static const v_field env_fields[] = {{"name", &v_string, false}};
static const validator env_doc = V_OBJECT_INIT(env_fields);
static const schema_table toy_tables[] = {
    {.name = "widgets", .number = 1, .doc = &widget_doc, .indexes = widget_indexes, .n_indexes = 1},
    {.name = "_env", .number = 250, .doc = &env_doc, .system = true},
};
static const schema toy_schema = {.version = 1, .tables = toy_tables, .n_tables = 2};

static const v_field find_fields[] = {
    {"id", &widget_id, false}, {"env", &env_id, true}, {"paginationOpts", &v_any, false}};
static const validator find_args = V_OBJECT_INIT(find_fields);
static const validator returns_custom = {.kind = V_ANY, .ts_type = "Doc<\"widgets\"> | null"};
static const fn_def toy_fns[] = {
    {.path = "shop/widgets:find",
     .kind = FN_QUERY,
     .args = &find_args,
     .returns = &custom,
     .doc = "Finds a widget. A comment ends with */ here."},
    {.path = "shop/widgets:make",
     .kind = FN_MUTATION,
     .args = &v_no_args,
     .returns = &returns_custom},
    {.path = "shop:open", .kind = FN_ACTION, .args = &v_no_args},
    {.path = "my-module:default", .kind = FN_QUERY, .args = &v_no_args, .returns = &point},
    {.path = "shop/secret:peek", .kind = FN_QUERY, .visibility = FN_INTERNAL, .args = &v_no_args},
};

static char *write_toy(fixture *f, const fn_def *fns, int n, const char *file)
{
    registry r;
    registry_init(&r);
    registry_add(&r, fns, n);
    err_t e;
    err_init(&e);
    if (codegen_write(&toy_schema, &r, f->out, NULL, 0, &e)) fail_msg("codegen_write: %s", e.msg);
    return read_generated(f->out, file);
}

static void every_validator_kind_has_its_typescript_spelling(void **state)
{
    fixture *f = *state;
    char *model = write_toy(f, toy_fns, V_COUNT(toy_fns), "dataModel.d.ts");
    assert_contains(model, "      colour: \"red\" | \"green\";\n"
                           "      colours: (\"red\" | \"green\")[];\n"
                           "      mixed?: (string | number)[];\n"
                           "      scores: Record<string, number>;\n"
                           "      at: { x: number; y?: number };\n"
                           "      \"data-key\"?: boolean;\n"
                           "      nothing?: null;\n"
                           "      empty?: Record<string, never>;\n");
    assert_contains(model, "      | \"at.x\"\n      | \"at.y\"\n");
    assert_contains(model, "      | `scores.${string}`\n");
    assert_contains(model, "      by_colour: [\"colour\", \"_creationTime\"];\n");
    assert_contains(model, "export type TableNames = \"widgets\";");
    free(model);
}

static void modules_in_folders_nest_and_odd_names_are_quoted(void **state)
{
    fixture *f = *state;
    char *api = write_toy(f, toy_fns, V_COUNT(toy_fns), "api.d.ts");
    assert_contains(api, "export declare const api: {\n"
                         "  shop: {\n"
                         "    widgets: {\n"
                         "      /** Finds a widget. A comment ends with *\\/ here. */\n"
                         "      find: FunctionReference<\n"
                         "        \"query\",\n"
                         "        \"public\",\n"
                         "        { id: Id<\"widgets\">; env?: GenericId<\"_env\">; "
                         "paginationOpts: PaginationOptions },\n"
                         "        Map<string, Id<\"widgets\">>\n"
                         "      >;\n"
                         "      make: FunctionReference<\n"
                         "        \"mutation\",\n");
    assert_contains(api, "    };\n"
                         "    open: FunctionReference<\n"
                         "      \"action\",\n"
                         "      \"public\",\n"
                         "      Record<string, never>,\n"
                         "      any\n"
                         "    >;\n"
                         "  };\n"
                         "  \"my-module\": {\n"
                         "    default: FunctionReference<\n");
    assert_contains(api, "export declare const internal: {\n"
                         "  shop: {\n"
                         "    secret: {\n"
                         "      peek: FunctionReference<\n");
    free(api);
}

static void no_internal_functions_is_an_empty_object(void **state)
{
    fixture *f = *state;
    char *api = write_toy(f, toy_fns, 1, "api.d.ts");
    assert_contains(api, "export declare const internal: {};\n");
    free(api);
}

static void a_function_named_like_a_module_is_refused_and_nothing_is_written(void **state)
{
    fixture *f = *state;
    static const fn_def clash[] = {
        {.path = "shop:widgets", .kind = FN_QUERY, .args = &v_no_args},
        {.path = "shop/widgets:find", .kind = FN_QUERY, .args = &v_no_args},
    };
    registry r;
    registry_init(&r);
    registry_add(&r, clash, V_COUNT(clash));
    err_t e;
    err_init(&e);
    assert_int_equal(codegen_write(&toy_schema, &r, f->out, NULL, 0, &e), ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(e.msg, "shop:widgets"));
    assert_non_null(strstr(e.msg, "shop/widgets"));
    struct stat st;
    assert_int_not_equal(stat(f->out, &st), 0);
}

static void a_validator_nested_too_deep_is_a_limit_error(void **state)
{
    fixture *f = *state;
    enum { DEPTH = 40 };
    validator chain[DEPTH];
    for (int i = 0; i < DEPTH; i++)
        chain[i] = (validator){.kind = V_ARRAY, .item = i ? &chain[i - 1] : &v_string};
    v_field deep_field = {"deep", &chain[DEPTH - 1], false};
    validator deep_args = {.kind = V_OBJECT, .fields = &deep_field, .n_fields = 1};
    fn_def deep = {.path = "deep:fn", .kind = FN_QUERY, .args = &deep_args};
    registry r;
    registry_init(&r);
    registry_add(&r, &deep, 1);
    err_t e;
    err_init(&e);
    assert_int_equal(codegen_write(&toy_schema, &r, f->out, NULL, 0, &e), ERR_LIMIT);
    assert_non_null(strstr(e.msg, "api.d.ts"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(public_functions_are_under_api_with_their_argument_and_result_types),
        T(internal_functions_are_only_under_internal),
        T(system_functions_and_tables_are_never_generated),
        T(documents_have_system_fields_and_every_declared_field),
        T(api_js_is_the_any_api_proxy),
        T(every_file_says_it_is_generated),
        T(the_report_counts_what_was_written),
        T(a_second_run_leaves_every_file_untouched),
        T(a_changed_file_is_put_back_and_the_others_are_left_alone),
        T(the_output_does_not_depend_on_the_run),
        T(an_output_folder_that_is_a_file_is_an_io_error_naming_it),
        T(every_validator_kind_has_its_typescript_spelling),
        T(modules_in_folders_nest_and_odd_names_are_quoted),
        T(no_internal_functions_is_an_empty_object),
        T(a_function_named_like_a_module_is_refused_and_nothing_is_written),
        T(a_validator_nested_too_deep_is_a_limit_error),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
