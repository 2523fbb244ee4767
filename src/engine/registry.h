/*
 * registry.h — the functions an application offers, by path. app/ declares
 * its functions as static tables of fn_def (path, kind, visibility, argument
 * and return validators, implementation) and registers them once at start;
 * the engine looks them up for every call and codegen writes the TypeScript
 * bindings from the same table.
 * Thread: built on the main thread before the server starts; read-only after.
 */
#ifndef DOJO_ENGINE_REGISTRY_H
#define DOJO_ENGINE_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/validator.h"

typedef struct ctx ctx;

typedef enum { FN_QUERY, FN_MUTATION, FN_ACTION } fn_kind;

typedef enum {
    FN_PUBLIC,   /* callable by anyone; auth is checked by the function */
    FN_INTERNAL, /* admin key only; users get FORBIDDEN and never see it listed */
    FN_SYSTEM,   /* admin key only, and hidden from codegen (deployment variables, …) */
} fn_visibility;

/* Runs the function. On success returns 0 and sets *result (a new reference;
 * NULL means null). On failure returns a negative ERR_* code after reporting
 * it with ctx_fail. */
typedef int (*fn_impl)(ctx *c, const json_t *args, json_t **result);

typedef struct fn_def {
    const char *path; /* "module:function" */
    fn_kind kind;
    fn_visibility visibility;
    const validator *args;    /* V_OBJECT */
    const validator *returns; /* for codegen; may be NULL (any) */
    fn_impl impl;
    const char *doc; /* one line for codegen and the dashboard */
    /* The worker key may call it too (api.md §10: claim, heartbeat, complete
     * and fail runs, read runs:queue); a caller with the worker key gets
     * FORBIDDEN from every other function. */
    bool worker;
} fn_def;

#define REGISTRY_FUNCTIONS_MAX 128

typedef struct registry {
    const fn_def *fns[REGISTRY_FUNCTIONS_MAX];
    int n_fns;
    /* Where a call's caller is found: the table and unique index by
     * tokenIdentifier (app/ sets it). The storage thread reads every
     * caller of a group there in one round trip before running it
     * (store_prefetch). NULL: no such table. */
    const char *caller_table, *caller_index;
} registry;

void registry_init(registry *r);
/* Adds n definitions; asserts on duplicates and overflow (programmer errors). */
void registry_add(registry *r, const fn_def *defs, int n);
const fn_def *registry_find(const registry *r, const char *canonical_path);

/* Canonicalises a client path: strips a ".js" module suffix, adds ":default"
 * when there is no ':'. Returns 0, or ERR_INVALID_ARGUMENT when the path is
 * empty, too long or malformed. */
int registry_canonical_path(const char *path, char *out, size_t out_bytes, err_t *e);

const char *fn_kind_name(fn_kind k); /* "query", "mutation", "action" */

#endif
