/* parallelism.c - the parallelism validation pipeline: 1..30 -> map (4 instances) -> filter (3) -> sink (2). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sage/sage.h>

typedef struct tagged {
    int64_t value;
    int64_t mapper; /* the DistMapper instance that saw the value */
} tagged;

static int dist_mapper(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    tagged t = {sage_rec_i64(rec, len), sage_ctx_instance(ctx)};
    printf("DistMapper[%d]: %" PRId64 "\n", sage_ctx_instance(ctx), t.value);
    return sage_emit(out, &t, sizeof t); /* copied or forwarded before it returns */
}

static int multiple_of_3(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    tagged t;
    memcpy(&t, rec, sizeof t); /* records carry no alignment guarantee */
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

int main(void)
{
    int64_t numbers[30];
    for (int i = 0; i < 30; i++)
        numbers[i] = i + 1;

    sage_env *env = sage_env_create("parallelism_validation", NULL);
    sage_stream *s = sage_from_int64s(env, numbers, 30, &(sage_op_opts){.name = "NumberListSource"});
    s = sage_map(s, dist_mapper, NULL, &(sage_op_opts){.name = "DistMapper", .parallelism = 4});
    s = sage_filter(s, multiple_of_3, NULL, &(sage_op_opts){.name = "DistFilter", .parallelism = 3});
    sage_sink(s, dist_sink, NULL, &(sage_op_opts){.name = "DistSink", .parallelism = 2});

    if (sage_env_execute(env) != 0) {
        fprintf(stderr, "job failed: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }

    printf("%-18s %-9s %10s %11s\n", "operator", "instance", "records_in", "records_out");
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
