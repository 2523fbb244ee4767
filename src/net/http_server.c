/*
 * http_server.c — the HTTP/1.1 server's connections (see http.h): listening
 * and accepting, the life of a connection (reading, the pipeline of requests
 * answered strictly in order, keep-alive, timeouts, lingering close), writing
 * responses (with back-pressure and a write timeout for a client that does
 * not read), handing a stream over to another protocol, and graceful
 * shutdown. Turning bytes into requests is http_parse.c; the shared structures
 * are in http_conn.h. Called by the layer above through http.h and by libuv.
 * Thread: the event-loop thread only.
 */
#include "net/http.h"
#include "net/http_conn.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ */
#endif

#include "base/clock.h"
#include "base/invariant.h"
#include "base/limits.h"
#include "base/log.h"

#define HTTP_READ_BYTES_MAX (64u * 1024) /* one read; also bounds a connection's stash */
#define HTTP_LINGER_MS 2000 /* after a closing response, input is drained this long at most */
#define HTTP_LISTEN_BACKLOG 511

static const char CONN_KEEP_ALIVE[] = "Connection: keep-alive\r\n\r\n";
static const char CONN_CLOSE[] = "Connection: close\r\n\r\n";
static const char CONTINUE_HEAD[] = "HTTP/1.1 100 Continue\r\n\r\n";

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t grace_timer;
    http_request_cb cb;
    void *ctx;
    http_server_config cfg; /* defaults applied */
    int port;
    http_conn *conns;   /* every attached connection, rejected ones included */
    int conns_active;   /* counted against connections_max */
    int conns_rejected; /* accepted only to be answered 503 */
    bool shutting_down;
    bool listener_closed;
    bool grace_closing;
    void (*done)(void *data);
    void *done_data;
    uint64_t write_timeout_ms; /* LIMIT_HTTP_WRITE_TIMEOUT_MS but in tests */
    time_t date_s;
    char date[40];
    char read_buf[HTTP_READ_BYTES_MAX]; /* one read at a time on the loop thread */
};

struct http_out {
    uv_write_t write;
    http_conn *conn;
    size_t write_bytes; /* all buffers of the write, counted in conn->write_queue_bytes */
    size_t head_len;
    size_t body_len; /* body bytes to send: 0 for HEAD and bodiless statuses */
    char data[];     /* head, then body */
};

/* A response body from a source (http_respond_body), once its head is
 * written: the connection's one body in progress. It counts as one write in
 * flight (the write timer watches it) and its unsent bytes count in the
 * connection's write_queue_bytes (back-pressure). It holds a reference on
 * the connection; a connection that closes abandons it, and it is freed
 * once nothing (a sendfile, a pull) is outstanding. */
struct http_body {
    http_conn *conn; /* NULL while only answered, and once abandoned */
    http_body_source src;
    uv_loop_t *loop;
    uint64_t remaining; /* bytes still to hand to the socket */
    uint64_t queued;    /* of them, counted in conn->write_queue_bytes */
    bool close_after;   /* the response closes the connection once sent */
    bool busy;          /* a sendfile or a pull is outstanding */
    bool waiting;       /* the socket's buffer is full: polling for room */
    uv_work_t work;
    int sock_fd; /* a dup of the socket: closing the connection cannot reuse it mid-sendfile */
    size_t send_len;
    ssize_t sent; /* the sendfile's result, or -errno */
    uv_poll_t *poll;
};

static void conn_pump(http_conn *c);
static void conn_close(http_conn *c);
static void conn_linger(http_conn *c);
static void body_continue(http_conn *c);
static void server_maybe_done(http_server *s);
static void body_abandon(http_conn *c);

/* ---- reference counting and teardown ---- */

void http_conn_ref(http_conn *c)
{
    ASSERT(c->refs > 0);
    c->refs++;
}

void http_conn_unref(http_conn *c)
{
    ASSERT(c->refs > 0);
    if (--c->refs > 0) return;
    ASSERT(c->handles_open == 0 && c->parsing == NULL && c->queue_head == NULL);
    ASSERT(c->writes_in_flight == 0 && c->write_queue_bytes == 0);
    free(c->stash);
    free(c);
}

static void conn_detach(http_conn *c)
{
    http_server *s = c->server;
    if (!s) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->rejected)
        s->conns_rejected--;
    else
        s->conns_active--;
    c->server = NULL;
    server_maybe_done(s);
}

static void conn_handle_closed(http_conn *c)
{
    ASSERT(c->handles_open > 0);
    if (--c->handles_open > 0) return;
    conn_detach(c);
    http_conn_unref(c); /* the reference of the open handles */
}

static void on_tcp_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    free(h);
    c->tcp = NULL;
    conn_handle_closed(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    conn_handle_closed(h->data);
}

static http_msg *queue_pop(http_conn *c)
{
    http_msg *m = c->queue_head;
    ASSERT(m && c->queue_len > 0);
    c->queue_head = m->next;
    if (!c->queue_head) c->queue_tail = NULL;
    m->next = NULL;
    c->queue_len--;
    return m;
}

static void queue_push(http_conn *c, http_msg *m)
{
    ASSERT(c->queue_len < LIMIT_HTTP_PIPELINE_REQUESTS_MAX);
    m->next = NULL;
    if (c->queue_tail)
        c->queue_tail->next = m;
    else
        c->queue_head = m;
    c->queue_tail = m;
    c->queue_len++;
}

/* Requests the handler holds become orphans (freed by http_respond); the rest
 * is freed now. */
static void conn_drop_messages(http_conn *c)
{
    http_msg *streaming = c->parsing && c->parsing->req.streamed ? c->parsing : NULL;
    if (!streaming) http_msg_free(c->parsing); /* a streamed one is in the queue too */
    c->parsing = NULL;
    http_msg *aborted[LIMIT_HTTP_PIPELINE_REQUESTS_MAX];
    int n_aborted = 0;
    while (c->queue_head) {
        http_msg *m = queue_pop(c);
        if (m->state == HTTP_MSG_DISPATCHED) {
            m->orphan = true;
            /* A stream still open hears that the client is gone; it still
             * answers (the answer frees the orphan). */
            if (m->req.streamed && !m->stream_over) aborted[n_aborted++] = m;
        } else {
            http_msg_free(m);
        }
    }
    for (int i = 0; i < n_aborted; i++) {
        http_msg *m = aborted[i];
        m->stream_over = true;
        if (m->stream_cbs)
            m->stream_cbs->on_abort(m->stream_data, 0, "ClientGone",
                                    "The client closed the connection");
        else
            http_respond(&m->req, 499, NULL, 0, NULL, 0); /* frees the orphan */
    }
}

