/*
 * ws.h — WebSocket connections (RFC 6455) on the event loop, with wslay for
 * the frames: the upgrade handshake, text messages in both directions,
 * automatic pong, close handshake, and bounds — a message larger than
 * LIMIT_WS_MESSAGE_BYTES_MAX closes with 1009, a binary message with 1003,
 * and a peer that does not read its messages (more than
 * LIMIT_WS_SEND_BUFFER_BYTES_MAX queued) is disconnected rather than allowed
 * to grow memory without bound. Knows nothing of the messages' meaning.
 * Thread: the event-loop thread only.
 */
#ifndef DOJO_NET_WS_H
#define DOJO_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "net/http.h"

typedef struct ws_conn ws_conn;

typedef struct ws_callbacks {
    /* A complete text message (not NUL-terminated). */
    void (*on_message)(void *data, const char *text, size_t len);
    /* The connection is gone (closed by either side or failed). Called once;
     * the ws_conn is freed right after it returns. */
    void (*on_close)(void *data, int code);
    /* Everything queued has been written (ws_buffered_bytes is 0 again):
     * what was held back for a slow reader can be sent. May be NULL. */
    void (*on_drain)(void *data);
} ws_callbacks;

/* A piece of a text message: copied, or written from a shared buffer
 * (shared != NULL: bytes lies inside it, and the write holds a reference
 * until the bytes are out, so the same value pushed to many sockets is
 * held once). */
typedef struct ws_part {
    const char *bytes;
    size_t len;
    struct rcbuf *shared;
} ws_part;

#define WS_PARTS_MAX 4096

/* True when req asks for a WebSocket (GET, Upgrade: websocket,
 * Sec-WebSocket-Key, version 13). */
bool ws_is_upgrade(const http_request *req);

/* Answers 101 and takes the connection over. On failure (a bad handshake is
 * answered 400 here) returns an error and the request is finished. */
int ws_accept(http_request *req, const ws_callbacks *cb, void *data, ws_conn **out, err_t *e);

/* Queues a text message. ERR_LIMIT when the peer is not reading (the
 * connection is then being closed with 1013), ERR_IO when it is closing. */
int ws_send_text(ws_conn *c, const char *text, size_t len);
/* Queues one text message made of n_parts pieces (1..WS_PARTS_MAX), in
 * order; same answers as ws_send_text. */
int ws_send_text_parts(ws_conn *c, const ws_part *parts, int n_parts);
/* Stops (true) or resumes (false) reading the socket: back-pressure for a
 * peer whose messages wait to be processed. */
void ws_pause_reading(ws_conn *c, bool paused);
/* A protocol-level ping frame (liveness of a silent peer). */
void ws_send_ping(ws_conn *c);

/* Starts the close handshake: code 0 sends a close frame without a status
 * (the peer sees 1005). The socket closes when the frame is out or after a
 * short grace period. */
void ws_close(ws_conn *c, uint16_t code, const char *reason);

/* Bytes queued but not yet written to the socket (shared buffers included). */
size_t ws_buffered_bytes(const ws_conn *c);
/* Unread bytes of every socket together, a shared buffer counted once. */
size_t ws_unread_total_bytes(void);
/* Disconnects c (1013) when it holds too much unread (ws_unread_too_much);
 * returns ERR_LIMIT then, ERR_IO when closing, else 0. */
int ws_check_unread(ws_conn *c);
/* Whether a socket holding own_bytes unread, while all sockets hold
 * all_bytes, is disconnected (1013): over its own bound, or over a fair share
 * when all of them together are over theirs (limits.h). */
bool ws_unread_too_much(size_t own_bytes, size_t all_bytes);
/* Milliseconds (clock_mono_ms) of the last byte received. */
uint64_t ws_last_receive_ms(const ws_conn *c);

#endif
