/* bench/main.c - sage-bench: runs every scenario in its own forked child, derives ratios and marks, prints the table and JSON.
 *
 * Usage: sage-bench [--quick] [--only NAME[,NAME...]] [--json PATH] [--records N] [--list]
 *        sage-bench --worker-pipeline xput HOST:PORT N LEN RUNS   (internal: scenario (h))
 *        sage-bench --worker-slurm3 HOST:PORT N LEN               (internal: scenario (i))
 *
 * The driver itself never runs the engine: each scenario runs in a forked
 * child, which sends its rows back through a pipe. So every scenario starts
 * from the same small process and its VmHWM is its own peak RSS, and a crash
 * in one scenario is reported rather than taking the run down. Targets are
 * goals, not assertions: the exit status is 1 only when a scenario failed
 * (a job error, a wrong count, a crash), 2 on a usage error.
 *
 * Scenario (h) runs pipelines in JobManager workers, which are this program
 * relaunched with the submitter's argv: its child execs
 * `sage-bench --worker-pipeline ...`, and main() hands such a command line
 * to bench_worker_main (remote.c) before anything else, in the submitter
 * and in every worker alike. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

bench_opts g_opts;

/* ---- the scenario list ---- */

typedef struct entry {
    char id[24];
    char title[64];
    bench_scenario_fn fn;
    int arg;
} entry;

#define MAX_ENTRIES 64
static entry g_entries[MAX_ENTRIES];
static size_t g_nentries;

static void add(const char *id, const char *title, bench_scenario_fn fn, int arg)
{
    entry *e = &g_entries[g_nentries++];
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->title, sizeof e->title, "%s", title);
    e->fn = fn;
    e->arg = arg;
}

static void build_entries(int quick)
{
    char id[24], title[64];
    add("limit.rss", "RSS floor", limit_rss_floor, 0);
    add("limit.memcpy", "memcpy bandwidth", limit_memcpy, 0);
    add("limit.spsc", "SPSC ring", limit_spsc, 0);
    add("limit.wake", "thread wake-up latency", limit_wake, 0);
    add("limit.tcp", "loopback TCP", limit_tcp, 0);
    add("limit.unix", "Unix socket between processes", limit_unix, 0);
    add("limit.cost", "COST baseline", limit_cost, 0);
    add("a", "(a) map->filter->sink p1", scen_chain, 0);
    add("b", "(b) rebalance 1 -> 2", scen_rebalance, 0);
    add("a.batch", "(a.batch) (a) with batch operators", scen_chain_batch, 0);
    add("b.batch", "(b.batch) (b) with batch operators", scen_rebalance_batch, 0);
    add("c", "(c) key_by 2 -> 2 with state", scen_keyed, 0);
    add("d", "(d) word count", scen_wordcount, 0);
    add("e", "(e) latency at fixed rates", scen_latency, 0);
    for (int p = 1; p <= 64; p *= 2) {
        snprintf(id, sizeof id, "f.p%d", p);
        snprintf(title, sizeof title, "(f) parallelism %d", p);
        add(id, title, scen_parallelism, p);
    }
    for (int p = 16; p <= 64; p *= 2) {
        snprintf(id, sizeof id, "f.p%d.g", p);
        snprintf(title, sizeof title, "(f) parallelism %d, chain_threads", p);
        add(id, title, scen_parallelism_grouped, p);
    }
    for (int e = 5; e <= (quick ? 7 : 8); e++) {
        snprintf(id, sizeof id, "f.n1e%d", e);
        snprintf(title, sizeof title, "(f) size 1e%d", e);
        add(id, title, scen_size, e);
    }
    int big = quick ? 7 : 8;
    add("g.1e6", "(g) peak memory 1e6", scen_memory, 6);
    snprintf(id, sizeof id, "g.1e%d", big);
    snprintf(title, sizeof title, "(g) peak memory 1e%d", big);
    add(id, title, scen_memory, big);
    add("peer.gst", "GStreamer peer", peer_gst, 0);
    add("peer.tbb", "oneTBB flow graph peer", peer_tbb, 0);
    add("k.a", "(k) (a) with checkpoints", scen_ckpt_chain, 0);
    add("k.c", "(k) (c) with checkpoints", scen_ckpt_keyed, 0);
    add("k.pause", "(k) checkpoint of 1M keys", scen_ckpt_size, 0);
    add("k.align", "(k) two-input operator", scen_ckpt_align, 0);
    add("h.8b", "(h1) cross-process, 8 B records", scen_remote_small, 0);
    add("h.4k", "(h2) cross-process, 4 KiB records", scen_remote_large, 0);
    add("h.first", "(h3) submit to first record", scen_remote_first, 0);
    add("h.recover", "(h4) worker death to records flowing again", scen_remote_recover, 0);
    add("peer.zmq", "ZeroMQ peer of (h)", peer_zmq, 0);
    add("i", "(i) pipeline across 3 Slurm hosts", scen_slurm3, 0);
}

