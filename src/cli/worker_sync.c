/*
 * worker_sync.c — the generation worker's client of the sync protocol (see
 * worker.h and convex-protocol.md §2–3): one WebSocket to /api/sync, opened
 * by libcurl (CONNECT_ONLY: plain TCP for http://, TLS for https://, on the
 * thread pool since it blocks) and then spoken by wslay's client side,
 * driven by a uv_poll on libcurl's socket.
 *
 * On every connection: Connect (the same session id each time),
 * Authenticate with the key (tokenType "Admin"), ModifyQuerySet adding the
 * one query, then every mutation not answered yet, with its original
 * request id — the server answers a mutation it already ran from its
 * exactly-once record, so a claim is never made twice. A connection that
 * fails or goes silent (no message for WSYNC_SILENCE_MS; the server pings
 * every 15 s) is opened again after a backoff that doubles up to
 * LIMIT_WORKER_RECONNECT_MS_MAX.
 * Thread: the worker's event loop; the connect on the thread pool.
 */
#include "base/jread.h"
#include "base/invariant.h"
#include "cli/worker.h"

#include <assert.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/ids.h"
#include "base/log.h"

#define WSYNC_CONNECT_TIMEOUT_MS 10000
#define WSYNC_HANDSHAKE_BYTES_MAX (16u * 1024)
#define WSYNC_SILENCE_MS 60000
#define WSYNC_WATCH_MS 5000
#define WSYNC_BACKOFF_MS_MIN 100
#define WSYNC_QUERY_ID 0
#define WSYNC_PENDING_MAX 10000 /* mutations waiting for an answer */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct pending_mut {
    int64_t request_id;
    char *text; /* the Mutation message */
    wsync_mutation_cb cb;
    void *data;
    struct pending_mut *next;
} pending_mut;

typedef enum { WS_IDLE, WS_CONNECTING, WS_OPEN } ws_state;

/* What the connect job hands back to the loop. */
typedef struct connect_job {
    uv_work_t work;
    wsync *w;
    char url[600];
    char key[32]; /* Sec-WebSocket-Key */
    CURL *curl;
    curl_socket_t fd;
    char *leftover; /* bytes after the 101 response: the first frames */
    size_t leftover_len;
    int rc;
    char error[ERR_MSG_BYTES_MAX];
} connect_job;

struct wsync {
    wsync_config cfg;
    char url[512];
    char key[LIMIT_ADMIN_KEY_BYTES_MAX + 1];
    char query_path[LIMIT_FUNCTION_PATH_BYTES_MAX];
    char session_id[40];
    int connection_count;
    int64_t next_request_id;
    pending_mut *head, *tail;
    int n_pending;

    ws_state state;
    CURL *curl;
    curl_socket_t fd;
    uv_poll_t *poll;
    wslay_event_context_ptr ctx;
    char *leftover;
    size_t leftover_len, leftover_at;
    bool lost; /* the connection failed: tear down after the callback returns */
    /* Messages received inside wslay_event_recv, handled after it returns
     * (a handler may send, or stop the client). */
    json_t *inbox;

    uv_timer_t retry_timer, watch_timer;
    uint64_t backoff_ms;
    uint64_t last_message_ms;
    bool stopping;
    int handles_open;
    void (*done)(void *data);
    void *done_data;
};

/* --- the connect job (thread pool) -------------------------------------------------------- */

static int wait_socket(curl_socket_t fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, timeout_ms);
}

static int send_all(connect_job *j, const char *data, size_t len)
{
    uint64_t deadline = clock_mono_us() / 1000 + WSYNC_CONNECT_TIMEOUT_MS;
    while (len > 0) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(j->curl, data, len, &n);
        if (rc == CURLE_AGAIN) {
            if (clock_mono_us() / 1000 > deadline || wait_socket(j->fd, POLLOUT, 1000) < 0)
                return -1;
            continue;
        }
        if (rc != CURLE_OK) return -1;
        data += n;
        len -= n;
    }
    return 0;
}

/* Reads the 101 response; what follows its blank line is kept. */
static int read_response(connect_job *j, char *buf, size_t cap, size_t *head_len, size_t *total)
{
    uint64_t deadline = clock_mono_us() / 1000 + WSYNC_CONNECT_TIMEOUT_MS;
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *head_len = (size_t)(end - buf) + 4;
            *total = len;
            return 0;
        }
        if (len + 1 >= cap || clock_mono_us() / 1000 > deadline) return -1;
        size_t n = 0;
        CURLcode rc = curl_easy_recv(j->curl, buf + len, cap - len - 1, &n);
        if (rc == CURLE_AGAIN) {
            wait_socket(j->fd, POLLIN, 1000);
            continue;
        }
        if (rc != CURLE_OK || n == 0) return -1;
        len += n;
    }
}

