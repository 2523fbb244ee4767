/*
 * http_api.c — the HTTP API of convex-protocol.md §1 and the meta routes:
 * routing, CORS, request ids, authentication of the Authorization header,
 * function calls through the engine and their UdfResponse bodies, the
 * consistent queries (/api/query_ts, /api/query_at_ts, /api/query_batch),
 * /version, /health, /metrics. Every response carries X-Request-Id; every function call
 * is logged in one line (function, identity, duration, outcome).
 * Thread: the event-loop thread.
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/ids.h"
#include "base/limits.h"
#include "base/log.h"
#include "engine/subs.h"
#include "proto/dashboard.h"
#include "proto/server.h"
#include "proto/storage_http.h"
#include "proto/sync.h"
#include "proto/wire.h"

#define API_ANY_KIND (-1)
#define INTERNAL_ERROR_MESSAGE "Your request couldn't be completed. Try again later."

typedef struct api_req {
    server *srv;
    http_request *http;
    char request_id[17];
    const char *route; /* metrics label, static */
    int want_kind;     /* FN_QUERY, FN_MUTATION, FN_ACTION or API_ANY_KIND */
    char path[LIMIT_FUNCTION_PATH_BYTES_MAX];
    wire_format fmt;
    json_t *args;
    char args_error[ERR_MSG_BYTES_MAX]; /* args that did not decode: told after auth */
    json_t *identity;
    bool admin;
    bool worker;            /* the worker key: worker functions only (api.md §10) */
    json_t *batch;          /* /api/query_batch: its entries, as sent */
    wire_format *batch_fmt; /* each entry's output format */
    bool at_ts;             /* /api/query_at_ts: answer as of ts */
    uint64_t ts;
} api_req;

const char *server_identity_label(const json_t *identity, bool admin)
{
    if (admin && !identity) return "admin";
    const char *tid = json_string_value(json_object_get(identity, "tokenIdentifier"));
    return tid ? tid : "anonymous";
}

static void api_req_free(api_req *r)
{
    json_decref(r->args);
    json_decref(r->identity);
    json_decref(r->batch);
    free(r->batch_fmt);
    r->srv->requests_in_flight--;
    free(r);
}

/* --- responses ------------------------------------------------------------------ */

static void respond(api_req *r, int status, const char *content_type, const char *body, size_t len)
{
    http_header headers[8];
    int n = 0;
    headers[n++] = (http_header){"Content-Type", content_type};
    headers[n++] = (http_header){"X-Request-Id", r->request_id};
    const char *origin = http_request_header(r->http, "origin");
    if (origin) {
        headers[n++] = (http_header){"Access-Control-Allow-Origin", origin};
        headers[n++] = (http_header){"Access-Control-Allow-Credentials", "true"};
        headers[n++] = (http_header){"Access-Control-Expose-Headers", "X-Request-Id"};
        headers[n++] = (http_header){"Vary", "Origin"};
    }
    metrics_record_request(&r->srv->metrics, r->route, status, clock_mono_us() - r->http->start_us);
    http_respond(r->http, status, headers, n, body, len);
    api_req_free(r);
}

static void respond_json(api_req *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text) {
        respond(r, 500, "application/json", "{\"code\":\"InternalServerError\"}", 30);
        return;
    }
    respond(r, status, "application/json", text, strlen(text));
    free(text);
}

static void respond_error(api_req *r, int status, const char *code, const char *message)
{
    respond_json(r, status, json_pack("{s:s, s:s}", "code", code, "message", message));
}

