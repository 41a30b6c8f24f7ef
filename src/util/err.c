/* util/err.c - bounded message formatting and the sticky first-error slot. */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

void sage__vfmt(char *buf, size_t len, const char *fmt, va_list ap)
{
    if (!buf || len == 0)
        return;
    if (vsnprintf(buf, len, fmt, ap) < 0)
        buf[0] = '\0';
}

void sage__fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sage__vfmt(buf, len, fmt, ap);
    va_end(ap);
}

int sage__verrf(sage__err *e, int code, const char *fmt, va_list ap)
{
    if (e && e->code == 0) {
        e->code = code;
        sage__vfmt(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

int sage__errf(sage__err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sage__verrf(e, code, fmt, ap);
    va_end(ap);
    return code;
}

size_t sage__strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (cap) {
        size_t m = n < cap - 1 ? n : cap - 1;
        memcpy(dst, src, m);
        dst[m] = '\0';
    }
    return n;
}
