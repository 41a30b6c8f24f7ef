/* jobmanager/http.h - the HTTP/1.x request head parser behind /metrics and the dashboard: a pure function over bytes. */
#ifndef SAGE_JOBMANAGER_HTTP_H
#define SAGE_JOBMANAGER_HTTP_H

#include <stddef.h>

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
    int status;              /* a refused head: the status to answer (400, 431 or 505) */
    char error[160];         /* a refused head: what was wrong and where */
} sage__http_head;

/* Parse the request head at the start of buf[0..len). Returns
 * SAGE__HTTP_COMPLETE (h is filled), SAGE__HTTP_MORE (no empty line yet
 * and nothing wrong so far: read more), or SAGE_EPROTO (h->status and
 * h->error say why: a head longer than SAGE__HTTP_HEAD_MAX or with more
 * than SAGE__HTTP_HEADERS_MAX headers (431), a line not ended by CRLF, a
 * NUL or another control byte, a malformed request line or method, a
 * header line without a colon, an empty or malformed header name, a folded
 * header line, two Authorization headers (400), a version other than
 * HTTP/1.0 and HTTP/1.1 (505)). Header names are case-insensitive; only
 * Authorization and the dashboard's session cookie are kept. Reads nothing
 * past buf + len. */
int sage__http_parse_head(const unsigned char *buf, size_t len, sage__http_head *h);

#endif
