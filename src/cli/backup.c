/*
 * backup.c — `dojo backup FILE [--db URL] [--files-dir DIR]`: an online
 * backup of a SQLite deployment, taken while its server runs and commits
 * (backup/backup.h for the format, store/sqlite_snapshot.h for the copy).
 * A PostgreSQL deployment is backed up with PostgreSQL's own tools, or
 * exported with `dojo export`: the command says so.
 * Thread: the main thread.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup.h"
#include "cli/cli.h"

static void backup_usage(FILE *out)
{
    fprintf(out, "Usage: dojo backup FILE [--db URL] [--files-dir DIR]\n\n"
                 "Writes an online backup of a SQLite deployment to FILE (a new file): a\n"
                 "consistent copy of the database, taken while the server keeps running and\n"
                 "committing (writers are not held up), the files of the files directory beside\n"
                 "the database when there is one, and a manifest with the SHA-256 of each, so\n"
                 "that damage is found before a restore. FILE is a plain tar archive, written\n"
                 "under a temporary name and renamed when complete (a backup is complete or\n"
                 "absent), readable by its owner only (0600). Restore it with `dojo restore`.\n\n"
                 "For PostgreSQL (--db postgres://…) use PostgreSQL's tools (pg_dump,\n"
                 "pg_basebackup; docs/OPERATIONS.md), or `dojo export` for a portable snapshot.\n\n"
                 "  --db URL         the database (default $DOJO_DB, else sqlite:./.dojo/dojo.db)\n"
                 "  --files-dir DIR  the files directory (default: as the server keeps it,\n"
                 "                   \"files\" beside dojo.db, \"NAME.files\" beside NAME.db)\n");
}

/* Whether FILE would be the database itself, or one of its side files. */
static bool names_database(const char *file, const char *path)
{
    for (int i = 0; i < CLI_SQLITE_FILES; i++) {
        char side[PATH_MAX];
        snprintf(side, sizeof side, "%s%s", path, cli_sqlite_suffixes[i]);
        if (cli_same_file(file, side) || strcmp(file, side) == 0) return true;
    }
    return false;
}

int cmd_backup(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"files-dir", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL, *files_dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'f':
            files_dir = optarg;
            break;
        case 'h':
            backup_usage(stdout);
            return 0;
        default:
            backup_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        cli_error("backup", argc - optind == 0 ? "which file? dojo backup FILE [--db URL]"
                                               : "one FILE only: dojo backup FILE [--db URL]");
        return 2;
    }
    const char *file = argv[optind];
    const char *db = cli_db_resolve(db_opt);
    const char *path = cli_sqlite_path(db);
    if (!path) {
        cli_error("backup",
                  "%s is PostgreSQL: back it up with PostgreSQL's own tools (pg_dump -Fc, or "
                  "pg_basebackup with WAL archiving for point-in-time recovery; see "
                  "docs/OPERATIONS.md), or take a portable snapshot with `dojo export FILE "
                  "--db URL`",
                  cli_db_shown(db));
        return 2;
    }
    if (!cli_db_existing("backup", db_opt)) return 1;
    if (strcmp(file, "-") == 0) {
        cli_error("backup", "a backup is written to a file (it is renamed into place when "
                            "complete), not to standard output");
        return 2;
    }
    if (names_database(file, path)) {
        cli_error("backup",
                  "%s is the database itself (or one of its files): back up to another "
                  "file",
                  file);
        return 2;
    }
    err_t e;
    err_init(&e);
    backup_result res;
    if (backup_take(path, files_dir, file, NULL, &res, &e) != 0) {
        cli_error("backup", "%s: %s", cli_db_shown(db), e.msg);
        err_clear(&e);
        return 1;
    }
    printf("backed up %s to %s: %llu bytes (the database and %lld file%s), commit timestamp %s, "
           "in %llu ms\n",
           cli_db_shown(db), file, (unsigned long long)res.bytes, (long long)res.files,
           res.files == 1 ? "" : "s", res.commit_ts[0] ? res.commit_ts : "none",
           (unsigned long long)res.duration_ms);
    return 0;
}
