/*
 * memory.c — see memory.h.
 * Thread: any.
 */
#include "base/memory.h"

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

size_t memory_heap_free_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.fordblks;
}

bool memory_trim_idle(void)
{
    if (memory_heap_free_bytes() < MEMORY_TRIM_FREE_BYTES_MIN) return false;
    malloc_trim(0);
    return true;
}

size_t memory_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size_pages = 0, resident_pages = 0;
    int n = fscanf(f, "%lu %lu", &size_pages, &resident_pages);
    fclose(f);
    if (n != 2) return 0;
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)resident_pages * (size_t)page : 0;
}
