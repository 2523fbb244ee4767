/*
 * runs.c — generation runs and their lifecycle (api.md §3 "runs"):
 *   runs:create      debit + "run" ledger row + queued run, one transaction
 *   runs:get/list    the owner's runs, newest first, paginated and filtered
 *   runs:cancel      queued → failed "Cancelled", refunded
 *   runs:claim       (worker) oldest queued → processing with a lease
 *   runs:queue       (worker) how many runs wait and run: what a worker
 *                    subscribes to, to wake when work arrives
 *   runs:heartbeat   (worker) extends the lease of a run it holds
 *   runs:complete    (worker) processing → completed, with a URL or a file
 *                    stored in dojo (outputStorageId; `output` is then that
 *                    file's URL, computed when the run is read)
 *   runs:fail        (worker) processing → failed, refunded
 *   runs:expireLeases (system, every APP_LEASE_SWEEP_INTERVAL_MS) expired
 *                    leases back to queued, or failed "Lease expired" and
 *                    refunded after MAX_ATTEMPTS claims.
 * Every other transition, and a worker that does not hold the run, is
 * INVALID_TRANSITION and changes nothing.
 * Thread: the storage thread (mutations) or a reader thread (queries).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/model.h"
#include "base/limits.h"
#include "engine/system_tables.h"

#define RUNS_EXPIRE_BATCH_MAX 500
/* runs:queue counts at most this many runs of each status: a worker only
 * needs to know that there is work. */
#define RUNS_QUEUE_COUNT_MAX 100000

/* The caller's run (by the owner's user id), or *run_out NULL. */
static int load_own_run(ctx *c, const char *id, json_t **run_out)
{
    *run_out = NULL;
    json_t *user;
    int rc = app_find_user(c, &user);
    if (rc || !user) return rc;
    rc = db_get(c, "runs", id, run_out);
    if (rc == 0 && *run_out && strcmp(app_str(*run_out, "userId"), app_str(user, "_id")) != 0)
        *run_out = NULL;
    return rc;
}

static int run_not_found(ctx *c)
{
    return ctx_fail(c, ERR_NOT_FOUND, NULL, "Run not found");
}

