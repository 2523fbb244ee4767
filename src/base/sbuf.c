/*
 * sbuf.c — the growable text buffer (see sbuf.h).
 * Thread: whichever thread owns the buffer.
 */
#include "base/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(sbuf *b, size_t extra)
{
    if (b->failed) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = true;
        return false;
    }
    b->data = grown;
    b->cap = cap;
    return true;
}

void sbuf_init(sbuf *b, size_t initial_cap)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = false;
    if (reserve(b, initial_cap)) b->data[0] = '\0';
}

void sbuf_free(sbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sbuf_append(sbuf *b, const char *text, size_t len)
{
    if (!reserve(b, len)) return;
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void sbuf_puts(sbuf *b, const char *text)
{
    sbuf_append(b, text, strlen(text));
}

void sbuf_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *sbuf_take(sbuf *b)
{
    if (b->failed) {
        sbuf_free(b);
        return NULL;
    }
    char *text = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return text;
}
