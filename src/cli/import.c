/*
 * import.c — `dojo import FILE [--db URL] [--replace] [--force]`: restores a
 * file written by `dojo export` into an empty deployment, or into one it
 * empties first (--replace).
 *
 * All or nothing: one write transaction holds the emptiness check (or the
 * truncation), every insert, the checks and the clock bump. Each line is
 * checked on its own (shape, table, id of that table, the table's validator,
 * size: export_format.c), the per-table counts must match the header (a cut
 * file is refused), every id field must name a document of the file, and
 * finally the invariants of api.md §1 are checked over the result, inside the
 * same transaction (app_verify, like `dojo verify`). Any failure rolls back:
 * the database is left exactly as it was.
 *
 * A running server would not see an import (it caches the deployment
 * variables and the clocks, and its subscriptions would not be told), so the
 * import refuses a database another process has open, unless --force.
 * Thread: the main thread.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/verify.h"
#include "base/clock.h"
#include "base/jread.h"
#include "cli/cli.h"
#include "cli/export_format.h"
#include "engine/ctx.h"
#include "engine/system_tables.h"
#include "engine/validator.h"
#include "store/files.h"
#include "store/store.h"

#define IMPORT_PAGE_ROWS 500
#define IMPORT_PROBLEMS_SHOWN_MAX 20 /* violations printed; the count keeps going */
#define IMPORT_META_TEXT_BYTES 24
/* How far ahead of this machine's clock a _creationTime may be: new
 * documents are made later than every imported one, so one far in the
 * future would drag the creation clock (and the order of every later
 * document) with it. */
#define IMPORT_CREATION_AHEAD_MS_MAX (24.0 * 3600 * 1000)

static void import_usage(FILE *out)
{
    fprintf(out, "Usage: dojo import FILE [--db URL] [--replace] [--force]\n\n"
                 "Restores a file written by `dojo export` (FILE - reads standard input). All or\n"
                 "nothing, in one transaction: every document is checked against its table (as\n"
                 "the server checks every write), the counts against the header, every id field\n"
                 "against the documents of the file, and then the ledger invariants (balances\n"
                 "equal their transactions, one charge per run, one refund per failed run) over\n"
                 "the result. A file that fails any check is refused and nothing is written.\n\n"
                 "Stop the server first. A running server would not see the imported data (it\n"
                 "keeps deployment variables and clocks in memory and would not update its\n"
                 "subscribers), so the import refuses a database another process has open.\n\n"
                 "  --db URL    the database (default $DOJO_DB, else sqlite:./.dojo/dojo.db);\n"
                 "              created when missing\n"
                 "  --replace   delete every document of the database first (in the same\n"
                 "              transaction: if the import fails, nothing is deleted). Without it\n"
                 "              the database must be empty.\n"
                 "  --force     import even though another process has the database open. The\n"
                 "              server must then be restarted to see the data.\n");
}

typedef struct import_state {
    const schema *s;
    store_conn *conn;
    const char *file;
    bool replace;
    int64_t found[EXPORT_TABLES_MAX]; /* documents read per table */
    int64_t total;
    double max_creation_ms;
    json_t *problems; /* [string], at most IMPORT_PROBLEMS_SHOWN_MAX */
    int64_t n_problems;
    int64_t n_reference_problems; /* of n_problems: ids naming no document */
    /* The files' bytes (api.md §9): stored as their lines come, before the
     * transaction commits; removed again when the import fails. */
    files *fs;
    file_writer *writer; /* the file being read */
    char writer_id[ID_BYTES_MAX];
    int64_t writer_part;
    json_t *stored; /* [[storage id, sha256], …] of the files stored so far */
    int64_t files_found;
} import_state;

