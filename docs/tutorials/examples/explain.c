/* explain.c - print the compiled plan: chains, routing, why operators were not fused, placement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

static int pass(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    return sage_emit(out, rec, len);
}
static int keep(sage_ctx *ctx, const void *rec, size_t len, void *udata) { return 1; }
static int drop(sage_ctx *ctx, const void *rec, size_t len, void *udata) { return 0; }
static int key_i64(const void *rec, size_t len, void *keybuf, void *udata)
{
    memcpy(keybuf, rec, len);
    return (int)len;
}

int main(void)
{
    int64_t values[100];
    for (int i = 0; i < 100; i++)
        values[i] = i % 10;
    /* A declared node makes the plan the same on every machine; without "node" SAGE uses this host. */
    sage_env *env = sage_env_create("explained", "{\"node\": {\"name\": \"laptop\", \"cpus\": 4, \"gpus\": 0, "
                                                 "\"memory\": \"16GB\"}}");
    sage_stream *s = sage_from_int64s(env, values, 100, &(sage_op_opts){.name = "events"});
    s = sage_map(s, pass, NULL, &(sage_op_opts){.name = "parse"});
    sage_sink(sage_broadcast(s), drop, NULL, &(sage_op_opts){.name = "audit", .parallelism = 2});
    s = sage_flat_map(sage_key_by(s, key_i64, NULL), pass, NULL,
                      &(sage_op_opts){.name = "aggregate", .parallelism = 2, .resources = "{\"num_cpus\": 1}"});
    s = sage_filter(s, keep, NULL, &(sage_op_opts){.name = "nonzero", .parallelism = 2});
    sage_sink(s, drop, NULL, &(sage_op_opts){.name = "store", .parallelism = 2, .disable_chaining = 1});

    char *plan = sage_env_explain(env); /* compiles and places; declare nothing after this */
    if (!plan) {
        fprintf(stderr, "explained: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }
    fputs(plan, stdout);
    free(plan);
    int rc = sage_env_execute(env);
    printf("execute: %s\n", sage_err_name(rc));
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