/* Closes at once: pending writes are cancelled. */
static void conn_close(http_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    c->stop_parsing = true;
    c->reading = false;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->write_timer, on_timer_closed);
    uv_close((uv_handle_t *)c->tcp, on_tcp_closed);
    body_abandon(c);
    conn_drop_messages(c);
}

/* ---- timers ---- */

static void timer_stop(http_conn *c)
{
    if (c->closing) return;
    c->timer_kind = HTTP_TIMER_NONE;
    uv_timer_stop(&c->timer);
}

static void on_timer(uv_timer_t *t);

static void timer_arm(http_conn *c, http_timer_kind kind, uint64_t ms)
{
    if (c->closing) return;
    c->timer_kind = kind;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    http_timer_kind kind = c->timer_kind;
    c->timer_kind = HTTP_TIMER_NONE;
    const http_server_config *cfg = &c->server->cfg;
    switch (kind) {
    case HTTP_TIMER_HEAD:
        http_conn_fail(c, 408, "RequestTimeout",
                       "Request headers were not received within the limit of %llu ms",
                       (unsigned long long)cfg->header_timeout_ms);
        conn_pump(c);
        break;
    case HTTP_TIMER_BODY:
        http_conn_fail(c, 408, "RequestTimeout",
                       "Request body was not received within the limit of %llu ms",
                       (unsigned long long)cfg->body_timeout_ms);
        conn_pump(c);
        break;
    case HTTP_TIMER_IDLE:
    case HTTP_TIMER_LINGER:
        conn_close(c);
        break;
    case HTTP_TIMER_NONE:
        break;
    }
}

/* ---- writing ---- */

/* Bytes of the writes so far that reached the client: grows while it reads,
 * stands still while it does not. Those the kernel holds unacknowledged count
 * as unsent (SIOCOUTQ): the kernel's send buffer can hold megabytes, and it
 * takes more only once half of it is free, so a slow reader could otherwise
 * look stalled for long. */
static uint64_t conn_bytes_sent(const http_conn *c)
{
    uint64_t unsent = uv_stream_get_write_queue_size((const uv_stream_t *)c->tcp);
#ifdef SIOCOUTQ
    uv_os_fd_t fd;
    int in_kernel = 0;
    if (uv_fileno((const uv_handle_t *)c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &in_kernel) == 0 &&
        in_kernel > 0) {
        unsent += (uint64_t)in_kernel;
    }
#endif
    /* The kernel's count may include a FIN; never report a negative. */
    return unsent < c->write_bytes_total ? c->write_bytes_total - unsent : 0;
}

static void on_write_timer(uv_timer_t *t);

static void write_timer_arm(http_conn *c)
{
    if (c->closing) return;
    c->write_sent_mark = conn_bytes_sent(c);
    uv_timer_start(&c->write_timer, on_write_timer, c->server->write_timeout_ms, 0);
}

/* Pending writes that made no progress for a whole period close the
 * connection (the client stopped reading); progress arms it again. So a stall
 * is noticed between one and two periods after it began. */
static void on_write_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    ASSERT(!c->closing && c->writes_in_flight > 0);
    if (conn_bytes_sent(c) > c->write_sent_mark) {
        write_timer_arm(c);
        return;
    }
    log_info("http: closing %s: it read none of its responses (%zu bytes queued) for %llu ms",
             c->remote_addr, c->write_queue_bytes, (unsigned long long)c->server->write_timeout_ms);
    conn_close(c);
}

/* Bytes of responses queued on every connection (the loop thread's alone). */
static size_t http_write_queue_bytes_total;

size_t http_write_queue_bytes_held(void)
{
    return http_write_queue_bytes_total;
}

static void on_written(uv_write_t *w, int status)
{
    http_out *out = w->data;
    http_conn *c = out->conn;
    ASSERT(c->writes_in_flight > 0 && c->write_queue_bytes >= out->write_bytes);
    ASSERT(http_write_queue_bytes_total >= out->write_bytes);
    c->write_queue_bytes -= out->write_bytes;
    http_write_queue_bytes_total -= out->write_bytes;
    free(out);
    c->writes_in_flight--;
    if (c->writes_in_flight == 0 && !c->closing) uv_timer_stop(&c->write_timer);
    if (status < 0 && !c->closing) {
        log_debug("http: write to %s failed: %s", c->remote_addr, uv_strerror(status));
        conn_close(c);
    } else {
        conn_pump(c);
    }
    http_conn_unref(c);
}

/* Writes head, the Connection line (or nothing) and body as one uv_write.
 * out is freed by the write callback, or here when the write cannot start. */
static int conn_write(http_conn *c, uv_stream_t *stream, http_out *out, const char *conn_line)
{
    uv_buf_t bufs[3];
    unsigned n = 0;
    bufs[n++] = uv_buf_init(out->data, (unsigned)out->head_len);
    if (conn_line) bufs[n++] = uv_buf_init((char *)conn_line, (unsigned)strlen(conn_line));
    if (out->body_len) bufs[n++] = uv_buf_init(out->data + out->head_len, (unsigned)out->body_len);
    out->conn = c;
    out->write.data = out;
    out->write_bytes = 0;
    for (unsigned i = 0; i < n; i++)
        out->write_bytes += bufs[i].len;
    /* Counted first: what uv_write writes at once leaves the stream's queue
     * size at once, and conn_bytes_sent compares that with the total. */
    c->write_bytes_total += out->write_bytes;
    int rc = uv_write(&out->write, stream, bufs, n, on_written);
    if (rc < 0) {
        log_debug("http: write to %s failed: %s", c->remote_addr, uv_strerror(rc));
        c->write_bytes_total -= out->write_bytes;
        free(out);
        return rc;
    }
    http_conn_ref(c);
    c->writes_in_flight++;
    c->write_queue_bytes += out->write_bytes;
    http_write_queue_bytes_total += out->write_bytes;
    if (c->writes_in_flight == 1) write_timer_arm(c);
    return 0;
}

static http_out *out_new_raw(const char *text)
{
    size_t len = strlen(text);
    http_out *out = malloc(sizeof *out + len);
    if (!out) return NULL;
    memcpy(out->data, text, len);
    out->head_len = len;
    out->body_len = 0;
    return out;
}

