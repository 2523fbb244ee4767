/*
 * storage_http.c — uploads and downloads of stored files (see
 * storage_http.h), and the server's file store.
 *
 * An upload's life (struct upload), every step on the loop but the file
 * store's work, which runs on the thread pool one job at a time:
 *   headers in → authorize (key, or the token through _system:uploadTokenCheck)
 *   → begin the file (job) → resume the body → pieces fill the buffer; a full
 *   buffer is written (job) with the body paused → the body ends → the rest
 *   written and the file sealed, durable (job) → _system:storageStore records
 *   its document (and uses the token up) → the file's writer ends (job; it
 *   removes the bytes when no document was recorded) → 200 {storageId}.
 * A body that never completes (the client left, stalled or sent too much)
 * ends the writer without keeping anything: no document, no bytes.
 *
 * Thread: the event-loop thread; *_work functions on the thread pool.
 */
#include "base/jread.h"
#include "base/invariant.h"
#include "proto/storage_http.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/ids.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/sha256.h"
#include "engine/system_tables.h"
#include "proto/server.h"
#include "store/files.h"

#define STORAGE_PREFIX "/api/storage/"
#define STORAGE_UPLOAD_PATH "/api/storage/upload"
#define STORAGE_ROUTE_UPLOAD "/api/storage/upload"
#define STORAGE_ROUTE_DOWNLOAD "/api/storage"
#define STORAGE_CACHE_CONTROL "private, max-age=31536000, immutable"
#define STORAGE_DEFAULT_TYPE "application/octet-stream"
#define STORAGE_TOKEN_CHARS_MAX 128
#define STORAGE_HEADERS_MAX 16

struct storage_http {
    server *srv;
    files *fs;
    int jobs; /* file store jobs in flight on the thread pool */
    int uploads, downloads;
};

/* --- shared ------------------------------------------------------------------------ */

typedef struct headers {
    http_header h[STORAGE_HEADERS_MAX];
    int n;
} headers;

static void headers_add(headers *hs, const char *name, const char *value)
{
    ASSERT(hs->n < STORAGE_HEADERS_MAX);
    hs->h[hs->n++] = (http_header){name, value};
}

/* CORS as every other route: the request's Origin mirrored. */
static void headers_cors(headers *hs, const http_request *req, const char *expose)
{
    const char *origin = http_request_header(req, "origin");
    if (!origin) return;
    headers_add(hs, "Access-Control-Allow-Origin", origin);
    headers_add(hs, "Access-Control-Allow-Credentials", "true");
    headers_add(hs, "Access-Control-Expose-Headers", expose);
    headers_add(hs, "Vary", "Origin");
}

static void respond_json(server *s, http_request *req, const char *route, const char *request_id,
                         int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    headers hs = {.n = 0};
    headers_add(&hs, "Content-Type", "application/json");
    headers_add(&hs, "X-Request-Id", request_id);
    headers_cors(&hs, req, "X-Request-Id");
    metrics_record_request(&s->metrics, route, status, clock_mono_us() - req->start_us);
    if (text)
        http_respond(req, status, hs.h, hs.n, text, strlen(text));
    else
        http_respond(req, 500, hs.h, hs.n, "{}", 2);
    free(text);
}

static void respond_error(server *s, http_request *req, const char *route, const char *request_id,
                          int status, const char *code, const char *message)
{
    respond_json(s, req, route, request_id, status,
                 json_pack("{s:s, s:s}", "code", code, "message", message));
}

/* A job on the thread pool: work runs there, done back on the loop. */
typedef struct job {
    uv_work_t work;
    storage_http *sh;
    void (*run)(void *data);
    void (*done)(void *data);
    void *data;
} job;

static void job_work(uv_work_t *w)
{
    job *j = w->data;
    j->run(j->data);
}

static void job_after(uv_work_t *w, int status)
{
    (void)status;
    job *j = w->data;
    j->sh->jobs--;
    j->done(j->data);
    free(j);
}

static int job_start(storage_http *sh, void (*run)(void *), void (*done)(void *), void *data)
{
    job *j = calloc(1, sizeof *j);
    if (!j) return ERR_NOMEM;
    j->sh = sh;
    j->run = run;
    j->done = done;
    j->data = data;
    j->work.data = j;
    if (uv_queue_work(sh->srv->loop, &j->work, job_work, job_after) != 0) {
        free(j);
        return ERR_INTERNAL;
    }
    sh->jobs++;
    return 0;
}

