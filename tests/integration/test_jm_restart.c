/* tests/integration/test_jm_restart.c - a JobManager job restarted by its "fault_tolerance" strategy.
 *
 * Like test_jobmanager, this program is both the driver and the user program
 * the JobManager relaunches: `test_jm_restart pipeline NAME HOST:PORT FT`
 * declares pipeline NAME on a remote environment whose config holds the
 * fault_tolerance object FT, executes it and prints its outcome. Every case
 * starts its own daemon (a forked child running sage_jobmanager_run) on a
 * free port with a fresh state directory. A failure is injected by a marker
 * file (fail once: the first worker to reach record 500 creates it and
 * fails) or by SIGKILL to a worker while its source waits for a "go" file;
 * waits are conditions polled against deadlines. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "jobmanager/jobmanager.h" /* the daemon library: each case runs its own JobManager */
#include "jm_daemon.h"
#include "pipeline_util.h"
#include "sage/jobmanager.h"

#define N 2000 /* records of every pipeline here: 1 .. N */

static char self[1024], cli[1100];
static char *big; /* 1 MiB output buffer */

/* ---------------------------------------------------------------- pipelines */

/* Fails once per marker file: the first instance to reach record 500 creates the file and fails. */
static int fail_once(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t v = sage_rec_i64(r, n);
    if (v == 500) {
        int fd = open(getenv("RESTART_MARKER"), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            sage_ctx_fail(c, "injected failure at record %lld", (long long)v);
            return SAGE_EINVAL;
        }
    }
    return sage_emit_i64(o, 3 * v);
}

/* Fails at record 3, every attempt. */
static int fail_always(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t v = sage_rec_i64(r, n);
    if (v == 3) {
        sage_ctx_fail(c, "record %lld is refused", (long long)v);
        return SAGE_EINVAL;
    }
    return sage_emit_i64(o, 3 * v);
}

/* 1 .. N, waiting before record 101 until the file $RESTART_GO exists (the test kills a worker meanwhile);
 * between calls the engine sees a stop or cancel. */
static int gen_gated(sage_ctx *c, sage_out *o, void *u)
{
    int64_t v = (int64_t)(uintptr_t)sage_ctx_local(c);
    if (v == 100 && access(getenv("RESTART_GO"), F_OK) != 0) {
        nanosleep(&(struct timespec){0, 2000000}, NULL); /* the file is the condition */
        return SAGE_MORE;
    }
    for (int i = 0; i < 50 && v < N; i++)
        if (sage_emit_i64(o, ++v) < 0)
            return SAGE_ECANCELED;
    sage_ctx_set_local(c, (void *)(uintptr_t)v);
    return v < N ? SAGE_MORE : SAGE_DONE;
}

static int triple(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_emit_i64(o, 3 * sage_rec_i64(r, n));
}

/* once: fails once at record 500; always: fails at record 3 in every attempt; gated: waits for the go file
 * at record 100. Prints "job ID rc RC", the error if any, "collected COUNT sum SUM". */
/* Runs the job and prints what the tests read: "job ID rc RC", "error: ..." when it failed, "collected N sum S",
 * and with seen_op that operator's "seen" counter ("seen N"). Destroys c and env; 0 if the job succeeded. */
