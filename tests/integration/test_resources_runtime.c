/* tests/integration/test_resources_runtime.c - resources applied at run time: cores seen from inside an
 * instance, GPU shares, custom resources, refusal before anything starts, object-store caps as backpressure. */
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "check.h"
#include "pipeline_util.h"

typedef struct seen {
    pthread_mutex_t mu;
    int opens;
    cpu_set_t affinity[8];
    int gpu[8];
    double share[8];
} seen;

static int record_open(sage_ctx *c, void *u)
{
    seen *s = u;
    pthread_mutex_lock(&s->mu);
    s->opens++;
    int i = sage_ctx_instance(c);
    if (i < 8) {
        sched_getaffinity(0, sizeof s->affinity[i], &s->affinity[i]);
        const sage_assignment *a = sage_ctx_assignment(c);
        s->gpu[i] = a->ngpus ? a->gpus[0] : -1;
        s->share[i] = a->gpu_fraction;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }
static int sink_ok(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static void exclusive_cores_from_inside(void)
{
    cpu_set_t all;
    sched_getaffinity(0, sizeof all, &all);
    int real[CPU_SETSIZE], nreal = 0;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &all))
            real[nreal++] = i;
    if (nreal < 2)
        SKIP("this process may run on %d CPU, the test needs 2", nreal);
    seen a = {.mu = PTHREAD_MUTEX_INITIALIZER}, b = {.mu = PTHREAD_MUTEX_INITIALIZER},
         k = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t n = 1000;
    sage_env *env = sage_env_create("pin", "{\"node\": {\"cpus\": 2}}");
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(s, pass, &a, &(sage_op_opts){.name = "a", .open = record_open, .resources = "{\"num_cpus\": 1}"});
    s = sage_map(s, pass, &b, &(sage_op_opts){.name = "b", .open = record_open, .resources = "{\"num_cpus\": 1}"});
    sage_sink(sage_rebalance(s), sink_ok, &k, &(sage_op_opts){.name = "k", .open = record_open});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(CPU_COUNT(&a.affinity[0]), 1);
    CHECK(CPU_ISSET(real[0], &a.affinity[0]));
    CHECK_INT(CPU_COUNT(&b.affinity[0]), 1);
    CHECK(CPU_ISSET(real[1], &b.affinity[0]));
    CHECK(CPU_EQUAL(&k.affinity[0], &all)); /* nothing unreserved is left: the sink is unpinned */
    char *plan = sage_env_explain(env);
    /* the source (no resources) chains with "a"; "a" and "b" both reserve, so they do not chain */
    CHECK_CONTAINS(plan,
                   "chain 0 (parallelism 1)\n  source \"source_0\"\n  map \"a\" (chained) resources per instance: "
                   "num_cpus=1\n  not chained with \"b\": both declare resources\n  instance 0: cpus 0 exclusive\n"
                   "chain 1 (parallelism 1)\n  map \"b\" <- forward from \"a\" resources per instance: num_cpus=1\n"
                   "  instance 0: cpus 1 exclusive\nchain 2 (parallelism 1)\n  sink \"k\" <- rebalance from \"b\"\n"
                   "  instance 0: cpus any (unpinned: every core is reserved)\n");
    free(plan);
    sage_env_destroy(env);

    /* A fractional request shares a core; unreserved instances get the cores nobody holds exclusively. */
    seen f = {.mu = PTHREAD_MUTEX_INITIALIZER}, u = {.mu = PTHREAD_MUTEX_INITIALIZER};
    env = sage_env_create("pin2", "{\"node\": {\"cpus\": 2}}");
    s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(s, pass, &f, &(sage_op_opts){.name = "whole", .open = record_open, .resources = "{\"num_cpus\": 1}"});
    sage_sink(sage_rebalance(s), sink_ok, &u, &(sage_op_opts){.name = "free", .parallelism = 2, .open = record_open});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(CPU_COUNT(&f.affinity[0]), 1);
    CHECK(CPU_ISSET(real[0], &f.affinity[0]));
    CHECK_INT(CPU_COUNT(&u.affinity[0]), 1);
    CHECK(CPU_ISSET(real[1], &u.affinity[0]));
    sage_env_destroy(env);
}

