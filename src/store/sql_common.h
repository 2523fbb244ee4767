/*
 * sql_common.h — what both engines (sqlite*.c, pg_*.c) derive the same way
 * when they turn documents, index keys and ranges into SQL: the layout of a
 * table's row (which fields have a column of their own), where each value of
 * an index key comes from, the checks of a range's bounds and the prefix
 * both bounds share, the identity of a document about to be written, and
 * the hash of a statement's text that their statement caches key on.
 * Private to src/store/.
 *
 * The row of a document in table T (storage format 2, see store.h):
 *   id             its _id
 *   creation_time  its _creationTime
 *   k_<field>      one per field named by T's indexes or nonnegative fields,
 *                  in order of first appearance: the field's value in the
 *                  order-preserving encoding of key_codec.h (00 when missing)
 *   data           the whole document, doc_codec.h's bytes
 * Thread: any; everything here is pure.
 */
#ifndef DOJO_STORE_SQL_COMMON_H
#define DOJO_STORE_SQL_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store_impl.h"

/* The storage format this code writes, kept in _dojo_meta "store_format".
 * 1: (id, creation_time, doc) with the document as JSON and one expression
 * index per declared index; 2: the layout above. */
#define STORE_FORMAT 2
#define STORE_FORMAT_KEY "store_format"

/* Key columns of one table at most (distinct fields of its indexes and
 * nonnegative fields). */
#define SQL_KEY_COLUMNS_MAX 32
/* "k_" + a field name, NUL included. */
#define SQL_COLUMN_BYTES_MAX (STORE_NAME_BYTES_MAX + 4)
/* The columns every row has besides its key columns. */
#define SQL_ID_COLUMN "id"
#define SQL_CREATION_TIME_COLUMN "creation_time"
#define SQL_DATA_COLUMN "data"

/* How a table's rows are laid out (see the file comment). */
typedef struct sql_layout {
    const schema_table *table;
    int n_keys;
    const char *key_fields[SQL_KEY_COLUMNS_MAX]; /* the field of each key column */
} sql_layout;

/* The layout of t; ERR_INTERNAL when it needs more than SQL_KEY_COLUMNS_MAX
 * key columns. */
int sql_layout_of(const schema_table *t, sql_layout *out, err_t *e);
/* The position of field's key column in l, or -1 when it has none (system
 * fields, fields no index names). */
int sql_layout_key(const sql_layout *l, const char *field);

/* The column a field of an index key is read from: "id", "creation_time" or
 * "k_<field>", into out. */
void sql_column_of(const char *field, char out[SQL_COLUMN_BYTES_MAX]);

/* The field at position i of ix's full key: its fields, then _creationTime
 * (unless already last), then _id — as schema_key_of. */
const char *sql_key_field(const schema_index *ix, int i);

/* The column a system field is stored in ("creation_time", "id"), or NULL
 * for a field of the document. */
const char *sql_system_column(const char *field);

/* Length of the prefix both bounds of r share: those fields are fixed. */
int sql_equal_prefix(const store_range *r);

/* ERR_INTERNAL unless each bound of r (when not NULL) is an array of
 * 1..key length scalars of r's index, with a number for _creationTime and a
 * string for _id. */
int sql_check_bounds(const store_range *r, err_t *e);

/* _id and _creationTime of a document about to be written; false when it
 * lacks either. */
bool sql_doc_identity(const json_t *doc, const char **id, double *creation_time);
/* The same, as an operating error naming the operation when it fails. */
int sql_doc_identity_checked(const json_t *doc, const char **id, double *creation_time,
                             const char *what, err_t *e);

/* FNV-1a of text: statement caches compare it before the text itself. */
uint64_t sql_hash(const char *text);

/* ERR_NOT_FOUND: the replace or delete `what` found no document id in
 * table — the same words on every engine. */
int sql_no_document(err_t *e, const char *what, const char *id, const char *table);

#endif
