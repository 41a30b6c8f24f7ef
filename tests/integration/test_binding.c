/* tests/integration/test_binding.c - a language binding's hooks: its lock held exactly around user code, and
 * records that are handles copied and dropped in balance, whatever ends the job. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pipeline_util.h"

/* The "objects": each record is a handle (an index into refs) whose count must come back to its start. */
#define NOBJ 20000
static _Atomic int refs[NOBJ];
static _Atomic long copies, drops, bad;
static _Thread_local int entered; /* this thread holds the binding's "lock" */
static _Atomic int holders;       /* threads that hold it: like a GIL, at most one */

static void b_enter(void *u)
{
    if (entered)
        bad++; /* entered twice */
    entered = 1;
    if (atomic_fetch_add(&holders, 1) != 0)
        bad++; /* two threads inside at once would break a GIL */
}
static void b_leave(void *u)
{
    if (!entered)
        bad++;
    entered = 0;
    atomic_fetch_sub(&holders, 1);
}
/* A GIL-like binding also serialises: the test's lock makes enter/leave a real mutual exclusion. */
static pthread_mutex_t gil = PTHREAD_MUTEX_INITIALIZER;
static void g_enter(void *u)
{
    pthread_mutex_lock(&gil);
    b_enter(u);
}
static void g_leave(void *u)
{
    b_leave(u);
    pthread_mutex_unlock(&gil);
}
static int handle_of(const void *rec, size_t len)
{
    int32_t h;
    if (len != sizeof h)
        return -1;
    memcpy(&h, rec, sizeof h);
    return h >= 0 && h < NOBJ ? h : -1;
}
static void b_copy(const void *rec, size_t len, void *u)
{
    int h = handle_of(rec, len);
    if (!entered || h < 0)
        bad++;
    else
        refs[h]++;
    copies++;
}
static void b_drop(const void *rec, size_t len, void *u)
{
    int h = handle_of(rec, len);
    if (!entered || h < 0 || refs[h] <= 0)
        bad++;
    else
        refs[h]--;
    drops++;
}
static const sage_binding_hooks hooks = {g_enter, g_leave, b_copy, b_drop, NULL};

static void reset(void)
{
    for (int i = 0; i < NOBJ; i++)
        refs[i] = 0;
    copies = drops = bad = 0;
}
static long leaked(void)
{
    long n = 0;
    for (int i = 0; i < NOBJ; i++)
        n += refs[i];
    return n;
}

/* User code checks that it runs entered. */
static int gen(sage_ctx *c, sage_out *o, void *u)
{
    int32_t i = (int32_t)(intptr_t)sage_ctx_local(c), p = sage_ctx_parallelism(c);
    if (!entered)
        bad++;
    if (i == 0)
        i = sage_ctx_instance(c) + 1;
    i--;
    for (int k = 0; k < 64 && i < NOBJ; k++, i += p)
        if (sage_emit(o, &i, sizeof i) < 0)
            return SAGE_ECANCELED;
    sage_ctx_set_local(c, (void *)(intptr_t)(i + 1));
    return i >= NOBJ ? SAGE_DONE : SAGE_MORE;
}
static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (!entered)
        bad++;
    return sage_emit(o, r, n);
}
static int key4(const void *r, size_t n, void *kb, void *u)
{
    int32_t h;
    memcpy(&h, r, 4);
    memcpy(kb, &h, 4);
    return 4;
}
static _Atomic long seen;
static _Atomic int fail_at, slow;
static int sink(sage_ctx *c, const void *r, size_t n, void *u)
{
    if (!entered)
        bad++;
    long k = ++seen;
    if (fail_at && k == fail_at)
        return SAGE_ETOOBIG;
    if (slow) /* a slow consumer: producers fill the queues and wait (they must leave while they wait) */
        for (volatile int i = 0; i < 20000; i++)
            ;
    return 0;
}
static int open_hook(sage_ctx *c, void *u)
{
    if (!entered)
        bad++;
    return 0;
}

static sage_env *build(const char *name, const char *config)
{
    sage_env *env = sage_env_create(name, config);
    CHECK_INT(sage_env_set_binding(env, &hooks), 0);
    sage_stream *s = sage_from_generator(env, gen, NULL, &(sage_op_opts){.name = "gen", .parallelism = 2});
    sage_stream *a = sage_map(sage_rebalance(s), pass, NULL, &(sage_op_opts){.name = "a", .parallelism = 3});
    sage_stream *k = sage_map(sage_key_by(a, key4, NULL), pass, NULL, &(sage_op_opts){.name = "k", .parallelism = 2});
    sage_sink(sage_broadcast(k), sink, NULL, &(sage_op_opts){.name = "out", .parallelism = 2, .open = open_hook});
    return env;
}

