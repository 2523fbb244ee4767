/*
 * http_parse.c — turns the bytes of one connection into requests: the
 * http-parser callbacks, the storage of a request's target, headers and body
 * (http_msg), and the bounds checked while parsing (target bytes, header bytes
 * and count, body bytes). The parser is paused at the end of the headers and
 * at the end of each message so that http_server.c acts between them, outside
 * the parser, and so that the header bytes of each request are counted exactly.
 * Called by http_server.c when bytes arrive or parsing resumes.
 * Thread: the event-loop thread only.
 */
#include "net/http_conn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/invariant.h"

#define HTTP_HEAD_BYTES_MIN 256
#define HTTP_BODY_BYTES_MIN 1024

http_msg *http_msg_new(http_conn *c)
{
    http_msg *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->state = HTTP_MSG_PARSING;
    m->req.conn = c;
    m->req.method = "";
    m->req.target = "";
    m->req.path = "";
    m->req.body = "";
    m->req.start_us = clock_mono_us();
    memcpy(m->req.remote_addr, c->remote_addr, sizeof m->req.remote_addr);
    http_conn_ref(c);
    return m;
}

/* Bytes reserved for the bodies of every request in the process (the loop
 * thread's alone): bounded by LIMIT_HTTP_BODIES_TOTAL_BYTES_MAX, so many
 * clients each sending a large body slowly cannot take the memory. */
static size_t http_body_bytes_total;

size_t http_body_bytes_held(void)
{
    return http_body_bytes_total;
}

void http_msg_free(http_msg *m)
{
    if (!m) return;
    http_conn *c = m->req.conn;
    free(m->head);
    free(m->headers);
    ASSERT(http_body_bytes_total >= m->body_cap);
    http_body_bytes_total -= m->body_cap;
    free(m->body);
    free(m->out);
    http_body_discard(m->body_src);
    free(m);
    http_conn_unref(c);
}

/* Records a failure found inside a callback; the callback then returns
 * nonzero, the parser stops, and http_conn_parse answers it. */
__attribute__((format(printf, 4, 5))) static int
parse_reject(http_conn *c, int status, const char *code, const char *fmt, ...)
{
    c->fail_status = status;
    c->fail_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_message, sizeof c->fail_message, fmt, ap);
    va_end(ap);
    return -1;
}

static int reject_nomem(http_conn *c)
{
    return parse_reject(c, 500, "InternalServerError", "The server is out of memory");
}

static int head_reserve(http_msg *m, size_t extra)
{
    size_t need = m->head_len + extra;
    if (need <= m->head_cap) return 0;
    size_t cap = m->head_cap ? m->head_cap * 2 : HTTP_HEAD_BYTES_MIN;
    while (cap < need)
        cap *= 2;
    char *head = realloc(m->head, cap);
    if (!head) return -1;
    m->head = head;
    m->head_cap = cap;
    return 0;
}

/* Appends request text (target, header name or value) and counts it against
 * the header bound, so that memory stays bounded within one read too. */
static int head_add(http_conn *c, http_msg *m, const char *at, size_t n, bool lower)
{
    m->text_bytes += n;
    if (m->text_bytes > c->header_bytes_max) {
        return parse_reject(c, 431, "RequestHeaderFieldsTooLarge",
                            "Request headers exceed the limit of %zu bytes", c->header_bytes_max);
    }
    if (head_reserve(m, n) != 0) return reject_nomem(c);
    char *dst = m->head + m->head_len;
    if (lower) {
        for (size_t i = 0; i < n; i++)
            dst[i] = (char)tolower((unsigned char)at[i]);
    } else {
        memcpy(dst, at, n);
    }
    m->head_len += n;
    return 0;
}

