/* tests/integration/test_errors.c - failures and misuse: user errors fail the job with a precise message; bad
 * declarations are refused at declaration or compile time. */
#include <stdio.h>

#include "check.h"
#include "pipeline_util.h"

static int fail_at_500(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (sage_ctx_records_in(c) == 500)
        return -42;
    return sage_emit(o, r, n);
}

static void user_error_fails_job(void)
{
    uint64_t n = 1000000;
    sage_env *env = sage_env_create("fail", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(s, fail_at_500, NULL, &(sage_op_opts){.name = "fragile", .parallelism = 1});
    sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.parallelism = 4});
    CHECK_INT(sage_env_execute(env), SAGE_EUSER);
    CHECK_STR(sage_env_errmsg(env),
              "operator \"fragile\" instance 0 failed after 500 records: user function error (returned -42)");
    CHECK_INT(sage_env_state(env), SAGE_JOB_FAILED);
    CHECK(sage_collector_count(c) <= 499);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

static int fail_with_message(sage_ctx *c, const void *r, size_t n, void *u)
{
    if (sage_rec_i64(r, n) == 77 && sage_ctx_instance(c) == 2) {
        sage_ctx_fail(c, "record %lld is cursed", (long long)sage_rec_i64(r, n));
        return SAGE_EINVAL;
    }
    return 0;
}

static int key_self(const void *r, size_t n, void *kb, void *u)
{
    memcpy(kb, r, n);
    return (int)n;
}

static void ctx_fail_message(void)
{
    uint64_t n = 100000;
    sage_env *env = sage_env_create("fail2", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.parallelism = 2});
    s = sage_key_by(s, key_self, NULL);
    /* which instance sees 77 depends on the stable hash: use a sink that fails wherever it lands */
    sage_sink(s, fail_with_message, NULL, &(sage_op_opts){.name = "picky", .parallelism = 1});
    CHECK_INT(sage_env_execute(env), 0); /* instance 2 does not exist with parallelism 1 */
    sage_env_destroy(env);

    env = sage_env_create("fail3", NULL);
    s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_partition_custom(s, (sage_partition_fn)NULL, NULL), fail_with_message, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env), "sage_partition_custom: the partitioner is NULL");
    sage_env_destroy(env);
}

static int to_instance_2(const void *r, size_t n, int np, void *u) { return sage_rec_i64(r, n) == 77 ? 2 : 0; }

static void ctx_fail_message_routed(void)
{
    uint64_t n = 100;
    sage_env *env = sage_env_create("fail4", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_partition_custom(s, to_instance_2, NULL), fail_with_message, NULL,
              &(sage_op_opts){.name = "picky", .parallelism = 3});
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env), "operator \"picky\" instance 2 failed after 1 record: record 77 is cursed");
    sage_env_destroy(env);
}

static int bad_partition(const void *r, size_t n, int np, void *u) { return 7; }
static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }
static int sink_ok(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static void partitioner_out_of_range(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("part", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    sage_sink(sage_partition_custom(s, bad_partition, NULL), sink_ok, NULL, &(sage_op_opts){.parallelism = 4});
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env), "operator \"src\" instance 0 failed after emitting 1 record: the custom "
                                    "partitioner returned 7 for 4 instances");
    sage_env_destroy(env);
}

static int map_twice(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    sage_emit(o, r, n);
    return sage_emit(o, r, n);
}

static void map_must_emit_one(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("twice", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_map(s, map_twice, NULL, &(sage_op_opts){.name = "m"}), sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env), "operator \"m\" instance 0 failed after 1 record: a map must emit exactly one "
                                    "record per input, this one emitted 2 (use sage_flat_map)");
    sage_env_destroy(env);
}

