/* cli/cluster.c - `sage cluster`: a real Slurm cluster for SAGE, started and stopped by SAGE itself.
 *
 *   start --head     munged (private socket), slurmctld and a slurmd for this host's resources
 *   start --worker   a slurmd (and munged, unless one from this state dir runs) that joins a head:
 *                    configless (slurmd --conf-server) as a dynamic node (slurmd -Z --conf ...)
 *   status [--json]  every node: state, total and allocated CPUs, memory, GPUs and other gres
 *   stop             stops what start started from this state dir, and nothing else
 *
 * Everything lives in the state dir ($SAGE_HOME/cluster; docs/cluster.md lists its files). Daemons are
 * started with fork/execvp; client commands (scontrol, sinfo, squeue, scancel) run with SLURM_CONF set
 * and their output is parsed (sinfo --json through jansson, `scontrol show nodes -o -d` as fallback).
 * Every wait is bounded and a timeout names the log file to read.
 *
 * Exit codes: 0 done, 1 failed (the message says what failed and which log to read), 2 usage. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sage/sage.h>

#include "cluster.h"

enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2 };

#define DEFAULT_PORT 6817
#define WAIT_MS 30000     /* bound of every wait for a daemon */
#define POLL_MS 100       /* how often a wait checks */
#define MAX_GRES 16       /* custom resources per node */
#define MAX_NODE_COUNT 1024 /* MaxNodeCount: room for dynamic nodes */
#define DEF_MEM_PER_CPU 512 /* MB a job gets per CPU when it does not ask (--mem) */
#define PARTITION "sage"

static const char *const help_text =
    "usage: sage cluster <command> [options]\n"
    "\n"
    "A Slurm cluster started and stopped by SAGE (Slurm 22.05: munged, slurmctld, slurmd).\n"
    "\n"
    "commands:\n"
    "  start --head [--port N] [--address ADDR] [--name NODE] [resources] [--home DIR]\n"
    "      start munged, slurmctld and a slurmd for this host; print the command a worker runs to join\n"
    "  start --worker --head-address=HOST:PORT [--name NODE] [resources] [--home DIR]\n"
    "      start a slurmd here that joins that head (configless, as a dynamic node)\n"
    "  status [--json] [--home DIR]\n"
    "      every node with its state and total/allocated CPUs, memory, GPUs and other resources;\n"
    "      without a SAGE cluster in the state dir: the site's Slurm (SLURM_CONF or /etc/slurm/slurm.conf)\n"
    "  stop [--home DIR]\n"
    "      stop the Slurm daemons started from this state dir (never any other process)\n"
    "\n"
    "resources (default: this host's cores and memory, its /dev/nvidiaN GPUs, nothing else):\n"
    "  --cpus N                  CPUs the node offers\n"
    "  --memory SIZE             memory it offers: 64GB, 1.5GiB, or bytes\n"
    "  --gpus N                  GPUs (simulated by files in the state dir; Slurm gres \"gpu\")\n"
    "  --resources name=N,...    custom resources (Slurm gres); on the head, name=0 declares a name\n"
    "                            that only workers have\n"
    "\n"
    "options:\n"
    "  --port N            head: slurmctld port (default 6817); slurmd uses N+1\n"
    "  --address ADDR      head: IPv4 address the controller advertises to nodes\n"
    "                      (default: what the host name resolves to)\n"
    "  --head-address H:P  worker: the head's address and port (printed by start --head)\n"
    "  --name NODE         Slurm node name (default: the short host name)\n"
    "  --home DIR          SAGE state directory (default $SAGE_HOME, else ~/.sage); the cluster\n"
    "                      lives in DIR/cluster, which must be the same path on every node\n"
    "\n"
    "exit status: 0 done, 1 failed (the message names the log file to read), 2 usage error\n"
    "See docs/cluster.md.\n";

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static char g_dir[PATH_MAX]; /* the state dir: <home>/cluster */

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sage cluster: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EX_FAIL;
}

static int usagef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usagef(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sage cluster: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(see: sage cluster --help)\n", stderr);
    va_end(ap);
    return EX_USAGE;
}

/* "<state dir>/<fmt...>" into buf (PATH_MAX bytes). */
static const char *sp(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *sp(char *buf, const char *fmt, ...)
{
    int n = snprintf(buf, PATH_MAX, "%s/", g_dir);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < PATH_MAX)
        vsnprintf(buf + n, (size_t)(PATH_MAX - n), fmt, ap);
    va_end(ap);
    return buf;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Writes content to path through a temporary file and rename. */
static int write_file(const char *path, const char *content, mode_t mode)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(content), off = 0;
    while (off < len) {
        ssize_t w = write(fd, content + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Reads a whole (small) file; NULL if it cannot. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        fclose(f);
        return NULL;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* Keeps the previous log of a daemon as <log>.old so the current one shows only this start. */
static void rotate_log(const char *log)
{
    char old[PATH_MAX + 8];
    snprintf(old, sizeof old, "%s.old", log);
    if (file_exists(log))
        rename(log, old);
}

static void short_hostname(char *out, size_t len)
{
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !h[0])
        snprintf(h, sizeof h, "localhost");
    h[strcspn(h, ".")] = '\0';
    snprintf(out, len, "%.63s", h); /* Slurm node names: up to 63 here (valid_name) */
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return 1;
}

/* Slurm's configuration files take the state dir path unquoted, and the worker passes it inside
 * --conf-server (see start_worker): no blanks and none of the characters those parsers split on. */
static int valid_dir_path(const char *s)
{
    if (s[0] != '/')
        return 0;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || strchr(":#\"'=,\\", *p))
            return 0;
    return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Processes: what we started, running client commands
 * ------------------------------------------------------------------------------------------- */

/* Reads /proc/<pid>/cmdline into buf (NUL-separated arguments); its length, or -1. */
static ssize_t proc_cmdline(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* 1 if pid runs (exists and is not a zombie). */
static int proc_running(pid_t pid)
{
    if (pid <= 1 || (kill(pid, 0) != 0 && errno == ESRCH))
        return 0;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* 1 if some argument names a path inside the state dir. */
static int arg_in_dir(const char *arg)
{
    size_t dl = strlen(g_dir);
    for (const char *p = strstr(arg, g_dir); p; p = strstr(p + 1, g_dir))
        if (p[dl] == '/')
            return 1;
    return 0;
}

/* 1 if pid is a running `daemon` (basename of argv[0]) started from this state dir: one of its
 * arguments names a file in the state dir (-f <dir>/slurm.conf, --socket=<dir>/munge.socket, ...).
 * This is what keeps stop from ever signalling a process it did not start. */
static int is_ours(pid_t pid, const char *daemon)
{
    if (!proc_running(pid))
        return 0;
    char buf[16384];
    ssize_t n = proc_cmdline(pid, buf, sizeof buf);
    if (n <= 0)
        return 0;
    const char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    if (strcmp(base, daemon) != 0)
        return 0;
    for (const char *p = buf; p < buf + n; p += strlen(p) + 1)
        if (arg_in_dir(p))
            return 1;
    return 0;
}

static pid_t pidfile_read(const char *path)
{
    char *s = read_file(path);
    if (!s)
        return 0;
    long v = strtol(s, NULL, 10);
    free(s);
    return v > 1 && v < INT_MAX ? (pid_t)v : 0;
}

/* The pid in pidfile if it is a running `daemon` of ours, else 0. */
static pid_t live_daemon(const char *pidfile, const char *daemon)
{
    pid_t pid = pidfile_read(pidfile);
    return pid && is_ours(pid, daemon) ? pid : 0;
}

/* In a child before exec: stdin from /dev/null, stdout and stderr to log (if given), no inherited fds,
 * SLURM_CONF set to slurm_conf (unset if NULL) when set_conf. */
static void child_setup(const char *log, const char *slurm_conf, int set_conf)
{
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
        dup2(nul, 0);
        if (nul != 0)
            close(nul);
    }
    if (log) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
    }
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    if (set_conf) {
        if (slurm_conf)
            setenv("SLURM_CONF", slurm_conf, 1);
        else
            unsetenv("SLURM_CONF");
    }
    signal(SIGPIPE, SIG_DFL);
}

/* Starts a daemon that puts itself in the background: its foreground process gets stdout and stderr
 * appended to log and SLURM_CONF=slurm_conf (unset if NULL), and is waited for (bounded). Returns
 * its exit status, -1 if it did not exit in time (it is killed then) or could not be started. */
static int run_daemon(char *const argv[], const char *log, const char *slurm_conf)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_setup(log, slurm_conf, 1);
        execvp(argv[0], argv);
        fprintf(stderr, "sage cluster: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    long long deadline = now_ms() + WAIT_MS;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(10);
    }
}

/* Runs a client command, collecting stdout and stderr (both malloc'd, NUL-terminated, may be NULL
 * on error). conf: SLURM_CONF for it, or NULL for the inherited environment. Returns the exit
 * status, or -1 if it could not run or did not finish within timeout_ms (then it is killed). */
static int run_capture(char *const argv[], const char *conf, int timeout_ms, char **out, char **err)
{
    *out = NULL;
    *err = NULL;
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        child_setup(NULL, conf, conf != NULL);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    FILE *m[2] = {open_memstream(&buf[0], &len[0]), open_memstream(&buf[1], &len[1])};
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2, timed_out = 0;
    long long deadline = now_ms() + timeout_ms;
    while (open_fds > 0) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int r = poll(fds, 2, (int)(left > 1000 ? 1000 : left));
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[8192];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                if (m[i])
                    fwrite(chunk, 1, (size_t)n, m[i]);
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (fds[i].fd >= 0)
            close(fds[i].fd);
        if (m[i])
            fclose(m[i]);
    }
    int st = 0;
    if (timed_out)
        kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    *out = buf[0];
    *err = buf[1];
    if (timed_out)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* First line of a command's stderr, for messages. */
static const char *first_line(const char *s, char *buf, size_t len)
{
    if (!s || !*s)
        return "(no output)";
    snprintf(buf, len, "%.*s", (int)strcspn(s, "\n"), s);
    return buf;
}

static int have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    char dir[PATH_MAX];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, p, name);
        if (access(dir, X_OK) == 0)
            return 1;
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

