/*
 * ws.c — WebSocket connections over libuv with wslay's event API (see ws.h).
 * Incoming bytes are appended to an input buffer and fed to wslay_event_recv
 * through recv_cb; wslay's frames leave through send_cb as libuv writes whose
 * bytes are counted until written (the send buffer bound).
 * Thread: the event-loop thread only.
 */
#include "net/ws.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "base/b64.h"
#include "base/clock.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/rcbuf.h"
#include "net/ws_frame.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_READ_CHUNK_BYTES (64 * 1024)
#define WS_CLOSE_GRACE_MS 2000
#define WS_PARTS_ON_STACK 32 /* a message of more parts lists them on the heap */

/* Unread bytes of every socket of the process (the loop thread's alone):
 * the bytes each socket holds of its own, and the shared buffers being
 * written, each counted once however many sockets write it. */
static size_t ws_total_private_bytes, ws_total_shared_bytes;

struct ws_conn {
    uv_tcp_t *tcp;
    uv_timer_t close_timer;
    wslay_event_context_ptr ctx;
    ws_callbacks cb;
    void *data;
    ws_frame_scan scan; /* frame headers checked as they arrive */
    char *in;           /* received, not yet consumed by wslay */
    size_t in_len, in_off, in_cap;
    size_t pending_write_bytes; /* queued and not yet written, shared buffers included */
    bool close_queued;          /* ws_close was called: no more messages */
    bool paused;                /* reading stopped by ws_pause_reading */
    uint64_t last_receive_ms;
    bool closing;  /* socket close started */
    bool draining; /* close frame out: half-closed, discarding input until EOF */
    bool notified; /* on_close called */
    uv_shutdown_t shutdown_req;
    int handles_open;
    uint16_t close_code;
};

/* One write in flight: its own bytes (copied) and references to the shared
 * buffers it writes from. */
typedef struct ws_write {
    uv_write_t req;
    ws_conn *conn;
    size_t len;         /* every byte of the write */
    size_t private_len; /* of them, those in bytes[] */
    int n_shared;
    rcbuf **shared; /* points into bytes[], after the private bytes */
    char bytes[];
} ws_write;

bool ws_is_upgrade(const http_request *req)
{
    const char *upgrade = http_request_header(req, "upgrade");
    return strcmp(req->method, "GET") == 0 && upgrade && strcasecmp(upgrade, "websocket") == 0;
}

static void maybe_free(ws_conn *c)
{
    if (c->handles_open > 0) return;
    if (c->ctx) wslay_event_context_free(c->ctx);
    free(c->in);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    ws_conn *c = h->data;
    if ((uv_tcp_t *)h == c->tcp) free(c->tcp);
    c->handles_open--;
    maybe_free(c);
}

/* Closes the socket and tells the owner, once. */
static void shut(ws_conn *c, int code)
{
    if (c->closing) return;
    c->closing = true;
    uv_read_stop((uv_stream_t *)c->tcp);
    uv_timer_stop(&c->close_timer);
    uv_close((uv_handle_t *)c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->close_timer, on_handle_closed);
    if (!c->notified) {
        c->notified = true;
        if (c->cb.on_close) c->cb.on_close(c->data, code);
    }
}

static void on_close_timeout(uv_timer_t *t);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* an error or cancel ends in EOF or the timer anyway */
}

/* The close handshake is done on our side: half-close the socket so the
 * peer reads our close frame before the connection goes away (closing with
 * unread input would reset it), and wait for its EOF or the grace timer. */
static void finish(ws_conn *c)
{
    if (c->closing || c->draining) return;
    c->draining = true;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)c->tcp, on_shutdown) != 0) {
        shut(c, c->close_code ? c->close_code : 1000);
        return;
    }
    uv_timer_start(&c->close_timer, on_close_timeout, WS_CLOSE_GRACE_MS, 0);
}

static void shared_start(rcbuf *b)
{
    if (b->sending++ == 0) ws_total_shared_bytes += b->len;
}

static void shared_done(rcbuf *b)
{
    ASSERT(b->sending > 0);
    if (--b->sending == 0) {
        ASSERT(ws_total_shared_bytes >= b->len);
        ws_total_shared_bytes -= b->len;
    }
    rcbuf_unref(b);
}

