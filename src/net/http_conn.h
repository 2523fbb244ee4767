/*
 * http_conn.h — PRIVATE to src/net/. The inside of one HTTP connection and of
 * one request on it, shared by http_server.c (connection life, responses,
 * timers) and http_parse.c (bytes → requests). The layer above never includes
 * this; ws.c only needs what http_take_over hands over (see http.h), and may
 * read this to understand what is left behind when a stream is taken over.
 *
 * Life of a connection (all on the loop thread):
 *   accept → read → http_parse turns bytes into http_msg values; each complete
 *   message joins conn->queue in arrival order and is handed to the handler
 *   (an upgrade request only once it is at the head of the queue) → the
 *   handler answers (now or later) → answered messages leave the queue from the
 *   head, in order, each as one uv_write → idle → next request or idle timeout.
 *   Back-pressure: while the bytes of unfinished writes exceed
 *   LIMIT_HTTP_WRITE_QUEUE_BYTES_MAX (a client that sends but does not read),
 *   no further request is read or parsed; a connection whose pending writes
 *   make no progress for LIMIT_HTTP_WRITE_TIMEOUT_MS is closed.
 *   A response carrying "Connection: close" ends the connection: the write side
 *   is shut down and input is drained briefly (lingering close) so that the
 *   client reads the response instead of a reset.
 *
 * Ownership: a connection is reference-counted. Its open handles (stream and
 * two timers) hold one reference together; every http_msg, every write in flight
 * and the pending shutdown request hold one each. So a request handed to the
 * handler stays valid after the client has gone until http_respond frees it.
 * The uv_tcp_t is allocated on its own so http_take_over can give it away
 * while the connection record dies later.
 *
 * Thread: the event-loop thread only.
 */
#ifndef DOJO_NET_HTTP_CONN_H
#define DOJO_NET_HTTP_CONN_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/limits.h"
#include "net/http.h"

typedef enum http_msg_state {
    HTTP_MSG_PARSING,    /* bytes still arriving; it is conn->parsing */
    HTTP_MSG_HELD,       /* complete upgrade request waiting to reach the queue's head */
    HTTP_MSG_DISPATCHED, /* with the handler, not answered yet */
    HTTP_MSG_ANSWERED,   /* response ready in ->out, waiting for its turn */
} http_msg_state;

typedef enum http_field_cb {
    HTTP_FIELD_NONE, /* nothing of the request line or headers seen yet */
    HTTP_FIELD_URL,
    HTTP_FIELD_NAME,
    HTTP_FIELD_VALUE,
} http_field_cb;

/* A response ready to be written: one allocation, freed by the write callback.
 * Defined in http_server.c. */
typedef struct http_out http_out;

/* One request. The handler sees only .req; (http_msg *)req gets back here. */
typedef struct http_msg {
    http_request req;      /* first member */
    struct http_msg *next; /* in conn->queue */
    http_msg_state state;
    bool orphan;       /* the connection closed while the handler held it */
    bool synthetic;    /* an error the server answers by itself */
    bool is_head;      /* HEAD: the response carries no body */
    bool headers_done; /* later header callbacks are trailers, ignored */
    /* Target, then "name\0value\0" per header, then the path: strings the
     * request points into once the headers are complete (it never moves after). */
    char *head;
    size_t head_len;
    size_t head_cap;
    size_t url_bytes;  /* of the raw request target */
    size_t text_bytes; /* target, header names and values, trailers: bounded */
    http_field_cb last_cb;
    int n_fields;
    uint32_t field_off[LIMIT_HTTP_HEADER_COUNT_MAX][2]; /* name, value offsets in head */
    http_header *headers;
    char *body; /* NUL-terminated; NULL while empty (req.body is "" then) */
    size_t body_cap;
    size_t body_expected_bytes; /* Content-Length, to size the buffer once */
    http_out *out;
    http_body *body_src; /* answered with a body from a source: sent after out */
    /* A streamed request (req.streamed): it is in the queue (dispatched)
     * and, while its body arrives, conn->parsing too. */
    const http_stream_cbs *stream_cbs;
    void *stream_data;
    uint64_t stream_idle_ms;
    bool stream_paused;      /* the handler paused it: nothing is read */
    bool stream_over;        /* on_end or on_abort was called, or it was answered */
    bool stream_end_pending; /* the body ended while paused: on_end at the resume */
    bool close_after;        /* its answer closes the connection (body left unread) */
} http_msg;

