/*
 * wire.h — values on the wire (convex-protocol.md §4). Arguments arrive as
 * Convex-encoded JSON; dojo's own values are plain JSON (integers stay JSON
 * integers, every number below 2^53). Decoding turns the encoded forms into
 * plain values and refuses what dojo cannot hold; encoding writes results in
 * a form the client decodes to the same values.
 * Thread: any; pure functions.
 */
#ifndef DOJO_PROTO_WIRE_H
#define DOJO_PROTO_WIRE_H

#include <jansson.h>

#include "base/err.h"

/* Output formats of the HTTP API (§1.3). */
typedef enum { WIRE_ENCODED, WIRE_CLEAN } wire_format;

/* Parses a `format` value (NULL = clean json, as for an unknown client).
 * Returns 0, or -1 for an unknown name. */
int wire_parse_format(const char *name, wire_format *out);

/* Decodes Convex-encoded JSON into a plain value: {"$integer": b64} becomes a
 * JSON integer, {"$float": b64} a real (NaN and ±Infinity are refused: dojo
 * stores JSON), {"$bytes": …} is refused; other keys starting with '$' are
 * refused; depth, object size and array length are bounded (base/limits.h).
 * Returns a new reference, or NULL with ERR_INVALID_ARGUMENT naming the
 * place. */
json_t *wire_decode(const json_t *encoded, err_t *e);

/* The function's argument object from a request's `args`: an object, or an
 * array holding exactly one object. Returns a new decoded object, or NULL
 * with ERR_INVALID_ARGUMENT. */
json_t *wire_args(const json_t *args, err_t *e);

/* Serialises a value for the wire. Integers print as integers, reals with 17
 * significant digits, -0.0 as {"$float": …} in the encoded format. The
 * returned string is malloc'd. */
char *wire_dumps(const json_t *value, wire_format fmt);

/* Encodes a value in place of the given format (a new reference). */
json_t *wire_encode(const json_t *value, wire_format fmt);

#endif
