/* tests/integration/test_services.c - a job's services are one instance per job, embedded and under a JobManager.
 *
 * Like test_jm_restart, this program is both the driver and the user
 * program the JobManager relaunches: `test_services pipeline NAME WHERE`
 * declares pipeline NAME on an environment (WHERE "embedded", or a
 * JobManager's HOST:PORT), executes it and prints what it collected. Every
 * case starts its own daemon (tests/jm_daemon.h). The "counter" service
 * answers each call with the next number and its own pid, so a job whose
 * calls reach more than one instance shows duplicates or several pids. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "jm_daemon.h"
#include "pipeline_util.h"

#define N 400 /* records of every pipeline: 1 .. N */

static char self[1024];
static char *big; /* 1 MiB output buffer */

/* ---------------------------------------------------------------- pipelines */

/* "counter": the next number and this process's pid; record 0 of the request asks for a crash when it is
 * the number CRASH_AT names (environment), to show a service that dies. */
static int counter(const void *req, size_t len, sage_reply *reply, void *udata)
{
    uint64_t *n = udata;
    uint64_t next = ++*n;
    const char *crash = getenv("SERVICE_CRASH_AT");
    if (crash && next == strtoull(crash, NULL, 10))
        abort();
    char line[64];
    const char *cuda = getenv("CUDA_VISIBLE_DEVICES");
    int l = snprintf(line, sizeof line, "%" PRIu64 " %d %s", next, (int)getpid(), cuda && *cuda ? cuda : "-");
    return sage_reply_set(reply, line, (size_t)l);
}

/* "stuck": with $SERVICE_GO, never answers before that file exists (the test cancels the job meanwhile);
 * without, answers after 500 ms (callers that wait 50 ms time out first). */
static int stuck(const void *req, size_t len, sage_reply *reply, void *udata)
{
    const char *go = getenv("SERVICE_GO");
    if (!go)
        nanosleep(&(struct timespec){0, 500000000}, NULL);
    while (go && access(go, F_OK) != 0)
        nanosleep(&(struct timespec){0, 5000000}, NULL); /* the file is the condition */
    return sage_reply_set(reply, "late", 4);
}

/* the counter's start hook in "slowstart": a model that takes 2.5 s to load */
static int slow_load(void *u)
{
    nanosleep(&(struct timespec){2, 500000000}, NULL); /* the job's duration, not a wait for anything */
    return 0;
}

/* map: ask a service (the counter by default), emit its answer */
typedef struct asking {
    const char *service;
    int timeout_ms;
} asking;
static int ask(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    const asking *a = u;
    char resp[128];
    size_t len = 0;
    int rc = sage_call(c, a->service, r, n, a->timeout_ms, resp, sizeof resp, &len);
    if (rc != 0)
        return rc;
    return sage_emit(o, resp, len);
}

/* flat_map, asynchronous: four calls in flight from each instance, four answers */
static int ask_async(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    sage_future *f[4];
    for (int i = 0; i < 4; i++)
        if (sage_call_async(c, "counter", r, n, &f[i]) != 0)
            return SAGE_EIO;
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        const void *resp;
        size_t len;
        int w = sage_future_wait(f[i], 30000, &resp, &len);
        if (w == 0 && rc == 0)
            rc = sage_emit(o, resp, len);
        else if (rc == 0)
            rc = w;
        sage_future_destroy(f[i]);
    }
    return rc;
}

/* A source that emits nothing until the file $SERVICE_GO exists (the job runs meanwhile), then ends. */
static int wait_for_go(sage_ctx *c, sage_out *o, void *u)
{
    if (access(getenv("SERVICE_GO"), F_OK) == 0)
        return SAGE_DONE;
    nanosleep(&(struct timespec){0, 2000000}, NULL); /* the file is the condition */
    return SAGE_MORE;
}

