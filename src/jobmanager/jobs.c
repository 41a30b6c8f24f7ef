/* jobmanager/jobs.c - the job state machine: tasks started, failures attributed, the end, control, shutdown.
 *
 * Design note. A job is pending (admit.c placed it or let it wait), then
 * running once its launcher started its tasks (jm_job_start_tasks), maybe
 * paused and resumed, and ends exactly once (job_end) as finished, stopped,
 * failed or canceled. It ends when nothing of it is left to wait for
 * (jm_job_maybe_end): every process it started has been reaped (so no
 * worker outlives its job) and the launcher awaits no answer about it; a
 * job that never started ends as soon as it failed, was stopped or
 * canceled.
 *
 * Failure attribution. A worker that exits badly fails the job with its
 * operator, instance, exit status or signal, an OOM verdict from its cgroup,
 * and the last lines of its stderr. When one worker dies its neighbours fail
 * too (broken connections), so each failure has a priority and the job
 * keeps the first reason of the highest priority seen (JM_PRIO_*). A root
 * cause or a user error kills the other workers at once; an echo alone does
 * not: they end by themselves as their connections break, which lets the
 * real cause (a worker killed by a signal, say) be reaped and named first;
 * ECHO_GRACE_MS bounds that wait (kill_at_ms, run by jm_jobs_timers). The
 * launcher hears of each failed task first (task_failed): on Slurm it asks
 * whether the allocation ended under the job, whose answer outranks all.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobmanager/launcher.h"
#include "util/err.h"
#include "util/time.h"
#include "util/utf8.h"

#define ECHO_GRACE_MS 2000
#define SEEN_EVERY_MS 1000 /* at most this often a job's "last seen" time is written */

const char *jm_job_state_name(jm_job_state s)
{
    static const char *const n[] = {"pending", "running", "paused", "finished", "stopped", "failed", "canceled"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

const char *jm_task_state_name(jm_task_state s)
{
    static const char *const n[] = {"starting", "running", "finished", "failed", "killed"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

jm_job *jm_job_find(jm *d, int64_t id)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        if (j->id == id)
            return j;
    return NULL;
}

/* What one attempt of a task holds: its pipes, its log file, its worker's connection (detached: it no
 * longer speaks for the task), its last report. */
static void task_release(jm_task *k)
{
    if (k->out_fd >= 0)
        close(k->out_fd);
    if (k->err_fd >= 0)
        close(k->err_fd);
    if (k->log)
        fclose(k->log);
    if (k->results)
        fclose(k->results);
    k->results = NULL;
    if (k->ctl)
        k->ctl->job_id = 0, k->ctl->task = -1;
    json_decref(k->metrics);
    k->out_fd = k->err_fd = -1;
    k->log = NULL;
    k->ctl = NULL;
    k->metrics = NULL;
}

void jm_job_free(jm_job *j)
{
    if (!j)
        return;
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if (k->listen_fd >= 0)
            close(k->listen_fd);
        if (k->has_cg) { /* only when the daemon exits with live jobs: one try, the next start removes the rest */
            sage__cgroup_kill(&k->cg);
            sage__cgroup_remove(&k->cg, NULL, 0);
        }
        task_release(k);
    }
    free(j->tasks);
    if (j->assign)
        sage__assign_free(j->assign, j->reqs, j->nreqs);
    free(j->reqs);
    free(j->fail_at);
    jm_ckpt_free(j);
    json_decref(j->doc);
    json_decref(j->spec);
    free(j);
}

void jm_job_kill(jm *d, jm_job *j) { d->launcher->stop(d, j); }

void jm_job_fail(jm *d, jm_job *j, int prio, int code, const char *fmt, ...)
{
    if (!j->cancel_requested && (!j->failed || prio > j->err_prio)) {
        j->failed = 1;
        j->err_prio = prio;
        j->err_code = code < 0 ? code : SAGE_EUSER;
        va_list ap;
        va_start(ap, fmt);
        sage__vfmt(j->error, sizeof j->error, fmt, ap);
        va_end(ap);
        sage__utf8_clean(j->error, strlen(j->error)); /* program output inside: must stay valid JSON text */
        jm_log(d, "job %lld failed: %s", (long long)j->id, j->error);
    }
    if (prio <= JM_PRIO_GONE && j->err_prio <= JM_PRIO_GONE) {
        if (!j->kill_at_ms)
            j->kill_at_ms = sage__mono_ms() + ECHO_GRACE_MS;
        return;
    }
    jm_job_kill(d, j);
}

int jm_job_start_tasks(jm *d, jm_job *j)
{
    char err[4096];
    int rc = 0;
    int paused = j->state == JJ_PAUSED; /* a restart of a paused job: its new workers are told at their hello */
    j->state = paused ? JJ_PAUSED : JJ_RUNNING;
    j->pending_reason[0] = 0;
    j->seen_wall_ms = sage__wall_ms();
    if (!j->restarts) /* a restarted job keeps its start */
        j->started_ms = j->seen_wall_ms;
    sage__store_job_state(d->store, j->id, jm_job_state_name(j->state), "", j->started_ms);
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if ((rc = d->launcher->spawn(d, j, k, err, sizeof err)) != 0) {
            jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ESYS, "operator \"%s\" instance %d could not start: %s", k->op,
                        k->instance, err);
            break;
        }
        /* the listener now lives in the worker; ours is no longer needed */
        if (k->listen_fd >= 0) {
            close(k->listen_fd);
            k->listen_fd = -1;
        }
    }
    jm_log(d, "job %lld \"%s\" started: %zu tasks (%s launcher)", (long long)j->id, j->name, j->ntasks,
           d->launcher->name);
    return rc;
}

