/* tests/unit/test_netchan.c - data connections: what the receiver accepts and refuses, and sender to receiver. */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "net/frame.h"
#include "net/sock.h"
#include "runtime/netchan.h"
#include "sage/context.h"
#include "sage/error.h"

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

typedef struct bytes {
    unsigned char b[8192];
    size_t n;
} bytes;

static void put(bytes *o, const void *p, size_t n)
{
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void frame(bytes *o, uint16_t type, const void *payload, uint32_t len)
{
    unsigned char hdr[SAGE__FRAME_HDR];
    sage__frame_header(hdr, type, len);
    put(o, hdr, sizeof hdr);
    put(o, payload, len);
}

static void hello(bytes *o, const char *tok)
{
    char h[256];
    int n = snprintf(h, sizeof h, "{\"token\":\"%s\",\"role\":\"peer\",\"job_id\":1,\"from_task\":0}", tok);
    frame(o, SAGE__MSG_HELLO, h, (uint32_t)n);
}

/* A DATA frame of n records of the given texts; announce: the record count written in the frame. */
static void data(bytes *o, const char *const *recs, uint32_t n, uint32_t announce)
{
    unsigned char p[4096];
    size_t len = 8;
    uint32_t be[2] = {htonl(0), htonl(announce)};
    memcpy(p, be, 8);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)strlen(recs[i]), hdr[2] = {l, 0};
        memcpy(p + len, hdr, 8);
        memset(p + len + 8, 0, sage__rec_size(l) - 8);
        memcpy(p + len + 8, recs[i], l);
        len += sage__rec_size(l);
    }
    frame(o, SAGE__MSG_DATA, p, (uint32_t)len);
}

/* a feedback loop's marker: input 0, marker m, round r (16 bytes, big-endian) */
static void loop_mark(bytes *o, uint32_t m, uint64_t r, uint32_t len)
{
    uint32_t p[4] = {htonl(0), htonl(m), htonl((uint32_t)(r >> 32)), htonl((uint32_t)r)};
    frame(o, SAGE__MSG_LOOP, p, len);
}

static void eos(bytes *o)
{
    uint32_t in = htonl(0);
    frame(o, SAGE__MSG_EOS, &in, 4);
}

typedef struct result {
    char why[256];
    int failures;
    int batches, records, eos;
    int probes, ended; /* loop markers: probes (their rounds summed in rounds), inputs-ended */
    uint64_t rounds;
} result;

static void on_fail(void *arg, const char *why)
{
    result *r = arg;
    if (r->failures++ == 0)
        snprintf(r->why, sizeof r->why, "%s", why);
}

/* A receiver on a fresh Unix listener, expecting one producer. */
typedef struct rx {
    char dir[64], path[96];
    _Atomic int canceled;
    sage__queue q;
    sage__netrecv *recv;
    result r;
} rx;

static void rx_start(rx *x)
{
    memset(x, 0, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "/tmp/sage-test-netchan-XXXXXX");
    CHECK(mkdtemp(x->dir) != NULL);
    snprintf(x->path, sizeof x->path, "%s/s", x->dir);
    char err[256];
    int lfd;
    CHECK_INT(sage__unix_listen(x->path, 64, &lfd, err, sizeof err), 0);
    CHECK_INT(sage__queue_init(&x->q, 1 << 20, 4096, 1, &x->canceled), 0);
    CHECK_INT(sage__net_serve(lfd, 1, &x->q, token, -1, on_fail, &x->r, &x->recv), 0);
}

static int rx_connect(rx *x)
{
    char err[256];
    int fd = -1;
    CHECK_INT(sage__unix_connect(x->path, &fd, err, sizeof err), 0);
    return fd;
}

/* Join the receiver, count what reached the queue, clean up. */
static void rx_finish(rx *x)
{
    sage__net_serve_join(x->recv);
    sage__batch *b;
    while (sage__queue_pop(&x->q, 1, NULL, &b) == 0 && b) {
        if (b->mark == SAGE__MARK_PROBE) {
            x->r.probes++;
            x->r.rounds += b->epoch;
        } else if (b->mark == SAGE__MARK_INPUTS_ENDED) {
            x->r.ended++;
        } else if (b->mark) {
            x->r.eos++;
        } else {
            x->r.batches++;
            x->r.records += (int)b->n;
        }
        free(b);
    }
    sage__queue_destroy(&x->q);
    unlink(x->path);
    rmdir(x->dir);
}

