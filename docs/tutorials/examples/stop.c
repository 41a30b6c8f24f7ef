/* stop.c - an unbounded source (a sensor read every 50 ms), stopped gracefully from another thread. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sage/sage.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Emits a reading (its timestamp) when one is due. Otherwise it emits nothing: an idle call, after
 * which the engine flushes every partial batch, so no reading waits in a batch while the source sleeps. */
static int sensor(sage_ctx *ctx, sage_out *out, void *udata)
{
    uint64_t *due = udata; /* one instance: not shared */
    uint64_t now = sage_now_ns();
    if (now < *due) {
        sleep_ms(1);
        return SAGE_MORE; /* idle call */
    }
    *due = now + 50 * 1000000ull;
    return sage_emit(out, &now, sizeof now) < 0 ? SAGE_ECANCELED : SAGE_MORE;
}

static int show(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    uint64_t sent;
    memcpy(&sent, rec, sizeof sent);
    printf("reading %" PRIu64 ": %" PRIu64 " us after it was emitted\n", sage_ctx_records_in(ctx),
           (sage_now_ns() - sent) / 1000);
    return 0;
}

static int close_sink(sage_ctx *ctx, sage_out *out, void *udata)
{
    printf("sink closed after %" PRIu64 " readings\n", sage_ctx_records_in(ctx));
    return 0;
}

static void *stopper(void *arg)
{
    sleep_ms(320);
    sage_env_stop(arg); /* any thread may call it while the job runs */
    return NULL;
}

int main(void)
{
    uint64_t due = 0;
    sage_env *env = sage_env_create("sensor", NULL);
    sage_stream *s = sage_from_source(env, sensor, &due, &(sage_op_opts){.name = "sensor"});
    sage_sink(s, show, NULL, &(sage_op_opts){.name = "show", .disable_chaining = 1, .close = close_sink});

    if (sage_env_submit(env) != 0) { /* returns as soon as the job runs */
        fprintf(stderr, "sensor: %s\n", sage_env_errmsg(env));
        sage_env_destroy(env);
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, stopper, env);
    int rc = sage_env_wait(env, -1); /* 0: stopped, drained, close hooks ran */
    pthread_join(t, NULL);

    sage_metric sent, seen;
    sage_env_metric(env, "sensor", -1, "records_out", &sent);
    sage_env_metric(env, "show", -1, "records_in", &seen);
    printf("rc %d, job %s, sent %" PRId64 ", received %" PRId64 "\n", rc, sage_job_state_name(sage_env_state(env)),
           sent.value, seen.value);
    sage_env_destroy(env);
    return 0;
}