static int need_programs(const char *const *names)
{
    for (; *names; names++)
        if (!have_program(*names))
            return failf("%s not found in PATH: install the Debian packages slurm-wlm slurmctld slurmd munge "
                         "slurm-client (scripts/deps.sh)",
                         *names);
    return 0;
}

static int need_root(void)
{
    if (geteuid() != 0)
        return failf("the Slurm daemons run as root here (SlurmUser=root): run this as root");
    return 0;
}

/* Exclusive lock on the state dir while starting or stopping (bounded wait). The fd is close-on-exec
 * so daemons never inherit it. */
static int g_lock_fd = -1;
static int lock_state_dir(void)
{
    char path[PATH_MAX];
    g_lock_fd = open(sp(path, ".lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (g_lock_fd < 0)
        return failf("cannot open %s: %s", path, strerror(errno));
    long long deadline = now_ms() + WAIT_MS;
    while (flock(g_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (now_ms() > deadline)
            return failf("another `sage cluster` command holds %s for more than %d s", path, WAIT_MS / 1000);
        sleep_ms(POLL_MS);
    }
    return 0;
}

/* Sends SIGTERM, waits (bounded), then SIGKILL. 0 if it is gone. */
static int stop_pid(pid_t pid, const char *what)
{
    if (!proc_running(pid))
        return 0;
    kill(pid, SIGTERM);
    long long deadline = now_ms() + WAIT_MS;
    while (proc_running(pid)) {
        if (now_ms() > deadline) {
            fprintf(stderr, "sage cluster: %s (pid %ld) did not exit %d s after SIGTERM; sending SIGKILL\n", what,
                    (long)pid, WAIT_MS / 1000);
            kill(pid, SIGKILL);
            long long d2 = now_ms() + 5000;
            while (proc_running(pid) && now_ms() < d2)
                sleep_ms(POLL_MS);
            return proc_running(pid) ? -1 : 0;
        }
        sleep_ms(POLL_MS);
    }
    return 0;
}

/* Daemons started by this invocation, stopped again if a later step fails. */
typedef struct started {
    char pidfile[PATH_MAX];
    const char *daemon;
} started;
static started g_started[4];
static int g_nstarted;

static void note_started(const char *pidfile, const char *daemon)
{
    if (g_nstarted < 4) {
        snprintf(g_started[g_nstarted].pidfile, PATH_MAX, "%s", pidfile);
        g_started[g_nstarted++].daemon = daemon;
    }
}

static void undo_started(void)
{
    for (int i = g_nstarted - 1; i >= 0; i--) {
        pid_t pid = live_daemon(g_started[i].pidfile, g_started[i].daemon);
        if (pid) {
            stop_pid(pid, g_started[i].daemon);
            unlink(g_started[i].pidfile);
        }
    }
    g_nstarted = 0;
}

/* ---------------------------------------------------------------------------------------------
 * Node resources
 * ------------------------------------------------------------------------------------------- */

typedef struct noderes {
    long cpus;         /* -1: this host's */
    long mem_mb;       /* -1: this host's */
    long gpus;         /* -1: this host's /dev/nvidiaN */
    int real_gpus;     /* the GPUs are /dev/nvidia0..N-1, not simulated */
    int ngres;
    char gres_name[MAX_GRES][64];
    long gres_cnt[MAX_GRES];
} noderes;

static int parse_resources(const char *spec, noderes *r)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf)
        return usagef("--resources is too long");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return usagef("--resources: '%s' is not name=amount", tok);
        *eq = '\0';
        const char *name = tok;
        long amount;
        if (!*name || strlen(name) >= 64)
            return usagef("--resources: a resource needs a name (up to 63 characters)");
        for (const char *p = name; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_')
                return usagef("--resources: '%s': names are letters, digits and _", name);
        if (!strcmp(name, "gpu") || !strcmp(name, "cpu") || !strcmp(name, "mem") || !strcmp(name, "memory"))
            return usagef("--resources: '%s' is not a custom resource (use --cpus, --memory, --gpus)", name);
        if (parse_long(eq + 1, 0, 1000000000L, &amount) != 0)
            return usagef("--resources: %s=%s: the amount must be a whole number >= 0", name, eq + 1);
        for (int i = 0; i < r->ngres; i++)
            if (!strcmp(r->gres_name[i], name))
                return usagef("--resources: %s given twice", name);
        if (r->ngres == MAX_GRES)
            return usagef("--resources: at most %d custom resources", MAX_GRES);
        snprintf(r->gres_name[r->ngres], 64, "%s", name);
        r->gres_cnt[r->ngres++] = amount;
    }
    return 0;
}

/* Count of /dev/nvidia0, /dev/nvidia1, ... present. */
static long real_gpu_count(void)
{
    long n = 0;
    char path[64];
    for (;; n++) {
        snprintf(path, sizeof path, "/dev/nvidia%ld", n);
        if (!file_exists(path))
            return n;
    }
}

/* Fills in this host's defaults for what was not given. */
static void host_defaults(noderes *r)
{
    if (r->cpus < 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        r->cpus = n > 0 ? n : 1;
    }
    if (r->mem_mb < 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        long long mb = pages > 0 && psize > 0 ? (long long)pages * psize / (1024 * 1024) : 1024;
        r->mem_mb = mb > 0 ? (long)mb : 1;
    }
    if (r->gpus < 0) {
        r->gpus = real_gpu_count();
        r->real_gpus = r->gpus > 0;
    }
}

/* "gpu:2,ssd:4" (what Slurm calls Gres= of a node); "" if none. */
static void gres_spec(const noderes *r, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    if (r->gpus > 0)
        n += (size_t)snprintf(out + n, len - n, "gpu:%ld", r->gpus);
    for (int i = 0; i < r->ngres && n < len; i++)
        if (r->gres_cnt[i] > 0)
            n += (size_t)snprintf(out + n, len - n, "%s%s:%ld", n ? "," : "", r->gres_name[i], r->gres_cnt[i]);
}

static void describe_res(const noderes *r, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "%ld CPUs, %ld MB memory, %ld GPU%s%s", r->cpus, r->mem_mb, r->gpus,
                                r->gpus == 1 ? "" : "s", r->real_gpus ? " (/dev/nvidia*)" : "");
    for (int i = 0; i < r->ngres && n < len; i++)
        if (r->gres_cnt[i] > 0)
            n += (size_t)snprintf(out + n, len - n, ", %s=%ld", r->gres_name[i], r->gres_cnt[i]);
}

/* Simulated GPUs: empty files <dir>/gpus/<node>/gpu0..N-1 (Slurm's gres.conf needs File= entries
 * that exist; it counts and allocates them but sets no CUDA_VISIBLE_DEVICES for them). */
static int make_gpu_files(const char *node, const noderes *r)
{
    if (r->gpus <= 0 || r->real_gpus)
        return 0;
    char dir[PATH_MAX], f[PATH_MAX + 32];
    if (mkdir_p(sp(dir, "gpus/%s", node), 0755) != 0)
        return failf("cannot create %s: %s", dir, strerror(errno));
    for (long i = 0; i < r->gpus; i++) {
        snprintf(f, sizeof f, "%s/gpu%ld", dir, i);
        int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return failf("cannot create %s: %s", f, strerror(errno));
        close(fd);
    }
    return 0;
}

/* The gres.conf lines of one node (every line starts with "NodeName=<node> "). */
static void gres_lines(const char *node, const noderes *r, FILE *m)
{
    char dir[PATH_MAX];
    if (r->gpus > 0) {
        if (r->real_gpus)
            fprintf(m, "NodeName=%s Name=gpu File=/dev/nvidia%s%ld%s\n", node, r->gpus > 1 ? "[0-" : "",
                    r->gpus > 1 ? r->gpus - 1 : 0, r->gpus > 1 ? "]" : "");
        else
            fprintf(m, "NodeName=%s Name=gpu File=%s/gpu%s%ld%s\n", node, sp(dir, "gpus/%s", node),
                    r->gpus > 1 ? "[0-" : "", r->gpus > 1 ? r->gpus - 1 : 0, r->gpus > 1 ? "]" : "");
    }
    for (int i = 0; i < r->ngres; i++)
        if (r->gres_cnt[i] > 0)
            fprintf(m, "NodeName=%s Name=%s Count=%ld\n", node, r->gres_name[i], r->gres_cnt[i]);
}

