/*
 * system_functions.c — the engine's own functions (see system_functions.h).
 * Thread: a reader thread (health) or the storage thread (cleanup).
 */
#include "engine/system_functions.h"

#include "engine/ctx.h"
#include "engine/system_tables.h"

static int health(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    err_t e;
    err_init(&e);
    int rc = store_ping(c->conn, &e);
    if (rc) {
        ctx_fail(c, rc, NULL, "%s", e.msg);
        err_clear(&e);
        return rc;
    }
    *result = ctx_own(c, json_pack("{s:b}", "ok", 1));
    return 0;
}

static int cleanup_session_requests(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *now = ctx_own(c, json_real(c->now_ms));
    db_query q = {.table = SYSTEM_TABLE_SESSION_REQUESTS,
                  .index = "by_expiry",
                  .upto = now,
                  .limit = SYSTEM_CLEANUP_BATCH_MAX};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        rc = db_delete(c, SYSTEM_TABLE_SESSION_REQUESTS,
                       json_string_value(json_object_get(row, "_id")));
        if (rc) break;
    }
    if (rc == 0)
        *result = ctx_own(c, json_pack("{s:I}", "deleted", (json_int_t)json_array_size(rows)));
    return rc;
}

static const fn_def system_fns[] = {
    {.path = "_system:health",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = health,
     .doc = "Answers when the store answers a read."},
    {.path = "_system:cleanupSessionRequests",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = cleanup_session_requests,
     .doc = "Drops expired exactly-once records."},
};

void system_functions_register(registry *r)
{
    registry_add(r, system_fns, V_COUNT(system_fns));
}
