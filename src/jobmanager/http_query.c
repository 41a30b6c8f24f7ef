/* jobmanager/http_query.c - the dashboard's query parameters ("?task=2&offset=4096"): a strict, pure parser.
 *
 * Strict on purpose: the dashboard's own parameters are numbers and hex
 * secrets, so a query holds only unreserved bytes (A-Z a-z 0-9 . _ ~ -)
 * around '=' and '&', with no percent-encoding to decode; anything else,
 * an empty part, a key without '=' or a key given twice makes the whole
 * query malformed (the dashboard answers 400), rather than being read one
 * way here and another way by someone else. Reads only the NUL-terminated
 * target. */
#include <string.h>

#include "jobmanager/http.h"
#include "sage/error.h"
#include "util/num.h"

static int unreserved(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '_' ||
           ch == '~' || ch == '-';
}

/* 1 when the key at k (kl bytes) is given again in the parts after `after` (a NUL-terminated query). */
static int given_again(const char *k, size_t kl, const char *after)
{
    for (const char *p = after; *p;) {
        if (strncmp(p, k, kl) == 0 && p[kl] == '=')
            return 1;
        const char *e = strchr(p, '&');
        p = e ? e + 1 : p + strlen(p);
    }
    return 0;
}

int sage__http_query(const char *target, const char *name, char *out, size_t cap)
{
    const char *q = strchr(target, '?');
    size_t nl = strlen(name);
    int found = 0;
    if (cap)
        out[0] = '\0';
    if (!q)
        return 0;
    for (const char *p = q + 1; *p;) {
        const char *e = strchr(p, '&');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', l);
        if (!eq || eq == p)
            return SAGE_EINVAL; /* an empty part, no '=', an empty key */
        for (const char *c = p; c < p + l; c++)
            if (c != eq && !unreserved(*c))
                return SAGE_EINVAL;
        size_t kl = (size_t)(eq - p), vl = l - kl - 1;
        if (e && given_again(p, kl, e + 1))
            return SAGE_EINVAL;
        if (kl == nl && strncmp(p, name, nl) == 0) {
            if (vl >= cap)
                return SAGE_EINVAL;
            memcpy(out, eq + 1, vl);
            out[vl] = '\0';
            found = 1;
        }
        if (e && !e[1])
            return SAGE_EINVAL; /* a trailing '&': an empty part */
        p = e ? e + 1 : p + l;
    }
    return found;
}

int sage__http_query_i64(const char *target, const char *name, int64_t min, int64_t max, int64_t *out)
{
    char v[24];
    int rc = sage__http_query(target, name, v, sizeof v);
    if (rc != 1)
        return rc;
    return v[0] && sage__parse_i64(v, min, max, out) == 0 ? 1 : SAGE_EINVAL;
}
