/*
 * http.h — the HTTP/1.1 server on libuv: accepts connections, parses requests
 * with http-parser, enforces the limits of base/limits.h, hands each complete
 * request to one callback and writes the response the callback gives back.
 * Keep-alive and pipelining are supported: responses leave in request order.
 * The server knows nothing of the protocol above it: it never looks at bodies.
 *
 * Two paths for large bodies (file uploads and downloads, api.md §9):
 *   - a streamed request: a route may ask, when a request's headers are in,
 *     for its body in pieces as they arrive instead of whole (stream_route);
 *     the handler pauses the reading of the socket while it writes a piece
 *     away, so an upload holds a bounded amount of memory whatever its size,
 *     and a client that sends nothing for the stream's idle timeout gets 408;
 *   - a response body from a source: a regular file, sent from the page
 *     cache to the socket with sendfile(2) (on the thread pool: the bytes
 *     never pass through the heap), or pieces pulled one at a time from a
 *     producer. Both obey the write back-pressure and the write timeout.
 *
 * Failures the server answers by itself, each with a JSON body
 * {"code": …, "message": …} naming the bound:
 *   400 BadRequest (malformed HTTP), 408 RequestTimeout (headers or body too
 *   slow), 413 PayloadTooLarge (body over body_bytes_max), 431
 *   RequestHeaderFieldsTooLarge (headers over the limit), 503 (too many
 *   connections). After these the connection is closed.
 *
 * Thread: the event-loop thread only, every function here.
 */
#ifndef DOJO_NET_HTTP_H
#define DOJO_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"

typedef struct http_server http_server;
typedef struct http_conn http_conn;

typedef struct http_header {
    const char *name; /* requests: lowercased */
    const char *value;
} http_header;

typedef struct http_request {
    const char *method; /* "GET", "POST", "OPTIONS", … */
    const char *target; /* raw request target, "/api/query?x=1" */
    const char *path;   /* target up to '?', not decoded */
    const char *query;  /* after '?', or NULL */
    const http_header *headers;
    int n_headers;
    const char *body; /* NUL-terminated (the NUL is not counted) */
    size_t body_len;
    bool keep_alive;
    bool upgrade;    /* the client asked to switch protocols */
    bool streamed;   /* the body comes in pieces (http_stream_start); body is "" */
    bool has_length; /* a Content-Length was given: content_length */
    uint64_t content_length;
    char remote_addr[64]; /* "127.0.0.1:51234" */
    uint64_t start_us;    /* clock_mono_us() when the first byte arrived */
    void *user;           /* free for the handler */
    http_conn *conn;      /* private to net/ */
} http_request;

typedef struct http_server_config {
    const char *host;           /* "127.0.0.1", "0.0.0.0", "::1" */
    int port;                   /* 0 = any free port (see http_server_port) */
    size_t body_bytes_max;      /* 0 = LIMIT_HTTP_BODY_BYTES_MAX */
    size_t header_bytes_max;    /* 0 = LIMIT_HTTP_HEADER_BYTES_MAX */
    uint64_t header_timeout_ms; /* 0 = LIMIT_HTTP_HEADER_TIMEOUT_MS */
    uint64_t body_timeout_ms;   /* 0 = LIMIT_HTTP_BODY_TIMEOUT_MS */
    uint64_t idle_timeout_ms;   /* 0 = LIMIT_HTTP_IDLE_TIMEOUT_MS */
    int connections_max;        /* 0 = LIMIT_HTTP_CONNECTIONS_MAX */
    /* Whether a request's body is streamed (see http_stream_start): asked
     * once its headers are in; NULL: no route streams. */
    bool (*stream_route)(void *ctx, const http_request *req);
} http_server_config;

/* Called once per complete request. The handler must call http_respond (or
 * hand the connection over with http_take_over) exactly once, now or later.
 * The request stays valid until then, even if the client goes away (the
 * response is then dropped). */
typedef void (*http_request_cb)(void *ctx, http_request *req);

int http_server_start(uv_loop_t *loop, const http_server_config *cfg, http_request_cb cb, void *ctx,
                      http_server **out, err_t *e);
int http_server_port(const http_server *s);

/* Stops accepting, closes idle connections, lets in-flight requests finish
 * (up to LIMIT_HTTP_SHUTDOWN_GRACE_MS), then closes everything and calls
 * done(data). The server is freed after done returns. */
