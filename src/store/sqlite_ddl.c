/*
 * sqlite_ddl.c — the schema of a SQLite database: the SQL of the objects a
 * declared schema asks for (ddl_common.c plans them), bringing an existing
 * file in line with them, and WAL mode.
 *
 * Layout (see store.h): per table T a SQL table T(id, creation_time, doc) with
 * one CHECK per nonnegative field; per index an expression index "T_<index>"
 * over the index's full key (fields, creation_time, id); a unique index also
 * gets "T_<index>_unique" over its fields alone; every table has
 * "T_by_creation_time"; append-only tables get two triggers that refuse
 * UPDATE and DELETE. sqlite_master keeps the DDL of each object, which is how
 * reopening tells what changed; a table whose CHECKs changed is rebuilt (a
 * copy of its rows into a new table), as SQLite cannot alter CHECKs.
 *
 * Callers: store_sqlite_open (sqlite.c), once per store_open; the index
 * expressions and guards also serve sqlite_scan.c and truncation.
 * Thread: the thread that opens the store.
 */
#include "base/invariant.h"
#include "store/sqlite_impl.h"

#include "store/ddl_common.h"
#include "store/sql_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REBUILD_TABLE "_dojo_rebuild"
#define NULL_KEY_SQL "-9e999" /* -Infinity: a missing field in an index key */

/* --- the SQL of the schema's objects ------------------------------------------------ */

void sqlite_key_expr(sqlbuf *b, const char *field)
{
    const char *column = sql_system_column(field);
    if (column)
        sqlbuf_add(b, "%s", column);
    else
        sqlbuf_add(b, "ifnull(json_extract(doc,'$.%s')," NULL_KEY_SQL ")", field);
}

/* A plain json_extract, so that documents without the field (NULL) never
 * collide. */
static void unique_expr(sqlbuf *b, const char *field)
{
    const char *column = sql_system_column(field);
    if (column)
        sqlbuf_add(b, "%s", column);
    else
        sqlbuf_add(b, "json_extract(doc,'$.%s')", field);
}

static void check(sqlbuf *b, const schema_table *t, const char *field)
{
    char name[STORE_SQL_NAME_BYTES_MAX];
    ddl_check_name(t, field, name);
    sqlbuf_add(b, "CONSTRAINT \"%s\" CHECK (json_extract(doc,'$.%s') >= 0)", name, field);
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
    .columns = "id TEXT PRIMARY KEY, creation_time REAL NOT NULL, doc TEXT NOT NULL",
    .check = check,
    .key_exprs = sqlite_key_expr,
    .unique_expr = unique_expr,
    .guard_ops = sqlite_guard_ops,
    .n_guard_ops = SQLITE_GUARD_OPS,
    .guard = sqlite_guard_trigger,
};

/* --- reading and changing the schema (ddl_ops) ---------------------------------------- */

static int exec_ddl(void *db, const char *sql, const char *what, err_t *e)
{
    return sqlite_exec(db, sql, what, e);
}

static int stored_version(void *db, int *version, err_t *e)
{
    char text[32];
    int rc = sqlite_query_text(db, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'",
                               text, sizeof text, e);
    return rc ? rc : ddl_parse_version(text, version, e);
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

/* Re-creates a table whose DDL (its CHECKs) changed, keeping its rows. Its
 * indexes and triggers go with the old table and are re-created afterwards. */
static int rebuild_table(void *db, const ddl_object *o, err_t *e)
{
    char sql[DDL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(what, sizeof what, "migrate table %s", o->name);
    snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" RENAME TO \"" REBUILD_TABLE "\"", o->name);
    int rc = sqlite_exec(db, sql, what, e);
    if (rc == 0) rc = sqlite_exec(db, o->sql, what, e);
    snprintf(sql, sizeof sql,
             "INSERT INTO \"%s\" (id, creation_time, doc) "
             "SELECT id, creation_time, doc FROM \"" REBUILD_TABLE "\"",
             o->name);
    if (rc == 0) rc = sqlite_exec(db, sql, what, e);
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
    .table_changed = "rebuilt",
    .begin_sql =
        "CREATE TABLE IF NOT EXISTS _dojo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    .begin_what = "create _dojo_meta",
    .exec = exec_ddl,
    .stored_version = stored_version,
    .prepare = drop_undeclared,
    .stored_sql = stored_sql,
    .create = create,
    .change_table = rebuild_table,
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

int sqlite_prepare_file(const char *path, const schema *s, char *report, err_t *e)
{
    sqlite3 *db;
    int rc = sqlite_open_db(path, true, true, &db, e);
    if (rc) return rc;
    rc = use_wal(db, path, e);
    if (rc == 0) rc = sqlite_exec(db, "BEGIN IMMEDIATE", "begin the schema transaction", e);
    if (rc == 0) {
        rc = ddl_migrate(&sqlite_ddl_ops, db, s, report, e);
        if (rc == 0) rc = sqlite_exec(db, "COMMIT", "commit the schema", e);
        if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc;
}
