/*
 * transactions.c — transactions:list, a page of the caller's ledger, newest
 * first (api.md §3 "transactions"). Ledger rows are only ever appended, by
 * app_ledger_move (model.c); the store refuses updates and deletes.
 * Thread: a reader thread.
 */
#include "app/app.h"
#include "app/model.h"

static int list(ctx *c, const json_t *args, json_t **result)
{
    json_t *user;
    int rc = app_find_user(c, &user);
    if (rc) return rc;
    if (!user) {
        *result = ctx_own(c, json_pack("{s:[], s:b, s:s, s:n, s:n}", "page", "isDone", 1,
                                       "continueCursor", "END", "splitCursor", "pageStatus"));
        return 0;
    }
    db_query q = {.table = "transactions",
                  .index = "by_user",
                  .eq = ctx_own(c, json_pack("[O]", json_object_get(user, "_id"))),
                  .descending = true};
    return db_paginate(c, &q, json_object_get(args, "paginationOpts"), result);
}

static const v_field list_fields[] = {{"paginationOpts", &app_pagination_opts, false}};
static const validator list_args = V_OBJECT_INIT(list_fields);
static const validator returns_page = {.kind = V_ANY,
                                       .ts_type = "PaginationResult<Doc<\"transactions\">>"};

static const fn_def transaction_fns[] = {
    {.path = "transactions:list",
     .kind = FN_QUERY,
     .args = &list_args,
     .returns = &returns_page,
     .impl = list,
     .doc = "A page of the caller's ledger, newest first."},
};

void transactions_register(registry *r)
{
    registry_add(r, transaction_fns, V_COUNT(transaction_fns));
}