static void balanced_when_finished(void)
{
    reset();
    seen = 0;
    fail_at = slow = 0;
    sage_env *env = build("bind", "{\"batch_bytes\": 512, \"channel_bytes\": 2048}");
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(seen, 2 * NOBJ); /* broadcast to 2 sink instances */
    /* copies: into a's queues, k's and twice into the sinks' (broadcast) */
    CHECK_INT(copies, 4L * NOBJ);
    CHECK_INT(drops, copies);
    CHECK_INT(leaked(), 0);
    CHECK_INT(bad, 0);
    CHECK_INT(holders, 0);
    sage_env_destroy(env);
}

static void balanced_when_failed(void)
{
    reset();
    seen = 0;
    fail_at = 3000;
    slow = 0;
    sage_env *env = build("bind", "{\"batch_bytes\": 512, \"channel_bytes\": 2048}");
    CHECK_INT(sage_env_execute(env), SAGE_ETOOBIG);
    sage_env_destroy(env); /* records still queued go with the job */
    CHECK(copies > 0);
    CHECK_INT(drops, copies);
    CHECK_INT(leaked(), 0);
    CHECK_INT(bad, 0);
}

static void balanced_when_canceled_under_backpressure(void)
{
    reset();
    seen = 0;
    fail_at = 0;
    slow = 1;
    sage_env *env = build("bind", "{\"batch_bytes\": 512, \"channel_bytes\": 2048}");
    CHECK_INT(sage_env_submit(env), 0);
    while (seen < 500) /* running, its queues full */
        CHECK_INT(sage_env_wait(env, 5), SAGE_ETIMEDOUT);
    CHECK_INT(sage_env_cancel(env), 0);
    CHECK_INT(sage_env_wait(env, -1), SAGE_ECANCELED);
    sage_env_destroy(env);
    CHECK(copies > 0);
    CHECK_INT(drops, copies);
    CHECK_INT(leaked(), 0);
    CHECK_INT(bad, 0);
    slow = 0;
}

/* Services run their functions entered too. */
static int svc(const void *req, size_t len, sage_reply *reply, void *u)
{
    if (!entered)
        bad++;
    return sage_reply_set(reply, req, len);
}
static int calls(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    char resp[8];
    size_t rl;
    b_leave(NULL); /* a binding blocking in sage_call leaves first, as the header says */
    pthread_mutex_unlock(&gil);
    int rc = sage_call(c, "echo", r, n, 5000, resp, sizeof resp, &rl);
    g_enter(NULL);
    return rc < 0 ? rc : sage_emit(o, resp, rl);
}
static void services_entered(void)
{
    reset();
    seen = 0;
    fail_at = slow = 0;
    sage_env *env = sage_env_create("svc", NULL);
    CHECK_INT(sage_env_set_binding(env, &hooks), 0);
    CHECK_INT(sage_env_register_service(env, "echo", svc, NULL, NULL), 0);
    sage_stream *s = sage_from_generator(env, gen, NULL, &(sage_op_opts){.name = "gen"});
    s = sage_map(sage_rebalance(s), calls, NULL, &(sage_op_opts){.name = "calls", .parallelism = 2});
    sage_sink(sage_rebalance(s), sink, NULL, &(sage_op_opts){.name = "out"});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(seen, NOBJ);
    CHECK_INT(drops, copies);
    CHECK_INT(leaked(), 0);
    CHECK_INT(bad, 0);
    sage_env_destroy(env);
}

static void misuse_refused(void)
{
    sage_env *env = sage_env_create("bind", NULL);
    sage_binding_hooks half = {g_enter, NULL, NULL, NULL, NULL};
    CHECK_INT(sage_env_set_binding(env, &half), SAGE_EINVAL);
    sage_env_destroy(env);
    env = sage_env_create_remote("bind", "127.0.0.1", 1, NULL);
    CHECK_INT(sage_env_set_binding(env, &hooks), 0);
    int64_t v[] = {1};
    sage_sink(sage_from_int64s(env, v, 1, NULL), sink, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EUNSUPPORTED); /* handles cannot leave the process */
    CHECK_CONTAINS(sage_env_errmsg(env), "cannot leave this process");
    sage_env_destroy(env);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(balanced_when_finished);
    RUN(balanced_when_failed);
    RUN(balanced_when_canceled_under_backpressure);
    RUN(services_entered);
    RUN(misuse_refused);
    return CHECK_DONE();
}