static void respond_text(api_req *r, int status, const char *text)
{
    respond(r, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* A function error: HTTP 200, status "error", the message exactly as the
 * function reported it, the error data for application errors. */
static void respond_function_error(api_req *r, const err_t *e, const json_t *log_lines)
{
    json_t *body = json_pack("{s:s, s:s}", "status", "error", "errorMessage", e->msg);
    if (e->data) json_object_set_new(body, "errorData", wire_encode(e->data, r->fmt));
    if (log_lines && json_array_size(log_lines))
        json_object_set(body, "logLines", (json_t *)log_lines);
    respond_json(r, 200, body);
}

static void respond_internal(api_req *r, const err_t *e)
{
    log_error("request %s failed: %s (%s)", r->request_id, e->msg, err_name(e->code));
    if (e->code == ERR_BUSY) {
        respond_error(r, 503, "Overloaded", e->msg);
        return;
    }
    respond_error(r, 500, "InternalServerError", INTERNAL_ERROR_MESSAGE);
}

/* --- function calls --------------------------------------------------------------- */

static const char *kind_title(int kind)
{
    switch (kind) {
    case FN_QUERY:
        return "Query";
    case FN_MUTATION:
        return "Mutation";
    case FN_ACTION:
        return "Action";
    }
    return "Function";
}

static void log_call(api_req *r, const call *c)
{
    double ms = (double)(c->finished_us - c->submitted_us) / 1000.0;
    const char *outcome = c->rc == 0 ? "ok" : err_name(c->rc);
    log_info("%s %s by %s: %s in %.2f ms [%s]", fn_kind_name(c->fn->kind), c->fn->path,
             server_identity_label(c->identity, c->admin), outcome, ms, r->request_id);
    if (c->rc && err_is_application(c->rc)) log_debug("  %s", c->err.msg);
}

/* The UdfResponse body of a call that succeeded or failed with an
 * application error. */
static json_t *udf_response(const call *c, wire_format fmt)
{
    json_t *body;
    if (c->rc == 0) {
        body = json_pack("{s:s, s:o}", "status", "success", "value", wire_encode(c->result, fmt));
    } else {
        assert(err_is_application(c->rc));
        body = json_pack("{s:s, s:s}", "status", "error", "errorMessage", c->err.msg);
        if (c->err.data) json_object_set_new(body, "errorData", wire_encode(c->err.data, fmt));
    }
    if (c->log_lines && json_array_size(c->log_lines))
        json_object_set(body, "logLines", c->log_lines);
    return body;
}

static bool answer_valid_at_ts(const api_req *r, const call *c);

static void on_call_done(call *c)
{
    api_req *r = c->data;
    metrics_record_call(&r->srv->metrics, c->fn->path, c->rc);
    log_call(r, c);
    if (r->at_ts && c->rc == 0 && !answer_valid_at_ts(r, c))
        respond_error(r, 400, "QueryTimestampUnavailable",
                      "The data this query reads changed after that timestamp, or the timestamp "
                      "is newer than the server's: dojo keeps no older versions; ask "
                      "/api/query_ts for a new timestamp");
    else if (c->rc == 0 || err_is_application(c->rc))
        respond_json(r, 200, udf_response(c, r->fmt));
    else
        respond_internal(r, &c->err);
    call_free(c);
}

static void dispatch_batch(api_req *r);

static void dispatch(api_req *r)
{
    if (r->batch) {
        dispatch_batch(r);
        return;
    }
    const fn_def *fn = registry_find(r->srv->cfg.registry, r->path);
    err_t e;
    err_init(&e);
    if (r->args_error[0]) {
        err_app(&e, ERR_INVALID_ARGUMENT, NULL, "%s", r->args_error);
        respond_function_error(r, &e, NULL);
        err_clear(&e);
        return;
    }
    if (!fn || (fn->visibility == FN_SYSTEM && !r->admin && !r->worker)) {
        err_app(&e, ERR_INVALID_ARGUMENT, NULL, "Could not find public function for '%s'.",
                r->path);
        respond_function_error(r, &e, NULL);
        err_clear(&e);
        return;
    }
    if (r->want_kind != API_ANY_KIND && (int)fn->kind != r->want_kind) {
        err_app(&e, ERR_INVALID_ARGUMENT, NULL,
                "Trying to execute %s as %s, but it is defined as %s.", r->path,
                kind_title(r->want_kind), kind_title((int)fn->kind));
        respond_function_error(r, &e, NULL);
        err_clear(&e);
        return;
    }
    call *c = call_new();
    c->fn = fn;
    c->args = r->args;
    c->identity = r->identity;
    c->admin = r->admin;
    c->worker = r->worker;
    c->record_reads = r->at_ts;
    r->args = r->identity = NULL;
    c->done = on_call_done;
    c->data = r;
    int rc = engine_submit(r->srv->en, c);
    if (rc == 0) return;
    metrics_record_call(&r->srv->metrics, fn->path, rc);
    if (err_is_application(rc))
        respond_function_error(r, &c->err, NULL);
    else
        respond_internal(r, &c->err);
    call_free(c);
}

/* --- authentication -------------------------------------------------------------- */

static void on_token_verified(void *data, int rc, json_t *identity, int64_t exp_s,
                              jwt_failure failure, const err_t *e)
{
    api_req *r = data;
    if (rc) {
        log_info("request %s: token refused (%s): %s", r->request_id, jwt_failure_name(failure),
                 e->msg);
        respond_error(r, 401,
                      failure == JWT_NO_ISSUER_CONFIGURED ? "NoAuthProvider" : "Unauthenticated",
                      e->msg);
        return;
    }
    r->identity = identity;
    dispatch(r);
}

/* "Convex <admin key>[:<base64 identity JSON>]", or "Convex <worker key>" */
static int admin_authorize(api_req *r, const char *credentials)
{
    const char *expected = r->srv->cfg.admin_key;
    char given[LIMIT_ADMIN_KEY_BYTES_MAX + 1];
    size_t given_len = strcspn(credentials, ":");
    if (given_len > LIMIT_ADMIN_KEY_BYTES_MAX) given_len = LIMIT_ADMIN_KEY_BYTES_MAX;
    memcpy(given, credentials, given_len);
    given[given_len] = '\0';
    if (server_is_worker_key(r->srv, given)) {
        if (credentials[given_len] == ':') {
            respond_error(r, 403, "FORBIDDEN", "The worker key cannot act as a user");
            return -1;
        }
        r->worker = true;
        return 0;
    }
    if (!expected || !*expected) {
        respond_error(r, 401, "BadAdminKey",
                      "This deployment has no admin key: start dojo serve with DOJO_ADMIN_KEY "
                      "set (dojo dev prints its key)");
        return -1;
    }
    char key[LIMIT_ADMIN_KEY_BYTES_MAX + 1];
    const char *colon = strchr(credentials, ':');
    size_t key_len = colon ? (size_t)(colon - credentials) : strlen(credentials);
    if (key_len > LIMIT_ADMIN_KEY_BYTES_MAX) key_len = LIMIT_ADMIN_KEY_BYTES_MAX;
    memcpy(key, credentials, key_len);
    key[key_len] = '\0';
    if (!admin_key_matches(key, expected)) {
        respond_error(r, 401, "BadAdminKey",
                      "The admin key is not valid for this deployment: use the key printed by "
                      "`dojo dev` (./.dojo/admin_key) or the server's DOJO_ADMIN_KEY");
        return -1;
    }
    r->admin = true;
    if (colon && colon[1]) {
        /* Acting as a user (the dashboard's "run as"). */
        size_t len = strlen(colon + 1);
        uint8_t *raw = malloc(len + 3);
        long n = raw ? b64_decode(colon + 1, len, raw) : -1;
        json_t *identity = n > 0 ? json_loadb((const char *)raw, (size_t)n, 0, NULL) : NULL;
        free(raw);
        const char *tid = json_string_value(json_object_get(identity, "tokenIdentifier"));
        if (!tid) {
            json_decref(identity);
            respond_error(r, 400, "InvalidHeaderFailure",
                          "The identity after the admin key must be base64 JSON with a "
                          "tokenIdentifier");
            return -1;
        }
        r->identity = identity;
    }
    return 0;
}

static void authenticate_and_dispatch(api_req *r)
{
    const char *h = http_request_header(r->http, "authorization");
    if (!h || !*h) {
        dispatch(r);
        return;
    }
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "convex ", 7) == 0) {
        if (admin_authorize(r, h + 7) == 0) dispatch(r);
        return;
    }
    if (strncasecmp(h, "bearer ", 7) == 0) {
        const char *token = h + 7;
        while (*token == ' ')
            token++;
        auth_verify(r->srv->auth, token, on_token_verified, r);
        return;
    }
    respond_error(r, 401, "InvalidAuthHeader",
                  "The Authorization header must be `Bearer <token>` or `Convex <admin key>`");
}

