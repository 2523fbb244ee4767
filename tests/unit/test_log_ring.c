/*
 * test_log_ring.c — the logger's ring of recent lines (base/log.h), which the
 * dashboard's Logs tab reads: it keeps the newest LOG_RING_LINES_MAX lines,
 * sequence numbers increase by one per line, a line is cut at
 * LOG_RING_LINE_BYTES_MAX without splitting a UTF-8 character, and writers on
 * several threads neither lose nor mangle lines.
 * The ring is process-wide, so each test reads only what it wrote (the lines
 * after the sequence number it saw first). stderr is sent to /dev/null while
 * a test logs, to keep ctest's output readable.
 * Thread: the test's main thread, plus the writer threads of one test.
 */
#include "support.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

#define WRITERS 4
#define LINES_PER_WRITER 3000
#define PAD_CHARS 40

typedef struct seen_line {
    uint64_t seq;
    char text[LOG_RING_LINE_BYTES_MAX];
} seen_line;

typedef struct seen {
    seen_line *lines;
    int n, cap;
} seen;

static void collect(uint64_t seq, const char *text, void *data)
{
    seen *s = data;
    assert_true(s->n < s->cap);
    s->lines[s->n].seq = seq;
    snprintf(s->lines[s->n].text, sizeof s->lines[s->n].text, "%s", text);
    s->n++;
}

static seen read_after(uint64_t after, uint64_t *next_out)
{
    seen s = {.lines = calloc(LOG_RING_LINES_MAX, sizeof(seen_line)), .cap = LOG_RING_LINES_MAX};
    assert_non_null(s.lines);
    uint64_t next = log_ring_read(after, LOG_RING_LINES_MAX, collect, &s);
    if (next_out) *next_out = next;
    return s;
}

/* The message part of a ring line: after "<timestamp> <level> ". */
static const char *message_of(const char *text)
{
    const char *p = strstr(text, "Z ");
    assert_non_null(p);
    return p + 2 + 6; /* "info  " */
}

static int quiet_stderr(void)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int null_fd = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null_fd >= 0);
    dup2(null_fd, STDERR_FILENO);
    close(null_fd);
    return saved;
}

static void restore_stderr(int saved)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
}

static void lines_get_increasing_sequence_numbers(void **state)
{
    (void)state;
    uint64_t before = log_ring_last_seq();
    int saved = quiet_stderr();
    for (int i = 0; i < 5; i++)
        log_info("sequence test %d", i);
    restore_stderr(saved);
    assert_int_equal(log_ring_last_seq(), before + 5);
    uint64_t next;
    seen s = read_after(before, &next);
    assert_int_equal(s.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.lines[i].seq, before + 1 + (uint64_t)i);
        char want[64];
        snprintf(want, sizeof want, "sequence test %d", i);
        assert_string_equal(message_of(s.lines[i].text), want);
        assert_null(strchr(s.lines[i].text, '\n'));
    }
    assert_int_equal(next, before + 5);
    free(s.lines);
    /* Asking again from next gives nothing new and the same next. */
    s = read_after(next, &next);
    assert_int_equal(s.n, 0);
    assert_int_equal(next, before + 5);
    free(s.lines);
}

static void ring_keeps_only_the_newest_lines(void **state)
{
    (void)state;
    uint64_t before = log_ring_last_seq();
    int total = LOG_RING_LINES_MAX + 250;
    int saved = quiet_stderr();
    for (int i = 0; i < total; i++)
        log_info("keep test %d", i);
    restore_stderr(saved);
    seen s = read_after(0, NULL);
    assert_int_equal(s.n, LOG_RING_LINES_MAX);
    uint64_t last = before + (uint64_t)total;
    assert_int_equal(s.lines[0].seq, last - LOG_RING_LINES_MAX + 1);
    assert_int_equal(s.lines[s.n - 1].seq, last);
    for (int i = 0; i < s.n; i++) {
        char want[64];
        snprintf(want, sizeof want, "keep test %d", total - LOG_RING_LINES_MAX + i);
        assert_string_equal(message_of(s.lines[i].text), want);
    }
    free(s.lines);
    /* A reader behind the ring starts at its oldest line. */
    s = read_after(before, NULL);
    assert_int_equal(s.n, LOG_RING_LINES_MAX);
    assert_int_equal(s.lines[0].seq, last - LOG_RING_LINES_MAX + 1);
    free(s.lines);
}