static void problem(import_state *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(import_state *im, const char *fmt, ...)
{
    im->n_problems++;
    if (json_array_size(im->problems) >= IMPORT_PROBLEMS_SHOWN_MAX) return;
    char msg[ERR_MSG_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(im->problems, json_string(msg));
}

/* Empty, or emptied with --replace. */
static int prepare_target(import_state *im, err_t *e)
{
    char listing[ERR_MSG_BYTES_MAX / 2] = "";
    size_t at = 0;
    int64_t rows = 0;
    for (int i = 0; i < im->s->n_tables; i++) {
        int64_t n = 0;
        int rc = store_count(im->conn, &im->s->tables[i], &n, e);
        if (rc) return rc;
        if (n > 0 && at < sizeof listing)
            at += (size_t)snprintf(listing + at, sizeof listing - at, "%s%s %lld", rows ? ", " : "",
                                   im->s->tables[i].name, (long long)n);
        rows += n;
    }
    if (rows == 0) return 0;
    if (!im->replace)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "the database is not empty (%s): import restores into an empty "
                       "deployment; pass --replace to delete everything in it first",
                       listing);
    return store_truncate_all(im->conn, e);
}

/* Seals the file being read and checks it against its document. */
static int finish_file(import_state *im, err_t *e)
{
    if (!im->writer) return 0;
    file_writer *w = im->writer;
    im->writer = NULL;
    uint8_t digest[SHA256_BYTES];
    char hex[SHA256_HEX_BYTES];
    uint64_t size = 0;
    int rc = file_writer_seal(w, digest, &size, e);
    if (rc) {
        file_writer_end(w, false);
        return rc;
    }
    sha256_to_hex(digest, hex);
    file_writer_end(w, true); /* kept, or removed with the others if the import fails */
    json_array_append_new(im->stored, json_pack("[s,s]", im->writer_id, hex));
    im->files_found++;
    json_t *doc = NULL;
    const schema_table *t = schema_table_by_name(im->s, SYSTEM_TABLE_STORAGE);
    rc = store_get(im->conn, t, im->writer_id, &doc, e);
    if (rc) return rc;
    const char *want = jr_string_or(doc, "sha256", NULL);
    int64_t size_field = -1;
    err_t why;
    err_init(&why);
    jr_int(doc, "_storage", "size", JR_OPTIONAL, 0, INT64_MAX, &size_field, &why);
    err_clear(&why);
    uint64_t want_size = size_field < 0 ? UINT64_MAX : (uint64_t)size_field;
    if (!want || strcmp(want, hex) != 0 || want_size != size)
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "the bytes of file %s (%llu bytes, SHA-256 %s) are not those its document "
                     "names (%llu bytes, SHA-256 %s)",
                     im->writer_id, (unsigned long long)size, hex, (unsigned long long)want_size,
                     want ? want : "none");
    json_decref(doc);
    return rc;
}

/* One line of a file's bytes: the first part starts the file (its document
 * must be in the file already), the others follow it in order. */
static int file_line(import_state *im, const char *line, size_t len, err_t *e)
{
    char id[ID_BYTES_MAX];
    int64_t part = 0;
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = export_file_line_parse(line, len, id, &part, &data, &n, e);
    if (rc) return rc;
    if (part == 0) {
        rc = finish_file(im, e);
        const schema_table *t = schema_table_by_name(im->s, SYSTEM_TABLE_STORAGE);
        json_t *doc = NULL;
        if (rc == 0) rc = store_get(im->conn, t, id, &doc, e);
        if (rc == 0 && !doc)
            rc = err_set(e, ERR_INVALID_ARGUMENT,
                         "the bytes of file %s come without its _storage document", id);
        json_decref(doc);
        for (size_t i = 0; rc == 0 && i < json_array_size(im->stored); i++)
            if (strcmp(jr_item_string_or(jr_item(im->stored, i), 0, ""), id) == 0)
                rc = err_set(e, ERR_INVALID_ARGUMENT, "the bytes of file %s come twice", id);
        if (rc == 0) rc = files_write_begin(im->fs, id, &im->writer, e);
        if (rc == 0) {
            snprintf(im->writer_id, sizeof im->writer_id, "%s", id);
            im->writer_part = 0;
        }
    } else if (!im->writer || strcmp(id, im->writer_id) != 0 || part != im->writer_part + 1) {
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "part %lld of file %s is out of order (parts go 0, 1, 2, … one file at a "
                     "time)",
                     (long long)part, id);
    } else {
        im->writer_part = part;
    }
    if (rc == 0) rc = file_writer_write(im->writer, data, n, e);
    free(data);
    return rc;
}

