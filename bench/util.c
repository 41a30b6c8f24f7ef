/* bench/util.c - clocks, CPU time, peak RSS, row helpers, and the size-then-best-of-N measuring loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

static uint64_t ctxsw_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_nvcsw + (uint64_t)ru.ru_nivcsw;
}

void bench_timer_start(bench_timer *t)
{
    t->s0 = ctxsw_now();
    t->c0 = bench_cpu_s();
    t->t0 = bench_now_s();
}

void bench_timer_stop(const bench_timer *t, bench_run *out)
{
    out->wall_s = bench_now_s() - t->t0;
    out->cpu_s = bench_cpu_s() - t->c0;
    out->ctxsw = ctxsw_now() - t->s0;
}

/* VmHWM: the resident-set high-water mark of this process (each scenario
 * runs in its own forked child, so this is that scenario's peak). */
double bench_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024.0;
}

bench_row bench_row_new(const char *id, const char *name, const char *unit)
{
    bench_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", id);
    snprintf(r.name, sizeof r.name, "%s", name);
    snprintf(r.unit, sizeof r.unit, "%s", unit);
    return r;
}

void bench_set_target(bench_row *row, bench_goal goal, double target, const char *text)
{
    row->goal = goal;
    row->target = target;
    snprintf(row->target_text, sizeof row->target_text, "%s", text);
}

int bench_self_exe(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return 0;
}

int bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sage-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_measure_fixed(bench_row *row, bench_run_fn fn, void *arg, uint64_t n, int reps)
{
    bench_run best = {0, 0, 0};
    double walls[64];
    if (reps > 64)
        reps = 64;
    for (int i = 0; i < reps; i++) {
        bench_run r;
        if (fn(n, arg, &r) < 0)
            return -1;
        walls[i] = r.wall_s;
        if (i == 0 || r.wall_s < best.wall_s)
            best = r;
    }
    qsort(walls, (size_t)reps, sizeof walls[0], cmp_double);
    row->median_wall_s = walls[reps / 2];
    row->worst_wall_s = walls[reps - 1];
    row->records = n;
    row->wall_s = best.wall_s;
    row->cpu_s = best.cpu_s;
    row->ctxsw = best.ctxsw;
    row->reps = reps;
    row->value = best.wall_s > 0 ? (double)n / best.wall_s : 0;
    return 0;
}

int bench_measure(bench_row *row, bench_run_fn fn, void *arg, uint64_t n0, uint64_t n_min)
{
    if (g_opts.records)
        return bench_measure_fixed(row, fn, arg, g_opts.records, g_opts.reps);
    /* Grow n until a run takes a quarter of the target, then scale to it. */
    uint64_t n = n0;
    double t = 0;
    for (;;) {
        bench_run r;
        if (fn(n, arg, &r) < 0)
            return -1;
        t = r.wall_s;
        if (t >= g_opts.target_s / 4 || n >= (uint64_t)4e9)
            break;
        double grow = t > 0 ? g_opts.target_s / t : 100;
        n = (uint64_t)((double)n * (grow > 100 ? 100 : grow < 2 ? 2 : grow));
    }
    double scaled = t > 0 ? (double)n * g_opts.target_s / t : (double)n;
    n = scaled < (double)n_min ? n_min : (uint64_t)scaled;
    return bench_measure_fixed(row, fn, arg, n, g_opts.reps);
}

void bench_fmt_rate(char *buf, size_t len, double v, const char *unit)
{
    const char *pfx = "";
    double d = v;
    if (v >= 1e9) {
        pfx = "G";
        d = v / 1e9;
    } else if (v >= 1e6) {
        pfx = "M";
        d = v / 1e6;
    } else if (v >= 1e3) {
        pfx = "k";
        d = v / 1e3;
    }
    snprintf(buf, len, "%.*f %s%s%s", d >= 100 ? 0 : d >= 10 ? 1 : 2, d, pfx, *pfx ? " " : "", unit);
}
