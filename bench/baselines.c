/* bench/baselines.c - this machine's limits, measured in the same run: RSS floor, memcpy, SPSC ring, thread wake-up, loopback TCP, Unix socket between processes, COST. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "pipelines.h"

/* Spin politely; every 1024th spin yields the CPU, so that two spinning
 * threads that the scheduler put on one core (a busy shared host) still make
 * progress instead of burning whole time slices. */
static inline void cpu_relax(unsigned *spins)
{
    if ((++*spins & 1023) == 0) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- RSS floor: what an idle forked child of sage-bench already holds ---- */

int limit_rss_floor(int arg)
{
    bench_row r = bench_row_new("limit.rss", "RSS floor (idle child)", "B");
    r.value = bench_peak_rss();
    r.peak_rss = r.value;
    snprintf(r.note, sizeof r.note, "process + libraries, before any work");
    bench_emit(&r);
    return 0;
}

/* ---- memcpy bandwidth: 64 MiB buffers, far beyond the caches ---- */

#define MEMCPY_BYTES ((size_t)64 << 20)

int limit_memcpy(int arg)
{
    unsigned char *src = malloc(MEMCPY_BYTES), *dst = malloc(MEMCPY_BYTES);
    if (!src || !dst) {
        free(src);
        free(dst);
        return bench_fail("memcpy: out of memory");
    }
    memset(src, 0x5a, MEMCPY_BYTES);
    memset(dst, 0, MEMCPY_BYTES); /* fault every page in before timing */
    void *(*volatile copy)(void *, const void *, size_t) = memcpy;
    int reps = g_opts.quick ? 6 : 16;
    double best = 1e30, c0 = bench_cpu_s();
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now_s();
        copy(dst, src, MEMCPY_BYTES);
        double t = bench_now_s() - t0;
        if (t < best)
            best = t;
    }
    volatile unsigned char seen = dst[MEMCPY_BYTES - 1];
    (void)seen;
    bench_row r = bench_row_new("limit.memcpy", "memcpy bandwidth (64 MiB)", "B/s");
    r.value = (double)MEMCPY_BYTES / best;
    r.records = MEMCPY_BYTES;
    r.wall_s = best;
    r.cpu_s = (bench_cpu_s() - c0) / reps;
    r.reps = reps;
    snprintf(r.note, sizeof r.note, "bytes copied per second, best of %d", reps);
    free(src);
    free(dst);
    bench_emit(&r);
    return 0;
}

/* ---- a bare single-producer single-consumer ring between two threads ---- */

#define RING_SLOTS 4096u

typedef struct spsc {
    _Alignas(64) _Atomic uint64_t head; /* items published, written by the producer */
    _Alignas(64) _Atomic uint64_t tail; /* items consumed, written by the consumer */
    _Alignas(64) uint64_t slot[RING_SLOTS];
    uint64_t n, sum;
} spsc;

static void *spsc_consumer(void *arg)
{
    spsc *q = arg;
    uint64_t tail = 0, head = 0, sum = 0;
    unsigned spins = 0;
    while (tail < q->n) {
        if (tail == head) {
            head = atomic_load_explicit(&q->head, memory_order_acquire);
            if (tail == head) {
                cpu_relax(&spins);
                continue;
            }
        }
        sum += q->slot[tail % RING_SLOTS];
        tail++;
        atomic_store_explicit(&q->tail, tail, memory_order_release);
    }
    q->sum = sum;
    return NULL;
}

