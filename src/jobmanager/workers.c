/* jobmanager/workers.c - the worker protocol: HELLO, reports and "done", the "peers" exchange, control, lost workers.
 *
 * Data plane. With config "data_plane": "tcp" (for workers on several
 * hosts) each worker whose chain has inputs listens on TCP itself, on the
 * address its control connection to us uses, and reports "listen":
 * "ADDR:PORT" in its HELLO. Once every task of the job has said HELLO, each
 * worker still connected gets one EVENT {"event": "peers", "peers":
 * {"<task>": "ADDR:PORT", ...}} and connects its routes; until then
 * producers wait (for us only: a worker whose control connection closes
 * gives up). A worker that dies first takes the normal failure path, and no
 * "peers" event is sent for a failed job.
 *
 * Liveness. Every frame a worker sends is a sign of life (k->seen_ms), and
 * a running worker sends a report every 500 ms from its control thread, so
 * its reports are its heartbeat. Two deadlines, checked every turn of the
 * loop (jm_workers_timers): from its launch to its first report (HELLO,
 * then the set-up of its task: "start_timeout_ms", 30 s by default, since
 * it covers the user's program up to sage_env_execute and, on Slurm, srun
 * starting the step), then between two reports ("heartbeat_timeout_ms",
 * 5 s). A worker past its deadline (stopped, hung, or on a host that no
 * longer answers) fails its job at the root priority, naming its operator,
 * instance, host, pid and how long it was silent, and every worker of the
 * job is killed. Before judging, whatever its connection holds is read:
 * a daemon that was slow itself must not blame a worker for it. When
 * several workers of a job are late at once, one that never said HELLO is
 * named before one that did (on the tcp plane the others wait for it).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "jobmanager/launcher.h"
#include "net/sock.h"
#include "util/err.h"
#include "util/time.h"
#include "util/utf8.h"

#define HEARTBEAT_MS_DEFAULT 5000 /* ten report intervals of a worker */
#define START_MS_DEFAULT 30000
#define STOP_MS_DEFAULT 10000
#define DEADLINE_MIN_MS 100
#define DEADLINE_MAX_MS 3600000

int jm_worker_config_key(const char *key)
{
    return strcmp(key, "heartbeat_timeout_ms") == 0 || strcmp(key, "start_timeout_ms") == 0 ||
           strcmp(key, "stop_timeout_ms") == 0;
}

int jm_worker_config(jm *d, const char *key, json_t *v, char *err, size_t err_len)
{
    int *slot = strcmp(key, "heartbeat_timeout_ms") == 0 ? &d->heartbeat_ms
                : strcmp(key, "start_timeout_ms") == 0   ? &d->start_ms
                                                         : &d->stop_ms;
    json_int_t ms = json_is_integer(v) ? json_integer_value(v) : -1;
    if (ms < (strcmp(key, "stop_timeout_ms") == 0 ? 0 : DEADLINE_MIN_MS) || ms > DEADLINE_MAX_MS) {
        sage__fmt(err, err_len, "config: \"%s\" must be a whole number of milliseconds, %d..%d", key,
                  strcmp(key, "stop_timeout_ms") == 0 ? 0 : DEADLINE_MIN_MS, DEADLINE_MAX_MS);
        return SAGE_ECONFIG;
    }
    *slot = (int)ms;
    d->stop_ms_set |= slot == &d->stop_ms; /* 0 is a valid grace: kill at once */
    return 0;
}

static int heartbeat_ms(const jm *d) { return d->heartbeat_ms ? d->heartbeat_ms : HEARTBEAT_MS_DEFAULT; }
static int start_ms(const jm *d) { return d->start_ms ? d->start_ms : START_MS_DEFAULT; }
int jm_stop_timeout_ms(const jm *d) { return d->stop_ms_set ? d->stop_ms : STOP_MS_DEFAULT; }

