/*
 * ws_frame.h — the frames a WebSocket client sends (RFC 6455 §5), decoded
 * as the bytes arrive: headers checked the moment they are complete (a
 * frame announcing more than the bound is refused before any of its
 * payload comes), payloads unmasked, fragmented text messages assembled,
 * control frames handed over. A pure state machine: net/ws.c feeds it what
 * the socket reads and acts on what it reports; the fuzzers and unit tests
 * feed it anything.
 *
 * Memory: a message being assembled is the only buffer, sized by what its
 * frames announce (bounded), and freed once delivered — an idle connection
 * holds none.
 * Thread: whichever owns the reader (the event loop).
 */
#ifndef DOJO_NET_WS_FRAME_H
#define DOJO_NET_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_FRAME_HEADER_BYTES_MAX 14 /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_CONTROL_PAYLOAD_BYTES_MAX 125

enum {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Why a connection must be closed, as the status code to close it with. */
typedef enum {
    WS_READ_OK = 0,
    WS_READ_PROTOCOL = 1002,    /* a malformed frame or sequence */
    WS_READ_UNSUPPORTED = 1003, /* a binary message: dojo speaks text */
    WS_READ_TOO_BIG = 1009,     /* a frame or message over its bound */
    WS_READ_NOMEM = 1011,
} ws_read_verdict;

typedef struct ws_reader_events {
    /* A whole text message (len bytes, followed by a NUL), valid during
     * the call. */
    void (*on_text)(void *data, const char *text, size_t len);
    /* A ping, pong or close frame with its payload (at most 125 bytes). */
    void (*on_control)(void *data, int opcode, const uint8_t *payload, size_t len);
} ws_reader_events;

typedef struct ws_reader {
    uint64_t frame_bytes_max, message_bytes_max;
    uint8_t head[WS_FRAME_HEADER_BYTES_MAX];
    unsigned head_len;
    bool in_payload; /* the header of the current frame is complete */
    int opcode;      /* of the current frame */
    bool fin;
    uint8_t mask[4];
    uint64_t payload_left, payload_seen;
    bool in_message; /* a fragmented text message waits for its continuations */
    char *msg;       /* the text message being assembled */
    size_t msg_len, msg_cap;
    uint8_t control[WS_CONTROL_PAYLOAD_BYTES_MAX];
    size_t control_len;
    bool stopped;            /* ws_reader_stop: the rest is ignored */
    ws_read_verdict verdict; /* once not OK, it stays */
} ws_reader;

void ws_reader_init(ws_reader *r, uint64_t frame_bytes_max, uint64_t message_bytes_max);
/* Frees the message being assembled, if any. */
void ws_reader_free(ws_reader *r);
/* Decodes n more bytes, calling ev for each message and control frame.
 * Returns the verdict (which stays once not OK). */
ws_read_verdict ws_reader_feed(ws_reader *r, const uint8_t *bytes, size_t n,
                               const ws_reader_events *ev, void *data);
/* From inside a callback: nothing after this frame is decoded (a close). */
void ws_reader_stop(ws_reader *r);

#endif