/* The import failed: the bytes it stored are named by no document. */
static void forget_files(import_state *im)
{
    if (im->writer) file_writer_end(im->writer, false);
    im->writer = NULL;
    size_t i;
    json_t *pair;
    json_array_foreach(im->stored, i, pair)
    {
        err_t e;
        err_init(&e);
        files_forget(im->fs, jr_item_string_or(pair, 0, ""), jr_item_string_or(pair, 1, ""), &e);
        err_clear(&e);
    }
}

/* Reads, checks and inserts every document line. */
/* The checks a line's table format cannot make: times relative to now, and
 * the deployment variables the app interprets (as `dojo env set` checks). */
static int check_meaning(const schema_table *t, const json_t *doc, err_t *e)
{
    double ct = 0;
    err_t why;
    err_init(&why);
    if (jr_number(doc, "document", "_creationTime", 0, 0, DBL_MAX, &ct, &why))
        return err_set(e, ERR_INVALID_ARGUMENT, "%s", why.msg);
    if (ct > clock_now_ms() + IMPORT_CREATION_AHEAD_MS_MAX)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "document %s: _creationTime %.0f is more than a day ahead of this "
                       "machine's clock",
                       jr_string_or(doc, "_id", "?"), ct);
    if (strcmp(t->name, SYSTEM_TABLE_ENV) == 0)
        return app_env_check(jr_string_or(doc, "name", ""), jr_string_or(doc, "value", ""), e);
    return 0;
}

static int insert_lines(import_state *im, export_reader *r, const export_header *h, err_t *e)
{
    const char *line;
    size_t len;
    int got;
    while ((got = export_read_line(r, &line, &len, e)) == 1) {
        if (len == 0) continue;
        if (export_line_is_file(line, len)) {
            err_t fe;
            err_init(&fe);
            int rc = file_line(im, line, len, &fe);
            if (rc) {
                rc = err_set(e, rc == ERR_IO || rc == ERR_NOMEM ? rc : ERR_INVALID_ARGUMENT,
                             "%s line %lld: %s", im->file, (long long)r->line_no, fe.msg);
                err_clear(&fe);
                return rc;
            }
            continue;
        }
        if (im->writer || im->files_found)
            return err_set(e, ERR_INVALID_ARGUMENT,
                           "%s line %lld: a document after the files' bytes (documents come "
                           "first)",
                           im->file, (long long)r->line_no);
        int ti;
        json_t *doc = NULL;
        err_t le;
        err_init(&le);
        int rc = export_line_parse(line, len, im->s, &ti, &doc, &le);
        if (rc == 0) rc = check_meaning(&im->s->tables[ti], doc, &le);
        if (rc == 0) rc = store_insert(im->conn, &im->s->tables[ti], doc, &le);
        if (rc) {
            json_decref(doc);
            rc = err_set(e,
                         rc == ERR_CONSTRAINT || err_is_application(rc) ? ERR_INVALID_ARGUMENT : rc,
                         "%s line %lld: %s", im->file, (long long)r->line_no, le.msg);
            err_clear(&le);
            return rc;
        }
        double ct = 0;
        jr_number(doc, "document", "_creationTime", 0, 0, DBL_MAX, &ct, &le);
        if (ct > im->max_creation_ms) im->max_creation_ms = ct;
        im->found[ti]++;
        im->total++;
        json_decref(doc);
    }
    if (got < 0) {
        char msg[ERR_MSG_BYTES_MAX];
        snprintf(msg, sizeof msg, "%s", e->msg);
        return err_set(e, got, "%s: %s", im->file, msg);
    }
    for (int i = 0; i < im->s->n_tables; i++)
        if (im->found[i] != h->counts[i])
            return err_set(e, ERR_INVALID_ARGUMENT,
                           "%s is incomplete or altered: its header says table %s has %lld "
                           "documents, the file holds %lld (was the export cut short?)",
                           im->file, im->s->tables[i].name, (long long)h->counts[i],
                           (long long)im->found[i]);
    int rc = finish_file(im, e);
    if (rc) return rc;
    const schema_table *storage = schema_table_by_name(im->s, SYSTEM_TABLE_STORAGE);
    int64_t documents = im->found[storage - im->s->tables];
    if (im->files_found != documents || im->files_found != h->files)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "%s is incomplete or altered: it holds the bytes of %lld files, its header "
                       "says %lld and it has %lld _storage documents (was the export cut short?)",
                       im->file, (long long)im->files_found, (long long)h->files,
                       (long long)documents);
    return 0;
}

