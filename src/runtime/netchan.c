/* runtime/netchan.c - batches between worker processes over Unix or TCP stream sockets, with credit flow control.
 *
 * Design note. A DATA frame carries one batch exactly as the in-process
 * queue holds it ([u32 input][u32 n] then the records [u32 len][u32 0]
 * [bytes padded to 8]), so both sides reuse the batch code and the receiver
 * reads the records straight into a batch buffer (one copy into the kernel,
 * one out). The receiver checks every record length against the frame
 * before anything downstream sees it. Flow control is by credit: each
 * connection starts with `window` bytes; the receiver returns a frame's
 * bytes once the batch is in its local queue, so a slow consumer stops the
 * credit, the sender blocks, and memory stays bounded by the window per
 * connection. End-of-stream is an EOS frame after the last batch; the
 * connection then closes.
 */
#include "runtime/netchan.h"

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
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/sock.h"
#include "sage/error.h"
#include "util/err.h"
#include "util/time.h"

typedef struct netsend {
    sage__chan chan; /* first: the producer's view */
    int fd;
    int cancel_fd; /* eventfd, readable once the job is canceled */
    _Atomic int *canceled;
    int64_t credit; /* bytes the receiver still accepts */
    uint64_t outstanding;
    unsigned char rx[64];
    size_t rxlen;
    sage__net_fail_fn fail;
    void *fail_arg;
    int eos_sent; /* the EOS frame is in the socket: close gracefully */
    int finished; /* sage__net_finish ran */
} netsend;

/* sendmsg with MSG_NOSIGNAL: a consumer that went away is an error to
 * report, never a SIGPIPE that kills the producer without a word. */
static int send_all(int fd, struct iovec *iov, int n, _Atomic uint64_t *blocked, int cancel_fd)
{
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* the socket buffer is full: the consumer is behind. That wait is backpressure too. */
                uint64_t t0 = sage__mono_ns();
                struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = cancel_fd, .events = POLLIN}};
                while (poll(p, cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR)
                    ;
                atomic_fetch_add_explicit(blocked, sage__mono_ns() - t0, memory_order_relaxed);
                if (cancel_fd >= 0 && p[1].revents)
                    return SAGE_ECANCELED;
                continue;
            }
            return SAGE_EIO;
        }
        sage__iov_consume(&iov, &n, (size_t)w);
    }
    return 0;
}


static int net_push(sage__chan *c, sage__batch *b, sage__batch **fresh);
static void net_wake(sage__chan *c)
{
    uint64_t one = 1; /* the sender polls this eventfd while it waits for credit or socket space */
    (void)!write(((netsend *)c)->cancel_fd, &one, sizeof one);
}
/* After the EOS: a close() with unread credit in our receive buffer would
 * make the kernel reset the connection and throw away what it had not sent
 * yet (the last batches, the EOS itself). So half-close, read (and drop)
 * credit until the consumer closes after reading the EOS, then close. A
 * consumer silent for SAGE__NET_LINGER_MS, or a cancel, ends the wait. */
#define SAGE__NET_LINGER_MS 10000
static void net_destroy(sage__chan *c);
static const sage__chan_ops net_ops;

void sage__net_finish(sage__chan *c)
{
    if (c->ops != &net_ops)
        return; /* an in-process queue */
    netsend *ns = (netsend *)c;
    if (ns->eos_sent && !ns->finished && shutdown(ns->fd, SHUT_WR) == 0) {
        uint64_t end = sage__mono_ns() + (uint64_t)SAGE__NET_LINGER_MS * 1000000u;
        for (;;) {
            uint64_t now = sage__mono_ns();
            if (now >= end || atomic_load(ns->canceled))
                break;
            struct pollfd p[2] = {{.fd = ns->fd, .events = POLLIN}, {.fd = ns->cancel_fd, .events = POLLIN}};
            int r = poll(p, ns->cancel_fd >= 0 ? 2 : 1, (int)((end - now) / 1000000u) + 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0 || (ns->cancel_fd >= 0 && p[1].revents))
                break;
            char sink[4096];
            ssize_t n = read(ns->fd, sink, sizeof sink);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                break; /* the consumer closed: everything we sent was read */
            if (n > 0) /* credit: the consumer is still reading what we sent */
                end = sage__mono_ns() + (uint64_t)SAGE__NET_LINGER_MS * 1000000u;
        }
    }
    ns->finished = 1;
}

