/* bench/peer_tbb.c - the in-process peer in the same run: oneTBB flow graphs for (a), (b), (c), one record per
 * message and 4096 per message.
 *
 * A user who would not pick SAGE for in-process dataflow picks oneTBB's flow graph (Debian's libtbb-dev;
 * scripts/deps.sh --bench installs it and a C++ compiler). The graphs are in peer_tbb_graph.cpp; here they are
 * measured like SAGE's scenarios (bench_measure: sized to the target time, best of the runs) and their outputs
 * checked against what the scenario must give. Without TBB (or a C++ compiler) the row says it was skipped. */
#include <stdio.h>

#include "bench.h"
#include "pipelines.h"

#ifndef SAGE_BENCH_TBB

int peer_tbb(int arg)
{
    (void)arg;
    bench_row r = bench_row_new("peer.tbb", "oneTBB flow graph peer", "rec/s");
    r.mark = MARK_SKIP;
    snprintf(r.note, sizeof r.note, "skipped: built without oneTBB (scripts/deps.sh --bench installs libtbb-dev, g++)");
    bench_emit(&r);
    return 0;
}

#else

#include "peer_tbb.h"

typedef struct targ {
    int scenario, batched;
    size_t state_bytes; /* of the last run */
} targ;

static int tbb_run(uint64_t n, void *arg, bench_run *out)
{
    targ *a = arg;
    peer_tbb_result r;
    double c0 = bench_cpu_s();
    if (peer_tbb_run(a->scenario, a->batched, n, KEYED_KEYS, &r) != 0)
        return bench_fail("oneTBB graph (%c) threw", a->scenario);
    uint64_t want_count = n, want_sum = 0;
    if (a->scenario == 'a') {
        want_count = 0;
        for (uint64_t v = 0; v < n; v++)
            if (work_keep(work_map((int64_t)v))) {
                want_count++;
                want_sum += (uint64_t)work_map((int64_t)v);
            }
    } else if (a->scenario == 'b') {
        want_sum = n * (n - 1) / 2;
    } else {
        want_sum = n < KEYED_KEYS ? n : KEYED_KEYS;
    }
    if (r.count != want_count || r.sum != want_sum)
        return bench_fail("oneTBB graph (%c%s): counted %llu (%llu), expected %llu (%llu)", a->scenario,
                          a->batched ? ", batched" : "", (unsigned long long)r.count, (unsigned long long)r.sum,
                          (unsigned long long)want_count, (unsigned long long)want_sum);
    out->wall_s = r.wall_s;
    out->cpu_s = bench_cpu_s() - c0;
    out->ctxsw = 0;
    a->state_bytes = r.state_bytes;
    return 0;
}

static int one(const char *id, const char *name, int scenario, int batched)
{
    targ a = {.scenario = scenario, .batched = batched};
    bench_row r = bench_row_new(id, name, "rec/s");
    uint64_t n0 = scenario == 'c' ? 2 * (uint64_t)KEYED_KEYS : batched ? 4000000 : 400000;
    uint64_t n_min = scenario == 'c' ? 10 * (uint64_t)KEYED_KEYS : n0;
    if (bench_measure(&r, tbb_run, &a, n0, n_min) < 0)
        return -1;
    if (scenario == 'c') {
        r.peak_rss = bench_peak_rss();
        snprintf(r.note, sizeof r.note, "std::unordered_map, mixed hash, %.0f MB of maps; 2 threads",
                 (double)a.state_bytes / 1e6);
    } else {
        snprintf(r.note, sizeof r.note, "%s; 2 threads; %.2f cores busy",
                 batched ? "4096 records per message (a std::vector), 8 in flight" : "one record per message",
                 r.cpu_s / r.wall_s);
    }
    bench_emit(&r);
    return 0;
}

int peer_tbb(int arg)
{
    (void)arg;
    if (one("peer.tbb.a", "oneTBB (a), 1 per message", 'a', 0) < 0 ||
        one("peer.tbb.a.batch", "oneTBB (a), 4096 per message", 'a', 1) < 0 ||
        one("peer.tbb.b", "oneTBB (b), 1 per message", 'b', 0) < 0 ||
        one("peer.tbb.b.batch", "oneTBB (b), 4096 per message", 'b', 1) < 0 ||
        one("peer.tbb.c.batch", "oneTBB (c) 1M keys, 4096 per msg", 'c', 1) < 0)
        return -1;
    return 0;
}

#endif
