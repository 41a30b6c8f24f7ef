/* tests/integration/test_hardening.c - the JobManager's perimeter: what a local user without the token, or anyone on the
 * network, can do to it (docs/security.md names each case).
 *
 * Like test_jobmanager, this program is both the driver and the user program
 * the JobManager relaunches: `test_hardening pipeline NAME HOST:PORT` declares
 * pipeline NAME on a remote environment and executes it. Every case starts
 * its own daemon (a forked child running sage_jobmanager_run) on a free port
 * with a fresh state directory. Cases that need a second user (chown to
 * nobody, a child that setuid()s to nobody) skip, saying so, when not run as
 * root. Waits are conditions polled against deadlines; the two measurements
 * (the daemon's memory and its CPU time) read /proc/PID. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "jobmanager/jobmanager.h" /* the daemon library: each case runs its own JobManager */
#include "net/frame.h"             /* internal: raw frames and the token reader, to speak as a stranger */
#include "pipeline_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

#define NOBODY 65534

static char self[1024], cli[1100];
static char *big; /* 1 MiB output buffer */

/* ---------------------------------------------------------------- pipelines */

static int double_it(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_emit_i64(o, 2 * sage_rec_i64(r, n));
}

static int sink_ok(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

/* Fails at record 3 with a message that tries to forge a line and colour the terminal. */
static int forge_fail(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    if (sage_rec_i64(r, n) == 3) {
        sage_ctx_fail(c, "bad\nFORGED2 line\x1b[0m");
        return SAGE_EINVAL;
    }
    return sage_emit(o, r, n);
}

/* The descriptors this process holds, as "fds: 0 1 2 ..." (the listing's own descriptor left out). */
static void print_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return;
    int fds[256], n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < 256)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(dir))
            fds[n++] = atoi(e->d_name);
    closedir(dir);
    for (int i = 1; i < n; i++) /* sort */
        for (int k = i; k > 0 && fds[k - 1] > fds[k]; k--) {
            int t = fds[k];
            fds[k] = fds[k - 1];
            fds[k - 1] = t;
        }
    char line[2048] = "fds:";
    size_t l = strlen(line);
    for (int i = 0; i < n && l < sizeof line - 16; i++)
        l += (size_t)snprintf(line + l, sizeof line - l, " %d", fds[i]);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

/* `pipeline NAME ADDR`: small (3 tasks, results), fds (a worker prints its descriptors at start), forged (a
 * failure message with a newline and escapes; the library refuses such job names, see names_escaped), long (a long name, for log volume), quoted (runs
 * until canceled, an operator whose name holds a quote and a backslash). */
static int run_pipeline(const char *name, const char *jm)
{
    if (strcmp(name, "fds") == 0 && getenv("SAGE_WORKER_JOB"))
        print_fds(); /* before anything of ours opens a descriptor */
    char config[256];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", jm);
    char job[256];
    if (strcmp(name, "long") == 0)
        snprintf(job, sizeof job, "%0120d", 7);
    else
        snprintf(job, sizeof job, "%s", name);
    sage_env *env = sage_env_create(job, config);
    sage_collector *c = sage_collector_create(0);
    static uint64_t n = 100, endless = UINT64_MAX / 2; /* quoted: until canceled */
    int forever = strcmp(name, "quoted") == 0 || strcmp(name, "endless") == 0;
    sage_stream *s = sage_from_generator(env, gen_range, forever ? &endless : &n, &(sage_op_opts){.name = "src"});
    if (strcmp(name, "quoted") == 0 || strcmp(name, "endless") == 0)
        s = sage_map(sage_rebalance(s), double_it, NULL,
                     &(sage_op_opts){.name = strcmp(name, "quoted") == 0 ? "q\"uote\\back" : "double"});
    else if (strcmp(name, "forged") == 0)
        s = sage_map(sage_rebalance(s), forge_fail, NULL, &(sage_op_opts){.name = "forge"});
    else
        s = sage_map(sage_rebalance(s), double_it, NULL, &(sage_op_opts){.name = "double"});
    if (strcmp(name, "fds") == 0 || strcmp(name, "endless") == 0)
        sage_sink(sage_rebalance(s), sink_ok, NULL,
                  &(sage_op_opts){.name = strcmp(name, "fds") == 0 ? "fdsink" : "end"});
    else
        sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.name = "out"});
    int rc = sage_env_execute(env);
    printf("job %lld rc %d\n", (long long)sage_env_job_id(env), rc);
    if (rc != 0)
        printf("error: %s\n", sage_env_errmsg(env));
    printf("collected %zu\n", sage_collector_count(c));
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms) { nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL); }

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

/* A daemon under test. */
typedef struct daemon_t {
    char home[512], token[600], addr[64], log[600];
    int port;
    pid_t pid;
    char err[2200]; /* why it did not start */
} daemon_t;

typedef void (*child_setup)(void);

/* Start a JobManager on a free port for home (created 0700 if missing): setup runs in its process first
 * (umask, rlimits); extra is the config. pid > 0 once it listens; else -1 and d->err says why. */
static pid_t start_daemon(daemon_t *d, const char *home, const char *config, child_setup setup)
{
    snprintf(d->home, sizeof d->home, "%s", home);
    snprintf(d->token, sizeof d->token, "%s/token", home);
    snprintf(d->log, sizeof d->log, "%s/jobmanager.log", home);
    d->err[0] = 0;
    for (int tries = 0; tries < 3; tries++) { /* another case may take the port first */
        d->port = free_port();
        snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            return d->pid = -1;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            if (setup)
                setup();
            sage_jobmanager_opts o =
                {.host = "127.0.0.1", .port = d->port, .home = home, .ready_fd = p[1], .config = config};
            char err[2048];
            int rc = sage_jobmanager_run(&o, err, sizeof err);
            if (rc != 0) {
                char msg[2100];
                int n = snprintf(msg, sizeof msg, "E%s", err);
                (void)!write(p[1], msg, (size_t)n);
            }
            _exit(rc ? 1 : 0);
        }
        close(p[1]);
        char buf[2100];
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        close(p[0]);
        buf[n > 0 ? n : 0] = 0;
        if (n > 0 && buf[0] == 'R')
            return d->pid = pid;
        waitpid(pid, NULL, 0);
        snprintf(d->err, sizeof d->err, "%s", n > 1 ? buf + 1 : "it exited during startup");
        if (!strstr(d->err, "already in use"))
            break;
    }
    return d->pid = -1;
}