/* NAME selects an entry by its id, or a group by prefix: "f" is every f.*,
 * "limit" every limit.*; a trailing '*' matches any prefix ("f.p*"). A
 * comma-separated list selects several. */
static int selected(const char *id, const char *only)
{
    if (!only)
        return 1;
    const char *p = only;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 1 && p[n - 1] == '*' && strncmp(id, p, n - 1) == 0)
            return 1;
        if (n > 0 && strncmp(id, p, n) == 0 && (id[n] == 0 || id[n] == '.'))
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* ---- rows ---- */

#define MAX_ROWS 128
static bench_row g_rows[MAX_ROWS];
static size_t g_nrows;

/* In a child: the rows of its scenario, sent to the driver when it ends. */
static bench_row g_child_rows[16];
static size_t g_child_nrows;

void bench_emit(const bench_row *row)
{
    if (g_child_nrows < sizeof g_child_rows / sizeof g_child_rows[0])
        g_child_rows[g_child_nrows++] = *row;
    char val[40];
    bench_fmt_value(val, sizeof val, row);
    fprintf(stderr, "    %-44s %s\n", row->name, row->mark == MARK_SKIP ? row->note : val);
}

static void add_row(const bench_row *r)
{
    if (g_nrows < MAX_ROWS)
        g_rows[g_nrows++] = *r;
}

static bench_row *find_row(const char *id)
{
    for (size_t i = 0; i < g_nrows; i++)
        if (strcmp(g_rows[i].id, id) == 0 && g_rows[i].mark != MARK_ERROR && g_rows[i].mark != MARK_SKIP)
            return &g_rows[i];
    return NULL;
}

/* Place r right after the row with id `after` (at the end if absent). */
static void insert_after(const char *after, const bench_row *r)
{
    if (g_nrows >= MAX_ROWS)
        return;
    size_t at = g_nrows;
    for (size_t i = 0; i < g_nrows; i++)
        if (strcmp(g_rows[i].id, after) == 0)
            at = i + 1;
    memmove(&g_rows[at + 1], &g_rows[at], (g_nrows - at) * sizeof *g_rows);
    g_rows[at] = *r;
    g_nrows++;
}

/* ---- running one entry in a child ---- */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static int run_entry(const entry *e, size_t index, size_t total)
{
    fprintf(stderr, "[%2zu/%zu] %s\n", index, total, e->title);
    int fds[2];
    if (pipe(fds) != 0)
        return bench_fail("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return bench_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        alarm(g_opts.quick ? 300 : 900); /* a hung scenario ends as a failure, not a hung run */
        int rc = e->fn(e->arg);
        double rss = bench_peak_rss();
        for (size_t i = 0; i < g_child_nrows; i++)
            if (g_child_rows[i].peak_rss == 0 && g_child_rows[i].mark != MARK_SKIP)
                g_child_rows[i].peak_rss = rss;
        if (write_all(fds[1], g_child_rows, g_child_nrows * sizeof *g_child_rows) != 0)
            rc = -1;
        fflush(stderr);
        _exit(rc < 0 ? 1 : 0);
    }
    close(fds[1]);
    bench_row r;
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fds[0], (char *)&r + got, sizeof r - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == sizeof r) {
            add_row(&r);
            got = 0;
        }
    }
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    bench_row err = bench_row_new(e->id, e->title, "");
    err.mark = MARK_ERROR;
    if (WIFSIGNALED(st))
        snprintf(err.note, sizeof err.note, "failed: killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(err.note, sizeof err.note, "failed: exit status %d (see the message above)", WEXITSTATUS(st));
    add_row(&err);
    fprintf(stderr, "    %s\n", err.note);
    return -1;
}

/* ---- figures derived from several rows, and marks ---- */

static void set_ratio(bench_row *r, double ratio, const char *of)
{
    r->ratio = ratio;
    snprintf(r->ratio_of, sizeof r->ratio_of, "%s", of);
}

