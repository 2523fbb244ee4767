/*
 * registry.c — the table of functions (see registry.h).
 * Thread: main thread while building; any thread reads afterwards.
 */
#include "engine/registry.h"

#include <stdio.h>
#include <string.h>

#include "base/invariant.h"
#include "base/limits.h"

void registry_init(registry *r)
{
    memset(r, 0, sizeof *r);
}

void registry_add(registry *r, const fn_def *defs, int n)
{
    for (int i = 0; i < n; i++) {
        ASSERT(r->n_fns < REGISTRY_FUNCTIONS_MAX);
        ASSERT(!registry_find(r, defs[i].path));
        ASSERT(defs[i].args && defs[i].args->kind == V_OBJECT);
        r->fns[r->n_fns++] = &defs[i];
    }
}

const fn_def *registry_find(const registry *r, const char *canonical_path)
{
    for (int i = 0; i < r->n_fns; i++)
        if (strcmp(r->fns[i]->path, canonical_path) == 0) return r->fns[i];
    return NULL;
}

int registry_canonical_path(const char *path, char *out, size_t out_bytes, err_t *e)
{
    size_t len = strlen(path);
    if (len == 0 || len >= LIMIT_FUNCTION_PATH_BYTES_MAX || len >= out_bytes)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "Invalid function path: must be 1 to %d characters of the form "
                       "\"module:function\"",
                       LIMIT_FUNCTION_PATH_BYTES_MAX - 1);
    const char *colon = strchr(path, ':');
    const char *module_end = colon ? colon : path + len;
    size_t module_len = (size_t)(module_end - path);
    if (module_len > 3 && strncmp(module_end - 3, ".js", 3) == 0) module_len -= 3;
    const char *fn = colon ? colon + 1 : "default";
    if (module_len == 0 || *fn == '\0' || strchr(fn, ':'))
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "Invalid function path \"%s\": expected \"module:function\"", path);
    snprintf(out, out_bytes, "%.*s:%s", (int)module_len, path, fn);
    return 0;
}

const char *fn_kind_name(fn_kind k)
{
    switch (k) {
    case FN_QUERY:
        return "query";
    case FN_MUTATION:
        return "mutation";
    case FN_ACTION:
        return "action";
    }
    return "function";
}
