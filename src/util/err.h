/* util/err.h - one way to report an error: a code and a bounded message that names what was wrong and where. */
#ifndef SAGE_UTIL_ERR_H
#define SAGE_UTIL_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define SAGE__ERRMSG_MAX 1024

/* An error slot: code 0 means none. The first error recorded wins (sticky):
 * later ones are ignored, so the message explains the root cause rather
 * than its echoes. Not thread-safe; callers that share a slot across
 * threads hold their own lock around sage__errf. */
typedef struct sage__err {
    int code;
    char msg[SAGE__ERRMSG_MAX];
} sage__err;

/* printf into buf[0..len), always NUL-terminated when len > 0; buf may be
 * NULL when len is 0. Truncates silently (messages are bounded). */
void sage__fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sage__vfmt(char *buf, size_t len, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Record code and message in e unless it already holds an error. Returns
 * code either way, so `return sage__errf(e, SAGE_EINVAL, ...)` reads well.
 * e may be NULL (the code is still returned). */
int sage__errf(sage__err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sage__verrf(sage__err *e, int code, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Copy src into dst (cap bytes, NUL-terminated); returns strlen(src), so
 * truncation shows as a result >= cap. */
size_t sage__strlcpy(char *dst, const char *src, size_t cap);

#endif
