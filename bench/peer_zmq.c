/* bench/peer_zmq.c - the peer for (h) in the same run: ZeroMQ PUSH/PULL between two processes, over ipc and tcp.
 *
 * What a user who would not pick SAGE writes to move records between two
 * processes: a PUSH socket in one, a PULL socket in the other (libzmq, the
 * Debian package libzmq3-dev; scripts/deps.sh --bench installs it). Each
 * scenario of (h) is run one record per message and with the records packed
 * into 64 KiB messages, over ipc (a Unix socket) and over tcp (loopback). The
 * receiver checks the count and the sum of the record numbers, as SAGE's runs
 * are checked, and times the span from its first message to its last: the
 * channel's steady state, as (h) does for SAGE's sink. Without libzmq the rows
 * say they were skipped. */
#include <stdio.h>

#include "bench.h"

#ifndef SAGE_BENCH_ZMQ

int peer_zmq(int arg)
{
    (void)arg;
    bench_row r = bench_row_new("peer.zmq", "ZeroMQ peer", "rec/s");
    r.mark = MARK_SKIP;
    snprintf(r.note, sizeof r.note, "skipped: built without libzmq (scripts/deps.sh --bench installs libzmq3-dev)");
    bench_emit(&r);
    return 0;
}

#else

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MSG_BYTES 65536

typedef struct zarg {
    int tcp;    /* 0: ipc */
    size_t rec; /* record size: 8 or 4096 */
    int batch;  /* 1: records packed into 64 KiB messages */
} zarg;

/* What the receiver reports to the sender's process. */
typedef struct zres {
    int64_t span_ns;
    uint64_t count, sum;
    char endpoint[128]; /* where it listens (written first, before any record) */
    char err[128];
} zres;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int write_all(int fd, const void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, (const char *)p + off, n - off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    for (size_t off = 0; off < n;) {
        ssize_t r = read(fd, (char *)p + off, n - off);
        if (r <= 0)
            return -1;
        off += (size_t)r;
    }
    return 0;
}

/* The receiving process: bind, say where, take n records, report. */
static void receiver(const zarg *a, uint64_t n, int fd, const char *ipc_path)
{
    zres res = {0};
    /* it dies with the sender, and holds none of the harness's descriptors (their ends must close with it) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int f = 3; f < 1024; f++)
        if (f != fd)
            close(f);
    void *ctx = zmq_ctx_new(), *s = ctx ? zmq_socket(ctx, ZMQ_PULL) : NULL;
    int wait_ms = 10000; /* bounded: a sender that stopped is an error, not a hang */
    if (s)
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &wait_ms, sizeof wait_ms);
    char want[160];
    if (a->tcp)
        snprintf(want, sizeof want, "tcp://127.0.0.1:*");
    else
        snprintf(want, sizeof want, "ipc://%s", ipc_path);
    size_t el = sizeof res.endpoint;
    if (!s || zmq_bind(s, want) != 0 || zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, res.endpoint, &el) != 0) {
        snprintf(res.err, sizeof res.err, "PULL socket on %.60s: %s", want, zmq_strerror(zmq_errno()));
        (void)!write_all(fd, &res, sizeof res);
        _exit(1);
    }
    if (write_all(fd, res.endpoint, sizeof res.endpoint) != 0)
        _exit(1);
    unsigned char *buf = malloc(MSG_BYTES);
    int64_t first = 0, last = 0;
    while (buf && res.count < n) {
        int got = zmq_recv(s, buf, MSG_BYTES, 0);
        if (got < 0) {
            snprintf(res.err, sizeof res.err, "zmq_recv: %s%s", zmq_strerror(zmq_errno()),
                     zmq_errno() == EAGAIN ? " (nothing for 10 s)" : "");
            break;
        }
        last = now_ns();
        if (!first)
            first = last;
        for (size_t off = 0; off + a->rec <= (size_t)got; off += a->rec) {
            uint64_t v;
            memcpy(&v, buf + off, sizeof v);
            res.sum += v;
            res.count++;
        }
    }
    res.span_ns = last - first;
    free(buf);
    zmq_close(s);
    zmq_ctx_term(ctx);
    (void)!write_all(fd, &res, sizeof res);
    _exit(0);
}

