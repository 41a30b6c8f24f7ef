/* runtime/svcnet.c - calls to a job's service in another process, and the service's side of them.
 *
 * Design note. The calling side keeps a table of outstanding calls, one
 * slot per call up to the service's queue capacity; a call's id is its
 * slot in the low 21 bits and a sequence number above, so a late or forged
 * answer never reaches another call's future. One thread per connection
 * reads answers and completes futures; writers share the socket under a
 * mutex, a frame at a time. When the connection breaks, or the job is
 * canceled, every outstanding future is answered at once (SAGE_EIO with
 * the reason, or SAGE_ECANCELED), so no caller waits on a dead process.
 * A call that timed out keeps its slot until its answer comes: the service
 * still has the request, and the slot is what bounds them.
 *
 * The serving side accepts connections (at most SAGE__SVC_CONNS_MAX) on
 * one thread and reads each on its own: after a HELLO with the job's token
 * (within SAGE__NET_HANDSHAKE_MS), every CALL becomes a future whose
 * on_done, run by the service's thread, writes the ANSWER. A connection's
 * reader blocks while the service's queue is full, so a flood of calls
 * stops in the callers' sockets, never in memory here.
 */
#include "runtime/svcnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/sock.h"
#include "runtime/future.h"
#include "runtime/netchan.h" /* SAGE__NET_HANDSHAKE_MS */
#include "util/err.h"
#include "util/time.h"

#define SLOT_BITS 21 /* capacity <= 2^20 */

/* ---- frames ---- */

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}
static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int sage__svc_parse(int type, const unsigned char *p, size_t len, uint64_t *id, int *rc, size_t *body_off, char *why,
                    size_t why_len)
{
    size_t need = type == SAGE__MSG_ANSWER ? 12 : 8;
    if (type != SAGE__MSG_CALL && type != SAGE__MSG_ANSWER) {
        sage__fmt(why, why_len, "message type %d where a service call or answer belongs", type);
        return SAGE_EPROTO;
    }
    if (len < need) {
        sage__fmt(why, why_len, "a service %s of %zu bytes, shorter than its %zu-byte head",
                  type == SAGE__MSG_CALL ? "call" : "answer", len, need);
        return SAGE_EPROTO;
    }
    *id = get_be64(p);
    *rc = 0;
    if (type == SAGE__MSG_ANSWER) {
        uint32_t u = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
        int32_t v = (int32_t)u;
        if (v > 0 || v < -1000000) {
            sage__fmt(why, why_len, "a service answer with result code %d (expected 0 or a negative error code)",
                      (int)v);
            return SAGE_EPROTO;
        }
        *rc = (int)v;
    }
    *body_off = need;
    return 0;
}

/* Write every byte of iov (blocking socket; no SIGPIPE). 0 or -1 with errno. */
static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        sage__iov_consume(&iov, &n, (size_t)w);
    }
    return 0;
}


/* One frame of `type` (CALL or ANSWER): its payload, malloc'd, with the body moved to its start. 0, 1 (closed
 * between frames) or a negative code with why. */
static int read_msg(int fd, int type, uint64_t *id, int *rc, void **body, size_t *blen, char *why, size_t why_len)
{
    unsigned char hdr[SAGE__FRAME_HDR];
    int r = sage__read_full(fd, hdr, sizeof hdr);
    if (r != 0) {
        sage__fmt(why, why_len, "%s",
                  r == 1 ? "the connection closed" : "the connection broke in the middle of a frame");
        return r;
    }
    sage__frame f;
    if (sage__frame_header_decode(hdr, SAGE__DATA_FRAME_MAX, &f, why, why_len) != 0)
        return -1;
    unsigned char *p = malloc(f.len ? f.len : 1);
    if (!p) {
        sage__fmt(why, why_len, "out of memory for a frame of %u bytes", f.len);
        return -1;
    }
    if (sage__read_full(fd, p, f.len) != 0) {
        free(p);
        sage__fmt(why, why_len, "the connection broke in the middle of a frame");
        return -1;
    }
    size_t off;
    if (f.type != type) {
        sage__fmt(why, why_len, "message type %u where a service %s belongs", (unsigned)f.type,
                  type == SAGE__MSG_CALL ? "call" : "answer");
        free(p);
        return -1;
    }
    if (sage__svc_parse(type, p, f.len, id, rc, &off, why, why_len) != 0) {
        free(p);
        return -1;
    }
    memmove(p, p + off, f.len - off);
    *body = p;
    *blen = f.len - off;
    return 0;
}

/* ---- the calling side ---- */

struct sage__svc_remote {
    int fd;
    char name[128];
    pthread_mutex_t mu; /* the table and the broken state */
    pthread_cond_t space;
    sage_future **slots;
    size_t cap, used, hint;
    uint64_t seq;
    int broken, broken_rc;
    char why[384];
    pthread_mutex_t wmu; /* one frame at a time on the socket */
    pthread_t reader;
    int reader_started;
};

