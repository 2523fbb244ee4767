/*
 * test_ws_frame.c — the frame-header scanner that refuses a WebSocket frame
 * longer than the bound as soon as its header is complete, whatever way the
 * bytes are cut, and follows frame boundaries through the payloads.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <string.h>

#include "net/ws_frame.h"

#define BOUND 1000

/* A masked client frame header with a payload length of len. */
static size_t header(uint8_t *out, uint64_t len)
{
    size_t n = 0;
    out[n++] = 0x81;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    memcpy(out + n, "MASK", 4);
    return n + 4;
}

/* Feeds bytes one at a time: the verdict may not depend on how they come. */
static ws_frame_verdict feed_bytewise(ws_frame_scan *s, const uint8_t *b, size_t n)
{
    ws_frame_verdict v = WS_FRAME_OK;
    for (size_t i = 0; i < n; i++)
        v = ws_frame_scan_feed(s, b + i, 1, BOUND);
    return v;
}

static void frames_within_the_bound_pass_header_and_payload(void **state)
{
    (void)state;
    uint8_t buf[3 * (14 + BOUND)];
    size_t n = 0;
    uint64_t lens[] = {0, 125, BOUND};
    for (int i = 0; i < 3; i++) {
        n += header(buf + n, lens[i]);
        memset(buf + n, 0x7b, lens[i]); /* a payload byte that looks like nothing */
        n += lens[i];
    }
    ws_frame_scan s;
    ws_frame_scan_init(&s);
    assert_int_equal(ws_frame_scan_feed(&s, buf, n, BOUND), WS_FRAME_OK);
    ws_frame_scan_init(&s);
    assert_int_equal(feed_bytewise(&s, buf, n), WS_FRAME_OK);
    assert_int_equal(s.head_len, 0);
    assert_int_equal(s.payload_left, 0);
}

static void a_frame_over_the_bound_is_refused_when_its_header_is_complete(void **state)
{
    (void)state;
    uint64_t lens[] = {BOUND + 1, 0xffff, 0x7fffffffffffffffull};
    for (int i = 0; i < 3; i++) {
        uint8_t buf[14];
        size_t n = header(buf, lens[i]);
        ws_frame_scan s;
        ws_frame_scan_init(&s);
        assert_int_equal(ws_frame_scan_feed(&s, buf, n - 1, BOUND), WS_FRAME_OK);
        assert_int_equal(ws_frame_scan_feed(&s, buf + n - 1, 1, BOUND), WS_FRAME_TOO_BIG);
        /* It stays refused. */
        assert_int_equal(ws_frame_scan_feed(&s, buf, 1, BOUND), WS_FRAME_TOO_BIG);
    }
}

static void a_length_with_the_top_bit_or_an_unmasked_frame_is_a_protocol_error(void **state)
{
    (void)state;
    uint8_t buf[14];
    size_t n = header(buf, 0);
    buf[1] = 0x80 | 127;
    memset(buf + 2, 0, 8);
    buf[2] = 0x80; /* 2^63 */
    n = 14;
    ws_frame_scan s;
    ws_frame_scan_init(&s);
    assert_int_equal(ws_frame_scan_feed(&s, buf, n, BOUND), WS_FRAME_PROTOCOL);
    uint8_t unmasked[2] = {0x81, 5};
    ws_frame_scan_init(&s);
    assert_int_equal(ws_frame_scan_feed(&s, unmasked, 2, BOUND), WS_FRAME_PROTOCOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frames_within_the_bound_pass_header_and_payload),
        cmocka_unit_test(a_frame_over_the_bound_is_refused_when_its_header_is_complete),
        cmocka_unit_test(a_length_with_the_top_bit_or_an_unmasked_frame_is_a_protocol_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