/* Submits an admin call of a system function; done gets the call. */
static int system_call(server *s, const char *path, json_t *args, call_done_cb done, void *data)
{
    call *c = call_new();
    if (!c) {
        json_decref(args);
        return ERR_NOMEM;
    }
    c->fn = registry_find(s->cfg.registry, path);
    ASSERT(c->fn && "system function registered");
    c->args = args;
    c->admin = true;
    c->done = done;
    c->data = data;
    int rc = engine_submit(s->en, c);
    if (rc) call_free(c);
    return rc;
}

/* --- uploads ---------------------------------------------------------------------------- */

typedef enum {
    UP_AUTHORIZING, /* the token is being checked */
    UP_BEGINNING,   /* the file store opens the file */
    UP_RECEIVING,   /* body pieces arrive */
    UP_WRITING,     /* a full buffer is written; the body is paused */
    UP_SEALING,     /* the rest is written and the file made durable */
    UP_RECORDING,   /* _system:storageStore runs */
    UP_ENDING,      /* the writer ends (keeps or removes the bytes) */
} upload_state;

typedef struct upload {
    storage_http *sh;
    http_request *req;
    upload_state state;
    char request_id[17];
    char storage_id[ID_BYTES_MAX];
    char token_hash[SHA256_HEX_BYTES]; /* "" for a key's upload */
    char who[LIMIT_JWT_BYTES_MAX];     /* for the log: the token's owner, "worker" or "admin" */
    char content_type[STORAGE_CONTENT_TYPE_CHARS_MAX + 1];
    uint64_t max_bytes, received;
    file_writer *writer;
    char *buf; /* LIMIT_FILE_UPLOAD_BUFFER_BYTES + one read */
    size_t buf_len, buf_cap;
    bool ended;        /* every body byte has arrived */
    bool aborted;      /* stopped: answer with status/code/message */
    bool job_pending;  /* a file store job runs */
    bool call_pending; /* a system call runs (the token check, the record) */
    bool keep;         /* the document was recorded */
    int rc;            /* of the last job */
    err_t err;
    uint8_t digest[SHA256_BYTES];
    uint64_t size;
    /* The answer once the writer has ended. */
    int status;
    char code[48];
    char message[ERR_MSG_BYTES_MAX];
} upload;

static void upload_free(upload *u)
{
    ASSERT(!u->writer && !u->job_pending && !u->call_pending);
    u->sh->uploads--;
    err_clear(&u->err);
    free(u->buf);
    free(u);
}

/* The upload's answer, once its writer has ended (or never began). */
static void upload_answer(upload *u)
{
    server *s = u->sh->srv;
    if (u->status == 200) {
        log_info("upload %s: %" PRIu64 " bytes%s%s by %s in %.1f ms [%s]", u->storage_id, u->size,
                 u->content_type[0] ? ", " : "", u->content_type, u->who,
                 (double)(clock_mono_us() - u->req->start_us) / 1000.0, u->request_id);
        respond_json(s, u->req, STORAGE_ROUTE_UPLOAD, u->request_id, 200,
                     json_pack("{s:s}", "storageId", u->storage_id));
    } else {
        if (u->status >= 500)
            log_error("upload [%s] failed: %s", u->request_id, u->message);
        else
            log_info("upload refused [%s]: %d %s", u->request_id, u->status, u->message);
        respond_error(s, u->req, STORAGE_ROUTE_UPLOAD, u->request_id, u->status, u->code,
                      u->message);
    }
    upload_free(u);
}

static void start_job(upload *u, upload_state state, void (*run)(void *));

static void end_work(void *data)
{
    upload *u = data;
    file_writer_end(u->writer, u->keep);
}

/* Nothing more will be written: the writer ends (keeping the bytes only
 * when their document was recorded), then the answer goes. */
static void upload_wrap_up(upload *u)
{
    ASSERT(!u->job_pending && !u->call_pending);
    if (u->writer)
        start_job(u, UP_ENDING, end_work);
    else
        upload_answer(u);
}