static const char *server_date(http_server *s)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now == s->date_s) return s->date;
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(s->date, sizeof s->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    s->date_s = now;
    return s->date;
}

/* Headers the server writes itself, and values that would split the head. */
static bool header_allowed(const http_header *h)
{
    if (!strcasecmp(h->name, "content-length") || !strcasecmp(h->name, "connection") ||
        !strcasecmp(h->name, "date") || !strcasecmp(h->name, "transfer-encoding")) {
        return false;
    }
    if (strpbrk(h->name, "\r\n:") || strpbrk(h->value, "\r\n")) {
        log_warn("http: dropped response header '%s' with a line break", h->name);
        return false;
    }
    return true;
}

static size_t head_append(char *dst, size_t cap, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t head_append(char *dst, size_t cap, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst + len, cap - len, fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < cap - len);
    return len + (size_t)n;
}

/* Builds the response (all but the Connection line, chosen when it is
 * written) and marks the request answered. A body from a source says its
 * length (length) and gives no bytes here (body NULL). */
static int msg_set_response_of(http_msg *m, int status, const http_header *headers, int n_headers,
                               const char *body, size_t body_len, uint64_t length)
{
    http_conn *c = m->req.conn;
    ASSERT(c->server && m->out == NULL);
    bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
    size_t send_bytes = (bodiless || m->is_head || !body) ? 0 : body_len;
    const char *text = http_status_text(status);
    size_t head_max = 128 + strlen(text);
    for (int i = 0; i < n_headers; i++) {
        head_max += strlen(headers[i].name) + strlen(headers[i].value) + 4;
    }
    http_out *out = malloc(sizeof *out + head_max + send_bytes);
    if (!out) return ERR_NOMEM;
    size_t len = head_append(out->data, head_max, 0, "HTTP/1.1 %d %s\r\n", status, text);
    for (int i = 0; i < n_headers; i++) {
        if (!header_allowed(&headers[i])) continue;
        len =
            head_append(out->data, head_max, len, "%s: %s\r\n", headers[i].name, headers[i].value);
    }
    len = head_append(out->data, head_max, len, "Date: %s\r\n", server_date(c->server));
    if (!bodiless)
        len = head_append(out->data, head_max, len, "Content-Length: %llu\r\n",
                          (unsigned long long)length);
    out->head_len = len;
    out->body_len = send_bytes;
    if (send_bytes) memcpy(out->data + len, body, send_bytes);
    m->out = out;
    m->state = HTTP_MSG_ANSWERED;
    return ERR_OK;
}

static int msg_set_response(http_msg *m, int status, const http_header *headers, int n_headers,
                            const char *body, size_t body_len)
{
    return msg_set_response_of(m, status, headers, n_headers, body ? body : "", body_len, body_len);
}

/* {"code": code, "message": message}, malloc'd; NULL when out of memory. */
static char *error_body(const char *code, const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "code", code, "message", message);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

/* origin: the request's Origin header when its headers were read (mirrored,
 * as every other response does, so that a browser can read the error), or
 * NULL. */
static int msg_set_error(http_msg *m, int status, const char *code, const char *message,
                         const char *origin)
{
    http_header headers[4] = {{"Content-Type", "application/json"}};
    int n = 1;
    if (origin) {
        headers[n++] = (http_header){"Access-Control-Allow-Origin", origin};
        headers[n++] = (http_header){"Access-Control-Allow-Credentials", "true"};
        headers[n++] = (http_header){"Vary", "Origin"};
    }
    char *body = error_body(code, message);
    if (!body) return ERR_NOMEM;
    int rc = msg_set_response(m, status, headers, n, body, strlen(body));
    free(body);
    return rc;
}

/* ---- the connection's state machine ---- */

/* Requests are read and parsed only while the pipeline has room and the
 * responses already queued for writing are within their bound (a request
 * begun is finished first, so that its timers never run while reading is
 * paused by the server). */
bool http_conn_can_parse(const http_conn *c)
{
    if (c->parsing && c->parsing->stream_paused) return false; /* the handler is busy */
    bool room = c->write_queue_bytes <= LIMIT_HTTP_WRITE_QUEUE_BYTES_MAX &&
                (c->write_queue_bytes == 0 ||
                 http_write_queue_bytes_total <= LIMIT_HTTP_WRITE_QUEUE_TOTAL_BYTES_MAX);
    return !c->closing && !c->stop_parsing && !c->lingering &&
           c->queue_len < LIMIT_HTTP_PIPELINE_REQUESTS_MAX && (c->parsing != NULL || room);
}

void http_conn_message_begun(http_conn *c)
{
    if (c->timer_kind != HTTP_TIMER_HEAD) {
        timer_arm(c, HTTP_TIMER_HEAD, c->server->cfg.header_timeout_ms);
    }
}

/* "Expect: 100-continue" is answered only when no earlier response is still
 * to be written (it must not overtake them); otherwise the client sends the
 * body after its own wait, as RFC 9110 allows. */
static bool expects_continue(const http_conn *c, const http_msg *m)
{
    const char *expect = http_request_header(&m->req, "expect");
    if (!expect || strcasecmp(expect, "100-continue") != 0) return false;
    return c->parser.http_major == 1 && c->parser.http_minor > 0;
}

static void send_continue(http_conn *c)
{
    http_out *out = out_new_raw(CONTINUE_HEAD);
    if (!out || conn_write(c, (uv_stream_t *)c->tcp, out, NULL) != 0) conn_close(c);
}

static void conn_maybe_continue(http_conn *c, http_msg *m)
{
    if (expects_continue(c, m) && !c->queue_head) send_continue(c);
}

static void conn_dispatch(http_conn *c, http_msg *m);

/* A streamed request goes to the handler as soon as its headers are in; it
 * stays the request being parsed while its body arrives. */
static void conn_dispatch_streamed(http_conn *c, http_msg *m)
{
    const http_parser *p = &c->parser;
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length);
    bool may_continue = c->queue_head == NULL; /* see conn_maybe_continue */
    m->req.streamed = true;
    m->req.body = "";
    queue_push(c, m);
    timer_stop(c);
    conn_dispatch(c, m);
    if (c->closing || c->parsing != m) return; /* answered at once: the body is not read */
    ASSERT(m->stream_cbs && "a streamed request is answered or started by its handler");
    if (!has_body) return;
    if (may_continue && expects_continue(c, m)) send_continue(c);
    if (!m->stream_paused) timer_arm(c, HTTP_TIMER_BODY, m->stream_idle_ms);
}

