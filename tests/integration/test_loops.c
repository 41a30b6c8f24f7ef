/* tests/integration/test_loops.c - feedback loops (sage_from_future / sage_fill_future), embedded and under a JobManager.
 *
 * This program is both the driver and the user program a JobManager
 * relaunches: `test_loops pipeline NAME WHERE [N]` declares pipeline NAME on
 * an environment (WHERE "embedded", or a JobManager's HOST:PORT), executes
 * it and prints "rc R", the error if any, then what it collected, one
 * record per line. The loop pipelines carry records {id, left, rounds}: each
 * goes round the loop until `left` reaches 0 (id % 13 rounds, at least 1),
 * so the exact output is known: every id once, with its number of rounds. */
#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "jm_daemon.h"
#include "pipeline_util.h"

static char self[1024];
static char *big; /* 8 MiB output buffer */
#define BIG (8 << 20)

typedef struct rec {
    int64_t id, left, rounds;
} rec;

static int64_t rounds_of(int64_t id) { return id % 13 ? id % 13 : 1; }

/* ---------------------------------------------------------------- pipelines */

static int to_rec(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t id = sage_rec_i64(r, n), every = u ? *(const int64_t *)u : 0;
    rec x = {id, every ? every : id % 13, 0};
    return sage_emit(o, &x, sizeof x);
}

static int step(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    rec x;
    memcpy(&x, r, sizeof x);
    x.rounds++;
    if (x.left > 0)
        x.left--;
    return sage_emit(o, &x, sizeof x);
}

/* amplify: each record goes back twice, for ever */
static int twice(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int rc = sage_emit(o, r, n);
    return rc ? rc : sage_emit(o, r, n);
}

static int more_left(sage_ctx *c, const void *r, size_t n, void *u)
{
    rec x;
    memcpy(&x, r, sizeof x);
    return x.left > 0;
}

