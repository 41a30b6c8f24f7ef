/* jobmanager/requests.c - client requests: ping, submit (parked while the nodes are read), wait, list, status,
 * pause/resume/stop/cancel, logs, results, shutdown. docs/internals/protocol.md lists each with its reply.
 *
 * A live job is answered from memory. An ended job's rows come from the job store: its row from memory when
 * the store keeps it, its task rows (and an old job's row) read by the store's thread; meanwhile the
 * connection is parked (its later requests wait, so replies keep their order) and the loop goes on. */
#include <stdlib.h>
#include <string.h>

#include "jobmanager/launcher.h"
#include "util/err.h"
#include "util/escape.h"

#define STOP_TIMEOUT_MAX_MS 3600000

/* The request's "job_id": 0 (no such job) when missing or not an integer. */
static int64_t req_job_id(json_t *req)
{
    json_t *v = json_object_get(req, "job_id");
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void submit_now(jm *d, jm_conn *c, json_t *doc)
{
    char err[4096] = "";
    if (d->stop) { /* it waited for the nodes while the daemon began to stop */
        json_decref(doc);
        jm_send_error(c, SAGE_ESTATE, "the JobManager is stopping: no new job");
        return;
    }
    int64_t id = 0;
    int rc = jm_job_submit(d, doc, &id, err, sizeof err);
    if (rc != 0)
        jm_send_error(c, rc, "%s", err);
    else
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:I}", "job_id", (json_int_t)id));
}

static void submit(jm *d, jm_conn *c, json_t *req)
{
    json_t *doc = json_object_get(req, "job");
    if (!doc) {
        jm_send_error(c, SAGE_EPROTO, "submit without \"job\"");
        return;
    }
    char err[1024] = "";
    int r = d->launcher->refresh && !d->stop ? d->launcher->refresh(d, err, sizeof err) : 0;
    if (r < 0) {
        jm_send_error(c, SAGE_ESYS, "%s", err);
        return;
    }
    if (r == 0) {
        submit_now(d, c, json_incref(doc));
        return;
    }
    /* the node list is being read again: answer when it is in; this client's next frames wait too */
    jm_parked *p = calloc(1, sizeof *p);
    if (!p) {
        jm_send_error(c, SAGE_ENOMEM, "out of memory");
        return;
    }
    p->c = c;
    p->doc = json_incref(doc);
    jm_parked **pp = &d->parked;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
    c->parked = 1;
}

void jm_submits_resume(jm *d, int rc, const char *err)
{
    jm_parked *list = d->parked;
    d->parked = NULL;
    while (list) {
        jm_parked *p = list;
        list = p->next;
        jm_conn *c = p->c;
        c->parked = 0;
        if (rc != 0) {
            json_decref(p->doc);
            jm_send_error(c, rc, "%s", err);
        } else {
            submit_now(d, c, p->doc);
        }
        free(p);
        jm_conn_frames(d, c); /* what it sent meanwhile */
        if (d->parked) {
            /* that started a new read (no job is live): the rest wait for it, ahead of what just parked */
            jm_parked **pp = &list;
            while (*pp)
                pp = &(*pp)->next;
            *pp = d->parked;
            d->parked = list;
            return;
        }
    }
}

void jm_submits_forget(jm *d, jm_conn *c)
{
    for (jm_parked **pp = &d->parked; *pp;) {
        jm_parked *p = *pp;
        if (p->c == c) {
            *pp = p->next;
            json_decref(p->doc);
            free(p);
        } else {
            pp = &p->next;
        }
    }
    c->parked = 0;
}

/* ---- an ended job, from the job store ---- */

typedef void (*stored_fn)(jm *d, jm_conn *c, json_t *req, const sage__store_read *r);

typedef struct stored_req {
    jm *d;
    json_t *req;
    stored_fn fn;
} stored_req;

static void stored_answer(sage__store_read *r, void *arg)
{
    stored_req *q = arg;
    jm_conn *c = jm_conn_resume(q->d, q);
    if (c) {
        q->fn(q->d, c, q->req, r);
        jm_conn_frames(q->d, c); /* what it sent meanwhile */
    }
    json_decref(q->req);
    free(q);
}

