/*
 * test_http.c — the HTTP/1.1 server (net/http.h) against real sockets: each
 * test starts a server on its own loop, talks to it through non-blocking
 * client sockets on 127.0.0.1, and drives the loop from the test thread
 * (uv_run NOWAIT between polls), so everything is single-threaded and
 * deterministic. Responses are read back with http-parser.
 * Thread: the test's main thread (which is also the loop thread).
 */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <uv.h>

#include "base/clock.h"
#include "base/limits.h"
#include "base/log.h"
#include "net/http.h"
#include "net/http_conn.h" /* http_server_set_write_timeout_for_test */
#include "net/ws.h"

#define WAIT_MS 2000
#define RESPONSES_MAX 32
#define RAW_BYTES_MAX (256u * 1024)

/* ---- the server side ---- */

typedef struct env {
    uv_loop_t loop;
    http_server *srv;
    int port;
    int requests;    /* handler calls */
    int outstanding; /* handed to the handler, not answered */
    int outstanding_max;
    int async_fired;
    bool done;
    char last_remote[64];
    uint64_t last_start_us;
    char last_body[256];
    bool last_body_terminated;
    /* take-over */
    int take_over_rc;
    uv_tcp_t *ws;
    char *leftover;
    size_t leftover_len;
    char ws_in[256];
    size_t ws_in_len;
} env;

typedef struct async_job {
    uv_timer_t timer;
    env *e;
    http_request *req;
} async_job;

static void respond_echo(env *e, http_request *req)
{
    const char *x = http_request_header(req, "x-test");
    char body[512];
    int n = snprintf(body, sizeof body, "%s %s q=%s len=%zu x=%s", req->method, req->path,
                     req->query ? req->query : "-", req->body_len, x ? x : "-");
    static const http_header headers[] = {{"Content-Type", "text/plain"}};
    e->outstanding--;
    http_respond(req, 200, headers, 1, body, (size_t)n);
}

static void on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_async_timer(uv_timer_t *t)
{
    async_job *job = t->data;
    job->e->async_fired++;
    respond_echo(job->e, job->req);
    uv_close((uv_handle_t *)t, on_async_closed);
}

static void answer_later(env *e, http_request *req)
{
    const char *ms = req->query && !strncmp(req->query, "ms=", 3) ? req->query + 3 : "10";
    async_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    job->e = e;
    job->req = req;
    uv_timer_init(&e->loop, &job->timer);
    job->timer.data = job;
    uv_timer_start(&job->timer, on_async_timer, (uint64_t)atoi(ms), 0);
}

static void ws_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    env *e = h->data;
    buf->base = e->ws_in + e->ws_in_len;
    buf->len = sizeof e->ws_in - 1 - e->ws_in_len;
}

static void ws_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    env *e = s->data;
    if (nread > 0) e->ws_in_len += (size_t)nread;
    e->ws_in[e->ws_in_len] = '\0';
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static const char WS_HEAD[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n\r\n";

static void take_over(env *e, http_request *req)
{
    e->outstanding--;
    e->take_over_rc = http_take_over(req, WS_HEAD, &e->ws, &e->leftover, &e->leftover_len);
    if (e->take_over_rc != 0) return;
    e->ws->data = e;
    uv_read_start((uv_stream_t *)e->ws, ws_alloc, ws_read);
}

/* /big?n=BYTES: a body of that many bytes. */
static void respond_big(env *e, http_request *req)
{
    size_t n = req->query && !strncmp(req->query, "n=", 2) ? (size_t)atol(req->query + 2) : 0;
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, 'x', n);
    static const http_header headers[] = {{"Content-Type", "application/octet-stream"}};
    e->outstanding--;
    http_respond(req, 200, headers, 1, body, n);
    free(body);
}

static void handler(void *ctx, http_request *req)
{
    env *e = ctx;
    e->requests++;
    e->outstanding++;
    if (e->outstanding > e->outstanding_max) e->outstanding_max = e->outstanding;
    snprintf(e->last_remote, sizeof e->last_remote, "%s", req->remote_addr);
    e->last_start_us = req->start_us;
    snprintf(e->last_body, sizeof e->last_body, "%s", req->body);
    e->last_body_terminated = req->body[req->body_len] == '\0';
    if (req->upgrade && !strcmp(req->path, "/ws")) {
        take_over(e, req);
    } else if (!strcmp(req->path, "/async")) {
        answer_later(e, req);
    } else if (!strcmp(req->path, "/big")) {
        respond_big(e, req);
    } else if (!strcmp(req->path, "/error")) {
        e->outstanding--;
        http_respond_error(req, 404, "NotFound", "No \"such\" thing");
    } else {
        respond_echo(e, req);
    }
}

static void env_start(env *e, http_server_config cfg)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    if (!cfg.host) cfg.host = "127.0.0.1";
    err_t err;
    err_init(&err);
    assert_int_equal(http_server_start(&e->loop, &cfg, handler, e, &e->srv, &err), 0);
    e->port = http_server_port(e->srv);
    assert_true(e->port > 0);
}

