/* bench/peer_tbb.h - the oneTBB flow-graph peer's runs (peer_tbb_graph.cpp), for bench/peer_tbb.c (plain C). */
#ifndef SAGE_BENCH_PEER_TBB_H
#define SAGE_BENCH_PEER_TBB_H

#include <stddef.h>
#include <stdint.h>

typedef struct peer_tbb_result {
    double wall_s;      /* the graph's run, from activating its source to wait_for_all */
    uint64_t count;     /* records the sinks counted */
    uint64_t sum;       /* (a), (b): the sum of what they counted; (c): keys with state */
    size_t state_bytes; /* (c): the hash maps' size, estimated from their buckets and nodes */
} peer_tbb_result;

/* One run of scenario 'a', 'b' or 'c' over 0..n-1 (keys: (c)'s key count), one record per message (batched 0)
 * or 4096 per message, on 2 threads. 0, or -1 if the graph threw. */
int peer_tbb_run(int scenario, int batched, uint64_t n, uint64_t keys, peer_tbb_result *r);

#endif
