/* cli/sage.c - the `sage` command: start and stop a JobManager, list and control its jobs. Public API only.
 *
 * Exit codes: 0 done; 1 the JobManager refused or failed the request (the
 * message says why); 2 usage error; 3 no JobManager answered. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sage/sage.h>

#include "cluster.h"
#include "jobmanager/jobmanager.h"

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_NOJM = 3 };

typedef struct opts {
    char host[256];
    int port;
    const char *token_file;
    const char *home;
    const char *config;
    int json, foreground, follow;
} opts;

static const char *const usage_text =
    "usage: sage <command> [options]\n"
    "\n"
    "commands:\n"
    "  jobmanager start [--host H] [--port P] [--home DIR] [--config FILE|JSON] [--foreground]\n"
    "  jobmanager status [--json]\n"
    "  jobmanager stop\n"
    "  job list [--json]\n"
    "  job status <id> [--json]\n"
    "  job pause|resume|stop|cancel <id>\n"
    "  job logs <id> [--follow]\n"
    "  cluster start --head | --worker --head-address=H:P ...   (see: sage cluster --help)\n"
    "  cluster status [--json] | cluster stop\n"
    "  version\n"
    "\n"
    "client options (every command):\n"
    "  --host H, --port P   the JobManager (default 127.0.0.1:19001, or $SAGE_JOBMANAGER=host:port)\n"
    "  --token-file F       its token (default $SAGE_TOKEN_FILE, else $SAGE_HOME/token, else ~/.sage/token)\n"
    "  --home DIR           state directory of the JobManager (default $SAGE_HOME, else ~/.sage)\n"
    "\n"
    "exit status: 0 done, 1 the JobManager refused or failed the request, 2 usage error,\n"
    "             3 no JobManager answered\n";

static int usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "sage: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n\n");
    }
    fputs(usage_text, fmt ? stderr : stdout);
    return fmt ? EXIT_USAGE : 0;
}

static int connect_jm(const opts *o, sage_client **c)
{
    char err[1024];
    int rc = sage_client_connect(o->host, o->port, o->token_file, c, err, sizeof err);
    if (rc == SAGE_EIO) { /* nothing answered (or the connection broke): exit 3 */
        fprintf(stderr, "sage: no JobManager at %s:%d: %s\n", o->host, o->port, err);
        return EXIT_NOJM;
    }
    if (rc != 0) { /* it answered, but refused us (token), or the token file is unusable */
        fprintf(stderr, "sage: the JobManager at %s:%d refused the connection: %s\n", o->host, o->port, err);
        return EXIT_REFUSED;
    }
    return 0;
}

/* One request; prints the JobManager's error and returns an exit code. */
static int request(const opts *o, json_t *req, json_t **reply)
{
    sage_client *c;
    int ec = connect_jm(o, &c);
    if (ec) {
        json_decref(req);
        return ec;
    }
    char *txt = json_dumps(req, JSON_COMPACT), *out = NULL, err[4096];
    json_decref(req);
    int rc = sage_client_request(c, txt, &out, err, sizeof err);
    free(txt);
    sage_client_close(c);
    if (rc != 0) {
        fprintf(stderr, "sage: %s\n", err);
        return EXIT_REFUSED;
    }
    json_error_t jerr;
    *reply = json_loads(out, 0, &jerr);
    free(out);
    return *reply ? 0 : EXIT_REFUSED;
}

static void human_bytes(char *buf, size_t len, double b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    if (b == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, i ? "%.1f%s" : "%.0f%s", b, u[i]);
}

static void human_ns(char *buf, size_t len, double ns)
{
    if (ns <= 0)
        snprintf(buf, len, "-");
    else if (ns < 10e3)
        snprintf(buf, len, "%.0fns", ns);
    else if (ns < 10e6)
        snprintf(buf, len, "%.1fus", ns / 1e3);
    else if (ns < 10e9)
        snprintf(buf, len, "%.1fms", ns / 1e6);
    else
        snprintf(buf, len, "%.1fs", ns / 1e9);
}

static void human_time(char *buf, size_t len, int64_t ms)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static int parse_id(const char *s, json_int_t *id)
{
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || *end || v < 1)
        return -1;
    *id = v;
    return 0;
}

/* ---- jobmanager ---- */

/* An absolute form of a path given relative to where `sage` was started (the
 * daemon changes to / before it reads anything). JSON text is left alone. */
static const char *absolute(const char *path, char *buf, size_t len)
{
    const char *t = path;
    while (t && (*t == ' ' || *t == '\t' || *t == '\n'))
        t++;
    if (!path || path[0] == '/' || *t == '{')
        return path;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return path;
    int n = snprintf(buf, len, "%s/%s", cwd, path);
    return n > 0 && (size_t)n < len ? buf : path;
}