static int execute_and_report(sage_env *env, sage_collector *c, const char *seen_op)
{
    int rc = sage_env_execute(env);
    printf("job %lld rc %d\n", (long long)sage_env_job_id(env), rc);
    if (rc != 0)
        printf("error: %s\n", sage_env_errmsg(env));
    size_t cnt = 0;
    int64_t *v = collected_sorted(c, &cnt), sum = 0;
    for (size_t i = 0; i < cnt; i++)
        sum += v[i];
    free(v);
    printf("collected %zu sum %lld\n", cnt, (long long)sum);
    sage_metric m = {0};
    if (seen_op && sage_env_metric(env, seen_op, -1, "seen", &m) == 0)
        printf("seen %lld\n", (long long)m.value);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

static int run_one(const char *name, const char *jm, const char *ft, int parallelism);

/* "two": two jobs, one after the other, from one program run (each job's workers skip the other's env). */
static int run_words(const char *jm, const char *ft);
static int run_pipeline(const char *name, const char *jm, const char *ft)
{
    if (strcmp(name, "two") == 0) {
        int a = run_one("first", jm, ft, 2), b = run_one("second", jm, ft, 3);
        return a || b;
    }
    if (strcmp(name, "words") == 0)
        return run_words(jm, ft);
    return run_one(name, jm, ft, 2);
}

/* "keyed": 1..KEYED_N from a built-in source (its position is checkpointed) into a keyed sum per v % 50; each
 * key's close emits sum * 1000003 + count. Slow enough (1 ms every 80 records of a key) for checkpoints and
 * kills to land in the middle. */
#define KEYED_N 400000
static int key_mod50(const void *r, size_t n, void *kb, void *u)
{
    int64_t k = sage_rec_i64(r, n) % 50;
    memcpy(kb, &k, sizeof k);
    return sizeof k;
}
static int keyed_sum(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t *st = sage_ctx_state(c, 2 * sizeof *st);
    if (!st)
        return SAGE_ENOMEM;
    st[0] += sage_rec_i64(r, n);
    sage_ctx_counter_add(c, "seen", 1); /* not restored: what this attempt processed */
    if (++st[1] % 80 == 0)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return 0;
}
static int emit_key(const void *key, size_t kl, void *state, void *arg)
{
    const int64_t *st = state;
    return sage_emit_i64(arg, st[0] * 1000003 + st[1]) < 0;
}
static int keyed_close(sage_ctx *c, sage_out *o, void *u) { return sage_ctx_state_foreach(c, emit_key, o) ? -1 : 0; }

/* "words": a keyed word count over the file $SAGE_TEST_WORDS (one word a line) by 2 instances of "count" that
 * reserve a CPU each, slow enough (1 ms every 30 records of an instance) for a host to be lost mid-run; prints
 * "word count" lines, sorted (test_cluster.sh compares them with a count by awk). $SAGE_TEST_WORDS_RESOURCES,
 * if set, is count's resource request instead. */
static int words_key(const void *r, size_t n, void *kb, void *u)
{
    size_t k = n < 64 ? n : 64;
    memcpy(kb, r, k);
    return (int)k;
}
static int words_count(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t *cnt = sage_ctx_state(c, sizeof *cnt);
    if (!cnt)
        return SAGE_ENOMEM;
    ++*cnt;
    uintptr_t seen = (uintptr_t)sage_ctx_local(c) + 1;
    sage_ctx_set_local(c, (void *)seen);
    if (seen % 30 == 0)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return 0;
}
static int words_emit(const void *key, size_t kl, void *state, void *arg)
{
    char line[128];
    int n = snprintf(line, sizeof line, "%.*s %" PRId64, (int)kl, (const char *)key, *(int64_t *)state);
    return sage_emit(arg, line, (size_t)n) < 0;
}
static int words_close(sage_ctx *c, sage_out *o, void *u) { return sage_ctx_state_foreach(c, words_emit, o) ? -1 : 0; }
static int run_words(const char *jm, const char *ft)
{
    const char *path = getenv("SAGE_TEST_WORDS");
    if (!path) {
        fprintf(stderr, "the \"words\" pipeline reads the file named by SAGE_TEST_WORDS\n");
        return 2;
    }
    char config[4096];
    snprintf(config, sizeof config,
             "{\"jobmanager\": \"%s\", \"fault_tolerance\": %s, \"channel_bytes\": 4096, \"batch_bytes\": 1024}", jm,
             ft);
    sage_env *env = sage_env_create("words", config);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_file_lines(env, path, &(sage_op_opts){.name = "lines"});
    const char *res = getenv("SAGE_TEST_WORDS_RESOURCES"); /* another request for "count" */
    s = sage_flat_map(sage_key_by(s, words_key, NULL), words_count, NULL,
                      &(sage_op_opts){.name = "count",
                                      .parallelism = 2,
                                      .resources = res ? res : "{\"num_cpus\": 1}",
                                      .close = words_close});
    sage_sink_collect(s, c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    fprintf(stderr, "job %lld rc %d\n", (long long)sage_env_job_id(env), rc);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", sage_env_errmsg(env));
    size_t n = sage_collector_count(c);
    char **v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *r = sage_collector_get(c, i, &len);
        v[i] = strndup(r, len);
    }
    qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", v[i]);
        free(v[i]);
    }
    free(v);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

static int run_one(const char *name, const char *jm, const char *ft, int parallelism)
{
    if (strcmp(name, "keyed") == 0) {
        char config[4096];
        /* small channels: little is in flight, so a barrier passes the slow sum quickly */
        const char *from = getenv("RESTORE_FROM"); /* a savepoint to start from */
        char extra[1200] = "";
        if (from)
            snprintf(extra, sizeof extra, ", \"restore_from\": \"%s\"", from);
        snprintf(config, sizeof config,
                 "{\"jobmanager\": \"%s\", \"fault_tolerance\": %s, \"channel_bytes\": 4096, \"batch_bytes\": "
                 "1024%s}",
                 jm, ft, extra);
        sage_env *env = sage_env_create(name, config);
        sage_collector *c = sage_collector_create(0);
        int64_t *vals = malloc(KEYED_N * sizeof *vals);
        for (int64_t i = 0; i < KEYED_N; i++)
            vals[i] = i + 1;
        sage_stream *s = sage_from_int64s(env, vals, KEYED_N, &(sage_op_opts){.name = "src", .parallelism = 2});
        free(vals);
        int par = getenv("KEYED_PARALLELISM") ? atoi(getenv("KEYED_PARALLELISM")) : 2; /* a changed pipeline */
        s = sage_flat_map(sage_key_by(s, key_mod50, NULL), keyed_sum, NULL,
                          &(sage_op_opts){.name = "sum", .parallelism = par, .close = keyed_close});
        sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.name = "out"});
        return execute_and_report(env, c, "sum");
    }
    char config[1024];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\", \"fault_tolerance\": %s}", jm, ft);
    sage_env *env = sage_env_create(name, config);
    sage_collector *c = sage_collector_create(0);
    static uint64_t n = N;
    sage_stream *s = strcmp(name, "gated") == 0
                         ? sage_from_generator(env, gen_gated, NULL, &(sage_op_opts){.name = "src"})
                         : sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    sage_map_fn fn = strcmp(name, "once") == 0 ? fail_once : strcmp(name, "always") == 0 ? fail_always : triple;
    s = sage_map(sage_rebalance(s), fn, NULL, &(sage_op_opts){.name = "triple", .parallelism = parallelism});
    sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.name = "out"});
    return execute_and_report(env, c, NULL);
}

