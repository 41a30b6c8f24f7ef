/* tests/integration/test_batch.c - batch operators (sage/batch.h): mixed chains, views, parallelism, errors, hooks. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "jm_daemon.h" /* a JobManager of the test's own: workers in processes of their own */
#include "pipeline_util.h"

/* What batch functions saw, summed over every call of every instance. */
typedef struct seen {
    _Atomic uint64_t calls, records, columnar, per_record, max_n;
} seen;

static void note(seen *s, const sage_batch *in)
{
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&s->records, in->n);
    atomic_fetch_add(in->width ? &s->columnar : &s->per_record, 1);
    uint64_t m = atomic_load(&s->max_n);
    while (in->n > m && !atomic_compare_exchange_weak(&s->max_n, &m, in->n))
        ;
}

/* v -> v + 1 for every record, written into a scratch array and emitted at once. */
static int add_one_batch(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    note(udata, in);
    if (in->width != 8)
        return SAGE_EINVAL;
    int64_t *o = malloc(in->n * 8);
    for (size_t i = 0; i < in->n; i++) {
        int64_t v;
        memcpy(&v, (const char *)in->data + 8 * i, 8);
        o[i] = v + 1;
    }
    int rc = sage_emit_batch(out, o, 8, in->n);
    free(o);
    return rc;
}

static int times2(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *u)
{
    return sage_emit_i64(out, 2 * sage_rec_i64(rec, len));
}

static int keep_div3(sage_ctx *c, const void *rec, size_t len, void *u) { return sage_rec_i64(rec, len) % 3 == 0; }

