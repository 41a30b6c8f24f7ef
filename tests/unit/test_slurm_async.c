/* tests/unit/test_slurm_async.c - the JobManager never waits for Slurm: fake sinfo/squeue/sbatch block on FIFOs
 * the test controls while ping, list and status are answered; timeouts, releases and parked submits.
 *
 * A real daemon (sage_jobmanager_run, in a child process) runs with the
 * Slurm launcher against fake client commands put first in PATH: shell
 * scripts that log their arguments to calls.log and, while a file
 * block.<command> exists, say "started" on one FIFO and then wait for
 * their output on another (ctl). The test holds the first FIFO open, so it
 * knows exactly when a command is blocked, and answers through the second
 * when it chooses: no sleep, every wait has a deadline. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobmanager/jobmanager.h"
#include "util/err.h"
#include "util/time.h"

#define WAIT_MS 20000  /* bound on any wait for the daemon */
#define ANSWER_MS 1000 /* a request answered "at once": far below the 2 s command timeout */
#define CMD_TIMEOUT_MS 2000

static char dir[256], home[300], token[320];
static int port, started_fd = -1, started_w = -1;
static pid_t daemon_pid;

static void path_of(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

static void write_script(const char *name, const char *body)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bin/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f, "#!/bin/sh\nD='%s'\necho \"%s $*\" >> \"$D/calls.log\"\n%s", dir, name, body);
    fclose(f);
    chmod(path, 0755);
}

/* "If block.NAME exists: say so on the started FIFO, then print what the test writes to ctl." */
#define BLOCKING(name)                                                                                                 \
    "if [ -e \"$D/block." name "\" ]; then echo " name " > \"$D/started\"; cat \"$D/ctl\"; exit 0; fi\n"

static void set_block(const char *name, int on)
{
    char path[512];
    snprintf(path, sizeof path, "%s/block.%s", dir, name);
    if (on)
        close(open(path, O_WRONLY | O_CREAT, 0644));
    else
        unlink(path);
}

/* Wait until a fake command says it started (and is now waiting for ctl). */
static int wait_started(const char *what)
{
    int64_t deadline = sage__mono_ms() + WAIT_MS;
    char buf[64];
    for (;;) {
        ssize_t n = read(started_fd, buf, sizeof buf - 1);
        if (n > 0)
            return 1;
        int64_t left = deadline - sage__mono_ms();
        if (left <= 0) {
            fprintf(stderr, "  %s never started\n", what);
            return 0;
        }
        struct pollfd p = {.fd = started_fd, .events = POLLIN};
        poll(&p, 1, (int)left);
    }
}

/* Hand the blocked command its output (it is reading ctl, or about to open it). */
static int answer(const char *text)
{
    char path[512];
    path_of(path, sizeof path, "ctl");
    int64_t deadline = sage__mono_ms() + WAIT_MS;
    int fd;
    while ((fd = open(path, O_WRONLY | O_NONBLOCK)) < 0) {
        if (errno != ENXIO || sage__mono_ms() > deadline) /* ENXIO: its reader has not opened it yet */
            return 0;
        poll(NULL, 0, 5);
    }
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text);
}

static json_t *request(const char *req, int64_t *took_ms)
{
    sage_client *c;
    char err[1024], *out = NULL;
    int64_t t0 = sage__mono_ms();
    if (sage_client_connect("127.0.0.1", port, token, &c, err, sizeof err) != 0) {
        fprintf(stderr, "  connect: %s\n", err);
        return NULL;
    }
    int rc = sage_client_request(c, req, &out, err, sizeof err);
    sage_client_close(c);
    if (took_ms)
        *took_ms = sage__mono_ms() - t0;
    if (rc != 0) {
        fprintf(stderr, "  %s: %s\n", req, err);
        return NULL;
    }
    json_error_t jerr;
    json_t *r = json_loads(out, 0, &jerr);
    free(out);
    return r;
}

static const char *job_doc = "{\"op\": \"submit\", \"job\": {\"name\": \"fake\", \"executable\": \"/bin/true\", "
                             "\"plan_hash\": 1, \"argv\": [\"/bin/true\"], \"chains\": [{\"name\": \"a\", "
                             "\"parallelism\": 2, \"resources\": {\"num_cpus\": 1}}]}}";

static int64_t submit(void)
{
    json_t *r = request(job_doc, NULL);
    int64_t id = r ? json_integer_value(json_object_get(r, "job_id")) : 0;
    json_decref(r);
    return id;
}

