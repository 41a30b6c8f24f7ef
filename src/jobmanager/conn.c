/* jobmanager/conn.c - the daemon's connections: limits before authentication, bounded buffers, frames, HELLO, roles.
 *
 * Every connection starts unauthenticated; its first frame must be HELLO
 * with the token (a worker's: its job's secret, roles "worker" and "spec"),
 * or the connection is closed with a logged reason (the
 * daemon keeps serving the others). A connection whose first bytes are
 * "GET " or "POST " is HTTP (http.c; the dashboard's actions are POSTs). Nothing here ever blocks on a peer.
 *
 * Design note: what a peer without the token can cost. Anyone who reaches
 * the port can connect, so until a connection has authenticated it is held
 * small and short: it may send one frame of at most JM_HELLO_MAX bytes (a
 * larger announced length is refused from its header alone) or an HTTP
 * head of at most SAGE__HTTP_HEAD_MAX, so at most JM_PREAUTH_READ_MAX bytes
 * are buffered for it; it must authenticate within limits.handshake_ms
 * (5 s) or it is closed; and at most limits.unauthenticated (128) such
 * connections exist at once: a new one beyond that closes the oldest, which
 * has had the longest time to say HELLO (a real client says it within one
 * round trip of connecting). All connections together are bounded by
 * d->conn_max (limits.connections, or half the open-file limit), so
 * descriptors stay for the workers' pipes. Should accept still fail for
 * want of descriptors (EMFILE, ENFILE), the oldest unauthenticated
 * connection is closed, or if there is none the spare descriptor is given
 * up to accept the new connection and close it at once, so the listener
 * does not stay readable while the loop spins; failing that, the listener
 * is left out of the poll set for a moment. At most JM_ACCEPT_BATCH
 * connections are accepted per turn of the loop, so a flood of new ones
 * cannot starve the reads of those already accepted. Refusals are logged
 * through jm_log_refused (rate-limited, log.c). Together: about 128 x
 * 8 KiB of buffers, whatever the flood.
 *
 * After authentication, reads are bounded by the frame limit of the role
 * (control frames for clients, data frames for workers, whose reports may be
 * large) plus 64 KiB; writes are buffered up to JM_WBUF_MAX, past which a
 * peer that does not read is dropped rather than letting the daemon grow
 * without bound.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "util/err.h"
#include "util/time.h"

#define READ_CHUNK 65536

static void conn_close(jm *d, jm_conn *c)
{
    if (c->role == JM_WORKER)
        jm_on_worker_gone(d, c);
    if (c->parked) {
        jm_submits_forget(d, c);
        jm_ckpt_forget(d, c);
    }
    close(c->fd);
    c->fd = -1;
}

/* Not authenticated yet: no HELLO with the token, or an HTTP request that did not present it (yet). */
static int pre_auth(const jm_conn *c) { return c->role == JM_UNAUTH || (c->role == JM_HTTP && !c->http_ok); }

size_t jm_conns_count(const jm *d, size_t *unauth)
{
    size_t n = 0, u = 0;
    for (const jm_conn *c = d->conns; c; c = c->next)
        if (c->fd >= 0) {
            n++;
            u += (size_t)pre_auth(c);
        }
    if (unauth)
        *unauth = u;
    return n;
}

/* Close an unauthenticated connection now, with a (rate-limited) log line. */
static void drop(jm *d, jm_conn *c, const char *why)
{
    jm_log_refused(d, "closing %s: %s", c->peer, why);
    conn_close(d, c);
}

int jm_conns_timers(jm *d, int64_t now)
{
    int64_t next = -1;
    for (jm_conn *c = d->conns; c; c = c->next) {
        if (c->fd < 0 || !pre_auth(c))
            continue;
        int64_t due = c->since_ms + d->limits.handshake_ms;
        if (now >= due) {
            char why[96];
            sage__fmt(why, sizeof why, "not authenticated within %d ms", d->limits.handshake_ms);
            drop(d, c, why);
        } else if (next < 0 || due < next) {
            next = due;
        }
    }
    return next < 0 ? -1 : (int)(next - now);
}