/* Per-record -> batch -> per-record in one chain, exact output in order. */
static void mixed_chain(void)
{
    seen s = {0};
    sage_env *env = sage_env_create("mixed", "{\"batch_bytes\": 1024}");
    sage_collector *c = sage_collector_create(0);
    uint64_t n = 5000;
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map(st, times2, NULL, NULL);
    st = sage_map_batches(st, add_one_batch, &s, NULL);
    st = sage_filter(st, keep_div3, NULL, NULL);
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_STR(sage_env_op_name(env, 2), "map_batches_2");
    /* 2v + 1 for v = 1..5000, kept when divisible by 3: v = 1, 4, 7, ... (2v + 1 = 3, 9, 15, ...) */
    size_t got = sage_collector_count(c), k = 0;
    CHECK_INT(got, 1667);
    for (uint64_t v = 1; v <= n; v++) {
        if ((2 * v + 1) % 3 != 0)
            continue;
        size_t len;
        const void *r = k < got ? sage_collector_get(c, k, &len) : NULL;
        if (!r || sage_rec_i64(r, len) != (int64_t)(2 * v + 1)) {
            CHECK(!"record out of order or wrong");
            break;
        }
        k++;
    }
    /* one chain, records collected: 1024 batch bytes hold 128 records; every batch columnar */
    CHECK_INT(atomic_load(&s.records), 5000);
    CHECK_INT(atomic_load(&s.per_record), 0);
    CHECK(atomic_load(&s.max_n) == 128);
    CHECK(atomic_load(&s.calls) >= 5000 / 128);
    char *plan = sage_env_explain(env);
    CHECK(plan && strstr(plan, "map_batches \"map_batches_2\"")); /* its kind, as explain names it */
    free(plan);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* An array handed down the chain: the next batch operator reads the emitter's own buffer. */
static const int64_t SHARED[4] = {10, 20, 30, 40};
static _Atomic int same_pointer;
static int emit_shared(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    for (size_t i = 0; i < in->n; i++) {
        int rc = sage_emit_batch(out, SHARED, 8, 4);
        if (rc < 0)
            return rc;
    }
    return 0;
}
static int check_shared(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    if (in->data == SHARED && in->n == 4)
        atomic_fetch_add(&same_pointer, 1);
    return sage_emit_view(out, in);
}

static void zero_copy_in_chain(void)
{
    same_pointer = 0;
    sage_env *env = sage_env_create("zerocopy", NULL);
    sage_collector *c = sage_collector_create(0);
    int64_t vals[3] = {1, 2, 3};
    sage_stream *st = sage_from_int64s(env, vals, 3, NULL);
    st = sage_map_batches(st, emit_shared, NULL, NULL);
    st = sage_map_batches(st, check_shared, NULL, NULL);
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(atomic_load(&same_pointer), 3);
    CHECK_INT(sage_collector_count(c), 12);
    for (size_t i = 0; i < sage_collector_count(c); i++) {
        size_t len;
        const void *r = sage_collector_get(c, i, &len);
        CHECK_INT(sage_rec_i64(r, len), SHARED[i % 4]);
    }
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* Batch operators at parallelism 2 and 3, after rebalance and after key_by: every record once, every key
 * at one instance. */
static _Atomic int key_owner[7];
static int key_mod7(const void *rec, size_t len, void *kb, void *u)
{
    int64_t k = sage_rec_i64(rec, len) % 7;
    memcpy(kb, &k, 8);
    return 8;
}
static int owner_check(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    note(udata, in);
    CHECK(sage_ctx_key(ctx, NULL) == NULL);
    for (size_t i = 0; i < in->n; i++) {
        size_t len;
        const void *r = sage_batch_rec(in, i, &len);
        int64_t v = sage_rec_i64(r, len);
        int want = 0, me = sage_ctx_instance(ctx) + 1;
        if (!atomic_compare_exchange_strong(&key_owner[v % 7], &want, me) && want != me)
            return SAGE_EINVAL; /* a key at two instances */
        int rc = sage_emit_i64(out, v * 10);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void parallel_rebalance_key_by(void)
{
    for (int i = 0; i < 7; i++)
        key_owner[i] = 0;
    seen s1 = {0}, s2 = {0};
    sage_env *env = sage_env_create("par", "{\"batch_bytes\": 512}");
    sage_collector *c = sage_collector_create(0);
    uint64_t n = 20000;
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map_batches(sage_rebalance(st), add_one_batch, &s1, &(sage_op_opts){.parallelism = 2});
    st = sage_map_batches(sage_key_by(st, key_mod7, NULL), owner_check, &s2, &(sage_op_opts){.parallelism = 3});
    sage_sink_collect(st, c, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, n);
    for (size_t i = 0; i < got && i < n; i++)
        if (v[i] != (int64_t)(i + 2) * 10) {
            CHECK_INT(v[i], (int64_t)(i + 2) * 10);
            break;
        }
    free(v);
    /* after rebalance the records came packed (columnar, zero-copy); after key_by one width: columnar too */
    CHECK_INT(atomic_load(&s1.records), n);
    CHECK_INT(atomic_load(&s1.per_record), 0);
    CHECK_INT(atomic_load(&s2.records), n);
    CHECK_INT(atomic_load(&s2.per_record), 0);
    CHECK(atomic_load(&s1.max_n) <= 512 / 8);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* More records out than in (each twice, one at a time) and fewer (the even ones, compacted). */
static int twice(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    for (size_t i = 0; i < in->n; i++) {
        size_t len;
        const void *r = sage_batch_rec(in, i, &len);
        int rc;
        if ((rc = sage_emit(out, r, len)) < 0 || (rc = sage_emit(out, r, len)) < 0)
            return rc;
    }
    return 0;
}
static int evens(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    int64_t *o = malloc(in->n * 8);
    size_t k = 0;
    for (size_t i = 0; i < in->n; i++) {
        int64_t v;
        memcpy(&v, (const char *)in->data + 8 * i, 8);
        o[k] = v;
        k += (v & 1) == 0;
    }
    int rc = sage_emit_batch(out, o, 8, k);
    free(o);
    return rc;
}

static void more_and_fewer(void)
{
    sage_env *env = sage_env_create("morefewer", NULL);
    sage_collector *c = sage_collector_create(0);
    uint64_t n = 3001;
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map_batches(st, twice, NULL, NULL);
    st = sage_map_batches(st, evens, NULL, &(sage_op_opts){.parallelism = 2}); /* across threads: packed */
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, 3000); /* 1500 evens, twice each */
    for (size_t i = 0; i < got && i < 3000; i++)
        if (v[i] != (int64_t)(i / 2 + 1) * 2) {
            CHECK_INT(v[i], (int64_t)(i / 2 + 1) * 2);
            break;
        }
    free(v);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* Records of several lengths: the per-record view, in the chain and across threads; records of one length
 * among them stay columnar. */
static const char *const WORDS[] = {"to", "be", "or", "not", "to", "be", "that", "is", "the", "question"};
#define NW (sizeof WORDS / sizeof WORDS[0])

static int upper(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    note(udata, in);
    for (size_t i = 0; i < in->n; i++) {
        size_t len;
        const char *r = sage_batch_rec(in, i, &len);
        char buf[64];
        for (size_t k = 0; k < len && k < sizeof buf; k++)
            buf[k] = (char)(r[k] >= 'a' && r[k] <= 'z' ? r[k] - 32 : r[k]);
        int rc = sage_emit(out, buf, len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void variable_width(void)
{
    seen s1 = {0}, s2 = {0};
    size_t lens[NW];
    for (size_t i = 0; i < NW; i++)
        lens[i] = strlen(WORDS[i]);
    sage_env *env = sage_env_create("varwidth", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *st = sage_from_collection(env, (const void *const *)WORDS, lens, NW, NULL);
    st = sage_map_batches(st, upper, &s1, NULL); /* collected in the chain */
    st = sage_map_batches(st, upper, &s2, &(sage_op_opts){.parallelism = 2, .name = "up2"}); /* across threads */
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    char **v = collected_strs(c, &got);
    CHECK_INT(got, NW);
    const char *want[] = {"BE", "BE", "IS", "NOT", "OR", "QUESTION", "THAT", "THE", "TO", "TO"};
    for (size_t i = 0; i < got && i < NW; i++)
        CHECK_STR(v[i], want[i]);
    free_strs(v, got);
    CHECK_INT(atomic_load(&s1.records), NW);
    CHECK_INT(atomic_load(&s1.per_record), 1); /* one source call, one batch of mixed lengths */
    CHECK_INT(atomic_load(&s1.columnar), 0);
    CHECK_INT(atomic_load(&s2.records), NW);
    CHECK(atomic_load(&s2.per_record) >= 1);
    sage_env_destroy(env);
    sage_collector_destroy(c);

    /* two-letter words only: one width, so columnar after the chain and across threads */
    seen s3 = {0}, s4 = {0};
    const char *two[] = {"ab", "cd", "ef"};
    size_t tl[] = {2, 2, 2};
    env = sage_env_create("onewidth", NULL);
    c = sage_collector_create(0);
    st = sage_from_collection(env, (const void *const *)two, tl, 3, NULL);
    st = sage_map_batches(st, upper, &s3, NULL);
    st = sage_map_batches(st, upper, &s4, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), 3);
    CHECK_INT(atomic_load(&s3.per_record), 0);
    CHECK_INT(atomic_load(&s4.per_record), 0);
    CHECK_INT(atomic_load(&s4.records), 3);
    sage_env_destroy(env);
    sage_collector_destroy(c);

    /* empty records among others, in the chain and across threads (a packed route turns to rows) */
    const char *emp[] = {"", "ab", "", "", "cde", "", "fg"};
    size_t el[] = {0, 2, 0, 0, 3, 0, 2};
    env = sage_env_create("empty", NULL);
    c = sage_collector_create(0);
    st = sage_from_collection(env, (const void *const *)emp, el, 7, NULL);
    st = sage_map_batches(st, upper, &s3, NULL);
    st = sage_map_batches(st, upper, &s4, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    v = collected_strs(c, &got);
    CHECK_INT(got, 7);
    const char *ewant[] = {"", "", "", "", "AB", "CDE", "FG"};
    for (size_t i = 0; i < got && i < 7; i++)
        CHECK_STR(v[i], ewant[i]);
    free_strs(v, got);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* A negative return fails the job, naming the operator; bad emits and declarations are refused. */
static int fail_at_big(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    for (size_t i = 0; i < in->n; i++) {
        size_t len;
        const void *r = sage_batch_rec(in, i, &len);
        if (sage_rec_i64(r, len) > 2000) {
            sage_ctx_fail(ctx, "value too big");
            return SAGE_EINVAL;
        }
    }
    return sage_emit_view(out, in);
}
static int emit_width0(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    return sage_emit_batch(out, in->data, 0, in->n);
}
static int sink_minus(sage_ctx *ctx, const sage_batch *in, void *udata) { return -7; }

static void errors(void)
{
    sage_env *env = sage_env_create("boom", NULL);
    sage_collector *c = sage_collector_create(0);
    uint64_t n = 5000;
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map_batches(st, fail_at_big, NULL, &(sage_op_opts){.name = "picky"});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env), "operator \"picky\" instance 0 failed after ");
    CHECK_CONTAINS(sage_env_errmsg(env), "value too big");
    sage_env_destroy(env);
    sage_collector_destroy(c);

    env = sage_env_create("width0", NULL);
    c = sage_collector_create(0);
    int64_t one = 1;
    st = sage_map_batches(sage_from_int64s(env, &one, 1, NULL), emit_width0, NULL, &(sage_op_opts){.name = "w0"});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env),
                   "operator \"w0\" instance 0 failed after 1 record: sage_emit_batch: width is 0");
    sage_env_destroy(env);
    sage_collector_destroy(c);

    env = sage_env_create("sinkfail", NULL);
    sage_sink_batches(sage_rebalance(sage_from_int64s(env, &one, 1, NULL)), sink_minus, NULL,
                      &(sage_op_opts){.name = "drain", .parallelism = 2});
    CHECK(sage_env_execute(env) < 0);
    CHECK_CONTAINS(sage_env_errmsg(env), "operator \"drain\" instance ");
    CHECK_CONTAINS(sage_env_errmsg(env), "its function returned -7");
    sage_env_destroy(env);

    env = sage_env_create("decl", NULL);
    CHECK(sage_map_batches(sage_from_int64s(env, &one, 1, NULL), NULL, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_map_batches: the function is NULL");
    sage_env_destroy(env);
    env = sage_env_create("decl2", NULL);
    CHECK(sage_sink_batches(sage_from_int64s(env, &one, 1, NULL), NULL, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_sink_batches: the function is NULL");
    sage_env_destroy(env);
}

/* Close hooks: what a per-record operator's close emits reaches the batch operator before the batch
 * operator's own close, whose emits reach the sink; a batch sink counts it all. */
static int close_emit_99(sage_ctx *ctx, sage_out *out, void *udata) { return sage_emit_i64(out, 99); }
static int sum_batch(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata)
{
    int64_t *sum = sage_ctx_local(ctx);
    for (size_t i = 0; i < in->n; i++) {
        size_t len;
        const void *r = sage_batch_rec(in, i, &len);
        *sum += sage_rec_i64(r, len);
    }
    return 0;
}
static int sum_open(sage_ctx *ctx, void *udata)
{
    sage_ctx_set_local(ctx, calloc(1, sizeof(int64_t)));
    return 0;
}
static int sum_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    int64_t *sum = sage_ctx_local(ctx);
    int rc = sage_emit_i64(out, *sum);
    free(sum);
    return rc;
}
static int64_t sink_total;
static int sink_all(sage_ctx *ctx, const sage_batch *in, void *udata)
{
    for (size_t i = 0; i < in->n; i++)
        sink_total += sage_rec_i64((const char *)in->data + 8 * i, 8) * 1000;
    return 0;
}
static int identity(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *u)
{
    return sage_emit(out, rec, len);
}

static void close_hooks(void)
{
    sink_total = 0;
    sage_env *env = sage_env_create("closing", NULL);
    uint64_t n = 100;
    sage_stream *st = sage_from_generator(env, gen_range, &n, NULL);
    st = sage_map(st, identity, NULL, &(sage_op_opts){.close = close_emit_99});
    st = sage_map_batches(st, sum_batch, NULL, &(sage_op_opts){.open = sum_open, .close = sum_close});
    sage_sink_batches(st, sink_all, NULL, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sink_total, (5050 + 99) * 1000); /* the sum, with the close hook's 99, as one record */
    sage_env_destroy(env);
}

/* Under a checkpointing job: barriers find nothing collected, the outputs are exact. The source runs
 * until two checkpoints were committed (at most 50 M records), and says how many it emitted. */
typedef struct ck_src {
    sage_env *env;
    uint64_t next, emitted;
} ck_src;
static int gen_until_checkpoints(sage_ctx *ctx, sage_out *out, void *udata)
{
    ck_src *s = udata;
    sage_checkpoint_stats st;
    sage_env_checkpoint_stats(s->env, &st);
    if (st.completed >= 2 || s->next >= 50000000)
        return SAGE_DONE;
    for (int k = 0; k < 1000; k++) {
        int rc = sage_emit_i64(out, (int64_t)++s->next);
        if (rc < 0)
            return rc;
    }
    s->emitted = s->next;
    return SAGE_MORE;
}

static void with_checkpoints(void)
{
    seen s = {0};
    sage_env *env = sage_env_create("ckbatch", "{\"fault_tolerance\": {\"strategy\": \"checkpoint\", "
                                               "\"checkpoint_interval\": 0.01}}");
    sage_collector *c = sage_collector_create(0);
    ck_src src = {.env = env};
    sage_stream *st = sage_from_generator(env, gen_until_checkpoints, &src, NULL);
    st = sage_map(st, times2, NULL, NULL);
    st = sage_map_batches(st, add_one_batch, &s, NULL);
    st = sage_map_batches(sage_rebalance(st), add_one_batch, &s, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(st, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    sage_checkpoint_stats cs;
    sage_env_checkpoint_stats(env, &cs);
    CHECK(cs.completed >= 2);
    uint64_t n = src.emitted;
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, n);
    for (size_t i = 0; i < got && i < n; i++)
        if (v[i] != (int64_t)(2 * (i + 1) + 2)) {
            CHECK_INT(v[i], (int64_t)(2 * (i + 1) + 2));
            break;
        }
    free(v);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* Under a JobManager, one worker process per task: records cross processes in the header format and reach
 * the batch operator columnar (add_one_batch fails the job otherwise). Run as `test_batch pipeline ADDR`. */
static int run_remote(const char *addr)
{
    char config[256];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", addr);
    sage_env *env = sage_env_create("batchremote", config);
    sage_collector *c = sage_collector_create(0);
    static seen s;
    static uint64_t n = 20000;
    sage_stream *st = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    st = sage_map_batches(sage_rebalance(st), add_one_batch, &s, &(sage_op_opts){.name = "add", .parallelism = 2});
    st = sage_map(st, times2, NULL, &(sage_op_opts){.name = "x2", .parallelism = 2});
    st = sage_map_batches(st, add_one_batch, &s, &(sage_op_opts){.name = "add2", .parallelism = 2});
    sage_sink_collect(sage_rebalance(st), c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    printf("rc %d\n", rc);
    if (rc != 0)
        printf("error: %s\n", sage_env_errmsg(env));
    size_t got;
    int64_t *v = collected_sorted(c, &got), sum = 0;
    for (size_t i = 0; i < got; i++)
        sum += v[i];
    printf("count %zu sum %lld min %lld max %lld\n", got, (long long)sum, got ? (long long)v[0] : 0LL,
           got ? (long long)v[got - 1] : 0LL);
    free(v);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

static char self[4096];

static void under_jobmanager(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    static char out[1 << 16];
    CHECK_INT(run_cmd(out, sizeof out, "SAGE_HOME=%s %s pipeline %s", d.home, self, d.addr), 0);
    CHECK_CONTAINS(out, "rc 0\n");
    /* 2v + 3 for v = 1..20000: sum 20000 * 20001 + 3 * 20000 */
    CHECK_CONTAINS(out, "count 20000 sum 400080000 min 5 max 40003\n");
    daemon_down(&d);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pipeline") == 0)
        return run_remote(argv[2]);
    CHECK_MAIN(argc, argv);
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = 0;
    RUN(mixed_chain);
    RUN(zero_copy_in_chain);
    RUN(parallel_rebalance_key_by);
    RUN(more_and_fewer);
    RUN(variable_width);
    RUN(errors);
    RUN(close_hooks);
    RUN(with_checkpoints);
    RUN(under_jobmanager);
    return CHECK_DONE();
}