static int run_pipeline(const char *name, const char *where)
{
    char config[256];
    if (strcmp(where, "embedded") == 0)
        snprintf(config, sizeof config, "{}");
    else
        snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", where);
    sage_env *env = sage_env_create(name, config);
    sage_collector *c = sage_collector_create(0);
    static uint64_t count, n = N;
    sage_service_opts so = {.queue_capacity = 8};
    if (strcmp(name, "gpu") == 0)
        so.resources = "{\"num_gpus\": 1}";
    if (strcmp(name, "slowstart") == 0)
        so.start = slow_load;
    sage_env_register_service(env, "counter", counter, &count, &so);
    sage_env_register_service(env, "stuck", stuck, NULL, NULL);
    sage_stream *s = strcmp(name, "open") == 0
                         ? sage_from_source(env, wait_for_go, NULL, &(sage_op_opts){.name = "src"})
                         : sage_from_generator(env, gen_range, &n, &(sage_op_opts){.name = "src"});
    static asking counting = {"counter", 30000}, slow = {"stuck", 50}, forever = {"stuck", -1};
    asking *arg = strcmp(name, "slow") == 0 ? &slow : strcmp(name, "cancel") == 0 ? &forever : &counting;
    sage_op_opts ao = {.name = "ask", .parallelism = 4};
    s = strcmp(name, "async") == 0 ? sage_flat_map(sage_rebalance(s), ask_async, NULL, &ao)
                                   : sage_map(sage_rebalance(s), ask, arg, &ao);
    sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    printf("job %lld rc %d\n", (long long)sage_env_job_id(env), rc);
    if (rc != 0)
        printf("error: %s\n", sage_env_errmsg(env));
    size_t got;
    char **v = collected_strs(c, &got);
    for (size_t i = 0; i < got; i++)
        printf("%s\n", v[i]);
    free_strs(v, got);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ helpers */

/* The "counter" answers in out (lines "N PID CUDA"): 1 when they are exactly 1..want, each once, all from
 * one pid (returned in *pid) other than ours. */
static int counter_exact(const char *out, int want, int *pid, char *cuda, size_t cuda_len)
{
    static char seen[1 << 16];
    memset(seen, 0, sizeof seen);
    int count = 0, one_pid = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL;) {
        p++;
        unsigned long long v;
        int q;
        char cu[32];
        if (sscanf(p, "%llu %d %31s", &v, &q, cu) != 3)
            continue;
        if (v < 1 || v > (unsigned long long)want || seen[v]) {
            fprintf(stderr, "answer %llu is out of range or repeated\n", v);
            return 0;
        }
        seen[v] = 1;
        count++;
        if (one_pid && q != one_pid) {
            fprintf(stderr, "answers came from pids %d and %d\n", one_pid, q);
            return 0;
        }
        one_pid = q;
        snprintf(cuda, cuda_len, "%s", cu);
    }
    *pid = one_pid;
    if (count != want)
        fprintf(stderr, "%d answers, expected %d\n", count, want);
    return count == want && one_pid != getpid();
}

/* The status of job `id` on daemon d once it is `state` (NULL after 30 s). */
static json_t *status_in(const daemon_t *d, long long id, const char *state)
{
    for (int64_t end = now_ms() + 30000; now_ms() < end; pause_ms(10)) {
        json_t *st = request(d, "{\"op\": \"status\", \"job_id\": %lld}", id);
        const char *s = json_string_value(json_object_get(st, "state"));
        if (s && strcmp(s, state) == 0)
            return st;
        json_decref(st);
    }
    return NULL;
}

/* The task of status st whose operator is op (NULL: none). */
static json_t *task_of(json_t *st, const char *op)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(st, "tasks"), i, t)
    {
        const char *o = json_string_value(json_object_get(t, "operator"));
        if (o && strcmp(o, op) == 0)
            return t;
    }
    return NULL;
}

/* -------------------------------------------------------------------- cases */

/* Embedded: four map instances share the one counter. */
static void singleton_embedded(void)
{
    int pid;
    char cuda[32];
    CHECK_INT(run_cmd(big, 1 << 20, "%s pipeline counter embedded", self), 0);
    CHECK_CONTAINS(big, " rc 0\n");
    CHECK(counter_exact(big, N, &pid, cuda, sizeof cuda));
}

/* Under a JobManager: one counter process for the job, called by the four map workers; it shows in the
 * job's status as "service:counter" and ends with the job. Synchronous and asynchronous calls. */
