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
#include "sage/context.h"
#include "sage/error.h"

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
                uint64_t t0 = sage_now_ns();
                struct pollfd p[2] = {{.fd = fd, .events = POLLOUT}, {.fd = cancel_fd, .events = POLLIN}};
                while (poll(p, cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR)
                    ;
                atomic_fetch_add_explicit(blocked, sage_now_ns() - t0, memory_order_relaxed);
                if (cancel_fd >= 0 && p[1].revents)
                    return SAGE_ECANCELED;
                continue;
            }
            return SAGE_EIO;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got == 0 && n == 0 ? 1 : SAGE_EIO; /* 1: clean end of stream */
        got += (size_t)n;
    }
    return 0;
}

/* Introduce ourselves on a fresh connection to a consumer (`where` names it
 * in errors) and attach it to q. Takes ownership of fd. */
static int net_attach(sage__queue *q, int fd, const char *where, const char *token, int64_t job_id, int from_task,
                      size_t window, size_t batch_bytes, int cancel_fd, _Atomic int *canceled, sage__net_fail_fn fail,
                      void *fail_arg, char *err, size_t err_len)
{
    sage__netsend *ns = calloc(1, sizeof *ns);
    if (!ns) {
        close(fd);
        snprintf(err, err_len, "out of memory connecting to %s", where);
        return SAGE_ENOMEM;
    }
    ns->fd = fd;
    json_t *hello = json_pack("{s:s,s:s,s:I,s:i}", "token", token, "role", "peer", "job_id", (json_int_t)job_id,
                              "from_task", from_task);
    char *txt = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    int rc = txt ? sage__frame_send(ns->fd, SAGE__MSG_HELLO, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc != 0) {
        snprintf(err, err_len, "introducing ourselves on %s failed", where);
        close(ns->fd);
        free(ns);
        return rc;
    }
    ns->cancel_fd = cancel_fd;
    ns->credit = (int64_t)window;
    ns->fail = fail;
    ns->fail_arg = fail_arg;
    /* the queue only carries the bookkeeping the producer reads */
    memset(q, 0, sizeof *q);
    q->remote = ns;
    q->canceled = canceled;
    q->batch_bytes = batch_bytes; /* the consumer's standard size, so it can recycle what arrives */
    /* A remote consumer is always treated as waiting: partial batches go to it once they
     * have lingered flush_linger_us, so a trickling source is never stuck in a partial batch. */
    atomic_init(&q->consumer_waiting, 1);
    atomic_init(&q->blocked_ns, 0);
    return 0;
}

int sage__net_connect(sage__queue *q, const char *path, const char *token, int64_t job_id, int from_task,
                      size_t window, size_t batch_bytes, int cancel_fd, _Atomic int *canceled, sage__net_fail_fn fail, void *fail_arg,
                      char *err, size_t err_len)
{
    int fd;
    int rc = sage__unix_connect(path, &fd, err, err_len);
    if (rc != 0)
        return rc;
    return net_attach(q, fd, path, token, job_id, from_task, window, batch_bytes, cancel_fd, canceled, fail, fail_arg,
                      err, err_len);
}

int sage__net_connect_tcp(sage__queue *q, const char *addr, const char *token, int64_t job_id, int from_task,
                          size_t window, size_t batch_bytes, int cancel_fd, _Atomic int *canceled,
                          sage__net_fail_fn fail, void *fail_arg, char *err, size_t err_len)
{
    char host[256];
    int port, fd;
    if (sage__parse_hostport(addr, host, sizeof host, &port, 0) != 0 || port == 0) {
        snprintf(err, err_len, "bad data-plane address \"%s\" (expected HOST:PORT)", addr);
        return SAGE_EINVAL;
    }
    int rc = sage__tcp_connect(host, port, &fd, err, err_len); /* sets TCP_NODELAY */
    if (rc != 0)
        return rc;
    return net_attach(q, fd, addr, token, job_id, from_task, window, batch_bytes, cancel_fd, canceled, fail, fail_arg,
                      err, err_len);
}

