/* util/escape.c - control characters, invalid UTF-8 and line or direction changers written as visible escapes. */
#include "util/escape.h"

#include <string.h>

#include "util/utf8.h"

/* Length of the valid UTF-8 sequence at s (at most n bytes; util/utf8.c judges) and its code point, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
    size_t len = 0;
    for (size_t k = 1; k <= 4 && k <= n && !len; k++)
        if (sage__utf8_valid((const char *)s, k))
            len = k;
    if (len == 0)
        return 0;
    *cp = len == 1 ? s[0] : s[0] & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++)
        *cp = (*cp << 6) | (s[i] & 0x3Fu);
    return len;
}

/* A code point that must not reach a log line or a terminal as itself. */
static int hidden(unsigned cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t sage__escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    if (!in)
        len = 0;
    size_t o = 0, i = 0, room = 0; /* room: a piece boundary with space left for "..." */
    char piece[16];
    while (i < len) {
        unsigned cp = 0;
        size_t sl = utf8_seq(p + i, len - i, &cp), pl = 0;
        if (sl == 1 && cp == '\\') {
            memcpy(piece, "\\\\", pl = 2);
        } else if (sl == 1 && (cp == '\n' || cp == '\r' || cp == '\t' || cp == 0x1B)) {
            piece[0] = '\\';
            piece[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : cp == '\t' ? 't' : 'e';
            pl = 2;
        } else if (sl == 0 || hidden(cp)) {
            size_t n = sl ? sl : 1; /* a hidden character byte by byte; a bad byte alone */
            for (size_t k = 0; k < n; k++) {
                piece[pl++] = '\\';
                piece[pl++] = 'x';
                piece[pl++] = hex[p[i + k] >> 4];
                piece[pl++] = hex[p[i + k] & 15];
            }
            sl = n;
        } else {
            memcpy(piece, p + i, pl = sl);
        }
        if (o + pl >= cap) { /* does not fit with its NUL: cut at the last whole escape that leaves room for "..." */
            o = room;
            if (cap >= 4) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, piece, pl);
        o += pl;
        i += sl;
        if (cap >= 4 && o <= cap - 4)
            room = o;
    }
    out[o] = '\0';
    return o;
}

const char *sage__escape_str(char *out, size_t cap, const char *in)
{
    sage__escape(out, cap, in, in ? strlen(in) : 0);
    return out;
}
