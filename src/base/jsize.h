/*
 * jsize.h — what a JSON value costs on the heap as jansson holds it (the
 * value structs, strings, arrays' slots, objects' hash tables and keys),
 * estimated. The bounds on structures that keep values (the history of
 * commits, the query cache) count with it.
 * Thread: any; pure.
 */
#ifndef DOJO_BASE_JSIZE_H
#define DOJO_BASE_JSIZE_H

#include <jansson.h>
#include <stddef.h>

size_t json_heap_bytes(const json_t *v);

#endif
