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
 * the script reads /api/jobs, /api/jobs/ID, /api/jobs/ID/logs and
 * /api/cluster every second (dashboard_api.c, dashboard_logs.c,
 * dashboard_cluster.c).
 *
 * Actions (POST /api/jobs/ID/pause, resume, stop, cancel) change jobs, so
 * a page of another site must not be able to make a logged-in browser send
 * one (CSRF). Three guards, each enough on its own against a browser: the
 * cookie is SameSite=Strict (a cross-site request carries none: 401); the
 * request must carry the session's CSRF secret in an X-SAGE-CSRF header
 * (32 random bytes made at login, handed out only in /api/jobs, which
 * another origin cannot read; a custom header also cannot be sent
 * cross-origin without a CORS preflight, which is never granted); and an
 * Origin header, when there is one (browsers send it with every POST), must
 * be http://HOST for the Host the request was sent to. A refused action is
 * a 403 with a JSON reason and changes nothing. GET never changes anything.
 * Every answer is built in memory and leaves through the connection's
 * bounded write buffer: the loop never blocks on a browser.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "jobmanager/dashboard.h"
#include "jobmanager/dashboard_assets.h"
#include "jobmanager/http.h"
#include "util/err.h"
#include "util/num.h"
#include "util/time.h"
#include "util/utf8.h"

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
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 409: return "409 Conflict";
    case 503: return "503 Service Unavailable";
    default: return "500 Internal Server Error";
    }
}

void jm_dash_answer(jm_conn *c, int status, const char *type, const char *extra, const char *body, size_t len)
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
    jm_dash_answer(c, status, type, extra, text, strlen(text));
}

void jm_dash_json(jm_conn *c, int status, json_t *j)
{
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) {
        answer_text(c, 500, "text/plain", NULL, "out of memory\n");
        return;
    }
    jm_dash_answer(c, status, "application/json", NULL, txt, strlen(txt));
    free(txt);
}

void jm_dash_error(jm_conn *c, int status, int code, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sage__utf8_clean(msg, strlen(msg));
    jm_dash_json(c, status, json_pack("{s:s,s:i}", "error", msg, "code", code));
}

int jm_dash_status_of(int code)
{
    switch (code) {
    case SAGE_ENOTFOUND: return 404;
    case SAGE_ESTATE: return 409;
    case SAGE_EINVAL: return 400;
    default: return 500;
    }
}