/* Wait until job id's status (state or reason) contains want. */
static int wait_status(int64_t id, const char *want)
{
    int64_t deadline = sage__mono_ms() + WAIT_MS;
    char req[128], last[1024] = "";
    snprintf(req, sizeof req, "{\"op\": \"status\", \"job_id\": %lld}", (long long)id);
    while (sage__mono_ms() < deadline) {
        json_t *r = request(req, NULL);
        snprintf(last, sizeof last, "%s: %s", r ? json_string_value(json_object_get(r, "state")) : "?",
                 r ? json_string_value(json_object_get(r, "error")) : "?");
        json_decref(r);
        if (strstr(last, want))
            return 1;
        poll(NULL, 0, 20);
    }
    fprintf(stderr, "  job %lld never showed \"%s\" (last: %s)\n", (long long)id, want, last);
    return 0;
}

/* Wait until a fake command was called with these words. */
static int wait_call(const char *line)
{
    char path[512];
    path_of(path, sizeof path, "calls.log");
    int64_t deadline = sage__mono_ms() + WAIT_MS;
    while (sage__mono_ms() < deadline) {
        FILE *f = fopen(path, "r");
        char l[512];
        while (f && fgets(l, sizeof l, f))
            if (strncmp(l, line, strlen(line)) == 0) {
                fclose(f);
                return 1;
            }
        if (f)
            fclose(f);
        poll(NULL, 0, 20);
    }
    fprintf(stderr, "  no call \"%s\" in calls.log\n", line);
    return 0;
}

static void cancel(int64_t id)
{
    char req[128];
    snprintf(req, sizeof req, "{\"op\": \"cancel\", \"job_id\": %lld}", (long long)id);
    json_decref(request(req, NULL));
    CHECK(wait_status(id, "canceled"));
}

/* The error a refused submit got (the submitter thread of test_sinfo_fails). */
static char refused[1024];

static void *refused_submitter(void *arg)
{
    (void)arg;
    sage_client *c;
    char *out = NULL;
    if (sage_client_connect("127.0.0.1", port, token, &c, refused, sizeof refused) != 0)
        return NULL;
    if (sage_client_request(c, job_doc, &out, refused, sizeof refused) == 0)
        sage__strlcpy(refused, "accepted", sizeof refused);
    free(out);
    sage_client_close(c);
    return NULL;
}

/* Submit a job while `command` blocks; wait until it is blocked. */
static int64_t submit_blocked(const char *command)
{
    set_block(command, 1);
    int64_t id = submit();
    CHECK(id > 0);
    CHECK(wait_started(command));
    return id;
}

/* Ping, list and status while a Slurm command is blocked: each answered at once. */
static void check_answers_at_once(int64_t id, const char *while_what)
{
    char status[128];
    snprintf(status, sizeof status, "{\"op\": \"status\", \"job_id\": %lld}", (long long)id);
    const char *reqs[] = {"{\"op\": \"ping\"}", "{\"op\": \"list\"}", status};
    for (int i = 0; i < (id ? 3 : 2); i++) {
        int64_t took = -1;
        json_t *r = request(reqs[i], &took);
        CHECK(r != NULL);
        json_decref(r);
        printf("     %s answered in %lld ms while %s\n", reqs[i], (long long)took, while_what);
        CHECK(took >= 0 && took < ANSWER_MS);
    }
}

static void test_squeue_blocked(void)
{
    int64_t id = submit_blocked("squeue");
    CHECK(wait_status(id, "waiting for Slurm allocation 4242 on fake1"));
    check_answers_at_once(id, "squeue is blocked");
    CHECK(answer("PENDING|Priority\n"));
    CHECK(wait_status(id, "waiting for Slurm allocation 4242: PENDING (Priority)"));
    /* the next poll blocks and is never answered: killed at its deadline, the reason says so */
    CHECK(wait_started("the next squeue"));
    int64_t t0 = sage__mono_ms();
    CHECK(wait_status(id, "squeue failed: squeue did not finish within 2000 ms"));
    int64_t took = sage__mono_ms() - t0;
    printf("     a blocked squeue was killed after %lld ms (command_timeout_ms %d)\n", (long long)took, CMD_TIMEOUT_MS);
    CHECK(took < CMD_TIMEOUT_MS + 3000);
    set_block("squeue", 0);
    CHECK(wait_status(id, "PENDING (Resources)"));
    cancel(id);
    CHECK(wait_call("scancel 4242"));
}

static void *submitter(void *arg)
{
    *(int64_t *)arg = submit();
    return NULL;
}

/* No job is live, so a submit reads the nodes again: it waits for sinfo, nobody else does. */
static void test_sinfo_blocked(void)
{
    set_block("sinfo", 1);
    int64_t id = 0;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, submitter, &id) == 0);
    CHECK(wait_started("sinfo"));
    check_answers_at_once(0, "a submit waits for sinfo");
    set_block("sinfo", 0);
    CHECK(answer("{\"nodes\": [{\"name\": \"fake1\", \"state\": \"idle\", \"cpus\": 4, \"real_memory\": 4096},"
                 " {\"name\": \"fake2\", \"state\": \"idle\", \"cpus\": 4, \"real_memory\": 4096}]}\n"));
    pthread_join(th, NULL);
    CHECK(id > 0);
    CHECK(wait_status(id, "PENDING (Resources)"));
    cancel(id);
}

