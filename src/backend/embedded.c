/* backend/embedded.c - the default backend: every task a thread of this process, restarted as configured.
 *
 * Design note. Without "fault_tolerance" (the default) a job runs once: its
 * failure is the env's result. With the restart strategy a supervisor thread
 * owns the run: it waits for each attempt (a sage__job), and when one failed
 * (not stopped, not canceled) and the strategy still allows it, waits the
 * strategy's delay (a stop or cancel cuts it short) and starts the next
 * attempt from the beginning, on the same plan: the built-in sources start
 * over, the collectors and file sinks are emptied, user sinks see records
 * again (at-least-once). The attempts' jobs are swapped under `mu`, which
 * every call from another thread takes (stop, cancel, state, metrics); a
 * retired attempt is freed by the supervisor once it is swapped out. The
 * final result and its message stay in the supervisor's own error slot until
 * the env's thread collects them in wait (b->err belongs to that thread).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
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
} emb;

/* A job for the plan, built and started; NULL with the reason in err. */
static sage__job *attempt_start(sage__backend *b, sage__err *err)
{
    sage__job *job = sage__job_new(b->plan, b->cfg, b->plan->ntasks, b->plan->ntasks);
    if (!job) {
        sage__errf(err, SAGE_ENOMEM, "out of memory starting the job");
        return NULL;
    }
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

static void *supervise(void *arg)
{
    emb *e = arg;
    sage__backend *b = &e->b;
    const sage__ft_config *ft = &b->cfg->ft;
    for (int failures = 0;;) {
        pthread_mutex_lock(&e->mu);
        sage__job *job = b->job;
        pthread_mutex_unlock(&e->mu);
        int rc = sage__job_wait(job, -1);
        pthread_mutex_lock(&e->mu);
        int failed = rc != 0 && sage__job_state(job) == SAGE_JOB_FAILED;
        int restart = failed && !e->stop_req && !e->cancel_req && may_restart(e, ++failures);
        if (!restart) {
            if (failed && !e->stop_req && !e->cancel_req) {
                char how[160];
                sage__ft_describe(ft, how, sizeof how);
                sage__errf(&e->final, job->err.code ? job->err.code : rc,
                           "recovery attempts exhausted after %d restart%s (%s); the last failure: %s", e->restarts,
                           e->restarts == 1 ? "" : "s", how, job->err.msg);
            } else if (job->err.code) {
                sage__errf(&e->final, job->err.code, "%s", job->err.msg);
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
        sage__job *next = attempt_start(b, &err);
        pthread_mutex_lock(&e->mu);
        if (!next) {
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
    }
}

static int emb_submit(sage__backend *b)
{
    emb *e = (emb *)b;
    int rc = sage__backend_compile(b);
    if (rc != 0)
        return rc;
    e->supervised = b->cfg->ft.strategy == SAGE__FT_RESTART;
    if (!e->supervised) {
        sage__job *job = sage__job_new(b->plan, b->cfg, b->plan->ntasks, b->plan->ntasks);
        if (!job)
            return sage__errf(b->err, SAGE_ENOMEM, "out of memory starting the job");
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
    sage__job *job = attempt_start(b, b->err); /* a job that cannot start is not restarted: it never ran */
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
        if (rc != SAGE_ETIMEDOUT && b->job->err.code)
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
    .destroy = emb_destroy,
};

sage__backend *sage__backend_embedded(void)
{
    emb *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (pthread_mutex_init(&e->mu, NULL) != 0 || sage__cond_init_mono(&e->cv) != 0) {
        free(e);
        return NULL;
    }
    e->b.ops = &embedded_ops;
    return &e->b;
}
