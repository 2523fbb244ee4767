/*
 * dashboard.c — the system functions behind the dashboard's Tables tab
 * (api.md §8): `_system:tables`, the application's tables with their row
 * counts, and `_system:browse`, one table newest first, a page at a time, or
 * the one document with a given _id, in the order of any of the table's
 * indexes (the Tables grid sorts by them). `_system:tables` also gives each
 * table's declared fields and indexes: the grid's columns and sort keys.
 * The Overview charts' queries are in overview.c. They are FN_SYSTEM: admin key only,
 * never listed to users or written by codegen. System tables (`_env`,
 * `_session_requests`) are neither listed nor browsable: deployment variables
 * have their own functions (env.c).
 * Thread: a reader thread (both are queries).
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "app/model.h"

/* Counts come from the store directly (one COUNT per table, not a scan
 * bounded by the row budget); the read is recorded as the whole table so a
 * subscription to the counts re-runs on any write to it. */
static int count_rows(ctx *c, const schema_table *t, int64_t *n_out)
{
    err_t e;
    err_init(&e);
    int rc = store_count(c->conn, t, n_out, &e);
    if (rc) {
        ctx_fail(c, rc, NULL, "%s", e.msg);
        err_clear(&e);
        return rc;
    }
    if (c->record_reads)
        read_set_add(&c->reads, t, &schema_by_creation_time, NULL, false, NULL, false);
    return 0;
}

/* {name, fields: [...]} of an index; its key ends with _creationTime, _id. */
static json_t *index_json(const schema_index *ix)
{
    json_t *fields = json_array();
    for (int i = 0; i < ix->n_fields; i++)
        json_array_append_new(fields, json_string(ix->fields[i]));
    return json_pack("{s:s, s:o}", "name", ix->name, "fields", fields);
}

static int tables(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *out = ctx_own(c, json_array());
    for (int i = 0; i < c->schema->n_tables; i++) {
        const schema_table *t = &c->schema->tables[i];
        if (t->system) continue;
        int64_t n = 0;
        int rc = count_rows(c, t, &n);
        if (rc) return rc;
        json_t *fields = json_array();
        for (int f = 0; t->doc && f < t->doc->n_fields; f++)
            json_array_append_new(fields, json_string(t->doc->fields[f].name));
        json_t *indexes = json_array();
        json_array_append_new(indexes, index_json(&schema_by_creation_time));
        for (int x = 0; x < t->n_indexes; x++)
            json_array_append_new(indexes, index_json(&t->indexes[x]));
        json_array_append_new(out, json_pack("{s:s, s:I, s:o, s:o}", "name", t->name, "count",
                                             (json_int_t)n, "fields", fields, "indexes", indexes));
    }
    *result = out;
    return 0;
}

/* The application table named `name`, or an INVALID_ARGUMENT error naming
 * `table` and listing the tables there are. */
static int app_table(ctx *c, const char *name, const schema_table **t_out)
{
    const schema_table *t = schema_table_by_name(c->schema, name);
    if (t && !t->system) {
        *t_out = t;
        return 0;
    }
    char names[256] = "";
    size_t n = 0;
    for (int i = 0; i < c->schema->n_tables && n < sizeof names; i++) {
        if (c->schema->tables[i].system) continue;
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "",
                              c->schema->tables[i].name);
    }
    return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                    "Invalid argument `table`: there is no table \"%.64s\" to browse (tables: %s)",
                    name, names);
}

static int browse(ctx *c, const json_t *args, json_t **result)
{
    const schema_table *t = NULL;
    int rc = app_table(c, app_str(args, "table"), &t);
    if (rc) return rc;
    const char *id = app_str(args, "id");
    if (id) {
        json_t *doc = NULL;
        rc = db_get(c, t->name, id, &doc);
        if (rc) return rc;
        *result = ctx_own(
            c, json_pack("{s:[O*], s:b, s:s}", "page", doc, "isDone", 1, "continueCursor", "END"));
        return 0;
    }
    const char *index = app_str(args, "index");
    const schema_index *ix = index ? schema_index_by_name(t, index) : &schema_by_creation_time;
    if (!ix) {
        char names[256] = "by_creation_time";
        size_t n = strlen(names);
        for (int i = 0; i < t->n_indexes && n < sizeof names; i++)
            n += (size_t)snprintf(names + n, sizeof names - n, ", %s", t->indexes[i].name);
        return ctx_fail(c, ERR_INVALID_ARGUMENT, NULL,
                        "Invalid argument `index`: table %s has no index \"%.64s\" (indexes: %s)",
                        t->name, index, names);
    }
    const char *order = app_str(args, "order");
    db_query q = {
        .table = t->name, .index = ix->name, .descending = !order || strcmp(order, "desc") == 0};
    return db_paginate(c, &q, json_object_get(args, "paginationOpts"), result);
}

static const validator table_name = V_STRING_LEN_INIT(1, 64);
static const validator doc_id = V_STRING_LEN_INIT(1, ID_BYTES_MAX - 1);
static const validator index_name = V_STRING_LEN_INIT(1, 64);
static const char *const orders[] = {"asc", "desc"};
static const validator order_value = V_ENUM_INIT(orders);
static const v_field browse_fields[] = {
    {"table", &table_name, false}, {"paginationOpts", &app_pagination_opts, false},
    {"id", &doc_id, true},         {"index", &index_name, true},
    {"order", &order_value, true},
};
static const validator browse_args = V_OBJECT_INIT(browse_fields);

static const fn_def dashboard_fns[] = {
    {.path = "_system:tables",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = tables,
     .doc = "The application's tables and their row counts."},
    {.path = "_system:browse",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &browse_args,
     .impl = browse,
     .doc = "A page of one application table in the order of `index` (default "
            "by_creation_time) and `order` (default desc: newest first), or the document "
            "with `id`."},
};

void dashboard_register(registry *r)
{
    registry_add(r, dashboard_fns, V_COUNT(dashboard_fns));
}
