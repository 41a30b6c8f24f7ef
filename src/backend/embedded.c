/* backend/embedded.c - the default backend: every task a thread of this process, restarted or recovered as configured.
 *
 * Design note. Without "fault_tolerance" (the default) a job runs once: its
 * failure is the env's result. With the restart or checkpoint strategy a
 * supervisor thread owns the run: it waits for each attempt (a sage__job),
 * and when one failed (not stopped, not canceled) and the strategy still
 * allows it, waits the strategy's delay (a stop or cancel cuts it short) and
 * starts the next attempt, on the same plan. The restart strategy starts it
 * from the beginning: the built-in sources start over, the collectors and
 * file sinks are emptied, user sinks see records again (at-least-once). The
 * checkpoint strategy also takes a checkpoint every checkpoint_interval
 * while it waits (ckpt_run.h), and starts the next attempt from the last
 * committed one. The attempts' jobs are swapped under `mu`, which every
 * call from another thread takes (stop, cancel, state, metrics), and under
 * the checkpoints' take_mu, which a savepoint holds while it uses the job;
 * a retired attempt is freed by the supervisor once it is swapped out. The
 * final result and its message stay in the supervisor's own error slot
 * until the env's thread collects them in wait (b->err belongs to that
 * thread).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/ckpt_run.h"
#include "util/time.h"

typedef struct emb {
    sage__backend b;
    /* the restart strategy (only when cfg->ft.strategy is restart) */
    int supervised;
    pthread_t sup;
    int sup_started;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic: the delay between attempts, and "done" */
    int done;          /* the supervisor settled the final result */
    int stop_req, cancel_req;
    int restarts;
    sage__err final; /* the final error (supervisor's) */
    int rc;
    double *fail_at; /* failure_rate: the times of recent failures (seconds, monotonic) */
    int nfail;
    int ck_init; /* ck was set up (strategy checkpoint or restore_from) */
    sage__ckrun ck;
} emb;

/* A job for the plan, built and started; NULL with the reason in err. */
static sage__job *attempt_start(sage__backend *b, const sage__restore *from, sage__err *err)
{
    sage__job *job = sage__job_new(b->plan, b->cfg, b->plan->ntasks, b->plan->ntasks);
    if (!job) {
        sage__errf(err, SAGE_ENOMEM, "out of memory starting the job");
        return NULL;
    }
    job->restore = from;
    int rc = sage__build_all_tasks(job, 1);
    if (rc != 0) {
        sage__errf(err, rc, "building the job's tasks: %s", sage_strerror(rc));
        sage__job_free(job);
        return NULL;
    }
    if (sage__job_start(job, err) != 0) {
        sage__job_free(job);
        return NULL;
    }
    return job;
}

/* Whether the strategy allows one more restart after failure number k (1 = the first). */
static int may_restart(emb *e, int k)
{
    return sage__ft_may_restart(&e->b.cfg->ft, k, (double)sage__mono_ns() / 1e9, e->fail_at, &e->nfail);
}

/* Wait for an attempt's end; with the checkpoint strategy, take a checkpoint every interval meanwhile. */
static int wait_attempt(emb *e, sage__job *job)
{
    const sage__config *cfg = e->b.cfg;
    if (cfg->ft.strategy != SAGE__FT_CHECKPOINT)
        return sage__job_wait(job, -1);
    int interval_ms = (int)(cfg->ft.checkpoint_interval * 1000.0 + 0.5);
    for (;;) {
        int rc = sage__job_wait(job, interval_ms);
        if (rc != SAGE_ETIMEDOUT)
            return rc;
        char why[1024];
        pthread_mutex_lock(&e->ck.take_mu);
        int trc = sage__ckrun_take(&e->ck, job, NULL, -1, why, sizeof why);
        pthread_mutex_unlock(&e->ck.take_mu);
        if (trc != 0 && trc != SAGE_ECANCELED) /* abandoned: the job goes on, the next one may succeed */
            fprintf(stderr, "sage: job \"%s\": %s\n", e->b.g->name, why);
    }
}