static int zmq_run(uint64_t n, void *arg, bench_run *out)
{
    const zarg *a = arg;
    static unsigned serial;
    char ipc_path[128];
    snprintf(ipc_path, sizeof ipc_path, "/tmp/sage-bench-zmq-%d-%u", (int)getpid(), serial++);
    int p[2];
    if (pipe(p) != 0)
        return bench_fail("pipe failed");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return bench_fail("fork failed");
    if (pid == 0) {
        close(p[0]);
        receiver(a, n, p[1], ipc_path);
    }
    close(p[1]);
    char endpoint[128];
    int rc = -1;
    void *ctx = NULL, *s = NULL;
    unsigned char *msg = calloc(1, MSG_BYTES);
    if (!msg || read_all(p[0], endpoint, sizeof endpoint) != 0) {
        bench_fail("the ZeroMQ receiver did not start");
        goto done;
    }
    ctx = zmq_ctx_new();
    s = ctx ? zmq_socket(ctx, ZMQ_PUSH) : NULL;
    int wait_ms = 10000, linger_ms = 10000;
    if (s) {
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &wait_ms, sizeof wait_ms);
        zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    }
    if (!s || zmq_connect(s, endpoint) != 0) {
        bench_fail("PUSH socket to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto done;
    }
    bench_timer t;
    bench_timer_start(&t);
    size_t per = a->batch ? MSG_BYTES / a->rec : 1, fill = 0;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(msg + fill * a->rec, &i, sizeof i);
        if (++fill == per || i + 1 == n) {
            if (zmq_send(s, msg, fill * a->rec, 0) < 0) {
                bench_fail("zmq_send: %s", zmq_strerror(zmq_errno()));
                goto done;
            }
            fill = 0;
        }
    }
    zres res; /* (the socket stays open until the receiver has everything) */
    if (read_all(p[0], &res, sizeof res) != 0) {
        bench_fail("the ZeroMQ receiver did not report");
        goto done;
    }
    bench_timer_stop(&t, out);
    if (res.err[0] || res.count != n || res.sum != n * (n - 1) / 2) {
        bench_fail("ZeroMQ %s: %s (received %llu of %llu records)", endpoint, res.err[0] ? res.err : "wrong sum",
                   (unsigned long long)res.count, (unsigned long long)n);
        goto done;
    }
    out->wall_s = (double)res.span_ns / 1e9;
    rc = 0;
done:
    if (s)
        zmq_close(s);
    if (ctx)
        zmq_ctx_term(ctx);
    free(msg);
    close(p[0]);
    if (rc != 0)
        kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    unlink(ipc_path);
    return rc;
}

static int one(const char *id, const char *name, int tcp, size_t rec, int batch)
{
    zarg a = {.tcp = tcp, .rec = rec, .batch = batch};
    bench_row r = bench_row_new(id, name, rec == 8 ? "rec/s" : "B/s");
    uint64_t n0 = rec == 8 ? (batch ? 4000000 : 400000) : (batch ? 100000 : 50000);
    if (bench_measure(&r, zmq_run, &a, n0, n0 / 2) < 0)
        return -1;
    char rate[32];
    bench_fmt_rate(rate, sizeof rate, r.value, "rec/s");
    if (rec != 8)
        r.value *= (double)rec;
    snprintf(r.note, sizeof r.note, "%zu B records, %s; %s; %s", rec, batch ? "64 KiB messages" : "1 per message",
             rec == 8 ? "2 processes" : rate, tcp ? "tcp" : "ipc");
    bench_emit(&r);
    return 0;
}

int peer_zmq(int arg)
{
    (void)arg;
    static const struct {
        const char *id, *name;
        int tcp;
        size_t rec;
        int batch;
    } rows[] = {
        {"peer.zmq.h1.ipc", "ZeroMQ ipc, 8 B, 1 per message", 0, 8, 0},
        {"peer.zmq.h1.ipc.batch", "ZeroMQ ipc, 8 B, 64 KiB messages", 0, 8, 1},
        {"peer.zmq.h1.tcp", "ZeroMQ tcp, 8 B, 1 per message", 1, 8, 0},
        {"peer.zmq.h1.tcp.batch", "ZeroMQ tcp, 8 B, 64 KiB messages", 1, 8, 1},
        {"peer.zmq.h2.ipc", "ZeroMQ ipc, 4 KiB, 1 per message", 0, 4096, 0},
        {"peer.zmq.h2.ipc.batch", "ZeroMQ ipc, 4 KiB, 64 KiB messages", 0, 4096, 1},
        {"peer.zmq.h2.tcp", "ZeroMQ tcp, 4 KiB, 1 per message", 1, 4096, 0},
        {"peer.zmq.h2.tcp.batch", "ZeroMQ tcp, 4 KiB, 64 KiB messages", 1, 4096, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (one(rows[i].id, rows[i].name, rows[i].tcp, rows[i].rec, rows[i].batch) < 0)
            return -1;
    return 0;
}

#endif
