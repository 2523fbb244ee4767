/*
 * dashboard.c — the /dashboard routes (see dashboard.h): the embedded static
 * files of web/dashboard/, the function list read from the registry, and the
 * recent log lines from the logger's ring. http_api.c's route() hands every
 * /dashboard path here; each answer is immediate (nothing here waits on the
 * engine), so the request never outlives this call.
 *
 * Every answer carries the same hardening headers: a Content-Security-Policy
 * that allows only this origin's own files (no inline script or style, no
 * framing), nosniff, X-Frame-Options DENY and no Referer. Data endpoints are
 * same-origin only (no CORS headers) and are never cached.
 *
 * Log lines leave with the admin key (when it is at least
 * DASHBOARD_REDACT_KEY_BYTES_MIN long) and anything shaped like a JWT replaced
 * by a marker: the server does not log either, and this keeps it so should a
 * future line slip.
 * Thread: the event-loop thread.
 */
#include "proto/dashboard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/ids.h"
#include "base/jread.h"
#include "base/limits.h"
#include "base/log.h"
#include "engine/registry.h"

#define DASHBOARD_PREFIX "/dashboard"
#define DASHBOARD_API_PREFIX "/dashboard/api/"
#define DASHBOARD_INDEX "index.html"
#define DASHBOARD_CSP                                                                              \
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; "             \
    "form-action 'self'"
#define DASHBOARD_VALIDATOR_DEPTH_MAX 16
#define DASHBOARD_REDACT_KEY_BYTES_MIN 8
#define DASHBOARD_JWT_SEGMENT_CHARS_MIN 8
/* A redacted line grows by at most the markers; this bounds the copy. */
#define DASHBOARD_REDACTED_LINE_BYTES_MAX (2 * LOG_RING_LINE_BYTES_MAX)
#define REDACTED_ADMIN_KEY "[admin key]"
#define REDACTED_TOKEN "[token]"

typedef struct dash_req {
    server *srv;
    http_request *http;
    const char *route; /* metrics label, static */
    char request_id[17];
} dash_req;

/* --- responses ------------------------------------------------------------------ */

static void dash_respond(dash_req *d, int status, const char *content_type,
                         const char *cache_control, const char *body, size_t len)
{
    http_header headers[] = {
        {"Content-Type", content_type},
        {"Cache-Control", cache_control},
        {"Content-Security-Policy", DASHBOARD_CSP},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Request-Id", d->request_id},
    };
    metrics_record_request(&d->srv->metrics, d->route, status, clock_mono_us() - d->http->start_us);
    http_respond(d->http, status, headers, (int)(sizeof headers / sizeof headers[0]), body, len);
}

static void dash_respond_json(dash_req *d, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"code\":\"InternalServerError\"}";
        dash_respond(d, 500, "application/json", "no-store", oom, sizeof oom - 1);
        return;
    }
    dash_respond(d, status, "application/json", "no-store", text, strlen(text));
    free(text);
}

static void dash_respond_error(dash_req *d, int status, const char *code, const char *message)
{
    dash_respond_json(d, status, json_pack("{s:s, s:s}", "code", code, "message", message));
}

/* --- static files ------------------------------------------------------------------ */

static const dashboard_asset *asset_find(const char *name)
{
    for (int i = 0; i < dashboard_assets_count; i++)
        if (strcmp(dashboard_assets[i].name, name) == 0) return &dashboard_assets[i];
    return NULL;
}

static const char *asset_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* rest: what follows "/dashboard" ("", "/", "/app.js"). */
static void handle_static(dash_req *d, const char *rest)
{
    const char *name = (*rest == '\0' || strcmp(rest, "/") == 0) ? DASHBOARD_INDEX : rest + 1;
    const dashboard_asset *a = strchr(name, '/') ? NULL : asset_find(name);
    if (!a) {
        char msg[200];
        snprintf(msg, sizeof msg, "No dashboard file %.100s", d->http->path);
        dash_respond_error(d, 404, "NotFound", msg);
        return;
    }
    dash_respond(d, 200, asset_content_type(a->name), "no-cache", (const char *)a->data, a->len);
}

/* --- admin key ------------------------------------------------------------------------ */

/* True when the request carries `Authorization: Convex <admin key>`;
 * otherwise answers 401 BadAdminKey (403 FORBIDDEN for the worker key) and
 * returns false. */