static void *supervise(void *arg)
{
    emb *e = arg;
    sage__backend *b = &e->b;
    const sage__ft_config *ft = &b->cfg->ft;
    int ckpt = ft->strategy == SAGE__FT_CHECKPOINT;
    for (int failures = 0;;) {
        pthread_mutex_lock(&e->mu);
        sage__job *job = b->job;
        pthread_mutex_unlock(&e->mu);
        int rc = wait_attempt(e, job);
        pthread_mutex_lock(&e->mu);
        int failed = rc != 0 && sage__job_state(job) == SAGE_JOB_FAILED;
        int restart = failed && !e->stop_req && !e->cancel_req && may_restart(e, ++failures);
        if (!restart) {
            if (failed && !e->stop_req && !e->cancel_req) {
                char how[160];
                sage__ft_describe(ft, how, sizeof how);
                const char *noun = ckpt ? (e->restarts == 1 ? "recovery" : "recoveries")
                                        : (e->restarts == 1 ? "restart" : "restarts");
                sage__errf(&e->final, job->err.code ? job->err.code : rc,
                           "recovery attempts exhausted after %d %s (%s); the last failure: %s", e->restarts, noun, how,
                           job->err.msg);
            } else if (job->err.code) {
                sage__errf(&e->final, job->err.code, "%s", job->err.msg);
            }
            if (ckpt && sage__job_state(job) == SAGE_JOB_FINISHED) { /* its checkpoints are no longer needed */
                pthread_mutex_unlock(&e->mu);                        /* take_mu comes first */
                pthread_mutex_lock(&e->ck.take_mu);
                sage__ckpt_remove(e->ck.rundir);
                pthread_mutex_unlock(&e->ck.take_mu);
                pthread_mutex_lock(&e->mu);
            }
            e->rc = rc;
            e->done = 1;
            pthread_cond_broadcast(&e->cv);
            pthread_mutex_unlock(&e->mu);
            return NULL;
        }
        /* the strategy's delay; a stop or cancel ends the job instead */
        struct timespec dl;
        double delay = sage__ft_delay(ft, e->restarts + 1);
        sage__deadline(&dl, (int)(delay * 1000.0 + 0.5));
        while (!e->stop_req && !e->cancel_req)
            if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) == ETIMEDOUT)
                break;
        if (e->stop_req || e->cancel_req) {
            pthread_mutex_unlock(&e->mu);
            continue; /* settles as above: the failed attempt is the result */
        }
        pthread_mutex_unlock(&e->mu);
        sage__err err = {0};
        sage__job *next = NULL;
        if (e->ck_init)
            pthread_mutex_lock(&e->ck.take_mu); /* no savepoint uses the job while it is retired */
        char why[1024];
        int rrc = ckpt ? sage__ckrun_recover(&e->ck, why, sizeof why) : 0;
        if (rrc != 0)
            sage__errf(&err, rrc, "no checkpoint to recover from: %s", why);
        else
            next = attempt_start(b, e->ck_init ? sage__ckrun_restore(&e->ck) : NULL, &err);
        pthread_mutex_lock(&e->mu);
        if (!next) {
            if (e->ck_init)
                pthread_mutex_unlock(&e->ck.take_mu);
            sage__errf(&e->final, err.code, "restart %d could not start: %s", e->restarts + 1, err.msg);
            e->rc = err.code;
            e->done = 1;
            pthread_cond_broadcast(&e->cv);
            pthread_mutex_unlock(&e->mu);
            return NULL;
        }
        e->restarts++;
        b->job = next;
        pthread_mutex_unlock(&e->mu);
        sage__job_free(job); /* swapped out: no other thread reaches it any more */
        if (e->ck_init)
            pthread_mutex_unlock(&e->ck.take_mu);
    }
}