/* The unauthenticated connection accepted first, or NULL. */
static jm_conn *oldest_unauth(jm *d)
{
    jm_conn *o = NULL;
    for (jm_conn *c = d->conns; c; c = c->next)
        if (c->fd >= 0 && pre_auth(c) && (!o || c->since_ms <= o->since_ms))
            o = c;
    return o;
}

int jm_send(jm_conn *c, uint16_t type, const void *payload, size_t len)
{
    if (c->fd < 0)
        return SAGE_EIO;
    if (len > UINT32_MAX)
        return SAGE_ETOOBIG;
    int rc = sage__buf_reserve(&c->wbuf, SAGE__FRAME_HDR + len);
    if (rc == SAGE_ETOOBIG) {
        c->closing = 1;
        c->wbuf.len = 0; /* the peer does not read: drop it */
        shutdown(c->fd, SHUT_RDWR);
        return rc;
    }
    if (rc != 0)
        return rc;
    sage__frame_header(c->wbuf.p + c->wbuf.len, type, (uint32_t)len);
    if (len)
        memcpy(c->wbuf.p + c->wbuf.len + SAGE__FRAME_HDR, payload, len);
    c->wbuf.len += SAGE__FRAME_HDR + len;
    return 0;
}

int jm_send_json(jm_conn *c, uint16_t type, json_t *obj)
{
    if (!obj) /* json_pack refused its input: answer anyway, a client must never wait for nothing */
        obj = json_pack("{s:i,s:s}", "code", SAGE_EPROTO, "message", "the JobManager could not encode its reply"),
        type = SAGE__MSG_ERROR;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        return SAGE_ENOMEM;
    int rc = jm_send(c, type, s, strlen(s));
    free(s);
    return rc;
}

int jm_send_error(jm_conn *c, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    sage__vfmt(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jm_send_json(c, SAGE__MSG_ERROR, json_pack("{s:i,s:s}", "code", code, "message", msg));
}

void jm_conn_flush(jm_conn *c)
{
    while (c->fd >= 0 && c->wbuf.len > 0) {
        ssize_t n = send(c->fd, c->wbuf.p, c->wbuf.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->wbuf.len = 0, c->closing = 1;
            return;
        }
        sage__buf_consume(&c->wbuf, (size_t)n);
    }
}

jm_conn *jm_conn_resume(jm *d, const void *q)
{
    jm_conn *c = d->conns;
    while (c && c->deferred != q)
        c = c->next;
    if (!c || c->fd < 0) /* (a peer that left meanwhile has nothing to read) */
        return NULL;
    c->deferred = NULL;
    c->parked = 0;
    return c;
}

/* A worker's HELLO (role "worker", or "spec" to fetch its job's spec) authenticates with its job's secret,
 * never with the daemon's token, which no worker holds. */
static int worker_secret_ok(jm *d, json_t *hello, const char *token)
{
    json_t *jid = json_object_get(hello, "job_id");
    jm_job *j = json_is_integer(jid) ? jm_job_find(d, json_integer_value(jid)) : NULL;
    return j && j->secret[0] && token && sage__token_equal(token, j->secret);
}

static void on_hello(jm *d, jm_conn *c, json_t *hello)
{
    const char *token = json_string_value(json_object_get(hello, "token"));
    const char *role = json_string_value(json_object_get(hello, "role"));
    int worker = role && (strcmp(role, "worker") == 0 || strcmp(role, "spec") == 0);
    if (worker ? !worker_secret_ok(d, hello, token) : !token || !sage__token_equal(token, d->token)) {
        jm_log_refused(d, "closing %s: wrong or missing token", c->peer);
        jm_send_error(c, SAGE_EAUTH, "authentication failed: wrong or missing token");
        c->closing = 1;
        return;
    }
    if (strcmp(role ? role : "", "spec") == 0) { /* a worker starting: its job's spec, then nothing more */
        jm_job *j = jm_job_find(d, json_integer_value(json_object_get(hello, "job_id")));
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:O}", "spec", j->spec ? j->spec : json_null()));
        c->closing = 1;
        return;
    }
    if (worker) {
        jm_worker_hello(d, c, hello);
        return;
    }
    c->role = JM_CLIENT;
    jm_send_json(c, SAGE__MSG_OK, jm_ping_json(d));
}

