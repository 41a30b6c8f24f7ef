/* backend/client.c - the JobManager client backend: submit the plan, wait for the end, bring results home.
 *
 * Design note. A remote environment is an ordinary env whose plan is
 * compiled here (no placement: the JobManager places it) and shipped as the
 * plan document (plan/document.c) with this program's path, arguments,
 * working directory and environment. The JobManager relaunches the program
 * as one worker per task (see worker.c). When the job ends, the "wait"
 * reply carries every task's final metrics, which fill a local, thread-less
 * copy of the job so that sage_env_metric() works as in embedded mode;
 * collectors are filled from the records the workers' collect sinks wrote.
 * The job's result keeps the code the failing worker reported, so the same
 * pipeline fails with the same code embedded and remote.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "net/client.h"
#include "net/frame.h"
#include "sage/jobmanager.h"
#include "util/buf.h"

extern char **environ;

typedef struct client_backend {
    sage__backend b;
    sage_client *waiter; /* the connection on which "wait" was sent */
    int ended;
    int rc;
} client_backend;

static int connect_jm(const sage__backend *b, sage_client **c, char *err, size_t err_len)
{
    const sage__config *cfg = b->cfg;
    return sage_client_connect(cfg->jm_host[0] ? cfg->jm_host : "127.0.0.1", cfg->jm_port,
                               cfg->token_file[0] ? cfg->token_file : NULL, c, err, err_len);
}

/* This program, as the JobManager must start it again. */
static int program_doc(json_t *doc, int binding, char *err, size_t err_len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        sage__fmt(err, err_len, "cannot find this program's path: %s", strerror(errno));
        return SAGE_ESYS;
    }
    exe[n] = 0;
    json_t *argv = json_array();
    FILE *f = fopen("/proc/self/cmdline", "rbe");
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
    char hex[32], herr[256];
    if (!binding && sage__program_hash("/proc/self/exe", hex, sizeof hex, herr, sizeof herr) == 0)
        json_object_set_new(doc, "program_hash", json_string(hex)); /* a C program: it may be copied to the nodes */
    json_object_set_new(doc, "argv", argv);
    json_object_set_new(doc, "cwd", json_string(getcwd(cwd, sizeof cwd) ? cwd : "/"));
    json_object_set_new(doc, "env", env);
    return 0;
}