/* gres-nodes.conf, included by gres.conf, holds every node's lines. Each node (head or worker)
 * rewrites its own lines there; the include is read from the local file system of each node,
 * which is how a worker's GPU files reach its slurmd in configless mode. */
static int update_gres_nodes(const char *node, const noderes *r, int fresh)
{
    char path[PATH_MAX];
    sp(path, "gres-nodes.conf");
    char *old = fresh ? NULL : read_file(path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        free(old);
        return failf("out of memory");
    }
    char prefix[128];
    snprintf(prefix, sizeof prefix, "NodeName=%s ", node);
    if (old) {
        for (char *line = old, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (strncmp(line, prefix, strlen(prefix)) != 0 && strncmp(line, "# gres of every node", 20) != 0)
                fprintf(m, "%s\n", line);
        }
    }
    if (fresh || !old)
        fprintf(m, "# gres of every node of the SAGE cluster, one NodeName= line per gres; "
                   "written by sage cluster start\n");
    gres_lines(node, r, m);
    fclose(m);
    free(old);
    int rc = write_file(path, buf, 0644);
    free(buf);
    if (rc != 0)
        return failf("cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Munge
 * ------------------------------------------------------------------------------------------- */

static int create_munge_key(const char *key)
{
    if (file_exists(key))
        return 0;
    if (have_program("mungekey")) {
        char *argv[] = {"mungekey", "--create", "--keyfile", (char *)key, NULL};
        char *out, *err;
        int rc = run_capture(argv, NULL, WAIT_MS, &out, &err);
        free(out);
        free(err);
        if (rc == 0 && file_exists(key)) {
            chmod(key, 0400);
            return 0;
        }
        unlink(key);
    }
    /* No mungekey (munge < 0.5.14): 1024 random bytes, mode 0400. */
    unsigned char bytes[1024];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return failf("cannot read random bytes for %s: %s", key, strerror(errno));
        got += (size_t)n;
    }
    int fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0)
        return failf("cannot create %s: %s", key, strerror(errno));
    ssize_t w = write(fd, bytes, sizeof bytes);
    close(fd);
    if (w != (ssize_t)sizeof bytes) {
        unlink(key);
        return failf("cannot write %s", key);
    }
    return 0;
}

/* munged on the private socket <dir>/munge.socket with <dir>/munge.key. */
static int start_munged(void)
{
    char sock[PATH_MAX], key[PATH_MAX], pidf[PATH_MAX], log[PATH_MAX], seed[PATH_MAX];
    char a_sock[PATH_MAX + 16], a_key[PATH_MAX + 16], a_pid[PATH_MAX + 16], a_log[PATH_MAX + 16],
        a_seed[PATH_MAX + 16];
    sp(sock, "munge.socket");
    sp(key, "munge.key");
    sp(pidf, "munged.pid");
    sp(log, "munged.log");
    sp(seed, "munged.seed");
    snprintf(a_sock, sizeof a_sock, "--socket=%s", sock);
    snprintf(a_key, sizeof a_key, "--key-file=%s", key);
    snprintf(a_pid, sizeof a_pid, "--pid-file=%s", pidf);
    snprintf(a_log, sizeof a_log, "--log-file=%s", log);
    snprintf(a_seed, sizeof a_seed, "--seed-file=%s", seed);
    /* --force: munged wants every user to reach its socket's directory, which a state dir under
     * /root (or a 0700 home) is not; here only root (the Slurm daemons, root's commands) uses it. */
    char *argv[] = {"munged", "--force", a_sock, a_key, a_pid, a_log, a_seed, NULL};
    unlink(pidf);
    rotate_log(log);
    int rc = run_daemon(argv, log, NULL);
    if (rc != 0)
        return failf("munged failed to start (exit %d): read %s", rc, log);
    long long deadline = now_ms() + WAIT_MS;
    while (!live_daemon(pidf, "munged") || !file_exists(sock)) {
        if (now_ms() > deadline)
            return failf("munged did not come up within %d s: read %s", WAIT_MS / 1000, log);
        sleep_ms(POLL_MS);
    }
    note_started(pidf, "munged");
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Node status: collected from sinfo --json (jansson), or `scontrol show nodes -o -d`
 * ------------------------------------------------------------------------------------------- */

typedef struct gres_amt {
    char name[64];
    long long total, used;
} gres_amt;

typedef struct node_info {
    char name[128], state[64], flags[256], address[128], reason[512], gres[256];
    long long cpus, cpus_alloc, mem, mem_alloc;
    int ngres;
    gres_amt g[MAX_GRES * 2];
} node_info;

static long long gres_number(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    switch (toupper((unsigned char)*end)) {
    case 'K': v *= 1024LL; break;
    case 'M': v *= 1024LL * 1024; break;
    case 'G': v *= 1024LL * 1024 * 1024; break;
    case 'T': v *= 1024LL * 1024 * 1024 * 1024; break;
    default: break;
    }
    return v;
}

/* Adds "gpu:2,ssd:4" or "gpu:tesla:1(IDX:0-1,3),ssd:0" into n's totals (used=0) or used amounts. */
static void gres_add(node_info *n, const char *s, int used)
{
    if (!s || !*s || !strcmp(s, "(null)") || !strcmp(s, "N/A"))
        return;
    const char *p = s;
    while (*p) {
        /* one item: up to a comma outside parentheses */
        const char *q = p;
        int depth = 0;
        while (*q && !(*q == ',' && depth == 0)) {
            if (*q == '(')
                depth++;
            else if (*q == ')' && depth > 0)
                depth--;
            q++;
        }
        char item[256];
        snprintf(item, sizeof item, "%.*s", (int)(q - p), p);
        item[strcspn(item, "(")] = '\0';
        char *colon = strchr(item, ':');
        long long cnt = 1;
        if (colon) {
            *colon = '\0';
            const char *last = strrchr(colon + 1, ':');
            last = last ? last + 1 : colon + 1;
            if (isdigit((unsigned char)*last))
                cnt = gres_number(last);
        }
        if (item[0]) {
            int i;
            for (i = 0; i < n->ngres; i++)
                if (!strcmp(n->g[i].name, item))
                    break;
            if (i == n->ngres && n->ngres < MAX_GRES * 2)
                snprintf(n->g[n->ngres++].name, sizeof n->g[0].name, "%.63s", item);
            if (i < n->ngres) {
                if (used)
                    n->g[i].used += cnt;
                else
                    n->g[i].total += cnt;
            }
        }
        p = *q ? q + 1 : q;
    }
}

static long long json_num(json_t *j)
{
    if (json_is_integer(j))
        return json_integer_value(j);
    if (json_is_real(j))
        return (long long)json_real_value(j);
    if (json_is_object(j)) /* newer data_parser: {"set": true, "infinite": false, "number": N} */
        return json_num(json_object_get(j, "number"));
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void add_flag(node_info *n, const char *flag)
{
    size_t len = strlen(n->flags);
    snprintf(n->flags + len, sizeof n->flags - len, "%s%s", len ? "+" : "", flag);
}

static int parse_sinfo_json(const char *text, node_info **out, size_t *count)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    json_t *nodes = json_object_get(root, "nodes");
    if (!json_is_array(nodes)) {
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(nodes);
    node_info *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_array_get(nodes, i);
        node_info *x = &v[i];
        snprintf(x->name, sizeof x->name, "%s", json_string_value(json_object_get(j, "name")) ?: "?");
        snprintf(x->address, sizeof x->address, "%s", json_string_value(json_object_get(j, "address")) ?: "");
        snprintf(x->reason, sizeof x->reason, "%s", json_string_value(json_object_get(j, "reason")) ?: "");
        json_t *st = json_object_get(j, "state");
        if (json_is_string(st)) { /* 22.05: "idle" plus state_flags */
            snprintf(x->state, sizeof x->state, "%s", json_string_value(st));
            json_t *fl = json_object_get(j, "state_flags");
            for (size_t k = 0; k < json_array_size(fl); k++)
                if (json_is_string(json_array_get(fl, k)))
                    add_flag(x, json_string_value(json_array_get(fl, k)));
        } else if (json_is_array(st)) { /* later versions: ["IDLE", "DRAIN"] */
            for (size_t k = 0; k < json_array_size(st); k++) {
                const char *s = json_string_value(json_array_get(st, k));
                if (!s)
                    continue;
                if (k == 0)
                    snprintf(x->state, sizeof x->state, "%s", s);
                else
                    add_flag(x, s);
            }
        }
        lower(x->state);
        x->cpus = json_num(json_object_get(j, "cpus"));
        x->cpus_alloc = json_num(json_object_get(j, "alloc_cpus"));
        x->mem = json_num(json_object_get(j, "real_memory"));
        x->mem_alloc = json_num(json_object_get(j, "alloc_memory"));
        const char *g = json_string_value(json_object_get(j, "gres"));
        snprintf(x->gres, sizeof x->gres, "%s", g && strcmp(g, "(null)") ? g : "");
        gres_add(x, g, 0);
        gres_add(x, json_string_value(json_object_get(j, "gres_used")), 1);
    }
    json_decref(root);
    *out = v;
    *count = n;
    return 0;
}

/* One line of `scontrol show nodes -o -d`. */
static void parse_scontrol_line(char *line, node_info *x)
{
    char *reason = strstr(line, " Reason=");
    if (reason) {
        *reason = '\0';
        snprintf(x->reason, sizeof x->reason, "%s", reason + 8);
    }
    char *save = NULL;
    for (char *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = tok, *val = eq + 1;
        if (!strcmp(k, "NodeName"))
            snprintf(x->name, sizeof x->name, "%s", val);
        else if (!strcmp(k, "NodeAddr"))
            snprintf(x->address, sizeof x->address, "%s", val);
        else if (!strcmp(k, "CPUTot"))
            x->cpus = atoll(val);
        else if (!strcmp(k, "CPUAlloc"))
            x->cpus_alloc = atoll(val);
        else if (!strcmp(k, "RealMemory"))
            x->mem = atoll(val);
        else if (!strcmp(k, "AllocMem"))
            x->mem_alloc = atoll(val);
        else if (!strcmp(k, "Gres")) {
            snprintf(x->gres, sizeof x->gres, "%s", strcmp(val, "(null)") ? val : "");
            gres_add(x, val, 0);
        } else if (!strcmp(k, "GresUsed"))
            gres_add(x, val, 1);
        else if (!strcmp(k, "State")) {
            char st[256];
            snprintf(st, sizeof st, "%s", val);
            char *save2 = NULL;
            int first = 1;
            for (char *f = strtok_r(st, "+", &save2); f; f = strtok_r(NULL, "+", &save2), first = 0) {
                if (first) {
                    snprintf(x->state, sizeof x->state, "%s", f);
                    x->state[strcspn(x->state, "*~#!%$@^-")] = '\0';
                } else {
                    add_flag(x, f);
                }
            }
            lower(x->state);
        }
    }
}

static int parse_scontrol(char *text, node_info **out, size_t *count)
{
    size_t cap = 16, n = 0;
    node_info *v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "NodeName=", 9) != 0)
            continue;
        if (n == cap) {
            node_info *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            memset(nv + cap, 0, cap * sizeof *v);
            v = nv;
            cap *= 2;
        }
        parse_scontrol_line(line, &v[n++]);
    }
    *out = v;
    *count = n;
    return 0;
}

