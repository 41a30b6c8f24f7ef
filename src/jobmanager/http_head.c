/* jobmanager/http_head.c - parses an HTTP/1.x request head (request line, header lines) from bytes; no I/O.
 *
 * Strict on purpose (RFC 9112 without the tolerances): every line ends with
 * CRLF, the request line is METHOD SP TARGET SP HTTP/1.x with single spaces,
 * header names are tokens followed directly by a colon, values hold no
 * control byte but HTAB, and obsolete line folding is refused. A byte that
 * can never be part of a head (a control byte, a CR or LF out of place) is
 * refused as soon as it is read, a line's grammar once the line is whole,
 * so a client sending garbage is answered before it fills the head limit.
 */
#include "jobmanager/http.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "sage/error.h"
#include "util/err.h"

static int refuse(sage__http_head *h, int status, const char *what, size_t line)
{
    h->status = status;
    sage__fmt(h->error, sizeof h->error, "%s (line %zu of the request head)", what, line);
    return SAGE_EPROTO;
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The request line: METHOD SP TARGET SP HTTP/1.x */
static int request_line(const unsigned char *p, size_t n, sage__http_head *h)
{
    size_t m = 0;
    while (m < n && is_tchar(p[m]))
        m++;
    if (m == 0 || m >= sizeof h->method || m == n || p[m] != ' ')
        return refuse(h, 400, "malformed method", 1);
    memcpy(h->method, p, m);
    h->method[m] = '\0';
    size_t t = m + 1, te = t;
    while (te < n && p[te] > 0x20 && p[te] < 0x7f)
        te++;
    if (te == t || te - t >= sizeof h->target || te == n || p[te] != ' ')
        return refuse(h, 400, "malformed request target", 1);
    memcpy(h->target, p + t, te - t);
    h->target[te - t] = '\0';
    const unsigned char *v = p + te + 1;
    size_t vl = n - te - 1;
    if (vl != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
        return refuse(h, 400, "malformed HTTP version", 1);
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return refuse(h, 505, "only HTTP/1.0 and HTTP/1.1 are served", 1);
    h->minor = v[7] - '0';
    return 0;
}

/* A Cookie header's value: "name=value; name=value"; keep the dashboard's session cookie
 * (SAGE__HTTP_SESSION_COOKIE) when its value is 1..64 hex digits, ignore every other cookie (a browser
 * sends the cookies of every server on the same host name). */
static void session_cookie(const unsigned char *p, size_t n, sage__http_head *h)
{
    static const char name[] = SAGE__HTTP_SESSION_COOKIE "=";
    size_t nl = sizeof name - 1, i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == ';'))
            i++;
        size_t e = i;
        while (e < n && p[e] != ';')
            e++;
        if (e - i > nl && memcmp(p + i, name, nl) == 0) {
            size_t vl = e - i - nl;
            int hex = vl < sizeof h->session;
            for (size_t k = 0; hex && k < vl; k++)
                hex = isxdigit(p[i + nl + k]) != 0;
            if (hex) {
                memcpy(h->session, p + i + nl, vl);
                h->session[vl] = '\0';
            }
        }
        i = e;
    }
}

/* A header kept whole that may appear once (Host, Origin): its value into out. */
static int keep_once(char *out, size_t cap, int *seen, const unsigned char *p, size_t n, const char *name, size_t line,
                     sage__http_head *h)
{
    char what[64];
    if ((*seen)++) {
        sage__fmt(what, sizeof what, "two %s headers", name);
        return refuse(h, 400, what, line);
    }
    if (n >= cap) {
        sage__fmt(what, sizeof what, "%s header too long", name);
        return refuse(h, 431, what, line);
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* One header line (without its CRLF). */
static int header_line(const unsigned char *p, size_t n, size_t line, sage__http_head *h)
{
    if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
        return refuse(h, 400, "folded header line", line);
    if (!memchr(p, ':', n))
        return refuse(h, 400, "header line without a colon", line);
    size_t m = 0;
    while (m < n && is_tchar(p[m]))
        m++;
    if (m == 0 || m == n || p[m] != ':')
        return refuse(h, 400, "malformed header name", line);
    if (++h->nheaders > SAGE__HTTP_HEADERS_MAX)
        return refuse(h, 431, "too many header lines", line);
    size_t v = m + 1, ve = n;
    while (v < ve && (p[v] == ' ' || p[v] == '\t'))
        v++;
    while (ve > v && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    if (m == 13 && strncasecmp((const char *)p, "Authorization", 13) == 0) {
        if (h->authorization[0])
            return refuse(h, 400, "two Authorization headers", line);
        if (ve - v >= sizeof h->authorization)
            return refuse(h, 431, "Authorization header too long", line);
        memcpy(h->authorization, p + v, ve - v);
        h->authorization[ve - v] = '\0';
    } else if (m == 6 && strncasecmp((const char *)p, "Cookie", 6) == 0) {
        session_cookie(p + v, ve - v, h);
    } else if (m == 4 && strncasecmp((const char *)p, "Host", 4) == 0) {
        return keep_once(h->host, sizeof h->host, &h->seen_host, p + v, ve - v, "Host", line, h);
    } else if (m == 6 && strncasecmp((const char *)p, "Origin", 6) == 0) {
        return keep_once(h->origin, sizeof h->origin, &h->seen_origin, p + v, ve - v, "Origin", line, h);
    } else if (m == 11 && strncasecmp((const char *)p, "X-SAGE-CSRF", 11) == 0) {
        if (h->seen_csrf++)
            return refuse(h, 400, "two X-SAGE-CSRF headers", line);
        int hex = ve - v < sizeof h->csrf;
        for (size_t k = v; hex && k < ve; k++)
            hex = isxdigit(p[k]) != 0;
        if (hex) { /* anything else is no guard at all: the dashboard refuses the request */
            memcpy(h->csrf, p + v, ve - v);
            h->csrf[ve - v] = '\0';
        }
    }
    return 0;
}

int sage__http_parse_head(const unsigned char *buf, size_t len, sage__http_head *h)
{
    memset(h, 0, sizeof *h);
    size_t scan = len < SAGE__HTTP_HEAD_MAX ? len : SAGE__HTTP_HEAD_MAX;
    size_t start = 0, line = 1;
    for (size_t i = 0; i < scan; i++) {
        unsigned char c = buf[i];
        if (c == '\r' && (i + 1 == scan || buf[i + 1] == '\n'))
            continue; /* a CR is seen with its LF (or at the end of what is here) */
        if (c == '\r')
            return refuse(h, 400, "a CR not followed by LF", line);
        if (c != '\n') {
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return refuse(h, 400, "a control byte in the request head", line);
            continue;
        }
        if (i == start || buf[i - 1] != '\r')
            return refuse(h, 400, "a line does not end with CRLF", line);
        size_t n = i - 1 - start; /* the line without CRLF */
        if (n == 0) {
            if (line == 1)
                return refuse(h, 400, "empty request line", line);
            h->len = i + 1;
            return SAGE__HTTP_COMPLETE;
        }
        int rc = line == 1 ? request_line(buf + start, n, h) : header_line(buf + start, n, line, h);
        if (rc != 0)
            return rc;
        start = i + 1;
        line++;
    }
    if (len >= SAGE__HTTP_HEAD_MAX)
        return refuse(h, 431, "request head longer than 8192 bytes", line);
    return SAGE__HTTP_MORE;
}
