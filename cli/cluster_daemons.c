/* cli/cluster_daemons.c - the daemons started from this state dir (and only those): find, start, stop, undo. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "cluster/spawn.h"
#include "util/num.h"
#include "util/time.h"

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
int cluster_proc_running(pid_t pid)
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
int cluster_arg_in_dir(const char *arg)
{
    size_t dl = strlen(cluster_dir);
    for (const char *p = strstr(arg, cluster_dir); p; p = strstr(p + 1, cluster_dir))
        if (p[dl] == '/')
            return 1;
    return 0;
}

/* 1 if pid is a running `daemon` (basename of argv[0]) started from this state dir: one of its
 * arguments names a file in the state dir (-f <dir>/slurm.conf, --socket=<dir>/munge.socket, ...).
 * This is what keeps stop from ever signalling a process it did not start. */
int cluster_is_ours(pid_t pid, const char *daemon)
{
    if (!cluster_proc_running(pid))
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
        if (cluster_arg_in_dir(p))
            return 1;
    return 0;
}

pid_t cluster_pidfile_read(const char *path)
{
    char *s = cluster_read_file(path);
    if (!s)
        return 0;
    s[strcspn(s, "\n")] = '\0';
    int64_t v = 0;
    int rc = sage__parse_i64(s, 2, INT_MAX, &v);
    free(s);
    return rc == 0 ? (pid_t)v : 0;
}

/* The pid in pidfile if it is a running `daemon` of ours, else 0. */
pid_t cluster_live_daemon(const char *pidfile, const char *daemon)
{
    pid_t pid = cluster_pidfile_read(pidfile);
    return pid && cluster_is_ours(pid, daemon) ? pid : 0;
}

/* Starts a daemon that puts itself in the background: its foreground process gets stdout and stderr
 * appended to log and SLURM_CONF=slurm_conf (removed from its environment if NULL), and is waited for
 * (bounded). Returns its exit status (128 + N for signal N), -1 if it did not exit in time (it is
 * killed then) or could not be started. */
