/*
 * verify.h — checking the invariants of api.md §1 over the whole database:
 * balances equal their ledger sums and their newest balanceAfter, each ledger
 * row's balanceAfter follows from the previous one, no balance is negative,
 * each run has exactly one "run" row of -cost, and a failed run with a cost
 * exactly one "refund" of +cost (other runs none), every outputStorageId names a
 * `_storage` document, and (app_verify_files) every file's bytes are stored and
 * hash to its sha256. Used by
 * admin:verifyLedger and by `dojo verify` (on a database file, while the
 * server may be running: it reads one consistent snapshot).
 * Thread: whichever thread owns the ctx (a reader, or the CLI's main thread).
 */
#ifndef DOJO_APP_VERIFY_H
#define DOJO_APP_VERIFY_H

#include <jansson.h>
#include <stdint.h>

#include "engine/ctx.h"

#define VERIFY_ROWS_MAX 100000000 /* rows one verification may read */
#define VERIFY_PAGE_ROWS 500
#define VERIFY_VIOLATIONS_MAX 1000 /* reported in full; the count keeps going */

typedef struct verify_report {
    int64_t users_checked, runs_checked, transactions_checked, files_checked;
    json_t *mismatches; /* [{userId, credits, ledgerSum}] */
    json_t *violations; /* [string], every invariant; only when full */
    int64_t violation_count;
    /* app_verify_files' reader of the bytes, while it runs */
    int (*check_file)(void *data, const char *storage_id, const char *sha256, uint64_t size,
                      err_t *e);
    void *check_file_data;
} verify_report;

/* full = also check the runs and the balanceAfter chain, with a message per
 * violation. */
int app_verify(ctx *c, bool full, verify_report *out);
void verify_report_free(verify_report *r);

/* Checks one file's bytes: 0 when they are stored, size bytes long and hash
 * to sha256; otherwise an error whose message says what differs. */
typedef int (*verify_file_fn)(void *data, const char *storage_id, const char *sha256, uint64_t size,
                              err_t *e);
/* The last invariant of api.md §1 for every `_storage` document: its bytes
 * are stored and hash to its sha256 (checked by check_file, which reads the
 * file store). Adds to a report app_verify filled (full). */
int app_verify_files(ctx *c, verify_file_fn check_file, void *data, verify_report *out);

#endif
