/*
 * jsize.c — see jsize.h. The constants are jansson 2.14's allocations on a
 * 64-bit glibc, rounded up to the allocator's chunks.
 * Thread: any.
 */
#include "base/jsize.h"

#include <string.h>

enum {
    JSIZE_SCALAR_BYTES = 32,    /* an integer, real, or a string's struct */
    JSIZE_CONTAINER_BYTES = 64, /* an array's or object's struct and table head */
    JSIZE_SLOT_BYTES = 8,       /* an array slot */
    JSIZE_PAIR_BYTES = 48,      /* an object's hash pair and bucket */
    JSIZE_DEPTH_MAX = 256,      /* deeper than any value dojo accepts */
};

static size_t heap_bytes(const json_t *v, int depth)
{
    if (!v) return 0;
    /* A value deeper than dojo accepts from clients (a token's claim can
     * be): what lies below is counted as its first level only. */
    if (depth > JSIZE_DEPTH_MAX) return JSIZE_CONTAINER_BYTES;
    if (json_is_string(v)) return JSIZE_SCALAR_BYTES + json_string_length(v) + 1;
    if (json_is_array(v)) {
        size_t n = JSIZE_CONTAINER_BYTES + JSIZE_SLOT_BYTES * json_array_size(v);
        for (size_t i = 0; i < json_array_size(v); i++)
            n += heap_bytes(json_array_get(v, i), depth + 1);
        return n;
    }
    if (json_is_object(v)) {
        size_t n = JSIZE_CONTAINER_BYTES;
        const char *k;
        json_t *item;
        json_object_foreach((json_t *)v, k, item) n +=
            JSIZE_PAIR_BYTES + strlen(k) + heap_bytes(item, depth + 1);
        return n;
    }
    return json_is_integer(v) || json_is_real(v) ? JSIZE_SCALAR_BYTES : 0; /* true/false/null */
}

size_t json_heap_bytes(const json_t *v)
{
    return heap_bytes(v, 0);
}
