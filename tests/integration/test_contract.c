/* tests/integration/test_contract.c - the rules the public headers state, each checked as written there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pipeline_util.h"

static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }
static int drop(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

/* stream.h: reserved slots of sage_op_opts must be zero. */
static void reserved_options_refused(void)
{
    sage_env *env = sage_env_create("reserved", NULL);
    sage_op_opts o = {.name = "src"};
    o.reserved[3] = &o;
    int64_t v[] = {1};
    CHECK(sage_from_int64s(env, v, 1, &o) == NULL);
    CHECK_INT(sage_env_errcode(env), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env), "reserved fields of sage_op_opts must be zero");
    sage_env_destroy(env);
}

/* env.h: an error before the job runs is returned by submit, and wait returns the same code. */
static void wait_after_failed_submit(void)
{
    sage_env *env = sage_env_create("bad-sink", NULL);
    int64_t v[] = {1, 2};
    sage_sink_file(sage_from_int64s(env, v, 2, NULL), "/nonexistent-dir/out.txt", &(sage_op_opts){.name = "out"});
    int rc = sage_env_submit(env);
    CHECK_INT(rc, SAGE_EIO);
    CHECK_CONTAINS(sage_env_errmsg(env), "operator \"out\": cannot open \"/nonexistent-dir/out.txt\" for writing");
    CHECK_INT(sage_env_wait(env, -1), SAGE_EIO);
    CHECK_INT(sage_env_state(env), SAGE_JOB_FAILED);
    sage_env_destroy(env);

    env = sage_env_create("no-sink", NULL); /* a compile error: no job at all */
    sage_map(sage_from_int64s(env, v, 2, NULL), pass, NULL, NULL);
    CHECK_INT(sage_env_submit(env), SAGE_EPLAN);
    CHECK_INT(sage_env_wait(env, 0), SAGE_EPLAN);
    sage_env_destroy(env);
}

/* env.h: wait, stop, cancel and metrics without a submit are SAGE_ESTATE and record nothing. */
static void calls_before_submit(void)
{
    sage_env *env = sage_env_create("idle", NULL);
    int64_t v[] = {1};
    sage_sink(sage_from_int64s(env, v, 1, &(sage_op_opts){.name = "src"}), drop, NULL, NULL);
    CHECK_INT(sage_env_wait(env, 0), SAGE_ESTATE);
    CHECK_INT(sage_env_stop(env), SAGE_ESTATE);
    CHECK_INT(sage_env_cancel(env), SAGE_ESTATE);
    sage_metric m;
    CHECK_INT(sage_env_metric(env, "src", -1, "records_out", &m), SAGE_ESTATE);
    CHECK_INT(sage_env_errcode(env), 0); /* nothing recorded: the job still runs */
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_env_metric(env, "src", -1, "records_out", &m), 0);
    CHECK_INT(m.value, 1);
    sage_env_destroy(env);
}

/* env.h: the node config is checked at create, naming the key. */
static void node_config_checked_at_create(void)
{
    sage_env *env = sage_env_create("node", "{\"node\": {\"cpus\": -1}}");
    CHECK_INT(sage_env_errcode(env), SAGE_ECONFIG);
    CHECK_CONTAINS(sage_env_errmsg(env), "node config: key \"cpus\"");
    sage_env_destroy(env);
}

/* stream.h: along a chain, open runs head first and stops at the first failure; close runs exactly
 * for the opened instances. */
static int opened[4], closed[4];
static int open_ok(sage_ctx *c, void *u)
{
    opened[(intptr_t)u]++;
    return 0;
}
static int open_fail(sage_ctx *c, void *u)
{
    opened[(intptr_t)u]++;
    return SAGE_EINVAL;
}
static int close_count(sage_ctx *c, sage_out *o, void *u)
{
    closed[(intptr_t)u]++;
    return 0;
}
static int fwd(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }
static int sink_fn(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static void close_hook_rule(void)
{
    memset(opened, 0, sizeof opened);
    memset(closed, 0, sizeof closed);
    sage_env *env = sage_env_create("hooks", NULL);
    int64_t v[] = {1, 2, 3};
    sage_stream *s = sage_from_int64s(env, v, 3, &(sage_op_opts){.name = "src"});
    s = sage_map(s, fwd, (void *)0, &(sage_op_opts){.name = "a", .open = open_ok, .close = close_count});
    s = sage_map(s, fwd, (void *)1, &(sage_op_opts){.name = "b", .open = open_fail, .close = close_count});
    s = sage_map(s, fwd, (void *)2, &(sage_op_opts){.name = "c", .close = close_count}); /* no open hook */
    sage_sink(s, sink_fn, (void *)3, &(sage_op_opts){.name = "d", .open = open_ok, .close = close_count});
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env), "operator \"b\" instance 0 failed");
    CHECK_INT(opened[0], 1);
    CHECK_INT(opened[1], 1);
    CHECK_INT(opened[3], 0); /* never reached */
    CHECK_INT(closed[0], 1); /* opened: closed */
    CHECK_INT(closed[1], 0); /* its open failed */
    CHECK_INT(closed[2], 0); /* no open hook, but the open pass never reached it */
    CHECK_INT(closed[3], 0);
    sage_env_destroy(env);
}