static void on_done(void *data)
{
    ((env *)data)->done = true;
}

/* ---- the client side ---- */

typedef struct response {
    int status;
    char connection[32];
    char content_type[64];
    bool has_date;
    long content_length;
    char body[1024];
    size_t body_len;
} response;

typedef struct client {
    int fd;
    http_parser parser;
    bool head_request; /* the responses answer HEAD: no body */
    response r[RESPONSES_MAX];
    int n_started;
    int n_done;
    char field[64];
    bool eof;
    char *raw;
    size_t raw_len;
} client;

static response *cur(client *c)
{
    assert_true(c->n_started > 0 && c->n_started <= RESPONSES_MAX);
    return &c->r[c->n_started - 1];
}

static int cl_begin(http_parser *p)
{
    client *c = p->data;
    c->n_started++;
    memset(cur(c), 0, sizeof(response));
    cur(c)->content_length = -1;
    return 0;
}

static int cl_field(http_parser *p, const char *at, size_t n)
{
    client *c = p->data;
    snprintf(c->field, sizeof c->field, "%.*s", (int)n, at);
    return 0;
}

static int cl_value(http_parser *p, const char *at, size_t n)
{
    client *c = p->data;
    response *r = cur(c);
    if (!strcasecmp(c->field, "connection"))
        snprintf(r->connection, sizeof r->connection, "%.*s", (int)n, at);
    if (!strcasecmp(c->field, "content-type"))
        snprintf(r->content_type, sizeof r->content_type, "%.*s", (int)n, at);
    if (!strcasecmp(c->field, "date")) r->has_date = n == 29;
    if (!strcasecmp(c->field, "content-length")) r->content_length = atol(at);
    return 0;
}

static int cl_headers_done(http_parser *p)
{
    client *c = p->data;
    cur(c)->status = (int)p->status_code;
    return c->head_request ? 1 : 0;
}

static int cl_body(http_parser *p, const char *at, size_t n)
{
    response *r = cur(p->data);
    assert_true(r->body_len + n < sizeof r->body);
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

static int cl_done(http_parser *p)
{
    client *c = p->data;
    c->n_done++;
    return 0;
}

static const http_parser_settings client_settings = {
    .on_message_begin = cl_begin,
    .on_header_field = cl_field,
    .on_header_value = cl_value,
    .on_headers_complete = cl_headers_done,
    .on_body = cl_body,
    .on_message_complete = cl_done,
};

static void client_open_on(client *c, int family, const char *ip, int port)
{
    memset(c, 0, sizeof *c);
    c->raw = calloc(1, RAW_BYTES_MAX + 1);
    assert_non_null(c->raw);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->fd = socket(family, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &a->sin_addr);
        len = sizeof *a;
    }
    /* The kernel completes the handshake from the backlog; accept comes later. */
    assert_int_equal(connect(c->fd, (struct sockaddr *)&ss, len), 0);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static void client_open(client *c, env *e)
{
    client_open_on(c, AF_INET, "127.0.0.1", e->port);
}

static void client_close(client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    free(c->raw);
    c->raw = NULL;
}

/* Closes with a reset (SO_LINGER 0): the server sees ECONNRESET. */
static void client_reset(client *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    client_close(c);
}

static void client_poll(client *c)
{
    if (c->fd < 0 || c->eof) return;
    for (;;) {
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            c->eof = true;
            return;
        }
        assert_true(c->raw_len + (size_t)n <= RAW_BYTES_MAX);
        memcpy(c->raw + c->raw_len, buf, (size_t)n);
        c->raw_len += (size_t)n;
        if (!c->parser.upgrade) http_parser_execute(&c->parser, &client_settings, buf, (size_t)n);
    }
}

static void step(env *e, client *c)
{
    uv_run(&e->loop, UV_RUN_NOWAIT);
    if (c) {
        client_poll(c);
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (c->fd >= 0 && !c->eof) poll(&pfd, 1, 1);
    } else {
        poll(NULL, 0, 1);
    }
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

static void client_send_len(env *e, client *c, const char *data, size_t len)
{
    size_t off = 0;
    uint64_t deadline = clock_mono_ms() + WAIT_MS;
    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            fail_msg("send: %s", strerror(errno));
        else
            step(e, c);
        assert_true(clock_mono_ms() < deadline);
    }
}

static void client_send(env *e, client *c, const char *text)
{
    client_send_len(e, c, text, strlen(text));
}

typedef bool (*cond_fn)(env *e, client *c, int arg);

static bool run_until(env *e, client *c, cond_fn cond, int arg, int timeout_ms)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    while (!cond(e, c, arg)) {
        if (clock_mono_ms() > deadline) return false;
        step(e, c);
    }
    return true;
}

static bool has_responses(env *e, client *c, int n)
{
    return c->n_done >= n || c->eof;
}

static bool is_eof(env *e, client *c, int unused)
{
    return c->eof;
}

static bool is_done(env *e, client *c, int unused)
{
    return e->done;
}