/* Under mu: the connection is done; every outstanding call gets rc. */
static void break_locked(sage__svc_remote *r, int rc, const char *why)
{
    if (!r->broken) {
        r->broken = 1;
        r->broken_rc = rc;
        sage__strlcpy(r->why, why, sizeof r->why);
    }
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i]) {
            sage_future *f = r->slots[i];
            r->slots[i] = NULL;
            sage__future_complete(f, r->broken_rc);
        }
    r->used = 0;
    pthread_cond_broadcast(&r->space);
}

static void *reader_main(void *arg)
{
    sage__svc_remote *r = arg;
    char why[256];
    for (;;) {
        uint64_t id;
        int rc;
        void *body;
        size_t blen;
        int got = read_msg(r->fd, SAGE__MSG_ANSWER, &id, &rc, &body, &blen, why, sizeof why);
        if (got != 0) {
            char msg[384];
            sage__fmt(msg, sizeof msg, "its process is gone (%s)", why);
            pthread_mutex_lock(&r->mu);
            break_locked(r, SAGE_EIO, msg);
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        size_t slot = (size_t)(id & ((1u << SLOT_BITS) - 1));
        pthread_mutex_lock(&r->mu);
        sage_future *f = slot < r->cap && r->slots[slot] && r->slots[slot]->wire_id == id ? r->slots[slot] : NULL;
        if (!f) {
            free(body);
            char msg[384];
            sage__fmt(msg, sizeof msg, "its process answered call %llu, which is not outstanding",
                      (unsigned long long)id);
            break_locked(r, SAGE_EIO, msg);
            pthread_mutex_unlock(&r->mu);
            shutdown(r->fd, SHUT_RDWR);
            return NULL;
        }
        r->slots[slot] = NULL;
        r->used--;
        pthread_cond_signal(&r->space);
        pthread_mutex_unlock(&r->mu);
        if (rc == 0)
            sage__future_set_resp(f, body, blen);
        else
            free(body);
        sage__future_complete(f, rc);
    }
}

int sage__svc_remote_connect(const char *where, int tcp, const char *name, const char *token, int64_t job_id,
                             int from_task, size_t capacity, sage__svc_remote **out, char *err, size_t err_len)
{
    *out = NULL;
    if (capacity < 1 || capacity > ((size_t)1 << 20))
        capacity = 1024;
    int fd = -1, rc;
    if (tcp) {
        char host[128];
        int port = 0;
        if (sage__parse_hostport(where, host, sizeof host, &port, 0) != 0 || port == 0) {
            sage__fmt(err, err_len, "its address \"%s\" is not HOST:PORT", where);
            return SAGE_EPROTO;
        }
        rc = sage__tcp_connect(host, port, &fd, err, err_len);
        if (rc == 0) {
            int one = 1; /* a call is small and waited for: no Nagle delay */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    } else {
        rc = sage__unix_connect(where, &fd, err, err_len);
    }
    if (rc != 0)
        return rc;
    json_t *hello = json_pack("{s:s,s:s,s:I,s:i}", "token", token, "role", "peer", "job_id", (json_int_t)job_id,
                              "from_task", from_task);
    char *txt = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    json_decref(hello);
    rc = txt ? sage__frame_send(fd, SAGE__MSG_HELLO, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    sage__svc_remote *r = rc == 0 ? calloc(1, sizeof *r) : NULL;
    if (r && !(r->slots = calloc(capacity, sizeof *r->slots))) {
        free(r);
        r = NULL;
    }
    if (!r) {
        sage__fmt(err, err_len, "%s", rc ? "introducing ourselves to its process failed" : "out of memory");
        close(fd);
        return rc ? rc : SAGE_ENOMEM;
    }
    r->fd = fd;
    r->cap = capacity;
    sage__strlcpy(r->name, name, sizeof r->name);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->wmu, NULL);
    sage__cond_init_mono(&r->space);
    int e = pthread_create(&r->reader, NULL, reader_main, r);
    if (e != 0) {
        sage__fmt(err, err_len, "cannot start a thread: %s", strerror(e));
        r->reader_started = 0;
        sage__svc_remote_close(r);
        return SAGE_ESYS;
    }
    r->reader_started = 1;
    *out = r;
    return 0;
}

int sage__svc_remote_send(sage__svc_remote *r, sage_future *f, int timeout_ms, char *why, size_t why_len)
{
    if (f->req_len > SAGE__SVC_REQ_MAX) {
        sage__fmt(why, why_len, "a request of %zu bytes exceeds the %zu-byte limit of a call to another process",
                  f->req_len, SAGE__SVC_REQ_MAX);
        return SAGE_ETOOBIG;
    }
    struct timespec dl;
    if (timeout_ms >= 0)
        sage__deadline(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->used == r->cap && !r->broken) {
        if (timeout_ms < 0)
            pthread_cond_wait(&r->space, &r->mu);
        else if (pthread_cond_timedwait(&r->space, &r->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (r->broken || r->used == r->cap) {
        int rc = r->broken ? r->broken_rc : SAGE_ETIMEDOUT;
        if (r->broken)
            sage__fmt(why, why_len, "%s", r->why);
        else
            sage__fmt(why, why_len, "%zu calls were outstanding for %d ms (its queue_capacity)", r->cap, timeout_ms);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    size_t slot = r->hint;
    while (r->slots[slot])
        slot = (slot + 1) % r->cap;
    r->hint = (slot + 1) % r->cap;
    uint64_t id = ++r->seq << SLOT_BITS | slot;
    f->wire_id = id;
    r->slots[slot] = f; /* the connection's reference: f came with two */
    r->used++;
    pthread_mutex_unlock(&r->mu);

    unsigned char head[SAGE__FRAME_HDR + 8];
    sage__frame_header(head, SAGE__MSG_CALL, (uint32_t)(8 + f->req_len));
    put_be64(head + SAGE__FRAME_HDR, id);
    struct iovec iov[2] = {{head, sizeof head}, {f->req, f->req_len}};
    pthread_mutex_lock(&r->wmu);
    int w = write_all(r->fd, iov, f->req_len ? 2 : 1);
    int e = errno;
    pthread_mutex_unlock(&r->wmu);
    if (w != 0) { /* f is answered with the reason, like every other outstanding call */
        char msg[384];
        sage__fmt(msg, sizeof msg, "the connection to its process broke (%s)", strerror(e));
        pthread_mutex_lock(&r->mu);
        break_locked(r, SAGE_EIO, msg);
        pthread_mutex_unlock(&r->mu);
        shutdown(r->fd, SHUT_RDWR);
    }
    return 0;
}

const char *sage__svc_remote_why(sage__svc_remote *r)
{
    pthread_mutex_lock(&r->mu);
    const char *w = r->broken ? r->why : "";
    pthread_mutex_unlock(&r->mu);
    return w;
}

void sage__svc_remote_cancel(sage__svc_remote *r)
{
    pthread_mutex_lock(&r->mu);
    break_locked(r, SAGE_ECANCELED, "the job was canceled");
    pthread_mutex_unlock(&r->mu);
    shutdown(r->fd, SHUT_RDWR);
}

void sage__svc_remote_close(sage__svc_remote *r)
{
    if (!r)
        return;
    sage__svc_remote_cancel(r);
    if (r->reader_started)
        pthread_join(r->reader, NULL);
    close(r->fd);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->wmu);
    pthread_cond_destroy(&r->space);
    free(r->slots);
    free(r);
}

/* ---- the serving side ---- */

typedef struct svc_conn {
    int fd;
    pthread_t th;
    pthread_mutex_t wmu;
    struct sage__svc_server *srv;
    struct svc_conn *next;
    _Atomic int stranger; /* it failed the handshake and its thread ended: no call of it exists */
} svc_conn;

struct sage__svc_server {
    int listen_fd, stop_fd;
    char token[SAGE__TOKEN_HEX + 1];
    int64_t job_id;
    sage__job *job;
    size_t svc;
    pthread_t acceptor;
    pthread_mutex_t mu;
    svc_conn *conns;
    size_t nconns;
};

/* on_done of a call from a connection: its ANSWER (a broken connection just loses it: its caller is gone). */
static void answer(sage_future *f, void *arg)
{
    svc_conn *c = arg;
    pthread_mutex_lock(&f->mu);
    int rc = f->rc;
    const void *resp = rc == 0 ? f->resp : NULL;
    size_t len = rc == 0 ? f->resp_len : 0;
    pthread_mutex_unlock(&f->mu);
    unsigned char head[SAGE__FRAME_HDR + 12];
    sage__frame_header(head, SAGE__MSG_ANSWER, (uint32_t)(12 + len));
    put_be64(head + SAGE__FRAME_HDR, f->wire_id);
    uint32_t u = htonl((uint32_t)rc);
    memcpy(head + SAGE__FRAME_HDR + 8, &u, 4);
    struct iovec iov[2] = {{head, sizeof head}, {(void *)resp, len}};
    pthread_mutex_lock(&c->wmu);
    if (write_all(c->fd, iov, len ? 2 : 1) != 0)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->wmu);
}

/* The first frame: a HELLO with the job's token, role "peer" and our job's id, within the handshake limit. */
static int handshake(svc_conn *c)
{
    struct timeval tv = {.tv_sec = SAGE__NET_HANDSHAKE_MS / 1000, .tv_usec = (SAGE__NET_HANDSHAKE_MS % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sage__frame f;
    unsigned char *payload = NULL;
    char why[256];
    int ok = 0;
    if (sage__frame_recv(c->fd, SAGE__CONTROL_FRAME_MAX, &f, &payload, why, sizeof why) == 0 &&
        f.type == SAGE__MSG_HELLO) {
        json_error_t je;
        json_t *h = json_loads((const char *)payload, 0, &je);
        const char *token = json_string_value(json_object_get(h, "token"));
        const char *role = json_string_value(json_object_get(h, "role"));
        ok = token && sage__token_equal(token, c->srv->token) && role && strcmp(role, "peer") == 0 &&
             json_integer_value(json_object_get(h, "job_id")) == c->srv->job_id;
        json_decref(h);
    }
    free(payload);
    struct timeval none = {0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    return ok;
}

static void *conn_main(void *arg)
{
    svc_conn *c = arg;
    if (!handshake(c)) {
        shutdown(c->fd, SHUT_RDWR); /* a stranger: never read again, reaped by the acceptor */
        atomic_store(&c->stranger, 1);
        return NULL;
    }
    char why[256];
    for (;;) {
        uint64_t id;
        int rc;
        void *body;
        size_t blen;
        if (read_msg(c->fd, SAGE__MSG_CALL, &id, &rc, &body, &blen, why, sizeof why) != 0)
            break; /* the caller ended, or sent what is not a call: its connection ends */
        sage_future *f = sage__future_adopt(body, blen, 1);
        if (!f) {
            sage_future tmp = {.wire_id = id, .rc = SAGE_ENOMEM};
            pthread_mutex_init(&tmp.mu, NULL);
            answer(&tmp, c);
            pthread_mutex_destroy(&tmp.mu);
            continue;
        }
        f->on_done = answer;
        f->done_arg = c;
        f->wire_id = id;
        if ((rc = sage__service_submit(c->srv->job, c->srv->svc, f)) != 0)
            sage__future_complete(f, rc); /* stopping: answered at once */
    }
    shutdown(c->fd, SHUT_RDWR);
    return NULL;
}

/* Under mu: free the connections that failed their handshake (a flood of strangers costs no slots). */
static void reap_strangers(sage__svc_server *s)
{
    for (svc_conn **pp = &s->conns; *pp;) {
        svc_conn *c = *pp;
        if (!atomic_load(&c->stranger)) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        pthread_join(c->th, NULL);
        close(c->fd);
        pthread_mutex_destroy(&c->wmu);
        free(c);
        s->nconns--;
    }
}

static void *acceptor_main(void *arg)
{
    sage__svc_server *s = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN}, {.fd = s->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* EMFILE and friends: the caller's connect waits in the backlog; try again */
        sage__set_nonblock(fd, 0);
        pthread_mutex_lock(&s->mu);
        reap_strangers(s);
        svc_conn *c = s->nconns < SAGE__SVC_CONNS_MAX ? calloc(1, sizeof *c) : NULL;
        if (c) {
            c->fd = fd;
            c->srv = s;
            pthread_mutex_init(&c->wmu, NULL);
            if (pthread_create(&c->th, NULL, conn_main, c) != 0) {
                pthread_mutex_destroy(&c->wmu);
                free(c);
                c = NULL;
            } else {
                c->next = s->conns;
                s->conns = c;
                s->nconns++;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (!c)
            close(fd); /* over the limit (or out of memory): refused */
    }
}

int sage__svc_serve(int listen_fd, const char *token, int64_t job_id, sage__job *job, size_t svc,
                    sage__svc_server **out)
{
    *out = NULL;
    sage__svc_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(listen_fd);
        return SAGE_ENOMEM;
    }
    s->listen_fd = listen_fd;
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    sage__strlcpy(s->token, token, sizeof s->token);
    s->job_id = job_id;
    s->job = job;
    s->svc = svc;
    pthread_mutex_init(&s->mu, NULL);
    sage__set_nonblock(listen_fd, 1);
    if (s->stop_fd < 0 || pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
        if (s->stop_fd >= 0)
            close(s->stop_fd);
        close(listen_fd);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return SAGE_ESYS;
    }
    *out = s;
    return 0;
}

void sage__svc_serve_stop(sage__svc_server *s)
{
    if (!s)
        return;
    uint64_t one = 1;
    (void)!write(s->stop_fd, &one, sizeof one);
    pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    close(s->stop_fd);
    for (svc_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        shutdown(c->fd, SHUT_RDWR);
        pthread_join(c->th, NULL);
        close(c->fd);
        pthread_mutex_destroy(&c->wmu);
        free(c);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}
