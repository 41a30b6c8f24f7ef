/* remote/client.c - the client side of the JobManager: connections, remote environments, submit and wait.
 *
 * Design note. A remote environment is an ordinary env whose plan is
 * compiled here (no placement: the JobManager places it) and shipped as a
 * JSON document with the plan hash, this program's path, arguments,
 * working directory and environment. The JobManager relaunches the program
 * as one worker per task (see worker.c). When the job ends, the "wait"
 * reply carries every task's final metrics, which fill a local, thread-less
 * copy of the job so that sage_env_metric() works as in embedded mode;
 * collectors are filled from the records the workers' collect sinks wrote.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/sock.h"
#include "remote/remote.h"

extern char **environ;

struct sage_client {
    int fd;
};

SAGE_API int sage_client_connect(const char *host, int port, const char *token_file, sage_client **out, char *err,
                                 size_t err_len)
{
    char scratch[8];
    if (!err || !err_len)
        err = scratch, err_len = sizeof scratch;
    *out = NULL;
    char path[1200], token[SAGE__TOKEN_HEX + 1];
    if (token_file && *token_file)
        snprintf(path, sizeof path, "%s", token_file);
    else if (getenv("SAGE_TOKEN_FILE") && *getenv("SAGE_TOKEN_FILE"))
        snprintf(path, sizeof path, "%s", getenv("SAGE_TOKEN_FILE"));
    else {
        char home[1024];
        if (sage_home_dir(NULL, home, sizeof home) != 0) {
            snprintf(err, err_len, "the state directory path is too long");
            return SAGE_ETOOBIG;
        }
        snprintf(path, sizeof path, "%s/token", home);
    }
    int fd, rc;
    /* connect first: "nothing answers there" is a different problem from a bad token file */
    if ((rc = sage__tcp_connect(host && *host ? host : "127.0.0.1", port ? port : SAGE_JOBMANAGER_PORT, &fd, err,
                                err_len)) != 0)
        return rc;
    if ((rc = sage__token_read(path, token, sizeof token, err, err_len)) != 0) {
        close(fd);
        return rc;
    }
    sage_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return SAGE_ENOMEM;
    }
    c->fd = fd;
    json_t *hello = json_pack("{s:s,s:s,s:s}", "token", token, "role", "client", "version", sage_version());
    char *txt = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    char *reply = NULL;
    rc = txt ? sage__frame_send(fd, SAGE__MSG_HELLO, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc == 0)
        rc = sage_client_event(c, -1, &reply, err, err_len);
    free(reply);
    if (rc != 0) {
        sage_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

SAGE_API void sage_client_close(sage_client *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c);
}

/* One frame: OK/EVENT -> 0 and the JSON text; ERROR -> its code and message. */
SAGE_API int sage_client_event(sage_client *c, int timeout_ms, char **event, char *err, size_t err_len)
{
    char scratch[8];
    if (!err || !err_len)
        err = scratch, err_len = sizeof scratch;
    *event = NULL;
    if (timeout_ms >= 0) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
            ;
        if (r == 0) {
            snprintf(err, err_len, "no answer within %d ms", timeout_ms);
            return SAGE_ETIMEDOUT;
        }
    }
    sage__frame f;
    unsigned char *payload = NULL;
    int rc = sage__frame_recv(c->fd, SAGE__DATA_FRAME_MAX, &f, &payload, err, err_len);
    if (rc != 0)
        return rc;
    if (f.type == SAGE__MSG_ERROR) {
        json_error_t jerr;
        json_t *e = json_loads((const char *)payload, 0, &jerr);
        rc = (int)json_integer_value(json_object_get(e, "code"));
        snprintf(err, err_len, "%s", json_string_value(json_object_get(e, "message")) ?: "error without a message");
        json_decref(e);
        free(payload);
        return rc < 0 ? rc : SAGE_EPROTO;
    }
    if (f.type == SAGE__MSG_DATA) { /* raw frames are only read through results() */
        free(payload);
        snprintf(err, err_len, "unexpected data frame");
        return SAGE_EPROTO;
    }
    *event = (char *)payload;
    return 0;
}

