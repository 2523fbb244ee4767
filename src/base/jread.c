/*
 * jread.c — typed reading of untrusted JSON (see jread.h). Every refusal is
 * ERR_INVALID_ARGUMENT with a message that names the value and says what it
 * should have been and what it was.
 * Thread: any.
 */
#include "base/jread.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"

/* Integers beyond this are not exact in a double, nor in JavaScript. */
#define JR_EXACT_INT_MAX 9007199254740992.0 /* 2^53 */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* Handles absence and null; returns 1 when the value is to be read, 0 when
 * it is absent and allowed, or the error. */
static int presence(const json_t *v, const char *name, unsigned flags, const char *wanted, err_t *e)
{
    if (!v) {
        if (flags & JR_OPTIONAL) return 0;
        return err_set(e, ERR_INVALID_ARGUMENT, "%s is missing: it must be %s", name, wanted);
    }
    if (json_is_null(v) && (flags & JR_NULLABLE)) return 0;
    return 1;
}

static int wrong_type(const json_t *v, const char *name, unsigned flags, const char *wanted,
                      err_t *e)
{
    return err_set(e, ERR_INVALID_ARGUMENT, "%s must be %s%s, not %s", name, wanted,
                   (flags & JR_NULLABLE) ? " or null" : "", type_name(v));
}

int jr_as_object(const json_t *v, const char *name, err_t *e)
{
    int rc = presence(v, name, 0, "an object", e);
    if (rc <= 0) return rc;
    return json_is_object(v) ? 0 : wrong_type(v, name, 0, "an object", e);
}

int jr_as_string(const json_t *v, const char *name, unsigned flags, size_t bytes_max,
                 const char **out, err_t *e)
{
    ASSERT(out != NULL);
    int rc = presence(v, name, flags, "a string", e);
    if (rc <= 0) return rc;
    if (!json_is_string(v)) return wrong_type(v, name, flags, "a string", e);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s must not contain U+0000", name);
    if (len > bytes_max)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s is too long: at most %zu bytes, not %zu", name,
                       bytes_max, len);
    if (len == 0 && (flags & JR_NONEMPTY))
        return err_set(e, ERR_INVALID_ARGUMENT, "%s must not be empty", name);
    *out = s;
    return 0;
}

/* An exact integer: a JSON integer, or a real with no fraction within
 * ±2^53. */
static bool integral(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (!json_is_real(v)) return false;
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d) || fabs(d) > JR_EXACT_INT_MAX) return false;
    *out = (int64_t)d;
    return true;
}

int jr_as_int(const json_t *v, const char *name, unsigned flags, int64_t min, int64_t max,
              int64_t *out, err_t *e)
{
    ASSERT(out != NULL && min <= max);
    int rc = presence(v, name, flags, "an integer", e);
    if (rc <= 0) return rc;
    int64_t n;
    if (!integral(v, &n)) return wrong_type(v, name, flags, "an integer", e);
    if (n < min || n > max)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s must be from %lld to %lld, not %lld", name,
                       (long long)min, (long long)max, (long long)n);
    *out = n;
    return 0;
}

int jr_as_number(const json_t *v, const char *name, unsigned flags, double min, double max,
                 double *out, err_t *e)
{
    ASSERT(out != NULL && min <= max);
    int rc = presence(v, name, flags, "a number", e);
    if (rc <= 0) return rc;
    if (!json_is_number(v)) return wrong_type(v, name, flags, "a number", e);
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s must be from %.17g to %.17g, not %.17g", name,
                       min, max, d);
    *out = d;
    return 0;
}

int jr_as_bool(const json_t *v, const char *name, unsigned flags, bool *out, err_t *e)
{
    ASSERT(out != NULL);
    int rc = presence(v, name, flags, "a boolean", e);
    if (rc <= 0) return rc;
    if (!json_is_boolean(v)) return wrong_type(v, name, flags, "a boolean", e);
    *out = json_is_true(v);
    return 0;
}

const json_t *jr_field(const json_t *obj, const char *field)
{
    return json_is_object(obj) ? json_object_get(obj, field) : NULL;
}

/* "where.field", or just "field" when where is empty. */
static const char *field_name(char *name, const char *where, const char *field)
{
    snprintf(name, JR_NAME_BYTES_MAX, "%s%s%s", where ? where : "", where && *where ? "." : "",
             field);
    return name;
}

int jr_string(const json_t *obj, const char *where, const char *field, unsigned flags,
              size_t bytes_max, const char **out, err_t *e)
{
    char name[JR_NAME_BYTES_MAX];
    return jr_as_string(jr_field(obj, field), field_name(name, where, field), flags, bytes_max, out,
                        e);
}

int jr_int(const json_t *obj, const char *where, const char *field, unsigned flags, int64_t min,
           int64_t max, int64_t *out, err_t *e)
{
    char name[JR_NAME_BYTES_MAX];
    return jr_as_int(jr_field(obj, field), field_name(name, where, field), flags, min, max, out, e);
}

int jr_number(const json_t *obj, const char *where, const char *field, unsigned flags, double min,
              double max, double *out, err_t *e)
{
    char name[JR_NAME_BYTES_MAX];
    return jr_as_number(jr_field(obj, field), field_name(name, where, field), flags, min, max, out,
                        e);
}

