/* cluster_monitor.c - an operator that measures itself: each record's processing time goes into a histogram
 * (sage_ctx_observe), read back after the run with sage_env_metric. The source is unbounded through a
 * JobManager (stop the job with `sage job stop ID`); embedded, or with --records N, it ends after N records.
 * Usage: cluster_monitor [--jobmanager HOST:PORT] [--records N]
 * Without --jobmanager it runs embedded on a simulated node of 4 CPUs. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sage/sage.h>

static int64_t limit; /* records to emit; 0: unbounded */

/* 100 records per call, then a 10 ms pause: about 10000 records/s. */
static int numbers(sage_ctx *ctx, sage_out *out, void *udata)
{
    int64_t v = (int64_t)(uintptr_t)sage_ctx_local(ctx);
    for (int i = 0; i < 100 && (limit == 0 || v < limit); i++)
        if (sage_emit_i64(out, ++v) < 0)
            return SAGE_ECANCELED;
    sage_ctx_set_local(ctx, (void *)(uintptr_t)v);
    if (limit && v >= limit)
        return SAGE_DONE;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    return SAGE_MORE;
}

/* The monitored operator: some work per record, timed, and the time recorded in nanoseconds. */
static int score(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    uint64_t t0 = sage_now_ns();
    int64_t v = sage_rec_i64(rec, len), steps = 0;
    for (; v > 1; steps++) /* Collatz steps: a cost that varies from record to record */
        v = v % 2 ? 3 * v + 1 : v / 2;
    sage_ctx_observe(ctx, "processing_time", (double)(sage_now_ns() - t0));
    return sage_emit_i64(out, steps);
}

static int discard(sage_ctx *ctx, const void *rec, size_t len, void *udata) { return 0; }

int main(int argc, char **argv)
{
    char config[300] = "{\"node\": {\"name\": \"laptop\", \"cpus\": 4}}"; /* embedded: a simulated node */
    int remote = 0;
    limit = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jobmanager") == 0 && i + 1 < argc) {
            snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", argv[++i]);
            remote = 1;
        } else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
            limit = strtoll(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--jobmanager HOST:PORT] [--records N]\n", argv[0]);
            return 2;
        }
    }
    if (remote && argc == 3)
        limit = 0; /* through a JobManager without --records: run until stopped */

    sage_env *env = sage_env_create("cluster_monitor", config);
    sage_stream *s = sage_from_source(env, numbers, NULL, &(sage_op_opts){.name = "numbers"});
    s = sage_map(sage_rebalance(s), score, NULL,
                 &(sage_op_opts){.name = "score", .parallelism = 3, .resources = "{\"num_cpus\": 1}"});
    sage_sink(s, discard, NULL, &(sage_op_opts){.name = "discard"});
    if (sage_env_execute(env) != 0) {
        fprintf(stderr, "cluster_monitor: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }
    sage_metric m;
    for (int i = 0; i < 3; i++) {
        sage_env_metric(env, "score", i, "records_in", &m);
        printf("score[%d] records_in %" PRId64 "\n", i, m.value);
    }
    sage_env_metric(env, "score", -1, "processing_time", &m); /* -1: every instance together */
    printf("processing_time: count %" PRIu64 " p50 %.0f ns p99 %.0f ns\n", m.count, m.p50, m.p99);
    printf("job %s\n", sage_job_state_name(sage_env_state(env)));
    sage_env_destroy(env);
    return 0;
}
