/* api/env.c - the environment's public calls: create with config, sticky errors, run control, plan, metrics. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/env.h"

/* A worker whose program srun copied to its node (the JobManager's Slurm launcher, SAGE_WORKER_EXE_COPY):
 * before main, the copy is unlinked (the process runs on; nothing is left on the node) and the task's GPUs
 * are set, which Slurm's gpu plugin cleared in the step (SAGE_WORKER_CUDA). Nothing happens elsewhere. */
__attribute__((constructor)) static void sage__worker_copy_at_start(void)
{
    const char *copy = getenv("SAGE_WORKER_EXE_COPY"), *cuda = getenv("SAGE_WORKER_CUDA");
    if (!copy || !getenv("SAGE_WORKER_JOB"))
        return;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0 && (self[n] = 0, strcmp(self, copy) == 0))
        unlink(copy);
    if (cuda)
        setenv("CUDA_VISIBLE_DEVICES", cuda, 1);
}

static sage_env *env_new(const char *name, const char *config, const char *jm_host, int jm_port, int remote)
{
    sage_env *env = calloc(1, sizeof *env);
    if (!env)
        return NULL;
    sage__config_init(&env->cfg);
    char buf[128];
    const char *why = sage__name_problem(name, 0, buf, sizeof buf);
    sage__graph_init(&env->graph, why ? "job" : name, &env->cfg, &env->err); /* a refused name: "job" */
    if (why)
        sage__errf(&env->err, SAGE_EINVAL, "sage_env_create: the job name %s", why);
    if (config && env->err.code == 0)
        sage__config_parse(&env->cfg, config, &env->err);
    if (remote) {
        env->cfg.has_jobmanager = 1;
        sage__strlcpy(env->cfg.jm_host, jm_host && *jm_host ? jm_host : "127.0.0.1", sizeof env->cfg.jm_host);
        env->cfg.jm_port = jm_port ? jm_port : SAGE_JOBMANAGER_PORT;
    }
    env->backend = sage__backend_new(&env->graph, &env->cfg, &env->err);
    if (!env->backend) {
        sage__graph_free(&env->graph);
        sage__config_free(&env->cfg);
        free(env);
        return NULL;
    }
    return env;
}

SAGE_API sage_env *sage_env_create(const char *name, const char *config) { return env_new(name, config, NULL, 0, 0); }

SAGE_API sage_env *sage_env_create_remote(const char *name, const char *host, int port, const char *config)
{
    return env_new(name, config, host, port, 1);
}

SAGE_API void sage_env_destroy(sage_env *env)
{
    if (!env)
        return;
    sage__backend_destroy(env->backend);
    sage__graph_free(&env->graph);
    sage__config_free(&env->cfg);
    free(env);
}

SAGE_API const char *sage_env_errmsg(const sage_env *env) { return env ? env->err.msg : "no environment"; }
SAGE_API int sage_env_errcode(const sage_env *env) { return env ? env->err.code : SAGE_EINVAL; }

SAGE_API int sage_env_submit(sage_env *env)
{
    if (!env)
        return SAGE_EINVAL;
    if (env->err.code && !env->backend->ops->owns_process)
        return env->err.code;
    if (env->executed)
        return sage__errf(&env->err, SAGE_ESTATE,
                          "sage_env_submit: this environment already ran its job; create a new one");
    env->executed = 1;
    env->graph.seal = SAGE__GRAPH_SUBMITTED;
    return env->backend->ops->submit(env->backend); /* a worker process never comes back */
}

SAGE_API int sage_env_wait(sage_env *env, int timeout_ms)
{
    if (!env)
        return SAGE_EINVAL;
    if (!env->backend->job)
        return env->err.code ? env->err.code : SAGE_ESTATE;
    return env->backend->ops->wait(env->backend, timeout_ms);
}

SAGE_API int sage_env_execute(sage_env *env)
{
    int rc = sage_env_submit(env);
    if (rc != 0)
        return rc;
    return sage_env_wait(env, -1);
}

SAGE_API int sage_env_stop(sage_env *env)
{
    if (!env || !env->backend->job)
        return SAGE_ESTATE;
    return env->backend->ops->stop(env->backend);
}

SAGE_API int sage_env_cancel(sage_env *env)
{
    if (!env || !env->backend->job)
        return SAGE_ESTATE;
    return env->backend->ops->cancel(env->backend);
}

