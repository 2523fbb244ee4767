/*
 * ctx.h — what an application function sees: its caller, the clock, the
 * deployment variables and the database of its transaction (db_get, db_query,
 * db_paginate, db_insert, db_patch, db_delete), plus ctx_fail to report an
 * application error. Queries get a read-only ctx on a reader thread;
 * mutations a read-write ctx on the storage thread, inside a savepoint of the
 * group transaction: an error rolls the mutation back alone, so a failed
 * mutation writes nothing.
 *
 * Every read records the range it covered in the ctx's read set; every write
 * validates the document against its table and records it in the write set.
 *
 * Ownership: the transaction owns every JSON value a function handles.
 * Documents, rows and pages the db_* reads return belong to the ctx and live
 * until the transaction ends; a value the function builds (json_pack …) is
 * handed to the ctx with ctx_own; a function's result is borrowed from
 * either (the engine takes its own reference). So app code never counts
 * references: it neither frees what it reads nor what it builds. To put a
 * borrowed value inside another, use the functions that take a reference
 * (json_object_set, json_array_append, "O" in json_pack), never the *_new
 * ones that steal it.
 * Thread: the thread running the transaction (a reader or the storage thread).
 */
#ifndef DOJO_ENGINE_CTX_H
#define DOJO_ENGINE_CTX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/ids.h"
#include "engine/rwset.h"
#include "store/store.h"

typedef struct ctx {
    store_conn *conn;
    const schema *schema;
    bool writable;
    const json_t *identity; /* borrowed; NULL when anonymous */
    bool admin;             /* called with the admin key */
    bool worker;            /* called with the worker key (api.md §10) */
    const char *public_url; /* where clients reach this deployment ("http://…"), or "" */
    double now_ms;          /* fixed for the whole transaction */
    bool record_reads;      /* keep the read set (subscriptions need it) */
    const char *journal_in; /* end cursor pinned by an earlier run (reactive paging), or NULL */
    char *journal_out;      /* malloc'd end cursor of the page this run produced */
    double *creation_clock; /* storage thread: last _creationTime handed out */
    int rows_read;          /* bounded by rows_max */
    int rows_max;           /* LIMIT_QUERY_ROWS_MAX unless a system function raises it */
    read_set reads;
    write_set writes;
    json_t *log_lines; /* array of "[LEVEL] text" */
    json_t *owned;     /* array: what the transaction holds for its function (ctx_own) */
    err_t err;
} ctx;

/* --- ownership ------------------------------------------------------------ */

/* Hands v (a new reference) to the transaction, which releases it when it
 * ends; returns v, borrowed from then on. NULL when v is NULL, or when
 * memory runs out (v is released then). */
json_t *ctx_own(ctx *c, json_t *v);
/* A loop over more than a transaction should hold (a table, page by page)
 * releases each turn's values: ctx_rewind(c, m) releases everything handed
 * to the ctx since m = ctx_mark(c). Values borrowed from then are gone. */
size_t ctx_mark(const ctx *c);
void ctx_rewind(ctx *c, size_t mark);

/* --- caller --------------------------------------------------------------- */
const json_t *ctx_identity(const ctx *c);
/* identity.tokenIdentifier, or NULL when anonymous. */
const char *ctx_token_identifier(const ctx *c);

/* Reports an application error and returns code: `return ctx_fail(c,
 * ERR_NOT_FOUND, NULL, "Workflow not found");`. extra fields join the error
 * data {code, …} (reference stolen). */
int ctx_fail(ctx *c, int code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds a line to the function's log ("[INFO] …"), shown to the client. */
void ctx_log(ctx *c, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The deployment's URL as clients reach it, without a trailing '/': file
 * URLs are built from it. "" for command-line tools without a server. */
const char *ctx_public_url(const ctx *c);

/* A deployment variable: the value stored in the database (table _env), else
 * the process environment, else NULL. *value_out is malloc'd. The read is part
 * of the transaction. */
int ctx_env(ctx *c, const char *name, char **value_out);

/* --- reads -------------------------------------------------------------------- */

/* *doc_out is the document (the ctx's), or NULL when there is none with this
 * id in this table (an id of another table is "none", never an error). */
int db_get(ctx *c, const char *table, const char *id, json_t **doc_out);

/* A query over one index: the rows whose first n_eq index fields equal eq
 * (a JSON array, may be NULL for a whole-index scan), in index order or its
 * reverse, at most limit rows (bounded by LIMIT_QUERY_ROWS_MAX). */
typedef struct db_query {
    const char *table;
    const char *index; /* NULL = by_creation_time */
    json_t *eq;        /* borrowed JSON array; NULL = no equality prefix */
    json_t *after;     /* borrowed: optional exclusive lower bound on the next index field */
    json_t *upto;      /* borrowed: optional inclusive upper bound on the next index field */
    bool descending;
    int limit;
} db_query;

/* *rows_out: an array of documents (the ctx's). */
int db_query_rows(ctx *c, const db_query *q, json_t **rows_out);
/* The first row (the ctx's), or *doc_out NULL. */
int db_query_first(ctx *c, const db_query *q, json_t **doc_out);

/* Counts the rows of q's range, at most q->limit (which must be set): the
 * read is recorded like db_query_rows', but no row is loaded and the row
 * budget is not used. */
int db_count(ctx *c, const db_query *q, int64_t *n_out);

/* One page of q (q->limit ignored) for paginationOpts {numItems, cursor,
 * endCursor?, …}: *page_out = {page, isDone, continueCursor}. Cursors are
 * opaque strings naming a position in the index (*page_out is the ctx's); a
 * cursor that cannot be
 * decoded fails with a message containing "InvalidCursor". The page's end is
 * pinned by endCursor, else by the ctx journal, so that a re-run after a write
 * returns the same page boundaries (gapless reactive paging). */
int db_paginate(ctx *c, const db_query *q, const json_t *pagination_opts, json_t **page_out);

/* --- writes (mutations only) --------------------------------------------------- */

/* Inserts fields (a JSON object of user fields; not modified) as a new
 * document; validates it against the table; writes its id to id_out. */
int db_insert(ctx *c, const char *table, const json_t *fields, char id_out[ID_BYTES_MAX]);
/* The same with an id made before (id_new/id_new_random for this table):
 * a file's bytes are stored under its id before its document is written.
 * An id of another table is INVALID_ARGUMENT; one already used, the store's
 * ERR_CONSTRAINT. */
int db_insert_with_id(ctx *c, const char *table, const json_t *fields, const char *id);
/* Shallow-merges fields into the document: a field set to JSON null is
 * removed (no table has nullable fields). Validates the result. ERR_NOT_FOUND
 * when there is no such document. */
int db_patch(ctx *c, const char *table, const char *id, const json_t *fields);
int db_delete(ctx *c, const char *table, const char *id);

/* At least the compact JSON size of v (what json_dumpb writes), exact but
 * for reals, counted at their longest: a walk instead of a serialization
 * (the bound of a document on every write, of a call's arguments in a
 * queue). 0 for NULL. */
size_t ctx_json_bytes(const json_t *v);

/* --- lifecycle (engine only) ---------------------------------------------------- */
void ctx_init(ctx *c, store_conn *conn, const schema *s, bool writable);
void ctx_release(ctx *c);
/* The name of the table an id belongs to, or NULL (uses the schema). */
const char *ctx_table_of_id(const schema *s, const char *id);

#endif