/* The job's end, in whatever state: records, answers, then the pending jobs' turn. */
static void job_end(jm *d, jm_job *j)
{
    jm_job_state st = j->failed             ? JJ_FAILED
                      : j->cancel_requested ? JJ_CANCELED
                      : j->stop_requested   ? JJ_STOPPED
                                            : JJ_FINISHED;
    j->state = st;
    for (size_t t = 0; t < j->ntasks; t++) /* a task that failed only as an echo of the job's failure was stopped by
                                            * it: "killed", as the ones we killed */
        if (j->tasks[t].state == JT_FAILED && j->tasks[t].echo && (j->err_prio > JM_PRIO_ECHO || j->cancel_requested))
            j->tasks[t].state = JT_KILLED;
    if (j->ft.strategy != SAGE__FT_NONE) { /* kept for the views of the ended job */
        json_t *ft = json_object();
        jm_ft_view(j, ft, sage__mono_ms());
        char path[PATH_MAX + 32], err[512] = "out of memory";
        sage__fmt(path, sizeof path, "%s/fault_tolerance.json", j->dir);
        if (!ft || jm_private_dump(path, ft, JSON_COMPACT, err, sizeof err) != 0)
            jm_log(d, "job %lld: could not write %s: %s", (long long)j->id, path, err);
        json_decref(ft);
    }
    jm_ckpt_end(d, j);
    sage__task_row *rows = calloc(j->ntasks ? j->ntasks : 1, sizeof *rows);
    for (size_t t = 0; t < j->ntasks; t++) {
        sage__task_row one, *r = rows ? &rows[t] : &one;
        jm_task_row(d, j, &j->tasks[t], r);
        if (sage__store_task_put(d->store, r) != 0)
            jm_log(d, "job %lld: the row of task %zu could not be kept for the job store", (long long)j->id, t);
    }
    if (d->launcher->ended) /* after the rows, which read the cgroups' peaks: the local launcher removes them */
        d->launcher->ended(d, j);
    sage__store_job_state(d->store, j->id, jm_job_state_name(st), j->error, sage__wall_ms());
    if (st == JJ_FAILED)
        sage__store_job_error_code(d->store, j->id, j->err_code);
    jm_log(d, "job %lld \"%s\" %s%s%s", (long long)j->id, j->name, jm_job_state_name(st), j->error[0] ? ": " : "",
           j->error);
    /* the end document from memory (the store writes the same rows meanwhile) */
    sage__job_row row = {.id = j->id, .error_code = st == JJ_FAILED ? j->err_code : 0};
    sage__strlcpy(row.name, j->name, sizeof row.name);
    sage__strlcpy(row.state, jm_job_state_name(st), sizeof row.state);
    sage__strlcpy(row.error, j->error, sizeof row.error);
    json_t *end = jm_job_end_json(d, &row, rows, rows ? j->ntasks : 0);
    free(rows);
    /* the waiting client gets every task's full final metrics from memory (the
     * store keeps them only up to its field size) */
    json_t *tasks = json_object_get(end, "tasks");
    for (size_t t = 0; t < j->ntasks && t < json_array_size(tasks); t++)
        if (j->tasks[t].metrics)
            json_object_set(json_array_get(tasks, t), "metrics", j->tasks[t].metrics);
    for (jm_conn *c = d->conns; c; c = c->next) {
        if (c->fd < 0 || c->job_id != j->id)
            continue;
        if (c->waiting) {
            jm_send_json(c, SAGE__MSG_OK, json_incref(end));
            c->waiting = 0;
        }
    }
    json_decref(end);
    for (jm_job **pp = &d->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    char sock[PATH_MAX + 16];
    for (size_t t = 0; d->data_plane == JM_DATA_UNIX && t < j->ntasks; t++) {
        sage__fmt(sock, sizeof sock, "%s/sock/%d.%d", j->dir, j->tasks[t].chain, j->tasks[t].instance);
        unlink(sock);
    }
    jm_job_free(j);
    if (!d->stop) /* shutting down: nothing new starts */
        jm_jobs_retry_pending(d);
}

/* A failed attempt whose processes are all reaped: 1 if the restart strategy schedules another (the job
 * waits for it, running), 0 if the failure ends the job (exhausted attempts say so in its reason). */
static int schedule_restart(jm *d, jm_job *j)
{
    int failure = j->restarts + 1;
    if (j->err_code == SAGE_ECONFIG) { /* another attempt would fail the same way */
        char last[sizeof j->error];
        sage__strlcpy(last, j->error, sizeof last);
        sage__fmt(j->error, sizeof j->error, "%s (a configuration error: not retried)", last);
        return 0;
    }
    if (sage__ft_may_restart(&j->ft, failure, (double)sage__mono_ms() / 1e3, j->fail_at, &j->nfail)) {
        double delay = sage__ft_delay(&j->ft, failure);
        sage__strlcpy(j->last_failure, j->error, sizeof j->last_failure);
        j->last_code = j->err_code;
        j->last_failure_ms = sage__wall_ms();
        j->failed = j->err_prio = j->err_code = 0;
        j->error[0] = '\0';
        j->kill_at_ms = 0;
        j->restart_at_ms = sage__mono_ms() + (int64_t)(delay * 1000.0 + 0.5);
        jm_log(d, "job %lld: restart %d in %g s after: %s", (long long)j->id, failure, delay, j->last_failure);
        return 1;
    }
    char how[160], last[sizeof j->error];
    sage__ft_describe(&j->ft, how, sizeof how);
    sage__strlcpy(last, j->error, sizeof last);
    int ck = j->ft.strategy == SAGE__FT_CHECKPOINT;
    sage__fmt(j->error, sizeof j->error, "recovery attempts exhausted after %d %s (%s); the last failure: %s",
              j->restarts,
              ck ? (j->restarts == 1 ? "recovery" : "recoveries") : (j->restarts == 1 ? "restart" : "restarts"), how,
              last);
    return 0;
}

/* Every task that runs a chain ended: the job's services (the rest) are told to stop; they end by themselves. */
static void services_maybe_stop(jm_job *j)
{
    if (j->services_told || j->nflow == j->ntasks || j->restart_at_ms)
        return;
    for (size_t t = 0; t < j->nflow; t++)
        if (!(j->tasks[t].pid > 0 && j->tasks[t].exited))
            return;
    j->services_told = 1;
    for (size_t t = j->nflow; t < j->ntasks; t++)
        if (j->tasks[t].ctl)
            jm_send_json(j->tasks[t].ctl, SAGE__MSG_EVENT,
                         json_pack("{s:s,s:s}", "event", "control", "action", "stop"));
}

int jm_job_maybe_end(jm *d, jm_job *j)
{
    services_maybe_stop(j);
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].pid > 0 && !j->tasks[t].exited)
            return 0;
    if (d->launcher->busy && d->launcher->busy(d, j))
        return 0;
    int started = j->ntasks > 0 && j->tasks[0].pid > 0;
    if (!started && !j->failed && !j->cancel_requested && !j->stop_requested)
        return 0;           /* still pending */
    if (j->restart_at_ms) { /* between attempts: only a stop, a cancel or the daemon's own end ends it */
        if (!j->failed && !j->cancel_requested && !j->stop_requested)
            return 0;
        if (j->stop_requested && !j->failed && !j->cancel_requested) { /* the failed attempt is the result */
            j->failed = 1;
            j->err_code = j->last_code;
            sage__strlcpy(j->error, j->last_failure, sizeof j->error);
        }
    } else if (j->failed && started && !j->cancel_requested && !j->stop_requested && !d->stop &&
               j->ft.strategy != SAGE__FT_NONE && schedule_restart(d, j)) {
        return 0;
    }
    job_end(d, j);
    return 1;
}

