/*
 * doc_codec.c — documents as compact bytes (see doc_codec.h).
 * Callers: the statement layer (store_sql.c) when it writes a row and when it
 * reads one; the upgrade from the JSON rows of storage format 1.
 * Thread: any; everything here is pure.
 */
#include "store/doc_codec.h"

#include "base/invariant.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum {
    T_NULL = 0x00,
    T_FALSE = 0x01,
    T_TRUE = 0x02,
    T_INT = 0x03,
    T_REAL = 0x04,
    T_STRING = 0x05,
    T_ARRAY = 0x06,
    T_OBJECT = 0x07,
    T_ID = 0x08,
    T_CREATION_TIME = 0x09,
    T_SMALL_INT = 0x80,   /* 0x80 + n, n < 64 */
    T_SHORT_STRING = 0xC0 /* 0xC0 + length, length < 64 */
};
#define SMALL_MAX 64

/* --- encoding ------------------------------------------------------------------------ */

typedef struct out_buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} out_buf;

static bool reserve(out_buf *b, size_t n)
{
    if (b->failed) return false;
    if (b->len + n <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void put_byte(out_buf *b, uint8_t v)
{
    if (reserve(b, 1)) b->p[b->len++] = v;
}

static void put_bytes(out_buf *b, const void *bytes, size_t n)
{
    if (n && reserve(b, n)) {
        memcpy(b->p + b->len, bytes, n);
        b->len += n;
    }
}

static void put_varint(out_buf *b, uint64_t v)
{
    if (!reserve(b, 10)) return;
    while (v >= 0x80) {
        b->p[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->len++] = (uint8_t)v;
}

static void put_string(out_buf *b, const char *s, size_t n)
{
    if (n < SMALL_MAX) {
        put_byte(b, (uint8_t)(T_SHORT_STRING + n));
    } else {
        put_byte(b, T_STRING);
        put_varint(b, n);
    }
    put_bytes(b, s, n);
}

static void put_value(out_buf *b, const json_t *v, bool top)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
        put_byte(b, T_NULL);
        break;
    case JSON_FALSE:
        put_byte(b, T_FALSE);
        break;
    case JSON_TRUE:
        put_byte(b, T_TRUE);
        break;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i >= 0 && i < SMALL_MAX) {
            put_byte(b, (uint8_t)(T_SMALL_INT + i));
        } else {
            put_byte(b, T_INT);
            uint64_t u = (uint64_t)i;
            put_varint(b, (u << 1) ^ (uint64_t)(i < 0 ? -1 : 0)); /* zigzag */
        }
        break;
    }
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(bits >> (8 * i));
        put_byte(b, T_REAL);
        put_bytes(b, le, sizeof le);
        break;
    }
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        size_t i;
        const json_t *item;
        put_byte(b, T_ARRAY);
        put_varint(b, json_array_size(v));
        json_array_foreach(v, i, item) put_value(b, item, false);
        break;
    }
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *item;
        put_byte(b, T_OBJECT);
        put_varint(b, json_object_size(v));
        json_object_keylen_foreach((json_t *)v, key, key_len, item)
        {
            put_varint(b, key_len);
            put_bytes(b, key, key_len);
            if (top && key_len == 3 && memcmp(key, "_id", 3) == 0)
                put_byte(b, T_ID);
            else if (top && key_len == 13 && memcmp(key, "_creationTime", 13) == 0)
                put_byte(b, T_CREATION_TIME);
            else
                put_value(b, item, false);
        }
        break;
    }
    }
}

int doc_encode(const json_t *doc, uint8_t **out, size_t *len_out)
{
    ASSERT(json_is_object(doc));
    out_buf b = {0};
    put_byte(&b, DOC_CODEC_VERSION);
    put_value(&b, doc, true);
    if (b.failed) {
        free(b.p);
        return ERR_NOMEM;
    }
    *out = b.p;
    *len_out = b.len;
    return 0;
}

/* --- decoding ------------------------------------------------------------------------ */

typedef struct in_buf {
    const uint8_t *p, *end;
    const char *id;
    double creation_time;
    bool saw_id, saw_creation_time;
    const char *bad; /* why the bytes are damaged, or NULL */
    bool nomem;
} in_buf;

static bool fail(in_buf *in, const char *why)
{
    if (!in->bad) in->bad = why;
    return false;
}

static bool get_byte(in_buf *in, uint8_t *v)
{
    if (in->p >= in->end) return fail(in, "truncated");
    *v = *in->p++;
    return true;
}

static bool get_varint(in_buf *in, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t byte;
        if (!get_byte(in, &byte)) return false;
        r |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = r;
            return true;
        }
    }
    return fail(in, "a length runs past 64 bits");
}

/* n bytes at the cursor, which n must not run past. */
static const uint8_t *get_span(in_buf *in, uint64_t n)
{
    if (n > (uint64_t)(in->end - in->p)) {
        fail(in, "a length runs past the end");
        return NULL;
    }
    const uint8_t *at = in->p;
    in->p += n;
    return at;
}

static json_t *made(in_buf *in, json_t *v)
{
    if (!v && !in->bad) in->nomem = true;
    return v;
}

/* What a value may be besides data: the marker of _id or _creationTime,
 * as the value of that very field of the document itself, and only there. */
typedef enum { MARKER_NONE, MARKER_ID, MARKER_CREATION_TIME } marker_ok;
static json_t *get_value(in_buf *in, int depth, marker_ok marker);

