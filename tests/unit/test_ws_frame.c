/*
 * test_ws_frame.c — the decoder of client frames: text messages (whole and
 * fragmented, with control frames between the fragments) come out the same
 * however the bytes are cut, and nothing is held between messages; a frame
 * over the bound is refused as soon as its header is complete; every
 * malformed frame or sequence is a protocol error; binary is unsupported.
 * Thread: the test's main thread.
 */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"

#define FRAME_MAX 1000
#define MESSAGE_MAX 1500

/* What the decoder handed over. */
typedef struct seen {
    char text[8192];
    size_t text_len;
    int messages, pings, pongs, closes;
    uint8_t control[125];
    size_t control_len;
    bool stop_on_close;
    ws_reader *reader;
} seen;

static void on_text(void *data, const char *text, size_t len)
{
    seen *s = data;
    assert_true(s->text_len + len + 1 < sizeof s->text);
    assert_int_equal(text[len], '\0');
    memcpy(s->text + s->text_len, text, len);
    s->text_len += len;
    s->text[s->text_len++] = '|';
    s->messages++;
}

static void on_control(void *data, int opcode, const uint8_t *payload, size_t len)
{
    seen *s = data;
    memcpy(s->control, payload, len);
    s->control_len = len;
    if (opcode == WS_OP_PING) s->pings++;
    if (opcode == WS_OP_PONG) s->pongs++;
    if (opcode == WS_OP_CLOSE) {
        s->closes++;
        if (s->stop_on_close) ws_reader_stop(s->reader);
    }
}

static const ws_reader_events events = {.on_text = on_text, .on_control = on_control};

/* A masked client frame: b0 is FIN/RSV/opcode, then the length (coded in
 * the shortest form unless wide), the mask and the masked payload. */
static size_t frame(uint8_t *out, uint8_t b0, const char *payload, uint64_t len, bool masked)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = b0;
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    for (uint64_t i = 0; payload && i < len; i++)
        out[n + i] = (uint8_t)(payload[i] ^ (masked ? mask[i % 4] : 0));
    return n + (payload ? (size_t)len : 0);
}

static ws_read_verdict feed_all(ws_reader *r, seen *s, const uint8_t *b, size_t n, bool bytewise)
{
    if (!bytewise) return ws_reader_feed(r, b, n, &events, s);
    ws_read_verdict v = WS_READ_OK;
    for (size_t i = 0; i < n && v == WS_READ_OK; i++)
        v = ws_reader_feed(r, b + i, 1, &events, s);
    return v;
}

static void messages_come_out_whole_however_the_bytes_are_cut(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = 0;
    n += frame(buf + n, 0x81, "hello", 5, true); /* a whole text message */
    n += frame(buf + n, 0x01, "frag", 4, true);  /* text, not final */
    n += frame(buf + n, 0x89, "hi", 2, true);    /* a ping between */
    n += frame(buf + n, 0x00, "men", 3, true);   /* continuation */
    n += frame(buf + n, 0x80, "ted", 3, true);   /* final continuation */
    n += frame(buf + n, 0x81, "", 0, true);      /* an empty message */
    char big[FRAME_MAX];
    memset(big, 'x', sizeof big);
    n += frame(buf + n, 0x81, big, FRAME_MAX, true); /* at the frame bound */
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        ws_reader r;
        ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
        seen s = {.reader = &r};
        assert_int_equal(feed_all(&r, &s, buf, n, bytewise), WS_READ_OK);
        assert_int_equal(s.messages, 4);
        assert_int_equal(s.pings, 1);
        assert_memory_equal(s.text, "hello|fragmented||", 18);
        assert_int_equal(s.text_len, 18 + FRAME_MAX + 1);
        assert_null(r.msg); /* nothing held between messages */
        assert_false(r.in_payload || r.in_message);
        ws_reader_free(&r);
    }
}