static void net_destroy(sage__chan *c)
{
    sage__net_finish(c);
    close(((netsend *)c)->fd);
    free(c);
}
static const sage__chan_ops net_ops = {net_push, net_wake, net_destroy};

/* Introduce ourselves on a fresh connection to a consumer (`where` names it
 * in errors). Takes ownership of fd. */
static int net_attach(int fd, const char *where, const sage__net_peer *p, sage__chan **out, char *err, size_t err_len)
{
    netsend *ns = calloc(1, sizeof *ns);
    if (!ns) {
        close(fd);
        sage__fmt(err, err_len, "out of memory connecting to %s", where);
        return SAGE_ENOMEM;
    }
    ns->fd = fd;
    json_t *hello = json_pack("{s:s,s:s,s:I,s:i}", "token", p->token, "role", "peer", "job_id", (json_int_t)p->job_id,
                              "from_task", p->from_task);
    char *txt = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    int rc = txt ? sage__frame_send(ns->fd, SAGE__MSG_HELLO, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc != 0) {
        sage__fmt(err, err_len, "introducing ourselves on %s failed", where);
        close(ns->fd);
        free(ns);
        return rc;
    }
    ns->chan.ops = &net_ops;
    ns->chan.batch_bytes = p->batch_bytes; /* the consumer's standard size, so it can recycle what arrives */
    /* A remote consumer is always treated as waiting: partial batches go to it once they
     * have lingered flush_linger_us, so a trickling source is never stuck in a partial batch. */
    atomic_init(&ns->chan.consumer_waiting, 1);
    atomic_init(&ns->chan.blocked_ns, 0);
    ns->cancel_fd = p->cancel_fd;
    ns->canceled = p->canceled;
    ns->credit = (int64_t)p->window;
    ns->fail = p->fail;
    ns->fail_arg = p->fail_arg;
    *out = &ns->chan;
    return 0;
}

int sage__net_connect(const char *path, const sage__net_peer *p, sage__chan **out, char *err, size_t err_len)
{
    int fd;
    int rc = sage__unix_connect(path, &fd, err, err_len);
    if (rc != 0)
        return rc;
    return net_attach(fd, path, p, out, err, err_len);
}

int sage__net_connect_tcp(const char *addr, const sage__net_peer *p, sage__chan **out, char *err, size_t err_len)
{
    char host[256];
    int port, fd;
    if (sage__parse_hostport(addr, host, sizeof host, &port, 0) != 0 || port == 0) {
        sage__fmt(err, err_len, "bad data-plane address \"%s\" (expected HOST:PORT)", addr);
        return SAGE_EINVAL;
    }
    int rc = sage__tcp_connect(host, port, &fd, err, err_len); /* sets TCP_NODELAY */
    if (rc != 0)
        return rc;
    return net_attach(fd, addr, p, out, err, err_len);
}

/* Take CREDIT frames off the socket; block until some arrive when `block`. */
static int read_credit(netsend *ns, int block)
{
    for (;;) {
        while (ns->rxlen >= SAGE__FRAME_HDR + 4) {
            sage__frame f;
            char why[128];
            long n = sage__frame_decode(ns->rx, ns->rxlen, 4, &f, why, sizeof why);
            if (n <= 0 || f.type != SAGE__MSG_CREDIT || f.len != 4)
                return SAGE_EPROTO;
            uint32_t be;
            memcpy(&be, f.payload, 4);
            uint32_t c = ntohl(be);
            ns->credit += c;
            ns->outstanding = ns->outstanding > c ? ns->outstanding - c : 0;
            memmove(ns->rx, ns->rx + n, ns->rxlen - (size_t)n);
            ns->rxlen -= (size_t)n;
            block = 0; /* got some */
        }
        struct pollfd p[2] = {{.fd = ns->fd, .events = POLLIN}, {.fd = ns->cancel_fd, .events = POLLIN}};
        int r = poll(p, 2, block ? -1 : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return SAGE_ESYS;
        if (p[1].revents || atomic_load_explicit(ns->canceled, memory_order_relaxed))
            return SAGE_ECANCELED;
        if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
            return 0;
        ssize_t n = recv(ns->fd, ns->rx + ns->rxlen, sizeof ns->rx - ns->rxlen, MSG_DONTWAIT);
        if (n == 0)
            return SAGE_EIO; /* the consumer went away */
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return SAGE_EIO;
        }
        ns->rxlen += (size_t)n;
    }
}

