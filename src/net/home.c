/* net/home.c - where a JobManager keeps its state and its clients find the token: the state directory. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sage/jobmanager.h"

SAGE_API int sage_home_dir(const char *home, char *out, size_t out_len)
{
    const char *h = home && *home ? home : getenv("SAGE_HOME");
    int n;
    if (h && *h) {
        n = snprintf(out, out_len, "%s", h);
    } else {
        const char *u = getenv("HOME");
        char buf[4096];
        struct passwd pw, *pwp = NULL;
        if ((!u || !*u) && getpwuid_r(getuid(), &pw, buf, sizeof buf, &pwp) == 0 && pwp && pwp->pw_dir[0])
            u = pwp->pw_dir;
        if (!u || !*u) { /* no predictable shared fallback such as /tmp: refuse */
            if (out_len)
                out[0] = '\0';
            return SAGE_ENOTFOUND;
        }
        n = snprintf(out, out_len, "%s/.sage", u);
    }
    return n < 0 || (size_t)n >= out_len ? SAGE_ETOOBIG : 0;
}