SAGE_API int sage_client_request(sage_client *c, const char *request, char **reply, char *err, size_t err_len)
{
    *reply = NULL;
    int rc = sage__frame_send(c->fd, SAGE__MSG_REQUEST, request, (uint32_t)strlen(request));
    if (rc != 0) {
        if (err && err_len)
            snprintf(err, err_len, "the JobManager closed the connection");
        return rc;
    }
    return sage_client_event(c, -1, reply, err, err_len);
}

/* ---- remote environments ---- */

int sage__remote_init(sage_env *env, const char *host, int port, const char *token_file)
{
    if (!env->rt) {
        env->rt = calloc(1, sizeof *env->rt);
        if (!env->rt)
            return sage__env_fail(env, SAGE_ENOMEM, "out of memory");
    }
    snprintf(env->rt->host, sizeof env->rt->host, "%s", host && *host ? host : "127.0.0.1");
    env->rt->port = port ? port : SAGE_JOBMANAGER_PORT;
    if (token_file)
        snprintf(env->rt->token_file, sizeof env->rt->token_file, "%s", token_file);
    env->remote = getenv("SAGE_WORKER_SPEC") ? SAGE__ENV_WORKER : SAGE__ENV_CLIENT;
    return 0;
}

SAGE_API sage_env *sage_env_create_remote(const char *name, const char *host, int port, const char *config)
{
    sage_env *env = sage_env_create(name, config);
    if (env && env->remote == SAGE__ENV_EMBEDDED)
        sage__remote_init(env, host, port, env->rt ? env->rt->token_file : NULL);
    return env;
}

SAGE_API int64_t sage_env_job_id(const sage_env *env) { return env && env->rt ? env->rt->job_id : 0; }

SAGE_API int sage_is_worker(void) { return getenv("SAGE_WORKER_SPEC") != NULL; }

static json_t *res_doc(const sage_resources *r)
{
    json_t *o = json_object();
    if (r->num_cpus > 0)
        json_object_set_new(o, "num_cpus", json_real(r->num_cpus));
    if (r->num_gpus > 0)
        json_object_set_new(o, "num_gpus", json_real(r->num_gpus));
    if (r->memory)
        json_object_set_new(o, "memory", json_integer((json_int_t)r->memory));
    if (r->object_store_memory)
        json_object_set_new(o, "object_store_memory", json_integer((json_int_t)r->object_store_memory));
    if (r->ncustom) {
        json_t *cu = json_object();
        for (size_t i = 0; i < r->ncustom; i++)
            json_object_set_new(cu, r->custom[i].name, json_real(r->custom[i].amount));
        json_object_set_new(o, "resources", cu);
    }
    return o;
}

/* This program, as the JobManager must start it again. */
static int program_doc(json_t *doc, char *err, size_t err_len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(err, err_len, "cannot find this program's path: %s", strerror(errno));
        return SAGE_ESYS;
    }
    exe[n] = 0;
    json_t *argv = json_array();
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (f) {
        char arg[4096];
        size_t len = 0;
        int ch;
        while ((ch = fgetc(f)) != EOF) {
            if (ch == 0 || len == sizeof arg - 1) {
                arg[len] = 0;
                json_array_append_new(argv, json_string(arg));
                len = 0;
            } else {
                arg[len++] = (char)ch;
            }
        }
        fclose(f);
    }
    char cwd[4096];
    json_t *env = json_array();
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "SAGE_WORKER_", 12) != 0)
            json_array_append_new(env, json_string(*e));
    json_object_set_new(doc, "executable", json_string(exe));
    json_object_set_new(doc, "argv", argv);
    json_object_set_new(doc, "cwd", json_string(getcwd(cwd, sizeof cwd) ? cwd : "/"));
    json_object_set_new(doc, "env", env);
    return 0;
}

