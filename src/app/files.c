/*
 * files.c — stored files (api.md §9): the functions of the upload flow and
 * of the files a user may see, and the system functions the HTTP storage
 * routes (proto/storage_http.c) and the dashboard run on the metadata.
 *   files:generateUploadUrl  (auth) a one-time upload URL, valid 1 hour
 *   files:getUrl             (auth) the URL of a file the caller may see
 *   files:getMetadata        (auth) its `_storage` document
 *   files:remove             (auth) the caller's own upload, unless a run's output
 *   _system:uploadTokenCheck  whether an upload token may still be used
 *   _system:storageStore      the document of bytes just stored, the token used up
 *   _system:storageGet        one `_storage` document (downloads)
 *   _system:storageList       the dashboard's Files view, newest first
 *   _system:cleanupUploadTokens  expired tokens dropped (periodic)
 * A caller sees a file it uploaded, or the output of one of its runs. The
 * bytes themselves are the file stores' (store/files.h); a document exists
 * only for bytes that are stored and durable.
 * Thread: the storage thread (mutations) or a reader thread (queries).
 */
#include <stdio.h>
#include <string.h>

#include "app/app.h"
#include "app/model.h"
#include "base/ids.h"
#include "base/limits.h"
#include "base/sha256.h"
#include "engine/engine.h"
#include "engine/system_tables.h"

#define FILES_TOKEN_BYTES 32        /* random bytes of an upload token: 64 hex characters */
#define FILES_CLEANUP_BATCH_MAX 500 /* expired tokens one cleanup deletes */
#define FILES_LIST_PAGE_MAX 100

static int file_not_found(ctx *c)
{
    return ctx_fail(c, ERR_NOT_FOUND, NULL, "File not found");
}

/* Runs whose output the file is, at most LIMIT_FILE_RUNS_CHECKED_MAX. */
static int output_runs(ctx *c, const char *storage_id, json_t **runs_out)
{
    db_query q = {.table = "runs",
                  .index = "by_output",
                  .eq = ctx_own(c, json_pack("[s]", storage_id)),
                  .limit = LIMIT_FILE_RUNS_CHECKED_MAX};
    return db_query_rows(c, &q, runs_out);
}

/* The `_storage` document when the caller may see it: uploaded by them, or
 * the output of one of their runs. *doc_out NULL otherwise. */
static int load_visible_file(ctx *c, const char *storage_id, json_t **doc_out)
{
    *doc_out = NULL;
    const char *tid = NULL;
    int rc = app_require_identity(c, &tid);
    json_t *doc = NULL;
    if (rc == 0) rc = db_get(c, SYSTEM_TABLE_STORAGE, storage_id, &doc);
    if (rc || !doc) return rc;
    const char *owner = app_str(doc, "owner");
    if (owner && strcmp(owner, tid) == 0) {
        *doc_out = doc;
        return 0;
    }
    json_t *user = NULL, *runs = NULL;
    rc = app_find_user(c, &user);
    if (rc == 0 && user) rc = output_runs(c, storage_id, &runs);
    bool visible = false;
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run)
    {
        if (strcmp(app_str(run, "userId"), app_str(user, "_id")) == 0) visible = true;
    }
    if (rc == 0 && visible) *doc_out = doc;
    return rc;
}

static int generate_upload_url(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    const char *tid = NULL;
    int rc = app_require_identity(c, &tid);
    if (rc) return rc;
    char token[2 * FILES_TOKEN_BYTES + 1];
    if (id_random_hex(token, FILES_TOKEN_BYTES) != 0)
        return ctx_fail(c, ERR_INTERNAL, NULL, "no randomness for an upload token");
    uint8_t digest[SHA256_BYTES];
    char hash[SHA256_HEX_BYTES];
    sha256_bytes(token, strlen(token), digest);
    sha256_to_hex(digest, hash);
    json_t *row =
        ctx_own(c, json_pack("{s:s, s:s, s:f}", "tokenHash", hash, "owner", tid, "expiresAt",
                             c->now_ms + (double)LIMIT_FILE_UPLOAD_TOKEN_TTL_MS));
    rc = db_insert(c, SYSTEM_TABLE_UPLOAD_TOKENS, row, NULL);
    if (rc) return rc;
    char url[ENGINE_PUBLIC_URL_BYTES_MAX + 128];
    snprintf(url, sizeof url, "%s/api/storage/upload?token=%s", ctx_public_url(c), token);
    *result = ctx_own(c, json_string(url));
    return 0;
}

static int get_url(ctx *c, const json_t *args, json_t **result)
{
    const char *id = app_str(args, "storageId");
    json_t *doc;
    int rc = load_visible_file(c, id, &doc);
    if (rc) return rc;
    *result = doc ? ctx_own(c, app_file_url(c, id)) : json_null();
    return 0;
}

