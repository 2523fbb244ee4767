/*
 * admin.c — admin:grantCredits and admin:verifyLedger (api.md §3 "admin"),
 * internal functions: the admin key only. Grants append a "grant" ledger row
 * with actor "admin". verifyLedger checks the ledger invariants of api.md §1
 * with the same code as `dojo verify` (verify.c).
 * Thread: the storage thread (grant) or a reader thread (verify).
 */
#include <string.h>

#include "app/app.h"
#include "app/model.h"
#include "app/verify.h"

/* The one user the selector names, or NOT_FOUND. */
static int find_target(ctx *c, const json_t *args, json_t **user_out)
{
    *user_out = NULL;
    static const char *const selectors[] = {"userId", "email", "tokenIdentifier"};
    const char *which = NULL;
    int given = 0;
    for (int i = 0; i < 3; i++)
        if (json_object_get(args, selectors[i])) {
            which = selectors[i];
            given++;
        }
    if (given != 1)
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Invalid arguments: give exactly one of `userId`, `email` or "
                        "`tokenIdentifier` (got %d)",
                        given);
    const char *value = app_str(args, which);
    int rc;
    if (strcmp(which, "userId") == 0) {
        rc = db_get(c, "users", value, user_out);
    } else {
        db_query q = {.table = "users",
                      .index = strcmp(which, "email") == 0 ? "by_email" : "by_token",
                      .eq = ctx_own(c, json_pack("[s]", value)),
                      .limit = 2};
        json_t *rows = NULL;
        rc = db_query_rows(c, &q, &rows);
        if (rc == 0 && json_array_size(rows) > 1)
            rc = ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                          "Invalid argument `email`: several users have this email; grant by "
                          "`userId` instead");
        if (rc == 0) *user_out = json_array_get(rows, 0);
    }
    if (rc == 0 && !*user_out) rc = ctx_fail(c, ERR_NOT_FOUND, NULL, "User not found");
    return rc;
}

static int grant_credits(ctx *c, const json_t *args, json_t **result)
{
    json_t *user;
    int rc = find_target(c, args, &user);
    if (rc) return rc;
    int64_t amount = app_int(args, "amount");
    char tx_id[ID_BYTES_MAX];
    rc = app_ledger_move(c, user, amount, "grant", NULL, app_str(args, "note"), "admin", tx_id);
    if (rc == 0)
        *result = ctx_own(c, json_pack("{s:O, s:I, s:s}", "userId", json_object_get(user, "_id"),
                                       "balance", (json_int_t)(app_int(user, "credits") + amount),
                                       "transactionId", tx_id));
    return rc;
}

static int verify_ledger(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    verify_report report;
    int rc = app_verify(c, false, &report);
    if (rc) return rc;
    *result = ctx_own(c, json_pack("{s:b, s:I, s:O}", "ok", json_array_size(report.mismatches) == 0,
                                   "usersChecked", (json_int_t)report.users_checked, "mismatches",
                                   report.mismatches));
    verify_report_free(&report);
    return 0;
}

static const validator amount = V_INTEGER_RANGE_INIT(1, (double)APP_CREDITS_MAX);
static const validator note = V_STRING_LEN_INIT(0, APP_NOTE_CHARS_MAX);
static const v_field grant_fields[] = {
    {"userId", &app_user_id, true},
    {"email", &v_string, true},
    {"tokenIdentifier", &v_string, true},
    {"amount", &amount, false},
    {"note", &note, true},
};
static const validator grant_args = V_OBJECT_INIT(grant_fields);
static const validator grant_returns = {
    .kind = V_ANY,
    .ts_type = "{ userId: Id<\"users\">; balance: number; transactionId: Id<\"transactions\"> }"};
static const validator verify_returns = {
    .kind = V_ANY,
    .ts_type = "{ ok: boolean; usersChecked: number; mismatches: { userId: Id<\"users\">; "
               "credits: number; ledgerSum: number }[] }"};

static const fn_def admin_fns[] = {
    {.path = "admin:grantCredits",
     .kind = FN_MUTATION,
     .visibility = FN_INTERNAL,
     .args = &grant_args,
     .returns = &grant_returns,
     .impl = grant_credits,
     .doc = "Grants credits to one user (by userId, email or tokenIdentifier)."},
    {.path = "admin:verifyLedger",
     .kind = FN_QUERY,
     .visibility = FN_INTERNAL,
     .args = &v_no_args,
     .returns = &verify_returns,
     .impl = verify_ledger,
     .doc = "Checks that every balance equals the sum of its ledger."},
};

void admin_register(registry *r)
{
    registry_add(r, admin_fns, V_COUNT(admin_fns));
}