static int cl_submit(sage__backend *b)
{
    client_backend *cb = (client_backend *)b;
    const sage__config *cfg = b->cfg;
    int rc = sage__backend_compile(b);
    if (rc != 0)
        return rc;
    if (b->g->has_binding && b->g->binding.copy)
        return sage__errf(b->err, SAGE_EUNSUPPORTED,
                          "sage_env_set_binding: records that are handles (copy/drop) cannot leave this process; a "
                          "remote job's records must be bytes");
    json_t *doc = sage__plan_document(b->plan);
    if (!doc)
        return sage__errf(b->err, SAGE_ENOMEM, "out of memory writing the plan document");
    if (cfg->restore_from[0]) { /* the JobManager's workers start from that checkpoint */
        char abs[4096];
        if (cfg->restore_from[0] != '/' && getcwd(abs, sizeof abs - 1100))
            snprintf(abs + strlen(abs), sizeof abs - strlen(abs), "/%s", cfg->restore_from);
        else
            snprintf(abs, sizeof abs, "%s", cfg->restore_from);
        if (json_object_set_new(doc, "restore_from", json_string(abs)) != 0) {
            json_decref(doc);
            return sage__errf(b->err, SAGE_ENOMEM, "out of memory writing the plan document");
        }
    }
    if (cfg->ft.strategy != SAGE__FT_NONE) { /* the JobManager restarts the job (or refuses what it cannot do) */
        json_t *ft = sage__ft_json(&cfg->ft);
        if (!ft || json_object_set_new(doc, "fault_tolerance", ft) != 0) {
            json_decref(doc);
            return sage__errf(b->err, SAGE_ENOMEM, "out of memory writing the plan document");
        }
    }
    char err[4096];
    rc = program_doc(doc, b->g->has_binding, err, sizeof err);
    if (rc != 0) {
        json_decref(doc);
        return sage__errf(b->err, rc, "%s", err);
    }
    /* file sinks are shared by the workers, which append: truncate them once, here */
    for (size_t i = 0; i < b->g->nops; i++) {
        const sage__op *op = b->g->ops[i];
        if (op->builtin != SAGE__BUILTIN_FILE_SINK)
            continue;
        FILE *f = fopen(op->path, "we");
        if (!f) {
            json_decref(doc);
            return sage__errf(b->err, SAGE_EIO, "operator \"%s\": cannot open \"%s\" for writing: %s", op->name,
                              op->path, strerror(errno));
        }
        fclose(f);
    }
    json_t *req = json_pack("{s:s,s:o}", "op", "submit", "job", doc);
    char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    sage_client *c = NULL;
    char *reply = NULL;
    rc = txt ? connect_jm(b, &c, err, sizeof err) : SAGE_ENOMEM;
    if (rc == 0)
        rc = sage_client_request(c, txt, &reply, err, sizeof err);
    free(txt);
    if (rc != 0) {
        sage_client_close(c);
        return sage__errf(b->err, rc, "submitting to the JobManager at %s:%d: %s", cfg->jm_host, cfg->jm_port,
                          rc == SAGE_ENOMEM ? "out of memory" : err);
    }
    json_error_t jerr;
    json_t *r = json_loads(reply, 0, &jerr);
    free(reply);
    b->job_id = json_integer_value(json_object_get(r, "job_id"));
    json_decref(r);
    /* ask for the end right away: the answer waits in the socket until then */
    json_t *w = json_pack("{s:s,s:I}", "op", "wait", "job_id", (json_int_t)b->job_id);
    txt = json_dumps(w, JSON_COMPACT);
    json_decref(w);
    rc = txt ? sage__frame_send(sage__client_fd(c), SAGE__MSG_REQUEST, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc != 0) {
        sage_client_close(c);
        return sage__errf(b->err, rc, "the JobManager closed the connection after accepting job %lld",
                          (long long)b->job_id);
    }
    cb->waiter = c;
    /* a thread-less job: its tasks only hold the metrics the workers report */
    sage__job *job = sage__job_new(b->plan, cfg, b->plan->ntasks, 0);
    if (!job)
        return sage__errf(b->err, SAGE_ENOMEM, "out of memory");
    b->job = job;
    if ((rc = sage__build_all_tasks(job, 0)) != 0)
        return sage__errf(b->err, rc, "out of memory");
    return 0;
}

/* Add the complete records at the start of b ([u32 len, host order][len bytes] each) to instance i of the
 * collector and keep the incomplete rest. */
static int add_records(const sage__op *op, int i, sage__buf *b)
{
    size_t off = 0;
    int rc = 0;
    while (rc == 0 && b->len - off >= 4) {
        uint32_t len;
        memcpy(&len, b->p + off, 4);
        if (b->len - off - 4 < len)
            break;
        rc = sage__collector_add(op->collector, i, b->p + off + 4, len);
        off += 4 + (size_t)len;
    }
    sage__buf_consume(b, off);
    return rc;
}

/* Fill a collector from the records the workers' collect sinks wrote, as the JobManager streams them: DATA
 * frames [u32 BE instance][bytes of that instance's file], a record possibly split over frames, then OK
 * {"done": true, "bytes": N} or ERROR with the JobManager's reason. Records go into the collector as they
 * arrive: besides the collector this holds one frame and, per instance, one record not yet complete. */