static int push_failed(netsend *ns, int rc)
{
    if ((rc == SAGE_EIO || rc == SAGE_EPROTO) && ns->fail && !atomic_load(ns->canceled))
        ns->fail(ns->fail_arg, rc == SAGE_EIO ? "the connection to a consumer broke (it ended or was killed)"
                                              : "a consumer sent a malformed credit frame");
    return rc;
}

static int net_push(sage__chan *c, sage__batch *b, sage__batch **fresh)
{
    netsend *ns = (netsend *)c;
    if (fresh)
        *fresh = NULL;
    if (atomic_load_explicit(ns->canceled, memory_order_relaxed)) {
        free(b);
        return SAGE_ECANCELED;
    }
    unsigned char hdr[SAGE__FRAME_HDR + 12];
    uint32_t in_be = htonl(b->input), n_be = htonl(b->n);
    if (b->mark == SAGE__MARK_BARRIER) { /* a checkpoint barrier: like end-of-stream, outside the credit */
        sage__frame_header(hdr, SAGE__MSG_BARRIER, 12);
        uint32_t ep[2] = {htonl((uint32_t)(b->epoch >> 32)), htonl((uint32_t)b->epoch)};
        memcpy(hdr + SAGE__FRAME_HDR, &in_be, 4);
        memcpy(hdr + SAGE__FRAME_HDR + 4, ep, 8);
        struct iovec iov[1] = {{hdr, SAGE__FRAME_HDR + 12}};
        free(b);
        int erc = send_all(ns->fd, iov, 1, &ns->chan.blocked_ns, ns->cancel_fd);
        return erc ? push_failed(ns, erc) : 0;
    }
    if (b->mark == SAGE__MARK_PROBE || b->mark == SAGE__MARK_INPUTS_ENDED) { /* a loop's marker: the same */
        unsigned char lh[SAGE__FRAME_HDR + 16];
        sage__frame_header(lh, SAGE__MSG_LOOP, 16);
        uint32_t w[3] = {htonl(b->mark), htonl((uint32_t)(b->epoch >> 32)), htonl((uint32_t)b->epoch)};
        memcpy(lh + SAGE__FRAME_HDR, &in_be, 4);
        memcpy(lh + SAGE__FRAME_HDR + 4, w, 12);
        struct iovec iov[1] = {{lh, SAGE__FRAME_HDR + 16}};
        free(b);
        int erc = send_all(ns->fd, iov, 1, &ns->chan.blocked_ns, ns->cancel_fd);
        return erc ? push_failed(ns, erc) : 0;
    }
    if (b->mark) {
        sage__frame_header(hdr, SAGE__MSG_EOS, 4);
        memcpy(hdr + SAGE__FRAME_HDR, &in_be, 4);
        struct iovec iov[1] = {{hdr, SAGE__FRAME_HDR + 4}};
        free(b);
        int erc = send_all(ns->fd, iov, 1, &ns->chan.blocked_ns, ns->cancel_fd);
        ns->eos_sent = erc == 0;
        return erc ? push_failed(ns, erc) : 0;
    }
    size_t plen = 8 + b->used;
    int rc;
    if (ns->credit < (int64_t)plen && ns->outstanding > 0) {
        uint64_t t0 = sage__mono_ns();
        while (ns->credit < (int64_t)plen && ns->outstanding > 0)
            if ((rc = read_credit(ns, 1)) != 0) {
                free(b);
                return push_failed(ns, rc);
            }
        atomic_fetch_add_explicit(&ns->chan.blocked_ns, sage__mono_ns() - t0, memory_order_relaxed);
    } else if (ns->credit < (int64_t)(2 * plen) && (rc = read_credit(ns, 0)) != 0) {
        /* credit is read only when it runs low: no syscall per batch while the window is open */
        free(b);
        return push_failed(ns, rc);
    }
    sage__frame_header(hdr, SAGE__MSG_DATA, (uint32_t)plen);
    memcpy(hdr + SAGE__FRAME_HDR, &in_be, 4);
    memcpy(hdr + SAGE__FRAME_HDR + 4, &n_be, 4);
    struct iovec iov[2] = {{hdr, SAGE__FRAME_HDR + 8}, {b->data, b->used}};
    rc = send_all(ns->fd, iov, 2, &ns->chan.blocked_ns, ns->cancel_fd);
    ns->credit -= (int64_t)plen;
    ns->outstanding += plen;
    if (rc != 0) {
        free(b);
        return push_failed(ns, rc);
    }
    b->n = 0;
    b->used = 0;
    if (fresh && b->cap == ns->chan.batch_bytes)
        *fresh = b; /* the bytes are in the kernel: reuse the batch at once */
    else
        free(b);
    return 0;
}

