/* tests/unit/test_http.c - the JobManager's HTTP request head and query parsers: good input, partial heads, bad input. */
#include "check.h"

#include "jobmanager/http.h"
#include "sage/error.h"

static int parse(const char *text, sage__http_head *h)
{
    return sage__http_parse_head((const void *)text, strlen(text), h);
}

static void test_good(void)
{
    sage__http_head h;
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\nrest";
    CHECK_INT(parse(req, &h), SAGE__HTTP_COMPLETE);
    CHECK_STR(h.method, "GET");
    CHECK_STR(h.target, "/metrics");
    CHECK_INT(h.minor, 1);
    CHECK_INT(h.nheaders, 2);
    CHECK_STR(h.authorization, "Bearer abc");
    CHECK_INT(h.len, strlen(req) - 4); /* the bytes after the head are not part of it */

    CHECK_INT(parse("POST /x?y=1 HTTP/1.0\r\n\r\n", &h), SAGE__HTTP_COMPLETE);
    CHECK_STR(h.method, "POST");
    CHECK_STR(h.target, "/x?y=1");
    CHECK_INT(h.minor, 0);
    CHECK_STR(h.authorization, "");

    /* header names in any case, blanks around a value dropped, tabs inside kept */
    CHECK_INT(parse("GET / HTTP/1.1\r\nauthorization: \t Bearer  t\tu  \r\nX-Empty:\r\n\r\n", &h), SAGE__HTTP_COMPLETE);
    CHECK_STR(h.authorization, "Bearer  t\tu");
    CHECK_INT(h.nheaders, 2);
}

/* The dashboard's session cookie: found among other cookies, in any Cookie header; anything that is not
 * 1..64 hex digits is ignored (never an error: a browser sends every cookie of the host name). */