static void upload_fail(upload *u, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the error to answer with (the first one wins) and stops the
 * upload; a job or a call in flight finishes first. */
static void upload_fail(upload *u, int status, const char *code, const char *fmt, ...)
{
    bool first = !u->aborted;
    u->aborted = true;
    if (first) {
        u->status = status;
        snprintf(u->code, sizeof u->code, "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(u->message, sizeof u->message, fmt, ap);
        va_end(ap);
    }
    if (first && !u->job_pending && !u->call_pending) upload_wrap_up(u);
}

static void internal_failure(upload *u, const char *what)
{
    log_error("upload [%s]: %s: %s", u->request_id, what, u->err.msg);
    upload_fail(u, u->rc == ERR_BUSY ? 503 : 500, "InternalServerError",
                "The file could not be stored. Try again later.");
}

/* jobs: one at a time, on the thread pool */

static void begin_work(void *data)
{
    upload *u = data;
    u->rc = files_write_begin(u->sh->fs, u->storage_id, &u->writer, &u->err);
}

static void write_work(void *data)
{
    upload *u = data;
    u->rc = file_writer_write(u->writer, u->buf, u->buf_len, &u->err);
}

static void seal_work(void *data)
{
    upload *u = data;
    u->rc = u->buf_len ? file_writer_write(u->writer, u->buf, u->buf_len, &u->err) : 0;
    if (u->rc == 0) u->rc = file_writer_seal(u->writer, u->digest, &u->size, &u->err);
}

static void record(upload *u);

static void job_done(void *data)
{
    upload *u = data;
    u->job_pending = false;
    switch (u->state) {
    case UP_ENDING:
        u->writer = NULL;
        upload_answer(u);
        return;
    case UP_BEGINNING:
    case UP_WRITING:
    case UP_SEALING:
        if (u->rc && !u->aborted) internal_failure(u, "store the file");
        if (u->aborted) {
            upload_wrap_up(u);
            return;
        }
        break;
    default:
        ASSERT(!"a job in this state");
    }
    if (u->state == UP_SEALING) {
        record(u);
        return;
    }
    u->buf_len = 0;
    u->state = UP_RECEIVING;
    http_stream_resume(u->req); /* may deliver pieces, or the end, at once */
}

static void start_job(upload *u, upload_state state, void (*run)(void *))
{
    ASSERT(!u->job_pending && !u->call_pending);
    u->state = state;
    u->job_pending = true;
    if (job_start(u->sh, run, job_done, u) == 0) return;
    u->job_pending = false;
    if (state == UP_ENDING) { /* never leak a writer: end it here */
        end_work(u);
        u->writer = NULL;
        upload_answer(u);
        return;
    }
    u->rc = ERR_INTERNAL;
    err_set(&u->err, ERR_INTERNAL, "the thread pool refused a job");
    internal_failure(u, "queue a file job");
}

/* {ok: true, …} from _system:uploadTokenCheck / storageStore. */
static bool verdict_ok(const json_t *verdict)
{
    bool ok = false;
    err_t why;
    err_init(&why);
    jr_bool(verdict, "verdict", "ok", 0, &ok, &why);
    err_clear(&why);
    return ok;
}

static void upload_url_refused(upload *u, const json_t *verdict)
{
    bool expired = jr_string_is(verdict, "reason", "expired");
    if (expired)
        upload_fail(u, 403, "UploadUrlExpired",
                    "This upload URL has expired: get a new one with files:generateUploadUrl");
    else
        upload_fail(u, 403, "UploadUrlUsed",
                    "This upload URL was used already or is not valid: get a new one with "
                    "files:generateUploadUrl");
}

static void on_recorded(call *c)
{
    upload *u = c->data;
    u->call_pending = false;
    if (c->rc) {
        u->rc = c->rc;
        err_move(&u->err, &c->err);
        internal_failure(u, "record the file");
    } else if (!verdict_ok(c->result)) {
        upload_url_refused(u, c->result); /* used by another upload meanwhile, or expired */
    } else {
        u->keep = true;
        u->status = 200;
        upload_wrap_up(u);
    }
    call_free(c);
}

static void record(upload *u)
{
    u->state = UP_RECORDING;
    char hex[SHA256_HEX_BYTES];
    sha256_to_hex(u->digest, hex);
    json_t *args = json_pack("{s:s, s:s, s:I}", "id", u->storage_id, "sha256", hex, "size",
                             (json_int_t)u->size);
    if (u->content_type[0]) json_object_set_new(args, "contentType", json_string(u->content_type));
    if (u->token_hash[0]) json_object_set_new(args, "tokenHash", json_string(u->token_hash));
    u->call_pending = true;
    int rc = system_call(u->sh->srv, "_system:storageStore", args, on_recorded, u);
    if (rc) {
        u->call_pending = false;
        u->rc = rc;
        err_set(&u->err, rc, "the engine refused the call");
        internal_failure(u, "record the file");
    }
}

/* http stream callbacks */

static int on_upload_data(void *data, const char *bytes, size_t len)
{
    upload *u = data;
    if (u->aborted) return HTTP_STREAM_STOP;
    ASSERT(u->state == UP_RECEIVING && !u->job_pending);
    u->received += len;
    if (u->received > u->max_bytes) {
        upload_fail(u, 413, "PayloadTooLarge",
                    "The file is larger than FILE_MAX_BYTES (%" PRIu64 " bytes)", u->max_bytes);
        return HTTP_STREAM_STOP;
    }
    ASSERT(u->buf_len + len <= u->buf_cap);
    memcpy(u->buf + u->buf_len, bytes, len);
    u->buf_len += len;
    if (u->buf_len < LIMIT_FILE_UPLOAD_BUFFER_BYTES) return HTTP_STREAM_GO_ON;
    start_job(u, UP_WRITING, write_work);
    return HTTP_STREAM_PAUSE;
}

static void on_upload_end(void *data)
{
    upload *u = data;
    u->ended = true;
    if (u->state == UP_RECEIVING && !u->aborted && !u->job_pending)
        start_job(u, UP_SEALING, seal_work);
}

static void on_upload_abort(void *data, int status, const char *code, const char *message)
{
    upload *u = data;
    if (status == 0)
        upload_fail(u, 400, "ClientGone", "%s", message); /* answer dropped: the client is gone */
    else
        upload_fail(u, status, code, "%s", message);
}

static const http_stream_cbs upload_cbs = {
    .on_data = on_upload_data,
    .on_end = on_upload_end,
    .on_abort = on_upload_abort,
};

/* The value of a query parameter (not decoded: tokens are hex); NULL. */
static const char *query_value(const char *query, const char *name, size_t *len_out)
{
    size_t name_len = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            *len_out = len - name_len - 1;
            return p + name_len + 1;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static uint64_t file_max_bytes(server *s)
{
    const char *v = engine_env(s->en, "FILE_MAX_BYTES");
    char *end = NULL;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *end || n > LIMIT_FILE_BYTES_MAX) return LIMIT_FILE_BYTES_DEFAULT;
    return n;
}

/* The Content-Type to keep: printable ASCII without ';' parameters dropped
 * — kept as sent, cut to STORAGE_CONTENT_TYPE_CHARS_MAX. */
static void take_content_type(upload *u)
{
    const char *ct = http_request_header(u->req, "content-type");
    size_t n = 0;
    while (ct && *ct == ' ')
        ct++;
    for (; ct && ct[n] && n < STORAGE_CONTENT_TYPE_CHARS_MAX; n++) {
        unsigned char ch = (unsigned char)ct[n];
        if (ch < 0x20 || ch > 0x7e) break;
        u->content_type[n] = (char)ch;
    }
    while (n > 0 && u->content_type[n - 1] == ' ')
        n--;
    u->content_type[n] = '\0';
}

static void on_token_checked(call *c)
{
    upload *u = c->data;
    u->call_pending = false;
    if (u->aborted) {
        upload_wrap_up(u); /* the client left meanwhile */
    } else if (c->rc) {
        u->rc = c->rc;
        err_move(&u->err, &c->err);
        internal_failure(u, "check the upload URL");
    } else if (!verdict_ok(c->result)) {
        upload_url_refused(u, c->result);
    } else {
        snprintf(u->who, sizeof u->who, "%s", jr_string_or(c->result, "owner", "?"));
        start_job(u, UP_BEGINNING, begin_work);
    }
    call_free(c);
}

/* Who may upload: a key (admin or worker) in Authorization, or a token in
 * the URL. Returns 0 when the upload may go on (authorized now, or once the
 * token check answers); otherwise it was refused. */
static int upload_authorize(upload *u)
{
    server *s = u->sh->srv;
    const char *authorization = http_request_header(u->req, "authorization");
    while (authorization && *authorization == ' ')
        authorization++;
    if (authorization && *authorization) {
        const char *key = strncasecmp(authorization, "convex ", 7) == 0 ? authorization + 7 : NULL;
        while (key && *key == ' ')
            key++;
        if (key && server_is_worker_key(s, key)) {
            snprintf(u->who, sizeof u->who, "worker");
        } else if (key && s->cfg.admin_key && admin_key_matches(key, s->cfg.admin_key)) {
            snprintf(u->who, sizeof u->who, "admin");
        } else {
            upload_fail(u, 401, "BadAdminKey",
                        "Uploading with Authorization needs `Convex <worker key or admin key>`; "
                        "users upload to the URL of files:generateUploadUrl instead");
            return -1;
        }
        return 0;
    }
    size_t len = 0;
    const char *token = query_value(u->req->query, "token", &len);
    if (!token || len == 0 || len > STORAGE_TOKEN_CHARS_MAX) {
        upload_fail(u, 401, "Unauthenticated",
                    "An upload needs the URL of files:generateUploadUrl (with its token), or "
                    "`Authorization: Convex <worker key>`");
        return -1;
    }
    uint8_t digest[SHA256_BYTES];
    sha256_bytes(token, len, digest);
    sha256_to_hex(digest, u->token_hash);
    u->call_pending = true;
    int rc = system_call(s, "_system:uploadTokenCheck",
                         json_pack("{s:s}", "tokenHash", u->token_hash), on_token_checked, u);
    if (rc) {
        u->call_pending = false;
        upload_fail(u, 503, "Overloaded", "The server is busy: try again");
        return -1;
    }
    return 1; /* goes on when the check answers */
}

static void handle_upload(storage_http *sh, http_request *req, const char *request_id)
{
    server *s = sh->srv;
    if (!req->streamed) { /* not a POST: the stream route only takes POSTs */
        respond_error(s, req, STORAGE_ROUTE_UPLOAD, request_id, 405, "MethodNotAllowed",
                      "POST the file's bytes to this URL");
        return;
    }
    if (sh->uploads >= LIMIT_FILE_UPLOADS_MAX) {
        respond_error(s, req, STORAGE_ROUTE_UPLOAD, request_id, 503, "Overloaded",
                      "Too many uploads in progress (LIMIT_FILE_UPLOADS_MAX): try again");
        return;
    }
    uint64_t max = file_max_bytes(s);
    if (req->has_length && req->content_length > max) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "The file (%" PRIu64 " bytes) is larger than FILE_MAX_BYTES (%" PRIu64 " bytes)",
                 req->content_length, max);
        respond_error(s, req, STORAGE_ROUTE_UPLOAD, request_id, 413, "PayloadTooLarge", msg);
        return;
    }
    upload *u = calloc(1, sizeof *u);
    char *buf = malloc(LIMIT_FILE_UPLOAD_BUFFER_BYTES + 64 * 1024);
    if (!u || !buf || id_new_random(SYSTEM_TABLE_NUMBER_STORAGE, u->storage_id) != 0) {
        free(u);
        free(buf);
        respond_error(s, req, STORAGE_ROUTE_UPLOAD, request_id, 500, "InternalServerError",
                      "out of memory");
        return;
    }
    sh->uploads++;
    u->sh = sh;
    u->req = req;
    u->buf = buf;
    u->buf_cap = LIMIT_FILE_UPLOAD_BUFFER_BYTES + 64 * 1024;
    u->max_bytes = max;
    u->state = UP_AUTHORIZING;
    err_init(&u->err);
    snprintf(u->request_id, sizeof u->request_id, "%s", request_id);
    take_content_type(u);
    http_stream_start(req, &upload_cbs, u, true, LIMIT_FILE_UPLOAD_IDLE_TIMEOUT_MS);
    if (upload_authorize(u) == 0) start_job(u, UP_BEGINNING, begin_work); /* a key: go on now */
}