static void send_bytes(int fd, const bytes *in)
{
    CHECK_INT(write(fd, in->b, in->n), (long long)in->n);
    shutdown(fd, SHUT_WR);
}

/* Run the receiver over the bytes one authenticated producer sends. */
static void receive(const bytes *in, result *r)
{
    rx x;
    rx_start(&x);
    int fd = rx_connect(&x);
    send_bytes(fd, in);
    rx_finish(&x);
    close(fd);
    *r = x.r;
}

/* The peer closed our end (EOF or reset) within ms: the receiver let it go. */
static int closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return 0;
    char c;
    return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void accepts_batches_and_eos(void)
{
    bytes in = {0};
    hello(&in, token);
    const char *recs[] = {"alpha", "beta", "a record of twenty-seven!!!"};
    data(&in, recs, 3, 3);
    data(&in, recs, 1, 1);
    eos(&in);
    result r;
    receive(&in, &r);
    CHECK_INT(r.failures, 0);
    CHECK_INT(r.batches, 2);
    CHECK_INT(r.records, 4);
    CHECK_INT(r.eos, 1);
}

/* A feedback loop's markers cross a data connection as they were sent: probes with their round. */
static void accepts_loop_markers(void)
{
    bytes in = {0};
    hello(&in, token);
    loop_mark(&in, SAGE__MARK_INPUTS_ENDED, 0, 16);
    loop_mark(&in, SAGE__MARK_PROBE, 1, 16);
    loop_mark(&in, SAGE__MARK_PROBE, (uint64_t)1 << 40, 16);
    eos(&in);
    result r;
    receive(&in, &r);
    CHECK_INT(r.failures, 0);
    CHECK_INT(r.ended, 1);
    CHECK_INT(r.probes, 2);
    CHECK(r.rounds == 1 + ((uint64_t)1 << 40));
    CHECK_INT(r.eos, 1);
}

/* After authentication: a broken stream fails the job, naming what was wrong. */
typedef struct bad_case {
    const char *name;
    void (*build)(bytes *o);
    const char *why;
} bad_case;

static void wrong_type(bytes *o)
{
    hello(o, token);
    frame(o, SAGE__MSG_REQUEST, "{}", 2);
}
static void count_mismatch(bytes *o)
{
    hello(o, token);
    const char *recs[] = {"abc"};
    data(o, recs, 1, 3);
}
static void record_past_frame(bytes *o)
{
    hello(o, token);
    uint32_t p[4] = {htonl(0), htonl(1), 1000, 0}; /* one record of 1000 bytes in an 8-byte body */
    frame(o, SAGE__MSG_DATA, p, sizeof p);
}
static void short_data(bytes *o)
{
    hello(o, token);
    frame(o, SAGE__MSG_DATA, "\0\0\0", 3);
}
static void truncated(bytes *o)
{
    hello(o, token);
    const char *recs[] = {"abcdefgh"};
    data(o, recs, 1, 1);
    o->n -= 3;
}
static void bad_magic(bytes *o)
{
    hello(o, token);
    eos(o);
    o->b[o->n - 20 + 3] = 'X';
}

static void loop_unknown_marker(bytes *o)
{
    hello(o, token);
    loop_mark(o, SAGE__MARK_EOS, 1, 16);
}
static void loop_short(bytes *o)
{
    hello(o, token);
    loop_mark(o, SAGE__MARK_PROBE, 1, 12);
}

static const bad_case bad_cases[] = {
    {"loop marker unknown", loop_unknown_marker, "a loop frame with an unknown marker"},
    {"loop frame short", loop_short, "unexpected frame on a data connection"},
    {"wrong type", wrong_type, "unexpected frame on a data connection"},
    {"count mismatch", count_mismatch, "a data frame's records do not match its length"},
    {"record past its frame", record_past_frame, "a data frame's records do not match its length"},
    {"short data", short_data, "unexpected frame on a data connection"},
    {"truncated", truncated, "a data connection broke in the middle of a frame"},
    {"bad magic", bad_magic, "magic"},
};

static void refuses_bad_streams(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        bytes in = {0};
        bad_cases[i].build(&in);
        result r;
        receive(&in, &r);
        if (r.failures != 1 || !strstr(r.why, bad_cases[i].why))
            fprintf(stderr, "  case \"%s\": %d failures, \"%s\"\n", bad_cases[i].name, r.failures, r.why);
        CHECK_INT(r.failures, 1);
        CHECK_CONTAINS(r.why, bad_cases[i].why);
        CHECK_INT(r.records, 0);
    }
}