void http_conn_headers_done(http_conn *c, http_msg *m)
{
    const http_parser *p = &c->parser;
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    http_server *s = c->server;
    if (s->cfg.stream_route && !m->req.upgrade && s->cfg.stream_route(s->ctx, &m->req)) {
        conn_dispatch_streamed(c, m);
        return;
    }
    if (has_length && p->content_length > c->body_bytes_max) {
        http_conn_fail(c, 413, "PayloadTooLarge", "Request body exceeds the limit of %zu bytes",
                       c->body_bytes_max);
        return;
    }
    bool has_body = (p->flags & F_CHUNKED) || (has_length && p->content_length > 0);
    if (!has_body) {
        timer_stop(c);
        return;
    }
    conn_maybe_continue(c, m);
    timer_arm(c, HTTP_TIMER_BODY, c->server->cfg.body_timeout_ms);
}

static void conn_dispatch(http_conn *c, http_msg *m)
{
    http_server *s = c->server;
    ASSERT(s && m->state != HTTP_MSG_DISPATCHED);
    m->state = HTTP_MSG_DISPATCHED;
    s->cb(s->ctx, &m->req); /* may answer, close or take over before returning */
}

void http_conn_message_done(http_conn *c, http_msg *m)
{
    if (m->req.streamed) {
        /* Its body is complete: it is in the queue already. */
        timer_stop(c);
        if (!m->req.keep_alive) c->stop_parsing = true;
        if (m->stream_over) return;
        if (m->stream_paused) {
            m->stream_end_pending = true; /* told at the resume */
            return;
        }
        m->stream_over = true;
        m->stream_cbs->on_end(m->stream_data);
        return;
    }
    ASSERT(m->state == HTTP_MSG_PARSING && m->headers_done);
    timer_stop(c);
    queue_push(c, m);
    if (!m->req.keep_alive || m->req.upgrade) c->stop_parsing = true;
    if (m->req.upgrade) {
        /* Handed over only at the head of the queue, so that a take-over
         * never overtakes earlier responses. The rest is the new protocol's. */
        m->state = HTTP_MSG_HELD;
        c->pump_again = true;
        return;
    }
    conn_dispatch(c, m);
}

/* A streamed request stops being parsed: no more of its body is read, and
 * its answer closes the connection. */
static void stream_detach(http_conn *c, http_msg *m)
{
    ASSERT(c->parsing == m && m->req.streamed);
    c->parsing = NULL;
    c->stop_parsing = true;
    m->close_after = true;
    m->stream_paused = false;
    if (c->timer_kind == HTTP_TIMER_BODY) timer_stop(c);
}

