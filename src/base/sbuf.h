/*
 * sbuf.h — a growable text buffer for building messages and reports
 * (Transitions, /metrics). A failed allocation marks the buffer failed and
 * later appends do nothing; the owner checks sbuf_failed() once at the end.
 * Thread: whichever thread owns the buffer.
 */
#ifndef DOJO_BASE_SBUF_H
#define DOJO_BASE_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sbuf {
    char *data; /* NUL-terminated while not failed */
    size_t len, cap;
    bool failed;
} sbuf;

void sbuf_init(sbuf *b, size_t initial_cap);
void sbuf_free(sbuf *b);
void sbuf_append(sbuf *b, const char *text, size_t len);
void sbuf_puts(sbuf *b, const char *text);
void sbuf_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool sbuf_failed(const sbuf *b)
{
    return b->failed;
}
/* Hands the text over (the caller frees it); NULL when the buffer failed. */
char *sbuf_take(sbuf *b);

#endif
