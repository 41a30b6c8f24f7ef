/* bench/pipelines.c - the SAGE pipelines of scenarios (a), (b), (c), (f), (g): generator, map, filter, counting sinks. */
#include "pipelines.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

const char *pipe_config;
sage_checkpoint_stats pipe_ckpt_stats;

static inline int64_t rec_i64(const void *rec, size_t len)
{
    int64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    return v;
}

/* ---- source: 0..n-1 as 8-byte records, instance i of p emits i, i+p, ... ---- */

static int gen_seq(sage_ctx *ctx, sage_out *out, void *udata)
{
    const uint64_t n = *(const uint64_t *)udata;
    const uint64_t p = (uint64_t)sage_ctx_parallelism(ctx);
    uintptr_t next1 = (uintptr_t)sage_ctx_local(ctx); /* next value + 1; 0 before the first call */
    uint64_t v = next1 ? (uint64_t)next1 - 1 : (uint64_t)sage_ctx_instance(ctx);
    for (int k = 0; k < GEN_BURST && v < n; k++, v += p) {
        int rc = sage_emit_i64(out, (int64_t)v);
        if (rc < 0)
            return rc;
    }
    sage_ctx_set_local(ctx, (void *)(uintptr_t)(v + 1));
    return v >= n ? SAGE_DONE : SAGE_MORE;
}

/* ---- map and filter of scenario (a) ---- */

static int map_x3(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    return sage_emit_i64(out, work_map(rec_i64(rec, len)));
}

static int filter_keep(sage_ctx *ctx, const void *rec, size_t len, void *udata) { return work_keep(rec_i64(rec, len)); }

/* ---- counting sinks: per-instance tallies (own cache line), summed at close ---- */

typedef struct tally {
    _Atomic uint64_t count, sum, keys;
} tally;

typedef struct inst_tally {
    _Alignas(64) uint64_t count, sum;
} inst_tally;

static int tally_open(sage_ctx *ctx, void *udata)
{
    inst_tally *t = aligned_alloc(64, sizeof *t);
    if (!t)
        return SAGE_ENOMEM;
    memset(t, 0, sizeof *t);
    sage_ctx_set_local(ctx, t);
    return 0;
}

static int tally_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    tally *T = udata;
    inst_tally *t = sage_ctx_local(ctx);
    if (!t)
        return 0;
    atomic_fetch_add(&T->count, t->count);
    atomic_fetch_add(&T->sum, t->sum);
    atomic_fetch_add(&T->keys, (uint64_t)sage_ctx_state_count(ctx));
    free(t);
    sage_ctx_set_local(ctx, NULL);
    return 0;
}

static int count_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    inst_tally *t = sage_ctx_local(ctx);
    t->count++;
    t->sum += (uint64_t)rec_i64(rec, len);
    return 0;
}

/* Scenario (c): one counter per key, kept by the engine. */
static int key_mod(const void *rec, size_t len, void *keybuf, void *udata)
{
    int64_t k = rec_i64(rec, len) % KEYED_KEYS;
    memcpy(keybuf, &k, sizeof k);
    return sizeof k;
}

static int keyed_count_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    int64_t *c = sage_ctx_state(ctx, sizeof *c);
    if (!c)
        return SAGE_ENOMEM;
    ++*c;
    inst_tally *t = sage_ctx_local(ctx);
    t->count++;
    return 0;
}

/* ---- scenarios (a.batch) and (b.batch): the same work, a batch per call (sage/batch.h) ---- */

/* 0..n-1 as one array of up to GEN_BURST values per call, emitted at once. */
static int gen_seq_batch(sage_ctx *ctx, sage_out *out, void *udata)
{
    const uint64_t n = *(const uint64_t *)udata;
    const uint64_t p = (uint64_t)sage_ctx_parallelism(ctx);
    uintptr_t next1 = (uintptr_t)sage_ctx_local(ctx);
    uint64_t v = next1 ? (uint64_t)next1 - 1 : (uint64_t)sage_ctx_instance(ctx);
    int64_t buf[GEN_BURST];
    size_t k = 0;
    for (; k < GEN_BURST && v < n; k++, v += p)
        buf[k] = (int64_t)v;
    int rc = sage_emit_batch(out, buf, sizeof buf[0], k);
    if (rc < 0)
        return rc;
    sage_ctx_set_local(ctx, (void *)(uintptr_t)(v + 1));
    return v >= n ? SAGE_DONE : SAGE_MORE;
}

