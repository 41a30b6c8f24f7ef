/* util/utf8.h - making text safe for JSON: invalid UTF-8 replaced in place. */
#ifndef SAGE_UTIL_UTF8_H
#define SAGE_UTIL_UTF8_H

#include <stddef.h>

/* Replace every byte that is not part of a valid UTF-8 sequence (and every
 * NUL) in s[0..len) by '?', in place. Program output and user messages may
 * hold anything; JSON (and so the wire protocol) holds only UTF-8. */
void sage__utf8_clean(char *s, size_t len);
/* 1 when s[0..len) is valid UTF-8 without NULs. */
int sage__utf8_valid(const char *s, size_t len);

#endif