static int load_pricing(ctx *c, json_t **pricing_out)
{
    char *text = NULL;
    int rc = ctx_env(c, "PRICING", &text);
    if (rc) return rc;
    err_t e;
    err_init(&e);
    json_t *pricing = app_pricing_parse(text && *text ? text : APP_PRICING_DEFAULT, &e);
    free(text);
    if (!pricing) {
        rc = ctx_fail(c, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
        err_clear(&e);
        return rc;
    }
    *pricing_out = ctx_own(c, pricing);
    return *pricing_out ? 0 : ctx_fail(c, ERR_NOMEM, NULL, "out of memory");
}

static int check_workflow(ctx *c, const json_t *args)
{
    const char *wid = app_str(args, "workflowId");
    if (!wid) return 0;
    json_t *wf = NULL;
    int rc = db_get(c, "workflows", wid, &wf);
    if (rc) return rc;
    bool own = wf && strcmp(app_str(wf, "owner"), ctx_token_identifier(c)) == 0;
    return own ? 0 : ctx_fail(c, ERR_NOT_FOUND, NULL, "Workflow not found");
}

static int create(ctx *c, const json_t *args, json_t **result)
{
    json_t *user;
    int rc = app_find_user(c, &user);
    if (rc) return rc;
    if (!user)
        return ctx_fail(c, ERR_NOT_FOUND, NULL, "User not found — call users:getOrCreate first");
    json_t *pricing = NULL;
    int64_t cost = 0;
    const json_t *input = json_object_get(args, "input");
    rc = check_workflow(c, args);
    if (rc == 0) rc = load_pricing(c, &pricing);
    if (rc == 0) rc = app_pricing_cost(c, pricing, app_str(input, "model"), &cost);
    int64_t balance = app_int(user, "credits");
    if (rc == 0 && balance < cost)
        rc = ctx_fail(
            c, ERR_INSUFFICIENT_CREDITS,
            json_pack("{s:I, s:I}", "balance", (json_int_t)balance, "cost", (json_int_t)cost),
            "Insufficient credits");
    char run_id[ID_BYTES_MAX];
    if (rc == 0) {
        json_t *run =
            ctx_own(c, json_pack("{s:O, s:s, s:O, s:I, s:i}", "userId",
                                 json_object_get(user, "_id"), "status", "queued", "input", input,
                                 "cost", (json_int_t)cost, "attempts", 0));
        json_t *wid = json_object_get(args, "workflowId");
        if (wid) json_object_set(run, "workflowId", wid);
        rc = db_insert(c, "runs", run, run_id);
    }
    if (rc == 0)
        rc = app_ledger_move(c, user, -cost, "run", run_id, NULL, ctx_token_identifier(c), NULL);
    if (rc == 0) *result = ctx_own(c, json_string(run_id));
    return rc;
}

static int get(ctx *c, const json_t *args, json_t **result)
{
    json_t *run;
    int rc = load_own_run(c, app_str(args, "id"), &run);
    if (rc == 0) *result = run ? app_run_view(c, run) : json_null();
    return rc;
}

static int list(ctx *c, const json_t *args, json_t **result)
{
    json_t *user;
    int rc = app_find_user(c, &user);
    if (rc) return rc;
    const json_t *opts = json_object_get(args, "paginationOpts");
    if (!user) {
        *result = ctx_own(c, json_pack("{s:[], s:b, s:s, s:n, s:n}", "page", "isDone", 1,
                                       "continueCursor", "END", "splitCursor", "pageStatus"));
        return 0;
    }
    json_t *wid = json_object_get(args, "workflowId"), *status = json_object_get(args, "status");
    json_t *eq = ctx_own(c, json_pack("[O]", json_object_get(user, "_id")));
    const char *index = "by_user";
    if (wid) json_array_append(eq, wid);
    if (status) json_array_append(eq, status);
    if (wid && status)
        index = "by_user_workflow_status";
    else if (wid)
        index = "by_user_workflow";
    else if (status)
        index = "by_user_status";
    db_query q = {.table = "runs", .index = index, .eq = eq, .descending = true};
    rc = db_paginate(c, &q, opts, result);
    size_t i;
    json_t *run;
    if (rc == 0) json_array_foreach(json_object_get(*result, "page"), i, run) app_run_view(c, run);
    return rc;
}

/* Ends a run as failed with error, refunding its cost in the same
 * transaction. actor names who ended it. */
static int fail_and_refund(ctx *c, const json_t *run, const char *error, const char *actor)
{
    json_t *patch = ctx_own(c, json_pack("{s:s, s:s, s:f, s:n}", "status", "failed", "error", error,
                                         "finishedAt", c->now_ms, "leaseExpiresAt"));
    const char *run_id = app_str(run, "_id");
    int rc = db_patch(c, "runs", run_id, patch);
    int64_t cost = app_int(run, "cost");
    if (rc || cost == 0) return rc;
    json_t *user = NULL;
    rc = db_get(c, "users", app_str(run, "userId"), &user);
    if (rc == 0 && !user) rc = ctx_fail(c, ERR_INTERNAL, NULL, "run %s has no user", run_id);
    if (rc == 0) rc = app_ledger_move(c, user, cost, "refund", run_id, NULL, actor, NULL);
    return rc;
}

static int cancel(ctx *c, const json_t *args, json_t **result)
{
    json_t *run;
    int rc = load_own_run(c, app_str(args, "id"), &run);
    if (rc) return rc;
    if (!run) return run_not_found(c);
    if (strcmp(app_str(run, "status"), "queued") != 0)
        rc = ctx_fail(c, ERR_INVALID_TRANSITION, NULL,
                      "Run is %s: only a queued run can be cancelled", app_str(run, "status"));
    if (rc == 0) rc = fail_and_refund(c, run, "Cancelled", ctx_token_identifier(c));
    if (rc == 0) *result = json_null();
    return rc;
}

static double lease_ms(const json_t *args)
{
    json_t *s = json_object_get(args, "leaseSeconds");
    return 1000.0 * (s ? json_number_value(s) : APP_LEASE_SECONDS_DEFAULT);
}

static int claim(ctx *c, const json_t *args, json_t **result)
{
    db_query q = {
        .table = "runs", .index = "by_status", .eq = ctx_own(c, json_pack("[s]", "queued"))};
    json_t *run = NULL;
    int rc = db_query_first(c, &q, &run);
    if (rc) return rc;
    if (!run) {
        *result = json_null();
        return 0;
    }
    const char *id = app_str(run, "_id");
    json_t *patch = ctx_own(c, json_pack("{s:s, s:O, s:f, s:f, s:I}", "status", "processing",
                                         "workerId", json_object_get(args, "workerId"), "startedAt",
                                         c->now_ms, "leaseExpiresAt", c->now_ms + lease_ms(args),
                                         "attempts", (json_int_t)(app_int(run, "attempts") + 1)));
    rc = db_patch(c, "runs", id, patch);
    if (rc == 0) rc = db_get(c, "runs", id, result);
    return rc;
}

/* The run a worker holds: exists (else NOT_FOUND), is processing and held
 * by workerId (else INVALID_TRANSITION). */
static int load_held_run(ctx *c, const json_t *args, const char *action, json_t **run_out)
{
    int rc = db_get(c, "runs", app_str(args, "id"), run_out);
    if (rc) return rc;
    if (!*run_out) return run_not_found(c);
    const char *status = app_str(*run_out, "status");
    const char *holder = app_str(*run_out, "workerId");
    const char *worker = app_str(args, "workerId");
    if (strcmp(status, "processing") != 0)
        rc =
            ctx_fail(c, ERR_INVALID_TRANSITION, NULL, "Cannot %s a run that is %s", action, status);
    else if (!holder || strcmp(holder, worker) != 0)
        rc = ctx_fail(c, ERR_INVALID_TRANSITION, NULL,
                      "Cannot %s: worker \"%.200s\" does not hold this run", action, worker);
    if (rc) *run_out = NULL;
    return rc;
}

static int heartbeat(ctx *c, const json_t *args, json_t **result)
{
    json_t *run;
    int rc = load_held_run(c, args, "heartbeat", &run);
    if (rc) return rc;
    /* Extends, never shortens: a heartbeat without leaseSeconds (the default
     * 300 s) must not cut a longer lease the worker claimed with. */
    double until = c->now_ms + lease_ms(args);
    double current = json_number_value(json_object_get(run, "leaseExpiresAt"));
    json_t *patch =
        ctx_own(c, json_pack("{s:f}", "leaseExpiresAt", until > current ? until : current));
    rc = db_patch(c, "runs", app_str(run, "_id"), patch);
    if (rc == 0) *result = json_null();
    return rc;
}

static int complete(ctx *c, const json_t *args, json_t **result)
{
    json_t *output = json_object_get(args, "output");
    json_t *storage_id = json_object_get(args, "storageId");
    if ((output != NULL) == (storage_id != NULL))
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Invalid argument `%s`: give exactly one of `output` (a URL) and "
                        "`storageId` (a file stored in dojo)",
                        output ? "storageId" : "output");
    json_t *run;
    int rc = load_held_run(c, args, "complete", &run);
    if (rc) return rc;
    if (storage_id) {
        json_t *file = NULL;
        rc = db_get(c, SYSTEM_TABLE_STORAGE, json_string_value(storage_id), &file);
        if (rc == 0 && !file) rc = ctx_fail(c, ERR_NOT_FOUND, NULL, "File not found");
        if (rc) return rc;
    }
    json_t *patch =
        ctx_own(c, json_pack("{s:s, s:O, s:f, s:n}", "status", "completed",
                             output ? "output" : "outputStorageId", output ? output : storage_id,
                             "finishedAt", c->now_ms, "leaseExpiresAt"));
    rc = db_patch(c, "runs", app_str(run, "_id"), patch);
    if (rc == 0) *result = json_null();
    return rc;
}

