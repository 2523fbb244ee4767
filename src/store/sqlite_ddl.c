/*
 * sqlite_ddl.c — the schema of a SQLite database: the SQL of the objects a
 * declared schema asks for (ddl_common.c plans them), bringing an existing
 * file in line with them, and WAL mode.
 *
 * Layout (see store.h, sql_common.h): per table T a SQL table T(id TEXT,
 * creation_time REAL, k_<field> BLOB…, data BLOB) with one CHECK per
 * nonnegative field; per index an index "T_<index>" over its key columns
 * then (creation_time, id); a unique index also gets "T_<index>_unique" over
 * its fields alone; every table has "T_by_creation_time"; append-only tables
 * get two triggers that refuse UPDATE and DELETE. sqlite_master keeps the DDL
 * of each object, which is how reopening tells what changed; a table whose
 * DDL changed (its key columns, its CHECKs, or the storage format 1 it was
 * written in) is rebuilt: its rows are copied into a new table, each
 * document read, its key columns computed again.
 *
 * Callers: store_sqlite_open (sqlite.c), once per store_open; the guards also
 * serve truncation (store_truncate_all, here).
 * Thread: the thread that opens the store.
 */
#include "base/invariant.h"
#include "store/sqlite_impl.h"

#include "store/ddl_common.h"
#include "store/doc_codec.h"
#include "store/sql_common.h"
#include "store/sql_docs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REBUILD_TABLE "_dojo_rebuild"

/* --- the SQL of the schema's objects ------------------------------------------------ */

static void bytes_literal(sqlbuf *b, const char *hex)
{
    sqlbuf_add(b, "x'%s'", hex);
}

const char *const sqlite_guard_ops[SQLITE_GUARD_OPS] = {"delete", "update"};

void sqlite_guard_trigger(sqlbuf *b, const schema_table *t, int op)
{
    static const char *const verbs[SQLITE_GUARD_OPS] = {"DELETE", "UPDATE"};
    ASSERT(op >= 0 && op < SQLITE_GUARD_OPS);
    char name[STORE_SQL_NAME_BYTES_MAX];
    ddl_guard_name(t, sqlite_guard_ops[op], name);
    sqlbuf_add(b,
               "CREATE TRIGGER \"%s\" BEFORE %s ON \"%s\" BEGIN SELECT "
               "RAISE(ABORT, '%s is append-only: rows are never updated or deleted'); END",
               name, verbs[op], t->name, t->name);
}

static const ddl_dialect sqlite_dialect = {
    .engine = "SQLite",
    .ident_bytes_max = 0,
    .id_type = "TEXT",
    .time_type = "REAL",
    .bytes_type = "BLOB",
    .bytes_literal = bytes_literal,
    .guard_ops = sqlite_guard_ops,
    .n_guard_ops = SQLITE_GUARD_OPS,
    .guard = sqlite_guard_trigger,
};

/* --- reading and changing the schema (ddl_ops) ---------------------------------------- */

static int exec_ddl(void *db, const char *sql, const char *what, err_t *e)
{
    return sqlite_exec(db, sql, what, e);
}

static int meta_text(void *db, const char *key, char out[64], err_t *e)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT value FROM _dojo_meta WHERE key = '%s'", key);
    return sqlite_query_text(db, sql, out, 64, e);
}

static const char *const type_names[] = {"table", "index", "trigger"}; /* as sqlite_master */

/* The DDL sqlite_master holds for an object (malloc'd), or NULL when there is
 * no such object. */
static int stored_sql(void *vdb, const ddl_object *o, char **out, err_t *e)
{
    sqlite3 *db = vdb;
    *out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE type = ? AND name = ?", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 1, type_names[o->type], -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(st, 2, o->name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *sql = (const char *)sqlite3_column_text(st, 0);
        *out = strdup(sql ? sql : "");
        rc = *out ? SQLITE_DONE : SQLITE_NOMEM;
    }
    int code = rc == SQLITE_DONE ? 0 : sqlite_error(e, db, rc, "read the schema");
    sqlite3_finalize(st);
    return code;
}

