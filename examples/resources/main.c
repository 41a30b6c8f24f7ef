/* examples/resources - the operator-resources pipeline: a heavy map (parallelism 4, 4 CPUs and 8 GB each) and a
 * GPU map (parallelism 2, 1 GPU and 2 CPUs each) on a node of 20 CPUs, 2 GPUs and 64 GB, printing what every
 * instance was given. With --small the node has 8 CPUs and 1 GPU, and the job is refused before anything runs.
 * With --jobmanager HOST:PORT the same pipeline runs through a JobManager, on the nodes it has (a Slurm cluster's).
 * Usage: resources [--small] [--explain] [--jobmanager HOST:PORT] */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

static size_t put_ids(char *buf, size_t cap, const char *what, const int *ids, int n)
{
    size_t len = (size_t)snprintf(buf, cap, " %s=%s", what, n ? "" : "-");
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", ids[i]);
    return len < cap ? len : cap - 1;
}

/* open hook: every instance reports its assignment, from inside (one printf per line: instances run at once). */
static int report(sage_ctx *ctx, void *udata)
{
    const sage_assignment *a = sage_ctx_assignment(ctx);
    char cpus[256], gpus[128];
    put_ids(cpus, sizeof cpus, "cpus", a->cpus, a->ncpus);
    put_ids(gpus, sizeof gpus, "gpus", a->gpus, a->ngpus);
    printf("%s[%d]: node=%s%s %s%s memory=%" PRIu64 "\n", sage_ctx_op_name(ctx), sage_ctx_instance(ctx), a->node, cpus,
           a->exclusive ? "exclusive" : "shared", gpus, a->memory);
    return 0;
}

static int heavy_compute(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    return sage_emit_i64(out, sage_rec_i64(rec, len) * 2);
}

static int gpu_inference(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    return sage_emit_i64(out, sage_rec_i64(rec, len) + 1);
}

static int sum_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    *(int64_t *)sage_ctx_local(ctx) += sage_rec_i64(rec, len);
    return 0;
}

static int64_t total;
static int sink_open(sage_ctx *ctx, void *udata)
{
    sage_ctx_set_local(ctx, &total);
    return report(ctx, udata);
}

int main(int argc, char **argv)
{
    int small = 0, explain = 0;
    char remote[300] = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--small") == 0)
            small = 1;
        else if (strcmp(argv[i], "--explain") == 0)
            explain = 1;
        else if (strcmp(argv[i], "--jobmanager") == 0 && i + 1 < argc)
            snprintf(remote, sizeof remote, "{\"jobmanager\": \"%s\"}", argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--small] [--explain] [--jobmanager HOST:PORT]\n", argv[0]);
            return 2;
        }
    }
    const char *config = remote[0] ? remote
                         : small   ? "{\"node\": {\"name\": \"small\", \"cpus\": 8, \"gpus\": 1, \"memory\": \"16GB\"}}"
                                   : "{\"node\": {\"name\": \"big\", \"cpus\": 20, \"gpus\": 2, \"memory\": \"64GB\"}}";
    int64_t values[100];
    for (int i = 0; i < 100; i++)
        values[i] = i + 1;
    sage_env *env = sage_env_create("operator_resources", config);
    sage_stream *s = sage_from_int64s(env, values, 100, &(sage_op_opts){.name = "source"});
    s = sage_map(s, heavy_compute, NULL,
                 &(sage_op_opts){.name = "heavy_compute",
                                 .parallelism = 4,
                                 .open = report,
                                 .resources = "{\"num_cpus\": 4, \"memory\": \"8GB\"}"});
    s = sage_map(s, gpu_inference, NULL,
                 &(sage_op_opts){.name = "gpu_inference",
                                 .parallelism = 2,
                                 .open = report,
                                 .resources = "{\"num_gpus\": 1, \"num_cpus\": 2}"});
    sage_sink(s, sum_sink, NULL, &(sage_op_opts){.name = "sink", .open = sink_open});
    if (explain) {
        char *plan = sage_env_explain(env);
        if (plan)
            fputs(plan, stdout);
        free(plan);
    }
    int rc = sage_env_execute(env);
    if (rc != 0) {
        fprintf(stderr, "resources: job refused: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }
    if (remote[0]) /* the sink ran in a worker: its sum is in the job's logs, not here */
        printf("job %s\n", sage_job_state_name(sage_env_state(env)));
    else
        printf("sum=%" PRId64 "\n", total);
    sage_env_destroy(env);
    return 0;
}
