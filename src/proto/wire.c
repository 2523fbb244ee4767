/*
 * wire.c — Convex-encoded JSON to plain values and back (see wire.h).
 * Thread: any.
 */
#include "proto/wire.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
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

static json_t *decode_special(const char *key, const json_t *v, err_t *e)
{
    const char *text = json_string_value(v);
    uint8_t raw[16];
    if (strcmp(key, "$integer") == 0) {
        if (!text || strlen(text) != 12 || b64_decode(text, 12, raw) != 8) {
            err_set(e, ERR_INVALID_ARGUMENT, "Invalid $integer: expected base64 of 8 bytes");
            return NULL;
        }
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u |= (uint64_t)raw[i] << (8 * i);
        int64_t x = (int64_t)u;
        if (x > 9007199254740991LL || x < -9007199254740991LL) {
            err_set(e, ERR_INVALID_ARGUMENT, "Integer %lld is out of range: at most 2^53-1",
                    (long long)x);
            return NULL;
        }
        return json_integer((json_int_t)x);
    }
    if (strcmp(key, "$float") == 0) {
        if (!text || strlen(text) != 12 || b64_decode(text, 12, raw) != 8) {
            err_set(e, ERR_INVALID_ARGUMENT, "Invalid $float: expected base64 of 8 bytes");
            return NULL;
        }
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u |= (uint64_t)raw[i] << (8 * i);
        double d;
        memcpy(&d, &u, sizeof d);
        if (!isfinite(d)) {
            err_set(e, ERR_INVALID_ARGUMENT, "NaN and Infinity are not supported values");
            return NULL;
        }
        return json_real(d);
    }
    if (strcmp(key, "$bytes") == 0)
        err_set(e, ERR_INVALID_ARGUMENT, "Bytes values are not supported by these functions");
    else
        err_set(e, ERR_INVALID_ARGUMENT,
                "Invalid value: field names may not start with '$' (got \"%s\")", key);
    return NULL;
}

static json_t *decode(const json_t *v, int depth, err_t *e)
{
    if (depth > LIMIT_VALUE_DEPTH_MAX) {
        err_set(e, ERR_INVALID_ARGUMENT, "Value nested deeper than %d levels",
                LIMIT_VALUE_DEPTH_MAX);
        return NULL;
    }
    if (json_is_array(v)) {
        if (json_array_size(v) > LIMIT_ARRAY_ITEMS_MAX) {
            err_set(e, ERR_INVALID_ARGUMENT, "Array has %zu items; the limit is %d",
                    json_array_size(v), LIMIT_ARRAY_ITEMS_MAX);
            return NULL;
        }
        json_t *out = json_array();
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            json_t *d = decode(item, depth + 1, e);
            if (!d) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, d);
        }
        return out;
    }
    if (!json_is_object(v)) return json_deep_copy(v);
    if (json_object_size(v) > LIMIT_OBJECT_FIELDS_MAX) {
        err_set(e, ERR_INVALID_ARGUMENT, "Object has %zu fields; the limit is %d",
                json_object_size(v), LIMIT_OBJECT_FIELDS_MAX);
        return NULL;
    }
    const char *key;
    const json_t *fv;
    if (json_object_size(v) == 1) {
        json_object_foreach((json_t *)v, key, fv) {
            if (key[0] == '$') return decode_special(key, fv, e);
        }
    }
    json_t *out = json_object();
    json_object_foreach((json_t *)v, key, fv) {
        if (key[0] == '$') {
            json_decref(out);
            return decode_special(key, fv, e);
        }
        if (strlen(key) > LIMIT_FIELD_NAME_BYTES_MAX) {
            json_decref(out);
            err_set(e, ERR_INVALID_ARGUMENT, "Field name longer than %d bytes",
                    LIMIT_FIELD_NAME_BYTES_MAX);
            return NULL;
        }
        json_t *d = decode(fv, depth + 1, e);
        if (!d) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, key, d);
    }
    return out;
}

json_t *wire_decode(const json_t *encoded, err_t *e)
{
    return decode(encoded, 0, e);
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
        json_object_foreach((json_t *)v, k, item) json_object_set_new(out, k, encode_copy(item, fmt));
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
