/* bench/remote.c - scenario (h): pipelines across worker processes under a real JobManager started by the bench.
 *
 * Three processes take part besides the scenario's own child of the driver:
 *
 *   the daemon     forked from the scenario child: sage_jobmanager_run on a
 *                  free loopback port with a temporary SAGE_HOME; stopped
 *                  with SIGTERM at the end, its directory removed;
 *   the submitter  `sage-bench --worker-pipeline xput ADDR N LEN RUNS`,
 *                  exec'd by the scenario child: it declares the pipeline on a
 *                  remote environment, submits it RUNS times and prints one
 *                  RESULT line per run (read back through a pipe);
 *   the workers    the JobManager relaunches the submitter's program with
 *                  the same argv, so main() lands in bench_worker_main again,
 *                  which declares the same graph; there sage_env_submit runs
 *                  this worker's task and never returns.
 *
 * The pipeline: generator "src" p1 -> sage_rebalance -> sink "sink" p1, two
 * chains, so two worker processes joined by one Unix-socket data channel.
 * Record i carries i in its first 8 bytes (the rest of a longer record is
 * filler); the sink counts records, sums those values, checks every length,
 * and stamps sage_now_ns() at its first record and at its close. What the
 * workers measured comes back as counters (sage_ctx_counter_add, read with
 * sage_env_metric once the job ended). CLOCK_MONOTONIC is one clock for the
 * whole host, so stamps taken in different processes compare directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sage/sage.h>

#include "bench.h"
#include "jobmanager/jobmanager.h"

/* ---------------------------------------------------------------------------
 * What one run reports (the submitter prints it, the scenario parses it).
 * Times are sage_now_ns() stamps; cpu in ns; rss in bytes (VmHWM).
 * ------------------------------------------------------------------------- */
/* clang-format off: one field per line (clang-format 14 does not settle on a layout for this list) */
#define XFIELDS(X)                                                                                                     \
    X(count)                                                                                                           \
    X(sum)                                                                                                             \
    X(bad)                                                                                                             \
    X(first_ns)                                                                                                        \
    X(end_ns)                                                                                                          \
    X(src_open_ns)                                                                                                     \
    X(sink_open_ns)                                                                                                    \
    X(src_end_ns)                                                                                                      \
    X(t_submit_ns)                                                                                                     \
    X(t_submitted_ns)                                                                                                  \
    X(t_done_ns)                                                                                                       \
    X(src_cpu_ns)                                                                                                      \
    X(sink_cpu_ns)                                                                                                     \
    X(src_rss)                                                                                                         \
    X(sink_rss)                                                                                                        \
    X(src_ctxsw)                                                                                                       \
    X(sink_ctxsw)                                                                                                      \
    X(death_ns)
/* clang-format on */

typedef struct xres {
#define XDECL(f) int64_t f;
    XFIELDS(XDECL)
#undef XDECL
} xres;

/* Records the source emits per call (the same as the other scenarios for 8 B
 * records; about 1 MiB per call for large ones). */
static uint64_t burst_for(size_t len) { return len <= 8 ? 4096 : (1u << 20) / len ? (1u << 20) / len : 1; }

/* ---------------------------------------------------------------------------
 * Worker side: the pipeline, as the submitter and every worker declare it.
 * ------------------------------------------------------------------------- */
typedef struct xcfg {
    uint64_t n;
    size_t len;
    int recover; /* (h4): the sink's first attempt dies at its first record */
} xcfg;

typedef struct xsrc_state {
    uint64_t next;
    unsigned char *buf;
} xsrc_state;

typedef struct xsink_state {
    uint64_t count, sum, bad, first_ns;
} xsink_state;

static double vm_hwm(void) { return bench_peak_rss(); }