/* Every node the controller knows. conf: SLURM_CONF, or NULL for the site's usual lookup.
 * Bounded by WAIT_MS in all. On failure writes the reason into err. */
static int collect_nodes(const char *conf, node_info **out, size_t *count, char *err, size_t err_len)
{
    char *so, *se, line[400];
    long long deadline = now_ms() + WAIT_MS;
    char *argv1[] = {"sinfo", "--json", NULL};
    int rc = run_capture(argv1, conf, WAIT_MS, &so, &se);
    if (rc == 0 && so && parse_sinfo_json(so, out, count) == 0) {
        free(so);
        free(se);
        return 0;
    }
    if (rc < 0) { /* no answer: the text form would not get one either */
        snprintf(err, err_len, "sinfo did not answer within %d s (%s)", WAIT_MS / 1000,
                 first_line(se, line, sizeof line));
        free(so);
        free(se);
        return -1;
    }
    free(so);
    free(se);
    /* sinfo without --json (no serializer/json plugin, other Slurm versions): the text form. */
    char *argv2[] = {"scontrol", "show", "nodes", "-o", "-d", NULL};
    long long left = deadline - now_ms();
    rc = run_capture(argv2, conf, left > 1000 ? (int)left : 1000, &so, &se);
    if (rc == 0 && so && parse_scontrol(so, out, count) == 0) {
        free(so);
        free(se);
        return 0;
    }
    if (rc < 0)
        snprintf(err, err_len, "scontrol did not answer in time (%s)", first_line(se, line, sizeof line));
    else
        snprintf(err, err_len, "%s", first_line(se, line, sizeof line));
    free(so);
    free(se);
    return -1;
}

static int has_flag(const node_info *n, const char *flag)
{
    size_t fl = strlen(flag);
    for (const char *p = strstr(n->flags, flag); p; p = strstr(p + 1, flag))
        if ((p == n->flags || p[-1] == '+') && (p[fl] == '\0' || p[fl] == '+'))
            return 1;
    return 0;
}

/* Waits (bounded) until node `name` is registered and usable. slurmd_pidfile: fail early if it dies. */
static int wait_node_idle(const char *conf, const char *name, const char *slurmd_pidfile, const char *log)
{
    long long start = now_ms(), deadline = start + WAIT_MS;
    char last[512] = "not registered yet";
    for (;;) {
        node_info *nodes = NULL;
        size_t n = 0;
        char err[512];
        if (collect_nodes(conf, &nodes, &n, err, sizeof err) == 0) {
            snprintf(last, sizeof last, "not registered yet");
            for (size_t i = 0; i < n; i++) {
                node_info *x = &nodes[i];
                if (strcmp(x->name, name) != 0)
                    continue;
                snprintf(last, sizeof last, "state %.60s%s%.200s%s%.200s", x->state, x->flags[0] ? "+" : "", x->flags,
                         x->reason[0] ? ", reason: " : "", x->reason);
                if (has_flag(x, "INVALID_REG") || has_flag(x, "INVALID") ||
                    (has_flag(x, "DRAIN") && x->reason[0])) {
                    free(nodes);
                    return failf("node %s registered but Slurm rejected it (%s): read %s", name, last, log);
                }
                if ((!strcmp(x->state, "idle") || !strcmp(x->state, "mixed") || !strcmp(x->state, "allocated")) &&
                    !has_flag(x, "NOT_RESPONDING")) {
                    free(nodes);
                    return 0;
                }
            }
            free(nodes);
        } else {
            snprintf(last, sizeof last, "controller: %.400s", err);
        }
        if (!live_daemon(slurmd_pidfile, "slurmd") && now_ms() > start + 3000)
            return failf("slurmd for node %s is not running (%s): read %s", name, last, log);
        if (now_ms() > deadline)
            return failf("node %s did not become idle within %d s (%s): read %s", name, WAIT_MS / 1000, last, log);
        sleep_ms(POLL_MS);
    }
}

/* ---------------------------------------------------------------------------------------------
 * start --head
 * ------------------------------------------------------------------------------------------- */

/* The command line. */
typedef struct copts {
    const char *cmd;                              /* start, status, stop */
    int head, worker, json;
    long port;                                    /* head: SlurmctldPort (0: default) */
    const char *address, *head_address, *name, *home;
    noderes res;                                  /* --cpus, --memory, --gpus, --resources */
} copts;

static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_ANY)};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The IPv4 address the host name resolves to, else 127.0.0.1. */
static void default_address(char *out, size_t len)
{
    char host[256] = "";
    snprintf(out, len, "127.0.0.1");
    if (gethostname(host, sizeof host - 1) != 0)
        return;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, out, (socklen_t)len);
        freeaddrinfo(ai);
    }
}

/* Any daemon from this state dir still running: its description in buf, and 1. */
static int anything_running(char *buf, size_t len)
{
    char path[PATH_MAX];
    pid_t pid;
    if ((pid = live_daemon(sp(path, "slurmctld.pid"), "slurmctld"))) {
        snprintf(buf, len, "slurmctld pid %ld", (long)pid);
        return 1;
    }
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (strncmp(e->d_name, "slurmd-", 7) == 0 && l > 11 && !strcmp(e->d_name + l - 4, ".pid") &&
                (pid = live_daemon(sp(path, "%s", e->d_name), "slurmd"))) {
                snprintf(buf, len, "slurmd pid %ld for node %.*s", (long)pid, (int)(l - 11), e->d_name + 7);
                closedir(d);
                return 1;
            }
        }
        closedir(d);
    }
    if ((pid = live_daemon(sp(path, "munged.pid"), "munged"))) {
        snprintf(buf, len, "munged pid %ld", (long)pid);
        return 1;
    }
    return 0;
}