static void stop_daemon(daemon_t *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, NULL, 0);
    d->pid = -1;
}

static void temp_dir(char *out, size_t cap, const char *what);
static void remove_tree(const char *dir);

/* A daemon on a fresh state directory (/tmp/sage-harden-WHAT-XXXXXX, 0700); 1 once it listens. */
static int daemon_up(daemon_t *d, const char *what, const char *config, child_setup setup)
{
    char home[256];
    temp_dir(home, sizeof home, what);
    return home[0] && start_daemon(d, home, config, setup) > 0;
}

/* Stop it and remove its state directory. */
static void daemon_down(daemon_t *d)
{
    stop_daemon(d);
    remove_tree(d->home);
}

/* Run a shell command, capture its stdout (at most cap - 1 bytes), return its exit status. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    size_t n = 0, r;
    while (f && n < cap - 1 && (r = fread(out + n, 1, cap - 1 - n, f)) > 0)
        n += r;
    out[n] = 0;
    int st = f ? pclose(f) : -1;
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A pipeline of this program through daemon d; its output in big; its exit status. */
static int run_job(const daemon_t *d, const char *name)
{
    return run(big, 1 << 20, "SAGE_HOME=%s %s pipeline %s %s 2>&1", d->home, self, name, d->addr);
}

/* The whole file (at most cap - 1 bytes) into out; its length, or -1. */
static ssize_t read_file(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        out[0] = 0;
        return -1;
    }
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(fd);
    return (ssize_t)n;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    chmod(path, mode);
    return ok ? 0 : -1;
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (!needle || memmem(p, len, needle, strlen(needle)))
            n++;
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

/* A fresh directory under /tmp, mode 0700 (mkdtemp). */
static void temp_dir(char *out, size_t cap, const char *what)
{
    snprintf(out, cap, "/tmp/sage-harden-%s-XXXXXX", what);
    if (!mkdtemp(out))
        out[0] = 0;
}

static void remove_tree(const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* A kB field of /proc/PID/status ("VmRSS", "VmHWM"); -1 if absent. */
static long status_kb(pid_t pid, const char *field)
{
    char path[64], text[8192];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_file(path, text, sizeof text) < 0)
        return -1;
    const char *p = strstr(text, field);
    return p ? strtol(p + strlen(field) + 1, NULL, 10) : -1;
}

/* utime + stime of pid, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
    char path[64], text[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, text, sizeof text) < 0)
        return -1;
    const char *p = strrchr(text, ')'); /* fields after the command name: 3 (state) onwards */
    long v[16] = {0};
    int field = 2;
    for (p = p ? p + 1 : text; *p && field < 15;) {
        while (*p == ' ')
            p++;
        field++;
        if (field >= 3 && field <= 15)
            v[field] = strtol(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    return v[14] + v[15];
}

static int open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    int n = 0;
    for (struct dirent *e; dir && (e = readdir(dir)) != NULL;)
        n += e->d_name[0] != '.';
    if (dir)
        closedir(dir);
    return n;
}

/* A non-blocking TCP connection to the daemon (connect in progress). */
static int connect_nb(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(s);
        return -1;
    }
    return s;
}

/* A blocking connection with a 10 s receive timeout. */
static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(s);
        return -1;
    }
    return s;
}

