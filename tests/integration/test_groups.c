/* tests/integration/test_groups.c - config chain_threads: a chain's instances on fewer threads, same results. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "pipeline_util.h"

#define P_MAP 16
#define P_SUM 7

/* Which thread ran each instance, and its hooks. */
typedef struct seen {
    pthread_t thread[P_MAP];
    _Atomic int has[P_MAP];
    _Atomic int opens, closes;
    _Atomic int64_t fail_at; /* records_in at which instance 5 fails (0: never) */
} seen;

static void saw(seen *s, sage_ctx *c)
{
    int i = sage_ctx_instance(c);
    if (!atomic_load(&s->has[i])) {
        s->thread[i] = pthread_self();
        atomic_store(&s->has[i], 1);
    }
}

static int map_open(sage_ctx *c, void *u)
{
    atomic_fetch_add(&((seen *)u)->opens, 1);
    return 0;
}

/* Each instance's close emits one record of its own: -(instance + 1). */
static int map_close(sage_ctx *c, sage_out *o, void *u)
{
    atomic_fetch_add(&((seen *)u)->closes, 1);
    return sage_emit_i64(o, -(int64_t)(sage_ctx_instance(c) + 1));
}

static int times3(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    seen *s = u;
    saw(s, c);
    int64_t f = atomic_load(&s->fail_at);
    if (f && sage_ctx_instance(c) == 5 && sage_ctx_records_in(c) == (uint64_t)f) {
        sage_ctx_fail(c, "refused record %lld", (long long)sage_rec_i64(r, n));
        return SAGE_EUSER;
    }
    return sage_emit_i64(o, 3 * sage_rec_i64(r, n));
}

static int key_mod(const void *r, size_t n, void *kb, void *u)
{
    int64_t v = sage_rec_i64(r, n), k = (v % 97 + 97) % 97;
    memcpy(kb, &k, sizeof k);
    return (int)sizeof k;
}

/* Per key: the sum of its values, emitted by the close hook as key * 1e12 + sum. */
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
    int64_t k;
    memcpy(&k, key, sizeof k);
    return sage_emit_i64(arg, k * 1000000000000LL + *(int64_t *)state) < 0;
}

static int sums_close(sage_ctx *c, sage_out *o, void *u) { return sage_ctx_state_foreach(c, emit_sum, o) ? -1 : 0; }

/* 1..n -> rebalance -> x3 (p16, closes emit) -> key_by(v mod 97) -> sums (p7) -> collect. */
static int run(const char *config, uint64_t n, seen *s, sage_collector *c, char *err, size_t errlen)
{
    sage_env *env = sage_env_create("groups", config);
    sage_stream *st = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    st = sage_map(sage_rebalance(st), times3, s,
                  &(sage_op_opts){.name = "x3", .parallelism = P_MAP, .open = map_open, .close = map_close});
    st = sage_flat_map(sage_key_by(st, key_mod, NULL), add_up, NULL,
                       &(sage_op_opts){.name = "sums", .parallelism = P_SUM, .close = sums_close});
    sage_sink_collect(st, c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    snprintf(err, errlen, "%s", rc ? sage_env_errmsg(env) : "");
    if (rc)
        fprintf(stderr, "  %s\n", err);
    sage_env_destroy(env);
    return rc;
}

/* What the pipeline must give: per key of 97, the sum of 3v (v = 1..n) and of the closes' -(i + 1). */
static int64_t *expected_sums(uint64_t n)
{
    static int64_t sums[97];
    memset(sums, 0, sizeof sums);
    for (uint64_t v = 1; v <= n; v++)
        sums[(3 * v) % 97] += 3 * (int64_t)v;
    for (int i = 0; i < P_MAP; i++) {
        int64_t v = -(int64_t)(i + 1);
        sums[(v % 97 + 97) % 97] += v;
    }
    return sums;
}

static void check_sums(sage_collector *c, uint64_t n)
{
    int64_t *want = expected_sums(n);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, 97); /* 3v mod 97 takes every value */
    for (size_t i = 0; i < got; i++) {
        int64_t k = v[i] / 1000000000000LL, sum = v[i] - k * 1000000000000LL;
        if (k < 0 || k >= 97 || sum != want[k]) {
            CHECK_INT(sum, k >= 0 && k < 97 ? want[k] : -1);
            break;
        }
    }
    free(v);
}

/* Threads among the instances that ran at least once. */
static int distinct_threads(const seen *s, int from, int to)
{
    int d = 0;
    for (int i = from; i < to; i++) {
        int dup = !atomic_load(&s->has[i]);
        for (int j = from; j < i && !dup; j++)
            dup = atomic_load(&s->has[j]) && pthread_equal(s->thread[i], s->thread[j]);
        d += !dup;
    }
    return d;
}