static int write_slurm_conf(const char *name, const char *addr, long port, const noderes *r)
{
    char path[PATH_MAX], d[PATH_MAX], gres[512];
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return failf("out of memory");
    snprintf(d, sizeof d, "%s", g_dir);
    gres_spec(r, gres, sizeof gres);
    fprintf(m, "# slurm.conf of the SAGE cluster in %s, written by `sage cluster start --head`\n"
               "# (rewritten on every start). Workers fetch it from slurmctld (configless).\n",
            d);
    fprintf(m, "ClusterName=sage\n");
    fprintf(m, "SlurmctldHost=%s(%s)\n", name, addr);
    fprintf(m, "SlurmctldPort=%ld\nSlurmdPort=%ld\n", port, port + 1);
    fprintf(m, "SlurmUser=root\nSlurmdUser=root\n");
    fprintf(m, "AuthType=auth/munge\nAuthInfo=socket=%s/munge.socket\n", d);
    fprintf(m, "StateSaveLocation=%s/state\n", d);
    fprintf(m, "SlurmdSpoolDir=%s/spool/%%n\n", d);
    fprintf(m, "SlurmctldPidFile=%s/slurmctld.pid\nSlurmdPidFile=%s/slurmd-%%n.pid\n", d, d);
    fprintf(m, "SlurmctldLogFile=%s/slurmctld.log\nSlurmdLogFile=%s/slurmd-%%n.log\n", d, d);
    fprintf(m, "ProctrackType=proctrack/linuxproc\n"
               "TaskPlugin=task/affinity\n"
               "SelectType=select/cons_tres\n"
               "SelectTypeParameters=CR_Core_Memory\n"
               "SlurmdParameters=config_overrides\n"
               "MpiDefault=none\n"
               "SwitchType=switch/none\n"
               "JobAcctGatherType=jobacct_gather/none\n"
               "AccountingStorageType=accounting_storage/none\n");
    fprintf(m, "# Workers: configless (slurmd --conf-server) dynamic nodes (slurmd -Z)\n"
               "SlurmctldParameters=enable_configless\n"
               "MaxNodeCount=%d\n"
               "TreeWidth=65533\n",
            MAX_NODE_COUNT);
    fprintf(m, "ReturnToService=2\nKillWait=5\nDefMemPerCPU=%d\n", DEF_MEM_PER_CPU);
    fprintf(m, "GresTypes=gpu");
    for (int i = 0; i < r->ngres; i++)
        fprintf(m, ",%s", r->gres_name[i]);
    fprintf(m, "\n");
    fprintf(m, "NodeName=%s NodeAddr=%s CPUs=%ld RealMemory=%ld%s%s State=UNKNOWN\n", name, addr, r->cpus, r->mem_mb,
            gres[0] ? " Gres=" : "", gres);
    fprintf(m, "PartitionName=%s Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n", PARTITION);
    fclose(m);
    int rc = write_file(sp(path, "slurm.conf"), buf, 0644);
    free(buf);
    if (rc != 0)
        return failf("cannot write %s: %s", path, strerror(errno));
    char gconf[PATH_MAX * 2];
    snprintf(gconf, sizeof gconf,
             "# gres.conf of the SAGE cluster, written by `sage cluster start --head`.\n"
             "# Each node's lines are in the included file, read on that node (see docs/cluster.md).\n"
             "AutoDetect=off\n"
             "Include %s/gres-nodes.conf\n",
             d);
    if (write_file(sp(path, "gres.conf"), gconf, 0644) != 0)
        return failf("cannot write %s: %s", path, strerror(errno));
    return update_gres_nodes(name, r, 1);
}

/* Removes pid files whose process is gone (or is not ours). */
static void remove_stale_pidfiles(void)
{
    char path[PATH_MAX];
    DIR *d = opendir(g_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        const char *daemon = !strcmp(e->d_name, "slurmctld.pid") ? "slurmctld"
                             : !strcmp(e->d_name, "munged.pid") ? "munged"
                             : (!strncmp(e->d_name, "slurmd-", 7) && l > 11 && !strcmp(e->d_name + l - 4, ".pid"))
                                 ? "slurmd"
                                 : NULL;
        if (daemon && !live_daemon(sp(path, "%s", e->d_name), daemon))
            unlink(path);
    }
    closedir(d);
}

static int wait_ctld_up(const char *conf, const char *log)
{
    char pidf[PATH_MAX];
    sp(pidf, "slurmctld.pid");
    long long start = now_ms(), deadline = start + WAIT_MS;
    char last[512] = "no answer";
    for (;;) {
        char *so, *se;
        char *argv[] = {"scontrol", "ping", NULL};
        int rc = run_capture(argv, conf, 10000, &so, &se);
        if (rc == 0 && so && strstr(so, "is UP")) {
            free(so);
            free(se);
            return 0;
        }
        if (so && *so)
            first_line(so, last, sizeof last);
        else if (se && *se)
            first_line(se, last, sizeof last);
        free(so);
        free(se);
        if (!live_daemon(pidf, "slurmctld") && now_ms() > start + 3000)
            return failf("slurmctld is not running (scontrol ping: %s): read %s", last, log);
        if (now_ms() > deadline)
            return failf("slurmctld did not answer within %d s (scontrol ping: %s): read %s", WAIT_MS / 1000, last,
                         log);
        sleep_ms(POLL_MS);
    }
}

static int start_head(copts *o)
{
    static const char *const progs[] = {"munged", "slurmctld", "slurmd", "scontrol", "sinfo", NULL};
    if (need_root() || need_programs(progs))
        return EX_FAIL;
    char name[128], addr[64], home[PATH_MAX];
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else
        short_hostname(name, sizeof name);
    if (!valid_name(name))
        return usagef("node name '%s' is not usable: give one with --name (letters, digits, - _ .)", name);
    if (o->address)
        snprintf(addr, sizeof addr, "%s", o->address);
    else
        default_address(addr, sizeof addr);
    long port = o->port ? o->port : DEFAULT_PORT;
    noderes r = o->res;
    host_defaults(&r);

    char path[PATH_MAX], conf[PATH_MAX], why[256];
    if (mkdir_p(g_dir, 0700) != 0)
        return failf("cannot create the state directory %s: %s", g_dir, strerror(errno));
    if (lock_state_dir())
        return EX_FAIL;
    snprintf(home, sizeof home, "%.*s", (int)(strlen(g_dir) - strlen("/cluster")), g_dir);
    if (anything_running(why, sizeof why))
        return failf("a SAGE cluster is already running in %s (%s); stop it first: sage cluster stop --home %s",
                     g_dir, why, home);
    if (!port_free((int)port) || !port_free((int)port + 1))
        return failf("port %ld or %ld is in use on this host: choose another with --port", port, port + 1);
    remove_stale_pidfiles();
    if (mkdir_p(sp(path, "state"), 0700) != 0 || mkdir_p(sp(path, "spool"), 0755) != 0)
        return failf("cannot create %s: %s", path, strerror(errno));
    if (create_munge_key(sp(path, "munge.key")) || make_gpu_files(name, &r) || write_slurm_conf(name, addr, port, &r))
        return EX_FAIL;
    sp(conf, "slurm.conf");

    if (start_munged())
        goto fail;

    char ctld_log[PATH_MAX], d_log[PATH_MAX], d_pid[PATH_MAX];
    sp(ctld_log, "slurmctld.log");
    rotate_log(ctld_log);
    {
        /* -c: start from a clean state (no jobs or nodes of an earlier run of this state dir). */
        char *argv[] = {"slurmctld", "-f", conf, "-c", NULL};
        int rc = run_daemon(argv, ctld_log, conf);
        if (rc != 0) {
            failf("slurmctld failed to start (exit %d): read %s", rc, ctld_log);
            goto fail;
        }
        note_started(sp(path, "slurmctld.pid"), "slurmctld");
    }
    if (wait_ctld_up(conf, ctld_log))
        goto fail;

    sp(d_log, "slurmd-%s.log", name);
    sp(d_pid, "slurmd-%s.pid", name);
    rotate_log(d_log);
    {
        char *argv[] = {"slurmd", "-f", conf, "-N", name, NULL};
        int rc = run_daemon(argv, d_log, conf);
        if (rc != 0) {
            failf("slurmd for node %s failed to start (exit %d): read %s", name, rc, d_log);
            goto fail;
        }
        note_started(d_pid, "slurmd");
    }
    if (wait_node_idle(conf, name, d_pid, d_log))
        goto fail;

    char desc[512];
    describe_res(&r, desc, sizeof desc);
    printf("SAGE cluster started in %s\n", g_dir);
    printf("  controller  slurmctld on %s (%s), port %ld; slurmd port %ld\n", name, addr, port, port + 1);
    printf("  node %-6s %s: idle\n", name, desc);
    printf("  logs        %s/slurmctld.log, %s, %s/munged.log\n", g_dir, d_log, g_dir);
    printf("Use it with the Slurm commands:\n");
    printf("  export SLURM_CONF=%s\n", conf);
    printf("  sinfo; srun hostname; sage cluster status --home %s\n", home);
    printf("Add a worker (another host, or a network namespace of this one):\n");
    printf("  1. give it the munge key: copy %s/munge.key to the same path there (owner root, mode 0400)\n", g_dir);
    printf("  2. run there (add --cpus/--memory/--gpus/--resources/--name as needed):\n");
    printf("     sage cluster start --worker --head-address=%s:%ld --home %s\n", addr, port, home);
    if (!strncmp(addr, "127.", 4))
        printf("  note: the controller advertises %s, which other hosts cannot reach; start the head with\n"
               "        --address ADDR (an address of this host the workers reach) to add workers\n",
               addr);
    printf("Stop: sage cluster stop --home %s\n", home);
    return EX_OK;

fail:
    undo_started();
    return EX_FAIL;
}

