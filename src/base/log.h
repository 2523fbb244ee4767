/*
 * log.h — one line per event on stderr, readable by a person.
 * Format: "2026-11-25T14:34:02.123Z level  message". The level threshold is set
 * once at start (log_init) before other threads start.
 * Thread: any; each line is written with one write(2) so lines never interleave.
 */
#ifndef DOJO_BASE_LOG_H
#define DOJO_BASE_LOG_H

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

void log_init(int level);
int log_level(void);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
