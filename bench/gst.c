/* bench/gst.c - the peer in the same run: GStreamer (gst-launch-1.0) moving 8-byte buffers, chained and through queues. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "bench.h"

#define GST "gst-launch-1.0"

/* The full path of gst-launch-1.0 found on PATH, or 0. */
static int find_gst(char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, len, "%.*s/%s", (int)n, n ? path : ".", GST);
        if (access(out, X_OK) == 0)
            return 1;
        path += n + (end ? 1 : 0);
    }
    return 0;
}

/* Run one pipeline of n buffers; wall time and the process's peak RSS.
 * Returns 0, or the exit status (or 128 + signal) of a failed run. */
static int gst_run(const char *exe, int queued, uint64_t n, double *wall, double *rss)
{
    char nb[48];
    snprintf(nb, sizeof nb, "num-buffers=%llu", (unsigned long long)n);
    const char *chain[] = {exe,        "-q", "fakesrc",  nb,  "sizetype=fixed", "sizemax=8", "!",
                           "identity", "!",  "fakesink", NULL};
    const char *queue[] = {exe,        "-q", "fakesrc", nb,  "sizetype=fixed", "sizemax=8", "!", "queue", "!",
                           "identity", "!",  "queue",   "!", "fakesink",       NULL};
    fflush(stdout);
    fflush(stderr);
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDOUT_FILENO);
        execv(exe, (char *const *)(queued ? queue : chain));
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0)
        return 127;
    *wall = bench_now_s() - t0;
    *rss = (double)ru.ru_maxrss * 1024.0;
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void skip_row(const char *why)
{
    bench_row r = bench_row_new("peer.gst", "GStreamer peer", "buf/s");
    r.mark = MARK_SKIP;
    snprintf(r.note, sizeof r.note, "skipped: %s", why);
    bench_emit(&r);
}

/* Buffers per second of one pipeline: start-up (num-buffers=1, best of 3)
 * subtracted from the best of g_opts.reps runs sized to about target_s. */
static int gst_measure(const char *exe, int queued, bench_row *r)
{
    double t1 = 1e30, w, rss = 0, best = 1e30, best_rss = 0;
    int st;
    for (int i = 0; i < 3; i++) {
        if ((st = gst_run(exe, queued, 1, &w, &rss)) != 0)
            return st;
        if (w < t1)
            t1 = w;
    }
    uint64_t n = 100000;
    for (;;) {
        if ((st = gst_run(exe, queued, n, &w, &rss)) != 0)
            return st;
        if (w - t1 >= g_opts.target_s / 4 || n >= (uint64_t)1e9)
            break;
        double grow = w - t1 > 0 ? g_opts.target_s / (w - t1) : 100;
        n = (uint64_t)((double)n * (grow > 100 ? 100 : grow < 2 ? 2 : grow));
    }
    n = (uint64_t)((double)n * g_opts.target_s / (w - t1 > 1e-3 ? w - t1 : 1e-3));
    for (int i = 0; i < g_opts.reps; i++) {
        if ((st = gst_run(exe, queued, n, &w, &rss)) != 0)
            return st;
        if (w < best) {
            best = w;
            best_rss = rss;
        }
    }
    r->value = (double)(n - 1) / (best - t1);
    r->records = n;
    r->wall_s = best - t1;
    r->reps = g_opts.reps;
    r->peak_rss = best_rss;
    snprintf(r->note, sizeof r->note, "8 B buffers; start-up %.0f ms subtracted; RSS is gst-launch's", t1 * 1e3);
    return 0;
}

int peer_gst(int arg)
{
    char exe[4096];
    if (!find_gst(exe, sizeof exe)) {
        skip_row(GST " not installed");
        return 0;
    }
    bench_row chain = bench_row_new("peer.gst.chain", "GStreamer src!identity!sink", "buf/s");
    bench_row queue = bench_row_new("peer.gst.queue", "GStreamer src!queue!identity!queue!sink", "buf/s");
    int st = gst_measure(exe, 0, &chain);
    if (st == 0)
        st = gst_measure(exe, 1, &queue);
    if (st != 0) {
        char why[64];
        snprintf(why, sizeof why, GST " failed (status %d)", st);
        skip_row(why);
        return 0;
    }
    bench_emit(&chain);
    bench_emit(&queue);
    return 0;
}
