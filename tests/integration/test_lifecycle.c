/* tests/integration/test_lifecycle.c - running jobs: stop, cancel, submit/wait, services, backpressure,
 * end-of-stream across many instances, two environments at once, a 10-million-record stress run. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "pipeline_util.h"

/* An unbounded source counting up forever (until stop or cancel). */
static int forever(sage_ctx *c, sage_out *o, void *u)
{
    int64_t *next = sage_ctx_local(c);
    if (!next) {
        next = calloc(1, sizeof *next);
        sage_ctx_set_local(c, next);
    }
    for (int i = 0; i < 64; i++) {
        int rc = sage_emit_i64(o, ++*next);
        if (rc < 0)
            return rc;
    }
    return SAGE_MORE;
}

static int free_local(sage_ctx *c, sage_out *o, void *u)
{
    free(sage_ctx_local(c));
    return 0;
}

typedef struct stopper {
    sage_env *env;
    int64_t after;
    int cancel;
} stopper;

static int stop_after(sage_ctx *c, const void *r, size_t n, void *u)
{
    stopper *s = u;
    if (sage_ctx_records_in(c) == (uint64_t)s->after) {
        if (s->cancel)
            sage_env_cancel(s->env);
        else
            sage_env_stop(s->env);
    }
    return 0;
}

static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }

static void graceful_stop_drains(void)
{
    sage_env *env = sage_env_create("stop", NULL);
    stopper st = {env, 10000, 0};
    sage_stream *s = sage_from_source(env, forever, NULL,
                                      &(sage_op_opts){.name = "src", .parallelism = 2, .close = free_local});
    s = sage_map(sage_rebalance(s), pass, NULL, &(sage_op_opts){.name = "mid", .parallelism = 3});
    sage_sink(sage_rebalance(s), stop_after, &st, &(sage_op_opts){.name = "sink"});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_env_state(env), SAGE_JOB_STOPPED);
    sage_metric out, in;
    CHECK_INT(sage_env_metric(env, "src", -1, "records_out", &out), 0);
    CHECK_INT(sage_env_metric(env, "sink", -1, "records_in", &in), 0);
    CHECK(in.value >= 10000);
    CHECK_INT(in.value, out.value); /* nothing in flight was lost */
    sage_env_destroy(env);
}

static void cancel_now(void)
{
    sage_env *env = sage_env_create("cancel", NULL);
    stopper st = {env, 5000, 1};
    sage_stream *s = sage_from_source(env, forever, NULL, &(sage_op_opts){.parallelism = 2, .close = free_local});
    sage_sink(sage_rebalance(s), stop_after, &st, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), SAGE_ECANCELED);
    CHECK_INT(sage_env_state(env), SAGE_JOB_CANCELED);
    sage_env_destroy(env);
}

static int count_sink(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static void submit_wait_stop(void)
{
    sage_env *env = sage_env_create("async", NULL);
    sage_stream *s = sage_from_source(env, forever, NULL, &(sage_op_opts){.name = "src", .close = free_local});
    sage_sink(s, count_sink, NULL, &(sage_op_opts){.name = "sink", .parallelism = 1});
    CHECK_INT(sage_env_submit(env), 0);
    CHECK_INT(sage_env_state(env), SAGE_JOB_RUNNING);
    CHECK_INT(sage_env_wait(env, 20), SAGE_ETIMEDOUT);
    CHECK_INT(sage_env_state(env), SAGE_JOB_RUNNING);
    CHECK_INT(sage_env_stop(env), 0);
    CHECK_INT(sage_env_wait(env, -1), 0);
    CHECK_INT(sage_env_state(env), SAGE_JOB_STOPPED);
    sage_env_destroy(env);

    /* Destroying a running env cancels it and joins every thread. */
    env = sage_env_create("destroy", NULL);
    s = sage_from_source(env, forever, NULL, &(sage_op_opts){.close = free_local});
    sage_sink(sage_rebalance(s), count_sink, NULL, &(sage_op_opts){.parallelism = 3});
    CHECK_INT(sage_env_submit(env), 0);
    sage_env_destroy(env);
}

/* Services. */
static int upper(const void *req, size_t len, sage_reply *reply, void *u)
{
    char buf[256];
    for (size_t i = 0; i < len && i < sizeof buf; i++)
        buf[i] = (char)((const char *)req)[i] -
                 ('a' <= ((const char *)req)[i] && ((const char *)req)[i] <= 'z' ? 32 : 0);
    return sage_reply_set(reply, buf, len);
}

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int started, stopped, closed_before_stop;
    int closes;
} gate;

