/*
 * buf.c — the bounded, growing text the renderers of codegen write into (see
 * codegen_impl.h). Errors are sticky so that a renderer is a straight list of
 * appends checked once at the end.
 * Thread: the caller's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/invariant.h"
#include "codegen/codegen_impl.h"

#define CODEGEN_BUF_INITIAL_BYTES 4096

void codegen_buf_init(codegen_buf *b)
{
    memset(b, 0, sizeof *b);
}

void codegen_buf_free(codegen_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void codegen_buf_fail(codegen_buf *b, int code, const char *fmt, ...)
{
    ASSERT(code < 0);
    if (b->err) return;
    b->err = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err_msg, sizeof b->err_msg, fmt, ap);
    va_end(ap);
}

/* Makes room for n more bytes plus the terminating NUL. */
static bool codegen_buf_reserve(codegen_buf *b, size_t n)
{
    if (b->err) return false;
    if (n > CODEGEN_FILE_BYTES_MAX - b->len_bytes) {
        codegen_buf_fail(b, ERR_LIMIT, "a generated file would exceed %u bytes",
                         CODEGEN_FILE_BYTES_MAX);
        return false;
    }
    size_t need_bytes = b->len_bytes + n + 1;
    if (need_bytes <= b->cap_bytes) return true;
    size_t cap_bytes = b->cap_bytes ? b->cap_bytes : CODEGEN_BUF_INITIAL_BYTES;
    while (cap_bytes < need_bytes)
        cap_bytes *= 2;
    char *data = realloc(b->data, cap_bytes);
    if (!data) {
        codegen_buf_fail(b, ERR_NOMEM, "out of memory");
        return false;
    }
    b->data = data;
    b->cap_bytes = cap_bytes;
    return true;
}

void codegen_buf_putn(codegen_buf *b, const char *s, size_t n)
{
    if (!codegen_buf_reserve(b, n)) return;
    memcpy(b->data + b->len_bytes, s, n);
    b->len_bytes += n;
    b->data[b->len_bytes] = '\0';
}

void codegen_buf_puts(codegen_buf *b, const char *s)
{
    codegen_buf_putn(b, s, strlen(s));
}

void codegen_buf_printf(codegen_buf *b, const char *fmt, ...)
{
    if (b->err) return;
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        codegen_buf_fail(b, ERR_INTERNAL, "bad format \"%s\"", fmt);
    } else if (codegen_buf_reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len_bytes, (size_t)n + 1, fmt, ap2);
        b->len_bytes += (size_t)n;
    }
    va_end(ap2);
}

void codegen_buf_indent(codegen_buf *b, int level)
{
    ASSERT(level >= 0);
    for (int i = 0; i < level; i++)
        codegen_buf_putn(b, "  ", 2);
}
