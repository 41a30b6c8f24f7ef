/* util/escape.h - user text made safe for one line of a log or a terminal table: control characters made visible. */
#ifndef SAGE_UTIL_ESCAPE_H
#define SAGE_UTIL_ESCAPE_H

#include <stddef.h>

/* Copy in[0..len) into out[0..cap) (NUL-terminated when cap > 0) with
 * everything that could end a line or drive a terminal made visible:
 * newline, carriage return, tab, escape and backslash as \n \r \t \e \\,
 * the other C0 bytes, NUL and DEL as \xHH, and, byte by byte as \xHH, the
 * C1 controls (U+0080..U+009F), the line and paragraph separators
 * (U+2028, U+2029), the bidirectional overrides and isolates
 * (U+202A..U+202E, U+2066..U+2069) and every byte that is not part of
 * valid UTF-8. Other valid UTF-8 passes unchanged, so the result is one
 * line of printable text, and reversible (a backslash in the input is
 * doubled). An escape is never cut: the output stops before the first one
 * that does not fit, and then ends in "..." when cap allows. Returns the
 * bytes written, without the NUL. */
size_t sage__escape(char *out, size_t cap, const char *in, size_t len);

/* The same for a NUL-terminated string (NULL reads as ""). Returns out. */
const char *sage__escape_str(char *out, size_t cap, const char *in);

#endif
