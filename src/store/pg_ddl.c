/*
 * pg_ddl.c — the schema of a PostgreSQL database: the SQL of the objects a
 * declared schema asks for (ddl_common.c plans them) and bringing an
 * existing database in line with them.
 *
 * Layout (see store.h): per table T a SQL table T(id TEXT COLLATE "C" PRIMARY
 * KEY, creation_time DOUBLE PRECISION, doc JSONB) with one CHECK per
 * nonnegative field; per index an expression index "T_<index>" over the
 * index's full key; a unique index also gets "T_<index>_unique" over its
 * fields alone; every table has "T_by_creation_time"; append-only tables get
 * three triggers (UPDATE, DELETE, TRUNCATE) that call _dojo_append_only_guard,
 * which raises "<T> is append-only: …". Each created object carries the DDL
 * that made it as its COMMENT, the way sqlite_master keeps it for SQLite, so
 * that reopening can tell what changed; a table whose CHECKs changed is
 * altered in place.
 *
 * Key order. jsonb's own order is not schema.h's (it ranks strings below
 * numbers, and compares strings by the database collation), so every field of
 * an index key is indexed as three typed columns:
 *   rank: 0 null or missing, 1 number, 2 string, 3 boolean, 4 array, 5 object
 *   num:  the number as NUMERIC (exact: 2^53 + 1 is not 2^53), else 0
 *   str:  the string (or true/false, or the JSON text) COLLATE "C", else ''
 * Compared left to right these give null < numbers by value < strings
 * bytewise < booleans (false < true) — schema_value_cmp; arrays and objects,
 * never index values, are ranked but ordered by their jsonb text. pg_scan.c
 * encodes its bounds the same way.
 *
 * Callers: store_pg_open (pg_conn.c), once per store_open; the key
 * expressions also serve pg_scan.c.
 * Thread: the thread that opens the store.
 */
#include "base/invariant.h"
#include "store/pg_impl.h"

#include "store/ddl_common.h"
#include "store/sql_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_GUARD_FUNCTION "_dojo_append_only_guard"
/* Serializes schema changes of processes opening the same database at once. */
#define PG_DDL_LOCK_KEY "7236828216384647217"

/* --- the SQL of the schema's objects ------------------------------------------------ */

enum { KEY_RANK, KEY_NUM, KEY_STR };

/* One typed column of an extracted field (see the file comment). Field names
 * are [A-Za-z_][A-Za-z0-9_]* (store.c checks), so they quote as they are. */
static void sql_key_part(sqlbuf *b, const char *field, int part)
{
    switch (part) {
    case KEY_RANK:
        sqlbuf_add(b,
                   "(CASE jsonb_typeof(doc->'%s') WHEN 'number' THEN 1 WHEN 'string' THEN 2 "
                   "WHEN 'boolean' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 5 ELSE 0 END)",
                   field);
        break;
    case KEY_NUM:
        sqlbuf_add(b,
                   "(CASE WHEN jsonb_typeof(doc->'%s') = 'number' THEN (doc->'%s')::numeric "
                   "ELSE 0 END)",
                   field, field);
        break;
    default:
        ASSERT(part == KEY_STR);
        sqlbuf_add(
            b,
            "(COALESCE(CASE WHEN jsonb_typeof(doc->'%s') <> 'number' THEN doc->>'%s' END, '') "
            "COLLATE \"C\")",
            field, field);
    }
}

/* The index columns of one key field, comma-separated, each followed by
 * suffix (" DESC" or ""). */
void pg_key_exprs(sqlbuf *b, const char *field, const char *suffix)
{
    const char *column = sql_system_column(field);
    if (column) {
        sqlbuf_add(b, "%s%s", column, suffix);
        return;
    }
    for (int part = KEY_RANK; part <= KEY_STR; part++) {
        if (part > KEY_RANK) sqlbuf_add(b, ", ");
        sql_key_part(b, field, part);
        sqlbuf_add(b, "%s", suffix);
    }
}

/* The expression a field is constrained by in a unique index: NULL when the
 * field is missing or null, so that such documents never collide (as with
 * SQLite's json_extract); jsonb equality makes 1 and 1.0 the same value. */
static void unique_expr(sqlbuf *b, const char *field)
{
    const char *column = sql_system_column(field);
    if (column)
        sqlbuf_add(b, "%s", column);
    else
        sqlbuf_add(b, "(NULLIF(doc->'%s', 'null'::jsonb))", field);
}