static void misuse_refused(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("misuse", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    CHECK(sage_map(s, NULL, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_map: the function is NULL");
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL); /* sticky */
    sage_env_destroy(env);

    env = sage_env_create("misuse", NULL);
    s = sage_from_generator(env, gen_range, &n, NULL);
    CHECK(sage_map(s, pass, NULL, &(sage_op_opts){.name = "m", .parallelism = -1}) == NULL);
    CHECK_STR(sage_env_errmsg(env), "operator \"m\": parallelism -1 is outside 1..1024");
    sage_env_destroy(env);

    env = sage_env_create("misuse", "{\"max_parallelism\": 8}");
    s = sage_from_generator(env, gen_range, &n, NULL);
    CHECK(sage_map(s, pass, NULL, &(sage_op_opts){.name = "m", .parallelism = 9}) == NULL);
    CHECK_STR(sage_env_errmsg(env), "operator \"m\": parallelism 9 is outside 1..8 (config max_parallelism)");
    sage_env_destroy(env);

    env = sage_env_create("misuse", NULL);
    s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "x"});
    CHECK(sage_map(s, pass, NULL, &(sage_op_opts){.name = "x"}) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_map: operator name \"x\" is already used in job \"misuse\"");
    sage_env_destroy(env);

    /* Used after execute. */
    env = sage_env_create("after", NULL);
    s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(s, sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK(sage_map(s, pass, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_map: the job of env \"after\" was already submitted; streams cannot be "
                                    "extended after execute");
    CHECK_INT(sage_env_execute(env), SAGE_ESTATE);
    sage_env_destroy(env);

    /* Two environments. */
    sage_env *e1 = sage_env_create("one", NULL), *e2 = sage_env_create("two", NULL);
    sage_stream *a = sage_from_generator(e1, gen_range, &n, NULL), *b = sage_from_generator(e2, gen_range, &n, NULL);
    CHECK(sage_join(a, key_self, b, key_self, NULL, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(e1), "sage_join: the two streams belong to different environments (\"one\" and \"two\")");
    CHECK(sage_connect(a, b) == NULL);
    sage_env_destroy(e1);
    sage_env_destroy(e2);

    /* No sink; a dangling operator; a consumed sink; forward across parallelism. */
    env = sage_env_create("nosink", NULL);
    sage_map(sage_from_generator(env, gen_range, &n, NULL), pass, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EPLAN);
    CHECK_STR(sage_env_errmsg(env), "job \"nosink\" has no sink: end every stream with sage_sink");
    sage_env_destroy(env);

    env = sage_env_create("dangling", NULL);
    s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(s, sink_ok, NULL, NULL);
    sage_map(s, pass, NULL, &(sage_op_opts){.name = "lost"});
    CHECK_INT(sage_env_execute(env), SAGE_EPLAN);
    CHECK_STR(sage_env_errmsg(env),
              "operator \"lost\" has no consumer: its records would be lost; end the stream with a sink");
    sage_env_destroy(env);

    env = sage_env_create("sinkuse", NULL);
    s = sage_sink(sage_from_generator(env, gen_range, &n, NULL), sink_ok, NULL, &(sage_op_opts){.name = "end"});
    CHECK(sage_map(s, pass, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_map: the stream of sink \"end\" cannot be consumed");
    sage_env_destroy(env);

    env = sage_env_create("fwd", NULL);
    s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_forward(s), sink_ok, NULL, &(sage_op_opts){.name = "wide", .parallelism = 2});
    CHECK_INT(sage_env_execute(env), SAGE_EPLAN);
    CHECK_STR(sage_env_errmsg(env),
              "operator \"wide\": forward from \"source_0\" needs equal parallelism, got 1 and 2");
    sage_env_destroy(env);

    /* Bad config. */
    env = sage_env_create("cfg", "{\"batch_byte\": 10}");
    CHECK_INT(sage_env_errcode(env), SAGE_ECONFIG);
    CHECK_STR(sage_env_errmsg(env),
              "config: unknown key \"batch_byte\" (did you mean \"batch_bytes\"? known: "
              "max_parallelism, batch_bytes, channel_bytes, max_record_bytes, flush_linger_us, "
              "idle_spin_us, node, jobmanager, token_file, fault_tolerance, restore_from, loop_buffer_bytes, "
              "chain_threads)");
    sage_env_destroy(env);
    env = sage_env_create("cfg", "{\"batch_bytes\": \"12 parsecs\"}");
    CHECK_INT(sage_env_errcode(env), SAGE_ECONFIG);
    CHECK_CONTAINS(sage_env_errmsg(env), "config key \"batch_bytes\": ");
    sage_env_destroy(env);
    env = sage_env_create("cfg", "/nonexistent/sage.json");
    CHECK_INT(sage_env_errcode(env), SAGE_ECONFIG);
    CHECK_CONTAINS(sage_env_errmsg(env), "config /nonexistent/sage.json: unable to open");
    sage_env_destroy(env);
    env = sage_env_create("", NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_env_create: the job name is empty");
    sage_env_destroy(env);
    sage_env_destroy(NULL);
}

static void bad_resources_refused(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("res", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    CHECK(sage_map(s, pass, NULL, &(sage_op_opts){.name = "heavy", .resources = "{\"num_gpus\": 1.5}"}) == NULL);
    CHECK_CONTAINS(sage_env_errmsg(env), "operator \"heavy\": resources: ");
    CHECK_CONTAINS(sage_env_errmsg(env), "num_gpus");
    CHECK_INT(sage_env_errcode(env), SAGE_ERESOURCES);
    sage_env_destroy(env);
}

static void missing_input_file(void)
{
    sage_env *env = sage_env_create("nofile", NULL);
    sage_stream *s = sage_from_file_lines(env, "/nonexistent/input.txt", &(sage_op_opts){.name = "lines"});
    sage_sink(s, sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EIO);
    CHECK_STR(sage_env_errmsg(env), "operator \"lines\" instance 0 failed after emitting 0 records: cannot open "
                                    "\"/nonexistent/input.txt\": No such file or directory");
    sage_env_destroy(env);
}

static int bad_key(const void *r, size_t n, void *kb, void *u) { return SAGE_KEY_MAX + 1; }

static void key_too_long(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("key", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    sage_sink(sage_key_by(s, bad_key, NULL), sink_ok, NULL, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), SAGE_ETOOBIG);
    CHECK_CONTAINS(sage_env_errmsg(env), "returned length 1025 (at most 1024)");
    sage_env_destroy(env);
}

static int state_sizes(sage_ctx *c, const void *r, size_t n, void *u)
{
    return sage_ctx_state(c, sage_rec_i64(r, n) == 5 ? 16 : 8) ? 0 : SAGE_EINVAL;
}

static void state_size_mismatch(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("state", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_key_by(s, key_self, NULL), state_sizes, NULL, &(sage_op_opts){.name = "st"});
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env), "operator \"st\" instance 0 failed after 5 records: per-key state asked with 16 "
                                    "bytes, but this operator's state blocks have 8");
    sage_env_destroy(env);
}

static void collector_bound(void)
{
    uint64_t n = 1000;
    sage_env *env = sage_env_create("bound", NULL);
    sage_collector *c = sage_collector_create(800);
    sage_sink_collect(sage_from_generator(env, gen_range, &n, NULL), c, &(sage_op_opts){.name = "keep"});
    CHECK_INT(sage_env_execute(env), SAGE_ETOOBIG);
    CHECK_STR(sage_env_errmsg(env), "operator \"keep\" instance 0 failed after 101 records: the collector holds more "
                                    "than its limit of 800 bytes");
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* A message recorded for an earlier record is not blamed on a later failure. */
static int stale_then_fail(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (sage_ctx_records_in(c) == 1) {
        char resp[8];
        size_t rl;
        if (sage_call(c, "no_such_service", "x", 1, 10, resp, sizeof resp, &rl) != SAGE_ENOSERVICE)
            return SAGE_EINVAL; /* the error is handled: the record goes on */
    }
    if (sage_ctx_records_in(c) == 3)
        return -99;
    return sage_emit(o, r, n);
}

static int open_fails(sage_ctx *c, void *u) { return SAGE_EIO; }
static int closes;
static int count_close(sage_ctx *c, sage_out *o, void *u)
{
    closes++;
    return 0;
}

static void stale_message_and_unopened_close(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("stale", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_map(s, stale_then_fail, NULL, &(sage_op_opts){.name = "m"}), sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EUSER);
    CHECK_STR(sage_env_errmsg(env),
              "operator \"m\" instance 0 failed after 3 records: user function error (returned -99)");
    sage_env_destroy(env);

    /* open fails in the first operator of a chain: the close of the second, never opened, does not run */
    closes = 0;
    env = sage_env_create("unopened", NULL);
    s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src", .open = open_fails});
    sage_sink(sage_map(s, pass, NULL, &(sage_op_opts){.close = count_close}), sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EIO);
    CHECK_INT(closes, 0);
    sage_env_destroy(env);
}

/* A known code returned without a message is reported as returned, not as the engine's own finding. */
static int return_minus_one(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_rec_i64(r, n) == 2 ? -1 : sage_emit(o, r, n);
}
static int open_nomem(sage_ctx *c, void *u) { return SAGE_ENOMEM; }

static void returned_code_named(void)
{
    uint64_t n = 10;
    sage_env *env = sage_env_create("minus_one", NULL);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(sage_map(s, return_minus_one, NULL, &(sage_op_opts){.name = "m"}), sink_ok, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env), "operator \"m\" instance 0 failed after 2 records: its function returned -1 "
                                    "(SAGE_EINVAL: invalid argument)");
    sage_env_destroy(env);

    env = sage_env_create("open_nomem", NULL);
    s = sage_from_generator(env, gen_range, &n, NULL);
    sage_sink(s, sink_ok, NULL, &(sage_op_opts){.name = "out", .open = open_nomem});
    CHECK_INT(sage_env_execute(env), SAGE_ENOMEM);
    CHECK_CONTAINS(sage_env_errmsg(env), "operator \"out\" instance 0 failed after 0 records: its open hook "
                                         "returned -2 (SAGE_ENOMEM: out of memory)");
    sage_env_destroy(env);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(stale_message_and_unopened_close);
    RUN(returned_code_named);
    RUN(user_error_fails_job);
    RUN(ctx_fail_message);
    RUN(ctx_fail_message_routed);
    RUN(partitioner_out_of_range);
    RUN(map_must_emit_one);
    RUN(misuse_refused);
    RUN(bad_resources_refused);
    RUN(missing_input_file);
    RUN(key_too_long);
    RUN(state_size_mismatch);
    RUN(collector_bound);
    return CHECK_DONE();
}
