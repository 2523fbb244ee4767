/*
 * sql_cache.h — what a write transaction has read and written, kept by the
 * statement layer so that reading it again costs no round trip to the
 * database (PostgreSQL: sql_driver.cache_reads). A group of mutations reads
 * the same documents again and again — the caller's user by token, then by
 * id to patch it; the deployment's PRICING for every runs:create — and with
 * writes deferred (pg_pipeline.c) those reads are what is left of a
 * mutation's round trips.
 *
 * It holds rows as the database gave them (id, creation_time, the
 * document's bytes), decoded again at every hit, so that no caller ever
 * shares a document another holds:
 *   - documents by (table, id), or the knowledge that there is none: filled
 *     by gets, by the rows of scans, and by the transaction's own writes;
 *   - scans by their statement and parameters: forgotten for a table at its
 *     first write in the transaction.
 * Valid only inside one write transaction: the write lock is held, so
 * nothing but the transaction itself changes what it reads (and a
 * serializable snapshot would not show it anything else anyway). Emptied at
 * begin, commit, rollback and savepoint rollback; bounded by
 * SQL_CACHE_BYTES_MAX (past it, it is emptied and fills again).
 * Thread: the thread that owns the connection.
 */
#ifndef DOJO_STORE_SQL_CACHE_H
#define DOJO_STORE_SQL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/schema.h"

#define SQL_CACHE_BYTES_MAX (4u * 1024 * 1024) /* rows kept by one transaction */
#define SQL_CACHE_SLOTS 4096                   /* entries of its hash table (a power of 2) */

typedef struct sql_cache sql_cache;

/* One row as read: borrowed bytes, valid until the cache next changes. */
typedef struct sql_cached_row {
    const char *id;
    size_t id_len;
    double creation_time;
    const uint8_t *data;
    size_t data_len;
} sql_cached_row;

sql_cache *sql_cache_new(void);
void sql_cache_free(sql_cache *c);
void sql_cache_clear(sql_cache *c);
size_t sql_cache_bytes(const sql_cache *c);

/* Documents by id. found: 1 a row (*row), 0 known absent, -1 not known. */
int sql_cache_get_doc(sql_cache *c, const schema_table *t, const char *id, sql_cached_row *row);
/* Remembers a row (data NULL: known absent). Returns false when full. */
bool sql_cache_put_doc(sql_cache *c, const schema_table *t, const char *id, size_t id_len,
                       double creation_time, const uint8_t *data, size_t data_len);

/* Scans, keyed by the bytes of their statement and parameters. A hit sets
 * *rows (borrowed) and *n. */
bool sql_cache_get_scan(sql_cache *c, const uint8_t *key, size_t key_len,
                        const sql_cached_row **rows, int *n);
/* Remembers the rows of a scan of t. Returns false when full. */
bool sql_cache_put_scan(sql_cache *c, const schema_table *t, const uint8_t *key, size_t key_len,
                        const sql_cached_row *rows, int n);
/* A write to t: its scans are forgotten. */
void sql_cache_forget_scans(sql_cache *c, const schema_table *t);

#endif
