/*
 * env.c — deployment variables (api.md §6): `_system:envSet`, `envGet`,
 * `envList`, `envRemove`, the functions behind `dojo env` and the dashboard.
 * Values live in the `_env` table, so a change commits like any write and
 * reaches the server's auth configuration through the commit's write set —
 * effective without a restart. The variables the app interprets are checked
 * before they are stored, so a typo cannot break every later call.
 * Thread: the storage thread (set/remove) or a reader thread (get/list).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/model.h"
#include "base/limits.h"
#include "engine/system_tables.h"

static const validator env_name = V_STRING_LEN_INIT(1, ENV_NAME_BYTES_MAX - 1);
static const validator env_value = V_STRING_LEN_INIT(0, ENV_VALUE_BYTES_MAX - 1);
static const v_field name_fields[] = {{"name", &env_name, false}};
static const validator name_args = V_OBJECT_INIT(name_fields);
static const v_field set_fields[] = {{"name", &env_name, false}, {"value", &env_value, false}};
static const validator set_args = V_OBJECT_INIT(set_fields);

static int check_name(const char *name, err_t *e)
{
    bool ok = isalpha((unsigned char)name[0]);
    for (const char *p = name; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '_';
    if (!ok)
        return err_app(e, ERR_INVALID_ARGUMENT, NULL,
                       "Invalid argument `name`: a deployment variable name is letters, digits "
                       "and '_', starting with a letter (got \"%.64s\")",
                       name);
    return 0;
}

static int check_integer(const char *name, const char *value, long long min, long long max,
                         err_t *e)
{
    char *end;
    long long v = strtoll(value, &end, 10);
    if (*value == '\0' || *end != '\0' || v < min || v > max)
        return err_app(e, ERR_INVALID_ARGUMENT, NULL,
                       "Invalid argument `value`: %s must be an integer from %lld to %lld", name,
                       min, max);
    return 0;
}

/* The variables whose meaning the app knows are checked here. */
static int check_value(const char *name, const char *value, err_t *e)
{
    if (strcmp(name, "SIGNUP_CREDITS") == 0)
        return check_integer(name, value, 0, APP_CREDITS_MAX, e);
    if (strcmp(name, "MAX_ATTEMPTS") == 0)
        return check_integer(name, value, 1, APP_MAX_ATTEMPTS_MAX, e);
    if (strcmp(name, "PRICING") == 0) {
        err_t pe;
        err_init(&pe);
        json_t *p = app_pricing_parse(value, &pe);
        json_decref(p);
        int rc =
            p ? 0 : err_app(e, ERR_INVALID_ARGUMENT, NULL, "Invalid argument `value`: %s", pe.msg);
        err_clear(&pe);
        return rc;
    }
    if (strcmp(name, "FILE_MAX_BYTES") == 0)
        return check_integer(name, value, 0, (long long)LIMIT_FILE_BYTES_MAX, e);
    if (strcmp(name, "WORKER_KEY") == 0 &&
        (strlen(value) < LIMIT_WORKER_KEY_CHARS_MIN || strlen(value) > LIMIT_ADMIN_KEY_BYTES_MAX))
        return err_app(e, ERR_INVALID_ARGUMENT, NULL,
                       "Invalid argument `value`: WORKER_KEY must be %d to %d characters (make "
                       "one with `openssl rand -hex 32`)",
                       LIMIT_WORKER_KEY_CHARS_MIN, LIMIT_ADMIN_KEY_BYTES_MAX);
    if (strcmp(name, "AUTH_APPLICATION_ID") == 0 && *value == '\0')
        return err_app(e, ERR_INVALID_ARGUMENT, NULL,
                       "Invalid argument `value`: AUTH_APPLICATION_ID may not be empty");
    return 0;
}

int app_env_check(const char *name, const char *value, err_t *e)
{
    int rc = check_name(name, e);
    return rc ? rc : check_value(name, value, e);
}

static int find(ctx *c, const char *name, json_t **row_out)
{
    db_query q = {
        .table = SYSTEM_TABLE_ENV, .index = "by_name", .eq = ctx_own(c, json_pack("[s]", name))};
    return db_query_first(c, &q, row_out);
}

static int env_set(ctx *c, const json_t *args, json_t **result)
{
    const char *name = app_str(args, "name");
    const char *value = app_str(args, "value");
    int rc = app_env_check(name, value, &c->err);
    json_t *row = NULL;
    if (rc == 0) rc = find(c, name, &row);
    if (rc) return rc;
    json_t *fields = ctx_own(c, json_pack("{s:s, s:s}", "name", name, "value", value));
    if (row)
        rc = db_patch(c, SYSTEM_TABLE_ENV, app_str(row, "_id"), fields);
    else
        rc = db_insert(c, SYSTEM_TABLE_ENV, fields, NULL);
    *result = json_null();
    return rc;
}

static int env_get(ctx *c, const json_t *args, json_t **result)
{
    const char *name = app_str(args, "name");
    json_t *row = NULL;
    int rc = find(c, name, &row);
    if (rc) return rc;
    *result = row ? ctx_own(c, json_pack("{s:s, s:O}", "name", name, "value",
                                         json_object_get(row, "value")))
                  : json_null();
    return 0;
}

static int env_list(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    db_query q = {.table = SYSTEM_TABLE_ENV, .index = "by_name"};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    json_t *out = ctx_own(c, json_array());
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_array_append_new(out, json_pack("{s:O, s:O}", "name", json_object_get(row, "name"),
                                             "value", json_object_get(row, "value")));
    }
    *result = out;
    return 0;
}

static int env_remove(ctx *c, const json_t *args, json_t **result)
{
    const char *name = app_str(args, "name");
    json_t *row = NULL;
    int rc = find(c, name, &row);
    if (rc) return rc;
    /* Removing a variable that is not set is done already (like
     * `npx convex env remove`): nothing to write. */
    if (row) rc = db_delete(c, SYSTEM_TABLE_ENV, app_str(row, "_id"));
    *result = json_null();
    return rc;
}

static const fn_def env_fns[] = {
    {.path = "_system:envSet",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &set_args,
     .impl = env_set,
     .doc = "Sets a deployment variable."},
    {.path = "_system:envGet",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &name_args,
     .impl = env_get,
     .doc = "One deployment variable, or null."},
    {.path = "_system:envList",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = env_list,
     .doc = "Every stored deployment variable."},
    {.path = "_system:envRemove",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &name_args,
     .impl = env_remove,
     .doc = "Removes a deployment variable."},
};

void env_register(registry *r)
{
    registry_add(r, env_fns, V_COUNT(env_fns));
}