int jr_bool(const json_t *obj, const char *where, const char *field, unsigned flags, bool *out,
            err_t *e)
{
    char name[JR_NAME_BYTES_MAX];
    return jr_as_bool(jr_field(obj, field), field_name(name, where, field), flags, out, e);
}

int jr_object(const json_t *obj, const char *where, const char *field, unsigned flags,
              const json_t **out, err_t *e)
{
    ASSERT(out != NULL);
    char name[JR_NAME_BYTES_MAX];
    const json_t *v = jr_field(obj, field);
    *out = NULL;
    int rc = presence(v, field_name(name, where, field), flags, "an object", e);
    if (rc <= 0) return rc;
    if (!json_is_object(v)) return wrong_type(v, name, flags, "an object", e);
    *out = v;
    return 0;
}

int jr_array(const json_t *obj, const char *where, const char *field, unsigned flags,
             size_t items_max, const json_t **out, err_t *e)
{
    ASSERT(out != NULL);
    char name[JR_NAME_BYTES_MAX];
    const json_t *v = jr_field(obj, field);
    *out = NULL;
    int rc = presence(v, field_name(name, where, field), flags, "an array", e);
    if (rc <= 0) return rc;
    if (!json_is_array(v)) return wrong_type(v, name, flags, "an array", e);
    if (json_array_size(v) > items_max)
        return err_set(e, ERR_INVALID_ARGUMENT, "%s has too many items: at most %zu, not %zu", name,
                       items_max, json_array_size(v));
    *out = v;
    return 0;
}

const char *jr_string_or(const json_t *obj, const char *field, const char *fallback)
{
    const char *s = NULL;
    err_t why;
    err_init(&why);
    if (jr_as_string(jr_field(obj, field), field, 0, SIZE_MAX, &s, &why) != 0) return fallback;
    return s;
}

bool jr_string_is(const json_t *obj, const char *field, const char *expected)
{
    const char *s = jr_string_or(obj, field, NULL);
    return s && strcmp(s, expected) == 0;
}

const json_t *jr_item(const json_t *array, size_t i)
{
    return json_array_get(array, i);
}

const char *jr_item_string_or(const json_t *array, size_t i, const char *fallback)
{
    const char *s = NULL;
    err_t why;
    err_init(&why);
    if (jr_as_string(jr_item(array, i), "item", 0, SIZE_MAX, &s, &why) != 0) return fallback;
    return s;
}

const char *jr_item_name(char *name, const char *where, size_t i)
{
    snprintf(name, JR_NAME_BYTES_MAX, "%s[%zu]", where ? where : "", i);
    return name;
}

/* --- query strings ------------------------------------------------------------------------ */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int jr_percent_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t out_bytes,
                      err_t *e)
{
    ASSERT(out_bytes > 0);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= out_bytes)
            return err_set(e, ERR_INVALID_ARGUMENT, "is too long: at most %zu bytes",
                           out_bytes - 1);
        char ch = in[i];
        if (ch == '%') {
            if (len - i < 3 || hex_value(in[i + 1]) < 0 || hex_value(in[i + 2]) < 0)
                return err_set(e, ERR_INVALID_ARGUMENT, "is not valid percent-encoding");
            ch = (char)(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (ch == '\0') return err_set(e, ERR_INVALID_ARGUMENT, "must not contain U+0000");
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Finds parameter `name`: its raw value and length, or NULL. */
static const char *query_find(const char *query, const char *name, size_t *len_out)
{
    size_t name_len = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= name_len && strncmp(p, name, name_len) == 0 &&
            (len == name_len || p[name_len] == '=')) {
            *len_out = len == name_len ? 0 : len - name_len - 1;
            return len == name_len ? p + len : p + name_len + 1;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

int jr_query_string(const char *query, const char *name, unsigned flags, size_t bytes_max,
                    char **out, err_t *e)
{
    ASSERT(out != NULL);
    *out = NULL;
    size_t raw_len;
    const char *raw = query_find(query, name, &raw_len);
    if (!raw) {
        if (flags & JR_OPTIONAL) return 0;
        return err_set(e, ERR_INVALID_ARGUMENT, "the query parameter `%s` is missing", name);
    }
    size_t cap = (raw_len < bytes_max ? raw_len : bytes_max) + 1;
    char *value = malloc(cap);
    if (!value) return err_set(e, ERR_NOMEM, "out of memory");
    err_t why;
    err_init(&why);
    if (jr_percent_decode(raw, raw_len, true, value, cap, &why) != 0) {
        free(value);
        return err_set(e, ERR_INVALID_ARGUMENT, "the query parameter `%s` %s", name, why.msg);
    }
    if (!*value && (flags & JR_NONEMPTY)) {
        free(value);
        return err_set(e, ERR_INVALID_ARGUMENT, "the query parameter `%s` must not be empty", name);
    }
    *out = value;
    return 0;
}

int jr_query_int(const char *query, const char *name, unsigned flags, int64_t min, int64_t max,
                 int64_t *out, err_t *e)
{
    ASSERT(out != NULL && min <= max);
    char *text;
    int rc = jr_query_string(query, name, flags, 32, &text, e);
    if (rc || !text) return rc;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    bool ok = *text && !isspace((unsigned char)*text) && *end == '\0' && errno == 0 && v >= min &&
              v <= max;
    free(text);
    if (!ok)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "the query parameter `%s` must be an integer from %lld to %lld", name,
                       (long long)min, (long long)max);
    *out = v;
    return 0;
}