static bool dash_authorized(dash_req *d)
{
    const char *expected = d->srv->cfg.admin_key;
    const char *auth_header = http_request_header(d->http, "authorization");
    while (auth_header && *auth_header == ' ')
        auth_header++;
    if (auth_header && strncasecmp(auth_header, "convex ", 7) == 0 &&
        server_is_worker_key(d->srv, auth_header + 7)) {
        dash_respond_error(d, 403, "FORBIDDEN",
                           "The worker key cannot use the dashboard: it may only claim, "
                           "heartbeat, complete and fail runs and upload files");
        return false;
    }
    if (!expected || !*expected) {
        dash_respond_error(d, 401, "BadAdminKey",
                           "This deployment has no admin key: start dojo serve with "
                           "DOJO_ADMIN_KEY set (dojo dev prints its key)");
        return false;
    }
    const char *h = http_request_header(d->http, "authorization");
    while (h && *h == ' ')
        h++;
    if (!h || strncasecmp(h, "convex ", 7) != 0) {
        dash_respond_error(d, 401, "BadAdminKey",
                           "The dashboard's data needs the admin key: send "
                           "`Authorization: Convex <admin key>`");
        return false;
    }
    const char *given = h + 7;
    while (*given == ' ')
        given++;
    if (strlen(given) > LIMIT_ADMIN_KEY_BYTES_MAX || !admin_key_matches(given, expected)) {
        dash_respond_error(d, 401, "BadAdminKey",
                           "The admin key is not valid for this deployment: use the key printed "
                           "by `dojo dev` (./.dojo/admin_key) or the server's DOJO_ADMIN_KEY");
        return false;
    }
    return true;
}

/* --- functions ------------------------------------------------------------------------- */

static void set_bound(json_t *o, const char *name, double value)
{
    if (value == (double)(json_int_t)value)
        json_object_set_new(o, name, json_integer((json_int_t)value));
    else
        json_object_set_new(o, name, json_real(value));
}

static json_t *validator_json_at(const validator *v, int depth)
{
    static const char *const names[] = {
        [V_ANY] = "any",       [V_NULL] = "null",       [V_BOOLEAN] = "boolean",
        [V_NUMBER] = "number", [V_INTEGER] = "integer", [V_STRING] = "string",
        [V_ID] = "id",         [V_ARRAY] = "array",     [V_OBJECT] = "object",
        [V_RECORD] = "record", [V_ENUM] = "enum",       [V_UNION] = "union",
    };
    json_t *o = json_pack("{s:s}", "type", names[v->kind]);
    if (v->ts_type) json_object_set_new(o, "ts", json_string(v->ts_type));
    if (depth >= DASHBOARD_VALIDATOR_DEPTH_MAX) return o;
    bool sized = v->kind == V_STRING || v->kind == V_ARRAY;
    if (v->has_min)
        set_bound(o, sized ? (v->kind == V_STRING ? "minLength" : "minItems") : "min", v->min);
    if (v->has_max)
        set_bound(o, sized ? (v->kind == V_STRING ? "maxLength" : "maxItems") : "max", v->max);
    switch (v->kind) {
    case V_ID:
        json_object_set_new(o, "table", json_string(v->table));
        break;
    case V_ARRAY:
        json_object_set_new(o, "items", validator_json_at(v->item, depth + 1));
        break;
    case V_RECORD:
        json_object_set_new(o, "values", validator_json_at(v->item, depth + 1));
        break;
    case V_OBJECT: {
        json_t *fields = json_array();
        for (int i = 0; i < v->n_fields; i++)
            json_array_append_new(fields,
                                  json_pack("{s:s, s:b, s:o}", "name", v->fields[i].name,
                                            "optional", v->fields[i].optional, "type",
                                            validator_json_at(v->fields[i].type, depth + 1)));
        json_object_set_new(o, "fields", fields);
        break;
    }
    case V_ENUM: {
        json_t *values = json_array();
        for (int i = 0; i < v->n_literals; i++)
            json_array_append_new(values, json_string(v->literals[i]));
        json_object_set_new(o, "values", values);
        break;
    }
    case V_UNION: {
        json_t *options = json_array();
        for (int i = 0; i < v->n_options; i++)
            json_array_append_new(options, validator_json_at(v->options[i], depth + 1));
        json_object_set_new(o, "options", options);
        break;
    }
    default:
        break;
    }
    return o;
}

/* The JSON description of a validator: {"type": "string", "minLength": 1, …};
 * objects list their fields as [{name, optional, type}]. A new reference. */
static json_t *validator_json(const validator *v)
{
    return v ? validator_json_at(v, 0) : json_pack("{s:s}", "type", "any");
}

static void handle_functions(dash_req *d)
{
    const registry *reg = d->srv->cfg.registry;
    json_t *list = json_array();
    for (int i = 0; reg && i < reg->n_fns; i++) {
        const fn_def *fn = reg->fns[i];
        if (fn->visibility == FN_SYSTEM) continue;
        json_t *item =
            json_pack("{s:s, s:s, s:s, s:s, s:o}", "path", fn->path, "kind", fn_kind_name(fn->kind),
                      "visibility", fn->visibility == FN_PUBLIC ? "public" : "internal", "doc",
                      fn->doc ? fn->doc : "", "args", validator_json(fn->args));
        if (fn->returns && fn->returns->ts_type)
            json_object_set_new(item, "returns", json_string(fn->returns->ts_type));
        json_array_append_new(list, item);
    }
    dash_respond_json(d, 200, json_pack("{s:o}", "functions", list));
}

