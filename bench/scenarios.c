/* bench/scenarios.c - throughput scenarios (a) chain, (b) rebalance, (c) keyed state, (f) scaling, (g) peak memory. */
#include <stdio.h>
#include <unistd.h>

#include "bench.h"
#include "pipelines.h"

/* (a) generator -> map -> filter -> sink, all parallelism 1: one chained task. */
int scen_chain(int arg)
{
    bench_row r = bench_row_new("a", "(a) map->filter->sink, p1 chained", "rec/s");
    bench_set_target(&r, GOAL_GE, 100e6, ">= 100 M rec/s");
    if (bench_measure(&r, pipe_run_chain, NULL, 1000000, 1000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "8 B records, %d per source call; %.2f cores busy", GEN_BURST, r.cpu_s / r.wall_s);
    bench_emit(&r);
    return 0;
}

/* (a.batch) the same pipeline with batch operators: one array per source call handed down the chain. */
int scen_chain_batch(int arg)
{
    bench_row r = bench_row_new("a.batch", "(a.batch) (a) with batch operators", "rec/s");
    if (bench_measure(&r, pipe_run_chain_batch, NULL, 4000000, 4000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "sage_map_batches x2 + sage_sink_batches, %d per source call; %.2f cores busy",
             GEN_BURST, r.cpu_s / r.wall_s);
    bench_emit(&r);
    return 0;
}

/* (b.batch) (b) with a source emitting arrays and batch sinks reading the packed queue batches in place. */
int scen_rebalance_batch(int arg)
{
    int p = 2;
    bench_row r = bench_row_new("b.batch", "(b.batch) (b) with batch operators", "rec/s");
    if (bench_measure(&r, pipe_run_rebalance_batch, &p, 4000000, 4000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "array source p1 -> rebalance -> sage_sink_batches p2; %.2f cores busy",
             r.cpu_s / r.wall_s);
    bench_emit(&r);
    return 0;
}

/* (b) one source thread feeding two sink threads through batches. */
int scen_rebalance(int arg)
{
    int p = 2;
    bench_row r = bench_row_new("b", "(b) rebalance 1 -> 2", "rec/s");
    bench_set_target(&r, GOAL_GE, 30e6, ">= 30 M rec/s");
    if (bench_measure(&r, pipe_run_rebalance, &p, 1000000, 1000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "source p1 -> rebalance -> counting sink p2; %.2f cores busy; %.1f ctx sw/1k rec",
             r.cpu_s / r.wall_s, 1e3 * (double)r.ctxsw / (double)r.records);
    bench_emit(&r);
    return 0;
}

/* (c) key_by shuffle 2 -> 2 into per-key state (a counter per key). */
int scen_keyed(int arg)
{
    bench_row r = bench_row_new("c", "(c) key_by 2 -> 2, 1M keys, state", "rec/s");
    bench_set_target(&r, GOAL_GE, 10e6, ">= 10 M rec/s");
    /* At least 10 records per key, so that creating the 1M states is at most
     * a tenth of the records: the figure is mostly the steady state. */
    if (bench_measure(&r, pipe_run_keyed, NULL, 2 * (uint64_t)KEYED_KEYS, 10 * (uint64_t)KEYED_KEYS) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "each key seen %.0f times; sage_ctx_state counter; %.2f cores busy",
             (double)r.records / KEYED_KEYS, r.cpu_s / r.wall_s);
    bench_emit(&r);
    return 0;
}

/* (f) throughput against parallelism: source p1 -> rebalance -> map pP -> sink pP. */
int scen_parallelism(int p)
{
    char id[24], name[64];
    snprintf(id, sizeof id, "f.p%d", p);
    snprintf(name, sizeof name, "(f) 1 -> rebalance -> map+sink p%d", p);
    bench_row r = bench_row_new(id, name, "rec/s");
    if (bench_measure(&r, pipe_run_fanout, &p, 1000000, 1000000) < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "%.2f ns/rec; %.2f cores busy; %.1f ctx sw/1k rec", 1e9 / r.value,
             r.cpu_s / r.wall_s, 1e3 * (double)r.ctxsw / (double)r.records);
    bench_emit(&r);
    return 0;
}

/* (f) the same at P instances on as many threads as this process may use CPUs (config chain_threads "cpus"). */
int scen_parallelism_grouped(int p)
{
    char id[24], name[64];
    snprintf(id, sizeof id, "f.p%d.g", p);
    snprintf(name, sizeof name, "(f) p%d on %ld threads (chain_threads)", p, sysconf(_SC_NPROCESSORS_ONLN));
    bench_row r = bench_row_new(id, name, "rec/s");
    pipe_config = "{\"chain_threads\": \"cpus\"}";
    int rc = bench_measure(&r, pipe_run_fanout, &p, 1000000, 1000000);
    pipe_config = NULL;
    if (rc < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "%.2f ns/rec; %.2f cores busy; %.1f ctx sw/1k rec", 1e9 / r.value,
             r.cpu_s / r.wall_s, 1e3 * (double)r.ctxsw / (double)r.records);
    bench_emit(&r);
    return 0;
}

static uint64_t pow10u(int e)
{
    uint64_t n = 1;
    while (e-- > 0)
        n *= 10;
    return n;
}

/* (f) cost per record of scenario (a) at 10^e records: job start-up and
 * teardown are included, so a fixed cost shows up at small sizes. */
int scen_size(int e)
{
    uint64_t n = pow10u(e);
    char id[24], name[64];
    snprintf(id, sizeof id, "f.n1e%d", e);
    snprintf(name, sizeof name, "(f) (a) at 1e%d records: cost", e);
    bench_row r = bench_row_new(id, name, "ns/rec");
    double budget = g_opts.quick ? 1e7 : 3e7;
    int reps = (int)(budget / (double)n);
    reps = reps < 2 ? 2 : reps > 20 ? 20 : reps;
    if (bench_measure_fixed(&r, pipe_run_chain, NULL, n, reps) < 0)
        return -1;
    char rate[32];
    bench_fmt_rate(rate, sizeof rate, r.value, "rec/s");
    r.value = 1e9 * r.wall_s / (double)n;
    snprintf(r.note, sizeof r.note, "%s, best of %d, job start-up included", rate, reps);
    bench_emit(&r);
    return 0;
}

/* (g) peak RSS of a rebalance pipeline (generator source, nothing
 * collected) at 10^e records; this child's VmHWM is the figure. */
int scen_memory(int e)
{
    uint64_t n = pow10u(e);
    int p = 2;
    char id[24], name[64];
    snprintf(id, sizeof id, "g.1e%d", e);
    snprintf(name, sizeof name, "(g) peak RSS, rebalance 1 -> 2, 1e%d rec", e);
    bench_row r = bench_row_new(id, name, "B");
    bench_set_target(&r, GOAL_LE, 64e6, "< 64 MB");
    if (bench_measure_fixed(&r, pipe_run_rebalance, &p, n, 1) < 0)
        return -1;
    char rate[32];
    bench_fmt_rate(rate, sizeof rate, r.value, "rec/s");
    r.value = bench_peak_rss();
    r.peak_rss = r.value;
    snprintf(r.note, sizeof r.note, "VmHWM of its own process; ran at %s", rate);
    bench_emit(&r);
    return 0;
}
