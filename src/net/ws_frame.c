/*
 * ws_frame.c — the client-frame decoder (see ws_frame.h): a header is
 * gathered byte by byte, checked as soon as it is complete, then its payload
 * is unmasked into the message being assembled (or the control payload).
 * Thread: whichever owns the reader.
 */
#include "net/ws_frame.h"

#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"

void ws_reader_init(ws_reader *r, uint64_t frame_bytes_max, uint64_t message_bytes_max)
{
    memset(r, 0, sizeof *r);
    r->frame_bytes_max = frame_bytes_max;
    r->message_bytes_max = message_bytes_max;
}

void ws_reader_free(ws_reader *r)
{
    free(r->msg);
    r->msg = NULL;
    r->msg_len = r->msg_cap = 0;
}

void ws_reader_stop(ws_reader *r)
{
    r->stopped = true;
}

/* The header's full size once its first two bytes are known. */
static unsigned header_bytes(const uint8_t head[2])
{
    unsigned len7 = head[1] & 0x7f, masked = head[1] & 0x80;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
}

static uint64_t payload_bytes(const uint8_t *head)
{
    unsigned len7 = head[1] & 0x7f;
    if (len7 < 126) return len7;
    uint64_t n = 0;
    unsigned width = len7 == 126 ? 2 : 8;
    for (unsigned i = 0; i < width; i++)
        n = (n << 8) | head[2 + i];
    return n;
}

static ws_read_verdict fail(ws_reader *r, ws_read_verdict v)
{
    r->verdict = v;
    ws_reader_free(r);
    return v;
}

/* A complete header: checks it (RFC 6455 §5.2–5.5) and makes room for its
 * payload. */
static ws_read_verdict start_frame(ws_reader *r)
{
    unsigned head_len = header_bytes(r->head);
    ASSERT(r->head_len == head_len && head_len <= WS_FRAME_HEADER_BYTES_MAX);
    uint8_t b0 = r->head[0], b1 = r->head[1];
    uint64_t len = payload_bytes(r->head);
    r->fin = (b0 & 0x80) != 0;
    r->opcode = b0 & 0x0f;
    if (b0 & 0x70) return WS_READ_PROTOCOL;    /* RSV bits: no extension was agreed */
    if (!(b1 & 0x80)) return WS_READ_PROTOCOL; /* a client masks every frame */
    if (len >> 63) return WS_READ_PROTOCOL;    /* the top bit of a length is 0 */
    memcpy(r->mask, r->head + head_len - 4, 4);
    switch (r->opcode) {
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!r->fin || len > WS_CONTROL_PAYLOAD_BYTES_MAX) return WS_READ_PROTOCOL;
        r->control_len = 0;
        break;
    case WS_OP_CONTINUATION:
        if (!r->in_message) return WS_READ_PROTOCOL;
        break;
    case WS_OP_TEXT:
        if (r->in_message) return WS_READ_PROTOCOL; /* a message inside a message */
        r->in_message = true;
        r->msg_len = 0;
        break;
    case WS_OP_BINARY:
        return r->in_message ? WS_READ_PROTOCOL : WS_READ_UNSUPPORTED;
    default:
        return WS_READ_PROTOCOL;
    }
    if (len > r->frame_bytes_max) return WS_READ_TOO_BIG;
    if (r->opcode < WS_OP_CLOSE) {
        if (len > r->message_bytes_max - r->msg_len) return WS_READ_TOO_BIG;
        size_t need = r->msg_len + (size_t)len + 1; /* and a NUL */
        if (need > r->msg_cap) {
            char *grown = realloc(r->msg, need);
            if (!grown) return WS_READ_NOMEM;
            r->msg = grown;
            r->msg_cap = need;
        }
    }
    r->payload_left = len;
    r->payload_seen = 0;
    r->in_payload = true;
    return WS_READ_OK;
}

/* The current frame's payload is all there: a control frame or the last
 * frame of a message is handed over. */
static void end_frame(ws_reader *r, const ws_reader_events *ev, void *data)
{
    ASSERT(r->in_payload && r->payload_left == 0);
    r->in_payload = false;
    r->head_len = 0;
    if (r->opcode >= WS_OP_CLOSE) {
        ev->on_control(data, r->opcode, r->control, r->control_len);
        return;
    }
    if (!r->fin) return;
    ASSERT(r->in_message && r->msg && r->msg_len < r->msg_cap);
    r->in_message = false;
    r->msg[r->msg_len] = '\0';
    char *msg = r->msg;
    size_t len = r->msg_len;
    r->msg = NULL; /* nothing is kept between messages */
    r->msg_len = r->msg_cap = 0;
    ev->on_text(data, msg, len);
    free(msg);
}

ws_read_verdict ws_reader_feed(ws_reader *r, const uint8_t *bytes, size_t n,
                               const ws_reader_events *ev, void *data)
{
    size_t i = 0;
    while (i < n && r->verdict == WS_READ_OK && !r->stopped) {
        if (!r->in_payload) {
            r->head[r->head_len++] = bytes[i++];
            if (r->head_len < 2 || r->head_len < header_bytes(r->head)) continue;
            ws_read_verdict v = start_frame(r);
            if (v != WS_READ_OK) return fail(r, v);
            if (r->payload_left == 0) end_frame(r, ev, data);
            continue;
        }
        size_t take = n - i < r->payload_left ? n - i : (size_t)r->payload_left;
        uint8_t *dest =
            r->opcode >= WS_OP_CLOSE ? r->control + r->control_len : (uint8_t *)r->msg + r->msg_len;
        for (size_t k = 0; k < take; k++)
            dest[k] = bytes[i + k] ^ r->mask[(r->payload_seen + k) & 3];
        if (r->opcode >= WS_OP_CLOSE)
            r->control_len += take;
        else
            r->msg_len += take;
        ASSERT(r->opcode >= WS_OP_CLOSE ? r->control_len <= WS_CONTROL_PAYLOAD_BYTES_MAX
                                        : r->msg_len < r->msg_cap);
        r->payload_seen += take;
        r->payload_left -= take;
        i += take;
        if (r->payload_left == 0) end_frame(r, ev, data);
    }
    return r->verdict;
}