/* SAGE's scenarios over the oneTBB graphs of the same run, after the TBB rows. */
static void derive_tbb(void)
{
    static const struct {
        const char *sage, *peer, *id, *name;
    } tp[] = {
        {"a", "peer.tbb.a", "peer.tbb.ra", "SAGE (a) / oneTBB 1 per message"},
        {"a", "peer.tbb.a.batch", "peer.tbb.ra.batch", "SAGE (a) / oneTBB 4096 per message"},
        {"b", "peer.tbb.b", "peer.tbb.rb", "SAGE (b) / oneTBB 1 per message"},
        {"b", "peer.tbb.b.batch", "peer.tbb.rb.batch", "SAGE (b) / oneTBB 4096 per message"},
        {"a.batch", "peer.tbb.a.batch", "peer.tbb.rab.batch", "SAGE (a.batch) / oneTBB 4096 per msg"},
        {"b.batch", "peer.tbb.b.batch", "peer.tbb.rbb.batch", "SAGE (b.batch) / oneTBB 4096 per msg"},
        {"c", "peer.tbb.c.batch", "peer.tbb.rc.batch", "SAGE (c) / oneTBB 4096 per message"},
    };
    char after[sizeof g_rows[0].id] = "";
    for (size_t k = 0; k < g_nrows; k++)
        if (strncmp(g_rows[k].id, "peer.tbb.", 9) == 0)
            memcpy(after, g_rows[k].id, sizeof after);
    for (size_t i = 0; i < sizeof tp / sizeof tp[0]; i++) {
        bench_row *s = find_row(tp[i].sage), *p = find_row(tp[i].peer);
        if (!s || !p || p->value <= 0)
            continue;
        bench_row r = bench_row_new(tp[i].id, tp[i].name, "x");
        r.value = s->value / p->value;
        if (strcmp(tp[i].sage, "c") == 0 && p->peak_rss > 0 && s->peak_rss > 0)
            snprintf(r.note, sizeof r.note, "peak memory %.1fx TBB's", s->peak_rss / p->peak_rss);
        else
            snprintf(r.note, sizeof r.note, "records/s over records/s");
        if (strcmp(tp[i].sage, "a.batch") == 0) /* issue 14: batch operators at least half of TBB's batched graph */
            bench_set_target(&r, GOAL_GE, 0.5, ">= 0.5x");
        insert_after(after, &r);
        memcpy(after, tp[i].id, strlen(tp[i].id) + 1);
    }
}

/* (h) against ZeroMQ between the same two processes: SAGE's figure over the best ZeroMQ one (ipc or tcp, one
 * record per message or 64 KiB messages), after the ZeroMQ rows. */
static void derive_zmq(void)
{
    static const struct {
        const char *h, *id, *name;
    } zp[] = {{"h.8b", "peer.zmq.h1", "SAGE (h1) / best ZeroMQ, 8 B"},
              {"h.4k", "peer.zmq.h2", "SAGE (h2) / best ZeroMQ, 4 KiB"}};
    for (size_t i = 0; i < sizeof zp / sizeof zp[0]; i++) {
        bench_row *hr = find_row(zp[i].h), *best = NULL;
        char prefix[32], after[sizeof g_rows[0].id] = "";
        snprintf(prefix, sizeof prefix, "%s.", zp[i].id);
        for (size_t k = 0; k < g_nrows; k++)
            if (strncmp(g_rows[k].id, prefix, strlen(prefix)) == 0 && g_rows[k].mark != MARK_SKIP) {
                memcpy(after, g_rows[k].id, sizeof after);
                if (g_rows[k].value > 0 && (!best || g_rows[k].value > best->value))
                    best = &g_rows[k];
            }
        if (!hr || !best || hr->value <= 0)
            continue;
        bench_row r = bench_row_new(zp[i].id, zp[i].name, "x");
        r.value = hr->value / best->value;
        snprintf(r.note, sizeof r.note, "over %.24s", best->id);
        insert_after(after, &r);
    }
}