static int spsc_run(uint64_t n, void *arg, bench_run *out)
{
    spsc *q = aligned_alloc(64, sizeof *q);
    if (!q)
        return bench_fail("spsc: out of memory");
    memset(q, 0, sizeof *q);
    q->n = n;
    pthread_t th;
    bench_timer tm;
    bench_timer_start(&tm);
    if (pthread_create(&th, NULL, spsc_consumer, q) != 0) {
        free(q);
        return bench_fail("spsc: pthread_create failed");
    }
    uint64_t head = 0, tail = 0;
    unsigned spins = 0;
    for (uint64_t i = 0; i < n; i++) {
        while (head - tail == RING_SLOTS) {
            tail = atomic_load_explicit(&q->tail, memory_order_acquire);
            if (head - tail == RING_SLOTS)
                cpu_relax(&spins);
        }
        q->slot[head % RING_SLOTS] = i;
        head++;
        atomic_store_explicit(&q->head, head, memory_order_release);
    }
    pthread_join(th, NULL);
    bench_timer_stop(&tm, out);
    uint64_t want = n % 2 ? (n - 1) / 2 * n : n / 2 * (n - 1);
    int rc = q->sum == want ? 0
                            : bench_fail("spsc: consumer sum %llu, expected %llu", (unsigned long long)q->sum,
                                         (unsigned long long)want);
    free(q);
    return rc;
}

int limit_spsc(int arg)
{
    bench_row r = bench_row_new("limit.spsc", "SPSC ring, 2 threads, 8 B items", "item/s");
    if (bench_measure(&r, spsc_run, NULL, 1000000, 1000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "C11 atomics, %u slots, one release store per item, spin then yield", RING_SLOTS);
    bench_emit(&r);
    return 0;
}

/* ---- thread wake-up latency: a condition-variable ping-pong ----
 * One thread stamps the time and signals a sleeping peer; the peer records
 * how long it took to run, then signals back. This is the floor under any
 * latency of a pipeline whose idle consumer sleeps (scenario (e)). */

typedef struct pingpong {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn; /* 0: the pinger's, 1: the ponger's */
    int rounds;
    double stamp;
    double *lat; /* seconds, one per round */
} pingpong;

static void *ponger(void *arg)
{
    pingpong *p = arg;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->rounds; i++) {
        while (p->turn != 1)
            pthread_cond_wait(&p->cv, &p->mu);
        p->lat[i] = bench_now_s() - p->stamp;
        p->turn = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int limit_wake(int arg)
{
    pingpong p = {.rounds = g_opts.quick ? 20000 : 100000};
    p.lat = calloc((size_t)p.rounds, sizeof *p.lat);
    if (!p.lat)
        return bench_fail("wake: out of memory");
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, ponger, &p) != 0) {
        free(p.lat);
        return bench_fail("wake: pthread_create failed");
    }
    bench_timer tm;
    bench_run run;
    bench_timer_start(&tm);
    pthread_mutex_lock(&p.mu);
    for (int i = 0; i < p.rounds; i++) {
        while (p.turn != 0)
            pthread_cond_wait(&p.cv, &p.mu);
        p.stamp = bench_now_s();
        p.turn = 1;
        pthread_cond_broadcast(&p.cv);
    }
    while (p.turn != 0)
        pthread_cond_wait(&p.cv, &p.mu);
    pthread_mutex_unlock(&p.mu);
    pthread_join(th, NULL);
    bench_timer_stop(&tm, &run);
    qsort(p.lat, (size_t)p.rounds, sizeof *p.lat, cmp_double);
    bench_row r = bench_row_new("limit.wake", "thread wake-up (condvar ping-pong)", "trip/s");
    r.value = p.rounds / run.wall_s;
    r.has_lat = 1;
    r.p50_us = p.lat[p.rounds / 2] * 1e6;
    r.p99_us = p.lat[(size_t)(p.rounds * 0.99)] * 1e6;
    r.p999_us = p.lat[(size_t)(p.rounds * 0.999)] * 1e6;
    r.records = (uint64_t)p.rounds;
    r.wall_s = run.wall_s;
    r.cpu_s = run.cpu_s;
    r.ctxsw = run.ctxsw;
    r.reps = 1;
    snprintf(r.note, sizeof r.note, "signal to running of a sleeping thread; rate is round trips/s");
    free(p.lat);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    bench_emit(&r);
    return 0;
}