static void on_written(uv_write_t *req, int status)
{
    ws_write *w = (ws_write *)req;
    ws_conn *c = w->conn;
    ASSERT(c->pending_write_bytes >= w->len && ws_total_private_bytes >= w->private_len);
    c->pending_write_bytes -= w->len;
    ws_total_private_bytes -= w->private_len;
    for (int i = 0; i < w->n_shared; i++)
        shared_done(w->shared[i]);
    free(w);
    if (status < 0) {
        shut(c, 1006);
        return;
    }
    if (c->closing || c->pending_write_bytes > 0) return;
    /* Everything out and wslay is done with the connection: close it. */
    if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx)) {
        finish(c);
        return;
    }
    /* Everything out: the owner may send what it held back. */
    if (!c->draining && !c->close_queued && c->cb.on_drain) c->cb.on_drain(c->data);
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)flags;
    ws_conn *c = user;
    if (c->closing) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ws_write *w = malloc(sizeof *w + len);
    if (!w) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    *w = (ws_write){.conn = c, .len = len, .private_len = len};
    memcpy(w->bytes, data, len);
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)c->tcp, &buf, 1, on_written) != 0) {
        free(w);
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    c->pending_write_bytes += len;
    ws_total_private_bytes += len;
    return (ssize_t)len;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    ws_conn *c = user;
    size_t avail = c->in_len - c->in_off;
    if (avail == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = avail < len ? avail : len;
    memcpy(buf, c->in + c->in_off, n);
    c->in_off += n;
    return (ssize_t)n;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    ws_conn *c = user;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        c->close_code = arg->status_code ? arg->status_code : 1005;
        return;
    }
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA,
                                (const uint8_t *)"binary messages are not supported", 33);
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME && c->cb.on_message && !c->closing)
        c->cb.on_message(c->data, (const char *)arg->msg, arg->msg_length);
}

bool ws_unread_too_much(size_t own_bytes, size_t all_bytes)
{
    return own_bytes > LIMIT_WS_SEND_BUFFER_BYTES_MAX ||
           (all_bytes > LIMIT_WS_SEND_BUFFER_TOTAL_BYTES_MAX &&
            own_bytes > LIMIT_WS_SEND_BUFFER_FAIR_BYTES);
}

size_t ws_unread_total_bytes(void)
{
    return ws_total_private_bytes + ws_total_shared_bytes;
}

int ws_check_unread(ws_conn *c)
{
    if (c->closing) return ERR_IO;
    if (!ws_unread_too_much(c->pending_write_bytes, ws_unread_total_bytes())) return 0;
    log_warn("websocket: peer is not reading (%zu bytes queued, %zu on all sockets); "
             "disconnecting",
             c->pending_write_bytes, ws_unread_total_bytes());
    shut(c, 1013);
    return ERR_LIMIT;
}

/* Lets wslay send what is queued; closes when it has nothing more to do. */
static void pump(ws_conn *c)
{
    if (c->closing) return;
    if (wslay_event_send(c->ctx) != 0) {
        shut(c, 1006);
        return;
    }
    if (ws_check_unread(c) != 0) return;
    if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx) &&
        c->pending_write_bytes == 0)
        finish(c);
}

static void feed(ws_conn *c, const char *bytes, size_t n)
{
    c->last_receive_ms = clock_mono_ms();
    /* After a close frame (ours or a refused message) the rest is discarded. */
    if (c->draining || !wslay_event_get_read_enabled(c->ctx)) return;
    ws_frame_verdict v =
        ws_frame_scan_feed(&c->scan, (const uint8_t *)bytes, n, LIMIT_WS_FRAME_BYTES_MAX);
    if (v != WS_FRAME_OK) {
        /* Refused as soon as its header is complete: a frame announcing more
         * than the bound is never waited for. */
        static const char too_big[] = "frame larger than 16 MiB", bad[] = "malformed frame";
        bool big = v == WS_FRAME_TOO_BIG;
        log_info("websocket: %s; closing", big ? too_big : bad);
        ws_close(c, big ? WSLAY_CODE_MESSAGE_TOO_BIG : WSLAY_CODE_PROTOCOL_ERROR,
                 big ? too_big : bad);
        return;
    }
    if (c->in_off == c->in_len) c->in_off = c->in_len = 0;
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : WS_READ_CHUNK_BYTES;
        while (cap < c->in_len + n)
            cap *= 2;
        char *grown = realloc(c->in, cap);
        if (!grown) {
            shut(c, 1011);
            return;
        }
        c->in = grown;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, bytes, n);
    c->in_len += n;
    if (wslay_event_recv(c->ctx) != 0 && !wslay_event_want_write(c->ctx)) {
        shut(c, 1002); /* a protocol error with nothing left to say */
        return;
    }
    /* A refused frame (too big, bad) has a close frame queued: send it. */
    pump(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(WS_READ_CHUNK_BYTES);
    buf->len = buf->base ? WS_READ_CHUNK_BYTES : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    ws_conn *c = s->data;
    if (n > 0) feed(c, buf->base, (size_t)n);
    free(buf->base);
    if (n < 0) shut(c, c->close_code ? c->close_code : 1006);
}

