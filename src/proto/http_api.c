/*
 * http_api.c — the HTTP API of convex-protocol.md §1 and the meta routes:
 * routing, CORS, request ids, authentication of the Authorization header,
 * function calls through the engine and their UdfResponse bodies, the
 * consistent queries (/api/query_ts, /api/query_at_ts, /api/query_batch),
 * /version, /health, /metrics. Every response carries X-Request-Id; every function call
 * is logged in one line (function, identity, duration, outcome).
 * Thread: the event-loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/ids.h"
#include "base/invariant.h"
#include "base/jread.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/rcbuf.h"
#include "base/sbuf.h"
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
    bool at_ts_waited;      /* it waited for the commits up to its answer to be processed */
    uint64_t ts;
} api_req;

const char *server_identity_label(const json_t *identity, bool admin)
{
    if (admin && !identity) return "admin";
    return jr_string_or(identity, "tokenIdentifier", "anonymous");
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

/* A request whose fields cannot be read: 400 with the reader's message,
 * which names the field. */
static void respond_bad_request(api_req *r, const char *code, const err_t *e)
{
    respond_error(r, 400, code, e->msg);
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

/* The UdfResponse body of an outcome: a result (rc 0) or an application
 * error. */
static json_t *outcome_response(int rc, const json_t *result, const err_t *err,
                                const json_t *log_lines, wire_format fmt)
{
    json_t *body;
    if (rc == 0) {
        body = json_pack("{s:s, s:o}", "status", "success", "value", wire_encode(result, fmt));
    } else {
        ASSERT(err_is_application(rc));
        body = json_pack("{s:s, s:s}", "status", "error", "errorMessage", err->msg);
        if (err->data) json_object_set_new(body, "errorData", wire_encode(err->data, fmt));
    }
    if (log_lines && json_array_size(log_lines))
        json_object_set(body, "logLines", (json_t *)log_lines);
    return body;
}

static json_t *udf_response(const call *c, wire_format fmt)
{
    json_t *body = outcome_response(c->rc, c->result, &c->err, c->log_lines, fmt);
    return body;
}

static bool answer_valid_at_ts(const api_req *r, const call *c);

/* The query cache: the subscription manager's table (engine/subs.h). */
static subs *cache_of(const api_req *r)
{
    return r->srv->sync ? sync_hub_subs(r->srv->sync) : NULL;
}

/* /api/query_at_ts whose answer's snapshot the loop has not processed up
 * to yet (the history cannot tell what changed in between): it waits for
 * the commits to be processed, polled, at most LIMIT_QUERY_AT_TS_WAIT_MS. */
typedef struct at_ts_wait {
    uv_timer_t timer;
    call *c;
    uint64_t deadline_ms;
} at_ts_wait;

static void on_call_done(call *c);

static void at_ts_wait_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_at_ts_tick(uv_timer_t *t)
{
    at_ts_wait *w = t->data;
    call *c = w->c;
    api_req *r = c->data;
    const subs *sm = cache_of(r);
    uint64_t hi = c->ts > r->ts ? c->ts : r->ts;
    if (sm && subs_processed_ts(sm) < hi && clock_mono_ms() < w->deadline_ms) return;
    uv_timer_stop(t);
    t->data = w;
    uv_close((uv_handle_t *)t, at_ts_wait_closed);
    c->data = r;
    r->at_ts_waited = true;
    on_call_done(c);
}

/* True when the call waits (on_call_done runs again later). */
static bool wait_for_processed(api_req *r, call *c)
{
    const subs *sm = cache_of(r);
    uint64_t hi = c->ts > r->ts ? c->ts : r->ts;
    if (r->at_ts_waited || !sm || subs_processed_ts(sm) >= hi) return false;
    at_ts_wait *w = calloc(1, sizeof *w);
    if (!w) return false;
    w->c = c;
    w->deadline_ms = clock_mono_ms() + LIMIT_QUERY_AT_TS_WAIT_MS;
    uv_timer_init(r->srv->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_at_ts_tick, 2, 2);
    return true;
}

static void on_call_done(call *c)
{
    api_req *r = c->data;
    if (r->at_ts && c->rc == 0 && wait_for_processed(r, c)) return;
    metrics_record_call(&r->srv->metrics, c->fn->path, c->rc);
    log_call(r, c);
    subs *cache = c->fn->kind == FN_QUERY ? cache_of(r) : NULL;
    if (r->at_ts && c->rc == 0 && !answer_valid_at_ts(r, c)) {
        respond_error(r, 400, "QueryTimestampUnavailable",
                      "The data this query reads changed after that timestamp, or the timestamp "
                      "is newer than the server's: dojo keeps no older versions; ask "
                      "/api/query_ts for a new timestamp");
    } else if (c->rc == 0 || err_is_application(c->rc)) {
        json_t *body = udf_response(c, r->fmt);
        if (cache) subs_cache_store(cache, c); /* takes its outcome: answered from now on */
        respond_json(r, 200, body);
    } else {
        respond_internal(r, &c->err);
    }
    call_free(c);
}

static void dispatch_batch(api_req *r);

/* The UdfResponse text of a cached outcome in format fmt, encoded once per
 * result and kept with it; NULL when out of memory. */
static rcbuf *cached_body(subs *sm, sub_query *q, wire_format fmt)
{
    int f = fmt == WIRE_ENCODED ? 1 : 0;
    if (q->http_body[f] && q->http_body_version[f] == q->version) return q->http_body[f];
    rcbuf *b = NULL;
    bool encoded = q->rc == 0 && !q->value && q->wire_value;
    if (encoded && fmt == WIRE_ENCODED) {
        /* The value is already the wire text: only the envelope is new. */
        char *lines = json_array_size(q->log_lines) ? json_dumps(q->log_lines, JSON_COMPACT) : NULL;
        sbuf text;
        sbuf_init(&text, q->wire_value->len + 64);
        sbuf_puts(&text, "{\"status\":\"success\",\"value\":");
        sbuf_append(&text, q->wire_value->bytes, q->wire_value->len);
        if (lines) sbuf_printf(&text, ",\"logLines\":%s", lines);
        sbuf_puts(&text, "}");
        free(lines);
        if (!sbuf_failed(&text)) b = rcbuf_new(text.data, text.len);
        sbuf_free(&text);
    } else {
        /* Another format, or a value kept as such: from the value (decoded
         * from the wire text when that is all there is). */
        json_t *value = NULL;
        if (encoded) {
            err_t e;
            err_init(&e);
            json_t *parsed = json_loadb(q->wire_value->bytes, q->wire_value->len, 0, NULL);
            value = parsed ? wire_decode(parsed, &e) : NULL;
            json_decref(parsed);
            err_clear(&e);
            if (!value) return NULL;
        }
        json_t *body =
            outcome_response(q->rc, encoded ? value : q->value, &q->err, q->log_lines, fmt);
        json_decref(value);
        char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(body);
        if (text) b = rcbuf_new(text, strlen(text));
        free(text);
    }
    if (!b) return NULL;
    subs_cache_set_body(sm, q, f, b);
    return q->http_body[f];
}

/* A query the cache can answer (engine/subs.h): sent from the bytes made
 * for its result, without a reader thread or the store. */
static bool answer_from_cache(api_req *r, const fn_def *fn)
{
    subs *sm = cache_of(r);
    if (!sm || fn->kind != FN_QUERY || r->at_ts) return false;
    sub_query *q = subs_cache_lookup(sm, fn, r->args, r->identity, r->admin, r->worker,
                                     engine_answered_ts(r->srv->en));
    rcbuf *body = q ? cached_body(sm, q, r->fmt) : NULL;
    if (!body) return false;
    metrics_record_call(&r->srv->metrics, fn->path, q->rc);
    log_info("query %s by %s: %s from the cache [%s]", fn->path,
             server_identity_label(r->identity, r->admin), q->rc ? err_name(q->rc) : "ok",
             r->request_id);
    respond(r, 200, "application/json", body->bytes, body->len);
    return true;
}

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
    if (answer_from_cache(r, fn)) return;
    call *c = call_new();
    c->fn = fn;
    c->args = r->args;
    c->identity = r->identity;
    c->admin = r->admin;
    c->worker = r->worker;
    c->record_reads = r->at_ts || fn->kind == FN_QUERY; /* for the cache */
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
    bool fits = key_len <= LIMIT_ADMIN_KEY_BYTES_MAX;
    if (!fits) key_len = 0;
    memcpy(key, credentials, key_len);
    key[key_len] = '\0';
    if (!fits || !admin_key_matches(key, expected)) {
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
        const char *tid;
        err_t e;
        err_init(&e);
        if (!identity || jr_string(identity, "identity", "tokenIdentifier", JR_NONEMPTY,
                                   LIMIT_TOKEN_IDENTIFIER_BYTES_MAX, &tid, &e) != 0) {
            json_decref(identity);
            respond_error(r, 400, "InvalidHeaderFailure",
                          identity ? e.msg
                                   : "The identity after the admin key must be base64 JSON with "
                                     "a tokenIdentifier");
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

/* Reads "format": absent or null means the route's default. */
static int read_format(const json_t *obj, const char *where, wire_format *fmt, err_t *e)
{
    const char *format = NULL;
    if (jr_string(obj, where, "format", JR_OPTIONAL | JR_NULLABLE, 64, &format, e)) return -1;
    if (format && wire_parse_format(format, fmt) != 0)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "Unknown format \"%s\": use \"json\" or \"convex_encoded_json\"", format);
    return 0;
}

/* Reads "path" and makes it canonical; the message names what is wrong. */
static int read_path(const json_t *obj, const char *where, char *canonical, size_t bytes, err_t *e)
{
    const char *path;
    if (jr_string(obj, where, "path", 0, LIMIT_FUNCTION_PATH_BYTES_MAX - 1, &path, e)) return -1;
    return registry_canonical_path(path, canonical, bytes, e);
}

/* Fills path, args and format from a body object {path?, args, format?}. */
static int take_call_fields(api_req *r, json_t *body, bool path_from_body)
{
    err_t e;
    err_init(&e);
    if (jr_as_object(body, "the request body", &e)) {
        respond_bad_request(r, "BadJsonBody", &e);
        return -1;
    }
    if (path_from_body && read_path(body, "", r->path, sizeof r->path, &e) != 0) {
        respond_bad_request(r, "BadConvexFunctionIdentifier", &e);
        return -1;
    }
    if (read_format(body, "", &r->fmt, &e) != 0) {
        respond_bad_request(r, "BadFormat", &e);
        return -1;
    }
    /* Arguments that do not decode are a function error, told only once the
     * caller is authenticated: a refused token is a 401 whatever the body. */
    r->args = wire_args(jr_field(body, "args"), &e);
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
    char *path = NULL, *args = NULL, *format = NULL;
    err_t e;
    err_init(&e);
    if (jr_query_string(q, "path", JR_OPTIONAL, LIMIT_FUNCTION_PATH_BYTES_MAX, &path, &e) ||
        jr_query_string(q, "args", JR_OPTIONAL, LIMIT_HTTP_URL_BYTES_MAX, &args, &e) ||
        jr_query_string(q, "format", JR_OPTIONAL, 64, &format, &e)) {
        respond_bad_request(r, "BadQueryString", &e);
        goto done;
    }
    json_t *body = json_object();
    if (path) json_object_set_new(body, "path", json_string(path));
    if (format) json_object_set_new(body, "format", json_string(format));
    if (args) {
        json_error_t jerr;
        json_t *a = json_loads(args, JSON_ALLOW_NUL, &jerr);
        if (!a) {
            err_set(&e, ERR_INVALID_ARGUMENT,
                    "The args query parameter is not valid JSON: %s (column %d)", jerr.text,
                    jerr.column);
            respond_bad_request(r, "BadJsonBody", &e);
            json_decref(body);
            goto done;
        }
        json_object_set_new(body, "args", a);
    }
    if (take_call_fields(r, body, true) == 0) {
        r->want_kind = FN_QUERY;
        authenticate_and_dispatch(r);
    }
    json_decref(body);
done:
    free(path);
    free(args);
    free(format);
}

/* /api/run/a/b/c -> "a/b:c" */
static void handle_run(api_req *r, const char *rest)
{
    char decoded[LIMIT_FUNCTION_PATH_BYTES_MAX];
    err_t why;
    err_init(&why);
    if (jr_percent_decode(rest, strlen(rest), false, decoded, sizeof decoded, &why) != 0) {
        char msg[ERR_MSG_BYTES_MAX + 32];
        snprintf(msg, sizeof msg, "The function path %s", why.msg);
        respond_error(r, 400, "BadConvexFunctionIdentifier", msg);
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
    /* The newest state processed, or that anybody was answered with. */
    uint64_t newest = engine_last_ts(r->srv->en);
    if (engine_answered_ts(r->srv->en) > newest) newest = engine_answered_ts(r->srv->en);
    b64_u64le_encode(newest, ts);
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
    const char *ts = NULL;
    err_t e;
    err_init(&e);
    if (!json_is_object(body) || jr_string(body, "", "ts", 0, 64, &ts, &e) != 0 ||
        b64_u64le_decode(ts, &r->ts) != 0) {
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
    const json_t *queries;
    err_t e;
    err_init(&e);
    if (jr_as_object(body, "the request body", &e) ||
        jr_array(body, "", "queries", 0, LIMIT_QUERY_BATCH_MAX, &queries, &e)) {
        json_decref(body);
        respond_bad_request(r, "BadJsonBody", &e);
        return;
    }
    r->batch = json_incref((json_t *)queries);
    json_decref(body);
    r->want_kind = FN_QUERY;
    authenticate_and_dispatch(r);
}

/* One entry of a batch as a query call: checked as /api/query checks one;
 * a refusal is that entry's answer (c->rc set), not the batch's. */
static call *batch_entry(api_req *r, size_t index, const json_t *entry, wire_format *fmt)
{
    call *c = call_new();
    c->identity = r->identity ? json_incref(r->identity) : NULL;
    c->admin = r->admin;
    c->worker = r->worker;
    *fmt = WIRE_ENCODED;
    char canonical[LIMIT_FUNCTION_PATH_BYTES_MAX], name[JR_NAME_BYTES_MAX];
    err_t e;
    err_init(&e);
    jr_item_name(name, "queries", index);
    if (jr_as_object(entry, name, &e) || read_format(entry, name, fmt, &e) ||
        read_path(entry, name, canonical, sizeof canonical, &e)) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
    } else if (!(c->fn = registry_find(r->srv->cfg.registry, canonical)) ||
               (c->fn->visibility == FN_SYSTEM && !r->admin && !r->worker)) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "Could not find public function for '%s'.",
                canonical);
    } else if (c->fn->kind != FN_QUERY) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL,
                "Trying to execute %s as Query, but it is defined as %s.", canonical,
                kind_title((int)c->fn->kind));
    } else if (!(c->args = wire_args(jr_field(entry, "args"), &e))) {
        err_app(&c->err, ERR_INVALID_ARGUMENT, NULL, "%s", e.msg);
    } else if (engine_check(r->srv->en, c) == 0) {
        c->record_reads = true; /* for the query cache */
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
            if (c->fn && cache_of(r)) subs_cache_store(cache_of(r), c);
        } else {
            log_error("request %s, query %d failed: %s", r->request_id, i, c->err.msg);
            json_array_append_new(results, json_pack("{s:s, s:s}", "status", "error",
                                                     "errorMessage", INTERNAL_ERROR_MESSAGE));
        }
    }
    call_free(b);
    respond_json(r, 200, json_pack("{s:o}", "results", results));
}

