/*
 * jread.h — the one way dojo reads JSON that it did not write itself: the
 * sync protocol's client messages, HTTP bodies and query parameters, JWT
 * headers and claims, OpenID discovery and JWKS documents, import files,
 * other nodes' commit notices, a server's answers to the command line.
 *
 * Each reader looks up one field (or takes one value), checks that it is
 * present, of the right type and within range, and either stores it or
 * fills the err_t with ERR_INVALID_ARGUMENT and a message that names the
 * field by its path, e.g. "Add.componentPath must be a string or null, not
 * an integer". Callers turn that message into their protocol's own error (a
 * FatalError on a sync session, a 400 {code, message} over HTTP), the way
 * Redis reads every client argument through its ...OrReply helpers. Reading
 * such JSON with jansson's accessors directly is refused by a test
 * (scripts/check-untrusted-json.sh), so a wrong type can never turn into a
 * NULL that crashes the server.
 *
 * Presence: by default a field is required. JR_OPTIONAL accepts an absent
 * field, JR_NULLABLE accepts null as if absent; an absent value leaves *out
 * as the caller initialised it (its default), NULL for pointers.
 * Strings never hold U+0000 (a C string would silently end there) and
 * always fit their bound; integers are exact (an integral real such as 1e3
 * is accepted) and within [min, max].
 *
 * The values handed out are borrowed from the document: valid while it is.
 * Thread: any; pure functions.
 */
#ifndef DOJO_BASE_JREAD_H
#define DOJO_BASE_JREAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum {
    JR_REQUIRED = 0,
    JR_OPTIONAL = 1 << 0, /* absent is fine */
    JR_NULLABLE = 1 << 1, /* null is fine, and means absent */
    JR_NONEMPTY = 1 << 2, /* strings: "" is refused */
};

/* A name for a value in messages: "Add" or "modifications[3]". */
#define JR_NAME_BYTES_MAX 160

/* --- one value, already in hand (an array item, a whole document) --------------------- */

/* v must be a JSON object. */
int jr_as_object(const json_t *v, const char *name, err_t *e);
int jr_as_string(const json_t *v, const char *name, unsigned flags, size_t bytes_max,
                 const char **out, err_t *e);
int jr_as_int(const json_t *v, const char *name, unsigned flags, int64_t min, int64_t max,
              int64_t *out, err_t *e);
int jr_as_number(const json_t *v, const char *name, unsigned flags, double min, double max,
                 double *out, err_t *e);
int jr_as_bool(const json_t *v, const char *name, unsigned flags, bool *out, err_t *e);

/* --- one field of an object named `where` ----------------------------------------------- */

/* The field's value whatever its type (NULL when absent), for values that
 * are handed whole to their own typed decoder (function arguments go to
 * wire_args, claims are copied as they are). obj need not be an object. */
const json_t *jr_field(const json_t *obj, const char *field);

int jr_string(const json_t *obj, const char *where, const char *field, unsigned flags,
              size_t bytes_max, const char **out, err_t *e);
int jr_int(const json_t *obj, const char *where, const char *field, unsigned flags, int64_t min,
           int64_t max, int64_t *out, err_t *e);
int jr_number(const json_t *obj, const char *where, const char *field, unsigned flags, double min,
              double max, double *out, err_t *e);
int jr_bool(const json_t *obj, const char *where, const char *field, unsigned flags, bool *out,
            err_t *e);
/* An object field; *out NULL when absent and allowed. */
int jr_object(const json_t *obj, const char *where, const char *field, unsigned flags,
              const json_t **out, err_t *e);
/* An array field of at most items_max items; *out NULL when absent and allowed. */
int jr_array(const json_t *obj, const char *where, const char *field, unsigned flags,
             size_t items_max, const json_t **out, err_t *e);
/* The field when it is a string (without U+0000), else fallback: for text
 * that is only shown, where absent and wrong are the same. */
const char *jr_string_or(const json_t *obj, const char *field, const char *fallback);
/* Whether a string field equals `expected` (false when absent or not a string). */
bool jr_string_is(const json_t *obj, const char *field, const char *expected);

/* --- arrays ------------------------------------------------------------------------------- */

/* Item i of an array (NULL past its end). */
const json_t *jr_item(const json_t *array, size_t i);
/* Item i when it is a string (without U+0000), else fallback. */
const char *jr_item_string_or(const json_t *array, size_t i, const char *fallback);
/* "where[i]" into name (JR_NAME_BYTES_MAX), for reading an item's fields. */
const char *jr_item_name(char *name, const char *where, size_t i);

/* --- URL query strings ("a=1&b=x%20y") -------------------------------------------------- */

/* Decodes %XX (and '+' as a space when plus_is_space) from in[0..len) into
 * out (out_bytes, NUL included). ERR_INVALID_ARGUMENT for a bad escape, a
 * decoded U+0000, or a result that does not fit. */
int jr_percent_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t out_bytes,
                      err_t *e);
/* The decoded value of parameter `name` (the first, when repeated), malloc'd
 * into *out (NULL when absent and JR_OPTIONAL); refused when it is not
 * valid percent-encoding or longer than bytes_max once decoded. */
int jr_query_string(const char *query, const char *name, unsigned flags, size_t bytes_max,
                    char **out, err_t *e);
/* A decimal integer parameter within [min, max]; *out untouched when absent. */
int jr_query_int(const char *query, const char *name, unsigned flags, int64_t min, int64_t max,
                 int64_t *out, err_t *e);

#endif