/* fn with the request's job as the store has it (r->rc: 0 or SAGE_ENOTFOUND), its task rows too if tasks:
 * at once when memory holds what is needed, else once the store's thread read it. */
static void with_stored_job(jm *d, jm_conn *c, json_t *req, int tasks, stored_fn fn)
{
    sage__store_read r = {.id = req_job_id(req)};
    if (!tasks && (r.rc = sage__store_job_cached(d->store, r.id, &r.job)) != 1) {
        fn(d, c, req, &r);
        return;
    }
    stored_req *q = malloc(sizeof *q);
    if (q)
        *q = (stored_req){d, json_incref(req), fn};
    int rc = q ? sage__store_read_async(d->store, r.id, tasks, stored_answer, q) : SAGE_ENOMEM;
    if (rc != 0) {
        if (q)
            json_decref(q->req);
        free(q);
        jm_send_error(c, rc, "the job store cannot answer now (%s): try again", sage_strerror(rc));
        return;
    }
    c->deferred = q;
    c->parked = 1;
}

/* wait and status of an ended job: its end document. */
static void send_end(jm *d, jm_conn *c, json_t *req, const sage__store_read *r)
{
    if (r->rc == 0)
        jm_send_json(c, SAGE__MSG_OK, jm_job_end_json(d, &r->job, r->tasks, r->ntasks));
    else if (r->rc == SAGE_ENOTFOUND)
        jm_send_error(c, SAGE_ENOTFOUND, "no job %lld", (long long)r->id);
    else
        jm_send_error(c, r->rc, "job %lld: the job store could not be read (%s)", (long long)r->id,
                      sage_strerror(r->rc));
}

/* pause, resume, stop, cancel of a job that is not live. */
static void control_ended(jm *d, jm_conn *c, json_t *req, const sage__store_read *r)
{
    (void)d;
    (void)req;
    if (r->rc == 0)
        jm_send_error(c, SAGE_ESTATE, "job %lld already ended (%s)", (long long)r->id, r->job.state);
    else
        jm_send_error(c, SAGE_ENOTFOUND, "no job %lld", (long long)r->id);
}

/* Collected records of one operator: streamed (stream.c). */
static void results(jm *d, jm_conn *c, json_t *req)
{
    const char *name = json_string_value(json_object_get(req, "operator"));
    json_t *pj = json_object_get(req, "parallelism");
    json_int_t par = json_is_integer(pj) ? json_integer_value(pj) : 0;
    if (!name || !name[0] || strchr(name, '/') || par < 1 || par > SAGE_PARALLELISM_MAX) {
        jm_send_error(c, SAGE_EINVAL, "results: bad operator or parallelism");
        return;
    }
    jm_stream_results(d, c, req_job_id(req), name, (int)par);
}

/* pause, resume, stop (with "timeout_ms": the grace before what still runs is killed), cancel. */
static void control(jm *d, jm_conn *c, json_t *req, const char *op)
{
    char err[1024] = "";
    json_t *tj = json_object_get(req, "timeout_ms");
    json_int_t timeout = json_is_integer(tj) ? json_integer_value(tj) : -1;
    int rc;
    if (tj && (strcmp(op, "stop") != 0 || timeout < 0 || timeout > STOP_TIMEOUT_MAX_MS)) {
        rc = SAGE_EINVAL;
        sage__fmt(err, sizeof err, "\"timeout_ms\" goes with stop only, as a whole number 0..%d", STOP_TIMEOUT_MAX_MS);
    } else if (!jm_job_find(d, req_job_id(req))) {
        with_stored_job(d, c, req, 0, control_ended);
        return;
    } else if (json_object_get(req, "savepoint")) { /* the answer comes when the savepoint is durable */
        json_t *st = json_object_get(req, "savepoint_timeout_ms");
        const char *dir = json_string_value(json_object_get(req, "savepoint"));
        if (strcmp(op, "stop") != 0 || !dir || (st && (!json_is_integer(st) || json_integer_value(st) < 0))) {
            rc = SAGE_EINVAL;
            sage__fmt(err, sizeof err, "\"savepoint\" goes with stop only, as a directory path");
        } else if ((rc = jm_ckpt_savepoint(d, jm_job_find(d, req_job_id(req)), dir,
                                           st ? (int)json_integer_value(st) : -1, c, err, sizeof err)) == 0) {
            return;
        }
    } else {
        rc = jm_job_control(d, req_job_id(req), op, (int)timeout, err, sizeof err);
    }
    if (rc != 0)
        jm_send_error(c, rc, "%s", err);
    else
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b}", "ok", 1));
}

