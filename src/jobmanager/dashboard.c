/* jobmanager/dashboard.c - the web dashboard on the JobManager's port: login, sessions, the page and its JSON.
 *
 * Design note. Login works as Jupyter's: `sage dashboard` (an authenticated
 * client request, "dashboard") gets a one-time login secret, valid
 * DASH_LOGIN_MS, and prints http://HOST:PORT/?token=SECRET. The first GET
 * with it consumes it and answers 303 to "/" with a session cookie
 * (HttpOnly, SameSite=Strict, Path=/), so the secret leaves the address bar
 * and the browser's history holds a spent one. Every other request needs a
 * live session (DASH_SESSION_MS; at most DASH_SESSIONS, the oldest goes
 * first); without one the answer is 401 and no job data. Secrets and
 * session ids are 32 random bytes (getrandom), compared in constant time.
 * The page is three static assets compiled in (HTML, CSS, JS: no external
 * asset), under a Content-Security-Policy that allows only this origin;
 * the script reads /api/jobs and /api/jobs/ID every second. Nothing here
 * changes a job (no stop or cancel yet), so there is no form to forge.
 * Every answer is built in memory and leaves through the connection's
 * bounded write buffer: the loop never blocks on a browser.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "jobmanager/dashboard_assets.h"
#include "jobmanager/http.h"
#include "jobmanager/jm.h"
#include "util/err.h"
#include "util/num.h"
#include "util/time.h"

#define DASH_LOGIN_MS (120 * 1000)
#define DASH_SESSION_MS (12 * 3600 * 1000)

static int random_hex(char *out)
{
    unsigned char b[32];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -1;
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* A free or expired slot of v[n], else the one that expires first. */
static jm_dash_secret *slot(jm_dash_secret *v, size_t n, int64_t now)
{
    jm_dash_secret *best = &v[0];
    for (size_t i = 0; i < n; i++) {
        if (!v[i].hex[0] || v[i].expires_ms <= now)
            return &v[i];
        if (v[i].expires_ms < best->expires_ms)
            best = &v[i];
    }
    return best;
}

/* The live secret of v[n] equal to hex (constant time per comparison), or NULL. */
static jm_dash_secret *find(jm_dash_secret *v, size_t n, const char *hex, int64_t now)
{
    jm_dash_secret *hit = NULL;
    if (!hex || strlen(hex) != SAGE__TOKEN_HEX)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (v[i].hex[0] && v[i].expires_ms > now && sage__token_equal(v[i].hex, hex))
            hit = &v[i];
    return hit;
}

int jm_dashboard_login(jm *d, char *secret, size_t len)
{
    jm_dash_secret *s = slot(d->dash_logins, JM_DASH_LOGINS, sage__mono_ms());
    if (len < sizeof s->hex || random_hex(s->hex) != 0)
        return SAGE_ESYS;
    s->expires_ms = sage__mono_ms() + DASH_LOGIN_MS;
    memcpy(secret, s->hex, sizeof s->hex);
    return 0;
}

/* ---- answers ---- */

static const char *status_line(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 303: return "303 See Other";
    case 401: return "401 Unauthorized";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    default: return "500 Internal Server Error";
    }
}

/* The whole answer into the connection's write buffer, then close. extra: more header lines (CRLF each). */
static void answer(jm_conn *c, int status, const char *type, const char *extra, const char *body, size_t len)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
                     "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                     "form-action 'none'\r\n%sConnection: close\r\n\r\n",
                     status_line(status), type, len, extra ? extra : "");
    if (n > 0 && (size_t)n < sizeof head && sage__buf_append(&c->wbuf, head, (size_t)n) == 0)
        sage__buf_append(&c->wbuf, body, len);
    c->closing = 1;
    c->rbuf.len = 0;
}

static void answer_text(jm_conn *c, int status, const char *type, const char *extra, const char *text)
{
    answer(c, status, type, extra, text, strlen(text));
}

static void answer_json(jm_conn *c, int status, json_t *j)
{
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) {
        answer_text(c, 500, "text/plain", NULL, "out of memory\n");
        return;
    }
    answer(c, status, "application/json", NULL, txt, strlen(txt));
    free(txt);
}