/* context.h: a fail message belongs to the call that wrote it, emits in between or not. */
static int fail_after_emit(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (sage_rec_i64(r, n) != 2)
        return sage_emit(o, r, n);
    sage_ctx_fail(c, "record two is bad");
    int rc = sage_emit(o, r, n); /* an emit between the message and the failure */
    return rc < 0 ? rc : SAGE_EINVAL;
}
static int recover_then_fail(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (sage_rec_i64(r, n) == 1) {
        sage_ctx_fail(c, "a message for record one, which then recovered");
        return sage_emit(o, r, n);
    }
    return sage_rec_i64(r, n) == 3 ? SAGE_ETOOBIG : sage_emit(o, r, n);
}

static void fail_message_per_call(void)
{
    int64_t v[] = {1, 2, 3};
    sage_env *env = sage_env_create("msg", NULL);
    sage_sink(sage_flat_map(sage_from_int64s(env, v, 3, NULL), fail_after_emit, NULL, &(sage_op_opts){.name = "m"}),
              drop, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env), "record two is bad");
    sage_env_destroy(env);
    env = sage_env_create("stale", NULL);
    sage_sink(sage_flat_map(sage_from_int64s(env, v, 3, NULL), recover_then_fail, NULL, &(sage_op_opts){.name = "m"}),
              drop, NULL, NULL);
    CHECK_INT(sage_env_execute(env), SAGE_ETOOBIG);
    CHECK(strstr(sage_env_errmsg(env), "record one") == NULL); /* not reused for record three */
    CHECK_CONTAINS(sage_env_errmsg(env), "value exceeds its bound");
    sage_env_destroy(env);
}

/* stream.h: emits from close hooks fail once the job is canceled, also into a fused sink. */
static _Atomic int sunk_after_cancel, close_emit_rc;
static int cancel_src(sage_ctx *c, sage_out *o, void *u)
{
    sage_env_cancel((sage_env *)u);
    int rc = sage_emit_i64(o, 1);
    return rc < 0 ? rc : SAGE_MORE;
}
static int map_pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }
static int map_close_emits(sage_ctx *c, sage_out *o, void *u)
{
    close_emit_rc = sage_emit_i64(o, 42);
    return 0;
}
static int count_sink(sage_ctx *c, const void *r, size_t n, void *u)
{
    if (sage_rec_i64(r, n) == 42)
        sunk_after_cancel++;
    return 0;
}

static void close_emits_fail_after_cancel(void)
{
    sunk_after_cancel = 0;
    close_emit_rc = 0;
    sage_env *env = sage_env_create("cancel-close", NULL);
    sage_stream *s = sage_from_source(env, cancel_src, env, &(sage_op_opts){.name = "src"});
    s = sage_map(s, map_pass, NULL, &(sage_op_opts){.name = "m", .close = map_close_emits});
    sage_sink(s, count_sink, NULL, &(sage_op_opts){.name = "k"}); /* fused: src -> m -> k in one task */
    CHECK_INT(sage_env_submit(env), 0);
    CHECK_INT(sage_env_wait(env, -1), SAGE_ECANCELED);
    CHECK_INT(close_emit_rc, SAGE_ECANCELED);
    CHECK_INT(sunk_after_cancel, 0);
    sage_env_destroy(env);
}

