/* bench/checkpoints.c - (k) the cost of checkpoints: throughput of (a) and (c) while checkpointing, and one checkpoint of 1M keys.
 *
 * The rows run the same pipelines as (a) and (c) with the checkpoint
 * strategy, a checkpoint every CKPT_INTERVAL seconds (ten times more often
 * than the once a second the goal is stated for, so that every timed run
 * holds several). The ratio against (a) and (c) of the same run is derived
 * in main.c. The checkpoints go to a fresh directory under $TMPDIR (or
 * /tmp), removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "pipelines.h"

#define CKPT_INTERVAL 0.1

static char g_dir[256];
static char g_config[512];

int bench_ckpt_begin(double interval)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/sage-bench-ckpt-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir))
        return bench_fail("cannot create a checkpoint directory under %s", t && *t ? t : "/tmp");
    snprintf(g_config, sizeof g_config,
             "{\"fault_tolerance\": {\"strategy\": \"checkpoint\", \"checkpoint_interval\": %g, \"checkpoint_dir\": "
             "\"%s\"}}",
             interval, g_dir);
    pipe_config = g_config;
    memset(&pipe_ckpt_stats, 0, sizeof pipe_ckpt_stats);
    return 0;
}

void bench_ckpt_end(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    pipe_config = NULL;
}

/* (k.a) scenario (a) with checkpoints. */
int scen_ckpt_chain(int arg)
{
    bench_row r = bench_row_new("k.a", "(k) (a) with a checkpoint every 0.1 s", "rec/s");
    if (bench_ckpt_begin(CKPT_INTERVAL) != 0)
        return -1;
    int rc = bench_measure(&r, pipe_run_chain, NULL, 1000000, 1000000);
    bench_ckpt_end();
    if (rc < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "%llu checkpoints in the last run, each holding the source %.3f ms",
             (unsigned long long)pipe_ckpt_stats.completed, pipe_ckpt_stats.last_pause_ms);
    bench_emit(&r);
    return 0;
}

/* (k.c) scenario (c), 1M keys of state, with checkpoints. */
int scen_ckpt_keyed(int arg)
{
    bench_row r = bench_row_new("k.c", "(k) (c) 1M keys, a checkpoint every 0.1 s", "rec/s");
    if (bench_ckpt_begin(CKPT_INTERVAL) != 0)
        return -1;
    int rc = bench_measure(&r, pipe_run_keyed, NULL, 2 * (uint64_t)KEYED_KEYS, 10 * (uint64_t)KEYED_KEYS);
    bench_ckpt_end();
    if (rc < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "%llu checkpoints in the last run, the last %.1f MB, pause %.1f ms",
             (unsigned long long)pipe_ckpt_stats.completed, (double)pipe_ckpt_stats.last_bytes / 1e6,
             pipe_ckpt_stats.last_pause_ms);
    bench_emit(&r);
    return 0;
}

/* (k.pause) one checkpoint of the full 1M-key state: how long the sources wait, and the whole of it. */
int scen_ckpt_size(int arg)
{
    bench_row r = bench_row_new("k.pause", "(k) checkpoint of 1M keys: sources held", "ms");
    bench_set_target(&r, GOAL_LE, 100, "< 100 ms");
    /* the interval is as long as a run: the one checkpoint comes with the state complete */
    if (bench_ckpt_begin(0.05) != 0)
        return -1;
    bench_run run;
    uint64_t n = 30 * (uint64_t)KEYED_KEYS;
    int rc = pipe_run_keyed(n, NULL, &run);
    bench_ckpt_end();
    if (rc < 0)
        return -1;
    if (pipe_ckpt_stats.completed == 0)
        return bench_fail("(k.pause): no checkpoint was taken in a %.2f s run", run.wall_s);
    r.value = pipe_ckpt_stats.last_pause_ms;
    r.records = n;
    r.wall_s = run.wall_s;
    snprintf(r.note, sizeof r.note, "%.1f MB on disk, %.0f ms to commit (fsync included); %llu taken in %.2f s",
             (double)pipe_ckpt_stats.last_bytes / 1e6, pipe_ckpt_stats.last_total_ms,
             (unsigned long long)pipe_ckpt_stats.completed, run.wall_s);
    bench_emit(&r);
    return 0;
}

/* (k.align) a two-input operator: two sources into a comap; each checkpoint's pause is how long the comap
 * took to have both barriers (and every task to capture). */
static int gen_two(sage_ctx *ctx, sage_out *out, void *udata)
{
    const uint64_t n = *(const uint64_t *)udata;
    uint64_t v = (uint64_t)(uintptr_t)sage_ctx_local(ctx);
    for (int k = 0; k < 4096 && v < n; k++, v++) {
        int rc = sage_emit_i64(out, (int64_t)v);
        if (rc < 0)
            return rc;
    }
    sage_ctx_set_local(ctx, (void *)(uintptr_t)v);
    return v >= n ? SAGE_DONE : SAGE_MORE;
}
static int pass_on(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    return sage_emit(out, rec, len);
}
static int count_two(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    ++*(uint64_t *)udata;
    return 0;
}

int scen_ckpt_align(int arg)
{
    bench_row r = bench_row_new("k.align", "(k) two-input comap: sources held", "ms");
    bench_set_target(&r, GOAL_LE, 10, "< 10 ms");
    if (bench_ckpt_begin(0.05) != 0)
        return -1;
    uint64_t n = g_opts.quick ? 20000000 : 60000000, got = 0;
    sage_env *env = sage_env_create("bench_align", pipe_config);
    sage_stream *a = sage_from_generator(env, gen_two, &n, &(sage_op_opts){.name = "left"});
    sage_stream *b = sage_from_generator(env, gen_two, &n, &(sage_op_opts){.name = "right"});
    const sage_map_fn fns[2] = {pass_on, pass_on};
    sage_stream *c = sage_comap(sage_connect(a, b), fns, 2, NULL,
                                &(sage_op_opts){.name = "both", .disable_chaining = 1});
    sage_sink(c, count_two, &got, &(sage_op_opts){.name = "count"});
    bench_timer tm;
    bench_run run;
    bench_timer_start(&tm);
    int rc = sage_env_execute(env);
    bench_timer_stop(&tm, &run);
    sage_checkpoint_stats st;
    sage_env_checkpoint_stats(env, &st);
    if (rc != 0)
        rc = bench_fail("(k.align) failed (%s): %s", sage_err_name(rc), sage_env_errmsg(env));
    else if (got != 2 * n)
        rc = bench_fail("(k.align) counted %llu records, expected %llu", (unsigned long long)got,
                        (unsigned long long)(2 * n));
    else if (st.completed == 0)
        rc = bench_fail("(k.align): no checkpoint was taken in a %.2f s run", run.wall_s);
    sage_env_destroy(env);
    bench_ckpt_end();
    if (rc < 0)
        return -1;
    r.value = st.last_pause_ms;
    r.records = 2 * n;
    r.wall_s = run.wall_s;
    snprintf(r.note, sizeof r.note, "the last of %llu checkpoints in %.2f s; %.0f M rec/s through the comap",
             (unsigned long long)st.completed, run.wall_s, 2e-6 * (double)n / run.wall_s);
    bench_emit(&r);
    return 0;
}
