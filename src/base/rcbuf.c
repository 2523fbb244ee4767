/*
 * rcbuf.c — see rcbuf.h.
 * Thread: the event-loop thread only.
 */
#include "base/rcbuf.h"

#include <stdlib.h>
#include <string.h>

#include "base/invariant.h"

rcbuf *rcbuf_new(const char *bytes, size_t len)
{
    rcbuf *b = malloc(sizeof *b + len + 1);
    if (!b) return NULL;
    b->refs = 1;
    b->sending = 0;
    b->len = len;
    memcpy(b->bytes, bytes, len);
    b->bytes[len] = '\0';
    return b;
}

rcbuf *rcbuf_ref(rcbuf *b)
{
    ASSERT(b && b->refs > 0 && b->refs < UINT32_MAX);
    b->refs++;
    return b;
}

void rcbuf_unref(rcbuf *b)
{
    if (!b) return;
    ASSERT(b->refs > 0);
    if (--b->refs > 0) return;
    ASSERT(b->sending == 0); /* a socket writing it holds a reference */
    free(b);
}