static int fail(ctx *c, const json_t *args, json_t **result)
{
    json_t *run;
    int rc = load_held_run(c, args, "fail", &run);
    if (rc) return rc;
    /* The worker key is not the admin: its refunds are the system's. */
    rc = fail_and_refund(c, run, app_str(args, "error"),
                         c->worker && !c->admin ? "system" : "admin");
    if (rc == 0) *result = json_null();
    return rc;
}

static int count_status(ctx *c, const char *status, int64_t *n_out)
{
    db_query q = {.table = "runs",
                  .index = "by_status",
                  .eq = ctx_own(c, json_pack("[s]", status)),
                  .limit = RUNS_QUEUE_COUNT_MAX};
    return db_count(c, &q, n_out);
}

static int queue(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    int64_t queued = 0, processing = 0;
    int rc = count_status(c, "queued", &queued);
    if (rc == 0) rc = count_status(c, "processing", &processing);
    json_t *oldest = NULL;
    if (rc == 0 && queued > 0) {
        db_query q = {
            .table = "runs", .index = "by_status", .eq = ctx_own(c, json_pack("[s]", "queued"))};
        rc = db_query_first(c, &q, &oldest);
    }
    if (rc == 0) {
        json_t *at = json_object_get(oldest, "_creationTime");
        *result =
            ctx_own(c, json_pack("{s:I, s:I, s:O}", "queued", (json_int_t)queued, "processing",
                                 (json_int_t)processing, "oldestQueuedAt", at ? at : json_null()));
    }
    return rc;
}