/* --- downloads -------------------------------------------------------------------------- */

typedef struct download {
    storage_http *sh;
    http_request *req;
    char request_id[17];
    char id[ID_BYTES_MAX];
    char sha[SHA256_HEX_BYTES];
    char content_type[STORAGE_CONTENT_TYPE_CHARS_MAX + 1];
    uint64_t size, start, length;
    int status; /* 200 or 206 */
    int fd;
    int rc;
    err_t err;
    /* PostgreSQL store: the piece being read. */
    http_body *body;
    char *piece;
    size_t piece_len, piece_max;
    uint64_t at;
    bool released;
} download;

static void download_free(download *d)
{
    d->sh->downloads--;
    err_clear(&d->err);
    free(d->piece);
    free(d);
}

/* Single byte range of "bytes=a-b" / "bytes=a-" / "bytes=-n": 1 and the
 * range, 0 when absent or not a single range (the whole file is sent), -1
 * when unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *length)
{
    if (!h) return 0;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "bytes=", 6) != 0) return 0;
    h += 6;
    if (strchr(h, ',')) return 0; /* several ranges: answered with the whole file */
    char *end;
    if (*h == '-') {
        if (!isdigit((unsigned char)h[1])) return 0;
        unsigned long long n = strtoull(h + 1, &end, 10);
        if (*end && *end != ' ') return 0;
        if (n == 0 || size == 0) return -1;
        if (n > size) n = size;
        *start = size - n;
        *length = n;
        return 1;
    }
    if (!isdigit((unsigned char)*h)) return 0;
    unsigned long long a = strtoull(h, &end, 10);
    if (*end != '-') return 0;
    const char *b_text = end + 1;
    unsigned long long b = size ? size - 1 : 0;
    if (isdigit((unsigned char)*b_text)) {
        b = strtoull(b_text, &end, 10);
        if (*end && *end != ' ') return 0;
        if (b < a) return 0;
    } else if (*b_text && *b_text != ' ') {
        return 0;
    }
    if (a >= size) return -1;
    if (b >= size) b = size - 1;
    *start = a;
    *length = b - a + 1;
    return 1;
}