static const char login_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>SAGE: log in</title></head><body>"
    "<h1>SAGE JobManager</h1><p>Open the address <code>sage dashboard</code> prints (it logs you in once; "
    "the session then lasts 12 hours).</p></body></html>\n";

/* The value of query parameter `name` in target ("/path?a=b&c=d"), copied into out; 0 if absent. */
static int query_param(const char *target, const char *name, char *out, size_t cap)
{
    const char *q = strchr(target, '?');
    size_t nl = strlen(name);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *e = strchr(p, '&');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > nl && p[nl] == '=' && strncmp(p, name, nl) == 0 && l - nl - 1 < cap) {
            memcpy(out, p + nl + 1, l - nl - 1);
            out[l - nl - 1] = '\0';
            return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

void jm_dashboard(jm *d, jm_conn *c, const sage__http_head *h)
{
    int64_t now = sage__mono_ms();
    char path[256];
    sage__strlcpy(path, h->target, sizeof path);
    char *qm = strchr(path, '?');
    if (qm)
        *qm = '\0';
    if (strcmp(h->method, "GET") != 0) {
        answer_text(c, 405, "text/plain", "Allow: GET\r\n", "only GET is served here\n");
        return;
    }
    char token[SAGE__TOKEN_HEX + 8];
    if (strcmp(path, "/") == 0 && query_param(h->target, "token", token, sizeof token)) {
        jm_dash_secret *login = find(d->dash_logins, JM_DASH_LOGINS, token, now);
        if (!login) {
            jm_log_refused(d, "dashboard: %s presented a login token that is unknown, spent or expired", c->peer);
            answer_text(c, 401, "text/html; charset=utf-8", NULL, login_page);
            return;
        }
        memset(login, 0, sizeof *login); /* once */
        jm_dash_secret *s = slot(d->dash_sessions, JM_DASH_SESSIONS, now);
        if (random_hex(s->hex) != 0) {
            answer_text(c, 500, "text/plain", NULL, "no random bytes for a session\n");
            return;
        }
        s->expires_ms = now + DASH_SESSION_MS;
        char extra[256];
        snprintf(extra, sizeof extra,
                 "Location: /\r\nSet-Cookie: " SAGE__HTTP_SESSION_COOKIE
                 "=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%d\r\n",
                 s->hex, DASH_SESSION_MS / 1000);
        jm_log(d, "dashboard: %s logged in", c->peer);
        answer_text(c, 303, "text/plain", extra, "logged in\n");
        return;
    }
    if (!find(d->dash_sessions, JM_DASH_SESSIONS, h->session, now)) {
        if (strncmp(path, "/api/", 5) == 0)
            answer_text(c, 401, "application/json", NULL,
                        "{\"error\": \"no session: open the address sage dashboard prints\"}");
        else
            answer_text(c, 401, "text/html; charset=utf-8", NULL, login_page);
        return;
    }
    c->http_ok = 1; /* a logged-in browser: its answer is not cut by the handshake limit */
    if (strcmp(path, "/") == 0) {
        answer_text(c, 200, "text/html; charset=utf-8", NULL, sage__dash_html);
    } else if (strcmp(path, "/app.js") == 0) {
        answer_text(c, 200, "text/javascript; charset=utf-8", NULL, sage__dash_js);
    } else if (strcmp(path, "/app.css") == 0) {
        answer_text(c, 200, "text/css; charset=utf-8", NULL, sage__dash_css);
    } else if (strcmp(path, "/api/jobs") == 0) {
        json_t *l = jm_job_list_json(d);
        json_object_set_new(l, "jobmanager", jm_ping_json(d));
        answer_json(c, 200, l);
    } else if (strncmp(path, "/api/jobs/", 10) == 0) {
        int64_t id;
        jm_job *j = sage__parse_i64(path + 10, 1, INT64_MAX, &id) == 0 ? jm_job_find(d, id) : NULL;
        if (!j)
            answer_json(c, 404, json_pack("{s:s}", "error", "no such running job (ended jobs: sage job status ID)"));
        else
            answer_json(c, 200, jm_job_status_json(d, j));
    } else {
        answer_text(c, 404, "text/plain", NULL, "not found\n");
    }
}