/* Read until the peer closes (or 10 s pass); what came, in out. */
static size_t read_all(int s, char *out, size_t cap)
{
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(s, out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    return got;
}

/* One HTTP request; the whole answer in out. */
static void http(int port, const char *req, char *out, size_t cap)
{
    int s = connect_to(port);
    out[0] = 0;
    if (s < 0)
        return;
    if (write(s, req, strlen(req)) == (ssize_t)strlen(req))
        read_all(s, out, cap);
    close(s);
}

static json_t *request(const daemon_t *d, const char *req)
{
    sage_client *c;
    char err[1024], *reply = NULL;
    if (sage_client_connect("127.0.0.1", d->port, d->token, &c, err, sizeof err) != 0)
        return NULL;
    int rc = sage_client_request(c, req, &reply, err, sizeof err);
    sage_client_close(c);
    json_error_t jerr;
    json_t *j = rc == 0 ? json_loads(reply, 0, &jerr) : NULL;
    free(reply);
    return j;
}

/* A ping answered within deadline_ms (retried: the daemon may be busy shedding a flood). */
static int ping_within(const daemon_t *d, int deadline_ms)
{
    int64_t end = now_ms() + deadline_ms;
    do {
        json_t *p = request(d, "{\"op\":\"ping\"}");
        if (p) {
            json_decref(p);
            return 1;
        }
        pause_ms(20);
    } while (now_ms() < end);
    return 0;
}

/* Wait (bounded) until the file at path contains needle. */
static int file_contains_within(const char *path, const char *needle, int deadline_ms)
{
    int64_t end = now_ms() + deadline_ms;
    do {
        if (read_file(path, big, 1 << 20) >= 0 && strstr(big, needle))
            return 1;
        pause_ms(20);
    } while (now_ms() < end);
    return 0;
}

/* ------------------------------------------------- 1. the state directory */

/* mkdir dir (mode) and give it to nobody; a daemon on home is refused, its reason holding want and want2. */
static void refused_when_nobodys(const char *dir, mode_t mode, const char *home, const char *want, const char *want2)
{
    daemon_t d;
    CHECK_INT(mkdir(dir, mode), 0);
    CHECK_INT(chown(dir, NOBODY, NOBODY), 0);
    CHECK(start_daemon(&d, home, NULL, NULL) < 0);
    stop_daemon(&d);
    CHECK_CONTAINS(d.err, want);
    CHECK_CONTAINS(d.err, want2);
}

static void statedir_refused(void)
{
    if (geteuid() != 0)
        SKIP("needs root: the directories are given to another user (nobody)");
    char base[256], home[400], dir[600];
    temp_dir(base, sizeof base, "own");
    daemon_t d;
    /* owned by another user */
    snprintf(home, sizeof home, "%s/theirs", base);
    refused_when_nobodys(home, 0700, home, "belongs to nobody (uid 65534), not to the JobManager's user, root (uid 0)",
                         "chown 0 ");
    /* open to others: 0777, and 0755 */
    static const mode_t modes[] = {0777, 0755, 0750};
    for (int i = 0; i < 3; i++) {
        snprintf(home, sizeof home, "%s/open%d", base, i);
        CHECK_INT(mkdir(home, 0700), 0);
        CHECK_INT(chmod(home, modes[i]), 0);
        CHECK(start_daemon(&d, home, NULL, NULL) < 0);
        stop_daemon(&d);
        char want[600];
        snprintf(want, sizeof want, "(mode %04o)", (unsigned)modes[i]);
        CHECK_CONTAINS(d.err, want);
        snprintf(want, sizeof want, "chmod 700 %s", home);
        CHECK_CONTAINS(d.err, want);
        /* the fix it names works */
        CHECK_INT(chmod(home, 0700), 0);
        CHECK(start_daemon(&d, home, NULL, NULL) > 0);
        stop_daemon(&d);
    }
    /* a directory above it that another user owns: they could swap the state directory */
    snprintf(dir, sizeof dir, "%s/their-parent", base);
    snprintf(home, sizeof home, "%s/their-parent/home", base);
    refused_when_nobodys(dir, 0755, home, "above the state directory", "belongs to nobody (uid 65534)");
    /* jobs/ inside a good state directory, but another user's */
    snprintf(home, sizeof home, "%s/jobs-theirs", base);
    CHECK_INT(mkdir(home, 0700), 0);
    snprintf(dir, sizeof dir, "%s/jobs", home);
    refused_when_nobodys(dir, 0700, home, "/jobs belongs to nobody (uid 65534)", "chmod 700");
    remove_tree(base);
}

/* A root-owned file whose content must survive. */
static void make_victim(char *path, size_t cap, const char *dir)
{
    snprintf(path, cap, "%s/victim", dir);
    write_file(path, "precious\n", 0644);
}

static void symlinks_not_followed(void)
{
    char base[256], victim[300], home[400], link[600], err[256];
    temp_dir(base, sizeof base, "links");
    make_victim(victim, sizeof victim, base);
    daemon_t d;
    static const char *const files[] = {"jobmanager.pid", "jobmanager.log", "jobs.db", "jobs.db-wal"};
    for (int i = 0; i < 4; i++) {
        snprintf(home, sizeof home, "%s/h%d", base, i);
        CHECK_INT(mkdir(home, 0700), 0);
        snprintf(link, sizeof link, "%s/%s", home, files[i]);
        CHECK_INT(symlink(victim, link), 0);
        CHECK(start_daemon(&d, home, NULL, NULL) < 0);
        stop_daemon(&d);
        snprintf(err, sizeof err, "%s is a symbolic link", files[i]);
        CHECK_CONTAINS(d.err, err);
        CHECK_INT(read_file(victim, big, 1 << 20), 9);
        CHECK_STR(big, "precious\n");
    }
    /* a task log and a spec.json planted as links before their jobs exist (job ids start at 1) */
    snprintf(home, sizeof home, "%s/jobs-links", base);
    CHECK_INT(mkdir(home, 0700), 0);
    snprintf(link, sizeof link, "%s/jobs", home);
    CHECK_INT(mkdir(link, 0700), 0);
    snprintf(link, sizeof link, "%s/jobs/1", home);
    CHECK_INT(mkdir(link, 0700), 0);
    snprintf(link, sizeof link, "%s/jobs/1/logs", home);
    CHECK_INT(mkdir(link, 0700), 0);
    snprintf(link, sizeof link, "%s/jobs/1/logs/src.0.log", home);
    CHECK_INT(symlink(victim, link), 0);
    snprintf(link, sizeof link, "%s/jobs/2", home);
    CHECK_INT(mkdir(link, 0700), 0);
    snprintf(link, sizeof link, "%s/jobs/2/spec.json", home);
    CHECK_INT(symlink(victim, link), 0);
    snprintf(link, sizeof link, "%s/jobs/3", home);
    CHECK_INT(symlink(base, link), 0); /* a whole job directory */
    CHECK(start_daemon(&d, home, NULL, NULL) > 0);
    CHECK_INT(run_job(&d, "small"), 0); /* job 1 runs; its source's output is not logged */
    CHECK_CONTAINS(big, "job 1 rc 0");
    CHECK(file_contains_within(d.log, "the output of operator \"src\" instance 0 is not logged", 5000));
    CHECK_CONTAINS(big, "src.0.log is a symbolic link");
    CHECK_INT(run_job(&d, "small"), 1); /* job 2 fails: its spec.json is a link */
    CHECK_CONTAINS(big, "job 2 rc ");
    CHECK_CONTAINS(big, "spec.json is a symbolic link");
    CHECK_INT(run_job(&d, "small"), 1); /* job 3 is refused: its directory is a link */
    CHECK_CONTAINS(big, "jobs/3 is a symbolic link");
    stop_daemon(&d);
    CHECK_INT(read_file(victim, big, 1 << 20), 9);
    CHECK_STR(big, "precious\n");
    snprintf(link, sizeof link, "%s/jobs", base);
    struct stat st;
    CHECK(stat(link, &st) != 0); /* nothing was written through jobs/3 */
    remove_tree(base);
}

/* ------------------------------------------------------ 2. modes and users */

static int private_mode_failures;
static char private_mode_first[600];

static int check_private(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if ((st->st_mode & 077) != 0) {
        if (!private_mode_failures++)
            snprintf(private_mode_first, sizeof private_mode_first, "%s has mode %04o", path,
                     (unsigned)(st->st_mode & 07777));
    }
    return 0;
}

static void umask_000(void) { umask(0); }

static void modes_private_under_umask_000(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "umask", NULL, umask_000));
    CHECK_INT(run_job(&d, "small"), 0);
    CHECK_CONTAINS(big, "collected 100");
    CHECK_INT(run_job(&d, "forged"), 1); /* a failed job: logs with stderr */
    stop_daemon(&d);
    /* every file and directory: no bit for group or others (logs, results, spec.json, jobs.db, its -wal and
     * -shm, jobmanager.log, token) */
    private_mode_failures = 0;
    CHECK_INT(nftw(d.home, check_private, 16, FTW_PHYS), 0);
    if (private_mode_failures)
        fprintf(stderr, "  %d entries are open to others, first: %s\n", private_mode_failures, private_mode_first);
    CHECK_INT(private_mode_failures, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/jobs/1/results/out.0", d.home);
    struct stat st;
    CHECK_INT(stat(path, &st), 0); /* written by a worker: the daemon's umask */
    CHECK_INT(st.st_mode & 0777, 0600);
    daemon_down(&d);
}

