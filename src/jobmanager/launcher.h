/* jobmanager/launcher.h - how the JobManager runs a job's tasks: one interface, a local and a Slurm implementation.
 *
 * The launcher is chosen once, when the configuration is read (config.c:
 * "slurm" present -> jm_slurm_launcher, else jm_local_launcher), and the rest
 * of the daemon calls it through d->launcher only. The job state machine
 * (jobs.c) decides *what* happens to a job; the launcher decides *how* its
 * processes start and stop and what outside resources (a Slurm allocation)
 * come with them. Rules every implementation keeps:
 *
 *  - Nothing here blocks the poll loop: work that waits on something (a
 *    Slurm command) is started with jm_cmd_run and finished in its callback.
 *  - A task's process is always a child of the daemon, reaped by the loop
 *    (jm_on_child_exit), with its stdout/stderr on pipes (launch.c's
 *    jm_exec_task), so supervision and failure attribution are the same for
 *    every launcher.
 *  - stop() may be called more than once and after some tasks have ended.
 *  - Callbacks find their job again by id (jm_job_find): a job may have
 *    ended and been freed while a command about it ran.
 *
 * Optional members are NULL when a launcher has nothing to do there.
 */
#ifndef SAGE_JOBMANAGER_LAUNCHER_H
#define SAGE_JOBMANAGER_LAUNCHER_H

#include <sched.h>

#include "jobmanager/jm.h"

struct jm_launcher {
    const char *name; /* "local" or "slurm" */
    /* At daemon start, after the configuration, before clients are served
     * (may wait: the first sinfo). 0, or an error with the reason. */
    int (*init)(jm *d, char *err, size_t err_len);
    /* Once the loop runs: start-up work that must not delay it (optional). */
    void (*started)(jm *d);
    /* At daemon exit (optional). */
    void (*fini)(jm *d);
    /* The nodes placement uses. */
    const sage__node *(*nodes)(const jm *d, size_t *n);
    /* Before a submit is admitted (optional): 0 to go on; 1 when the node
     * list is being read again, the submit waits (jm_submits_resume answers
     * it); < 0 when it cannot be read (err says why). */
    int (*refresh)(jm *d, char *err, size_t err_len);
    /* A placed job: start its tasks with jm_job_start_tasks, now or once
     * what they need is granted (the job stays pending meanwhile). 0, or an
     * error (the job was failed with the reason). */
    int (*start)(jm *d, jm_job *j);
    /* Start one task's process (through jm_exec_task). */
    int (*spawn)(jm *d, jm_job *j, jm_task *k, char *err, size_t err_len);
    /* Kill every process of the job still running and release what it
     * holds outside the daemon. Idempotent. */
    void (*stop)(jm *d, jm_job *j);
    /* A task failed with `why`, before the job's failure is recorded
     * (optional): look further (Slurm: did the allocation end under it?). */
    void (*task_failed)(jm *d, jm_job *j, jm_task *k, const char *why);
    /* 1 while the job may not end yet: an answer about it is awaited (optional). */
    int (*busy)(const jm *d, const jm_job *j);
    /* The job ended, in any state (optional): release, keep records. */
    void (*ended)(jm *d, jm_job *j);
    /* A restart, after ended() (optional): forget the last attempt's outside resources. A launcher that
     * has this places every attempt anew (jm_job_place_again: away from lost nodes, a new allocation);
     * one without it starts the same tasks where they were. */
    void (*restarting)(jm *d, jm_job *j);
    /* Run what is due at `now` (sage__mono_ms); ms to the next (-1: none) (optional). */
    int (*timers)(jm *d, int64_t now);
    /* Where a task runs, for views and store rows. */
    const char *(*task_host)(const jm *d, const jm_task *k);
    /* Launcher fields of a live task, of a live job, of ping (optional). */
    void (*view_task)(const jm *d, const jm_job *j, const jm_task *k, json_t *tj);
    void (*view_job)(const jm *d, const jm_job *j, json_t *jj);
    void (*view_ping)(const jm *d, json_t *ping);
};

extern const jm_launcher jm_local_launcher;
extern const jm_launcher jm_slurm_launcher;

/* launch_slurm.c: the Slurm ids an ended job kept (<jobdir>/slurm.json), put into its end view if it has them. */
void jm_slurm_view_ended(const jm *d, int64_t id, json_t *end);