static int jm_start(const opts *o)
{
    char home_abs[4200], config_abs[4200], env_home[4200];
    const char *home = o->home;
    if (!home && getenv("SAGE_HOME") && *getenv("SAGE_HOME"))
        home = absolute(getenv("SAGE_HOME"), env_home, sizeof env_home);
    sage_jobmanager_opts jo = {.host = o->host,
                               .port = o->port,
                               .home = absolute(home, home_abs, sizeof home_abs),
                               .config = absolute(o->config, config_abs, sizeof config_abs),
                               .ready_fd = -1};
    char err[2048];
    if (o->foreground) {
        jo.log_to_stderr = 1;
        int rc = sage_jobmanager_run(&jo, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "sage: the JobManager could not start: %s\n", err);
            return EXIT_REFUSED;
        }
        return 0;
    }
    int p[2];
    if (pipe(p) != 0) {
        perror("sage: pipe");
        return EXIT_REFUSED;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("sage: fork");
        return EXIT_REFUSED;
    }
    if (pid == 0) {
        close(p[0]);
        setsid();
        if (fork() > 0) /* the daemon is a grandchild: not a session leader, no terminal */
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0), dup2(null, 1), dup2(null, 2);
            if (null > 2)
                close(null);
        }
        if (chdir("/") != 0)
            _exit(1);
        jo.ready_fd = p[1];
        int rc = sage_jobmanager_run(&jo, err, sizeof err);
        if (rc != 0) {
            char msg[2100];
            int n = snprintf(msg, sizeof msg, "E%s", err);
            (void)!write(p[1], msg, (size_t)n);
        }
        _exit(rc ? 1 : 0);
    }
    close(p[1]);
    waitpid(pid, NULL, 0);
    char buf[2100];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    if (n > 0 && buf[0] == 'R') {
        char hd[1024];
        sage_home_dir(jo.home, hd, sizeof hd);
        printf("JobManager started on %s:%d (state directory %s, log %s/jobmanager.log)\n", o->host, o->port, hd, hd);
        return 0;
    }
    buf[n > 0 ? n : 0] = 0;
    fprintf(stderr, "sage: the JobManager could not start: %s\n", n > 1 ? buf + 1 : "it exited during startup");
    return EXIT_REFUSED;
}

static int jm_status(const opts *o)
{
    json_t *r;
    int ec = request(o, json_pack("{s:s}", "op", "ping"), &r);
    if (ec)
        return ec;
    if (o->json) {
        char *s = json_dumps(r, JSON_INDENT(2));
        puts(s);
        free(s);
    } else {
        printf("JobManager %s running on %s:%lld, pid %lld, state directory %s\n",
               json_string_value(json_object_get(r, "version")), json_string_value(json_object_get(r, "host")),
               json_integer_value(json_object_get(r, "port")), json_integer_value(json_object_get(r, "pid")),
               json_string_value(json_object_get(r, "home")));
        printf("live jobs: %lld; memory limits: %s\n", json_integer_value(json_object_get(r, "jobs_live")),
               json_string_value(json_object_get(r, "memory_enforcement")));
    }
    json_decref(r);
    return 0;
}

static int jm_stop(const opts *o)
{
    json_t *r;
    int ec = request(o, json_pack("{s:s}", "op", "ping"), &r);
    if (ec)
        return ec;
    pid_t pid = (pid_t)json_integer_value(json_object_get(r, "pid"));
    json_decref(r);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if ((ec = request(o, json_pack("{s:s}", "op", "shutdown"), &r)) != 0) {
        if (pfd >= 0)
            close(pfd);
        return ec;
    }
    json_decref(r);
    /* wait (bounded) until the process is gone, so a new start finds the port and state free */
    int gone = 0;
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        gone = poll(&p, 1, 30000) == 1;
        close(pfd);
    } else {
        for (int i = 0; i < 3000 && !gone; i++) {
            gone = kill(pid, 0) != 0;
            if (!gone)
                nanosleep(&(struct timespec){0, 10000000}, NULL);
        }
    }
    if (!gone) {
        fprintf(stderr, "sage: the JobManager (pid %d) accepted the shutdown but is still running after 30 s\n", (int)pid);
        return EXIT_REFUSED;
    }
    printf("JobManager on %s:%d stopped\n", o->host, o->port);
    return 0;
}

/* ---- jobs ---- */