typedef enum http_timer_kind {
    HTTP_TIMER_NONE,
    HTTP_TIMER_HEAD,   /* from accept or first byte to end of headers → 408 */
    HTTP_TIMER_BODY,   /* from end of headers to end of body → 408 */
    HTTP_TIMER_IDLE,   /* keep-alive with nothing pending → close silently */
    HTTP_TIMER_LINGER, /* draining input after a closing response → close */
} http_timer_kind;

typedef enum http_parse_event {
    HTTP_PARSE_NONE,
    HTTP_PARSE_HEADERS, /* parser paused at the end of the headers */
    HTTP_PARSE_MESSAGE, /* parser paused at the end of a message */
    HTTP_PARSE_STREAM,  /* parser paused inside a streamed body (handler paused or stopped it) */
} http_parse_event;

struct http_conn {
    http_server *server;    /* NULL once detached (handles closed or taken over) */
    uv_tcp_t *tcp;          /* own allocation; NULL once closed or taken over */
    uv_timer_t timer;       /* the timeouts of http_timer_kind */
    uv_timer_t write_timer; /* runs while writes_in_flight > 0: write progress */
    uv_shutdown_t shutdown_req;
    http_parser parser;
    int refs;
    int handles_open; /* tcp and both timers while ours */

    size_t body_bytes_max;
    size_t header_bytes_max;

    http_msg *parsing;    /* the request being received, or NULL */
    http_msg *queue_head; /* parsed, not yet written, in arrival order */
    http_msg *queue_tail;
    int queue_len; /* bounded by LIMIT_HTTP_PIPELINE_REQUESTS_MAX */
    int writes_in_flight;
    /* Bytes of the writes in flight: reading and parsing pause above
     * LIMIT_HTTP_WRITE_QUEUE_BYTES_MAX. */
    size_t write_queue_bytes;
    uint64_t write_bytes_total; /* ever handed to uv_write, for write progress */
    uint64_t write_sent_mark;   /* bytes out when the write timer was (re)armed */
    size_t head_bytes;          /* raw bytes of the current request line and headers */
    http_parse_event event;

    /* Bytes read but not parsed: the parser stopped (pipeline full, upgrade).
     * Reading is paused while this is not empty, so it never exceeds one read. */
    char *stash;
    size_t stash_len;
    size_t stash_cap;

    /* A failure found inside a parser callback, answered after it returns. */
    int fail_status;
    const char *fail_code;
    char fail_message[160];

    http_timer_kind timer_kind;
    bool reading;
    bool busy; /* inside parse or pump: nested pumps only set pump_again */
    bool pump_again;
    bool stop_parsing; /* no request after the last one queued will be read */
    bool eof;          /* the client finished sending */
    bool lingering;    /* a closing response was written; draining input */
    bool shutdown_done;
    bool closing;  /* handles closing or stream taken over: nothing more happens */
    bool rejected; /* accepted only to answer 503 */

    http_body *body; /* the response body being sent: nothing else is written meanwhile */

    char remote_addr[64];
    struct http_conn *prev; /* in the server's list */
    struct http_conn *next;
};

/* http_parse.c */
http_msg *http_msg_new(http_conn *c);
void http_msg_free(http_msg *m);
/* Feeds bytes to the parser until they are used up or parsing must stop;
 * returns how many were consumed. Handlers may run inside. */
size_t http_conn_parse(http_conn *c, const char *data, size_t len);

/* http_server.c: frees a body a request was answered with, never sent. */
void http_body_discard(http_body *b);

/* http_server.c, called by the parser */
void http_conn_ref(http_conn *c);
void http_conn_unref(http_conn *c);
bool http_conn_can_parse(const http_conn *c);
void http_conn_message_begun(http_conn *c);
void http_conn_headers_done(http_conn *c, http_msg *m);
void http_conn_message_done(http_conn *c, http_msg *m);
/* A piece of a streamed request's body (inside the parser's body callback). */
void http_conn_stream_data(http_conn *c, http_msg *m, const char *at, size_t n);
/* Drops the request being received, queues an error response {code, message}
 * and stops reading requests; the connection closes once it is written. */
void http_conn_fail(http_conn *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Test hook (tests/unit/test_http.c): the write timeout of write timers armed
 * from now on, instead of LIMIT_HTTP_WRITE_TIMEOUT_MS. */
void http_server_set_write_timeout_for_test(http_server *s, uint64_t ms);

#endif
