/* runtime/job.c - starting a compiled plan as threads, waiting for it, stopping, canceling, failing. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "remote/remote.h"
#include "runtime/runtime.h"


void sage__job_fail(sage__job *job, int code, const char *fmt, ...)
{
    pthread_mutex_lock(&job->mu);
    int first = !atomic_load(&job->canceled);
    if (first) {
        job->rc = code;
        sage_env *env = job->env;
        if (env->err == 0) {
            env->err = code;
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(env->errmsg, sizeof env->errmsg, fmt, ap);
            va_end(ap);
        }
        atomic_store(&job->state, SAGE_JOB_FAILED);
        atomic_store(&job->canceled, 1);
    }
    pthread_mutex_unlock(&job->mu);
    if (first)
        for (size_t i = 0; i < job->nqueues; i++)
            sage__queue_wake(job->queues[i]);
}

sage_job_state sage__job_state(const sage__job *job) { return (sage_job_state)atomic_load(&job->state); }

static void init_ctx(sage_ctx *c, sage__opinst *inst, sage__job *job, int instance)
{
    c->inst = inst;
    c->job_name = job->env->name;
    c->op_name = inst->op->name;
    c->instance = instance;
    c->parallelism = inst->op->parallelism;
    atomic_init(&c->records_in, 0);
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
        }
        free(t->ops);
        sage__hist_free(&t->proc_ns);
        for (size_t r = 0; r < t->nroutes; r++) {
            free(t->routes[r].targets);
            free(t->routes[r].pending);
        }
        free(t->routes);
    }
    for (size_t i = 0; i < job->nqueues; i++) {
        sage__queue_destroy(job->queues[i]);
        free(job->queues[i]);
    }
    if (job->on_free)
        job->on_free(job);
    free(job->queues);
    free(job->tasks);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->done_cv);
    pthread_cond_destroy(&job->pause_cv);
    free(job);
}

/* Index of the first task of each chain: tasks are laid out chain by chain. */
static size_t chain_first_task(const sage__plan *plan, int chain)
{
    size_t n = 0;
    for (int c = 0; c < chain; c++)
        n += (size_t)plan->chains[c].parallelism;
    return n;
}

