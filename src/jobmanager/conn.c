/* jobmanager/conn.c - the daemon's connections: bounded read and write buffers, frames, HELLO and roles, closing.
 *
 * Every connection starts unauthenticated; its first frame must be HELLO
 * with the token, or the connection is closed with a logged reason (the
 * daemon keeps serving the others). A connection whose first bytes are
 * "GET " is HTTP (http.c). Reads are bounded by the frame limit of the
 * connection's role (control frames for clients and the unauthenticated,
 * data frames for workers, whose reports may be large) plus 64 KiB; writes
 * are buffered up to JM_WBUF_MAX, past which a peer that does not read is
 * dropped rather than letting the daemon grow without bound. Nothing here
 * ever blocks on a peer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "util/err.h"

#define READ_CHUNK 65536

static void conn_close(jm *d, jm_conn *c)
{
    if (c->role == JM_WORKER)
        jm_on_worker_gone(d, c);
    if (c->parked)
        jm_submits_forget(d, c);
    close(c->fd);
    c->fd = -1;
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

static void on_hello(jm *d, jm_conn *c, json_t *hello)
{
    const char *token = json_string_value(json_object_get(hello, "token"));
    const char *role = json_string_value(json_object_get(hello, "role"));
    if (!token || !sage__token_equal(token, d->token)) {
        jm_log(d, "closing %s: wrong or missing token", c->peer);
        jm_send_error(c, SAGE_EAUTH, "authentication failed: wrong or missing token");
        c->closing = 1;
        return;
    }
    if (role && strcmp(role, "worker") == 0) {
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

void jm_conn_frames(jm *d, jm_conn *c)
{
    size_t off = 0;
    while (!c->closing && !c->parked && c->fd >= 0) {
        if (c->role == JM_UNAUTH && c->rbuf.len - off >= 4 && memcmp(c->rbuf.p + off, "GET ", 4) == 0) {
            c->role = JM_HTTP;
            break;
        }
        sage__frame f;
        char why[256];
        long n = sage__frame_decode(c->rbuf.p + off, c->rbuf.len - off, frame_max(c), &f, why, sizeof why);
        if (n == 0)
            break;
        if (n < 0) {
            jm_log(d, "closing %s: malformed frame: %s", c->peer, why);
            jm_send_error(c, SAGE_EPROTO, "malformed frame: %s", why);
            c->closing = 1;
            break;
        }
        off += (size_t)n;
        json_error_t jerr;
        json_t *msg = json_loadb((const char *)f.payload, f.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!msg || !json_is_object(msg)) {
            jm_log(d, "closing %s: message type %u is not a JSON object (%s)", c->peer, f.type,
                   msg ? "not an object" : jerr.text);
            jm_send_error(c, SAGE_EPROTO, "expected a JSON object");
            json_decref(msg);
            c->closing = 1;
            break;
        }
        if (c->role == JM_UNAUTH) {
            if (f.type != SAGE__MSG_HELLO) {
                jm_log(d, "closing %s: first frame is type %u, not HELLO", c->peer, f.type);
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
        /* a frame the decoder accepts fits in this; a full buffer means a malformed peer */
        size_t limit = (size_t)frame_max(c) + SAGE__FRAME_HDR + READ_CHUNK;
        c->rbuf.max = limit;
        size_t want = c->rbuf.len + READ_CHUNK <= limit ? READ_CHUNK : limit - c->rbuf.len;
        if (want == 0) {
            jm_log(d, "closing %s: read buffer full", c->peer);
            c->closing = 1;
            return;
        }
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

void jm_conns_accept(jm *d)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(d->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        jm_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->task = -1;
        sage__buf_init(&c->rbuf, (size_t)SAGE__CONTROL_FRAME_MAX + SAGE__FRAME_HDR + READ_CHUNK);
        sage__buf_init(&c->wbuf, JM_WBUF_MAX);
        sage__fmt(c->peer, sizeof c->peer, "connection %d", fd);
        c->next = d->conns;
        d->conns = c;
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