/* ---------------------------------------------------------------------------------------------
 * start --worker
 * ------------------------------------------------------------------------------------------- */

/* Value of "Key = value" in `scontrol show config` output, into out ("" if absent). */
static void config_value(const char *text, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (ll > kl && !strncmp(line, key, kl) && (line[kl] == ' ' || line[kl] == '=')) {
            const char *v = memchr(line, '=', ll);
            if (v) {
                v++;
                while (*v == ' ')
                    v++;
                snprintf(out, len, "%.*s", (int)(ll - (size_t)(v - line)), v);
                return;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

static int start_worker(copts *o)
{
    static const char *const progs[] = {"munged", "slurmd", "scontrol", "sinfo", NULL};
    if (need_root() || need_programs(progs))
        return EX_FAIL;
    /* --head-address=HOST:PORT. HOST goes verbatim into Slurm configuration lines: plain names only. */
    char host[256];
    long port = DEFAULT_PORT;
    const char *colon = strrchr(o->head_address, ':');
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - o->head_address) : (int)strlen(o->head_address),
             o->head_address);
    if (colon && parse_long(colon + 1, 1, 65535, &port) != 0)
        return usagef("--head-address=%s: the port must be a number 1-65535", o->head_address);
    if (!host[0])
        return usagef("--head-address=%s: no host", o->head_address);
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return usagef("--head-address=%s: the host must be a name or an IPv4 address", o->head_address);
    char name[128], home[PATH_MAX];
    if (o->name)
        snprintf(name, sizeof name, "%s", o->name);
    else
        short_hostname(name, sizeof name);
    if (!valid_name(name))
        return usagef("node name '%s' is not usable: give one with --name (letters, digits, - _ .)", name);
    noderes r = o->res;
    host_defaults(&r);

    char path[PATH_MAX], sock[PATH_MAX], wconf[PATH_MAX], d_log[PATH_MAX], d_pid[PATH_MAX];
    if (mkdir_p(g_dir, 0700) != 0)
        return failf("cannot create the state directory %s: %s", g_dir, strerror(errno));
    if (lock_state_dir())
        return EX_FAIL;
    snprintf(home, sizeof home, "%.*s", (int)(strlen(g_dir) - strlen("/cluster")), g_dir);
    sp(sock, "munge.socket");
    sp(d_log, "slurmd-%s.log", name);
    sp(d_pid, "slurmd-%s.pid", name);
    pid_t pid = live_daemon(d_pid, "slurmd");
    if (pid)
        return failf("a slurmd for node %s is already running from %s (pid %ld); stop it first: sage cluster stop "
                     "--home %s",
                     name, g_dir, (long)pid, home);
    if (mkdir_p(sp(path, "spool"), 0755) != 0)
        return failf("cannot create %s: %s", path, strerror(errno));

    /* munged: the one of this state dir if it runs (a head here, or a shared file system), else ours. */
    if (!live_daemon(sp(path, "munged.pid"), "munged")) {
        if (!file_exists(sp(path, "munge.key")))
            return failf("no munge key at %s: copy the head's munge.key there (the same key on every node; "
                         "owner root, mode 0400)",
                         path);
        unlink(sock);
        if (start_munged())
            return EX_FAIL;
    }

    /* A minimal client configuration: enough for scontrol/sinfo to reach the controller here. */
    sp(wconf, "worker.conf");
    {
        char text[PATH_MAX * 2];
        snprintf(text, sizeof text,
                 "# written by `sage cluster start --worker`: lets Slurm client commands on this node reach the "
                 "head\nClusterName=sage\nSlurmctldHost=%s\nSlurmctldPort=%ld\nAuthType=auth/munge\n"
                 "AuthInfo=socket=%s\n",
                 host, port, sock);
        if (write_file(wconf, text, 0644) != 0) {
            failf("cannot write %s: %s", wconf, strerror(errno));
            goto fail;
        }
    }

    /* Ask the controller for its configuration: proves the address and the munge key, and tells
     * whether its paths match ours (the fetched config names the state dir of the head). */
    {
        char *so, *se, line[512];
        char *argv[] = {"scontrol", "show", "config", NULL};
        int rc = run_capture(argv, wconf, WAIT_MS, &so, &se);
        if (rc != 0 || !so) {
            const char *e = rc < 0 ? "no answer" : first_line(se, line, sizeof line);
            failf("cannot talk to the controller at %s:%ld (scontrol: %s). A munge key that differs from the "
                  "head's shows as an authentication error or \"Zero Bytes were transmitted or received\" (the "
                  "head's slurmctld.log says so): copy the head's munge.key to %s/munge.key",
                  host, port, e, g_dir);
            free(so);
            free(se);
            goto fail;
        }
        char authinfo[1024], gres_types[1024], params[1024], slurmd_port[64], want[PATH_MAX + 16];
        config_value(so, "AuthInfo", authinfo, sizeof authinfo);
        config_value(so, "GresTypes", gres_types, sizeof gres_types);
        config_value(so, "SlurmctldParameters", params, sizeof params);
        config_value(so, "SlurmdPort", slurmd_port, sizeof slurmd_port);
        free(so);
        free(se);
        snprintf(want, sizeof want, "socket=%s", sock);
        char *hs = strstr(authinfo, "socket=");
        if (!hs || strncmp(hs, want, strlen(want)) != 0 || (hs[strlen(want)] && hs[strlen(want)] != ',')) {
            char headdir[PATH_MAX] = "?";
            if (hs) {
                snprintf(headdir, sizeof headdir, "%.*s", (int)strcspn(hs + 7, ","), hs + 7);
                char *slash = strrchr(headdir, '/');
                if (slash)
                    *slash = '\0';
                slash = strrchr(headdir, '/');
                if (slash && !strcmp(slash, "/cluster"))
                    *slash = '\0';
            }
            failf("the head keeps its cluster in another directory (its AuthInfo is %s); Slurm daemons use the "
                  "same paths on every node: run the worker with --home %s",
                  authinfo, headdir);
            goto fail;
        }
        long sdport = atol(slurmd_port);
        if (sdport > 0 && !port_free((int)sdport)) {
            failf("port %ld (the cluster's SlurmdPort) is in use here: one slurmd per host or network namespace "
                  "(is a head or another worker running on this host?)",
                  sdport);
            goto fail;
        }
        if (!strstr(params, "enable_configless")) {
            failf("the controller at %s:%ld does not serve its configuration (no SlurmctldParameters="
                  "enable_configless): is it a SAGE head?",
                  host, port);
            goto fail;
        }
        for (int i = 0; i < r.ngres + 1; i++) {
            const char *g = i < r.ngres ? r.gres_name[i] : "gpu";
            if (i == r.ngres && r.gpus <= 0)
                continue;
            char list[1100];
            snprintf(list, sizeof list, ",%s,", gres_types);
            char needle[80];
            snprintf(needle, sizeof needle, ",%s,", g);
            if (!strstr(list, needle)) {
                failf("the cluster does not know the resource '%s' (its GresTypes=%s): start the head with "
                      "--resources %s=0 (or more) to declare it",
                      g, gres_types, g);
                goto fail;
            }
        }
    }
    /* A static node of that name (the head's own, say) cannot be taken over. */
    {
        char *so, *se;
        char *argv[] = {"scontrol", "show", "node", name, "-o", NULL};
        int rc = run_capture(argv, wconf, WAIT_MS, &so, &se);
        node_info x = {.name = ""};
        if (rc == 0 && so && !strncmp(so, "NodeName=", 9))
            parse_scontrol_line(so, &x);
        if (x.name[0] && !has_flag(&x, "DYNAMIC_NORM")) {
            free(so);
            free(se);
            failf("the cluster already has a node called %s: name this one with --name", name);
            goto fail;
        }
        free(so);
        free(se);
    }

    if (make_gpu_files(name, &r) || update_gres_nodes(name, &r, 0))
        goto fail;

    /* slurmd, configless: the 22.05 slurmd fetches slurm.conf and gres.conf from slurmctld before it
     * reads any configuration, so it would authenticate through munge's default socket. It has no
     * --authinfo option yet (later Slurm has), but it writes the --conf-server value into its
     * bootstrap configuration as "SlurmctldHost=<value>" and takes the port after the first ':',
     * so a second line "AuthInfo=socket=<ours>" before the port points it at our munged. */
    {
        char gres[512], conf_line[1024], server[PATH_MAX + 512];
        gres_spec(&r, gres, sizeof gres);
        snprintf(conf_line, sizeof conf_line, "CPUs=%ld RealMemory=%ld%s%s", r.cpus, r.mem_mb, gres[0] ? " Gres=" : "",
                 gres);
        snprintf(server, sizeof server, "%s\nAuthInfo=socket=%s:%ld", host, sock, port);
        char *argv[] = {"slurmd", "-N", name, "-Z", "--conf", conf_line, "--conf-server", server, NULL};
        rotate_log(d_log);
        unlink(d_pid);
        int rc = run_daemon(argv, d_log, NULL);
        if (rc != 0) {
            failf("slurmd for node %s failed to start (exit %d): read %s", name, rc, d_log);
            goto fail;
        }
        note_started(d_pid, "slurmd");
    }
    if (wait_node_idle(wconf, name, d_pid, d_log))
        goto fail;
    char desc[512];
    describe_res(&r, desc, sizeof desc);
    printf("worker %s joined the SAGE cluster at %s:%ld: %s: idle\n", name, host, port, desc);
    printf("  log %s; stop it with: sage cluster stop --home %s\n", d_log, home);
    return EX_OK;

fail:
    undo_started();
    return EX_FAIL;
}

/* ---------------------------------------------------------------------------------------------
 * stop
 * ------------------------------------------------------------------------------------------- */

/* Cancels every job of the cluster and waits (bounded) until none is left, so no step outlives
 * the slurmd that started it. */
static void cancel_jobs(const char *conf)
{
    char *so, *se;
    char *argv[] = {"squeue", "-h", "-o", "%i", NULL};
    if (run_capture(argv, conf, 10000, &so, &se) != 0 || !so || !*so) {
        free(so);
        free(se);
        return;
    }
    char *ids[256];
    int n = 0;
    ids[n++] = "scancel";
    char *save = NULL;
    for (char *t = strtok_r(so, " \n", &save); t && n < 254; t = strtok_r(NULL, " \n", &save))
        ids[n++] = t;
    ids[n] = NULL;
    char *o2, *e2;
    run_capture(ids, conf, 10000, &o2, &e2);
    free(o2);
    free(e2);
    free(so);
    free(se);
    long long deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        if (run_capture(argv, conf, 10000, &so, &se) != 0 || !so || !*so) {
            free(so);
            free(se);
            return;
        }
        free(so);
        free(se);
        sleep_ms(POLL_MS * 2);
    }
}