void http_conn_fail(http_conn *c, int status, const char *code, const char *fmt, ...)
{
    if (c->closing || c->lingering) return;
    if (c->parsing && c->parsing->req.streamed) {
        /* The handler holds it: it hears why and answers. */
        http_msg *m = c->parsing;
        char why[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        log_debug("http: %s: streamed body: %d %s", c->remote_addr, status, why);
        stream_detach(c, m);
        if (!m->stream_over) {
            m->stream_over = true;
            m->stream_cbs->on_abort(m->stream_data, status, code, why);
        }
        return;
    }
    char origin[512] = "";
    const http_msg *parsing = c->parsing;
    if (parsing && parsing->headers_done && parsing->req.headers) {
        const char *o = http_request_header(&parsing->req, "origin");
        if (o && strlen(o) < sizeof origin) snprintf(origin, sizeof origin, "%s", o);
    }
    http_msg_free(c->parsing);
    c->parsing = NULL;
    c->stop_parsing = true;
    c->fail_status = 0;
    timer_stop(c);
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    log_debug("http: %s: %d %s", c->remote_addr, status, message);
    http_msg *m = http_msg_new(c);
    if (!m || msg_set_error(m, status, code, message, origin[0] ? origin : NULL) != ERR_OK) {
        http_msg_free(m);
        conn_close(c);
        return;
    }
    m->synthetic = true;
    queue_push(c, m);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    c->shutdown_done = true;
    if (!c->closing && (status < 0 || c->eof)) conn_close(c);
    http_conn_unref(c);
}

/* After a closing response: send FIN once it is written, then drain input
 * until the client closes (or HTTP_LINGER_MS), so it reads the response
 * rather than a reset caused by unread bytes. */
static void conn_linger(http_conn *c)
{
    if (c->closing) return;
    ASSERT(!c->lingering && c->queue_head == NULL && c->body == NULL);
    ASSERT(!c->parsing || !c->parsing->req.streamed);
    c->lingering = true;
    c->stop_parsing = true;
    http_msg_free(c->parsing);
    c->parsing = NULL;
    timer_arm(c, HTTP_TIMER_LINGER, HTTP_LINGER_MS);
    c->shutdown_req.data = c;
    http_conn_ref(c);
    int rc = uv_shutdown(&c->shutdown_req, (uv_stream_t *)c->tcp, on_shutdown);
    if (rc < 0) {
        http_conn_unref(c);
        conn_close(c);
    }
}

static bool msg_closes_conn(const http_conn *c, const http_msg *m)
{
    if (m->synthetic || m->close_after || !m->req.keep_alive || m->req.upgrade) return true;
    bool last = c->queue_head == NULL;
    return last && (c->eof || (c->server && c->server->shutting_down));
}

static void body_begin(http_conn *c, http_body *b, bool close_after);

/* Writes the answered requests at the head of the queue, in order; a
 * response with a body from a source holds the ones after it until that
 * body is sent. */
static void conn_flush(http_conn *c)
{
    while (!c->closing && !c->lingering && !c->body && c->queue_head &&
           c->queue_head->state == HTTP_MSG_ANSWERED) {
        http_msg *m = queue_pop(c);
        bool close = msg_closes_conn(c, m);
        http_out *out = m->out;
        http_body *body = m->body_src;
        m->out = NULL;
        m->body_src = NULL;
        http_msg_free(m);
        if (conn_write(c, (uv_stream_t *)c->tcp, out, close ? CONN_CLOSE : CONN_KEEP_ALIVE)) {
            http_body_discard(body);
            conn_close(c);
        } else if (body) {
            body_begin(c, body, close); /* lingers once sent, when close */
        } else if (close) {
            conn_linger(c);
        }
    }
}

static void conn_dispatch_held(http_conn *c)
{
    http_msg *m = c->queue_head;
    if (c->closing || c->lingering || !m || m->state != HTTP_MSG_HELD) return;
    conn_dispatch(c, m);
}

/* Parses what was read while parsing had to stop, once it may go on. */
static void conn_resume(http_conn *c)
{
    if (c->stash_len == 0 || !http_conn_can_parse(c)) return;
    size_t used = http_conn_parse(c, c->stash, c->stash_len);
    if (c->closing) return;
    ASSERT(used <= c->stash_len);
    memmove(c->stash, c->stash + used, c->stash_len - used);
    c->stash_len -= used;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn *c = h->data;
    buf->base = c->server->read_buf;
    buf->len = sizeof c->server->read_buf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_update_reading(http_conn *c)
{
    bool want = c->lingering ? !c->eof : (http_conn_can_parse(c) && c->stash_len == 0 && !c->eof);
    if (want == c->reading) return;
    if (want) {
        int rc = uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
        if (rc < 0) {
            conn_close(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)c->tcp);
    }
    c->reading = want;
}

/* After any change: close a finished connection, read or pause, and keep
 * the idle timer running exactly while nothing is pending. */
static void conn_settle(http_conn *c)
{
    if (c->closing) return;
    ASSERT(c->writes_in_flight > 0 || c->write_queue_bytes == 0);
    http_server *s = c->server;
    bool quiet = c->queue_head == NULL && c->writes_in_flight == 0;
    if (quiet && !c->lingering && (c->eof || (s && s->shutting_down))) {
        conn_close(c);
        return;
    }
    conn_update_reading(c);
    if (c->closing || c->lingering) return;
    if (quiet && c->parsing == NULL && c->timer_kind == HTTP_TIMER_NONE) {
        timer_arm(c, HTTP_TIMER_IDLE, s->cfg.idle_timeout_ms);
    } else if (!quiet && c->timer_kind == HTTP_TIMER_IDLE) {
        timer_stop(c);
    }
}

/* The one place progress happens: write what is ready, hand over a waiting
 * upgrade, parse what waited, then settle. Re-entrant calls (a handler
 * answering synchronously) only ask for another round. */
static void conn_pump(http_conn *c)
{
    if (c->busy) {
        c->pump_again = true;
        return;
    }
    if (c->closing) return;
    http_conn_ref(c);
    c->busy = true;
    do {
        c->pump_again = false;
        conn_flush(c);
        body_continue(c);
        conn_dispatch_held(c);
        conn_resume(c);
    } while (c->pump_again && !c->closing);
    c->busy = false;
    conn_settle(c);
    http_conn_unref(c);
}

static int conn_stash(http_conn *c, const char *data, size_t len)
{
    ASSERT(c->stash_len + len <= HTTP_READ_BYTES_MAX);
    if (c->stash_len + len > c->stash_cap) {
        char *stash = realloc(c->stash, c->stash_len + len);
        if (!stash) return ERR_NOMEM;
        c->stash = stash;
        c->stash_cap = c->stash_len + len;
    }
    memcpy(c->stash + c->stash_len, data, len);
    c->stash_len += len;
    return ERR_OK;
}

static void conn_read_ended(http_conn *c, ssize_t nread)
{
    if (nread != UV_EOF) {
        log_debug("http: read from %s failed: %s", c->remote_addr, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    c->eof = true;
    if (c->lingering) {
        if (c->shutdown_done)
            conn_close(c);
        else
            conn_update_reading(c);
        return;
    }
    c->stop_parsing = true; /* a request cut short is dropped */
    if (c->parsing && c->parsing->req.streamed) {
        http_conn_fail(c, 400, "BadRequest", "The request body ended before it was complete");
    } else {
        http_msg_free(c->parsing);
        c->parsing = NULL;
    }
    if (c->timer_kind == HTTP_TIMER_HEAD || c->timer_kind == HTTP_TIMER_BODY) timer_stop(c);
    conn_pump(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = stream->data;
    if (nread == 0 || c->closing) return;
    if (nread < 0) {
        conn_read_ended(c, nread);
        return;
    }
    if (c->lingering) return; /* drained */
    ASSERT(c->stash_len == 0);
    http_conn_ref(c);
    c->busy = true;
    size_t used = http_conn_parse(c, buf->base, (size_t)nread);
    if (used < (size_t)nread && !c->closing && !c->lingering &&
        conn_stash(c, buf->base + used, (size_t)nread - used) != ERR_OK) {
        conn_close(c);
    }
    c->busy = false;
    conn_pump(c);
    http_conn_unref(c);
}

/* ---- accepting ---- */

static void conn_fill_remote(http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            port = ntohs(a->sin6_port);
            snprintf(c->remote_addr, sizeof c->remote_addr, "[%s]:%d", ip, port);
            return;
        }
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    }
    snprintf(c->remote_addr, sizeof c->remote_addr, "%s:%d", ip, port);
}

static http_conn *conn_new(http_server *s, bool rejected)
{
    http_conn *c = calloc(1, sizeof *c);
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!c || !tcp) {
        free(c);
        free(tcp);
        return NULL;
    }
    uv_tcp_init(s->loop, tcp);
    uv_timer_init(s->loop, &c->timer);
    uv_timer_init(s->loop, &c->write_timer);
    tcp->data = c;
    c->timer.data = c;
    c->write_timer.data = c;
    c->tcp = tcp;
    c->server = s;
    c->refs = 1;
    c->handles_open = 3;
    c->rejected = rejected;
    c->body_bytes_max = s->cfg.body_bytes_max;
    c->header_bytes_max = s->cfg.header_bytes_max;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (rejected)
        s->conns_rejected++;
    else
        s->conns_active++;
    return c;
}

static void on_dropped_closed(uv_handle_t *h)
{
    free(h);
}

/* Out of memory or over every bound: take the connection off the backlog
 * and close it without a word. */
static void accept_and_drop(http_server *s)
{
    uv_tcp_t *tcp = malloc(sizeof *tcp);
    if (!tcp) return;
    uv_tcp_init(s->loop, tcp);
    uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)tcp);
    uv_close((uv_handle_t *)tcp, on_dropped_closed);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server *s = listener->data;
    if (status < 0) {
        log_warn("http: accept failed: %s", uv_strerror(status));
        return;
    }
    int max = s->cfg.connections_max;
    bool over = s->conns_active >= max;
    if (over && s->conns_rejected >= max) {
        accept_and_drop(s);
        return;
    }
    http_conn *c = conn_new(s, over);
    if (!c) {
        accept_and_drop(s);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(c->tcp, 1);
    conn_fill_remote(c);
    if (over) {
        log_warn("http: refused %s: %d connections open (the limit)", c->remote_addr, max);
        http_conn_fail(c, 503, "TooManyConnections",
                       "The server already has the maximum of %d connections open", max);
    } else {
        timer_arm(c, HTTP_TIMER_HEAD, s->cfg.header_timeout_ms);
    }
    conn_pump(c);
}

/* ---- the server ---- */

static void config_defaults(http_server_config *cfg)
{
    if (!cfg->body_bytes_max) cfg->body_bytes_max = LIMIT_HTTP_BODY_BYTES_MAX;
    if (!cfg->header_bytes_max) cfg->header_bytes_max = LIMIT_HTTP_HEADER_BYTES_MAX;
    if (!cfg->header_timeout_ms) cfg->header_timeout_ms = LIMIT_HTTP_HEADER_TIMEOUT_MS;
    if (!cfg->body_timeout_ms) cfg->body_timeout_ms = LIMIT_HTTP_BODY_TIMEOUT_MS;
    if (!cfg->idle_timeout_ms) cfg->idle_timeout_ms = LIMIT_HTTP_IDLE_TIMEOUT_MS;
    if (cfg->connections_max <= 0) cfg->connections_max = LIMIT_HTTP_CONNECTIONS_MAX;
}

static void on_listener_freed(uv_handle_t *h)
{
    free(h->data);
}

static int server_listen(http_server *s, err_t *e)
{
    const char *host = s->cfg.host;
    struct sockaddr_storage addr;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, s->cfg.port, (struct sockaddr_in6 *)&addr)
                               : uv_ip4_addr(host, s->cfg.port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        return err_set(e, ERR_INVALID_ARGUMENT, "'%s' is not an IPv4 or IPv6 address", host);
    }
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, HTTP_LISTEN_BACKLOG, on_connection);
    if (rc != 0) {
        return err_set(e, ERR_IO, "Cannot listen on %s port %d: %s", host, s->cfg.port,
                       uv_strerror(rc));
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return ERR_OK;
}