/* A batch whose every query the cache can answer: one consistent state
 * (each answer valid at the processed timestamp), sent as the cached texts
 * joined, without a reader thread. Any miss, or any refused entry, and the
 * batch runs as usual. */
static bool answer_batch_from_cache(api_req *r, call *b)
{
    subs *sm = cache_of(r);
    if (!sm || b->n_batch == 0) return false;
    rcbuf *bodies[LIMIT_QUERY_BATCH_MAX];
    int rcs[LIMIT_QUERY_BATCH_MAX], held = 0;
    uint64_t answered_ts = engine_answered_ts(r->srv->en);
    ASSERT(b->n_batch <= LIMIT_QUERY_BATCH_MAX);
    for (int i = 0; i < b->n_batch; i++, held++) {
        call *c = b->batch[i];
        sub_query *q = c->rc ? NULL
                             : subs_cache_lookup(sm, c->fn, c->args, c->identity, c->admin,
                                                 c->worker, answered_ts);
        bodies[i] = q ? cached_body(sm, q, r->batch_fmt[i]) : NULL;
        if (!bodies[i]) {
            while (held-- > 0)
                rcbuf_unref(bodies[held]);
            return false;
        }
        rcbuf_ref(bodies[i]); /* a later lookup may replace q's text */
        rcs[i] = q->rc;
    }
    sbuf text;
    sbuf_init(&text, 256);
    sbuf_puts(&text, "{\"results\":[");
    for (int i = 0; i < b->n_batch; i++) {
        if (i) sbuf_puts(&text, ",");
        sbuf_append(&text, bodies[i]->bytes, bodies[i]->len);
        metrics_record_call(&r->srv->metrics, b->batch[i]->fn->path, rcs[i]);
        rcbuf_unref(bodies[i]);
    }
    sbuf_puts(&text, "]}");
    log_info("query batch of %d by %s: from the cache [%s]", b->n_batch,
             server_identity_label(r->identity, r->admin), r->request_id);
    call_free(b);
    if (sbuf_failed(&text))
        respond_error(r, 500, "InternalServerError", "out of memory");
    else
        respond(r, 200, "application/json", text.data, text.len);
    sbuf_free(&text);
    return true;
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
        b->batch[b->n_batch++] = batch_entry(r, i, jr_item(r->batch, i), &r->batch_fmt[i]);
        any = any || b->batch[i]->rc == 0;
    }
    b->done = on_batch_done;
    b->data = r;
    b->submitted_us = clock_mono_us();
    if (answer_batch_from_cache(r, b)) return;
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

static void add_bounded(void *data, const char *name, size_t bytes, size_t bytes_max)
{
    metrics_bounded_add(data, name, bytes, bytes_max);
}

static void handle_metrics(api_req *r)
{
    server *s = r->srv;
    metrics_gauges g = {.open_connections = http_server_connections(s->http),
                        .ws_sessions = s->sync ? sync_session_count(s->sync) : 0,
                        .last_ts = engine_last_ts(s->en),
                        .rss_bytes = memory_rss_bytes(),
                        .heap_free_bytes = memory_heap_free_bytes()};
    metrics_bounded_add(&g, "http_request_bodies", http_body_bytes_held(),
                        LIMIT_HTTP_BODIES_TOTAL_BYTES_MAX);
    metrics_bounded_add(&g, "http_unread_responses", http_write_queue_bytes_held(),
                        LIMIT_HTTP_WRITE_QUEUE_TOTAL_BYTES_MAX);
    if (s->sync) sync_hub_gauges(s->sync, &g);
    engine_bounded(s->en, add_bounded, &g);
    char *text = metrics_render(&s->metrics, &g);
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
