/* jobmanager/http.h - the HTTP/1.x request head parser behind /metrics and the dashboard: a pure function over bytes. */
#ifndef SAGE_JOBMANAGER_HTTP_H
#define SAGE_JOBMANAGER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define SAGE__HTTP_HEAD_MAX 8192  /* longest head read, the empty line included */
#define SAGE__HTTP_HEADERS_MAX 64 /* most header lines */
#define SAGE__HTTP_SESSION_COOKIE "sage_session"

enum { SAGE__HTTP_COMPLETE = 0, SAGE__HTTP_MORE = 1 };

typedef struct sage__http_head {
    char method[16];
    char target[256];
    int minor;  /* HTTP/1.<minor>: 0 or 1 */
    size_t len; /* bytes of the head, up to and including its empty line */
    int nheaders;
    char authorization[512]; /* the Authorization header's value, surrounding blanks removed ("" if none) */
    char session[65];        /* the dashboard's session cookie (SAGE__HTTP_SESSION_COOKIE), hex ("" if none) */
    char host[256];          /* the Host header's value ("" if none) */
    char origin[256];        /* the Origin header's value ("" if none) */
    char csrf[65];           /* the X-SAGE-CSRF header's value when it is 1..64 hex digits ("" if none or not so) */
    int seen_host, seen_origin, seen_csrf; /* (the parser's: each may appear once) */
    int status;                            /* a refused head: the status to answer (400, 431 or 505) */
    char error[160];                       /* a refused head: what was wrong and where */
} sage__http_head;

/* Parse the request head at the start of buf[0..len). Returns
 * SAGE__HTTP_COMPLETE (h is filled), SAGE__HTTP_MORE (no empty line yet
 * and nothing wrong so far: read more), or SAGE_EPROTO (h->status and
 * h->error say why: a head longer than SAGE__HTTP_HEAD_MAX or with more
 * than SAGE__HTTP_HEADERS_MAX headers (431), a line not ended by CRLF, a
 * NUL or another control byte, a malformed request line or method, a
 * header line without a colon, an empty or malformed header name, a folded
 * header line, two Authorization, Host, Origin or X-SAGE-CSRF headers (400),
 * an Authorization, Host or Origin value longer than kept (431), a version
 * other than HTTP/1.0 and HTTP/1.1 (505)). Header names are
 * case-insensitive; only Authorization, Host, Origin, X-SAGE-CSRF and the
 * dashboard's session cookie are kept. Reads nothing past buf + len. */
int sage__http_parse_head(const unsigned char *buf, size_t len, sage__http_head *h);

/* The query of a request target ("/path?key=value&key=value", http_query.c): the value of key `name`, copied
 * into out (cap bytes, NUL-terminated). 1 when found, 0 when absent, SAGE_EINVAL when the query is malformed
 * anywhere: an empty part ("a=1&&b=2"), a part without '=', an empty key, a byte outside A-Z a-z 0-9 . _ ~ -
 * in a key or a value (no percent-encoding: the dashboard's parameters are numbers and hex secrets), a key
 * given twice, or a value of `name` longer than cap - 1. A target without '?' has no parameter. */
int sage__http_query(const char *target, const char *name, char *out, size_t cap);
/* A whole-number parameter (decimal digits, an optional leading '-') in [min, max]: 1 (*out set), 0 when
 * absent, SAGE_EINVAL when malformed (as above), empty, not a number or out of range. */
int sage__http_query_i64(const char *target, const char *name, int64_t min, int64_t max, int64_t *out);

#endif