int http_server_start(uv_loop_t *loop, const http_server_config *cfg, http_request_cb cb, void *ctx,
                      http_server **out, err_t *e)
{
    ASSERT(loop && cfg && cb && out);
    *out = NULL;
    if (!cfg->host || cfg->port < 0 || cfg->port > 65535) {
        return err_set(e, ERR_INVALID_ARGUMENT, "The HTTP server needs a host and a port 0-65535");
    }
    http_server *s = calloc(1, sizeof *s);
    if (!s) return err_set(e, ERR_NOMEM, "Out of memory starting the HTTP server");
    s->loop = loop;
    s->cb = cb;
    s->ctx = ctx;
    s->cfg = *cfg;
    config_defaults(&s->cfg);
    s->write_timeout_ms = LIMIT_HTTP_WRITE_TIMEOUT_MS;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = server_listen(s, e);
    if (rc != ERR_OK) {
        uv_close((uv_handle_t *)&s->listener, on_listener_freed);
        return rc;
    }
    log_debug("http: listening on %s port %d", s->cfg.host, s->port);
    *out = s;
    return ERR_OK;
}

int http_server_port(const http_server *s)
{
    return s->port;
}

int http_server_connections(const http_server *s)
{
    return s->conns_active;
}

void http_server_set_write_timeout_for_test(http_server *s, uint64_t ms)
{
    ASSERT(ms > 0);
    s->write_timeout_ms = ms;
}

static void on_grace_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    if (s->done) s->done(s->done_data);
    free(s);
}

static void server_maybe_done(http_server *s)
{
    if (!s->shutting_down || !s->listener_closed || s->conns || s->grace_closing) return;
    s->grace_closing = true;
    uv_close((uv_handle_t *)&s->grace_timer, on_grace_closed);
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    s->listener_closed = true;
    server_maybe_done(s);
}

static void on_grace_expired(uv_timer_t *t)
{
    http_server *s = t->data;
    log_warn("http: shutdown grace of %d ms over; closing the remaining connections",
             LIMIT_HTTP_SHUTDOWN_GRACE_MS);
    http_conn *next;
    for (http_conn *c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c);
    }
}

void http_server_shutdown(http_server *s, void (*done)(void *data), void *data)
{
    ASSERT(!s->shutting_down);
    s->shutting_down = true;
    s->done = done;
    s->done_data = data;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    uv_timer_init(s->loop, &s->grace_timer);
    s->grace_timer.data = s;
    uv_timer_start(&s->grace_timer, on_grace_expired, LIMIT_HTTP_SHUTDOWN_GRACE_MS, 0);
    /* Idle connections close now; the others once their last response is out
     * (conn_settle). A pump can close a connection but not unlink it. */
    http_conn *next;
    for (http_conn *c = s->conns; c; c = next) {
        next = c->next;
        conn_pump(c);
    }
}

/* ---- answering ---- */

void http_respond(http_request *req, int status, const http_header *headers, int n_headers,
                  const char *body, size_t body_len)
{
    http_msg *m = (http_msg *)req;
    http_conn *c = req->conn;
    ASSERT(m->state == HTTP_MSG_DISPATCHED);
    if (m->orphan) { /* the client is gone */
        http_msg_free(m);
        return;
    }
    ASSERT(!c->closing && !c->lingering);
    if (m->req.streamed && c->parsing == m) stream_detach(c, m); /* the rest is not wanted */
    m->stream_over = true;
    if (msg_set_response(m, status, headers, n_headers, body, body_len) != ERR_OK) {
        log_error("http: out of memory answering %s", c->remote_addr);
        conn_close(c); /* makes m an orphan */
        http_msg_free(m);
        return;
    }
    conn_pump(c);
}

void http_respond_error(http_request *req, int status, const char *code, const char *message)
{
    static const http_header json_type[] = {{"Content-Type", "application/json"}};
    static const char fallback[] =
        "{\"code\":\"InternalServerError\",\"message\":\"Out of memory\"}";
    char *body = error_body(code, message);
    if (body)
        http_respond(req, status, json_type, 1, body, strlen(body));
    else
        http_respond(req, 500, json_type, 1, fallback, sizeof fallback - 1);
    free(body);
}