static void self_usage(int64_t *cpu_ns, int64_t *ctxsw)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *cpu_ns = (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
              (int64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
    *ctxsw = (int64_t)(ru.ru_nvcsw + ru.ru_nivcsw);
}

static int xsrc_open(sage_ctx *ctx, void *udata)
{
    const xcfg *x = udata;
    xsrc_state *s = calloc(1, sizeof *s);
    if (!s || !(s->buf = malloc(x->len < 8 ? 8 : x->len))) {
        free(s);
        return SAGE_ENOMEM;
    }
    memset(s->buf, 0xa5, x->len < 8 ? 8 : x->len);
    sage_ctx_set_local(ctx, s);
    return sage_ctx_counter_add(ctx, "open_ns", (int64_t)sage_now_ns());
}

static int xsrc_fn(sage_ctx *ctx, sage_out *out, void *udata)
{
    const xcfg *x = udata;
    xsrc_state *s = sage_ctx_local(ctx);
    uint64_t v = s->next, end = v + burst_for(x->len);
    if (end > x->n)
        end = x->n;
    for (; v < end; v++) {
        memcpy(s->buf, &v, 8);
        int rc = sage_emit(out, s->buf, x->len);
        if (rc < 0)
            return rc;
    }
    s->next = v;
    return v >= x->n ? SAGE_DONE : SAGE_MORE;
}

static int xsrc_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    xsrc_state *s = sage_ctx_local(ctx);
    if (s) {
        free(s->buf);
        free(s);
        sage_ctx_set_local(ctx, NULL);
    }
    int64_t cpu, sw;
    self_usage(&cpu, &sw);
    sage_ctx_counter_add(ctx, "end_ns", (int64_t)sage_now_ns());
    sage_ctx_counter_add(ctx, "cpu_ns", cpu);
    sage_ctx_counter_add(ctx, "ctxsw", sw);
    sage_ctx_counter_add(ctx, "rss", (int64_t)vm_hwm());
    return 0;
}

static int xsink_open(sage_ctx *ctx, void *udata)
{
    xsink_state *s = calloc(1, sizeof *s);
    if (!s)
        return SAGE_ENOMEM;
    sage_ctx_set_local(ctx, s);
    return sage_ctx_counter_add(ctx, "open_ns", (int64_t)sage_now_ns());
}

/* (h4): the job's first sink worker to see a record stamps the time in <job dir>/death and kills itself; the
 * restarted attempt finds the file and runs on. */
static void die_once(void)
{
    const char *home = getenv("SAGE_HOME"), *job = getenv("SAGE_WORKER_JOB"); /* the daemon's, on this host */
    char path[1200];
    if (!home || !job || strlen(home) + strlen(job) + 16 > sizeof path)
        return;
    snprintf(path, sizeof path, "%s/jobs/%s/death", home, job);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* the restarted attempt */
    char stamp[32];
    int n = snprintf(stamp, sizeof stamp, "%lld\n", (long long)sage_now_ns());
    if (write(fd, stamp, (size_t)n) != n)
        fprintf(stderr, "sage-bench: cannot write %s\n", path);
    close(fd);
    raise(SIGKILL);
}

static int xsink_fn(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    const xcfg *x = udata;
    xsink_state *s = sage_ctx_local(ctx);
    if (__builtin_expect(s->count == 0, 0)) {
        if (x->recover)
            die_once();
        s->first_ns = sage_now_ns();
    }
    s->count++;
    if (__builtin_expect(len != x->len, 0)) {
        s->bad++;
        return 0;
    }
    uint64_t v;
    memcpy(&v, rec, 8);
    s->sum += v;
    return 0;
}

static int xsink_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    int64_t end = (int64_t)sage_now_ns(), cpu, sw;
    xsink_state *s = sage_ctx_local(ctx);
    if (!s)
        return 0;
    self_usage(&cpu, &sw);
    sage_ctx_counter_add(ctx, "count", (int64_t)s->count);
    sage_ctx_counter_add(ctx, "sum", (int64_t)s->sum);
    sage_ctx_counter_add(ctx, "bad", (int64_t)s->bad);
    sage_ctx_counter_add(ctx, "first_ns", (int64_t)s->first_ns);
    sage_ctx_counter_add(ctx, "end_ns", end);
    sage_ctx_counter_add(ctx, "cpu_ns", cpu);
    sage_ctx_counter_add(ctx, "ctxsw", sw);
    sage_ctx_counter_add(ctx, "rss", (int64_t)vm_hwm());
    free(s);
    sage_ctx_set_local(ctx, NULL);
    return 0;
}

static int64_t counter(sage_env *env, const char *op, const char *name)
{
    sage_metric m;
    return sage_env_metric(env, op, -1, name, &m) == 0 ? m.value : -1;
}