static void check(sqlbuf *b, const schema_table *t, const char *field)
{
    char name[STORE_SQL_NAME_BYTES_MAX];
    ddl_check_name(t, field, name);
    sqlbuf_add(b,
               "CONSTRAINT \"%s\" CHECK (CASE WHEN jsonb_typeof(doc->'%s') = 'number' "
               "THEN (doc->'%s')::numeric >= 0 ELSE true END)",
               name, field, field);
}

#define PG_GUARD_OPS 3
static const char *const guard_ops[PG_GUARD_OPS] = {"update", "delete", "truncate"};

static void guard_trigger(sqlbuf *b, const schema_table *t, int op)
{
    static const char *const verbs[PG_GUARD_OPS] = {"UPDATE", "DELETE", "TRUNCATE"};
    ASSERT(op >= 0 && op < PG_GUARD_OPS);
    char name[STORE_SQL_NAME_BYTES_MAX];
    ddl_guard_name(t, guard_ops[op], name);
    sqlbuf_add(b,
               "CREATE TRIGGER \"%s\" BEFORE %s ON \"%s\" FOR EACH %s "
               "EXECUTE FUNCTION \"" PG_GUARD_FUNCTION "\"()",
               name, verbs[op], t->name, op == 2 ? "STATEMENT" : "ROW");
}

static void key_exprs(sqlbuf *b, const char *field)
{
    pg_key_exprs(b, field, "");
}

static const ddl_dialect pg_dialect = {
    .engine = "PostgreSQL",
    .ident_bytes_max = PG_IDENT_BYTES_MAX,
    .columns = "id TEXT COLLATE \"C\" PRIMARY KEY, creation_time DOUBLE PRECISION NOT NULL, "
               "doc JSONB NOT NULL",
    .check = check,
    .key_exprs = key_exprs,
    .unique_expr = unique_expr,
    .guard_ops = guard_ops,
    .n_guard_ops = PG_GUARD_OPS,
    .guard = guard_trigger,
};

/* --- reading and changing the schema (ddl_ops) ---------------------------------------- */

