/*
 * api.c — renders api.d.ts (the typed `api` and `internal` objects: one
 * FunctionReference per function, nested by module like convex's
 * ApiFromModules, so "runs:list" is api.runs.list and "a/b:f" is api.a.b.f)
 * and api.js (both objects are convex's anyApi proxy at run time, which
 * turns api.runs.list back into "runs:list"). FN_PUBLIC functions go to
 * `api`, FN_INTERNAL ones to `internal`, FN_SYSTEM ones nowhere.
 * Called by codegen_write.
 * Thread: the caller's.
 */
#include <string.h>

#include "base/err.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "codegen/codegen_impl.h"

typedef struct api_scope {
    const schema *s;
    const registry *r;
    fn_visibility visibility;
} api_scope;

/* Where function f sits below the module folder `prefix` ("" is the root):
 * as a reference named *key (a function of that very module), or inside the
 * sub-object named *key (is_dir). False when f is not below prefix. */
static bool api_child(const fn_def *f, const char *prefix, size_t prefix_len, const char **key,
                      size_t *key_len, bool *is_dir)
{
    const char *colon = strchr(f->path, ':');
    ASSERT(colon && colon != f->path); /* registry paths are canonical */
    size_t module_len = (size_t)(colon - f->path);
    const char *rest;
    size_t rest_len;
    if (prefix_len == 0) {
        rest = f->path;
        rest_len = module_len;
    } else {
        if (module_len < prefix_len || memcmp(f->path, prefix, prefix_len) != 0) return false;
        if (module_len == prefix_len) {
            *key = colon + 1;
            *key_len = strlen(colon + 1);
            *is_dir = false;
            return true;
        }
        if (f->path[prefix_len] != '/') return false;
        rest = f->path + prefix_len + 1;
        rest_len = module_len - prefix_len - 1;
    }
    const char *slash = memchr(rest, '/', rest_len);
    *key = rest;
    *key_len = slash ? (size_t)(slash - rest) : rest_len;
    *is_dir = true;
    return true;
}

static void api_reference(codegen_buf *b, const api_scope *sc, const fn_def *f, int level)
{
    codegen_ts_doc(b, level, f->doc);
    codegen_buf_indent(b, level);
    codegen_ts_key(b, strchr(f->path, ':') + 1);
    codegen_buf_puts(b, ": FunctionReference<\n");
    codegen_buf_indent(b, level + 1);
    codegen_buf_printf(b, "\"%s\",\n", fn_kind_name(f->kind));
    codegen_buf_indent(b, level + 1);
    codegen_buf_puts(b, sc->visibility == FN_PUBLIC ? "\"public\",\n" : "\"internal\",\n");
    codegen_buf_indent(b, level + 1);
    codegen_ts_args_type(b, f->args, sc->s);
    codegen_buf_puts(b, ",\n");
    codegen_buf_indent(b, level + 1);
    codegen_ts_type(b, f->returns, sc->s);
    codegen_buf_puts(b, "\n");
    codegen_buf_indent(b, level);
    codegen_buf_puts(b, ">;\n");
}

/* True when a function before index i already put key below prefix; fails
 * the buffer when it did so as the other kind (a function "a:b" beside a
 * module "a/b" would be two members named api.a.b). */
static bool api_seen(codegen_buf *b, const api_scope *sc, int i, const char *prefix,
                     size_t prefix_len, const char *key, size_t key_len, bool is_dir)
{
    for (int j = 0; j < i; j++) {
        const fn_def *g = sc->r->fns[j];
        const char *gkey;
        size_t gkey_len;
        bool g_is_dir;
        if (g->visibility != sc->visibility) continue;
        if (!api_child(g, prefix, prefix_len, &gkey, &gkey_len, &g_is_dir)) continue;
        if (gkey_len != key_len || memcmp(gkey, key, key_len) != 0) continue;
        if (g_is_dir != is_dir)
            codegen_buf_fail(b, ERR_INVALID_ARGUMENT,
                             "function %s and module %.*s%s%.*s would both be named by one "
                             "member; rename one of them",
                             is_dir ? g->path : sc->r->fns[i]->path, (int)prefix_len, prefix,
                             prefix_len ? "/" : "", (int)key_len, key);
        return true;
    }
    return false;
}