/* DROP statements (sqlite3_mprintf'd) for the indexes and triggers on
 * declared tables that the schema no longer asks for. Collected first:
 * sqlite_master cannot change while it is being read. */
static int collect_undeclared(sqlite3 *db, const schema *s, const ddl_plan *p, char **drops,
                              bool *is_index, int drops_max, int *n_drops, err_t *e)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT type, name, tbl_name FROM sqlite_master "
                                "WHERE type IN ('index', 'trigger') AND sql IS NOT NULL",
                                -1, &st, NULL);
    *n_drops = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *table = (const char *)sqlite3_column_text(st, 2);
        bool index = type && strcmp(type, "index") == 0;
        if (!type || !name || !table || !schema_table_by_name(s, table))
            rc = SQLITE_OK;
        else if (ddl_plan_find(p, index ? DDL_INDEX : DDL_TRIGGER, name))
            rc = SQLITE_OK;
        else if (*n_drops >= drops_max)
            rc = SQLITE_FULL;
        else {
            drops[*n_drops] = sqlite3_mprintf("DROP %s \"%w\"", index ? "INDEX" : "TRIGGER", name);
            is_index[*n_drops] = index;
            rc = drops[(*n_drops)++] ? SQLITE_OK : SQLITE_NOMEM;
        }
    }
    int code = rc == SQLITE_DONE ? 0 : sqlite_error(e, db, rc, "list schema objects");
    sqlite3_finalize(st);
    return code;
}

static int drop_undeclared(void *vdb, const schema *s, const ddl_plan *p, ddl_counts *n, err_t *e)
{
    enum { DROPS_MAX = 1024 };
    sqlite3 *db = vdb;
    char **drops = calloc(DROPS_MAX, sizeof *drops);
    bool *is_index = calloc(DROPS_MAX, sizeof *is_index);
    int n_drops = 0;
    int rc = (drops && is_index) ? 0 : err_set(e, ERR_NOMEM, "schema: out of memory");
    if (rc == 0) rc = collect_undeclared(db, s, p, drops, is_index, DROPS_MAX, &n_drops, e);
    for (int i = 0; i < n_drops; i++) {
        if (rc == 0) rc = sqlite_exec(db, drops[i], "drop an undeclared index or trigger", e);
        if (rc == 0 && is_index[i]) n->indexes_dropped++;
        if (rc == 0 && !is_index[i]) n->triggers_dropped++;
        sqlite3_free(drops[i]);
    }
    free(drops);
    free(is_index);
    return rc;
}

static int create(void *db, const ddl_object *o, err_t *e)
{
    static const char *const whats[] = {"create table", "create index", "create trigger"};
    return sqlite_exec(db, o->sql, whats[o->type], e);
}

/* The document of the current row of a SELECT of (id, creation_time, doc or
 * data) from a table of storage format `format`. */
static int old_row_doc(sqlite3_stmt *st, int format, const char *what, json_t **doc, err_t *e)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    double ct = sqlite3_column_double(st, 1);
    const void *bytes = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    if (!id) return err_set(e, ERR_STORAGE, "%s: a row without an id", what);
    if (format >= 2) return doc_decode(bytes ? bytes : "", len, id, ct, doc, what, e);
    json_error_t jerr;
    *doc = bytes ? json_loadb(bytes, len, JSON_ALLOW_NUL, &jerr) : NULL;
    if (!json_is_object(*doc)) {
        json_decref(*doc);
        *doc = NULL;
        return err_set(e, ERR_STORAGE, "%s: the document of %s is not a JSON object", what, id);
    }
    /* Format 1 kept _id and _creationTime in the document too; the columns
     * are what the indexes used. */
    if (json_object_set_new(*doc, "_id", json_string(id)) ||
        json_object_set_new(*doc, "_creationTime", json_real(ct)))
        return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    return 0;
}