/* Three threads serve the 16 instances of x3 (instances i, i + 3, ... share one): the same exact sums. */
static void exact_on_fewer_threads(void)
{
    seen s = {0};
    sage_collector *c = sage_collector_create(0);
    char err[1024];
    CHECK_INT(run("{\"chain_threads\": 3, \"batch_bytes\": 512}", 200000, &s, c, err, sizeof err), 0);
    check_sums(c, 200000);
    CHECK_INT(atomic_load(&s.opens), P_MAP);
    CHECK_INT(atomic_load(&s.closes), P_MAP);
    for (int i = 0; i < P_MAP; i++)
        CHECK(atomic_load(&s.has[i]));
    CHECK_INT(distinct_threads(&s, 0, P_MAP), 3);
    for (int i = 3; i < P_MAP; i++)
        CHECK(pthread_equal(s.thread[i], s.thread[i % 3]));
    sage_collector_destroy(c);
}

/* "cpus": as many threads as this process may run on CPUs (all 16 instances apart on a host of 16 or more). */
static void threads_per_cpu(void)
{
    cpu_set_t set;
    CHECK_INT(sched_getaffinity(0, sizeof set, &set), 0);
    int cpus = CPU_COUNT(&set);
    seen s = {0};
    sage_collector *c = sage_collector_create(0);
    char err[1024];
    CHECK_INT(run("{\"chain_threads\": \"cpus\"}", 100000, &s, c, err, sizeof err), 0);
    check_sums(c, 100000);
    CHECK_INT(distinct_threads(&s, 0, P_MAP), cpus < P_MAP ? cpus : P_MAP);
    sage_collector_destroy(c);
}

/* Without the key, or with as many threads as instances, every instance has a thread of its own. */
static void one_thread_each_otherwise(void)
{
    const char *configs[] = {"{}", "{\"chain_threads\": 16}", "{\"chain_threads\": 0}"};
    for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
        seen s = {0};
        sage_collector *c = sage_collector_create(0);
        char err[1024];
        CHECK_INT(run(configs[k], 50000, &s, c, err, sizeof err), 0);
        check_sums(c, 50000);
        CHECK_INT(distinct_threads(&s, 0, P_MAP), P_MAP);
        sage_collector_destroy(c);
    }
}

/* Instances holding cores of their own keep their threads: two instances, a CPU each, on a 2-CPU node. */
static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    saw(u, c);
    return sage_emit(o, r, n);
}

static void cpu_requests_keep_threads(void)
{
    seen s = {0};
    uint64_t n = 20000;
    sage_env *env = sage_env_create("cpus", "{\"chain_threads\": 1, \"node\": {\"cpus\": 2}}");
    sage_collector *c = sage_collector_create(0);
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map(sage_rebalance(st), pass, &s,
                  &(sage_op_opts){.name = "own", .parallelism = 2, .resources = "{\"num_cpus\": 1}"});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), n);
    CHECK_INT(distinct_threads(&s, 0, 2), 2);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* One member fails: the job fails naming it, every member's close hook runs, nothing hangs. */
static void member_failure_fails_job(void)
{
    seen s = {0};
    atomic_store(&s.fail_at, 500);
    sage_collector *c = sage_collector_create(0);
    char err[1024];
    CHECK_INT(run("{\"chain_threads\": 2}", 400000, &s, c, err, sizeof err), SAGE_EUSER);
    CHECK_STR(err, "operator \"x3\" instance 5 failed after 500 records: refused record 7990");
    CHECK_INT(atomic_load(&s.opens), P_MAP);
    CHECK_INT(atomic_load(&s.closes), P_MAP);
    sage_collector_destroy(c);
}

/* An endless source into grouped instances: cancel from the sink ends the job at once. */
static int forever(sage_ctx *c, sage_out *o, void *u)
{
    int64_t v = (int64_t)(uintptr_t)sage_ctx_local(c);
    for (int i = 0; i < 64; i++)
        if (sage_emit_i64(o, ++v) < 0)
            return SAGE_ECANCELED;
    sage_ctx_set_local(c, (void *)(uintptr_t)v);
    return SAGE_MORE;
}

static int cancel_after(sage_ctx *c, const void *r, size_t n, void *u)
{
    if (sage_ctx_records_in(c) == 20000)
        sage_env_cancel(u);
    return 0;
}

