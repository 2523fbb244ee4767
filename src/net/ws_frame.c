/*
 * ws_frame.c — the frame-header scanner (see ws_frame.h).
 * Thread: any.
 */
#include "net/ws_frame.h"

#include <string.h>

#include "base/invariant.h"

void ws_frame_scan_init(ws_frame_scan *s)
{
    memset(s, 0, sizeof *s);
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

ws_frame_verdict ws_frame_scan_feed(ws_frame_scan *s, const uint8_t *bytes, size_t n,
                                    uint64_t frame_bytes_max)
{
    size_t i = 0;
    while (i < n && s->verdict == WS_FRAME_OK) {
        if (s->payload_left > 0) {
            size_t skip = n - i < s->payload_left ? n - i : (size_t)s->payload_left;
            s->payload_left -= skip;
            i += skip;
            continue;
        }
        s->head[s->head_len++] = bytes[i++];
        if (s->head_len < 2 || s->head_len < header_bytes(s->head)) continue;
        ASSERT(s->head_len == header_bytes(s->head) && s->head_len <= WS_FRAME_HEADER_BYTES_MAX);
        uint64_t len = payload_bytes(s->head);
        if (!(s->head[1] & 0x80) || (len >> 63))
            s->verdict = WS_FRAME_PROTOCOL;
        else if (len > frame_bytes_max)
            s->verdict = WS_FRAME_TOO_BIG;
        s->payload_left = len;
        s->head_len = 0;
    }
    return s->verdict;
}
