/*
 * key_codec.h — index values as bytes whose bytewise order is schema.h's key
 * order, so that both databases index them as plain BLOB (SQLite) or BYTEA
 * (PostgreSQL) columns, compared with memcmp, without parsing the document.
 *
 * One encoded value per column (a column holds one field of the document),
 * so an encoding needs no terminator: bytewise comparison with "a prefix
 * sorts first" is exactly SQLite's BLOB and PostgreSQL's bytea order.
 *
 *   null or missing  00
 *   number           10, then 8 bytes: the largest double <= the value, its
 *                    IEEE bits with the sign bit flipped (positives) or all
 *                    bits flipped (negatives), big-endian; then, for an
 *                    integer that double does not hold exactly, 2 bytes of
 *                    what the integer exceeds it by (< 2^11), big-endian
 *   string           20, then its UTF-8 bytes (U+0000 included)
 *   boolean          30, then 00 (false) or 01 (true)
 *   array            40, then its compact JSON text
 *   object           50, then its compact JSON text with sorted keys
 *
 * So 1 and 1.0 encode the same (jsonb equality), 2^53 + 1 sorts above 2^53,
 * -0.0 is 0, and a nonnegative field's value is nonnegative exactly when its
 * encoding is below KEY_NUMBER_TAG or at least KEY_NONNEGATIVE_MIN (the
 * CHECK of store_ddl.c). Arrays and objects are never index values; they get
 * a stable order all the same.
 * Thread: any; everything here is pure.
 */
#ifndef DOJO_STORE_KEY_CODEC_H
#define DOJO_STORE_KEY_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define KEY_NULL_TAG 0x00
#define KEY_NUMBER_TAG 0x10
#define KEY_STRING_TAG 0x20
#define KEY_BOOLEAN_TAG 0x30
#define KEY_ARRAY_TAG 0x40
#define KEY_OBJECT_TAG 0x50
/* The smallest encoding of a nonnegative number: 10 80 00 … (0.0). */
#define KEY_NONNEGATIVE_MIN_SQL "x'1080'"
/* A number's encoding: tag, double, optional residual. */
#define KEY_NUMBER_BYTES_MAX 11

/* A value's encoding, in a buffer the caller frees with key_buf_free. Small
 * values stay inline; longer ones are malloc'd. */
typedef struct key_buf {
    uint8_t *bytes;
    size_t len;
    uint8_t inline_bytes[48];
} key_buf;

/* Encodes v (NULL = missing). Returns 0, or -1 when out of memory. */
int key_encode(const json_t *v, key_buf *out);
void key_buf_free(key_buf *b);

/* Compares two encodings bytewise, a prefix first: the databases' order. */
int key_bytes_cmp(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

#endif
