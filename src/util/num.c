/* util/num.c - strict decimal integer parsing with range checks. */
#include "util/num.h"

#include <errno.h>
#include <stdlib.h>

#include "sage/error.h"

int sage__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s)
        return SAGE_EINVAL;
    const char *d = s[0] == '-' ? s + 1 : s;
    if (*d < '0' || *d > '9')
        return SAGE_EINVAL; /* empty, blank, '+', or no digit after '-' */
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return SAGE_EINVAL;
    if (errno == ERANGE || v < lo || v > hi)
        return SAGE_ETOOBIG;
    *out = (int64_t)v;
    return 0;
}

int sage__parse_int(const char *s, int lo, int hi, int *out)
{
    int64_t v;
    int rc = sage__parse_i64(s, lo, hi, &v);
    if (rc == 0)
        *out = (int)v;
    return rc;
}
