/*
 * fieldpath.c — see fieldpath.h.
 * Thread: any.
 */
#include "base/fieldpath.h"

#include <stdio.h>
#include <string.h>

size_t fieldpath_push(char *path, size_t path_bytes, const char *name, long index)
{
    size_t len = strlen(path);
    if (name)
        snprintf(path + len, path_bytes - len, "%s%s", len ? "." : "", name);
    else
        snprintf(path + len, path_bytes - len, "[%ld]", index);
    return len;
}
