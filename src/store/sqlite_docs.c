/*
 * sqlite_docs.c — the documents of the SQLite engine: get, insert, replace,
 * delete and count by id, the _dojo_meta key/value pairs, truncation (import
 * --replace) and the health ping. Each is one cached statement per table;
 * documents travel as JSON text in the doc column (SQL_SQL_DOC_DUMP_FLAGS), with
 * their _id and _creationTime also in the id and creation_time columns.
 *
 * Callers: store.c through sqlite_ops — the storage thread on the writer
 * connection, reader threads on theirs.
 * Thread: the thread that owns the connection.
 */
#include "base/invariant.h"
#include "store/sqlite_impl.h"

#include "store/ddl_common.h"
#include "store/sql_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses the doc column of the current row. */
int sqlite_column_doc(sqlite3_stmt *st, int col, const char *table, json_t **out, err_t *e)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!text) return err_set(e, ERR_NOMEM, "read %s: out of memory", table);
    json_error_t jerr;
    *out = json_loadb(text, (size_t)n, JSON_ALLOW_NUL, &jerr);
    if (!*out)
        return err_set(e, ERR_STORAGE, "read %s: a stored document is not valid JSON: %s", table,
                       jerr.text);
    return 0;
}

/* --- documents --------------------------------------------------------------------- */

int sqlite_get(store_conn *sc, const schema_table *t, const char *id, json_t **doc_out, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    char sql[SQLITE_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT doc FROM \"%s\" WHERE id = ?", t->name);
    snprintf(what, sizeof what, "get from %s", t->name);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, sql, &st, e);
    if (rc) return rc;
    rc = sqlite_bind_check(c, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), what, e);
    if (rc == 0) rc = sqlite_stmt_step(c, st, what, e);
    if (rc == 1) rc = sqlite_column_doc(st, 0, t->name, doc_out, e);
    sqlite_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* Writes (id, creation_time, doc) with sql, whose parameters are
 * creation_time, doc, id in this order. */
static int write_doc(sqlite_conn *c, const schema_table *t, const json_t *doc, const char *sql,
                     const char *what, err_t *e)
{
    const char *id = NULL;
    double ct = 0;
    int rc = sql_doc_identity_checked(doc, &id, &ct, what, e);
    if (rc) return rc;
    char *text = json_dumps(doc, SQL_DOC_DUMP_FLAGS);
    if (!text) return err_set(e, ERR_NOMEM, "%s %s: cannot encode the document", what, t->name);
    sqlite3_stmt *st;
    rc = sqlite_stmt_get(c, sql, &st, e);
    if (rc == 0) {
        int brc = sqlite3_bind_double(st, 1, ct);
        if (brc == SQLITE_OK) brc = sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        if (brc == SQLITE_OK) brc = sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
        rc = sqlite_bind_check(c, brc, what, e);
        if (rc == 0)
            rc = sqlite_stmt_run(c, st, what, e);
        else
            sqlite_stmt_done(st);
    }
    free(text);
    return rc;
}

int sqlite_insert(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    char sql[SQLITE_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (creation_time, doc, id) VALUES (?1, ?2, ?3)",
             t->name);
    snprintf(what, sizeof what, "insert into %s", t->name);
    return write_doc(sqlite_conn_of(sc), t, doc, sql, what, e);
}

/* ERR_NOT_FOUND when the last statement changed no row. */
static int changed_one(sqlite_conn *c, const schema_table *t, const char *id, const char *what,
                       err_t *e)
{
    if (sqlite3_changes(c->db) > 0) return 0;
    return sql_no_document(e, what, id, t->name);
}

int sqlite_replace(store_conn *sc, const schema_table *t, const json_t *doc, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    char sql[SQLITE_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "UPDATE \"%s\" SET creation_time = ?1, doc = ?2 WHERE id = ?3",
             t->name);
    snprintf(what, sizeof what, "replace in %s", t->name);
    int rc = write_doc(c, t, doc, sql, what, e);
    if (rc) return rc;
    return changed_one(c, t, json_string_value(json_object_get(doc, "_id")), what, e);
}

int sqlite_delete(store_conn *sc, const schema_table *t, const char *id, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    char sql[SQLITE_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\" WHERE id = ?", t->name);
    snprintf(what, sizeof what, "delete from %s", t->name);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, sql, &st, e);
    if (rc) return rc;
    rc = sqlite_bind_check(c, sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC), what, e);
    if (rc == 0)
        rc = sqlite_stmt_run(c, st, what, e);
    else
        sqlite_stmt_done(st);
    return rc ? rc : changed_one(c, t, id, what, e);
}

int sqlite_count(store_conn *sc, const schema_table *t, int64_t *n_out, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    char sql[SQLITE_SQL_BYTES_MAX], what[STORE_SQL_NAME_BYTES_MAX];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\"", t->name);
    snprintf(what, sizeof what, "count %s", t->name);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, sql, &st, e);
    if (rc) return rc;
    rc = sqlite_stmt_step(c, st, what, e);
    if (rc == 1) *n_out = sqlite3_column_int64(st, 0);
    sqlite_stmt_done(st);
    return rc < 0 ? rc : 0;
}

/* --- metadata, truncation, health -------------------------------------------------- */

int sqlite_meta_get(store_conn *sc, const char *key, char **value_out, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, "SELECT value FROM _dojo_meta WHERE key = ?", &st, e);
    if (rc) return rc;
    rc = sqlite_bind_check(c, sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC), "read metadata", e);
    if (rc == 0) rc = sqlite_stmt_step(c, st, "read metadata", e);
    if (rc == 1) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        *value_out = text ? strdup(text) : NULL;
        rc = *value_out ? 0 : err_set(e, ERR_NOMEM, "read metadata: out of memory");
    }
    sqlite_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int sqlite_meta_set(store_conn *sc, const char *key, const char *value, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c,
                             "INSERT INTO _dojo_meta (key, value) VALUES (?1, ?2) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             &st, e);
    if (rc) return rc;
    int brc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (brc == SQLITE_OK) brc = sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite_bind_check(c, brc, "write metadata", e);
    if (rc == 0) return sqlite_stmt_run(c, st, "write metadata", e);
    sqlite_stmt_done(st);
    return rc;
}

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

int sqlite_ping(store_conn *sc, err_t *e)
{
    sqlite_conn *c = sqlite_conn_of(sc);
    sqlite3_stmt *st;
    int rc = sqlite_stmt_get(c, "SELECT 1", &st, e);
    if (rc) return rc;
    rc = sqlite_stmt_step(c, st, "ping", e);
    sqlite_stmt_done(st);
    return rc < 0 ? rc : 0;
}
