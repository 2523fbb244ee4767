/*
 * key_codec.c — index values as order-preserving bytes (see key_codec.h).
 * Callers: the statement layer (store_sql.c) when it writes a document's key
 * columns and binds a scan's bounds; tests.
 * Thread: any; everything here is pure.
 */
#include "store/key_codec.h"

#include "base/invariant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KEY_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

void key_buf_free(key_buf *b)
{
    if (b->bytes && b->bytes != b->inline_bytes) free(b->bytes);
    b->bytes = NULL;
    b->len = 0;
}

/* Room for n bytes in b (inline when they fit). */
static uint8_t *key_buf_room(key_buf *b, size_t n)
{
    b->bytes = n <= sizeof b->inline_bytes ? b->inline_bytes : malloc(n);
    b->len = 0;
    return b->bytes;
}

/* The 8 bytes of d whose bytewise order is the numeric order. */
static void put_ordered_double(uint8_t out[8], double d)
{
    if (d == 0) d = 0.0; /* -0.0 is 0 */
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    bits = (bits >> 63) ? ~bits : bits ^ (1ull << 63);
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(bits >> (8 * (7 - i)));
}

/* The largest double <= i, and by how much i exceeds it (0 .. 2^11). */
static double floor_double(json_int_t i, unsigned *residual)
{
    double d = (double)i; /* the nearest double: may be above i */
    if (d >= 9223372036854775808.0 || (json_int_t)d > i) d = nextafter(d, -INFINITY);
    json_int_t below = (json_int_t)d;
    ASSERT(below <= i);
    *residual = (unsigned)(i - below);
    ASSERT(*residual < 4096);
    return d;
}

static int encode_number(const json_t *v, key_buf *out)
{
    uint8_t *p = key_buf_room(out, KEY_NUMBER_BYTES_MAX);
    unsigned residual = 0;
    double d =
        json_is_integer(v) ? floor_double(json_integer_value(v), &residual) : json_real_value(v);
    p[0] = KEY_NUMBER_TAG;
    put_ordered_double(p + 1, d);
    out->len = 9;
    if (residual) {
        p[9] = (uint8_t)(residual >> 8);
        p[10] = (uint8_t)residual;
        out->len = 11;
    }
    return 0;
}

static int encode_bytes(uint8_t tag, const char *text, size_t n, key_buf *out)
{
    uint8_t *p = key_buf_room(out, n + 1);
    if (!p) return -1;
    p[0] = tag;
    if (n) memcpy(p + 1, text, n);
    out->len = n + 1;
    return 0;
}

int key_encode(const json_t *v, key_buf *out)
{
    out->bytes = NULL;
    out->len = 0;
    if (!v || json_is_null(v)) {
        key_buf_room(out, 1)[0] = KEY_NULL_TAG;
        out->len = 1;
        return 0;
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        return encode_number(v, out);
    case JSON_STRING:
        return encode_bytes(KEY_STRING_TAG, json_string_value(v), json_string_length(v), out);
    case JSON_TRUE:
    case JSON_FALSE: {
        uint8_t *p = key_buf_room(out, 2);
        p[0] = KEY_BOOLEAN_TAG;
        p[1] = json_is_true(v) ? 1 : 0;
        out->len = 2;
        return 0;
    }
    default: {
        char *text = json_dumps(v, KEY_JSON_FLAGS);
        if (!text) return -1;
        int rc = encode_bytes(json_is_array(v) ? KEY_ARRAY_TAG : KEY_OBJECT_TAG, text, strlen(text),
                              out);
        free(text);
        return rc;
    }
    }
}

int key_bytes_cmp(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (c) return c < 0 ? -1 : 1;
    return (a_len > b_len) - (a_len < b_len);
}
