/*
 * ws_frame.h — a scanner of the frame headers a WebSocket client sends
 * (RFC 6455 §5.2), run over the bytes as they arrive, before wslay sees
 * them. wslay checks a message's length only as its payload arrives, so a
 * header announcing 2^63−1 bytes followed by silence would hold the socket
 * until the silence timeout; the scanner refuses such a frame the moment
 * its header is complete. It only tracks frame boundaries (header, then
 * payload bytes to skip); the frames themselves are wslay's to decode.
 * Thread: any; pure state machine (the event-loop thread in practice).
 */
#ifndef DOJO_NET_WS_FRAME_H
#define DOJO_NET_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WS_FRAME_HEADER_BYTES_MAX 14 /* 2 + 8 (64-bit length) + 4 (mask) */

typedef enum {
    WS_FRAME_OK = 0,
    WS_FRAME_TOO_BIG = 1,  /* a frame longer than the bound: close 1009 */
    WS_FRAME_PROTOCOL = 2, /* a length with its top bit set, an unmasked client frame: 1002 */
} ws_frame_verdict;

typedef struct ws_frame_scan {
    uint8_t head[WS_FRAME_HEADER_BYTES_MAX];
    unsigned head_len;        /* bytes of the current header seen */
    uint64_t payload_left;    /* payload bytes of the current frame still to come */
    ws_frame_verdict verdict; /* once not OK, it stays */
} ws_frame_scan;

void ws_frame_scan_init(ws_frame_scan *s);
/* Scans n more bytes from the client. Returns the verdict, which once not
 * WS_FRAME_OK stays so (the connection is being closed). */
ws_frame_verdict ws_frame_scan_feed(ws_frame_scan *s, const uint8_t *bytes, size_t n,
                                    uint64_t frame_bytes_max);

#endif
