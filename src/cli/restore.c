/*
 * restore.c — `dojo restore FILE [--db URL] [--replace] [--check]`: puts a
 * backup written by `dojo backup` (or the serve schedule) back in place, or
 * only checks it.
 *
 * Nothing is put in place before everything has been checked, in this
 * order: the archive (every header, every member against the manifest's
 * size and SHA-256, the manifest against its own checksum: backup.h), then
 * the database copy (SQLite's integrity check), then the data (every
 * invariant of api.md §1, as `dojo verify` checks them). The database is
 * unpacked under a temporary name beside the target and renamed over it;
 * the files directory likewise. A running server would not see a restore,
 * so a database another process has open is refused.
 * Thread: the main thread.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/verify.h"
#include "backup/backup.h"
#include "base/clock.h"
#include "base/jread.h"
#include "cli/cli.h"
#include "engine/ctx.h"
#include "store/sqlite_snapshot.h"

#define RESTORE_PROBLEMS_SHOWN_MAX 10

static void restore_usage(FILE *out)
{
    fprintf(out,
            "Usage: dojo restore FILE [--db URL] [--replace] [--check] [--files-dir DIR]\n\n"
            "Restores a backup written by `dojo backup` (or `dojo serve --backup-dir`) into a\n"
            "SQLite database, with its files directory. Before anything is put in place the\n"
            "backup is checked: every member against the SHA-256 and size in its manifest,\n"
            "the manifest against its own checksum, the database with SQLite's integrity\n"
            "check, and the data with every check of `dojo verify` (balances equal their\n"
            "ledgers, one charge per run, one refund per failed run). A damaged, truncated\n"
            "or inconsistent backup is refused and nothing is changed.\n\n"
            "Stop the server first: a database another process has open is refused.\n\n"
            "  --db URL         the database to restore into (default $DOJO_DB, else\n"
            "                   sqlite:./.dojo/dojo.db); it must not exist unless --replace\n"
            "  --replace        replace an existing database (and its files directory)\n"
            "  --check          only check the backup; write nothing\n"
            "  --files-dir DIR  the files directory (default: as the server keeps it,\n"
            "                   \"files\" beside dojo.db, \"NAME.files\" beside NAME.db)\n");
}

/* The unpacked database: integrity, then the invariants. Prints what it
 * found; 0 when clean. */
static int check_database(const char *db_path, verify_report *report, err_t *e)
{
    int rc = sqlite_snapshot_integrity(db_path, e);
    if (rc) return rc;
    char url[PATH_MAX + 128];
    snprintf(url, sizeof url, "sqlite:%s", db_path);
    store *st = NULL;
    store_conn *conn = NULL;
    char store_report[STORE_REPORT_BYTES_MAX];
    rc = store_open(url, app_schema(), &st, store_report, e);
    if (rc == 0) rc = store_connect(st, false, &conn, e);
    if (rc == 0) rc = store_begin(conn, false, e);
    if (rc == 0) {
        ctx x;
        ctx_init(&x, conn, app_schema(), false);
        x.now_ms = clock_now_ms();
        x.admin = true;
        rc = app_verify(&x, true, report);
        if (rc) err_move(e, &x.err);
        ctx_release(&x);
        store_rollback(conn);
    }
    if (conn) store_disconnect(conn);
    if (st) store_close(st);
    return rc;
}

static void print_violations(const verify_report *r)
{
    size_t n = json_array_size(r->violations);
    for (size_t i = 0; i < n && i < RESTORE_PROBLEMS_SHOWN_MAX; i++)
        fprintf(stderr, "  violation: %s\n", jr_item_string_or(r->violations, i, "?"));
    if (r->violation_count > RESTORE_PROBLEMS_SHOWN_MAX)
        fprintf(stderr, "  … and %lld more\n",
                (long long)(r->violation_count - RESTORE_PROBLEMS_SHOWN_MAX));
}

static void remove_side_files(const char *path)
{
    for (int i = 1; i < CLI_SQLITE_FILES; i++) {
        char side[PATH_MAX + 80];
        snprintf(side, sizeof side, "%s%s", path, cli_sqlite_suffixes[i]);
        unlink(side);
    }
}

/* Checks FILE, unpacking into db_tmp (and files_tmp): 0 when it may be put
 * in place. Prints the refusal. */
static int unpack_and_check(const char *file, const char *db_tmp, const char *files_tmp,
                            backup_contents *info, verify_report *report)
{
    err_t e;
    err_init(&e);
    if (backup_extract(file, db_tmp, files_tmp, info, &e) != 0) {
        cli_error("restore", "refusing %s: %s", file, e.msg);
        err_clear(&e);
        return 1;
    }
    int rc = check_database(db_tmp, report, &e);
    if (rc) {
        cli_error("restore", "refusing %s: its database is damaged: %s", file, e.msg);
        err_clear(&e);
        return 1;
    }
    if (report->violation_count) {
        cli_error("restore",
                  "refusing %s: its data is inconsistent (%lld violation%s of the invariants "
                  "`dojo verify` checks):",
                  file, (long long)report->violation_count,
                  report->violation_count == 1 ? "" : "s");
        print_violations(report);
        return 1;
    }
    return 0;
}