/* stream.h / env.h: names that would become bad file names or forge log lines are refused, in every mode. */
static void names_refused(void)
{
    static const struct {
        const char *name, *why;
    } ops[] = {
        {"parse/json", "the operator name contains '/' (at offset 5): operator names become file names"},
        {"../../../../tmp/x/trav", "contains '/'"},
        {"..", "is \".\" or \"..\""},
        {"line\nforged", "contains a control character (byte 0x0a at offset 4)"},
        {"red\x1b[31m", "byte 0x1b"},
        {"del\x7f", "byte 0x7f"},
        {"", "the operator name is empty"},
        {"caf\xe9", "is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        sage_env *env = sage_env_create("names", NULL);
        int64_t v[] = {1};
        CHECK(sage_from_int64s(env, v, 1, &(sage_op_opts){.name = ops[i].name}) == NULL);
        CHECK_INT(sage_env_errcode(env), SAGE_EINVAL);
        CHECK_CONTAINS(sage_env_errmsg(env), ops[i].why);
        sage_env_destroy(env);
    }
    sage_env *env = sage_env_create("ok names: a.b-c_d \xc3\xa9t\xc3\xa9", NULL); /* UTF-8, blanks, dots */
    int64_t v[] = {1};
    sage_sink(sage_from_int64s(env, v, 1, &(sage_op_opts){.name = "a.b c"}), drop, NULL,
              &(sage_op_opts){.name = "\xc3\xa9t\xc3\xa9"});
    CHECK_INT(sage_env_execute(env), 0);
    sage_env_destroy(env);
    env = sage_env_create("job\nFORGED line", NULL);
    CHECK_INT(sage_env_errcode(env), SAGE_EINVAL);
    CHECK_STR(sage_env_errmsg(env),
              "sage_env_create: the job name contains a control character (byte 0x0a at offset 3)");
    sage_env_destroy(env);
    env = sage_env_create_remote("job\x1b[2J", "127.0.0.1", 1, NULL); /* remote envs apply the same rule */
    CHECK_INT(sage_env_errcode(env), SAGE_EINVAL);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL); /* refused before anything is sent */
    sage_env_destroy(env);
}

/* context.h: a message the emitting function recorded stands when routing its record then fails (a binding
 * that computes keys itself reports its own reason there). */
static int bad_key(const void *r, size_t n, void *kb, void *u) { return -5; }
static int says_why(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    sage_ctx_fail(c, "the key of record %lld cannot be computed: Traceback ...", (long long)sage_rec_i64(r, n));
    return sage_emit(o, r, n);
}
static void routing_failure_keeps_message(void)
{
    int64_t v[] = {7};
    sage_env *env = sage_env_create("route", NULL);
    sage_stream *s = sage_map(sage_from_int64s(env, v, 1, NULL), says_why, NULL, &(sage_op_opts){.name = "m"});
    sage_sink(sage_key_by(s, bad_key, NULL), drop, NULL, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), SAGE_EUSER);
    CHECK_CONTAINS(sage_env_errmsg(env), "the key of record 7 cannot be computed: Traceback");
    sage_env_destroy(env);
    env = sage_env_create("route", NULL); /* without one, the engine's own reason */
    s = sage_map(sage_from_int64s(env, v, 1, NULL), pass, NULL, &(sage_op_opts){.name = "m"});
    sage_sink(sage_key_by(s, bad_key, NULL), drop, NULL, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), SAGE_EUSER);
    CHECK_CONTAINS(sage_env_errmsg(env), "the key function returned -5");
    sage_env_destroy(env);
}

/* jobmanager.h: no state directory without a home (no shared /tmp fallback). */
static void home_dir_without_home(void)
{
    char out[1024];
    const char *h = getenv("HOME"), *sh = getenv("SAGE_HOME");
    char *saved_h = h ? strdup(h) : NULL, *saved_sh = sh ? strdup(sh) : NULL;
    unsetenv("SAGE_HOME");
    unsetenv("HOME");
    int rc = sage_home_dir(NULL, out, sizeof out);
    CHECK(rc == 0 || rc == SAGE_ENOTFOUND);
    if (rc == 0) /* the password database knows our home */
        CHECK(strncmp(out, "/tmp/", 5) != 0 && strstr(out, "/.sage") != NULL);
    CHECK_INT(sage_home_dir("/srv/sage", out, sizeof out), 0);
    CHECK_STR(out, "/srv/sage");
    CHECK_INT(sage_home_dir("/a/path/longer/than/the/buffer", out, 8), SAGE_ETOOBIG);
    if (saved_h)
        setenv("HOME", saved_h, 1);
    if (saved_sh)
        setenv("SAGE_HOME", saved_sh, 1);
    free(saved_h);
    free(saved_sh);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(reserved_options_refused);
    RUN(wait_after_failed_submit);
    RUN(calls_before_submit);
    RUN(node_config_checked_at_create);
    RUN(close_hook_rule);
    RUN(fail_message_per_call);
    RUN(close_emits_fail_after_cancel);
    RUN(names_refused);
    RUN(routing_failure_keeps_message);
    RUN(home_dir_without_home);
    return CHECK_DONE();
}