/* ------------------------------------------------------------------ helpers */

/* The pipeline NAME with fault_tolerance FT through daemon d, in the background: its output arrives on the
 * returned stream (read it to the end, then pclose). */
#define JOB_LIMIT_S 300 /* the slowest build's longest job runs for well under a minute */
static FILE *start_job(const daemon_t *d, const char *name, const char *ft, const char *env)
{
    char cmd[4096];
    /* bounded: a job that never ends is killed, and finish_job says so with what it printed */
    snprintf(cmd, sizeof cmd, "%s SAGE_HOME=%s timeout -k 10 %d %s pipeline %s %s '%s' 2>&1", env, d->home, JOB_LIMIT_S,
             self, name, d->addr, ft);
    fflush(NULL);
    return popen(cmd, "r");
}

/* Everything the job printed, its exit status. */
static int finish_job(FILE *f)
{
    size_t n = 0, r;
    while (f && n < (1u << 20) - 1 && (r = fread(big + n, 1, (1u << 20) - 1 - n, f)) > 0)
        n += r;
    big[n] = 0;
    int st = f ? pclose(f) : -1;
    int rc = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (rc == 124 || rc == 137)
        fprintf(stderr, "the job's program did not end within %d s; it printed:\n%s\n", JOB_LIMIT_S, big);
    return rc;
}

/* The id of the only job daemon d knows, once it is listed (0 after 20 s). */
static long long only_job(const daemon_t *d)
{
    for (int64_t end = now_ms() + 20000; now_ms() < end; pause_ms(10)) {
        json_t *r = request(d, "{\"op\": \"list\"}");
        json_t *jobs = json_object_get(r, "jobs");
        long long id = json_array_size(jobs) == 1
                           ? json_integer_value(json_object_get(json_array_get(jobs, 0), "job_id"))
                           : 0;
        json_decref(r);
        if (id)
            return id;
    }
    return 0;
}

/* The job's status once pred holds for it (NULL after timeout_ms). */
static json_t *status_when(const daemon_t *d, long long id, int (*pred)(json_t *), int timeout_ms)
{
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; pause_ms(10)) {
        json_t *st = request(d, "{\"op\": \"status\", \"job_id\": %lld}", id);
        if (st && pred(st))
            return st;
        json_decref(st);
    }
    return NULL;
}

/* Every task of the "triple" operator runs (its worker said hello). */
static int triples_running(json_t *st)
{
    json_t *tasks = json_object_get(st, "tasks"), *t;
    size_t i, n = 0;
    json_array_foreach(tasks, i, t) if (strcmp(json_string_value(json_object_get(t, "operator")), "triple") == 0 &&
                                        strcmp(json_string_value(json_object_get(t, "state")), "running") == 0) n++;
    return n == 2;
}

static int waiting_to_restart(json_t *st) { return json_object_get(st, "restart_in_ms") != NULL; }

/* Its failure was heard: the restart waits or was made. */
static int failure_seen(json_t *st)
{
    return waiting_to_restart(st) || json_integer_value(json_object_get(st, "restarts")) > 0;
}

static void temp_path(char *out, size_t cap, const daemon_t *d, const char *name)
{
    snprintf(out, cap, "%s/%s", d->home, name);
}

/* 1 .. N tripled: what every successful run here collects. */
static const char *exact_line(void)
{
    static char line[64];
    snprintf(line, sizeof line, "collected %d sum %lld", N, 3LL * N * (N + 1) / 2);
    return line;
}

/* The sum the "keyed" pipeline's collector holds when every record counted once (each key: sum * 1000003 +
 * count), and its output line. */
static long long keyed_exact_sum(void) { return (long long)KEYED_N * (KEYED_N + 1) / 2 * 1000003LL + KEYED_N; }
static const char *keyed_exact_line(void)
{
    static char line[96];
    snprintf(line, sizeof line, "collected 50 sum %lld\n", keyed_exact_sum());
    return line;
}


