/* util/buf.h - the one growable byte buffer: every buffer has a hard maximum, reached as SAGE_ETOOBIG. */
#ifndef SAGE_UTIL_BUF_H
#define SAGE_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

/* Bytes p[0..len) of capacity cap, never more than max. Zero-initialised
 * with max set (or sage__buf_init) is an empty buffer; sage__buf_free
 * returns it to that state. Not thread-safe. */
typedef struct sage__buf {
    unsigned char *p;
    size_t len, cap, max;
} sage__buf;

void sage__buf_init(sage__buf *b, size_t max);
void sage__buf_free(sage__buf *b);
/* Make room for `extra` more bytes: 0, SAGE_ETOOBIG (len + extra > max) or
 * SAGE_ENOMEM. Capacity grows geometrically; one byte more is kept for the
 * NUL that sage__buf_cstr adds. */
int sage__buf_reserve(sage__buf *b, size_t extra);
int sage__buf_append(sage__buf *b, const void *data, size_t n);
/* printf at the end; the text counts against max like any bytes. */
int sage__buf_printf(sage__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sage__buf_vprintf(sage__buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes (n > len drops everything). */
void sage__buf_consume(sage__buf *b, size_t n);
/* The contents as a NUL-terminated string (the NUL is not counted in len);
 * "" for an empty buffer that never allocated. */
const char *sage__buf_cstr(sage__buf *b);
/* Hand the allocation to the caller (NUL-terminated, to free()); the buffer
 * is empty afterwards. NULL only when out of memory. */
char *sage__buf_detach(sage__buf *b, size_t *len);

#endif