static int fetch_results(sage__backend *b, const sage__op *op, sage_client *c, char *err, size_t err_len)
{
    int fd = sage__client_fd(c);
    json_t *req = json_pack("{s:s,s:I,s:s,s:i}", "op", "results", "job_id", (json_int_t)b->job_id, "operator", op->name,
                            "parallelism", op->parallelism);
    char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int rc = txt ? sage__frame_send(fd, SAGE__MSG_REQUEST, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc != 0)
        return rc;
    if ((rc = sage__collector_prepare(op->collector, op->parallelism)) != 0)
        return rc;
    sage__buf *tail = calloc((size_t)op->parallelism, sizeof *tail);
    if (!tail)
        return SAGE_ENOMEM;
    for (int i = 0; i < op->parallelism; i++) /* one incomplete record (at most the collector's limit) and a frame */
        sage__buf_init(&tail[i], sage__collector_max(op->collector) + 4 + SAGE__DATA_FRAME_MAX);
    uint64_t got = 0;
    for (;;) {
        sage__frame f;
        unsigned char *payload = NULL;
        if ((rc = sage__frame_recv(fd, SAGE__DATA_FRAME_MAX, &f, &payload, err, err_len)) != 0)
            break;
        if (f.type == SAGE__MSG_DATA) {
            uint32_t be = 0;
            if (f.len >= 4)
                memcpy(&be, payload, 4);
            uint32_t inst = ntohl(be);
            if (f.len < 4 || inst >= (uint32_t)op->parallelism) {
                sage__fmt(err, err_len, "a results frame names instance %u of %d", inst, op->parallelism);
                rc = SAGE_EPROTO;
            } else if ((rc = sage__buf_append(&tail[inst], payload + 4, f.len - 4)) == 0) {
                got += f.len - 4;
                rc = add_records(op, (int)inst, &tail[inst]);
            }
            free(payload);
            if (rc != 0)
                break;
            continue;
        }
        json_error_t jerr;
        json_t *r = json_loadb((const char *)payload, f.len, 0, &jerr);
        free(payload);
        json_t *bytes = json_object_get(r, "bytes");
        if (f.type == SAGE__MSG_ERROR) { /* the JobManager could not send them all: its reason */
            json_int_t code = json_integer_value(json_object_get(r, "code"));
            sage__fmt(err, err_len, "%s",
                      json_string_value(json_object_get(r, "message")) ?: "an error without a reason");
            rc = code < 0 ? (int)code : SAGE_EIO;
        } else if (f.type != SAGE__MSG_OK) {
            sage__fmt(err, err_len, "unexpected frame type %u among the results", f.type);
            rc = SAGE_EPROTO;
        } else if (json_is_integer(bytes) && (uint64_t)json_integer_value(bytes) != got) {
            sage__fmt(err, err_len, "received %llu bytes of the %lld the JobManager sent", (unsigned long long)got,
                      (long long)json_integer_value(bytes));
            rc = SAGE_EPROTO;
        }
        json_decref(r);
        break;
    }
    for (int i = 0; i < op->parallelism; i++) {
        if (rc == 0 && tail[i].len) {
            sage__fmt(err, err_len, "the records of instance %d end in the middle of a record", i);
            rc = SAGE_EPROTO;
        }
        sage__buf_free(&tail[i]);
    }
    free(tail);
    return rc;
}

static sage_job_state state_named(const char *state)
{
    if (!state)
        return SAGE_JOB_FAILED;
    if (strcmp(state, "finished") == 0)
        return SAGE_JOB_FINISHED;
    if (strcmp(state, "stopped") == 0)
        return SAGE_JOB_STOPPED;
    if (strcmp(state, "canceled") == 0)
        return SAGE_JOB_CANCELED;
    return SAGE_JOB_FAILED;
}