/* How many cgroups of daemon d's job id are left (every attempt's), once none are or after 10 s; -1 when
 * the daemon enforces no memory limits (its log says which parent it uses). */
static int job_cgroups_left(const daemon_t *d, long long id)
{
    char log[1 << 14] = "", parent[300] = "";
    FILE *f = fopen(d->log, "r");
    size_t n = f ? fread(log, 1, sizeof log - 1, f) : 0;
    log[n] = 0;
    if (f)
        fclose(f);
    const char *at = strstr(log, "memory limits: cgroup ");
    if (!at || sscanf(at + strlen("memory limits: cgroup "), "%299s", parent) != 1)
        return -1;
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -d %s/jm%d-job%lld-task* 2>/dev/null | wc -l", parent, (int)d->pid, id);
    int left = -1;
    for (int64_t end = now_ms() + 10000; now_ms() < end; pause_ms(20)) {
        FILE *p = popen(cmd, "r");
        if (!p || fscanf(p, "%d", &left) != 1)
            left = -1;
        if (p)
            pclose(p);
        if (left == 0)
            break;
    }
    return left;
}

/* -------------------------------------------------------------------- cases */

/* One injected failure, a restart, the exact result; the daemon's log and the job's end say there was one. */
static void failure_restarted_exact_result(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char marker[400], env[500];
    temp_path(marker, sizeof marker, &d, "marker");
    snprintf(env, sizeof env, "RESTART_MARKER=%s", marker);
    int rc = finish_job(start_job(&d, "once", "{\"strategy\": \"restart\", \"delay\": 0.05}", env));
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(big, " rc 0\n");
    CHECK_CONTAINS(big, exact_line());
    CHECK(access(marker, F_OK) == 0); /* the failure did happen */
    const char *log = daemon_log(&d);
    CHECK_CONTAINS(log, "restart 1 in 0.05 s after: operator \"triple\" instance ");
    CHECK_CONTAINS(log, "injected failure at record 500");
    CHECK_CONTAINS(log, "restart 1 of its tasks");
    CHECK_CONTAINS(log, "finished");
    daemon_down(&d);
}

/* One program run executes two remote jobs in sequence (different graphs): both run, both exact. */
static void two_jobs_in_one_program(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    int rc = finish_job(start_job(&d, "two", "{\"strategy\": \"restart\", \"delay\": 0.05}", ""));
    CHECK_INT(rc, 0);
    if (rc != 0)
        fprintf(stderr, "%s", big);
    const char *first = strstr(big, exact_line());
    CHECK(first != NULL);
    CHECK(first && strstr(first + 1, exact_line()) != NULL); /* twice */
    CHECK_CONTAINS(big, "job 1 rc 0\n");
    CHECK_CONTAINS(big, "job 2 rc 0\n");
    daemon_down(&d);
}

static void metrics(const daemon_t *d);

/* Committed checkpoints of the job so far, -1 when its status cannot be read (it ended); *pids the running
 * workers' pids; *all_running: every task runs or had finished (the attempt is up). */
static long long committed(const daemon_t *d, long long id, pid_t *pids, int *npids, int *all_running)
{
    json_t *st = request(d, "{\"op\": \"status\", \"job_id\": %lld}", id);
    if (!st)
        return -1;
    long long n = json_integer_value(json_object_get(json_object_get(st, "checkpoints"), "completed"));
    json_t *t;
    size_t i;
    *npids = 0;
    *all_running = json_array_size(json_object_get(st, "tasks")) > 0;
    json_array_foreach(json_object_get(st, "tasks"), i, t)
    {
        const char *state = json_string_value(json_object_get(t, "state")) ?: "";
        if (strcmp(state, "running") == 0) /* the victims: what runs (a source may have finished) */
            pids[(*npids)++] = (pid_t)json_integer_value(json_object_get(t, "pid"));
        else if (strcmp(state, "finished") != 0)
            *all_running = 0; /* starting: the attempt is not up yet */
    }
    if (!json_object_get(st, "checkpoints"))
        n = -1;
    json_decref(st);
    return n;
}

/* Chaos: a keyed sum through the JobManager with the checkpoint strategy while three random workers are
 * SIGKILLed, each after a checkpoint committed since the last kill: every recovery restores the last one, and
 * the result is exact. */