static int emb_submit(sage__backend *b)
{
    emb *e = (emb *)b;
    int rc = sage__backend_compile(b);
    if (rc != 0)
        return rc;
    e->supervised = b->cfg->ft.strategy != SAGE__FT_NONE;
    if ((b->cfg->ft.strategy == SAGE__FT_CHECKPOINT || b->cfg->restore_from[0]) && b->g->has_binding)
        return sage__errf(b->err, SAGE_EUNSUPPORTED,
                          "config key \"%s\": checkpoints are not built for a language binding's pipelines yet (their "
                          "functions keep state in objects the engine cannot save); use \"strategy\": \"restart\"",
                          b->cfg->restore_from[0] ? "restore_from" : "fault_tolerance");
    if (b->cfg->ft.strategy == SAGE__FT_CHECKPOINT || b->cfg->restore_from[0]) {
        e->ck_init = 1;
        if ((rc = sage__ckrun_init(&e->ck, b->plan, b->cfg, b->err)) != 0)
            return rc;
    }
    const sage__restore *from = e->ck_init ? sage__ckrun_restore(&e->ck) : NULL;
    if (!e->supervised) {
        sage__job *job = sage__job_new(b->plan, b->cfg, b->plan->ntasks, b->plan->ntasks);
        if (!job)
            return sage__errf(b->err, SAGE_ENOMEM, "out of memory starting the job");
        job->restore = from;
        b->job = job;
        rc = sage__build_all_tasks(job, 1);
        if (rc != 0) {
            job->ended = 1;
            job->rc = rc;
            atomic_store(&job->state, SAGE_JOB_FAILED);
            return sage__errf(b->err, rc, "building the job's tasks: %s", sage_strerror(rc));
        }
        return sage__job_start(job, b->err);
    }
    if (b->cfg->ft.restart == SAGE__RESTART_FAILURE_RATE &&
        !(e->fail_at = calloc((size_t)b->cfg->ft.max_failures_per_interval + 1, sizeof *e->fail_at)))
        return sage__errf(b->err, SAGE_ENOMEM, "out of memory starting the job");
    sage__job *job = attempt_start(b, from, b->err); /* a job that cannot start is not restarted: it never ran */
    if (!job)
        return b->err->code;
    b->job = job;
    int pe = pthread_create(&e->sup, NULL, supervise, e);
    if (pe != 0) {
        sage__job_cancel(job);
        sage__job_wait(job, -1);
        return sage__errf(b->err, SAGE_ESYS, "starting the job's supervisor thread: %s", strerror(pe));
    }
    e->sup_started = 1;
    return 0;
}

static int emb_wait(sage__backend *b, int timeout_ms)
{
    emb *e = (emb *)b;
    if (!e->supervised) {
        int rc = sage__job_wait(b->job, timeout_ms);
        if (b->job->ended && b->job->err.code) /* (a job may fail with SAGE_ETIMEDOUT too: a call that timed out) */
            sage__errf(b->err, b->job->err.code, "%s", b->job->err.msg);
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    if (timeout_ms < 0) {
        while (!e->done)
            pthread_cond_wait(&e->cv, &e->mu);
    } else {
        struct timespec dl;
        sage__deadline(&dl, timeout_ms);
        while (!e->done)
            if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) == ETIMEDOUT)
                break;
    }
    int done = e->done;
    pthread_mutex_unlock(&e->mu);
    if (!done)
        return SAGE_ETIMEDOUT;
    if (e->sup_started) {
        pthread_join(e->sup, NULL);
        e->sup_started = 0;
    }
    if (e->final.code)
        sage__errf(b->err, e->final.code, "%s", e->final.msg);
    return e->rc;
}

/* Stop and cancel reach the current attempt, and keep a failed one from restarting. */
static int emb_control(sage__backend *b, int cancel)
{
    emb *e = (emb *)b;
    if (e->supervised) {
        pthread_mutex_lock(&e->mu);
        if (cancel)
            e->cancel_req = 1;
        else
            e->stop_req = 1;
        pthread_cond_broadcast(&e->cv);
    }
    if (cancel)
        sage__job_cancel(b->job);
    else
        sage__job_stop(b->job);
    if (e->supervised)
        pthread_mutex_unlock(&e->mu);
    return 0;
}

static int emb_stop(sage__backend *b) { return emb_control(b, 0); }
static int emb_cancel(sage__backend *b) { return emb_control(b, 1); }