/* ---- loopback TCP: a sender and a receiver thread over 127.0.0.1 ---- */

#define TCP_CHUNK ((size_t)64 << 10)

typedef struct tcp_rx {
    int lfd;
    uint64_t got;
    int err;
} tcp_rx;

static void *tcp_receiver(void *arg)
{
    tcp_rx *rx = arg;
    int fd = accept(rx->lfd, NULL, NULL);
    if (fd < 0) {
        rx->err = 1;
        return NULL;
    }
    char *buf = malloc(TCP_CHUNK);
    ssize_t k;
    while (buf && (k = read(fd, buf, TCP_CHUNK)) > 0)
        rx->got += (uint64_t)k;
    free(buf);
    close(fd);
    return NULL;
}

static int tcp_run(uint64_t n, void *arg, bench_run *out)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        if (lfd >= 0)
            close(lfd);
        return bench_fail("tcp: cannot listen on 127.0.0.1");
    }
    tcp_rx rx = {.lfd = lfd};
    pthread_t th;
    char *buf = calloc(1, TCP_CHUNK);
    bench_timer tm;
    bench_timer_start(&tm);
    if (!buf || pthread_create(&th, NULL, tcp_receiver, &rx) != 0) {
        free(buf);
        close(lfd);
        return bench_fail("tcp: cannot start the receiver");
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    for (uint64_t sent = 0; ok && sent < n;) {
        size_t want = n - sent < TCP_CHUNK ? (size_t)(n - sent) : TCP_CHUNK;
        ssize_t k = write(fd, buf, want);
        if (k <= 0)
            ok = 0;
        else
            sent += (uint64_t)k;
    }
    if (fd >= 0)
        close(fd);
    if (!ok)
        shutdown(lfd, SHUT_RDWR); /* unblock accept */
    pthread_join(th, NULL);
    bench_timer_stop(&tm, out);
    close(lfd);
    free(buf);
    if (!ok || rx.err || rx.got != n)
        return bench_fail("tcp: sent %s, received %llu of %llu bytes", ok ? "all" : "failed",
                          (unsigned long long)rx.got, (unsigned long long)n);
    return 0;
}

int limit_tcp(int arg)
{
    bench_row r = bench_row_new("limit.tcp", "loopback TCP, 2 threads", "B/s");
    if (bench_measure(&r, tcp_run, NULL, (uint64_t)64 << 20, (uint64_t)64 << 20) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "%zu KiB writes over 127.0.0.1", TCP_CHUNK >> 10);
    bench_emit(&r);
    return 0;
}

/* ---- Unix socket between two processes: the floor under scenario (h) ----
 * A bare pump over a socketpair(AF_UNIX, SOCK_STREAM): a forked child reads
 * 64 KiB at a time until end of file and writes back the byte count; the
 * parent writes 64 KiB chunks. 64 KiB is the batch a cross-process channel
 * sends with the default configuration (channel_bytes 256 KiB / 4), so the
 * (h) figures can be read as a share of this one. No framing, no credit, no
 * copy into batches, no hand-over to another thread. */

#define UNIX_CHUNK ((size_t)64 << 10)

