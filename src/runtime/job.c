/* runtime/job.c - a job in this process: its tasks and channels, starting threads, waiting, stopping, failing. */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/batch.h"
#include "runtime/runtime.h"
#include "util/time.h"

static void wake_all(sage__job *job)
{
    for (size_t i = 0; i < job->nchans; i++)
        job->chans[i]->ops->wake(job->chans[i]);
    sage__services_cancel(job); /* callers waiting on a service too */
}

void sage__job_fail(sage__job *job, int code, const char *fmt, ...)
{
    pthread_mutex_lock(&job->mu);
    int first = !atomic_load(&job->canceled);
    if (first) {
        job->rc = code;
        va_list ap;
        va_start(ap, fmt);
        sage__verrf(&job->err, code, fmt, ap);
        va_end(ap);
        atomic_store(&job->state, SAGE_JOB_FAILED);
        atomic_store(&job->canceled, 1);
        pthread_cond_broadcast(&job->pause_cv); /* paused sources and a checkpoint's coordinator wake up */
        pthread_cond_broadcast(&job->ckpt_cv);
    }
    pthread_mutex_unlock(&job->mu);
    if (first)
        wake_all(job);
}

sage_job_state sage__job_state(const sage__job *job) { return (sage_job_state)atomic_load(&job->state); }

int sage__job_own(sage__job *job, sage__chan *c)
{
    if (job->nchans == job->capchans) {
        size_t cap = job->capchans ? job->capchans * 2 : 8;
        sage__chan **v = realloc(job->chans, cap * sizeof *v);
        if (!v)
            return SAGE_ENOMEM;
        job->chans = v;
        job->capchans = cap;
    }
    job->chans[job->nchans++] = c;
    return 0;
}

void sage__batch_drop(const sage__job *job, const sage__batch *b, uint32_t first)
{
    if (!job->binding || !job->binding->drop || b->mark)
        return;
    const unsigned char *p = b->data;
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t len = b->width;
        if (!b->width)
            memcpy(&len, p, 4);
        if (i >= first)
            job->binding->drop(p + (b->width ? 0 : SAGE__REC_HDR), len, job->binding->udata);
        p += b->width ? b->width : sage__rec_size(len);
    }
}

void sage__job_dispose_batch(sage__batch *b, void *arg)
{
    const sage__job *job = arg;
    sage__enter(job);
    sage__batch_drop(job, b, 0);
    sage__leave(job);
    free(b);
}

void sage__job_free(sage__job *job)
{
    if (!job)
        return;
    for (size_t i = 0; i < job->ntasks; i++) {
        sage__task *t = &job->tasks[i];
        for (size_t k = 0; k < t->nops; k++) {
            sage__metric_free_all(&t->ops[k].ctx);
            sage__keystate_free(t->ops[k].ctx.ks);
            sage__batch_free(&t->ops[k]);
        }
        free(t->ops);
        sage__hist_free(&t->proc_ns);
        for (size_t r = 0; r < t->nroutes; r++) {
            for (int k = 0; t->routes[r].pending && k < t->routes[r].ntargets; k++)
                free(t->routes[r].pending[k]);
            free(t->routes[r].targets);
            free(t->routes[r].pending);
        }
        free(t->routes);
    }
    for (size_t i = 0; i < job->nchans; i++)
        job->chans[i]->ops->destroy(job->chans[i]);
    sage__groups_free(job);
    sage__services_free(job);
    free(job->chans);
    free(job->tasks);
    free(job->sinks);
    for (size_t i = 0; job->parts && i < job->ntasks; i++)
        sage__buf_free(&job->parts[i]);
    free(job->parts);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->done_cv);
    pthread_cond_destroy(&job->pause_cv);
    pthread_cond_destroy(&job->ckpt_cv);
    free(job);
}

