/* bench/pipelines.h - the per-record work shared by SAGE and the COST baseline, and the timed SAGE pipelines built on it. */
#ifndef SAGE_BENCH_PIPELINES_H
#define SAGE_BENCH_PIPELINES_H

#include <stdint.h>

#include <sage/sage.h>

#include "bench.h"

/* Records a generator emits per call. */
#define GEN_BURST 4096
/* Distinct keys of scenario (c). */
#define KEYED_KEYS 1000000u

/* The per-record work of scenario (a): map multiplies by 3, filter drops
 * values whose low four bits are all set (1 in 16), sink counts and sums.
 * The COST baseline (baselines.c) does exactly this, without the engine. */
static inline int64_t work_map(int64_t v) { return v * 3; }
static inline int work_keep(int64_t v) { return (v & 15) != 15; }
/* How many of the values 0..n-1 survive map then filter (3v = 15 mod 16 iff v = 5 mod 16). */
static inline uint64_t work_expected_kept(uint64_t n) { return n - (n / 16 + (n % 16 > 5 ? 1 : 0)); }

/* Timed runs of n records (bench_run_fn), each checking its output count.
 * (a)  generator -> map -> filter -> sink, parallelism 1, chained.     arg: NULL
 * (b)  generator p1 -> rebalance -> counting sink p(*arg).             arg: int *
 * (c)  generator p2 -> key_by(v mod 1e6) -> per-key counter sink p2.   arg: NULL
 * (f)  generator p1 -> rebalance -> map p(*arg) -> sink p(*arg).       arg: int * */
/* Config of the env each run creates (NULL: defaults); with the checkpoint
 * strategy, the checkpoint statistics of the last run land in
 * pipe_ckpt_stats. */
extern const char *pipe_config;
extern sage_checkpoint_stats pipe_ckpt_stats;

int pipe_run_chain(uint64_t n, void *arg, bench_run *out);
int pipe_run_rebalance(uint64_t n, void *arg, bench_run *out);
int pipe_run_keyed(uint64_t n, void *arg, bench_run *out);
int pipe_run_fanout(uint64_t n, void *arg, bench_run *out);
/* (a.batch), (b.batch): (a) and (b) with batch operators (sage/batch.h): the source emits GEN_BURST values
 * per call as one array, map and filter are sage_map_batches, the sink sage_sink_batches. */
int pipe_run_chain_batch(uint64_t n, void *arg, bench_run *out);
int pipe_run_rebalance_batch(uint64_t n, void *arg, bench_run *out);

#endif