/* Take CREDIT frames off the socket; block until some arrive when `block`. */
static int read_credit(sage__queue *q, int block)
{
    sage__netsend *ns = q->remote;
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
        if (p[1].revents || atomic_load_explicit(q->canceled, memory_order_relaxed))
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

static int push_failed(sage__queue *q, int rc)
{
    sage__netsend *ns = q->remote;
    if ((rc == SAGE_EIO || rc == SAGE_EPROTO) && ns->fail && !atomic_load(q->canceled))
        ns->fail(ns->fail_arg, rc == SAGE_EIO ? "the connection to a consumer broke (it ended or was killed)"
                                              : "a consumer sent a malformed credit frame");
    return rc;
}

int sage__net_push(sage__queue *q, sage__batch *b, sage__batch **fresh)
{
    sage__netsend *ns = q->remote;
    if (fresh)
        *fresh = NULL;
    if (atomic_load_explicit(q->canceled, memory_order_relaxed)) {
        free(b);
        return SAGE_ECANCELED;
    }
    unsigned char hdr[SAGE__FRAME_HDR + 8];
    uint32_t in_be = htonl(b->input), n_be = htonl(b->n);
    if (b->eos) {
        sage__frame_header(hdr, SAGE__MSG_EOS, 4);
        memcpy(hdr + SAGE__FRAME_HDR, &in_be, 4);
        struct iovec iov[1] = {{hdr, SAGE__FRAME_HDR + 4}};
        free(b);
        int erc = send_all(ns->fd, iov, 1, &q->blocked_ns, ns->cancel_fd);
        return erc ? push_failed(q, erc) : 0;
    }
    size_t plen = 8 + b->used;
    int rc;
    if (ns->credit < (int64_t)plen && ns->outstanding > 0) {
        uint64_t t0 = sage_now_ns();
        while (ns->credit < (int64_t)plen && ns->outstanding > 0)
            if ((rc = read_credit(q, 1)) != 0) {
                free(b);
                return push_failed(q, rc);
            }
        atomic_fetch_add_explicit(&q->blocked_ns, sage_now_ns() - t0, memory_order_relaxed);
    } else if (ns->credit < (int64_t)(2 * plen) && (rc = read_credit(q, 0)) != 0) {
        /* credit is read only when it runs low: no syscall per batch while the window is open */
        free(b);
        return push_failed(q, rc);
    }
    sage__frame_header(hdr, SAGE__MSG_DATA, (uint32_t)plen);
    memcpy(hdr + SAGE__FRAME_HDR, &in_be, 4);
    memcpy(hdr + SAGE__FRAME_HDR + 4, &n_be, 4);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {b->data, b->used}};
    rc = send_all(ns->fd, iov, 2, &q->blocked_ns, ns->cancel_fd);
    ns->credit -= (int64_t)plen;
    ns->outstanding += plen;
    if (rc != 0) {
        free(b);
        return push_failed(q, rc);
    }
    b->n = 0;
    b->used = 0;
    if (fresh && b->cap == q->batch_bytes)
        *fresh = b; /* the bytes are in the kernel: reuse the batch at once */
    else
        free(b);
    return 0;
}

void sage__net_close(sage__queue *q)
{
    if (!q->remote)
        return;
    close(q->remote->fd);
    free(q->remote);
    q->remote = NULL;
}

/* ---- receiving end ---- */

typedef struct conn_thread {
    pthread_t th;
    int fd;
    int started;
    struct sage__netrecv *r;
} conn_thread;