SAGE_API int sage_env_stop_with_savepoint(sage_env *env, const char *dir, int timeout_ms)
{
    if (!env || !env->backend->job)
        return SAGE_ESTATE;
    if (!env->backend->ops->savepoint)
        return sage__errf(env->backend->err, SAGE_EUNSUPPORTED,
                          "sage_env_stop_with_savepoint: this environment cannot take savepoints");
    return env->backend->ops->savepoint(env->backend, dir, timeout_ms);
}

SAGE_API int sage_env_checkpoint_stats(const sage_env *env, sage_checkpoint_stats *out)
{
    if (!out)
        return SAGE_EINVAL;
    memset(out, 0, sizeof *out);
    if (!env)
        return SAGE_EINVAL;
    if (env->backend->ops->ckpt_stats) /* under the backend's own lock: b->job may be swapped meanwhile */
        env->backend->ops->ckpt_stats(env->backend, out);
    return 0;
}

SAGE_API sage_job_state sage_env_state(const sage_env *env)
{
    if (!env || !env->backend->job)
        return (env && env->err.code) ? SAGE_JOB_FAILED : SAGE_JOB_CREATED;
    return env->backend->ops->state(env->backend);
}

SAGE_API const char *sage_job_state_name(sage_job_state s)
{
    switch (s) {
    case SAGE_JOB_CREATED: return "created";
    case SAGE_JOB_RUNNING: return "running";
    case SAGE_JOB_FINISHED: return "finished";
    case SAGE_JOB_STOPPED: return "stopped";
    case SAGE_JOB_FAILED: return "failed";
    case SAGE_JOB_CANCELED: return "canceled";
    }
    return "unknown";
}

/* ---- the plan ---- */

static const sage__plan *env_plan(sage_env *env)
{
    if (sage__backend_compile(env->backend) != 0)
        return NULL;
    if (env->graph.seal == SAGE__GRAPH_OPEN)
        env->graph.seal = SAGE__GRAPH_EXPLAINED;
    return env->backend->plan;
}

SAGE_API char *sage_env_explain(sage_env *env)
{
    const sage__plan *plan = env ? env_plan(env) : NULL;
    if (!plan)
        return NULL;
    char *s = sage__plan_explain(plan);
    if (!s)
        sage__errf(&env->err, SAGE_ENOMEM, "out of memory explaining the plan");
    return s;
}

SAGE_API char *sage_env_explain_json(sage_env *env)
{
    const sage__plan *plan = env ? env_plan(env) : NULL;
    if (!plan)
        return NULL;
    char *s = sage__plan_explain_json(plan);
    if (!s)
        sage__errf(&env->err, SAGE_ENOMEM, "out of memory explaining the plan");
    return s;
}

/* ---- what the run measured ---- */

SAGE_API int sage_env_metric(const sage_env *env, const char *op_name, int instance, const char *name, sage_metric *out)
{
    if (!env || !op_name || !name || !out)
        return SAGE_EINVAL;
    memset(out, 0, sizeof *out);
    const sage__op *op = sage__graph_find(&env->graph, op_name);
    if (!op)
        return SAGE_ENOTFOUND;
    if (instance >= op->parallelism)
        return SAGE_EINVAL;
    if (!env->backend->job)
        return SAGE_ESTATE;
    if (env->backend->ops->metric)
        return env->backend->ops->metric(env->backend, op, instance, name, out);
    return sage__job_metric(env->backend->job, op, instance, name, out);
}

SAGE_API size_t sage_env_op_count(const sage_env *env) { return env ? env->graph.nops : 0; }

SAGE_API const char *sage_env_op_name(const sage_env *env, size_t i)
{
    return (env && i < env->graph.nops) ? env->graph.ops[i]->name : NULL;
}

SAGE_API int sage_env_op_parallelism(const sage_env *env, size_t i)
{
    return (env && i < env->graph.nops) ? env->graph.ops[i]->parallelism : SAGE_EINVAL;
}

/* ---- JobManager ---- */

SAGE_API int64_t sage_env_job_id(const sage_env *env) { return env ? env->backend->job_id : 0; }

SAGE_API int sage_is_worker(void) { return getenv("SAGE_WORKER_JOB") != NULL; }