static char readable[64][600];
static int nreadable;

static int collect_paths(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (nreadable < 64 && (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)))
        snprintf(readable[nreadable++], sizeof readable[0], "%s", path);
    return 0;
}

/* In a child that became nobody: how many of the paths it could open (their names on stderr). */
static int opened_as_nobody(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(255);
        int n = 0;
        for (int i = 0; i < nreadable; i++) {
            int fd = open(readable[i], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                fprintf(stderr, "  nobody opened %s\n", readable[i]);
                n++;
                close(fd);
            }
        }
        _exit(n);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void other_user_reads_nothing(void)
{
    if (geteuid() != 0)
        SKIP("needs root: a child becomes nobody to read the state directory");
    char home[256];
    temp_dir(home, sizeof home, "nobody");
    CHECK_INT(chmod(home, 0755), 0); /* as `mkdir -p` leaves it */
    daemon_t d;
    if (start_daemon(&d, home, NULL, NULL) < 0) {
        CHECK_CONTAINS(d.err, "chmod 700");
        CHECK_INT(chmod(home, 0700), 0);
        CHECK(start_daemon(&d, home, NULL, NULL) > 0);
    }
    CHECK_INT(run_job(&d, "small"), 0);
    CHECK_CONTAINS(big, "collected 100");
    /* every file and directory the daemon and its workers made, as nobody: none opens */
    nreadable = 0;
    CHECK_INT(nftw(home, collect_paths, 16, FTW_PHYS), 0);
    CHECK(nreadable >= 12); /* home, token, pid, log, db, jobs/1, spec.json, logs/3, results/1 ... */
    CHECK_INT(opened_as_nobody(), 0);
    /* even with every directory opened up, the files themselves are the owner's only */
    for (int i = 0; i < nreadable; i++) {
        struct stat st;
        if (stat(readable[i], &st) == 0 && S_ISDIR(st.st_mode))
            chmod(readable[i], 0711);
    }
    int i = 0;
    for (int k = 0; k < nreadable; k++) { /* files only now */
        struct stat st;
        if (stat(readable[k], &st) == 0 && S_ISREG(st.st_mode))
            memmove(readable[i++], readable[k], sizeof readable[0]);
    }
    nreadable = i;
    CHECK(nreadable >= 8);
    CHECK_INT(opened_as_nobody(), 0);
    stop_daemon(&d);
    remove_tree(home);
}

/* ------------------------------------------------------- 3. floods (memory) */

static void flood_memory(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "flood", NULL, NULL));
    CHECK(ping_within(&d, 5000));
    long rss0 = status_kb(d.pid, "VmRSS:");
    /* 1000 connections without the token: 500 silent, 500 announcing a 1 MiB HELLO and sending 1 MiB - 1 of it */
    enum { N = 1000, FRAME = 1 << 20 };
    static int fds[N];
    static size_t sent[N];
    static unsigned char payload[65536];
    unsigned char hdr[SAGE__FRAME_HDR];
    sage__frame_header(hdr, SAGE__MSG_HELLO, FRAME);
    memset(payload, 'x', sizeof payload);
    int opened = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = connect_nb(d.port);
        sent[i] = 0;
        opened += fds[i] >= 0;
    }
    CHECK_INT(opened, N);
    size_t want = SAGE__FRAME_HDR + FRAME - 1, pushed = 0;
    int64_t end = now_ms() + 20000;
    for (int busy = 1; busy && now_ms() < end;) {
        static struct pollfd p[N];
        int np = 0;
        for (int i = 0; i < N; i += 2)
            if (fds[i] >= 0 && sent[i] < want)
                p[np++] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
        busy = np > 0;
        if (!busy || poll(p, (nfds_t)np, 200) <= 0)
            continue;
        for (int k = 0; k < np; k++) {
            if (!p[k].revents)
                continue;
            int i = 0;
            while (fds[i] != p[k].fd)
                i++;
            const unsigned char *src = sent[i] < SAGE__FRAME_HDR ? hdr + sent[i] : payload;
            size_t len = sent[i] < SAGE__FRAME_HDR ? SAGE__FRAME_HDR - sent[i] : sizeof payload;
            if (len > want - sent[i])
                len = want - sent[i];
            ssize_t w = send(fds[i], src, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                sent[i] += (size_t)w;
                pushed += (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                sent[i] = want; /* the daemon closed it: done */
            }
        }
    }
    CHECK(now_ms() < end); /* every writer finished or was cut off */
    /* a legitimate client, while the flood's connections are still open: served, in bounded time */
    int64_t t0 = now_ms();
    CHECK_INT(run_job(&d, "small"), 0);
    int64_t took = now_ms() - t0;
    CHECK_CONTAINS(big, "collected 100");
    long rss = status_kb(d.pid, "VmRSS:"), hwm = status_kb(d.pid, "VmHWM:");
    int nfd = open_fds(d.pid);
    fprintf(stderr,
            "  flood: %zu bytes pushed by 500 writers; daemon VmRSS %ld kB before, %ld kB after, peak %ld kB; %d "
            "descriptors; the job took %lld ms\n",
            pushed, rss0, rss, hwm, nfd, (long long)took);
    CHECK(took < 15000);
    CHECK(hwm - rss0 < 16 * 1024); /* the flood cost less than 16 MiB at its peak */
    if (!UNDER_SANITIZER)
        CHECK(hwm < 64 * 1024); /* and the daemon stayed under 64 MiB */
    CHECK(nfd < 128 + 64);      /* at most 128 strangers at once */
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    daemon_down(&d);
}

static void handshake_deadline(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "slow", "{\"limits\": {\"handshake_ms\": 300}}", NULL));
    /* silent, half a HELLO, half an HTTP head: each closed once the handshake time is over */
    int s[3];
    for (int i = 0; i < 3; i++)
        s[i] = connect_to(d.port);
    unsigned char hdr[SAGE__FRAME_HDR];
    sage__frame_header(hdr, SAGE__MSG_HELLO, 100);
    CHECK(write(s[1], hdr, 10) == 10);
    const char *get = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    CHECK(write(s[2], get, strlen(get)) == (ssize_t)strlen(get));
    int64_t t0 = now_ms();
    for (int i = 0; i < 3; i++) {
        char buf[256];
        ssize_t r;
        while ((r = read(s[i], buf, sizeof buf)) > 0)
            ;
        CHECK(r == 0 || errno == ECONNRESET); /* closed by the daemon, not by the 10 s receive timeout */
        close(s[i]);
    }
    int64_t took = now_ms() - t0;
    CHECK(took >= 200 && took < 5000);
    CHECK(file_contains_within(d.log, "not authenticated within 300 ms", 2000));
    /* a client that authenticates is not cut */
    CHECK(ping_within(&d, 2000));
    daemon_down(&d);
}