static const char login_page[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>SAGE: log in</title></head><body>"
    "<h1>SAGE JobManager</h1><p>Open the address <code>sage dashboard</code> prints (it logs you in once; "
    "the session then lasts 12 hours).</p></body></html>\n";

/* ---- login, sessions, the CSRF guard ---- */

static void login(jm *d, jm_conn *c, const char *token, int64_t now)
{
    jm_dash_secret *l = find(d->dash_logins, JM_DASH_LOGINS, token, now);
    if (!l) {
        jm_log_refused(d, "dashboard: %s presented a login token that is unknown, spent or expired", c->peer);
        answer_text(c, 401, "text/html; charset=utf-8", NULL, login_page);
        return;
    }
    memset(l, 0, sizeof *l); /* once */
    jm_dash_secret *s = slot(d->dash_sessions, JM_DASH_SESSIONS, now);
    if (random_hex(s->hex) != 0 || random_hex(s->csrf) != 0) {
        memset(s, 0, sizeof *s);
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
}

/* A POST of the session's own page: its CSRF secret in X-SAGE-CSRF, and no foreign Origin. 1, or answered 403. */
static int csrf_ok(jm *d, jm_conn *c, const sage__http_head *h, const jm_dash_secret *s)
{
    const char *why = NULL;
    if (h->origin[0] &&
        (!h->host[0] || strncasecmp(h->origin, "http://", 7) != 0 || strcasecmp(h->origin + 7, h->host) != 0))
        why = "the request comes from another origin";
    else if (!h->csrf[0])
        why = "the request has no X-SAGE-CSRF header (the dashboard's page sends it)";
    else if (strlen(h->csrf) != SAGE__TOKEN_HEX || !sage__token_equal(h->csrf, s->csrf))
        why = "the X-SAGE-CSRF header is not this session's";
    if (!why)
        return 1;
    char origin[80];
    sage__strlcpy(origin, h->origin[0] ? h->origin : "none", sizeof origin);
    sage__utf8_clean(origin, strlen(origin));
    jm_log_refused(d, "dashboard: %s %s %s refused: %s (Origin: %s)", c->peer, h->method, h->target, why, origin);
    jm_dash_error(c, 403, SAGE_EAUTH, "refused: %s; nothing was changed", why);
    return 0;
}

/* ---- the job list ---- */

/* A live job's records in (what its sources emitted) and out (what reached its sinks: the chains no edge
 * leaves), summed over their instances' last reports. */
static void job_records(const jm_job *j, json_int_t *in, json_int_t *out)
{
    json_t *chains = json_object_get(j->doc, "chains"), *edges = json_object_get(j->doc, "edges"), *e;
    *in = *out = 0;
    for (size_t t = 0; t < j->nflow; t++) {
        const jm_task *k = &j->tasks[t];
        json_t *ops = json_object_get(k->metrics, "operators");
        if (!json_array_size(ops))
            continue;
        if (!json_is_true(json_object_get(json_array_get(chains, (size_t)k->chain), "inputs")))
            *in += json_integer_value(json_object_get(json_array_get(ops, 0), "records_out"));
        int sink = 1;
        size_t i;
        json_array_foreach(edges, i, e) sink &= json_integer_value(json_object_get(e, "from")) != k->chain;
        if (sink)
            *out += json_integer_value(json_object_get(json_array_get(ops, json_array_size(ops) - 1), "records_in"));
    }
}

static json_t *job_list(jm *d)
{
    json_t *l = jm_job_list_json(d), *row;
    size_t i;
    json_array_foreach(json_object_get(l, "jobs"), i, row)
    {
        jm_job *j = jm_job_find(d, json_integer_value(json_object_get(row, "job_id")));
        json_int_t in, out;
        if (!j || !j->tasks)
            continue;
        job_records(j, &in, &out);
        json_object_set_new(row, "records_in", json_integer(in));
        json_object_set_new(row, "records_out", json_integer(out));
    }
    return l;
}

/* ---- routes ---- */

static int is_action(const char *s)
{
    return strcmp(s, "pause") == 0 || strcmp(s, "resume") == 0 || strcmp(s, "stop") == 0 || strcmp(s, "cancel") == 0;
}

/* /api/jobs/ID[/SUB]: the job's routes. */
static void job_route(jm *d, jm_conn *c, const sage__http_head *h, const char *rest)
{
    char num[24];
    size_t n = strcspn(rest, "/");
    const char *sub = rest + n;
    int64_t id, task, offset = -1;
    int post = strcmp(h->method, "POST") == 0;
    sage__strlcpy(num, rest, n + 1 < sizeof num ? n + 1 : sizeof num);
    if (n >= sizeof num || sage__parse_i64(num, 1, INT64_MAX, &id) != 0 ||
        (*sub && strcmp(sub, "/logs") != 0 && !is_action(sub + 1))) {
        answer_text(c, 404, "text/plain", NULL, "not found\n");
    } else if (*sub && is_action(sub + 1)) {
        if (!post)
            answer_text(c, 405, "text/plain", "Allow: POST\r\n", "an action is a POST\n");
        else
            jm_dash_action(d, c, id, sub + 1);
    } else if (post) {
        answer_text(c, 405, "text/plain", "Allow: GET\r\n", "only GET is served here\n");
    } else if (!*sub) {
        jm_dash_job(d, c, id);
    } else if (sage__http_query_i64(h->target, "task", 0, INT32_MAX, &task) != 1 ||
               sage__http_query_i64(h->target, "offset", 0, INT64_MAX, &offset) < 0) {
        jm_dash_error(c, 400, SAGE_EINVAL, "logs: give ?task=T (a task index) and optionally &offset=N (bytes)");
    } else {
        jm_dash_logs(d, c, id, task, offset);
    }
}

void jm_dashboard(jm *d, jm_conn *c, const sage__http_head *h)
{
    int64_t now = sage__mono_ms();
    char path[256];
    sage__strlcpy(path, h->target, sizeof path);
    char *qm = strchr(path, '?');
    if (qm)
        *qm = '\0';
    int post = strcmp(h->method, "POST") == 0;
    if (strcmp(h->method, "GET") != 0 && !post) {
        answer_text(c, 405, "text/plain", "Allow: GET, POST\r\n", "only GET and POST are served here\n");
        return;
    }
    char token[SAGE__TOKEN_HEX + 8];
    if (!post && strcmp(path, "/") == 0 && sage__http_query(h->target, "token", token, sizeof token) == 1) {
        login(d, c, token, now);
        return;
    }
    jm_dash_secret *s = find(d->dash_sessions, JM_DASH_SESSIONS, h->session, now);
    if (!s) {
        if (strncmp(path, "/api/", 5) == 0)
            jm_dash_error(c, 401, SAGE_EAUTH, "no session: open the address sage dashboard prints");
        else
            answer_text(c, 401, "text/html; charset=utf-8", NULL, login_page);
        return;
    }
    c->http_ok = 1; /* a logged-in browser: its answer is not cut by the handshake limit */
    if (post && !csrf_ok(d, c, h, s))
        return;
    if (strncmp(path, "/api/jobs/", 10) == 0) {
        job_route(d, c, h, path + 10);
    } else if (post) {
        answer_text(c, 405, "text/plain", "Allow: GET\r\n", "only GET is served here\n");
    } else if (strcmp(path, "/") == 0) {
        answer_text(c, 200, "text/html; charset=utf-8", NULL, sage__dash_html);
    } else if (strcmp(path, "/app.js") == 0) {
        answer_text(c, 200, "text/javascript; charset=utf-8", NULL, sage__dash_js);
    } else if (strcmp(path, "/app.css") == 0) {
        answer_text(c, 200, "text/css; charset=utf-8", NULL, sage__dash_css);
    } else if (strcmp(path, "/api/jobs") == 0) {
        json_t *l = job_list(d);
        json_object_set_new(l, "jobmanager", jm_ping_json(d));
        json_object_set_new(l, "csrf", json_string(s->csrf)); /* for this session's actions (X-SAGE-CSRF) */
        json_object_set_new(l, "now_ms", json_integer((json_int_t)sage__wall_ms())); /* the JobManager's clock */
        jm_dash_json(c, 200, l);
    } else if (strcmp(path, "/api/cluster") == 0) {
        jm_dash_cluster(d, c);
    } else {
        answer_text(c, 404, "text/plain", NULL, "not found\n");
    }
}