static void download_headers(download *d, headers *hs, char etag[80], char digest[64],
                             char range[96])
{
    uint8_t raw[SHA256_BYTES];
    char b64[SHA256_B64_BYTES];
    sha256_from_hex(d->sha, raw);
    sha256_to_b64(raw, b64);
    snprintf(etag, 80, "\"%s\"", d->sha);
    snprintf(digest, 64, "sha-256=%s", b64);
    headers_add(hs, "Content-Type", d->content_type[0] ? d->content_type : STORAGE_DEFAULT_TYPE);
    headers_add(hs, "ETag", etag);
    headers_add(hs, "Digest", digest);
    headers_add(hs, "Cache-Control", STORAGE_CACHE_CONTROL);
    headers_add(hs, "Accept-Ranges", "bytes");
    /* The bytes are whatever was uploaded: never sniffed, never run as a page
     * of this origin (where the dashboard keeps its key). */
    headers_add(hs, "X-Content-Type-Options", "nosniff");
    headers_add(hs, "Content-Security-Policy", "sandbox");
    headers_add(hs, "X-Request-Id", d->request_id);
    if (d->status == 206) {
        snprintf(range, 96, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, d->start,
                 d->start + d->length - 1, d->size);
        headers_add(hs, "Content-Range", range);
    }
    headers_cors(hs, d->req, "Content-Range, Content-Length, ETag, Digest, X-Request-Id");
}