/* When the sink's first attempt died (h4): the stamp it left in the job's directory; 0 if none. */
static int64_t death_stamp(int64_t job_id)
{
    char path[1200];
    const char *home = getenv("SAGE_HOME");
    snprintf(path, sizeof path, "%s/jobs/%lld/death", home ? home : "", (long long)job_id);
    FILE *f = fopen(path, "r");
    long long v = 0;
    if (f && fscanf(f, "%lld", &v) != 1)
        v = 0;
    if (f)
        fclose(f);
    return v;
}

/* argv: sage-bench --worker-pipeline xput|recover HOST:PORT N LEN RUNS
 * In the submitter: RUNS jobs one after the other, a RESULT line each.
 * In a worker (the same argv): the first submit runs this worker's task and
 * ends the process, so the graph must be the same in every iteration.
 * recover: the env restarts the job once (fault_tolerance, no delay) and the
 * sink's first attempt kills itself at its first record. */
int bench_worker_main(int argc, char **argv)
{
    if (argc != 7 || (strcmp(argv[2], "xput") != 0 && strcmp(argv[2], "recover") != 0)) {
        fprintf(stderr, "usage: sage-bench --worker-pipeline xput|recover HOST:PORT N LEN RUNS\n");
        return 2;
    }
    xcfg x = {.n = strtoull(argv[4], NULL, 10),
              .len = strtoull(argv[5], NULL, 10),
              .recover = strcmp(argv[2], "recover") == 0};
    int runs = atoi(argv[6]);
    if (x.n == 0 || x.len < 8 || x.len > (16u << 20) || runs < 1) {
        fprintf(stderr, "sage-bench --worker-pipeline: bad N, LEN or RUNS\n");
        return 2;
    }
    char config[320];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"%s}", argv[3],
             x.recover ? ", \"fault_tolerance\": {\"strategy\": \"restart\", \"max_attempts\": 1, \"delay\": 0}" : "");
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int run = 0; run < runs; run++) {
        sage_env *env = sage_env_create("bench_h", config);
        if (!env)
            return 1;
        sage_stream *s = sage_from_generator(env, xsrc_fn, &x,
                                             &(sage_op_opts){.name = "src", .open = xsrc_open, .close = xsrc_close});
        sage_sink(sage_rebalance(s), xsink_fn, &x,
                  &(sage_op_opts){.name = "sink", .open = xsink_open, .close = xsink_close});
        xres r;
        memset(&r, 0, sizeof r);
        r.t_submit_ns = (int64_t)sage_now_ns();
        int rc = sage_env_submit(env); /* a worker never comes back from here */
        r.t_submitted_ns = (int64_t)sage_now_ns();
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
        r.sink_open_ns = counter(env, "sink", "open_ns");
        r.sink_cpu_ns = counter(env, "sink", "cpu_ns");
        r.sink_ctxsw = counter(env, "sink", "ctxsw");
        r.sink_rss = counter(env, "sink", "rss");
        r.src_open_ns = counter(env, "src", "open_ns");
        r.src_end_ns = counter(env, "src", "end_ns");
        r.src_cpu_ns = counter(env, "src", "cpu_ns");
        r.src_ctxsw = counter(env, "src", "ctxsw");
        r.src_rss = counter(env, "src", "rss");
        r.death_ns = x.recover ? death_stamp(sage_env_job_id(env)) : 0;
        printf("RESULT");
#define XPRINT(f) printf(" " #f "=%lld", (long long)r.f);
        XFIELDS(XPRINT)
#undef XPRINT
        printf("\n");
        sage_env_destroy(env);
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Scenario side: a JobManager of our own, and submitter processes.
 * ------------------------------------------------------------------------- */
typedef struct jmd {
    char home[128];
    char addr[64];
    int port;
    pid_t pid;
} jmd;

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void jm_stop(jmd *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st;
        while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
            ;
        d->pid = 0;
    }
    if (d->home[0] && nftw(d->home, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "sage-bench: could not remove %s\n", d->home);
    d->home[0] = 0;
}

/* Fork the daemon with a fresh state directory and a free port; wait until
 * it listens. */
static int jm_start(jmd *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->home, sizeof d->home, "/tmp/sage-bench-jm-XXXXXX");
    if (!mkdtemp(d->home)) {
        d->home[0] = 0;
        return bench_fail("mkdtemp: %s", strerror(errno));
    }
    /* the submitter finds the token through $SAGE_HOME; workers get it from the daemon */
    setenv("SAGE_HOME", d->home, 1);
    for (int attempt = 0; attempt < 3; attempt++) {
        if ((d->port = free_port()) <= 0)
            break;
        snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            break;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            close(p[0]);
            close(p[1]);
            break;
        }
        if (pid == 0) {
            close(p[0]);
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the scenario, even when it is killed */
            sage_jobmanager_opts o = {.host = "127.0.0.1", .port = d->port, .home = d->home, .ready_fd = p[1]};
            char err[1024];
            int rc = sage_jobmanager_run(&o, err, sizeof err);
            if (rc != 0)
                fprintf(stderr, "sage-bench: jobmanager: %s\n", err);
            _exit(rc ? 1 : 0);
        }
        close(p[1]);
        char r = 0;
        ssize_t k;
        while ((k = read(p[0], &r, 1)) < 0 && errno == EINTR)
            ;
        close(p[0]);
        if (k == 1 && r == 'R') {
            d->pid = pid;
            return 0;
        }
        int st;
        waitpid(pid, &st, 0); /* the port was taken in between: try another */
    }
    jm_stop(d);
    return bench_fail("the JobManager did not start");
}

