/*
 * doc_codec.h — documents as the compact bytes the store keeps in each row's
 * doc column (a BLOB on SQLite, a BYTEA on PostgreSQL).
 *
 * Why not JSON text: the bytes of a row are written on every update of the
 * document and parsed on every read of it. The encoding below is about a
 * quarter smaller than compact JSON for the app's documents (no quotes,
 * colons or commas; small integers and short strings in one byte plus their
 * bytes; reals as their 8 bytes, exactly), and it decodes without scanning
 * text for escapes or parsing numbers. _id and _creationTime live in columns
 * of their own; the document keeps one byte where each stood, so a document
 * reads back with its fields in the order it was written.
 *
 *   document  := DOC_CODEC_VERSION value
 *   value     := 00 null | 01 false | 02 true
 *              | 03 zigzag-varint (integer) | 04 8 bytes little-endian (real)
 *              | 05 varint bytes (string) | 06 varint value* (array)
 *              | 07 varint (varint bytes value)* (object: count, then each
 *                key's length and bytes, then its value)
 *              | 08 (_id, from its column) | 09 (_creationTime, likewise)
 *              | 80+n (the integer n, 0 <= n < 64)
 *              | C0+n bytes (a string of n < 64 bytes)
 *
 * Decoding checks every length against what is left, the nesting depth
 * against DOC_CODEC_DEPTH_MAX and the text against UTF-8: damaged bytes give
 * an error, never a crash or an invalid value.
 * Thread: any; everything here is pure.
 */
#ifndef DOJO_STORE_DOC_CODEC_H
#define DOJO_STORE_DOC_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define DOC_CODEC_VERSION 0xD1
#define DOC_CODEC_DEPTH_MAX 128 /* deeper than any document the validators admit */

/* Encodes doc (an object) into a new malloc'd buffer: *out, *len_out. _id
 * and _creationTime, when present at the top level, become their markers.
 * Returns 0 or ERR_NOMEM. */
int doc_encode(const json_t *doc, uint8_t **out, size_t *len_out);

/* Decodes bytes into a new object, putting id and creation_time where their
 * markers stand (a document without markers gets them at its end). Returns 0,
 * or ERR_STORAGE (damaged bytes; what names the read) or ERR_NOMEM. */
int doc_decode(const uint8_t *bytes, size_t len, const char *id, double creation_time,
               json_t **doc_out, const char *what, err_t *e);

#endif
