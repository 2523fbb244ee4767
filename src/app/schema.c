/*
 * schema.c — Karate AI's tables, declared once (api.md §1). The store derives
 * the DDL, indexes and ledger guards from this; the engine validates every
 * written document against it; codegen writes the TypeScript document types
 * from it.
 * Thread: constants, any.
 */
#include "app/app.h"
#include "app/model.h"
#include "engine/system_tables.h"

/* --- users ------------------------------------------------------------------ */
static const validator identity_object = {
    .kind = V_RECORD, .item = &v_any, .ts_type = "Record<string, any>"};
static const validator credits = {.kind = V_INTEGER, .has_min = true, .min = 0};
static const v_field user_fields[] = {
    {"name", &v_string, true},
    {"email", &v_string, true},
    {"pictureUrl", &v_string, true},
    {"credits", &credits, false},
    {"tokenIdentifier", &v_string, false},
    {"identity", &identity_object, false},
};
static const validator user_doc = V_OBJECT_INIT(user_fields);
static const schema_index user_indexes[] = {
    {.name = "by_token", .fields = {"tokenIdentifier"}, .n_fields = 1, .unique = true},
    {.name = "by_email", .fields = {"email"}, .n_fields = 1},
};
static const char *const user_nonnegative[] = {"credits", NULL};

/* --- workflows ----------------------------------------------------------------- */
const validator app_title = V_STRING_LEN_INIT(APP_TITLE_CHARS_MIN, APP_TITLE_CHARS_MAX);
const validator app_graph = {.kind = V_ARRAY, .item = &v_any, .ts_type = "any[]"};
static const v_field workflow_fields[] = {
    {"title", &app_title, false}, {"nodes", &app_graph, false},    {"edges", &app_graph, false},
    {"owner", &v_string, false},  {"updatedAt", &v_number, false},
};
static const validator workflow_doc = V_OBJECT_INIT(workflow_fields);
static const schema_index workflow_indexes[] = {
    {.name = "by_owner", .fields = {"owner", "updatedAt"}, .n_fields = 2},
};

/* --- runs ------------------------------------------------------------------------ */
static const char *const run_statuses[] = {"queued", "processing", "completed", "failed"};
const validator app_run_status = V_ENUM_INIT(run_statuses);
static const validator model_name = V_STRING_LEN_INIT(1, APP_MODEL_CHARS_MAX);
static const validator prompt_text = V_STRING_LEN_INIT(0, APP_PROMPT_CHARS_MAX);
static const validator settings_object = {
    .kind = V_RECORD, .item = &v_any, .ts_type = "Record<string, any>"};
static const v_field run_input_fields[] = {
    {"model", &model_name, false},
    {"prompt", &prompt_text, false},
    {"settings", &settings_object, true},
};
const validator app_run_input = V_OBJECT_INIT(run_input_fields);
const validator app_user_id = V_ID_INIT("users");
const validator app_workflow_id = V_ID_INIT("workflows");
const validator app_run_id = V_ID_INIT("runs");
const validator app_storage_id = V_ID_INIT(SYSTEM_TABLE_STORAGE);
const validator app_nonnegative_integer = {.kind = V_INTEGER, .has_min = true, .min = 0};
static const v_field run_fields[] = {
    {"userId", &app_user_id, false},
    {"workflowId", &app_workflow_id, true},
    {"status", &app_run_status, false},
    {"input", &app_run_input, false},
    {"output", &v_string, true},
    {"outputStorageId", &app_storage_id, true},
    {"error", &v_string, true},
    {"cost", &app_nonnegative_integer, false},
    {"workerId", &v_string, true},
    {"leaseExpiresAt", &v_number, true},
    {"attempts", &app_nonnegative_integer, false},
    {"startedAt", &v_number, true},
    {"finishedAt", &v_number, true},
};
static const validator run_doc = V_OBJECT_INIT(run_fields);
/* by_user, by_workflow and by_status are the contract's; the others make
 * runs:list with filters, the lease sweep and the files of runs (which run
 * a file is the output of) exact index ranges. */
static const schema_index run_indexes[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
    {.name = "by_workflow", .fields = {"workflowId"}, .n_fields = 1},
    {.name = "by_status", .fields = {"status", "_creationTime"}, .n_fields = 2},
    {.name = "by_user_status", .fields = {"userId", "status"}, .n_fields = 2},
    {.name = "by_user_workflow", .fields = {"userId", "workflowId"}, .n_fields = 2},
    {.name = "by_user_workflow_status",
     .fields = {"userId", "workflowId", "status"},
     .n_fields = 3},
    {.name = "by_lease", .fields = {"leaseExpiresAt"}, .n_fields = 1},
    {.name = "by_output", .fields = {"outputStorageId"}, .n_fields = 1},
};

/* --- transactions ------------------------------------------------------------------ */
static const char *const transaction_kinds[] = {"grant", "run", "refund", "signup"};
static const validator transaction_kind = V_ENUM_INIT(transaction_kinds);
static const v_field transaction_fields[] = {
    {"userId", &app_user_id, false},
    {"amount", &v_integer, false},
    {"balanceAfter", &app_nonnegative_integer, false},
    {"kind", &transaction_kind, false},
    {"runId", &app_run_id, true},
    {"note", &v_string, true},
    {"actor", &v_string, false},
};
static const validator transaction_doc = V_OBJECT_INIT(transaction_fields);
static const schema_index transaction_indexes[] = {
    {.name = "by_user", .fields = {"userId", "_creationTime"}, .n_fields = 2},
    {.name = "by_run", .fields = {"runId"}, .n_fields = 1},
};
static const char *const transaction_nonnegative[] = {"balanceAfter", NULL};

static const schema_table tables[] = {
    {.name = "users",
     .number = 1,
     .doc = &user_doc,
     .indexes = user_indexes,
     .n_indexes = V_COUNT(user_indexes),
     .nonnegative_fields = user_nonnegative},
    {.name = "workflows",
     .number = 2,
     .doc = &workflow_doc,
     .indexes = workflow_indexes,
     .n_indexes = V_COUNT(workflow_indexes)},
    {.name = "runs",
     .number = 3,
     .doc = &run_doc,
     .indexes = run_indexes,
     .n_indexes = V_COUNT(run_indexes)},
    {.name = "transactions",
     .number = 4,
     .doc = &transaction_doc,
     .indexes = transaction_indexes,
     .n_indexes = V_COUNT(transaction_indexes),
     .append_only = true,
     .nonnegative_fields = transaction_nonnegative},
    SYSTEM_TABLES,
};

static const schema app_schema_value = {
    .version = 2, .tables = tables, .n_tables = V_COUNT(tables)};

const schema *app_schema(void)
{
    return &app_schema_value;
}
