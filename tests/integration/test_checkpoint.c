/* tests/integration/test_checkpoint.c - the checkpoint strategy in embedded mode: exactly-once state, sinks, savepoints, corruption.
 *
 * Failures are injected by a user function at a random record, each one only
 * after a checkpoint committed since the last one (read from
 * sage_env_checkpoint_stats, which any thread may call), so every recovery
 * restores real state. Exact results: a recovery that restarted from the
 * beginning keeps the collector's records (double counts), one that lost the
 * state undercounts, one that did not rewind the sources overcounts.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "pipeline_util.h"

static char tmp[256];

static void setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/sage-ckpt-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", tmp);
}

/* ---- failure injection, after fresh checkpoints ---- */

static sage_env *_Atomic watched;  /* the env whose checkpoints arm the failures */
static _Atomic int failures_left;  /* failures still to inject */
static _Atomic uint64_t armed_at;  /* checkpoints committed when the last failure happened */
static _Atomic int64_t countdown;  /* records until the armed failure */
static _Atomic int corrupt_newest; /* before failing, truncate a part of the newest checkpoint */
static _Atomic uint64_t seed;

static _Atomic int failed_attempt; /* the attempt of the last failure (one per attempt: it is dying) */

static uint64_t rnd(void)
{
    uint64_t x = atomic_fetch_add(&seed, 0x9e3779b97f4a7c15ull) + 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void truncate_a_part(const char *dir)
{
    char p[1200];
    for (int i = 0; i < 64; i++) {
        snprintf(p, sizeof p, "%s/t%d.part", dir, i);
        if (access(p, F_OK) == 0) {
            if (truncate(p, 20) != 0)
                perror("truncate");
            return;
        }
    }
}

/* 1: fail this record. Arms once a checkpoint committed after the previous failure. */
static int should_fail(void)
{
    if (atomic_load(&failures_left) <= 0)
        return 0;
    sage_checkpoint_stats st;
    sage_env *env = atomic_load(&watched);
    if (!env || sage_env_checkpoint_stats(env, &st) != 0)
        return 0;
    uint64_t need = atomic_load(&corrupt_newest) ? 2 : 1; /* corrupting one needs an older one to fall back on */
    if (st.completed < atomic_load(&armed_at) + need)
        return 0;
    int attempt = st.recoveries + 1; /* the supervisor counts a recovery before its attempt runs */
    int prev = atomic_load(&failed_attempt);
    if (attempt <= prev)
        return 0; /* this attempt failed already (a checkpoint written before that may commit meanwhile) */
    if (atomic_fetch_sub(&countdown, 1) > 1)
        return 0;
    /* one thread wins this attempt's failure (several may reach the end of the countdown at once) */
    if (!atomic_compare_exchange_strong(&failed_attempt, &prev, attempt))
        return 0;
    atomic_store(&armed_at, st.completed); /* the next waits for a newer checkpoint and the next attempt */
    atomic_store(&countdown, 1 + (int64_t)(rnd() % 3000));
    int left = atomic_load(&failures_left);
    do
        if (left <= 0)
            return 0;
    while (!atomic_compare_exchange_weak(&failures_left, &left, left - 1));
    if (atomic_load(&corrupt_newest))
        truncate_a_part(st.last_path);
    return 1;
}

static void arm(sage_env *env, int failures, int corrupt)
{
    atomic_store(&failed_attempt, 0);
    atomic_store(&seed, sage_now_ns());
    atomic_store(&failures_left, failures);
    atomic_store(&armed_at, 0);
    atomic_store(&countdown, 1 + (int64_t)(rnd() % 3000));
    atomic_store(&corrupt_newest, corrupt);
    atomic_store(&watched, env);
}

/* ---- word count over a file ---- */

#define NLINES 400000
#define NKEYS 1000

static char words_path[300];
static int64_t expected[NKEYS];

static void write_words(void)
{
    snprintf(words_path, sizeof words_path, "%s/words.txt", tmp);
    FILE *f = fopen(words_path, "w");
    memset(expected, 0, sizeof expected);
    for (int i = 0; i < NLINES; i++) {
        int w = (int)(((uint64_t)i * 7919u + (uint64_t)i / 13u) % NKEYS);
        fprintf(f, "word%d\n", w);
        expected[w]++;
    }
    fclose(f);
}

static int key_self(const void *r, size_t n, void *kb, void *u)
{
    memcpy(kb, r, n);
    return (int)n;
}

static int count_word(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (should_fail()) {
        sage_ctx_fail(c, "injected failure");
        return SAGE_EUSER;
    }
    int64_t *cnt = sage_ctx_state(c, sizeof *cnt);
    if (!cnt)
        return SAGE_ENOMEM;
    ++*cnt;
    if (atomic_load(&failures_left) > 0 && (*cnt & 7) == 0) {
        /* While failures are still to be injected, every 8th record of a key takes 20 us or more: the job
         * cannot end before they all happened, however fast the machine (at least 0.3 s an attempt, while a
         * failure needs one 10 ms checkpoint and at most 3,000 records). */
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int emit_count(const void *key, size_t kl, void *state, void *arg)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%.*s %" PRId64, (int)kl, (const char *)key, *(int64_t *)state);
    return sage_emit(arg, line, (size_t)n) < 0;
}
static int counts_close(sage_ctx *c, sage_out *o, void *u) { return sage_ctx_state_foreach(c, emit_count, o) ? -1 : 0; }

/* Compare "wordK count" lines with the expected counts. */
static int check_counts(char **v, size_t n)
{
    if (n != NKEYS) {
        fprintf(stderr, "  %zu words counted, expected %d\n", n, NKEYS);
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        int w;
        long long cnt;
        if (sscanf(v[i], "word%d %lld", &w, &cnt) != 2 || w < 0 || w >= NKEYS || cnt != expected[w]) {
            if (ok)
                fprintf(stderr, "  line \"%s\": expected word%d %lld\n", v[i], w, (long long)expected[w]);
            ok = 0;
        }
    }
    return ok;
}

static char config[1024];
static int chain_threads; /* config chain_threads of the next ckpt_config */

static void ckpt_config(double interval, int attempts, const char *extra)
{
    snprintf(config, sizeof config,
             "{\"chain_threads\": %d, \"fault_tolerance\": {\"strategy\": \"checkpoint\", "
             "\"checkpoint_interval\": %g, \"max_recovery_attempts\": %d, \"checkpoint_dir\": \"%s/ck\"%s}}",
             chain_threads, interval, attempts, tmp, extra ? extra : "");
}

/* The word count with `failures` injected failures; returns the env (caller destroys). */
static sage_env *word_count(int failures, int corrupt, sage_collector *c, int *rc)
{
    write_words();
    sage_env *env = sage_env_create("wordcount", config);
    sage_stream *s = sage_from_file_lines(env, words_path, &(sage_op_opts){.name = "lines", .parallelism = 2});
    s = sage_flat_map(sage_key_by(s, key_self, NULL), count_word, NULL,
                      &(sage_op_opts){.name = "count", .parallelism = 3, .close = counts_close});
    sage_sink_collect(s, c, &(sage_op_opts){.name = "out"});
    arm(env, failures, corrupt);
    *rc = sage_env_execute(env);
    atomic_store(&watched, NULL);
    return env;
}

/* The word count with `failures` injected failures succeeds with exact counts: its statistics. */
static sage_checkpoint_stats exact_word_count(int failures, int corrupt)
{
    sage_collector *c = sage_collector_create(0);
    int rc;
    sage_env *env = word_count(failures, corrupt, c, &rc);
    if (rc != 0)
        fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    CHECK_INT(rc, 0);
    size_t n;
    char **v = collected_strs(c, &n);
    CHECK(check_counts(v, n));
    free_strs(v, n);
    sage_checkpoint_stats st;
    CHECK_INT(sage_env_checkpoint_stats(env, &st), 0);
    CHECK_INT(failures_left, 0);
    sage_env_destroy(env);
    sage_collector_destroy(c);
    return st;
}

static void chaos_word_count(void)
{
    ckpt_config(0.01, 5, NULL);
    sage_checkpoint_stats st = exact_word_count(3, 0);
    CHECK_INT(st.recoveries, 3);
    CHECK(st.completed >= 3);
    CHECK(st.last_bytes > 0);
    fprintf(stderr, "  %" PRIu64 " checkpoints, the last %" PRIu64 " bytes, paused %.2f ms, %d recoveries\n",
            st.completed, st.last_bytes, st.last_pause_ms, st.recoveries);
    CHECK(access(st.last_path, F_OK) != 0); /* the run finished: its checkpoints are gone */
}

/* The same with the three counting instances on two threads (config chain_threads): barriers, captures
 * and restores of instances that share a thread. */
static void chaos_word_count_grouped(void)
{
    chain_threads = 2;
    ckpt_config(0.01, 5, NULL);
    chain_threads = 0;
    sage_checkpoint_stats st = exact_word_count(3, 0);
    CHECK_INT(st.recoveries, 3);
    CHECK(st.completed >= 3);
}

static void corrupt_checkpoint_falls_back(void)
{
    ckpt_config(0.01, 5, ", \"checkpoints_retained\": 3");
    CHECK_INT(exact_word_count(1, 1).recoveries, 1);
}

static void attempts_exhausted(void)
{
    ckpt_config(0.01, 2, NULL);
    sage_collector *c = sage_collector_create(0);
    int rc;
    sage_env *env = word_count(100, 0, c, &rc);
    CHECK_INT(rc, SAGE_EUSER);
    const char *msg = sage_env_errmsg(env);
    CHECK(strstr(msg, "recovery attempts exhausted after 2 recoveries (checkpoint every 0.01s, at most 2 "
                      "recoveries); the last failure: operator \"count\" instance") != NULL);
    CHECK(strstr(msg, "injected failure") != NULL);
    if (!strstr(msg, "exhausted"))
        fprintf(stderr, "  %s\n", msg);
    CHECK_INT(sage_env_state(env), SAGE_JOB_FAILED);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* ---- the file sink ---- */

static int to_line(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (should_fail()) {
        sage_ctx_fail(c, "injected failure");
        return SAGE_EUSER;
    }
    char line[32];
    int l = snprintf(line, sizeof line, "v%" PRId64, sage_rec_i64(r, n));
    if ((sage_rec_i64(r, n) & 1023) == 0) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return sage_emit(o, line, (size_t)l);
}

static void file_sink_exactly_once(void)
{
    ckpt_config(0.01, 5, NULL);
    enum { N = 300000 };
    int64_t *vals = malloc(N * sizeof *vals);
    for (int i = 0; i < N; i++)
        vals[i] = i;
    char out[300];
    snprintf(out, sizeof out, "%s/out.txt", tmp);
    sage_env *env = sage_env_create("filesink", config);
    sage_stream *s = sage_from_int64s(env, vals, N, &(sage_op_opts){.name = "nums", .parallelism = 2});
    s = sage_map(sage_rebalance(s), to_line, NULL, &(sage_op_opts){.name = "fmt", .parallelism = 2});
    sage_sink_file(s, out, &(sage_op_opts){.name = "file", .parallelism = 2});
    free(vals);
    arm(env, 2, 0);
    int rc = sage_env_execute(env);
    atomic_store(&watched, NULL);
    if (rc != 0)
        fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    CHECK_INT(rc, 0);
    CHECK_INT(failures_left, 0);
    /* every value exactly once */
    unsigned char *seen = calloc(N, 1);
    FILE *f = fopen(out, "r");
    char line[64];
    long lines = 0, dup = 0, bad = 0;
    while (f && fgets(line, sizeof line, f)) {
        long v;
        lines++;
        if (sscanf(line, "v%ld", &v) != 1 || v < 0 || v >= N)
            bad++;
        else if (seen[v]++)
            dup++;
    }
    if (f)
        fclose(f);
    CHECK_INT(lines, N);
    CHECK_INT(dup, 0);
    CHECK_INT(bad, 0);
    free(seen);
    sage_env_destroy(env);
}

/* ---- savepoints, with user snapshot hooks on a source and a keyed running sum ---- */

#define SP_N 200000
static _Atomic int gate_open; /* the source emits past SP_N / 2 only once open */
static _Atomic int at_gate;   /* every instance reached the gate */
static _Atomic int restores;  /* restore hook calls */

typedef struct gen_state {
    int64_t next; /* the next value this instance emits */
} gen_state;

static int gen_open(sage_ctx *c, void *u)
{
    gen_state *g = calloc(1, sizeof *g);
    g->next = sage_ctx_instance(c) + 1;
    sage_ctx_set_local(c, g);
    return 0;
}
static int gen_close(sage_ctx *c, sage_out *o, void *u)
{
    free(sage_ctx_local(c));
    return 0;
}
static int gen_snapshot(sage_ctx *c, sage_snapshot *snap, void *u)
{
    gen_state *g = sage_ctx_local(c);
    return sage_snapshot_write(snap, &g->next, sizeof g->next);
}
static int gen_restore(sage_ctx *c, const void *data, size_t len, void *u)
{
    gen_state *g = sage_ctx_local(c);
    if (len != sizeof g->next) {
        sage_ctx_fail(c, "restore got %zu bytes", len);
        return SAGE_EINVAL;
    }
    memcpy(&g->next, data, sizeof g->next);
    atomic_fetch_add(&restores, 1);
    return 0;
}
static int gen_values(sage_ctx *c, sage_out *o, void *u)
{
    gen_state *g = sage_ctx_local(c);
    int64_t p = sage_ctx_parallelism(c);
    for (int k = 0; k < 256 && g->next <= SP_N; k++) {
        if (g->next > SP_N / 2 && !atomic_load(&gate_open)) {
            if (k == 0) { /* idle at the gate: one call that emits nothing (a barrier may pass here) */
                atomic_fetch_or(&at_gate, 1 << sage_ctx_instance(c));
                struct timespec ts = {0, 100000};
                nanosleep(&ts, NULL);
            }
            return SAGE_MORE;
        }
        int rc = sage_emit_i64(o, g->next);
        if (rc < 0)
            return rc;
        g->next += p;
    }
    return g->next > SP_N ? SAGE_DONE : SAGE_MORE;
}

static int key_mod(const void *r, size_t n, void *kb, void *u)
{
    int64_t k = sage_rec_i64(r, n) % 10;
    memcpy(kb, &k, sizeof k);
    return sizeof k;
}
/* Emits (key, running sum) for every record. */
static int running_sum(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t *sum = sage_ctx_state(c, sizeof *sum);
    if (!sum)
        return SAGE_ENOMEM;
    *sum += sage_rec_i64(r, n);
    int64_t out[2] = {sage_rec_i64(r, n) % 10, *sum};
    return sage_emit(o, out, sizeof out);
}

/* The same with a 16-byte state block: a changed state layout. */
static int running_sum16(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t *sum = sage_ctx_state(c, 2 * sizeof *sum);
    if (!sum)
        return SAGE_EINVAL;
    sum[0] += sage_rec_i64(r, n);
    int64_t out[2] = {sage_rec_i64(r, n) % 10, sum[0]};
    return sage_emit(o, out, sizeof out);
}
static sage_map_fn sum_fn = running_sum;

static sage_env *sum_env(const char *cfg, sage_collector *c, int sum_parallelism)
{
    sage_env *env = sage_env_create("sums", cfg);
    sage_stream *s = sage_from_generator(env, gen_values, NULL,
                                         &(sage_op_opts){.name = "gen",
                                                         .parallelism = 2,
                                                         .open = gen_open,
                                                         .close = gen_close,
                                                         .snapshot = gen_snapshot,
                                                         .restore = gen_restore});
    s = sage_map(sage_key_by(s, key_mod, NULL), sum_fn, NULL,
                 &(sage_op_opts){.name = "sum", .parallelism = sum_parallelism});
    sage_sink_collect(s, c, &(sage_op_opts){.name = "out"});
    return env;
}

static void fold(const sage_collector *c, int64_t *best, size_t *records)
{
    for (size_t i = 0; i < sage_collector_count(c); i++) {
        size_t len;
        const int64_t *kv = sage_collector_get(c, i, &len);
        int64_t v[2];
        memcpy(v, kv, sizeof v);
        if (v[1] > best[v[0]])
            best[v[0]] = v[1];
        (*records)++;
    }
}

static void savepoint_resume_exact(void)
{
    ckpt_config(3600, 1, NULL); /* no periodic checkpoint: only the savepoint */
    char sp[300];
    snprintf(sp, sizeof sp, "%s/savepoint", tmp);
    atomic_store(&gate_open, 0);
    atomic_store(&at_gate, 0);
    sage_collector *c1 = sage_collector_create(0), *c2 = sage_collector_create(0), *c3 = sage_collector_create(0);
    sage_env *env = sum_env(config, c1, 3);
    CHECK_INT(sage_env_submit(env), 0);
    while (atomic_load(&at_gate) != 3) { /* both instances wait at the gate: the first half is out */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    int rc = sage_env_stop_with_savepoint(env, sp, 10000);
    if (rc != 0)
        fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    CHECK_INT(rc, 0);
    CHECK_INT(sage_env_wait(env, -1), 0);
    CHECK_INT(sage_env_state(env), SAGE_JOB_STOPPED);
    sage_env_destroy(env);
    CHECK_INT(sage_collector_count(c1), SP_N / 2);

    /* a changed pipeline is refused */
    char cfg2[1400];
    snprintf(cfg2, sizeof cfg2, "{\"restore_from\": \"%s\"}", sp);
    env = sum_env(cfg2, c3, 2);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK(strstr(sage_env_errmsg(env), "was taken by a different pipeline") != NULL);
    sage_env_destroy(env);

    /* the same plan whose operator changed its state layout fails at its first record, saying so */
    atomic_store(&gate_open, 1);
    sum_fn = running_sum16;
    env = sum_env(cfg2, c3, 3);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK(strstr(sage_env_errmsg(env), "per-key state asked with 16 bytes, but the state restored from the "
                                       "checkpoint has blocks of 8 (the operator's state layout changed") != NULL);
    fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    sage_env_destroy(env);
    sum_fn = running_sum;

    /* the same pipeline goes on from the savepoint */
    atomic_store(&gate_open, 1);
    atomic_store(&restores, 0);
    env = sum_env(cfg2, c2, 3);
    rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    CHECK_INT(rc, 0);
    CHECK_INT(restores, 2);
    sage_env_destroy(env);
    int64_t best[10] = {0}, want[10] = {0};
    size_t records = 0;
    fold(c1, best, &records);
    fold(c2, best, &records);
    for (int64_t v = 1; v <= SP_N; v++)
        want[v % 10] += v;
    CHECK_INT(records, SP_N);
    for (int k = 0; k < 10; k++)
        CHECK_INT(best[k], want[k]);
    sage_collector_destroy(c1);
    sage_collector_destroy(c2);
    sage_collector_destroy(c3);
}

static void corrupt_savepoint_refused(void)
{
    ckpt_config(3600, 1, NULL);
    char sp[300], mf[400];
    snprintf(sp, sizeof sp, "%s/savepoint", tmp);
    atomic_store(&gate_open, 0);
    atomic_store(&at_gate, 0);
    sage_collector *c = sage_collector_create(0);
    sage_env *env = sum_env(config, c, 3);
    CHECK_INT(sage_env_submit(env), 0);
    while (atomic_load(&at_gate) != 3) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_INT(sage_env_stop_with_savepoint(env, sp, 10000), 0);
    CHECK_INT(sage_env_wait(env, -1), 0);
    sage_env_destroy(env);
    /* a savepoint into a directory that is not empty is refused, and the job goes on */
    atomic_store(&at_gate, 0);
    env = sum_env(config, c, 3);
    CHECK_INT(sage_env_submit(env), 0);
    CHECK_INT(sage_env_stop_with_savepoint(env, sp, 10000), SAGE_EINVAL);
    CHECK(strstr(sage_env_errmsg(env), "is not empty") != NULL);
    CHECK_INT(sage_env_state(env), SAGE_JOB_RUNNING);
    sage_env_cancel(env);
    sage_env_wait(env, -1);
    sage_env_destroy(env);
    /* flip one byte of the manifest */
    snprintf(mf, sizeof mf, "%s/MANIFEST", sp);
    int fd = open(mf, O_RDWR);
    char b;
    CHECK(pread(fd, &b, 1, 10) == 1);
    b ^= 1;
    CHECK(pwrite(fd, &b, 1, 10) == 1);
    close(fd);
    char cfg2[1400];
    snprintf(cfg2, sizeof cfg2, "{\"restore_from\": \"%s\"}", sp);
    env = sum_env(cfg2, c, 3);
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    CHECK(strstr(sage_env_errmsg(env), "checksum does not match") != NULL);
    fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

static void savepoint_needs_checkpoint_strategy(void)
{
    sage_collector *c = sage_collector_create(0);
    atomic_store(&gate_open, 0);
    sage_env *env = sum_env(NULL, c, 1);
    CHECK_INT(sage_env_submit(env), 0);
    char sp[300];
    snprintf(sp, sizeof sp, "%s/sp", tmp);
    CHECK_INT(sage_env_stop_with_savepoint(env, sp, 1000), SAGE_ESTATE);
    CHECK(strstr(sage_env_errmsg(env), "savepoints need the checkpoint strategy") != NULL);
    sage_env_cancel(env);
    sage_env_wait(env, -1);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

static void unwritable_dir_refused(void)
{
    char file[300];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(config, sizeof config,
             "{\"fault_tolerance\": {\"strategy\": \"checkpoint\", \"checkpoint_dir\": \"%s/sub\"}}", file);
    sage_collector *c = sage_collector_create(0);
    sage_env *env = sum_env(config, c, 1);
    CHECK_INT(sage_env_execute(env), SAGE_EIO);
    CHECK(strstr(sage_env_errmsg(env), "checkpoint_dir") != NULL);
    CHECK(strstr(sage_env_errmsg(env), "Not a directory") != NULL);
    fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* ---- a source that finished before a checkpoint does not run again after recovery ---- */

#define FIN_N 50
static _Atomic int fin_closed;     /* the short source's close hook ran (it finished) */
static _Atomic int fin_opens;      /* the short source was opened (once: it never runs again) */
static _Atomic uint64_t fin_after; /* checkpoints committed when it finished */
static _Atomic int fin_failed;

static int fin_open(sage_ctx *c, void *u)
{
    atomic_fetch_add(&fin_opens, 1);
    return 0;
}
static int fin_close(sage_ctx *c, sage_out *o, void *u)
{
    sage_checkpoint_stats st;
    sage_env_checkpoint_stats(atomic_load(&watched), &st);
    atomic_store(&fin_after, st.completed);
    atomic_store(&fin_closed, 1);
    return 0;
}
static int word_of_fin(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit_str(o, "fin"); }
static int word_of_gen(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    char w[16];
    int l = snprintf(w, sizeof w, "w%d", (int)(sage_rec_i64(r, n) % 7));
    return sage_emit(o, w, (size_t)l);
}
static int count_fin(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (atomic_load(&fin_closed) && !atomic_load(&fin_failed)) {
        sage_checkpoint_stats st;
        sage_env_checkpoint_stats(atomic_load(&watched), &st);
        /* a checkpoint committed after the short source finished: recover from one that has it finished */
        if (st.completed > atomic_load(&fin_after) + 1 && !atomic_exchange(&fin_failed, 1)) {
            sage_ctx_fail(c, "injected failure");
            return SAGE_EUSER;
        }
    }
    int64_t *cnt = sage_ctx_state(c, sizeof *cnt);
    if (!cnt)
        return SAGE_ENOMEM;
    ++*cnt;
    if ((*cnt & 255) == 0) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void finished_source_not_rerun(void)
{
    ckpt_config(0.01, 3, NULL);
    atomic_store(&fin_closed, 0);
    atomic_store(&fin_opens, 0);
    atomic_store(&fin_failed, 0);
    atomic_store(&gate_open, 1);
    int64_t v[FIN_N];
    for (int i = 0; i < FIN_N; i++)
        v[i] = i;
    sage_collector *c = sage_collector_create(0);
    sage_env *env = sage_env_create("finished", config);
    sage_stream *a = sage_from_int64s(env, v, FIN_N,
                                      &(sage_op_opts){.name = "short", .open = fin_open, .close = fin_close});
    sage_stream *b = sage_from_generator(env, gen_values, NULL,
                                         &(sage_op_opts){.name = "long",
                                                         .parallelism = 2,
                                                         .open = gen_open,
                                                         .close = gen_close,
                                                         .snapshot = gen_snapshot,
                                                         .restore = gen_restore});
    const sage_map_fn fns[2] = {word_of_fin, word_of_gen};
    sage_stream *words = sage_comap(sage_connect(a, b), fns, 2, NULL, &(sage_op_opts){.name = "words"});
    sage_stream *s = sage_flat_map(sage_key_by(words, key_self, NULL), count_fin, NULL,
                                   &(sage_op_opts){.name = "count", .parallelism = 2, .close = counts_close});
    sage_sink_collect(s, c, &(sage_op_opts){.name = "out"});
    atomic_store(&watched, env);
    int rc = sage_env_execute(env);
    atomic_store(&watched, NULL);
    if (rc != 0)
        fprintf(stderr, "  %s\n", sage_env_errmsg(env));
    CHECK_INT(rc, 0);
    CHECK_INT(fin_failed, 1);
    CHECK_INT(fin_opens, 1); /* finished before the checkpoint: not run again */
    size_t n;
    char **got = collected_strs(c, &n);
    int64_t want[7] = {0};
    for (int64_t x = 1; x <= SP_N; x++)
        want[x % 7]++;
    char exp[8][48];
    snprintf(exp[0], sizeof exp[0], "fin %d", FIN_N);
    for (int k = 0; k < 7; k++)
        snprintf(exp[k + 1], sizeof exp[k + 1], "w%d %" PRId64, k, want[k]);
    CHECK_INT(n, 8);
    for (size_t i = 0; i < n && i < 8; i++)
        CHECK_STR(got[i], exp[i]);
    free_strs(got, n);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* ---- a checkpoint that cannot finish in time is abandoned; the job goes on ---- */

static _Atomic int slow_gate; /* 1: the slow map holds its record until the checkpoint was abandoned */
static int slow_map(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    sage_env *env = atomic_load(&watched);
    while (atomic_load(&slow_gate) && env) { /* stuck in one record: no barrier can pass it */
        sage_checkpoint_stats st;
        if (sage_env_checkpoint_stats(env, &st) == 0 && st.abandoned > 0)
            atomic_store(&slow_gate, 0);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return sage_emit(o, r, n);
}

static void timeout_abandons(void)
{
    ckpt_config(0.01, 1, ", \"checkpoint_timeout\": 0.05");
    enum { N = 50000 };
    int64_t *vals = malloc(N * sizeof *vals);
    for (int i = 0; i < N; i++)
        vals[i] = i;
    sage_collector *c = sage_collector_create(0);
    sage_env *env = sage_env_create("slow", config);
    sage_stream *s = sage_from_int64s(env, vals, N, &(sage_op_opts){.name = "nums"});
    free(vals);
    s = sage_map(sage_rebalance(s), slow_map, NULL, &(sage_op_opts){.name = "slow"});
    sage_sink_collect(s, c, NULL);
    atomic_store(&slow_gate, 1);
    atomic_store(&watched, env);
    int rc = sage_env_execute(env);
    atomic_store(&watched, NULL);
    CHECK_INT(rc, 0);
    CHECK_INT(sage_collector_count(c), N); /* the job went on and finished */
    sage_checkpoint_stats st;
    sage_env_checkpoint_stats(env, &st);
    CHECK(st.abandoned >= 1);
    CHECK_INT(st.recoveries, 0);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

static int user_sink(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static void explain_says_guarantees(void)
{
    ckpt_config(5, 3, NULL);
    sage_env *env = sage_env_create("explained", config);
    int64_t v[3] = {1, 2, 3};
    sage_collector *c = sage_collector_create(0);
    sage_stream *a = sage_from_int64s(env, v, 3, &(sage_op_opts){.name = "nums"});
    sage_stream *g = sage_from_generator(env, gen_values, NULL, &(sage_op_opts){.name = "gen"});
    sage_stream *h = sage_from_generator(env, gen_values, NULL,
                                         &(sage_op_opts){.name = "hooked",
                                                         .open = gen_open,
                                                         .close = gen_close,
                                                         .snapshot = gen_snapshot,
                                                         .restore = gen_restore});
    sage_sink_collect(a, c, &(sage_op_opts){.name = "collected"});
    sage_sink(g, user_sink, NULL, &(sage_op_opts){.name = "mine"});
    sage_sink_file(h, "/dev/null", &(sage_op_opts){.name = "file"});
    char *text = sage_env_explain(env);
    CHECK(text != NULL);
    const char *want = "fault tolerance: checkpoint every 5s, at most 3 recoveries\n"
                       "  source \"nums\": replayable (its position is checkpointed)\n"
                       "  source \"gen\": not replayable: it starts again on recovery, at-least-once for its records "
                       "(give it snapshot and restore hooks)\n"
                       "  source \"hooked\": replayable (its restore hook)\n"
                       "  sink \"collected\": exactly-once (cut back to the checkpoint on recovery)\n"
                       "  sink \"mine\": at-least-once (a user sink sees the records after the checkpoint again)\n"
                       "  sink \"file\": exactly-once (cut back to the checkpoint on recovery)\n";
    CHECK(text && strstr(text, want) != NULL);
    if (text && !strstr(text, want))
        fprintf(stderr, "%s", text);
    free(text);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    setup();
    atexit(cleanup);
    RUN(chaos_word_count);
    RUN(chaos_word_count_grouped);
    RUN(corrupt_checkpoint_falls_back);
    RUN(attempts_exhausted);
    RUN(file_sink_exactly_once);
    RUN(savepoint_resume_exact);
    RUN(corrupt_savepoint_refused);
    RUN(savepoint_needs_checkpoint_strategy);
    RUN(unwritable_dir_refused);
    RUN(explain_says_guarantees);
    RUN(finished_source_not_rerun);
    RUN(timeout_abandons);
    return CHECK_DONE();
}