static void gpu_shares(void)
{
    seen g = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t n = 100;
    sage_env *env = sage_env_create("gpus", "{\"node\": {\"cpus\": 4, \"gpus\": 2}}");
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(
        sage_rebalance(s), sink_ok, &g,
        &(sage_op_opts){.name = "infer", .parallelism = 3, .open = record_open, .resources = "{\"num_gpus\": 0.5}"});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(g.gpu[0], 0);
    CHECK_INT(g.gpu[1], 0);
    CHECK_INT(g.gpu[2], 1);
    CHECK(g.share[0] == 0.5 && g.share[2] == 0.5);
    char *json = sage_env_explain_json(env);
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    CHECK(root != NULL);
    json_t *inst = json_array_get(json_object_get(json_array_get(json_object_get(root, "chains"), 1), "instances"), 2);
    CHECK_INT(json_integer_value(json_array_get(json_object_get(inst, "gpus"), 0)), 1);
    CHECK(json_real_value(json_object_get(inst, "gpu_fraction")) == 0.5);
    json_t *req = json_object_get(json_array_get(json_object_get(root, "operators"), 1), "resources");
    CHECK(json_real_value(json_object_get(req, "num_gpus")) == 0.5);
    json_decref(root);
    free(json);
    sage_env_destroy(env);
}

static void custom_and_refusal(void)
{
    seen c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t n = 10;
    sage_env *env = sage_env_create("ssd", "{\"node\": {\"name\": \"n1\", \"cpus\": 4, \"resources\": {\"ssd\": 2}}}");
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_rebalance(s), sink_ok, &c,
              &(sage_op_opts){.name = "writer",
                              .parallelism = 2,
                              .open = record_open,
                              .resources = "{\"resources\": {\"ssd\": 1}}"});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(c.opens, 2);
    sage_env_destroy(env);

    /* One instance too many: refused, and no user code ran anywhere (atomic placement). */
    seen none = {.mu = PTHREAD_MUTEX_INITIALIZER};
    env = sage_env_create("ssd", "{\"node\": {\"name\": \"n1\", \"cpus\": 4, \"resources\": {\"ssd\": 2}}}");
    s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(s, pass, &none, &(sage_op_opts){.name = "first", .open = record_open});
    sage_sink(sage_rebalance(s), sink_ok, &none,
              &(sage_op_opts){.name = "writer",
                              .parallelism = 3,
                              .open = record_open,
                              .resources = "{\"resources\": {\"ssd\": 1}}"});
    CHECK_INT(sage_env_execute(env), SAGE_EINFEASIBLE);
    CHECK_STR(sage_env_errmsg(env),
              "cannot place the job: 1 operator does not fit\n"
              "  operator \"writer\" (parallelism 3): one instance asks ssd=1; all 3 ask ssd=3; the "
              "largest node offers ssd=2");
    CHECK_INT(none.opens, 0);
    CHECK_INT(sage_env_state(env), SAGE_JOB_FAILED);
    sage_env_destroy(env);
}

/* A tiny object store slows the producer, it never fails the job or drops a record. */
static int gen_kb(sage_ctx *c, sage_out *o, void *u)
{
    static const char kb[1000];
    uint64_t d = (uint64_t)(uintptr_t)sage_ctx_local(c);
    for (int k = 0; k < 64 && d < 20000; k++, d++)
        if (sage_emit(o, kb, sizeof kb) < 0)
            return SAGE_ECANCELED;
    sage_ctx_set_local(c, (void *)(uintptr_t)d);
    return d >= 20000 ? SAGE_DONE : SAGE_MORE;
}

static void object_store_is_backpressure(void)
{
    sage_env *env = sage_env_create("store", NULL);
    sage_stream *s = sage_from_generator(env, gen_kb, NULL, NULL);
    sage_sink(sage_rebalance(s), sink_ok, NULL,
              &(sage_op_opts){.name = "capped", .parallelism = 2, .resources = "{\"object_store_memory\": \"4KiB\"}"});
    CHECK_INT(sage_env_execute(env), 0);
    sage_metric m;
    CHECK_INT(sage_env_metric(env, "capped", -1, "records_in", &m), 0);
    CHECK_INT(m.value, 20000);
    sage_env_destroy(env);
}

static void infeasible_cpu_and_memory(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("big",
                                    "{\"node\": {\"name\": \"n\", \"cpus\": 20, \"gpus\": 2, \"memory\": \"64GB\"}}");
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(s, pass, NULL,
                 &(sage_op_opts){.name = "heavy",
                                 .parallelism = 4,
                                 .resources = "{\"num_cpus\": 6, \"memory\": \"20GB\"}"});
    sage_sink(s, sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINFEASIBLE);
    CHECK_STR(sage_env_errmsg(env),
              "cannot place the job: 1 operator does not fit\n"
              "  operator \"heavy\" (parallelism 4): one instance asks num_cpus=6 memory=20GB; all 4 "
              "ask num_cpus=24 memory=80GB; the largest node offers num_cpus=20 memory=64GB");
    sage_env_destroy(env);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(exclusive_cores_from_inside);
    RUN(gpu_shares);
    RUN(custom_and_refusal);
    RUN(object_store_is_backpressure);
    RUN(infeasible_cpu_and_memory);
    return CHECK_DONE();
}