static void reader_ahead_of_the_ring_starts_over(void **state)
{
    (void)state;
    int saved = quiet_stderr();
    log_info("restart test");
    restore_stderr(saved);
    uint64_t last = log_ring_last_seq();
    uint64_t next;
    seen s = read_after(last + 1000, &next);
    assert_true(s.n > 0);
    assert_string_equal(message_of(s.lines[s.n - 1].text), "restart test");
    assert_int_equal(next, last);
    free(s.lines);
}

static void long_lines_are_cut_at_the_bound(void **state)
{
    (void)state;
    char long_msg[3 * LOG_RING_LINE_BYTES_MAX];
    memset(long_msg, 'x', sizeof long_msg - 1);
    long_msg[sizeof long_msg - 1] = '\0';
    /* "é" is two bytes: somewhere one of them meets the bound. */
    char accents[2 * LOG_RING_LINE_BYTES_MAX] = "";
    for (size_t i = 0; i + 2 < sizeof accents; i += 2)
        memcpy(accents + i, "\xc3\xa9", 2);
    accents[sizeof accents - 2 + (sizeof accents % 2)] = '\0';
    uint64_t before = log_ring_last_seq();
    int saved = quiet_stderr();
    log_info("%s", long_msg);
    log_info("%s", accents);
    log_info("a%s", accents); /* shifted by one byte */
    restore_stderr(saved);
    seen s = read_after(before, NULL);
    assert_int_equal(s.n, 3);
    assert_int_equal(strlen(s.lines[0].text), LOG_RING_LINE_BYTES_MAX - 1);
    for (int i = 1; i < 3; i++) {
        size_t len = strlen(s.lines[i].text);
        assert_true(len <= LOG_RING_LINE_BYTES_MAX - 1 && len >= LOG_RING_LINE_BYTES_MAX - 2);
        /* The cut never leaves the lead byte of "é" without its second byte. */
        assert_int_not_equal((unsigned char)s.lines[i].text[len - 1], 0xc3);
        assert_int_equal((unsigned char)s.lines[i].text[len - 1], 0xa9);
    }
    free(s.lines);
}

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[PAD_CHARS + 1];
    memset(pad, 'a' + id, PAD_CHARS);
    pad[PAD_CHARS] = '\0';
    for (int i = 0; i < LINES_PER_WRITER; i++)
        log_info("writer %d line %d %s", id, i, pad);
    return NULL;
}

static void concurrent_writers_keep_every_line_whole(void **state)
{
    (void)state;
    uint64_t before = log_ring_last_seq();
    int saved = quiet_stderr();
    pthread_t threads[WRITERS];
    for (int t = 0; t < WRITERS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, writer, (void *)(intptr_t)t), 0);
    for (int t = 0; t < WRITERS; t++)
        pthread_join(threads[t], NULL);
    restore_stderr(saved);
    uint64_t last = log_ring_last_seq();
    assert_int_equal(last, before + WRITERS * LINES_PER_WRITER);
    seen s = read_after(before, NULL);
    assert_int_equal(s.n, LOG_RING_LINES_MAX);
    int last_line_of[WRITERS];
    for (int t = 0; t < WRITERS; t++)
        last_line_of[t] = -1;
    for (int i = 0; i < s.n; i++) {
        assert_int_equal(s.lines[i].seq, last - LOG_RING_LINES_MAX + 1 + (uint64_t)i);
        int id = -1, line = -1;
        char pad[PAD_CHARS + 8] = "";
        const char *msg = message_of(s.lines[i].text);
        assert_int_equal(sscanf(msg, "writer %d line %d %47s", &id, &line, pad), 3);
        assert_true(id >= 0 && id < WRITERS);
        assert_true(line >= 0 && line < LINES_PER_WRITER);
        assert_int_equal(strlen(pad), PAD_CHARS);
        for (int k = 0; k < PAD_CHARS; k++)
            assert_int_equal(pad[k], 'a' + id);
        /* One writer's lines keep their order. */
        assert_true(line > last_line_of[id]);
        last_line_of[id] = line;
    }
    free(s.lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_get_increasing_sequence_numbers),
        cmocka_unit_test(ring_keeps_only_the_newest_lines),
        cmocka_unit_test(reader_ahead_of_the_ring_starts_over),
        cmocka_unit_test(long_lines_are_cut_at_the_bound),
        cmocka_unit_test(concurrent_writers_keep_every_line_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
