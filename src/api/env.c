/* api/env.c - environment lifecycle: create with config, sticky errors, run control, metric read-back. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "util/utf8.h"
#include "net/sock.h"
#include "remote/remote.h"
#include "runtime/runtime.h"

int sage__env_fail(sage_env *env, int code, const char *fmt, ...)
{
    if (env->err == 0) {
        env->err = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(env->errmsg, sizeof env->errmsg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A byte quantity in config: a non-negative integer or a string with a unit. */
static int config_bytes(sage_env *env, const char *key, json_t *v, size_t lo, size_t hi, size_t *out)
{
    uint64_t b = 0;
    char err[256];
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        b = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if (sage_parse_bytes(json_string_value(v), &b, err, sizeof err) != 0)
            return sage__env_fail(env, SAGE_ECONFIG, "config key \"%s\": %s", key, err);
    } else {
        return sage__env_fail(env, SAGE_ECONFIG, "config key \"%s\": expected bytes (a number or a string like \"64KiB\")",
                              key);
    }
    if (b < lo || b > hi)
        return sage__env_fail(env, SAGE_ECONFIG, "config key \"%s\": %llu bytes is outside %zu..%zu", key,
                              (unsigned long long)b, lo, hi);
    *out = (size_t)b;
    return 0;
}

static int parse_config(sage_env *env, const char *config)
{
    json_error_t jerr;
    json_t *root;
    const char *p = config;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '{')
        root = json_loads(config, JSON_REJECT_DUPLICATES, &jerr);
    else
        root = json_load_file(config, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sage__env_fail(env, SAGE_ECONFIG, "config %s: %s (line %d, column %d)", *p == '{' ? "text" : config,
                              jerr.text, jerr.line, jerr.column);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = sage__env_fail(env, SAGE_ECONFIG, "config: expected a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "max_parallelism") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SAGE_PARALLELISM_MAX) {
                rc = sage__env_fail(env, SAGE_ECONFIG, "config key \"max_parallelism\": expected a whole number from 1 to %d",
                                    SAGE_PARALLELISM_MAX);
                goto out;
            }
            env->cfg.max_parallelism = (int)json_integer_value(v);
        } else if (strcmp(key, "batch_bytes") == 0) {
            if ((rc = config_bytes(env, key, v, 256, 16u << 20, &env->cfg.batch_bytes)) != 0)
                goto out;
        } else if (strcmp(key, "channel_bytes") == 0) {
            if ((rc = config_bytes(env, key, v, 256, (size_t)1 << 32, &env->cfg.channel_bytes)) != 0)
                goto out;
        } else if (strcmp(key, "max_record_bytes") == 0) {
            if ((rc = config_bytes(env, key, v, 1, (size_t)1 << 31, &env->cfg.max_record_bytes)) != 0)
                goto out;
        } else if (strcmp(key, "flush_linger_us") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000) {
                rc = sage__env_fail(env, SAGE_ECONFIG, "config key \"flush_linger_us\": expected microseconds from 0 to 1000000");
                goto out;
            }
            env->cfg.flush_linger_us = (unsigned)json_integer_value(v);
        } else if (strcmp(key, "jobmanager") == 0) {
            char host[256];
            int port;
            if (!json_is_string(v) || sage__parse_hostport(json_string_value(v), host, sizeof host, &port,
                                                           SAGE_JOBMANAGER_PORT) != 0) {
                rc = sage__env_fail(env, SAGE_ECONFIG, "config key \"jobmanager\": expected \"host:port\"");
                goto out;
            }
            if ((rc = sage__remote_init(env, host, port, env->rt ? env->rt->token_file : NULL)) != 0)
                goto out;
        } else if (strcmp(key, "token_file") == 0) {
            if (!json_is_string(v)) {
                rc = sage__env_fail(env, SAGE_ECONFIG, "config key \"token_file\": expected a path");
                goto out;
            }
            if (!env->rt && !(env->rt = calloc(1, sizeof *env->rt))) {
                rc = sage__env_fail(env, SAGE_ENOMEM, "out of memory");
                goto out;
            }
            snprintf(env->rt->token_file, sizeof env->rt->token_file, "%s", json_string_value(v));
        } else if (strcmp(key, "node") == 0) {
            if (!json_is_object(v)) {
                rc = sage__env_fail(env, SAGE_ECONFIG, "config key \"node\": expected an object");
                goto out;
            }
            env->cfg.node = json_incref(v);
        } else {
            rc = sage__env_fail(env, SAGE_ECONFIG,
                                "config: unknown key \"%s\" (known: max_parallelism, batch_bytes, channel_bytes, "
                                "max_record_bytes, flush_linger_us, node, jobmanager, token_file)",
                                key);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

SAGE_API sage_env *sage_env_create(const char *name, const char *config)
{
    sage_env *env = calloc(1, sizeof *env);
    if (!env)
        return NULL;
    env->cfg.max_parallelism = SAGE_PARALLELISM_MAX;
    env->cfg.batch_bytes = 16 * 1024;
    env->cfg.channel_bytes = 256 * 1024;
    env->cfg.max_record_bytes = 64u << 20;
    env->cfg.flush_linger_us = 200;
    if (!name || !*name) {
        sage__strlcpy(env->name, "job", sizeof env->name);
        sage__env_fail(env, SAGE_EINVAL, "sage_env_create: the job name is empty");
    } else if (!sage__utf8_valid(name, strlen(name))) {
        sage__strlcpy(env->name, "job", sizeof env->name);
        sage__env_fail(env, SAGE_EINVAL, "sage_env_create: the job name is not valid UTF-8");
    } else if (strlen(name) >= sizeof env->name) {
        sage__strlcpy(env->name, name, sizeof env->name);
        sage__env_fail(env, SAGE_EINVAL, "sage_env_create: the job name is longer than %zu bytes", sizeof env->name - 1);
    } else {
        sage__strlcpy(env->name, name, sizeof env->name);
    }
    if (config && env->err == 0)
        parse_config(env, config);
    if (env->cfg.channel_bytes < env->cfg.batch_bytes)
        env->cfg.channel_bytes = env->cfg.batch_bytes;
    return env;
}

static void op_free(sage__op *op)
{
    free(op->inputs);
    free(op->consumers);
    free(op->cofns);
    free(op->coll_data);
    free(op->coll_off);
    free(op->path);
    free(op);
}

SAGE_API void sage_env_destroy(sage_env *env)
{
    if (!env)
        return;
    if (env->job && env->remote == SAGE__ENV_CLIENT) {
        sage__job_free(env->job); /* the remote job goes on; its threads are not ours */
    } else if (env->job) {
        sage_env_cancel(env);
        sage__job_wait(env, -1);
        sage__job_free(env->job);
    }
    if (env->rt) {
        sage_client_close(env->rt->waiter);
        free(env->rt);
    }
    sage__plan_free(env->plan);
    for (size_t i = 0; i < env->nops; i++)
        op_free(env->ops[i]);
    free(env->ops);
    for (sage_stream *s = env->streams; s;) {
        sage_stream *n = s->next_alloc;
        free(s->conn);
        free(s);
        s = n;
    }
    for (size_t i = 0; i < env->nservices; i++)
        sage__service_free(env->services[i]);
    free(env->services);
    json_decref(env->cfg.node);
    free(env);
}

SAGE_API const char *sage_env_errmsg(const sage_env *env) { return env ? env->errmsg : "no environment"; }
SAGE_API int sage_env_errcode(const sage_env *env) { return env ? env->err : SAGE_EINVAL; }

SAGE_API int sage_env_submit(sage_env *env)
{
    if (!env)
        return SAGE_EINVAL;
    if (env->err)
        return env->err;
    if (env->executed)
        return sage__env_fail(env, SAGE_ESTATE, "sage_env_submit: this environment already ran its job; create a new one");
    if (env->remote == SAGE__ENV_WORKER)
        sage__worker_run(env); /* runs this process's task, then exits */
    env->executed = 1;
    int rc = sage__compile(env);
    if (rc != 0)
        return rc;
    if (env->remote == SAGE__ENV_CLIENT)
        return sage__client_submit(env);
    return sage__job_start(env);
}

SAGE_API int sage_env_wait(sage_env *env, int timeout_ms)
{
    if (!env)
        return SAGE_EINVAL;
    if (!env->job)
        return env->err ? env->err : SAGE_ESTATE;
    if (env->remote == SAGE__ENV_CLIENT)
        return sage__client_wait(env, timeout_ms);
    return sage__job_wait(env, timeout_ms);
}

SAGE_API int sage_env_execute(sage_env *env)
{
    int rc = sage_env_submit(env);
    if (rc != 0)
        return rc;
    return sage_env_wait(env, -1);
}

SAGE_API sage_job_state sage_env_state(const sage_env *env)
{
    if (!env || !env->job)
        return (env && env->err) ? SAGE_JOB_FAILED : SAGE_JOB_CREATED;
    return sage__job_state(env->job);
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

SAGE_API size_t sage_env_op_count(const sage_env *env) { return env ? env->nops : 0; }

SAGE_API const char *sage_env_op_name(const sage_env *env, size_t i)
{
    return (env && i < env->nops) ? env->ops[i]->name : NULL;
}

SAGE_API int sage_env_op_parallelism(const sage_env *env, size_t i)
{
    return (env && i < env->nops) ? env->ops[i]->parallelism : SAGE_EINVAL;
}
