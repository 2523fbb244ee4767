/*
 * schema.c — lookups in a declared schema and the index key order (see
 * schema.h). The engine calls these to find tables and indexes, to build the
 * key of a document in an index and to compare keys against the ranges its
 * queries read; the store calls them to derive DDL and scan order.
 *
 * The key order here must agree with the order SQLite gives the index
 * expressions of sqlite_ddl.c: null/missing < numbers (integers and reals by
 * value) < strings (bytewise) < everything else.
 * Thread: any; everything here is pure.
 */
#include "store/schema.h"

#include "base/invariant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const schema_index schema_by_creation_time = {
    .name = "by_creation_time",
    .fields = {"_creationTime"},
    .n_fields = 1,
    .unique = false,
};

const schema_table *schema_table_by_name(const schema *s, const char *name)
{
    ASSERT(s && name);
    for (int i = 0; i < s->n_tables; i++)
        if (strcmp(s->tables[i].name, name) == 0) return &s->tables[i];
    return NULL;
}

const schema_table *schema_table_by_number(const schema *s, int number)
{
    ASSERT(s);
    for (int i = 0; i < s->n_tables; i++)
        if (s->tables[i].number == number) return &s->tables[i];
    return NULL;
}

const schema_index *schema_index_by_name(const schema_table *t, const char *name)
{
    ASSERT(t && name);
    if (strcmp(name, schema_by_creation_time.name) == 0) return &schema_by_creation_time;
    for (int i = 0; i < t->n_indexes; i++)
        if (strcmp(t->indexes[i].name, name) == 0) return &t->indexes[i];
    return NULL;
}

static bool ends_with_creation_time(const schema_index *ix)
{
    return strcmp(ix->fields[ix->n_fields - 1], "_creationTime") == 0;
}

int schema_key_len(const schema_index *ix)
{
    ASSERT(ix && ix->n_fields >= 1 && ix->n_fields <= SCHEMA_INDEX_FIELDS_MAX);
    return ix->n_fields + (ends_with_creation_time(ix) ? 0 : 1) + 1;
}

/* A copy of doc's field (null when missing), or NULL when out of memory. */
static json_t *field_copy(const json_t *doc, const char *field)
{
    json_t *v = json_object_get(doc, field);
    return v ? json_deep_copy(v) : json_null();
}

json_t *schema_key_of(const schema_index *ix, const json_t *doc)
{
    ASSERT(ix && json_is_object(doc));
    ASSERT(json_object_get(doc, "_id") && json_object_get(doc, "_creationTime"));
    json_t *key = json_array();
    if (!key) return NULL;
    int ok = 0;
    for (int i = 0; i < ix->n_fields; i++)
        ok |= json_array_append_new(key, field_copy(doc, ix->fields[i]));
    if (!ends_with_creation_time(ix))
        ok |= json_array_append_new(key, field_copy(doc, "_creationTime"));
    ok |= json_array_append_new(key, field_copy(doc, "_id"));
    if (ok != 0) {
        json_decref(key);
        return NULL;
    }
    ASSERT((int)json_array_size(key) == schema_key_len(ix));
    return key;
}

/* The order of kinds of values: null < number < string < everything else. */
enum { RANK_NULL, RANK_NUMBER, RANK_STRING, RANK_BOOLEAN, RANK_ARRAY, RANK_OBJECT };

static int rank_of(const json_t *v)
{
    if (!v || json_is_null(v)) return RANK_NULL;
    if (json_is_number(v)) return RANK_NUMBER;
    if (json_is_string(v)) return RANK_STRING;
    if (json_is_boolean(v)) return RANK_BOOLEAN;
    if (json_is_array(v)) return RANK_ARRAY;
    return RANK_OBJECT;
}

static int sign_of_diff(int a, int b)
{
    return (a > b) - (a < b);
}

/* An integer against a real, exactly, even beyond 2^53 where a cast to
 * double would round. Reals from JSON are finite. */
static int int_real_cmp(json_int_t i, double d)
{
    if (d >= 9223372036854775808.0) return -1; /* 2^63: above every int64 */
    if (d < -9223372036854775808.0) return 1;
    double di = (double)i;
    if (di < d) return -1;
    if (di > d) return 1;
    /* Equal as doubles: d is integral and within int64, so compare exactly. */
    json_int_t dt = (json_int_t)d;
    return (i > dt) - (i < dt);
}

static int number_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return (x > y) - (x < y);
    }
    if (json_is_integer(a)) return int_real_cmp(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b)) return -int_real_cmp(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return (x > y) - (x < y);
}

/* Bytewise, like memcmp and SQLite's BINARY collation; a prefix sorts first. */
static int string_cmp(const json_t *a, const json_t *b)
{
    size_t na = json_string_length(a), nb = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), na < nb ? na : nb);
    if (c != 0) return c < 0 ? -1 : 1;
    return (na > nb) - (na < nb);
}

/* Objects are never index values; they get a total order all the same, by
 * their compact serialization with sorted keys. */
static int object_cmp(const json_t *a, const json_t *b)
{
    if (json_equal(a, b)) return 0;
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    char *sa = json_dumps(a, flags), *sb = json_dumps(b, flags);
    int c = (sa && sb) ? strcmp(sa, sb) : 0;
    free(sa);
    free(sb);
    return (c > 0) - (c < 0);
}

/* Element by element; a prefix sorts first. */
static int array_cmp(const json_t *a, const json_t *b)
{
    int c = schema_key_cmp_prefix(a, b, SIZE_MAX);
    if (c != 0) return c;
    size_t na = json_array_size(a), nb = json_array_size(b);
    return (na > nb) - (na < nb);
}

int schema_value_cmp(const json_t *a, const json_t *b)
{
    int ra = rank_of(a), rb = rank_of(b);
    if (ra != rb) return sign_of_diff(ra, rb);
    switch (ra) {
    case RANK_NULL:
        return 0;
    case RANK_NUMBER:
        return number_cmp(a, b);
    case RANK_STRING:
        return string_cmp(a, b);
    case RANK_BOOLEAN:
        return sign_of_diff(json_is_true(a), json_is_true(b));
    case RANK_ARRAY:
        return array_cmp(a, b);
    default:
        return object_cmp(a, b);
    }
}

int schema_key_cmp_prefix(const json_t *a, const json_t *b, size_t n)
{
    ASSERT(json_is_array(a) && json_is_array(b));
    size_t na = json_array_size(a), nb = json_array_size(b);
    if (n > na) n = na;
    if (n > nb) n = nb;
    for (size_t i = 0; i < n; i++) {
        int c = schema_value_cmp(json_array_get(a, i), json_array_get(b, i));
        if (c != 0) return c;
    }
    return 0;
}
