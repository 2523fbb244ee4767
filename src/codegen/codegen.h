/*
 * codegen.h — writes the TypeScript bindings of a dojo deployment, the
 * folder the original backend's `npx convex dev` wrote as convex/_generated/:
 *   dataModel.d.ts  Id<T>, Doc<T>, TableNames and DataModel, from the schema
 *                   (system tables are left out);
 *   api.d.ts        `api` (FN_PUBLIC) and `internal` (FN_INTERNAL) as typed
 *                   FunctionReference trees, from the registry (FN_SYSTEM is
 *                   left out);
 *   api.js          the runtime side: both are convex's `anyApi` proxy;
 *   README.md       says where the files come from.
 * So the unchanged web app keeps writing `useQuery(api.users.me)` with typed
 * arguments and results. Called by `dojo codegen` and `dojo dev`.
 * Thread: the main thread of a command-line process (no shared state).
 */
#ifndef DOJO_CODEGEN_CODEGEN_H
#define DOJO_CODEGEN_CODEGEN_H

#include <stddef.h>

#include "base/err.h"
#include "engine/registry.h"
#include "store/schema.h"

/* Where `dojo codegen` and `dojo dev` write, relative to the project folder. */
#define CODEGEN_DEFAULT_DIR "convex/_generated"
/* Enough for codegen_write's one-line report with a long folder name. */
#define CODEGEN_REPORT_BYTES_MAX 1024

/*
 * Writes the bindings of schema s and registry r into dir, creating dir and
 * its parents. Each file is written atomically (a temporary file renamed over
 * it) and only when its content changed, so that a bundler watching the folder
 * sees no change when there is none. The output depends only on s and r:
 * tables in schema order, modules in the order of their first function,
 * functions in registration order.
 * On success returns 0 and, when report is not NULL, puts a one-line summary
 * in it, e.g. "convex/_generated: wrote api.d.ts (3 unchanged); 4 tables,
 * 11 public and 6 internal functions". On failure returns ERR_IO (with the
 * path and the reason), ERR_LIMIT or ERR_INVALID_ARGUMENT (a declaration that
 * cannot be written as TypeScript), ERR_NOMEM; files already replaced stay.
 */
int codegen_write(const schema *s, const registry *r, const char *dir, char *report,
                  size_t report_bytes, err_t *e);

#endif