/* ---- launch.c: what both launchers use ---- */

/* How one task's process is made. */
typedef struct jm_exec {
    const char *file; /* the program */
    int search_path;  /* 1: look file up in PATH (srun); 0: run it as given (the job's executable) */
    char *const *argv;
    const char *env_drop;      /* submitter variables starting with this are left out (NULL: none) */
    const char *env_extra[3];  /* more "NAME=value" for its environment (NULL: none) */
    int pdeathsig;             /* signal it gets when the daemon dies */
    const sage__cgroup *cg;    /* group to enter before exec (NULL: none) */
    const cpu_set_t *affinity; /* cores to pin it to (NULL: none) */
    int listen_fd;             /* dup'ed to fd 3 (-1: none) */
    const char *cwd;           /* directory to run in (NULL: the daemon's) */
} jm_exec;
/* Fork and exec the task's process with its stdout/stderr piped to the
 * daemon, its log opened, and the worker's environment: the submitter's
 * (without SAGE_WORKER_*, CUDA_VISIBLE_DEVICES, SAGE_HOME and x->env_drop*),
 * then SAGE's own (SAGE_WORKER_JOB, SAGE_WORKER_JOBMANAGER,
 * SAGE_WORKER_SECRET, SAGE_WORKER_TASK, SAGE_HOME, CUDA_VISIBLE_DEVICES), then x->env_extra. 0, or an error with the reason. */
int jm_exec_task(jm *d, jm_job *j, jm_task *k, const jm_exec *x, char *err, size_t err_len);
/* The job's executable and argv from its document (argv points into the document). */
int jm_job_exec_args(jm_job *j, const char **exe, char ***argv, char *err, size_t err_len);
void jm_strv_free(char **v);
/* v[0..n) made of strdup results: v (NULL-terminated) if none failed, else NULL with everything freed. */
char **jm_strv_done(char **v, size_t n);
/* SIGKILL every process of the job that still runs and is not known to
 * have died by itself (not reaped yet): that one keeps its own story. */
void jm_kill_processes(jm_job *j);
/* SIGKILL every process of the task: its cgroup's, its process group's, its own (also once it was reaped:
 * what it left behind). */
void jm_task_kill(jm_task *k);

/* ---- command.c: Slurm commands from the poll loop ---- */

/* What a finished command amounts to (see sage__slurm_result). */
typedef struct jm_cmd_result {
    int code;        /* exit status 0..255, or -1: killed, past its deadline, or printed too much */
    const char *out; /* its stdout, NUL-terminated */
    const char *msg; /* why it failed, or the first line of its stderr */
} jm_cmd_result;
/* Called once per command that was started, from the loop, when it ended;
 * job_id and arg are what jm_cmd_run was given. */
typedef void (*jm_cmd_fn)(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r);

/* Run a Slurm command (d->slurm.conf, d->slurm.timeout_ms) without
 * waiting for it: fn runs when it ended. Commands with the same job_id (not
 * 0) run one after another in the order given; at most JM_CMD_RUNNING run at
 * once, at most JM_CMD_QUEUED wait. 0, or an error (then fn never runs). */
#define JM_CMD_RUNNING 8
#define JM_CMD_QUEUED 4096
int jm_cmd_run(jm *d, int64_t job_id, long long arg, char *const argv[], jm_cmd_fn fn, char *err, size_t err_len);
/* Commands running or queued. */
size_t jm_cmd_count(const jm *d);
/* Their pipes, for the poll set (and the job store's descriptor); read them after poll (and hand over the
 * store's answers). */
size_t jm_cmd_nfds(const jm *d);
void jm_cmd_pollfds(jm *d, struct pollfd *pfds, size_t *n, size_t cap);
void jm_cmd_io(jm *d);
/* A reaped child: 1 if it was a command (its callback has run then). */
int jm_cmd_reaped(jm *d, pid_t pid, int status);
/* Kill the commands past their deadline; ms to the next deadline (-1: none). */
int jm_cmd_timers(jm *d, int64_t now);
/* At daemon exit: kill and reap what still runs, drop what waits (no callback runs). */
void jm_cmd_fini(jm *d);

#endif