static int none_left(sage_ctx *c, const void *r, size_t n, void *u) { return !more_left(c, r, n, u); }
static int always(sage_ctx *c, const void *r, size_t n, void *u) { return 1; }
static int never(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static int as_text(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    rec x;
    memcpy(&x, r, sizeof x);
    char line[64];
    int l = snprintf(line, sizeof line, "%" PRId64 " %" PRId64, x.id, x.rounds);
    return sage_emit(o, line, (size_t)l);
}

static int i64_text(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    char line[32];
    int l = snprintf(line, sizeof line, "%" PRId64, sage_rec_i64(r, n));
    return sage_emit(o, line, (size_t)l);
}

/* a close hook inside the loop that emits (back into it, through the filter that feeds the future) */
static int emit_at_close(sage_ctx *c, sage_out *o, void *u)
{
    rec x = {-1, 5, 0};
    return sage_emit(o, &x, sizeof x);
}

static int run_pipeline(const char *name, const char *where, uint64_t n)
{
    char config[512];
    const char *jm = strcmp(where, "embedded") == 0 ? NULL : where;
    const char *extra = strcmp(name, "saturate") == 0  ? ", \"batch_bytes\": 256, \"channel_bytes\": 256"
                        : strcmp(name, "amplify") == 0 ? ", \"loop_buffer_bytes\": \"64KiB\""
                                                       : "";
    snprintf(config, sizeof config, "{\"max_parallelism\": 64%s%s%s%s}", jm ? ", \"jobmanager\": \"" : "", jm ? jm : "",
             jm ? "\"" : "", extra);
    sage_env *env = sage_env_create(name, config);
    sage_collector *c = sage_collector_create(64 << 20), *c2 = sage_collector_create(0);
    static int64_t every20 = 20;
    sage_stream *src = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src", .parallelism = 2});
    if (strcmp(name, "passthrough") == 0) { /* no loop: the future passes what fills it */
        sage_stream *fut = sage_from_future(env, "later");
        sage_sink_collect(sage_map(fut, i64_text, NULL, &(sage_op_opts){.name = "text"}), c,
                          &(sage_op_opts){.name = "out"});
        sage_fill_future(src, fut);
    } else if (strcmp(name, "noentry") == 0) { /* a loop nothing enters: it ends at once */
        sage_stream *fut = sage_from_future(env, "idle");
        sage_stream *s = sage_map(fut, step, NULL, &(sage_op_opts){.name = "step"});
        sage_fill_future(sage_filter(s, always, NULL, &(sage_op_opts){.name = "back"}), fut);
        sage_sink_collect(sage_map(sage_filter(s, never, NULL, &(sage_op_opts){.name = "exit"}), as_text, NULL,
                                   &(sage_op_opts){.name = "text"}),
                          c, &(sage_op_opts){.name = "out"});
        sage_sink_collect(sage_map(src, i64_text, NULL, &(sage_op_opts){.name = "srctext"}), c2,
                          &(sage_op_opts){.name = "srcout"});
    } else {
        int sat = strcmp(name, "saturate") == 0, amp = strcmp(name, "amplify") == 0;
        sage_stream *in = sage_map(src, to_rec, sat ? &every20 : NULL,
                                   &(sage_op_opts){.name = "torec", .parallelism = 2});
        sage_stream *fut = sage_from_future(env, "again");
        sage_stream *both[2] = {in, fut};
        sage_stream *u = sage_union(both, 2, &(sage_op_opts){.name = "enter", .parallelism = 2});
        sage_op_opts so = {.name = "step", .parallelism = 3};
        if (strcmp(name, "closehook") == 0)
            so.close = emit_at_close;
        sage_stream *s = amp ? sage_flat_map(sage_rebalance(u), twice, NULL, &so)
                             : sage_map(sage_rebalance(u), step, NULL, &so);
        sage_fill_future(sage_filter(s, amp ? always : more_left, NULL,
                                     &(sage_op_opts){.name = "back", .parallelism = 3}),
                         fut);
        sage_stream *out = sage_filter(s, amp ? never : none_left, NULL,
                                       &(sage_op_opts){.name = "exit", .parallelism = 3});
        sage_sink_collect(sage_map(out, as_text, NULL, &(sage_op_opts){.name = "text", .parallelism = 3}), c,
                          &(sage_op_opts){.name = "out"});
    }
    int rc = sage_env_execute(env);
    printf("rc %d\n", rc);
    if (rc != 0)
        printf("error: %s\n", sage_env_errmsg(env));
    size_t got;
    char **v = collected_strs(c, &got);
    for (size_t i = 0; i < got; i++)
        printf("%s\n", v[i]);
    free_strs(v, got);
    sage_env_destroy(env);
    sage_collector_destroy(c);
    sage_collector_destroy(c2);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ helpers */

/* out holds "rc 0" and exactly the lines "id rounds" for ids 1..n (sorted as strings, as collected_strs
 * sorts them), every round count as `every` gives it (0: id % 13, at least 1). */
static int exact_rounds(const char *out, uint64_t n, int64_t every)
{
    char **want = malloc(n * sizeof *want);
    for (uint64_t i = 0; i < n; i++) {
        int64_t id = (int64_t)i + 1, r = every ? every : rounds_of(id);
        want[i] = malloc(48);
        snprintf(want[i], 48, "%" PRId64 " %" PRId64, id, r);
    }
    qsort(want, n, sizeof *want, cmp_str);
    const char *p = out;
    int ok = strncmp(p, "rc 0\n", 5) == 0;
    if (!ok)
        fprintf(stderr, "the job said: %.300s\n", out);
    p += 5;
    for (uint64_t i = 0; ok && i < n; i++) {
        size_t l = strlen(want[i]);
        if (strncmp(p, want[i], l) != 0 || p[l] != '\n') {
            fprintf(stderr, "line %llu: expected \"%s\", got \"%.40s\"\n", (unsigned long long)i + 1, want[i], p);
            ok = 0;
        }
        p += l + 1;
    }
    if (ok && *p) {
        fprintf(stderr, "more lines than expected: \"%.40s\"\n", p);
        ok = 0;
    }
    for (uint64_t i = 0; i < n; i++)
        free(want[i]);
    free(want);
    return ok;
}

/* ------------------------------------------------------------------- cases */

/* Records go round until they are done; each leaves once, after exactly its rounds; the job ends by itself. */
static void loop_embedded_exact(void)
{
    CHECK_INT(run_cmd(big, BIG, "%s pipeline iterate embedded 5000", self), 0);
    CHECK(exact_rounds(big, 5000, 0));
}

/* Tiny batches and channels, 100000 records each going round 20 times: every queue of the loop fills, and
 * what comes back waits at the future instead of blocking the loop's last task (which would deadlock it). */
static void saturated_loop_does_not_deadlock(void)
{
    CHECK_INT(run_cmd(big, BIG, "timeout -k 5 100 %s pipeline saturate embedded 100000", self), 0);
    CHECK(exact_rounds(big, 100000, 20));
}

/* A loop that doubles its records each round outgrows loop_buffer_bytes: the job fails naming the future. */
static void amplifying_loop_fails_named(void)
{
    CHECK_INT(run_cmd(big, BIG, "timeout -k 5 100 %s pipeline amplify embedded 1000", self), 1);
    CHECK_CONTAINS(big, "error: future \"again\": more than 65536 bytes of records wait to go round its loop again "
                        "(config loop_buffer_bytes)");
}

/* A close hook inside the loop emitting back into it, after the loop ended: the job fails, saying so. */
static void close_hook_into_ended_loop_fails(void)
{
    CHECK_INT(run_cmd(big, BIG, "timeout -k 5 100 %s pipeline closehook embedded 100", self), 1);
    CHECK_CONTAINS(big, "future \"again\": a record came back into its loop after the loop ended");
}

/* A loop nothing enters ends at once, empty; a future filled by a stream that does not depend on it is a
 * plain pass-through. */
static void loop_without_entry_and_passthrough(void)
{
    CHECK_INT(run_cmd(big, BIG, "timeout -k 5 60 %s pipeline noentry embedded 10", self), 0);
    CHECK_STR(big, "rc 0\n");
    CHECK_INT(run_cmd(big, BIG, "timeout -k 5 60 %s pipeline passthrough embedded 3", self), 0);
    CHECK_STR(big, "rc 0\n1\n2\n3\n");
}

/* What the plan refuses, each named. */
static void loop_refusals(void)
{
    sage_collector *col = sage_collector_create(0);
    sage_env *env = sage_env_create("unfilled", NULL);
    sage_stream *f = sage_from_future(env, "fb");
    sage_sink_collect(f, col, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EPLAN);
    CHECK_CONTAINS(sage_env_errmsg(env), "future \"fb\" is never filled");
    sage_env_destroy(env);

    env = sage_env_create("twice", NULL);
    uint64_t n = 3;
    sage_stream *src = sage_from_generator(env, gen_range, &n, NULL);
    f = sage_from_future(env, "fb");
    CHECK_INT(sage_fill_future(src, f), 0);
    CHECK_INT(sage_fill_future(src, f), SAGE_EPLAN);
    CHECK_CONTAINS(sage_env_errmsg(env), "future \"fb\" is already filled");
    sage_env_destroy(env);

    env = sage_env_create("notfuture", NULL);
    src = sage_from_generator(env, gen_range, &n, NULL);
    CHECK_INT(sage_fill_future(src, src), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env), "the second stream is not a future");
    sage_env_destroy(env);

    /* a loop inside a loop */
    env = sage_env_create("nested", NULL);
    src = sage_from_generator(env, gen_range, &n, NULL);
    sage_stream *outer = sage_from_future(env, "outer"), *inner = sage_from_future(env, "inner");
    sage_stream *a[2] = {src, outer};
    sage_stream *u1 = sage_union(a, 2, &(sage_op_opts){.name = "u1"});
    sage_stream *b[2] = {u1, inner};
    sage_stream *u2 = sage_union(b, 2, &(sage_op_opts){.name = "u2"});
    sage_stream *s = sage_map(u2, step, NULL, &(sage_op_opts){.name = "s"});
    sage_fill_future(sage_filter(s, more_left, NULL, NULL), inner);
    sage_fill_future(sage_filter(s, more_left, NULL, NULL), outer);
    sage_sink_collect(sage_filter(s, none_left, NULL, NULL), col, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EPLAN);
    CHECK_CONTAINS(sage_env_errmsg(env), "is inside the loops of futures \"outer\" and \"inner\": a loop inside "
                                         "another loop is not supported");
    sage_env_destroy(env);

    env = sage_env_create("ckpt", "{\"fault_tolerance\": {\"strategy\": \"checkpoint\"}}");
    src = sage_from_generator(env, gen_range, &n, NULL);
    f = sage_from_future(env, "fb");
    sage_stream *c[2] = {src, f};
    s = sage_map(sage_union(c, 2, NULL), step, NULL, NULL);
    sage_fill_future(sage_filter(s, more_left, NULL, NULL), f);
    sage_sink_collect(sage_filter(s, none_left, NULL, NULL), col, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EPLAN);
    CHECK_CONTAINS(sage_env_errmsg(env), "future \"fb\" closes a feedback loop, and checkpoints do not cover loops");
    sage_env_destroy(env);
    sage_collector_destroy(col);
}

/* A loop whose records never leave runs until canceled, and cancel ends it at once. */
static int forever_back(sage_ctx *c, const void *r, size_t n, void *u) { return 1; }
static void cancel_ends_endless_loop(void)
{
    sage_env *env = sage_env_create("forever", NULL);
    uint64_t n = 1000;
    sage_stream *src = sage_from_generator(env, gen_range, &n, NULL);
    sage_stream *f = sage_from_future(env, "fb");
    sage_stream *c[2] = {src, f};
    sage_stream *s = sage_map(sage_union(c, 2, NULL), i64_text, NULL, NULL);
    sage_fill_future(sage_filter(s, forever_back, NULL, NULL), f);
    sage_collector *col = sage_collector_create(0);
    sage_sink_collect(sage_filter(s, never, NULL, NULL), col, NULL);
    CHECK_INT(sage_env_submit(env), 0);
    CHECK_INT(sage_env_wait(env, 300), SAGE_ETIMEDOUT); /* still going round */
    int64_t t0 = now_ms();
    CHECK_INT(sage_env_cancel(env), 0);
    CHECK_INT(sage_env_wait(env, 10000), SAGE_ECANCELED);
    CHECK(now_ms() - t0 < 5000);
    sage_env_destroy(env);
    sage_collector_destroy(col);
}

/* Under a JobManager the future is a process of its own; the loop's markers cross sockets: Unix sockets, and
 * TCP (the data plane of several hosts, and of Slurm). */
static void loop_under_jobmanager(void)
{
    daemon_t tcp = {.config = "{\"data_plane\": \"tcp\"}"};
    if (daemon_up(&tcp)) {
        CHECK_INT(run_cmd(big, BIG, "SAGE_HOME=%s timeout -k 5 100 %s pipeline iterate %s 3000", tcp.home, self,
                          tcp.addr),
                  0);
        CHECK(exact_rounds(big, 3000, 0));
        daemon_down(&tcp);
    }
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    CHECK_INT(run_cmd(big, BIG, "SAGE_HOME=%s timeout -k 5 100 %s pipeline iterate %s 3000", d.home, self, d.addr), 0);
    CHECK(exact_rounds(big, 3000, 0));
    CHECK_INT(run_cmd(big, BIG, "SAGE_HOME=%s timeout -k 5 100 %s pipeline saturate %s 20000", d.home, self, d.addr),
              0);
    CHECK(exact_rounds(big, 20000, 20));
    daemon_down(&d);
}

int main(int argc, char **argv)
{
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], argv[3], argc == 5 ? strtoull(argv[4], NULL, 10) : 100);
    CHECK_MAIN(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    big = malloc(BIG);
    RUN(loop_embedded_exact);
    RUN(saturated_loop_does_not_deadlock);
    RUN(amplifying_loop_fails_named);
    RUN(close_hook_into_ended_loop_fails);
    RUN(loop_without_entry_and_passthrough);
    RUN(loop_refusals);
    RUN(cancel_ends_endless_loop);
    RUN(loop_under_jobmanager);
    free(big);
    return CHECK_DONE();
}