/* Every task said HELLO: give each connected worker the consumers' addresses. */
static void send_peers(jm *d, jm_job *j)
{
    json_t *peers = json_object();
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].listen[0]) {
            char key[24];
            sage__fmt(key, sizeof key, "%zu", t);
            json_object_set_new(peers, key, json_string(j->tasks[t].listen));
        }
    json_t *ev = json_pack("{s:s,s:o}", "event", "peers", "peers", peers);
    char *txt = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!txt) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ENOMEM, "out of memory sending the workers' data-plane addresses");
        return;
    }
    size_t len = strlen(txt);
    if (len > SAGE__CONTROL_FRAME_MAX) {
        free(txt);
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ETOOBIG,
                    "the workers' data-plane addresses (%zu bytes for %zu tasks) exceed the %u-byte control frame "
                    "limit",
                    len, j->ntasks, SAGE__CONTROL_FRAME_MAX);
        return;
    }
    j->peers_sent = 1;
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].ctl)
            jm_send(j->tasks[t].ctl, SAGE__MSG_EVENT, txt, len);
    free(txt);
    jm_log(d, "job %lld: all %zu workers reached us; data-plane addresses sent", (long long)j->id, j->ntasks);
}

/* Record where the worker runs and, on the tcp data plane, where it listens; once every task of its job has
 * said HELLO, send each worker the "peers" event. peer_host: the numeric address of its control connection. */
static void hello_recorded(jm *d, jm_job *j, jm_task *k, json_t *hello, const char *peer_host)
{
    k->said_hello = 1;
    sage__strlcpy(k->host, peer_host, sizeof k->host);
    json_t *pid = json_object_get(hello, "pid");
    if (json_is_integer(pid) && json_integer_value(pid) > 0 && json_integer_value(pid) <= INT32_MAX)
        k->worker_pid = (pid_t)json_integer_value(pid);
    if (d->data_plane != JM_DATA_TCP)
        return;
    const char *listen = json_string_value(json_object_get(hello, "listen"));
    if (k->has_inputs) {
        char h[128];
        int p = 0;
        if (!listen || strlen(listen) >= sizeof k->listen || sage__parse_hostport(listen, h, sizeof h, &p, 0) != 0 ||
            p == 0) {
            /* a worker that could not listen says why itself: its reason outranks this one */
            jm_job_fail(d, j, JM_PRIO_ECHO, SAGE_EPROTO,
                        "operator \"%s\" instance %d: its worker reported %s%s%s as its data-plane address; the tcp "
                        "data plane needs \"listen\": \"HOST:PORT\" in its HELLO",
                        k->op, k->instance, listen ? "\"" : "no \"listen\"", listen ? listen : "", listen ? "\"" : "");
            return;
        }
        sage__strlcpy(k->listen, listen, sizeof k->listen);
    }
    if (j->peers_sent || j->failed || j->cancel_requested)
        return;
    for (size_t t = 0; t < j->ntasks; t++)
        if (!j->tasks[t].said_hello || (j->tasks[t].has_inputs && !j->tasks[t].listen[0]))
            return;
    send_peers(d, j);
}

void jm_worker_hello(jm *d, jm_conn *c, json_t *hello)
{
    json_t *jid = json_object_get(hello, "job_id"), *tid = json_object_get(hello, "task");
    c->role = JM_WORKER;
    c->job_id = json_is_integer(jid) ? json_integer_value(jid) : 0;
    c->task = json_is_integer(tid) && json_integer_value(tid) >= 0 && json_integer_value(tid) <= INT32_MAX
                  ? (int)json_integer_value(tid)
                  : -1;
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks || j->tasks[c->task].ctl) {
        jm_log(d, "closing %s: worker hello for unknown job %lld task %d", c->peer, (long long)c->job_id, c->task);
        jm_send_error(c, SAGE_ENOTFOUND, "no such job task");
        c->role = JM_UNAUTH;
        c->closing = 1;
        return;
    }
    jm_task *k = &j->tasks[c->task];
    k->ctl = c;
    k->seen_ms = sage__mono_ms();
    if (k->state == JT_STARTING)
        k->state = JT_RUNNING;
    jm_send_json(c, SAGE__MSG_OK, jm_ping_json(d));
    /* the address other hosts reach this worker by, as its connection shows it */
    char host[64] = "";
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    if (getpeername(c->fd, (struct sockaddr *)&sa, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&sa, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
        host[0] = 0;
    hello_recorded(d, j, k, hello, host); /* after the OK: a "peers" event must follow it */
    /* what was asked of the job before this worker reached us */
    int service = (size_t)k->index >= j->nflow;
    if (service ? j->services_told : j->stop_requested || j->state == JJ_PAUSED)
        jm_send_json(c, SAGE__MSG_EVENT,
                     json_pack("{s:s,s:s}", "event", "control", "action",
                               service || j->stop_requested ? "stop" : "pause"));
}

/* ---- collected records streamed by a worker (spec "results": "stream") ---- */

/* Its "results" event names the collect sink: results/<op>.<instance> starts empty for this attempt. */
static void results_open(jm *d, jm_job *j, jm_task *k, const char *op)
{
    if (k->results)
        fclose(k->results);
    k->results = NULL;
    k->results_err[0] = 0;
    int plain = op && *op && strlen(op) < 128 && strcmp(op, ".") != 0 && strcmp(op, "..") != 0;
    for (const char *p = op; plain && *p; p++)
        plain = *p != '/' && (unsigned char)*p >= 0x20 && *p != 0x7f;
    if (!plain) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EPROTO,
                    "operator \"%s\" instance %d: its worker named results that cannot be a file", k->op, k->instance);
        return;
    }
    char path[PATH_MAX + 300];
    sage__fmt(path, sizeof path, "%s/results/%s.%d", j->dir, op, k->instance);
    int fd = jm_private_open(path, O_WRONLY | O_CREAT | O_TRUNC, k->results_err, sizeof k->results_err);
    if (fd >= 0 && !(k->results = fdopen(fd, "wb"))) {
        sage__fmt(k->results_err, sizeof k->results_err, "%s: %s", path, strerror(errno));
        close(fd);
    }
    if (!k->results)
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "operator \"%s\" instance %d: cannot keep its results: %s", op,
                    k->instance, k->results_err);
}