static void on_close_timeout(uv_timer_t *t)
{
    ws_conn *c = t->data;
    shut(c, c->close_code ? c->close_code : 1000);
}

static int handshake_response(const http_request *req, char *out, size_t out_bytes, err_t *e)
{
    const char *key = http_request_header(req, "sec-websocket-key");
    const char *version = http_request_header(req, "sec-websocket-version");
    if (!key || strlen(key) != 24)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "WebSocket upgrade without a valid Sec-WebSocket-Key");
    if (!version || strcmp(version, "13") != 0)
        return err_set(e, ERR_INVALID_ARGUMENT,
                       "WebSocket upgrade needs Sec-WebSocket-Version: 13");
    char material[128];
    snprintf(material, sizeof material, "%s%s", key, WS_GUID);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)material, strlen(material), digest);
    char accept[64];
    b64_encode(digest, sizeof digest, accept);
    snprintf(out, out_bytes,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n",
             accept);
    return 0;
}

int ws_accept(http_request *req, const ws_callbacks *cb, void *data, ws_conn **out, err_t *e)
{
    char head[512];
    if (handshake_response(req, head, sizeof head, e) != 0) {
        http_respond_error(req, 400, "BadWebSocketUpgrade", e->msg);
        return e->code;
    }
    ws_conn *c = calloc(1, sizeof *c);
    if (!c) {
        http_respond_error(req, 503, "Overloaded", "out of memory");
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = recv_cb, .send_callback = send_cb, .on_msg_recv_callback = on_msg};
    if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0) {
        free(c);
        http_respond_error(req, 503, "Overloaded", "out of memory");
        return err_set(e, ERR_NOMEM, "out of memory");
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, LIMIT_WS_MESSAGE_BYTES_MAX);
    uv_loop_t *loop = NULL;
    char *leftover = NULL;
    size_t leftover_len = 0;
    uv_tcp_t *tcp = NULL;
    if (http_take_over(req, head, &tcp, &leftover, &leftover_len) != 0) {
        wslay_event_context_free(c->ctx);
        free(c);
        return err_set(e, ERR_IO, "the client went away during the upgrade");
    }
    loop = tcp->loop;
    c->tcp = tcp;
    c->cb = *cb;
    c->data = data;
    c->last_receive_ms = clock_mono_ms();
    tcp->data = c;
    uv_timer_init(loop, &c->close_timer);
    c->close_timer.data = c;
    c->handles_open = 2;
    *out = c;
    uv_read_start((uv_stream_t *)tcp, on_alloc, on_read);
    if (leftover_len) feed(c, leftover, leftover_len);
    free(leftover);
    return 0;
}