/* --- logs -------------------------------------------------------------------------------- */

static bool is_token_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '-' || ch == '_';
}

/* Length of a JWT-shaped run at s ("eyJ…" header, payload and signature
 * segments joined by dots), or 0. */
static size_t jwt_length_at(const char *s)
{
    if (strncmp(s, "eyJ", 3) != 0) return 0;
    size_t i = 0;
    for (int segment = 0; segment < 3; segment++) {
        size_t start = i;
        while (is_token_char(s[i]))
            i++;
        if (i - start < DASHBOARD_JWT_SEGMENT_CHARS_MIN && segment < 2) return 0;
        if (segment < 2) {
            if (s[i] != '.') return 0;
            i++;
        }
    }
    return i;
}

typedef struct log_collect {
    json_t *lines;
    const char *admin_key; /* NULL: nothing to redact */
    size_t admin_key_len;
} log_collect;

/* Copies text into out (out_bytes, NUL included) with secrets replaced. */
static void redact(const log_collect *lc, const char *text, char *out, size_t out_bytes)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < out_bytes;) {
        const char *marker = NULL;
        size_t skip = 0;
        if (lc->admin_key && strncmp(p, lc->admin_key, lc->admin_key_len) == 0) {
            marker = REDACTED_ADMIN_KEY;
            skip = lc->admin_key_len;
        } else if ((p == text || !is_token_char(p[-1])) && (skip = jwt_length_at(p)) > 0) {
            marker = REDACTED_TOKEN;
        }
        if (!marker) {
            out[o++] = *p++;
            continue;
        }
        size_t n = strlen(marker);
        if (o + n + 1 > out_bytes) break;
        memcpy(out + o, marker, n);
        o += n;
        p += skip;
    }
    out[o] = '\0';
}

/* A JSON string of text; bytes that are not valid UTF-8 become '?'. */
static json_t *json_text(char *text)
{
    json_t *s = json_string(text);
    if (s) return s;
    for (char *p = text; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    return json_string(text);
}

/* log_ring_visit_fn: runs under the ring's lock, so it must not log. */
static void collect_line(uint64_t seq, const char *text, void *data)
{
    log_collect *lc = data;
    char clean[DASHBOARD_REDACTED_LINE_BYTES_MAX];
    redact(lc, text, clean, sizeof clean);
    json_array_append_new(
        lc->lines, json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "text", json_text(clean)));
}

static void handle_logs(dash_req *d)
{
    int64_t after = 0;
    err_t e;
    err_init(&e);
    if (jr_query_int(d->http->query, "after", JR_OPTIONAL, 0, INT64_MAX, &after, &e) != 0) {
        dash_respond_error(d, 400, "BadRequest", e.msg);
        return;
    }
    const char *key = d->srv->cfg.admin_key;
    size_t key_len = key ? strlen(key) : 0;
    log_collect lc = {.lines = json_array(),
                      .admin_key = key_len >= DASHBOARD_REDACT_KEY_BYTES_MIN ? key : NULL,
                      .admin_key_len = key_len};
    uint64_t next = log_ring_read((uint64_t)after, LOG_RING_LINES_MAX, collect_line, &lc);
    dash_respond_json(d, 200, json_pack("{s:o, s:I}", "lines", lc.lines, "next", (json_int_t)next));
}

/* --- routing ---------------------------------------------------------------------------- */

bool dashboard_owns_path(const char *path)
{
    size_t n = sizeof DASHBOARD_PREFIX - 1;
    return strncmp(path, DASHBOARD_PREFIX, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void route_api(dash_req *d, const char *name)
{
    static const struct {
        const char *name;
        const char *route;
        void (*handle)(dash_req *d);
    } endpoints[] = {
        {"functions", "/dashboard/api/functions", handle_functions},
        {"logs", "/dashboard/api/logs", handle_logs},
    };
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        if (strcmp(name, endpoints[i].name) != 0) continue;
        d->route = endpoints[i].route;
        if (dash_authorized(d)) endpoints[i].handle(d);
        return;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "No dashboard endpoint %.100s", d->http->path);
    dash_respond_error(d, 404, "NotFound", msg);
}

void dashboard_handle(server *s, http_request *req)
{
    dash_req d = {.srv = s, .http = req, .route = "/dashboard"};
    if (id_random_hex(d.request_id, 8) != 0) snprintf(d.request_id, sizeof d.request_id, "0");
    const char *path = req->path;
    bool api = strncmp(path, DASHBOARD_API_PREFIX, sizeof DASHBOARD_API_PREFIX - 1) == 0;
    if (api) d.route = "/dashboard/api";
    if (strcmp(req->method, "GET") != 0) {
        dash_respond_error(&d, 405, "MethodNotAllowed", "Use GET for the dashboard");
        return;
    }
    if (api)
        route_api(&d, path + sizeof DASHBOARD_API_PREFIX - 1);
    else
        handle_static(&d, path + sizeof DASHBOARD_PREFIX - 1);
}
