/* examples/parallelism - the parallelism validation pipeline: 1..30, a map (parallelism 4) that tags each
 * record with its instance, a filter keeping multiples of 3 (parallelism 3), a sink (parallelism 2).
 * One line per record per stage names the instance; a final table shows records in/out per instance. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sage/sage.h>

typedef struct tagged {
    int64_t value;
    int64_t mapper; /* instance of DistMapper that saw it */
} tagged;

static int dist_mapper(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    tagged t = {sage_rec_i64(rec, len), sage_ctx_instance(ctx)};
    printf("DistMapper[%d]: %" PRId64 "\n", sage_ctx_instance(ctx), t.value);
    return sage_emit(out, &t, sizeof t);
}

static int multiple_of_3(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    tagged t;
    memcpy(&t, rec, sizeof t);
    int keep = t.value % 3 == 0;
    printf("Filter[%d]: %" PRId64 " %s\n", sage_ctx_instance(ctx), t.value, keep ? "kept" : "dropped");
    return keep;
}

static int dist_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    tagged t;
    memcpy(&t, rec, sizeof t);
    printf("SINK[%d]: %" PRId64 " (from DistMapper[%" PRId64 "])\n", sage_ctx_instance(ctx), t.value, t.mapper);
    return 0;
}

int main(int argc, char **argv)
{
    /* --jobmanager HOST:PORT runs the same pipeline through a JobManager, in worker processes */
    char config[300] = "";
    if (argc == 3 && strcmp(argv[1], "--jobmanager") == 0)
        snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", argv[2]);
    else if (argc != 1) {
        fprintf(stderr, "usage: %s [--jobmanager HOST:PORT]\n", argv[0]);
        return 2;
    }
    int64_t numbers[30];
    for (int i = 0; i < 30; i++)
        numbers[i] = i + 1;

    sage_env *env = sage_env_create("parallelism_validation", config[0] ? config : NULL);
    sage_stream *s = sage_from_int64s(env, numbers, 30, &(sage_op_opts){.name = "NumberListSource"});
    s = sage_map(s, dist_mapper, NULL, &(sage_op_opts){.name = "DistMapper", .parallelism = 4});
    s = sage_filter(s, multiple_of_3, NULL, &(sage_op_opts){.name = "DistFilter", .parallelism = 3});
    sage_sink(s, dist_sink, NULL, &(sage_op_opts){.name = "DistSink", .parallelism = 2});

    if (!sage_is_worker())
        printf("SINGLE STREAM PARALLELISM VALIDATION (%s)\n", config[0] ? "through a JobManager" : "embedded");
    int rc = sage_env_execute(env);
    if (rc != 0) {
        fprintf(stderr, "parallelism: job failed: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }
    printf("\n%-18s %-9s %10s %11s\n", "operator", "instance", "records_in", "records_out");
    for (size_t i = 0; i < sage_env_op_count(env); i++) {
        const char *op = sage_env_op_name(env, i);
        for (int k = 0; k < sage_env_op_parallelism(env, i); k++) {
            sage_metric in, out;
            sage_env_metric(env, op, k, "records_in", &in);
            sage_env_metric(env, op, k, "records_out", &out);
            printf("%-18s %-9d %10" PRId64 " %11" PRId64 "\n", op, k, in.value, out.value);
        }
    }
    printf("job %s\n", sage_job_state_name(sage_env_state(env)));
    sage_env_destroy(env);
    return 0;
}
