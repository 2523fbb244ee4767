/*
 * overview.c — the system queries behind the dashboard's Overview tab
 * (admin key only, like every `_system:` function):
 *
 *   _system:overviewRuns    {sinceMs, bucketMs}: runs created after sinceMs,
 *                           per bucket of creation time, by their status now;
 *   _system:overviewCredits {sinceMs}: ledger rows after sinceMs per UTC day:
 *                           credits granted (grants, sign-up credits), spent
 *                           (run charges) and refunded;
 *   _system:overviewQueue   {}: queued and processing runs, and the creation
 *                           time of the oldest queued one.
 *
 * Every read is an index range, bounded and named: the charts read at most
 * LIMIT_DASHBOARD_CHART_ROWS_MAX rows, newest first — past it they say so
 * (`truncated`) and from when they are complete (`coveredFromMs`); the queue
 * counts at most LIMIT_DASHBOARD_QUEUE_ROWS_MAX runs per status (`…More`
 * past it). So a subscription re-runs only on writes inside the window it
 * read (runs or transactions created after sinceMs, runs entering or
 * leaving a status), and its cost never grows with the database. The page
 * moves the window itself (a new sinceMs once a minute).
 * Thread: a reader thread (all are queries).
 */
#include <math.h>
#include <string.h>

#include "app/app.h"
#include "app/model.h"
#include "base/limits.h"

#define OVERVIEW_DAY_MS 86400000.0
#define OVERVIEW_BUCKET_MS_MIN 60000
#define OVERVIEW_BUCKET_MS_MAX 86400000
#define OVERVIEW_BUCKETS_MAX 2000 /* distinct buckets one answer may hold */

static const char *const run_statuses[] = {"queued", "processing", "completed", "failed"};
#define RUN_STATUSES 4

/* The newest rows of table created after since_ms, at most the chart bound:
 * *rows_out newest first, *truncated when there were more. */
static int newest_rows(ctx *c, const char *table, double since_ms, json_t **rows_out,
                       bool *truncated)
{
    db_query q = {.table = table,
                  .after = ctx_own(c, json_real(since_ms)),
                  .descending = true,
                  .limit = LIMIT_DASHBOARD_CHART_ROWS_MAX + 1};
    int rc = db_query_rows(c, &q, rows_out);
    if (rc) return rc;
    *truncated = json_array_size(*rows_out) > LIMIT_DASHBOARD_CHART_ROWS_MAX;
    if (*truncated) json_array_remove(*rows_out, LIMIT_DASHBOARD_CHART_ROWS_MAX);
    return 0;
}

static double creation_ms(const json_t *doc)
{
    return json_number_value(json_object_get(doc, "_creationTime"));
}

/* The bucket object for start t in buckets (an object keyed by t), made
 * with zeroed counters `names` when new; NULL past OVERVIEW_BUCKETS_MAX. */
static json_t *bucket_for(json_t *buckets, double t, const char *const *names, int n_names)
{
    char key[32];
    snprintf(key, sizeof key, "%.0f", t);
    json_t *b = json_object_get(buckets, key);
    if (b) return b;
    if (json_object_size(buckets) >= OVERVIEW_BUCKETS_MAX) return NULL;
    b = json_pack("{s:f}", "t", t);
    for (int i = 0; i < n_names; i++)
        json_object_set_new(b, names[i], json_integer(0));
    json_object_set_new(buckets, key, b);
    return b;
}

static void bump(json_t *bucket, const char *name, json_int_t by)
{
    json_t *v = json_object_get(bucket, name);
    json_integer_set(v, json_integer_value(v) + by);
}

/* The buckets in time order, as an array. */
static json_t *in_order(json_t *buckets)
{
    json_t *out = json_array();
    const char *key;
    json_t *b;
    json_object_foreach(buckets, key, b) json_array_append(out, b);
    /* Insertion was newest first: reverse into oldest first. */
    size_t n = json_array_size(out);
    for (size_t i = 0; i < n / 2; i++) {
        json_t *a = json_incref(json_array_get(out, i));
        json_array_set(out, i, json_array_get(out, n - 1 - i));
        json_array_set_new(out, n - 1 - i, a);
    }
    return out;
}

static json_t *coverage(double since_ms, bool truncated, const json_t *rows)
{
    size_t n = json_array_size(rows);
    double from = truncated && n ? creation_ms(json_array_get(rows, n - 1)) : since_ms;
    return json_pack("{s:I, s:I, s:b, s:f}", "rowsRead", (json_int_t)n, "rowBound",
                     (json_int_t)LIMIT_DASHBOARD_CHART_ROWS_MAX, "truncated", truncated,
                     "coveredFromMs", from);
}

static int check_window(ctx *c, double since_ms)
{
    if (since_ms < c->now_ms - LIMIT_DASHBOARD_CHART_WINDOW_MS_MAX)
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Invalid argument `sinceMs`: at most LIMIT_DASHBOARD_CHART_WINDOW_MS_MAX "
                        "(%.0f days) back",
                        LIMIT_DASHBOARD_CHART_WINDOW_MS_MAX / OVERVIEW_DAY_MS);
    return 0;
}

