/*
 * pg_ddl.c — the schema of a PostgreSQL database: the SQL of the objects a
 * declared schema asks for (ddl_common.c plans them) and bringing an
 * existing database in line with them.
 *
 * Layout (see store.h, sql_common.h): per table T a SQL table T(id TEXT
 * COLLATE "C" PRIMARY KEY, creation_time DOUBLE PRECISION, k_<field>
 * BYTEA…, data BYTEA) with one CHECK per nonnegative field; per index an
 * index "T_<index>" over its key columns then (creation_time, id); a unique
 * index also gets "T_<index>_unique" over its fields alone; every table has
 * "T_by_creation_time"; append-only tables get three triggers (UPDATE,
 * DELETE, TRUNCATE) that call _dojo_append_only_guard, which raises "<T> is
 * append-only: …". Each created object carries the DDL that made it as its
 * COMMENT, the way sqlite_master keeps it for SQLite, so that reopening can
 * tell what changed; a table whose DDL changed (its key columns, its CHECKs,
 * or the storage format 1 it was written in) is rebuilt: a new table is
 * filled with its rows, each document read and its key columns computed
 * again, then takes its name.
 *
 * Key order: the key columns hold key_codec.h's bytes, and bytea compares
 * bytewise — schema.h's order, the same as SQLite's (format 1 needed three
 * typed columns per field here, as jsonb's own order is not schema.h's).
 *
 * Callers: store_pg_open (pg_conn.c), once per store_open; truncation
 * (store_truncate_all, here) on the writer.
 * Thread: the thread that opens the store.
 */
#include "base/invariant.h"
#include "store/pg_impl.h"

#include "store/ddl_common.h"
#include "store/doc_codec.h"
#include "store/sql_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_GUARD_FUNCTION "_dojo_append_only_guard"
#define PG_REBUILD_TABLE "_dojo_rebuild"
/* Serializes schema changes of processes opening the same database at once. */
#define PG_DDL_LOCK_KEY "7236828216384647217"

/* --- the SQL of the schema's objects ------------------------------------------------ */