static void cancel_reaches_groups(void)
{
    seen s = {0};
    sage_env *env = sage_env_create("cancel", "{\"chain_threads\": 2}");
    sage_stream *st = sage_from_source(env, forever, NULL, NULL);
    st = sage_map(sage_rebalance(st), times3, &s, &(sage_op_opts){.name = "x3", .parallelism = 8});
    sage_sink(sage_rebalance(st), cancel_after, env, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_ECANCELED);
    CHECK_INT(sage_env_state(env), SAGE_JOB_CANCELED);
    int ran = 0;
    for (int i = 0; i < 8; i++)
        ran += atomic_load(&s.has[i]);
    CHECK(ran >= 3); /* instances that ran before the cancel: on at most 2 threads */
    CHECK(distinct_threads(&s, 0, 8) <= 2);
    sage_env_destroy(env);
}

static int count_nothing(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

/* A graceful stop: every record the source emitted before it stopped reaches the sink through the groups. */
static int stop_after(sage_ctx *c, const void *r, size_t n, void *u)
{
    if (sage_ctx_records_in(c) == 20000)
        sage_env_stop(u);
    return 0;
}

static void stop_drains_groups(void)
{
    seen s = {0};
    sage_env *env = sage_env_create("stop", "{\"chain_threads\": 2}");
    sage_stream *st = sage_from_source(env, forever, NULL, &(sage_op_opts){.name = "src"});
    st = sage_map(sage_rebalance(st), times3, &s, &(sage_op_opts){.name = "x3", .parallelism = 8});
    sage_sink(sage_rebalance(st), stop_after, env, &(sage_op_opts){.name = "sink"});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_env_state(env), SAGE_JOB_STOPPED);
    sage_metric out, in;
    CHECK_INT(sage_env_metric(env, "src", -1, "records_out", &out), 0);
    CHECK_INT(sage_env_metric(env, "sink", -1, "records_in", &in), 0);
    CHECK(in.value >= 20000);
    CHECK_INT(in.value, out.value); /* nothing in flight was lost */
    CHECK(distinct_threads(&s, 0, 8) <= 2);
    sage_env_destroy(env);
}

/* A slow member and small channels: a group blocked on a full queue downstream, and members whose queues
 * fill while their thread serves another, lose and reorder nothing per key (exact sums). */
static int slow_member(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    saw(u, c);
    if (sage_ctx_instance(c) == 0 && sage_ctx_records_in(c) % 200 == 0) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return sage_emit_i64(o, 3 * sage_rec_i64(r, n));
}

static void backpressure_exact(void)
{
    seen s = {0};
    uint64_t n = 60000;
    sage_env *env = sage_env_create("bp", "{\"chain_threads\": 2, \"batch_bytes\": 256, \"channel_bytes\": 512}");
    sage_collector *c = sage_collector_create(0);
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map(sage_rebalance(st), slow_member, &s, &(sage_op_opts){.name = "slow", .parallelism = 6});
    st = sage_flat_map(sage_key_by(st, key_mod, NULL), add_up, NULL,
                       &(sage_op_opts){.name = "sums", .parallelism = 5, .close = sums_close});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    int64_t want[97] = {0};
    for (uint64_t v = 1; v <= n; v++)
        want[(3 * v) % 97] += 3 * (int64_t)v;
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, 97);
    for (size_t i = 0; i < got; i++) {
        int64_t k = v[i] / 1000000000000LL;
        CHECK_INT(v[i] - k * 1000000000000LL, want[k]);
    }
    free(v);
    CHECK_INT(distinct_threads(&s, 0, 6), 2);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* explain names the chains that share threads, and how many; a source chain and a chain that fits do not. */
static void explain_says_threads(void)
{
    seen s = {0};
    uint64_t n = 10;
    sage_env *env = sage_env_create("explained", "{\"chain_threads\": 3}");
    sage_collector *c = sage_collector_create(0);
    sage_stream *st = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src", .parallelism = 4});
    st = sage_map(sage_rebalance(st), times3, &s, &(sage_op_opts){.name = "x3", .parallelism = P_MAP});
    st = sage_flat_map(sage_key_by(st, key_mod, NULL), add_up, NULL,
                       &(sage_op_opts){.name = "sums", .parallelism = 3, .close = sums_close});
    sage_sink_collect(st, c, &(sage_op_opts){.name = "out"});
    char *text = sage_env_explain(env);
    CHECK(text != NULL);
    CHECK_CONTAINS(text, "chain 0 (parallelism 4)\n  source \"src\"");
    CHECK_CONTAINS(text, "chain 1 (parallelism 16, on 3 threads: config chain_threads)\n  map \"x3\"");
    CHECK_CONTAINS(text, "chain 2 (parallelism 3)\n  flat_map \"sums\"");
    free(text);
    char *json = sage_env_explain_json(env);
    CHECK(json != NULL);
    size_t k = 0; /* without blanks: "chains" entries read {"id":1,"parallelism":16,"threads":3,...} */
    for (size_t i = 0; json && json[i]; i++)
        if (json[i] != ' ' && json[i] != '\n')
            json[k++] = json[i];
    if (json)
        json[k] = 0;
    CHECK_CONTAINS(json, "{\"id\":0,\"parallelism\":4,\"threads\":4,");
    CHECK_CONTAINS(json, "{\"id\":1,\"parallelism\":16,\"threads\":3,");
    CHECK_CONTAINS(json, "{\"id\":2,\"parallelism\":3,\"threads\":3,");
    free(json);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), 10); /* the keys of 3v mod 97 for v = 1..10 */
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* Per operator: threads = 2 groups x3 with no config; SAGE_THREADS_EACH keeps sums apart under a config that
 * would group it; a chained operator's SAGE_THREADS_EACH wins over its neighbour's number. */
