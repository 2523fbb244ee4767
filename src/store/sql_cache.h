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
 *     first write in the transaction — but a point scan (every field of an
 *     index fixed, like a user by token) only by a write of a document
 *     with those values, before or after (or one whose old document the
 *     store was not given).
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

/* A point scan's index and the values its equalities fix (every field of
 * the index), as each field's key bytes (key_codec.h) after their length:
 * made alike from a scan's bounds (sql_scan.c) and from a written
 * document's key columns (sql_docs.c), so that both meet in one entry. */
#define SQL_CACHE_POINT_BYTES_MAX 512 /* a point's values; longer: not kept as a point */
typedef struct sql_cache_point {
    const void *index;
    uint8_t values[SQL_CACHE_POINT_BYTES_MAX];
    size_t len;
} sql_cache_point;
/* Starts the point of index, then adds its fields' key bytes in the
 * index's order: false when they no longer fit. */
void sql_cache_point_start(sql_cache_point *p, const void *index);
bool sql_cache_point_add(sql_cache_point *p, const uint8_t *key, size_t key_len);

/* Scans, keyed by the bytes of their statement and parameters. A hit sets
 * *rows (borrowed) and *n. */
bool sql_cache_get_scan(sql_cache *c, const uint8_t *key, size_t key_len,
                        const sql_cached_row **rows, int *n);
/* Remembers the rows of a scan of t (point: NULL, or the values a point
 * scan fixes). Returns false when full. */
bool sql_cache_put_scan(sql_cache *c, const schema_table *t, const uint8_t *key, size_t key_len,
                        const sql_cached_row *rows, int n, const sql_cache_point *point);
/* A write to t: its scans are forgotten, but for its point scans. */
void sql_cache_forget_scans(sql_cache *c, const schema_table *t);
/* A write to t whose old document is not known: its point scans too. */
void sql_cache_forget_points(sql_cache *c, const schema_table *t);
/* Whether t has point scans (else no point of a written document need be
 * computed). */
bool sql_cache_has_points(sql_cache *c, const schema_table *t);
/* A write of a document that had or has these values: the point scan of
 * them is forgotten. */
void sql_cache_forget_point(sql_cache *c, const sql_cache_point *point);

#endif