/* Ends the string being collected (target, name or value) with a NUL. */
static int head_end_string(http_conn *c, http_msg *m)
{
    if (head_reserve(m, 1) != 0) return reject_nomem(c);
    m->head[m->head_len++] = '\0';
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_conn *c = p->data;
    ASSERT(c->parsing == NULL);
    http_msg *m = http_msg_new(c);
    if (!m) return reject_nomem(c);
    c->parsing = m;
    c->head_bytes = 0;
    http_conn_message_begun(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    http_msg *m = c->parsing;
    m->url_bytes += n;
    if (m->url_bytes > LIMIT_HTTP_URL_BYTES_MAX) {
        return parse_reject(c, 414, "URITooLong", "Request target exceeds the limit of %u bytes",
                            (unsigned)LIMIT_HTTP_URL_BYTES_MAX);
    }
    m->last_cb = HTTP_FIELD_URL;
    return head_add(c, m, at, n, false);
}

/* Trailers of a chunked body: counted against the header bound, not kept
 * (the request's strings must not move once the handler may see them). */
static int on_trailer(http_conn *c, http_msg *m, size_t n)
{
    m->text_bytes += n;
    if (m->text_bytes <= c->header_bytes_max) return 0;
    return parse_reject(c, 431, "RequestHeaderFieldsTooLarge",
                        "Request headers exceed the limit of %zu bytes", c->header_bytes_max);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    http_msg *m = c->parsing;
    if (m->headers_done) return on_trailer(c, m, n);
    if (m->last_cb != HTTP_FIELD_NAME) {
        if (m->n_fields == LIMIT_HTTP_HEADER_COUNT_MAX) {
            return parse_reject(c, 431, "RequestHeaderFieldsTooLarge",
                                "Request has more than %d header fields",
                                LIMIT_HTTP_HEADER_COUNT_MAX);
        }
        if (head_end_string(c, m) != 0) return -1; /* the target or the previous value */
        m->field_off[m->n_fields][0] = (uint32_t)m->head_len;
        m->field_off[m->n_fields][1] = 0;
        m->n_fields++;
        m->last_cb = HTTP_FIELD_NAME;
    }
    return head_add(c, m, at, n, true);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    http_msg *m = c->parsing;
    if (m->headers_done) return on_trailer(c, m, n);
    if (m->last_cb != HTTP_FIELD_VALUE) {
        ASSERT(m->last_cb == HTTP_FIELD_NAME && m->n_fields > 0);
        if (head_end_string(c, m) != 0) return -1; /* the name */
        m->field_off[m->n_fields - 1][1] = (uint32_t)m->head_len;
        m->last_cb = HTTP_FIELD_VALUE;
    }
    return head_add(c, m, at, n, false);
}

/* Closes the last string, appends the path (target up to '?') and points the
 * request into the head buffer, which does not move after this. */
static int finish_head(http_conn *c, http_msg *m)
{
    if (m->last_cb == HTTP_FIELD_NAME) { /* a name without a value */
        if (head_end_string(c, m) != 0) return -1;
        m->field_off[m->n_fields - 1][1] = (uint32_t)m->head_len;
    }
    if (head_end_string(c, m) != 0) return -1;
    size_t url_len = m->url_bytes;
    const char *q = memchr(m->head, '?', url_len);
    size_t path_len = q ? (size_t)(q - m->head) : url_len;          /* also where '?' is */
    if (head_reserve(m, path_len + 1) != 0) return reject_nomem(c); /* may move m->head */
    size_t path_off = m->head_len;
    memcpy(m->head + path_off, m->head, path_len);
    m->head[path_off + path_len] = '\0';
    m->head_len += path_len + 1;

    if (m->n_fields > 0) {
        m->headers = calloc((size_t)m->n_fields, sizeof *m->headers);
        if (!m->headers) return reject_nomem(c);
    }
    for (int i = 0; i < m->n_fields; i++) {
        m->headers[i].name = m->head + m->field_off[i][0];
        m->headers[i].value = m->head + m->field_off[i][1];
    }
    m->req.target = m->head;
    m->req.path = m->head + path_off;
    m->req.query = q ? m->head + path_len + 1 : NULL;
    m->req.headers = m->headers;
    m->req.n_headers = m->n_fields;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    http_conn *c = p->data;
    http_msg *m = c->parsing;
    if (finish_head(c, m) != 0) return -1;
    m->req.method = http_method_str((enum http_method)p->method);
    m->is_head = p->method == HTTP_HEAD;
    m->req.keep_alive = http_should_keep_alive(p) != 0;
    m->req.upgrade = p->upgrade != 0;
    m->headers_done = true;
    if (p->flags & F_CONTENTLENGTH) {
        m->req.has_length = true;
        m->req.content_length = p->content_length;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length <= c->body_bytes_max) {
        m->body_expected_bytes = (size_t)p->content_length;
    }
    c->event = HTTP_PARSE_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

/* Grows the body buffer to hold need bytes: 0, -1 out of memory, -2 over
 * the process's budget for request bodies. */
static int body_reserve(http_msg *m, size_t need, size_t cap_max)
{
    if (need <= m->body_cap) return 0;
    size_t cap = m->body_cap ? m->body_cap * 2 : HTTP_BODY_BYTES_MIN;
    if (cap < m->body_expected_bytes + 1) cap = m->body_expected_bytes + 1;
    if (cap > cap_max) cap = cap_max;
    if (cap < need) cap = need;
    if (http_body_bytes_total - m->body_cap + cap > LIMIT_HTTP_BODIES_TOTAL_BYTES_MAX) return -2;
    char *body = realloc(m->body, cap);
    if (!body) return -1;
    http_body_bytes_total += cap - m->body_cap;
    m->body = body;
    m->body_cap = cap;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_conn *c = p->data;
    http_msg *m = c->parsing;
    if (m->req.streamed) {
        http_conn_stream_data(c, m, at, n);
        return 0;
    }
    if (n > c->body_bytes_max - m->req.body_len) {
        return parse_reject(c, 413, "PayloadTooLarge",
                            "Request body exceeds the limit of %zu bytes", c->body_bytes_max);
    }
    int reserved = body_reserve(m, m->req.body_len + n + 1, c->body_bytes_max + 1);
    if (reserved == -2)
        return parse_reject(c, 503, "Overloaded",
                            "The server holds too many request bodies at once (at most %u MiB "
                            "together); try again shortly",
                            LIMIT_HTTP_BODIES_TOTAL_BYTES_MAX / (1024 * 1024));
    if (reserved != 0) return reject_nomem(c);
    memcpy(m->body + m->req.body_len, at, n);
    m->req.body_len += n;
    m->body[m->req.body_len] = '\0';
    m->req.body = m->body;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn *c = p->data;
    ASSERT(c->parsing && c->parsing->headers_done);
    c->event = HTTP_PARSE_MESSAGE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parse_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Answers what stopped the parser with an error: a bound a callback found, or
 * malformed input. */
static void parse_failed(http_conn *c, enum http_errno en)
{
    if (c->fail_status) {
        http_conn_fail(c, c->fail_status, c->fail_code, "%s", c->fail_message);
    } else if (en == HPE_HEADER_OVERFLOW) {
        http_conn_fail(c, 431, "RequestHeaderFieldsTooLarge",
                       "Request headers exceed the limit of %zu bytes", c->header_bytes_max);
    } else {
        http_conn_fail(c, 400, "BadRequest", "Malformed HTTP request: %s",
                       http_errno_description(en));
    }
}

size_t http_conn_parse(http_conn *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && http_conn_can_parse(c)) {
        bool in_head = c->parsing == NULL || !c->parsing->headers_done;
        c->event = HTTP_PARSE_NONE;
        size_t n = http_parser_execute(&c->parser, &parse_settings, data + off, len - off);
        enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);
        if (en == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            en = HPE_OK;
        }
        off += n;
        if (en == HPE_OK && in_head && c->parsing) {
            c->head_bytes += n;
            if (c->head_bytes > c->header_bytes_max) en = HPE_HEADER_OVERFLOW;
        }
        if (en != HPE_OK) {
            parse_failed(c, en);
            return len;
        }
        if (c->event == HTTP_PARSE_HEADERS) {
            http_conn_headers_done(c, c->parsing);
        } else if (c->event == HTTP_PARSE_MESSAGE) {
            http_msg *m = c->parsing;
            c->parsing = NULL;
            http_conn_message_done(c, m);
        } else if (c->event == HTTP_PARSE_STREAM) {
            /* a streamed body paused or stopped: the rest waits in the stash */
        } else if (off < len) { /* stopped without a reason it reports */
            parse_failed(c, HPE_UNKNOWN);
            return len;
        }
    }
    return off;
}