static void singleton_under_jobmanager(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    for (int async = 0; async < 2; async++) {
        int pid = 0;
        char cuda[32];
        CHECK_INT(run_cmd(big, 1 << 20, "SAGE_HOME=%s %s pipeline %s %s", d.home, self, async ? "async" : "counter",
                          d.addr),
                  0);
        CHECK_CONTAINS(big, " rc 0\n");
        CHECK(counter_exact(big, async ? 4 * N : N, &pid, cuda, sizeof cuda));
        json_t *st = status_in(&d, async + 1, "finished");
        CHECK(st != NULL);
        json_t *svc = task_of(st, "service:counter");
        CHECK(svc != NULL);
        CHECK_INT(json_integer_value(json_object_get(svc, "pid")), pid); /* the answers' pid is its worker's */
        CHECK_STR(json_string_value(json_object_get(svc, "state")), "finished");
        json_t *m = json_object_get(svc, "metrics");
        CHECK_INT(json_integer_value(json_object_get(m, "requests")), async ? 4 * N : N);
        CHECK(task_of(st, "service:stuck") != NULL); /* every registered service runs, called or not */
        json_decref(st);
    }
    daemon_down(&d);
}

/* A service's resources are placed and enforced like an operator's: the GPU goes to its process. */
static void service_resources_placed(void)
{
    daemon_t d = {.config = "{\"node\": {\"cpus\": 4, \"gpus\": 1}}"};
    if (!daemon_up(&d))
        return;
    int pid = 0;
    char cuda[32] = "";
    CHECK_INT(run_cmd(big, 1 << 20, "SAGE_HOME=%s %s pipeline gpu %s", d.home, self, d.addr), 0);
    CHECK(counter_exact(big, N, &pid, cuda, sizeof cuda));
    CHECK_STR(cuda, "0");
    json_t *st = status_in(&d, 1, "finished");
    json_t *svc = task_of(st, "service:counter");
    CHECK_STR(json_string_value(json_object_get(svc, "gpus")), "0");
    json_decref(st);
    /* more than the node has: refused at submit, naming the service */
    daemon_t small = {.config = "{\"node\": {\"cpus\": 4, \"gpus\": 0}}"};
    if (daemon_up(&small)) {
        CHECK_INT(run_cmd(big, 1 << 20, "SAGE_HOME=%s %s pipeline gpu %s", small.home, self, small.addr), 1);
        CHECK_CONTAINS(big, "\"service:counter\"");
        CHECK_CONTAINS(big, "num_gpus");
        daemon_down(&small);
    }
    daemon_down(&d);
}

/* The same through the tcp data plane (workers find the service by the address it reported). */
static void singleton_tcp_data_plane(void)
{
    daemon_t d = {.config = "{\"data_plane\": \"tcp\"}"};
    if (!daemon_up(&d))
        return;
    int pid = 0;
    char cuda[32];
    CHECK_INT(run_cmd(big, 1 << 20, "SAGE_HOME=%s %s pipeline counter %s", d.home, self, d.addr), 0);
    CHECK(counter_exact(big, N, &pid, cuda, sizeof cuda));
    daemon_down(&d);
}

/* A service whose start hook outlasts the JobManager's start and heartbeat deadlines is not a silent
 * worker: its process reports while the hook runs. */
static void slow_start_is_not_silent(void)
{
    daemon_t d = {.config = "{\"start_timeout_ms\": 1000, \"heartbeat_timeout_ms\": 1500}"};
    if (!daemon_up(&d))
        return;
    int pid = 0;
    char cuda[32];
    CHECK_INT(run_cmd(big, 1 << 20, "SAGE_HOME=%s %s pipeline slowstart %s", d.home, self, d.addr), 0);
    CHECK(counter_exact(big, N, &pid, cuda, sizeof cuda));
    daemon_down(&d);
}

/* A service that dies fails the job, named, and nothing waits on it. */
static void service_crash_fails_job(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    CHECK_INT(run_cmd(big, 1 << 20, "SERVICE_CRASH_AT=50 SAGE_HOME=%s %s pipeline counter %s", d.home, self, d.addr),
              1);
    CHECK_CONTAINS(big, "operator \"service:counter\" instance 0 (pid ");
    CHECK_CONTAINS(big, "was killed by signal 6");
    daemon_down(&d);
}

/* A call's timeout and its message are the embedded ones. */
static void timeout_as_embedded(void)
{
    CHECK_INT(run_cmd(big, 1 << 20, "%s pipeline slow embedded", self), 1);
    CHECK_CONTAINS(big, "service \"stuck\" did not answer within 50 ms");
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    CHECK_INT(run_cmd(big, 1 << 20, "SAGE_HOME=%s %s pipeline slow %s", d.home, self, d.addr), 1);
    CHECK_CONTAINS(big, "service \"stuck\" did not answer within 50 ms");
    daemon_down(&d);
}