/* Every top-level id field must name a document of its table. */
static int check_references_of(import_state *im, const schema_table *t, err_t *e)
{
    const validator *doc = t->doc;
    bool any = false;
    for (int f = 0; f < doc->n_fields; f++)
        any = any || doc->fields[f].type->kind == V_ID;
    if (!any) return 0;
    json_t *after = NULL;
    int rc = 0;
    for (;;) {
        store_range r = {
            .table = t, .index = &schema_by_creation_time, .lo = after, .limit = IMPORT_PAGE_ROWS};
        json_t *rows = NULL;
        rc = store_scan(im->conn, &r, &rows, e);
        if (rc) break;
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            for (int f = 0; rc == 0 && f < doc->n_fields; f++) {
                const v_field *field = &doc->fields[f];
                const char *ref = jr_string_or(row, field->name, NULL);
                if (field->type->kind != V_ID || !ref) continue;
                const schema_table *target = schema_table_by_name(im->s, field->type->table);
                json_t *found = NULL;
                rc = target ? store_get(im->conn, target, ref, &found, e) : 0;
                if (rc == 0 && !found) im->n_reference_problems++;
                if (rc == 0 && !found)
                    problem(im, "%s %s: %s %s names a %s document that is not in the file", t->name,
                            jr_string_or(row, "_id", "?"), field->name, ref, field->type->table);
                json_decref(found);
            }
            if (rc) break;
        }
        size_t n = json_array_size(rows);
        if (rc == 0 && n > 0) {
            json_decref(after);
            after = store_scan_resume_after(rows);
        }
        json_decref(rows);
        if (rc || n < IMPORT_PAGE_ROWS) break;
    }
    json_decref(after);
    return rc;
}

/* The invariants of api.md §1 over the result, in the same transaction. */
static int check_ledger(import_state *im, err_t *e)
{
    ctx x;
    ctx_init(&x, im->conn, im->s, false);
    x.now_ms = clock_now_ms();
    x.admin = true;
    verify_report report = {0};
    int rc = app_verify(&x, true, &report);
    if (rc) {
        err_move(e, &x.err);
    } else {
        for (size_t i = 0; i < json_array_size(report.violations); i++)
            problem(im, "%s", jr_item_string_or(report.violations, i, "?"));
        /* app_verify keeps VERIFY_VIOLATIONS_MAX messages and counts the rest. */
        im->n_problems += report.violation_count - (int64_t)json_array_size(report.violations);
        verify_report_free(&report);
    }
    ctx_release(&x);
    return rc;
}

static int meta_u64(store_conn *conn, const char *key, uint64_t *out, err_t *e)
{
    char *text = NULL;
    int rc = store_meta_get(conn, key, &text, e);
    *out = text ? strtoull(text, NULL, 10) : 0;
    free(text);
    return rc;
}

