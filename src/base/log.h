/*
 * log.h — one line per event on stderr, readable by a person, and a bounded
 * in-memory ring of the most recent lines for the dashboard's Logs tab.
 * Format: "2026-11-25T14:34:02.123Z level  message". The level threshold is set
 * once at start (log_init) before other threads start.
 *
 * The ring keeps the newest LOG_RING_LINES_MAX lines that passed the
 * threshold, each cut to LOG_RING_LINE_BYTES_MAX (NUL included) at a UTF-8
 * character boundary, without the trailing newline. Every line gets a
 * sequence number, 1 for the first, increasing by one per line, so a reader
 * asks for "the lines after N" and never sees one twice.
 * Thread: any; each line is written with one write(2) so lines never
 * interleave, and the ring is guarded by a mutex.
 */
#ifndef DOJO_BASE_LOG_H
#define DOJO_BASE_LOG_H

#include <stdint.h>

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

#define LOG_RING_LINES_MAX 1000
#define LOG_RING_LINE_BYTES_MAX 1024

void log_init(int level);
int log_level(void);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

/* Called once per line, oldest first; text is NUL-terminated and valid only
 * during the call. It runs with the ring locked: it must not log. */
typedef void (*log_ring_visit_fn)(uint64_t seq, const char *text, void *data);

/* Visits the kept lines whose sequence number is above after_seq, at most
 * lines_max of them (the oldest such first). An after_seq beyond the newest
 * line (a reader that saw an earlier process) is taken as 0. Returns the
 * sequence number to pass as after_seq next time: the last line visited, or
 * the newest line's when none was. */
uint64_t log_ring_read(uint64_t after_seq, int lines_max, log_ring_visit_fn visit, void *data);

/* The sequence number of the newest line; 0 before the first. */
uint64_t log_ring_last_seq(void);

#endif