static int get_metadata(ctx *c, const json_t *args, json_t **result)
{
    json_t *doc;
    int rc = load_visible_file(c, app_str(args, "storageId"), &doc);
    if (rc == 0) *result = doc ? doc : json_null();
    return rc;
}

static int remove_file(ctx *c, const json_t *args, json_t **result)
{
    const char *id = app_str(args, "storageId");
    const char *tid = NULL;
    int rc = app_require_identity(c, &tid);
    json_t *doc = NULL;
    if (rc == 0) rc = db_get(c, SYSTEM_TABLE_STORAGE, id, &doc);
    if (rc) return rc;
    const char *owner = app_str(doc, "owner");
    bool own = doc && owner && strcmp(owner, tid) == 0;
    if (!own) return file_not_found(c);
    json_t *runs = NULL;
    rc = output_runs(c, id, &runs);
    if (rc) return rc;
    size_t n = json_array_size(runs);
    if (n > 0)
        return ctx_fail(c, ERR_INVALID_TRANSITION, NULL,
                        "File is the output of a run: it cannot be removed");
    rc = db_delete(c, SYSTEM_TABLE_STORAGE, id);
    if (rc == 0) *result = json_null();
    return rc;
}

/* --- for the storage routes and the dashboard (admin key only) ------------------- */

static int find_token(ctx *c, const char *hash, json_t **row_out)
{
    db_query q = {.table = SYSTEM_TABLE_UPLOAD_TOKENS,
                  .index = "by_token",
                  .eq = ctx_own(c, json_pack("[s]", hash))};
    return db_query_first(c, &q, row_out);
}

/* {ok: true, owner} or {ok: false, reason: "unknown" | "expired"} (the
 * ctx's). */
static json_t *token_verdict(ctx *c, const json_t *row)
{
    if (!row) return ctx_own(c, json_pack("{s:b, s:s}", "ok", 0, "reason", "unknown"));
    if (json_number_value(json_object_get(row, "expiresAt")) <= c->now_ms)
        return ctx_own(c, json_pack("{s:b, s:s}", "ok", 0, "reason", "expired"));
    return ctx_own(c, json_pack("{s:b, s:O}", "ok", 1, "owner", json_object_get(row, "owner")));
}

static int upload_token_check(ctx *c, const json_t *args, json_t **result)
{
    json_t *row = NULL;
    int rc = find_token(c, app_str(args, "tokenHash"), &row);
    if (rc == 0) *result = token_verdict(c, row);
    return rc;
}

/* The document of bytes stored under `id`; an upload with a token uses the
 * token up in the same transaction (so it serves one upload only) and
 * records its owner. {ok: false, reason} when the token is no longer good:
 * nothing is written then. */
static int storage_store(ctx *c, const json_t *args, json_t **result)
{
    const char *hash = app_str(args, "tokenHash");
    json_t *row = NULL, *verdict = NULL;
    int rc = 0;
    if (hash) {
        rc = find_token(c, hash, &row);
        if (rc == 0) verdict = token_verdict(c, row);
        if (rc == 0 && !json_is_true(json_object_get(verdict, "ok"))) {
            *result = verdict;
            return 0;
        }
    }
    json_t *doc = ctx_own(c, json_pack("{s:O, s:O}", "sha256", json_object_get(args, "sha256"),
                                       "size", json_object_get(args, "size")));
    json_t *type = json_object_get(args, "contentType");
    if (type) json_object_set(doc, "contentType", type);
    if (row) json_object_set(doc, "owner", json_object_get(row, "owner"));
    if (rc == 0) rc = db_insert_with_id(c, SYSTEM_TABLE_STORAGE, doc, app_str(args, "id"));
    if (rc == 0 && row) rc = db_delete(c, SYSTEM_TABLE_UPLOAD_TOKENS, app_str(row, "_id"));
    if (rc == 0) *result = ctx_own(c, json_pack("{s:b}", "ok", 1));
    return rc;
}

static int storage_get(ctx *c, const json_t *args, json_t **result)
{
    json_t *doc = NULL;
    int rc = db_get(c, SYSTEM_TABLE_STORAGE, app_str(args, "id"), &doc);
    if (rc == 0) *result = doc ? doc : json_null();
    return rc;
}

/* A page of files, newest first, each with its URL and the run whose
 * output it is (the first one, when any). */
static int storage_list(ctx *c, const json_t *args, json_t **result)
{
    db_query q = {.table = SYSTEM_TABLE_STORAGE, .descending = true};
    int rc = db_paginate(c, &q, json_object_get(args, "paginationOpts"), result);
    size_t i;
    json_t *doc;
    json_array_foreach(json_object_get(*result, "page"), i, doc)
    {
        if (rc) break;
        const char *id = app_str(doc, "_id");
        json_object_set_new(doc, "url", app_file_url(c, id));
        db_query rq = {.table = "runs",
                       .index = "by_output",
                       .eq = ctx_own(c, json_pack("[s]", id)),
                       .limit = 1};
        json_t *run = NULL;
        rc = db_query_first(c, &rq, &run);
        if (run) json_object_set(doc, "outputOf", json_object_get(run, "_id"));
    }
    if (rc) *result = NULL;
    return rc;
}