/* Queue budget of a task: the channel default, lowered by object_store_memory. */
static void task_budget(const sage_env *env, const sage__chain *ch, size_t *qbytes, size_t *bbytes)
{
    size_t q = env->cfg.channel_bytes, b = env->cfg.batch_bytes;
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
int sage__task_setup(sage_env *env, sage__job *job, sage__task *t, sage__chain *ch, int i, int with_queue)
{
    sage__op *head = ch->ops[0];
    int producers = 0;
    for (size_t k = 0; k < head->ninputs; k++)
        producers += head->inputs[k].from->parallelism;
    size_t qbytes, bbytes;
    task_budget(env, ch, &qbytes, &bbytes);
    t->job = job;
    t->chain = ch;
    t->instance = i;
    if (!t->assign)
        t->assign = ch->assign ? &ch->assign[i] : NULL;
    t->batch_bytes = bbytes;
    t->max_record = env->cfg.max_record_bytes < UINT32_MAX ? env->cfg.max_record_bytes : UINT32_MAX;
    t->linger_ns = (uint64_t)env->cfg.flush_linger_us * 1000u;
    t->nops = ch->nops;
    t->ops = calloc(ch->nops, sizeof *t->ops);
    if (!t->ops)
        return SAGE_ENOMEM;
    for (size_t k = 0; k < ch->nops; k++) {
        sage__opinst *in = &t->ops[k];
        in->op = ch->ops[k];
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
    t->expected_eos = producers;
    if (head->ninputs > 0 && with_queue) {
        sage__queue *q = calloc(1, sizeof *q);
        if (!q)
            return SAGE_ENOMEM;
        int rc = sage__queue_init(q, qbytes, bbytes, producers, &job->canceled);
        if (rc != 0) {
            free(q);
            return rc;
        }
        job->queues[job->nqueues++] = q;
        t->in = q;
    }
    return 0;
}

/* Routes: the tail of the task's chain feeds the heads of its consumers'
 * chains; target(arg, chain, instance, input) gives each consumer's queue. */
int sage__task_routes(sage_env *env, sage__task *t, sage__target_fn target, void *arg)
{
    sage__plan *plan = env->plan;
    sage__op *tail = t->chain->ops[t->chain->nops - 1];
    if (tail->nconsumers == 0)
        return 0;
    t->routes = calloc(tail->nconsumers, sizeof *t->routes);
    if (!t->routes)
        return SAGE_ENOMEM;
    t->nroutes = tail->nconsumers;
    for (size_t k = 0; k < tail->nconsumers; k++) {
        sage__route *r = &t->routes[k];
        sage__op *cop = tail->consumers[k].op;
        sage__chain *cch = &plan->chains[cop->chain];
        r->input = tail->consumers[k].input;
        r->edge = &cop->inputs[r->input];
        r->part = r->edge->part;
        r->ntargets = cch->parallelism;
        r->self = t->instance;
        r->rr = (uint32_t)(t->instance % cch->parallelism); /* spread round-robin starts */
        r->targets = calloc((size_t)r->ntargets, sizeof *r->targets);
        r->pending = calloc((size_t)r->ntargets, sizeof *r->pending);
        if (!r->targets || !r->pending)
            return SAGE_ENOMEM;
        for (int n = 0; n < r->ntargets; n++) {
            r->targets[n] = target(arg, cch, n, r->input);
            if (!r->targets[n])
                return SAGE_EIO;
        }
    }
    return 0;
}

static sage__queue *local_target(void *arg, sage__chain *cch, int instance, int input)
{
    sage__job *job = arg;
    return job->tasks[chain_first_task(job->env->plan, cch->id) + (size_t)instance].in;
}

sage__job *sage__job_new(sage_env *env, size_t ntasks, size_t nqueues)
{
    sage__job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->env = env;
    pthread_mutex_init(&job->mu, NULL);
    sage__cond_init_mono(&job->done_cv);
    pthread_cond_init(&job->pause_cv, NULL);
    atomic_init(&job->state, SAGE_JOB_RUNNING);
    atomic_init(&job->stopping, 0);
    atomic_init(&job->canceled, 0);
    atomic_init(&job->paused, 0);
    job->ntasks = ntasks;
    job->tasks = calloc(ntasks ? ntasks : 1, sizeof *job->tasks);
    job->queues = calloc(nqueues ? nqueues : 1, sizeof *job->queues);
    if (!job->tasks || !job->queues) {
        sage__job_free(job);
        return NULL;
    }
    return job;
}

/* Every task of the plan as threads of this process (embedded mode), or as
 * bare bookkeeping (with_queues 0: a remote client's view of the metrics). */
int sage__build_all_tasks(sage_env *env, sage__job *job, int with_queues)
{
    sage__plan *plan = env->plan;
    size_t ti = 0;
    for (size_t c = 0; c < plan->nchains; c++)
        for (int i = 0; i < plan->chains[c].parallelism; i++, ti++) {
            int rc = sage__task_setup(env, job, &job->tasks[ti], &plan->chains[c], i, with_queues);
            if (rc != 0)
                return rc;
        }
    if (!with_queues)
        return 0;
    for (size_t i = 0; i < job->ntasks; i++) {
        int rc = sage__task_routes(env, &job->tasks[i], local_target, job);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int prepare_builtins(sage_env *env)
{
    for (size_t i = 0; i < env->nops; i++) {
        sage__op *op = env->ops[i];
        if (op->builtin == SAGE__BUILTIN_FILE_SINK) {
            op->sink_file = fopen(op->path, "w");
            if (!op->sink_file)
                return sage__env_fail(env, SAGE_EIO, "operator \"%s\": cannot open \"%s\" for writing: %s", op->name,
                                      op->path, strerror(errno));
        } else if (op->builtin == SAGE__BUILTIN_COLLECT_SINK) {
            if (sage__collector_prepare(op->collector, op->parallelism) != 0)
                return sage__env_fail(env, SAGE_ENOMEM, "operator \"%s\": out of memory", op->name);
        }
    }
    return 0;
}

static int finish_builtins(sage_env *env)
{
    int rc = 0;
    for (size_t i = 0; i < env->nops; i++) {
        sage__op *op = env->ops[i];
        if (op->sink_file) {
            if (fclose(op->sink_file) != 0 && rc == 0)
                rc = sage__env_fail(env, SAGE_EIO, "operator \"%s\": writing \"%s\": %s", op->name, op->path,
                                    strerror(errno));
            op->sink_file = NULL;
        }
    }
    return rc;
}

int sage__job_start(sage_env *env)
{
    sage__job *job = sage__job_new(env, env->plan->ntasks, env->plan->ntasks);
    if (!job)
        return sage__env_fail(env, SAGE_ENOMEM, "out of memory starting the job");
    env->job = job;
    int rc = sage__build_all_tasks(env, job, 1);
    if (rc != 0) {
        job->ended = 1;
        job->rc = sage__env_fail(env, rc, "building the job's tasks: %s", sage_strerror(rc));
        atomic_store(&job->state, SAGE_JOB_FAILED);
        return job->rc;
    }
    if ((rc = prepare_builtins(env)) != 0 || (rc = sage__services_start(env)) != 0) {
        finish_builtins(env);
        job->ended = 1;
        job->rc = env->err ? env->err : rc;
        atomic_store(&job->state, SAGE_JOB_FAILED);
        return job->rc;
    }
    job->running_tasks = (int)job->ntasks;
    for (size_t i = 0; i < job->ntasks; i++) {
        sage__task *t = &job->tasks[i];
        int e = pthread_create(&t->thread, NULL, sage__task_main, t);
        if (e != 0) {
            pthread_mutex_lock(&job->mu);
            job->running_tasks -= (int)(job->ntasks - i);
            pthread_mutex_unlock(&job->mu);
            sage__job_fail(job, SAGE_ESYS, "starting task %zu of %zu: %s", i + 1, job->ntasks, strerror(e));
            break;
        }
        t->started = 1;
    }
    return 0;
}

/* Join every thread once all have ended; settle the final state. */
static int job_end(sage_env *env, sage__job *job)
{
    for (size_t i = 0; i < job->ntasks; i++)
        if (job->tasks[i].started)
            pthread_join(job->tasks[i].thread, NULL);
    sage__services_stop(env);
    int frc = finish_builtins(env);
    job->ended = 1;
    int st = atomic_load(&job->state);
    if (st == SAGE_JOB_RUNNING) {
        if (frc != 0) {
            job->rc = frc;
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

int sage__job_wait(sage_env *env, int timeout_ms)
{
    sage__job *job = env->job;
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
    return job_end(env, job);
}

SAGE_API int sage_env_stop(sage_env *env)
{
    if (!env || !env->job)
        return SAGE_ESTATE;
    if (env->remote == SAGE__ENV_CLIENT)
        return sage__client_control(env, "stop");
    atomic_store(&env->job->stopping, 1);
    return 0;
}

SAGE_API int sage_env_cancel(sage_env *env)
{
    if (!env || !env->job)
        return SAGE_ESTATE;
    if (env->remote == SAGE__ENV_CLIENT)
        return sage__client_control(env, "cancel");
    sage__job *job = env->job;
    pthread_mutex_lock(&job->mu);
    int was = atomic_exchange(&job->canceled, 1);
    pthread_mutex_unlock(&job->mu);
    if (!was)
        for (size_t i = 0; i < job->nqueues; i++)
            sage__queue_wake(job->queues[i]);
    return 0;
}
