/* util/buf.c - bounded growable byte buffers. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sage/error.h"

void sage__buf_init(sage__buf *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void sage__buf_free(sage__buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int sage__buf_reserve(sage__buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return SAGE_ETOOBIG;
    size_t need = b->len + extra + 1; /* room for a NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return SAGE_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int sage__buf_append(sage__buf *b, const void *data, size_t n)
{
    int rc = sage__buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

int sage__buf_vprintf(sage__buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return SAGE_EINVAL;
    int rc = sage__buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sage__buf_printf(sage__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sage__buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void sage__buf_consume(sage__buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

const char *sage__buf_cstr(sage__buf *b)
{
    if (!b->p)
        return "";
    b->p[b->len] = '\0'; /* reserve always keeps one byte for it */
    return (const char *)b->p;
}

char *sage__buf_detach(sage__buf *b, size_t *len)
{
    if (!b->p && sage__buf_reserve(b, 0) != 0)
        return NULL;
    b->p[b->len] = '\0';
    char *p = (char *)b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