static void checkpoint_chaos_exact(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    FILE *job = start_job(&d, "keyed",
                          "{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 0.05, \"max_recovery_attempts\": 5}",
                          "");
    long long id = only_job(&d);
    CHECK(id > 0);
    uint64_t seed = (uint64_t)now_ms();
    int kills = 0;
    long long after = 0;
    for (int64_t end = now_ms() + 60000; id && kills < 3 && now_ms() < end; pause_ms(5)) {
        pid_t pids[16];
        int np = 0, running = 0;
        long long n = committed(&d, id, pids, &np, &running);
        if (n < 0) {
            fprintf(stderr, "  the job ended after %d kills\n", kills);
            break;
        }
        if (n <= after || !running || np == 0)
            continue;
        if (kills == 0) { /* what the CLI and Prometheus show of it */
            char cmd[1600];
            snprintf(cmd, sizeof cmd, "%s job status %lld --home %s --port %d", cli, id, d.home, d.port);
            FILE *p = popen(cmd, "r");
            CHECK_INT(finish_job(p), 0);
            CHECK_CONTAINS(big, "checkpoints: ");
            CHECK_CONTAINS(big, " committed, 0 abandoned; the last ");
            CHECK_CONTAINS(big, "/checkpoints/chk-");
            metrics(&d);
            char series[96];
            snprintf(series, sizeof series, "sage_job_checkpoints_total{job=\"%lld\"} ", id);
            CHECK_CONTAINS(big, series);
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        pid_t victim = pids[(seed >> 33) % (uint64_t)np];
        if (victim > 0 && kill(victim, SIGKILL) == 0) {
            /* it counts once the job recovers from it: a worker that had just ended (reported, not yet reaped)
             * dies without failing anything */
            for (int64_t wait_end = now_ms() + 5000; now_ms() < wait_end; pause_ms(5)) {
                json_t *r = request(&d, "{\"op\": \"status\", \"job_id\": %lld}", id);
                long long restarts = r ? json_integer_value(json_object_get(r, "restarts")) : -1;
                json_decref(r);
                if (restarts < 0 || restarts > kills) {
                    if (restarts > kills)
                        kills++;
                    break;
                }
            }
            after = n;
        }
    }
    CHECK_INT(kills, 3);
    CHECK_INT(finish_job(job), 0);
    const char *want = keyed_exact_line();
    CHECK_CONTAINS(big, " rc 0\n");
    CHECK_CONTAINS(big, want);
    if (!strstr(big, want))
        fprintf(stderr, "%s", big);
    const char *log = daemon_log(&d);
    CHECK_CONTAINS(log, "committed (");
    CHECK_CONTAINS(log, "recovery 3 from ");
    CHECK(strstr(log, "recovery 1 from its beginning") == NULL); /* each kill came after a committed checkpoint */
    daemon_down(&d);
}

/* Both "sum" workers have processed records. */
static int sums_busy(json_t *st)
{
    json_t *t;
    size_t i, n = 0;
    json_array_foreach(json_object_get(st, "tasks"), i, t)
    {
        json_t *op = json_array_get(json_object_get(json_object_get(t, "metrics"), "operators"), 0);
        if (strcmp(json_string_value(json_object_get(t, "operator")) ?: "", "sum") == 0 &&
            json_integer_value(json_object_get(op, "records_in")) > 5000)
            n++;
    }
    return n == 2;
}

/* sage job stop --savepoint mid-run, then a new run of the program with "restore_from" ends with the exact
 * result (the restored state goes on); a changed pipeline, or a savepoint directory that is not empty, is
 * refused. */
static void savepoint_stop_and_resume(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    const char *ft = "{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 3600}";
    FILE *job = start_job(&d, "keyed", ft, "");
    long long id = only_job(&d);
    CHECK(id > 0);
    json_t *st = id ? status_when(&d, id, sums_busy, 20000) : NULL;
    CHECK(st != NULL);
    json_decref(st);
    char sp[400], cmd[2200], env[600];
    temp_path(sp, sizeof sp, &d, "savepoint-1");
    snprintf(cmd, sizeof cmd, "%s job stop %lld --savepoint %s --home %s --port %d 2>&1", cli, id, sp, d.home, d.port);
    CHECK_INT(finish_job(popen(cmd, "r")), 0);
    CHECK_CONTAINS(big, " taken; stop requested");
    CHECK_INT(finish_job(job), 0);
    CHECK_CONTAINS(big, " rc 0\n"); /* stopped: its partial sums were collected */
    char manifest[500];
    snprintf(manifest, sizeof manifest, "%s/MANIFEST", sp);
    CHECK(access(manifest, F_OK) == 0);

    /* a savepoint into the same directory: not empty, refused, the job goes on */
    FILE *again = start_job(&d, "keyed", ft, "");
    st = status_when(&d, id + 1, sums_busy, 20000);
    CHECK(st != NULL);
    json_decref(st);
    snprintf(cmd, sizeof cmd, "%s job stop %lld --savepoint %s --home %s --port %d 2>&1", cli, id + 1, sp, d.home,
             d.port);
    CHECK(finish_job(popen(cmd, "r")) != 0);
    CHECK_CONTAINS(big, "is not empty");
    json_decref(request(&d, "{\"op\": \"cancel\", \"job_id\": %lld}", id + 1));
    finish_job(again);

    /* a changed pipeline is refused at submit */
    snprintf(env, sizeof env, "RESTORE_FROM=%s KEYED_PARALLELISM=3", sp);
    CHECK(finish_job(start_job(&d, "keyed", ft, env)) != 0);
    CHECK_CONTAINS(big, "was taken by a different pipeline");

    /* the same pipeline goes on from the savepoint: its sums are those of every record */
    snprintf(env, sizeof env, "RESTORE_FROM=%s", sp);
    CHECK_INT(finish_job(start_job(&d, "keyed", ft, env)), 0);
    const char *want = keyed_exact_line();
    CHECK_CONTAINS(big, want);
    const char *seen = strstr(big, "seen ");
    long long nseen = seen ? atoll(seen + 5) : -1;
    CHECK(nseen > 0 && nseen < KEYED_N); /* it went on from the savepoint: the records before it were not seen */
    fprintf(stderr, "  the resumed run processed %lld of %d records\n", nseen, KEYED_N);
    daemon_down(&d);
}

static int finished_state(json_t *st)
{
    const char *s = json_string_value(json_object_get(st, "state"));
    return s && (strcmp(s, "finished") == 0 || strcmp(s, "failed") == 0);
}

static int two_committed(json_t *st)
{
    return json_integer_value(json_object_get(json_object_get(st, "checkpoints"), "completed")) >= 2;
}

/* The JobManager SIGKILLed mid-job and started again: the job goes on from its newest committed
 * checkpoint and ends with the exact result (read from its results file: its client went with the old
 * JobManager). */
static void jobmanager_restart_resumes(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    FILE *job = start_job(&d, "keyed",
                          "{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 0.05, \"max_recovery_attempts\": 3}",
                          "");
    long long id = only_job(&d);
    CHECK(id > 0);
    /* bounds for the slowest build (ThreadSanitizer runs the keyed job 10-20x slower; one resumed run took
     * longer than 60 s there) */
    json_t *st = id ? status_when(&d, id, two_committed, 120000) : NULL;
    CHECK(st != NULL);
    json_decref(st);
    kill(d.pid, SIGKILL);
    waitpid(d.pid, NULL, 0);
    d.pid = -1;
    CHECK(finish_job(job) != 0); /* its client lost the JobManager */
    CHECK(daemon_start(&d));     /* again, on its state directory */
    st = status_when(&d, id, finished_state, 240000);
    CHECK(st != NULL);
    CHECK_STR(json_string_value(json_object_get(st, "state")), "finished");
    json_decref(st);
    /* the collect sink "out" (one instance): [u32 length][record] ... */
    char path[600];
    snprintf(path, sizeof path, "%s/jobs/%lld/results/out.0", d.home, id);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    long long count = 0, sum = 0;
    uint32_t len;
    int64_t v;
    while (f && fread(&len, 4, 1, f) == 1 && len == 8 && fread(&v, 8, 1, f) == 1) {
        count++;
        sum += v;
    }
    if (f)
        fclose(f);
    CHECK_INT(count, 50);
    CHECK(sum == keyed_exact_sum());
    const char *log = daemon_log(&d);
    CHECK_CONTAINS(log, "resumed after the JobManager's restart, from ");
    daemon_down(&d);
}

static int none_taking(json_t *st) { return !json_object_get(json_object_get(st, "checkpoints"), "taking"); }

/* The newest committed checkpoint is damaged (a part cut short) before a worker is killed: the recovery
 * from it fails in the workers ("cannot restore from checkpoint"), the next one uses the checkpoint before
 * it, and the result is exact. */
static void corrupt_checkpoint_falls_back_jm(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    FILE *job = start_job(&d, "keyed",
                          "{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 0.05, \"max_recovery_attempts\": 5, "
                          "\"checkpoints_retained\": 3}",
                          "");
    long long id = only_job(&d);
    CHECK(id > 0);
    json_t *st = id ? status_when(&d, id, two_committed, 30000) : NULL;
    CHECK(st != NULL);
    /* freeze the checkpoints: pause it (no new checkpoint starts while paused; one being taken ends), then
     * damage the newest */
    json_decref(request(&d, "{\"op\": \"pause\", \"job_id\": %lld}", id));
    json_decref(st);
    st = status_when(&d, id, none_taking, 30000);
    CHECK(st != NULL);
    const char *last = json_string_value(json_object_get(json_object_get(st, "checkpoints"), "last_path"));
    char part[700];
    snprintf(part, sizeof part, "%s/t2.part", last ? last : "?"); /* a "sum" task: it runs to the end */
    CHECK_INT(truncate(part, 40), 0);
    pid_t victim = 0;
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(st, "tasks"), i, t) if (json_integer_value(json_object_get(t, "task")) == 2)
        victim = (pid_t)json_integer_value(json_object_get(t, "pid"));
    json_decref(st);
    CHECK(victim > 0);
    if (victim > 0)
        kill(victim, SIGKILL);
    json_decref(request(&d, "{\"op\": \"resume\", \"job_id\": %lld}", id));
    int rc = finish_job(job);
    CHECK_INT(rc, 0);
    const char *want = keyed_exact_line();
    CHECK_CONTAINS(big, want);
    const char *log = daemon_log(&d);
    if (rc != 0) {
        json_t *last_st = request(&d, "{\"op\": \"status\", \"job_id\": %lld}", id);
        char *txt = last_st ? json_dumps(last_st, JSON_INDENT(1)) : NULL;
        fprintf(stderr, "the job's status:\n%s\nthe JobManager's log:\n%s\n", txt ? txt : "?", log ? log : "?");
        free(txt);
        json_decref(last_st);
    }
    CHECK_CONTAINS(log, "cannot restore from checkpoint");
    CHECK_CONTAINS(log, "cannot be restored; recovering from ");
    daemon_down(&d);
}