/* The log files of an ended job, from its task rows. */
typedef struct log_files {
    jm_log_file *v;
    size_t n, cap;
    sage__task_row *rows; /* the names the entries point into */
} log_files;

static int add_log_file(const sage__task_row *r, void *arg)
{
    log_files *f = arg;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        jm_log_file *v = realloc(f->v, cap * sizeof *v);
        sage__task_row *rows = realloc(f->rows, cap * sizeof *rows);
        if (v)
            f->v = v;
        if (rows)
            f->rows = rows;
        if (!v || !rows)
            return SAGE_ENOMEM;
        f->cap = cap;
    }
    f->rows[f->n] = *r;
    f->v[f->n] = (jm_log_file){r->task, r->instance, NULL};
    f->n++;
    return 0;
}

static void stream_logs(jm *d, jm_conn *c, json_t *req, log_files *f)
{
    jm_stream_logs(d, c, req_job_id(req), f->v, f->n, json_is_true(json_object_get(req, "follow")));
    free(f->v);
    free(f->rows);
}

/* The logs of an ended job: its task rows say which files. */
static void logs_ended(jm *d, jm_conn *c, json_t *req, const sage__store_read *r)
{
    log_files f = {0};
    if (r->rc != 0) {
        send_end(d, c, req, r); /* the error */
        return;
    }
    for (size_t t = 0; t < r->ntasks; t++)
        if (add_log_file(&r->tasks[t], &f) != 0)
            break;
    for (size_t t = 0; t < f.n; t++)
        f.v[t].op = f.rows[t].op;
    stream_logs(d, c, req, &f);
}

/* Every task's log, streamed (stream.c); with "follow", a live job's lines after that. */
static void logs(jm *d, jm_conn *c, json_t *req)
{
    jm_job *j = jm_job_find(d, req_job_id(req));
    if (!j) {
        with_stored_job(d, c, req, 1, logs_ended);
        return;
    }
    log_files f = {0};
    for (size_t t = 0; t < j->ntasks; t++)
        if (add_log_file(&(sage__task_row){.task = (int)t, .instance = j->tasks[t].instance}, &f) != 0)
            break;
    for (size_t t = 0; t < f.n; t++)
        f.v[t].op = j->tasks[t].op;
    stream_logs(d, c, req, &f);
}

/* Where a running job's service answers calls from outside the job (sage_client_call, `sage service call`):
 * its worker's Unix socket path or TCP address, and the job's secret its workers authenticate with. The caller
 * (who holds our token) then speaks to it directly. */
