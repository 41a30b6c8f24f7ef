/* jobmanager/command.c - Slurm commands run from the poll loop: started, polled, timed out and finished by callback.
 *
 * Design note. The daemon never waits for a Slurm command. jm_cmd_run
 * queues one; a queued command starts when fewer than JM_CMD_RUNNING run
 * and no other command of the same job runs (so a job's commands keep
 * their order: the squeue that asks whether an allocation ended under a
 * failed task runs before the scancel that releases it). A running command
 * is a sage__proc (cluster/spawn.c): its pipes are in the loop's poll set
 * (jm_cmd_pollfds, read by jm_cmd_io), its deadline is one of the loop's
 * timers (jm_cmd_timers kills its process group), and it is reaped with
 * every other child by the SIGCHLD handler, which hands it to
 * jm_cmd_reaped. Then the command leaves the list, its callback runs (and
 * may start more commands), it is freed, and queued commands start.
 *
 * A command that cannot even be forked still finishes through its callback
 * (as a failure with the reason), from the next jm_cmd_timers, so a caller
 * sees one path: jm_cmd_run returns an error only when nothing was queued.
 *
 * The job store's answers come back the same way: its descriptor is in the
 * same part of the poll set (it is readable when the store's thread has
 * answered a read or has something for the log), and jm_cmd_io hands them
 * over (sage__store_dispatch). It is not a command: jm_cmd_count does not
 * count it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cluster/slurm.h"
#include "jobmanager/launcher.h"
#include "util/err.h"
#include "util/time.h"

#define CMD_ARGS_MAX 1024 /* an sbatch of a heterogeneous job has about 8 per node */

struct jm_cmd {
    int64_t job_id;
    long long arg;
    jm_cmd_fn fn;
    char **argv;      /* copies, NULL-terminated */
    int started;      /* 0: queued */
    int failed_start; /* could not start: finished by the next timers call with msg */
    char msg[512];
    sage__proc proc;
    struct jm_cmd *next;
};

static void cmd_free(jm_cmd *c)
{
    if (c->started && !c->failed_start)
        sage__proc_free(&c->proc);
    for (int i = 0; c->argv && c->argv[i]; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c);
}

size_t jm_cmd_count(const jm *d)
{
    size_t n = 0;
    for (const jm_cmd *c = d->cmds; c; c = c->next)
        n++;
    return n;
}

static int job_busy(const jm *d, int64_t job_id)
{
    if (!job_id)
        return 0;
    for (const jm_cmd *c = d->cmds; c; c = c->next)
        if (c->started && c->job_id == job_id)
            return 1;
    return 0;
}

/* Start queued commands while there is room, oldest first (the list is in order). */
static void start_queued(jm *d)
{
    size_t running = 0;
    for (jm_cmd *c = d->cmds; c; c = c->next)
        running += c->started;
    for (jm_cmd *c = d->cmds; c && running < JM_CMD_RUNNING; c = c->next) {
        if (c->started || job_busy(d, c->job_id))
            continue;
        c->started = 1;
        running++;
        sage__err e = {0};
        if (sage__slurm_start(&c->proc, d->slurm.conf, c->argv, d->slurm.timeout_ms, &e) != 0) {
            c->failed_start = 1;
            sage__strlcpy(c->msg, e.msg, sizeof c->msg);
        }
    }
}

int jm_cmd_run(jm *d, int64_t job_id, long long arg, char *const argv[], jm_cmd_fn fn, char *err, size_t err_len)
{
    if (jm_cmd_count(d) >= JM_CMD_RUNNING + JM_CMD_QUEUED) {
        sage__fmt(err, err_len, "%s: too many Slurm commands waiting (%d)", argv[0], JM_CMD_QUEUED);
        return SAGE_ETOOBIG;
    }
    jm_cmd *c = calloc(1, sizeof *c);
    if (!c) {
        sage__fmt(err, err_len, "%s: out of memory", argv[0]);
        return SAGE_ENOMEM;
    }
    c->job_id = job_id;
    c->arg = arg;
    c->fn = fn;
    int argc = 0;
    while (argv[argc] && argc <= CMD_ARGS_MAX)
        argc++;
    if (!(c->argv = calloc((size_t)argc + 1, sizeof *c->argv))) {
        sage__fmt(err, err_len, "%s: out of memory", argv[0]);
        cmd_free(c);
        return SAGE_ENOMEM;
    }
    for (int i = 0; argv[i]; i++) {
        if (i == CMD_ARGS_MAX || !(c->argv[i] = strdup(argv[i]))) {
            sage__fmt(err, err_len, "%s: %s", argv[0], i == CMD_ARGS_MAX ? "too many arguments" : "out of memory");
            cmd_free(c);
            return i == CMD_ARGS_MAX ? SAGE_ETOOBIG : SAGE_ENOMEM;
        }
    }
    jm_cmd **pp = &d->cmds;
    while (*pp)
        pp = &(*pp)->next;
    *pp = c;
    start_queued(d);
    return 0;
}