/* The nodes cannot be read again: the waiting submit is refused with sinfo's reason, the daemon goes on. */
static void test_sinfo_fails(void)
{
    set_block("sinfo", 1);
    pthread_t th;
    refused[0] = '\0';
    CHECK(pthread_create(&th, NULL, refused_submitter, NULL) == 0);
    CHECK(wait_started("sinfo"));
    set_block("sinfo", 0);
    CHECK(answer("sinfo: error: slurm_load_node: Unable to contact slurm controller\n"));
    pthread_join(th, NULL);
    CHECK_CONTAINS(refused, "reading the Slurm cluster's nodes: sinfo --json printed no JSON");
    check_answers_at_once(0, "nothing waits");
}

/* A job canceled while sbatch runs: the allocation sbatch then reports is released at once. */
static void test_sbatch_after_cancel(void)
{
    int64_t id = submit_blocked("sbatch");
    CHECK(wait_status(id, "requesting a Slurm allocation on fake1"));
    check_answers_at_once(id, "sbatch is blocked");
    cancel(id);
    set_block("sbatch", 0);
    CHECK(answer("4343\n"));
    CHECK(wait_call("scancel 4343"));
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &l) != 0)
        return 0;
    close(fd);
    return ntohs(a.sin_port);
}

static int start_daemon(void)
{
    char conf[512], config[1024], path[600];
    path_of(conf, sizeof conf, "slurm.conf");
    close(open(conf, O_WRONLY | O_CREAT, 0644));
    snprintf(config, sizeof config, "{\"slurm\": {\"conf\": \"%s\", \"command_timeout_ms\": %d}}", conf,
             CMD_TIMEOUT_MS);
    snprintf(path, sizeof path, "%s/bin:%s", dir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    port = free_port();
    int p[2];
    if (port == 0 || pipe(p) != 0)
        return 0;
    daemon_pid = fork();
    if (daemon_pid == 0) {
        close(p[0]);
        sage_jobmanager_opts o = {.host = "127.0.0.1", .port = port, .home = home, .config = config, .ready_fd = p[1]};
        char err[1024];
        int rc = sage_jobmanager_run(&o, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "  daemon: %s\n", err);
        _exit(rc ? 1 : 0);
    }
    close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    char c = 0;
    int ok = poll(&pf, 1, WAIT_MS) == 1 && read(p[0], &c, 1) == 1 && c == 'R';
    close(p[0]);
    return ok;
}

/* shutdown: the daemon ends with status 0 (its exit code is the run's result). */
static void test_shutdown(void)
{
    int pidfd = (int)syscall(SYS_pidfd_open, daemon_pid, 0);
    json_decref(request("{\"op\": \"shutdown\"}", NULL));
    struct pollfd pf = {.fd = pidfd, .events = POLLIN};
    CHECK(pidfd >= 0 && poll(&pf, 1, WAIT_MS) == 1);
    int st = -1;
    CHECK(waitpid(daemon_pid, &st, 0) == daemon_pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    daemon_pid = 0;
    if (pidfd >= 0)
        close(pidfd);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/sage-test-slurm-async-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(home, sizeof home, "%s/home", dir);
    snprintf(token, sizeof token, "%s/token", home);
    char path[512];
    snprintf(path, sizeof path, "%s/bin", dir);
    mkdir(path, 0755);
    path_of(path, sizeof path, "started");
    mkfifo(path, 0600);
    started_fd = open(path, O_RDONLY | O_NONBLOCK);
    started_w = open(path, O_WRONLY | O_NONBLOCK); /* always a writer: no hang-up to poll */
    path_of(path, sizeof path, "ctl");
    mkfifo(path, 0600);
    write_script("sinfo", BLOCKING("sinfo") "echo '{\"nodes\": [{\"name\": \"fake1\", \"state\": \"idle\", "
                                            "\"cpus\": 4, \"real_memory\": 4096}]}'\n");
    write_script("squeue", "case \"$*\" in *'%k'*) exit 0;; esac\n" BLOCKING("squeue") "echo 'PENDING|Resources'\n");
    write_script("sbatch", BLOCKING("sbatch") "echo 4242\n");
    write_script("scancel", "exit 0\n");
    write_script("scontrol", "echo 'JobId=4242 JobState=PENDING Reason=Resources'\n");
    if (started_fd < 0 || started_w < 0 || !start_daemon()) {
        fprintf(stderr, "the daemon did not start\n");
        return 1;
    }
    RUN(test_squeue_blocked);
    RUN(test_sinfo_blocked);
    RUN(test_sinfo_fails);
    RUN(test_sbatch_after_cancel);
    RUN(test_shutdown);
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return CHECK_DONE();
}