static bool has_requests(env *e, client *c, int n)
{
    return e->requests >= n;
}

static bool has_connections(env *e, client *c, int n)
{
    return http_server_connections(e->srv) >= n;
}

static void wait_responses(env *e, client *c, int n)
{
    assert_true(run_until(e, c, has_responses, n, WAIT_MS));
    assert_int_equal(c->n_done, n);
}

static void wait_eof(env *e, client *c)
{
    assert_true(run_until(e, c, is_eof, 0, WAIT_MS));
}

static void run_for(env *e, client *c, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (clock_mono_ms() < end)
        step(e, c);
}

static void env_stop(env *e)
{
    if (!e->done) {
        http_server_shutdown(e->srv, on_done, e);
        assert_true(run_until(e, NULL, is_done, 0, WAIT_MS + LIMIT_HTTP_SHUTDOWN_GRACE_MS));
    }
    uv_run(&e->loop, UV_RUN_DEFAULT); /* async jobs still pending, closes */
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e->leftover);
}

static void assert_error(const response *r, int status, const char *code, const char *message)
{
    char expect[512];
    snprintf(expect, sizeof expect, "{\"code\":\"%s\",\"message\":\"%s\"}", code, message);
    assert_int_equal(r->status, status);
    assert_string_equal(r->content_type, "application/json");
    assert_string_equal(r->connection, "close");
    assert_int_equal(r->body_len, strlen(expect));
    assert_memory_equal(r->body, expect, r->body_len);
}

static void assert_body(const response *r, const char *expect)
{
    assert_int_equal(r->body_len, strlen(expect));
    assert_memory_equal(r->body, expect, r->body_len);
}

static http_server_config defaults(void)
{
    return (http_server_config){.host = "127.0.0.1"};
}

/* ---- the tests ---- */

static void test_get_echoes_method_path_and_headers(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nX-TEST: Yes\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 200);
    assert_body(&c.r[0], "GET /hello q=x=1 len=0 x=Yes");
    assert_string_equal(c.r[0].connection, "keep-alive");
    assert_string_equal(c.r[0].content_type, "text/plain");
    assert_true(c.r[0].has_date);
    assert_int_equal(c.r[0].content_length, (long)c.r[0].body_len);
    assert_true(!strncmp(e.last_remote, "127.0.0.1:", 10));
    assert_true(e.last_start_us > 0 && e.last_start_us <= clock_mono_us());
    assert_true(e.last_body_terminated);
    assert_false(c.eof);
    client_close(&c);
    env_stop(&e);
}

static void test_post_with_content_length_delivers_body(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "POST /api HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello");
    run_for(&e, &c, 20); /* the body arrives in two pieces */
    assert_int_equal(e.requests, 0);
    client_send(&e, &c, " world");
    wait_responses(&e, &c, 1);
    assert_body(&c.r[0], "POST /api q=- len=11 x=-");
    assert_string_equal(e.last_body, "hello world");
    assert_true(e.last_body_terminated);
    client_close(&c);
    env_stop(&e);
}

static void test_chunked_body_is_reassembled(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c,
                "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_body(&c.r[0], "POST /c q=- len=11 x=-");
    assert_string_equal(e.last_body, "hello world");
    assert_true(e.last_body_terminated);
    client_close(&c);
    env_stop(&e);
}

static void test_keep_alive_serves_two_requests_on_one_socket(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 1);
    client_send(&e, &c, "GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 2);
    assert_body(&c.r[0], "GET /one q=- len=0 x=-");
    assert_body(&c.r[1], "GET /two q=- len=0 x=-");
    assert_string_equal(c.r[1].connection, "keep-alive");
    assert_int_equal(http_server_connections(e.srv), 1);
    client_close(&c);
    env_stop(&e);
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c,
                "GET /async?ms=80 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
                "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz");
    assert_true(run_until(&e, &c, has_requests, 3, WAIT_MS));
    assert_int_equal(c.n_done, 0); /* /a and /b are answered but wait for /async */
    wait_responses(&e, &c, 3);
    assert_body(&c.r[0], "GET /async q=ms=80 len=0 x=-");
    assert_body(&c.r[1], "GET /a q=- len=0 x=-");
    assert_body(&c.r[2], "POST /b q=- len=3 x=-");
    client_close(&c);
    env_stop(&e);
}

static void test_pipeline_bound_pauses_reading_instead_of_failing(void **state)
{
    enum { N = LIMIT_HTTP_PIPELINE_REQUESTS_MAX + 8 };
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    char req[N * 64] = "";
    for (int i = 0; i < N; i++) {
        char one[64];
        snprintf(one, sizeof one, "GET /async?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", 20 - i % 3);
        strcat(req, one);
    }
    client_send(&e, &c, req);
    wait_responses(&e, &c, N);
    assert_int_equal(e.requests, N);
    /* Sixteen were parsed and held by the handler; the rest waited unread. */
    assert_int_equal(e.outstanding_max, LIMIT_HTTP_PIPELINE_REQUESTS_MAX);
    for (int i = 0; i < N; i++) {
        char expect[64];
        snprintf(expect, sizeof expect, "GET /async q=ms=%d len=0 x=-", 20 - i % 3);
        assert_body(&c.r[i], expect);
    }
    client_close(&c);
    env_stop(&e);
}

