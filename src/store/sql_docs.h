/*
 * sql_docs.h — the store's one statement layer: every statement on
 * documents and metadata, written once over a driver (sql_driver.h) for both
 * engines (sql_docs.c, sql_scan.c). store.c calls these with its engine's
 * driver; the storage format upgrade uses the row helpers.
 * Thread: the thread that owns the connection.
 */
#ifndef DOJO_STORE_SQL_DOCS_H
#define DOJO_STORE_SQL_DOCS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/key_codec.h"
#include "store/sql_common.h"
#include "store/sql_driver.h"

#define SQL_TEXT_BYTES_MAX 8192 /* a generated statement */
/* The columns a document is read from, in this order (sql_read_doc). */
#define SQL_ROW_COLUMNS SQL_ID_COLUMN ", " SQL_CREATION_TIME_COLUMN ", " SQL_DATA_COLUMN

/* A document as the values of its row (sql_common.h's layout). */
typedef struct sql_row {
    const char *id; /* borrowed from the document */
    double creation_time;
    int n_keys;
    key_buf keys[SQL_KEY_COLUMNS_MAX];
    uint8_t *data; /* malloc'd: doc_codec.h's bytes */
    size_t data_len;
} sql_row;

/* The row of doc in layout l; sql_row_free releases it. */
int sql_row_of(const sql_layout *l, const json_t *doc, sql_row *row, const char *what, err_t *e);
void sql_row_free(sql_row *row);
/* The INSERT of one row of l, and its parameters (at most
 * SQL_KEY_COLUMNS_MAX + 3; returns how many). */
void sql_insert_text(const sql_driver *d, const sql_layout *l, sqlbuf *b);
int sql_insert_params(const sql_row *row, sql_value *params);
/* The document of the current row, whose columns SQL_ROW_COLUMNS start at col. */
int sql_read_doc(const sql_driver *d, sql_result *res, int col, const char *what, json_t **out,
                 err_t *e);

/* The transaction's cache of reads (sql_cache.h): a cached row's document,
 * and the current row of a result (columns SQL_ROW_COLUMNS at col) kept. */
struct sql_cached_row;
int sql_cached_doc(const struct sql_cached_row *row, const char *what, json_t **out, err_t *e);
void sql_cache_row(const sql_driver *d, store_conn *c, const schema_table *t, sql_result *res,
                   int col);
/* Whether the scans of ix that fix all its fields are point scans (its
 * fields are all document fields, at least one): a write of a document
 * then forgets only those of its values, before and after. */
bool sql_point_index(const schema_index *ix);

/* The operations of store.h, for the store whose driver is d. */
int sql_get(const sql_driver *d, store_conn *c, const schema_table *t, const char *id,
            json_t **doc_out, err_t *e);
int sql_insert(const sql_driver *d, store_conn *c, const schema_table *t, const json_t *doc,
               err_t *e);
/* old_doc (may be NULL): the document as stored, so that only the columns
 * whose value changed are written. */
int sql_update(const sql_driver *d, store_conn *c, const schema_table *t, const json_t *old_doc,
               const json_t *doc, err_t *e);
int sql_delete(const sql_driver *d, store_conn *c, const schema_table *t, const char *id, err_t *e);
int sql_count(const sql_driver *d, store_conn *c, const schema_table *t, int64_t *n_out, err_t *e);
int sql_scan(const sql_driver *d, store_conn *c, const store_range *r, json_t **rows_out, err_t *e);
int sql_count_range(const sql_driver *d, store_conn *c, const store_range *r, int64_t *n_out,
                    err_t *e);
int sql_prefetch(const sql_driver *d, store_conn *c, const store_range *ranges, int n, err_t *e);
int sql_meta_get(const sql_driver *d, store_conn *c, const char *key, char **value_out, err_t *e);
int sql_meta_set(const sql_driver *d, store_conn *c, const char *key, const char *value, err_t *e);
int sql_ping(const sql_driver *d, store_conn *c, err_t *e);

/* The statement of a scan and its parameters (also for the engines' plan
 * test hooks). */
#define SQL_SCAN_PARAMS_MAX (3 * SCHEMA_KEY_LEN_MAX + 1)
typedef struct sql_scan_stmt {
    char text[SQL_TEXT_BYTES_MAX];
    sqlbuf b;
    sql_value params[SQL_SCAN_PARAMS_MAX];
    key_buf keys[SQL_SCAN_PARAMS_MAX]; /* storage of the encoded values */
    int n_params;
    int n_conditions;
    bool empty; /* the bounds admit no key: nothing to run */
} sql_scan_stmt;
/* count: the statement counts the range's rows (up to its LIMIT) instead of
 * reading them. */
int sql_scan_build(const sql_driver *d, const store_range *r, bool count, sql_scan_stmt *q,
                   err_t *e);
void sql_scan_free(sql_scan_stmt *q);

#endif
