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
 */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "jobmanager/jm.h"
#include "net/sock.h"
#include "util/err.h"
#include "util/utf8.h"

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
}

void jm_on_worker_event(jm *d, jm_conn *c, json_t *ev)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks)
        return;
    jm_task *k = &j->tasks[c->task];
    const char *type = json_string_value(json_object_get(ev, "event"));
    json_t *m = json_object_get(ev, "metrics");
    if (m) {
        json_decref(k->metrics);
        k->metrics = json_incref(m);
    }
    if (type && strcmp(type, "done") == 0) {
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
    if (!k->reported_done && !k->exited && !k->killed_by_us && !j->cancel_requested && !j->stop_requested)
        jm_job_fail(d, j, JM_PRIO_GONE, SAGE_EIO,
                    "operator \"%s\" instance %d on %s lost its connection to the JobManager without a result "
                    "(its process or its host went away)",
                    k->op, k->instance, k->node[0] ? k->node : (k->host[0] ? k->host : "its host"));
}

void jm_workers_control(jm_job *j, const char *action)
{
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].ctl)
            jm_send_json(j->tasks[t].ctl, SAGE__MSG_EVENT,
                         json_pack("{s:s,s:s}", "event", "control", "action", action));
}
