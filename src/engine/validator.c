/*
 * validator.c — checking values against declarative validators (see
 * validator.h). Called on the event loop (function arguments) and on the
 * storage thread (documents before they are written).
 * Thread: any; no state.
 */
#include "engine/validator.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/ids.h"
#include "base/fieldpath.h"
#include "base/invariant.h"
#include "base/limits.h"

const validator v_any = V_ANY_INIT;
const validator v_null = V_NULL_INIT;
const validator v_boolean = V_BOOLEAN_INIT;
const validator v_number = V_NUMBER_INIT;
const validator v_integer = V_INTEGER_INIT;
const validator v_string = V_STRING_INIT;
const validator v_no_args = {.kind = V_OBJECT, .fields = NULL, .n_fields = 0};

#define V_PATH_BYTES_MAX 256
#define V_SAFE_INTEGER_MAX 9007199254740991.0 /* 2^53 - 1 */

typedef struct v_state {
    const char *what;
    const schema *schema;
    err_t *e;
    char path[V_PATH_BYTES_MAX];
} v_state;

/* Characters, not bytes: strings are UTF-8 (jansson validates that). */
static size_t utf8_length(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

static void describe_got(const json_t *value, char *out, size_t out_bytes)
{
    switch (json_typeof(value)) {
    case JSON_NULL:
        snprintf(out, out_bytes, "null");
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(out, out_bytes, "a boolean");
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        snprintf(out, out_bytes, "%.17g", json_number_value(value));
        break;
    case JSON_STRING:
        snprintf(out, out_bytes, "a string of %zu characters",
                 utf8_length(json_string_value(value), json_string_length(value)));
        break;
    case JSON_ARRAY:
        snprintf(out, out_bytes, "an array of %zu items", json_array_size(value));
        break;
    case JSON_OBJECT:
        snprintf(out, out_bytes, "an object");
        break;
    }
}

static void append_range(char *out, size_t out_bytes, const validator *v, const char *unit)
{
    size_t n = strlen(out);
    if (v->has_min && v->has_max)
        snprintf(out + n, out_bytes - n, " from %.17g to %.17g%s", v->min, v->max, unit);
    else if (v->has_min)
        snprintf(out + n, out_bytes - n, " of at least %.17g%s", v->min, unit);
    else if (v->has_max)
        snprintf(out + n, out_bytes - n, " of at most %.17g%s", v->max, unit);
}

void validator_describe(const validator *v, char *out, size_t out_bytes)
{
    out[0] = '\0';
    switch (v->kind) {
    case V_ANY:
        snprintf(out, out_bytes, "any value");
        break;
    case V_NULL:
        snprintf(out, out_bytes, "null");
        break;
    case V_BOOLEAN:
        snprintf(out, out_bytes, "a boolean");
        break;
    case V_NUMBER:
        snprintf(out, out_bytes, "a number");
        append_range(out, out_bytes, v, "");
        break;
    case V_INTEGER:
        snprintf(out, out_bytes, "an integer");
        append_range(out, out_bytes, v, "");
        break;
    case V_STRING:
        snprintf(out, out_bytes, "a string");
        if (v->has_min || v->has_max) append_range(out, out_bytes, v, " characters");
        break;
    case V_ID:
        snprintf(out, out_bytes, "an id of table \"%s\"", v->table);
        break;
    case V_ARRAY:
        snprintf(out, out_bytes, "an array");
        if (v->has_min || v->has_max) append_range(out, out_bytes, v, " items");
        break;
    case V_OBJECT:
    case V_RECORD:
        snprintf(out, out_bytes, "an object");
        break;
    case V_ENUM: {
        size_t n = (size_t)snprintf(out, out_bytes, "one of");
        for (int i = 0; i < v->n_literals && n < out_bytes; i++)
            n +=
                (size_t)snprintf(out + n, out_bytes - n, "%s \"%s\"", i ? "," : "", v->literals[i]);
        break;
    }
    case V_UNION: {
        size_t n = 0;
        for (int i = 0; i < v->n_options && n < out_bytes; i++) {
            char sub[128];
            validator_describe(v->options[i], sub, sizeof sub);
            n += (size_t)snprintf(out + n, out_bytes - n, "%s%s", i ? " or " : "", sub);
        }
        break;
    }
    }
}

static int fail(v_state *st, const validator *v, const json_t *value)
{
    char want[256], got[96];
    validator_describe(v, want, sizeof want);
    describe_got(value, got, sizeof got);
    return err_set(st->e, ERR_INVALID_ARGUMENT, "Invalid %s `%s`: expected %s, got %s", st->what,
                   st->path[0] ? st->path : "(root)", want, got);
}

static int fail_msg(v_state *st, const char *msg)
{
    return err_set(st->e, ERR_INVALID_ARGUMENT, "Invalid %s `%s`: %s", st->what,
                   st->path[0] ? st->path : "(root)", msg);
}

static int check(v_state *st, const validator *v, const json_t *value, int depth);

static bool in_range(const validator *v, double x)
{
    return (!v->has_min || x >= v->min) && (!v->has_max || x <= v->max);
}

static int check_object(v_state *st, const validator *v, const json_t *value, int depth)
{
    if (!json_is_object(value)) return fail(st, v, value);
    if (json_object_size(value) > LIMIT_OBJECT_FIELDS_MAX)
        return fail_msg(st, "object has more than 1024 fields (the limit)");
    const char *key;
    const json_t *field_value;
    json_object_foreach((json_t *)value, key, field_value)
    {
        if (!validator_field(v, key)) {
            size_t len = fieldpath_push(st->path, sizeof st->path, key, 0);
            int rc = fail_msg(st, "unknown field");
            st->path[len] = '\0';
            return rc;
        }
    }
    for (int i = 0; i < v->n_fields; i++) {
        const v_field *f = &v->fields[i];
        const json_t *fv = json_object_get(value, f->name);
        size_t len = fieldpath_push(st->path, sizeof st->path, f->name, 0);
        int rc = 0;
        if (!fv) {
            if (!f->optional) {
                char want[256];
                validator_describe(f->type, want, sizeof want);
                rc = err_set(st->e, ERR_INVALID_ARGUMENT,
                             "Invalid %s `%s`: missing required field (expected %s)", st->what,
                             st->path, want);
            }
        } else {
            rc = check(st, f->type, fv, depth + 1);
        }
        st->path[len] = '\0';
        if (rc) return rc;
    }
    return 0;
}

static int check_record(v_state *st, const validator *v, const json_t *value, int depth)
{
    if (!json_is_object(value)) return fail(st, v, value);
    const char *key;
    const json_t *fv;
    json_object_foreach((json_t *)value, key, fv)
    {
        size_t len = fieldpath_push(st->path, sizeof st->path, key, 0);
        int rc = check(st, v->item, fv, depth + 1);
        st->path[len] = '\0';
        if (rc) return rc;
    }
    return 0;
}

static int check_array(v_state *st, const validator *v, const json_t *value, int depth)
{
    if (!json_is_array(value) || !in_range(v, (double)json_array_size(value)))
        return fail(st, v, value);
    if (json_array_size(value) > LIMIT_ARRAY_ITEMS_MAX)
        return fail_msg(st, "array has more than 8192 items (the limit)");
    size_t i;
    const json_t *item;
    json_array_foreach(value, i, item)
    {
        size_t len = fieldpath_push(st->path, sizeof st->path, NULL, (long)i);
        int rc = check(st, v->item, item, depth + 1);
        st->path[len] = '\0';
        if (rc) return rc;
    }
    return 0;
}

static int check_id(v_state *st, const validator *v, const json_t *value)
{
    if (!json_is_string(value)) return fail(st, v, value);
    if (id_table_number(json_string_value(value)) < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "expected an id of table \"%s\", got a string that is not an id",
                 v->table);
        return fail_msg(st, msg);
    }
    if (st->schema) {
        const schema_table *t =
            schema_table_by_number(st->schema, id_table_number(json_string_value(value)));
        const char *table = t ? t->name : NULL;
        if (!table || strcmp(table, v->table) != 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "expected an id of table \"%s\", got an id of table \"%s\"",
                     v->table, table ? table : "(unknown)");
            return fail_msg(st, msg);
        }
    }
    return 0;
}