/* --- request parsing ---------------------------------------------------------------- */

static bool is_json_content_type(const http_request *req)
{
    const char *ct = http_request_header(req, "content-type");
    return ct && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* Decodes %XX and '+' (query strings) into out; returns -1 on bad input. */
static int url_decode(const char *in, size_t len, char *out, size_t out_bytes, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (o + 1 >= out_bytes) return -1;
        char ch = in[i];
        if (ch == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)in[i + 1]) ||
                !isxdigit((unsigned char)in[i + 2]))
                return -1;
            char hex[3] = {in[i + 1], in[i + 2], 0};
            ch = (char)strtol(hex, NULL, 16);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Value of a query-string parameter, decoded, malloc'd; NULL when absent. */
static char *query_param(const char *query, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            size_t vlen = len - name_len - 1;
            char *out = malloc(vlen + 1);
            if (out && url_decode(p + name_len + 1, vlen, out, vlen + 1, true) != 0) {
                free(out);
                return NULL;
            }
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Fills path, args and format from a body object {path?, args, format?}. */
static int take_call_fields(api_req *r, json_t *body, bool path_from_body)
{
    if (!json_is_object(body)) {
        respond_error(r, 400, "BadJsonBody", "The request body must be a JSON object");
        return -1;
    }
    if (path_from_body) {
        const char *path = json_string_value(json_object_get(body, "path"));
        err_t e;
        err_init(&e);
        if (!path || registry_canonical_path(path, r->path, sizeof r->path, &e) != 0) {
            respond_error(r, 400, "BadConvexFunctionIdentifier",
                          path ? e.msg : "The request body needs a string field \"path\"");
            return -1;
        }
    }
    json_t *format = json_object_get(body, "format");
    if (format && !json_is_null(format) &&
        (!json_is_string(format) || wire_parse_format(json_string_value(format), &r->fmt) != 0)) {
        respond_error(r, 400, "BadFormat",
                      "Unknown format: use \"json\" or \"convex_encoded_json\"");
        return -1;
    }
    err_t e;
    err_init(&e);
    /* Arguments that do not decode are a function error, told only once the
     * caller is authenticated: a refused token is a 401 whatever the body. */
    r->args = wire_args(json_object_get(body, "args"), &e);
    if (!r->args) snprintf(r->args_error, sizeof r->args_error, "%s", e.msg);
    err_clear(&e);
    return 0;
}

static json_t *parse_body(api_req *r)
{
    if (!is_json_content_type(r->http)) {
        respond_error(r, 415, "BadContentType",
                      "Expected a request with `Content-Type: application/json`");
        return NULL;
    }
    json_error_t jerr;
    /* NUL inside a string parses (wire_decode refuses it in arguments, as a
     * function error naming the field, rather than as a broken body). */
    json_t *body = json_loadb(r->http->body, r->http->body_len, JSON_ALLOW_NUL, &jerr);
    if (!body) {
        char msg[300];
        snprintf(msg, sizeof msg, "The request body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        respond_error(r, 400, "BadJsonBody", msg);
    }
    return body;
}

static void handle_function_post(api_req *r, int kind, bool path_in_body)
{
    json_t *body = parse_body(r);
    if (!body) return;
    int rc = take_call_fields(r, body, path_in_body);
    json_decref(body);
    if (rc == 0) {
        r->want_kind = kind;
        authenticate_and_dispatch(r);
    }
}

static void handle_query_get(api_req *r)
{
    const char *q = r->http->query;
    char *path = query_param(q, "path");
    char *args = query_param(q, "args");
    char *format = query_param(q, "format");
    json_t *body = json_object();
    if (path) json_object_set_new(body, "path", json_string(path));
    if (format) json_object_set_new(body, "format", json_string(format));
    int rc = 0;
    if (args) {
        json_t *a = json_loads(args, JSON_ALLOW_NUL, NULL);
        if (!a) {
            respond_error(r, 400, "BadJsonBody", "The args query parameter is not valid JSON");
            rc = -1;
        } else {
            json_object_set_new(body, "args", a);
        }
    }
    free(path);
    free(args);
    free(format);
    if (rc == 0 && take_call_fields(r, body, true) == 0) {
        r->want_kind = FN_QUERY;
        authenticate_and_dispatch(r);
    }
    json_decref(body);
}

/* /api/run/a/b/c -> "a/b:c" */
static void handle_run(api_req *r, const char *rest)
{
    char decoded[LIMIT_FUNCTION_PATH_BYTES_MAX];
    if (url_decode(rest, strlen(rest), decoded, sizeof decoded, false) != 0) {
        respond_error(r, 400, "BadConvexFunctionIdentifier", "The function path is malformed");
        return;
    }
    char *last = strrchr(decoded, '/');
    if (!last || last == decoded || !last[1]) {
        respond_error(r, 400, "MissingIdentifier", "The path must be /api/run/<module>/<function>");
        return;
    }
    *last = ':';
    err_t e;
    err_init(&e);
    if (registry_canonical_path(decoded, r->path, sizeof r->path, &e) != 0) {
        respond_error(r, 400, "BadConvexFunctionIdentifier", e.msg);
        err_clear(&e);
        return;
    }
    r->fmt = WIRE_CLEAN;
    handle_function_post(r, API_ANY_KIND, false);
}

/* --- consistent queries: /api/query_ts, /api/query_at_ts, /api/query_batch ---------- */

static void handle_query_ts(api_req *r)
{
    char ts[13];
    b64_u64le_encode(engine_last_ts(r->srv->en), ts);
    respond_json(r, 200, json_pack("{s:s}", "ts", ts));
}

/* dojo keeps no older versions: an answer computed at snapshot c->ts is
 * also the answer at r->ts when no commit between the two touched what the
 * query read (the subscription manager's history of recent commits). */
static bool answer_valid_at_ts(const api_req *r, const call *c)
{
    if (c->ts == r->ts) return true;
    const subs *sm = r->srv->sync ? sync_hub_subs(r->srv->sync) : NULL;
    if (!sm) return false;
    uint64_t lo = c->ts < r->ts ? c->ts : r->ts, hi = c->ts < r->ts ? r->ts : c->ts;
    return subs_unchanged_between(sm, lo, hi, &c->reads);
}

static void handle_query_at_ts(api_req *r)
{
    json_t *body = parse_body(r);
    if (!body) return;
    const char *ts = json_string_value(json_object_get(body, "ts"));
    if (!ts || b64_u64le_decode(ts, &r->ts) != 0) {
        json_decref(body);
        respond_error(r, 400, "InvalidTimestamp",
                      "The body needs \"ts\": a timestamp from /api/query_ts (base64 of 8 bytes)");
        return;
    }
    json_object_del(body, "ts");
    int rc = take_call_fields(r, body, true);
    json_decref(body);
    if (rc) return;
    r->at_ts = true;
    r->want_kind = FN_QUERY;
    authenticate_and_dispatch(r);
}

static void handle_query_batch(api_req *r)
{
    json_t *body = parse_body(r);
    if (!body) return;
    json_t *queries = json_object_get(body, "queries");
    if (!json_is_object(body) || !json_is_array(queries)) {
        json_decref(body);
        respond_error(r, 400, "BadJsonBody", "The body needs \"queries\": [{path, args}, …]");
        return;
    }
    if (json_array_size(queries) > LIMIT_QUERY_BATCH_MAX) {
        json_decref(body);
        char msg[120];
        snprintf(msg, sizeof msg, "A batch holds at most %d queries", LIMIT_QUERY_BATCH_MAX);
        respond_error(r, 400, "BadJsonBody", msg);
        return;
    }
    r->batch = json_incref(queries);
    json_decref(body);
    r->want_kind = FN_QUERY;
    authenticate_and_dispatch(r);
}

/* One entry of a batch as a query call: checked as /api/query checks one;
 * a refusal is that entry's answer (c->rc set), not the batch's. */
static call *batch_entry(api_req *r, const json_t *entry, wire_format *fmt)
{
    call *c = call_new();
    c->identity = r->identity ? json_incref(r->identity) : NULL;
    c->admin = r->admin;
    c->worker = r->worker;
    *fmt = WIRE_ENCODED;
    const char *path = json_string_value(json_object_get(entry, "path"));
    const json_t *format = json_object_get(entry, "format");
    char canonical[LIMIT_FUNCTION_PATH_BYTES_MAX];
    err_t e;
    err_init(&e);
    if (!json_is_object(entry) || !path) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "Each query needs a string \"path\"");
    } else if (format && !json_is_null(format) &&
               (!json_is_string(format) || wire_parse_format(json_string_value(format), fmt))) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL,
                "Unknown format: use \"json\" or \"convex_encoded_json\"");
    } else if (registry_canonical_path(path, canonical, sizeof canonical, &e) != 0) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
    } else if (!(c->fn = registry_find(r->srv->cfg.registry, canonical)) ||
               (c->fn->visibility == FN_SYSTEM && !r->admin && !r->worker)) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "Could not find public function for '%s'.",
                canonical);
    } else if (c->fn->kind != FN_QUERY) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL,
                "Trying to execute %s as Query, but it is defined as %s.", canonical,
                kind_title((int)c->fn->kind));
    } else if (!(c->args = wire_args(json_object_get(entry, "args"), &e))) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
    } else {
        engine_check(r->srv->en, c);
    }
    err_clear(&e);
    if (c->err.code) c->rc = c->err.code;
    return c;
}

