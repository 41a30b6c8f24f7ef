/* hello.c - the smallest SAGE program: three numbers, a map, a sink. */
#include <stdio.h>

#include <sage/sage.h>

static int twice(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    return sage_emit_i64(out, 2 * sage_rec_i64(rec, len));
}

static int print_i64(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    printf("%s[%d]: %lld\n", sage_ctx_op_name(ctx), sage_ctx_instance(ctx), (long long)sage_rec_i64(rec, len));
    return 0;
}

int main(void)
{
    int64_t values[] = {1, 2, 3};
    sage_env *env = sage_env_create("hello", NULL);
    sage_stream *s = sage_from_int64s(env, values, 3, NULL);
    s = sage_map(s, twice, NULL, NULL);
    sage_sink(s, print_i64, NULL, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env); /* runs the job in this process and waits for it */
    if (rc != 0)
        fprintf(stderr, "hello: %s: %s\n", sage_err_name(rc), sage_env_errmsg(env));
    printf("SAGE %s: job %s\n", sage_version(), sage_job_state_name(sage_env_state(env)));
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