/* The nodes the failed attempt lost, added to j->avoid: a task's node when its worker was silent past its
 * deadline, or when its control connection closed without a result while its process (on Slurm, its srun)
 * still ran, until we killed it. A worker that crashed is reaped with its status at once (its srun ends
 * with it), so a crash does not count: a host that is gone never reports one. */
static void lost_nodes(jm *d, jm_job *j)
{
    for (size_t t = 0; t < j->ntasks; t++) {
        const jm_task *k = &j->tasks[t];
        if (!k->node[0] || !(k->silent || (k->conn_lost && k->killed_by_us)))
            continue;
        int known = 0;
        for (int a = 0; a < j->navoid && !known; a++)
            known = strcmp(j->avoid[a], k->node) == 0;
        if (known || j->navoid >= JM_AVOID_MAX)
            continue;
        sage__strlcpy(j->avoid[j->navoid++], k->node, sizeof j->avoid[0]);
        jm_log(d, "job %lld \"%s\": node %s is avoided from now on (operator \"%s\" instance %d %s)", (long long)j->id,
               j->name, k->node, k->op, k->instance,
               k->silent ? "was silent past its deadline" : "lost its connection while its process ran");
    }
}

/* The restart strategy's delay is over: the same tasks start again, from their sources' beginning (or the
 * last committed checkpoint), in fresh processes and cgroups; each collect sink's results file starts empty
 * again. On a launcher that places again (Slurm) the tasks are placed again first, away from lost nodes. */