struct sage__netrecv {
    int listen_fd;
    int expected;
    sage__queue *q;
    char token[SAGE__TOKEN_HEX + 1];
    sage__net_fail_fn fail;
    void *arg;
    pthread_t acceptor;
    conn_thread *conns;
    int nconns;
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

static void *conn_main(void *arg)
{
    conn_thread *ct = arg;
    sage__netrecv *r = ct->r;
    char why[256];
    sage__frame f;
    unsigned char *payload = NULL;
    int rc = sage__frame_recv(ct->fd, SAGE__CONTROL_FRAME_MAX, &f, &payload, why, sizeof why);
    json_error_t jerr;
    json_t *hello = rc == 0 && f.type == SAGE__MSG_HELLO ? json_loads((const char *)payload, 0, &jerr) : NULL;
    const char *tok = json_string_value(json_object_get(hello, "token"));
    int ok = tok && sage__token_equal(tok, r->token);
    json_decref(hello);
    free(payload);
    if (!ok) {
        r->fail(r->arg, rc != 0 ? why : "a data connection did not authenticate");
        close(ct->fd);
        return NULL;
    }
    uint64_t owed = 0; /* credit earned but not yet sent back (the producer's buffer was full) */
    for (;;) {
        /* Before waiting for the next frame, make sure owed credit goes out: the
         * producer may be waiting for exactly that, and it reads credit only then.
         * Credit is never dropped: it is coalesced and sent when the socket takes it. */
        while (owed > 0) {
            struct pollfd p = {.fd = ct->fd, .events = POLLIN | POLLOUT};
            while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
            if (p.revents & POLLOUT)
                send_credit(ct->fd, &owed);
            if (p.revents & (POLLIN | POLLHUP | POLLERR))
                break; /* a frame (or the end) is waiting: read it first */
        }
        unsigned char hdr[SAGE__FRAME_HDR];
        rc = read_all(ct->fd, hdr, sizeof hdr);
        if (rc == 1)
            break; /* the producer closed after its end-of-stream */
        if (rc != 0) {
            if (!atomic_load(r->q->canceled))
                r->fail(r->arg, "a data connection broke in the middle of a frame");
            break;
        }
        rc = sage__frame_header_decode(hdr, SAGE__DATA_FRAME_MAX, &f, why, sizeof why);
        if (rc < 0 || (f.type != SAGE__MSG_DATA && f.type != SAGE__MSG_EOS) || f.len < 4 ||
            (f.type == SAGE__MSG_DATA && f.len < 8)) {
            r->fail(r->arg, rc < 0 ? why : "unexpected frame on a data connection");
            break;
        }
        uint32_t be[2];
        if (read_all(ct->fd, be, f.type == SAGE__MSG_EOS ? 4 : 8) != 0) {
            r->fail(r->arg, "a data connection broke in the middle of a frame");
            break;
        }
        size_t used = f.type == SAGE__MSG_DATA ? f.len - 8 : 0;
        /* reuse a batch the consumer finished with: no allocation in steady state */
        sage__batch *b = used <= r->q->batch_bytes && f.type == SAGE__MSG_DATA ? sage__queue_take_free(r->q) : NULL;
        if (!b)
            b = sage__batch_new(used > r->q->batch_bytes ? used : r->q->batch_bytes);
        if (!b) {
            r->fail(r->arg, "out of memory receiving a batch");
            break;
        }
        b->input = ntohl(be[0]);
        b->n = 0;
        b->used = 0;
        if (f.type == SAGE__MSG_EOS) {
            b->eos = 1;
        } else {
            b->n = ntohl(be[1]);
            b->used = used;
            if (read_all(ct->fd, b->data, used) != 0) {
                free(b);
                r->fail(r->arg, "a data connection broke in the middle of a frame");
                break;
            }
            /* every record must lie inside the frame */
            size_t off = 0;
            uint32_t i;
            for (i = 0; i < b->n && off + SAGE__REC_HDR <= used; i++) {
                uint32_t len;
                memcpy(&len, b->data + off, 4);
                if (sage__rec_size(len) > used - off)
                    break;
                off += sage__rec_size(len);
            }
            if (i != b->n || off != used) {
                free(b);
                r->fail(r->arg, "a data frame's records do not match its length");
                break;
            }
        }
        int eos = b->eos;
        sage__batch *fresh = NULL;
        if (sage__queue_push(r->q, b, &fresh) != 0)
            break; /* canceled */
        free(fresh);
        if (eos)
            break; /* nothing follows an end-of-stream (the producer may close before reading its credit) */
        if (!eos) {
            owed += f.len;
            send_credit(ct->fd, &owed);
        }
    }
    close(ct->fd);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    sage__netrecv *r = arg;
    for (int i = 0; i < r->expected; i++) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            if (!atomic_load(r->q->canceled))
                r->fail(r->arg, "accepting a data connection failed");
            break;
        }
        /* TCP: credits are tiny frames that must not wait for Nagle (fails harmlessly on Unix sockets) */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_thread *ct = &r->conns[i];
        ct->fd = fd;
        ct->r = r;
        if (pthread_create(&ct->th, NULL, conn_main, ct) != 0) {
            close(fd);
            r->fail(r->arg, "starting a data connection thread failed");
            break;
        }
        ct->started = 1;
        r->nconns = i + 1;
    }
    return NULL;
}

int sage__net_serve(int listen_fd, int expected, sage__queue *q, const char *token, sage__net_fail_fn fail, void *arg,
                    sage__netrecv **out)
{
    sage__netrecv *r = calloc(1, sizeof *r);
    if (!r)
        return SAGE_ENOMEM;
    r->conns = calloc((size_t)(expected > 0 ? expected : 1), sizeof *r->conns);
    if (!r->conns) {
        free(r);
        return SAGE_ENOMEM;
    }
    r->listen_fd = listen_fd;
    r->expected = expected;
    r->q = q;
    snprintf(r->token, sizeof r->token, "%s", token);
    r->fail = fail;
    r->arg = arg;
    if (pthread_create(&r->acceptor, NULL, acceptor_main, r) != 0) {
        free(r->conns);
        free(r);
        return SAGE_ESYS;
    }
    *out = r;
    return 0;
}

void sage__net_serve_join(sage__netrecv *r)
{
    if (!r)
        return;
    pthread_join(r->acceptor, NULL);
    for (int i = 0; i < r->nconns; i++)
        if (r->conns[i].started)
            pthread_join(r->conns[i].th, NULL);
    close(r->listen_fd);
    free(r->conns);
    free(r);
}