static void accept_value(const char *key, char out[64])
{
    char input[128];
    snprintf(input, sizeof input, "%s%s", key, WS_GUID);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(input, strlen(input), digest, &n, EVP_sha1(), NULL);
    b64_encode(digest, n, out);
}

static void connect_work(uv_work_t *work)
{
    connect_job *j = work->data;
    j->rc = -1;
    j->curl = curl_easy_init();
    if (!j->curl) {
        snprintf(j->error, sizeof j->error, "out of memory");
        return;
    }
    curl_easy_setopt(j->curl, CURLOPT_URL, j->url);
    curl_easy_setopt(j->curl, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(j->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)WSYNC_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(j->curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(j->curl);
    if (rc != CURLE_OK) {
        snprintf(j->error, sizeof j->error, "cannot connect: %s", curl_easy_strerror(rc));
        return;
    }
    curl_easy_getinfo(j->curl, CURLINFO_ACTIVESOCKET, &j->fd);
    /* "http://host:port/api/sync" → host:port for the Host header */
    const char *host = strstr(j->url, "://");
    host = host ? host + 3 : j->url;
    const char *slash = strchr(host, '/');
    int host_len = slash ? (int)(slash - host) : (int)strlen(host);
    const char *path = slash ? slash : "/";
    uint8_t nonce[16];
    id_random_bytes(nonce, sizeof nonce);
    b64_encode(nonce, sizeof nonce, j->key);
    char request[1024];
    int n =
        snprintf(request, sizeof request,
                 "GET %s HTTP/1.1\r\nHost: %.*s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "User-Agent: dojo-worker/" DOJO_VERSION "\r\n\r\n",
                 path, host_len, host, j->key);
    if (send_all(j, request, (size_t)n) != 0) {
        snprintf(j->error, sizeof j->error, "the connection closed during the handshake");
        return;
    }
    char *buf = malloc(WSYNC_HANDSHAKE_BYTES_MAX);
    size_t head_len = 0, total = 0;
    if (!buf || read_response(j, buf, WSYNC_HANDSHAKE_BYTES_MAX, &head_len, &total) != 0) {
        free(buf);
        snprintf(j->error, sizeof j->error, "no WebSocket handshake answer");
        return;
    }
    char accept[64];
    accept_value(j->key, accept);
    if (strncmp(buf, "HTTP/1.1 101", 12) != 0 || !strstr(buf, accept)) {
        char *eol = strstr(buf, "\r\n");
        if (eol) *eol = '\0';
        snprintf(j->error, sizeof j->error, "the server did not switch to WebSocket: %.200s", buf);
        free(buf);
        return;
    }
    if (total > head_len) {
        j->leftover = malloc(total - head_len);
        if (j->leftover) {
            memcpy(j->leftover, buf + head_len, total - head_len);
            j->leftover_len = total - head_len;
        }
    }
    free(buf);
    j->rc = 0;
}

/* --- sending --------------------------------------------------------------------------------- */

static void conn_lost(wsync *w, const char *why);

static void send_text(wsync *w, const char *text)
{
    if (w->state != WS_OPEN) return;
    struct wslay_event_msg msg = {
        .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = strlen(text)};
    if (wslay_event_queue_msg(w->ctx, &msg) != 0) conn_lost(w, "cannot queue a message");
}

static void send_json(wsync *w, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(msg);
    if (text) send_text(w, text);
    free(text);
}

static void update_poll(wsync *w);

static void on_poll(uv_poll_t *p, int status, int events);

/* --- the connection ---------------------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    wsync *w = user;
    if (w->leftover_at < w->leftover_len) {
        size_t n = w->leftover_len - w->leftover_at;
        if (n > len) n = len;
        memcpy(buf, w->leftover + w->leftover_at, n);
        w->leftover_at += n;
        return (ssize_t)n;
    }
    size_t n = 0;
    CURLcode rc = curl_easy_recv(w->curl, buf, len, &n);
    if (rc == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (rc != CURLE_OK || n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)flags;
    wsync *w = user;
    size_t n = 0;
    CURLcode rc = curl_easy_send(w->curl, data, len, &n);
    if (rc == CURLE_AGAIN) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (rc != CURLE_OK) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)n;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx;
    (void)user;
    return id_random_bytes(buf, (int)len) == 0 ? 0 : -1;
}

static pending_mut *pending_take(wsync *w, int64_t request_id)
{
    pending_mut *prev = NULL;
    for (pending_mut *p = w->head; p; prev = p, p = p->next) {
        if (p->request_id != request_id) continue;
        if (prev)
            prev->next = p->next;
        else
            w->head = p->next;
        if (w->tail == p) w->tail = prev;
        w->n_pending--;
        return p;
    }
    return NULL;
}

static void on_mutation_response(wsync *w, const json_t *msg)
{
    int64_t request_id = -1;
    bool success = false;
    err_t why;
    err_init(&why);
    if (jr_int(msg, "MutationResponse", "requestId", 0, 0, INT64_MAX, &request_id, &why) ||
        jr_bool(msg, "MutationResponse", "success", 0, &success, &why)) {
        log_warn("worker: a malformed MutationResponse: %s", why.msg);
        err_clear(&why);
        return;
    }
    pending_mut *p = pending_take(w, request_id);
    if (!p) return; /* answered already (a resend) */
    if (success) {
        p->cb(p->data, jr_field(msg, "result"), NULL, NULL);
    } else {
        const char *err = jr_string_or(msg, "result", "the mutation failed");
        const char *code = jr_string_or(jr_field(msg, "errorData"), "code", NULL);
        p->cb(p->data, NULL, err, code);
    }
    free(p->text);
    free(p);
}

static void on_transition(wsync *w, const json_t *msg)
{
    w->backoff_ms = WSYNC_BACKOFF_MS_MIN; /* the connection works */
    const json_t *mods = jr_field(msg, "modifications");
    for (size_t i = 0; jr_item(mods, i); i++) {
        const json_t *m = jr_item(mods, i);
        int64_t query_id = -1;
        err_t why;
        err_init(&why);
        jr_int(m, "modification", "queryId", JR_OPTIONAL, 0, INT64_MAX, &query_id, &why);
        err_clear(&why);
        if (query_id != WSYNC_QUERY_ID) continue;
        if (jr_string_is(m, "type", "QueryUpdated"))
            w->cfg.on_query(w->cfg.data, jr_field(m, "value"), NULL);
        else if (jr_string_is(m, "type", "QueryFailed"))
            w->cfg.on_query(w->cfg.data, NULL, jr_string_or(m, "errorMessage", "query failed"));
    }
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    (void)ctx;
    wsync *w = user;
    if (arg->opcode != WSLAY_TEXT_FRAME) return;
    w->last_message_ms = clock_mono_us() / 1000;
    json_t *msg = json_loadb((const char *)arg->msg, arg->msg_length, 0, NULL);
    if (json_is_object(msg)) json_array_append(w->inbox, msg);
    json_decref(msg);
}

/* Handles what arrived, outside of wslay. */
static void process_inbox(wsync *w)
{
    while (json_array_size(w->inbox) > 0 && !w->stopping) {
        json_t *msg = json_incref((json_t *)jr_item(w->inbox, 0));
        json_array_remove(w->inbox, 0);
        const char *type = jr_string_or(msg, "type", NULL);
        if (!type) {
            /* not a protocol message: ignored */
        } else if (strcmp(type, "Transition") == 0) {
            on_transition(w, msg);
        } else if (strcmp(type, "MutationResponse") == 0) {
            on_mutation_response(w, msg);
        } else if (strcmp(type, "AuthError") == 0 || strcmp(type, "FatalError") == 0) {
            char why[ERR_MSG_BYTES_MAX];
            snprintf(why, sizeof why, "%s", jr_string_or(msg, "error", type));
            json_array_clear(w->inbox);
            json_decref(msg);
            w->cfg.on_fatal(w->cfg.data, why);
            return;
        }
        json_decref(msg);
    }
    json_array_clear(w->inbox);
}

static void on_poll_closed(uv_handle_t *h)
{
    wsync *w = h->data;
    free(h);
    if (w->curl) curl_easy_cleanup(w->curl); /* closes the socket, after the poll let go */
    w->curl = NULL;
    w->handles_open--;
    if (w->stopping && w->handles_open == 0 && w->done) w->done(w->done_data);
}

static void schedule_connect(wsync *w);

/* Tears the connection down (the poll handle closes first, then libcurl
 * closes the socket) and schedules the next one. */
static void teardown(wsync *w)
{
    if (w->ctx) wslay_event_context_free(w->ctx);
    w->ctx = NULL;
    free(w->leftover);
    w->leftover = NULL;
    w->leftover_len = w->leftover_at = 0;
    w->state = WS_IDLE;
    w->lost = false;
    if (w->poll) {
        uv_poll_stop(w->poll);
        uv_close((uv_handle_t *)w->poll, on_poll_closed);
        w->poll = NULL;
    } else if (w->curl) {
        curl_easy_cleanup(w->curl);
        w->curl = NULL;
    }
    if (!w->stopping) schedule_connect(w);
}

static void conn_lost(wsync *w, const char *why)
{
    if (w->state != WS_OPEN || w->lost) return;
    log_info("worker: connection to %s lost (%s); reconnecting", w->url, why);
    w->lost = true;
}

static void update_poll(wsync *w)
{
    if (w->state != WS_OPEN) return; /* torn down already (or stopping) */
    if (w->lost || !w->ctx) {
        teardown(w);
        return;
    }
    if (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx)) {
        conn_lost(w, "closed");
        teardown(w);
        return;
    }
    int events = UV_READABLE | (wslay_event_want_write(w->ctx) ? UV_WRITABLE : 0);
    uv_poll_start(w->poll, events, on_poll);
}