static int overview_runs(ctx *c, const json_t *args, json_t **result)
{
    double since = json_number_value(json_object_get(args, "sinceMs"));
    double bucket_ms = json_number_value(json_object_get(args, "bucketMs"));
    int rc = check_window(c, since);
    if (rc) return rc;
    json_t *rows = NULL;
    bool truncated = false;
    rc = newest_rows(c, "runs", since, &rows, &truncated);
    if (rc) return rc;
    json_t *buckets = ctx_own(c, json_object());
    size_t i;
    json_t *run;
    json_array_foreach(rows, i, run)
    {
        double t = floor(creation_ms(run) / bucket_ms) * bucket_ms;
        json_t *b = bucket_for(buckets, t, run_statuses, RUN_STATUSES);
        const char *status = app_str(run, "status");
        if (b && status) bump(b, status, 1);
    }
    *result = ctx_own(c, coverage(since, truncated, rows));
    json_object_set_new(*result, "bucketMs", json_real(bucket_ms));
    json_object_set_new(*result, "buckets", in_order(buckets));
    return 0;
}

static const char *const credit_series[] = {"granted", "spent", "refunded"};

static int overview_credits(ctx *c, const json_t *args, json_t **result)
{
    double since = json_number_value(json_object_get(args, "sinceMs"));
    int rc = check_window(c, since);
    if (rc) return rc;
    json_t *rows = NULL;
    bool truncated = false;
    rc = newest_rows(c, "transactions", since, &rows, &truncated);
    if (rc) return rc;
    json_t *days = ctx_own(c, json_object());
    size_t i;
    json_t *tx;
    json_array_foreach(rows, i, tx)
    {
        double t = floor(creation_ms(tx) / OVERVIEW_DAY_MS) * OVERVIEW_DAY_MS;
        json_t *b = bucket_for(days, t, credit_series, 3);
        const char *kind = app_str(tx, "kind");
        json_int_t amount = json_integer_value(json_object_get(tx, "amount"));
        if (!b || !kind) continue;
        if (strcmp(kind, "grant") == 0 || strcmp(kind, "signup") == 0)
            bump(b, "granted", amount);
        else if (strcmp(kind, "run") == 0)
            bump(b, "spent", -amount);
        else if (strcmp(kind, "refund") == 0)
            bump(b, "refunded", amount);
    }
    *result = ctx_own(c, coverage(since, truncated, rows));
    json_object_set_new(*result, "days", in_order(days));
    return 0;
}

/* Runs with status, oldest first, at most the queue bound (+1 to tell more). */
static int count_status(ctx *c, const char *status, json_t *out, const char *count_name,
                        const char *more_name, json_t **oldest_out)
{
    db_query q = {.table = "runs",
                  .index = "by_status",
                  .eq = ctx_own(c, json_pack("[s]", status)),
                  .limit = LIMIT_DASHBOARD_QUEUE_ROWS_MAX + 1};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    size_t n = json_array_size(rows);
    bool more = n > LIMIT_DASHBOARD_QUEUE_ROWS_MAX;
    json_object_set_new(out, count_name,
                        json_integer((json_int_t)(more ? LIMIT_DASHBOARD_QUEUE_ROWS_MAX : n)));
    json_object_set_new(out, more_name, json_boolean(more));
    if (oldest_out)
        *oldest_out = n ? json_object_get(json_array_get(rows, 0), "_creationTime") : json_null();
    return 0;
}

static int overview_queue(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *out =
        ctx_own(c, json_pack("{s:I}", "rowBound", (json_int_t)LIMIT_DASHBOARD_QUEUE_ROWS_MAX));
    json_t *oldest = NULL;
    int rc = count_status(c, "queued", out, "queued", "queuedMore", &oldest);
    if (rc == 0) rc = count_status(c, "processing", out, "processing", "processingMore", NULL);
    if (rc) return rc;
    json_object_set(out, "oldestQueuedAt", oldest);
    *result = out;
    return 0;
}

static const validator since_ms = {.kind = V_NUMBER, .has_min = true, .min = 0};
static const validator bucket_ms =
    V_INTEGER_RANGE_INIT(OVERVIEW_BUCKET_MS_MIN, OVERVIEW_BUCKET_MS_MAX);
static const v_field runs_fields[] = {{"sinceMs", &since_ms, false},
                                      {"bucketMs", &bucket_ms, false}};
static const validator runs_args = V_OBJECT_INIT(runs_fields);
static const v_field credits_fields[] = {{"sinceMs", &since_ms, false}};
static const validator credits_args = V_OBJECT_INIT(credits_fields);

static const fn_def overview_fns[] = {
    {.path = "_system:overviewRuns",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &runs_args,
     .impl = overview_runs,
     .doc = "Runs created after sinceMs per bucketMs of creation time, by status (bounded)."},
    {.path = "_system:overviewCredits",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &credits_args,
     .impl = overview_credits,
     .doc = "Credits granted, spent and refunded per UTC day since sinceMs (bounded)."},
    {.path = "_system:overviewQueue",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = overview_queue,
     .doc = "Queued and processing runs, and when the oldest queued one was created."},
};

void overview_register(registry *r)
{
    registry_add(r, overview_fns, V_COUNT(overview_fns));
}