/* A checkpoint directory that cannot be written is refused at submit, naming the key and the cause. */
static void unwritable_checkpoint_dir_refused(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char file[300], ft[500];
    temp_path(file, sizeof file, &d, "plainfile");
    FILE *f = fopen(file, "w");
    if (f)
        fclose(f);
    snprintf(ft, sizeof ft, "{\"strategy\": \"checkpoint\", \"checkpoint_dir\": \"%s/sub\"}", file);
    CHECK(finish_job(start_job(&d, "keyed", ft, "")) != 0);
    CHECK_CONTAINS(big, "\"fault_tolerance.checkpoint_dir\": checkpoints cannot be written: ");
    CHECK_CONTAINS(big, "Not a directory");
    daemon_down(&d);
}

/* Every attempt fails: after max_attempts restarts the job fails with the user's code and a message that
 * says the strategy gave up. */
static void attempts_exhausted(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    int rc = finish_job(
        start_job(&d, "always", "{\"strategy\": \"restart\", \"max_attempts\": 2, \"delay\": 0.01}", ""));
    CHECK_INT(rc, 1);
    char want[128];
    snprintf(want, sizeof want, " rc %d\n", SAGE_EINVAL);
    CHECK_CONTAINS(big, want);
    CHECK_CONTAINS(big, "failed: recovery attempts exhausted after 2 restarts (restart: fixed delay 0.01s, at most 2 "
                        "restarts); the last failure: ");
    CHECK_CONTAINS(big, "record 3 is refused");
    daemon_down(&d);
}