static int unix_run(uint64_t n, void *arg, bench_run *out)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return bench_fail("unix: socketpair: %s", strerror(errno));
    char *buf = calloc(1, UNIX_CHUNK);
    if (!buf) {
        close(sv[0]);
        close(sv[1]);
        return bench_fail("unix: out of memory");
    }
    bench_timer tm;
    bench_timer_start(&tm);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(buf);
        close(sv[0]);
        close(sv[1]);
        return bench_fail("unix: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(sv[0]);
        uint64_t got = 0;
        ssize_t k;
        while ((k = read(sv[1], buf, UNIX_CHUNK)) > 0 || (k < 0 && errno == EINTR))
            if (k > 0)
                got += (uint64_t)k;
        _exit(write(sv[1], &got, sizeof got) == (ssize_t)sizeof got ? 0 : 1);
    }
    close(sv[1]);
    int ok = 1;
    for (uint64_t sent = 0; ok && sent < n;) {
        size_t want = n - sent < UNIX_CHUNK ? (size_t)(n - sent) : UNIX_CHUNK;
        ssize_t k = write(sv[0], buf, want);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            ok = 0;
        else
            sent += (uint64_t)k;
    }
    shutdown(sv[0], SHUT_WR);
    uint64_t got = 0;
    ssize_t k;
    while ((k = read(sv[0], &got, sizeof got)) < 0 && errno == EINTR)
        ;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    bench_timer_stop(&tm, out);
    close(sv[0]);
    free(buf);
    if (!ok || k != (ssize_t)sizeof got || got != n || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return bench_fail("unix: received %llu of %llu bytes", (unsigned long long)got, (unsigned long long)n);
    return 0;
}

int limit_unix(int arg)
{
    bench_row r = bench_row_new("limit.unix", "Unix socket, 2 processes", "B/s");
    if (bench_measure(&r, unix_run, NULL, (uint64_t)64 << 20, (uint64_t)64 << 20) < 0)
        return -1;
    char rate[32];
    bench_fmt_rate(rate, sizeof rate, r.value / (double)UNIX_CHUNK, "writes/s");
    snprintf(r.note, sizeof r.note, "socketpair, %zu KiB writes (one channel batch each), %s", UNIX_CHUNK >> 10, rate);
    bench_emit(&r);
    return 0;
}

/* ---- COST: the per-record work of (a) in a plain loop, no engine ----
 * The same map, filter and sink bodies as scenario (a), called through
 * function pointers read from volatile storage (so the compiler can neither
 * inline nor drop them) on 8-byte records passed by address and length,
 * with the results checked and kept. */

typedef struct cost_sink_state {
    uint64_t count, sum;
} cost_sink_state;

static int64_t cost_map(const void *rec, size_t len)
{
    int64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    return work_map(v);
}

static int cost_filter(const void *rec, size_t len)
{
    int64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    return work_keep(v);
}

static void cost_sink(cost_sink_state *s, const void *rec, size_t len)
{
    int64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    s->count++;
    s->sum += (uint64_t)v;
}

static int64_t (*volatile cost_map_fp)(const void *, size_t) = cost_map;
static int (*volatile cost_filter_fp)(const void *, size_t) = cost_filter;
static void (*volatile cost_sink_fp)(cost_sink_state *, const void *, size_t) = cost_sink;
static volatile uint64_t cost_result;

static int cost_run(uint64_t n, void *arg, bench_run *out)
{
    int64_t (*map)(const void *, size_t) = cost_map_fp;
    int (*filter)(const void *, size_t) = cost_filter_fp;
    void (*sink)(cost_sink_state *, const void *, size_t) = cost_sink_fp;
    cost_sink_state s = {0, 0};
    bench_timer tm;
    bench_timer_start(&tm);
    for (uint64_t v = 0; v < n; v++) {
        int64_t rec = (int64_t)v;
        int64_t m = map(&rec, sizeof rec);
        if (filter(&m, sizeof m))
            sink(&s, &m, sizeof m);
    }
    bench_timer_stop(&tm, out);
    cost_result = s.sum;
    if (s.count != work_expected_kept(n))
        return bench_fail("COST: kept %llu records, expected %llu", (unsigned long long)s.count,
                          (unsigned long long)work_expected_kept(n));
    return 0;
}

int limit_cost(int arg)
{
    bench_row r = bench_row_new("limit.cost", "COST: plain loop, (a)'s work", "rec/s");
    if (bench_measure(&r, cost_run, NULL, 1000000, 1000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "map, filter, sink via volatile fn pointers, 1 thread");
    bench_emit(&r);
    return 0;
}