/* Keeps the clocks moving forward: commit timestamps never go back, and new
 * documents get later _creationTimes than every imported one (the engine
 * reads both at start; see engine/writer.c). */
static int bump_clocks(import_state *im, err_t *e)
{
    uint64_t ts = 0, ct_us = 0;
    int rc = meta_u64(im->conn, "ts", &ts, e);
    if (rc == 0) rc = meta_u64(im->conn, "creation_time_us", &ct_us, e);
    if (rc) return rc;
    uint64_t now_ns = clock_now_ns();
    if (now_ns > ts) ts = now_ns;
    uint64_t imported_us = (uint64_t)ceil(im->max_creation_ms * 1000.0) + 1;
    if (imported_us > ct_us) ct_us = imported_us;
    char text[IMPORT_META_TEXT_BYTES];
    snprintf(text, sizeof text, "%" PRIu64, ts);
    rc = store_meta_set(im->conn, "ts", text, e);
    snprintf(text, sizeof text, "%" PRIu64, ct_us);
    if (rc == 0) rc = store_meta_set(im->conn, "creation_time_us", text, e);
    return rc;
}

static int import_all(import_state *im, export_reader *r, const export_header *h, err_t *e)
{
    int rc = store_begin(im->conn, true, e);
    if (rc) {
        if (strstr(e->msg, "locked"))
            err_set(e, rc,
                    "the database is locked by another writer (a running dojo server?): stop "
                    "it and run the import again");
        return rc;
    }
    rc = prepare_target(im, e);
    if (rc == 0) rc = insert_lines(im, r, h, e);
    for (int i = 0; rc == 0 && i < im->s->n_tables; i++)
        rc = check_references_of(im, &im->s->tables[i], e);
    if (rc == 0) rc = check_ledger(im, e);
    int64_t n_ledger = im->n_problems - im->n_reference_problems;
    if (rc == 0 && n_ledger > 0)
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "refusing a file that would break the ledger invariants (%lld problem%s "
                     "above): nothing was written",
                     (long long)im->n_problems, im->n_problems == 1 ? "" : "s");
    else if (rc == 0 && im->n_problems > 0)
        rc = err_set(e, ERR_INVALID_ARGUMENT,
                     "refusing a file whose documents name documents it does not hold (%lld "
                     "problem%s above): nothing was written",
                     (long long)im->n_problems, im->n_problems == 1 ? "" : "s");
    if (rc == 0) rc = bump_clocks(im, e);
    if (rc == 0) rc = store_commit(im->conn, e);
    if (rc) {
        store_rollback(im->conn);
        forget_files(im);
    } else if (im->replace) {
        /* The bytes of the documents replaced: no document names them now. */
        int64_t removed = 0;
        err_t se;
        err_init(&se);
        if (files_sweep(im->fs, false, &removed, &se) != 0)
            fprintf(stderr,
                    "dojo import: warning: the old files' bytes were not all removed "
                    "(the next server start removes them): %s\n",
                    se.msg);
        err_clear(&se);
    }
    return rc;
}

/* Refuses a database another process has open, unless forced. */
static int check_not_in_use(const char *db, bool force, err_t *e)
{
    const char *path = cli_sqlite_path(db);
    long pid = 0;
    int in_use = path ? cli_sqlite_in_use(path, &pid) : 0;
    if (in_use < 0 && !force)
        return err_set(e, ERR_IO, "cannot open %s to see whether a server uses it", path);
    if (in_use > 0 && !force)
        return err_set(e, ERR_BUSY,
                       "%s is open in another process (pid %ld) — is `dojo dev` or `dojo serve` "
                       "running on it? Stop it first: a running server would not see the "
                       "imported data. (--force imports anyway; then restart the server.)",
                       path, pid);
    if (in_use > 0)
        fprintf(stderr,
                "dojo import: warning: %s is open in process %ld (--force): restart that server "
                "after the import so that it sees the data\n",
                path, pid);
    return 0;
}

