/*
 * err.c — naming and filling err_t values (see err.h).
 * Thread: any.
 */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *err_name(int code)
{
    switch (code) {
    case ERR_OK:
        return "OK";
    case ERR_UNAUTHENTICATED:
        return "UNAUTHENTICATED";
    case ERR_FORBIDDEN:
        return "FORBIDDEN";
    case ERR_NOT_FOUND:
        return "NOT_FOUND";
    case ERR_INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
    case ERR_INSUFFICIENT_CREDITS:
        return "INSUFFICIENT_CREDITS";
    case ERR_UNKNOWN_MODEL:
        return "UNKNOWN_MODEL";
    case ERR_INVALID_TRANSITION:
        return "INVALID_TRANSITION";
    case ERR_AUTH:
        return "Unauthenticated";
    case ERR_INTERNAL:
        return "INTERNAL";
    case ERR_NOMEM:
        return "NOMEM";
    case ERR_STORAGE:
        return "STORAGE";
    case ERR_IO:
        return "IO";
    case ERR_CONSTRAINT:
        return "CONSTRAINT";
    case ERR_BUSY:
        return "BUSY";
    case ERR_LIMIT:
        return "LIMIT";
    case ERR_UNAVAILABLE:
        return "UNAVAILABLE";
    default:
        return "UNKNOWN_ERROR";
    }
}

int err_is_application(int code)
{
    return code <= ERR_UNAUTHENTICATED && code >= ERR_INVALID_TRANSITION;
}

void err_init(err_t *e)
{
    e->code = ERR_OK;
    e->msg[0] = '\0';
    e->data = NULL;
}

void err_clear(err_t *e)
{
    json_decref(e->data);
    err_init(e);
}

static void err_vformat(err_t *e, int code, const char *fmt, va_list ap)
{
    json_decref(e->data);
    e->data = NULL;
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

int err_set(err_t *e, int code, const char *fmt, ...)
{
    if (!e) return code;
    va_list ap;
    va_start(ap, fmt);
    err_vformat(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int err_app(err_t *e, int code, json_t *extra, const char *fmt, ...)
{
    if (!e) {
        json_decref(extra);
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    err_vformat(e, code, fmt, ap);
    va_end(ap);
    json_t *data = json_object();
    if (data) {
        json_object_set_new(data, "code", json_string(err_name(code)));
        if (extra) json_object_update(data, extra);
    }
    json_decref(extra);
    e->data = data;
    return code;
}

void err_move(err_t *dst, err_t *src)
{
    json_decref(dst->data);
    *dst = *src;
    err_init(src);
}
