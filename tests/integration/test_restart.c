/* tests/integration/test_restart.c - the restart strategy in embedded mode: exact results, exhaustion, windows, delays. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pipeline_util.h"

/* Words: record i is word i % 37; the count of each word is known exactly. */
#define NWORDS 60000
static int gen_words(sage_ctx *c, sage_out *o, void *u)
{
    uint64_t i = (uint64_t)(uintptr_t)sage_ctx_local(c), p = (uint64_t)sage_ctx_parallelism(c);
    if (i == 0)
        i = (uint64_t)sage_ctx_instance(c) + 1;
    i--;
    char w[16];
    for (int k = 0; k < 256 && i < NWORDS; k++, i += p) {
        int n = snprintf(w, sizeof w, "w%d", (int)(i % 37));
        if (sage_emit(o, w, (size_t)n) < 0)
            return SAGE_ECANCELED;
    }
    sage_ctx_set_local(c, (void *)(uintptr_t)(i + 1));
    return i >= NWORDS ? SAGE_DONE : SAGE_MORE;
}
static int key_self(const void *r, size_t n, void *kb, void *u)
{
    memcpy(kb, r, n);
    return (int)n;
}

/* Fails when the shared countdown reaches zero, at most once per attempt: a failure disarms it (the rest of
 * the dying attempt goes on for a moment), and the next attempt's first open arms it again. */
static _Atomic int64_t countdown;  /* records until the next failure */
static _Atomic int armed;          /* a failure may happen in this attempt */
static _Atomic int failures_left;  /* failures still to inject */
static _Atomic int attempts_seen;  /* count operators opened (one per attempt and instance) */
static _Atomic int64_t next_every; /* records into each later attempt */
static int count_open(sage_ctx *c, void *u)
{
    int before = atomic_fetch_add(&attempts_seen, 1);
    if (before > 0 && before % sage_ctx_parallelism(c) == 0 && failures_left > 0) {
        atomic_store(&countdown, next_every);
        atomic_store(&armed, 1);
    }
    return 0;
}
static int count_word(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (armed && atomic_fetch_sub(&countdown, 1) == 1) {
        atomic_store(&armed, 0);
        failures_left--;
        sage_ctx_fail(c, "injected failure");
        return SAGE_ETOOBIG;
    }
    int64_t *cnt = sage_ctx_state(c, sizeof *cnt);
    if (!cnt)
        return SAGE_ENOMEM;
    ++*cnt;
    return 0;
}
static int emit_count(const void *key, size_t kl, void *state, void *arg)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%.*s %" PRId64, (int)kl, (const char *)key, *(int64_t *)state);
    return sage_emit(arg, line, (size_t)n) < 0;
}
static int counts_close(sage_ctx *c, sage_out *o, void *u) { return sage_ctx_state_foreach(c, emit_count, o) ? -1 : 0; }

/* Run the word count with this config and these injected failures; the collector's lines (sorted, joined). */
static int run_count(const char *config, int failures, int64_t first_at, int64_t then_every, sage_env **envp, char *out,
                     size_t cap)
{
    atomic_store(&failures_left, failures);
    atomic_store(&countdown, first_at);
    atomic_store(&armed, 1);
    atomic_store(&next_every, then_every);
    atomic_store(&attempts_seen, 0);
    sage_env *env = sage_env_create("restart", config);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_words, NULL, &(sage_op_opts){.name = "words", .parallelism = 2});
    s = sage_flat_map(sage_key_by(s, key_self, NULL), count_word, NULL,
                      &(sage_op_opts){.name = "count", .parallelism = 3, .open = count_open, .close = counts_close});
    sage_sink_collect(s, c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    size_t n;
    char **v = collected_strs(c, &n);
    size_t l = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && l + 64 < cap; i++)
        l += (size_t)snprintf(out + l, cap - l, "%s\n", v[i]);
    free_strs(v, n);
    sage_collector_destroy(c);
    *envp = env;
    return rc;
}


static char expected[4096];

static void expected_counts(void)
{
    int counts[37] = {0};
    for (int i = 0; i < NWORDS; i++)
        counts[i % 37]++;
    char *lines[37];
    for (int k = 0; k < 37; k++) {
        lines[k] = malloc(32);
        snprintf(lines[k], 32, "w%d %d", k, counts[k]);
    }
    qsort(lines, 37, sizeof *lines, cmp_str);
    size_t l = 0;
    for (int k = 0; k < 37; k++) {
        l += (size_t)snprintf(expected + l, sizeof expected - l, "%s\n", lines[k]);
        free(lines[k]);
    }
}

static void one_failure_exact_result(void)
{
    expected_counts();
    char got[4096];
    sage_env *env;
    uint64_t seed = sage_now_ns();
    int64_t at = 1 + (int64_t)(seed % (NWORDS - 1)); /* a random record */
    int rc = run_count("{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"fixed\", "
                       "\"max_attempts\": 3, \"delay\": 0.01}}",
                       1, at, 0, &env, got, sizeof got);
    if (rc != 0)
        fprintf(stderr, "  failure at record %lld: %s\n", (long long)at, sage_env_errmsg(env));
    CHECK_INT(rc, 0);
    CHECK_STR(got, expected);
    CHECK_INT(attempts_seen, 6); /* 3 instances, 2 attempts */
    CHECK_INT(sage_env_state(env), SAGE_JOB_FINISHED);
    sage_env_destroy(env);
}