static void service_address(jm *d, jm_conn *c, json_t *req)
{
    int64_t id = req_job_id(req);
    const char *name = json_string_value(json_object_get(req, "service"));
    jm_job *j = jm_job_find(d, id);
    if (!name) {
        jm_send_error(c, SAGE_EPROTO, "service: the request names no \"service\"");
        return;
    }
    if (!j) {
        jm_send_error(c, SAGE_ENOTFOUND, "no running job %lld", (long long)id);
        return;
    }
    char names[512] = "";
    size_t used = 0;
    jm_task *k = NULL;
    for (size_t t = j->nflow; t < j->ntasks; t++) {
        const char *svc = j->tasks[t].op + 8; /* "service:" */
        if (strcmp(svc, name) == 0)
            k = &j->tasks[t];
        if (used + strlen(svc) + 8 < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s\"%s\"", used ? ", " : "", svc);
    }
    if (!k) {
        char shown[160];
        jm_send_error(c, SAGE_ENOSERVICE, "job %lld has no service \"%s\" (it has %s)", (long long)id,
                      sage__escape_str(shown, sizeof shown, name), used ? names : "none");
        return;
    }
    if (j->state != JJ_RUNNING && j->state != JJ_PAUSED) {
        jm_send_error(c, SAGE_ESTATE, "job %lld is %s: its services answer while it runs", (long long)id,
                      jm_job_state_name(j->state));
        return;
    }
    if (!k->said_hello || k->reported_done || k->exited || (d->data_plane == JM_DATA_TCP && !k->listen[0])) {
        jm_send_error(c, SAGE_ESTATE, "job %lld: service \"%s\" is %s", (long long)id, name,
                      k->said_hello ? "ending" : "still starting (try again)");
        return;
    }
    char where[PATH_MAX + 64];
    if (d->data_plane == JM_DATA_TCP)
        sage__strlcpy(where, k->listen, sizeof where);
    else
        sage__fmt(where, sizeof where, "%s/sock/%d.0", j->dir, k->chain);
    jm_send_json(c, SAGE__MSG_OK,
                 json_pack("{s:I,s:s,s:s,s:s,s:s}", "job_id", (json_int_t)id, "service", name, "data_plane",
                           d->data_plane == JM_DATA_TCP ? "tcp" : "unix", "address", where, "token", j->secret));
}

void jm_client_request(jm *d, jm_conn *c, json_t *req)
{
    const char *op = json_string_value(json_object_get(req, "op"));
    if (!op) {
        jm_send_error(c, SAGE_EPROTO, "request without \"op\"");
    } else if (strcmp(op, "ping") == 0) {
        jm_send_json(c, SAGE__MSG_OK, jm_ping_json(d));
    } else if (strcmp(op, "submit") == 0) {
        submit(d, c, req);
    } else if (strcmp(op, "wait") == 0 || strcmp(op, "status") == 0) {
        jm_job *j = jm_job_find(d, req_job_id(req));
        if (!j) {
            with_stored_job(d, c, req, 1, send_end); /* ended: its end document */
        } else if (op[0] == 'w') {
            c->job_id = j->id;
            c->waiting = 1; /* answered when the job ends */
        } else {
            jm_send_json(c, SAGE__MSG_OK, jm_job_status_json(d, j));
        }
    } else if (strcmp(op, "list") == 0) {
        jm_send_json(c, SAGE__MSG_OK, jm_job_list_json(d));
    } else if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0 || strcmp(op, "stop") == 0 ||
               strcmp(op, "cancel") == 0) {
        control(d, c, req, op);
    } else if (strcmp(op, "dashboard") == 0) { /* a one-time login address for a browser */
        char secret[SAGE__TOKEN_HEX + 1];
        if (jm_dashboard_login(d, secret, sizeof secret) != 0) {
            jm_send_error(c, SAGE_ESYS, "dashboard: no random bytes for a login secret");
        } else {
            char url[512];
            sage__fmt(url, sizeof url, "http://%s:%d/?token=%s", d->host, d->port, secret);
            jm_send_json(c, SAGE__MSG_OK, json_pack("{s:s,s:i}", "url", url, "valid_s", 120));
        }
    } else if (strcmp(op, "service") == 0) {
        service_address(d, c, req);
    } else if (strcmp(op, "logs") == 0) {
        logs(d, c, req);
    } else if (strcmp(op, "results") == 0) {
        results(d, c, req);
    } else if (strcmp(op, "shutdown") == 0) {
        jm_log(d, "shutdown requested by %s", c->peer);
        d->stop = 1;
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b}", "ok", 1));
    } else {
        jm_send_error(c, SAGE_EPROTO, "unknown request \"%s\"", op);
    }
}
