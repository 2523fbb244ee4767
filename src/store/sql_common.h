/*
 * sql_common.h — what both engines (sqlite_*.c, pg_*.c) derive the same way
 * when they turn documents, index keys and ranges into SQL: where each value
 * of an index key comes from, which fields are columns of their own, the
 * checks of a range's bounds and the prefix both bounds share, the identity
 * of a document about to be written, and the hash of a statement's text that
 * their statement caches key on. Private to src/store/.
 * Thread: any; everything here is pure.
 */
#ifndef DOJO_STORE_SQL_COMMON_H
#define DOJO_STORE_SQL_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

/* How a document is written into the doc column: every real keeps the 17
 * digits that read back as the same double. */
#define SQL_DOC_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

/* The field at position i of ix's full key: its fields, then _creationTime
 * (unless already last), then _id — as schema_key_of. */
const char *sql_key_field(const schema_index *ix, int i);

/* The column a system field is stored in ("creation_time", "id"), or NULL
 * for a field of the document. */
const char *sql_system_column(const char *field);

/* Length of the prefix both bounds of r share: those fields are fixed. */
int sql_equal_prefix(const store_range *r);

/* ERR_INTERNAL unless each bound of r (when not NULL) is an array of
 * 1..key length scalars of r's index. */
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