static void derive(int quick)
{
    bench_row *a = find_row("a"), *cost = find_row("limit.cost"), *spsc = find_row("limit.spsc"), *b, *c;
    if (a && cost) {
        set_ratio(a, a->value / cost->value, "COST");
        bench_row r = bench_row_new("a.cost", "(a) as a share of the COST loop", "%");
        r.value = 100 * a->value / cost->value;
        bench_set_target(&r, GOAL_GE, 35, ">= 35 %");
        snprintf(r.note, sizeof r.note, "same per-record work, no engine");
        insert_after("a", &r);
    }
    if ((b = find_row("b")) && spsc)
        set_ratio(b, b->value / spsc->value, "SPSC ring");
    if ((c = find_row("c")) && (b = find_row("b")))
        set_ratio(c, c->value / b->value, "(b)");
    bench_row *ck;
    if ((ck = find_row("k.a")) && a) { /* the cost of checkpoints: against the same pipeline without */
        set_ratio(ck, ck->value / a->value, "(a)");
        bench_set_target(ck, GOAL_GE, 0.9 * a->value, ">= 0.9x (a)");
    }
    bench_row *dd;
    if ((ck = find_row("k.d")) && (dd = find_row("d"))) {
        set_ratio(ck, ck->value / dd->value, "(d)");
        bench_set_target(ck, GOAL_GE, 0.9 * dd->value, ">= 0.9x (d)");
    }
    if ((ck = find_row("k.c")) && (c = find_row("c"))) {
        set_ratio(ck, ck->value / c->value, "(c)");
        bench_set_target(ck, GOAL_GE, 0.9 * c->value, ">= 0.9x (c)");
    }

    /* (f) parallelism: against the best P. One source feeds P consumers:
     * once the source is the bottleneck more consumers cannot add
     * throughput, so flat is the goal ("flat within 20%") and falling off
     * is the miss. */
    double bestp = 0; /* of the default rows (a thread per instance); the .g rows share threads */
    for (size_t i = 0; i < g_nrows; i++)
        if (strncmp(g_rows[i].id, "f.p", 3) == 0 && !strstr(g_rows[i].id, ".g") && g_rows[i].mark == MARK_INFO &&
            g_rows[i].value > bestp)
            bestp = g_rows[i].value;
    for (size_t i = 0; bestp > 0 && i < g_nrows; i++)
        if (strncmp(g_rows[i].id, "f.p", 3) == 0 && g_rows[i].mark == MARK_INFO) {
            set_ratio(&g_rows[i], g_rows[i].value / bestp, "best P");
            bench_set_target(&g_rows[i], GOAL_GE, 0.8 * bestp, ">= 80% of best P");
        }

    /* (f) size: cost per record against log10(size), least squares. */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, lo = 1e30, hi = 0;
    int k = 0, last = 0;
    char lastid[24] = "";
    for (int e = 5; e <= (quick ? 7 : 8); e++) {
        char id[24];
        snprintf(id, sizeof id, "f.n1e%d", e);
        bench_row *r = find_row(id);
        if (!r)
            continue;
        sx += e;
        sy += r->value;
        sxx += (double)e * e;
        sxy += e * r->value;
        lo = r->value < lo ? r->value : lo;
        hi = r->value > hi ? r->value : hi;
        k++;
        last = e;
        snprintf(lastid, sizeof lastid, "%s", id);
    }
    if (k >= 2) {
        double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx), mean = sy / k;
        for (int e = 5; e <= last; e++) {
            char id[24];
            snprintf(id, sizeof id, "f.n1e%d", e);
            bench_row *r = find_row(id);
            if (r)
                set_ratio(r, r->value / lo, "min cost");
        }
        bench_row r = bench_row_new("f.slope", "(f) cost vs log10(size): max/min", "x");
        r.value = hi / lo;
        bench_set_target(&r, GOAL_LE, 1.2, "flat within 20%");
        snprintf(r.note, sizeof r.note, "slope %+.2f ns/rec per decade (%+.1f%% of the mean cost)", slope,
                 100 * slope / mean);
        insert_after(lastid, &r);
    }

    /* (g) memory independent of size: 100x (quick: 10x) more records may
     * not grow the peak by more than 2 MB, i.e. 0.02 B per record at 1e8.
     * (The small run may not reach the queues' bound, so a few hundred KB
     * of difference is expected and fine; a per-record cost is not.) */
    char big[24];
    snprintf(big, sizeof big, "g.1e%d", quick ? 7 : 8);
    bench_row *gs = find_row("g.1e6"), *gb = find_row(big);
    if (gs && gb) {
        char name[64];
        snprintf(name, sizeof name, "(g) peak RSS growth, 1e6 -> %s rec", big + 2);
        bench_row r = bench_row_new("g.growth", name, "B");
        r.value = gb->value - gs->value;
        set_ratio(&r, gb->value / gs->value, "1e6 run");
        bench_set_target(&r, GOAL_LE, 2e6, "< 2 MB growth");
        snprintf(r.note, sizeof r.note, "%.3f B per added record", r.value / (gb->records - gs->records));
        insert_after(big, &r);
    }

    /* The peer. */
    bench_row *gc = find_row("peer.gst.chain"), *gq = find_row("peer.gst.queue");
    if (gc && (a = find_row("a"))) {
        bench_row r = bench_row_new("peer.a", "SAGE (a) / GStreamer chained", "x");
        r.value = a->value / gc->value;
        snprintf(r.note, sizeof r.note, "records/s over buffers/s, one thread each");
        insert_after("peer.gst.queue", &r);
    }
    if (gq && (b = find_row("b"))) {
        bench_row r = bench_row_new("peer.b", "SAGE (b) / GStreamer with queues", "x");
        r.value = b->value / gq->value;
        snprintf(r.note, sizeof r.note, "records/s over buffers/s, crossing threads");
        insert_after(find_row("peer.a") ? "peer.a" : "peer.gst.queue", &r);
    }

    /* (h) against the bare Unix socket: bytes on the wire per second over
     * the socket's. A record of len bytes takes 8 + len (rounded up to 8)
     * bytes in a batch; the 24 bytes of frame header per 64 KiB batch are
     * left out. */
    derive_tbb();
    derive_zmq();

    bench_row *ux = find_row("limit.unix"), *h;
    if (ux && (h = find_row("h.8b")))
        set_ratio(h, h->value * 16 / ux->value, "Unix socket, wire B");
    if (ux && (h = find_row("h.4k")))
        set_ratio(h, h->value * (4096.0 + 8) / 4096 / ux->value, "Unix socket, wire B");
}