static void results_close(jm *d, jm_job *j, jm_task *k)
{
    if (!k->results)
        return;
    if (fclose(k->results) != 0 && !k->results_err[0]) {
        sage__fmt(k->results_err, sizeof k->results_err, "%s", strerror(errno));
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "operator \"%s\" instance %d: writing its results: %s", k->op,
                    k->instance, k->results_err);
    }
    k->results = NULL;
}

void jm_worker_results(jm *d, jm_conn *c, const unsigned char *data, size_t len)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks)
        return;
    jm_task *k = &j->tasks[c->task];
    k->seen_ms = sage__mono_ms();
    if (!k->results) { /* data without its "results" event first, or after a failure to keep them */
        if (!k->results_err[0])
            jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EPROTO,
                        "operator \"%s\" instance %d: its worker sent records before naming their collect sink", k->op,
                        k->instance);
        return;
    }
    if (fwrite(data, 1, len, k->results) != len) { /* a local file: the loop writes it as it writes logs */
        sage__fmt(k->results_err, sizeof k->results_err, "%s", strerror(errno));
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "operator \"%s\" instance %d: writing its results: %s", k->op,
                    k->instance, k->results_err);
        fclose(k->results);
        k->results = NULL;
    }
}

void jm_on_worker_event(jm *d, jm_conn *c, json_t *ev)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks)
        return;
    jm_task *k = &j->tasks[c->task];
    const char *type = json_string_value(json_object_get(ev, "event"));
    json_t *m = json_object_get(ev, "metrics");
    k->seen_ms = sage__mono_ms();
    if (type && (strcmp(type, "report") == 0 || strcmp(type, "done") == 0)) {
        k->reported = 1;
        j->seen_wall_ms = sage__wall_ms();
    }
    if (m) {
        json_decref(k->metrics);
        k->metrics = json_incref(m);
    }
    if (type && strcmp(type, "crash") == 0) { /* the worker is dying: which of its chain's operators crashed */
        const char *op = json_string_value(json_object_get(ev, "operator"));
        if (op)
            sage__strlcpy(k->crash_op, op, sizeof k->crash_op);
        return;
    }
    if (type && (strcmp(type, "captured") == 0 || strcmp(type, "committed") == 0)) {
        jm_ckpt_event(d, j, k, type, ev);
        return;
    }
    if (type && strcmp(type, "results") == 0) {
        results_open(d, j, k, json_string_value(json_object_get(ev, "operator")));
        return;
    }
    if (type && strcmp(type, "done") == 0) {
        results_close(d, j, k);
        k->reported_done = 1;
        k->done_ok = json_is_true(json_object_get(ev, "ok"));
        const char *e = json_string_value(json_object_get(ev, "error"));
        sage__strlcpy(k->error, e ? e : "", sizeof k->error);
        sage__utf8_clean(k->error, strlen(k->error));
        json_t *code = json_object_get(ev, "code");
        k->done_code = json_is_integer(code) && json_integer_value(code) >= INT32_MIN &&
                               json_integer_value(code) <= INT32_MAX
                           ? (int)json_integer_value(code)
                           : SAGE_EPROTO;
    }
}

