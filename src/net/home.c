/* net/home.c - where a JobManager keeps its state and its clients find the token: the state directory. */
#include <stdio.h>
#include <stdlib.h>

#include "sage/jobmanager.h"

SAGE_API int sage_home_dir(const char *home, char *out, size_t out_len)
{
    const char *h = home && *home ? home : getenv("SAGE_HOME");
    int n;
    if (h && *h)
        n = snprintf(out, out_len, "%s", h);
    else {
        const char *u = getenv("HOME");
        n = snprintf(out, out_len, "%s/.sage", u && *u ? u : "/tmp");
    }
    return n < 0 || (size_t)n >= out_len ? SAGE_ETOOBIG : 0;
}
