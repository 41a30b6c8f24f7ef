/* tests/integration/test_worker_crash.c - a crash in an operator chained into another's task names that operator.
 *
 * Like test_jm_restart, this program is both the driver and the user
 * program the JobManager relaunches: `test_worker_crash pipeline NAME
 * HOST:PORT` declares pipeline NAME and executes it through the JobManager.
 * Every case starts its own daemon (tests/jm_daemon.h). "parse" is chained
 * after the source (same parallelism, forward): one task, one thread. */
#include <signal.h>
#include <string.h>

#include "jm_daemon.h"
#include "pipeline_util.h"

static char self[1024];
static char *big;

/* map "parse": crashes at record 5 the way CRASH says (segv, abort, fpe) */
static int parse(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t v = sage_rec_i64(r, n);
    const char *how = getenv("CRASH");
    if (v == 5 && how) {
        if (strcmp(how, "segv") == 0) {
            volatile uintptr_t bad = 16; /* a bad address, not NULL: UBSan would stop a NULL store first */
            *(volatile int *)bad = 1;
        } else if (strcmp(how, "abort") == 0) {
            abort();
        } else if (strcmp(how, "source") == 0) {
            /* not here: the source crashes */
        }
    }
    return sage_emit_i64(o, v * 2);
}

/* the source: 1..100; with CRASH=source it crashes itself at 50 */
static int source(sage_ctx *c, sage_out *o, void *u)
{
    int64_t v = (int64_t)(uintptr_t)sage_ctx_local(c);
    const char *how = getenv("CRASH");
    if (v == 50 && how && strcmp(how, "source") == 0)
        raise(SIGSEGV);
    if (sage_emit_i64(o, ++v) < 0)
        return SAGE_ECANCELED;
    sage_ctx_set_local(c, (void *)(uintptr_t)v);
    return v < 100 ? SAGE_MORE : SAGE_DONE;
}

static int run_pipeline(const char *name, const char *jm)
{
    char config[256];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", jm);
    sage_env *env = sage_env_create(name, config);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_source(env, source, NULL, &(sage_op_opts){.name = "src"});
    s = sage_map(s, parse, NULL, &(sage_op_opts){.name = "parse"}); /* forward: chained with the source */
    sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    printf("job %lld rc %d\n", (long long)sage_env_job_id(env), rc);
    if (rc != 0)
        printf("error: %s\n", sage_env_errmsg(env));
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

/* A segfault in "parse", chained after "src": the job's error names "parse", and the task it ran in. */
static void segfault_names_chained_operator(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    CHECK_INT(run_cmd(big, 1 << 20, "CRASH=segv SAGE_HOME=%s %s pipeline crashy %s", d.home, self, d.addr), 1);
    CHECK_CONTAINS(big, "operator \"parse\" instance 0 (pid ");
    CHECK_CONTAINS(big, "crashed with signal 11 (Segmentation fault), in the task of \"src\"");
    CHECK_CONTAINS(daemon_log(&d), "operator \"parse\" instance 0 crashed in its code");
    daemon_down(&d);
}

/* abort() (an assert) in "parse": the same, with signal 6. */
static void abort_names_chained_operator(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    CHECK_INT(run_cmd(big, 1 << 20, "CRASH=abort SAGE_HOME=%s %s pipeline crashy %s", d.home, self, d.addr), 1);
    CHECK_CONTAINS(big, "operator \"parse\" instance 0 (pid ");
    CHECK_CONTAINS(big, "crashed with signal 6 (Aborted), in the task of \"src\"");
    daemon_down(&d);
}

/* A crash in the chain's head is the head's, as before. */
static void crash_in_head_names_head(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    CHECK_INT(run_cmd(big, 1 << 20, "CRASH=source SAGE_HOME=%s %s pipeline crashy %s", d.home, self, d.addr), 1);
    CHECK_CONTAINS(big, "operator \"src\" instance 0 (pid ");
    CHECK_CONTAINS(big, "was killed by signal 11 (Segmentation fault)");
    CHECK(strstr(big, "\"parse\"") == NULL);
    daemon_down(&d);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], argv[3]);
    CHECK_MAIN(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    big = malloc(1 << 20);
    RUN(segfault_names_chained_operator);
    RUN(abort_names_chained_operator);
    RUN(crash_in_head_names_head);
    free(big);
    return CHECK_DONE();
}