static void on_batch_done(call *b)
{
    api_req *r = b->data;
    if (b->rc) {
        respond_internal(r, &b->err);
        call_free(b);
        return;
    }
    json_t *results = json_array();
    for (int i = 0; i < b->n_batch; i++) {
        call *c = b->batch[i];
        if (c->fn) {
            metrics_record_call(&r->srv->metrics, c->fn->path, c->rc);
            c->submitted_us = b->submitted_us;
            if (!c->finished_us) c->finished_us = c->submitted_us; /* refused: never ran */
            log_call(r, c);
        }
        if (c->rc == 0 || err_is_application(c->rc)) {
            json_array_append_new(results, udf_response(c, r->batch_fmt[i]));
        } else {
            log_error("request %s, query %d failed: %s", r->request_id, i, c->err.msg);
            json_array_append_new(results, json_pack("{s:s, s:s}", "status", "error",
                                                     "errorMessage", INTERNAL_ERROR_MESSAGE));
        }
    }
    call_free(b);
    respond_json(r, 200, json_pack("{s:o}", "results", results));
}

static void dispatch_batch(api_req *r)
{
    size_t n = json_array_size(r->batch);
    call *b = call_new();
    b->batch = calloc(n ? n : 1, sizeof *b->batch);
    r->batch_fmt = calloc(n ? n : 1, sizeof *r->batch_fmt);
    if (!b->batch || !r->batch_fmt) {
        call_free(b);
        respond_error(r, 500, "InternalServerError", "out of memory");
        return;
    }
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        b->batch[b->n_batch++] = batch_entry(r, json_array_get(r->batch, i), &r->batch_fmt[i]);
        any = any || b->batch[i]->rc == 0;
    }
    b->done = on_batch_done;
    b->data = r;
    b->submitted_us = clock_mono_us();
    if (!any) { /* nothing to run: every answer is a refusal */
        on_batch_done(b);
        return;
    }
    if (engine_submit_batch(r->srv->en, b) == 0) return;
    respond_internal(r, &b->err);
    call_free(b);
}