int cluster_run_daemon(char *const argv[], const char *log, const char *slurm_conf)
{
    char setting[PATH_MAX + 16];
    snprintf(setting, sizeof setting, "SLURM_CONF=%s", slurm_conf ? slurm_conf : "");
    const char *env[] = {slurm_conf ? setting : "SLURM_CONF", NULL};
    sage__spawn_opts o = {.argv = argv, .env = env, .log = log, .timeout_ms = CLUSTER_WAIT_MS};
    sage__proc p;
    sage__err e = {0};
    if (sage__proc_run(&p, &o, &e) != 0) {
        fprintf(stderr, "sage cluster: %s\n", e.msg);
        return -1;
    }
    int st = p.status, timed_out = p.timed_out;
    sage__proc_free(&p);
    if (timed_out)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* Exclusive lock on the state dir while starting or stopping (bounded wait). The fd is close-on-exec
 * so daemons never inherit it; it is held until the process exits. */
static int g_lock_fd = -1;

int cluster_lock_state_dir(void)
{
    char path[PATH_MAX];
    g_lock_fd = open(cluster_path(path, ".lock"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (g_lock_fd < 0)
        return cluster_fail("cannot open %s: %s", path, strerror(errno));
    int64_t deadline = sage__mono_ms() + CLUSTER_WAIT_MS;
    while (flock(g_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (sage__mono_ms() > deadline)
            return cluster_fail("another `sage cluster` command holds %s for more than %d s", path,
                                CLUSTER_WAIT_MS / 1000);
        cluster_sleep_ms(CLUSTER_POLL_MS);
    }
    return 0;
}

/* Sends SIGTERM, waits (bounded), then SIGKILL. 0 if it is gone. */
int cluster_stop_pid(pid_t pid, const char *what)
{
    if (!cluster_proc_running(pid))
        return 0;
    kill(pid, SIGTERM);
    int64_t deadline = sage__mono_ms() + CLUSTER_WAIT_MS;
    while (cluster_proc_running(pid)) {
        if (sage__mono_ms() > deadline) {
            fprintf(stderr, "sage cluster: %s (pid %ld) did not exit %d s after SIGTERM; sending SIGKILL\n", what,
                    (long)pid, CLUSTER_WAIT_MS / 1000);
            kill(pid, SIGKILL);
            int64_t d2 = sage__mono_ms() + 5000;
            while (cluster_proc_running(pid) && sage__mono_ms() < d2)
                cluster_sleep_ms(CLUSTER_POLL_MS);
            return cluster_proc_running(pid) ? -1 : 0;
        }
        cluster_sleep_ms(CLUSTER_POLL_MS);
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

void cluster_note_started(const char *pidfile, const char *daemon)
{
    if (g_nstarted < 4) {
        snprintf(g_started[g_nstarted].pidfile, PATH_MAX, "%s", pidfile);
        g_started[g_nstarted++].daemon = daemon;
    }
}

void cluster_undo_started(void)
{
    for (int i = g_nstarted - 1; i >= 0; i--) {
        pid_t pid = cluster_live_daemon(g_started[i].pidfile, g_started[i].daemon);
        if (pid) {
            cluster_stop_pid(pid, g_started[i].daemon);
            unlink(g_started[i].pidfile);
        }
    }
    g_nstarted = 0;
}

/* Any daemon from this state dir still running: its description in buf, and 1. */
int cluster_anything_running(char *buf, size_t len)
{
    char path[PATH_MAX];
    pid_t pid;
    if ((pid = cluster_live_daemon(cluster_path(path, "slurmctld.pid"), "slurmctld"))) {
        snprintf(buf, len, "slurmctld pid %ld", (long)pid);
        return 1;
    }
    DIR *d = opendir(cluster_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (strncmp(e->d_name, "slurmd-", 7) == 0 && l > 11 && !strcmp(e->d_name + l - 4, ".pid") &&
                (pid = cluster_live_daemon(cluster_path(path, "%s", e->d_name), "slurmd"))) {
                snprintf(buf, len, "slurmd pid %ld for node %.*s", (long)pid, (int)(l - 11), e->d_name + 7);
                closedir(d);
                return 1;
            }
        }
        closedir(d);
    }
    if ((pid = cluster_live_daemon(cluster_path(path, "munged.pid"), "munged"))) {
        snprintf(buf, len, "munged pid %ld", (long)pid);
        return 1;
    }
    return 0;
}

/* Removes pid files whose process is gone (or is not ours). */
void cluster_remove_stale_pidfiles(void)
{
    char path[PATH_MAX];
    DIR *d = opendir(cluster_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        const char *daemon = !strcmp(e->d_name, "slurmctld.pid") ? "slurmctld"
                             : !strcmp(e->d_name, "munged.pid")  ? "munged"
                             : (!strncmp(e->d_name, "slurmd-", 7) && l > 11 && !strcmp(e->d_name + l - 4, ".pid"))
                                 ? "slurmd"
                                 : NULL;
        if (daemon && !cluster_live_daemon(cluster_path(path, "%s", e->d_name), daemon))
            unlink(path);
    }
    closedir(d);
}

int cluster_start_slurmd(char *const argv[], const char *name, const char *conf, const char *wait_conf)
{
    char log[PATH_MAX], pidfile[PATH_MAX];
    cluster_path(log, "slurmd-%s.log", name);
    cluster_path(pidfile, "slurmd-%s.pid", name);
    cluster_rotate_log(log);
    unlink(pidfile);
    int rc = cluster_run_daemon(argv, log, conf);
    if (rc != 0)
        return cluster_fail("slurmd for node %s failed to start (exit %d): read %s", name, rc, log);
    cluster_note_started(pidfile, "slurmd");
    return cluster_wait_node_idle(wait_conf, name, pidfile, log) ? EX_FAIL : 0;
}
