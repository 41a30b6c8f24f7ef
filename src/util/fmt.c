/* util/fmt.c - small bounded string helpers used across the engine. */
#include <string.h>
#include <time.h>

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

void sage__deadline(struct timespec *dl, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, dl); /* pthread_cond_timedwait's default clock */
    dl->tv_sec += timeout_ms / 1000;
    dl->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl->tv_nsec >= 1000000000L) {
        dl->tv_sec++;
        dl->tv_nsec -= 1000000000L;
    }
}