/* --- meta routes ---------------------------------------------------------------------- */

static void on_health_done(call *c)
{
    api_req *r = c->data;
    if (c->rc == 0) {
        json_t *body = json_pack("{s:s, s:s}", "status", "ok", "store",
                                 store_engine_name(engine_store(r->srv->en)));
        respond_json(r, 200, body);
    } else {
        log_warn("health check failed: %s", c->err.msg);
        respond_error(r, 503, "Unavailable", "The store is not answering");
    }
    call_free(c);
}

static void handle_health(api_req *r)
{
    const fn_def *fn = registry_find(r->srv->cfg.registry, "_system:health");
    call *c = call_new();
    c->fn = fn;
    c->admin = true;
    c->done = on_health_done;
    c->data = r;
    if (engine_submit(r->srv->en, c) != 0) {
        call_free(c);
        respond_error(r, 503, "Unavailable", "The server is overloaded");
    }
}

static void handle_metrics(api_req *r)
{
    server *s = r->srv;
    char *text = metrics_render(&s->metrics, http_server_connections(s->http),
                                s->sync ? sync_session_count(s->sync) : 0, engine_last_ts(s->en));
    respond(r, 200, "text/plain; version=0.0.4", text ? text : "", text ? strlen(text) : 0);
    free(text);
}