/* ---- receiving end ---- */

typedef struct conn_thread {
    pthread_t th;
    int fd;
    int started;
    struct sage__netrecv *r;
} conn_thread;

/* A connection that has not authenticated yet: it reads exactly its HELLO
 * frame (never past it), within its deadline. */
typedef struct pending {
    int fd;
    int64_t deadline_ms;
    size_t len;
    unsigned char buf[SAGE__FRAME_HDR + SAGE__NET_HELLO_MAX];
} pending;

struct sage__netrecv {
    int listen_fd;
    int cancel_fd;
    int expected;
    sage__queue *q;
    char token[SAGE__TOKEN_HEX + 1];
    sage__net_fail_fn fail;
    void *arg;
    pthread_t acceptor;
    conn_thread *conns;
    int nconns;
    pending *pend;  /* npend slots, fd -1 when free */
    int npend;      /* every expected producer, and SAGE__NET_PENDING_MAX strangers besides */
    int64_t log_ms; /* refusal logging: one line per second at most */
    unsigned refused, unlogged;
};

/* Send the owed credit as one frame if the socket takes it now; keep it owed
 * otherwise (EAGAIN). A producer that is gone needs no credit, and one that
 * died is reported by its own exit: other errors drop the debt. */
static void send_credit(int fd, uint64_t *owed)
{
    while (*owed > 0) {
        uint32_t amount = *owed > UINT32_MAX ? UINT32_MAX : (uint32_t)*owed;
        unsigned char cr[SAGE__FRAME_HDR + 4];
        sage__frame_header(cr, SAGE__MSG_CREDIT, 4);
        uint32_t c = htonl(amount);
        memcpy(cr + SAGE__FRAME_HDR, &c, 4);
        ssize_t n = send(fd, cr, sizeof cr, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof cr) {
            *owed -= amount;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* later, when the socket drains */
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            /* part of a frame went out: the rest must follow or the stream is broken */
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            size_t off = (size_t)n;
            while (off < sizeof cr) {
                while (poll(&p, 1, -1) < 0 && errno == EINTR)
                    ;
                ssize_t m = send(fd, cr + off, sizeof cr - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (m > 0)
                    off += (size_t)m;
                else if (m < 0 && errno != EAGAIN && errno != EINTR)
                    break;
            }
            *owed -= amount;
            continue;
        }
        *owed = 0;
        return;
    }
}

int sage__batch_check(const unsigned char *data, size_t used, uint32_t n)
{
    size_t off = 0;
    uint32_t i;
    for (i = 0; i < n && off + SAGE__REC_HDR <= used; i++) {
        uint32_t len;
        memcpy(&len, data + off, 4);
        if (sage__rec_size(len) > used - off)
            break;
        off += sage__rec_size(len);
    }
    return i == n && off == used ? 0 : SAGE_EPROTO;
}

long sage__net_hello_check(const unsigned char *buf, size_t len, const char *token, char *why, size_t why_len)
{
    sage__frame f;
    long n = sage__frame_decode(buf, len, SAGE__NET_HELLO_MAX, &f, why, why_len);
    if (n <= 0)
        return n;
    if (f.type != SAGE__MSG_HELLO) {
        sage__fmt(why, why_len, "its first frame is of type %u, not a HELLO", (unsigned)f.type);
        return SAGE_EAUTH;
    }
    json_error_t jerr;
    json_t *hello = json_loadb((const char *)f.payload, f.len, 0, &jerr);
    const char *tok = json_string_value(json_object_get(hello, "token"));
    int ok = tok && sage__token_equal(tok, token);
    json_decref(hello);
    if (!ok) {
        sage__fmt(why, why_len, "%s", hello ? "its HELLO carries no valid token" : "its HELLO is not JSON");
        return SAGE_EAUTH;
    }
    return n;
}

/* An authenticated producer: DATA and EOS frames until its end-of-stream. */
static void serve_frames(int fd, sage__queue *q, sage__net_fail_fn fail, void *arg)
{
    char why[256];
    sage__frame f;
    int rc;
    uint64_t owed = 0; /* credit earned but not yet sent back (the producer's buffer was full) */
    for (;;) {
        /* Before waiting for the next frame, make sure owed credit goes out: the
         * producer may be waiting for exactly that, and it reads credit only then.
         * Credit is never dropped: it is coalesced and sent when the socket takes it. */
        while (owed > 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
            while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
            if (p.revents & POLLOUT)
                send_credit(fd, &owed);
            if (p.revents & (POLLIN | POLLHUP | POLLERR))
                break; /* a frame (or the end) is waiting: read it first */
        }
        unsigned char hdr[SAGE__FRAME_HDR];
        rc = sage__read_full(fd, hdr, sizeof hdr);
        if (rc == 1)
            break; /* the producer closed after its end-of-stream */
        if (rc != 0) {
            if (!atomic_load(q->canceled))
                fail(arg, "a data connection broke in the middle of a frame");
            break;
        }
        rc = sage__frame_header_decode(hdr, SAGE__DATA_FRAME_MAX, &f, why, sizeof why);
        if (rc < 0 ||
            (f.type != SAGE__MSG_DATA && f.type != SAGE__MSG_EOS && f.type != SAGE__MSG_BARRIER &&
             f.type != SAGE__MSG_LOOP) ||
            f.len < 4 || (f.type == SAGE__MSG_DATA && f.len < 8) || (f.type == SAGE__MSG_BARRIER && f.len != 12) ||
            (f.type == SAGE__MSG_LOOP && f.len != 16)) {
            fail(arg, rc < 0 ? why : "unexpected frame on a data connection");
            break;
        }
        uint32_t be[4];
        size_t blen = f.type == SAGE__MSG_EOS       ? 4
                      : f.type == SAGE__MSG_BARRIER ? 12
                      : f.type == SAGE__MSG_LOOP    ? 16
                                                    : 8;
        if (sage__read_full(fd, be, blen) != 0) {
            fail(arg, "a data connection broke in the middle of a frame");
            break;
        }
        if (f.type == SAGE__MSG_LOOP && ntohl(be[1]) != SAGE__MARK_PROBE && ntohl(be[1]) != SAGE__MARK_INPUTS_ENDED) {
            fail(arg, "a loop frame with an unknown marker on a data connection");
            break;
        }
        if (f.type == SAGE__MSG_BARRIER || f.type == SAGE__MSG_LOOP) {
            sage__batch *m = sage__batch_new(0);
            if (!m) {
                fail(arg, "out of memory receiving a marker");
                break;
            }
            int loop = f.type == SAGE__MSG_LOOP;
            m->mark = loop ? ntohl(be[1]) : SAGE__MARK_BARRIER;
            m->input = ntohl(be[0]);
            m->epoch = (uint64_t)ntohl(be[1 + loop]) << 32 | ntohl(be[2 + loop]);
            if (sage__queue_push(q, m, NULL) != 0)
                break; /* canceled */
            continue;
        }
        size_t used = f.type == SAGE__MSG_DATA ? f.len - 8 : 0;
        /* reuse a batch the consumer finished with: no allocation in steady state */
        sage__batch *b = used <= q->chan.batch_bytes && f.type == SAGE__MSG_DATA ? sage__queue_take_free(q) : NULL;
        if (!b)
            b = sage__batch_new(used > q->chan.batch_bytes ? used : q->chan.batch_bytes);
        if (!b) {
            fail(arg, "out of memory receiving a batch");
            break;
        }
        b->input = ntohl(be[0]);
        b->n = 0;
        b->used = 0;
        if (f.type == SAGE__MSG_EOS) {
            b->mark = SAGE__MARK_EOS;
        } else {
            b->n = ntohl(be[1]);
            b->used = used;
            if (sage__read_full(fd, b->data, used) != 0) {
                free(b);
                fail(arg, "a data connection broke in the middle of a frame");
                break;
            }
            /* every record must lie inside the frame */
            if (sage__batch_check(b->data, used, b->n) != 0) {
                free(b);
                fail(arg, "a data frame's records do not match its length");
                break;
            }
        }
        int eos = b->mark;
        sage__batch *fresh = NULL;
        if (sage__queue_push(q, b, &fresh) != 0)
            break; /* canceled */
        free(fresh);
        if (eos)
            break; /* nothing follows an end-of-stream (the producer may close before reading its credit) */
        if (!eos) {
            owed += f.len;
            send_credit(fd, &owed);
        }
    }
    close(fd);
}

static void *conn_main(void *arg)
{
    conn_thread *ct = arg;
    serve_frames(ct->fd, ct->r->q, ct->r->fail, ct->r->arg);
    return NULL;
}

/* A connection that did not authenticate: closed, counted, and said on
 * stderr (a worker's log) at most once a second with what was suppressed. */
static void refuse(sage__netrecv *r, pending *p, const char *why)
{
    close(p->fd);
    p->fd = -1;
    r->refused++;
    int64_t now = sage__mono_ms();
    if (r->log_ms && now - r->log_ms < 1000) {
        r->unlogged++;
        return;
    }
    if (r->unlogged)
        fprintf(stderr, "sage: refused a data connection: %s (and %u more refused in the last second)\n", why,
                r->unlogged);
    else
        fprintf(stderr, "sage: refused a data connection: %s\n", why);
    r->log_ms = now;
    r->unlogged = 0;
}

/* The producer authenticated: serve it on its own thread. */
static int admit(sage__netrecv *r, pending *p)
{
    int fd = p->fd;
    p->fd = -1;
    sage__set_nonblock(fd, 0);
    /* TCP: credits are tiny frames that must not wait for Nagle (fails harmlessly on Unix sockets) */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn_thread *ct = &r->conns[r->nconns];
    ct->fd = fd;
    ct->r = r;
    if (pthread_create(&ct->th, NULL, conn_main, ct) != 0) {
        close(fd);
        r->fail(r->arg, "starting a data connection thread failed");
        return SAGE_ESYS;
    }
    ct->started = 1;
    r->nconns++;
    return 0;
}

/* Read what the pending connection's HELLO still needs, never more. */
static void handshake_read(sage__netrecv *r, pending *p)
{
    size_t want = SAGE__FRAME_HDR;
    if (p->len >= SAGE__FRAME_HDR) {
        uint32_t be;
        memcpy(&be, p->buf + 8, 4);
        uint32_t plen = ntohl(be);
        if (plen > SAGE__NET_HELLO_MAX) {
            refuse(r, p, "its HELLO is longer than 4096 bytes");
            return;
        }
        want = SAGE__FRAME_HDR + plen;
    }
    ssize_t n = recv(p->fd, p->buf + p->len, want - p->len, MSG_DONTWAIT);
    if (n == 0) {
        refuse(r, p, "it closed before its HELLO");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            refuse(r, p, "reading its HELLO failed");
        return;
    }
    p->len += (size_t)n;
    char why[256];
    long rc = sage__net_hello_check(p->buf, p->len, r->token, why, sizeof why);
    if (rc < 0)
        refuse(r, p, why);
    else if (rc > 0)
        admit(r, p);
}

/* Accept until `expected` producers authenticated, the job is canceled, or
 * accepting fails for good. Unauthenticated connections wait in a bounded
 * set, each with a deadline; none of them counts or can fail the job. */
static void *acceptor_main(void *arg)
{
    sage__netrecv *r = arg;
    struct pollfd *pf = calloc((size_t)r->npend + 2, sizeof *pf);
    int *map = calloc((size_t)r->npend, sizeof *map);
    if (!pf || !map) {
        r->fail(r->arg, "out of memory waiting for data connections");
        goto out;
    }
    int backoff = 0; /* the descriptor limit was hit: wait before accepting again */
    while (r->nconns < r->expected && !atomic_load(r->q->canceled)) {
        int64_t now = sage__mono_ms(), next = -1;
        int n = 0;
        pf[n++] = (struct pollfd){.fd = backoff ? -1 : r->listen_fd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = r->cancel_fd, .events = POLLIN};
        for (int i = 0; i < r->npend; i++) {
            pending *p = &r->pend[i];
            if (p->fd < 0)
                continue;
            if (p->deadline_ms <= now) {
                refuse(r, p, "it did not authenticate within its handshake time");
                continue;
            }
            if (next < 0 || p->deadline_ms < next)
                next = p->deadline_ms;
            map[n - 2] = i;
            pf[n++] = (struct pollfd){.fd = p->fd, .events = POLLIN};
        }
        int timeout = next < 0 ? -1 : (int)(next - now);
        if (backoff && (timeout < 0 || timeout > 100))
            timeout = 100;
        int rc = poll(pf, (nfds_t)n, timeout);
        backoff = 0;
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            r->fail(r->arg, "waiting for data connections failed");
            break;
        }
        if (pf[1].revents)
            break; /* canceled */
        for (int k = 2; k < n; k++)
            if (pf[k].revents && r->pend[map[k - 2]].fd >= 0 && r->nconns < r->expected)
                handshake_read(r, &r->pend[map[k - 2]]);
        if (!(pf[0].revents & POLLIN))
            continue;
        /* a few at a time: the HELLOs of those just accepted are read (above) before the next ones can
         * push them out of a full set */
        for (int burst = 0; burst < SAGE__NET_ACCEPT_BURST; burst++) {
            int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    backoff = 1; /* the listener stays readable: do not spin on it */
                else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                    if (!atomic_load(r->q->canceled))
                        r->fail(r->arg, "accepting a data connection failed");
                    goto out;
                }
                break;
            }
            pending *slot = NULL, *oldest = NULL;
            for (int i = 0; i < r->npend && !slot; i++) {
                pending *p = &r->pend[i];
                if (p->fd < 0)
                    slot = p;
                else if (!oldest || p->deadline_ms < oldest->deadline_ms)
                    oldest = p;
            }
            if (!slot) {
                refuse(r, oldest, "too many connections waiting to authenticate");
                slot = oldest;
            }
            slot->fd = fd;
            slot->len = 0;
            slot->deadline_ms = sage__mono_ms() + SAGE__NET_HANDSHAKE_MS;
        }
    }
