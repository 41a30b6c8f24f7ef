/* bench/slurm3.c - scenario (i): a pipeline across three Slurm hosts, beside the TCP limit between two of them.
 *
 * The hosts are those of tests/integration/test_cluster.sh part 2: a Slurm head on a private bridge and two
 * workers in network namespaces. bench/slurm3.sh builds them (on 10.213.78.0/24, its own names and ports), starts
 * a JobManager on Slurm (data plane tcp) on the bridge address and prints READY; it tears everything down when
 * its stdin closes, so whatever happens here (a failure, a crash, the driver's alarm) the cluster goes with us.
 *
 * The pipeline: generator "src" -> map "inc" -> sink "sink", parallelism 1 each, every operator asking for a
 * custom resource only one host offers (i_src on the head, i_map on the first namespace host, i_sink on the
 * second), so each record crosses two TCP connections between hosts. Record i carries i in its first 8 bytes
 * (the rest of a 1 KiB record is filler), the map adds 1, the sink counts records, sums the values (exactly
 * n(n+1)/2) and checks every length. Each operator reports the inode of its network namespace, so the run
 * checks the placement too. The submitter is `sage-bench --worker-slurm3 HOST:PORT N LEN`; the JobManager
 * starts the workers with the same argv on the three hosts (through srun), as in (h).
 *
 * Beside it, in the same run: one TCP connection from the first namespace host to the second over the same
 * bridge (a sender and a receiver forked here, each entering its namespace with setns), the limit of one hop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sage/sage.h>

#include "bench.h"

/* What one run reports (the submitter prints it, the scenario parses it). */
/* clang-format off: one field per line */
#define IFIELDS(X)                                                                                                     \
    X(count)                                                                                                           \
    X(sum)                                                                                                             \
    X(bad)                                                                                                             \
    X(first_ns)                                                                                                        \
    X(end_ns)                                                                                                          \
    X(t_submit_ns)                                                                                                     \
    X(t_done_ns)                                                                                                       \
    X(src_net)                                                                                                         \
    X(map_net)                                                                                                         \
    X(sink_net)                                                                                                        \
    X(src_cpu)                                                                                                         \
    X(map_cpu)                                                                                                         \
    X(sink_cpu)                                                                                                        \
    X(src_rss)                                                                                                         \
    X(map_rss)                                                                                                         \
    X(sink_rss)
/* clang-format on */

typedef struct ires {
#define IDECL(f) int64_t f;
    IFIELDS(IDECL)
#undef IDECL
} ires;

/* ---------------------------------------------------------------------------
 * The pipeline, as the submitter and every worker declare it.
 * ------------------------------------------------------------------------- */
typedef struct icfg {
    uint64_t n;
    size_t len;
} icfg;

typedef struct istate {
    uint64_t next, count, sum, bad, first_ns;
    unsigned char *buf;
} istate;

