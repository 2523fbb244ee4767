/*
 * env.c — the deployment variables as the engine keeps them: read from their
 * system table inside a transaction (at open, and again when another
 * process changed them), and a commit's writes applied to the loop's copy.
 * Thread: engine_env_scan on the thread that owns the connection;
 * engine_env_apply on the event loop.
 */
#include "engine/engine_impl.h"

#include <string.h>

#include "base/invariant.h"
#include "base/limits.h"
#include "engine/system_tables.h"

int engine_env_scan(store_conn *conn, const schema *s, json_t **env_out, err_t *e)
{
    *env_out = NULL;
    const schema_table *t = schema_table_by_name(s, SYSTEM_TABLE_ENV);
    ASSERT(t);
    store_range r = {.table = t, .index = &schema_by_creation_time, .limit = LIMIT_QUERY_ROWS_MAX};
    json_t *rows = NULL;
    int rc = store_scan(conn, &r, &rows, e);
    if (rc) return rc;
    json_t *env = json_object();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *name = json_string_value(json_object_get(row, "name"));
        if (env && name) json_object_set(env, name, json_object_get(row, "value"));
    }
    json_decref(rows);
    if (!env) return err_set(e, ERR_NOMEM, "read the deployment variables: out of memory");
    *env_out = env;
    return 0;
}

void engine_env_apply(engine *en, const write_set *ws)
{
    for (int i = 0; i < ws->n_recs; i++) {
        const write_rec *w = &ws->recs[i];
        if (strcmp(w->table->name, SYSTEM_TABLE_ENV) != 0) continue;
        const json_t *doc = w->new_doc ? w->new_doc : w->old_doc;
        const char *name = json_string_value(json_object_get(doc, "name"));
        if (!name) continue;
        if (w->new_doc)
            json_object_set(en->env, name, json_object_get(w->new_doc, "value"));
        else
            json_object_del(en->env, name);
    }
}