/* Runs DDL (several statements allowed) on the schema connection. */
static int ddl_exec(void *pg, const char *sql, const char *what, err_t *e)
{
    PGresult *res = PQexec(pg, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_error(e, pg, res, what);
    PQclear(res);
    return rc;
}

/* A catalog query with text parameters; the caller PQclears *res_out. */
static int ddl_query(void *pg, const char *sql, int n_params, const char *const *values,
                     PGresult **res_out, err_t *e)
{
    PGresult *res = PQexecParams(pg, sql, n_params, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pg_error(e, pg, res, "read the schema");
        PQclear(res);
        return rc;
    }
    *res_out = res;
    return 0;
}

/* "\"name\"", for to_regclass. */
static void quoted(const char *name, char out[STORE_SQL_NAME_BYTES_MAX + 2])
{
    snprintf(out, STORE_SQL_NAME_BYTES_MAX + 2, "\"%s\"", name);
}

/* The DDL an existing object was made with (its COMMENT; "" when it has
 * none), malloc'd, or NULL when there is no such object. */
static int stored_sql(void *pg, const ddl_object *o, char **out, err_t *e)
{
    *out = NULL;
    char table[STORE_SQL_NAME_BYTES_MAX + 2], self[STORE_SQL_NAME_BYTES_MAX + 2];
    quoted(o->table->name, table);
    quoted(o->name, self);
    const char *values[] = {o->type == DDL_TRIGGER ? table : self, o->name};
    const char *sql =
        o->type == DDL_TRIGGER
            ? "SELECT coalesce(obj_description(oid, 'pg_trigger'), '') FROM pg_trigger "
              "WHERE tgrelid = to_regclass($1) AND tgname = $2"
            : "SELECT coalesce(obj_description(oid, 'pg_class'), '') FROM pg_class "
              "WHERE oid = to_regclass($1) AND relkind = $2";
    if (o->type != DDL_TRIGGER) values[1] = o->type == DDL_TABLE ? "r" : "i";
    PGresult *res;
    int rc = ddl_query(pg, sql, 2, values, &res, e);
    if (rc) return rc;
    if (PQntuples(res) > 0) {
        *out = strdup(PQgetvalue(res, 0, 0));
        if (!*out) rc = err_set(e, ERR_NOMEM, "schema: out of memory");
    }
    PQclear(res);
    return rc;
}

/* Creates o and records its DDL as its COMMENT. */
static int create_object(void *pg, const ddl_object *o, err_t *e)
{
    static const char *const kinds[] = {"TABLE", "INDEX", "TRIGGER"};
    char *literal = PQescapeLiteral(pg, o->sql, strlen(o->sql));
    if (!literal) return pg_error(e, pg, NULL, "schema: quote DDL");
    size_t bytes = strlen(o->sql) + strlen(literal) + 3 * STORE_SQL_NAME_BYTES_MAX + 64;
    char *sql = malloc(bytes);
    int rc = 0;
    if (!sql) {
        rc = err_set(e, ERR_NOMEM, "schema: out of memory");
    } else {
        int n = snprintf(sql, bytes, "%s; COMMENT ON %s \"%s\"", o->sql, kinds[o->type], o->name);
        if (o->type == DDL_TRIGGER)
            n += snprintf(sql + n, bytes - (size_t)n, " ON \"%s\"", o->table->name);
        snprintf(sql + n, bytes - (size_t)n, " IS %s", literal);
        char what[STORE_SQL_NAME_BYTES_MAX + 16];
        snprintf(what, sizeof what, "create %s", o->name);
        rc = ddl_exec(pg, sql, what, e);
    }
    free(sql);
    PQfreemem(literal);
    return rc;
}

/* Names (rows of the first column) of a catalog query about one table. */
static int table_names(PGconn *pg, const char *sql, const schema_table *t, PGresult **res_out,
                       err_t *e)
{
    char table[STORE_SQL_NAME_BYTES_MAX + 2];
    quoted(t->name, table);
    const char *values[] = {table};
    return ddl_query(pg, sql, 1, values, res_out, e);
}

/* Drops the indexes and triggers of one declared table that the schema no
 * longer asks for (the primary key's index is not ours to drop). */
static int drop_undeclared(PGconn *pg, const schema_table *t, const ddl_plan *p, ddl_counts *n,
                           err_t *e)
{
    static const char *const lists[] = {
        "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = to_regclass($1) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) "
        "ORDER BY 1",
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal "
        "ORDER BY 1",
    };
    int rc = 0;
    for (int kind = 0; kind < 2 && rc == 0; kind++) {
        bool index = kind == 0;
        PGresult *res;
        rc = table_names(pg, lists[kind], t, &res, e);
        if (rc) break;
        for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
            const char *name = PQgetvalue(res, i, 0);
            if (ddl_plan_find(p, index ? DDL_INDEX : DDL_TRIGGER, name)) continue;
            char sql[3 * STORE_SQL_NAME_BYTES_MAX];
            if (index)
                snprintf(sql, sizeof sql, "DROP INDEX \"%s\"", name);
            else
                snprintf(sql, sizeof sql, "DROP TRIGGER \"%s\" ON \"%s\"", name, t->name);
            rc = ddl_exec(pg, sql, "drop an undeclared index or trigger", e);
            if (rc == 0) *(index ? &n->indexes_dropped : &n->triggers_dropped) += 1;
        }
        PQclear(res);
    }
    return rc;
}

/* Brings the CHECK constraints of an existing table to the declared ones
 * (its columns are the same for every schema), then records its DDL. */
static int alter_table(void *pg, const ddl_object *o, err_t *e)
{
    const schema_table *t = o->table;
    PGresult *res;
    int rc = table_names(pg,
                         "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass($1) "
                         "AND contype = 'c' ORDER BY 1",
                         t, &res, e);
    if (rc) return rc;
    char sql[DDL_BYTES_MAX];
    char what[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(what, sizeof what, "migrate table %s", t->name);
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" DROP CONSTRAINT \"%s\"", t->name,
                 PQgetvalue(res, i, 0));
        rc = ddl_exec(pg, sql, what, e);
    }
    PQclear(res);
    for (const char *const *f = t->nonnegative_fields; f && *f && rc == 0; f++) {
        sqlbuf b;
        sqlbuf_init(&b, sql, sizeof sql);
        sqlbuf_add(&b, "ALTER TABLE \"%s\" ADD ", t->name);
        check(&b, t, *f);
        ASSERT(!b.overflow);
        rc = ddl_exec(pg, sql, what, e);
    }
    char *literal = rc == 0 ? PQescapeLiteral(pg, o->sql, strlen(o->sql)) : NULL;
    if (rc == 0 && !literal) rc = pg_error(e, pg, NULL, what);
    if (rc == 0) {
        size_t bytes = strlen(literal) + STORE_SQL_NAME_BYTES_MAX + 32;
        char *comment = malloc(bytes);
        if (!comment) {
            rc = err_set(e, ERR_NOMEM, "schema: out of memory");
        } else {
            snprintf(comment, bytes, "COMMENT ON TABLE \"%s\" IS %s", t->name, literal);
            rc = ddl_exec(pg, comment, what, e);
            free(comment);
        }
    }
    PQfreemem(literal);
    return rc;
}