int sage__client_submit(sage_env *env)
{
    sage__plan *plan = env->plan;
    json_t *chains = json_array();
    for (size_t c = 0; c < plan->nchains; c++) {
        sage__chain *ch = &plan->chains[c];
        sage__op *head = ch->ops[0], *ro = ch->res_op ? ch->res_op : head;
        int producers = 0;
        for (size_t k = 0; k < head->ninputs; k++)
            producers += head->inputs[k].from->parallelism;
        json_array_append_new(chains, json_pack("{s:i,s:s,s:i,s:b,s:i,s:o}", "id", (int)c, "name", ro->name,
                                                "parallelism", ch->parallelism, "inputs", head->ninputs > 0,
                                                "producers", producers, "resources",
                                                ch->res_op ? res_doc(&ch->res_op->res) : json_object()));
    }
    json_t *doc = json_pack("{s:s,s:I,s:o}", "name", env->name, "plan_hash", (json_int_t)(plan->hash >> 1), "chains",
                            chains);
    char err[4096];
    int rc = program_doc(doc, err, sizeof err);
    if (rc != 0) {
        json_decref(doc);
        return sage__env_fail(env, rc, "%s", err);
    }
    /* file sinks are shared by the workers, which append: truncate them once, here */
    for (size_t i = 0; i < env->nops; i++)
        if (env->ops[i]->builtin == SAGE__BUILTIN_FILE_SINK) {
            FILE *f = fopen(env->ops[i]->path, "w");
            if (!f) {
                json_decref(doc);
                return sage__env_fail(env, SAGE_EIO, "operator \"%s\": cannot open \"%s\" for writing: %s",
                                      env->ops[i]->name, env->ops[i]->path, strerror(errno));
            }
            fclose(f);
        }
    json_t *req = json_pack("{s:s,s:o}", "op", "submit", "job", doc);
    char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    sage_client *c = NULL;
    char *reply = NULL;
    rc = txt ? sage_client_connect(env->rt->host, env->rt->port, env->rt->token_file, &c, err, sizeof err) : SAGE_ENOMEM;
    if (rc == 0)
        rc = sage_client_request(c, txt, &reply, err, sizeof err);
    free(txt);
    if (rc != 0) {
        sage_client_close(c);
        return sage__env_fail(env, rc, "submitting to the JobManager at %s:%d: %s", env->rt->host, env->rt->port, err);
    }
    json_error_t jerr;
    json_t *r = json_loads(reply, 0, &jerr);
    free(reply);
    env->rt->job_id = json_integer_value(json_object_get(r, "job_id"));
    json_decref(r);
    /* ask for the end right away: the answer waits in the socket until then */
    json_t *w = json_pack("{s:s,s:I}", "op", "wait", "job_id", (json_int_t)env->rt->job_id);
    txt = json_dumps(w, JSON_COMPACT);
    json_decref(w);
    rc = txt ? sage__frame_send(c->fd, SAGE__MSG_REQUEST, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc != 0) {
        sage_client_close(c);
        return sage__env_fail(env, rc, "the JobManager closed the connection after accepting job %lld",
                              (long long)env->rt->job_id);
    }
    env->rt->waiter = c;
    /* a thread-less job: its tasks only hold the metrics the workers report */
    sage__job *job = sage__job_new(env, plan->ntasks, 0);
    if (!job)
        return sage__env_fail(env, SAGE_ENOMEM, "out of memory");
    env->job = job;
    if ((rc = sage__build_all_tasks(env, job, 0)) != 0)
        return sage__env_fail(env, rc, "out of memory");
    job->ended = 0;
    return 0;
}

/* Fill a collector from the records the workers' collect sinks wrote. */
static int fetch_results(sage_env *env, sage__op *op, sage_client *c, char *err, size_t err_len)
{
    json_t *req = json_pack("{s:s,s:I,s:s,s:i}", "op", "results", "job_id", (json_int_t)env->rt->job_id, "operator",
                            op->name, "parallelism", op->parallelism);
    char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int rc = txt ? sage__frame_send(c->fd, SAGE__MSG_REQUEST, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc != 0)
        return rc;
    if ((rc = sage__collector_prepare(op->collector, op->parallelism)) != 0)
        return rc;
    /* per instance: the bytes of its file, possibly split over frames */
    unsigned char **acc = calloc((size_t)op->parallelism, sizeof *acc);
    size_t *alen = calloc((size_t)op->parallelism, sizeof *alen);
    if (!acc || !alen) {
        free(acc);
        free(alen);
        return SAGE_ENOMEM;
    }
    for (;;) {
        sage__frame f;
        unsigned char *payload = NULL;
        if ((rc = sage__frame_recv(c->fd, SAGE__DATA_FRAME_MAX, &f, &payload, err, err_len)) != 0)
            break;
        if (f.type != SAGE__MSG_DATA) {
            free(payload);
            break; /* OK: done */
        }
        uint32_t be;
        memcpy(&be, payload, 4);
        uint32_t inst = ntohl(be);
        if (f.len < 4 || inst >= (uint32_t)op->parallelism) {
            free(payload);
            rc = SAGE_EPROTO;
            break;
        }
        unsigned char *p = realloc(acc[inst], alen[inst] + f.len - 4);
        if (!p) {
            free(payload);
            rc = SAGE_ENOMEM;
            break;
        }
        memcpy(p + alen[inst], payload + 4, f.len - 4);
        acc[inst] = p;
        alen[inst] += f.len - 4;
        free(payload);
    }
    for (int i = 0; i < op->parallelism; i++) {
        size_t off = 0;
        while (rc == 0 && off + 4 <= alen[i]) {
            uint32_t len;
            memcpy(&len, acc[i] + off, 4);
            if (off + 4 + len > alen[i])
                break;
            rc = sage__collector_add(op->collector, i, acc[i] + off + 4, len);
            off += 4 + len;
        }
        free(acc[i]);
    }
    free(acc);
    free(alen);
    return rc;
}