static void restart_job(jm *d, jm_job *j)
{
    j->restart_at_ms = 0;
    j->restarts++;
    if (d->launcher->restarting)
        lost_nodes(d, j);
    if (d->launcher->ended) /* the last attempt's groups go (their peaks are in no row: the attempt failed) */
        d->launcher->ended(d, j);
    if (d->launcher->restarting)
        d->launcher->restarting(d, j);
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        task_release(k);
        jm_task keep = *k;
        *k = (jm_task){.index = keep.index,
                       .chain = keep.chain,
                       .instance = keep.instance,
                       .listen_fd = -1,
                       .out_fd = -1,
                       .err_fd = -1,
                       .has_inputs = keep.has_inputs,
                       .producers = keep.producers,
                       .mem_limit = keep.mem_limit,
                       .slurm_step = -1,
                       .service = keep.service};
        memcpy(k->op, keep.op, sizeof k->op);
        memcpy(k->cpus, keep.cpus, sizeof k->cpus);
        memcpy(k->gpus, keep.gpus, sizeof k->gpus);
        memcpy(k->node, keep.node, sizeof k->node);
    }
    j->running = 0;
    j->peers_sent = 0;
    j->services_told = 0;
    if (j->ck.on || j->ck.restore_from[0]) { /* from the last committed checkpoint (or where the job started):
                                                 * the workers read it from spec.json */
        const char *from = jm_ckpt_recover(d, j);
        sage__strlcpy(j->ck.restore, from ? from : "", sizeof j->ck.restore);
        char err[512];
        if (jm_write_spec(d, j, err, sizeof err) != 0) {
            jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "recovery: %s", err);
            jm_job_maybe_end(d, j);
            return;
        }
        jm_log(d, "job %lld \"%s\": recovery %d from %s", (long long)j->id, j->name, j->restarts,
               from ? from : "its beginning (no checkpoint committed)");
    }
    jm_log(d, "job %lld \"%s\": restart %d of its tasks", (long long)j->id, j->name, j->restarts);
    if (d->launcher->restarting) {
        jm_job_place_again(d, j);
        jm_job_maybe_end(d, j);
        return;
    }
    for (size_t t = 0; t < j->ntasks; t++)
        if (jm_task_listen(d, j, &j->tasks[t]) != 0) {
            jm_job_maybe_end(d, j); /* the failure ends it: nothing of this attempt runs */
            return;
        }
    jm_job_start_tasks(d, j);
    jm_job_maybe_end(d, j);
}