/* Cancel while every map instance waits on a service that never answers: the job ends at once. */
static void cancel_wakes_remote_callers(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[300], cmd[2000];
    snprintf(go, sizeof go, "%s/never", d.home);
    snprintf(cmd, sizeof cmd, "SERVICE_GO=%s SAGE_HOME=%s timeout -k 5 120 %s pipeline cancel %s 2>&1", go, d.home,
             self, d.addr);
    fflush(NULL);
    FILE *job = popen(cmd, "r");
    json_t *st = status_in(&d, 1, "running");
    CHECK(st != NULL);
    json_decref(st);
    /* once the service has a request, the callers wait on it */
    for (int64_t end = now_ms() + 30000; now_ms() < end; pause_ms(10)) {
        st = request(&d, "{\"op\": \"status\", \"job_id\": 1}");
        json_t *m = json_object_get(task_of(st, "service:stuck"), "metrics");
        int queued = (int)json_integer_value(json_object_get(m, "queued"));
        json_decref(st);
        if (queued > 0)
            break;
    }
    json_decref(request(&d, "{\"op\": \"cancel\", \"job_id\": 1}"));
    size_t n = job ? fread(big, 1, (1 << 20) - 1, job) : 0;
    big[n] = 0;
    int rc = job ? pclose(job) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1); /* not 124: timeout did not have to end it */
    CHECK_CONTAINS(big, "job 1 rc -");
    st = status_in(&d, 1, "canceled");
    CHECK(st != NULL);
    json_decref(st);
    daemon_down(&d);
}

/* sage_client_call to service `name` of job 1, again while the job or that service is still starting (30 s at
 * most): its answer once the service runs. */
static int call_once_up(sage_client *c, const char *name, int timeout_ms, void **resp, size_t *len, char *err,
                        size_t err_len)
{
    int rc = SAGE_ESTATE;
    for (int64_t end = now_ms() + 30000; (rc == SAGE_ESTATE || rc == SAGE_ENOTFOUND) && now_ms() < end;) {
        rc = sage_client_call(c, 1, name, "x", 1, timeout_ms, resp, len, err, err_len);
        if (rc == SAGE_ESTATE || rc == SAGE_ENOTFOUND)
            pause_ms(10);
    }
    return rc;
}

/* A running job's service called from outside the job: the C client call and `sage service call`, with the
 * errors a caller can meet. */