/* The function every append-only guard calls; replaced when it changed. */
static int ensure_guard_function(PGconn *pg, err_t *e)
{
    static const char body[] =
        "CREATE OR REPLACE FUNCTION \"" PG_GUARD_FUNCTION "\"() RETURNS trigger "
        "LANGUAGE plpgsql AS $dojo$BEGIN RAISE EXCEPTION "
        "'% is append-only: rows are never updated or deleted', TG_TABLE_NAME "
        "USING ERRCODE = 'restrict_violation'; END$dojo$";
    const char *values[] = {"\"" PG_GUARD_FUNCTION "\"()"};
    PGresult *res;
    int rc = ddl_query(pg,
                       "SELECT coalesce(obj_description(to_regprocedure($1), 'pg_proc'), '')"
                       " WHERE to_regprocedure($1) IS NOT NULL",
                       1, values, &res, e);
    if (rc) return rc;
    bool same = PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), body) == 0;
    PQclear(res);
    if (same) return 0;
    char *literal = PQescapeLiteral(pg, body, strlen(body));
    if (!literal) return pg_error(e, pg, NULL, "schema: quote DDL");
    char sql[2 * sizeof body + 128];
    snprintf(sql, sizeof sql, "%s; COMMENT ON FUNCTION \"" PG_GUARD_FUNCTION "\"() IS %s", body,
             literal);
    PQfreemem(literal);
    return ddl_exec(pg, sql, "create the append-only guard", e);
}

/* The schema version the database was last brought to; 0 when never. */
static int stored_version(void *pg, int *version, err_t *e)
{
    PGresult *res;
    int rc = ddl_query(pg, "SELECT value FROM _dojo_meta WHERE key = 'schema_version'", 0, NULL,
                       &res, e);
    if (rc) return rc;
    rc = ddl_parse_version(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "", version, e);
    PQclear(res);
    return rc;
}

/* Drops an index or trigger whose DDL changed. */
static int drop(void *pg, const ddl_object *o, err_t *e)
{
    char sql[3 * STORE_SQL_NAME_BYTES_MAX];
    if (o->type == DDL_INDEX)
        snprintf(sql, sizeof sql, "DROP INDEX \"%s\"", o->name);
    else
        snprintf(sql, sizeof sql, "DROP TRIGGER \"%s\" ON \"%s\"", o->name, o->table->name);
    return ddl_exec(pg, sql, "drop a changed index or trigger", e);
}

/* Before the declared objects: what each declared table no longer declares
 * goes, and the guard function is there for the guards. */
static int prepare(void *pg, const schema *s, const ddl_plan *p, ddl_counts *n, err_t *e)
{
    int rc = 0;
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        rc = drop_undeclared(pg, &s->tables[i], p, n, e);
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        if (s->tables[i].append_only) rc = ensure_guard_function(pg, e);
    return rc;
}

/* Two processes opening one database at once take turns on an advisory
 * lock, then on the write lock, so that DDL never races DDL nor a writer. */
static const ddl_ops pg_ddl_ops = {
    .dialect = &pg_dialect,
    .table_changed = "altered",
    .begin_sql = "SELECT pg_advisory_xact_lock(" PG_DDL_LOCK_KEY "); "
                 "CREATE TABLE IF NOT EXISTS _dojo_meta "
                 "(key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL); " PG_WRITE_LOCK_SQL,
    .begin_what = "lock the schema",
    .exec = ddl_exec,
    .stored_version = stored_version,
    .prepare = prepare,
    .stored_sql = stored_sql,
    .create = create_object,
    .change_table = alter_table,
    .drop = drop,
};

/* --- opening ------------------------------------------------------------------------- */

/* Connects once, migrates the database to s in one transaction, and names
 * the deployment's notification channel. */
int pg_prepare_database(pg_store *ps, const schema *s, char *report, err_t *e)
{
    PGconn *pg;
    int rc = pg_dial(ps, true, false, &pg, e);
    if (rc) return rc;
    /* DDL output such as "relation already exists, skipping" is not news. */
    rc =
        ddl_exec(pg, "SET client_min_messages = warning; BEGIN", "begin the schema transaction", e);
    if (rc == 0) {
        rc = ddl_migrate(&pg_ddl_ops, pg, s, report, e);
        if (rc == 0) rc = ddl_exec(pg, "COMMIT", "commit the schema", e);
        if (rc) PQclear(PQexec(pg, "ROLLBACK"));
    }
    if (rc == 0) rc = pg_name_channel(pg, ps, e);
    PQfinish(pg);
    return rc;
}
