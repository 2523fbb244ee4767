/*
 * ws.c — WebSocket connections over libuv (see ws.h). What the socket reads
 * goes through the frame decoder (net/ws_frame.c) as it arrives; text
 * messages go to the owner, pings are answered, a close is answered and
 * ends the connection. What dojo sends is framed here — text messages from
 * copied and shared parts, pings, pongs, closes — as libuv writes whose
 * bytes are counted until written (the unread bounds). A connection holds
 * no buffer between messages.
 * Thread: the event-loop thread only.
 */
#include "net/ws.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    ws_callbacks cb;
    void *data;
    ws_reader reader;           /* the client's frames, decoded as they arrive */
    size_t pending_write_bytes; /* queued and not yet written, shared buffers included */
    bool close_queued;          /* our close frame is queued: nothing more is sent or read */
    bool close_received;        /* the client's close frame came (and was answered) */
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
    ws_reader_free(&c->reader);
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

static void on_close_timeout(uv_timer_t *t)
{
    ws_conn *c = t->data;
    shut(c, c->close_code ? c->close_code : 1000);
}

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
    /* Everything out, our close frame included: close the connection. */
    if (c->close_queued) {
        finish(c);
        return;
    }
    /* Everything out: the owner may send what it held back. */
    if (!c->draining && c->cb.on_drain) c->cb.on_drain(c->data);
}

/* Queues len bytes of our own (a control frame) as one write. */
static int write_private(ws_conn *c, const uint8_t *bytes, size_t len)
{
    ws_write *w = malloc(sizeof *w + len);
    if (!w) {
        shut(c, 1011);
        return ERR_NOMEM;
    }
    *w = (ws_write){.conn = c, .len = len, .private_len = len};
    memcpy(w->bytes, bytes, len);
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)len);
    c->pending_write_bytes += len;
    ws_total_private_bytes += len;
    if (uv_write(&w->req, (uv_stream_t *)c->tcp, &buf, 1, on_written) != 0) {
        on_written(&w->req, UV_ECANCELED); /* the socket is gone */
        return ERR_IO;
    }
    return 0;
}

/* A control frame (ping, pong, close) with up to 125 bytes of payload. */
static int send_control(ws_conn *c, int opcode, const uint8_t *payload, size_t len)
{
    ASSERT(len <= WS_CONTROL_PAYLOAD_BYTES_MAX);
    uint8_t frame[2 + WS_CONTROL_PAYLOAD_BYTES_MAX];
    frame[0] = (uint8_t)(0x80 | opcode);
    frame[1] = (uint8_t)len;
    if (len) memcpy(frame + 2, payload, len);
    return write_private(c, frame, 2 + len);
}

/* Sends our close frame (code 0: without a status, the peer sees 1005) and
 * reads nothing more; the connection ends once it is written. */
static void send_close(ws_conn *c, uint16_t code, const char *reason)
{
    if (c->closing || c->close_queued) return;
    c->close_queued = true;
    ws_reader_stop(&c->reader);
    uint8_t payload[WS_CONTROL_PAYLOAD_BYTES_MAX];
    size_t len = 0;
    if (code) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        size_t reason_len = reason ? strlen(reason) : 0;
        if (reason_len > WS_CONTROL_PAYLOAD_BYTES_MAX - 2)
            reason_len = WS_CONTROL_PAYLOAD_BYTES_MAX - 2;
        if (reason_len) memcpy(payload + 2, reason, reason_len);
        len = 2 + reason_len;
    }
    if (!c->close_code) c->close_code = code ? code : 1005;
    uv_timer_start(&c->close_timer, on_close_timeout, WS_CLOSE_GRACE_MS, 0);
    if (send_control(c, WS_OP_CLOSE, payload, len) == 0 && c->pending_write_bytes == 0) finish(c);
}

/* A close status the peer may send (RFC 6455 §7.4). */
static bool close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static void on_text(void *data, const char *text, size_t len)
{
    ws_conn *c = data;
    if (!c->closing && !c->close_queued && c->cb.on_message) c->cb.on_message(c->data, text, len);
}

static void on_control(void *data, int opcode, const uint8_t *payload, size_t len)
{
    ws_conn *c = data;
    if (c->closing) return;
    if (opcode == WS_OP_PING) {
        send_control(c, WS_OP_PONG, payload, len);
    } else if (opcode == WS_OP_CLOSE) {
        /* Answered with the same status (none for none), then the end. */
        c->close_received = true;
        unsigned code = len >= 2 ? (unsigned)(payload[0] << 8 | payload[1]) : 0;
        if (len == 1 || (len >= 2 && !close_code_valid(code))) {
            send_close(c, 1002, "invalid close frame");
            return;
        }
        c->close_code = code ? (uint16_t)code : 1005;
        send_close(c, (uint16_t)code, NULL);
    } /* a pong: the peer is alive, which its bytes already said */
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

static void feed(ws_conn *c, const char *bytes, size_t n)
{
    c->last_receive_ms = clock_mono_ms();
    /* After a close frame (ours or the peer's) the rest is discarded. */
    if (c->draining || c->close_queued || c->closing) return;
    static const ws_reader_events events = {.on_text = on_text, .on_control = on_control};
    ws_read_verdict v = ws_reader_feed(&c->reader, (const uint8_t *)bytes, n, &events, c);
    if (v == WS_READ_OK) return;
    /* Refused as soon as it is seen: a frame announcing more than the bound
     * is never waited for. */
    const char *why = v == WS_READ_TOO_BIG       ? "frame or message larger than 16 MiB"
                      : v == WS_READ_UNSUPPORTED ? "binary messages are not supported"
                      : v == WS_READ_NOMEM       ? "out of memory"
                                                 : "malformed frame";
    log_info("websocket: %s; closing", why);
    send_close(c, (uint16_t)v, why);
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
    ws_reader_init(&c->reader, LIMIT_WS_FRAME_BYTES_MAX, LIMIT_WS_MESSAGE_BYTES_MAX);
    uv_loop_t *loop = NULL;
    char *leftover = NULL;
    size_t leftover_len = 0;
    uv_tcp_t *tcp = NULL;
    if (http_take_over(req, head, &tcp, &leftover, &leftover_len) != 0) {
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
    if (c->closing || c->close_queued || c->close_received) return ERR_IO;
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
    if (c->closing || c->close_queued) return;
    if (send_control(c, WS_OP_PING, NULL, 0) == 0) ws_check_unread(c);
}

void ws_close(ws_conn *c, uint16_t code, const char *reason)
{
    send_close(c, code, reason);
}

size_t ws_buffered_bytes(const ws_conn *c)
{
    return c->pending_write_bytes;
}

uint64_t ws_last_receive_ms(const ws_conn *c)
{
    return c->last_receive_ms;
}
