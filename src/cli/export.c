/*
 * export.c — `dojo export FILE [--db URL]`: writes a consistent snapshot of
 * every table, deployment variables (_env) included, in the format of
 * export_format.h. The server may be running and writing meanwhile: the
 * whole export is one read transaction, so it sees one committed state
 * (SQLite in WAL mode lets it read while the server commits). The file is
 * written next to FILE, synced, then renamed over FILE, so an interrupted
 * export never leaves a file that looks complete. The bytes of the stored
 * files follow the documents (PostgreSQL reads them in the same snapshot;
 * the directory store's files are never changed, only removed once no
 * document names them — an export that meets a file removed meanwhile fails
 * and says to export again).
 * Thread: the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/jread.h"
#include "app/app.h"
#include "base/clock.h"
#include "cli/cli.h"
#include "cli/export_format.h"
#include "engine/system_tables.h"
#include "store/files.h"
#include "store/store.h"

#define EXPORT_PAGE_ROWS 500
#define EXPORT_PATH_BYTES_MAX 4096

static void export_usage(FILE *out)
{
    fprintf(out,
            "Usage: dojo export FILE [--db URL]\n\n"
            "Writes a consistent snapshot of every table (users, workflows, runs,\n"
            "transactions, the deployment variables and the other system tables) and the\n"
            "bytes of every stored file to FILE, as JSON Lines: a header with the schema\n"
            "version and a count per table, one {\"table\", \"doc\"} line per document, with\n"
            "its _id and _creationTime, then {\"file\", \"part\", \"data\"} lines of the files.\n"
            "FILE - writes to standard output.\n\n"
            "The server may keep running: the snapshot is one read transaction, so it is\n"
            "one committed state even while mutations commit. The file holds user data\n"
            "and deployment variables: it is created readable by its owner only (0600).\n"
            "Restore it with `dojo import FILE`.\n\n"
            "  --db URL   the database (default $DOJO_DB, else sqlite:./.dojo/dojo.db)\n");
}

typedef struct export_out {
    FILE *f;
    const char *file;                /* as given; "-" = stdout */
    char tmp[EXPORT_PATH_BYTES_MAX]; /* the file written before the rename */
} export_out;

static int out_open(export_out *o, const char *file, err_t *e)
{
    o->file = file;
    if (strcmp(file, "-") == 0) {
        o->f = stdout;
        return 0;
    }
    if (snprintf(o->tmp, sizeof o->tmp, "%s.partial", file) >= (int)sizeof o->tmp)
        return err_set(e, ERR_INVALID_ARGUMENT, "the file name is too long");
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return err_set(e, ERR_IO, "cannot create %s: %s", o->tmp, strerror(errno));
    o->f = fdopen(fd, "w");
    if (!o->f) {
        close(fd);
        unlink(o->tmp);
        return err_set(e, ERR_IO, "cannot write %s: %s", o->tmp, strerror(errno));
    }
    return 0;
}

/* Flushes, syncs and renames into place (ok), or removes the partial file. */
static int out_close(export_out *o, bool ok, err_t *e)
{
    if (!o->f) return 0;
    if (o->f == stdout) {
        bool flushed = fflush(stdout) == 0;
        o->f = NULL;
        if (ok && !flushed) return err_set(e, ERR_IO, "cannot write to standard output");
        return 0;
    }
    bool written = fflush(o->f) == 0 && fsync(fileno(o->f)) == 0;
    int saved = written ? 0 : errno;
    if (fclose(o->f) != 0 && written) {
        written = false;
        saved = errno;
    }
    o->f = NULL;
    if (ok && written) {
        if (rename(o->tmp, o->file) == 0) return 0;
        saved = errno;
    }
    unlink(o->tmp);
    if (!ok) return 0;
    return err_set(e, ERR_IO, "cannot write %s: %s", o->file, strerror(saved));
}

static int write_line(export_out *o, const char *text, err_t *e)
{
    if (fputs(text, o->f) < 0 || fputc('\n', o->f) == EOF)
        return err_set(e, ERR_IO, "cannot write %s: %s",
                       o->f == stdout ? "standard output" : o->tmp, strerror(errno));
    return 0;
}