void jm_on_worker_gone(jm *d, jm_conn *c)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks || j->tasks[c->task].ctl != c)
        return;
    jm_task *k = &j->tasks[c->task];
    k->ctl = NULL;
    /* A worker whose connection closes before it reported a result, while its process is
     * not known to have ended: its host may be gone (a local crash is named more precisely
     * by its exit status, which outranks this; a lost Slurm node may never report one). */
    if (!k->reported_done && !k->exited && !k->killed_by_us && !j->cancel_requested && !j->stop_requested) {
        k->conn_lost = 1; /* its host may be gone: see lost_nodes (jobs.c) */
        jm_job_fail(d, j, JM_PRIO_GONE, SAGE_EIO,
                    "operator \"%s\" instance %d on %s lost its connection to the JobManager without a result "
                    "(its process or its host went away)",
                    k->op, k->instance, k->node[0] ? k->node : (k->host[0] ? k->host : "its host"));
    }
}

void jm_workers_control(jm_job *j, const char *action)
{
    for (size_t t = 0; t < j->nflow; t++) /* a service runs until the tasks that call it ended */
        if (j->tasks[t].ctl)
            jm_send_json(j->tasks[t].ctl, SAGE__MSG_EVENT,
                         json_pack("{s:s,s:s}", "event", "control", "action", action));
}

/* ---- liveness ---- */

/* When the task's worker must be heard from next (sage__mono_ms). */
static int64_t task_due(const jm *d, const jm_task *k)
{
    return k->reported ? k->seen_ms + heartbeat_ms(d) : k->launched_ms + start_ms(d);
}

static void fail_late(jm *d, jm_job *j, jm_task *k, int64_t now)
{
    const char *host = d->launcher->task_host(d, k);
    long long quiet = (long long)(now - (k->seen_ms ? k->seen_ms : k->launched_ms));
    k->silent = 1;
    if (!k->said_hello)
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ETIMEDOUT,
                    "operator \"%s\" instance %d on %s (pid %d) did not reach the JobManager within %d ms of its "
                    "launch (no HELLO: its program is stuck before sage_env_execute, or stopped)",
                    k->op, k->instance, host, (int)k->pid, start_ms(d));
    else if (!k->reported)
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ETIMEDOUT,
                    "operator \"%s\" instance %d on %s (pid %d) reached the JobManager but did not start its task "
                    "within %d ms of its launch (silent for %lld ms: stuck in its set-up, or stopped)",
                    k->op, k->instance, host, (int)k->pid, start_ms(d), quiet);
    else if (k->reported_done)
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ETIMEDOUT,
                    "operator \"%s\" instance %d on %s (pid %d) reported the end of its task %lld ms ago but its "
                    "process has not exited",
                    k->op, k->instance, host, (int)k->pid, quiet);
    else
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ETIMEDOUT,
                    "operator \"%s\" instance %d on %s (pid %d) has been silent for %lld ms (no report within the "
                    "%d ms heartbeat deadline): its process is stopped or hung, or its host is unreachable",
                    k->op, k->instance, host, (int)k->pid, quiet, heartbeat_ms(d));
}

int jm_workers_timers(jm *d, int64_t now)
{
    int64_t next = -1;
    for (jm_job *j = d->jobs; j; j = j->next) {
        if (j->failed || j->cancel_requested)
            continue; /* its workers are being killed already */
        jm_task *late = NULL;
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            /* not started, ended, being killed, or lost (its lost connection is a failure of its own) */
            if (k->pid <= 0 || k->exited || k->killed_by_us || (k->said_hello && !k->ctl))
                continue;
            if (task_due(d, k) <= now && k->ctl && k->ctl->fd >= 0)
                jm_conn_drain(d, k->ctl); /* what it sent while we were busy */
            int64_t due = task_due(d, k);
            if (due > now) {
                if (next < 0 || due - now < next)
                    next = due - now;
            } else if (!late || (late->said_hello && !k->said_hello)) {
                late = k; /* one that never reached us first: on the tcp plane the others wait for it */
            }
        }
        if (late && !j->failed && !j->cancel_requested)
            fail_late(d, j, late, now);
    }
    return (int)next;
}