static int cmd_stop(void)
{
    char path[PATH_MAX], why[256];
    struct stat st;
    if (stat(g_dir, &st) != 0) {
        printf("no SAGE cluster in %s (nothing to stop)\n", g_dir);
        return EX_OK;
    }
    if (geteuid() != 0 && anything_running(why, sizeof why))
        return failf("the cluster's daemons run as root: run sage cluster stop as root");
    if (lock_state_dir())
        return EX_FAIL;

    int failed = 0, stopped = 0;
    pid_t ctld = live_daemon(sp(path, "slurmctld.pid"), "slurmctld");
    if (ctld)
        cancel_jobs(sp(path, "slurm.conf"));

    /* slurmd(s) of this state dir: the head's node and workers started from here, in network
     * namespaces or not (same pid namespace, same files). */
    char names[64][128];
    pid_t pids[64];
    int nd = 0;
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && nd < 64) {
            size_t l = strlen(e->d_name);
            if (strncmp(e->d_name, "slurmd-", 7) != 0 || l <= 11 || strcmp(e->d_name + l - 4, ".pid") != 0)
                continue;
            pid_t pid = pidfile_read(sp(path, "%s", e->d_name));
            if (pid && is_ours(pid, "slurmd")) {
                snprintf(names[nd], sizeof names[nd], "%.*s", (int)(l - 11), e->d_name + 7);
                pids[nd++] = pid;
            } else {
                unlink(path);
            }
        }
        closedir(d);
    }
    for (int i = 0; i < nd; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < nd; i++) {
        char what[160];
        snprintf(what, sizeof what, "slurmd %.127s", names[i]);
        if (stop_pid(pids[i], what) != 0) {
            failf("slurmd of node %s (pid %ld) did not exit: read %s", names[i], (long)pids[i],
                  sp(path, "slurmd-%s.log", names[i]));
            failed = 1;
            continue;
        }
        printf("stopped slurmd of node %s (pid %ld)\n", names[i], (long)pids[i]);
        unlink(sp(path, "slurmd-%s.pid", names[i]));
        stopped++;
        /* A worker of a head elsewhere: take its dynamic node out of the cluster. */
        char wconf[PATH_MAX];
        if (!ctld && file_exists(sp(wconf, "worker.conf"))) {
            char arg[160], *so, *se;
            snprintf(arg, sizeof arg, "nodename=%.127s", names[i]);
            char *argv[] = {"scontrol", "delete", arg, NULL};
            run_capture(argv, wconf, 10000, &so, &se);
            free(so);
            free(se);
        }
    }
    if (ctld) {
        if (stop_pid(ctld, "slurmctld") != 0) {
            failf("slurmctld (pid %ld) did not exit: read %s", (long)ctld, sp(path, "slurmctld.log"));
            failed = 1;
        } else {
            printf("stopped slurmctld (pid %ld)\n", (long)ctld);
            unlink(sp(path, "slurmctld.pid"));
            stopped++;
        }
    }
    pid_t munged = live_daemon(sp(path, "munged.pid"), "munged");
    if (munged) {
        if (stop_pid(munged, "munged") != 0) {
            failf("munged (pid %ld) did not exit: read %s", (long)munged, sp(path, "munged.log"));
            failed = 1;
        } else {
            printf("stopped munged (pid %ld)\n", (long)munged);
            unlink(sp(path, "munged.pid"));
            stopped++;
        }
    }
    remove_stale_pidfiles();
    /* A configless slurmd links /run/slurm/conf to its cache in our spool: remove a link into it. */
    char target[PATH_MAX];
    ssize_t tl = readlink("/run/slurm/conf", target, sizeof target - 1);
    if (tl > 0) {
        target[tl] = '\0';
        if (arg_in_dir(target)) {
            unlink("/run/slurm/conf");
            rmdir("/run/slurm"); /* only if empty */
        }
    }
    if (!stopped && !failed)
        printf("no SAGE cluster running in %s (nothing to stop)\n", g_dir);
    return failed ? EX_FAIL : EX_OK;
}

/* ---------------------------------------------------------------------------------------------
 * status
 * ------------------------------------------------------------------------------------------- */

static const gres_amt *find_gres(const node_info *n, const char *name)
{
    for (int i = 0; i < n->ngres; i++)
        if (!strcmp(n->g[i].name, name))
            return &n->g[i];
    return NULL;
}

