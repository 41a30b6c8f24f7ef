/* jobmanager/launch.c - what both launchers share: a worker's environment, fork/exec with piped output, kills.
 *
 * Design note. Every task's process, local worker or srun, is made here, so
 * the daemon supervises them all alike: its stdout and stderr are pipes the
 * loop polls (output.c), it dies with the daemon (PR_SET_PDEATHSIG, and a
 * child whose parent died between fork and prctl exits 126), its signal
 * mask is emptied (the daemon's blocked SIGCHLD/SIGTERM would survive
 * exec), and it is reaped by the loop. Everything the child needs is built
 * before fork; the child makes async-signal-safe calls only, in this order:
 * process group, signals, parent-death signal, cgroup, affinity,
 * descriptors, directory, exec.
 *
 * Every process of a task dies with it. The user's code may start processes
 * of its own; PR_SET_PDEATHSIG reaches only the worker. So each task
 * process leads a process group of its own (stdin /dev/null, so that a
 * worker of a daemon started in a terminal is never stopped for reading
 * it), the daemon is a child subreaper (an orphaned grandchild is
 * reparented to it and reaped by the loop like any child, never left a
 * zombie), and a kill reaches the whole task: its cgroup when it has one
 * (sage__cgroup_kill: every process in it, even one that left the process
 * group), else its process group. A task is killed that way when the
 * JobManager stops it, and again when its process has been reaped (what it
 * left behind).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobmanager/launcher.h"
#include "net/sock.h"
#include "util/err.h"
#include "util/time.h"

extern char **environ;

void jm_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

char **jm_strv_done(char **v, size_t n)
{
    v[n] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!v[i]) {
            for (size_t z = 0; z < n; z++)
                free(v[z]);
            free(v);
            return NULL;
        }
    return v;
}

static char **worker_env(jm *d, jm_job *j, jm_task *k, const char *drop_prefix, const char *const *extra)
{
    json_t *env = json_object_get(j->doc, "env");
    size_t n = json_is_array(env) ? json_array_size(env) : 0;
    char **e = calloc(n + 12, sizeof *e);
    if (!e)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_array_get(env, i));
        if (!v || strncmp(v, "SAGE_WORKER_", 12) == 0 || strncmp(v, "CUDA_VISIBLE_DEVICES=", 21) == 0 ||
            strncmp(v, "SAGE_HOME=", 10) == 0 || (drop_prefix && strncmp(v, drop_prefix, strlen(drop_prefix)) == 0))
            continue;
        e[m++] = strdup(v);
    }
    /* what a worker needs to find us and its job: no path (a node need not share our directory) */
    char buf[PATH_MAX + 64];
    sage__fmt(buf, sizeof buf, "SAGE_WORKER_JOB=%lld", (long long)j->id);
    e[m++] = strdup(buf);
    sage__fmt(buf, sizeof buf, "SAGE_WORKER_JOBMANAGER=%s:%d", d->host, d->port);
    e[m++] = strdup(buf);
    sage__fmt(buf, sizeof buf, "SAGE_WORKER_SECRET=%s", j->secret);
    e[m++] = strdup(buf);
    sage__fmt(buf, sizeof buf, "SAGE_WORKER_TASK=%d", k->index);
    e[m++] = strdup(buf);
    sage__fmt(buf, sizeof buf, "SAGE_HOME=%s", d->home);
    e[m++] = strdup(buf);
    sage__fmt(buf, sizeof buf, "CUDA_VISIBLE_DEVICES=%s", k->gpus);
    e[m++] = strdup(buf);
    for (int i = 0; i < 3; i++)
        if (extra[i])
            e[m++] = strdup(extra[i]);
    return jm_strv_done(e, m);
}