static int job_list(const opts *o)
{
    json_t *r;
    int ec = request(o, json_pack("{s:s}", "op", "list"), &r);
    if (ec)
        return ec;
    json_t *jobs = json_object_get(r, "jobs");
    if (o->json) {
        char *s = json_dumps(jobs, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(r);
        return 0;
    }
    printf("%-6s %-24s %-9s %-19s %9s  %s\n", "ID", "NAME", "STATE", "SUBMITTED", "DURATION", "REASON");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        char sub[32], dur[32] = "-";
        human_time(sub, sizeof sub, json_integer_value(json_object_get(j, "submitted_ms")));
        int64_t st = json_integer_value(json_object_get(j, "started_ms")),
                en = json_integer_value(json_object_get(j, "ended_ms"));
        if (st > 0)
            snprintf(dur, sizeof dur, "%.1fs", (double)((en > 0 ? en : st) - st) / 1000.0);
        const char *err = json_string_value(json_object_get(j, "error"));
        char first[96];
        snprintf(first, sizeof first, "%s", err ? err : "");
        char *nl = strchr(first, '\n');
        if (nl)
            *nl = 0;
        printf("%-6lld %-24s %-9s %-19s %9s  %s\n", json_integer_value(json_object_get(j, "job_id")),
               json_string_value(json_object_get(j, "name")), json_string_value(json_object_get(j, "state")), sub,
               en > 0 ? dur : (st > 0 ? "running" : "-"), first);
    }
    json_decref(r);
    return 0;
}

static int job_status(const opts *o, json_int_t id)
{
    json_t *r;
    int ec = request(o, json_pack("{s:s,s:I}", "op", "status", "job_id", id), &r);
    if (ec)
        return ec;
    if (o->json) {
        char *s = json_dumps(r, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(r);
        return 0;
    }
    const char *err = json_string_value(json_object_get(r, "error"));
    printf("job %lld \"%s\": %s\n", (long long)id, json_string_value(json_object_get(r, "name")),
           json_string_value(json_object_get(r, "state")));
    if (err && *err)
        printf("reason: %s\n", err);
    printf("%-18s %4s %-8s %7s %-10s %-8s %-5s %9s %9s %10s %10s %10s %9s %9s %5s %9s\n", "OPERATOR", "INST", "STATE",
           "PID", "HOST", "CPUS", "GPUS", "MEM_LIMIT", "PEAK_MEM", "IN", "OUT", "REC/S", "P50", "P99", "QUEUE",
           "BACKPRESS");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(r, "tasks"), i, t)
    {
        json_t *m = json_object_get(t, "metrics");
        json_t *ops = json_object_get(m, "operators");
        json_t *head = json_array_get(ops, 0), *tail = json_array_get(ops, json_array_size(ops) - 1);
        char lim[16], peak[16], p50[16] = "-", p99[16] = "-", bp[16] = "-";
        human_bytes(lim, sizeof lim, json_number_value(json_object_get(t, "memory_limit")));
        human_bytes(peak, sizeof peak, json_number_value(json_object_get(t, "peak_memory")));
        json_t *pt = json_object_get(m, "processing_time_ns");
        if (pt && json_number_value(json_object_get(pt, "p50")) > 0) {
            human_ns(p50, sizeof p50, json_number_value(json_object_get(pt, "p50")));
            human_ns(p99, sizeof p99, json_number_value(json_object_get(pt, "p99")));
        }
        if (m)
            snprintf(bp, sizeof bp, "%.3fs", json_number_value(json_object_get(m, "backpressure_ns")) / 1e9);
        const char *cpus = json_string_value(json_object_get(t, "cpus"));
        const char *gpus = json_string_value(json_object_get(t, "gpus"));
        const char *host = json_string_value(json_object_get(t, "host"));
        printf("%-18s %4lld %-8s %7lld %-10s %-8s %-5s %9s %9s %10lld %10lld %10.0f %9s %9s %5lld %9s\n",
               json_string_value(json_object_get(t, "operator")), json_integer_value(json_object_get(t, "instance")),
               json_string_value(json_object_get(t, "state")), json_integer_value(json_object_get(t, "pid")),
               host ? host : "-", cpus && *cpus ? cpus : "-", gpus && *gpus ? gpus : "-", lim, peak,
               json_integer_value(json_object_get(head, "records_in")),
               json_integer_value(json_object_get(tail, "records_out")),
               json_number_value(json_object_get(m, "records_per_s")), p50, p99,
               json_integer_value(json_object_get(m, "queue_depth")), bp);
    }
    json_decref(r);
    return 0;
}

static int job_control(const opts *o, const char *action, json_int_t id)
{
    json_t *r;
    int ec = request(o, json_pack("{s:s,s:I}", "op", action, "job_id", id), &r);
    if (ec)
        return ec;
    json_decref(r);
    printf("job %lld: %s requested\n", (long long)id, action);
    return 0;
}