static void a_frame_over_the_bound_is_refused_when_its_header_is_complete(void **state)
{
    (void)state;
    uint64_t lens[] = {FRAME_MAX + 1, 0xffff, 0x7fffffffffffffffull};
    for (int i = 0; i < 3; i++) {
        uint8_t buf[16];
        size_t n = frame(buf, 0x81, NULL, lens[i], true); /* the header alone */
        ws_reader r;
        ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
        seen s = {.reader = &r};
        assert_int_equal(ws_reader_feed(&r, buf, n - 1, &events, &s), WS_READ_OK);
        assert_int_equal(ws_reader_feed(&r, buf + n - 1, 1, &events, &s), WS_READ_TOO_BIG);
        assert_int_equal(ws_reader_feed(&r, buf, 1, &events, &s), WS_READ_TOO_BIG); /* stays */
        ws_reader_free(&r);
    }
    /* A message over its bound across fragments, each within the frame bound. */
    uint8_t buf[4096];
    char part[FRAME_MAX];
    memset(part, 'y', sizeof part);
    size_t n = frame(buf, 0x01, part, 900, true);
    n += frame(buf + n, 0x00, part, 700, true);
    ws_reader r;
    ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
    seen s = {.reader = &r};
    assert_int_equal(ws_reader_feed(&r, buf, n, &events, &s), WS_READ_TOO_BIG);
    assert_int_equal(s.messages, 0);
    assert_null(r.msg);
    ws_reader_free(&r);
}

static void malformed_frames_and_sequences_are_protocol_errors(void **state)
{
    (void)state;
    struct {
        const char *what;
        uint8_t b0;
        bool masked;
        size_t len;
        ws_read_verdict want;
    } cases[] = {
        {"unmasked", 0x81, false, 3, WS_READ_PROTOCOL},
        {"RSV1 set", 0xc1, true, 3, WS_READ_PROTOCOL},
        {"unknown opcode", 0x83, true, 3, WS_READ_PROTOCOL},
        {"fragmented ping", 0x09, true, 3, WS_READ_PROTOCOL},
        {"long ping", 0x89, true, 126, WS_READ_PROTOCOL},
        {"continuation first", 0x80, true, 3, WS_READ_PROTOCOL},
        {"binary", 0x82, true, 3, WS_READ_UNSUPPORTED},
    };
    char payload[200];
    memset(payload, 'p', sizeof payload);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[512];
        size_t n = frame(buf, cases[i].b0, payload, cases[i].len, cases[i].masked);
        ws_reader r;
        ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
        seen s = {.reader = &r};
        if (ws_reader_feed(&r, buf, n, &events, &s) != cases[i].want) fail_msg("%s", cases[i].what);
        ws_reader_free(&r);
    }
    /* A text message inside a message; a length whose top bit is set. */
    uint8_t buf[512];
    size_t n = frame(buf, 0x01, "a", 1, true);
    n += frame(buf + n, 0x81, "b", 1, true);
    ws_reader r;
    ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
    seen s = {.reader = &r};
    assert_int_equal(ws_reader_feed(&r, buf, n, &events, &s), WS_READ_PROTOCOL);
    ws_reader_free(&r);
    n = frame(buf, 0x81, NULL, 0, true);
    buf[1] = 0x80 | 127;
    memset(buf + 2, 0, 8);
    buf[2] = 0x80;
    memcpy(buf + 10, "MASK", 4);
    ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
    assert_int_equal(ws_reader_feed(&r, buf, 14, &events, &s), WS_READ_PROTOCOL);
    ws_reader_free(&r);
}

static void a_close_hands_its_payload_over_and_stop_ends_decoding(void **state)
{
    (void)state;
    uint8_t buf[256];
    const char close_payload[] = "\x03\xe8"
                                 "bye";
    size_t n = frame(buf, 0x88, close_payload, 5, true);
    n += frame(buf + n, 0x81, "after", 5, true);
    ws_reader r;
    ws_reader_init(&r, FRAME_MAX, MESSAGE_MAX);
    seen s = {.reader = &r, .stop_on_close = true};
    assert_int_equal(ws_reader_feed(&r, buf, n, &events, &s), WS_READ_OK);
    assert_int_equal(s.closes, 1);
    assert_int_equal(s.control_len, 5);
    assert_memory_equal(s.control, close_payload, 5);
    assert_int_equal(s.messages, 0); /* nothing after the close */
    ws_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_come_out_whole_however_the_bytes_are_cut),
        cmocka_unit_test(a_frame_over_the_bound_is_refused_when_its_header_is_complete),
        cmocka_unit_test(malformed_frames_and_sequences_are_protocol_errors),
        cmocka_unit_test(a_close_hands_its_payload_over_and_stop_ends_decoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