int sage__client_wait(sage_env *env, int timeout_ms)
{
    sage__remote *rt = env->rt;
    sage__job *job = env->job;
    if (rt->ended)
        return rt->rc;
    char err[4096], *reply = NULL;
    int rc = sage_client_event(rt->waiter, timeout_ms, &reply, err, sizeof err);
    if (rc == SAGE_ETIMEDOUT)
        return rc;
    rt->ended = 1;
    job->ended = 1;
    if (rc != 0) {
        atomic_store(&job->state, SAGE_JOB_FAILED);
        rt->rc = sage__env_fail(env, rc, "lost the JobManager while waiting for job %lld: %s", (long long)rt->job_id, err);
        return rt->rc;
    }
    json_error_t jerr;
    json_t *end = json_loads(reply, 0, &jerr);
    free(reply);
    const char *state = json_string_value(json_object_get(end, "state"));
    const char *error = json_string_value(json_object_get(end, "error"));
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(end, "tasks"), i, t)
    {
        json_int_t k = json_integer_value(json_object_get(t, "task"));
        json_t *m = json_object_get(t, "metrics");
        if (k >= 0 && (size_t)k < job->ntasks && json_is_object(m))
            sage__metrics_import(&job->tasks[k], m);
    }
    sage_job_state st = !state                          ? SAGE_JOB_FAILED
                        : strcmp(state, "finished") == 0 ? SAGE_JOB_FINISHED
                        : strcmp(state, "stopped") == 0  ? SAGE_JOB_STOPPED
                        : strcmp(state, "canceled") == 0 ? SAGE_JOB_CANCELED
                                                         : SAGE_JOB_FAILED;
    if (st == SAGE_JOB_FAILED)
        rt->rc = sage__env_fail(env, SAGE_EUSER, "job %lld failed: %s", (long long)rt->job_id,
                                error && *error ? error : "no reason given");
    else if (st == SAGE_JOB_CANCELED)
        rt->rc = SAGE_ECANCELED;
    if (st == SAGE_JOB_FINISHED || st == SAGE_JOB_STOPPED)
        for (size_t o = 0; o < env->nops; o++)
            if (env->ops[o]->builtin == SAGE__BUILTIN_COLLECT_SINK &&
                (rc = fetch_results(env, env->ops[o], rt->waiter, err, sizeof err)) != 0) {
                st = SAGE_JOB_FAILED;
                rt->rc = sage__env_fail(env, rc, "operator \"%s\": fetching collected records: %s", env->ops[o]->name,
                                        rc == SAGE_ETOOBIG ? "more than the collector's limit" : err);
                break;
            }
    json_decref(end);
    atomic_store(&job->state, st);
    job->rc = rt->rc;
    sage_client_close(rt->waiter);
    rt->waiter = NULL;
    return rt->rc;
}

int sage__client_control(sage_env *env, const char *action)
{
    sage_client *c = NULL;
    char err[1024], *reply = NULL;
    int rc = sage_client_connect(env->rt->host, env->rt->port, env->rt->token_file, &c, err, sizeof err);
    if (rc == 0) {
        json_t *req = json_pack("{s:s,s:I}", "op", action, "job_id", (json_int_t)env->rt->job_id);
        char *txt = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        rc = txt ? sage_client_request(c, txt, &reply, err, sizeof err) : SAGE_ENOMEM;
        free(txt);
        free(reply);
    }
    sage_client_close(c);
    return rc;
}