static inline int64_t at_i64(const sage_batch *in, size_t i)
{
    int64_t v;
    memcpy(&v, (const char *)in->data + i * sizeof v, sizeof v);
    return v;
}

static int map_x3_batch(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    int64_t buf[GEN_BURST];
    for (size_t i0 = 0; i0 < in->n; i0 += GEN_BURST) {
        size_t m = in->n - i0 < GEN_BURST ? in->n - i0 : GEN_BURST;
        for (size_t i = 0; i < m; i++)
            buf[i] = work_map(at_i64(in, i0 + i));
        int rc = sage_emit_batch(out, buf, sizeof buf[0], m);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int filter_keep_batch(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    int64_t buf[GEN_BURST];
    for (size_t i0 = 0; i0 < in->n; i0 += GEN_BURST) {
        size_t m = in->n - i0 < GEN_BURST ? in->n - i0 : GEN_BURST, k = 0;
        for (size_t i = 0; i < m; i++) {
            int64_t v = at_i64(in, i0 + i);
            buf[k] = v;
            k += work_keep(v);
        }
        int rc = sage_emit_batch(out, buf, sizeof buf[0], k);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int count_sink_batch(sage_ctx *ctx, const sage_batch *in, void *udata)
{
    inst_tally *t = sage_ctx_local(ctx);
    uint64_t sum = 0;
    for (size_t i = 0; i < in->n; i++)
        sum += (uint64_t)at_i64(in, i);
    t->count += in->n;
    t->sum += sum;
    return 0;
}

/* ---- running ---- */

static const sage_op_opts *named(sage_op_opts *o, const char *name, int parallelism)
{
    memset(o, 0, sizeof *o);
    o->name = name;
    o->parallelism = parallelism;
    return o;
}

static const sage_op_opts *sink_opts(sage_op_opts *o, const char *name, int parallelism)
{
    named(o, name, parallelism);
    o->open = tally_open;
    o->close = tally_close;
    return o;
}

static int execute_timed(sage_env *env, bench_run *out)
{
    bench_timer tm;
    bench_timer_start(&tm);
    int rc = sage_env_execute(env);
    bench_timer_stop(&tm, out);
    sage_env_checkpoint_stats(env, &pipe_ckpt_stats);
    if (rc != 0)
        return bench_fail("job failed (%s): %s", sage_err_name(rc), sage_env_errmsg(env));
    return 0;
}

static int finish(sage_env *env, int rc, const tally *T, uint64_t want, const char *what)
{
    if (rc == 0 && atomic_load(&T->count) != want)
        rc = bench_fail("%s: the sink counted %llu records, expected %llu", what,
                        (unsigned long long)atomic_load(&T->count), (unsigned long long)want);
    sage_env_destroy(env);
    return rc;
}

int pipe_run_chain(uint64_t n, void *arg, bench_run *out)
{
    tally T = {0};
    sage_op_opts o;
    sage_env *env = sage_env_create("bench_chain", pipe_config);
    sage_stream *s = sage_from_generator(env, gen_seq, &n, named(&o, "src", 1));
    s = sage_map(s, map_x3, NULL, named(&o, "map", 1));
    s = sage_filter(s, filter_keep, NULL, named(&o, "filter", 1));
    sage_sink(s, count_sink, &T, sink_opts(&o, "sink", 1));
    int rc = execute_timed(env, out);
    return finish(env, rc, &T, work_expected_kept(n), "(a) chain");
}

int pipe_run_chain_batch(uint64_t n, void *arg, bench_run *out)
{
    tally T = {0};
    sage_op_opts o;
    sage_env *env = sage_env_create("bench_chain_batch", pipe_config);
    sage_stream *s = sage_from_generator(env, gen_seq_batch, &n, named(&o, "src", 1));
    s = sage_map_batches(s, map_x3_batch, NULL, named(&o, "map", 1));
    s = sage_map_batches(s, filter_keep_batch, NULL, named(&o, "filter", 1));
    sage_sink_batches(s, count_sink_batch, &T, sink_opts(&o, "sink", 1));
    int rc = execute_timed(env, out);
    uint64_t want_sum = 0;
    for (uint64_t v = 0; rc == 0 && v < n; v++)
        if (work_keep(work_map((int64_t)v)))
            want_sum += (uint64_t)work_map((int64_t)v);
    if (rc == 0 && atomic_load(&T.sum) != want_sum)
        rc = bench_fail("(a.batch): the sink summed %llu, expected %llu", (unsigned long long)atomic_load(&T.sum),
                        (unsigned long long)want_sum);
    return finish(env, rc, &T, work_expected_kept(n), "(a.batch) chain");
}

int pipe_run_rebalance_batch(uint64_t n, void *arg, bench_run *out)
{
    int p = *(const int *)arg;
    tally T = {0};
    sage_op_opts o;
    sage_env *env = sage_env_create("bench_rebalance_batch", pipe_config);
    sage_stream *s = sage_from_generator(env, gen_seq_batch, &n, named(&o, "src", 1));
    sage_sink_batches(sage_rebalance(s), count_sink_batch, &T, sink_opts(&o, "sink", p));
    int rc = execute_timed(env, out);
    if (rc == 0 && atomic_load(&T.sum) != n * (n - 1) / 2)
        rc = bench_fail("(b.batch): the sinks summed %llu, expected %llu", (unsigned long long)atomic_load(&T.sum),
                        (unsigned long long)(n * (n - 1) / 2));
    return finish(env, rc, &T, n, "(b.batch) rebalance");
}

int pipe_run_rebalance(uint64_t n, void *arg, bench_run *out)
{
    int p = *(const int *)arg;
    tally T = {0};
    sage_op_opts o;
    sage_env *env = sage_env_create("bench_rebalance", pipe_config);
    sage_stream *s = sage_from_generator(env, gen_seq, &n, named(&o, "src", 1));
    sage_sink(sage_rebalance(s), count_sink, &T, sink_opts(&o, "sink", p));
    int rc = execute_timed(env, out);
    return finish(env, rc, &T, n, "(b) rebalance");
}

int pipe_run_keyed(uint64_t n, void *arg, bench_run *out)
{
    tally T = {0};
    sage_op_opts o;
    sage_env *env = sage_env_create("bench_keyed", pipe_config);
    sage_stream *s = sage_from_generator(env, gen_seq, &n, named(&o, "src", 2));
    sage_sink(sage_key_by(s, key_mod, NULL), keyed_count_sink, &T, sink_opts(&o, "count", 2));
    int rc = execute_timed(env, out);
    uint64_t want_keys = n < KEYED_KEYS ? n : KEYED_KEYS;
    if (rc == 0 && atomic_load(&T.keys) != want_keys)
        rc = bench_fail("(c) keyed: %llu keys in state, expected %llu", (unsigned long long)atomic_load(&T.keys),
                        (unsigned long long)want_keys);
    return finish(env, rc, &T, n, "(c) keyed");
}

int pipe_run_fanout(uint64_t n, void *arg, bench_run *out)
{
    int p = *(const int *)arg;
    tally T = {0};
    sage_op_opts o;
    sage_env *env = sage_env_create("bench_fanout", pipe_config);
    sage_stream *s = sage_from_generator(env, gen_seq, &n, named(&o, "src", 1));
    s = sage_map(sage_rebalance(s), map_x3, NULL, named(&o, "map", p));
    sage_sink(s, count_sink, &T, sink_opts(&o, "sink", p));
    int rc = execute_timed(env, out);
    return finish(env, rc, &T, n, "(f) fan-out");
}