static void without_strategy_fails_fast(void)
{
    char got[4096];
    sage_env *env;
    CHECK_INT(run_count(NULL, 1, 1000, 0, &env, got, sizeof got), SAGE_ETOOBIG);
    CHECK_INT(attempts_seen, 3);
    CHECK_CONTAINS(sage_env_errmsg(env), "injected failure");
    sage_env_destroy(env);
}

static void attempts_exhausted(void)
{
    char got[4096];
    sage_env *env;
    uint64_t t0 = sage_now_ns();
    int rc = run_count("{\"fault_tolerance\": {\"strategy\": \"restart\", \"max_attempts\": 2, \"delay\": 0.01}}", 100,
                       500, 500, &env, got, sizeof got);
    double s = (double)(sage_now_ns() - t0) / 1e9;
    CHECK_INT(rc, SAGE_ETOOBIG); /* the last failure's own code */
    CHECK_CONTAINS(sage_env_errmsg(env), "recovery attempts exhausted after 2 restarts (restart: fixed delay 0.01s, at "
                                         "most 2 restarts); the last failure: operator \"count\" instance ");
    CHECK_CONTAINS(sage_env_errmsg(env), "injected failure");
    CHECK_INT(attempts_seen, 9);
    CHECK_INT(sage_env_state(env), SAGE_JOB_FAILED);
    CHECK(s < 30); /* bounded */
    sage_env_destroy(env);
}

static void failure_rate_window(void)
{
    char got[4096];
    sage_env *env;
    /* two failures in a long window are allowed, the third is not */
    int rc = run_count("{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"failure_rate\", "
                       "\"max_failures_per_interval\": 2, \"interval_seconds\": 60, \"delay\": 0.01}}",
                       2, 300, 300, &env, got, sizeof got);
    CHECK_INT(rc, 0);
    CHECK_STR(got, expected);
    sage_env_destroy(env);
    rc = run_count("{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"failure_rate\", "
                   "\"max_failures_per_interval\": 2, \"interval_seconds\": 60, \"delay\": 0.01}}",
                   3, 300, 300, &env, got, sizeof got);
    CHECK_INT(rc, SAGE_ETOOBIG);
    CHECK_CONTAINS(sage_env_errmsg(env),
                   "recovery attempts exhausted after 2 restarts (restart: delay 0.01s, at most 2 "
                   "failures in 60s)");
    sage_env_destroy(env);
    /* failures further apart than the window never add up: five in a row, each alone in its window */
    rc = run_count("{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"failure_rate\", "
                   "\"max_failures_per_interval\": 1, \"interval_seconds\": 0.02, \"delay\": 0.05}}",
                   5, 300, 300, &env, got, sizeof got);
    CHECK_INT(rc, 0);
    CHECK_STR(got, expected);
    sage_env_destroy(env);
}

static void exponential_delays(void)
{
    char got[4096];
    sage_env *env;
    uint64_t t0 = sage_now_ns();
    int rc = run_count("{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"exponential\", "
                       "\"initial_delay\": 0.05, \"multiplier\": 2, \"max_delay\": 0.15, \"max_attempts\": 5}}",
                       3, 200, 200, &env, got, sizeof got);
    double s = (double)(sage_now_ns() - t0) / 1e9;
    CHECK_INT(rc, 0);
    CHECK_STR(got, expected);
    CHECK(s >= 0.05 + 0.10 + 0.15); /* three delays, the last one capped */
    sage_env_destroy(env);
}

/* A cancel during the delay ends the job at once, with the failure that led there. */
static void cancel_during_delay(void)
{
    atomic_store(&failures_left, 1);
    atomic_store(&countdown, 10);
    atomic_store(&armed, 1);
    sage_env *env = sage_env_create("restart", "{\"fault_tolerance\": {\"strategy\": \"restart\", \"delay\": 3600}}");
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_words, NULL, &(sage_op_opts){.name = "words"});
    s = sage_flat_map(sage_key_by(s, key_self, NULL), count_word, NULL, &(sage_op_opts){.name = "count"});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_submit(env), 0);
    CHECK_INT(sage_env_wait(env, 300), SAGE_ETIMEDOUT); /* failed once, now waiting an hour to restart */
    CHECK_INT(sage_env_state(env), SAGE_JOB_RUNNING);
    uint64_t t0 = sage_now_ns();
    CHECK_INT(sage_env_cancel(env), 0);
    CHECK_INT(sage_env_wait(env, -1), SAGE_ETOOBIG);
    CHECK((sage_now_ns() - t0) / 1000000u < 5000);
    CHECK_CONTAINS(sage_env_errmsg(env), "injected failure");
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* Not yet through a JobManager: refused at submit, never silently ignored. */
int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    expected_counts();
    RUN(one_failure_exact_result);
    RUN(without_strategy_fails_fast);
    RUN(attempts_exhausted);
    RUN(failure_rate_window);
    RUN(exponential_delays);
    RUN(cancel_during_delay);
    return CHECK_DONE();
}