static void api_members(codegen_buf *b, const api_scope *sc, const char *prefix, size_t prefix_len,
                        int level)
{
    if (level > CODEGEN_MODULE_DEPTH_MAX) {
        codegen_buf_fail(b, ERR_LIMIT, "module %s nests deeper than %d folders", prefix,
                         CODEGEN_MODULE_DEPTH_MAX);
        return;
    }
    for (int i = 0; i < sc->r->n_fns && !b->err; i++) {
        const fn_def *f = sc->r->fns[i];
        const char *key;
        size_t key_len;
        bool is_dir;
        if (f->visibility != sc->visibility) continue;
        if (!api_child(f, prefix, prefix_len, &key, &key_len, &is_dir)) continue;
        if (api_seen(b, sc, i, prefix, prefix_len, key, key_len, is_dir)) continue;
        if (!is_dir) {
            api_reference(b, sc, f, level);
            continue;
        }
        char sub[LIMIT_FUNCTION_PATH_BYTES_MAX];
        size_t sub_len = prefix_len ? prefix_len + 1 + key_len : key_len;
        ASSERT(sub_len < sizeof sub); /* a prefix of a registered path */
        memcpy(sub, prefix, prefix_len);
        if (prefix_len) sub[prefix_len] = '/';
        memcpy(sub + (prefix_len ? prefix_len + 1 : 0), key, key_len);
        sub[sub_len] = '\0';
        char key_text[LIMIT_FUNCTION_PATH_BYTES_MAX];
        memcpy(key_text, key, key_len);
        key_text[key_len] = '\0';
        codegen_buf_indent(b, level);
        codegen_ts_key(b, key_text);
        codegen_buf_puts(b, ": {\n");
        api_members(b, sc, sub, sub_len, level + 1);
        codegen_buf_indent(b, level);
        codegen_buf_puts(b, "};\n");
    }
}

static void api_object(codegen_buf *b, const schema *s, const registry *r, fn_visibility vis,
                       const char *name)
{
    api_scope sc = {.s = s, .r = r, .visibility = vis};
    int n = 0;
    for (int i = 0; i < r->n_fns; i++)
        n += r->fns[i]->visibility == vis;
    codegen_buf_printf(b, "export declare const %s: {", name);
    if (n == 0) {
        codegen_buf_puts(b, "};\n");
        return;
    }
    codegen_buf_puts(b, "\n");
    api_members(b, &sc, "", 0, 1);
    codegen_buf_puts(b, "};\n");
}

void codegen_render_api_dts(codegen_buf *b, const schema *s, const registry *r)
{
    codegen_buf_puts(b, "/* eslint-disable */\n"
                        "/**\n"
                        " * " CODEGEN_HEADER_LINE "\n"
                        " *\n"
                        " * Typed references to dojo's functions, for useQuery, useMutation,\n"
                        " * usePaginatedQuery and ConvexHttpClient:\n"
                        " * ```js\n"
                        " * const me = useQuery(api.users.me);\n"
                        " * ```\n"
                        " * Regenerate with `dojo codegen` (`dojo dev` does it at start).\n"
                        " * @module\n"
                        " */\n\n"
                        "import type {\n"
                        "  FunctionReference,\n"
                        "  PaginationOptions,\n"
                        "  PaginationResult,\n"
                        "} from \"convex/server\";\n"
                        "import type { GenericId } from \"convex/values\";\n"
                        "import type { Doc, Id } from \"./dataModel.js\";\n\n"
                        "/**\n"
                        " * The public functions, callable by any client, e.g. `api.users.me`.\n"
                        " */\n");
    api_object(b, s, r, FN_PUBLIC, "api");
    codegen_buf_puts(b, "\n/**\n"
                        " * The internal functions, callable with the admin key only (`dojo run`,\n"
                        " * workers), e.g. `internal.runs.claim`.\n"
                        " */\n");
    api_object(b, s, r, FN_INTERNAL, "internal");
}

void codegen_render_api_js(codegen_buf *b)
{
    codegen_buf_puts(b,
                     "/* eslint-disable */\n"
                     "/**\n"
                     " * " CODEGEN_HEADER_LINE "\n"
                     " *\n"
                     " * At run time `api` and `internal` are convex's anyApi proxy, which turns\n"
                     " * `api.runs.list` into the function name \"runs:list\"; their types are in\n"
                     " * api.d.ts. Regenerate with `dojo codegen`.\n"
                     " * @module\n"
                     " */\n\n"
                     "import { anyApi } from \"convex/server\";\n\n"
                     "export const api = anyApi;\n"
                     "export const internal = anyApi;\n");
}
