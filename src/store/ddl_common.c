/*
 * ddl_common.c — the schema objects a declared schema asks for, and the
 * reconciliation of a database with them, for both engines (ddl_common.h).
 * Callers: sqlite_ddl.c and pg_ddl.c, from store_open.
 * Thread: the thread that opens the store.
 */
#include "store/ddl_common.h"

#include "store/sql_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- names -------------------------------------------------------------------------- */

void ddl_index_name(const schema_table *t, const schema_index *ix,
                    char out[STORE_SQL_NAME_BYTES_MAX])
{
    snprintf(out, STORE_SQL_NAME_BYTES_MAX, "%s_%s", t->name, ix->name);
}

void ddl_unique_name(const schema_table *t, const schema_index *ix,
                     char out[STORE_SQL_NAME_BYTES_MAX])
{
    snprintf(out, STORE_SQL_NAME_BYTES_MAX, "%s_%s_unique", t->name, ix->name);
}

void ddl_guard_name(const schema_table *t, const char *op, char out[STORE_SQL_NAME_BYTES_MAX])
{
    snprintf(out, STORE_SQL_NAME_BYTES_MAX, "%s_append_only_%s", t->name, op);
}

void ddl_check_name(const schema_table *t, const char *field, char out[STORE_SQL_NAME_BYTES_MAX])
{
    snprintf(out, STORE_SQL_NAME_BYTES_MAX, "%s_%s_nonnegative", t->name, field);
}

/* --- the DDL a schema asks for ------------------------------------------------------ */

void ddl_plan_free(ddl_plan *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->objects[i].sql);
    free(p->objects);
    p->objects = NULL;
    p->n = 0;
}

/* `CONSTRAINT "<t>_<field>_nonnegative" CHECK (…)`: the field's key column
 * holds a missing or null value (below the number tag), or a number at least
 * 0, or any other kind — only a negative number is refused (key_codec.h). */
static void check_sql(const ddl_dialect *d, sqlbuf *b, const schema_table *t, const char *field)
{
    char name[STORE_SQL_NAME_BYTES_MAX], column[SQL_COLUMN_BYTES_MAX];
    ddl_check_name(t, field, name);
    sql_column_of(field, column);
    sqlbuf_add(b, "CONSTRAINT \"%s\" CHECK (\"%s\" < ", name, column);
    d->bytes_literal(b, "10");
    sqlbuf_add(b, " OR \"%s\" >= ", column);
    d->bytes_literal(b, "1080");
    sqlbuf_add(b, ")");
}

void ddl_table_sql(const ddl_dialect *d, sqlbuf *b, const schema_table *t, const char *name)
{
    sql_layout l;
    err_t e;
    err_init(&e);
    if (sql_layout_of(t, &l, &e) != 0) { /* refused by ddl_plan_schema first */
        b->overflow = true;
        return;
    }
    sqlbuf_add(b,
               "CREATE TABLE \"%s\" (" SQL_ID_COLUMN " %s PRIMARY KEY, " SQL_CREATION_TIME_COLUMN
               " %s NOT NULL",
               name, d->id_type, d->time_type);
    for (int i = 0; i < l.n_keys; i++)
        sqlbuf_add(b, ", \"k_%s\" %s NOT NULL", l.key_fields[i], d->bytes_type);
    sqlbuf_add(b, ", " SQL_DATA_COLUMN " %s NOT NULL", d->bytes_type);
    for (const char *const *f = t->nonnegative_fields; f && *f; f++) {
        sqlbuf_add(b, ", ");
        check_sql(d, b, t, *f);
    }
    sqlbuf_add(b, ")");
}

static void index_sql(sqlbuf *b, const schema_table *t, const schema_index *ix)
{
    char name[STORE_SQL_NAME_BYTES_MAX], column[SQL_COLUMN_BYTES_MAX];
    ddl_index_name(t, ix, name);
    sqlbuf_add(b, "CREATE INDEX \"%s\" ON \"%s\" (", name, t->name);
    for (int i = 0; i < schema_key_len(ix); i++) {
        sql_column_of(sql_key_field(ix, i), column);
        sqlbuf_add(b, "%s\"%s\"", i > 0 ? ", " : "", column);
    }
    sqlbuf_add(b, ")");
}

/* Unique over the fields alone, for documents where none of them is missing
 * or null (those never collide). */