static void operator_threads(void)
{
    seen s = {0};
    uint64_t n = 50000;
    sage_env *env = sage_env_create("per_op", "{\"chain_threads\": 3}");
    sage_collector *c = sage_collector_create(0);
    sage_stream *st = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    st = sage_map(sage_rebalance(st), times3, &s, &(sage_op_opts){.name = "x3", .parallelism = P_MAP, .threads = 2});
    st = sage_flat_map(
        sage_key_by(st, key_mod, NULL), add_up, NULL,
        &(sage_op_opts){.name = "sums", .parallelism = P_SUM, .threads = SAGE_THREADS_EACH, .close = sums_close});
    sage_sink_collect(st, c, &(sage_op_opts){.name = "out"});
    char *text = sage_env_explain(env);
    CHECK_CONTAINS(text, "chain 1 (parallelism 16, on 2 threads: config chain_threads)\n  map \"x3\"");
    CHECK_CONTAINS(text, "chain 2 (parallelism 7)\n  flat_map \"sums\"");
    free(text);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(distinct_threads(&s, 0, P_MAP), 2);
    CHECK_INT(sage_collector_count(c), 97);
    sage_collector_destroy(c);
    sage_env_destroy(env);

    env = sage_env_create("chained", "{\"chain_threads\": 2}");
    st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map(sage_rebalance(st), times3, &s, &(sage_op_opts){.name = "a", .parallelism = 8, .threads = 4});
    st = sage_map(st, times3, &s, &(sage_op_opts){.name = "b", .parallelism = 8, .threads = SAGE_THREADS_EACH});
    sage_sink(st, count_nothing, NULL, &(sage_op_opts){.name = "k", .parallelism = 8});
    text = sage_env_explain(env);
    CHECK_CONTAINS(text, "chain 1 (parallelism 8)\n  map \"a\"");
    free(text);
    sage_env_destroy(env);

    const int bad[] = {-2, 1025};
    for (size_t k = 0; k < 2; k++) {
        env = sage_env_create("bad_threads", NULL);
        st = sage_from_generator(env, gen_range, &n, NULL);
        CHECK(sage_map(st, times3, &s, &(sage_op_opts){.name = "m", .threads = bad[k]}) == NULL);
        CHECK_INT(sage_env_errcode(env), SAGE_EINVAL);
        char want[200];
        snprintf(want, sizeof want,
                 "operator \"m\": threads %d is outside 1..1024 (0: the config's chain_threads, SAGE_THREADS_EACH: a "
                 "thread per instance)",
                 bad[k]);
        CHECK_STR(sage_env_errmsg(env), want);
        sage_env_destroy(env);
    }
}

static void config_refused(void)
{
    const char *bad[] = {"{\"chain_threads\": -1}", "{\"chain_threads\": 1025}", "{\"chain_threads\": \"two\"}",
                         "{\"chain_threads\": 2.5}"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        sage_env *env = sage_env_create("bad", bad[k]);
        CHECK_INT(sage_env_errcode(env), SAGE_ECONFIG);
        CHECK_STR(sage_env_errmsg(env),
                  "config key \"chain_threads\": expected a number of threads from 0 (one per instance) to 1024, "
                  "or \"cpus\"");
        sage_env_destroy(env);
    }
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(exact_on_fewer_threads);
    RUN(threads_per_cpu);
    RUN(one_thread_each_otherwise);
    RUN(cpu_requests_keep_threads);
    RUN(member_failure_fails_job);
    RUN(cancel_reaches_groups);
    RUN(stop_drains_groups);
    RUN(backpressure_exact);
    RUN(explain_says_threads);
    RUN(operator_threads);
    RUN(config_refused);
    return CHECK_DONE();
}