/* Removes a SQLite database this import created, with its side files. */
static void remove_database_files(const char *path)
{
    for (int i = 0; i < CLI_SQLITE_FILES; i++) {
        char file[PATH_MAX];
        snprintf(file, sizeof file, "%s%s", path, cli_sqlite_suffixes[i]);
        unlink(file);
    }
}

/* Removes the files directory an import that failed created: its
 * subdirectories are empty again (the bytes were removed), then itself. */
static void remove_empty_dirs(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char sub[FILES_PATH_BYTES_MAX + 260];
        snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
        rmdir(sub);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"replace", no_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_opt = NULL;
    bool replace = false, force = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_opt = optarg;
            break;
        case 'r':
            replace = true;
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            import_usage(stdout);
            return 0;
        default:
            import_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        cli_error("import", argc - optind == 0 ? "which file? dojo import FILE [--db URL]"
                                               : "one FILE only: dojo import FILE [--db URL]");
        return 2;
    }
    const char *file = argv[optind];
    const char *db = cli_db_resolve(db_opt);
    const schema *s = app_schema();
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        cli_error("import", "cannot open %s: %s", file, strerror(errno));
        return 1;
    }
    err_t e;
    err_init(&e);
    export_reader r;
    export_reader_init(&r, f);
    export_header h;
    const char *line = NULL;
    size_t len = 0;
    int rc = export_read_line(&r, &line, &len, &e);
    if (rc == 0) rc = err_set(&e, ERR_INVALID_ARGUMENT, "the file is empty");
    if (rc == 1) rc = export_header_parse(line, len, s, &h, &e);
    if (rc) {
        char msg[ERR_MSG_BYTES_MAX];
        snprintf(msg, sizeof msg, "%s", e.msg);
        err_set(&e, rc, "%s line 1: %s", file, msg);
    }
    if (rc == 0) rc = check_not_in_use(db, force, &e);
    const char *path = cli_sqlite_path(db);
    bool created = path && !cli_file_exists(path);
    import_state im = {
        .s = s, .file = file, .replace = replace, .problems = json_array(), .stored = json_array()};
    store *st = NULL;
    char report[STORE_REPORT_BYTES_MAX];
    if (rc == 0) rc = store_open(db, s, &st, report, &e);
    if (rc == 0) rc = store_connect(st, true, &im.conn, &e);
    if (rc == 0) rc = files_open(db, st, true, &im.fs, &e);
    if (rc == 0) rc = import_all(&im, &r, &h, &e);
    files_close(im.fs);
    json_decref(im.stored);
    if (im.conn) store_disconnect(im.conn);
    store_close(st);
    export_reader_free(&r);
    if (f != stdin) fclose(f);
    for (size_t i = 0; i < json_array_size(im.problems); i++)
        fprintf(stderr, "problem: %s\n", jr_item_string_or(im.problems, i, "?"));
    if (im.n_problems > (int64_t)json_array_size(im.problems))
        fprintf(stderr, "… and %lld more problems\n",
                (long long)(im.n_problems - (int64_t)json_array_size(im.problems)));
    json_decref(im.problems);
    if (rc) {
        /* Nothing was written: leave no database behind either. */
        if (created) {
            remove_database_files(path);
            char dir[FILES_PATH_BYTES_MAX];
            if (files_dir_of_sqlite(path, dir) == 0) remove_empty_dirs(dir);
        }
        cli_error("import", "%s", e.msg);
        err_clear(&e);
        return 1;
    }
    printf("imported %lld documents from %s into %s%s (", (long long)im.total, file,
           cli_db_shown(db), replace ? ", replacing its contents" : "");
    for (int t = 0; t < s->n_tables; t++)
        printf("%s%s %lld", t ? ", " : "", s->tables[t].name, (long long)im.found[t]);
    printf("; %lld files); the ledger invariants hold\n", (long long)im.files_found);
    return 0;
}