out:
    free(pf);
    free(map);
    for (int i = 0; i < r->npend; i++)
        if (r->pend[i].fd >= 0) {
            close(r->pend[i].fd);
            r->pend[i].fd = -1;
        }
    /* every producer is here (or the job ended): nobody else may connect; connections still in the
     * backlog are reset with it */
    close(r->listen_fd);
    r->listen_fd = -1;
    return NULL;
}

int sage__net_serve(int listen_fd, int expected, sage__queue *q, const char *token, int cancel_fd,
                    sage__net_fail_fn fail, void *arg, sage__netrecv **out)
{
    sage__netrecv *r = calloc(1, sizeof *r);
    if (!r)
        return SAGE_ENOMEM;
    r->conns = calloc((size_t)(expected > 0 ? expected : 1), sizeof *r->conns);
    r->npend = (expected > 0 ? expected : 0) + SAGE__NET_PENDING_MAX;
    r->pend = calloc((size_t)r->npend, sizeof *r->pend);
    if (!r->conns || !r->pend) {
        free(r->conns);
        free(r->pend);
        free(r);
        return SAGE_ENOMEM;
    }
    for (int i = 0; i < r->npend; i++)
        r->pend[i].fd = -1;
    sage__set_nonblock(listen_fd, 1);
    r->listen_fd = listen_fd;
    r->cancel_fd = cancel_fd;
    r->expected = expected;
    r->q = q;
    sage__strlcpy(r->token, token, sizeof r->token);
    r->fail = fail;
    r->arg = arg;
    if (pthread_create(&r->acceptor, NULL, acceptor_main, r) != 0) {
        free(r->conns);
        free(r->pend);
        free(r);
        return SAGE_ESYS;
    }
    *out = r;
    return 0;
}

unsigned sage__net_refused(const sage__netrecv *r) { return r->refused; }

void sage__net_serve_join(sage__netrecv *r)
{
    if (!r)
        return;
    pthread_join(r->acceptor, NULL);
    for (int i = 0; i < r->nconns; i++)
        if (r->conns[i].started)
            pthread_join(r->conns[i].th, NULL);
    free(r->conns);
    free(r->pend);
    free(r);
}