/* The gated pipeline on d with fault_tolerance ft, once both "triple" workers run (its source waits at record
 * 101 for the file go names): its output stream and id; the pid of one "triple" worker (0 if none seen). */
static pid_t gated_job(const daemon_t *d, const char *ft, char *go, size_t go_cap, FILE **job, long long *id)
{
    char env[500];
    temp_path(go, go_cap, d, "go");
    snprintf(env, sizeof env, "RESTART_GO=%s", go);
    *job = start_job(d, "gated", ft, env);
    *id = only_job(d);
    CHECK(*id > 0);
    json_t *st = *id ? status_when(d, *id, triples_running, 20000) : NULL;
    CHECK(st != NULL);
    pid_t victim = 0;
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(st, "tasks"), i,
                       t) if (strcmp(json_string_value(json_object_get(t, "operator")), "triple") == 0)
        victim = (pid_t)json_integer_value(json_object_get(t, "pid"));
    json_decref(st);
    CHECK(victim > 0);
    return victim;
}

/* Let the gated source pass. */
static void open_gate(const char *go)
{
    int fd = open(go, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
}

/* A worker killed by SIGKILL mid-run: the job restarts and still collects exactly every record once. */
static void killed_worker_restarted(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400];
    FILE *job;
    long long id;
    pid_t victim = gated_job(&d, "{\"strategy\": \"restart\", \"delay\": 0.05}", go, sizeof go, &job, &id);
    if (victim > 0)
        kill(victim, SIGKILL);
    /* the next attempt runs the same tasks in fresh processes; let its source pass the gate */
    json_t *again = id ? status_when(&d, id, failure_seen, 20000) : NULL;
    CHECK(again != NULL);
    json_decref(again);
    open_gate(go);
    CHECK_INT(finish_job(job), 0);
    CHECK_CONTAINS(big, " rc 0\n");
    CHECK_CONTAINS(big, exact_line());
    int left = job_cgroups_left(&d, id); /* both attempts' groups removed */
    if (left >= 0)
        CHECK_INT(left, 0);
    daemon_down(&d);
}

/* Restarted, with its new "triple" workers connected. */
static int restarted_and_running(json_t *st)
{
    return json_integer_value(json_object_get(st, "restarts")) == 1 && triples_running(st);
}

