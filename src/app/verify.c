/*
 * verify.c — the invariant checks of api.md §1 (see verify.h).
 * Thread: whichever thread owns the ctx.
 */
#include "app/verify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "app/model.h"
#include "engine/system_tables.h"

static void violation(verify_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(verify_report *r, const char *fmt, ...)
{
    r->violation_count++;
    if (!r->violations || json_array_size(r->violations) >= VERIFY_VIOLATIONS_MAX) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(r->violations, json_string(msg));
}

/* Calls fn for every document of table in creation order, a page at a time. */
typedef int (*row_fn)(ctx *c, const json_t *row, verify_report *r, bool full);

static int for_each_row(ctx *c, const char *table, row_fn fn, verify_report *r, bool full)
{
    json_t *opts = ctx_own(c, json_pack("{s:i, s:n}", "numItems", VERIFY_PAGE_ROWS, "cursor"));
    db_query q = {.table = table};
    int rc = 0;
    for (;;) {
        /* A page and what checking it read are let go before the next. */
        size_t mark = ctx_mark(c);
        json_t *page = NULL;
        rc = db_paginate(c, &q, opts, &page);
        if (rc) break;
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(page, "page"), i, row)
        {
            rc = fn(c, row, r, full);
            if (rc) break;
        }
        bool done = json_is_true(json_object_get(page, "isDone"));
        json_object_set(opts, "cursor", json_object_get(page, "continueCursor"));
        ctx_rewind(c, mark);
        if (rc || done) break;
    }
    return rc;
}

static int check_user(ctx *c, const json_t *user, verify_report *r, bool full)
{
    const char *uid = app_str(user, "_id");
    int64_t credits = app_int(user, "credits");
    db_query q = {
        .table = "transactions", .index = "by_user", .eq = ctx_own(c, json_pack("[s]", uid))};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    int64_t sum = 0, last_after = 0;
    size_t i;
    json_t *tx;
    json_array_foreach(rows, i, tx)
    {
        sum += app_int(tx, "amount");
        last_after = app_int(tx, "balanceAfter");
        if (full && last_after != sum)
            violation(r, "transaction %s of user %s: balanceAfter %lld but the ledger sum is %lld",
                      app_str(tx, "_id"), uid, (long long)last_after, (long long)sum);
        const char *kind = app_str(tx, "kind");
        if (full && (strcmp(kind, "run") == 0 || strcmp(kind, "refund") == 0) &&
            !json_object_get(tx, "runId"))
            violation(r, "transaction %s of user %s: a \"%s\" transaction without its runId",
                      app_str(tx, "_id"), uid, kind);
        r->transactions_checked++;
    }
    bool newest_ok = json_array_size(rows) == 0 ? credits == 0 : last_after == credits;
    if (credits != sum || credits < 0 || !newest_ok) {
        json_array_append_new(r->mismatches,
                              json_pack("{s:s, s:I, s:I}", "userId", uid, "credits",
                                        (json_int_t)credits, "ledgerSum", (json_int_t)sum));
        violation(r, "user %s: credits %lld, ledger sum %lld, newest balanceAfter %lld", uid,
                  (long long)credits, (long long)sum, (long long)last_after);
    }
    r->users_checked++;
    return 0;
}

static int check_run(ctx *c, const json_t *run, verify_report *r, bool full)
{
    (void)full;
    const char *rid = app_str(run, "_id");
    int64_t cost = app_int(run, "cost");
    db_query q = {
        .table = "transactions", .index = "by_run", .eq = ctx_own(c, json_pack("[s]", rid))};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    int charges = 0, refunds = 0;
    size_t i;
    json_t *tx;
    json_array_foreach(rows, i, tx)
    {
        const char *kind = app_str(tx, "kind");
        int64_t amount = app_int(tx, "amount");
        if (strcmp(app_str(tx, "userId"), app_str(run, "userId")) != 0)
            violation(r, "run %s: transaction %s belongs to another user", rid, app_str(tx, "_id"));
        if (strcmp(kind, "run") == 0) {
            charges++;
            if (amount != -cost)
                violation(r, "run %s: charged %lld, its cost is %lld", rid, (long long)-amount,
                          (long long)cost);
        } else if (strcmp(kind, "refund") == 0) {
            refunds++;
            if (amount != cost)
                violation(r, "run %s: refunded %lld, its cost is %lld", rid, (long long)amount,
                          (long long)cost);
        }
    }
    if (charges != 1) violation(r, "run %s: %d \"run\" transactions, expected 1", rid, charges);
    const char *status = app_str(run, "status");
    if (strcmp(status, "processing") == 0 &&
        (!json_object_get(run, "workerId") || !json_object_get(run, "leaseExpiresAt")))
        violation(r, "run %s: processing without a workerId and a leaseExpiresAt", rid);
    const char *output = app_str(run, "outputStorageId");
    if (output) {
        json_t *file = NULL;
        int frc = db_get(c, SYSTEM_TABLE_STORAGE, output, &file);
        if (frc) return frc;
        if (!file) violation(r, "run %s: its output %s names no stored file", rid, output);
    }
    bool failed = strcmp(status, "failed") == 0;
    int expected_refunds = failed && cost > 0 ? 1 : 0;
    if (refunds != expected_refunds)
        violation(r, "run %s (%s, cost %lld): %d refunds, expected %d", rid, status,
                  (long long)cost, refunds, expected_refunds);
    r->runs_checked++;
    return 0;
}

int app_verify(ctx *c, bool full, verify_report *out)
{
    memset(out, 0, sizeof *out);
    out->mismatches = json_array();
    out->violations = full ? json_array() : NULL;
    c->rows_max = VERIFY_ROWS_MAX;
    int rc = for_each_row(c, "users", check_user, out, full);
    if (rc == 0 && full) rc = for_each_row(c, "runs", check_run, out, full);
    if (rc) verify_report_free(out);
    return rc;
}

void verify_report_free(verify_report *r)
{
    json_decref(r->mismatches);
    json_decref(r->violations);
    r->mismatches = r->violations = NULL;
}

static int check_file_row(ctx *c, const json_t *doc, verify_report *r, bool full)
{
    (void)c;
    (void)full;
    err_t e;
    err_init(&e);
    const char *id = app_str(doc, "_id");
    int rc = r->check_file(r->check_file_data, id, app_str(doc, "sha256"),
                           (uint64_t)app_int(doc, "size"), &e);
    if (rc == ERR_NOT_FOUND || rc == ERR_CONSTRAINT)
        violation(r, "file %s: %s", id, e.msg);
    else if (rc)
        violation(r, "file %s: its bytes could not be read: %s", id, e.msg);
    err_clear(&e);
    r->files_checked++;
    return 0;
}

int app_verify_files(ctx *c, verify_file_fn check_file, void *data, verify_report *out)
{
    out->check_file = check_file;
    out->check_file_data = data;
    int rc = for_each_row(c, SYSTEM_TABLE_STORAGE, check_file_row, out, true);
    out->check_file = NULL;
    out->check_file_data = NULL;
    return rc;
}
