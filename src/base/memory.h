/*
 * memory.h — giving freed memory back to the system, and reading how much
 * the process holds. glibc keeps the heap a burst of work freed (a slow
 * client dropped, a big result pushed) and RSS stays at its peak; a server
 * that once held 1 GB for a minute should not hold it for a day. The
 * server calls memory_trim_idle() about once a second: when the allocator
 * holds more than MEMORY_TRIM_FREE_BYTES_MIN of free heap, malloc_trim
 * returns it (whole free pages, in every arena).
 * Thread: any (glibc locks its arenas).
 */
#ifndef DOJO_BASE_MEMORY_H
#define DOJO_BASE_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

/* Free heap worth a trim; below it the pages stay for the next burst. */
#define MEMORY_TRIM_FREE_BYTES_MIN (4u * 1024 * 1024)

/* Trims when enough heap is free; true when it trimmed. */
bool memory_trim_idle(void);
/* Resident set size of the process in bytes (0 when unknown). */
size_t memory_rss_bytes(void);
/* Free bytes the allocator holds (the heap not in use). */
size_t memory_heap_free_bytes(void);

#endif