/* Renames the unpacked database and files over the target's. */
static int put_in_place(const char *db_tmp, const char *path, const char *files_tmp,
                        const char *files_dir, bool have_files)
{
    remove_side_files(path);
    if (rename(db_tmp, path) != 0) {
        cli_error("restore", "cannot rename %s to %s: %s", db_tmp, path, strerror(errno));
        return 1;
    }
    remove_side_files(db_tmp);
    char old[PATH_MAX + 64];
    snprintf(old, sizeof old, "%s.replaced%s", files_dir, BACKUP_PARTIAL_SUFFIX);
    backup_remove_tree(old);
    bool had_files = cli_file_exists(files_dir);
    if (had_files && rename(files_dir, old) != 0) {
        cli_error("restore", "cannot move %s aside: %s", files_dir, strerror(errno));
        return 1;
    }
    if (have_files && rename(files_tmp, files_dir) != 0) {
        cli_error("restore", "cannot rename %s to %s: %s", files_tmp, files_dir, strerror(errno));
        return 1;
    }
    if (had_files) backup_remove_tree(old);
    err_t e;
    err_init(&e);
    if (backup_sync_parent(path, &e) != 0) {
        cli_error("restore", "%s", e.msg);
        err_clear(&e);
        return 1;
    }
    return 0;
}

int cmd_restore(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'}, {"replace", no_argument, NULL, 'r'},
        {"check", no_argument, NULL, 'c'},    {"files-dir", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},     {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL, *files_opt = NULL;
    bool replace = false, check_only = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'r':
            replace = true;
            break;
        case 'c':
            check_only = true;
            break;
        case 'f':
            files_opt = optarg;
            break;
        case 'h':
            restore_usage(stdout);
            return 0;
        default:
            restore_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        cli_error("restore", argc - optind == 0 ? "which backup? dojo restore FILE --db URL"
                                                : "one FILE only: dojo restore FILE --db URL");
        return 2;
    }
    const char *file = argv[optind];
    if (!cli_file_exists(file)) {
        cli_error("restore", "there is no backup at %s", file);
        return 1;
    }
    const char *db = cli_db_resolve(db_opt);
    const char *path = cli_sqlite_path(db);
    if (!path) {
        cli_error("restore",
                  "%s is PostgreSQL: a dojo backup holds a SQLite database. Restore PostgreSQL "
                  "with its own tools (pg_restore), or move data between engines with `dojo "
                  "export` and `dojo import`",
                  cli_db_shown(db));
        return 2;
    }
    if (strlen(path) > PATH_MAX - 64 || (files_opt && strlen(files_opt) > PATH_MAX - 64)) {
        cli_error("restore", "the path %s is too long", path);
        return 2;
    }
    char files_dir[PATH_MAX], db_tmp[PATH_MAX + 64], files_tmp[PATH_MAX + 64];
    if (files_opt)
        snprintf(files_dir, sizeof files_dir, "%s", files_opt);
    else
        backup_files_dir(path, files_dir, sizeof files_dir);
    char *check_dir = NULL;
    if (check_only) {
        char tmpl[PATH_MAX];
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/dojo-restore-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        check_dir = mkdtemp(tmpl);
        if (!check_dir) {
            cli_error("restore", "cannot create a temporary directory: %s", strerror(errno));
            return 1;
        }
        snprintf(db_tmp, sizeof db_tmp, "%s/dojo.db", check_dir);
        snprintf(files_tmp, sizeof files_tmp, "%s/files", check_dir);
    } else {
        long pid = 0;
        if (cli_sqlite_in_use(path, &pid) > 0) {
            cli_error("restore",
                      "%s is open in another process (pid %ld): stop its server before restoring "
                      "over it",
                      path, pid);
            return 1;
        }
        if (cli_file_exists(path) && !replace) {
            cli_error("restore",
                      "%s exists: add --replace to replace it and its files directory (or "
                      "restore into a new --db)",
                      path);
            return 1;
        }
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", path);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = '\0';
        if (slash && slash != parent && !cli_file_exists(parent)) {
            cli_error("restore", "the directory %s does not exist: create it first", parent);
            return 1;
        }
        snprintf(db_tmp, sizeof db_tmp, "%s.restore%s", path, BACKUP_PARTIAL_SUFFIX);
        snprintf(files_tmp, sizeof files_tmp, "%s.restore%s", files_dir, BACKUP_PARTIAL_SUFFIX);
        /* Left by a restore that was killed. */
        unlink(db_tmp);
        remove_side_files(db_tmp);
        backup_remove_tree(files_tmp);
    }
    backup_contents info;
    verify_report report = {0};
    int status = unpack_and_check(file, db_tmp, files_tmp, &info, &report);
    if (status == 0 && !check_only)
        status = put_in_place(db_tmp, path, files_tmp, files_dir, info.files > 0);
    if (status == 0)
        printf("%s %s (taken %s by dojo %s, commit timestamp %s): %lld users, %lld runs, %lld "
               "transactions, %lld file%s; every check passed\n",
               check_only ? "checked" : "restored", file, info.created_at, info.dojo_version,
               info.commit_ts[0] ? info.commit_ts : "none", (long long)report.users_checked,
               (long long)report.runs_checked, (long long)report.transactions_checked,
               (long long)info.files, info.files == 1 ? "" : "s");
    if (status == 0 && !check_only) printf("into %s\n", cli_db_shown(db));
    verify_report_free(&report);
    if (check_only || status != 0) {
        unlink(db_tmp);
        remove_side_files(db_tmp);
        backup_remove_tree(files_tmp);
    }
    if (check_dir) rmdir(check_dir);
    return status;
}