static void unique_index_sql(const ddl_dialect *d, sqlbuf *b, const schema_table *t,
                             const schema_index *ix)
{
    char name[STORE_SQL_NAME_BYTES_MAX], column[SQL_COLUMN_BYTES_MAX];
    ddl_unique_name(t, ix, name);
    sqlbuf_add(b, "CREATE UNIQUE INDEX \"%s\" ON \"%s\" (", name, t->name);
    for (int i = 0; i < ix->n_fields; i++) {
        sql_column_of(ix->fields[i], column);
        sqlbuf_add(b, "%s\"%s\"", i > 0 ? ", " : "", column);
    }
    sqlbuf_add(b, ")");
    int n_conditions = 0;
    for (int i = 0; i < ix->n_fields; i++) {
        if (sql_system_column(ix->fields[i])) continue;
        sql_column_of(ix->fields[i], column);
        sqlbuf_add(b, "%s\"%s\" <> ", n_conditions++ ? " AND " : " WHERE ", column);
        d->bytes_literal(b, "00");
    }
}

/* Appends one object with the DDL in b, refusing a name given twice or one
 * the database would cut short. */
static int plan_add(const ddl_dialect *d, ddl_plan *p, ddl_type type, const schema_table *t,
                    const char *name, const sqlbuf *b, err_t *e)
{
    if (b->overflow)
        return err_set(e, ERR_INTERNAL, "schema: the DDL of %s is longer than %d bytes", name,
                       DDL_BYTES_MAX);
    if (d->ident_bytes_max && strlen(name) > d->ident_bytes_max)
        return err_set(e, ERR_INTERNAL, "schema: the name %s is longer than %s's %zu-byte limit",
                       name, d->engine, d->ident_bytes_max);
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->objects[i].name, name) == 0)
            return err_set(e, ERR_INTERNAL, "schema: two schema objects are named %s", name);
    ddl_object *o = &p->objects[p->n];
    o->type = type;
    o->table = t;
    snprintf(o->name, sizeof o->name, "%s", name);
    o->sql = strdup(b->text);
    if (!o->sql) return err_set(e, ERR_NOMEM, "schema: out of memory");
    p->n++;
    return 0;
}

/* Refuses a key column whose name the database would cut short. */
static int check_columns(const ddl_dialect *d, const schema_table *t, err_t *e)
{
    sql_layout l;
    int rc = sql_layout_of(t, &l, e);
    for (int i = 0; i < l.n_keys && rc == 0 && d->ident_bytes_max; i++) {
        char column[SQL_COLUMN_BYTES_MAX];
        sql_column_of(l.key_fields[i], column);
        if (strlen(column) > d->ident_bytes_max)
            rc = err_set(e, ERR_INTERNAL,
                         "schema: the column %s of %s is longer than %s's %zu-byte limit", column,
                         t->name, d->engine, d->ident_bytes_max);
    }
    return rc;
}

static int plan_table(const ddl_dialect *d, ddl_plan *p, const schema_table *t, char *ddl, err_t *e)
{
    char name[STORE_SQL_NAME_BYTES_MAX];
    sqlbuf b;
    int rc = check_columns(d, t, e);
    if (rc) return rc;
    sqlbuf_init(&b, ddl, DDL_BYTES_MAX);
    ddl_table_sql(d, &b, t, t->name);
    rc = plan_add(d, p, DDL_TABLE, t, t->name, &b, e);
    for (int i = -1; i < t->n_indexes && rc == 0; i++) {
        const schema_index *ix = i < 0 ? &schema_by_creation_time : &t->indexes[i];
        sqlbuf_init(&b, ddl, DDL_BYTES_MAX);
        index_sql(&b, t, ix);
        ddl_index_name(t, ix, name);
        rc = plan_add(d, p, DDL_INDEX, t, name, &b, e);
        if (rc || !ix->unique) continue;
        sqlbuf_init(&b, ddl, DDL_BYTES_MAX);
        unique_index_sql(d, &b, t, ix);
        ddl_unique_name(t, ix, name);
        rc = plan_add(d, p, DDL_INDEX, t, name, &b, e);
    }
    for (int op = 0; op < d->n_guard_ops && rc == 0 && t->append_only; op++) {
        sqlbuf_init(&b, ddl, DDL_BYTES_MAX);
        d->guard(&b, t, op);
        ddl_guard_name(t, d->guard_ops[op], name);
        rc = plan_add(d, p, DDL_TRIGGER, t, name, &b, e);
    }
    return rc;
}