/* -------------------------------------------------------- 4. descriptors */

static void nofile_64(void)
{
    struct rlimit r = {64, 64};
    setrlimit(RLIMIT_NOFILE, &r);
}

/* The daemon's CPU time over one second (clock ticks; 100 would be a whole core). */
static long ticks_in_one_second(pid_t pid)
{
    long a = cpu_ticks(pid);
    int64_t end = now_ms() + 1000;
    while (now_ms() < end)
        pause_ms((int)(end - now_ms()));
    return cpu_ticks(pid) - a;
}

static void descriptor_limit(void)
{
    daemon_t d;
    /* a: the default limits, 64 descriptors: connections are held to half of them, strangers shed */
    CHECK(daemon_up(&d, "nofile", NULL, nofile_64));
    int fl[200];
    for (int i = 0; i < 200; i++)
        fl[i] = connect_nb(d.port);
    long ticks = ticks_in_one_second(d.pid);
    fprintf(stderr, "  64 descriptors, 200 connections: %ld ticks of CPU in 1 s; %d descriptors open\n", ticks,
            open_fds(d.pid));
    CHECK(ticks < 25);
    CHECK(open_fds(d.pid) <= 64);
    CHECK(ping_within(&d, 5000)); /* served during the flood: a stranger made room */
    for (int i = 0; i < 200; i++)
        if (fl[i] >= 0)
            close(fl[i]);
    CHECK_INT(run_job(&d, "small"), 0);
    stop_daemon(&d);

    /* b: connections allowed past the descriptors, and every slot held by an authenticated client: accept
     * fails with EMFILE, and the spare descriptor accepts and closes */
    char home[512];
    snprintf(home, sizeof home, "%s", d.home);
    CHECK(start_daemon(&d, home, "{\"limits\": {\"connections\": 1000}}", nofile_64) > 0);
    static sage_client *held[100];
    int nheld = 0;
    char err[512];
    while (nheld < 100 && sage_client_connect("127.0.0.1", d.port, d.token, &held[nheld], err, sizeof err) == 0)
        nheld++;
    CHECK(nheld > 20 && nheld < 64);
    for (int i = 0; i < 200; i++)
        fl[i] = connect_nb(d.port);
    ticks = ticks_in_one_second(d.pid);
    fprintf(stderr, "  64 descriptors, %d clients and 200 more connections: %ld ticks of CPU in 1 s\n", nheld, ticks);
    CHECK(ticks < 25);
    for (int i = 0; i < 200; i++)
        if (fl[i] >= 0)
            close(fl[i]);
    for (int i = 0; i < nheld; i++)
        sage_client_close(held[i]);
    CHECK(ping_within(&d, 5000)); /* once they are gone, real clients are served again */
    CHECK_INT(run_job(&d, "small"), 0);
    CHECK(file_contains_within(d.log, "the open-file limit is reached", 1000));
    daemon_down(&d);
}

/* ----------------------------------------------------------------- 5. logs */

static void refusals_rate_limited(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "refuse", "{\"limits\": {\"refusal_log_ms\": 1000}}", NULL));
    ssize_t before = read_file(d.log, big, 1 << 20);
    int lines0 = count_lines(big, NULL);
    /* 3000 connections that send garbage, 100 at a time; each is answered and closed */
    int done = 0;
    int64_t t0 = now_ms();
    for (int wave = 0; wave < 30; wave++) {
        int s[100];
        for (int i = 0; i < 100; i++) {
            s[i] = connect_to(d.port);
            if (s[i] >= 0 && write(s[i], "garbage bytes!!!", 16) != 16) {
                close(s[i]);
                s[i] = -1;
            }
        }
        for (int i = 0; i < 100; i++) {
            char buf[512];
            if (s[i] < 0)
                continue;
            while (read(s[i], buf, sizeof buf) > 0)
                ;
            close(s[i]);
            done++;
        }
    }
    CHECK_INT(done, 3000);
    CHECK(file_contains_within(d.log, " more connection(s) refused in the last 1 s", 5000));
    ssize_t after = read_file(d.log, big, 1 << 20);
    int lines = count_lines(big, NULL) - lines0;
    fprintf(stderr, "  3000 refused connections in %lld ms: %d log lines, %zd bytes\n", (long long)(now_ms() - t0),
            lines, after - before);
    CHECK(lines <= 10 + 8);                                  /* ten one by one, then a count per second of flood */
    CHECK_INT(count_lines(big, "Z closing connection"), 10); /* the count lines quote the last one too */
    daemon_down(&d);
}

static void log_rotates(void)
{
    char home[256], path[600], junk[5001];
    temp_dir(home, sizeof home, "rotate");
    memset(junk, 'j', sizeof junk - 1);
    junk[sizeof junk - 1] = 0;
    junk[sizeof junk - 2] = '\n';
    snprintf(path, sizeof path, "%s/jobmanager.log", home);
    CHECK_INT(write_file(path, junk, 0600), 0); /* a log already over the cap */
    daemon_t d;
    CHECK(start_daemon(&d, home, "{\"limits\": {\"log_bytes\": 4096}}", NULL) > 0);
    char old[600];
    snprintf(old, sizeof old, "%s/jobmanager.log.1", home);
    CHECK_INT(read_file(old, big, 1 << 20), 5000); /* the full log moved aside at the first line */
    CHECK(read_file(path, big, 1 << 20) < 4096);
    CHECK_CONTAINS(big, " listening on 127.0.0.1:");
    /* jobs with long names: more than 4096 bytes of lines; the log rotates again and stays bounded */
    for (int i = 0; i < 8; i++)
        CHECK_INT(run_job(&d, "long"), 0);
    stop_daemon(&d);
    struct stat st, st1;
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(stat(old, &st1), 0);
    CHECK(st.st_size <= 4096);
    CHECK(st1.st_size <= 4096);
    CHECK_INT(st1.st_mode & 0777, 0600);
    CHECK(read_file(old, big, 1 << 20) > 0 && !strstr(big, "jjjj")); /* the first rotation's file is gone */
    remove_tree(home);
}