static int expire_leases(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    int64_t max_attempts;
    int rc = app_env_int(c, "MAX_ATTEMPTS", APP_MAX_ATTEMPTS_DEFAULT, 1, APP_MAX_ATTEMPTS_MAX,
                         &max_attempts);
    if (rc) return rc;
    json_t *zero = ctx_own(c, json_integer(0)), *now = ctx_own(c, json_real(c->now_ms));
    db_query q = {.table = "runs",
                  .index = "by_lease",
                  .after = zero,
                  .upto = now,
                  .limit = RUNS_EXPIRE_BATCH_MAX};
    json_t *rows = NULL;
    rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    int requeued = 0, failed = 0;
    size_t i;
    json_t *run;
    json_array_foreach(rows, i, run)
    {
        if (app_int(run, "attempts") >= max_attempts) {
            rc = fail_and_refund(c, run, "Lease expired", "system");
            failed++;
        } else {
            json_t *patch = ctx_own(c, json_pack("{s:s, s:n, s:n, s:n}", "status", "queued",
                                                 "workerId", "leaseExpiresAt", "startedAt"));
            rc = db_patch(c, "runs", app_str(run, "_id"), patch);
            requeued++;
        }
        if (rc) break;
    }
    if (rc == 0)
        *result = ctx_own(c, json_pack("{s:i, s:i}", "requeued", requeued, "failed", failed));
    return rc;
}

static const validator worker_id = V_STRING_LEN_INIT(1, APP_WORKER_ID_CHARS_MAX);
static const validator lease_seconds =
    V_INTEGER_RANGE_INIT(LIMIT_LEASE_SECONDS_MIN, LIMIT_LEASE_SECONDS_MAX);
static const validator output_url = V_STRING_LEN_INIT(1, APP_OUTPUT_CHARS_MAX);
static const validator error_text = V_STRING_LEN_INIT(1, APP_ERROR_CHARS_MAX);

