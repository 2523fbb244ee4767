/*
 * verify.c — `dojo verify [--db URL]`: opens the database (the server may be
 * running: the check reads one consistent snapshot) and checks every
 * invariant of api.md §1, printing each violation. Exit 0 only when there is
 * none.
 * Thread: the main thread.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "app/app.h"
#include "app/verify.h"
#include "base/clock.h"
#include "base/jread.h"
#include "cli/cli.h"
#include "engine/ctx.h"
#include "store/files.h"

static void verify_usage(FILE *out)
{
    fprintf(out, "Usage: dojo verify [--db URL]\n\n"
                 "Checks every invariant of the data (balances equal their ledgers, no\n"
                 "negative balance, one charge per run, one refund per failed run, every\n"
                 "run's output file stored, every file's bytes stored and matching its\n"
                 "SHA-256) and prints each violation. The database is --db, $DOJO_DB, or\n"
                 "./.dojo/dojo.db.\n");
}

/* verify_file_fn over the file store. */
static int check_file(void *data, const char *storage_id, const char *sha256, uint64_t size,
                      err_t *e)
{
    return files_check(data, storage_id, sha256, size, e);
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'h':
            verify_usage(stdout);
            return 0;
        default:
            verify_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        cli_error("verify", "unexpected argument \"%s\" (the database is --db URL)", argv[optind]);
        return 2;
    }
    const char *db = cli_db_existing("verify", db_opt);
    if (!db) return 1;
    err_t e;
    err_init(&e);
    store *st = NULL;
    store_conn *conn = NULL;
    char report_text[STORE_REPORT_BYTES_MAX];
    int rc = store_open(db, app_schema(), &st, report_text, &e);
    if (rc == 0) rc = store_connect(st, false, &conn, &e);
    if (rc == 0) rc = store_begin(conn, false, &e);
    files *fs = NULL;
    if (rc == 0) rc = files_open(db, st, false, &fs, &e);
    verify_report report = {0};
    if (rc == 0) {
        ctx x;
        ctx_init(&x, conn, app_schema(), false);
        x.now_ms = clock_now_ms();
        x.admin = true;
        rc = app_verify(&x, true, &report);
        if (rc == 0) rc = app_verify_files(&x, check_file, fs, &report);
        if (rc) err_move(&e, &x.err);
        ctx_release(&x);
        store_rollback(conn);
    }
    files_close(fs);
    if (conn) store_disconnect(conn);
    if (st) store_close(st);
    if (rc) {
        cli_error("verify", "%s: %s", cli_db_shown(db), e.msg);
        err_clear(&e);
        return 1;
    }
    for (size_t i = 0; i < json_array_size(report.violations); i++)
        printf("violation: %s\n", jr_item_string_or(report.violations, i, "?"));
    if (report.violation_count > (int64_t)json_array_size(report.violations))
        printf("… and %lld more violations\n",
               (long long)(report.violation_count - (int64_t)json_array_size(report.violations)));
    printf("%s: %lld users, %lld runs, %lld transactions, %lld files checked; %lld violation%s\n",
           report.violation_count ? "FAILED" : "ok", (long long)report.users_checked,
           (long long)report.runs_checked, (long long)report.transactions_checked,
           (long long)report.files_checked, (long long)report.violation_count,
           report.violation_count == 1 ? "" : "s");
    int status = report.violation_count ? 1 : 0;
    verify_report_free(&report);
    return status;
}