sage__job *sage__job_new(const sage__plan *plan, const sage__config *cfg, size_t ntasks, size_t nchans)
{
    sage__job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->plan = plan;
    job->g = plan->g;
    job->cfg = cfg;
    job->binding = plan->g->has_binding && plan->g->binding.enter ? &plan->g->binding : NULL;
    pthread_mutex_init(&job->mu, NULL);
    sage__cond_init_mono(&job->done_cv);
    pthread_cond_init(&job->pause_cv, NULL);
    sage__cond_init_mono(&job->ckpt_cv);
    atomic_init(&job->ckpt_req, 0);
    atomic_init(&job->state, SAGE_JOB_RUNNING);
    atomic_init(&job->stopping, 0);
    atomic_init(&job->canceled, 0);
    atomic_init(&job->paused, 0);
    job->ntasks = ntasks;
    job->tasks = calloc(ntasks ? ntasks : 1, sizeof *job->tasks);
    job->chans = calloc(nchans ? nchans : 1, sizeof *job->chans);
    job->capchans = nchans ? nchans : 1;
    job->sinks = calloc(plan->nops ? plan->nops : 1, sizeof *job->sinks);
    job->parts = calloc(ntasks ? ntasks : 1, sizeof *job->parts);
    if (!job->tasks || !job->chans || !job->sinks || !job->parts) {
        sage__job_free(job);
        return NULL;
    }
    for (size_t i = 0; i < plan->nops; i++)
        job->sinks[i].fd = -1;
    return job;
}

static void init_ctx(sage_ctx *c, sage__opinst *inst, sage__job *job, int instance)
{
    c->inst = inst;
    c->job_name = job->g->name;
    c->op_name = inst->op->name;
    c->instance = instance;
    c->parallelism = inst->op->parallelism;
    atomic_init(&c->records_in, 0);
}

/* Queue budget of a task: the channel default, lowered by object_store_memory. */
static void task_budget(const sage__config *cfg, const sage__chain *ch, size_t *qbytes, size_t *bbytes)
{
    size_t q = cfg->channel_bytes, b = cfg->batch_bytes;
    if (ch->res_op && ch->res_op->res.object_store_memory) {
        uint64_t cap = ch->res_op->res.object_store_memory;
        if (q > cap / 2)
            q = (size_t)(cap / 2);
        if (b > q)
            b = q;
        if (b < 256)
            b = 256;
        if (q < b)
            q = b;
    }
    *qbytes = q;
    *bbytes = b;
}

/* One task: its operator instances, contexts and outs; a local input queue
 * when with_queue and the chain has inputs. Routes come separately. */
int sage__task_setup(sage__job *job, sage__task *t, const sage__chain *ch, int i, int with_queue)
{
    const sage__plan *plan = job->plan;
    size_t qbytes, bbytes;
    task_budget(job->cfg, ch, &qbytes, &bbytes);
    t->job = job;
    t->chain = ch;
    t->instance = i;
    if (!t->assign)
        t->assign = ch->assign ? &ch->assign[i] : NULL;
    t->batch_bytes = bbytes;
    t->max_record = job->cfg->max_record_bytes < UINT32_MAX ? job->cfg->max_record_bytes : UINT32_MAX;
    t->linger_ns = (uint64_t)job->cfg->flush_linger_us * 1000u;
    t->nops = ch->nops;
    t->ops = calloc(ch->nops, sizeof *t->ops);
    if (!t->ops)
        return SAGE_ENOMEM;
    for (size_t k = 0; k < ch->nops; k++) {
        sage__opinst *in = &t->ops[k];
        in->op = sage__chain_op(plan, ch, k);
        in->task = t;
        sage__opinst_bind(in);
        init_ctx(&in->ctx, in, job, i);
        in->ctx.assignment = t->assign ? &t->assign->pub : NULL;
        in->out.owner = in;
        in->out.canceled = &job->canceled;
        atomic_init(&in->out.emitted, 0);
        in->out.next = k + 1 < ch->nops ? &t->ops[k + 1] : NULL;
        in->in_from = k > 0 ? &t->ops[k - 1].out : NULL;
        in->out.task = (k + 1 == ch->nops && in->op->kind != SAGE__OP_SINK) ? t : NULL;
    }
    for (size_t k = 0; k < ch->nops; k++) /* after every instance of the chain is bound */
        sage__out_bind(&t->ops[k].out);
    t->expected_eos = ch->producers;
    sage__loop_setup(t);
    if (ch->producers > 0 && with_queue) {
        sage__queue *q = sage__queue_new(qbytes, bbytes, ch->producers, &job->canceled);
        if (!q)
            return SAGE_ENOMEM;
        if (sage__job_own(job, &q->chan) != 0) {
            q->chan.ops->destroy(&q->chan);
            return SAGE_ENOMEM;
        }
        q->spin_ns = (uint64_t)job->cfg->idle_spin_us * 1000u;
        if (job->binding && job->binding->drop) {
            q->dispose = sage__job_dispose_batch;
            q->dispose_arg = job;
        }
        t->in = q;
    }
    return 0;
}

