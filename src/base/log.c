/*
 * log.c — timestamped lines on stderr, and the ring of recent lines the
 * dashboard reads (see log.h). The ring is the logger's own state, like the
 * threshold: every thread logs, so it lives here rather than in the server
 * struct, behind one mutex held only to copy a line in or out.
 * Thread: any.
 */
#include "base/invariant.h"
#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_BYTES_MAX 8192

typedef struct log_ring {
    pthread_mutex_t lock;
    uint64_t last_seq; /* of the newest line; line seq lives in slot (seq - 1) % LINES_MAX */
    char lines[LOG_RING_LINES_MAX][LOG_RING_LINE_BYTES_MAX];
} log_ring;

static int log_threshold = LOG_INFO;
static log_ring ring = {.lock = PTHREAD_MUTEX_INITIALIZER};

void log_init(int level)
{
    log_threshold = level;
}

int log_level(void)
{
    return log_threshold;
}

/* Length of the longest prefix of text[0..len) that fits a ring slot and
 * does not end inside a UTF-8 sequence. */
static size_t ring_cut(const char *text, size_t len)
{
    if (len < LOG_RING_LINE_BYTES_MAX) return len;
    size_t cut = LOG_RING_LINE_BYTES_MAX - 1;
    /* text[cut] is the first byte dropped: if it continues a character, drop
     * that character's earlier bytes too. */
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

static void ring_append(const char *text, size_t len)
{
    size_t keep = ring_cut(text, len);
    pthread_mutex_lock(&ring.lock);
    uint64_t seq = ++ring.last_seq;
    char *slot = ring.lines[(seq - 1) % LOG_RING_LINES_MAX];
    memcpy(slot, text, keep);
    slot[keep] = '\0';
    pthread_mutex_unlock(&ring.lock);
}

uint64_t log_ring_read(uint64_t after_seq, int lines_max, log_ring_visit_fn visit, void *data)
{
    ASSERT(visit && lines_max >= 0);
    pthread_mutex_lock(&ring.lock);
    uint64_t last = ring.last_seq;
    uint64_t oldest = last > LOG_RING_LINES_MAX ? last - LOG_RING_LINES_MAX + 1 : 1;
    if (after_seq > last) after_seq = 0;
    uint64_t seq = after_seq + 1 > oldest ? after_seq + 1 : oldest;
    uint64_t next = after_seq;
    for (int n = 0; seq <= last && n < lines_max; seq++, n++) {
        visit(seq, ring.lines[(seq - 1) % LOG_RING_LINES_MAX], data);
        next = seq;
    }
    pthread_mutex_unlock(&ring.lock);
    return next;
}

uint64_t log_ring_last_seq(void)
{
    pthread_mutex_lock(&ring.lock);
    uint64_t last = ring.last_seq;
    pthread_mutex_unlock(&ring.lock);
    return last;
}

void log_write(int level, const char *fmt, ...)
{
    if (level < log_threshold) return;
    static const char *const names[] = {"debug", "info ", "warn ", "error"};
    char line[LOG_LINE_BYTES_MAX];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), names[level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    ring_append(line, len);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