int jm_job_control(jm *d, int64_t id, const char *action, int stop_timeout_ms, char *err, size_t err_len)
{
    jm_job *j = jm_job_find(d, id);
    if (!j) { /* the caller asks the store whether it ended */
        sage__fmt(err, err_len, "no job %lld", (long long)id);
        return SAGE_ENOTFOUND;
    }
    jm_log(d, "job %lld: %s requested", (long long)id, action);
    if (strcmp(action, "cancel") == 0) {
        j->cancel_requested = 1;
        jm_job_kill(d, j);
        jm_job_maybe_end(d, j);
        return 0;
    }
    if (j->state == JJ_PENDING) {
        if (strcmp(action, "stop") == 0) {
            j->stop_requested = 1;
            jm_job_maybe_end(d, j); /* its end releases what the launcher asked for */
            return 0;
        }
        sage__fmt(err, err_len, "job %lld is pending: only stop and cancel apply", (long long)id);
        return SAGE_ESTATE;
    }
    if (strcmp(action, "stop") == 0) {
        /* graceful first: sources stop, what is in flight drains; what still runs after the grace is killed */
        int grace = stop_timeout_ms >= 0 ? stop_timeout_ms : jm_stop_timeout_ms(d);
        int64_t at = sage__mono_ms() + grace;
        j->stop_requested = 1;
        if (j->restart_at_ms) { /* between attempts: nothing runs to drain */
            jm_job_maybe_end(d, j);
            return 0;
        }
        jm_workers_control(j, "stop");
        if (!j->stop_at_ms || at < j->stop_at_ms) {
            j->stop_at_ms = at;
            j->stop_grace_ms = grace;
        }
    } else if (strcmp(action, "pause") == 0) {
        if (j->state != JJ_RUNNING) {
            sage__fmt(err, err_len, "job %lld is %s, not running", (long long)id, jm_job_state_name(j->state));
            return SAGE_ESTATE;
        }
        j->state = JJ_PAUSED;
        jm_workers_control(j, "pause");
        sage__store_job_state(d->store, id, "paused", NULL, 0);
    } else if (strcmp(action, "resume") == 0) {
        if (j->state != JJ_PAUSED) {
            sage__fmt(err, err_len, "job %lld is %s, not paused", (long long)id, jm_job_state_name(j->state));
            return SAGE_ESTATE;
        }
        j->state = JJ_RUNNING;
        jm_workers_control(j, "resume");
        sage__store_job_state(d->store, id, "running", NULL, 0);
    }
    return 0;
}

/* ---- a task's process ended ---- */

static void describe_exit(const jm_task *k, char *out, size_t len)
{
    char mem[32];
    sage__format_bytes(k->mem_limit, mem, sizeof mem);
    if (k->has_cg && k->mem_limit && sage__cgroup_oom_killed(&k->cg))
        sage__fmt(out, len, "operator \"%s\" instance %d exceeded its memory limit of %s", k->op, k->instance, mem);
    else if (WIFSIGNALED(k->status) && k->crash_op[0] && strcmp(k->crash_op, k->op) != 0)
        sage__fmt(out, len, "operator \"%s\" instance %d (pid %d) crashed with signal %d (%s), in the task of \"%s\"",
                  k->crash_op, k->instance, (int)jm_task_pid(k), WTERMSIG(k->status), strsignal(WTERMSIG(k->status)),
                  k->op);
    else if (WIFSIGNALED(k->status))
        sage__fmt(out, len, "operator \"%s\" instance %d (pid %d) was killed by signal %d (%s)", k->op, k->instance,
                  (int)k->pid, WTERMSIG(k->status), strsignal(WTERMSIG(k->status)));
    else
        sage__fmt(out, len, "operator \"%s\" instance %d (pid %d) exited with status %d", k->op, k->instance,
                  (int)k->pid, WEXITSTATUS(k->status));
}