/* ----------------------------------------------------------- 6. /metrics */

static void metrics_auth_header_only(void)
{
    char tok[SAGE__TOKEN_HEX + 1], err[256], req[1024], wrong[SAGE__TOKEN_HEX + 1];
    daemon_t d;
    CHECK(daemon_up(&d, "metrics", NULL, NULL));
    CHECK_INT(sage__token_read(d.token, tok, sizeof tok, err, sizeof err), 0);
    snprintf(wrong, sizeof wrong, "%s", tok);
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    static const struct {
        const char *fmt;
        const char *status;
    } t[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", "HTTP/1.1 200 OK"},
        {"GET /metrics HTTP/1.1\r\nauthorization: bearer %s\r\n\r\n", "HTTP/1.1 200 OK"}, /* any case */
        {"GET /metrics HTTP/1.1\r\nX-Foo: Authorization: Bearer %s\r\n\r\n", "HTTP/1.1 401 "},
        {"GET /metrics HTTP/1.1\r\nX-Authorization: Bearer %s\r\n\r\n", "HTTP/1.1 401 "},
        {"GET /metrics HTTP/1.1\r\nHost: Bearer %s\r\n\r\n", "HTTP/1.1 401 "},
        {"GET /metrics HTTP/1.1\r\nAuthorization: Basic %s\r\n\r\n", "HTTP/1.1 401 "},
        {"GET /metrics HTTP/1.1\r\nAuthorization: Bearer %sx\r\n\r\n", "HTTP/1.1 401 "},
        {"GET /metrics HTTP/1.1\r\nAuthorization: Bearer %.63s\r\n\r\n", "HTTP/1.1 401 "},
        /* the token in the query is no token: that target is the dashboard's, which wants a session */
        {"GET /metrics?Authorization:%%20Bearer%%20%s HTTP/1.1\r\n\r\n", "HTTP/1.1 401 "},
        {"GET /metrics HTTP/1.1\r\nAuthorization : Bearer %s\r\n\r\n", "HTTP/1.1 400 "},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        snprintf(req, sizeof req, t[i].fmt, tok);
        http(d.port, req, big, 1 << 20);
        if (!strstr(big, t[i].status))
            fprintf(stderr, "  case %zu: %s\n", i, t[i].fmt);
        CHECK_CONTAINS(big, t[i].status);
    }
    snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", wrong);
    http(d.port, req, big, 1 << 20);
    CHECK_CONTAINS(big, "HTTP/1.1 401 ");
    /* label values escaped as the exposition format wants: a name cannot add or break series */
    char cmd[2500];
    snprintf(cmd, sizeof cmd, "SAGE_HOME=%s %s pipeline quoted %s >/dev/null 2>&1", d.home, self, d.addr);
    FILE *client = popen(cmd, "r");
    snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n", tok);
    int64_t end = now_ms() + 10000;
    do {
        http(d.port, req, big, 1 << 20);
        if (strstr(big, "sage_task_queue_depth{job=\"1\",operator=\"q"))
            break;
        pause_ms(20);
    } while (now_ms() < end);
    CHECK_CONTAINS(big, "sage_task_queue_depth{job=\"1\",operator=\"q\\\"uote\\\\back\",instance=\"0\"} ");
    CHECK_INT(run(big, 1 << 20, "%s job cancel 1 --port %d --token-file %s", cli, d.port, d.token), 0);
    if (client)
        pclose(client);
    daemon_down(&d);
}

/* --------------------------------------------- 3b. TCP data-plane listeners */

/* A local process that reaches a worker's data listener first, with garbage, a wrong token or silence, is
 * closed without counting: the job runs as if it had never connected (before: garbage failed the job, "a
 * data connection did not authenticate", and silence hung it). */
static int tcp_connect_addr(const char *addr)
{
    char host[64];
    int port = 0;
    if (sscanf(addr, "%63[^:]:%d", host, &port) != 2)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void data_listener_strangers(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "dataplane", "{\"data_plane\": \"tcp\"}", NULL));
    char cmd[2500];
    snprintf(cmd, sizeof cmd, "SAGE_HOME=%s %s pipeline endless %s 2>&1", d.home, self, d.addr);
    FILE *client = popen(cmd, "r"); /* runs until stopped */
    /* every listening task's address, once its worker said HELLO (bounded wait) */
    char addrs[4][64];
    int n = 0;
    int64_t end = now_ms() + 20000;
    while (n < 2 && now_ms() < end) {
        json_t *st = request(&d, "{\"op\": \"status\", \"job_id\": 1}");
        n = 0;
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(st, "tasks"), i, t)
        {
            const char *l = json_string_value(json_object_get(t, "listen"));
            if (l && n < 4)
                snprintf(addrs[n++], sizeof addrs[0], "%s", l);
        }
        json_decref(st);
        if (n < 2)
            pause_ms(20);
    }
    CHECK_INT(n, 2); /* the map and the sink listen; the source does not */
    /* once its producers are all in, a worker closes its listener: a stranger is refused by the kernel, or
     * (still in the backlog) reset; either way it is never read and never counts */
    int refused = 0;
    for (int k = 0; k < n; k++) {
        int silent = tcp_connect_addr(addrs[k]); /* says nothing */
        int g = tcp_connect_addr(addrs[k]);
        static const char garbage[] = "GET / HTTP/1.1\r\n\r\n";
        if (g >= 0)
            (void)!write(g, garbage, sizeof garbage - 1);
        int fds[2] = {silent, g};
        for (int j = 0; j < 2; j++) {
            if (fds[j] < 0) {
                refused++; /* connection refused */
                continue;
            }
            struct pollfd p = {.fd = fds[j], .events = POLLIN};
            char c;
            if (poll(&p, 1, 10000) == 1 && read(fds[j], &c, 1) <= 0)
                refused++; /* closed or reset */
            close(fds[j]);
        }
    }
    CHECK_INT(refused, 2 * n);
    json_t *st = request(&d, "{\"op\": \"status\", \"job_id\": 1}");
    CHECK_STR(json_string_value(json_object_get(st, "state")), "running");
    json_decref(st);
    CHECK_INT(run(big, 1 << 20, "%s job stop 1 --port %d --token-file %s", cli, d.port, d.token), 0);
    size_t got = client ? fread(big, 1, (1 << 20) - 1, client) : 0;
    big[got] = 0;
    CHECK_INT(client ? WEXITSTATUS(pclose(client)) : -1, 0);
    CHECK_CONTAINS(big, " rc 0\n"); /* stopped, drained: the strangers failed nothing */
    daemon_down(&d);
}