static int cmd_status(copts *o)
{
    char path[PATH_MAX], conf[PATH_MAX] = "", err[512];
    const char *source = "sage";
    const char *use = NULL; /* SLURM_CONF for the client commands; NULL: the site's own lookup */
    int ours = 0;
    if (live_daemon(sp(path, "slurmctld.pid"), "slurmctld") && file_exists(sp(conf, "slurm.conf"))) {
        ours = 1;
    } else if (file_exists(sp(conf, "worker.conf")) && anything_running(err, sizeof err)) {
        ours = 1; /* a worker of a head elsewhere */
    }
    if (ours) {
        use = conf;
    } else {
        source = "site";
        const char *env = getenv("SLURM_CONF");
        if (env && *env && !file_exists(env))
            return failf("no SAGE cluster is running in %s, and SLURM_CONF names %s, which does not exist", g_dir,
                         env);
        if (env && *env)
            snprintf(conf, sizeof conf, "%s", env);
        else if (file_exists("/etc/slurm/slurm.conf"))
            snprintf(conf, sizeof conf, "/etc/slurm/slurm.conf");
        else
            return failf("no SAGE cluster is running in %s and no Slurm configuration was found (SLURM_CONF is "
                         "unset, no /etc/slurm/slurm.conf); start one with: sage cluster start --head",
                         g_dir);
    }
    if (!have_program("sinfo") && !have_program("scontrol"))
        return failf("sinfo and scontrol not found in PATH: install slurm-client (scripts/deps.sh)");
    node_info *nodes = NULL;
    size_t n = 0;
    if (collect_nodes(use, &nodes, &n, err, sizeof err) != 0)
        return failf("cannot read the nodes of the %s cluster (configuration %s): %s%s%s", source, conf, err,
                     ours ? "; read " : "", ours ? sp(path, "slurmctld.log") : "");

    if (o->json) {
        json_t *root = json_object(), *arr = json_array();
        json_object_set_new(root, "source", json_string(source));
        json_object_set_new(root, "conf", json_string(conf));
        json_object_set_new(root, "state_dir", json_string(g_dir));
        for (size_t i = 0; i < n; i++) {
            node_info *x = &nodes[i];
            json_t *j = json_object(), *flags = json_array(), *res = json_object();
            char fl[256];
            snprintf(fl, sizeof fl, "%s", x->flags);
            char *save = NULL;
            for (char *f = strtok_r(fl, "+", &save); f; f = strtok_r(NULL, "+", &save))
                json_array_append_new(flags, json_string(f));
            const gres_amt *gpu = find_gres(x, "gpu");
            for (int k = 0; k < x->ngres; k++)
                if (strcmp(x->g[k].name, "gpu") != 0 && (x->g[k].total || x->g[k].used))
                    json_object_set_new(res, x->g[k].name,
                                        json_pack("{s:I,s:I}", "total", (json_int_t)x->g[k].total, "allocated",
                                                  (json_int_t)x->g[k].used));
            json_object_set_new(j, "name", json_string(x->name));
            json_object_set_new(j, "state", json_string(x->state));
            json_object_set_new(j, "flags", flags);
            json_object_set_new(j, "address", json_string(x->address));
            json_object_set_new(j, "cpus", json_pack("{s:I,s:I}", "total", (json_int_t)x->cpus, "allocated",
                                                     (json_int_t)x->cpus_alloc));
            json_object_set_new(j, "memory_mb", json_pack("{s:I,s:I}", "total", (json_int_t)x->mem, "allocated",
                                                          (json_int_t)x->mem_alloc));
            json_object_set_new(j, "gpus", json_pack("{s:I,s:I}", "total", (json_int_t)(gpu ? gpu->total : 0),
                                                     "allocated", (json_int_t)(gpu ? gpu->used : 0)));
            json_object_set_new(j, "resources", res);
            json_object_set_new(j, "gres", json_string(x->gres));
            json_object_set_new(j, "reason", json_string(x->reason));
            json_array_append_new(arr, j);
        }
        json_object_set_new(root, "nodes", arr);
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s)
            puts(s);
        free(s);
        json_decref(root);
        free(nodes);
        return EX_OK;
    }

    printf("%s cluster (configuration %s): %zu node%s\n", ours ? "SAGE" : "site Slurm", conf, n, n == 1 ? "" : "s");
    const char *hdr[7] = {"NODE", "STATE", "ADDRESS", "CPUS used/total", "MEMORY_MB used/total", "GPUS used/total",
                          "RESOURCES used/total"};
    size_t w[7];
    for (int c = 0; c < 7; c++)
        w[c] = strlen(hdr[c]);
    char (*cells)[7][256] = calloc(n ? n : 1, sizeof *cells);
    if (!cells) {
        free(nodes);
        return failf("out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        node_info *x = &nodes[i];
        const gres_amt *gpu = find_gres(x, "gpu");
        snprintf(cells[i][0], 256, "%s", x->name);
        snprintf(cells[i][1], 256, "%.60s%s%.190s", x->state, x->flags[0] ? "+" : "", x->flags);
        lower(cells[i][1]);
        snprintf(cells[i][2], 256, "%s", x->address);
        snprintf(cells[i][3], 256, "%lld/%lld", x->cpus_alloc, x->cpus);
        snprintf(cells[i][4], 256, "%lld/%lld", x->mem_alloc, x->mem);
        snprintf(cells[i][5], 256, "%lld/%lld", gpu ? gpu->used : 0, gpu ? gpu->total : 0);
        size_t len = 0;
        cells[i][6][0] = '\0';
        for (int k = 0; k < x->ngres; k++)
            if (strcmp(x->g[k].name, "gpu") != 0 && (x->g[k].total || x->g[k].used) && len < 250)
                len += (size_t)snprintf(cells[i][6] + len, 256 - len, "%s%s=%lld/%lld", len ? " " : "", x->g[k].name,
                                        x->g[k].used, x->g[k].total);
        if (!cells[i][6][0])
            snprintf(cells[i][6], 256, "-");
        for (int c = 0; c < 7; c++)
            if (strlen(cells[i][c]) > w[c])
                w[c] = strlen(cells[i][c]);
    }
    for (int c = 0; c < 7; c++)
        printf("%-*s%s", c < 6 ? (int)w[c] : 0, hdr[c], c < 6 ? "  " : "\n");
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 7; c++)
            printf("%-*s%s", c < 6 ? (int)w[c] : 0, cells[i][c], c < 6 ? "  " : "\n");
        if (nodes[i].reason[0])
            printf("    reason: %s\n", nodes[i].reason);
    }
    free(cells);
    free(nodes);
    return EX_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------------- */

int sage_cluster_main(int argc, char **argv)
{
    copts o = {.port = 0};
    o.res.cpus = o.res.mem_mb = o.res.gpus = -1;
    if (argc < 2)
        return usagef("missing command: start, status or stop");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help")) {
            fputs(help_text, stdout);
            return EX_OK;
        }
    o.cmd = argv[1];
    if (strcmp(o.cmd, "start") && strcmp(o.cmd, "status") && strcmp(o.cmd, "stop"))
        return usagef("unknown command '%s': start, status or stop", o.cmd);

    for (int i = 2; i < argc; i++) {
        char opt[64];
        const char *a = argv[i], *val = NULL;
        if (strncmp(a, "--", 2) != 0)
            return usagef("unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        snprintf(opt, sizeof opt, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        int takes = !strcmp(opt, "--port") || !strcmp(opt, "--address") || !strcmp(opt, "--head-address") ||
                    !strcmp(opt, "--name") || !strcmp(opt, "--home") || !strcmp(opt, "--cpus") ||
                    !strcmp(opt, "--memory") || !strcmp(opt, "--gpus") || !strcmp(opt, "--resources");
        if (takes) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return usagef("%s needs a value", opt);
        } else if (eq) {
            return usagef("%s takes no value", opt);
        }
        int start_only = strcmp(o.cmd, "start") == 0;
        if (!strcmp(opt, "--home"))
            o.home = val;
        else if (!strcmp(opt, "--json") && !strcmp(o.cmd, "status"))
            o.json = 1;
        else if (!start_only)
            return usagef("%s is not an option of `sage cluster %s`", opt, o.cmd);
        else if (!strcmp(opt, "--head"))
            o.head = 1;
        else if (!strcmp(opt, "--worker"))
            o.worker = 1;
        else if (!strcmp(opt, "--port")) {
            if (parse_long(val, 1, 65534, &o.port) != 0)
                return usagef("--port %s: a port number 1-65534 (slurmd takes the next one)", val);
        } else if (!strcmp(opt, "--address")) {
            struct in_addr ia;
            if (inet_pton(AF_INET, val, &ia) != 1)
                return usagef("--address %s: an IPv4 address", val);
            o.address = val;
        } else if (!strcmp(opt, "--head-address"))
            o.head_address = val;
        else if (!strcmp(opt, "--name")) {
            if (!valid_name(val))
                return usagef("--name %s: letters, digits, - _ . (up to 63)", val);
            o.name = val;
        } else if (!strcmp(opt, "--cpus")) {
            if (parse_long(val, 1, 100000, &o.res.cpus) != 0)
                return usagef("--cpus %s: a whole number >= 1", val);
        } else if (!strcmp(opt, "--gpus")) {
            if (parse_long(val, 0, 1024, &o.res.gpus) != 0)
                return usagef("--gpus %s: a whole number 0-1024", val);
        } else if (!strcmp(opt, "--memory")) {
            uint64_t bytes = 0;
            char err[256];
            if (sage_parse_bytes(val, &bytes, err, sizeof err) != SAGE_OK)
                return usagef("--memory %s: %s", val, err);
            if (bytes < 1024 * 1024)
                return usagef("--memory %s: at least 1MiB", val);
            o.res.mem_mb = (long)(bytes / (1024 * 1024));
        } else if (!strcmp(opt, "--resources")) {
            if (parse_resources(val, &o.res) != 0)
                return EX_USAGE;
        } else
            return usagef("unknown option %s", opt);
    }
    if (!strcmp(o.cmd, "start")) {
        if (o.head == o.worker)
            return usagef("start needs exactly one of --head or --worker");
        if (o.worker && !o.head_address)
            return usagef("start --worker needs --head-address=HOST:PORT (printed by start --head)");
        if (o.head && o.head_address)
            return usagef("--head-address is for --worker");
        if (o.worker && (o.port || o.address))
            return usagef("--port and --address are for --head (a worker's slurmd uses the head's slurmd port)");
    }

    char home[PATH_MAX];
    if (sage_home_dir(o.home, home, sizeof home) != SAGE_OK || !home[0])
        return failf("cannot tell the SAGE state directory: give --home DIR or set SAGE_HOME");
    char abs_home[2 * PATH_MAX + 2];
    if (home[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return failf("cannot tell the current directory: %s", strerror(errno));
        snprintf(abs_home, sizeof abs_home, "%s/%s", cwd, home);
    } else {
        snprintf(abs_home, sizeof abs_home, "%s", home);
    }
    size_t hl = strlen(abs_home);
    while (hl > 1 && abs_home[hl - 1] == '/')
        abs_home[--hl] = '\0';
    if (hl + 200 >= sizeof g_dir)
        return usagef("--home %s: path too long", abs_home);
    memcpy(g_dir, abs_home, hl);
    memcpy(g_dir + hl, "/cluster", sizeof "/cluster");
    if (!valid_dir_path(g_dir))
        return usagef("the state directory %s cannot go into slurm.conf (no blanks or any of : # \" ' = , \\)", g_dir);

    if (!strcmp(o.cmd, "status"))
        return cmd_status(&o);
    if (!strcmp(o.cmd, "stop"))
        return cmd_stop();
    return o.head ? start_head(&o) : start_worker(&o);
}