/* A task that did not succeed and was not killed by us: why, and how much that explains. */
static void task_failed(jm *d, jm_job *j, jm_task *k)
{
    char why[1024], tail[1200];
    int prio, code = SAGE_EUSER; /* a crash or an exit without a report: the user program's failure */
    int status = k->status;
    if (!k->reported_done && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        sage__fmt(why, sizeof why,
                  "operator \"%s\" instance %d (pid %d) exited with status 0 without running its task "
                  "(did the program reach sage_env_execute with the same pipeline?)",
                  k->op, k->instance, (int)k->pid);
        prio = JM_PRIO_ROOT;
    } else if (k->reported_done && !k->done_ok && k->error[0]) {
        sage__strlcpy(why, k->error, sizeof why);
        prio = k->done_code == SAGE_ECANCELED || k->done_code == SAGE_EIO ? JM_PRIO_ECHO : JM_PRIO_USER;
        code = k->done_code; /* what the operator failed with, as it would embedded */
    } else {
        describe_exit(k, why, sizeof why);
        if (k->has_cg && k->mem_limit && sage__cgroup_oom_killed(&k->cg))
            code = SAGE_ENOMEM;
        prio = WIFSIGNALED(status) || (k->has_cg && k->mem_limit && sage__cgroup_oom_killed(&k->cg))
                   ? JM_PRIO_ROOT
                   : JM_PRIO_ECHO;
    }
    k->echo = prio == JM_PRIO_ECHO;
    if (d->launcher->task_failed)
        d->launcher->task_failed(d, j, k, why); /* before the failure kills and releases anything */
    jm_output_tail(k, tail, sizeof tail);
    if (tail[0] && prio != JM_PRIO_USER)
        jm_job_fail(d, j, prio, code, "%s; last lines of its stderr:\n%s", why, tail);
    else
        jm_job_fail(d, j, prio, code, "%s", why);
}

void jm_on_child_exit(jm *d, pid_t pid, int status)
{
    if (jm_cmd_reaped(d, pid, status))
        return;
    for (jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; pid > 0 && t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            if (k->pid != pid || k->exited)
                continue;
            k->exited = 1;
            k->status = status;
            j->running--;
            jm_task_kill(k); /* what its process started dies with it */
            /* what it wrote and said before it died is still buffered: read it first */
            jm_output_drain(d, j, k);
            if (k->ctl && k->ctl->fd >= 0)
                jm_conn_drain(d, k->ctl); /* its last report may still sit in the socket */
            /* success means: it said it finished, and then exited 0 (a program that ends
             * before reaching sage_env_execute would otherwise look finished and leave its
             * consumers waiting for ever) */
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && k->reported_done && k->done_ok)
                k->state = JT_FINISHED;
            else if (k->silent) /* killed for its silence: the job's failure names it already */
                k->state = JT_FAILED;
            else if (k->killed_by_us || j->cancel_requested)
                k->state = JT_KILLED;
            else {
                k->state = JT_FAILED;
                task_failed(d, j, k);
            }
            jm_job_maybe_end(d, j);
            return;
        }
}

/* A stop whose grace is over: kill what still runs, and say so in the job's reason (it ends "stopped"),
 * naming what had not ended, the one heard from least recently first (a stuck worker, rather than the
 * producers blocked on it). */
static void force_stop(jm *d, jm_job *j, int64_t now)
{
    enum { NAMED = 3 };
    const jm_task *named[NAMED];
    size_t left = 0, n = 0;
    for (size_t t = 0; t < j->ntasks; t++) {
        const jm_task *k = &j->tasks[t];
        if (k->pid <= 0 || k->exited)
            continue;
        left++;
        size_t at = n < NAMED ? n++ : NAMED;
        while (at > 0 && named[at - 1]->seen_ms > k->seen_ms) { /* insertion by last heard, oldest first */
            if (at < NAMED)
                named[at] = named[at - 1];
            at--;
        }
        if (at < NAMED)
            named[at] = k;
    }
    if (!left)
        return;
    if (!j->failed) {
        size_t o = (size_t)snprintf(j->error, sizeof j->error, "stop forced after %d ms: ", j->stop_grace_ms);
        for (size_t i = 0; i < n && o < sizeof j->error; i++)
            o += (size_t)snprintf(j->error + o, sizeof j->error - o,
                                  "%soperator \"%s\" instance %d on %s (pid %d, last heard from %lld ms ago)",
                                  i ? ", " : "", named[i]->op, named[i]->instance, d->launcher->task_host(d, named[i]),
                                  (int)named[i]->pid, (long long)(now - named[i]->seen_ms));
        if (o < sizeof j->error)
            snprintf(j->error + o, sizeof j->error - o, "%s had not ended; what was in flight is lost",
                     left > n ? " and others" : "");
    }
    jm_log(d, "job %lld: stop forced after %d ms: %zu task(s) had not ended", (long long)j->id, j->stop_grace_ms, left);
    jm_job_kill(d, j);
}