/* The header of an unmasked final text frame of len bytes (RFC 6455 §5.2). */
static size_t text_frame_header(uint64_t len, uint8_t out[WS_FRAME_HEADER_BYTES_MAX])
{
    out[0] = 0x81; /* FIN, text */
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= UINT16_MAX) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int ws_send_text_parts(ws_conn *c, const ws_part *parts, int n_parts)
{
    ASSERT(n_parts >= 1 && n_parts <= WS_PARTS_MAX);
    if (c->closing || c->close_queued || wslay_event_get_close_received(c->ctx) ||
        wslay_event_get_close_sent(c->ctx))
        return ERR_IO;
    /* Whatever wslay holds (a pong) goes first: frames leave in order. */
    if (wslay_event_send(c->ctx) != 0) {
        shut(c, 1006);
        return ERR_IO;
    }
    ASSERT(!wslay_event_want_write(c->ctx)); /* send_cb takes every byte it is given */
    uint8_t head[WS_FRAME_HEADER_BYTES_MAX];
    size_t len = 0, private_len, n_shared = 0;
    for (int i = 0; i < n_parts; i++) {
        len += parts[i].len;
        n_shared += parts[i].shared != NULL;
    }
    size_t head_len = text_frame_header(len, head);
    private_len = head_len;
    for (int i = 0; i < n_parts; i++)
        if (!parts[i].shared) private_len += parts[i].len;
    ws_write *w = malloc(sizeof *w + private_len + n_shared * sizeof(rcbuf *) + sizeof(rcbuf *));
    if (!w) {
        shut(c, 1011);
        return ERR_NOMEM;
    }
    *w = (ws_write){.conn = c, .len = head_len + len, .private_len = private_len};
    uintptr_t after_bytes = (uintptr_t)(w->bytes + private_len);
    w->shared = (rcbuf **)((after_bytes + sizeof(rcbuf *) - 1) & ~(uintptr_t)(sizeof(rcbuf *) - 1));
    /* Consecutive copied parts become one buffer, each shared part one
     * (libuv copies the list; it is needed only for the call). */
    uv_buf_t few[WS_PARTS_ON_STACK + 1];
    uv_buf_t *bufs =
        n_parts <= WS_PARTS_ON_STACK ? few : malloc((size_t)(n_parts + 1) * sizeof *bufs);
    if (!bufs) {
        free(w);
        shut(c, 1011);
        return ERR_NOMEM;
    }
    int n_bufs = 0;
    char *at = w->bytes;
    memcpy(at, head, head_len);
    bufs[n_bufs++] = uv_buf_init(at, (unsigned)head_len);
    at += head_len;
    for (int i = 0; i < n_parts; i++) {
        const ws_part *p = &parts[i];
        if (p->len == 0) continue;
        if (p->shared) {
            ASSERT(p->bytes >= p->shared->bytes &&
                   p->bytes + p->len <= p->shared->bytes + p->shared->len);
            w->shared[w->n_shared++] = rcbuf_ref(p->shared);
            shared_start(p->shared);
            bufs[n_bufs++] = uv_buf_init((char *)p->bytes, (unsigned)p->len);
            continue;
        }
        memcpy(at, p->bytes, p->len);
        if (n_bufs > 0 && bufs[n_bufs - 1].base + bufs[n_bufs - 1].len == at)
            bufs[n_bufs - 1].len += p->len;
        else
            bufs[n_bufs++] = uv_buf_init(at, (unsigned)p->len);
        at += p->len;
    }
    ASSERT((size_t)(at - w->bytes) == private_len);
    c->pending_write_bytes += w->len;
    ws_total_private_bytes += w->private_len;
    int rc = uv_write(&w->req, (uv_stream_t *)c->tcp, bufs, (unsigned)n_bufs, on_written);
    if (bufs != few) free(bufs);
    if (rc != 0) {
        /* Undone as if written with an error: the socket is gone. */
        on_written(&w->req, UV_ECANCELED);
        return ERR_IO;
    }
    return ws_check_unread(c);
}

int ws_send_text(ws_conn *c, const char *text, size_t len)
{
    ws_part part = {.bytes = text, .len = len};
    return ws_send_text_parts(c, &part, 1);
}

void ws_pause_reading(ws_conn *c, bool paused)
{
    if (c->closing || c->paused == paused) return;
    c->paused = paused;
    if (paused)
        uv_read_stop((uv_stream_t *)c->tcp);
    else
        uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
}

void ws_send_ping(ws_conn *c)
{
    if (c->closing) return;
    struct wslay_event_msg msg = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
    wslay_event_queue_msg(c->ctx, &msg);
    pump(c);
}

void ws_close(ws_conn *c, uint16_t code, const char *reason)
{
    if (c->closing) return;
    c->close_queued = true;
    size_t len = reason ? strlen(reason) : 0;
    if (len > 122) len = 122;
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason, len);
    wslay_event_shutdown_read(c->ctx);
    if (!c->close_code) c->close_code = code ? code : 1005;
    uv_timer_start(&c->close_timer, on_close_timeout, WS_CLOSE_GRACE_MS, 0);
    pump(c);
}

size_t ws_buffered_bytes(const ws_conn *c)
{
    return c->pending_write_bytes;
}

uint64_t ws_last_receive_ms(const ws_conn *c)
{
    return c->last_receive_ms;
}