int ddl_plan_schema(const ddl_dialect *d, const schema *s, ddl_plan *p, err_t *e)
{
    size_t n_max = 1;
    for (int i = 0; i < s->n_tables; i++) /* the table, its implicit index, the guards */
        n_max += 2 + (size_t)d->n_guard_ops + 2 * (size_t)s->tables[i].n_indexes;
    p->n = 0;
    p->objects = calloc(n_max, sizeof *p->objects);
    char *ddl = malloc(DDL_BYTES_MAX);
    int rc = (p->objects && ddl) ? 0 : err_set(e, ERR_NOMEM, "schema: out of memory");
    for (int i = 0; i < s->n_tables && rc == 0; i++)
        rc = plan_table(d, p, &s->tables[i], ddl, e);
    free(ddl);
    if (rc) ddl_plan_free(p);
    return rc;
}

const ddl_object *ddl_plan_find(const ddl_plan *p, ddl_type type, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (p->objects[i].type == type && strcmp(p->objects[i].name, name) == 0)
            return &p->objects[i];
    return NULL;
}

/* --- bringing a database in line ---------------------------------------------------- */

/* Creates a declared table, or rebuilds one whose DDL differs (keeping its
 * rows; its indexes and triggers follow in ensure_object). A table of an
 * older storage format always differs. */
static int ensure_table(const ddl_ops *ops, void *db, const ddl_object *o, int format,
                        ddl_counts *n, err_t *e)
{
    char *stored;
    int rc = ops->stored_sql(db, o, &stored, e);
    if (rc) return rc;
    if (!stored) {
        rc = ops->create(db, o, e);
        if (rc == 0) n->tables_created++;
    } else if (strcmp(stored, o->sql) != 0) {
        rc = ops->rebuild_table(db, o, format, &n->docs_rewritten, e);
        if (rc == 0) n->tables_changed++;
        if (rc == 0 && format < STORE_FORMAT) n->tables_upgraded++;
    }
    free(stored);
    return rc;
}

/* Creates an index or trigger, replacing one of that name whose DDL differs. */
static int ensure_object(const ddl_ops *ops, void *db, const ddl_object *o, ddl_counts *n, err_t *e)
{
    char *stored;
    int rc = ops->stored_sql(db, o, &stored, e);
    if (rc || (stored && strcmp(stored, o->sql) == 0)) {
        free(stored);
        return rc;
    }
    bool index = o->type == DDL_INDEX;
    if (stored) {
        rc = ops->drop(db, o, e);
        if (rc == 0) *(index ? &n->indexes_dropped : &n->triggers_dropped) += 1;
        free(stored);
    }
    if (rc == 0) rc = ops->create(db, o, e);
    if (rc == 0) *(index ? &n->indexes_created : &n->triggers_created) += 1;
    return rc;
}

static int apply_plan(const ddl_ops *ops, void *db, const schema *s, const ddl_plan *p, int format,
                      ddl_counts *n, err_t *e)
{
    int rc = ops->prepare(db, s, p, n, e);
    for (int i = 0; i < p->n && rc == 0; i++)
        if (p->objects[i].type == DDL_TABLE)
            rc = ensure_table(ops, db, &p->objects[i], format, n, e);
    for (int i = 0; i < p->n && rc == 0; i++)
        if (p->objects[i].type != DDL_TABLE) rc = ensure_object(ops, db, &p->objects[i], n, e);
    return rc;
}

/* "created 3 tables, 8 indexes; dropped 1 index" — or "" when nothing changed. */
static void add_phrase(sqlbuf *b, const char *verb, int tables, int indexes, int triggers)
{
    if (!tables && !indexes && !triggers) return;
    sqlbuf_add(b, "%s%s", b->len ? "; " : "", verb);
    const char *sep = " ";
    if (tables) sqlbuf_add(b, "%s%d table%s", sep, tables, tables == 1 ? "" : "s");
    if (tables) sep = ", ";
    if (indexes) sqlbuf_add(b, "%s%d index%s", sep, indexes, indexes == 1 ? "" : "es");
    if (indexes) sep = ", ";
    if (triggers) sqlbuf_add(b, "%s%d trigger%s", sep, triggers, triggers == 1 ? "" : "s");
}

