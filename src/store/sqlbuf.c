/*
 * sqlbuf.c — the bounded text buffer of sqlbuf.h. Callers: the engines'
 * statement and DDL builders (sqlite_*.c, pg_*.c) and ddl_common.c.
 * Thread: whichever thread owns the buffer.
 */
#include "store/sqlbuf.h"

#include "base/invariant.h"

#include <stdarg.h>
#include <stdio.h>

void sqlbuf_init(sqlbuf *b, char *storage, size_t cap)
{
    ASSERT(cap > 0);
    b->text = storage;
    b->len = 0;
    b->cap = cap;
    b->overflow = false;
    storage[0] = '\0';
}

void sqlbuf_add(sqlbuf *b, const char *fmt, ...)
{
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    b->len += (size_t)n;
}