/* Writes every document of t in (_creationTime, _id) order; *n_out counts them. */
static int export_table(store_conn *conn, const schema_table *t, export_out *o, int64_t *n_out,
                        err_t *e)
{
    json_t *after = NULL;
    int rc = 0;
    *n_out = 0;
    for (;;) {
        store_range r = {.table = t,
                         .index = &schema_by_creation_time,
                         .lo = after,
                         .lo_inclusive = false,
                         .limit = EXPORT_PAGE_ROWS};
        json_t *rows = NULL;
        rc = store_scan(conn, &r, &rows, e);
        if (rc) break;
        size_t i;
        json_t *doc;
        json_array_foreach(rows, i, doc)
        {
            char *line = export_line_build(t, doc);
            rc = line ? write_line(o, line, e) : err_set(e, ERR_NOMEM, "out of memory");
            free(line);
            if (rc) break;
            (*n_out)++;
        }
        size_t n = json_array_size(rows);
        if (rc == 0 && n > 0) {
            json_decref(after);
            after = store_scan_resume_after(rows);
            if (!after) rc = err_set(e, ERR_NOMEM, "out of memory");
        }
        json_decref(rows);
        if (rc || n < EXPORT_PAGE_ROWS) break;
    }
    json_decref(after);
    return rc;
}

/* Writes the bytes of one file as its part lines. */
static int export_file_bytes(files *fs, const json_t *doc, export_out *o, uint8_t *buf, err_t *e)
{
    const char *id = jr_string_or(doc, "_id", "");
    const char *sha = jr_string_or(doc, "sha256", "");
    int64_t size_field = 0;
    err_t why;
    err_init(&why);
    if (jr_int(doc, "_storage", "size", 0, 0, INT64_MAX, &size_field, &why) != 0)
        return err_set(e, ERR_INTERNAL, "file %s: %s", id, why.msg);
    uint64_t size = (uint64_t)size_field;
    uint64_t at = 0;
    int64_t part = 0;
    int rc = 0;
    do {
        size_t n = 0;
        size_t want =
            size - at < EXPORT_FILE_PART_BYTES ? (size_t)(size - at) : EXPORT_FILE_PART_BYTES;
        rc = want ? files_read(fs, id, sha, at, buf, want, &n, e) : 0;
        if (rc == 0 && n != want)
            rc = err_set(e, ERR_INTERNAL,
                         "file %s has fewer bytes (%llu) than its document says (%llu): was it "
                         "removed during the export? Export again",
                         id, (unsigned long long)(at + n), (unsigned long long)size);
        if (rc) break;
        char *line = export_file_line_build(id, part++, buf, n);
        rc = line ? write_line(o, line, e) : err_set(e, ERR_NOMEM, "out of memory");
        free(line);
        at += n;
    } while (rc == 0 && at < size);
    return rc;
}

/* The bytes of every file, in the order of the `_storage` documents. */
static int export_files(store_conn *conn, const schema *s, files *fs, export_out *o, err_t *e)
{
    const schema_table *t = schema_table_by_name(s, SYSTEM_TABLE_STORAGE);
    uint8_t *buf = malloc(EXPORT_FILE_PART_BYTES);
    if (!buf) return err_set(e, ERR_NOMEM, "out of memory");
    json_t *after = NULL;
    int rc = 0;
    for (;;) {
        store_range r = {
            .table = t, .index = &schema_by_creation_time, .lo = after, .limit = EXPORT_PAGE_ROWS};
        json_t *rows = NULL;
        rc = store_scan(conn, &r, &rows, e);
        if (rc) break;
        size_t i;
        json_t *doc;
        json_array_foreach(rows, i, doc)
        {
            rc = export_file_bytes(fs, doc, o, buf, e);
            if (rc) break;
        }
        size_t n = json_array_size(rows);
        if (rc == 0 && n > 0) {
            const json_t *last = jr_item(rows, n - 1);
            json_decref(after);
            after = json_pack("[O,O]", jr_field(last, "_creationTime"), jr_field(last, "_id"));
        }
        json_decref(rows);
        if (rc || n < EXPORT_PAGE_ROWS) break;
    }
    json_decref(after);
    free(buf);
    return rc;
}