static int check(v_state *st, const validator *v, const json_t *value, int depth)
{
    ASSERT(v);
    if (depth > LIMIT_VALUE_DEPTH_MAX) return fail_msg(st, "value nested deeper than 64 levels");
    switch (v->kind) {
    case V_ANY:
        return 0; /* depth and size were bounded when the value was decoded */
    case V_NULL:
        return json_is_null(value) ? 0 : fail(st, v, value);
    case V_BOOLEAN:
        return json_is_boolean(value) ? 0 : fail(st, v, value);
    case V_NUMBER:
        return json_is_number(value) && in_range(v, json_number_value(value)) ? 0
                                                                              : fail(st, v, value);
    case V_INTEGER: {
        if (!json_is_number(value)) return fail(st, v, value);
        double x = json_number_value(value);
        if (x != floor(x) || fabs(x) > V_SAFE_INTEGER_MAX || !in_range(v, x))
            return fail(st, v, value);
        return 0;
    }
    case V_STRING: {
        if (!json_is_string(value)) return fail(st, v, value);
        size_t n = utf8_length(json_string_value(value), json_string_length(value));
        return in_range(v, (double)n) ? 0 : fail(st, v, value);
    }
    case V_ID:
        return check_id(st, v, value);
    case V_ARRAY:
        return check_array(st, v, value, depth);
    case V_OBJECT:
        return check_object(st, v, value, depth);
    case V_RECORD:
        return check_record(st, v, value, depth);
    case V_ENUM:
        if (json_is_string(value))
            for (int i = 0; i < v->n_literals; i++)
                if (strcmp(v->literals[i], json_string_value(value)) == 0) return 0;
        return fail(st, v, value);
    case V_UNION:
        for (int i = 0; i < v->n_options; i++) {
            v_state probe = *st;
            err_t scratch;
            err_init(&scratch);
            probe.e = &scratch;
            int rc = check(&probe, v->options[i], value, depth);
            err_clear(&scratch);
            if (rc == 0) return 0;
        }
        return fail(st, v, value);
    }
    return fail(st, v, value);
}

int validate(const validator *v, const json_t *value, const char *what, const schema *s, err_t *e)
{
    v_state st = {.what = what, .schema = s, .e = e};
    st.path[0] = '\0';
    return check(&st, v, value, 0);
}

const v_field *validator_field(const validator *obj, const char *name)
{
    ASSERT(obj->kind == V_OBJECT);
    for (int i = 0; i < obj->n_fields; i++)
        if (strcmp(obj->fields[i].name, name) == 0) return &obj->fields[i];
    return NULL;
}
