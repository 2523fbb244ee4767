/*
 * workflows.c — the react-flow graphs people draw (api.md §3 "workflows").
 * A workflow is visible to its owner only; a missing id and another user's id
 * get the same answer ("Workflow not found" / null) so ids leak nothing.
 * Nodes and edges are stored as given; a document over 1 MiB is refused by
 * the engine with INVALID_ARGUMENT before anything is written.
 * Thread: the storage thread (mutations) or a reader thread (queries).
 */
#include <string.h>

#include "app/app.h"
#include "app/model.h"

/* The caller's workflow, or *doc_out NULL when it is missing or not theirs. */
static int load_own(ctx *c, const char *id, json_t **doc_out)
{
    const char *tid;
    int rc = app_require_identity(c, &tid);
    if (rc) return rc;
    rc = db_get(c, "workflows", id, doc_out);
    if (rc == 0 && *doc_out && strcmp(app_str(*doc_out, "owner"), tid) != 0) *doc_out = NULL;
    return rc;
}

static int require_own(ctx *c, const char *id, json_t **doc_out)
{
    int rc = load_own(c, id, doc_out);
    if (rc == 0 && !*doc_out) return ctx_fail(c, ERR_NOT_FOUND, NULL, "Workflow not found");
    return rc;
}

static int create(ctx *c, const json_t *args, json_t **result)
{
    const char *tid;
    int rc = app_require_identity(c, &tid);
    if (rc) return rc;
    json_t *doc = ctx_own(c, json_pack("{s:O, s:s, s:f}", "title", json_object_get(args, "title"),
                                       "owner", tid, "updatedAt", c->now_ms));
    json_t *nodes = json_object_get(args, "nodes"), *edges = json_object_get(args, "edges");
    json_object_set_new(doc, "nodes", nodes ? json_incref(nodes) : json_array());
    json_object_set_new(doc, "edges", edges ? json_incref(edges) : json_array());
    char id[ID_BYTES_MAX];
    rc = db_insert(c, "workflows", doc, id);
    if (rc == 0) *result = ctx_own(c, json_string(id));
    return rc;
}

static int update(ctx *c, const json_t *args, json_t **result)
{
    const char *id = app_str(args, "id");
    json_t *doc;
    int rc = require_own(c, id, &doc);
    if (rc) return rc;
    json_t *patch = ctx_own(c, json_pack("{s:f}", "updatedAt", c->now_ms));
    static const char *const editable[] = {"title", "nodes", "edges"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(args, editable[i]);
        if (v) json_object_set(patch, editable[i], v);
    }
    rc = db_patch(c, "workflows", id, patch);
    if (rc == 0) *result = json_null();
    return rc;
}

static int get(ctx *c, const json_t *args, json_t **result)
{
    json_t *doc;
    int rc = load_own(c, app_str(args, "id"), &doc);
    if (rc == 0) *result = doc ? doc : json_null();
    return rc;
}

static int list(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    const char *tid;
    int rc = app_require_identity(c, &tid);
    if (rc) return rc;
    db_query q = {.table = "workflows",
                  .index = "by_owner",
                  .eq = ctx_own(c, json_pack("[s]", tid)),
                  .descending = true};
    return db_query_rows(c, &q, result);
}

static int remove_workflow(ctx *c, const json_t *args, json_t **result)
{
    const char *id = app_str(args, "id");
    json_t *doc;
    int rc = require_own(c, id, &doc);
    if (rc) return rc;
    rc = db_delete(c, "workflows", id);
    if (rc == 0) *result = json_null();
    return rc;
}

static const v_field create_fields[] = {
    {"title", &app_title, false},
    {"nodes", &app_graph, true},
    {"edges", &app_graph, true},
};
static const validator create_args = V_OBJECT_INIT(create_fields);
static const v_field update_fields[] = {
    {"id", &app_workflow_id, false},
    {"title", &app_title, true},
    {"nodes", &app_graph, true},
    {"edges", &app_graph, true},
};
static const validator update_args = V_OBJECT_INIT(update_fields);
static const v_field id_fields[] = {{"id", &app_workflow_id, false}};
static const validator id_args = V_OBJECT_INIT(id_fields);
static const validator returns_id = {.kind = V_ANY, .ts_type = "Id<\"workflows\">"};
static const validator returns_doc_or_null = {.kind = V_ANY,
                                              .ts_type = "Doc<\"workflows\"> | null"};
static const validator returns_docs = {.kind = V_ANY, .ts_type = "Doc<\"workflows\">[]"};

static const fn_def workflow_fns[] = {
    {.path = "workflows:create",
     .kind = FN_MUTATION,
     .args = &create_args,
     .returns = &returns_id,
     .impl = create,
     .doc = "Creates a workflow owned by the caller."},
    {.path = "workflows:update",
     .kind = FN_MUTATION,
     .args = &update_args,
     .returns = &v_null,
     .impl = update,
     .doc = "Updates the caller's workflow and bumps updatedAt."},
    {.path = "workflows:get",
     .kind = FN_QUERY,
     .args = &id_args,
     .returns = &returns_doc_or_null,
     .impl = get,
     .doc = "The caller's workflow, or null."},
    {.path = "workflows:list",
     .kind = FN_QUERY,
     .args = &v_no_args,
     .returns = &returns_docs,
     .impl = list,
     .doc = "The caller's workflows, most recently updated first."},
    {.path = "workflows:remove",
     .kind = FN_MUTATION,
     .args = &id_args,
     .returns = &v_null,
     .impl = remove_workflow,
     .doc = "Removes the caller's workflow; runs keep their workflowId."},
};

void workflows_register(registry *r)
{
    registry_add(r, workflow_fns, V_COUNT(workflow_fns));
}