/* Routes: the tail of the task's chain feeds the heads of its consumers'
 * chains; target(arg, chain, instance, input) gives each consumer's channel. */
/* The CPUs this process may run on (at least 1). */
static int usable_cpus(void)
{
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    return n > 0 ? n : 1;
}

int sage__task_routes(sage__job *job, sage__task *t, sage__target_fn target, void *arg)
{
    const sage__plan *plan = job->plan;
    const sage__op *tail = sage__chain_op(plan, t->chain, t->chain->nops - 1);
    const sage__pop *tp = &plan->ops[tail->id];
    size_t nr = tp->nconsumers + (tp->ctl_to >= 0); /* a loop entry's control route last: no record goes there */
    t->nemit = tp->nconsumers;
    if (nr == 0)
        return 0;
    t->routes = calloc(nr, sizeof *t->routes);
    if (!t->routes)
        return SAGE_ENOMEM;
    t->nroutes = nr;
    static const sage__edge control = {.part = SAGE__PART_BROADCAST};
    for (size_t k = 0; k < nr; k++) {
        sage__route *r = &t->routes[k];
        int ctl = k == tp->nconsumers;
        const sage__pop *cp = &plan->ops[ctl ? tp->ctl_to : tp->consumers[k].op];
        const sage__chain *cch = &plan->chains[cp->chain];
        r->input = ctl ? (int)cp->op->ninputs : tp->consumers[k].input;
        r->edge = ctl ? &control : &cp->op->inputs[r->input];
        r->part = cp->part[r->input];
        r->probe = !ctl && t->loop >= 0 && cp->loop == t->loop;
        r->ntargets = cch->parallelism;
        r->self = t->instance;
        r->rr = (uint32_t)(t->instance % cch->parallelism); /* spread round-robin starts */
        /* Fanning out to more consumers than cores, each target's batch fills that many times slower, and a
         * linger sized for one consumer per core would send each a stream of small batches, one wake-up
         * each: the linger grows with the fan-out per core (64 targets on 2 cores: 32x). */
        int per_core = (cch->parallelism + usable_cpus() - 1) / usable_cpus();
        r->linger_ns = t->linger_ns * (uint64_t)(per_core > 1 ? per_core : 1);
        r->targets = calloc((size_t)r->ntargets, sizeof *r->targets);
        r->pending = calloc((size_t)r->ntargets, sizeof *r->pending);
        if (!r->targets || !r->pending)
            return SAGE_ENOMEM;
        r->packed = r->part != SAGE__PART_KEY && !job->binding; /* key_by: the header carries the key's hash */
        for (int n = 0; n < r->ntargets; n++) {
            r->targets[n] = target(arg, cch, n, r->input);
            if (!r->targets[n])
                return SAGE_EIO;
            r->packed = r->packed && r->targets[n]->packed_ok;
        }
    }
    return 0;
}

static sage__chan *local_target(void *arg, const sage__chain *cch, int instance, int input)
{
    sage__job *job = arg;
    return &job->tasks[sage__plan_first_task(job->plan, cch->id) + (size_t)instance].in->chan;
}

