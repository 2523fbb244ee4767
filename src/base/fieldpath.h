/*
 * fieldpath.h — the path of a value inside arguments or a document, the way
 * error messages name it ("nodes[3].data.label"): built while a checker
 * descends, cut back when it returns.
 * Thread: any (the caller owns the buffer).
 */
#ifndef DOJO_BASE_FIELDPATH_H
#define DOJO_BASE_FIELDPATH_H

#include <stddef.h>

/* Appends ".name" (just "name" at the start), or "[index]" when name is
 * NULL, to the NUL-terminated path in a buffer of path_bytes (truncating
 * when it is full). Returns the previous length: path[that] = '\0' undoes
 * it. */
size_t fieldpath_push(char *path, size_t path_bytes, const char *name, long index);

#endif