static void handle_preflight(api_req *r)
{
    http_header headers[8];
    int n = 0;
    const char *origin = http_request_header(r->http, "origin");
    const char *req_headers = http_request_header(r->http, "access-control-request-headers");
    headers[n++] = (http_header){"X-Request-Id", r->request_id};
    if (origin) {
        headers[n++] = (http_header){"Access-Control-Allow-Origin", origin};
        headers[n++] = (http_header){"Access-Control-Allow-Credentials", "true"};
        headers[n++] =
            (http_header){"Access-Control-Allow-Methods", "GET, POST, OPTIONS, PATCH, DELETE, PUT"};
        if (req_headers) headers[n++] = (http_header){"Access-Control-Allow-Headers", req_headers};
        headers[n++] = (http_header){"Access-Control-Max-Age", "86400"};
        headers[n++] = (http_header){"Vary", "Origin, Access-Control-Request-Headers"};
    }
    metrics_record_request(&r->srv->metrics, r->route, 200, clock_mono_us() - r->http->start_us);
    http_respond(r->http, 200, headers, n, "", 0);
    api_req_free(r);
}

static bool is_method(const api_req *r, const char *m)
{
    return strcmp(r->http->method, m) == 0;
}

static bool is_sync_path(const char *path)
{
    if (strcmp(path, "/api/sync") == 0) return true;
    if (strncmp(path, "/api/", 5) != 0) return false;
    const char *slash = strchr(path + 5, '/');
    return slash && slash > path + 5 && strcmp(slash, "/sync") == 0;
}