static void test_connection_close_is_honoured(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_string_equal(c.r[0].connection, "close");
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_http10_gets_one_response_then_close(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /old HTTP/1.0\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_body(&c.r[0], "GET /old q=- len=0 x=-");
    assert_string_equal(c.r[0].connection, "close");
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_http10_keep_alive_is_honoured(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_string_equal(c.r[0].connection, "keep-alive");
    client_close(&c);
    env_stop(&e);
}

static void test_head_response_has_length_but_no_body(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    c.head_request = true;
    client_send(&e, &c, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nHEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 2);
    assert_int_equal(c.r[0].content_length, (long)strlen("HEAD /h q=- len=0 x=-"));
    assert_int_equal(c.r[0].body_len, 0);
    assert_int_equal(c.r[1].status, 200);
    client_close(&c);
    env_stop(&e);
}

static void test_respond_error_escapes_json(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /error HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 404);
    assert_body(&c.r[0], "{\"code\":\"NotFound\",\"message\":\"No \\\"such\\\" thing\"}");
    assert_string_equal(c.r[0].connection, "keep-alive");
    client_close(&c);
    env_stop(&e);
}

static void test_body_over_limit_by_content_length_is_413(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.body_bytes_max = 16;
    env_start(&e, cfg);
    client_open(&c, &e);
    client_send(&e, &c, "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    wait_responses(&e, &c, 1); /* before any body byte was sent */
    assert_error(&c.r[0], 413, "PayloadTooLarge", "Request body exceeds the limit of 16 bytes");
    assert_int_equal(e.requests, 0);
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_body_limit_default_is_named_in_message(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 8388609\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 413, "PayloadTooLarge",
                 "Request body exceeds the limit of 8388608 bytes");
    client_close(&c);
    env_stop(&e);
}

static void test_chunked_body_over_limit_is_413(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.body_bytes_max = 16;
    env_start(&e, cfg);
    client_open(&c, &e);
    client_send(&e, &c,
                "POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "a\r\n0123456789\r\na\r\n0123456789\r\n");
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 413, "PayloadTooLarge", "Request body exceeds the limit of 16 bytes");
    assert_int_equal(e.requests, 0);
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_headers_over_limit_are_431(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.header_bytes_max = 512;
    env_start(&e, cfg);
    client_open(&c, &e);
    char req[2048];
    char big[1001];
    memset(big, 'a', 1000);
    big[1000] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: %s\r\n\r\n", big);
    client_send(&e, &c, req);
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 431, "RequestHeaderFieldsTooLarge",
                 "Request headers exceed the limit of 512 bytes");
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_header_bytes_count_the_whole_head(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.header_bytes_max = 100;
    env_start(&e, cfg);
    client_open(&c, &e);
    /* Short names and values but many separators: over 100 raw bytes. */
    client_send(&e, &c,
                "GET / HTTP/1.1\r\na:       1\r\nb:       2\r\nc:       3\r\nd:       4\r\n"
                "e:       5\r\nf:       6\r\ng:       7\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 431);
    client_close(&c);
    env_stop(&e);
}

static void test_too_many_headers_are_431(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    char req[8192] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i <= LIMIT_HTTP_HEADER_COUNT_MAX; i++) {
        char line[32];
        snprintf(line, sizeof line, "X-H%d: v\r\n", i);
        strcat(req, line);
    }
    strcat(req, "\r\n");
    client_send(&e, &c, req);
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 431, "RequestHeaderFieldsTooLarge",
                 "Request has more than 100 header fields");
    client_close(&c);
    env_stop(&e);
}

static void test_long_target_is_414(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    size_t n = LIMIT_HTTP_URL_BYTES_MAX + 10;
    char *req = malloc(n + 64);
    assert_non_null(req);
    strcpy(req, "GET /");
    memset(req + 5, 'u', n);
    strcpy(req + 5 + n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    client_send(&e, &c, req);
    free(req);
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 414, "URITooLong", "Request target exceeds the limit of 8192 bytes");
    client_close(&c);
    env_stop(&e);
}

static void test_malformed_request_line_is_400(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GARBAGE / HTTP/1.1\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 400, "BadRequest", "Malformed HTTP request: invalid HTTP method");
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_error_after_good_request_keeps_order(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /async?ms=40 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/9\r\n\r\n");
    wait_responses(&e, &c, 2);
    assert_int_equal(c.r[0].status, 200);
    assert_string_equal(c.r[0].connection, "keep-alive");
    assert_int_equal(c.r[1].status, 400);
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_slow_headers_time_out_with_408(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.header_timeout_ms = 200;
    env_start(&e, cfg);
    client_open(&c, &e);
    uint64_t t0 = clock_mono_ms();
    client_send(&e, &c, "GET / HTTP/1.1\r\nHost: t\r\n");
    wait_responses(&e, &c, 1);
    assert_true(clock_mono_ms() - t0 >= 180);
    assert_error(&c.r[0], 408, "RequestTimeout",
                 "Request headers were not received within the limit of 200 ms");
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_silent_connection_times_out_with_408(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.header_timeout_ms = 200;
    env_start(&e, cfg);
    client_open(&c, &e);
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 408);
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_slow_body_times_out_with_408(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.body_timeout_ms = 200;
    env_start(&e, cfg);
    client_open(&c, &e);
    client_send(&e, &c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345");
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 408, "RequestTimeout",
                 "Request body was not received within the limit of 200 ms");
    assert_int_equal(e.requests, 0);
    client_close(&c);
    env_stop(&e);
}

static void test_idle_keep_alive_connection_is_closed_silently(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.idle_timeout_ms = 200;
    cfg.header_timeout_ms = 150; /* must not apply between requests */
    env_start(&e, cfg);
    client_open(&c, &e);
    client_send(&e, &c, "GET /async?ms=250 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 1); /* a slow handler is not an idle connection */
    uint64_t t0 = clock_mono_ms();
    size_t raw_after_response = c.raw_len;
    wait_eof(&e, &c);
    uint64_t waited = clock_mono_ms() - t0;
    assert_true(waited >= 180 && waited < 1000);
    assert_int_equal(c.raw_len, raw_after_response); /* no 408, nothing */
    client_close(&c);
    env_stop(&e);
}

static void test_connections_over_limit_get_503(void **state)
{
    env e;
    client a, b, c;
    http_server_config cfg = defaults();
    cfg.connections_max = 2;
    env_start(&e, cfg);
    client_open(&a, &e);
    client_open(&b, &e);
    assert_true(run_until(&e, NULL, has_connections, 2, WAIT_MS));
    client_open(&c, &e);
    wait_responses(&e, &c, 1);
    assert_error(&c.r[0], 503, "TooManyConnections",
                 "The server already has the maximum of 2 connections open");
    wait_eof(&e, &c);
    client_send(&e, &a, "GET /still HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &a, 1);
    assert_int_equal(a.r[0].status, 200);
    assert_int_equal(http_server_connections(e.srv), 2);
    client_close(&a);
    client_close(&b);
    client_close(&c);
    env_stop(&e);
}

/* ---- a client that does not read (or reads slowly) ---- */

#define BIG_RESPONSE_BYTES (256u * 1024)
#define SMALL_RCVBUF_BYTES 4096

/* A raw client counting the responses it reads, bodies discarded. */
typedef struct reader {
    int fd;
    http_parser parser;
    int responses;
    int responses_ok;  /* 200 with a body of the expected size */
    size_t body_bytes; /* of the response being read */
    size_t expect_body_bytes;
    size_t read_bytes;
    bool eof;
} reader;

static int rd_begin(http_parser *p)
{
    ((reader *)p->data)->body_bytes = 0;
    return 0;
}

static int rd_body(http_parser *p, const char *at, size_t n)
{
    ((reader *)p->data)->body_bytes += n;
    return 0;
}

static int rd_done(http_parser *p)
{
    reader *r = p->data;
    r->responses++;
    if (p->status_code == 200 && r->body_bytes == r->expect_body_bytes) r->responses_ok++;
    return 0;
}

static const http_parser_settings reader_settings = {
    .on_message_begin = rd_begin,
    .on_body = rd_body,
    .on_message_complete = rd_done,
};

/* Connects with a small receive buffer (set before connect, so that the
 * window is small from the start) and sends n pipelined GET /big requests. */
static void reader_open(reader *r, env *e, int n, size_t body_bytes)
{
    memset(r, 0, sizeof *r);
    r->expect_body_bytes = body_bytes;
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    int rcvbuf = SMALL_RCVBUF_BYTES;
    assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
    char one[96];
    int len = snprintf(one, sizeof one, "GET /big?n=%zu HTTP/1.1\r\nHost: t\r\n\r\n", body_bytes);
    uint64_t deadline = clock_mono_ms() + WAIT_MS;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        while (off < (size_t)len) {
            ssize_t k = send(r->fd, one + off, (size_t)len - off, MSG_NOSIGNAL);
            if (k > 0)
                off += (size_t)k;
            else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                fail_msg("send: %s", strerror(errno));
            else
                step(e, NULL);
            assert_true(clock_mono_ms() < deadline);
        }
    }
}

/* Reads at most max_bytes of what has arrived. */
static void reader_read(reader *r, size_t max_bytes)
{
    char buf[16384];
    while (max_bytes > 0 && !r->eof) {
        size_t want = max_bytes < sizeof buf ? max_bytes : sizeof buf;
        ssize_t n = recv(r->fd, buf, want, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            r->eof = true;
            return;
        }
        r->read_bytes += (size_t)n;
        max_bytes -= (size_t)n;
        size_t used = http_parser_execute(&r->parser, &reader_settings, buf, (size_t)n);
        assert_int_equal(used, (size_t)n);
    }
}

static bool has_no_connections(env *e, client *c, int unused)
{
    return http_server_connections(e->srv) == 0;
}

static void test_unread_responses_pause_reading_until_the_client_reads(void **state)
{
    /* 64 MiB of responses asked for; the client reads none of them at first. */
    enum { N = 256 };
    env e;
    reader r;
    env_start(&e, defaults());
    reader_open(&r, &e, N, BIG_RESPONSE_BYTES);
    run_for(&e, NULL, 300);
    /* Only about the write bound's worth of requests was parsed (plus what
     * the kernel buffers took and one pipeline's worth of overshoot): the
     * rest waits unread in the socket instead of as responses in memory. */
    int parsed = e.requests;
    size_t kernel_allowance_bytes = 16u * 1024 * 1024;
    int bound =
        (int)((LIMIT_HTTP_WRITE_QUEUE_BYTES_MAX + kernel_allowance_bytes) / BIG_RESPONSE_BYTES) +
        LIMIT_HTTP_PIPELINE_REQUESTS_MAX;
    assert_true(bound < N);
    if (parsed > bound) fail_msg("%d of %d requests parsed with no response read", parsed, N);
    run_for(&e, NULL, 200);
    assert_int_equal(e.requests, parsed); /* it stays paused */
    assert_int_equal(http_server_connections(e.srv), 1);
    /* The client reads: every response arrives, in full, on the same connection. */
    uint64_t deadline = clock_mono_ms() + 10 * WAIT_MS;
    while (r.responses < N && !r.eof && clock_mono_ms() < deadline) {
        reader_read(&r, SIZE_MAX);
        step(&e, NULL);
    }
    assert_int_equal(r.responses, N);
    assert_int_equal(r.responses_ok, N);
    assert_false(r.eof);
    assert_int_equal(e.requests, N);
    assert_int_equal(http_server_connections(e.srv), 1);
    close(r.fd);
    env_stop(&e);
}

static void test_write_timeout_closes_a_client_that_never_reads(void **state)
{
    enum { N = 128 }; /* 32 MiB: more than the write bound and the kernel buffers */
    env e;
    reader r;
    env_start(&e, defaults());
    http_server_set_write_timeout_for_test(e.srv, 150);
    reader_open(&r, &e, N, BIG_RESPONSE_BYTES);
    assert_true(run_until(&e, NULL, has_requests, 1, WAIT_MS));
    /* Generous: a stall is noticed within two periods of the timeout. */
    assert_true(run_until(&e, NULL, has_no_connections, 0, WAIT_MS));
    assert_true(e.requests < N);
    reader_read(&r, SIZE_MAX); /* what the kernel held, then the end */
    assert_true(r.responses < N);
    close(r.fd);
    env_stop(&e);
}

static void test_slow_reader_making_progress_is_not_timed_out(void **state)
{
    enum { N = 16, WRITE_TIMEOUT_MS = 150 };
    env e;
    reader r;
    env_start(&e, defaults());
    http_server_set_write_timeout_for_test(e.srv, WRITE_TIMEOUT_MS);
    reader_open(&r, &e, N, BIG_RESPONSE_BYTES);
    /* 4 MiB at about 2 MiB/s: far longer than the write timeout, with the
     * server's writes pending (the client's window is small) all along. */
    uint64_t t0 = clock_mono_ms();
    uint64_t deadline = t0 + 10 * WAIT_MS;
    while (r.responses < N && !r.eof && clock_mono_ms() < deadline) {
        reader_read(&r, 16384);
        uint64_t pause_end = clock_mono_ms() + 8;
        while (clock_mono_ms() < pause_end)
            step(&e, NULL);
    }
    uint64_t took = clock_mono_ms() - t0;
    assert_int_equal(r.responses, N);
    assert_int_equal(r.responses_ok, N);
    assert_false(r.eof);
    assert_true(took > 4 * WRITE_TIMEOUT_MS); /* the test tested something */
    assert_int_equal(http_server_connections(e.srv), 1);
    /* Once everything is written the write timer is off: the connection
     * waits for its next request like any idle keep-alive connection. */
    run_for(&e, NULL, 3 * WRITE_TIMEOUT_MS);
    assert_int_equal(http_server_connections(e.srv), 1);
    close(r.fd);
    env_stop(&e);
}

static void test_client_reset_before_async_response_is_safe(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /async?ms=60 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(&e, &c, has_requests, 1, WAIT_MS));
    client_reset(&c);
    run_for(&e, NULL, 30);
    assert_int_equal(http_server_connections(e.srv), 0); /* gone; the request lives on */
    run_for(&e, NULL, 80);
    assert_int_equal(e.async_fired, 1); /* answered into the void, freed (ASan) */
    env_stop(&e);
}

static void test_client_half_close_still_gets_async_response(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c, "GET /async?ms=40 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(&e, &c, has_requests, 1, WAIT_MS));
    shutdown(c.fd, SHUT_WR);
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 200);
    assert_string_equal(c.r[0].connection, "close");
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_expect_100_continue_gets_interim_response(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(
        &e, &c,
        "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 100);
    assert_true(!strncmp(c.raw, "HTTP/1.1 100 Continue\r\n\r\n", 25));
    client_send(&e, &c, "hello");
    wait_responses(&e, &c, 2);
    assert_body(&c.r[1], "POST /up q=- len=5 x=-");
    client_close(&c);
    env_stop(&e);
}

static void test_expect_100_continue_over_limit_gets_413_only(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.body_bytes_max = 4;
    env_start(&e, cfg);
    client_open(&c, &e);
    client_send(
        &e, &c,
        "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 413);
    client_close(&c);
    env_stop(&e);
}

static bool has_ws_bytes(env *e, client *c, int n)
{
    return e->ws_in_len >= (size_t)n;
}

static void test_take_over_hands_stream_and_leftover(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c,
                "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                "HELLO");
    assert_true(run_until(&e, &c, has_requests, 1, WAIT_MS));
    assert_int_equal(e.take_over_rc, 0);
    assert_non_null(e.ws);
    assert_int_equal(e.leftover_len, 5);
    assert_memory_equal(e.leftover, "HELLO", 5);
    assert_int_equal(http_server_connections(e.srv), 0);
    while (c.raw_len < strlen(WS_HEAD))
        step(&e, &c);
    assert_memory_equal(c.raw, WS_HEAD, strlen(WS_HEAD));
    client_send(&e, &c, "MORE");
    assert_true(run_until(&e, &c, has_ws_bytes, 4, WAIT_MS));
    assert_string_equal(e.ws_in, "MORE");
    uv_close((uv_handle_t *)e.ws, free_handle);
    wait_eof(&e, &c);
    client_close(&c);
    env_stop(&e);
}

static void test_take_over_waits_for_earlier_pipelined_responses(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c,
                "GET /async?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    assert_true(run_until(&e, &c, has_requests, 2, WAIT_MS));
    assert_int_equal(e.async_fired, 1); /* /ws reached the handler only after /async */
    assert_int_equal(e.leftover_len, 0);
    assert_null(e.leftover);
    assert_true(run_until(&e, &c, has_responses, 2, WAIT_MS)); /* the 200, then the 101 */
    while (c.raw_len < strlen(WS_HEAD) + 10)
        step(&e, &c);
    const char *head = strstr(c.raw, "HTTP/1.1 101");
    assert_non_null(head);
    assert_true(head > c.raw); /* after the 200 */
    uv_close((uv_handle_t *)e.ws, free_handle);
    client_close(&c);
    env_stop(&e);
}

static void test_upgrade_answered_normally_closes_the_connection(void **state)
{
    env e;
    client c;
    env_start(&e, defaults());
    client_open(&c, &e);
    client_send(&e, &c,
                "GET /plain HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
                "GET /never HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_body(&c.r[0], "GET /plain q=- len=0 x=-");
    assert_string_equal(c.r[0].connection, "close");
    wait_eof(&e, &c);
    assert_int_equal(e.requests, 1); /* bytes after an upgrade request are not HTTP */
    client_close(&c);
    env_stop(&e);
}

static void test_shutdown_waits_for_in_flight_request(void **state)
{
    env e;
    client busy, idle;
    env_start(&e, defaults());
    client_open(&busy, &e);
    client_open(&idle, &e);
    client_send(&e, &idle, "GET /i HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &idle, 1);
    client_send(&e, &busy, "GET /async?ms=150 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(run_until(&e, &busy, has_requests, 2, WAIT_MS));

    uint64_t t0 = clock_mono_ms();
    http_server_shutdown(e.srv, on_done, &e);
    wait_eof(&e, &idle); /* idle connections close at once */
    assert_false(e.done);
    client_send(&e, &busy, "GET /late HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &busy, 2);
    assert_body(&busy.r[0], "GET /async q=ms=150 len=0 x=-");
    assert_string_equal(busy.r[0].connection, "keep-alive");
    assert_body(&busy.r[1], "GET /late q=- len=0 x=-");
    assert_string_equal(busy.r[1].connection, "close");
    wait_eof(&e, &busy);
    client_close(&busy);
    assert_true(run_until(&e, NULL, is_done, 0, WAIT_MS));
    assert_true(clock_mono_ms() - t0 < 1500);
    client_close(&idle);
    env_stop(&e);
}

static void test_ipv6_loopback_serves(void **state)
{
    env e;
    client c;
    http_server_config cfg = defaults();
    cfg.host = "::1";
    memset(&e, 0, sizeof e);
    assert_int_equal(uv_loop_init(&e.loop), 0);
    err_t err;
    err_init(&err);
    if (http_server_start(&e.loop, &cfg, handler, &e, &e.srv, &err) != 0) {
        uv_run(&e.loop, UV_RUN_DEFAULT);
        uv_loop_close(&e.loop);
        skip(); /* no IPv6 on this machine */
    }
    e.port = http_server_port(e.srv);
    client_open_on(&c, AF_INET6, "::1", e.port);
    client_send(&e, &c, "GET /six HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_responses(&e, &c, 1);
    assert_int_equal(c.r[0].status, 200);
    assert_true(!strncmp(e.last_remote, "[::1]:", 6));
    client_close(&c);
    env_stop(&e);
}

static void test_bad_host_is_refused_with_message(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    http_server_config cfg = {.host = "not-an-ip"};
    http_server *s = NULL;
    err_t err;
    err_init(&err);
    assert_int_equal(http_server_start(&loop, &cfg, handler, NULL, &s, &err), ERR_INVALID_ARGUMENT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not-an-ip"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A WebSocket whose peer reads nothing is cut off at its own bound; when all
 * sockets together hold too much, any holding more than a fair share is. */
static void test_unread_websocket_bytes_are_bounded_per_socket_and_in_all(void **state)
{
    (void)state;
    assert_false(ws_unread_too_much(0, 0));
    assert_false(
        ws_unread_too_much(LIMIT_WS_SEND_BUFFER_BYTES_MAX, LIMIT_WS_SEND_BUFFER_BYTES_MAX));
    assert_true(
        ws_unread_too_much(LIMIT_WS_SEND_BUFFER_BYTES_MAX + 1, LIMIT_WS_SEND_BUFFER_BYTES_MAX + 1));
    size_t over_all = (size_t)LIMIT_WS_SEND_BUFFER_TOTAL_BYTES_MAX + 1;
    assert_false(ws_unread_too_much(LIMIT_WS_SEND_BUFFER_FAIR_BYTES, over_all));
    assert_true(ws_unread_too_much(LIMIT_WS_SEND_BUFFER_FAIR_BYTES + 1, over_all));
    assert_false(ws_unread_too_much(LIMIT_WS_SEND_BUFFER_FAIR_BYTES + 1,
                                    (size_t)LIMIT_WS_SEND_BUFFER_TOTAL_BYTES_MAX));
}

int main(void)
{
    log_init(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unread_websocket_bytes_are_bounded_per_socket_and_in_all),
        cmocka_unit_test(test_get_echoes_method_path_and_headers),
        cmocka_unit_test(test_post_with_content_length_delivers_body),
        cmocka_unit_test(test_chunked_body_is_reassembled),
        cmocka_unit_test(test_keep_alive_serves_two_requests_on_one_socket),
        cmocka_unit_test(test_pipelined_requests_are_answered_in_order),
        cmocka_unit_test(test_pipeline_bound_pauses_reading_instead_of_failing),
        cmocka_unit_test(test_connection_close_is_honoured),
        cmocka_unit_test(test_http10_gets_one_response_then_close),
        cmocka_unit_test(test_http10_keep_alive_is_honoured),
        cmocka_unit_test(test_head_response_has_length_but_no_body),
        cmocka_unit_test(test_respond_error_escapes_json),
        cmocka_unit_test(test_body_over_limit_by_content_length_is_413),
        cmocka_unit_test(test_body_limit_default_is_named_in_message),
        cmocka_unit_test(test_chunked_body_over_limit_is_413),
        cmocka_unit_test(test_headers_over_limit_are_431),
        cmocka_unit_test(test_header_bytes_count_the_whole_head),
        cmocka_unit_test(test_too_many_headers_are_431),
        cmocka_unit_test(test_long_target_is_414),
        cmocka_unit_test(test_malformed_request_line_is_400),
        cmocka_unit_test(test_error_after_good_request_keeps_order),
        cmocka_unit_test(test_slow_headers_time_out_with_408),
        cmocka_unit_test(test_silent_connection_times_out_with_408),
        cmocka_unit_test(test_slow_body_times_out_with_408),
        cmocka_unit_test(test_idle_keep_alive_connection_is_closed_silently),
        cmocka_unit_test(test_connections_over_limit_get_503),
        cmocka_unit_test(test_unread_responses_pause_reading_until_the_client_reads),
        cmocka_unit_test(test_write_timeout_closes_a_client_that_never_reads),
        cmocka_unit_test(test_slow_reader_making_progress_is_not_timed_out),
        cmocka_unit_test(test_client_reset_before_async_response_is_safe),
        cmocka_unit_test(test_client_half_close_still_gets_async_response),
        cmocka_unit_test(test_expect_100_continue_gets_interim_response),
        cmocka_unit_test(test_expect_100_continue_over_limit_gets_413_only),
        cmocka_unit_test(test_take_over_hands_stream_and_leftover),
        cmocka_unit_test(test_take_over_waits_for_earlier_pipelined_responses),
        cmocka_unit_test(test_upgrade_answered_normally_closes_the_connection),
        cmocka_unit_test(test_shutdown_waits_for_in_flight_request),
        cmocka_unit_test(test_ipv6_loopback_serves),
        cmocka_unit_test(test_bad_host_is_refused_with_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