int jm_job_exec_args(jm_job *j, const char **exe, char ***argv, char *err, size_t err_len)
{
    *exe = json_string_value(json_object_get(j->doc, "executable"));
    json_t *argvj = json_object_get(j->doc, "argv");
    if (!*exe || !json_is_array(argvj) || json_array_size(argvj) > 4096) {
        sage__fmt(err, err_len, "submit: no executable or argv");
        return SAGE_EPROTO;
    }
    size_t argc = json_array_size(argvj);
    char **v = calloc(argc + 1, sizeof *v);
    if (!v) {
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    for (size_t i = 0; i < argc; i++) {
        const char *s = json_string_value(json_array_get(argvj, i));
        v[i] = (char *)(s ? s : "");
    }
    *argv = v;
    return 0;
}

/* In the child: async-signal-safe calls only, until exec. */
/* In the child: fd `from` becomes `to` across exec. dup2 onto itself does nothing, not even clear
 * close-on-exec: a descriptor that already has the number (the daemon's listener may be fd 3) would be
 * closed by the exec, and the worker would find no listener there. */
static void keep_fd(int from, int to)
{
    if (from == to)
        fcntl(to, F_SETFD, 0);
    else
        dup2(from, to);
}

static void child(const jm_exec *x, char **envp, pid_t parent, int out_w, int err_w, int null_r)
{
    setpgid(0, 0); /* a group of its own: the task's kills reach what it starts */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, x->pdeathsig);
    if (getppid() != parent)
        _exit(126); /* the daemon died before prctl */
    if (x->cg)
        sage__cgroup_attach_self(x->cg);
    if (x->affinity)
        sched_setaffinity(0, sizeof *x->affinity, x->affinity);
    if (null_r >= 0)
        keep_fd(null_r, 0);
    keep_fd(out_w, 1);
    keep_fd(err_w, 2);
    if (x->listen_fd >= 0)
        keep_fd(x->listen_fd, 3);
    if (x->cwd && chdir(x->cwd) != 0) {
        static const char msg[] = "sage worker: cannot enter the submitter's working directory\n";
        (void)!write(2, msg, sizeof msg - 1);
    }
    if (x->search_path)
        execvpe(x->file, x->argv, envp);
    else
        execve(x->file, x->argv, envp);
    static const char program[] = "sage worker: cannot execute the job's program\n";
    static const char tool[] = ": cannot execute it (is Slurm's client installed and in PATH?)\n";
    if (x->search_path) {
        (void)!write(2, "sage worker: ", 13);
        (void)!write(2, x->file, strlen(x->file));
        (void)!write(2, tool, sizeof tool - 1);
    } else {
        (void)!write(2, program, sizeof program - 1);
    }
    _exit(127);
}

int jm_exec_task(jm *d, jm_job *j, jm_task *k, const jm_exec *x, char *err, size_t err_len)
{
    char **envp = worker_env(d, j, k, x->env_drop, x->env_extra);
    if (!envp) {
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    jm_output_open(j, k);
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) != 0) {
        sage__fmt(err, err_len, "pipe: %s", strerror(errno));
        jm_strv_free(envp);
        return SAGE_ESYS;
    }
    if (pipe2(errp, O_CLOEXEC) != 0) {
        sage__fmt(err, err_len, "pipe: %s", strerror(errno));
        close(outp[0]);
        close(outp[1]);
        jm_strv_free(envp);
        return SAGE_ESYS;
    }
    /* what the task's processes leave behind comes back to us when they end (and is reaped by the loop) */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int null_r = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child(x, envp, parent, outp[1], errp[1], null_r);
    int e = errno;
    if (pid > 0)
        setpgid(pid, pid); /* also here: no kill of ours may come before the child's own setpgid */
    jm_strv_free(envp);
    close(outp[1]);
    close(errp[1]);
    if (null_r >= 0)
        close(null_r);
    if (pid < 0) {
        close(outp[0]);
        close(errp[0]);
        sage__fmt(err, err_len, "fork: %s", strerror(e));
        return SAGE_ESYS;
    }
    k->pid = pid;
    k->launched_ms = sage__mono_ms(); /* its start deadline runs from here (workers.c) */
    k->out_fd = outp[0];
    k->err_fd = errp[0];
    sage__set_nonblock(k->out_fd, 1);
    sage__set_nonblock(k->err_fd, 1);
    j->running++;
    return 0;
}

void jm_task_kill(jm_task *k)
{
    if (k->pid <= 0)
        return;
    if (k->has_cg)
        sage__cgroup_kill(&k->cg);
    kill(-k->pid, SIGKILL); /* its process group (gone once empty: its id is not reused while it exists) */
    if (!k->exited)
        kill(k->pid, SIGKILL);
}

void jm_kill_processes(jm_job *j)
{
    /* First decide, then kill: a task judged after the others were killed could die of their deaths (a
     * broken connection) in between and pass for a failure of its own. */
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if (k->pid <= 0 || k->exited || k->killed_by_us)
            continue;
        /* one that already died on its own (not reaped yet) keeps its own story (what it left behind dies
         * when it is reaped) */
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == k->pid)
            continue;
        k->killed_by_us = 2; /* 2: to be killed below */
    }
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].killed_by_us == 2) {
            j->tasks[t].killed_by_us = 1;
            jm_task_kill(&j->tasks[t]);
        }
}
