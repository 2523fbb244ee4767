/*
 * sqlbuf.h — a bounded text buffer over storage the caller owns, for the SQL
 * both engines generate (statements, DDL) and the sentences they write
 * (the schema report, redacted URLs, query plans). Unlike base/sbuf.h it never
 * allocates: every statement has a named upper bound, and a text that would
 * pass it marks the buffer overflowed (later appends do nothing) so that the
 * caller refuses it once, at the end, with an error naming the bound.
 * Thread: whichever thread owns the buffer.
 */
#ifndef DOJO_STORE_SQLBUF_H
#define DOJO_STORE_SQLBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sqlbuf {
    char *text; /* NUL-terminated; the caller's storage */
    size_t len, cap;
    bool overflow;
} sqlbuf;

/* Starts an empty text in storage of cap bytes (cap > 0). */
void sqlbuf_init(sqlbuf *b, char *storage, size_t cap);
/* Appends printf-style; past the capacity the buffer is marked overflowed. */
void sqlbuf_add(sqlbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