static void bytes_literal(sqlbuf *b, const char *hex)
{
    sqlbuf_add(b, "'\\x%s'::bytea", hex);
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

static const ddl_dialect pg_dialect = {
    .engine = "PostgreSQL",
    .ident_bytes_max = PG_IDENT_BYTES_MAX,
    .id_type = "TEXT COLLATE \"C\"",
    .time_type = "DOUBLE PRECISION",
    .bytes_type = "BYTEA",
    .bytes_literal = bytes_literal,
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

/* --- rebuilding a table ------------------------------------------------------------- */

/* The length of the JSON number at s (within len), and whether it is an
 * integer literal too large for int64 (jsonb prints 1e300 as 1000…0). */
static size_t number_token(const char *s, size_t len, bool *too_big)
{
    size_t i = 0;
    bool negative = s[0] == '-';
    if (negative) i++;
    size_t digits_at = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    size_t digits = i - digits_at;
    bool integer = i >= len || (s[i] != '.' && s[i] != 'e' && s[i] != 'E');
    while (i < len && strchr("0123456789.eE+-", s[i]))
        i++;
    const char *limit = negative ? "9223372036854775808" : "9223372036854775807";
    *too_big = integer && (digits > 19 || (digits == 19 && memcmp(s + digits_at, limit, 19) > 0));
    return i;
}

/* A copy of the JSON text with ".0" after every integer literal beyond int64,
 * so that jansson reads it as the real it was; NULL when there is none (or
 * out of memory). */
static char *widen_big_integers(const char *text, size_t len, size_t *len_out)
{
    char *out = malloc(len + len / 10 + 3); /* a widened literal has >= 20 digits */
    if (!out) return NULL;
    size_t n = 0;
    bool in_string = false, widened = false;
    for (size_t i = 0; i < len;) {
        char ch = text[i];
        if (in_string) {
            out[n++] = text[i++];
            if (ch == '\\' && i < len)
                out[n++] = text[i++];
            else if (ch == '"')
                in_string = false;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            bool too_big;
            size_t k = number_token(text + i, len - i, &too_big);
            memcpy(out + n, text + i, k);
            n += k;
            i += k;
            if (too_big) {
                memcpy(out + n, ".0", 2);
                n += 2;
                widened = true;
            }
        } else {
            in_string = ch == '"';
            out[n++] = text[i++];
        }
    }
    if (!widened) {
        free(out);
        return NULL;
    }
    *len_out = n;
    return out;
}

/* A document of storage format 1: jsonb as PostgreSQL prints it. */
static json_t *parse_v1_doc(const char *text, size_t len)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    if (doc) return doc;
    size_t wide_len = 0;
    char *wide = widen_big_integers(text, len, &wide_len);
    if (wide) doc = json_loadb(wide, wide_len, 0, NULL);
    free(wide);
    return doc;
}

/* The document of row i of a binary SELECT of (id, creation_time, doc::text
 * or data) from a table of storage format `format`. */
static int old_row_doc(const PGresult *res, int i, int format, const char *what, json_t **doc,
                       err_t *e)
{
    const char *id = PQgetvalue(res, i, 0);
    double ct = pg_binary_double(res, i, 1);
    const char *bytes = PQgetvalue(res, i, 2);
    size_t len = (size_t)PQgetlength(res, i, 2);
    if (format >= 2) return doc_decode((const uint8_t *)bytes, len, id, ct, doc, what, e);
    *doc = parse_v1_doc(bytes, len);
    if (!json_is_object(*doc)) {
        json_decref(*doc);
        *doc = NULL;
        return err_set(e, ERR_STORAGE, "%s: the document of %s is not a JSON object", what, id);
    }
    if (json_object_set_new(*doc, "_id", json_string(id)) ||
        json_object_set_new(*doc, "_creationTime", json_real(ct)))
        return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    return 0;
}

/* Inserts the rows of one fetched batch into `into`, in layout l. */
static int copy_batch(PGconn *pg, const PGresult *rows, const sql_layout *l, int format,
                      const char *insert, const char *what, long long *docs, err_t *e)
{
    int rc = 0;
    for (int i = 0; i < PQntuples(rows) && rc == 0; i++) {
        json_t *doc = NULL;
        sql_row row;
        rc = old_row_doc(rows, i, format, what, &doc, e);
        if (rc == 0) rc = sql_row_of(l, doc, &row, what, e);
        if (rc) {
            json_decref(doc);
            break;
        }
        sql_value params[SQL_KEY_COLUMNS_MAX + 3];
        int n = sql_insert_params(&row, params);
        pg_params p;
        pg_params_of(params, n, &p);
        PGresult *res =
            PQexecParams(pg, insert, n, p.types, p.values, p.lengths, p.formats, 1 /* binary */);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = pg_error(e, pg, res, what);
        PQclear(res);
        sql_row_free(&row);
        json_decref(doc); /* after the row, which borrows its _id */
        (*docs)++;
    }
    return rc;
}

/* Copies every row of table o (storage format `format`) into `into`, in the
 * new layout, a batch at a time through a cursor. */
static int copy_rows(PGconn *pg, const ddl_object *o, const char *into, int format, long long *docs,
                     err_t *e)
{
    char what[STORE_SQL_NAME_BYTES_MAX + 32], insert[SQL_TEXT_BYTES_MAX], sql[DDL_BYTES_MAX];
    snprintf(what, sizeof what, "migrate table %s", o->name);
    sql_layout l;
    int rc = sql_layout_of(o->table, &l, e);
    if (rc) return rc;
    sqlbuf b;
    sqlbuf_init(&b, insert, sizeof insert);
    /* The new table's INSERT, aimed at its scratch name. */
    sql_layout into_l = l;
    schema_table scratch = *o->table;
    scratch.name = into;
    into_l.table = &scratch;
    sql_insert_text(&pg_driver, &into_l, &b);
    ASSERT(!b.overflow);
    snprintf(sql, sizeof sql,
             "DECLARE _dojo_rebuild_rows NO SCROLL CURSOR FOR SELECT id, creation_time, %s "
             "FROM \"%s\"",
             format >= 2 ? SQL_DATA_COLUMN : "doc::text", o->name);
    rc = ddl_exec(pg, sql, what, e);
    while (rc == 0) {
        PGresult *rows = PQexecParams(pg, "FETCH 1000 FROM _dojo_rebuild_rows", 0, NULL, NULL, NULL,
                                      NULL, 1 /* binary */);
        if (PQresultStatus(rows) != PGRES_TUPLES_OK) rc = pg_error(e, pg, rows, what);
        int n = rc == 0 ? PQntuples(rows) : 0;
        if (rc == 0) rc = copy_batch(pg, rows, &l, format, insert, what, docs, e);
        PQclear(rows);
        if (n == 0) break;
    }
    if (rc == 0) rc = ddl_exec(pg, "CLOSE _dojo_rebuild_rows", what, e);
    return rc;
}

/* Rebuilds a table whose DDL changed (its key columns, its CHECKs, its
 * storage format), keeping its rows: a new table under a scratch name is
 * filled, the old one (with its indexes and triggers) dropped, and the new
 * one takes its name — and its primary key index the old one's — and
 * records its DDL. */
static int rebuild_table(void *pg, const ddl_object *o, int from_format, long long *docs, err_t *e)
{
    const char *scratch = PG_REBUILD_TABLE;
    char what[STORE_SQL_NAME_BYTES_MAX + 32];
    snprintf(what, sizeof what, "migrate table %s", o->name);
    char *sql = malloc(DDL_BYTES_MAX);
    if (!sql) return err_set(e, ERR_NOMEM, "schema: out of memory");
    sqlbuf b;
    sqlbuf_init(&b, sql, DDL_BYTES_MAX);
    ddl_table_sql(&pg_dialect, &b, o->table, scratch);
    int rc = b.overflow ? err_set(e, ERR_INTERNAL, "%s: DDL too long", what) : 0;
    if (rc == 0) rc = ddl_exec(pg, sql, what, e);
    if (rc == 0) rc = copy_rows(pg, o, scratch, from_format, docs, e);
    if (rc == 0) {
        snprintf(sql, DDL_BYTES_MAX,
                 "DROP TABLE \"%s\"; ALTER TABLE \"%s\" RENAME TO \"%s\"; "
                 "ALTER INDEX \"%s_pkey\" RENAME TO \"%s_pkey\"",
                 o->name, scratch, o->name, scratch, o->name);
        rc = ddl_exec(pg, sql, what, e);
    }
    char *literal = rc == 0 ? PQescapeLiteral(pg, o->sql, strlen(o->sql)) : NULL;
    if (rc == 0 && !literal) rc = pg_error(e, pg, NULL, what);
    if (rc == 0) {
        snprintf(sql, DDL_BYTES_MAX, "COMMENT ON TABLE \"%s\" IS %s", o->name, literal);
        rc = ddl_exec(pg, sql, what, e);
    }
    PQfreemem(literal);
    free(sql);
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

/* A value of _dojo_meta into out ("" when the key is absent). */
static int meta_text(void *pg, const char *key, char out[64], err_t *e)
{
    const char *values[] = {key};
    PGresult *res;
    int rc = ddl_query(pg, "SELECT value FROM _dojo_meta WHERE key = $1", 1, values, &res, e);
    if (rc) return rc;
    snprintf(out, 64, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
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
    .begin_sql = "SELECT pg_advisory_xact_lock(" PG_DDL_LOCK_KEY "); "
                 "CREATE TABLE IF NOT EXISTS _dojo_meta "
                 "(key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL); " PG_WRITE_LOCK_SQL,
    .begin_what = "lock the schema",
    .exec = ddl_exec,
    .meta_text = meta_text,
    .prepare = prepare,
    .stored_sql = stored_sql,
    .create = create_object,
    .rebuild_table = rebuild_table,
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

/* --- truncation (import --replace) ---------------------------------------------------- */

/* Empties one table with DELETE rather than TRUNCATE: DELETE is MVCC-safe (a
 * reader's older snapshot still sees the rows) where TRUNCATE is not. On an
 * append-only table its DELETE guard is disabled around it, inside the
 * transaction, so a rollback restores it too. */
static int truncate_table(pg_conn *c, const schema_table *t, err_t *e)
{
    char sql[DDL_BYTES_MAX], guard[STORE_SQL_NAME_BYTES_MAX];
    ddl_guard_name(t, "delete", guard);
    int rc = 0;
    if (t->append_only) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" DISABLE TRIGGER \"%s\"", t->name, guard);
        rc = pg_run_simple(c, sql, "truncate: disable guard", e);
    }
    snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", t->name);
    if (rc == 0) rc = pg_run_simple(c, sql, "truncate", e);
    if (rc == 0 && t->append_only) {
        snprintf(sql, sizeof sql, "ALTER TABLE \"%s\" ENABLE TRIGGER \"%s\"", t->name, guard);
        rc = pg_run_simple(c, sql, "truncate: enable guard", e);
    }
    return rc;
}

int pg_truncate_all(store_conn *sc, err_t *e)
{
    pg_conn *c = pg_conn_of(sc);
    ASSERT(c->writer && c->in_txn && "truncate outside a write transaction");
    const schema *s = c->base.st->schema;
    for (int i = 0; i < s->n_tables; i++) {
        int rc = truncate_table(c, &s->tables[i], e);
        if (rc) return rc;
    }
    return 0;
}
