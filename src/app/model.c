/*
 * model.c — the operations the app's modules share (see model.h).
 * Thread: the engine's threads, inside a function's transaction.
 */
#include "app/model.h"

#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"

static const validator cursor_text = V_STRING_INIT;
static const validator *const cursor_options[] = {&cursor_text, &v_null};
static const validator cursor = {
    .kind = V_UNION, .options = cursor_options, .n_options = 2, .ts_type = "string | null"};
static const validator num_items = V_INTEGER_RANGE_INIT(1, 1000);
static const v_field pagination_fields[] = {
    {"numItems", &num_items, false},      {"cursor", &cursor, false},
    {"endCursor", &cursor, true},         {"id", &v_number, true},
    {"maximumRowsRead", &v_number, true}, {"maximumBytesRead", &v_number, true},
};
const validator app_pagination_opts = V_OBJECT_INIT(pagination_fields);

static const validator page_items = {.kind = V_ARRAY, .item = &v_any};
static const v_field page_fields[] = {
    {"page", &page_items, false},         {"isDone", &v_boolean, false},
    {"continueCursor", &v_string, false}, {"splitCursor", &cursor, true},
    {"pageStatus", &v_any, true},
};
const validator app_page_of_any = V_OBJECT_INIT(page_fields);

int app_require_identity(ctx *c, const char **token_identifier_out)
{
    const char *tid = ctx_token_identifier(c);
    if (!tid) return ctx_fail(c, ERR_UNAUTHENTICATED, NULL, "No identity found");
    *token_identifier_out = tid;
    return 0;
}

int app_find_user(ctx *c, json_t **user_out)
{
    *user_out = NULL;
    const char *tid = NULL;
    int rc = app_require_identity(c, &tid);
    if (rc) return rc;
    db_query q = {.table = "users", .index = "by_token", .eq = ctx_own(c, json_pack("[s]", tid))};
    return db_query_first(c, &q, user_out);
}

int64_t app_int(const json_t *doc, const char *field)
{
    return (int64_t)json_number_value(json_object_get(doc, field));
}

const char *app_str(const json_t *doc, const char *field)
{
    return json_string_value(json_object_get(doc, field));
}

int app_ledger_move(ctx *c, const json_t *user, int64_t amount, const char *kind,
                    const char *run_id, const char *note, const char *actor,
                    char *transaction_id_out)
{
    const char *user_id = app_str(user, "_id");
    int64_t balance = app_int(user, "credits");
    /* A stored user always has an id and a balance that is not negative (the
     * store's CHECK); a movement (0 for a free model's run) is bounded by its
     * callers' validators — a grant, a price, SIGNUP_CREDITS — far below
     * overflow. */
    ASSERT(user_id && balance >= 0);
    ASSERT(amount > -APP_CREDITS_MAX - 1 && amount <= APP_CREDITS_MAX);
    int64_t after = balance + amount;
    if (after < 0)
        return ctx_fail(
            c, ERR_INSUFFICIENT_CREDITS,
            json_pack("{s:I, s:I}", "balance", (json_int_t)balance, "cost", (json_int_t)-amount),
            "Insufficient credits");
    if (after > APP_CREDITS_MAX)
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Invalid argument `amount`: the balance would exceed %lld credits",
                        (long long)APP_CREDITS_MAX);
    json_t *patch = ctx_own(c, json_pack("{s:I}", "credits", (json_int_t)after));
    int rc = db_patch(c, "users", user_id, patch);
    if (rc) return rc;
    json_t *row = ctx_own(c, json_pack("{s:s, s:I, s:I, s:s, s:s}", "userId", user_id, "amount",
                                       (json_int_t)amount, "balanceAfter", (json_int_t)after,
                                       "kind", kind, "actor", actor));
    if (run_id) json_object_set_new(row, "runId", json_string(run_id));
    if (note) json_object_set_new(row, "note", json_string(note));
    char id[ID_BYTES_MAX];
    rc = db_insert(c, "transactions", row, id);
    if (rc == 0 && transaction_id_out) memcpy(transaction_id_out, id, ID_BYTES_MAX);
    return rc;
}

int app_env_int(ctx *c, const char *name, int64_t dflt, int64_t min, int64_t max, int64_t *out)
{
    char *text = NULL;
    int rc = ctx_env(c, name, &text);
    if (rc) return rc;
    if (!text || !*text) {
        free(text);
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    bool ok = errno == 0 && *end == '\0' && v >= min && v <= max;
    if (!ok) {
        rc = ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                      "Deployment variable %s must be an integer from %lld to %lld, got \"%.64s\" "
                      "(fix it with: dojo env set %s <value>)",
                      name, (long long)min, (long long)max, text, name);
        free(text);
        return rc;
    }
    free(text);
    *out = v;
    return 0;
}

json_t *app_file_url(ctx *c, const char *storage_id)
{
    char url[ENGINE_PUBLIC_URL_BYTES_MAX + ID_BYTES_MAX + 16];
    snprintf(url, sizeof url, "%s/api/storage/%s", ctx_public_url(c), storage_id);
    return json_string(url);
}

json_t *app_run_view(ctx *c, json_t *doc)
{
    const char *sid = app_str(doc, "outputStorageId");
    if (sid) json_object_set_new(doc, "output", app_file_url(c, sid));
    return doc;
}
