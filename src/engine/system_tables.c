/*
 * system_tables.c — declarations of the engine's own tables (see
 * system_tables.h).
 * Thread: constants, any.
 */
#include "engine/system_tables.h"

static const validator env_name = V_STRING_LEN_INIT(1, ENV_NAME_BYTES_MAX - 1);
static const validator env_value = V_STRING_LEN_INIT(0, ENV_VALUE_BYTES_MAX - 1);
static const v_field env_fields[] = {
    {"name", &env_name, false},
    {"value", &env_value, false},
};
const validator system_env_doc = V_OBJECT_INIT(env_fields);
const schema_index system_env_indexes[1] = {
    {.name = "by_name", .fields = {"name"}, .n_fields = 1, .unique = true},
};

static const v_field session_request_fields[] = {
    {"sessionId", &v_string, false},
    {"requestId", &v_integer, false},
    {"result", &v_any, false}, /* the encoded result, as sent */
    {"logLines", &v_any, false},
    {"ts", &v_string, false},        /* commit timestamp, decimal nanoseconds */
    {"expiresAt", &v_number, false}, /* ms since the epoch */
    /* Who made the request and what it called: a record answers only the
     * same caller's resend of the same function (older records lack them
     * and answer nobody). */
    {"caller", &v_string, true},
    {"udfPath", &v_string, true},
};
const validator system_session_request_doc = V_OBJECT_INIT(session_request_fields);
const schema_index system_session_request_indexes[2] = {
    {.name = "by_session_request",
     .fields = {"sessionId", "requestId"},
     .n_fields = 2,
     .unique = true},
    {.name = "by_expiry", .fields = {"expiresAt"}, .n_fields = 1},
};

static const validator sha256_hex =
    V_STRING_LEN_INIT(STORAGE_SHA256_HEX_CHARS, STORAGE_SHA256_HEX_CHARS);
static const validator file_size = {.kind = V_INTEGER, .has_min = true, .min = 0};
static const validator content_type = V_STRING_LEN_INIT(1, STORAGE_CONTENT_TYPE_CHARS_MAX);
static const v_field storage_fields[] = {
    {"sha256", &sha256_hex, false},
    {"size", &file_size, false},
    {"contentType", &content_type, true},
    {"owner", &v_string, true}, /* tokenIdentifier of the uploader; absent for a worker's */
};
const validator system_storage_doc = V_OBJECT_INIT(storage_fields);
const schema_index system_storage_indexes[1] = {
    {.name = "by_sha256", .fields = {"sha256"}, .n_fields = 1},
};

static const v_field upload_token_fields[] = {
    {"tokenHash", &sha256_hex, false}, /* SHA-256 of the token, hex */
    {"owner", &v_string, false},
    {"expiresAt", &v_number, false}, /* ms since the epoch */
};
const validator system_upload_token_doc = V_OBJECT_INIT(upload_token_fields);
const schema_index system_upload_token_indexes[2] = {
    {.name = "by_token", .fields = {"tokenHash"}, .n_fields = 1, .unique = true},
    {.name = "by_expiry", .fields = {"expiresAt"}, .n_fields = 1},
};
