/*
 * schema.h — the shape of the tables, as the store and the engine see it.
 * app/schema.c declares the application's tables once with these types; the
 * store derives its DDL from them (one SQL table of (id, creation_time, doc)
 * per table, one expression index per declared index, the guards), the engine
 * derives document validation and index keys, codegen the TypeScript types.
 *
 * Index order: every index is ordered by its fields, then by _creationTime
 * (unless it is already the last field), then by _id, so that every key is
 * unique and paging is stable. The implicit index "by_creation_time" orders a
 * whole table by (_creationTime, _id).
 *
 * Key order (keys compare element by element, like SQLite compares the
 * json_extract() values): null (or a missing field) < numbers (by value) <
 * strings (bytewise, like memcmp) < everything else. Booleans, arrays and
 * objects are not used in index fields.
 * Thread: any; schemas are immutable.
 */
#ifndef DOJO_STORE_SCHEMA_H
#define DOJO_STORE_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>

struct validator;

#define SCHEMA_INDEX_FIELDS_MAX 4
#define SCHEMA_KEY_LEN_MAX (SCHEMA_INDEX_FIELDS_MAX + 2) /* fields + _creationTime + _id */

typedef struct schema_index {
    const char *name; /* e.g. "by_user" */
    const char
        *fields[SCHEMA_INDEX_FIELDS_MAX]; /* top-level field names; "_creationTime" allowed */
    int n_fields;
    bool unique; /* unique over its fields alone */
} schema_index;

typedef struct schema_table {
    const char *name;            /* e.g. "users"; names starting with '_' are system tables */
    int number;                  /* 1..255, encoded in the table's ids; never reused */
    const struct validator *doc; /* V_OBJECT of the user fields (without _id, _creationTime) */
    const schema_index *indexes;
    int n_indexes;
    bool append_only; /* the store refuses UPDATE and DELETE (the ledger) */
    const char *const
        *nonnegative_fields; /* the store refuses a negative value (NULL-terminated) */
    bool system;             /* hidden from codegen and users */
    bool random_ids;         /* ids of 136 random bits (ids.h): a capability, like a file's */
} schema_table;

typedef struct schema {
    int version; /* bumped whenever the DDL derived from it changes */
    const schema_table *tables;
    int n_tables;
} schema;

/* The implicit index every table has: (_creationTime, _id). */
extern const schema_index schema_by_creation_time;

const schema_table *schema_table_by_name(const schema *s, const char *name);
const schema_table *schema_table_by_number(const schema *s, int number);
/* Also finds "by_creation_time". */
const schema_index *schema_index_by_name(const schema_table *t, const char *name);

/* Number of values in a full key of this index: its fields, then
 * _creationTime unless that is its last field, then _id. */
int schema_key_len(const schema_index *ix);

/* The full key of doc in index ix: a new JSON array of schema_key_len(ix)
 * values (a missing field is null). doc must carry _id and _creationTime. */
json_t *schema_key_of(const schema_index *ix, const json_t *doc);

/* Compares two index values by the key order above. */
int schema_value_cmp(const json_t *a, const json_t *b);

/* Compares the first n elements of keys a and b (arrays); n is clamped to the
 * shorter length. */
int schema_key_cmp_prefix(const json_t *a, const json_t *b, size_t n);

#endif