static void flush(wsync *w)
{
    if (w->state != WS_OPEN || w->lost || !w->ctx) return;
    if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0)
        conn_lost(w, "cannot send");
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    wsync *w = p->data;
    if (status < 0) {
        conn_lost(w, uv_strerror(status));
    } else {
        if ((events & UV_READABLE) && wslay_event_recv(w->ctx) != 0) conn_lost(w, "cannot read");
        process_inbox(w);
        flush(w);
    }
    update_poll(w);
}

static void send_hello(wsync *w)
{
    json_t *connect = json_pack(
        "{s:s, s:s, s:i, s:s, s:f}", "type", "Connect", "sessionId", w->session_id,
        "connectionCount", w->connection_count, "lastCloseReason",
        w->connection_count ? "closed" : "InitialConnect", "clientTs", (double)clock_now_ms());
    send_json(w, connect);
    send_json(w, json_pack("{s:s, s:s, s:s, s:i}", "type", "Authenticate", "tokenType", "Admin",
                           "value", w->key, "baseVersion", 0));
    send_json(w, json_pack("{s:s, s:i, s:i, s:[{s:s, s:i, s:s, s:[{}]}]}", "type", "ModifyQuerySet",
                           "baseVersion", 0, "newVersion", 1, "modifications", "type", "Add",
                           "queryId", WSYNC_QUERY_ID, "udfPath", w->query_path, "args"));
    for (pending_mut *p = w->head; p; p = p->next)
        send_text(w, p->text);
    w->connection_count++;
}

