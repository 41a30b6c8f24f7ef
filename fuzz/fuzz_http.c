/* fuzz/fuzz_http.c - fuzzes the JobManager's HTTP request head parser (the /metrics endpoint's first bytes).
 *
 * Invariants: the result is complete, more, or a refusal; a complete head
 * ends with its empty line within the input and the head limit, with a
 * method and a target; a refusal carries a status (400, 431 or 505) and a
 * message; "more" means the input holds no empty line and is under the
 * limit. A prefix of a complete head is "more" (or the same head when it
 * holds it whole): the daemon can never refuse a good request because it
 * read it in pieces. The token the daemon checks comes from a header line
 * named Authorization (in any case) and from nowhere else: a complete head
 * with a non-empty authorization has such a line, whose value it is. The
 * CSRF secret kept is hex, at most 64 digits. The dashboard's query parser
 * (sage__http_query) run on every complete head's target answers found,
 * absent or malformed; a value found holds only unreserved bytes and is in
 * the target as "key=value" between '?' or '&' and '&' or its end; a
 * number found is in range.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobmanager/http.h"
#include "sage/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_http: %s\n  input (%zu bytes): %.*s\n", what, size, (int)(size > 300 ? 300 : size),
            (const char *)data);
    abort();
}

/* 1 when a header line of the head data[0..len) is "Authorization:" (any case) with value (blanks around). */
static int has_auth_line(const uint8_t *data, size_t len, const char *value)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (data[i] != '\r' || data[i + 1] != '\n')
            continue;
        const char *line = (const char *)data + i + 2;
        size_t rest = len - i - 2;
        if (rest < 14 || strncasecmp(line, "authorization:", 14) != 0)
            continue;
        size_t v = 14, vl = strlen(value);
        while (v < rest && (line[v] == ' ' || line[v] == '\t'))
            v++;
        if (rest - v >= vl && memcmp(line + v, value, vl) == 0)
            return 1;
    }
    return 0;
}

/* The query parser's invariants on one target and key. */
static void check_query(const char *target, const char *name, const uint8_t *data, size_t size)
{
    char v[80];
    int rc = sage__http_query(target, name, v, sizeof v);
    if (rc != 0 && rc != 1 && rc != SAGE_EINVAL)
        fail("the query parser gave an unexpected result", data, size);
    if (rc == 1) {
        for (const char *p = v; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("._~-", *p))
                fail("a query value with a reserved byte", data, size);
        char pair[200];
        snprintf(pair, sizeof pair, "%s=%s", name, v);
        const char *q = strchr(target, '?');
        const char *at = q ? strstr(q, pair) : NULL; /* (q[0] is '?': at[-1] is in the target) */
        size_t pl = strlen(pair);
        while (at && !((at[-1] == '?' || at[-1] == '&') && (at[pl] == '&' || at[pl] == '\0')))
            at = strstr(at + 1, pair);
        if (!at)
            fail("a query value that is not a key=value part of the target's query", data, size);
    }
    int64_t n = -1;
    rc = sage__http_query_i64(target, name, 0, 1000000, &n);
    if ((rc == 1 && (n < 0 || n > 1000000)) || (rc != 1 && n != -1) || (rc != 0 && rc != 1 && rc != SAGE_EINVAL))
        fail("a query number out of range, or written when not found", data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * SAGE__HTTP_HEAD_MAX)
        return 0;
    sage__http_head h;
    int rc = sage__http_parse_head(data, size, &h);
    if (rc == SAGE__HTTP_COMPLETE) {
        if (h.len < 4 || h.len > size || h.len > SAGE__HTTP_HEAD_MAX || memcmp(data + h.len - 4, "\r\n\r\n", 4) != 0)
            fail("a complete head that does not end with its empty line", data, size);
        if (!h.method[0] || !h.target[0] || (h.minor != 0 && h.minor != 1) ||
            !memchr(h.authorization, '\0', sizeof h.authorization) || h.nheaders > SAGE__HTTP_HEADERS_MAX)
            fail("a complete head with bad fields", data, size);
        if (memmem(data, h.len - 2, "\r\n\r\n", 4) != NULL)
            fail("the head ends after an earlier empty line", data, size);
        if (h.authorization[0] && !has_auth_line(data, h.len, h.authorization))
            fail("a token taken from somewhere else than an Authorization header line", data, size);
        for (const char *p = h.csrf; *p; p++)
            if (!isxdigit((unsigned char)*p))
                fail("a CSRF secret that is not hex", data, size);
        if (!memchr(h.csrf, '\0', sizeof h.csrf) || !memchr(h.origin, '\0', sizeof h.origin) ||
            !memchr(h.host, '\0', sizeof h.host))
            fail("a guard header not NUL-terminated", data, size);
        check_query(h.target, "task", data, size);
        check_query(h.target, "offset", data, size);
        check_query(h.target, "token", data, size);
    } else if (rc == SAGE__HTTP_MORE) {
        if (size >= SAGE__HTTP_HEAD_MAX || memmem(data, size, "\r\n\r\n", 4) != NULL)
            fail("more asked for although the head is whole or too long", data, size);
    } else if (rc == SAGE_EPROTO) {
        if ((h.status != 400 && h.status != 431 && h.status != 505) || !h.error[0] ||
            !memchr(h.error, '\0', sizeof h.error))
            fail("a refusal without a status and a message", data, size);
    } else {
        fail("an unexpected result", data, size);
    }
    if (rc == SAGE__HTTP_COMPLETE) {
        size_t k = size / 2;
        sage__http_head p;
        int prc = sage__http_parse_head(data, k, &p);
        if (k < h.len ? prc != SAGE__HTTP_MORE : prc != SAGE__HTTP_COMPLETE || p.len != h.len)
            fail("a prefix of a complete head is refused or read differently", data, size);
    }
    return 0;
}
