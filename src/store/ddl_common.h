/*
 * ddl_common.h — how both engines derive their schema objects from a
 * declared schema and bring a database in line with it; private to
 * src/store/. What is the same for SQLite and PostgreSQL lives here: the
 * names of the objects, the plan of every object the schema asks for (per
 * table the table, then its indexes, then its append-only guards), the
 * order in which a database is reconciled with that plan, the schema
 * version kept in _dojo_meta, and the one-line report of what changed.
 * What differs is handed in: the SQL an engine writes (ddl_dialect) and how
 * it reads and changes its catalog (ddl_ops).
 *
 * An engine keeps, with each object, the exact DDL that made it (SQLite's
 * sqlite_master does so by itself; on PostgreSQL it is the object's COMMENT),
 * so reopening compares texts: a planned object whose text differs is
 * replaced, a declared table whose text differs is rebuilt keeping its rows
 * (its key columns follow its indexes). A database in an older storage
 * format (store_format in _dojo_meta; sql_common.h) has every declared table
 * rebuilt in the current one, in the same transaction as the rest.
 * Thread: the thread that opens the store (store_open), on its own
 * connection.
 */
#ifndef DOJO_STORE_DDL_COMMON_H
#define DOJO_STORE_DDL_COMMON_H

#include "store/sqlbuf.h"
#include "store/store_impl.h"

#define DDL_BYTES_MAX 16384 /* a generated CREATE statement */

/* --- names ------------------------------------------------------------------ */

/* "<table>_<index>": the index over an index's full key. */
void ddl_index_name(const schema_table *t, const schema_index *ix,
                    char out[STORE_SQL_NAME_BYTES_MAX]);
/* "<table>_<index>_unique": a unique index's constraint over its fields. */
void ddl_unique_name(const schema_table *t, const schema_index *ix,
                     char out[STORE_SQL_NAME_BYTES_MAX]);
/* "<table>_append_only_<op>": the guard that refuses op ("update", …). */
void ddl_guard_name(const schema_table *t, const char *op, char out[STORE_SQL_NAME_BYTES_MAX]);
/* "<table>_<field>_nonnegative": the CHECK of a nonnegative field. */
void ddl_check_name(const schema_table *t, const char *field, char out[STORE_SQL_NAME_BYTES_MAX]);

/* --- the plan ---------------------------------------------------------------- */

typedef enum { DDL_TABLE, DDL_INDEX, DDL_TRIGGER } ddl_type;

/* One schema object the declared schema asks for. */
typedef struct ddl_object {
    ddl_type type;
    char name[STORE_SQL_NAME_BYTES_MAX];
    const schema_table *table;
    char *sql; /* malloc'd; exactly as the engine keeps it with the object */
} ddl_object;

typedef struct ddl_plan {
    ddl_object *objects;
    int n;
} ddl_plan;

/* The SQL of one engine's schema objects. */
typedef struct ddl_dialect {
    const char *engine;     /* "PostgreSQL", in messages */
    size_t ident_bytes_max; /* longest name the database keeps whole; 0: no limit */
    /* The column types of a row (sql_common.h's layout), in CREATE TABLE. */
    const char *id_type;    /* "TEXT", with what makes it the primary key */
    const char *time_type;  /* of creation_time */
    const char *bytes_type; /* of key columns and data */
    /* Appends a literal of the bytes written as hex digits ("1080"). */
    void (*bytes_literal)(sqlbuf *b, const char *hex);
    /* Operations an append-only table refuses, lower-case, in plan order. */
    const char *const *guard_ops;
    int n_guard_ops;
    /* The CREATE TRIGGER of the guard against guard_ops[op]. */
    void (*guard)(sqlbuf *b, const schema_table *t, int op);
} ddl_dialect;

/* The CREATE TABLE of t as the plan has it, named `name` (t's own name, or a
 * scratch name while a table is rebuilt). */
void ddl_table_sql(const ddl_dialect *d, sqlbuf *b, const schema_table *t, const char *name);

/* Every object s asks for, in plan order. */
int ddl_plan_schema(const ddl_dialect *d, const schema *s, ddl_plan *p, err_t *e);
void ddl_plan_free(ddl_plan *p);
const ddl_object *ddl_plan_find(const ddl_plan *p, ddl_type type, const char *name);

/* --- bringing a database in line ---------------------------------------------- */

typedef struct ddl_counts {
    int tables_created, tables_changed; /* changed: rebuilt */
    int indexes_created, indexes_dropped;
    int triggers_created, triggers_dropped;
    int format_from;     /* the storage format the database had */
    int tables_upgraded; /* rebuilt from an older storage format */
    long long docs_rewritten;
} ddl_counts;

/* How one engine reads and changes its schema; db is its connection. */
typedef struct ddl_ops {
    const ddl_dialect *dialect;
    const char *begin_sql; /* creates _dojo_meta if needed, takes the schema's locks */
    const char *begin_what;
    /* Runs SQL that returns no rows. */
    int (*exec)(void *db, const char *sql, const char *what, err_t *e);
    /* A value of _dojo_meta into out ("" when the key is absent). */
    int (*meta_text)(void *db, const char *key, char out[64], err_t *e);
    /* Before the declared objects: drops the indexes and triggers of declared
     * tables that the plan no longer has (counting them), and whatever else
     * the objects need. */
    int (*prepare)(void *db, const schema *s, const ddl_plan *p, ddl_counts *n, err_t *e);
    /* The DDL o was made with (malloc'd), or NULL when there is no such object. */
    int (*stored_sql)(void *db, const ddl_object *o, char **out, err_t *e);
    int (*create)(void *db, const ddl_object *o, err_t *e);
    /* Rebuilds an existing table as o's DDL asks, keeping its rows: they are
     * read in storage format from_format (1: JSON documents; 2: this
     * layout, whatever key columns it had) and written in this one, their
     * key columns computed again. Its indexes and triggers go with the old
     * table; ensure_object makes the declared ones afterwards. Adds the
     * rows it copied to *docs. */
    int (*rebuild_table)(void *db, const ddl_object *o, int from_format, long long *docs, err_t *e);
    /* Drops an index or trigger whose DDL changed. */
    int (*drop)(void *db, const ddl_object *o, err_t *e);
} ddl_ops;

/* Reads a schema_version value ("" when the key is absent) into *version. */
int ddl_parse_version(const char *text, int *version, err_t *e);

/* Brings the schema of db to s, inside the caller's transaction, and writes
 * what it changed into report (STORE_REPORT_BYTES_MAX bytes): "created 3
 * tables, 9 indexes, 2 triggers (schema version 1)", "migrated schema 1 → 2:
 * …", "repaired schema (version 1): …", "adopted the existing tables
 * (schema version 1)" or "schema up to date (version 1)" — preceded, when
 * the storage format was upgraded, by "upgraded storage format 1 → 2 (N
 * documents rewritten); ". */
int ddl_migrate(const ddl_ops *ops, void *db, const schema *s, char *report, err_t *e);
/* The storage format the last ddl_migrate of this thread found (1 when it
 * upgraded a database of format 1). */
int ddl_last_format_from(void);

#endif
