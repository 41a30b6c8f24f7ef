/* util/fmt.c - small bounded string helpers used across the engine. */
#include <string.h>

#include "core.h"

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