static void store_log(void *arg, const char *msg) { jm_log(arg, "%s", msg); }

size_t jm_cmd_nfds(const jm *d)
{
    size_t n = sage__store_fd(d->store) >= 0;
    for (const jm_cmd *c = d->cmds; c; c = c->next)
        if (c->started && !c->failed_start)
            n += (c->proc.fd[0] >= 0) + (c->proc.fd[1] >= 0);
    return n;
}

void jm_cmd_pollfds(jm *d, struct pollfd *pfds, size_t *n, size_t cap)
{
    int sfd = sage__store_fd(d->store);
    if (sfd >= 0 && *n < cap) {
        pfds[(*n)++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        sage__store_attach(d->store, store_log, d); /* its messages go to our log */
    }
    for (jm_cmd *c = d->cmds; c; c = c->next)
        for (int i = 0; i < 2 && c->started && !c->failed_start; i++)
            if (c->proc.fd[i] >= 0 && *n < cap)
                pfds[(*n)++] = (struct pollfd){.fd = c->proc.fd[i], .events = POLLIN};
}

void jm_cmd_io(jm *d)
{
    for (jm_cmd *c = d->cmds; c; c = c->next)
        if (c->started && !c->failed_start)
            sage__proc_read(&c->proc);
    sage__store_dispatch(d->store); /* answers of the job store's thread */
}

/* Take c out of the list, run its callback, free it, start what waited. */
static void finish(jm *d, jm_cmd *c)
{
    for (jm_cmd **pp = &d->cmds; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    jm_cmd_result r = {.code = -1, .out = "", .msg = c->msg};
    if (!c->failed_start) {
        r.code = sage__slurm_result(&c->proc, c->msg, sizeof c->msg);
        r.out = sage__proc_stdout(&c->proc);
    }
    c->fn(d, c->job_id, c->arg, &r);
    cmd_free(c);
    start_queued(d);
}

int jm_cmd_reaped(jm *d, pid_t pid, int status)
{
    for (jm_cmd *c = d->cmds; c; c = c->next)
        if (c->started && !c->failed_start && c->proc.pid == pid) {
            sage__proc_reaped(&c->proc, status);
            finish(d, c);
            return 1;
        }
    return 0;
}

int jm_cmd_timers(jm *d, int64_t now)
{
    int64_t next = -1;
again:
    for (jm_cmd *c = d->cmds; c; c = c->next) {
        if (!c->started)
            continue;
        if (c->failed_start) {
            finish(d, c);
            goto again; /* the list changed */
        }
        sage__proc_expire(&c->proc, now); /* killed: finished when reaped */
        if (c->proc.deadline_ms && !c->proc.timed_out) {
            int64_t left = c->proc.deadline_ms > now ? c->proc.deadline_ms - now : 0;
            if (next < 0 || left < next)
                next = left;
        }
    }
    return (int)next;
}

void jm_cmd_fini(jm *d)
{
    while (d->cmds) {
        jm_cmd *c = d->cmds;
        d->cmds = c->next;
        if (c->started && !c->failed_start && c->proc.pid > 0) {
            kill(-c->proc.pid, SIGKILL);
            kill(c->proc.pid, SIGKILL);
            int st;
            while (waitpid(c->proc.pid, &st, 0) < 0 && errno == EINTR) {
            }
        }
        cmd_free(c);
    }
}