const char *http_request_header(const http_request *req, const char *lowercase_name)
{
    for (int i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, lowercase_name) == 0) return req->headers[i].value;
    }
    return NULL;
}

const char *http_status_text(int status)
{
    const char *text = http_status_str((enum http_status)status);
    return strcmp(text, "<unknown>") == 0 ? "Unknown" : text;
}

/* ---- handing over ---- */

int http_take_over(http_request *req, const char *response_head, uv_tcp_t **stream_out,
                   char **leftover, size_t *leftover_len)
{
    http_msg *m = (http_msg *)req;
    http_conn *c = req->conn;
    ASSERT(m->state == HTTP_MSG_DISPATCHED && req->upgrade);
    *stream_out = NULL;
    *leftover = NULL;
    *leftover_len = 0;
    if (m->orphan) {
        http_msg_free(m);
        return ERR_IO;
    }
    /* Held until it reached the head and nothing is parsed after an upgrade. */
    ASSERT(c->queue_head == m && m->next == NULL && !c->closing && !c->lingering);
    http_out *out = out_new_raw(response_head);
    if (!out || conn_write(c, (uv_stream_t *)c->tcp, out, NULL) != 0) {
        conn_close(c); /* makes m an orphan */
        http_msg_free(m);
        return out ? ERR_IO : ERR_NOMEM;
    }
    queue_pop(c);
    uv_read_stop((uv_stream_t *)c->tcp);
    c->reading = false;
    c->closing = true;
    c->stop_parsing = true;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->write_timer, on_timer_closed);
    *stream_out = c->tcp;
    c->tcp->data = NULL;
    c->tcp = NULL;
    c->handles_open--; /* the stream is the caller's now; the timers are still closing */
    if (c->stash_len > 0) {
        *leftover = c->stash;
        *leftover_len = c->stash_len;
    } else {
        free(c->stash);
    }
    c->stash = NULL;
    c->stash_len = c->stash_cap = 0;
    conn_detach(c);
    http_msg_free(m);
    return ERR_OK;
}

/* ---- streamed request bodies ---- */

void http_stream_start(http_request *req, const http_stream_cbs *cbs, void *data, bool paused,
                       uint64_t idle_timeout_ms)
{
    http_msg *m = (http_msg *)req;
    ASSERT(req->streamed && m->state == HTTP_MSG_DISPATCHED && !m->stream_cbs);
    ASSERT(cbs && cbs->on_data && cbs->on_end && cbs->on_abort);
    http_conn *c = req->conn;
    m->stream_cbs = cbs;
    m->stream_data = data;
    m->stream_paused = paused;
    m->stream_idle_ms = idle_timeout_ms ? idle_timeout_ms : c->server->cfg.body_timeout_ms;
}

void http_conn_stream_data(http_conn *c, http_msg *m, const char *at, size_t n)
{
    ASSERT(c->parsing == m && m->stream_cbs && !m->stream_over);
    timer_arm(c, HTTP_TIMER_BODY, m->stream_idle_ms);
    int r = m->stream_cbs->on_data(m->stream_data, at, n);
    /* The last piece of a body with a Content-Length: the parser must reach
     * the message's end now (with no more input it never would), so a pause
     * there only delays on_end until the resume. */
    bool last = !(c->parser.flags & F_CHUNKED) && c->parser.content_length == 0;
    if (c->parsing != m || r == HTTP_STREAM_STOP) {
        if (c->parsing == m) stream_detach(c, m);
        m->stream_over = true;
        c->event = HTTP_PARSE_STREAM;
        http_parser_pause(&c->parser, 1);
    } else if (r == HTTP_STREAM_PAUSE) {
        m->stream_paused = true;
        timer_stop(c);
        if (!last) {
            c->event = HTTP_PARSE_STREAM;
            http_parser_pause(&c->parser, 1);
        }
    }
}

void http_stream_resume(http_request *req)
{
    http_msg *m = (http_msg *)req;
    http_conn *c = req->conn;
    ASSERT(req->streamed);
    if (!m->stream_paused || m->orphan || c->closing) return;
    m->stream_paused = false;
    if (m->stream_end_pending) {
        m->stream_end_pending = false;
        m->stream_over = true;
        m->stream_cbs->on_end(m->stream_data);
    } else if (c->parsing == m) {
        timer_arm(c, HTTP_TIMER_BODY, m->stream_idle_ms);
    }
    conn_pump(c);
}

/* ---- response bodies from a source ---- */

static http_body *body_new(const http_body_source *src, uint64_t length)
{
    http_body *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->src = *src;
    b->remaining = length;
    b->sock_fd = -1;
    return b;
}

static void on_body_poll_closed(uv_handle_t *h)
{
    free(h);
}

/* Frees a body nothing is outstanding on: the source is released, the file
 * and the socket's dup closed. */
static void body_free(http_body *b)
{
    ASSERT(!b->busy && !b->conn);
    if (b->poll) uv_close((uv_handle_t *)b->poll, on_body_poll_closed);
    if (b->sock_fd >= 0) close(b->sock_fd);
    if (b->src.fd >= 0) close(b->src.fd);
    if (b->src.release) b->src.release(b->src.data);
    free(b);
}

void http_body_discard(http_body *b)
{
    if (b) body_free(b);
}

static void body_begin(http_conn *c, http_body *b, bool close_after)
{
    ASSERT(!c->body && !b->conn);
    c->body = b;
    b->conn = c;
    b->loop = c->server->loop;
    b->close_after = close_after;
    b->queued = b->remaining;
    c->write_queue_bytes += b->queued;
    http_write_queue_bytes_total += b->queued;
    http_conn_ref(c);
    if (++c->writes_in_flight == 1) write_timer_arm(c);
}

/* The connection lets go of its body (closing, or the body is done). */
static http_body *body_detach(http_conn *c)
{
    http_body *b = c->body;
    ASSERT(b && b->conn == c && c->writes_in_flight > 0 && c->write_queue_bytes >= b->queued);
    c->body = NULL;
    b->conn = NULL;
    ASSERT(http_write_queue_bytes_total >= b->queued);
    c->write_queue_bytes -= b->queued;
    http_write_queue_bytes_total -= b->queued;
    b->queued = 0;
    if (--c->writes_in_flight == 0 && !c->closing) uv_timer_stop(&c->write_timer);
    return b;
}

static void body_abandon(http_conn *c)
{
    if (!c->body) return;
    http_body *b = body_detach(c);
    if (!b->busy) body_free(b); /* else when the sendfile or the pull returns */
    http_conn_unref(c);
}

