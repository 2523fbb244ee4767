/*
 * rcbuf.h — an immutable byte buffer with a reference count: the encoded
 * value of a query result, written once per result version and then shared
 * by every socket it is being pushed to, so a change seen by ten thousand
 * sessions is held once, not ten thousand times, however slowly they read.
 * `sending` counts the sockets still writing it; net/ws.c counts its bytes
 * in the process's unread total once while that is above zero.
 * Thread: the event-loop thread only (plain counts).
 */
#ifndef DOJO_BASE_RCBUF_H
#define DOJO_BASE_RCBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct rcbuf {
    uint32_t refs;
    uint32_t sending;
    size_t len;
    char bytes[]; /* len bytes, then a NUL */
} rcbuf;

/* A new buffer holding a copy of bytes, one reference; NULL when out of
 * memory. */
rcbuf *rcbuf_new(const char *bytes, size_t len);
rcbuf *rcbuf_ref(rcbuf *b);
/* Drops a reference; frees the buffer with the last. NULL is fine. */
void rcbuf_unref(rcbuf *b);

#endif
