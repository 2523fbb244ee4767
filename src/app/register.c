/*
 * register.c — the list of the app's modules, and the engine's own system
 * functions, in one registry.
 * Thread: the main thread at start.
 */
#include "app/app.h"
#include "engine/system_functions.h"

void app_register(registry *r)
{
    /* app_find_user: nearly every function starts by reading its caller
     * here, which the storage thread then reads ahead for a whole group. */
    r->caller_table = "users";
    r->caller_index = "by_token";
    users_register(r);
    workflows_register(r);
    runs_register(r);
    transactions_register(r);
    admin_register(r);
    env_register(r);
    dashboard_register(r);
    files_register(r);
    overview_register(r);
    system_functions_register(r);
}