static void calls_from_outside(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[300], cmd[2000];
    snprintf(go, sizeof go, "%s/go", d.home);
    snprintf(cmd, sizeof cmd, "SERVICE_GO=%s SAGE_HOME=%s timeout -k 5 120 %s pipeline open %s 2>&1", go, d.home, self,
             d.addr);
    fflush(NULL);
    FILE *job = popen(cmd, "r");
    /* once its service runs (the JobManager says where it listens) */
    sage_client *c = NULL;
    char err[2048] = "";
    void *resp = NULL;
    size_t len = 0;
    CHECK_INT(sage_client_connect("127.0.0.1", d.port, d.token, &c, err, sizeof err), 0);
    CHECK_INT(call_once_up(c, "counter", 10000, &resp, &len, err, sizeof err), 0);
    char want[64];
    json_t *st = request(&d, "{\"op\": \"status\", \"job_id\": 1}");
    json_t *svc = task_of(st, "service:counter");
    snprintf(want, sizeof want, "1 %lld -", (long long)json_integer_value(json_object_get(svc, "pid")));
    json_decref(st);
    CHECK_STR(resp ? (char *)resp : "", want);
    free(resp);
    resp = NULL;
    /* what a caller can get wrong, each said */
    CHECK_INT(sage_client_call(c, 1, "nope", "x", 1, 1000, &resp, &len, err, sizeof err), SAGE_ENOSERVICE);
    CHECK_CONTAINS(err, "job 1 has no service \"nope\" (it has \"counter\", \"stuck\")");
    CHECK_INT(sage_client_call(c, 9, "counter", "x", 1, 1000, &resp, &len, err, sizeof err), SAGE_ENOTFOUND);
    CHECK_CONTAINS(err, "no running job 9");
    CHECK_INT(call_once_up(c, "stuck", 50, &resp, &len, err, sizeof err), SAGE_ETIMEDOUT);
    CHECK_CONTAINS(err, "service \"stuck\" of job 1 did not answer within 50 ms");
    sage_client_close(c);
    /* the command line: the answer's bytes on stdout */
    char cli[1100];
    snprintf(cli, sizeof cli, "%s", self); /* build/tests/test_services -> build/cli/sage */
    for (int up = 0; up < 2; up++)
        *strrchr(cli, '/') = 0;
    strncat(cli, "/cli/sage", sizeof cli - strlen(cli) - 1);
    CHECK_INT(run_cmd(big, 1 << 20, "%s service call 1 counter hello --port %d --token-file %s", cli, d.port, d.token),
              0);
    CHECK(strncmp(big, "2 ", 2) == 0); /* the counter's second call */
    CHECK_INT(run_cmd(big, 1 << 20, "echo -n hi | %s service call 1 counter - --port %d --token-file %s", cli, d.port,
                      d.token),
              0);
    CHECK(strncmp(big, "3 ", 2) == 0);
    CHECK_INT(run_cmd(big, 1 << 20, "%s service call 1 nope x --port %d --token-file %s", cli, d.port, d.token), 1);
    CHECK_CONTAINS(big, "sage: job 1 has no service \"nope\"");
    CHECK_INT(run_cmd(big, 1 << 20, "%s service call 1 counter --port %d --token-file %s", cli, d.port, d.token), 2);
    CHECK_CONTAINS(big, "service call needs a job id, a service name and a payload");
    /* the job ends: its services with it */
    int fd = open(go, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    size_t n = job ? fread(big, 1, (1 << 20) - 1, job) : 0;
    big[n] = 0;
    CHECK_INT(job ? WEXITSTATUS(pclose(job)) : -1, 0);
    CHECK_CONTAINS(big, "job 1 rc 0\n");
    CHECK_INT(run_cmd(big, 1 << 20, "%s service call 1 counter x --port %d --token-file %s", cli, d.port, d.token), 1);
    CHECK_CONTAINS(big, "sage: no running job 1");
    daemon_down(&d);
}

/* A name that cannot name a process's log, or resources that could never be placed: refused at once. */
static void registration_refusals(void)
{
    static const struct {
        const char *name, *resources;
        int rc;
        const char *msg;
    } cases[] = {
        {"a/b", NULL, SAGE_EINVAL, "the service name \"a/b\" contains '/' (at offset 1)"},
        {"tab\there", NULL, SAGE_EINVAL, "contains a control character (byte 0x09 at offset 3)"},
        {"", NULL, SAGE_EINVAL, "the service name \"\" is empty"},
        {"m", "{\"num_gpus\": -1}", SAGE_ERESOURCES, "service \"m\": resources:"},
        {"m", "{\"cpus\": 1}", SAGE_ERESOURCES, "cpus"},
        {"ok", "{\"num_cpus\": 1}", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sage_env *env = sage_env_create("refusals", NULL);
        static uint64_t count;
        int rc = sage_env_register_service(env, cases[i].name, counter, &count,
                                           &(sage_service_opts){.resources = cases[i].resources});
        CHECK_INT(rc, cases[i].rc);
        if (cases[i].msg)
            CHECK_CONTAINS(sage_env_errmsg(env), cases[i].msg);
        sage_env_destroy(env);
    }
    char long_name[200];
    memset(long_name, 'x', 120);
    long_name[120] = 0;
    sage_env *env = sage_env_create("refusals", NULL);
    CHECK_INT(sage_env_register_service(env, long_name, counter, NULL, NULL), SAGE_EINVAL);
    CHECK_CONTAINS(sage_env_errmsg(env), "is longer than 119 bytes");
    sage_env_destroy(env);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], argv[3]);
    CHECK_MAIN(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    big = malloc(1 << 20);
    RUN(singleton_embedded);
    RUN(singleton_under_jobmanager);
    RUN(service_resources_placed);
    RUN(singleton_tcp_data_plane);
    RUN(slow_start_is_not_silent);
    RUN(service_crash_fails_job);
    RUN(timeout_as_embedded);
    RUN(cancel_wakes_remote_callers);
    RUN(registration_refusals);
    RUN(calls_from_outside);
    free(big);
    return CHECK_DONE();
}