static void body_finish(http_conn *c)
{
    http_body *b = body_detach(c);
    bool close = b->close_after;
    body_free(b);
    if (close) conn_linger(c);
    c->pump_again = true; /* the responses after it may go now */
    http_conn_unref(c);
}

static void body_sent(http_conn *c, http_body *b, size_t n)
{
    ASSERT(n <= b->remaining && n <= b->queued);
    ASSERT(http_write_queue_bytes_total >= n);
    b->remaining -= n;
    b->queued -= n;
    c->write_queue_bytes -= n;
    http_write_queue_bytes_total -= n;
}

static void on_body_writable(uv_poll_t *p, int status, int events)
{
    (void)events;
    http_body *b = p->data;
    uv_poll_stop(p);
    b->waiting = false;
    if (!b->conn) return;
    if (status < 0) {
        conn_close(b->conn);
        return;
    }
    conn_pump(b->conn);
}

/* The socket's buffer is full: wait for room (a poll on the dup of the
 * socket: libuv watches the stream itself only while it has writes). */
static void body_wait_writable(http_conn *c, http_body *b)
{
    if (!b->poll) {
        b->poll = malloc(sizeof *b->poll);
        if (!b->poll || uv_poll_init(b->loop, b->poll, b->sock_fd) != 0) {
            free(b->poll);
            b->poll = NULL;
            conn_close(c);
            return;
        }
        b->poll->data = b;
    }
    b->waiting = true;
    if (uv_poll_start(b->poll, UV_WRITABLE, on_body_writable) != 0) {
        b->waiting = false;
        conn_close(c);
    }
}

/* Thread pool: one sendfile(2) on the non-blocking socket. */
static void sendfile_work(uv_work_t *w)
{
    http_body *b = w->data;
    off_t off = (off_t)b->src.offset;
    ssize_t n = sendfile(b->sock_fd, b->src.fd, &off, b->send_len);
    b->sent = n >= 0 ? n : -(ssize_t)errno;
}

static void sendfile_done(uv_work_t *w, int status)
{
    http_body *b = w->data;
    b->busy = false;
    http_conn *c = b->conn;
    if (!c) {
        body_free(b);
        return;
    }
    if (status < 0 || (b->sent < 0 && b->sent != -EAGAIN && b->sent != -EINTR) ||
        (b->sent == 0 && b->send_len > 0)) {
        log_debug("http: sending a file to %s failed: %s", c->remote_addr,
                  b->sent < 0 ? strerror((int)-b->sent) : "the file is shorter than announced");
        conn_close(c);
        return;
    }
    size_t n = b->sent > 0 ? (size_t)b->sent : 0;
    b->src.offset += n;
    c->write_bytes_total += n;
    body_sent(c, b, n);
    if (b->remaining > 0 && n < b->send_len)
        body_wait_writable(c, b);
    else
        conn_pump(c);
}

/* Moves the body on: another sendfile, another pull, or its end. */
static void body_continue(http_conn *c)
{
    http_body *b = c->body;
    if (!b || c->closing || b->busy || b->waiting) return;
    if (b->remaining == 0) {
        body_finish(c);
        return;
    }
    if (b->src.fd >= 0) {
        /* After the head: the stream's own writes come first. */
        if (c->writes_in_flight > 1) return;
        if (b->sock_fd < 0) {
            uv_os_fd_t fd;
            if (uv_fileno((const uv_handle_t *)c->tcp, &fd) != 0 || (b->sock_fd = dup(fd)) < 0) {
                conn_close(c);
                return;
            }
        }
        b->send_len =
            b->remaining < LIMIT_FILE_SEND_BYTES ? (size_t)b->remaining : LIMIT_FILE_SEND_BYTES;
        b->work.data = b;
        b->busy = true;
        if (uv_queue_work(b->loop, &b->work, sendfile_work, sendfile_done) != 0) {
            b->busy = false;
            conn_close(c);
        }
        return;
    }
    /* A pulled body: one piece being written while the next is fetched. */
    if (c->writes_in_flight > 2) return;
    b->busy = true;
    size_t max =
        b->remaining < LIMIT_FILE_SEND_BYTES ? (size_t)b->remaining : LIMIT_FILE_SEND_BYTES;
    b->src.pull(b->src.data, b, max);
}

void http_body_piece(http_body *b, const char *bytes, size_t len)
{
    ASSERT(b->busy);
    b->busy = false;
    http_conn *c = b->conn;
    if (!c) {
        body_free(b);
        return;
    }
    if (len == 0 || len > b->remaining) {
        log_warn("http: the body for %s could not be produced: closing", c->remote_addr);
        conn_close(c);
        return;
    }
    http_out *out = malloc(sizeof *out + len);
    if (!out) {
        conn_close(c);
        return;
    }
    memcpy(out->data, bytes, len);
    out->head_len = len;
    out->body_len = 0;
    body_sent(c, b, len); /* now counted by the write instead */
    if (conn_write(c, (uv_stream_t *)c->tcp, out, NULL) != 0) {
        conn_close(c);
        return;
    }
    conn_pump(c);
}

static void source_release(const http_body_source *src)
{
    if (src->fd >= 0) close(src->fd);
    if (src->release) src->release(src->data);
}

void http_respond_body(http_request *req, int status, const http_header *headers, int n_headers,
                       uint64_t length, const http_body_source *src)
{
    http_msg *m = (http_msg *)req;
    http_conn *c = req->conn;
    ASSERT(m->state == HTTP_MSG_DISPATCHED && src && (src->fd >= 0 || src->pull));
    if (m->orphan) {
        source_release(src);
        http_msg_free(m);
        return;
    }
    ASSERT(!c->closing && !c->lingering);
    bool send = !m->is_head && length > 0;
    http_body *b = send ? body_new(src, length) : NULL;
    if (m->req.streamed && c->parsing == m) stream_detach(c, m);
    m->stream_over = true;
    /* headers may point into the source's data: released only after this */
    int rc = send && !b ? ERR_NOMEM
                        : msg_set_response_of(m, status, headers, n_headers, NULL, 0, length);
    if (!b) source_release(src);
    if (rc != ERR_OK) {
        http_body_discard(b);
        log_error("http: out of memory answering %s", c->remote_addr);
        conn_close(c); /* makes m an orphan */
        http_msg_free(m);
        return;
    }
    m->body_src = b;
    conn_pump(c);
}