static int emb_savepoint(sage__backend *b, const char *dir, int timeout_ms)
{
    emb *e = (emb *)b;
    if (b->cfg->ft.strategy != SAGE__FT_CHECKPOINT)
        return sage__errf(b->err, SAGE_ESTATE,
                          "sage_env_stop_with_savepoint: savepoints need the checkpoint strategy (config "
                          "\"fault_tolerance\": {\"strategy\": \"checkpoint\"})");
    if (!dir || !*dir)
        return sage__errf(b->err, SAGE_EINVAL, "sage_env_stop_with_savepoint: no directory given");
    char why[1024];
    pthread_mutex_lock(&e->ck.take_mu);
    pthread_mutex_lock(&e->mu);
    sage__job *job = b->job;
    int running = !e->done && !e->stop_req && !e->cancel_req;
    pthread_mutex_unlock(&e->mu);
    int rc = running ? sage__ckrun_take(&e->ck, job, dir, timeout_ms < 0 ? INT_MAX : timeout_ms, why, sizeof why)
                     : SAGE_ECANCELED;
    if (rc == 0) { /* its sources stop at the savepoint's barrier; nothing may restart it */
        pthread_mutex_lock(&e->mu);
        e->stop_req = 1;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
    }
    pthread_mutex_unlock(&e->ck.take_mu);
    if (rc == SAGE_ECANCELED)
        return sage__errf(b->err, SAGE_ESTATE, "sage_env_stop_with_savepoint: the job is not running");
    if (rc != 0)
        return sage__errf(b->err, rc, "sage_env_stop_with_savepoint: %s", why);
    return 0;
}

static void emb_ckpt_stats(sage__backend *b, sage_checkpoint_stats *out)
{
    emb *e = (emb *)b;
    pthread_mutex_lock(&e->ck.stats_mu);
    *out = e->ck.stats;
    pthread_mutex_unlock(&e->ck.stats_mu);
}

static sage_job_state emb_state(const sage__backend *b)
{
    emb *e = (emb *)b;
    if (!e->supervised)
        return sage__job_state(b->job);
    pthread_mutex_lock(&e->mu);
    /* between attempts the job is still running: it will run again */
    sage_job_state st = e->done ? sage__job_state(b->job) : SAGE_JOB_RUNNING;
    pthread_mutex_unlock(&e->mu);
    return st;
}

static int emb_metric(sage__backend *b, const sage__op *op, int instance, const char *name, sage_metric *out)
{
    emb *e = (emb *)b;
    if (e->supervised)
        pthread_mutex_lock(&e->mu);
    int rc = sage__job_metric(b->job, op, instance, name, out);
    if (e->supervised)
        pthread_mutex_unlock(&e->mu);
    return rc;
}

static void emb_destroy(sage__backend *b)
{
    emb *e = (emb *)b;
    if (b->job) {
        emb_control(b, 1);
        if (e->sup_started)
            pthread_join(e->sup, NULL);
        else
            sage__job_wait(b->job, -1);
        sage__job_free(b->job);
    }
    sage__ckrun_free(&e->ck, 0);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->fail_at);
    free(e);
}

static const sage__backend_ops embedded_ops = {
    .name = "embedded",
    .places = 1,
    .submit = emb_submit,
    .wait = emb_wait,
    .stop = emb_stop,
    .cancel = emb_cancel,
    .state = emb_state,
    .metric = emb_metric,
    .savepoint = emb_savepoint,
    .ckpt_stats = emb_ckpt_stats,
    .destroy = emb_destroy,
};

sage__backend *sage__backend_embedded(void)
{
    emb *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (sage__ckrun_locks(&e->ck) != 0)
        goto fail;
    if (pthread_mutex_init(&e->mu, NULL) != 0 || sage__cond_init_mono(&e->cv) != 0) {
        sage__ckrun_free(&e->ck, 0);
        goto fail;
    }
    e->b.ops = &embedded_ops;
    return &e->b;
fail:
    free(e);
    return NULL;
}
