/* metrics.c - user counters and a processing_time histogram, read back after the run. */
#include <inttypes.h>
#include <stdio.h>

#include <sage/sage.h>

/* Work of varying cost: the number of Collatz steps from v down to 1. */
static int collatz(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    uint64_t t0 = sage_now_ns();
    int64_t v = sage_rec_i64(rec, len), steps = 0;
    for (; v != 1; steps++)
        v = v % 2 ? 3 * v + 1 : v / 2;
    if (steps > 100)
        sage_ctx_counter_add(ctx, "long_chains", 1);
    sage_ctx_observe(ctx, "steps", (double)steps);
    sage_ctx_observe(ctx, "processing_time", (double)(sage_now_ns() - t0)); /* nanoseconds */
    return sage_emit_i64(out, steps); /* after the timing: a chained sink runs inside this call */
}

static int discard(sage_ctx *ctx, const void *rec, size_t len, void *udata) { return 0; }

static int generate(sage_ctx *ctx, sage_out *out, void *udata)
{
    int64_t *next = udata; /* one source instance: no sharing */
    for (int i = 0; i < 1000 && *next <= 100000; i++) {
        int rc = sage_emit_i64(out, (*next)++);
        if (rc < 0)
            return rc;
    }
    return *next > 100000 ? SAGE_DONE : SAGE_MORE;
}

int main(void)
{
    int64_t next = 1;
    sage_env *env = sage_env_create("metrics", NULL);
    sage_stream *s = sage_from_generator(env, generate, &next, &(sage_op_opts){.name = "numbers"});
    s = sage_map(s, collatz, NULL, &(sage_op_opts){.name = "collatz", .parallelism = 2});
    sage_sink(s, discard, NULL, &(sage_op_opts){.name = "discard", .parallelism = 2});
    if (sage_env_execute(env) != 0) {
        fprintf(stderr, "metrics: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }

    sage_metric m;
    for (int i = -1; i < 2; i++) { /* -1: all instances together */
        sage_env_metric(env, "collatz", i, "records_in", &m);
        printf("collatz[%2d] records_in  %" PRId64 "\n", i, m.value);
        sage_env_metric(env, "collatz", i, "long_chains", &m);
        printf("collatz[%2d] long_chains %" PRId64 "\n", i, m.value);
    }
    sage_env_metric(env, "collatz", -1, "steps", &m);
    printf("steps: count %" PRIu64 " min %.0f p50 %.0f p99 %.0f max %.0f mean %.1f\n", m.count, m.min, m.p50, m.p99,
           m.max, m.sum / (double)m.count);
    sage_env_metric(env, "collatz", -1, "processing_time", &m);
    printf("processing_time (ns): p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f\n", m.p50, m.p90, m.p99, m.p999,
           m.max);
    int rc = sage_env_metric(env, "collatz", -1, "no_such_metric", &m);
    printf("no_such_metric: %s\n", sage_err_name(rc));
    sage_env_destroy(env);
    return 0;
}