static void connect_done(uv_work_t *work, int status)
{
    connect_job *j = work->data;
    wsync *w = j->w;
    w->handles_open--;
    if (status < 0 || j->rc != 0 || w->stopping) {
        if (!w->stopping)
            log_warn("worker: %s: %s; trying again in %.1f s", w->url,
                     status < 0 ? "cancelled" : j->error, (double)w->backoff_ms / 1000.0);
        if (j->curl) curl_easy_cleanup(j->curl);
        free(j->leftover);
        free(j);
        w->state = WS_IDLE;
        if (!w->stopping) {
            schedule_connect(w);
        } else if (w->handles_open == 0 && w->done) {
            w->done(w->done_data);
        }
        return;
    }
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .genmask_callback = genmask_cb,
        .on_msg_recv_callback = on_msg,
    };
    w->curl = j->curl;
    w->fd = j->fd;
    w->leftover = j->leftover;
    w->leftover_len = j->leftover_len;
    w->leftover_at = 0;
    free(j);
    w->poll = malloc(sizeof *w->poll);
    if (!w->poll || wslay_event_context_client_init(&w->ctx, &callbacks, w) != 0 ||
        uv_poll_init_socket(w->cfg.loop, w->poll, w->fd) != 0) {
        free(w->poll);
        w->poll = NULL;
        teardown(w);
        return;
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, LIMIT_WS_MESSAGE_BYTES_MAX);
    w->poll->data = w;
    w->handles_open++;
    w->state = WS_OPEN;
    w->last_message_ms = clock_mono_us() / 1000;
    log_info("worker: connected to %s", w->url);
    send_hello(w);
    /* Frames that came with the handshake answer are read at once. */
    if (w->leftover_len && wslay_event_recv(w->ctx) != 0) conn_lost(w, "cannot read");
    process_inbox(w);
    flush(w);
    update_poll(w);
}

static void start_connect(wsync *w)
{
    connect_job *j = calloc(1, sizeof *j);
    if (!j) {
        schedule_connect(w);
        return;
    }
    j->w = w;
    j->work.data = j;
    snprintf(j->url, sizeof j->url, "%s/api/sync", w->url);
    w->state = WS_CONNECTING;
    if (uv_queue_work(w->cfg.loop, &j->work, connect_work, connect_done) != 0) {
        free(j);
        w->state = WS_IDLE;
        schedule_connect(w);
        return;
    }
    w->handles_open++;
}