int sage__build_all_tasks(sage__job *job, int with_queues)
{
    const sage__plan *plan = job->plan;
    size_t ti = 0;
    for (size_t c = 0; c < plan->nchains; c++)
        for (int i = 0; i < plan->chains[c].parallelism; i++, ti++) {
            int rc = sage__task_setup(job, &job->tasks[ti], &plan->chains[c], i, with_queues);
            if (rc != 0)
                return rc;
        }
    if (!with_queues)
        return 0;
    for (size_t i = 0; i < job->ntasks; i++) {
        int rc = sage__task_routes(job, &job->tasks[i], local_target, job);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sage__job_start(sage__job *job, sage__err *err)
{
    int rc = sage__sinks_open_local(job, err);
    if (rc == 0)
        rc = sage__services_start(job, err);
    if (rc != 0) {
        sage__sinks_close(job, NULL);
        job->ended = 1;
        job->rc = rc;
        atomic_store(&job->state, SAGE_JOB_FAILED);
        return rc;
    }
    job->running_tasks = (int)job->ntasks;
    if ((rc = sage__groups_build(job)) != 0) {
        pthread_mutex_lock(&job->mu);
        job->running_tasks = 0;
        pthread_mutex_unlock(&job->mu);
        sage__job_fail(job, rc, "arranging instances on fewer threads (config chain_threads): %s", sage_strerror(rc));
        return 0;
    }
    size_t unstarted = 0;
    for (size_t i = 0; i < job->ntasks; i++) {
        sage__task *t = &job->tasks[i];
        if (t->grouped)
            continue;
        int e = pthread_create(&t->thread, NULL, sage__task_main, t);
        if (e != 0) {
            for (size_t k = i; k < job->ntasks; k++)
                unstarted += !job->tasks[k].grouped;
            unstarted += sage__groups_tasks(job);
            pthread_mutex_lock(&job->mu);
            job->running_tasks -= (int)unstarted;
            pthread_mutex_unlock(&job->mu);
            sage__job_fail(job, SAGE_ESYS, "starting task %zu of %zu: %s", i + 1, job->ntasks, strerror(e));
            return 0;
        }
        t->started = 1;
    }
    int e = sage__groups_start(job, &unstarted);
    if (e != 0) {
        pthread_mutex_lock(&job->mu);
        job->running_tasks -= (int)unstarted;
        pthread_mutex_unlock(&job->mu);
        sage__job_fail(job, SAGE_ESYS, "starting a thread that serves several instances (config chain_threads): %s",
                       strerror(e));
    }
    return 0;
}

/* Join every thread once all have ended; settle the final state. */
static int job_end(sage__job *job)
{
    for (size_t i = 0; i < job->ntasks; i++)
        if (job->tasks[i].started)
            pthread_join(job->tasks[i].thread, NULL);
    sage__groups_join(job);
    sage__services_stop(job);
    sage__err cerr = {0};
    int frc = sage__sinks_close(job, &cerr);
    job->ended = 1;
    int st = atomic_load(&job->state);
    if (st == SAGE_JOB_RUNNING) {
        if (frc != 0) {
            job->rc = frc;
            job->err = cerr;
            atomic_store(&job->state, SAGE_JOB_FAILED);
        } else if (atomic_load(&job->canceled)) {
            job->rc = SAGE_ECANCELED;
            atomic_store(&job->state, SAGE_JOB_CANCELED);
        } else {
            atomic_store(&job->state, atomic_load(&job->stopping) ? SAGE_JOB_STOPPED : SAGE_JOB_FINISHED);
        }
    }
    return job->rc;
}

int sage__job_wait(sage__job *job, int timeout_ms)
{
    if (job->ended)
        return job->rc;
    pthread_mutex_lock(&job->mu);
    if (timeout_ms < 0) {
        while (job->running_tasks > 0)
            pthread_cond_wait(&job->done_cv, &job->mu);
    } else {
        struct timespec dl;
        sage__deadline(&dl, timeout_ms);
        while (job->running_tasks > 0)
            if (pthread_cond_timedwait(&job->done_cv, &job->mu, &dl) == ETIMEDOUT)
                break;
    }
    int running = job->running_tasks;
    pthread_mutex_unlock(&job->mu);
    if (running > 0)
        return SAGE_ETIMEDOUT;
    return job_end(job);
}

void sage__job_stop(sage__job *job)
{
    atomic_store(&job->stopping, 1);
    pthread_mutex_lock(&job->mu);
    pthread_cond_broadcast(&job->pause_cv); /* a stop must reach a paused source */
    pthread_mutex_unlock(&job->mu);
}

void sage__job_cancel(sage__job *job)
{
    pthread_mutex_lock(&job->mu);
    int was = atomic_exchange(&job->canceled, 1);
    pthread_cond_broadcast(&job->pause_cv);
    pthread_cond_broadcast(&job->ckpt_cv);
    pthread_mutex_unlock(&job->mu);
    if (!was)
        wake_all(job);
}

void sage__job_pause(sage__job *job, int paused)
{
    pthread_mutex_lock(&job->mu);
    atomic_store(&job->paused, paused);
    pthread_cond_broadcast(&job->pause_cv);
    pthread_mutex_unlock(&job->mu);
}