static int blocked(const void *req, size_t len, sage_reply *reply, void *u)
{
    gate *g = u;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return sage_reply_set(reply, "late", 4);
}

static int svc_start(void *u)
{
    ((gate *)u)->started++;
    return 0;
}

static void svc_stop(void *u)
{
    gate *g = u;
    g->stopped++;
    g->closed_before_stop = g->closes;
}

static int use_services(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    gate *g = u;
    char resp[64];
    size_t rl;
    int rc = sage_call(c, "upper", "hello", 5, 1000, resp, sizeof resp, &rl);
    if (rc != 0 || rl != 5 || memcmp(resp, "HELLO", 5) != 0)
        return SAGE_EINVAL;
    sage_future *f;
    if (sage_call_async(c, "upper", "abc", 3, &f) != 0)
        return SAGE_EINVAL;
    const void *data;
    if (sage_future_wait(f, -1, &data, &rl) != 0 || rl != 3 || memcmp(data, "ABC", 3) != 0)
        return SAGE_EINVAL;
    sage_future_destroy(f);
    if (sage_call(c, "nope", "x", 1, 100, resp, sizeof resp, &rl) != SAGE_ENOSERVICE)
        return SAGE_EINVAL;
    if (sage_ctx_instance(c) == 0 && sage_ctx_records_in(c) == 1) {
        /* A service that cannot answer in time: the call times out, the job goes on. */
        if (sage_call(c, "slow", "x", 1, 30, resp, sizeof resp, &rl) != SAGE_ETIMEDOUT)
            return SAGE_EINVAL;
        pthread_mutex_lock(&g->mu);
        g->open = 1;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
    }
    return sage_emit(o, r, n);
}

static int count_close(sage_ctx *c, sage_out *o, void *u)
{
    gate *g = u;
    pthread_mutex_lock(&g->mu);
    g->closes++;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static void services(void)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};
    uint64_t n = 200;
    sage_env *env = sage_env_create("services", NULL);
    CHECK_INT(sage_env_register_service(env, "upper", upper, NULL, NULL), 0);
    CHECK_INT(sage_env_register_service(env, "slow", blocked, &g,
                                        &(sage_service_opts){.start = svc_start, .stop = svc_stop}),
              0);
    CHECK_INT(sage_env_register_service(env, "upper", upper, NULL, NULL), SAGE_EINVAL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(sage_rebalance(s), use_services, &g, &(sage_op_opts){.parallelism = 2, .close = count_close});
    sage_sink_collect(s, c, NULL);
    /* the duplicate registration above is a sticky error: a fresh env runs the job */
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    sage_env_destroy(env);

    env = sage_env_create("services", NULL);
    CHECK_INT(sage_env_register_service(env, "upper", upper, NULL, NULL), 0);
    CHECK_INT(sage_env_register_service(env, "slow", blocked, &g,
                                        &(sage_service_opts){.start = svc_start, .stop = svc_stop}),
              0);
    s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(sage_rebalance(s), use_services, &g, &(sage_op_opts){.parallelism = 2, .close = count_close});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), 200);
    CHECK_INT(g.started, 1);
    CHECK_INT(g.stopped, 1);
    CHECK_INT(g.closed_before_stop, 2); /* services stop after every instance closed */
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* Cancel answers every service caller at once: the request being served (the service never answers
 * while the gate is closed) and the queued ones, which the service never sees. */
