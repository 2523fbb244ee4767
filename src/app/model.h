/*
 * model.h — what the app's modules share: field bounds, the validators the
 * schema and the argument lists both use, and the few operations several
 * modules need (finding the caller's user, moving credits with a ledger row,
 * reading integer deployment variables, pagination options).
 * Thread: the engine's threads, inside a function's transaction.
 */
#ifndef DOJO_APP_MODEL_H
#define DOJO_APP_MODEL_H

#include <jansson.h>
#include <stdint.h>

#include "engine/ctx.h"
#include "engine/validator.h"

#define APP_TITLE_CHARS_MIN 1
#define APP_TITLE_CHARS_MAX 200
#define APP_MODEL_CHARS_MAX 200
#define APP_PROMPT_CHARS_MAX 100000
#define APP_NOTE_CHARS_MAX 1000
#define APP_WORKER_ID_CHARS_MAX 200
#define APP_OUTPUT_CHARS_MAX 8192
#define APP_ERROR_CHARS_MAX 8192
#define APP_CREDITS_MAX 1000000000000LL /* 10^12: far below 2^53 */
#define APP_LEASE_SECONDS_DEFAULT 300
#define APP_MAX_ATTEMPTS_DEFAULT 3
#define APP_MAX_ATTEMPTS_MAX 100

extern const validator app_title, app_graph, app_run_status, app_run_input;
extern const validator app_user_id, app_workflow_id, app_run_id, app_storage_id;
extern const validator app_nonnegative_integer;
/* {numItems, cursor, endCursor?, id?, maximumRowsRead?, maximumBytesRead?} */
extern const validator app_pagination_opts;
/* {page: T[], isDone, continueCursor, splitCursor?, pageStatus?} for codegen */
extern const validator app_page_of_any;

/* The caller's tokenIdentifier, or ERR_UNAUTHENTICATED "No identity found". */
int app_require_identity(ctx *c, const char **token_identifier_out);
/* The caller's user document (the ctx's): ERR_UNAUTHENTICATED without an
 * identity; *user_out NULL when there is no user yet. */
int app_find_user(ctx *c, json_t **user_out);

/* Changes a user's balance by amount and appends the ledger row, in the
 * caller's transaction. run_id and note may be NULL. Refuses a balance that
 * would go negative (ERR_INSUFFICIENT_CREDITS) or over APP_CREDITS_MAX.
 * *transaction_id_out (may be NULL) receives the ledger row's id. */
int app_ledger_move(ctx *c, const json_t *user, int64_t amount, const char *kind,
                    const char *run_id, const char *note, const char *actor,
                    char *transaction_id_out);

/* An integer deployment variable within [min, max], or dflt when unset. A
 * value that is set but not such an integer is an INVALID_ARGUMENT error that
 * names the variable. */
int app_env_int(ctx *c, const char *name, int64_t dflt, int64_t min, int64_t max, int64_t *out);

/* Integer value of a JSON number field (for documents known to be valid). */
int64_t app_int(const json_t *doc, const char *field);
const char *app_str(const json_t *doc, const char *field);

/* The URL a stored file is served at: <public URL>/api/storage/<id>. New
 * string. */
json_t *app_file_url(ctx *c, const char *storage_id);
/* A run document as functions return it: a run whose output is stored in
 * dojo gets `output`, its file's URL (computed when read, so that it
 * follows the deployment's URL). Changes doc in place; returns it. */
json_t *app_run_view(ctx *c, json_t *doc);

/* PRICING: {"default": <int>?, "models": {"<model>": <int>, …}?}; every price
 * a non-negative integer. Returns a new object, or NULL with a message in e. */
json_t *app_pricing_parse(const char *text, err_t *e);
/* The cost of model under pricing, or ERR_UNKNOWN_MODEL. */
int app_pricing_cost(ctx *c, const json_t *pricing, const char *model, int64_t *cost_out);
#define APP_PRICING_DEFAULT "{\"default\":1}"
#define APP_PRICE_MAX 1000000000LL

#endif
