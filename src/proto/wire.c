/*
 * wire.c — Convex-encoded JSON to plain values and back (see wire.h).
 * Thread: any.
 */
#include "proto/wire.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/fieldpath.h"
#include "base/limits.h"

int wire_parse_format(const char *name, wire_format *out)
{
    if (!name || strcmp(name, "json") == 0 || strcmp(name, "convex_clean_json") == 0 ||
        strcmp(name, "export_json") == 0) {
        *out = WIRE_CLEAN;
        return 0;
    }
    if (strcmp(name, "convex_encoded_json") == 0 || strcmp(name, "convex_json") == 0) {
        *out = WIRE_ENCODED;
        return 0;
    }
    return -1;
}

#define WIRE_PATH_BYTES_MAX 256

/* Where in the value decoding is, for messages that name the field. */
typedef struct decoder {
    char path[WIRE_PATH_BYTES_MAX];
    err_t *e;
} decoder;

static json_t *refuse(decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *refuse(decoder *d, const char *fmt, ...)
{
    char why[ERR_MSG_BYTES_MAX - WIRE_PATH_BYTES_MAX - 32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (d->path[0])
        err_set(d->e, ERR_INVALID_ARGUMENT, "Invalid argument `%s`: %s", d->path, why);
    else
        err_set(d->e, ERR_INVALID_ARGUMENT, "Invalid arguments: %s", why);
    return NULL;
}

static bool printable_ascii(const char *key)
{
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (*p < 0x20 || *p > 0x7E) return false;
    return true;
}

static json_t *decode_special(decoder *d, const char *key, const json_t *v)
{
    const char *text = json_string_value(v);
    uint8_t raw[16];
    if (strcmp(key, "$integer") == 0) {
        if (!text || strlen(text) != 12 || b64_decode(text, 12, raw) != 8)
            return refuse(d, "invalid $integer: expected base64 of 8 bytes");
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u |= (uint64_t)raw[i] << (8 * i);
        int64_t x = (int64_t)u;
        if (x > 9007199254740991LL || x < -9007199254740991LL)
            return refuse(d, "integer %lld is out of range: at most 2^53-1", (long long)x);
        return json_integer((json_int_t)x);
    }
    if (strcmp(key, "$float") == 0) {
        if (!text || strlen(text) != 12 || b64_decode(text, 12, raw) != 8)
            return refuse(d, "invalid $float: expected base64 of 8 bytes");
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u |= (uint64_t)raw[i] << (8 * i);
        double x;
        memcpy(&x, &u, sizeof x);
        if (!isfinite(x)) return refuse(d, "NaN and Infinity are not supported values");
        /* Only what plain JSON cannot say goes in a $float: here, -0. */
        if (!(x == 0 && signbit(x)))
            return refuse(d, "invalid $float: %g is a plain number and must be sent as one", x);
        return json_real(x);
    }
    if (strcmp(key, "$bytes") == 0)
        return refuse(d, "bytes values are not supported by these functions");
    return refuse(d, "field names may not start with '$' (got \"%.64s\")", key);
}

static json_t *decode_value(decoder *d, const json_t *v, int depth);

static json_t *decode_array(decoder *d, const json_t *v, int depth)
{
    if (json_array_size(v) > LIMIT_ARRAY_ITEMS_MAX)
        return refuse(d, "array has %zu items; the limit is %d", json_array_size(v),
                      LIMIT_ARRAY_ITEMS_MAX);
    json_t *out = json_array();
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        size_t len = fieldpath_push(d->path, sizeof d->path, NULL, (long)i);
        json_t *x = decode_value(d, item, depth + 1);
        d->path[len] = '\0';
        if (!x) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, x);
    }
    return out;
}