/* A paused job whose worker dies stays paused through its restart; resumed, it ends with the exact result. */
static void paused_stays_paused(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400];
    FILE *job;
    long long id;
    pid_t victim = gated_job(&d, "{\"strategy\": \"restart\", \"delay\": 0}", go, sizeof go, &job, &id);
    json_decref(request(&d, "{\"op\": \"pause\", \"job_id\": %lld}", id));
    if (victim > 0)
        kill(victim, SIGKILL);
    json_t *st = id ? status_when(&d, id, restarted_and_running, 20000) : NULL;
    CHECK(st != NULL);
    CHECK_STR(json_string_value(json_object_get(st, "state")), "paused");
    json_decref(st);
    json_decref(request(&d, "{\"op\": \"resume\", \"job_id\": %lld}", id));
    open_gate(go);
    CHECK_INT(finish_job(job), 0);
    CHECK_CONTAINS(big, exact_line());
    daemon_down(&d);
}

/* GET /metrics of daemon d, with its token, into big. */
static void metrics(const daemon_t *d)
{
    char tok[256] = "", req[512];
    FILE *f = fopen(d->token, "r");
    if (!f || !fgets(tok, sizeof tok, f))
        tok[0] = 0;
    if (f)
        fclose(f);
    tok[strcspn(tok, "\r\n")] = 0;
    int l = snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)d->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    size_t got = 0;
    ssize_t r;
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 && write(s, req, (size_t)l) == l)
        while ((r = read(s, big + got, (1 << 20) - 1 - got)) > 0)
            got += (size_t)r;
    big[got] = 0;
    close(s);
}

/* The always-failing job on d, once it failed and waits 600 s for its restart: its output stream, its id,
 * its status then. */
static json_t *failed_and_waiting(const daemon_t *d, FILE **job, long long *id)
{
    *job = start_job(d, "always", "{\"strategy\": \"restart\", \"delay\": 600}", "");
    *id = only_job(d);
    json_t *st = *id ? status_when(d, *id, waiting_to_restart, 20000) : NULL;
    CHECK(st != NULL);
    return st;
}

/* A stop between attempts ends the wait at once: the job fails with the failure that led there. */
static void stop_while_waiting(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    FILE *job;
    long long id;
    json_t *st = failed_and_waiting(&d, &job, &id);
    CHECK_INT((int)json_integer_value(json_object_get(st, "restarts")), 0);
    CHECK_CONTAINS(json_string_value(json_object_get(st, "last_failure")), "record 3 is refused");
    json_decref(st);
    /* the CLI's view of the wait */
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "%s job status %lld --home %s --port %d", cli, id, d.home, d.port);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    CHECK_INT(finish_job(p), 0);
    CHECK_CONTAINS(big, "restarts: 0 (the next in ");
    CHECK_CONTAINS(big, "): operator \"triple\" instance ");
    CHECK_CONTAINS(big, "last failure (20"); /* its local time, 20YY-MM-DD HH:MM:SS */
    /* Prometheus sees it too */
    metrics(&d);
    CHECK_CONTAINS(big, "HTTP/1.1 200 OK");
    char series[96];
    snprintf(series, sizeof series, "sage_job_restarts_total{job=\"%lld\"} 0\n", id);
    CHECK_CONTAINS(big, series);
    json_t *r = request(&d, "{\"op\": \"stop\", \"job_id\": %lld}", id);
    CHECK(r != NULL);
    json_decref(r);
    CHECK_INT(finish_job(job), 1); /* not 600 s later: the test's own timeout would fire first */
    CHECK_CONTAINS(big, "failed: operator \"triple\" instance ");
    CHECK_CONTAINS(big, "record 3 is refused");
    CHECK(!strstr(big, "exhausted"));
    daemon_down(&d);
}

/* A cancel between attempts: the job ends canceled. */
static void cancel_while_waiting(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    FILE *job;
    long long id;
    json_decref(failed_and_waiting(&d, &job, &id));
    json_t *r = request(&d, "{\"op\": \"cancel\", \"job_id\": %lld}", id);
    json_decref(r);
    CHECK_INT(finish_job(job), 1);
    char want[64];
    snprintf(want, sizeof want, " rc %d\n", SAGE_ECANCELED);
    CHECK_CONTAINS(big, want);
    daemon_down(&d);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], argv[3], argv[4]);
    CHECK_MAIN(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    snprintf(cli, sizeof cli, "%s", self); /* build/tests/test_jm_restart -> build/cli/sage */
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(cli, '/');
        if (slash)
            *slash = 0;
    }
    strncat(cli, "/cli/sage", sizeof cli - strlen(cli) - 1);
    big = malloc(1 << 20);
    RUN(failure_restarted_exact_result);
    RUN(two_jobs_in_one_program);
    RUN(checkpoint_chaos_exact);
    RUN(savepoint_stop_and_resume);
    RUN(jobmanager_restart_resumes);
    RUN(corrupt_checkpoint_falls_back_jm);
    RUN(unwritable_checkpoint_dir_refused);
    RUN(attempts_exhausted);
    RUN(killed_worker_restarted);
    RUN(stop_while_waiting);
    RUN(cancel_while_waiting);
    RUN(paused_stays_paused);
    free(big);
    return CHECK_DONE();
}