static uint32_t frame_max(const jm_conn *c)
{
    return c->role == JM_WORKER ? SAGE__DATA_FRAME_MAX : SAGE__CONTROL_FRAME_MAX;
}

/* The most bytes buffered for the connection: a frame the decoder accepts fits (a full buffer means a
 * malformed peer); before authentication a HELLO or an HTTP head. */
static size_t read_max(const jm_conn *c)
{
    return pre_auth(c) ? JM_PREAUTH_READ_MAX : (size_t)frame_max(c) + SAGE__FRAME_HDR + READ_CHUNK;
}

void jm_conn_frames(jm *d, jm_conn *c)
{
    size_t off = 0;
    while (!c->closing && !c->parked && c->fd >= 0) {
        if (c->role == JM_UNAUTH && ((c->rbuf.len - off >= 4 && memcmp(c->rbuf.p + off, "GET ", 4) == 0) ||
                                     (c->rbuf.len - off >= 5 && memcmp(c->rbuf.p + off, "POST ", 5) == 0))) {
            c->role = JM_HTTP;
            break;
        }
        sage__frame f;
        char why[256];
        long n = sage__frame_decode(c->rbuf.p + off, c->rbuf.len - off, frame_max(c), &f, why, sizeof why);
        sage__frame h;
        if (n >= 0 && c->role == JM_UNAUTH && c->rbuf.len - off >= SAGE__FRAME_HDR &&
            sage__frame_header_decode(c->rbuf.p + off, frame_max(c), &h, why, sizeof why) == 0 &&
            h.len > JM_HELLO_MAX) {
            /* refused from its header: a HELLO is small, and nothing larger is buffered for a stranger */
            sage__fmt(why, sizeof why, "a first frame of %u bytes exceeds the %d-byte limit before authentication",
                      h.len, JM_HELLO_MAX);
            n = SAGE_EPROTO;
        }
        if (n == 0)
            break;
        if (n < 0) {
            if (c->role == JM_UNAUTH)
                jm_log_refused(d, "closing %s: malformed frame: %s", c->peer, why);
            else
                jm_log(d, "closing %s: malformed frame: %s", c->peer, why);
            jm_send_error(c, SAGE_EPROTO, "malformed frame: %s", why);
            c->closing = 1;
            break;
        }
        off += (size_t)n;
        if (c->role == JM_WORKER && f.type == SAGE__MSG_DATA) { /* collected records, raw */
            jm_worker_results(d, c, f.payload, f.len);
            continue;
        }
        json_error_t jerr;
        json_t *msg = json_loadb((const char *)f.payload, f.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!msg || !json_is_object(msg)) {
            (c->role == JM_UNAUTH ? jm_log_refused : jm_log)(d, "closing %s: message type %u is not a JSON object (%s)",
                                                             c->peer, f.type, msg ? "not an object" : jerr.text);
            jm_send_error(c, SAGE_EPROTO, "expected a JSON object");
            json_decref(msg);
            c->closing = 1;
            break;
        }
        if (c->role == JM_UNAUTH) {
            if (f.type != SAGE__MSG_HELLO) {
                jm_log_refused(d, "closing %s: first frame is type %u, not HELLO", c->peer, f.type);
                jm_send_error(c, SAGE_EAUTH, "authentication required: the first frame must be HELLO");
                c->closing = 1;
            } else {
                on_hello(d, c, msg);
            }
        } else if (c->role == JM_CLIENT && f.type == SAGE__MSG_REQUEST) {
            jm_client_request(d, c, msg);
        } else if (c->role == JM_WORKER && f.type == SAGE__MSG_EVENT) {
            jm_on_worker_event(d, c, msg);
        } else {
            jm_log(d, "closing %s: unexpected message type %u", c->peer, f.type);
            jm_send_error(c, SAGE_EPROTO, "unexpected message type %u", f.type);
            c->closing = 1;
        }
        json_decref(msg);
    }
    sage__buf_consume(&c->rbuf, off);
    if (c->role == JM_HTTP)
        jm_http(d, c);
}