static int cl_wait(sage__backend *b, int timeout_ms)
{
    client_backend *cb = (client_backend *)b;
    sage__job *job = b->job;
    if (cb->ended)
        return cb->rc;
    char err[4096], *reply = NULL;
    int rc = sage_client_event(cb->waiter, timeout_ms, &reply, err, sizeof err);
    if (rc == SAGE_ETIMEDOUT)
        return rc;
    cb->ended = 1;
    job->ended = 1;
    if (rc != 0) {
        atomic_store(&job->state, SAGE_JOB_FAILED);
        cb->rc = sage__errf(b->err, rc, "lost the JobManager while waiting for job %lld: %s", (long long)b->job_id,
                            err);
        return cb->rc;
    }
    json_error_t jerr;
    json_t *end = json_loads(reply, 0, &jerr);
    free(reply);
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
    sage_job_state st = state_named(json_string_value(json_object_get(end, "state")));
    if (st == SAGE_JOB_FAILED) {
        /* the code the failing worker reported; older JobManagers send none */
        json_int_t code = json_integer_value(json_object_get(end, "code"));
        int known = code < 0 && strcmp(sage_err_name((int)code), "SAGE_UNKNOWN") != 0;
        cb->rc = sage__errf(b->err, known ? (int)code : SAGE_EUSER, "job %lld failed: %s", (long long)b->job_id,
                            error && *error ? error : "no reason given");
    } else if (st == SAGE_JOB_CANCELED) {
        cb->rc = SAGE_ECANCELED;
    }
    if (st == SAGE_JOB_FINISHED || st == SAGE_JOB_STOPPED)
        for (size_t o = 0; o < b->g->nops; o++) {
            const sage__op *op = b->g->ops[o];
            if (op->builtin == SAGE__BUILTIN_COLLECT_SINK &&
                (rc = fetch_results(b, op, cb->waiter, err, sizeof err)) != 0) {
                st = SAGE_JOB_FAILED;
                cb->rc = sage__errf(b->err, rc, "operator \"%s\": fetching collected records: %s", op->name,
                                    rc == SAGE_ETOOBIG ? "more than the collector's limit" : err);
                break;
            }
        }
    json_decref(end);
    atomic_store(&job->state, st);
    job->rc = cb->rc;
    sage_client_close(cb->waiter);
    cb->waiter = NULL;
    return cb->rc;
}

static int control(sage__backend *b, const char *action)
{
    sage_client *c = NULL;
    char err[1024], *reply = NULL;
    int rc = connect_jm(b, &c, err, sizeof err);
    if (rc == 0) {
        json_t *req = json_pack("{s:s,s:I}", "op", action, "job_id", (json_int_t)b->job_id);
        char *txt = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        rc = txt ? sage_client_request(c, txt, &reply, err, sizeof err) : SAGE_ENOMEM;
        free(txt);
        free(reply);
    }
    sage_client_close(c);
    return rc;
}

/* Stop with a savepoint: the JobManager answers once it is durable (or why it was not taken). */
static int cl_savepoint(sage__backend *b, const char *dir, int timeout_ms)
{
    if (!dir || !*dir)
        return sage__errf(b->err, SAGE_EINVAL, "sage_env_stop_with_savepoint: no directory given");
    char abs[4096];
    if (dir[0] != '/' && getcwd(abs, sizeof abs - 1100))
        snprintf(abs + strlen(abs), sizeof abs - strlen(abs), "/%s", dir);
    else
        snprintf(abs, sizeof abs, "%s", dir);
    sage_client *c = NULL;
    char err[1024] = "", *reply = NULL;
    int rc = connect_jm(b, &c, err, sizeof err);
    if (rc == 0) {
        json_t *req = json_pack("{s:s,s:I,s:s}", "op", "stop", "job_id", (json_int_t)b->job_id, "savepoint", abs);
        if (req && timeout_ms >= 0)
            json_object_set_new(req, "savepoint_timeout_ms", json_integer(timeout_ms));
        char *txt = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        rc = txt ? sage_client_request(c, txt, &reply, err, sizeof err) : SAGE_ENOMEM;
        free(txt);
        free(reply);
    }
    sage_client_close(c);
    if (rc != 0)
        return sage__errf(b->err, rc, "sage_env_stop_with_savepoint: %s", err);
    return 0;
}

static int cl_stop(sage__backend *b) { return control(b, "stop"); }
static int cl_cancel(sage__backend *b) { return control(b, "cancel"); }
static sage_job_state cl_state(const sage__backend *b) { return sage__job_state(b->job); }

static void cl_destroy(sage__backend *b)
{
    client_backend *cb = (client_backend *)b;
    sage__job_free(b->job); /* the remote job goes on; its threads are not ours */
    sage_client_close(cb->waiter);
    free(cb);
}

static const sage__backend_ops client_ops = {
    .name = "jobmanager client",
    .places = 0,
    .submit = cl_submit,
    .wait = cl_wait,
    .stop = cl_stop,
    .cancel = cl_cancel,
    .savepoint = cl_savepoint,
    .state = cl_state,
    .destroy = cl_destroy,
};

sage__backend *sage__backend_client(void)
{
    client_backend *cb = calloc(1, sizeof *cb);
    if (!cb)
        return NULL;
    cb->b.ops = &client_ops;
    return &cb->b;
}