/* A HELLO of role/job_id/token to the daemon: the code of its answer (0 for OK), and *spec when it sent one. */
static int hello_as(const daemon_t *d, const char *role, long long job, const char *token, json_t **spec)
{
    int s = connect_to(d->port);
    char txt[512];
    int n = snprintf(txt, sizeof txt, "{\"token\": \"%s\", \"role\": \"%s\", \"job_id\": %lld, \"task\": 0}", token,
                     role, job);
    sage__frame f;
    unsigned char *payload = NULL;
    char why[256];
    int rc = s < 0 || sage__frame_send(s, SAGE__MSG_HELLO, txt, (uint32_t)n) != 0 ||
                     sage__frame_recv(s, SAGE__DATA_FRAME_MAX, &f, &payload, why, sizeof why) != 0
                 ? SAGE_EIO
                 : 0;
    json_error_t jerr;
    json_t *r = rc == 0 ? json_loads((const char *)payload, 0, &jerr) : NULL;
    if (rc == 0 && f.type != SAGE__MSG_OK)
        rc = (int)json_integer_value(json_object_get(r, "code"));
    if (spec)
        *spec = rc == 0 ? json_incref(json_object_get(r, "spec")) : NULL;
    json_decref(r);
    free(payload);
    if (s >= 0)
        close(s);
    return rc;
}

/* A worker holds its job's secret, not the daemon's token (it finds the secret in its environment): the
 * secret fetches that job's spec and nothing else; the daemon's token is no worker's credential. */
static void worker_secret_is_per_job(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "secret", NULL, NULL));
    char cmd[2500];
    snprintf(cmd, sizeof cmd, "SAGE_HOME=%s %s pipeline endless %s 2>&1", d.home, self, d.addr);
    FILE *client = popen(cmd, "r"); /* runs until stopped */
    char secret[80] = "", env[1 << 16];
    ssize_t envlen = 0;
    for (int64_t end = now_ms() + 20000; !secret[0] && now_ms() < end;) {
        json_t *st = request(&d, "{\"op\": \"status\", \"job_id\": 1}");
        long long pid = json_integer_value(json_object_get(json_array_get(json_object_get(st, "tasks"), 0), "pid"));
        json_decref(st);
        char path[64];
        snprintf(path, sizeof path, "/proc/%lld/environ", pid);
        ssize_t n = envlen = pid > 0 ? read_file(path, env, sizeof env) : -1;
        for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1)
            if (strncmp(env + i, "SAGE_WORKER_SECRET=", 19) == 0)
                snprintf(secret, sizeof secret, "%s", env + i + 19);
        if (!secret[0])
            pause_ms(20);
    }
    CHECK_INT((int)strlen(secret), 64);
    char token[128] = "";
    read_file(d.token, token, sizeof token);
    token[strcspn(token, "\n")] = 0;
    CHECK(strcmp(secret, token) != 0);
    for (ssize_t i = 0; i < envlen; i += (ssize_t)strlen(env + i) + 1)
        CHECK(strstr(env + i, token) == NULL); /* no trace of the daemon's token in the worker's environment */
    json_t *spec = NULL;
    CHECK_INT(hello_as(&d, "spec", 1, secret, &spec), 0);
    CHECK_STR(json_string_value(json_object_get(spec, "name")), "endless");
    char *dump = json_dumps(spec, 0);
    CHECK(dump && !strstr(dump, secret)); /* the spec does not carry it */
    free(dump);
    json_decref(spec);
    CHECK_INT(hello_as(&d, "client", 1, secret, NULL), SAGE_EAUTH); /* no client requests with it */
    CHECK_INT(hello_as(&d, "spec", 2, secret, NULL), SAGE_EAUTH);   /* another job's (none: job 2) */
    CHECK_INT(hello_as(&d, "spec", 1, token, NULL), SAGE_EAUTH);    /* the daemon's token is no worker's */
    CHECK_INT(hello_as(&d, "worker", 1, token, NULL), SAGE_EAUTH);
    CHECK_INT(run(big, 1 << 20, "%s job stop 1 --port %d --token-file %s", cli, d.port, d.token), 0);
    size_t got = client ? fread(big, 1, (1 << 20) - 1, client) : 0;
    big[got] = 0;
    CHECK_INT(client ? WEXITSTATUS(pclose(client)) : -1, 0);
    CHECK_CONTAINS(big, " rc 0\n");
    daemon_down(&d);
}

/* ------------------------------------------------------- 7. descriptors */

static void worker_descriptors(void)
{
    /* descriptors the daemon's process inherits (as from a shell: `9>&1`) without close-on-exec */
    int leak = open("/dev/null", O_RDONLY), leak9 = dup2(leak, 9);
    CHECK(leak >= 0 && leak9 == 9);
    daemon_t d;
    CHECK(daemon_up(&d, "fds", NULL, NULL));
    close(leak);
    close(9);
    CHECK_INT(run_job(&d, "fds"), 0);
    long long id = 0;
    CHECK(sscanf(big, "job %lld rc 0", &id) == 1);
    CHECK_INT(run(big, 1 << 20, "%s job logs %lld --port %d --token-file %s", cli, id, d.port, d.token), 0);
    /* the source (no input): 0 1 2; the others (unix data plane): their listener as 3 */
    CHECK_CONTAINS(big, "src[0] ! fds: 0 1 2\n");
    CHECK_CONTAINS(big, "double[0] ! fds: 0 1 2 3\n");
    CHECK_CONTAINS(big, "fdsink[0] ! fds: 0 1 2 3\n");
    CHECK_INT(count_lines(big, "fds:"), 3);
    daemon_down(&d);
}

static void cli_start_keeps_no_inherited_fd(void)
{
    char home[256];
    temp_dir(home, sizeof home, "cli9");
    int port = 0, rc = -1;
    /* the shell's fd 9 is the pipe to cat: cat ends only when every holder closed it; a port another test took
     * between free_port and the start (tests run in parallel) is tried again with another */
    for (int attempt = 0; attempt < 5; attempt++) {
        port = free_port();
        rc = run(big, 1 << 20, "timeout 20 sh -c '{ %s jobmanager start --port %d --home %s; } 9>&1 | cat' 2>&1", cli,
                 port, home);
        if (rc == 0 || !strstr(big, "is already in use"))
            break;
    }
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(big, "JobManager started on 127.0.0.1:");
    CHECK_INT(run(big, 1 << 20, "%s jobmanager stop --port %d --home %s 2>&1", cli, port, home), 0);
    remove_tree(home);
}