void jm_conn_drain(jm *d, jm_conn *c)
{
    while (c->fd >= 0 && !c->closing && !c->parked) {
        size_t limit = read_max(c);
        if (c->rbuf.len >= limit) {
            (pre_auth(c) ? jm_log_refused : jm_log)(d, "closing %s: read buffer full", c->peer);
            c->closing = 1;
            return;
        }
        c->rbuf.max = limit;
        size_t want = c->rbuf.len + READ_CHUNK <= limit ? READ_CHUNK : limit - c->rbuf.len;
        if (sage__buf_reserve(&c->rbuf, want) != 0) {
            jm_log(d, "closing %s: out of memory for its read buffer", c->peer);
            c->closing = 1;
            return;
        }
        ssize_t n = recv(c->fd, c->rbuf.p + c->rbuf.len, want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(d, c);
            return;
        }
        if (n == 0) {
            conn_close(d, c);
            return;
        }
        c->rbuf.len += (size_t)n;
        jm_conn_frames(d, c);
    }
}

/* accept4 failed for want of descriptors: make room by closing the oldest stranger, or accept the
 * connection on the spare descriptor and close it; 1 if the backlog moved, 0 if nothing could be done. */
static int out_of_descriptors(jm *d, int e)
{
    jm_conn *o = oldest_unauth(d);
    if (o) {
        drop(d, o,
             e == EMFILE ? "the open-file limit is reached: the oldest unauthenticated connection goes"
                         : "the system's file table is full: the oldest unauthenticated connection goes");
        return 1;
    }
    if (d->spare_fd < 0)
        return 0;
    close(d->spare_fd);
    int fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    jm_log_refused(d, "refusing a connection: %s, every connection is authenticated",
                   e == EMFILE ? "the open-file limit is reached" : "the system's file table is full");
    return 1;
}

void jm_conns_accept(jm *d)
{
    size_t unauth, n = jm_conns_count(d, &unauth);
    size_t unauth_max = (size_t)d->limits.unauthenticated, conn_max = (size_t)d->conn_max;
    for (int turn = 0; turn < JM_ACCEPT_BATCH; turn++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(d->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EMFILE || e == ENFILE) {
                /* accept4 fails so even with nothing pending: only make room for a connection that waits */
                struct pollfd p = {.fd = d->lfd, .events = POLLIN};
                if (poll(&p, 1, 0) != 1)
                    return;
                if (out_of_descriptors(d, e)) {
                    n = jm_conns_count(d, &unauth);
                    continue;
                }
            }
            /* nothing to free (or ENOBUFS, ENOMEM): leave the listener alone for a moment instead of spinning */
            jm_log_refused(d, "cannot accept connections for 100 ms: %s", strerror(e));
            d->accept_resume_ms = sage__mono_ms() + 100;
            return;
        }
        /* over a limit: the oldest unauthenticated connection makes room; if there is none, this one goes */
        if (unauth >= unauth_max || n >= conn_max) {
            jm_conn *o = oldest_unauth(d);
            if (o) {
                drop(d, o,
                     unauth >= unauth_max ? "too many unauthenticated connections: the oldest goes"
                                          : "too many connections: the oldest unauthenticated one goes");
                unauth--, n--;
            } else {
                close(fd);
                jm_log_refused(d, "refusing a connection: %zu connections are open (the limit)", n);
                continue;
            }
        }
        jm_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->task = -1;
        c->since_ms = sage__mono_ms();
        sage__buf_init(&c->rbuf, JM_PREAUTH_READ_MAX);
        sage__buf_init(&c->wbuf, JM_WBUF_MAX);
        sage__fmt(c->peer, sizeof c->peer, "connection %d", fd);
        c->next = d->conns;
        d->conns = c;
        n++, unauth++;
    }
}

void jm_conns_reap(jm *d)
{
    jm_conn **pp = &d->conns;
    while (*pp) {
        jm_conn *c = *pp;
        if (c->fd >= 0 && c->closing && c->wbuf.len == 0)
            conn_close(d, c);
        if (c->fd < 0) {
            *pp = c->next;
            sage__buf_free(&c->rbuf);
            sage__buf_free(&c->wbuf);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}