static void test_session_cookie(void)
{
    static const struct {
        const char *cookies, *want;
    } cases[] = {
        {"sage_session=abc123", "abc123"},
        {"theme=dark; sage_session=00ff; lang=en", "00ff"},
        {"sage_session=", ""},
        {"sage_session=xyz", ""},                    /* not hex */
        {"sage_session=ab cd", ""},                  /* a blank inside */
        {"my_sage_session=abcd", ""},                /* another name that ends the same */
        {"sage_sessions=abcd", ""},                  /* another name that starts the same */
        {"sage_session=abcd;sage_session=ef", "ef"}, /* the last one wins */
        {"sage_session=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", /* 64 */
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        {"sage_session=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", ""}, /* 65 */
        {";;; ; sage_session=1", "1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[512];
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nCookie: %s\r\n\r\n", cases[i].cookies);
        sage__http_head h;
        CHECK_INT(parse(req, &h), SAGE__HTTP_COMPLETE);
        CHECK_STR(h.session, cases[i].want);
    }
    sage__http_head h;
    CHECK_INT(parse("GET / HTTP/1.1\r\nCookie: a=1\r\ncookie: sage_session=beef\r\n\r\n", &h), SAGE__HTTP_COMPLETE);
    CHECK_STR(h.session, "beef");
}

/* The headers the dashboard's CSRF guard reads: Host and Origin whole, X-SAGE-CSRF when it is hex; each once. */
static void test_guard_headers(void)
{
    sage__http_head h;
    CHECK_INT(parse("POST /api/jobs/1/pause HTTP/1.1\r\nhost: 127.0.0.1:9\r\nORIGIN: http://127.0.0.1:9\r\n"
                    "x-sage-csrf: 00ffAB\r\n\r\n",
                    &h),
              SAGE__HTTP_COMPLETE);
    CHECK_STR(h.host, "127.0.0.1:9");
    CHECK_STR(h.origin, "http://127.0.0.1:9");
    CHECK_STR(h.csrf, "00ffAB");
    CHECK_INT(parse("POST / HTTP/1.1\r\nX-SAGE-CSRF: not hex\r\n\r\n", &h), SAGE__HTTP_COMPLETE);
    CHECK_STR(h.csrf, ""); /* kept only when it could be a secret: the dashboard then refuses the POST */
    CHECK_INT(parse("POST / HTTP/1.1\r\nX-SAGE-CSRF: "
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0\r\n\r\n",
                    &h),
              SAGE__HTTP_COMPLETE);
    CHECK_STR(h.csrf, ""); /* 65 digits */
    CHECK_INT(parse("POST / HTTP/1.1\r\nOrigin: null\r\n\r\n", &h), SAGE__HTTP_COMPLETE);
    CHECK_STR(h.origin, "null");
    CHECK_STR(h.host, "");
    static const struct {
        const char *head;
        int status;
        const char *error;
    } bad[] = {
        {"POST / HTTP/1.1\r\nOrigin: http://a\r\norigin: http://b\r\n\r\n", 400, "two Origin headers (line 3"},
        {"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Host headers (line 3"},
        {"POST / HTTP/1.1\r\nX-SAGE-CSRF: ab\r\nX-SAGE-CSRF: ab\r\n\r\n", 400, "two X-SAGE-CSRF headers"},
        {"POST / HTTP/1.1\r\nX-SAGE-CSRF: zz\r\nX-SAGE-CSRF: ab\r\n\r\n", 400, "two X-SAGE-CSRF headers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(parse(bad[i].head, &h), SAGE_EPROTO);
        CHECK_INT(h.status, bad[i].status);
        CHECK_CONTAINS(h.error, bad[i].error);
    }
    char req[600];
    int n = snprintf(req, sizeof req, "POST / HTTP/1.1\r\nOrigin: http://");
    memset(req + n, 'a', 300);
    snprintf(req + n + 300, sizeof req - (size_t)n - 300, "\r\n\r\n");
    CHECK_INT(parse(req, &h), SAGE_EPROTO);
    CHECK_INT(h.status, 431);
    CHECK_CONTAINS(h.error, "Origin header too long");
}

/* The dashboard's query parameters: strict, or malformed as a whole. */
static void test_query(void)
{
    static const struct {
        const char *target, *name;
        int rc;
        const char *value;
    } t[] = {
        {"/api/jobs/1/logs?task=2&offset=4096", "task", 1, "2"},
        {"/api/jobs/1/logs?task=2&offset=4096", "offset", 1, "4096"},
        {"/api/jobs/1/logs?task=2", "offset", 0, ""},
        {"/api/jobs/1/logs", "task", 0, ""},
        {"/?", "token", 0, ""},
        {"/?token=", "token", 1, ""},
        {"/?token=a-_.~Z", "token", 1, "a-_.~Z"},
        {"/?tokens=1", "token", 0, ""},
        {"/?xtoken=1", "token", 0, ""},
        {"/?token=0123456789", "token", SAGE_EINVAL, ""}, /* longer than the 8 bytes given */
        {"/?a=1&&b=2", "a", SAGE_EINVAL, ""},
        {"/?a=1&", "a", SAGE_EINVAL, ""},
        {"/?&a=1", "a", SAGE_EINVAL, ""},
        {"/?a", "a", SAGE_EINVAL, ""},
        {"/?=1", "a", SAGE_EINVAL, ""},
        {"/?a=1=2", "a", SAGE_EINVAL, ""},
        {"/?a=%41", "a", SAGE_EINVAL, ""},
        {"/?a=1+2", "a", SAGE_EINVAL, ""},
        {"/?a=1#frag", "a", SAGE_EINVAL, ""},
        {"/?a=1&b=?", "a", SAGE_EINVAL, ""}, /* malformed anywhere: malformed */
        {"/?a=1&a=2", "a", SAGE_EINVAL, ""},
        {"/?a=1&b=2&a=1", "b", SAGE_EINVAL, ""}, /* a key twice, even another one */
        {"/?a.b=1", "a", 0, ""},
        {"/x?a=1?b=2", "a", SAGE_EINVAL, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char v[8] = "junk";
        int rc = sage__http_query(t[i].target, t[i].name, v, sizeof v);
        if (rc != t[i].rc)
            fprintf(stderr, "  case %zu: %s: %d\n", i, t[i].target, rc);
        CHECK_INT(rc, t[i].rc);
        if (rc == 1)
            CHECK_STR(v, t[i].value);
    }
    static const struct {
        const char *target;
        int rc;
        long long value;
    } n[] = {
        {"/?n=0", 1, 0},
        {"/?n=9223372036854775807", 1, INT64_MAX},
        {"/?n=9223372036854775808", SAGE_EINVAL, 0},
        {"/?n=-1", SAGE_EINVAL, 0}, /* below the minimum */
        {"/?n=", SAGE_EINVAL, 0},
        {"/?n=1x", SAGE_EINVAL, 0},
        {"/?n=0x10", SAGE_EINVAL, 0},
        {"/?n=00012", 1, 12},
        {"/?m=1", 0, 0},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        int64_t v = -7;
        CHECK_INT(sage__http_query_i64(n[i].target, "n", 0, INT64_MAX, &v), n[i].rc);
        CHECK_INT(v, n[i].rc == 1 ? n[i].value : -7); /* written only when found */
    }
}

static void test_partial(void)
{
    static const char *const more[] = {
        "",
        "G",
        "GET /met",
        "GET /metrics HTTP/1.1",
        "GET /metrics HTTP/1.1\r",
        "GET /metrics HTTP/1.1\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\n",
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r",
        "G@T half a line", /* a line's grammar is judged once the line is whole */
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        sage__http_head h;
        int rc = parse(more[i], &h);
        if (rc != SAGE__HTTP_MORE)
            fprintf(stderr, "  \"%s\": %d %s\n", more[i], rc, h.error);
        CHECK_INT(rc, SAGE__HTTP_MORE);
    }
}

static void test_bad(void)
{
    static const struct {
        const char *text;
        int status;
        const char *error;
    } t[] = {
        {"GET /metrics HTTP/1.1\nHost: x\n\n", 400, "a line does not end with CRLF (line 1"},
        {"GET /metrics HTTP/1.1\r\nHost: x\n", 400, "a line does not end with CRLF (line 2"},
        {"GET /metrics HTTP/1.1\rX", 400, "a CR not followed by LF"},
        {"\r\n\r\n", 400, "empty request line"},
        {"G@T /metrics HTTP/1.1\r\n\r\n", 400, "malformed method"},
        {" GET /metrics HTTP/1.1\r\n\r\n", 400, "malformed method"},
        {"GETTINGTOOLONGMETHOD / HTTP/1.1\r\n\r\n", 400, "malformed method"},
        {"GET\r\n\r\n", 400, "malformed method"},
        {"GET  /metrics HTTP/1.1\r\n\r\n", 400, "malformed request target"},
        {"GET /metrics\r\n\r\n", 400, "malformed request target"},
        {"GET /metrics  HTTP/1.1\r\n\r\n", 400, "malformed HTTP version"},
        {"GET /metrics http/1.1\r\n\r\n", 400, "malformed HTTP version"},
        {"GET /metrics HTTP/1.1x\r\n\r\n", 400, "malformed HTTP version"},
        {"GET /metrics HTTP/2.0\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1"},
        {"GET /metrics HTTP/1.2\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1"},
        {"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", 400, "header line without a colon (line 2"},
        {"GET /metrics HTTP/1.1\r\n: x\r\n\r\n", 400, "malformed header name"},
        {"GET /metrics HTTP/1.1\r\nHo st: x\r\n\r\n", 400, "malformed header name"},
        {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header name"},
        {"GET /metrics HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "folded header line (line 3"},
        {"GET /metrics HTTP/1.1\r\nA: \x01\r\n\r\n", 400, "a control byte"},
        {"GET /metrics HTTP/1.1\r\nA: \x7f\r\n\r\n", 400, "a control byte"},
        {"GET /metrics HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n", 400, "two Authorization headers"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sage__http_head h;
        int rc = parse(t[i].text, &h);
        if (rc != SAGE_EPROTO || h.status != t[i].status || !strstr(h.error, t[i].error))
            fprintf(stderr, "  case %zu: rc %d status %d: %s\n", i, rc, h.status, h.error);
        CHECK_INT(rc, SAGE_EPROTO);
        CHECK_INT(h.status, t[i].status);
        CHECK_CONTAINS(h.error, t[i].error);
    }
    /* a NUL inside the head */
    sage__http_head h;
    static const unsigned char nul[] = "GET /metrics HTTP/1.1\r\nA: \0b\r\n\r\n";
    CHECK_INT(sage__http_parse_head(nul, sizeof nul - 1, &h), SAGE_EPROTO);
    CHECK_CONTAINS(h.error, "a control byte");
}

static void test_limits(void)
{
    static char big[SAGE__HTTP_HEAD_MAX + 64];
    sage__http_head h;
    /* no empty line within 8192 bytes */
    int n = snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\nX-Pad: ");
    memset(big + n, 'a', sizeof big - (size_t)n - 1);
    big[sizeof big - 1] = '\0';
    CHECK_INT(sage__http_parse_head((const void *)big, SAGE__HTTP_HEAD_MAX, &h), SAGE_EPROTO);
    CHECK_INT(h.status, 431);
    CHECK_CONTAINS(h.error, "longer than 8192 bytes");
    CHECK_INT(sage__http_parse_head((const void *)big, SAGE__HTTP_HEAD_MAX - 1, &h), SAGE__HTTP_MORE);

    /* exactly 8192 bytes, its empty line last: complete */
    size_t pad = SAGE__HTTP_HEAD_MAX - (size_t)n - 4;
    memset(big + n, 'a', pad);
    memcpy(big + n + pad, "\r\n\r\n", 4);
    CHECK_INT(sage__http_parse_head((const void *)big, SAGE__HTTP_HEAD_MAX, &h), SAGE__HTTP_COMPLETE);
    CHECK_INT(h.len, SAGE__HTTP_HEAD_MAX);

    /* too many header lines */
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= SAGE__HTTP_HEADERS_MAX; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "H%d: v\r\n", i);
    snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    CHECK_INT(parse(big, &h), SAGE_EPROTO);
    CHECK_INT(h.status, 431);
    CHECK_CONTAINS(h.error, "too many header lines (line 66");

    /* an Authorization value longer than kept */
    n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nAuthorization: Bearer ");
    memset(big + n, 't', 600);
    snprintf(big + n + 600, sizeof big - (size_t)n - 600, "\r\n\r\n");
    CHECK_INT(parse(big, &h), SAGE_EPROTO);
    CHECK_INT(h.status, 431);
    CHECK_CONTAINS(h.error, "Authorization header too long");
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_good);
    RUN(test_session_cookie);
    RUN(test_guard_headers);
    RUN(test_query);
    RUN(test_partial);
    RUN(test_bad);
    RUN(test_limits);
    return CHECK_DONE();
}