static int64_t sooner(int64_t next, int64_t at, int64_t now)
{
    int64_t left = at > now ? at - now : 0;
    return next < 0 || left < next ? left : next;
}

/* The last time the job was known alive goes to the store, at most once every SEEN_EVERY_MS: if the daemon
 * dies, that is the job's end (a pending job is alive as long as we are). */
static int64_t store_seen(jm *d, jm_job *j, int64_t now)
{
    int64_t seen = j->state == JJ_PENDING ? sage__wall_ms() : j->seen_wall_ms;
    if (seen <= j->seen_stored_ms)
        return -1;
    if (now - j->seen_store_at < SEEN_EVERY_MS)
        return j->seen_store_at + SEEN_EVERY_MS;
    sage__store_job_seen(d->store, j->id, seen);
    j->seen_stored_ms = seen;
    j->seen_store_at = now;
    return now + SEEN_EVERY_MS;
}

int jm_jobs_timers(jm *d, int64_t now)
{
    jm_streams_pump(d); /* before poll: a connection with bytes queued is polled for room */
    int64_t next = jm_workers_timers(d, now);
    for (jm_job *j = d->jobs; j; j = j->next) {
        int64_t seen_at = store_seen(d, j, now);
        if (seen_at >= 0)
            next = sooner(next, seen_at, now);
        if (j->kill_at_ms) {
            if (j->kill_at_ms <= now || j->err_prio > JM_PRIO_GONE || j->cancel_requested) {
                j->kill_at_ms = 0;
                jm_job_kill(d, j);
            } else {
                next = sooner(next, j->kill_at_ms, now);
            }
        }
        if (j->restart_at_ms) {
            if (j->restart_at_ms <= now) {
                restart_job(d, j);
                return 0; /* the job may have ended (the list changed): the next turn looks again */
            }
            next = sooner(next, j->restart_at_ms, now);
        }
        if (j->stop_at_ms) {
            if (j->stop_at_ms <= now) {
                j->stop_at_ms = 0;
                force_stop(d, j, now);
            } else {
                next = sooner(next, j->stop_at_ms, now);
            }
        }
        int64_t ck = jm_ckpt_timers(d, j, now);
        if (ck >= 0)
            next = sooner(next, ck, now);
    }
    return (int)next;
}

void jm_jobs_leftovers(jm *d)
{
    size_t n, removed = 0;
    const int64_t *ids = sage__store_unfinished(d->store, &n);
    for (size_t i = 0; i < n; i++) {
        char dir[PATH_MAX], path[PATH_MAX + 300];
        sage__fmt(dir, sizeof dir, "%s/jobs/%lld/sock", d->home, (long long)ids[i]);
        DIR *dp = opendir(dir);
        struct dirent *e;
        while (dp && (e = readdir(dp)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            sage__fmt(path, sizeof path, "%s/%s", dir, e->d_name);
            removed += unlink(path) == 0;
        }
        if (dp) {
            closedir(dp);
            rmdir(dir);
        }
    }
    if (removed)
        jm_log(d, "removed %zu socket file(s) of %zu job(s) the last JobManager left unfinished", removed, n);
}

void jm_jobs_shutdown(jm *d)
{
    for (jm_job *j = d->jobs; j; j = j->next) {
        if (!j->failed && !j->cancel_requested) {
            j->failed = 1;
            sage__fmt(j->error, sizeof j->error, "the JobManager stopped while the job was running");
        }
        jm_job_kill(d, j);
    }
    /* the ones with nothing to reap end now; the others as their processes are reaped */
    for (jm_job *j = d->jobs; j;) {
        jm_job *next = j->next;
        jm_job_maybe_end(d, j);
        j = next;
    }
}
