/*
 * store.h — the storage interface: one interface, two engines (sqlite*.c, and
 * pg_*.c for `--db postgres://…`). The store keeps documents; it knows
 * tables, indexes and the guards of schema.h, never what the documents mean.
 *
 * Data layout (storage format 2; sql_common.h): per table `T` a SQL table
 * T(id, creation_time, k_<field>…, data): _id and _creationTime in columns
 * of their own, one key column per field an index or a guard names holding
 * its value in the order-preserving bytes of key_codec.h, and the whole
 * document in the compact bytes of doc_codec.h (SQLite: TEXT, REAL, BLOB;
 * PostgreSQL: TEXT COLLATE "C", DOUBLE PRECISION, BYTEA). Per declared index
 * a plain index over its key columns followed by (creation_time, id). A
 * table `_dojo_meta(key TEXT PRIMARY KEY, value TEXT)` holds the schema
 * version, the storage format and the commit timestamp high-water mark. A
 * database of format 1 (the document as JSON, expression indexes) is
 * upgraded in place by store_open.
 *
 * Guards enforced by the database itself: UPDATE and DELETE on an
 * append_only table are refused by triggers; a negative value in a
 * nonnegative field is refused by a CHECK. Both surface as ERR_CONSTRAINT.
 *
 * Threads: a `store` is shared and immutable after store_open. A
 * `store_conn` is one database connection, used by one thread at a time: the
 * storage thread owns the single writer connection, each reader thread owns a
 * reader connection. Reads happen inside store_begin(conn, false)…
 * store_end(), which sees one consistent committed snapshot.
 */
#ifndef DOJO_STORE_STORE_H
#define DOJO_STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/schema.h"

typedef struct store store;
typedef struct store_conn store_conn;
typedef struct store_listener store_listener;

/*
 * A range of one index, in index order. lo/hi are JSON arrays holding a prefix
 * (1..schema_key_len values) of a full key, or NULL for unbounded. A full key
 * K is inside when its first len(lo) values compare > lo (or == lo when
 * lo_inclusive), and likewise below hi. An equality prefix is lo = hi = the
 * prefix, both inclusive. Bounds never hold null.
 */
typedef struct store_range {
    const schema_table *table;
    const schema_index *index; /* never NULL; &schema_by_creation_time for a plain scan */
    json_t *lo, *hi;           /* borrowed */
    bool lo_inclusive, hi_inclusive;
    bool descending;
    int limit; /* rows at most, >= 1 */
} store_range;

/* What store_open did to the schema, for `dojo dev` to print one line. */
#define STORE_REPORT_BYTES_MAX 512

/*
 * Opens (creating if needed) the database at url ("sqlite:PATH" or a path;
 * "postgres://…"), applies the DDL derived from s (creating tables, indexes,
 * guards; migrating from an older schema version) and writes into report what
 * it changed, e.g. "created 4 tables (schema version 1)" or "schema up to date
 * (version 1)". SQLite files are put in WAL mode with synchronous=FULL.
 */
int store_open(const char *url, const schema *s, store **out, char report[STORE_REPORT_BYTES_MAX],
               err_t *e);
void store_close(store *st);
/* Writes url into out (at most out_bytes, NUL included) with its password
 * shown as "***" (postgres://user:***@host/db, ?password=***), for logs and
 * messages. Other URLs are copied as they are. */
void store_redact_url(const char *url, char *out, size_t out_bytes);
const schema *store_schema(const store *st);
/* "sqlite" or "postgres". */
const char *store_engine_name(const store *st);

/* writer = the one connection that will write. */
int store_connect(store *st, bool writer, store_conn **out, err_t *e);
void store_disconnect(store_conn *c);

/* Transactions. A write transaction (write=true, only on the writer) takes the
 * write lock at once (SQLite BEGIN IMMEDIATE; PostgreSQL SERIALIZABLE plus a
 * lock that writers of every process sharing the database queue on). A read
 * transaction sees the snapshot fixed by its first statement.
 * On PostgreSQL a statement that fails inside a transaction fails the
 * transaction: further statements fail (ERR_STORAGE) until
 * store_savepoint_rollback or store_rollback. Conflicts a database reports
 * (serialization failure, deadlock, lock wait timeout) are ERR_BUSY: retry. */
int store_begin(store_conn *c, bool write, err_t *e);
int store_commit(store_conn *c, err_t *e); /* durable when it returns 0 */
void store_rollback(store_conn *c);        /* ends any transaction; safe to call twice */
/* Nested savepoint inside a write transaction: one per mutation of a group. */
int store_savepoint(store_conn *c, err_t *e);
int store_savepoint_release(store_conn *c, err_t *e);
void store_savepoint_rollback(store_conn *c); /* rolls back and releases */

/* Deferred writes (PostgreSQL; a no-op on SQLite, whose statements cost no
 * round trip). When on, inside a transaction the statements that return
 * nothing — inserts, updates, deletes, metadata writes, savepoints and their
 * releases, the commit notification — are sent without waiting for their
 * answer; the next call that waits (a read, a savepoint rollback, the
 * commit) goes out in the same flight and reads every answer. A failure
 * among the deferred statements is reported by that call, and by every
 * later call of the transaction until it is rolled back: it can never
 * commit. store_deferred_failure is then true: the failure was a write sent
 * earlier, maybe by another mutation of the group. Off by default; switch
 * it between transactions. */
void store_defer_writes(store_conn *c, bool on);
bool store_deferred_failure(const store_conn *c);