static void on_retry(uv_timer_t *t)
{
    wsync *w = t->data;
    if (!w->stopping && w->state == WS_IDLE) start_connect(w);
}

static void schedule_connect(wsync *w)
{
    uint64_t delay = w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 > LIMIT_WORKER_RECONNECT_MS_MAX
                        ? LIMIT_WORKER_RECONNECT_MS_MAX
                        : w->backoff_ms * 2;
    uv_timer_start(&w->retry_timer, on_retry, delay, 0);
}

/* A server that says nothing for WSYNC_SILENCE_MS is gone (it pings every
 * 15 s): connect again. */
static void on_watch(uv_timer_t *t)
{
    wsync *w = t->data;
    if (w->state != WS_OPEN) return;
    if (clock_mono_us() / 1000 - w->last_message_ms > WSYNC_SILENCE_MS) {
        conn_lost(w, "the server went silent");
        update_poll(w);
    }
}

/* --- public ------------------------------------------------------------------------------------
 */

int wsync_start(const wsync_config *cfg, wsync **out, err_t *e)
{
    wsync *w = calloc(1, sizeof *w);
    if (!w) return err_set(e, ERR_NOMEM, "out of memory");
    w->cfg = *cfg;
    snprintf(w->url, sizeof w->url, "%s", cfg->url);
    snprintf(w->key, sizeof w->key, "%s", cfg->key);
    snprintf(w->query_path, sizeof w->query_path, "%s", cfg->query_path);
    uint8_t u[16];
    id_random_bytes(u, sizeof u);
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(w->session_id, sizeof w->session_id,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    w->backoff_ms = WSYNC_BACKOFF_MS_MIN;
    w->fd = CURL_SOCKET_BAD;
    w->inbox = json_array();
    uv_timer_init(cfg->loop, &w->retry_timer);
    uv_timer_init(cfg->loop, &w->watch_timer);
    w->retry_timer.data = w->watch_timer.data = w;
    w->handles_open = 2;
    uv_timer_start(&w->watch_timer, on_watch, WSYNC_WATCH_MS, WSYNC_WATCH_MS);
    start_connect(w);
    *out = w;
    return 0;
}

void wsync_mutation(wsync *w, const char *path, json_t *args, wsync_mutation_cb cb, void *data)
{
    if (w->stopping || w->n_pending >= WSYNC_PENDING_MAX) {
        json_decref(args);
        cb(data, NULL,
           w->stopping ? "Worker stopped before the server answered"
                       : "too many mutations waiting for the server",
           NULL);
        return;
    }
    pending_mut *p = calloc(1, sizeof *p);
    json_t *msg = json_pack("{s:s, s:I, s:s, s:[o]}", "type", "Mutation", "requestId",
                            (json_int_t)w->next_request_id, "udfPath", path, "args", args);
    char *text = msg ? json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(msg);
    if (!p || !text) {
        free(p);
        free(text);
        cb(data, NULL, "out of memory", NULL);
        return;
    }
    p->request_id = w->next_request_id++;
    p->text = text;
    p->cb = cb;
    p->data = data;
    if (w->tail)
        w->tail->next = p;
    else
        w->head = p;
    w->tail = p;
    w->n_pending++;
    if (w->state == WS_OPEN && !w->lost) {
        send_text(w, text);
        flush(w);
        update_poll(w);
    }
}

int wsync_pending(const wsync *w)
{
    return w->n_pending;
}

static void on_timer_closed(uv_handle_t *h)
{
    wsync *w = h->data;
    w->handles_open--;
    if (w->handles_open == 0 && w->done) w->done(w->done_data);
}

void wsync_stop(wsync *w, void (*done)(void *data), void *data)
{
    ASSERT(!w->stopping);
    w->stopping = true;
    w->done = done;
    w->done_data = data;
    while (w->head) {
        pending_mut *p = pending_take(w, w->head->request_id);
        p->cb(p->data, NULL, "Worker stopped before the server answered", NULL);
        free(p->text);
        free(p);
    }
    if (w->state == WS_OPEN) teardown(w);
    uv_close((uv_handle_t *)&w->retry_timer, on_timer_closed);
    uv_close((uv_handle_t *)&w->watch_timer, on_timer_closed);
}

void wsync_free(wsync *w)
{
    if (!w) return;
    json_decref(w->inbox);
    free(w);
}