/* Before authentication: strangers are closed and do not count; the real producer still gets through. */
static void good_producer(rx *x)
{
    bytes in = {0};
    hello(&in, token);
    const char *recs[] = {"real"};
    data(&in, recs, 1, 1);
    eos(&in);
    int fd = rx_connect(x);
    send_bytes(fd, &in);
    rx_finish(x);
    close(fd);
    CHECK_INT(x->r.failures, 0);
    CHECK_INT(x->r.records, 1);
    CHECK_INT(x->r.eos, 1);
}

static void strangers_refused(void)
{
    static const char http[] = "GET / HTTP/1.1\r\n\r\n";
    /* a header announcing a DATA frame first, with its 16 bytes and nothing more */
    static const unsigned char data_first[16] = {'S', 'A', 'G', 'E', 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
        rx x;
        rx_start(&x);
        int bad = rx_connect(&x);
        bytes in = {0};
        if (k == 0)
            hello(&in, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"); /* wrong token */
        else if (k == 1)
            frame(&in, SAGE__MSG_HELLO, "not json", 8);
        else if (k == 2)
            memcpy(in.b, http, in.n = sizeof http - 1);
        else
            memcpy(in.b, data_first, in.n = sizeof data_first);
        CHECK_INT(write(bad, in.b, in.n), (long long)in.n);
        CHECK(closed_within(bad, 5000)); /* refused at once, without waiting for the good producer */
        close(bad);
        good_producer(&x);
    }
}

static void silent_connection_times_out(void)
{
    rx x;
    rx_start(&x);
    int silent = rx_connect(&x);
    uint64_t t0 = sage_now_ns();
    CHECK(closed_within(silent, SAGE__NET_HANDSHAKE_MS + 3000));
    uint64_t waited_ms = (sage_now_ns() - t0) / 1000000u;
    CHECK(waited_ms + 100 >= SAGE__NET_HANDSHAKE_MS); /* not before its handshake time */
    close(silent);
    good_producer(&x);
}

/* More producers than the strangers' allowance, all connected (HELLO and end-of-stream sent) before the
 * receiver reads any: every one of them is admitted. */
static void many_producers_at_once(void)
{
    enum { N = 3 * SAGE__NET_PENDING_MAX };
    char dir[] = "/tmp/sage-test-netchan-XXXXXX", path[96], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/s", dir);
    int lfd;
    CHECK_INT(sage__unix_listen(path, 4 * N, &lfd, err, sizeof err), 0);
    int fds[N];
    for (int i = 0; i < N; i++) {
        CHECK_INT(sage__unix_connect(path, &fds[i], err, sizeof err), 0);
        bytes in = {0};
        hello(&in, token);
        eos(&in);
        send_bytes(fds[i], &in);
    }
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 1 << 20, 4096, N, &canceled), 0);
    result r = {0};
    sage__netrecv *recv = NULL;
    CHECK_INT(sage__net_serve(lfd, N, &q, token, -1, on_fail, &r, &recv), 0);
    sage__net_serve_join(recv);
    int eos_seen = 0;
    sage__batch *b;
    while (sage__queue_pop(&q, 1, NULL, &b) == 0 && b) {
        eos_seen += b->mark != 0;
        free(b);
    }
    CHECK_INT(r.failures, 0);
    CHECK_INT(eos_seen, N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    sage__queue_destroy(&q);
    unlink(path);
    rmdir(dir);
}

static void flood_then_producer(void)
{
    rx x;
    rx_start(&x);
    int fds[SAGE__NET_PENDING_MAX + 8];
    int n = (int)(sizeof fds / sizeof fds[0]);
    for (int i = 0; i < n; i++)
        fds[i] = rx_connect(&x);        /* silent, more than may wait at once */
    CHECK(closed_within(fds[0], 5000)); /* the oldest made room */
    good_producer(&x);
    for (int i = 0; i < n; i++) {
        CHECK(closed_within(fds[i], 5000)); /* every stranger is closed by the end */
        close(fds[i]);
    }
}

static int batch_check_table_ok(const unsigned char *d, size_t used, uint32_t n)
{
    return sage__batch_check(d, used, n);
}