/* ------------------------------------------------------------ 8. names */

static void names_escaped(void)
{
    daemon_t d;
    CHECK(daemon_up(&d, "names", NULL, NULL));
    /* a failure message with a newline and escapes, through the library */
    CHECK_INT(run_job(&d, "forged"), 1);
    long long id = 0;
    CHECK(sscanf(big, "job %lld rc ", &id) == 1);
    CHECK(file_contains_within(d.log, "\" failed: ", 5000));
    /* a job name with them: the library refuses it (sage_env_create), another client need not: a hand-written
     * submit (its program, /bin/false, fails at once) */
    json_t *r = request(&d, "{\"op\": \"submit\", \"job\": {\"name\": \"x\\nFORGED line\\u001b[31m\", "
                            "\"plan_hash\": 1, \"chains\": [{\"id\": 0, \"name\": \"a\", \"parallelism\": 1, "
                            "\"inputs\": false, \"producers\": 0, \"resources\": {}}], \"executable\": \"/bin/false\", "
                            "\"argv\": [\"/bin/false\"], \"cwd\": \"/\", \"env\": []}}");
    CHECK(r != NULL);
    long long forged = r ? (long long)json_integer_value(json_object_get(r, "job_id")) : 0;
    json_decref(r);
    CHECK(forged > 0);
    CHECK(file_contains_within(d.log, "\"x\\nFORGED line\\e[31m\" failed", 5000));
    /* the log: one line per event, the name and the message escaped */
    read_file(d.log, big, 1 << 20);
    CHECK_CONTAINS(big, "\"x\\nFORGED line\\e[31m\" submitted");
    CHECK_CONTAINS(big, "bad\\nFORGED2 line\\e[0m");
    CHECK(!strstr(big, "\nFORGED"));
    CHECK(!strchr(big, 0x1b));
    for (const char *l = big; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") /* every line is an event's */
        CHECK(strncmp(l, "20", 2) == 0 && l[10] == 'T');
    CHECK(count_lines(big, "FORGED") >= 2); /* submitted ... failed */
    /* the CLI's tables */
    CHECK_INT(run(big, 1 << 20, "%s job list --port %d --token-file %s", cli, d.port, d.token), 0);
    CHECK_CONTAINS(big, "x\\nFORGED line\\e[31m");
    CHECK_CONTAINS(big, "bad\\nFORGED2 line\\e[0m");
    CHECK(!strstr(big, "\nFORGED"));
    CHECK(!strchr(big, 0x1b));
    CHECK_INT(run(big, 1 << 20, "%s job status %lld --port %d --token-file %s", cli, forged, d.port, d.token), 0);
    CHECK_CONTAINS(big, "\"x\\nFORGED line\\e[31m\": failed");
    CHECK(!strstr(big, "\nFORGED"));
    CHECK(!strchr(big, 0x1b));
    CHECK_INT(run(big, 1 << 20, "%s job status %lld --port %d --token-file %s", cli, id, d.port, d.token), 0);
    CHECK_CONTAINS(big, "bad\\nFORGED2 line\\e[0m");
    CHECK(!strstr(big, "\nFORGED"));
    CHECK(!strchr(big, 0x1b));
    /* --json keeps the exact text, JSON-escaped */
    CHECK_INT(run(big, 1 << 20, "%s job list --json --port %d --token-file %s", cli, d.port, d.token), 0);
    CHECK_CONTAINS(big, "\"x\\nFORGED line\\u001B[31m\"");
    daemon_down(&d);
}

/* ---------------------------------------------------------------- 9. CLI */

static void cli_ids_strict(void)
{
    static const char *const bad[] =
        {"' 5'", "'5 '", "+5", "0", "-1", "5x", "0x5", "''", "9223372036854775808", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run(big, 1 << 20, "%s job status %s --port 1 2>&1", cli, bad[i]);
        if (rc != 2)
            fprintf(stderr, "  job status %s: exit %d: %s\n", bad[i], rc, big);
        CHECK_INT(rc, 2);
        CHECK_CONTAINS(big, bad[i][0] == '-' ? "unknown option -1" : "not a job id");
    }
    /* --config JSON may start with blanks */
    char home[256];
    temp_dir(home, sizeof home, "cfg");
    int port = 0, rc = -1;
    for (int attempt = 0; attempt < 5; attempt++) { /* a port another test took meanwhile: another */
        port = free_port();
        rc = run(big, 1 << 20, "%s jobmanager start --port %d --home %s --config ' \n {\"node\": {\"cpus\": 1}}' 2>&1",
                 cli, port, home);
        if (rc == 0 || !strstr(big, "is already in use"))
            break;
    }
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(big, "JobManager started");
    CHECK_INT(run(big, 1 << 20, "%s jobmanager stop --port %d --home %s 2>&1", cli, port, home), 0);
    remove_tree(home);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], argv[3]);
    CHECK_MAIN(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    if (getenv("SAGE_CLI")) {
        snprintf(cli, sizeof cli, "%s", getenv("SAGE_CLI"));
    } else { /* build/tests/test_hardening -> build/cli/sage */
        snprintf(cli, sizeof cli, "%s", self);
        char *slash = strrchr(cli, '/');
        if (slash)
            *slash = 0;
        slash = strrchr(cli, '/');
        snprintf(slash ? slash : cli, sizeof cli - (size_t)(slash ? slash - cli : 0), "/cli/sage");
    }
    big = malloc(1 << 20);
    RUN(statedir_refused);
    RUN(symlinks_not_followed);
    RUN(modes_private_under_umask_000);
    RUN(other_user_reads_nothing);
    RUN(flood_memory);
    RUN(handshake_deadline);
    RUN(descriptor_limit);
    RUN(refusals_rate_limited);
    RUN(log_rotates);
    RUN(metrics_auth_header_only);
    RUN(data_listener_strangers);
    RUN(worker_secret_is_per_job);
    RUN(worker_descriptors);
    RUN(cli_start_keeps_no_inherited_fd);
    RUN(names_escaped);
    RUN(cli_ids_strict);
    free(big);
    return CHECK_DONE();
}