void http_server_shutdown(http_server *s, void (*done)(void *data), void *data);

/* Sends the response. Content-Length, Date and Connection are added by the
 * server; headers adds the rest (Content-Type included). body is copied. */
void http_respond(http_request *req, int status, const http_header *headers, int n_headers,
                  const char *body, size_t body_len);

/* --- streamed request bodies ------------------------------------------------------- */

/* What on_data returns. */
enum { HTTP_STREAM_GO_ON = 0, HTTP_STREAM_PAUSE = 1, HTTP_STREAM_STOP = -1 };

typedef struct http_stream_cbs {
    /* A piece of the body, valid during the call only. Return GO_ON, PAUSE
     * (nothing more is read from the socket until http_stream_resume), or
     * STOP (the rest of the body is not wanted: the handler answers, and the
     * connection closes after the answer). */
    int (*on_data)(void *data, const char *bytes, size_t len);
    /* Every byte of the body was delivered (after a resume, when the last
     * piece paused). The handler answers when it is ready. */
    void (*on_end)(void *data);
    /* The body will not be complete: the client went away (status 0), was
     * silent for the idle timeout (408), sent malformed framing (400), or
     * ended its input early (400). The handler must still answer (an answer
     * to a client that is gone is dropped); status/code/message are what it
     * may send. */
    void (*on_abort)(void *data, int status, const char *code, const char *message);
} http_stream_cbs;

/* For a request handed over with req->streamed: starts delivering its body
 * to cbs (possibly paused, until http_stream_resume), with idle_timeout_ms
 * (0 = the server's body timeout) between pieces while not paused. Call it
 * during the request callback, or answer instead (the body is then not
 * read, and the connection closes after the answer). An answer given while
 * the body still arrives stops its delivery the same way. */
void http_stream_start(http_request *req, const http_stream_cbs *cbs, void *data, bool paused,
                       uint64_t idle_timeout_ms);
/* Reads on after a PAUSE (or a paused start). */
void http_stream_resume(http_request *req);

/* --- response bodies from a source ---------------------------------------------------- */

typedef struct http_body http_body;

typedef struct http_body_source {
    /* fd >= 0: a regular file sent from offset with sendfile(2); the server
     * closes fd. */
    int fd;
    uint64_t offset;
    /* fd < 0: the server asks for the next piece of at most max_bytes; the
     * source answers later (from the loop) with http_body_piece. */
    void (*pull)(void *data, http_body *b, size_t max_bytes);
    /* Called once, when the body was sent or abandoned (the client went
     * away), with no pull outstanding. */
    void (*release)(void *data);
    void *data;
} http_body_source;

/* Answers with a body of length bytes from src (Content-Length: length;
 * none for HEAD, where src is released at once). headers as http_respond. */
void http_respond_body(http_request *req, int status, const http_header *headers, int n_headers,
                       uint64_t length, const http_body_source *src);
/* The answer to a pull: len bytes (copied), 1..max_bytes; len 0 means the
 * source failed: the connection is closed (its Content-Length cannot be
 * kept). */
void http_body_piece(http_body *b, const char *bytes, size_t len);

/* Convenience: status + JSON {"code": code, "message": message}. */
void http_respond_error(http_request *req, int status, const char *code, const char *message);

const char *http_request_header(const http_request *req, const char *lowercase_name);
const char *http_status_text(int status);

/* Hands the connection over to another protocol (WebSocket). Writes
 * response_head (the 101 response, verbatim) first, stops HTTP parsing and
 * timeouts, and gives the caller the stream plus any bytes already read past
 * the request. The request is finished by this call. The caller then owns the
 * stream and must uv_close it; on_close_data/on_close of the stream are the
 * caller's. Bytes in *leftover are malloc'd (caller frees), may be NULL. */
int http_take_over(http_request *req, const char *response_head, uv_tcp_t **stream_out,
                   char **leftover, size_t *leftover_len);

/* Number of open connections, for /metrics. */
int http_server_connections(const http_server *s);
/* Bytes held for request bodies being received or served, in all (≤
 * LIMIT_HTTP_BODIES_TOTAL_BYTES_MAX), and for responses not yet taken by
 * clients (a connection holding some is not read while all together are
 * over LIMIT_HTTP_WRITE_QUEUE_TOTAL_BYTES_MAX), for /metrics. */
size_t http_body_bytes_held(void);
size_t http_write_queue_bytes_held(void);

#endif