static void download_not_found(download *d)
{
    respond_error(d->sh->srv, d->req, STORAGE_ROUTE_DOWNLOAD, d->request_id, 404, "NOT_FOUND",
                  "File not found");
}

static void download_internal(download *d, const char *what)
{
    log_error("download %s [%s]: %s: %s", d->id, d->request_id, what, d->err.msg);
    respond_error(d->sh->srv, d->req, STORAGE_ROUTE_DOWNLOAD, d->request_id, 500,
                  "InternalServerError", "The file could not be read. Try again later.");
}

static void release_download(void *data)
{
    download *d = data;
    download_free(d);
}

/* PostgreSQL store: pieces read on the pool. */
static void read_work(void *data)
{
    download *d = data;
    d->rc =
        files_read(d->sh->fs, d->id, d->sha, d->at, d->piece, d->piece_max, &d->piece_len, &d->err);
}

static void read_done(void *data)
{
    download *d = data;
    if (d->rc) log_error("download %s: read failed: %s", d->id, d->err.msg);
    size_t n = d->rc ? 0 : d->piece_len;
    d->at += n;
    http_body_piece(d->body, d->piece, n); /* 0: the connection is closed */
}

static void pull_piece(void *data, http_body *b, size_t max_bytes)
{
    download *d = data;
    d->body = b;
    d->piece_max = max_bytes;
    if (job_start(d->sh, read_work, read_done, d) != 0) http_body_piece(b, NULL, 0);
}

static void send_download(download *d)
{
    server *s = d->sh->srv;
    headers hs = {.n = 0};
    char etag[80], digest[64], range[96];
    download_headers(d, &hs, etag, digest, range);
    metrics_record_request(&s->metrics, STORAGE_ROUTE_DOWNLOAD, d->status,
                           clock_mono_us() - d->req->start_us);
    http_body_source src = {.fd = -1, .release = release_download, .data = d};
    if (d->fd >= 0) {
        src.fd = d->fd;
        src.offset = d->start;
        d->fd = -1;
    } else {
        d->piece = malloc(LIMIT_FILE_SEND_BYTES);
        if (!d->piece) {
            err_set(&d->err, ERR_NOMEM, "out of memory");
            download_internal(d, "allocate");
            download_free(d);
            return;
        }
        src.pull = pull_piece;
        d->at = d->start;
    }
    http_respond_body(d->req, d->status, hs.h, hs.n, d->length, &src);
}

static void open_work(void *data)
{
    download *d = data;
    uint64_t size = 0;
    d->rc = files_open_fd(d->sh->fs, d->sha, &d->fd, &size, &d->err);
    if (d->rc == 0 && size != d->size) {
        close(d->fd);
        d->fd = -1;
        d->rc = err_set(&d->err, ERR_INTERNAL, "the file %s has %" PRIu64 " bytes, not %" PRIu64,
                        d->sha, size, d->size);
    }
}

