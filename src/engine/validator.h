/*
 * validator.h — declarative value validators, like the original backend's `v.*`.
 * One declaration serves three purposes: checking function arguments,
 * checking documents before they are written, and writing TypeScript types
 * (codegen/). Declared as static const data next to each function and table.
 * Thread: any; validators are immutable.
 */
#ifndef DOJO_ENGINE_VALIDATOR_H
#define DOJO_ENGINE_VALIDATOR_H

#include <jansson.h>
#include <stdbool.h>

#include "base/err.h"
#include "store/schema.h"

typedef enum {
    V_ANY,     /* any value */
    V_NULL,    /* null */
    V_BOOLEAN, /* true/false */
    V_NUMBER,  /* a float64 (any JSON number) */
    V_INTEGER, /* a JSON number with an integral value, |v| < 2^53 */
    V_STRING,  /* a string; min/max bound its length in characters */
    V_ID,      /* a document id of `table` */
    V_ARRAY,   /* array of `item`; min/max bound its length */
    V_OBJECT,  /* object with exactly `fields` (unknown fields refused) */
    V_RECORD,  /* object with any string keys whose values match `item` */
    V_ENUM,    /* one of the string `literals` */
    V_UNION,   /* one of `options` */
} v_kind;

typedef struct validator validator;

typedef struct v_field {
    const char *name;
    const validator *type;
    bool optional;
} v_field;

struct validator {
    v_kind kind;
    bool has_min, has_max;
    double min, max;       /* V_NUMBER/V_INTEGER: value; V_STRING/V_ARRAY: length */
    const char *table;     /* V_ID */
    const validator *item; /* V_ARRAY, V_RECORD */
    const v_field *fields; /* V_OBJECT */
    int n_fields;
    const char *const *literals; /* V_ENUM */
    int n_literals;
    const validator *const *options; /* V_UNION */
    int n_options;
    const char *ts_type; /* codegen: TypeScript spelling overriding the derived one */
};

#define V_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Static initialisers. */
#define V_ANY_INIT                                                                                 \
    {                                                                                              \
        .kind = V_ANY                                                                              \
    }
#define V_NULL_INIT                                                                                \
    {                                                                                              \
        .kind = V_NULL                                                                             \
    }
#define V_BOOLEAN_INIT                                                                             \
    {                                                                                              \
        .kind = V_BOOLEAN                                                                          \
    }
#define V_NUMBER_INIT                                                                              \
    {                                                                                              \
        .kind = V_NUMBER                                                                           \
    }
#define V_INTEGER_INIT                                                                             \
    {                                                                                              \
        .kind = V_INTEGER                                                                          \
    }
#define V_INTEGER_RANGE_INIT(lo, hi)                                                               \
    {                                                                                              \
        .kind = V_INTEGER, .has_min = true, .min = (lo), .has_max = true, .max = (hi)              \
    }
#define V_STRING_INIT                                                                              \
    {                                                                                              \
        .kind = V_STRING                                                                           \
    }
#define V_STRING_LEN_INIT(lo, hi)                                                                  \
    {                                                                                              \
        .kind = V_STRING, .has_min = true, .min = (lo), .has_max = true, .max = (hi)               \
    }
#define V_ID_INIT(tbl)                                                                             \
    {                                                                                              \
        .kind = V_ID, .table = (tbl)                                                               \
    }
#define V_ARRAY_INIT(it)                                                                           \
    {                                                                                              \
        .kind = V_ARRAY, .item = (it)                                                              \
    }
#define V_OBJECT_INIT(flds)                                                                        \
    {                                                                                              \
        .kind = V_OBJECT, .fields = (flds), .n_fields = V_COUNT(flds)                              \
    }
#define V_RECORD_INIT(it)                                                                          \
    {                                                                                              \
        .kind = V_RECORD, .item = (it)                                                             \
    }
#define V_ENUM_INIT(lits)                                                                          \
    {                                                                                              \
        .kind = V_ENUM, .literals = (lits), .n_literals = V_COUNT(lits)                            \
    }
#define V_UNION_INIT(opts)                                                                         \
    {                                                                                              \
        .kind = V_UNION, .options = (opts), .n_options = V_COUNT(opts)                             \
    }

/* Shared leaf validators. */
extern const validator v_any, v_null, v_boolean, v_number, v_integer, v_string;
/* {} — the arguments of a function that takes none. */
extern const validator v_no_args;

/*
 * Checks value against v. On failure returns ERR_INVALID_ARGUMENT with a
 * message naming the field by its path from the root, e.g.
 *   Invalid argument `paginationOpts.numItems`: expected an integer from 1 to 1000, got 0
 * `what` is the noun used in the message ("argument" or "field of users").
 * `s` resolves the table an id belongs to; NULL skips that check (ids are
 * then only checked for being well-formed).
 */
int validate(const validator *v, const json_t *value, const char *what, const schema *s, err_t *e);

/* Describes what v expects, e.g. "a string of 1 to 200 characters". */
void validator_describe(const validator *v, char *out, size_t out_bytes);

/* Looks a field up in an object validator; NULL when absent. */
const v_field *validator_field(const validator *obj, const char *name);

#endif