/* Copies every row of `from` (storage format `format`) into o's new table,
 * in the new layout. */
static int copy_rows(sqlite3 *db, const ddl_object *o, const char *from, int format,
                     long long *docs, err_t *e)
{
    char what[STORE_SQL_NAME_BYTES_MAX + 32], sql[SQL_TEXT_BYTES_MAX];
    snprintf(what, sizeof what, "migrate table %s", o->name);
    sql_layout l;
    int rc = sql_layout_of(o->table, &l, e);
    if (rc) return rc;
    sqlbuf b;
    sqlbuf_init(&b, sql, sizeof sql);
    sql_insert_text(&sqlite_driver, &l, &b);
    ASSERT(!b.overflow);
    sqlite3_stmt *ins = NULL, *sel = NULL;
    char select[STORE_SQL_NAME_BYTES_MAX + 96];
    snprintf(select, sizeof select, "SELECT id, creation_time, %s FROM \"%s\" ORDER BY rowid",
             format >= 2 ? SQL_DATA_COLUMN : "doc", from);
    int src = sqlite3_prepare_v2(db, sql, -1, &ins, NULL);
    if (src == SQLITE_OK) src = sqlite3_prepare_v2(db, select, -1, &sel, NULL);
    if (src != SQLITE_OK) rc = sqlite_error(e, db, src, what);
    while (rc == 0 && (src = sqlite3_step(sel)) == SQLITE_ROW) {
        json_t *doc = NULL;
        sql_row row;
        rc = old_row_doc(sel, format, what, &doc, e);
        if (rc == 0) rc = sql_row_of(&l, doc, &row, what, e);
        if (rc == 0) {
            sql_value params[SQL_KEY_COLUMNS_MAX + 3];
            int n = sql_insert_params(&row, params);
            src = SQLITE_OK;
            for (int i = 0; i < n && src == SQLITE_OK; i++)
                src = sqlite_bind_value(ins, i + 1, &params[i]);
            if (src == SQLITE_OK) src = sqlite3_step(ins);
            if (src != SQLITE_DONE) rc = sqlite_error(e, db, src, what);
            sqlite3_reset(ins);
            sqlite3_clear_bindings(ins);
            sql_row_free(&row);
            (*docs)++;
        }
        json_decref(doc);
    }
    if (rc == 0 && src != SQLITE_DONE) rc = sqlite_error(e, db, src, what);
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    return rc;
}

/* Re-creates a table whose DDL changed (its key columns, its CHECKs, its
 * storage format), keeping its rows. Its indexes and triggers go with the
 * old table and are re-created afterwards. */
static int rebuild_table(void *db, const ddl_object *o, int from_format, long long *docs, err_t *e)
{
    char sql[DDL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(what, sizeof what, "migrate table %s", o->name);
    snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" RENAME TO \"" REBUILD_TABLE "\"", o->name);
    int rc = sqlite_exec(db, sql, what, e);
    if (rc == 0) rc = sqlite_exec(db, o->sql, what, e);
    if (rc == 0) rc = copy_rows(db, o, REBUILD_TABLE, from_format, docs, e);
    if (rc == 0) rc = sqlite_exec(db, "DROP TABLE \"" REBUILD_TABLE "\"", what, e);
    return rc;
}

static int drop(void *db, const ddl_object *o, err_t *e)
{
    char sql[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(sql, sizeof sql, "DROP %s \"%s\"", o->type == DDL_INDEX ? "INDEX" : "TRIGGER",
             o->name);
    return sqlite_exec(db, sql, "drop a changed index or trigger", e);
}

static const ddl_ops sqlite_ddl_ops = {
    .dialect = &sqlite_dialect,
    .begin_sql =
        "CREATE TABLE IF NOT EXISTS _dojo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    .begin_what = "create _dojo_meta",
    .exec = exec_ddl,
    .meta_text = meta_text,
    .prepare = drop_undeclared,
    .stored_sql = stored_sql,
    .create = create,
    .rebuild_table = rebuild_table,
    .drop = drop,
};

/* --- opening the file --------------------------------------------------------------- */

static int use_wal(sqlite3 *db, const char *path, err_t *e)
{
    char mode[32];
    int rc = sqlite_query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode, e);
    if (rc == 0 && strcmp(mode, "wal") != 0)
        rc = err_set(e, ERR_STORAGE, "cannot put %s in WAL mode (journal_mode is %s)", path, mode);
    return rc;
}