static int cleanup_upload_tokens(ctx *c, const json_t *args, json_t **result)
{
    (void)args;
    json_t *now = ctx_own(c, json_real(c->now_ms));
    db_query q = {.table = SYSTEM_TABLE_UPLOAD_TOKENS,
                  .index = "by_expiry",
                  .upto = now,
                  .limit = FILES_CLEANUP_BATCH_MAX};
    json_t *rows = NULL;
    int rc = db_query_rows(c, &q, &rows);
    if (rc) return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        rc = db_delete(c, SYSTEM_TABLE_UPLOAD_TOKENS, app_str(row, "_id"));
        if (rc) break;
    }
    if (rc == 0)
        *result = ctx_own(c, json_pack("{s:I}", "deleted", (json_int_t)json_array_size(rows)));
    return rc;
}

static const v_field storage_id_fields[] = {{"storageId", &app_storage_id, false}};
static const validator storage_id_args = V_OBJECT_INIT(storage_id_fields);
static const validator hex_digest =
    V_STRING_LEN_INIT(STORAGE_SHA256_HEX_CHARS, STORAGE_SHA256_HEX_CHARS);
static const v_field token_fields[] = {{"tokenHash", &hex_digest, false}};
static const validator token_args = V_OBJECT_INIT(token_fields);
static const validator file_size = {.kind = V_INTEGER, .has_min = true, .min = 0};
static const validator content_type = V_STRING_LEN_INIT(1, STORAGE_CONTENT_TYPE_CHARS_MAX);
static const v_field store_fields[] = {
    {"id", &app_storage_id, false},   {"sha256", &hex_digest, false},
    {"size", &file_size, false},      {"contentType", &content_type, true},
    {"tokenHash", &hex_digest, true},
};
static const validator store_args = V_OBJECT_INIT(store_fields);
static const v_field id_fields[] = {{"id", &app_storage_id, false}};
static const validator id_args = V_OBJECT_INIT(id_fields);
static const v_field list_fields[] = {{"paginationOpts", &app_pagination_opts, false}};
static const validator list_args = V_OBJECT_INIT(list_fields);

static const validator returns_url = {.kind = V_ANY, .ts_type = "string"};
static const validator returns_url_or_null = {.kind = V_ANY, .ts_type = "string | null"};
static const validator returns_metadata = {
    .kind = V_ANY,
    .ts_type = "{ _id: Id<\"_storage\">; _creationTime: number; sha256: string; size: number; "
               "contentType?: string; owner?: string } | null"};

static const fn_def file_fns[] = {
    {.path = "files:generateUploadUrl",
     .kind = FN_MUTATION,
     .args = &v_no_args,
     .returns = &returns_url,
     .impl = generate_upload_url,
     .doc = "A one-time URL to POST a file's bytes to, valid 1 hour; the answer is "
            "{storageId}."},
    {.path = "files:getUrl",
     .kind = FN_QUERY,
     .args = &storage_id_args,
     .returns = &returns_url_or_null,
     .impl = get_url,
     .doc = "The URL of a file the caller uploaded or a run of theirs produced, or null."},
    {.path = "files:getMetadata",
     .kind = FN_QUERY,
     .args = &storage_id_args,
     .returns = &returns_metadata,
     .impl = get_metadata,
     .doc = "The metadata of a file the caller may see (sha256, size, contentType), or null."},
    {.path = "files:remove",
     .kind = FN_MUTATION,
     .args = &storage_id_args,
     .returns = &v_null,
     .impl = remove_file,
     .doc = "Removes a file the caller uploaded (not a run's output)."},
    {.path = "_system:uploadTokenCheck",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &token_args,
     .impl = upload_token_check,
     .doc = "Whether an upload token may still be used, and whose it is."},
    {.path = "_system:storageStore",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &store_args,
     .impl = storage_store,
     .doc = "Records stored bytes as a file, using up the upload token."},
    {.path = "_system:storageGet",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &id_args,
     .impl = storage_get,
     .doc = "One file's metadata, or null."},
    {.path = "_system:storageList",
     .kind = FN_QUERY,
     .visibility = FN_SYSTEM,
     .args = &list_args,
     .impl = storage_list,
     .doc = "A page of stored files, newest first, with their URLs."},
    {.path = "_system:cleanupUploadTokens",
     .kind = FN_MUTATION,
     .visibility = FN_SYSTEM,
     .args = &v_no_args,
     .impl = cleanup_upload_tokens,
     .doc = "Drops expired upload tokens."},
};

void files_register(registry *r)
{
    registry_add(r, file_fns, V_COUNT(file_fns));
}