/* The snapshot: counts, header, documents, then the files' bytes, all in
 * one read transaction. */
static int export_snapshot(store_conn *conn, const schema *s, files *fs, export_out *o,
                           int64_t *counts, err_t *e)
{
    int rc = store_begin(conn, false, e);
    for (int i = 0; rc == 0 && i < s->n_tables; i++)
        rc = store_count(conn, &s->tables[i], &counts[i], e);
    const schema_table *storage = schema_table_by_name(s, SYSTEM_TABLE_STORAGE);
    int64_t n_files = storage ? counts[storage - s->tables] : 0;
    if (rc == 0) {
        json_t *header = export_header_build(s, counts, n_files, clock_now_ms());
        char *text = header ? json_dumps(header, EXPORT_DUMP_FLAGS) : NULL;
        rc = text ? write_line(o, text, e) : err_set(e, ERR_NOMEM, "out of memory");
        free(text);
        json_decref(header);
    }
    for (int i = 0; rc == 0 && i < s->n_tables; i++) {
        int64_t n = 0;
        rc = export_table(conn, &s->tables[i], o, &n, e);
        if (rc == 0 && n != counts[i])
            rc = err_set(e, ERR_INTERNAL,
                         "table %s changed during the export (%lld rows counted, %lld read): "
                         "the snapshot was not consistent",
                         s->tables[i].name, (long long)counts[i], (long long)n);
    }
    if (rc == 0 && n_files > 0) rc = export_files(conn, s, fs, o, e);
    store_rollback(conn);
    return rc;
}

/* Whether writing FILE would replace the SQLite database at path (or its
 * WAL, shared-memory or journal file). */
static bool writes_over_database(const char *file, const char *path)
{
    if (!path || strcmp(file, "-") == 0) return false;
    for (int i = 0; i < CLI_SQLITE_FILES; i++) {
        char side[PATH_MAX];
        snprintf(side, sizeof side, "%s%s", path, cli_sqlite_suffixes[i]);
        if (cli_same_file(file, side)) return true;
    }
    return false;
}

int cmd_export(int argc, char **argv)
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
            export_usage(stdout);
            return 0;
        default:
            export_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        cli_error("export", argc - optind == 0 ? "which file? dojo export FILE [--db URL]"
                                               : "one FILE only: dojo export FILE [--db URL]");
        return 2;
    }
    const char *file = argv[optind];
    const char *db = cli_db_existing("export", db_opt);
    if (!db) return 1;
    if (writes_over_database(file, cli_sqlite_path(db))) {
        cli_error("export",
                  "%s is the database itself (or one of its files): export to another file", file);
        return 2;
    }
    const schema *s = app_schema();
    err_t e;
    err_init(&e);
    store *st = NULL;
    store_conn *conn = NULL;
    export_out o = {0};
    int64_t counts[EXPORT_TABLES_MAX] = {0};
    char report[STORE_REPORT_BYTES_MAX];
    files *fs = NULL;
    int rc = store_open(db, s, &st, report, &e);
    if (rc == 0) rc = store_connect(st, false, &conn, &e);
    if (rc == 0) rc = files_open(db, st, false, &fs, &e);
    if (rc == 0) rc = out_open(&o, file, &e);
    if (rc == 0) rc = export_snapshot(conn, s, fs, &o, counts, &e);
    int close_rc = out_close(&o, rc == 0, &e);
    if (rc == 0) rc = close_rc;
    files_close(fs);
    if (conn) store_disconnect(conn);
    store_close(st);
    if (rc) {
        cli_error("export", "%s: %s", cli_db_shown(db), e.msg);
        err_clear(&e);
        return 1;
    }
    FILE *summary = strcmp(file, "-") == 0 ? stderr : stdout;
    int64_t total = 0;
    for (int i = 0; i < s->n_tables; i++)
        total += counts[i];
    fprintf(summary, "exported %lld documents from %s to %s (", (long long)total, cli_db_shown(db),
            file);
    for (int i = 0; i < s->n_tables; i++)
        fprintf(summary, "%s%s %lld", i ? ", " : "", s->tables[i].name, (long long)counts[i]);
    fprintf(summary, ")\n");
    return 0;
}