static const v_field create_fields[] = {
    {"input", &app_run_input, false},
    {"workflowId", &app_workflow_id, true},
};
static const validator create_args = V_OBJECT_INIT(create_fields);
static const v_field id_fields[] = {{"id", &app_run_id, false}};
static const validator id_args = V_OBJECT_INIT(id_fields);
static const v_field list_fields[] = {
    {"paginationOpts", &app_pagination_opts, false},
    {"workflowId", &app_workflow_id, true},
    {"status", &app_run_status, true},
};
static const validator list_args = V_OBJECT_INIT(list_fields);
static const v_field claim_fields[] = {
    {"workerId", &worker_id, false},
    {"leaseSeconds", &lease_seconds, true},
};
static const validator claim_args = V_OBJECT_INIT(claim_fields);
static const v_field heartbeat_fields[] = {
    {"id", &app_run_id, false},
    {"workerId", &worker_id, false},
    {"leaseSeconds", &lease_seconds, true},
};
static const validator heartbeat_args = V_OBJECT_INIT(heartbeat_fields);
static const v_field complete_fields[] = {
    {"id", &app_run_id, false},
    {"workerId", &worker_id, false},
    {"output", &output_url, true},
    {"storageId", &app_storage_id, true},
};
static const validator complete_args = V_OBJECT_INIT(complete_fields);
static const v_field fail_fields[] = {
    {"id", &app_run_id, false},
    {"workerId", &worker_id, false},
    {"error", &error_text, false},
};
static const validator fail_args = V_OBJECT_INIT(fail_fields);

static const validator returns_id = {.kind = V_ANY, .ts_type = "Id<\"runs\">"};
static const validator returns_doc_or_null = {.kind = V_ANY, .ts_type = "Doc<\"runs\"> | null"};
static const validator returns_page = {.kind = V_ANY, .ts_type = "PaginationResult<Doc<\"runs\">>"};
static const validator returns_queue = {
    .kind = V_ANY,
    .ts_type = "{ queued: number; processing: number; oldestQueuedAt: number | null }"};

static const fn_def run_fns[] = {
    {.path = "runs:create",
     .kind = FN_MUTATION,
     .args = &create_args,
     .returns = &returns_id,
     .impl = create,
     .doc = "Charges the run's cost and queues it."},
    {.path = "runs:get",
     .kind = FN_QUERY,
     .args = &id_args,
     .returns = &returns_doc_or_null,
     .impl = get,
     .doc = "The caller's run, or null."},
    {.path = "runs:list",
     .kind = FN_QUERY,
     .args = &list_args,
     .returns = &returns_page,
     .impl = list,
     .doc = "A page of the caller's runs, newest first."},
    {.path = "runs:cancel",
     .kind = FN_MUTATION,
     .args = &id_args,
     .returns = &v_null,
     .impl = cancel,
     .doc = "Cancels a queued run and refunds it."},
    {.path = "runs:claim",
     .kind = FN_MUTATION,
     .visibility = FN_INTERNAL,
     .args = &claim_args,
     .returns = &returns_doc_or_null,
     .impl = claim,
     .doc = "Worker: takes the oldest queued run, or null.",
     .worker = true},
    {.path = "runs:queue",
     .kind = FN_QUERY,
     .visibility = FN_INTERNAL,
     .args = &v_no_args,
     .returns = &returns_queue,
     .impl = queue,
     .doc = "Worker: how many runs are queued and processing, and when the oldest queued "
            "run was created.",
     .worker = true},
    {.path = "runs:heartbeat",
     .kind = FN_MUTATION,
     .visibility = FN_INTERNAL,
     .args = &heartbeat_args,
     .returns = &v_null,
     .impl = heartbeat,
     .doc = "Worker: extends the lease of a run it holds.",
     .worker = true},
    {.path = "runs:complete",
     .kind = FN_MUTATION,
     .visibility = FN_INTERNAL,
     .args = &complete_args,
     .returns = &v_null,
     .impl = complete,
     .doc = "Worker: marks a run it holds completed, with an output URL or a stored file.",
     .worker = true},
    {.path = "runs:fail",
     .kind = FN_MUTATION,
     .visibility = FN_INTERNAL,
     .args = &fail_args,
     .returns = &v_null,
     .impl = fail,
     .doc = "Worker: fails a run it holds and refunds it.",
     .worker = true},
    {.path = "runs:expireLeases",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = expire_leases,
     .doc = "Re-queues or fails expired leases."},
};

void runs_register(registry *r)
{
    registry_add(r, run_fns, V_COUNT(run_fns));
}