static int job_logs(const opts *o, json_int_t id)
{
    sage_client *c;
    int ec = connect_jm(o, &c);
    if (ec)
        return ec;
    json_t *req = json_pack("{s:s,s:I,s:b}", "op", "logs", "job_id", id, "follow", o->follow);
    char *txt = json_dumps(req, JSON_COMPACT), *out = NULL, err[4096];
    json_decref(req);
    int rc = sage_client_request(c, txt, &out, err, sizeof err);
    free(txt);
    if (rc != 0) {
        fprintf(stderr, "sage: %s\n", err);
        sage_client_close(c);
        return EXIT_REFUSED;
    }
    json_error_t jerr;
    json_t *r = json_loads(out, 0, &jerr);
    free(out);
    fputs(json_string_value(json_object_get(r, "logs")) ?: "", stdout);
    int live = json_is_true(json_object_get(r, "live"));
    json_decref(r);
    fflush(stdout);
    while (o->follow && live) {
        char *ev = NULL;
        if (sage_client_event(c, -1, &ev, err, sizeof err) != 0)
            break;
        json_t *e = json_loads(ev, 0, &jerr);
        free(ev);
        const char *kind = json_string_value(json_object_get(e, "event"));
        if (kind && strcmp(kind, "log") == 0)
            printf("%s\n", json_string_value(json_object_get(e, "line")));
        else if (kind && strcmp(kind, "end") == 0)
            live = 0;
        fflush(stdout);
        json_decref(e);
    }
    sage_client_close(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "cluster") == 0)
        return sage_cluster_main(argc - 1, argv + 1); /* cli/cluster.c: its own options */
    opts o = {.port = SAGE_JOBMANAGER_PORT};
    snprintf(o.host, sizeof o.host, "127.0.0.1");
    const char *env_jm = getenv("SAGE_JOBMANAGER");
    if (env_jm && *env_jm) {
        const char *colon = strrchr(env_jm, ':');
        if (colon) {
            snprintf(o.host, sizeof o.host, "%.*s", (int)(colon - env_jm), env_jm);
            o.port = atoi(colon + 1);
        } else {
            snprintf(o.host, sizeof o.host, "%s", env_jm);
        }
    }
    const char *pos[4] = {0};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return usage(NULL, NULL);
        else if (strcmp(a, "--json") == 0)
            o.json = 1;
        else if (strcmp(a, "--foreground") == 0)
            o.foreground = 1;
        else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0)
            o.follow = 1;
        else if (strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0 || strcmp(a, "--token-file") == 0 ||
                 strcmp(a, "--home") == 0 || strcmp(a, "--config") == 0) {
            if (!val)
                return usage("%s needs a value", a);
            i++;
            if (strcmp(a, "--host") == 0)
                snprintf(o.host, sizeof o.host, "%s", val);
            else if (strcmp(a, "--port") == 0) {
                char *end;
                long p = strtol(val, &end, 10);
                if (*end || p < 1 || p > 65535)
                    return usage("--port expects 1..65535, got %s", val);
                o.port = (int)p;
            } else if (strcmp(a, "--token-file") == 0)
                o.token_file = val;
            else if (strcmp(a, "--home") == 0)
                o.home = val;
            else
                o.config = val;
        } else if (a[0] == '-' && a[1]) {
            return usage("unknown option %s", a);
        } else if (npos < 4) {
            pos[npos++] = a;
        } else {
            return usage("too many arguments (%s)", a);
        }
    }
    if (o.home && !o.token_file) {
        static char tf[1100];
        snprintf(tf, sizeof tf, "%s/token", o.home);
        o.token_file = tf;
    }
    if (npos == 0)
        return usage("a command is needed", NULL);
    if (strcmp(pos[0], "version") == 0 && npos == 1) {
        printf("sage %s\n", sage_version());
        return 0;
    }
    if (strcmp(pos[0], "jobmanager") == 0 && npos == 2) {
        if (strcmp(pos[1], "start") == 0)
            return jm_start(&o);
        if (strcmp(pos[1], "status") == 0)
            return jm_status(&o);
        if (strcmp(pos[1], "stop") == 0)
            return jm_stop(&o);
        return usage("unknown jobmanager command %s", pos[1]);
    }
    if (strcmp(pos[0], "job") == 0 && npos >= 2) {
        if (strcmp(pos[1], "list") == 0 && npos == 2)
            return job_list(&o);
        json_int_t id;
        if (npos != 3)
            return usage("job %s needs a job id", pos[1]);
        if (parse_id(pos[2], &id) != 0)
            return usage("not a job id: %s", pos[2]);
        if (strcmp(pos[1], "status") == 0)
            return job_status(&o, id);
        if (strcmp(pos[1], "logs") == 0)
            return job_logs(&o, id);
        if (strcmp(pos[1], "pause") == 0 || strcmp(pos[1], "resume") == 0 || strcmp(pos[1], "stop") == 0 ||
            strcmp(pos[1], "cancel") == 0)
            return job_control(&o, pos[1], id);
        return usage("unknown job command %s", pos[1]);
    }
    return usage("unknown command %s", pos[0]);
}