/* Reads ranges ahead, in one round trip, into the write transaction's cache
 * of reads (PostgreSQL's writer; nothing to do elsewhere): the storage
 * thread fetches what every mutation of a group reads first (its caller's
 * user), so that the mutations then run without waiting for the database. */
int store_prefetch(store_conn *c, const store_range *ranges, int n, err_t *e);
/* Whether store_prefetch does anything on this store. */
bool store_prefetches(const store *st);

/* Documents. Returned documents are new references the caller owns. */
int store_get(store_conn *c, const schema_table *t, const char *id, json_t **doc_out, err_t *e);
/* *rows_out: a new JSON array of documents in range order. */
int store_scan(store_conn *c, const store_range *r, json_t **rows_out, err_t *e);
/* The bound that continues a scan of schema_by_creation_time after the last
 * row of rows (a new [_creationTime, _id] array), or NULL when rows is empty
 * or out of memory. */
json_t *store_scan_resume_after(const json_t *rows);
/* doc carries _id and _creationTime. A unique index or a guard that refuses
 * the row gives ERR_CONSTRAINT with the database's reason in the message. */
int store_insert(store_conn *c, const schema_table *t, const json_t *doc, err_t *e);
int store_replace(store_conn *c, const schema_table *t, const json_t *doc, err_t *e);
/* store_replace of a document whose stored version old_doc the caller read in
 * this transaction: only what changed is written (the key columns whose
 * value changed, so that an index whose key stays the same is not touched). */
int store_update(store_conn *c, const schema_table *t, const json_t *old_doc, const json_t *doc,
                 err_t *e);
int store_delete(store_conn *c, const schema_table *t, const char *id, err_t *e);
/* Number of documents in a table. */
int store_count(store_conn *c, const schema_table *t, int64_t *n_out, err_t *e);
/* Number of documents inside r, at most r->limit (counted on the index; no
 * document is loaded). */
int store_count_range(store_conn *c, const store_range *r, int64_t *n_out, err_t *e);

/* Small key/value metadata inside the same transactions ("ts", …). *value_out
 * is a malloc'd string or NULL when the key is absent. */
int store_meta_get(store_conn *c, const char *key, char **value_out, err_t *e);
int store_meta_set(store_conn *c, const char *key, const char *value, err_t *e);

/* Drops every row of every table (import --replace). Triggers that guard
 * append-only tables are dropped and re-created around it. Inside a write
 * transaction. */
int store_truncate_all(store_conn *c, err_t *e);

/* Gives back what the connection keeps for speed only (the database's page
 * cache, the last transaction's cache of reads), outside a transaction: the
 * engine's threads call it when they have been idle a while, so that memory
 * a load took returns when the load stops. */
void store_release_memory(store_conn *c);

/* Bytes of the documents the transaction in progress has written (their
 * encoded rows): what a commit group holds until it commits. And the bytes
 * the connection's cache of reads holds (PostgreSQL's writer). */
size_t store_txn_bytes(const store_conn *c);
size_t store_cache_bytes(const store_conn *c);

/* Runs a trivial statement; 0 when the database answers (GET /health). */
int store_ping(store_conn *c, err_t *e);

/* Commit notifications, for several processes sharing one database
 * (PostgreSQL; ARCHITECTURE "Scale-out"). A writer adds a payload to its
 * write transaction with store_notify_commit; it reaches every listener of
 * the same deployment (the same database and schema) if and only if the
 * transaction commits, after the commit, and notifications reach a listener
 * in commit order. The writer's own process gets its notifications too. A
 * write transaction that commits without having sent one sends an empty
 * payload: "something changed" (imports, tools writing outside the engine).
 * SQLite has one process per database: store_notify_commit does nothing and
 * there is no listener. */
#define STORE_NOTIFY_PAYLOAD_BYTES_MAX 7900 /* PostgreSQL refuses 8000 and more */

/* True when the engine can listen for other processes' commits. */
bool store_notifies(const store *st);
/* Inside a write transaction on the writer, outside any savepoint; at most
 * once per transaction. payload is non-empty text of at most
 * STORE_NOTIFY_PAYLOAD_BYTES_MAX bytes. */
int store_notify_commit(store_conn *c, const char *payload, err_t *e);
/* Opens a connection of its own that listens for the deployment's commit
 * notifications: those of transactions that commit after it returns.
 * Blocking (it connects): call it off the event loop, or before it runs.
 * A store that does not notify gives ERR_INTERNAL. */
int store_listener_open(store *st, store_listener **out, err_t *e);
/* The socket to watch for readability. */
int store_listener_fd(const store_listener *l);
/* Reads what has arrived, without blocking, and calls cb once per payload,
 * in commit order. Returns 0, or ERR_STORAGE when the connection is lost
 * (after delivering what had arrived): close the listener and open another;
 * commits in between are not reported. */
int store_listener_drain(store_listener *l, void (*cb)(void *data, const char *payload), void *data,
                         err_t *e);
/* Reads a metadata value (store_meta_get) on the listener's connection, in
 * its own snapshot, taken after the listener started listening. Blocking. */
int store_listener_meta_get(store_listener *l, const char *key, char **value_out, err_t *e);
void store_listener_close(store_listener *l);

/* Fault injection for tests: when set, the n-th next statement of any
 * connection fails with ERR_STORAGE ("injected fault"). 0 disables. */
void store_inject_fault_after(int n_statements);
/* Statements still to run before the armed fault strikes (0: none armed,
 * or it struck). */
int store_fault_pending(void);

#endif