static json_t *decode_object(decoder *d, const json_t *v, int depth)
{
    if (json_object_size(v) > LIMIT_OBJECT_FIELDS_MAX)
        return refuse(d, "object has %zu fields; the limit is %d", json_object_size(v),
                      LIMIT_OBJECT_FIELDS_MAX);
    const char *key;
    const json_t *fv;
    json_object_foreach((json_t *)v, key, fv)
    {
        if (key[0] == '$') {
            if (json_object_size(v) == 1) return decode_special(d, key, fv);
            return refuse(d, "field names may not start with '$' (got \"%.64s\")", key);
        }
    }
    json_t *out = json_object();
    json_object_foreach((json_t *)v, key, fv)
    {
        /* The client refuses to decode such names: never store one. */
        if (strlen(key) > LIMIT_FIELD_NAME_BYTES_MAX || !printable_ascii(key)) {
            json_decref(out);
            size_t len = fieldpath_push(d->path, sizeof d->path, key, 0);
            refuse(d, "field names are 1 to %d printable ASCII characters",
                   LIMIT_FIELD_NAME_BYTES_MAX);
            d->path[len] = '\0';
            return NULL;
        }
        size_t len = fieldpath_push(d->path, sizeof d->path, key, 0);
        json_t *x = decode_value(d, fv, depth + 1);
        d->path[len] = '\0';
        if (!x) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, key, x);
    }
    return out;
}

static json_t *decode_value(decoder *d, const json_t *v, int depth)
{
    if (depth > LIMIT_VALUE_DEPTH_MAX)
        return refuse(d, "value nested deeper than %d levels", LIMIT_VALUE_DEPTH_MAX);
    if (json_is_array(v)) return decode_array(d, v, depth);
    if (json_is_object(v)) return decode_object(d, v, depth);
    /* dojo's strings are C strings in places, and PostgreSQL's jsonb has no
     * U+0000 either: refused on every store alike. */
    if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
        return refuse(d, "strings may not contain the character U+0000");
    return json_deep_copy(v);
}

json_t *wire_decode(const json_t *encoded, err_t *e)
{
    decoder d = {.e = e};
    d.path[0] = '\0';
    return decode_value(&d, encoded, 0);
}

json_t *wire_args(const json_t *args, err_t *e)
{
    if (!args) return json_object();
    const json_t *obj = args;
    if (json_is_array(args)) {
        if (json_array_size(args) != 1) {
            err_set(e, ERR_INVALID_ARGUMENT,
                    "Invalid arguments: expected one argument object, got an array of %zu",
                    json_array_size(args));
            return NULL;
        }
        obj = json_array_get(args, 0);
    }
    if (!json_is_object(obj)) {
        err_set(e, ERR_INVALID_ARGUMENT, "Invalid arguments: args must be an object");
        return NULL;
    }
    return wire_decode(obj, e);
}

static bool has_negative_zero(const json_t *v)
{
    if (json_is_real(v)) return json_real_value(v) == 0 && signbit(json_real_value(v));
    if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) if (has_negative_zero(item)) return true;
    }
    if (json_is_object(v)) {
        const char *k;
        const json_t *item;
        json_object_foreach((json_t *)v, k, item) if (has_negative_zero(item)) return true;
    }
    return false;
}

static json_t *encode_copy(const json_t *v, wire_format fmt)
{
    if (json_is_real(v) && json_real_value(v) == 0 && signbit(json_real_value(v))) {
        if (fmt == WIRE_CLEAN) return json_real(0.0);
        double d = -0.0;
        uint64_t u;
        memcpy(&u, &d, sizeof u);
        char text[13];
        b64_u64le_encode(u, text);
        return json_pack("{s:s}", "$float", text);
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) json_array_append_new(out, encode_copy(item, fmt));
        return out;
    }
    if (json_is_object(v)) {
        json_t *out = json_object();
        const char *k;
        const json_t *item;
        json_object_foreach((json_t *)v, k, item)
            json_object_set_new(out, k, encode_copy(item, fmt));
        return out;
    }
    return json_incref((json_t *)v);
}

json_t *wire_encode(const json_t *value, wire_format fmt)
{
    if (!value) return json_null();
    /* The common case has nothing to rewrite: share the value. */
    if (!has_negative_zero(value)) return json_incref((json_t *)value);
    return encode_copy(value, fmt);
}

char *wire_dumps(const json_t *value, wire_format fmt)
{
    json_t *enc = wire_encode(value, fmt);
    char *text = json_dumps(enc, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY);
    json_decref(enc);
    return text;
}