static pthread_mutex_t stuck_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stuck_cv = PTHREAD_COND_INITIALIZER;
static int stuck_open, stuck_served;
static _Atomic int stuck_returned, stuck_canceled, stuck_calls;

static int stuck_service(const void *req, size_t len, sage_reply *r, void *u)
{
    pthread_mutex_lock(&stuck_mu);
    stuck_served++;
    while (!stuck_open)
        pthread_cond_wait(&stuck_cv, &stuck_mu);
    pthread_mutex_unlock(&stuck_mu);
    return sage_reply_set(r, "late", 4);
}

static int sink_ok(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static int call_stuck(sage_ctx *c, const void *rec, size_t len, sage_out *o, void *u)
{
    char resp[16];
    size_t rl;
    atomic_fetch_add(&stuck_calls, 1);
    int rc = sage_call(c, "stuck", "q", 1, -1, resp, sizeof resp, &rl);
    atomic_fetch_add(&stuck_returned, 1);
    if (rc == SAGE_ECANCELED)
        atomic_fetch_add(&stuck_canceled, 1);
    return rc < 0 ? rc : sage_emit(o, rec, len);
}

static void cancel_wakes_service_callers(void)
{
    uint64_t n = 4;
    stuck_open = stuck_served = 0;
    sage_env *env = sage_env_create("stuck", NULL);
    CHECK_INT(sage_env_register_service(env, "stuck", stuck_service, NULL, NULL), 0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(sage_rebalance(s), call_stuck, NULL, &(sage_op_opts){.name = "caller", .parallelism = 4});
    sage_sink(s, sink_ok, NULL, NULL);
    CHECK_INT(sage_env_submit(env), 0);
    /* all four callers are calling, and the service is stuck in the first request */
    uint64_t deadline = sage_now_ns() + 10000000000ull;
    int served = 0;
    while ((atomic_load(&stuck_calls) < 4 || !served) && sage_now_ns() < deadline) {
        usleep(1000);
        pthread_mutex_lock(&stuck_mu);
        served = stuck_served;
        pthread_mutex_unlock(&stuck_mu);
    }
    CHECK_INT(atomic_load(&stuck_calls), 4);
    CHECK_INT(served, 1);
    CHECK_INT(sage_env_cancel(env), 0);
    /* every caller returns while the service is still stuck in the first request */
    deadline = sage_now_ns() + 10000000000ull;
    while (atomic_load(&stuck_returned) < 4 && sage_now_ns() < deadline)
        usleep(1000);
    CHECK_INT(atomic_load(&stuck_returned), 4);
    CHECK_INT(atomic_load(&stuck_canceled), 4);
    pthread_mutex_lock(&stuck_mu);
    CHECK_INT(stuck_served, 1); /* the queued requests never reached the service */
    stuck_open = 1;
    pthread_cond_broadcast(&stuck_cv);
    pthread_mutex_unlock(&stuck_mu);
    CHECK_INT(sage_env_wait(env, -1), SAGE_ECANCELED);
    CHECK_INT(stuck_served, 1);
    sage_env_destroy(env);
}

/* A source that never returns on its own: it loops inside one call until the job is asked to end. */
static _Atomic int64_t looped;
static int loop_inside(sage_ctx *c, sage_out *o, void *u)
{
    for (int64_t v = 0;; v++) {
        if (sage_ctx_stop_requested(c))
            return SAGE_DONE;
        int rc = sage_emit_i64(o, v);
        if (rc < 0)
            return rc;
        atomic_store(&looped, v + 1);
    }
}

static void source_sees_stop(void)
{
    for (int cancel = 0; cancel < 2; cancel++) {
        atomic_store(&looped, 0);
        sage_env *env = sage_env_create("looping", NULL);
        sage_stream *s = sage_from_source(env, loop_inside, NULL, &(sage_op_opts){.name = "loop"});
        sage_sink(sage_rebalance(s), sink_ok, NULL, NULL);
        CHECK_INT(sage_env_submit(env), 0);
        while (atomic_load(&looped) < 10000)
            usleep(1000);
        if (cancel) {
            CHECK_INT(sage_env_cancel(env), 0);
            CHECK_INT(sage_env_wait(env, -1), SAGE_ECANCELED);
            CHECK_INT(sage_env_state(env), SAGE_JOB_CANCELED);
        } else {
            CHECK_INT(sage_env_stop(env), 0);
            CHECK_INT(sage_env_wait(env, -1), 0);
            CHECK_INT(sage_env_state(env), SAGE_JOB_STOPPED);
            sage_metric m;
            CHECK_INT(sage_env_metric(env, "sink_1", -1, "records_in", &m), 0);
            CHECK_INT(m.value, atomic_load(&looped)); /* what it emitted before returning drained */
        }
        sage_env_destroy(env);
    }
}

/* Backpressure: a fast source of 256-byte records, a slow sink; memory stays bounded. */
typedef struct big_gen {
    uint64_t n;
} big_gen;

static int gen_big(sage_ctx *c, sage_out *o, void *u)
{
    big_gen *g = u;
    uint64_t *done = sage_ctx_local(c);
    uint64_t d = (uint64_t)(uintptr_t)done;
    char rec[256];
    memset(rec, 'x', sizeof rec);
    for (int k = 0; k < 1024 && d < g->n; k++, d++) {
        memcpy(rec, &d, sizeof d);
        int rc = sage_emit(o, rec, sizeof rec);
        if (rc < 0)
            return rc;
    }
    sage_ctx_set_local(c, (void *)(uintptr_t)d);
    return d >= g->n ? SAGE_DONE : SAGE_MORE;
}

static int slow_sink(sage_ctx *c, const void *r, size_t n, void *u)
{
    /* real work per record, slower than the source */
    volatile uint64_t h = 1469598103934665603ull;
    for (int round = 0; round < 4; round++)
        for (size_t i = 0; i < n; i++)
            h = (h ^ ((const unsigned char *)r)[i]) * 1099511628211ull;
    return 0;
}

static long rss_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static int run_backpressure(uint64_t records)
{
    big_gen g = {records};
    sage_env *env = sage_env_create("backpressure", NULL);
    sage_stream *s = sage_from_generator(env, gen_big, &g, &(sage_op_opts){.name = "src"});
    s = sage_map(sage_rebalance(s), pass, NULL, &(sage_op_opts){.parallelism = 2});
    sage_sink(sage_rebalance(s), slow_sink, NULL, &(sage_op_opts){.name = "slow"});
    int rc = sage_env_execute(env);
    sage_metric m;
    sage_env_metric(env, "slow", -1, "records_in", &m);
    sage_env_destroy(env);
    return rc == 0 && m.value == (int64_t)records ? 0 : 1;
}

/* Peak RSS (kB) of a child process that runs the pipeline over `records`. */
static long child_peak_kb(uint64_t records)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        long kb = run_backpressure(records) == 0 ? rss_hwm_kb() : -1;
        if (write(fds[1], &kb, sizeof kb) != sizeof kb)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    long kb = -1;
    if (read(fds[0], &kb, sizeof kb) != sizeof kb)
        kb = -1;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return kb;
}

static void backpressure_bounded_memory(void)
{
    long small = child_peak_kb(10000);   /* 2.5 MB of records */
    long large = child_peak_kb(2000000); /* 512 MB of records */
    printf("  backpressure: peak RSS %ld kB for 2.5 MB of records, %ld kB for 512 MB\n", small, large);
    CHECK(small > 0 && large > 0);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    printf("  backpressure: peak-memory bound not checked under a sanitizer (its allocator keeps freed memory)\n");
#else
    CHECK(large - small < 16 * 1024);
#endif
}

/* End-of-stream with many instances on two cores. */
static int key_mod(const void *r, size_t n, void *kb, void *u)
{
    int64_t k = sage_rec_i64(r, n) % 1000;
    memcpy(kb, &k, 8);
    return 8;
}

static void many_instances(void)
{
    uint64_t n = 200000;
    sage_env *env = sage_env_create("wide", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.parallelism = 8});
    s = sage_map(sage_rebalance(s), pass, NULL, &(sage_op_opts){.parallelism = 64});
    s = sage_map(sage_key_by(s, key_mod, NULL), pass, NULL, &(sage_op_opts){.parallelism = 64});
    s = sage_map(sage_broadcast(s), pass, NULL, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(s, c, &(sage_op_opts){.parallelism = 16});
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, 2 * n);
    int bad = 0;
    for (size_t i = 0; i < got; i++)
        bad += v[i] != (int64_t)(i / 2 + 1);
    CHECK_INT(bad, 0);
    free(v);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* Two environments running at the same time do not interfere. */
static void *run_env(void *arg)
{
    uint64_t n = 300000 + (uint64_t)(uintptr_t)arg;
    sage_env *env = sage_env_create("twin", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(sage_key_by(s, key_mod, NULL), pass, NULL, &(sage_op_opts){.name = "same_name", .parallelism = 3});
    sage_sink_collect(s, c, NULL);
    int rc = sage_env_execute(env);
    size_t got = sage_collector_count(c);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return (void *)(uintptr_t)(rc == 0 && got == n);
}

static void two_envs_concurrently(void)
{
    pthread_t a, b;
    void *ra, *rb;
    pthread_create(&a, NULL, run_env, (void *)0);
    pthread_create(&b, NULL, run_env, (void *)1);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    CHECK(ra == (void *)1);
    CHECK(rb == (void *)1);
}

/* 10 million records through a keyed sum; exact per-key totals. */
static int key_mod100(const void *r, size_t n, void *kb, void *u)
{
    int64_t k = sage_rec_i64(r, n) % 100;
    memcpy(kb, &k, 8);
    return 8;
}

static int add_up(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t *sum = sage_ctx_state(c, sizeof *sum);
    if (!sum)
        return SAGE_ENOMEM;
    *sum += sage_rec_i64(r, n);
    return 0;
}

static int emit_sum(const void *key, size_t kl, void *state, void *arg)
{
    int64_t rec[2];
    memcpy(&rec[0], key, 8);
    rec[1] = *(int64_t *)state;
    return sage_emit(arg, rec, sizeof rec) < 0;
}

static int sums_close(sage_ctx *c, sage_out *o, void *u)
{
    return sage_ctx_state_foreach(c, emit_sum, o) ? SAGE_ECANCELED : 0;
}

static void stress_10m(void)
{
    uint64_t n = 10000000;
    sage_env *env = sage_env_create("stress", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.parallelism = 2});
    s = sage_flat_map(sage_key_by(s, key_mod100, NULL), add_up, NULL,
                      &(sage_op_opts){.parallelism = 2, .close = sums_close});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), 100);
    int bad = 0;
    for (size_t i = 0; i < sage_collector_count(c); i++) {
        size_t len;
        int64_t rec[2];
        memcpy(rec, sage_collector_get(c, i, &len), sizeof rec);
        /* sum of v in 1..n with v % 100 == k */
        int64_t k = rec[0], cnt = (int64_t)(n / 100), first = k == 0 ? 100 : k;
        int64_t expect = cnt * first + 100 * cnt * (cnt - 1) / 2;
        bad += rec[1] != expect;
    }
    CHECK_INT(bad, 0);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(graceful_stop_drains);
    RUN(cancel_now);
    RUN(submit_wait_stop);
    RUN(services);
    RUN(cancel_wakes_service_callers);
    RUN(source_sees_stop);
    RUN(backpressure_bounded_memory);
    RUN(many_instances);
    RUN(two_envs_concurrently);
    RUN(stress_10m);
    return CHECK_DONE();
}
