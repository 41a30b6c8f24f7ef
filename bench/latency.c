/* bench/latency.c - scenario (e): end-to-end latency of source -> rebalance -> sink (p1 -> p1) at fixed input rates.
 *
 * First the pipeline runs unpaced to find its maximum rate; then it runs at
 * 10%, 50% and 90% of that. The paced source checks the clock on every call
 * and emits the records whose scheduled send time has come, each stamped
 * with that scheduled time (not the time it actually got out: a source
 * running late then shows up as latency instead of silently lowering the
 * load). A call with nothing due returns SAGE_MORE having emitted nothing,
 * which lets the engine flush its partial batches. The sink records
 * now - stamp into a histogram (sage_ctx_observe), read back with
 * sage_env_metric. Records of the first 100 ms are sent but not observed. */
#include <stdio.h>
#include <string.h>

#include <sage/sage.h>

#include "bench.h"
#include "pipelines.h"

#define WARM_BIT ((uint64_t)1 << 63) /* stamp flag: warm-up record, not observed */
#define LAT_METRIC "latency_ns"

typedef struct lat_src {
    double period_ns; /* between scheduled sends; 0: unpaced (as fast as possible) */
    uint64_t total;   /* records to send */
    uint64_t warm;    /* the first `warm` records are not observed */
    uint64_t t0, sent;
} lat_src;

/* Parallelism 1: this is the only instance, so udata may hold its state. */
static int lat_source(sage_ctx *ctx, sage_out *out, void *udata)
{
    lat_src *s = udata;
    uint64_t now = sage_now_ns();
    if (s->t0 == 0)
        s->t0 = now;
    uint64_t due = s->total;
    if (s->period_ns > 0) {
        due = (uint64_t)((double)(now - s->t0) / s->period_ns) + 1;
        if (due > s->total)
            due = s->total;
    }
    for (int k = 0; k < GEN_BURST && s->sent < due; k++, s->sent++) {
        uint64_t stamp = s->period_ns > 0 ? s->t0 + (uint64_t)((double)s->sent * s->period_ns) : now;
        if (s->sent < s->warm)
            stamp |= WARM_BIT;
        int rc = sage_emit(out, &stamp, sizeof stamp);
        if (rc < 0)
            return rc;
    }
    return s->sent >= s->total ? SAGE_DONE : SAGE_MORE;
}

static int lat_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    uint64_t stamp;
    if (len != sizeof stamp)
        return SAGE_EINVAL;
    memcpy(&stamp, rec, sizeof stamp);
    if (stamp & WARM_BIT)
        return 0;
    return sage_ctx_observe(ctx, LAT_METRIC, (double)(sage_now_ns() - stamp));
}

/* Latency mode (docs/api.md, config idle_spin_us): no linger for partial batches, and a consumer that polls
 * for 200 us before it sleeps, so producers see it waiting and flush to it at once. (Smaller batches, 512 B
 * to 4 KiB, were tried: their per-batch cost overloads the pipeline at 50% of the default's rate.) */
#define LATENCY_MODE "{\"flush_linger_us\": 0, \"idle_spin_us\": 200}"

/* One run with config (NULL: the defaults); *m receives the sink's latency histogram. */
static int lat_run_once(lat_src *src, const char *config, bench_run *out, sage_metric *m)
{
    sage_op_opts so = {.name = "src"}, ko = {.name = "sink"};
    sage_env *env = sage_env_create("bench_latency", config);
    sage_stream *s = sage_from_generator(env, lat_source, src, &so);
    sage_sink(sage_rebalance(s), lat_sink, NULL, &ko);
    bench_timer tm;
    bench_timer_start(&tm);
    int rc = sage_env_execute(env);
    bench_timer_stop(&tm, out);
    if (rc != 0)
        rc = bench_fail("(e) latency job failed (%s): %s", sage_err_name(rc), sage_env_errmsg(env));
    else if ((rc = sage_env_metric(env, "sink", -1, LAT_METRIC, m)) != 0)
        rc = bench_fail("(e) reading the latency histogram: %s", sage_strerror(rc));
    else if (m->count != src->total - src->warm)
        rc = bench_fail("(e) the sink observed %llu records, expected %llu", (unsigned long long)m->count,
                        (unsigned long long)(src->total - src->warm));
    sage_env_destroy(env);
    return rc;
}

static int lat_run_unpaced(uint64_t n, void *arg, bench_run *out)
{
    lat_src src = {.total = n};
    sage_metric m;
    return lat_run_once(&src, NULL, out, &m);
}

static int run_load(int pct, double max_rate, const char *config)
{
    double rate = max_rate * pct / 100.0, dur = g_opts.quick ? 0.5 : 2.0, warm_s = 0.1;
    lat_src src = {.period_ns = 1e9 / rate};
    src.warm = (uint64_t)(rate * warm_s);
    src.total = src.warm + (uint64_t)(rate * dur);
    bench_run run;
    sage_metric m;
    if (lat_run_once(&src, config, &run, &m) < 0)
        return -1;
    char id[24], name[80], offered[32], achieved[32];
    snprintf(id, sizeof id, "e.%d%s", pct, config ? ".lat" : "");
    bench_fmt_rate(offered, sizeof offered, rate, "rec/s");
    snprintf(name, sizeof name, "(e) latency at %d%% load (%s)%s", pct, offered, config ? ", latency mode" : "");
    bench_row r = bench_row_new(id, name, "rec/s");
    r.value = rate;
    r.has_lat = 1;
    r.p50_us = m.p50 / 1e3;
    r.p99_us = m.p99 / 1e3;
    r.p999_us = m.p999 / 1e3;
    r.records = src.total;
    r.wall_s = run.wall_s;
    r.cpu_s = run.cpu_s;
    r.ctxsw = run.ctxsw;
    r.reps = 1;
    if (pct == 50)
        bench_set_target(&r, GOAL_P99_LT, 100, config ? "p99 < 100 us (latency mode)" : "p99 < 100 us");
    bench_fmt_rate(achieved, sizeof achieved, (double)src.total / run.wall_s, "rec/s");
    snprintf(r.note, sizeof r.note, "offered rate; achieved %s; %llu observed; max %.0f us", achieved,
             (unsigned long long)m.count, m.max / 1e3);
    bench_emit(&r);
    return 0;
}

int scen_latency(int arg)
{
    bench_row r = bench_row_new("e.max", "(e) max rate, src -> rebalance -> sink p1", "rec/s");
    if (bench_measure(&r, lat_run_unpaced, NULL, 1000000, 1000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "the latency pipeline unpaced; its sink observes every record");
    bench_emit(&r);
    static const int loads[] = {10, 50, 90};
    for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++)
        if (run_load(loads[i], r.value, NULL) < 0)
            return -1;
    /* the same offered rates in latency mode (the host's wake-up alone: row limit.wake) */
    for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++)
        if (run_load(loads[i], r.value, LATENCY_MODE) < 0)
            return -1;
    return 0;
}