static void open_done(void *data)
{
    download *d = data;
    if (d->rc) {
        download_internal(d, "open the file");
        download_free(d);
        return;
    }
    send_download(d);
}

static void on_metadata(call *c)
{
    download *d = c->data;
    json_t *doc = c->result;
    if (c->rc) {
        err_move(&d->err, &c->err);
        call_free(c);
        download_internal(d, "read the file's metadata");
        download_free(d);
        return;
    }
    if (!json_is_object(doc)) {
        call_free(c);
        download_not_found(d);
        download_free(d);
        return;
    }
    snprintf(d->sha, sizeof d->sha, "%s", jr_string_or(doc, "sha256", ""));
    snprintf(d->content_type, sizeof d->content_type, "%s", jr_string_or(doc, "contentType", ""));
    int64_t size = 0;
    err_t why;
    err_init(&why);
    jr_int(doc, "_storage", "size", 0, 0, INT64_MAX, &size, &why);
    err_clear(&why);
    d->size = (uint64_t)size;
    call_free(c);
    server *s = d->sh->srv;
    /* An unchanged copy (the ETag is the content's hash). */
    const char *inm = http_request_header(d->req, "if-none-match");
    if (inm && strstr(inm, d->sha)) {
        headers hs = {.n = 0};
        char etag[80];
        snprintf(etag, sizeof etag, "\"%s\"", d->sha);
        headers_add(&hs, "ETag", etag);
        headers_add(&hs, "Cache-Control", STORAGE_CACHE_CONTROL);
        headers_add(&hs, "X-Request-Id", d->request_id);
        headers_cors(&hs, d->req, "ETag, X-Request-Id");
        metrics_record_request(&s->metrics, STORAGE_ROUTE_DOWNLOAD, 304,
                               clock_mono_us() - d->req->start_us);
        http_respond(d->req, 304, hs.h, hs.n, NULL, 0);
        download_free(d);
        return;
    }
    d->status = 200;
    d->start = 0;
    d->length = d->size;
    int r = parse_range(http_request_header(d->req, "range"), d->size, &d->start, &d->length);
    if (r < 0) {
        char range[64];
        snprintf(range, sizeof range, "bytes */%" PRIu64, d->size);
        headers hs = {.n = 0};
        headers_add(&hs, "Content-Type", "application/json");
        headers_add(&hs, "Content-Range", range);
        headers_add(&hs, "X-Request-Id", d->request_id);
        headers_cors(&hs, d->req, "Content-Range, X-Request-Id");
        static const char body[] =
            "{\"code\":\"RangeNotSatisfiable\",\"message\":\"The range is outside the file\"}";
        metrics_record_request(&s->metrics, STORAGE_ROUTE_DOWNLOAD, 416,
                               clock_mono_us() - d->req->start_us);
        http_respond(d->req, 416, hs.h, hs.n, body, sizeof body - 1);
        download_free(d);
        return;
    }
    if (r > 0) d->status = 206;
    if (files_has_fds(d->sh->fs)) {
        if (job_start(d->sh, open_work, open_done, d) != 0) {
            err_set(&d->err, ERR_INTERNAL, "the thread pool refused a job");
            download_internal(d, "open the file");
            download_free(d);
        }
        return;
    }
    send_download(d);
}

static void handle_download(storage_http *sh, http_request *req, const char *id,
                            const char *request_id)
{
    server *s = sh->srv;
    bool get = strcmp(req->method, "GET") == 0, head = strcmp(req->method, "HEAD") == 0;
    if (!get && !head) {
        respond_error(s, req, STORAGE_ROUTE_DOWNLOAD, request_id, 405, "MethodNotAllowed",
                      "Use GET or HEAD to read a file");
        return;
    }
    if (id_table_number(id) != SYSTEM_TABLE_NUMBER_STORAGE) {
        respond_error(s, req, STORAGE_ROUTE_DOWNLOAD, request_id, 404, "NOT_FOUND",
                      "File not found");
        return;
    }
    if (sh->downloads >= LIMIT_FILE_DOWNLOADS_MAX) {
        respond_error(s, req, STORAGE_ROUTE_DOWNLOAD, request_id, 503, "Overloaded",
                      "Too many downloads in progress: try again");
        return;
    }
    download *d = calloc(1, sizeof *d);
    if (!d) {
        respond_error(s, req, STORAGE_ROUTE_DOWNLOAD, request_id, 500, "InternalServerError",
                      "out of memory");
        return;
    }
    sh->downloads++;
    d->sh = sh;
    d->req = req;
    d->fd = -1;
    err_init(&d->err);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->request_id, sizeof d->request_id, "%s", request_id);
    if (system_call(s, "_system:storageGet", json_pack("{s:s}", "id", id), on_metadata, d) != 0) {
        respond_error(s, req, STORAGE_ROUTE_DOWNLOAD, request_id, 503, "Overloaded",
                      "The server is busy: try again");
        download_free(d);
    }
}