/* Rewrites the whole file with SQLITE_PAGE_BYTES pages (VACUUM; a file in
 * WAL mode keeps its page size, so out of it for the while). After an
 * upgrade from storage format 1, whose files have 4 KiB pages. */
static int repage(sqlite3 *db, const char *path, err_t *e)
{
    char size[32], sql[64];
    int rc = sqlite_query_text(db, "PRAGMA page_size", size, sizeof size, e);
    if (rc || atoi(size) == SQLITE_PAGE_BYTES) return rc;
    char mode[32];
    rc = sqlite_query_text(db, "PRAGMA journal_mode=DELETE", mode, sizeof mode, e);
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", SQLITE_PAGE_BYTES);
    if (rc == 0) rc = sqlite_exec(db, sql, "set the page size", e);
    if (rc == 0) rc = sqlite_exec(db, "VACUUM", "rewrite the file with the new page size", e);
    int wal = use_wal(db, path, e);
    return rc ? rc : wal;
}

int sqlite_prepare_file(const char *path, const schema *s, char *report, err_t *e)
{
    sqlite3 *db;
    int rc = sqlite_open_db(path, true, true, &db, e);
    if (rc) return rc;
    /* Only a new, empty file takes it; an existing one keeps its own. */
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA page_size=%d", SQLITE_PAGE_BYTES);
    rc = sqlite_exec(db, sql, "set the page size", e);
    if (rc == 0) rc = use_wal(db, path, e);
    if (rc == 0) rc = sqlite_exec(db, "BEGIN IMMEDIATE", "begin the schema transaction", e);
    if (rc == 0) {
        rc = ddl_migrate(&sqlite_ddl_ops, db, s, report, e);
        if (rc == 0) rc = sqlite_exec(db, "COMMIT", "commit the schema", e);
        if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (rc == 0 && ddl_last_format_from() < STORE_FORMAT) rc = repage(db, path, e);
    sqlite3_close(db);
    return rc;
}
/* --- truncation (import --replace) ---------------------------------------------------- */

/* Empties one table; the guards of an append-only table are dropped around
 * it and re-created, inside the caller's transaction. */
static int truncate_table(sqlite_conn *c, const schema_table *t, err_t *e)
{
    char sql[DDL_BYTES_MAX], guard[STORE_SQL_NAME_BYTES_MAX];
    int rc = 0;
    for (int op = 0; op < SQLITE_GUARD_OPS && rc == 0 && t->append_only; op++) {
        ddl_guard_name(t, sqlite_guard_ops[op], guard);
        snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS \"%s\"", guard);
        rc = sqlite_run_once(c, sql, "truncate: drop guard", e);
    }
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", t->name);
    if (rc == 0) rc = sqlite_run_once(c, sql, "truncate", e);
    for (int op = 0; op < SQLITE_GUARD_OPS && rc == 0 && t->append_only; op++) {
        sqlbuf b;
        sqlbuf_init(&b, sql, sizeof sql);
        sqlite_guard_trigger(&b, t, op);
        ASSERT(!b.overflow);
        rc = sqlite_run_once(c, sql, "truncate: re-create guard", e);
    }
    return rc;
}

int sqlite_truncate_all(store_conn *sc, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    ASSERT(c->writer && !sqlite3_get_autocommit(c->db) && "truncate outside a write transaction");
    const schema *s = c->base.st->schema;
    for (int i = 0; i < s->n_tables; i++) {
        int rc = truncate_table(c, &s->tables[i], e);
        if (rc) return rc;
    }
    return 0;
}
