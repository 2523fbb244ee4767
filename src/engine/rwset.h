/*
 * rwset.h — what a transaction read and wrote, and whether a write can change
 * a read. Queries record the index ranges they covered (a db_get is a point
 * range on the implicit "by_id" index); mutations record each written
 * document before and after. After a commit, a subscription re-runs only when
 * one of the commit's writes has an old or new key inside one of its ranges.
 * Thread: built by the thread running the transaction, then handed to the
 * event loop, which only reads it.
 */
#ifndef DOJO_ENGINE_RWSET_H
#define DOJO_ENGINE_RWSET_H

#include <jansson.h>
#include <stdbool.h>

#include "base/ids.h"
#include "store/schema.h"

/* A range read through one index (see store_range for the bound rules).
 * index NULL = a point read of one document by id (lo = [id]). */
typedef struct read_range {
    const schema_table *table;
    const schema_index *index;
    json_t *lo, *hi; /* owned; NULL = unbounded */
    bool lo_inclusive, hi_inclusive;
} read_range;

typedef struct read_set {
    read_range *ranges;
    int n_ranges, cap_ranges;
    bool whole_database; /* too many ranges: any write invalidates */
} read_set;

#define READ_SET_RANGES_MAX 256

/* One document written: old NULL for an insert, new NULL for a delete. A
 * write reported by another process (engine/notice.c) carries, instead of
 * whole documents, their projections on the table's index fields (plus _id
 * and _creationTime): the same keys, so the same intersections. */
typedef struct write_rec {
    const schema_table *table;
    char id[ID_BYTES_MAX];
    json_t *old_doc, *new_doc; /* owned */
} write_rec;

/* A write set is the documents written (recs), the tables any document of
 * which may have been written (whole_tables: a summary from another process
 * too large to list its documents), or everything (nothing is known). */
typedef struct write_set {
    write_rec *recs;
    int n_recs, cap_recs;
    const schema_table **whole_tables; /* owned array of borrowed tables, no duplicates */
    int n_whole_tables, cap_whole_tables;
    bool everything; /* the set could not be recorded in full: treat it as touching all */
} write_set;

void read_set_init(read_set *rs);
void read_set_free(read_set *rs);
/* Adds a range (lo/hi references are taken, i.e. incref'd). */
void read_set_add(read_set *rs, const schema_table *t, const schema_index *ix, json_t *lo,
                  bool lo_inclusive, json_t *hi, bool hi_inclusive);
void read_set_add_point(read_set *rs, const schema_table *t, const char *id);

void write_set_init(write_set *ws);
void write_set_free(write_set *ws);
/* Records a write; folds repeated writes of one document into one record
 * (first old, last new). old/new are incref'd. Returns 0, or ERR_LIMIT past
 * LIMIT_WRITES_PER_MUTATION_MAX documents. */
int write_set_add(write_set *ws, const schema_table *t, const char *id, json_t *old_doc,
                  json_t *new_doc);
/* Records that any document of t may have been written. Returns 0, or
 * ERR_NOMEM (the set then touches everything). */
int write_set_add_table(write_set *ws, const schema_table *t);
/* Moves the records of src to the end of dst (src is left empty). */
void write_set_append(write_set *dst, write_set *src);
/* Appends references to the records of src (src unchanged). */
void write_set_copy(write_set *dst, const write_set *src);
/* Truncates back to n records (savepoint rollback). */
void write_set_truncate(write_set *ws, int n);
bool write_set_touches_table(const write_set *ws, const char *table_name);
/* True when every document of t may have been written (everything, or t is
 * one of whole_tables). */
bool write_set_covers_table(const write_set *ws, const schema_table *t);

/* The fields of doc its index keys are made of: _id, _creationTime and
 * every index field of t it has — all rwset_intersects ever looks at. A new
 * object; NULL for no document, or out of memory. */
json_t *write_rec_keys_of(const schema_table *t, const json_t *doc);
/* Replaces every document of ws by write_rec_keys_of it, except those of
 * table keep (NULL: none), so the set still says exactly what it says to
 * read sets while holding bytes, not whole documents. Out of memory leaves
 * the set touching everything (never less than it said). */
void write_set_keep_keys(write_set *ws, const schema_table *keep);
/* Makes ws touch everything and drops its records, except those of the
 * table named keep (NULL: none): it then says more, never less, and holds
 * almost nothing. */
void write_set_widen(write_set *ws, const char *keep);
/* An estimate of the heap bytes ws holds (its records and their documents,
 * as jansson stores them), for the bounds on structures that keep them. */
size_t write_set_bytes(const write_set *ws);

/* True when a key lies within the range. */
bool read_range_contains(const read_range *r, const json_t *key);
/* True when any write of ws has an old or new document inside any range of
 * rs, or ws covers a table rs read. */
bool rwset_intersects(const read_set *rs, const write_set *ws);

#endif