static int64_t net_inode(void)
{
    struct stat st;
    return stat("/proc/self/ns/net", &st) == 0 ? (int64_t)st.st_ino : -1;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           (int64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int iop_open(sage_ctx *ctx, void *udata)
{
    const icfg *c = udata;
    istate *s = calloc(1, sizeof *s);
    if (!s || !(s->buf = malloc(c->len))) {
        free(s);
        return SAGE_ENOMEM;
    }
    memset(s->buf, 0xa5, c->len);
    sage_ctx_set_local(ctx, s);
    return sage_ctx_counter_add(ctx, "net", net_inode());
}

static int iop_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    int64_t end = (int64_t)sage_now_ns();
    istate *s = sage_ctx_local(ctx);
    if (!s)
        return 0;
    if (strcmp(sage_ctx_op_name(ctx), "sink") == 0) {
        sage_ctx_counter_add(ctx, "count", (int64_t)s->count);
        sage_ctx_counter_add(ctx, "sum", (int64_t)s->sum);
        sage_ctx_counter_add(ctx, "bad", (int64_t)s->bad);
        sage_ctx_counter_add(ctx, "first_ns", (int64_t)s->first_ns);
        sage_ctx_counter_add(ctx, "end_ns", end);
    }
    sage_ctx_counter_add(ctx, "cpu_ns", cpu_ns());
    sage_ctx_counter_add(ctx, "rss", (int64_t)bench_peak_rss());
    free(s->buf);
    free(s);
    sage_ctx_set_local(ctx, NULL);
    return 0;
}

static int isrc_fn(sage_ctx *ctx, sage_out *out, void *udata)
{
    const icfg *c = udata;
    istate *s = sage_ctx_local(ctx);
    uint64_t v = s->next, end = v + (c->len <= 8 ? 4096 : 1024);
    if (end > c->n)
        end = c->n;
    for (; v < end; v++) {
        memcpy(s->buf, &v, 8);
        int rc = sage_emit(out, s->buf, c->len);
        if (rc < 0)
            return rc;
    }
    s->next = v;
    return v >= c->n ? SAGE_DONE : SAGE_MORE;
}

static int imap_fn(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    const icfg *c = udata;
    istate *s = sage_ctx_local(ctx);
    if (len != c->len)
        return sage_emit(out, rec, len); /* the sink counts it as bad */
    memcpy(s->buf, rec, len);
    uint64_t v;
    memcpy(&v, s->buf, 8);
    v++;
    memcpy(s->buf, &v, 8);
    return sage_emit(out, s->buf, len);
}

static int isink_fn(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    const icfg *c = udata;
    istate *s = sage_ctx_local(ctx);
    if (__builtin_expect(s->count == 0, 0))
        s->first_ns = sage_now_ns();
    s->count++;
    if (__builtin_expect(len != c->len, 0)) {
        s->bad++;
        return 0;
    }
    uint64_t v;
    memcpy(&v, rec, 8);
    s->sum += v;
    return 0;
}

static int64_t counter(sage_env *env, const char *op, const char *name)
{
    sage_metric m;
    return sage_env_metric(env, op, -1, name, &m) == 0 ? m.value : -1;
}

/* argv: sage-bench --worker-slurm3 HOST:PORT N LEN. In the submitter: one job, one RESULT line. In a worker (the
 * same argv): sage_env_submit runs this worker's task and ends the process. */
int bench_slurm3_worker_main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: sage-bench --worker-slurm3 HOST:PORT N LEN\n");
        return 2;
    }
    icfg c = {.n = strtoull(argv[3], NULL, 10), .len = strtoull(argv[4], NULL, 10)};
    if (c.n == 0 || c.len < 8 || c.len > (16u << 20)) {
        fprintf(stderr, "sage-bench --worker-slurm3: bad N or LEN\n");
        return 2;
    }
    /* The three hosts are one machine: Slurm's task/affinity binds each srun step to a CPU of its node, and the
     * three nodes pick the same CPU number, so all three workers would share one core, which no three real hosts
     * do. Unbound here (before any thread starts), they share the machine's cores as the scheduler sees fit. */
    cpu_set_t all;
    CPU_ZERO(&all);
    for (long i = 0, ncpu = sysconf(_SC_NPROCESSORS_ONLN); i < ncpu && i < CPU_SETSIZE; i++)
        CPU_SET((int)i, &all);
    if (sched_setaffinity(0, sizeof all, &all) != 0)
        fprintf(stderr, "sage-bench --worker-slurm3: sched_setaffinity: %s\n", strerror(errno));
    char config[300];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    sage_env *env = sage_env_create("bench_i", config);
    if (!env)
        return 1;
    sage_stream *s = sage_from_generator(env, isrc_fn, &c,
                                         &(sage_op_opts){.name = "src",
                                                         .open = iop_open,
                                                         .close = iop_close,
                                                         .resources = "{\"resources\": {\"i_src\": 1}}"});
    s = sage_map(sage_rebalance(s), imap_fn, &c,
                 &(sage_op_opts){.name = "inc",
                                 .open = iop_open,
                                 .close = iop_close,
                                 .resources = "{\"resources\": {\"i_map\": 1}}"});
    sage_sink(sage_rebalance(s), isink_fn, &c,
              &(sage_op_opts){.name = "sink",
                              .open = iop_open,
                              .close = iop_close,
                              .resources = "{\"resources\": {\"i_sink\": 1}}"});
    ires r;
    memset(&r, 0, sizeof r);
    r.t_submit_ns = (int64_t)sage_now_ns();
    int rc = sage_env_submit(env); /* a worker never comes back from here */
    if (rc == 0)
        rc = sage_env_wait(env, -1);
    r.t_done_ns = (int64_t)sage_now_ns();
    if (rc != 0) {
        printf("FAILED %s: %s\n", sage_err_name(rc), sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }
    r.count = counter(env, "sink", "count");
    r.sum = counter(env, "sink", "sum");
    r.bad = counter(env, "sink", "bad");
    r.first_ns = counter(env, "sink", "first_ns");
    r.end_ns = counter(env, "sink", "end_ns");
    r.src_net = counter(env, "src", "net");
    r.map_net = counter(env, "inc", "net");
    r.sink_net = counter(env, "sink", "net");
    r.src_cpu = counter(env, "src", "cpu_ns");
    r.map_cpu = counter(env, "inc", "cpu_ns");
    r.sink_cpu = counter(env, "sink", "cpu_ns");
    r.src_rss = counter(env, "src", "rss");
    r.map_rss = counter(env, "inc", "rss");
    r.sink_rss = counter(env, "sink", "rss");
    printf("RESULT");
#define IPRINT(f) printf(" " #f "=%lld", (long long)r.f);
    IFIELDS(IPRINT)
#undef IPRINT
    printf("\n");
    sage_env_destroy(env);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Scenario side.
 * ------------------------------------------------------------------------- */

/* One line from fd (without its newline) before the deadline; 0, or -1 at EOF, on an error or past the deadline
 * (*timed_out set then). Reads a byte at a time: the lines are few and short. */
static int read_line(int fd, char *buf, size_t len, double deadline, int *timed_out)
{
    size_t got = 0;
    *timed_out = 0;
    for (;;) {
        int ms = (int)((deadline - bench_now_s()) * 1000);
        if (ms <= 0) {
            *timed_out = 1;
            return -1;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char ch;
        ssize_t k = read(fd, &ch, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        if (ch == '\n') {
            buf[got] = 0;
            return 0;
        }
        if (got + 1 < len)
            buf[got++] = ch;
    }
}

static int wait_pid(pid_t pid, double deadline, int *st)
{
    for (;;) {
        pid_t w = waitpid(pid, st, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -1;
        if (bench_now_s() > deadline)
            return -1;
        usleep(20000);
    }
}

/* What slurm3.sh printed on its READY line. */
typedef struct icluster {
    char jm[64], home[512], ns1[128], ns2[128], ip3[32];
    int64_t net0, net1, net2; /* network namespace inodes: ours (the head's), host 2's, host 3's */
} icluster;

static int field(const char *line, const char *key, char *out, size_t len)
{
    char k[32];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    if (!p)
        return -1;
    p += strlen(k);
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= len)
        return -1;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

static int64_t path_inode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_ino : -1;
}

static int enter_net(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = setns(fd, CLONE_NEWNET);
    close(fd);
    return rc;
}

/* ---- the TCP limit: one connection from host 2 to host 3, for about a second ---- */

static void tcp_receiver(const icluster *c, int out)
{
    alarm(30);
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t l = sizeof a;
    int s = -1;
    int64_t res[2] = {0, 0};
    if (enter_net(c->ns2) != 0 || inet_pton(AF_INET, c->ip3, &a.sin_addr) != 1 ||
        (s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s, 1) != 0 || getsockname(s, (struct sockaddr *)&a, &l) != 0)
        _exit(1);
    int port = ntohs(a.sin_port);
    if (write(out, &port, sizeof port) != sizeof port)
        _exit(1);
    int cfd = accept(s, NULL, NULL);
    if (cfd < 0)
        _exit(1);
    static char buf[1 << 18];
    int64_t t0 = 0;
    for (;;) {
        ssize_t k = read(cfd, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (!t0)
            t0 = (int64_t)sage_now_ns();
        res[0] += k;
    }
    res[1] = (int64_t)sage_now_ns() - t0;
    _exit(write(out, res, sizeof res) == sizeof res ? 0 : 1);
}

static void tcp_sender(const icluster *c, int port, double secs)
{
    alarm(30);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int s = -1;
    if (enter_net(c->ns1) != 0 || inet_pton(AF_INET, c->ip3, &a.sin_addr) != 1 ||
        (s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        _exit(1);
    static char buf[1 << 18];
    memset(buf, 0x5a, sizeof buf);
    double end = bench_now_s() + secs;
    while (bench_now_s() < end) {
        ssize_t k = write(s, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            _exit(1);
    }
    close(s);
    _exit(0);
}

/* One run: bytes per second, or a negative value. */
static double tcp_blast(const icluster *c, double secs)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    fflush(NULL);
    pid_t rx = fork();
    if (rx == 0) {
        close(p[0]);
        tcp_receiver(c, p[1]);
    }
    close(p[1]);
    if (rx < 0) {
        close(p[0]);
        return -1;
    }
    int port = 0, st;
    pid_t tx = -1;
    int64_t res[2] = {0, 0};
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    if (poll(&pf, 1, 10000) == 1 && read(p[0], &port, sizeof port) == sizeof port && port > 0) {
        tx = fork();
        if (tx == 0)
            tcp_sender(c, port, secs);
    }
    if (tx > 0 && poll(&pf, 1, (int)(secs * 1000) + 20000) == 1 && read(p[0], res, sizeof res) != sizeof res)
        res[0] = 0;
    close(p[0]);
    double deadline = bench_now_s() + 10;
    if (tx > 0 && wait_pid(tx, deadline, &st) != 0) {
        kill(tx, SIGKILL);
        waitpid(tx, &st, 0);
    }
    if (wait_pid(rx, deadline, &st) != 0) {
        kill(rx, SIGKILL);
        waitpid(rx, &st, 0);
    }
    return res[0] > 0 && res[1] > 0 ? (double)res[0] * 1e9 / (double)res[1] : -1;
}

/* ---- one job through the three hosts ---- */

static int parse_result(const char *line, ires *r)
{
    memset(r, 0, sizeof *r);
#define IPARSE(f)                                                                                                      \
    {                                                                                                                  \
        const char *p = strstr(line, " " #f "=");                                                                      \
        if (!p)                                                                                                        \
            return -1;                                                                                                 \
        r->f = strtoll(p + sizeof(#f) + 1, NULL, 10);                                                                  \
    }
    IFIELDS(IPARSE)
#undef IPARSE
    return 0;
}

static int submit_one(const icluster *c, uint64_t n, size_t len, ires *r)
{
    char exe[1024], ns[32], ls[32];
    if (bench_self_exe(exe, sizeof exe) != 0)
        return bench_fail("cannot find this program's path");
    snprintf(ns, sizeof ns, "%llu", (unsigned long long)n);
    snprintf(ls, sizeof ls, "%zu", len);
    char *argv[] = {exe, "--worker-slurm3", (char *)c->jm, ns, ls, NULL};
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return bench_fail("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return bench_fail("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(p[1], 1);
        alarm(0);
        setenv("SAGE_HOME", c->home, 1); /* the JobManager's token */
        execv(exe, argv);
        _exit(127);
    }
    close(p[1]);
    char line[1024];
    int got = 0, timed_out = 0, st = 0;
    double deadline = bench_now_s() + 300;
    while (!got && read_line(p[0], line, sizeof line, deadline, &timed_out) == 0) {
        if (strncmp(line, "RESULT ", 7) == 0 && parse_result(line, r) == 0)
            got = 1;
        else if (strncmp(line, "FAILED", 6) == 0) {
            bench_fail("(i) job %s", line);
            break;
        }
    }
    close(p[0]);
    if (timed_out || wait_pid(pid, bench_now_s() + 30, &st) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return bench_fail("(i) the submitter did not finish in time");
    }
    if (!got || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return bench_fail("(i) the submitter ended with status %d and %s", st, got ? "a result" : "no result");
    uint64_t want = n % 2 ? (n + 1) / 2 * n : n / 2 * (n + 1); /* sum of v + 1 for v in 0..n-1 */
    if (r->count != (int64_t)n || (uint64_t)r->sum != want || r->bad != 0)
        return bench_fail("(i) the sink counted %lld records (sum %llu, %lld of a wrong length), expected %llu (sum "
                          "%llu)",
                          (long long)r->count, (unsigned long long)r->sum, (long long)r->bad, (unsigned long long)n,
                          (unsigned long long)want);
    if (r->src_net != c->net0 || r->map_net != c->net1 || r->sink_net != c->net2)
        return bench_fail("(i) placement: src, map, sink ran in network namespaces %lld, %lld, %lld; expected the "
                          "head's %lld, host 2's %lld, host 3's %lld",
                          (long long)r->src_net, (long long)r->map_net, (long long)r->sink_net, (long long)c->net0,
                          (long long)c->net1, (long long)c->net2);
    if (r->first_ns <= 0 || r->end_ns < r->first_ns)
        return bench_fail("(i) the sink's stamps are missing or out of order");
    return 0;
}

typedef struct irun {
    const icluster *c;
    size_t len;
    ires best;
    double best_span;
    uint64_t best_n;
} irun;

/* The timed span is the sink's, from its first record to its close: the steady state across the three hosts,
 * without the job's start (Slurm allocation, srun steps, connections), which the note gives. */
static int i_run(uint64_t n, void *arg, bench_run *out)
{
    irun *a = arg;
    ires r;
    if (submit_one(a->c, n, a->len, &r) < 0)
        return -1;
    out->wall_s = (double)(r.end_ns - r.first_ns) / 1e9;
    out->cpu_s = (double)(r.src_cpu + r.map_cpu + r.sink_cpu) / 1e9;
    out->ctxsw = 0;
    if (n != a->best_n || out->wall_s < a->best_span) {
        a->best_n = n;
        a->best_span = out->wall_s;
        a->best = r;
    }
    return 0;
}

static int measure_pipeline(const icluster *c, size_t len, double tcp, bench_row *r)
{
    irun a = {.c = c, .len = len};
    int small = len == 8;
    *r = small ? bench_row_new("i.8b", "(i) 3 Slurm hosts, 8 B records", "rec/s")
               : bench_row_new("i.1k", "(i) 3 Slurm hosts, 1 KiB records", "B/s");
    if (bench_measure(r, i_run, &a, small ? 1000000 : 100000, small ? 1000000 : 50000) < 0)
        return -1;
    const ires *b = &a.best;
    double job_s = (double)(b->t_done_ns - b->t_submit_ns) / 1e9, recs = r->value;
    double wire = recs * (double)(len + 8); /* a record takes 8 + len bytes in a batch (len a multiple of 8) */
    r->peak_rss = (double)(b->src_rss > b->map_rss ? b->src_rss : b->map_rss);
    r->peak_rss = r->peak_rss > (double)b->sink_rss ? r->peak_rss : (double)b->sink_rss;
    char rate[32];
    if (small) {
        bench_fmt_rate(rate, sizeof rate, recs * (double)len, "B/s");
    } else {
        bench_fmt_rate(rate, sizeof rate, recs, "rec/s");
        r->value = recs * (double)len;
    }
    if (tcp > 0) {
        r->ratio = wire / tcp;
        snprintf(r->ratio_of, sizeof r->ratio_of, "TCP limit, wire B");
    }
    snprintf(r->note, sizeof r->note, "%s; src@head->map@host2->sink@host3; %.2f cores busy; job %.1f s for %.2f s",
             rate, r->cpu_s / r->wall_s, job_s, a.best_span);
    return 0;
}

/* ---- the scenario ---- */

static void emit_skip(const char *why)
{
    bench_row r = bench_row_new("i", "(i) pipeline across 3 Slurm hosts", "");
    r.mark = MARK_SKIP;
    snprintf(r.note, sizeof r.note, "skipped: %.100s", why);
    bench_emit(&r);
}

int scen_slurm3(int arg)
{
    (void)arg;
    if (g_opts.quick) {
        emit_skip("--quick (3 Slurm hosts and their jobs take ~30 s; the full make bench runs it)");
        return 0;
    }
    const char *script = SAGE_BENCH_DIR "/slurm3.sh", *cli = SAGE_BENCH_CLI;
    if (access(script, R_OK) != 0 || access(cli, X_OK) != 0) {
        emit_skip("bench/slurm3.sh or the sage command is missing");
        return 0;
    }
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return bench_fail("pipe: %s", strerror(errno));
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        return bench_fail("pipe: %s", strerror(errno));
    }
    fflush(NULL);
    pid_t sh = fork();
    if (sh < 0)
        return bench_fail("fork: %s", strerror(errno));
    if (sh == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        alarm(0);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/bash", "bash", script, cli, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    /* Up to the READY line (or SKIP / FAIL). */
    char line[2048];
    int timed_out = 0, rc = 0, st = 0;
    icluster c;
    memset(&c, 0, sizeof c);
    double deadline = bench_now_s() + 300;
    int ready = 0, skipped = 0;
    while (!ready && read_line(out[0], line, sizeof line, deadline, &timed_out) == 0) {
        if (strncmp(line, "READY ", 6) == 0) {
            ready = 1;
        } else if (strncmp(line, "SKIP ", 5) == 0) {
            emit_skip(line + 5);
            skipped = 1;
            break;
        } else if (strncmp(line, "FAIL ", 5) == 0) {
            rc = bench_fail("(i) bench/slurm3.sh: %s", line + 5);
            break;
        }
    }
    bench_row tr = bench_row_new("i.tcp", "(i) TCP limit host2 -> host3", "B/s"), r8, r1k;
    if (ready) {
        char ip[32];
        if (field(line, "jm", c.jm, sizeof c.jm) || field(line, "home", c.home, sizeof c.home) ||
            field(line, "ns1", c.ns1, sizeof c.ns1) || field(line, "ns2", c.ns2, sizeof c.ns2) ||
            field(line, "ip3", c.ip3, sizeof c.ip3) || field(line, "ip1", ip, sizeof ip)) {
            rc = bench_fail("(i) bench/slurm3.sh printed a bad READY line: %s", line);
        } else {
            c.net0 = path_inode("/proc/self/ns/net");
            c.net1 = path_inode(c.ns1);
            c.net2 = path_inode(c.ns2);
            fprintf(stderr, "    cluster ready: JobManager %s\n", c.jm);
            double best = -1;
            for (int i = 0; i < 3; i++) {
                double v = tcp_blast(&c, 1.0);
                best = v > best ? v : best;
            }
            if (best <= 0)
                rc = bench_fail("(i) the TCP sender/receiver between the namespaces failed");
            tr.value = best;
            tr.reps = 3;
            snprintf(tr.note, sizeof tr.note, "one connection between the namespaces over the bridge, best of 3 x 1 s");
            if (rc == 0)
                rc = measure_pipeline(&c, 8, best, &r8);
            if (rc == 0)
                rc = measure_pipeline(&c, 1024, best, &r1k);
        }
    } else if (timed_out) {
        rc = bench_fail("(i) bench/slurm3.sh did not bring the cluster up within 300 s");
    } else if (rc == 0 && !skipped) {
        rc = bench_fail("(i) bench/slurm3.sh ended without READY (see its messages above)");
    }
    /* Tear down: closing its stdin tells the script to stop everything; it prints DOWN when done. */
    close(in[1]);
    deadline = bench_now_s() + 180;
    while (read_line(out[0], line, sizeof line, deadline, &timed_out) == 0)
        if (strncmp(line, "FAIL ", 5) == 0)
            fprintf(stderr, "    bench/slurm3.sh: %s\n", line + 5);
    close(out[0]);
    if (wait_pid(sh, bench_now_s() + 60, &st) != 0) {
        kill(sh, SIGTERM); /* its trap cleans up */
        if (wait_pid(sh, bench_now_s() + 120, &st) != 0) {
            kill(sh, SIGKILL);
            waitpid(sh, &st, 0);
        }
        return bench_fail("(i) bench/slurm3.sh did not finish its cleanup in time");
    }
    if (rc == 0 && ready) {
        bench_emit(&tr);
        bench_emit(&r8);
        bench_emit(&r1k);
    }
    return rc;
}