/* The same sentences for both engines. */
static void write_report(char *report, int from, int to, const ddl_counts *n)
{
    char text[STORE_REPORT_BYTES_MAX - 160]; /* room for the words around it */
    sqlbuf b;
    sqlbuf_init(&b, text, sizeof text);
    add_phrase(&b, "created", n->tables_created, n->indexes_created, n->triggers_created);
    add_phrase(&b, "rebuilt", n->tables_changed - n->tables_upgraded, 0, 0);
    add_phrase(&b, "dropped", 0, n->indexes_dropped, n->triggers_dropped);
    bool changed = b.len > 0;
    char upgrade[160] = "";
    if (n->tables_upgraded)
        snprintf(upgrade, sizeof upgrade,
                 "upgraded storage format %d → %d (%lld document%s in %d table%s rewritten); ",
                 n->format_from, STORE_FORMAT, n->docs_rewritten, n->docs_rewritten == 1 ? "" : "s",
                 n->tables_upgraded, n->tables_upgraded == 1 ? "" : "s");
    /* The report's own buffer: its parts are bounded above so that the
     * sentence fits; one that did not would end cut, never overrun. */
    sqlbuf r;
    sqlbuf_init(&r, report, STORE_REPORT_BYTES_MAX);
    if (n->tables_upgraded && from == to) {
        upgrade[strlen(upgrade) - 2] = '\0'; /* without its "; " */
        sqlbuf_add(&r, "%s: %s (schema version %d)", upgrade, changed ? text : "no other changes",
                   to);
    } else if (from < to && from > 0)
        sqlbuf_add(&r, "%smigrated schema %d → %d: %s", upgrade, from, to,
                   changed ? text : "no DDL changes");
    else if (from == 0 && changed)
        sqlbuf_add(&r, "%s%s (schema version %d)", upgrade, text, to);
    else if (from == 0)
        sqlbuf_add(&r, "%sadopted the existing tables (schema version %d)", upgrade, to);
    else if (changed)
        sqlbuf_add(&r, "%srepaired schema (version %d): %s", upgrade, to, text);
    else
        sqlbuf_add(&r, "%sschema up to date (version %d)", upgrade, to);
}

int ddl_parse_version(const char *text, int *version, err_t *e)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (text[0] && (*end || v < 1 || v > 1000000))
        return err_set(e, ERR_STORAGE, "_dojo_meta holds a bad schema_version '%s'", text);
    *version = text[0] ? (int)v : 0;
    return 0;
}

/* The storage format of db: the stored one, else 1 when some declared table
 * exists already (written before formats were recorded), else this one. */
static int stored_format(const ddl_ops *ops, void *db, const ddl_plan *p, int *format, err_t *e)
{
    char text[64];
    int rc = ops->meta_text(db, STORE_FORMAT_KEY, text, e);
    if (rc) return rc;
    if (text[0]) {
        char *end;
        long v = strtol(text, &end, 10);
        if (*end || v < 1 || v > 1000)
            return err_set(e, ERR_STORAGE, "_dojo_meta holds a bad %s '%s'", STORE_FORMAT_KEY,
                           text);
        *format = (int)v;
        return 0;
    }
    *format = STORE_FORMAT;
    for (int i = 0; i < p->n && rc == 0; i++) {
        if (p->objects[i].type != DDL_TABLE) continue;
        char *stored = NULL;
        rc = ops->stored_sql(db, &p->objects[i], &stored, e);
        if (stored) *format = 1;
        free(stored);
    }
    return rc;
}

static _Thread_local int last_format_from = STORE_FORMAT;

int ddl_last_format_from(void)
{
    return last_format_from;
}

int ddl_migrate(const ddl_ops *ops, void *db, const schema *s, char *report, err_t *e)
{
    last_format_from = STORE_FORMAT;
    int rc = ops->exec(db, ops->begin_sql, ops->begin_what, e);
    char text[64];
    int from = 0;
    if (rc == 0) rc = ops->meta_text(db, "schema_version", text, e);
    if (rc == 0) rc = ddl_parse_version(text, &from, e);
    if (rc) return rc;
    if (from > s->version)
        return err_set(e, ERR_STORAGE,
                       "database schema version %d is newer than this dojo (%d); upgrade dojo",
                       from, s->version);
    ddl_plan plan;
    rc = ddl_plan_schema(ops->dialect, s, &plan, e);
    if (rc) return rc;
    int format = STORE_FORMAT;
    rc = stored_format(ops, db, &plan, &format, e);
    if (rc == 0 && format > STORE_FORMAT)
        rc = err_set(e, ERR_STORAGE,
                     "database storage format %d is newer than this dojo (%d); upgrade dojo",
                     format, STORE_FORMAT);
    ddl_counts n = {.format_from = format};
    last_format_from = format;
    if (rc == 0) rc = apply_plan(ops, db, s, &plan, format, &n, e);
    ddl_plan_free(&plan);
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT INTO _dojo_meta (key, value) VALUES ('schema_version', '%d'), "
             "('" STORE_FORMAT_KEY
             "', '%d') ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             s->version, STORE_FORMAT);
    if (rc == 0) rc = ops->exec(db, sql, "record the schema version", e);
    if (rc == 0) write_report(report, from, s->version, &n);
    return rc;
}
