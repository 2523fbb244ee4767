/*
 * invariant.c — what a failed ASSERT does (see invariant.h): one log line
 * naming the expression, file, line and function, then abort().
 * Thread: any.
 */
#include "base/invariant.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"

void invariant_failed(const char *expr, const char *file, int line, const char *func)
{
    if (log_level() <= LOG_ERROR)
        log_error("assertion failed: %s (%s:%d, in %s); stopping", expr, file, line, func);
    else /* logging is off: this line is said anyway */
        fprintf(stderr, "assertion failed: %s (%s:%d, in %s); stopping\n", expr, file, line, func);
    abort();
}