static void mark_all(void)
{
    for (size_t i = 0; i < g_nrows; i++) {
        bench_row *r = &g_rows[i];
        if (r->mark != MARK_INFO || r->goal == GOAL_NONE)
            continue;
        int ok = r->goal == GOAL_GE   ? r->value >= r->target
                 : r->goal == GOAL_LE ? r->value <= r->target
                                      : r->has_lat && r->p99_us < r->target;
        r->mark = ok ? MARK_PASS : MARK_SHORT;
    }
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: sage-bench [--quick] [--only NAME[,NAME...]] [--json PATH] [--records N] [--list]\n"
               "  --quick       CI mode: smaller inputs, fewer repetitions (well under a minute)\n"
               "  --only NAME   run only these scenarios: an id (a, b, f.p4, limit.tcp), a group (f, limit, g)\n"
               "                or a prefix with '*' (f.p*); several separated by commas\n"
               "  --json PATH   where to write the JSON results (default bench-results.json)\n"
               "  --records N   fixed record count for throughput scenarios, instead of sizing runs by time\n"
               "  --list        list the scenario ids and exit\n"
               "  (--worker-pipeline and --worker-slurm3 are internal: how scenarios (h) and (i) run in\n"
               "   JobManager workers)\n");
}

int main(int argc, char **argv)
{
    /* Before anything else: the submitter of an (h) job, or one of its
     * workers, which the JobManager starts with the same argv. */
    if (argc >= 2 && strcmp(argv[1], "--worker-pipeline") == 0)
        return bench_worker_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "--worker-slurm3") == 0)
        return bench_slurm3_worker_main(argc, argv);
    const char *json = "bench-results.json", *only = NULL;
    int list = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            g_opts.quick = 1;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = 1;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = argv[++i];
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc) {
            char *end;
            g_opts.records = strtoull(argv[++i], &end, 10);
            if (*end || g_opts.records == 0) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    g_opts.target_s = g_opts.quick ? 0.4 : 1.0;
    g_opts.reps = g_opts.quick ? 3 : 5;
    build_entries(g_opts.quick);
    if (list) {
        for (size_t i = 0; i < g_nentries; i++)
            printf("%-14s %s\n", g_entries[i].id, g_entries[i].title);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);

    bench_meta meta = {.mode = g_opts.quick ? "quick" : "full"};
    time_t now = time(NULL);
    strftime(meta.date, sizeof meta.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    struct utsname u;
    meta.cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (uname(&u) == 0)
        snprintf(meta.host, sizeof meta.host, "%.20s %.60s %.20s, %d CPUs", u.sysname, u.release, u.machine, meta.cpus);

    size_t total = 0, done = 0;
    for (size_t i = 0; i < g_nentries; i++)
        total += selected(g_entries[i].id, only);
    if (total == 0) {
        fprintf(stderr, "sage-bench: --only %s selects nothing (see --list)\n", only);
        return 2;
    }
    double t0 = bench_now_s();
    int failed = 0;
    for (size_t i = 0; i < g_nentries; i++)
        if (selected(g_entries[i].id, only) && run_entry(&g_entries[i], ++done, total) != 0)
            failed++;
    derive(g_opts.quick);
    mark_all();
    meta.total_s = bench_now_s() - t0;
    report_table(g_rows, g_nrows, &meta);
    if (report_json(json, g_rows, g_nrows, &meta) != 0)
        return 1;
    printf("results written to %s\n", json);
    return failed ? 1 : 0;
}