static void batch_check(void)
{
    unsigned char d[64] = {0};
    uint32_t h[2] = {5, 0};
    memcpy(d, h, 8); /* one record of 5 bytes: 8 + 8 */
    CHECK_INT(batch_check_table_ok(d, 16, 1), 0);
    CHECK_INT(batch_check_table_ok(d, 16, 2), SAGE_EPROTO);
    CHECK_INT(batch_check_table_ok(d, 24, 1), SAGE_EPROTO); /* bytes left over */
    CHECK_INT(batch_check_table_ok(d, 15, 1), SAGE_EPROTO);
    CHECK_INT(batch_check_table_ok(d, 0, 0), 0);
    h[0] = 0xffffffffu;
    memcpy(d, h, 8);
    CHECK_INT(batch_check_table_ok(d, 16, 1), SAGE_EPROTO);
}

/* ---- a real sender and receiver over a Unix socket, with a window smaller than the data ---- */


static void sender_to_receiver(void)
{
    char dir[] = "/tmp/sage-test-netchan-XXXXXX", path[64], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/s", dir);
    int lfd;
    CHECK_INT(sage__unix_listen(path, 8, &lfd, err, sizeof err), 0);
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 8192, 1024, 1, &canceled), 0);
    result r = {0};
    sage__netrecv *recv = NULL;
    CHECK_INT(sage__net_serve(lfd, 1, &q, token, -1, on_fail, &r, &recv), 0);
    int cancel_fd = eventfd(0, EFD_CLOEXEC);
    sage__net_peer peer = {.token = token,
                           .job_id = 1,
                           .from_task = 0,
                           .window = 2048,
                           .batch_bytes = 1024,
                           .cancel_fd = cancel_fd,
                           .canceled = &canceled,
                           .fail = on_fail,
                           .fail_arg = &r};
    sage__chan *ch = NULL;
    CHECK_INT(sage__net_connect(path, &peer, &ch, err, sizeof err), 0);
    /* 200 batches of 10 records (about 100 KB) through a 2 KiB window: credit must come back */
    long long sum = 0, got = 0;
    int received = 0;
    for (int k = 0; k < 200; k++) {
        sage__batch *b = sage__batch_new(1024);
        b->input = 0;
        b->n = 0;
        b->used = 0;
        for (int i = 0; i < 10; i++) {
            int64_t v = k * 10 + i;
            uint32_t hdr[2] = {8, 0};
            memcpy(b->data + b->used, hdr, 8);
            memcpy(b->data + b->used + 8, &v, 8);
            b->used += 16;
            b->n++;
            sum += v;
        }
        sage__batch *fresh = NULL;
        CHECK_INT(sage__chan_push(ch, b, &fresh), 0);
        free(fresh);
        sage__batch *in;
        while (sage__queue_pop(&q, 1, NULL, &in) == 0 && in) { /* the consumer keeps up */
            for (uint32_t i = 0; i < in->n; i++) {
                int64_t v;
                memcpy(&v, in->data + i * 16 + 8, 8);
                got += v;
                received++;
            }
            free(in);
        }
    }
    sage__batch *e = sage__batch_new(0);
    e->mark = 1;
    e->input = 0;
    CHECK_INT(sage__chan_push(ch, e, NULL), 0);
    int eos_seen = 0;
    while (!eos_seen) {
        sage__batch *in;
        CHECK_INT(sage__queue_pop(&q, 0, NULL, &in), 0);
        if (in->mark)
            eos_seen = 1;
        for (uint32_t i = 0; !in->mark && i < in->n; i++) {
            int64_t v;
            memcpy(&v, in->data + i * 16 + 8, 8);
            got += v;
            received++;
        }
        free(in);
    }
    sage__net_serve_join(recv);
    ch->ops->destroy(ch);
    CHECK_INT(r.failures, 0);
    CHECK_INT(received, 2000);
    CHECK_INT(got, sum);
    sage__queue_destroy(&q);
    close(cancel_fd);
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(accepts_batches_and_eos);
    RUN(accepts_loop_markers);
    RUN(refuses_bad_streams);
    RUN(strangers_refused);
    RUN(silent_connection_times_out);
    RUN(flood_then_producer);
    RUN(many_producers_at_once);
    RUN(batch_check);
    RUN(sender_to_receiver);
    return CHECK_DONE();
}