static json_t *get_string(in_buf *in, uint64_t n)
{
    const uint8_t *s = get_span(in, n);
    if (!s) return NULL;
    json_t *v = json_stringn((const char *)s, (size_t)n);
    if (!v) fail(in, "a string is not UTF-8");
    return v;
}

static json_t *get_array(in_buf *in, int depth)
{
    uint64_t n;
    if (!get_varint(in, &n)) return NULL;
    if (n > (uint64_t)(in->end - in->p)) {
        fail(in, "an array counts more items than bytes");
        return NULL;
    }
    json_t *a = made(in, json_array());
    for (uint64_t i = 0; a && i < n; i++) {
        json_t *item = get_value(in, depth + 1, MARKER_NONE);
        if (!item || json_array_append_new(a, item) != 0) {
            if (item) in->nomem = true;
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *get_object(in_buf *in, int depth, bool top)
{
    uint64_t n;
    if (!get_varint(in, &n)) return NULL;
    if (n > (uint64_t)(in->end - in->p) / 2) {
        fail(in, "an object counts more fields than bytes");
        return NULL;
    }
    json_t *o = made(in, json_object());
    for (uint64_t i = 0; o && i < n; i++) {
        uint64_t key_len;
        const uint8_t *key = get_varint(in, &key_len) ? get_span(in, key_len) : NULL;
        if (key && json_object_getn(o, (const char *)key, (size_t)key_len)) {
            fail(in, "a field name repeats"); /* no document the store wrote has one */
            key = NULL;
        }
        marker_ok marker = MARKER_NONE;
        if (key && top && key_len == 3 && memcmp(key, "_id", 3) == 0) marker = MARKER_ID;
        if (key && top && key_len == 13 && memcmp(key, "_creationTime", 13) == 0)
            marker = MARKER_CREATION_TIME;
        json_t *item = key ? get_value(in, depth + 1, marker) : NULL;
        if (!item || json_object_setn_new(o, (const char *)key, (size_t)key_len, item) != 0) {
            if (item) fail(in, "a field name is not UTF-8");
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *get_value(in_buf *in, int depth, marker_ok marker)
{
    if (depth > DOC_CODEC_DEPTH_MAX) {
        fail(in, "nested too deep");
        return NULL;
    }
    uint8_t tag;
    if (!get_byte(in, &tag)) return NULL;
    if (tag >= T_SHORT_STRING) return get_string(in, tag - T_SHORT_STRING);
    if (tag >= T_SMALL_INT) return made(in, json_integer(tag - T_SMALL_INT));
    switch (tag) {
    case T_NULL:
        return made(in, json_null());
    case T_FALSE:
        return made(in, json_false());
    case T_TRUE:
        return made(in, json_true());
    case T_INT: {
        uint64_t u;
        if (!get_varint(in, &u)) return NULL;
        json_int_t i = (json_int_t)(u >> 1) ^ -(json_int_t)(u & 1); /* zigzag */
        return made(in, json_integer(i));
    }
    case T_REAL: {
        const uint8_t *le = get_span(in, 8);
        if (!le) return NULL;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits |= (uint64_t)le[i] << (8 * i);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (d != d || d - d != 0) {
            fail(in, "a number is not finite");
            return NULL;
        }
        return made(in, json_real(d));
    }
    case T_STRING: {
        uint64_t n;
        return get_varint(in, &n) ? get_string(in, n) : NULL;
    }
    case T_ARRAY:
        return get_array(in, depth);
    case T_OBJECT:
        return get_object(in, depth, depth == 0);
    case T_ID:
        if (marker != MARKER_ID || in->saw_id) break;
        in->saw_id = true;
        return made(in, json_string(in->id));
    case T_CREATION_TIME:
        if (marker != MARKER_CREATION_TIME || in->saw_creation_time) break;
        in->saw_creation_time = true;
        return made(in, json_real(in->creation_time));
    default:
        break;
    }
    fail(in, "an unknown value tag");
    return NULL;
}

int doc_decode(const uint8_t *bytes, size_t len, const char *id, double creation_time,
               json_t **doc_out, const char *what, err_t *e)
{
    *doc_out = NULL;
    in_buf in = {.p = bytes, .end = bytes + len, .id = id, .creation_time = creation_time};
    json_t *doc = NULL;
    if (len < 1 || bytes[0] != DOC_CODEC_VERSION)
        fail(&in, "not a document of this format");
    else {
        in.p++;
        doc = get_value(&in, 0, MARKER_NONE);
        if (doc && !json_is_object(doc)) fail(&in, "not an object");
        if (doc && in.p != in.end) fail(&in, "bytes after the document");
    }
    if (doc && !in.bad && !in.saw_id && json_object_set_new(doc, "_id", json_string(id)) != 0)
        in.nomem = true;
    if (doc && !in.bad && !in.saw_creation_time &&
        json_object_set_new(doc, "_creationTime", json_real(creation_time)) != 0)
        in.nomem = true;
    if (in.bad || in.nomem) {
        json_decref(doc);
        if (in.bad)
            return err_set(e, ERR_STORAGE, "%s: a stored document is damaged (%s)", what, in.bad);
        return err_set(e, ERR_NOMEM, "%s: out of memory", what);
    }
    *doc_out = doc;
    return 0;
}
