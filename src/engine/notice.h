/*
 * notice.h — the commit notice: what a process tells the other processes
 * sharing its database about one of its commits (ARCHITECTURE "Scale-out"),
 * sent as the payload of a store commit notification (store_notify_commit).
 * It is JSON text of at most a given number of bytes:
 *
 *   {"v":1,"node":"<16 hex digits>","ts":"<commit timestamp, decimal>",
 *    "docs":[[<table number>,<old>,<new>],...],
 *    "tables":[<table number>,...],
 *    "all":true}
 *
 * node: the sending process (random per process), so that it can recognise
 * its own notices. docs: one entry per document the commit wrote, a
 * document written several times by the commit folded into its first old
 * and its last new version (the commit is atomic: nobody sees the versions
 * in between). <old> and <new> are the document's projection on its
 * table's index fields plus _id and _creationTime — what all of its index
 * keys are made of — or null for an insert (old) or a delete (new).
 * tables: tables any document of which may have been written, not listed
 * one by one. all: nothing is known about what was written. Empty "docs"
 * and "tables" and a false "all" are left out.
 *
 * Bound and fallback: when the notice does not fit in the bound, the table
 * with the biggest listing leaves "docs" for "tables", and so on until it
 * fits; "tables" alone always fits (at most 255 numbers). A remote write is
 * never dropped, only summarised.
 *
 * Decoding gives a write set whose records hold the projections (they give
 * the same index keys as the whole documents, so rwset_intersects treats a
 * remote write like a local one) and whose whole_tables hold "tables".
 * Thread: any (pure functions).
 */
#ifndef DOJO_ENGINE_NOTICE_H
#define DOJO_ENGINE_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "engine/rwset.h"
#include "store/schema.h"

#define NOTICE_VERSION 1
#define NOTICE_NODE_ID_HEX_CHARS 16
#define NOTICE_NODE_ID_BYTES (NOTICE_NODE_ID_HEX_CHARS + 1)
/* The smallest bound notice_encode accepts: room for the header and 255
 * table numbers. */
#define NOTICE_PAYLOAD_BYTES_MIN 1200

/* The notice of commit ts by node_id, with writes ws, as a malloc'd string of
 * at most payload_bytes_max bytes (NUL excluded); NULL when out of memory. */
char *notice_encode(const char *node_id, uint64_t ts, const write_set *ws,
                    size_t payload_bytes_max);

typedef struct notice {
    char node_id[NOTICE_NODE_ID_BYTES];
    uint64_t ts;
    write_set writes; /* free with write_set_free */
} notice;

/* Reads a notice with the tables of s. Returns 0, or ERR_INVALID_ARGUMENT
 * when payload names no node or no timestamp (out->writes is then empty).
 * A notice of another version, or with parts that cannot be read, decodes
 * to a write set that touches everything (correct, not precise); entries of
 * tables s does not know are skipped (no query here can read them). */
int notice_decode(const schema *s, const char *payload, notice *out, err_t *e);

#endif