static void route(api_req *r)
{
    const char *path = r->http->path;
    server *s = r->srv;
    if (is_method(r, "OPTIONS")) {
        r->route = "preflight";
        handle_preflight(r);
        return;
    }
    static const struct {
        const char *path;
        int kind;
        const char *route;
    } calls[] = {
        {"/api/query", FN_QUERY, "/api/query"},
        {"/api/mutation", FN_MUTATION, "/api/mutation"},
        {"/api/action", FN_ACTION, "/api/action"},
        {"/api/function", API_ANY_KIND, "/api/function"},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        if (strcmp(path, calls[i].path) != 0) continue;
        r->route = calls[i].route;
        bool query = calls[i].kind == FN_QUERY;
        if (query && (is_method(r, "GET") || is_method(r, "HEAD")))
            handle_query_get(r);
        else if (is_method(r, "POST"))
            handle_function_post(r, calls[i].kind, true);
        else
            respond_error(r, 405, "MethodNotAllowed",
                          query ? "Use GET or POST for this endpoint"
                                : "Use POST for this endpoint");
        return;
    }
    static const struct {
        const char *path;
        void (*handle)(api_req *r);
    } consistent[] = {
        {"/api/query_ts", handle_query_ts},
        {"/api/query_at_ts", handle_query_at_ts},
        {"/api/query_batch", handle_query_batch},
    };
    for (size_t i = 0; i < sizeof consistent / sizeof consistent[0]; i++) {
        if (strcmp(path, consistent[i].path) != 0) continue;
        r->route = consistent[i].path;
        if (is_method(r, "POST"))
            consistent[i].handle(r);
        else
            respond_error(r, 405, "MethodNotAllowed", "Use POST for this endpoint");
        return;
    }
    if (strncmp(path, "/api/run/", 9) == 0) {
        r->route = "/api/run";
        if (is_method(r, "POST"))
            handle_run(r, path + 9);
        else
            respond_error(r, 405, "MethodNotAllowed", "Use POST for this endpoint");
        return;
    }
    if (is_sync_path(path) && s->sync) {
        r->route = "/api/sync";
        http_request *req = r->http;
        metrics_record_request(&s->metrics, r->route, 101, 0);
        api_req_free(r);
        sync_handle_upgrade(s->sync, req);
        return;
    }
    if (dashboard_owns_path(path)) { /* answers at once, with its own headers and metrics */
        http_request *req = r->http;
        api_req_free(r);
        dashboard_handle(s, req);
        return;
    }
    bool get = is_method(r, "GET") || is_method(r, "HEAD");
    if (get && (strcmp(path, "/version") == 0 || strcmp(path, "/instance_version") == 0)) {
        r->route = "/version";
        respond_text(r, 200, DOJO_VERSION);
        return;
    }
    if (get && strcmp(path, "/health") == 0) {
        r->route = "/health";
        handle_health(r);
        return;
    }
    if (get && strcmp(path, "/metrics") == 0) {
        r->route = "/metrics";
        handle_metrics(r);
        return;
    }
    if (get && strcmp(path, "/instance_name") == 0) {
        r->route = "/version";
        respond_text(r, 200, "dojo");
        return;
    }
    if (get && strcmp(path, "/") == 0) {
        r->route = "/";
        respond_text(r, 200,
                     "This Convex deployment is running (dojo " DOJO_VERSION
                     "). See /health and /metrics.\n");
        return;
    }
    r->route = "other";
    char msg[200];
    snprintf(msg, sizeof msg, "No route for %s %.100s", r->http->method, path);
    respond_error(r, 404, "NotFound", msg);
}

void api_handle_request(void *data, http_request *req)
{
    server *s = data;
    if (s->cfg.extra_route && s->cfg.extra_route(s->cfg.extra_route_data, req)) return;
    if (storage_http_handle(s, req)) return; /* /api/storage/…: proto/storage_http.c */
    api_req *r = calloc(1, sizeof *r);
    if (!r) {
        http_respond_error(req, 500, "InternalServerError", "out of memory");
        return;
    }
    r->srv = s;
    r->http = req;
    r->route = "other";
    r->fmt = WIRE_CLEAN;
    s->requests_in_flight++;
    if (id_random_hex(r->request_id, 8) != 0) snprintf(r->request_id, sizeof r->request_id, "0");
    route(r);
}