static int parse_result(const char *line, xres *r)
{
    memset(r, 0, sizeof *r);
#define XPARSE(f)                                                                                                      \
    {                                                                                                                  \
        const char *p = strstr(line, " " #f "=");                                                                      \
        if (!p)                                                                                                        \
            return -1;                                                                                                 \
        r->f = strtoll(p + sizeof(#f) + 1, NULL, 10);                                                                  \
    }
    XFIELDS(XPARSE)
#undef XPARSE
    return 0;
}

/* Run `sage-bench --worker-pipeline MODE ADDR n len runs`, collect its
 * RESULT lines into res[0..runs). A submitter that overruns timeout_s is
 * killed and the run fails. */
static int submit_runs(const jmd *d, const char *mode, uint64_t n, size_t len, int runs, xres *res, double timeout_s)
{
    char exe[1024], ns[32], ls[32], rs[16];
    if (bench_self_exe(exe, sizeof exe) != 0)
        return bench_fail("cannot find this program's path");
    snprintf(ns, sizeof ns, "%llu", (unsigned long long)n);
    snprintf(ls, sizeof ls, "%zu", len);
    snprintf(rs, sizeof rs, "%d", runs);
    char *argv[] = {exe, "--worker-pipeline", (char *)mode, (char *)d->addr, ns, ls, rs, NULL};
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
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* kept across exec */
        dup2(p[1], 1);
        alarm(0);
        execv(exe, argv);
        _exit(127);
    }
    close(p[1]);
    static char out[1 << 16];
    size_t got = 0;
    double deadline = bench_now_s() + timeout_s;
    int timed_out = 0;
    for (;;) {
        int ms = (int)((deadline - bench_now_s()) * 1000);
        if (ms <= 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int pr = poll(&pf, 1, ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            continue;
        ssize_t k = read(p[0], out + got, sizeof out - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == sizeof out - 1)
            break;
    }
    out[got] = 0;
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        return bench_fail("(h) the submitter did not finish within %.0f s", timeout_s);
    int k = 0;
    for (char *line = out; line && *line && k < runs;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (strncmp(line, "RESULT ", 7) == 0 && parse_result(line, &res[k]) == 0)
            k++;
        else if (strncmp(line, "FAILED", 6) == 0)
            return bench_fail("(h) job %s", line);
        line = nl ? nl + 1 : NULL;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || k != runs)
        return bench_fail("(h) the submitter %s %d, %d of %d results",
                          WIFEXITED(st) ? "exited with" : "was killed by signal",
                          WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), k, runs);
    return 0;
}

/* Every record arrived once, whole. */
static int check_result(const xres *r, uint64_t n)
{
    uint64_t want = n % 2 ? (n - 1) / 2 * n : n / 2 * (n - 1);
    if (r->count != (int64_t)n || (uint64_t)r->sum != want || r->bad != 0)
        return bench_fail("(h) the sink counted %lld records (sum %llu, %lld of a wrong length), expected %llu (sum "
                          "%llu)",
                          (long long)r->count, (unsigned long long)r->sum, (long long)r->bad, (unsigned long long)n,
                          (unsigned long long)want);
    if (r->first_ns <= 0 || r->end_ns < r->first_ns)
        return bench_fail("(h) the sink's stamps are missing or out of order");
    return 0;
}

/* ---- (h1) (h2): throughput ---- */

typedef struct xput_arg {
    const jmd *d;
    size_t len;
    xres best; /* of the run with the shortest span among those of best_n records (the timed runs) */
    double best_span;
    uint64_t best_n;
} xput_arg;

/* The timed span is the sink's: from its first record to its close (after
 * the end-of-stream): the channel's steady state, without the processes'
 * start-up, which (h3) measures. */
static int xput_run(uint64_t n, void *arg, bench_run *out)
{
    xput_arg *a = arg;
    xres r;
    if (submit_runs(a->d, "xput", n, a->len, 1, &r, g_opts.quick ? 120 : 300) < 0 || check_result(&r, n) < 0)
        return -1;
    out->wall_s = (double)(r.end_ns - r.first_ns) / 1e9;
    out->cpu_s = (double)(r.src_cpu_ns + r.sink_cpu_ns) / 1e9;
    out->ctxsw = (uint64_t)(r.src_ctxsw + r.sink_ctxsw);
    if (n != a->best_n || out->wall_s < a->best_span) {
        a->best_n = n;
        a->best_span = out->wall_s;
        a->best = r;
    }
    return 0;
}

static int scen_xput(const char *id, const char *name, size_t len)
{
    jmd d;
    if (jm_start(&d) < 0)
        return -1;
    xput_arg a = {.d = &d, .len = len};
    bench_row r = bench_row_new(id, name, len == 8 ? "rec/s" : "B/s");
    if (len == 8)
        bench_set_target(&r, GOAL_GE, 10e6, ">= 10 M rec/s");
    else
        bench_set_target(&r, GOAL_GE, 2e9, ">= 2 GB/s");
    /* Start large enough that the first (sizing) run already carries a few
     * hundred milliseconds of data: a job costs tens of milliseconds to
     * start, and a cold first run would otherwise size the rest too small. */
    uint64_t n0 = len == 8 ? 4000000 : 100000, n_min = len == 8 ? 2000000 : 50000;
    int rc = bench_measure(&r, xput_run, &a, n0, n_min);
    jm_stop(&d);
    if (rc < 0)
        return -1;
    const xres *b = &a.best;
    double job_ms = (double)(b->t_done_ns - b->t_submit_ns) / 1e6;
    double span_ms = a.best_span * 1e3;
    r.peak_rss = (double)(b->src_rss > b->sink_rss ? b->src_rss : b->sink_rss);
    if (len == 8) {
        snprintf(r.note, sizeof r.note,
                 "src|sink in 2 workers; %.2f cores busy; %.1f ctx sw/1k rec; job %.0f ms for %.0f ms of data",
                 r.cpu_s / r.wall_s, 1e3 * (double)r.ctxsw / (double)r.records, job_ms, span_ms);
    } else {
        char rate[32];
        bench_fmt_rate(rate, sizeof rate, r.value, "rec/s");
        r.value *= (double)len;
        snprintf(r.note, sizeof r.note, "%zu B records, %s; %.2f cores busy; job %.0f ms for %.0f ms of data", len,
                 rate, r.cpu_s / r.wall_s, job_ms, span_ms);
    }
    bench_emit(&r);
    return 0;
}

int scen_remote_small(int arg)
{
    (void)arg;
    return scen_xput("h.8b", "(h1) cross-process, 8 B records", 8);
}

int scen_remote_large(int arg)
{
    (void)arg;
    return scen_xput("h.4k", "(h2) cross-process, 4 KiB records", 4096);
}

/* ---- (h3): from sage_env_submit to the first record at the sink ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int scen_remote_first(int arg)
{
    (void)arg;
    enum { MAXRUNS = 32 };
    int runs = g_opts.quick ? 5 : 11;
    const uint64_t n = 64;
    jmd d;
    if (jm_start(&d) < 0)
        return -1;
    xres res[MAXRUNS];
    bench_timer tm;
    bench_run run;
    bench_timer_start(&tm);
    int rc = submit_runs(&d, "xput", n, 8, runs, res, g_opts.quick ? 120 : 300);
    bench_timer_stop(&tm, &run);
    jm_stop(&d);
    if (rc < 0)
        return -1;
    double first[MAXRUNS], sub[MAXRUNS], src[MAXRUNS], sink[MAXRUNS], job[MAXRUNS];
    double rss = 0;
    for (int i = 0; i < runs; i++) {
        if (check_result(&res[i], n) < 0)
            return -1;
        first[i] = (double)(res[i].first_ns - res[i].t_submit_ns) / 1e6;
        sub[i] = (double)(res[i].t_submitted_ns - res[i].t_submit_ns) / 1e6;
        src[i] = (double)(res[i].src_open_ns - res[i].t_submit_ns) / 1e6;
        sink[i] = (double)(res[i].sink_open_ns - res[i].t_submit_ns) / 1e6;
        job[i] = (double)(res[i].t_done_ns - res[i].t_submit_ns) / 1e6;
        double m = (double)(res[i].src_rss > res[i].sink_rss ? res[i].src_rss : res[i].sink_rss);
        rss = m > rss ? m : rss;
    }
    double lo = first[0], hi = first[0];
    for (int i = 1; i < runs; i++) {
        lo = first[i] < lo ? first[i] : lo;
        hi = first[i] > hi ? first[i] : hi;
    }
    qsort(first, (size_t)runs, sizeof *first, cmp_double);
    qsort(sub, (size_t)runs, sizeof *sub, cmp_double);
    qsort(src, (size_t)runs, sizeof *src, cmp_double);
    qsort(sink, (size_t)runs, sizeof *sink, cmp_double);
    qsort(job, (size_t)runs, sizeof *job, cmp_double);
    bench_row r = bench_row_new("h.first", "(h3) submit to first record, p50", "ms");
    bench_set_target(&r, GOAL_LE, 50, "< 50 ms");
    r.value = first[runs / 2];
    r.records = n;
    r.reps = runs;
    r.wall_s = run.wall_s / runs;
    r.median_wall_s = job[runs / 2] / 1e3;
    r.worst_wall_s = job[runs - 1] / 1e3;
    r.peak_rss = rss;
    snprintf(r.note, sizeof r.note,
             "%d runs, %.1f-%.1f ms; p50: submit returns %.1f, src open %.1f, sink open %.1f, end %.1f ms", runs, lo,
             hi, sub[runs / 2], src[runs / 2], sink[runs / 2], job[runs / 2]);
    bench_emit(&r);
    return 0;
}

/* ---- (h4): recovery, from a worker's death to records flowing again ---- */

/* A two-worker job with a restart strategy (no delay) whose sink worker kills itself (SIGKILL) at its first
 * record; the restarted attempt runs to the end. Measured per run: from the dying worker's stamp (taken just
 * before the signal) to the first record at the restarted sink: the daemon reaping the attempt, the new
 * processes starting, connecting, and the source's first batch arriving. The exact result is checked. */
int scen_remote_recover(int arg)
{
    (void)arg;
    enum { MAXRUNS = 32 };
    int runs = g_opts.quick ? 3 : 10;
    const uint64_t n = 64;
    jmd d;
    if (jm_start(&d) < 0)
        return -1;
    xres res[MAXRUNS];
    int rc = submit_runs(&d, "recover", n, 8, runs, res, g_opts.quick ? 120 : 300);
    jm_stop(&d);
    if (rc < 0)
        return -1;
    double rec[MAXRUNS], job[MAXRUNS];
    for (int i = 0; i < runs; i++) {
        if (check_result(&res[i], n) < 0)
            return -1;
        if (res[i].death_ns <= 0 || res[i].first_ns <= res[i].death_ns)
            return bench_fail("(h4) run %d: no death stamp before the restarted sink's first record", i);
        rec[i] = (double)(res[i].first_ns - res[i].death_ns) / 1e6;
        job[i] = (double)(res[i].t_done_ns - res[i].t_submit_ns) / 1e6;
    }
    qsort(rec, (size_t)runs, sizeof *rec, cmp_double);
    qsort(job, (size_t)runs, sizeof *job, cmp_double);
    bench_row r = bench_row_new("h.recover", "(h4) worker death to records flowing again, p50", "ms");
    bench_set_target(&r, GOAL_LE, 1000, "< 1 s");
    r.value = rec[runs / 2];
    r.records = n;
    r.reps = runs;
    r.median_wall_s = job[runs / 2] / 1e3;
    r.worst_wall_s = job[runs - 1] / 1e3;
    snprintf(r.note, sizeof r.note, "%d runs, %.1f-%.1f ms; p50 submit to end with the restart %.1f ms", runs, rec[0],
             rec[runs - 1], job[runs / 2]);
    bench_emit(&r);
    return 0;
}
