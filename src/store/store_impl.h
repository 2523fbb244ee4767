/*
 * store_impl.h — what a storage engine provides, private to src/store/.
 *
 * store.c holds the public functions of store.h; each one checks what the
 * contract promises and forwards to the engine through a small table of
 * functions (store_ops). An engine (SQLite: sqlite_impl.h lists its files;
 * PostgreSQL: pg_impl.h) embeds `struct store` as the first member of its
 * own store, `struct store_conn` as the first member of its own connection
 * and `struct store_listener` as the first member of its own listener, so
 * that it can cast back. What both engines do the same way is written once:
 * sqlbuf.h (the SQL text buffer), sql_common.h (key positions, bounds,
 * document identity) and ddl_common.h (schema objects, migration, report).
 *
 * Also here: the process-wide fault-injection countdown every engine consults
 * before running a statement, the schema checks every engine relies on, and
 * test hooks of both engines.
 * Thread: as store.h.
 */
#ifndef DOJO_STORE_STORE_IMPL_H
#define DOJO_STORE_STORE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

typedef struct store_ops {
    const char *name; /* store_engine_name */
    void (*close)(store *st);
    int (*connect)(store *st, bool writer, store_conn **out, err_t *e);
    void (*disconnect)(store_conn *c);
    int (*begin)(store_conn *c, bool write, err_t *e);
    int (*commit)(store_conn *c, err_t *e);
    void (*rollback)(store_conn *c);
    int (*savepoint)(store_conn *c, err_t *e);
    int (*savepoint_release)(store_conn *c, err_t *e);
    void (*savepoint_rollback)(store_conn *c);
    int (*get)(store_conn *c, const schema_table *t, const char *id, json_t **doc_out, err_t *e);
    int (*scan)(store_conn *c, const store_range *r, json_t **rows_out, err_t *e);
    int (*insert)(store_conn *c, const schema_table *t, const json_t *doc, err_t *e);
    int (*replace)(store_conn *c, const schema_table *t, const json_t *doc, err_t *e);
    int (*remove)(store_conn *c, const schema_table *t, const char *id, err_t *e);
    int (*count)(store_conn *c, const schema_table *t, int64_t *n_out, err_t *e);
    int (*count_range)(store_conn *c, const store_range *r, int64_t *n_out, err_t *e);
    int (*meta_get)(store_conn *c, const char *key, char **value_out, err_t *e);
    int (*meta_set)(store_conn *c, const char *key, const char *value, err_t *e);
    int (*truncate_all)(store_conn *c, err_t *e);
    int (*ping)(store_conn *c, err_t *e);
    /* Commit notifications; all NULL for an engine without them. */
    int (*notify_commit)(store_conn *c, const char *payload, err_t *e);
    int (*listener_open)(store *st, store_listener **out, err_t *e);
    int (*listener_fd)(const store_listener *l);
    int (*listener_drain)(store_listener *l, void (*cb)(void *data, const char *payload),
                          void *data, err_t *e);
    int (*listener_meta_get)(store_listener *l, const char *key, char **value_out, err_t *e);
    void (*listener_close)(store_listener *l);
} store_ops;

struct store {
    const store_ops *ops;
    const schema *schema; /* borrowed; outlives the store */
};

struct store_conn {
    const store_ops *ops;
    store *st;
};

struct store_listener {
    const store_ops *ops;
    store *st;
};

/* Longest table, index or field name the store accepts, in bytes. Names are
 * [A-Za-z_][A-Za-z0-9_]*, so they can be quoted into SQL and JSON paths as
 * they are. */
#define STORE_NAME_BYTES_MAX 64

/* Names of the schema objects the store derives, "<table>_<index>"… */
#define STORE_SQL_NAME_BYTES_MAX (2 * STORE_NAME_BYTES_MAX + 16)

/* Engines. SQLite's `path` is what follows "sqlite:"; PostgreSQL's `url` is
 * the whole postgres:// or postgresql:// URL, handed to libpq as it is. */
int store_sqlite_open(const char *path, const schema *s, store **out,
                      char report[STORE_REPORT_BYTES_MAX], err_t *e);

int store_pg_open(const char *url, const schema *s, store **out,
                  char report[STORE_REPORT_BYTES_MAX], err_t *e);

/* True when the statement about to run must fail with an injected fault
 * (store_inject_fault_after). Consumes one count per call. */
bool store_fault_due(void);

/* Test hooks of the SQLite engine (tests/unit/test_store.c). */
/* The first column of the first row of sql (a PRAGMA, …) as text. */
int store_sqlite_query_text(store_conn *c, const char *sql, char *out, size_t out_bytes, err_t *e);
/* The EXPLAIN QUERY PLAN of the statement store_scan runs for r, one line per
 * plan step. */
int store_sqlite_scan_plan(store_conn *c, const store_range *r, char *out, size_t out_bytes,
                           err_t *e);
/* How many statements the connection has prepared into its cache so far. */
uint64_t store_sqlite_prepare_count(store_conn *c);
/* WAL checkpoints the background checkpointer has run (0 before a writer connected). */
unsigned long store_sqlite_checkpoints(store *st);

/* Test hooks of the PostgreSQL engine (tests/unit/test_store_pg.c). */
/* The first column of the first row of sql, run on c's connection as it is
 * (no fault injection, no statement cache), as text; "" when no row. */
int store_pg_query_text(store_conn *c, const char *sql, char *out, size_t out_bytes, err_t *e);
/* The EXPLAIN (COSTS OFF) of the statement store_scan runs for r, one line
 * per plan line: the plan for r's parameters, or (generic) the plan a cached
 * statement may switch to, which cannot look at them. */
int store_pg_scan_plan(store_conn *c, const store_range *r, bool generic, char *out,
                       size_t out_bytes, err_t *e);
/* How many statements the connection has prepared into its cache so far. */
uint64_t store_pg_prepare_count(store_conn *c);

#endif
