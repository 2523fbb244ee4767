/*
 * sqlite_impl.h — what the files of the SQLite engine share, private to
 * them: the engine's store and connection, and the statement helpers every
 * file runs its SQL through.
 *
 *   sqlite.c       connections, transactions, the statement cache, the
 *                  driver of the statement layer (sql_driver.h), open/close
 *   sqlite_ddl.c   the schema's DDL, migration and format upgrade, WAL mode,
 *                  truncation
 * (documents and scans are the statement layer's: sql_docs.c, sql_scan.c)
 *
 * Thread: a store is immutable after open; a sqlite_conn belongs to one
 * thread at a time (connections are opened SQLITE_OPEN_NOMUTEX).
 */
#ifndef DOJO_STORE_SQLITE_IMPL_H
#define DOJO_STORE_SQLITE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "base/invariant.h"
#include "store/sqlbuf.h"
#include "store/sqlite_checkpoint.h"
#include "store/sql_driver.h"
#include "store/store_impl.h"

#define SQLITE_STMT_CACHE_SLOTS 128 /* prepared statements kept per connection */
/* The page size of a new database (and of one upgraded from storage format
 * 1). Small pages because a commit writes every page it changed whole, and
 * most of what a mutation changes are index entries on pages of their own
 * (an index keyed by user lands on a different page for each user):
 * bench/storebench.c measured runs:create writing 25 KiB per mutation with
 * 4 KiB pages, 19 with 2 KiB and 14 with 1 KiB, and running faster with 1
 * KiB, also on a million runs (docs/ARCHITECTURE.md "Storage"). */
#define SQLITE_PAGE_BYTES 1024

typedef struct sqlite_store {
    store base;
    sqlite_checkpointer *checkpointer; /* started with the writer connection */
    int wal_pages_seen;                /* writer thread: log size after the last commit */
    int wake_pages;                    /* wal_wake_bytes in this file's pages */
    int wal_wake_bytes;                /* SQLITE_CHECKPOINT_WAL_BYTES (tests may lower it) */
    int wal_bytes_max;                 /* SQLITE_WAL_BYTES_MAX (likewise) */
    int max_pages;                     /* wal_bytes_max in this file's pages */
    unsigned long restarts;            /* writer thread: logs bounded by a checkpoint of its own */
    int next_wake_pages;               /* writer thread: wake the checkpointer at this size */
    char path[];                       /* the database file */
} sqlite_store;

typedef struct stmt_slot {
    uint64_t hash; /* of sql */
    char *sql;
    sqlite3_stmt *stmt;
    uint64_t used_at; /* the connection's use_clock when last handed out */
} stmt_slot;

typedef struct sqlite_conn {
    store_conn base;
    sqlite3 *db;
    bool writer;
    int savepoint_depth;
    uint64_t use_clock;
    uint64_t prepares; /* statements prepared into the cache, for tests */
    stmt_slot cache[SQLITE_STMT_CACHE_SLOTS];
} sqlite_conn;

extern const store_ops sqlite_ops;
extern const sql_driver sqlite_driver;

static inline sqlite_conn *sqlite_conn_of(store_conn *c)
{
    ASSERT(c && c->ops == &sqlite_ops);
    return (sqlite_conn *)c;
}

/* --- sqlite.c: errors and statements ----------------------------------------------- */

/* Maps a SQLite result code to the project's codes, naming the operation. */
int sqlite_error(err_t *e, sqlite3 *db, int rc, const char *what);
/* A prepared statement for sql from the connection's cache, prepared on first
 * use. The caller resets it (sqlite_stmt_done) before it uses another
 * statement that might evict it. */
int sqlite_stmt_get(sqlite_conn *c, const char *sql, sqlite3_stmt **out, err_t *e);
void sqlite_stmt_done(sqlite3_stmt *st);
/* Steps st once: 1 = a row, 0 = done, < 0 = an error code. The first step of
 * every execution is where an injected fault strikes. */
int sqlite_stmt_step(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e);
/* Runs a statement that returns no rows, then resets it. */
int sqlite_stmt_run(sqlite_conn *c, sqlite3_stmt *st, const char *what, err_t *e);
/* Runs one statement without caching it (DDL), with fault injection. */
int sqlite_run_once(sqlite_conn *c, const char *sql, const char *what, err_t *e);
/* Binds one parameter of the statement layer natively. */
int sqlite_bind_value(sqlite3_stmt *st, int i, const sql_value *v);
/* A bind's result code as the project's. */
int sqlite_bind_check(sqlite_conn *c, int rc, const char *what, err_t *e);
/* sqlite3_exec without fault injection (opening, the schema). */
int sqlite_exec(sqlite3 *db, const char *sql, const char *what, err_t *e);
/* The first column of the first row of sql as text into out ("" when none). */
int sqlite_query_text(sqlite3 *db, const char *sql, char *out, size_t out_bytes, err_t *e);
/* Opens a connection with the settings every connection has; only
 * store_open creates the file, connections expect it. */
int sqlite_open_db(const char *path, bool create, bool writer, sqlite3 **out, err_t *e);

/* --- sqlite_ddl.c: the schema ------------------------------------------------------ */

/* The operations an append-only table refuses ("delete", "update"), and the
 * CREATE TRIGGER of the guard against sqlite_guard_ops[op]. */
#define SQLITE_GUARD_OPS 2
extern const char *const sqlite_guard_ops[SQLITE_GUARD_OPS];
void sqlite_guard_trigger(sqlbuf *b, const schema_table *t, int op);
/* Opens path, puts it in WAL mode and migrates it to s in one transaction. */
int sqlite_prepare_file(const char *path, const schema *s, char *report, err_t *e);
/* store_truncate_all. */
int sqlite_truncate_all(store_conn *sc, err_t *e);

#endif