/* --- routing ------------------------------------------------------------------------------ */

bool storage_http_streams(void *server_ptr, const http_request *req)
{
    (void)server_ptr;
    return strcmp(req->method, "POST") == 0 && strcmp(req->path, STORAGE_UPLOAD_PATH) == 0;
}

bool storage_http_handle(server *s, http_request *req)
{
    if (strncmp(req->path, STORAGE_PREFIX, sizeof STORAGE_PREFIX - 1) != 0) return false;
    if (strcmp(req->method, "OPTIONS") == 0) return false; /* CORS preflight: http_api's */
    storage_http *sh = s->storage;
    char request_id[17];
    if (id_random_hex(request_id, 8) != 0) snprintf(request_id, sizeof request_id, "0");
    const char *rest = req->path + sizeof STORAGE_PREFIX - 1;
    if (strcmp(rest, "upload") == 0)
        handle_upload(sh, req, request_id);
    else
        handle_download(sh, req, rest, request_id);
    return true;
}

/* --- the file store ------------------------------------------------------------------------ */

typedef struct forget_job {
    storage_http *sh;
    char id[ID_BYTES_MAX];
    char sha[SHA256_HEX_BYTES];
} forget_job;

static void forget_work(void *data)
{
    forget_job *f = data;
    err_t e;
    err_init(&e);
    if (files_forget(f->sh->fs, f->id, f->sha, &e) != 0)
        log_warn("files: could not remove the bytes of %s: %s", f->id, e.msg);
    err_clear(&e);
}

static void forget_done(void *data)
{
    free(data);
}

/* Commit listener: a deleted `_storage` document may leave bytes no
 * document names. Another node's commits come as index projections, which
 * hold _id and sha256 too. */
static void on_commit(void *data, uint64_t ts, const write_set *writes)
{
    (void)ts;
    storage_http *sh = data;
    if (!sh->fs) return; /* closing */
    for (int i = 0; i < writes->n_recs; i++) {
        const write_rec *w = &writes->recs[i];
        if (strcmp(w->table->name, SYSTEM_TABLE_STORAGE) != 0 || !w->old_doc || w->new_doc)
            continue;
        const char *sha = jr_string_or(w->old_doc, "sha256", NULL);
        forget_job *f = calloc(1, sizeof *f);
        if (!f || !sha) {
            free(f);
            continue;
        }
        f->sh = sh;
        snprintf(f->id, sizeof f->id, "%s", w->id);
        snprintf(f->sha, sizeof f->sha, "%s", sha);
        if (job_start(sh, forget_work, forget_done, f) != 0) free(f);
    }
}

int storage_http_open(server *s, storage_http **out, err_t *e)
{
    storage_http *sh = calloc(1, sizeof *sh);
    if (!sh) return err_set(e, ERR_NOMEM, "out of memory");
    sh->srv = s;
    int rc = files_open(s->cfg.db_url, engine_store(s->en), true, &sh->fs, e);
    int64_t removed = 0;
    if (rc == 0) rc = files_sweep(sh->fs, true, &removed, e);
    if (rc) {
        files_close(sh->fs);
        free(sh);
        return rc;
    }
    if (removed)
        log_info("files: removed %lld orphan file%s (bytes without a document, left by a crash)",
                 (long long)removed, removed == 1 ? "" : "s");
    log_debug("files: stored in the %s", files_describe(sh->fs));
    engine_on_commit(s->en, on_commit, sh);
    *out = sh;
    return 0;
}

void storage_http_close(storage_http *sh)
{
    if (!sh || !sh->fs) return;
    while (sh->jobs > 0 || sh->uploads > 0 || sh->downloads > 0)
        uv_run(sh->srv->loop, UV_RUN_ONCE);
    files_close(sh->fs);
    sh->fs = NULL;
}

void storage_http_free(storage_http *sh)
{
    if (!sh) return;
    ASSERT(!sh->fs && sh->jobs == 0);
    free(sh);
}
