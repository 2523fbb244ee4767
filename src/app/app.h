/*
 * app.h — Karate AI's backend: the schema (schema.c) and the functions of
 * api.md §3, one file per module. The engine runs them; they see only the ctx
 * API (engine/ctx.h).
 * Thread: app_schema/app_register on the main thread at start; the functions
 * themselves on the engine's threads.
 */
#ifndef DOJO_APP_APP_H
#define DOJO_APP_APP_H

#include "engine/registry.h"
#include "store/schema.h"

const schema *app_schema(void);
/* Registers every function of the app and of the engine's system module. */
void app_register(registry *r);

/* Lease expiry runs this often (api.md: "within about a second"). */
#define APP_LEASE_SWEEP_INTERVAL_MS 250
#define APP_SESSION_CLEANUP_INTERVAL_MS (10 * 60 * 1000)
#define APP_UPLOAD_TOKEN_CLEANUP_INTERVAL_MS (10 * 60 * 1000)

/* Whether a deployment variable may be set to value: the name's shape, and
 * the value of a variable the app interprets (SIGNUP_CREDITS, MAX_ATTEMPTS,
 * PRICING, AUTH_APPLICATION_ID, FILE_MAX_BYTES, WORKER_KEY). The same checks for `dojo env set` and
 * for `dojo import`. */
int app_env_check(const char *name, const char *value, err_t *e);

/* Module registration, one per file. */
void users_register(registry *r);
void workflows_register(registry *r);
void runs_register(registry *r);
void transactions_register(registry *r);
void admin_register(registry *r);
void env_register(registry *r);
void dashboard_register(registry *r);
void files_register(registry *r);
void overview_register(registry *r);

#endif
