/* backend/worker.c - a worker process: the user's program relaunched by the JobManager to run one task.
 *
 * Design note. C functions cannot travel over a socket, so the JobManager
 * starts the submitting program again with SAGE_WORKER_JOB, SAGE_WORKER_TASK
 * (which task is ours), the JobManager's address and the job's secret; the
 * job's spec comes over a connection (worker_link.c: no file is shared). The program
 * declares its pipeline as usual; when it calls sage_env_execute (or
 * submit) we land here instead of in the embedded runtime:
 *   1. compile the same plan and compare its hash with the submitted one
 *      (a program whose graph depends on something that changed between
 *      runs is refused with both hashes in the message);
 *   2. report to the JobManager over an authenticated control connection;
 *   3. build our one task exactly as embedded mode does, except that every
 *      consumer instance is a socket channel (runtime/netchan.c) reached over
 *      the job's Unix sockets, and our own input queue is fed by one
 *      receiving thread per producer connection on the listener the
 *      JobManager handed us as fd 3. On the tcp data plane (spec
 *      "data_plane": "tcp", for workers on several hosts) we open that
 *      listener ourselves before the HELLO, on the address our control
 *      connection uses (the one other hosts reach us by) and an ephemeral
 *      port, report it as "listen" in the HELLO, and wait for the
 *      JobManager's "peers" event (every consumer's address) before
 *      connecting our routes; the JobManager alone bounds that wait: if
 *      its connection closes we give up with the reason;
 *   4. run the task on this thread; a control thread answers pause, resume
 *      and stop, and sends a metrics report every 500 ms;
 *   5. send the final report and exit. sage_env_execute never returns in a
 *      worker: code after it belongs to the submitting process only.
 * A task whose chain index follows the plan's chains is one of the job's
 * services instead (spec "service": its name): that process starts only
 * that service and answers the other workers' calls (runtime/svcnet.c)
 * until the JobManager says the job's tasks are done; every other worker
 * reaches each service through one connection (connect_service).
 * A program may run several jobs, one after the other: every env whose job
 * is not ours (another name, or another plan hash) is skipped before step 1
 * (its execute returns 0 at once, with nothing collected) until the one the
 * JobManager started us for comes. A program that ends without executing
 * it is reported at exit, with the jobs it did execute: that is how a graph
 * that is not built deterministically shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/crash.h"
#include "runtime/checkpoint.h"
#include "net/frame.h"
#include "net/sock.h"
#include "runtime/netchan.h"
#include "runtime/svcnet.h"
#include "util/json.h"
#include "util/num.h"
#include "util/utf8.h"

#define REPORT_MS 500

typedef struct worker {
    sage__backend b; /* first: the backend view */
    json_t *spec;
    int64_t job_id;
    int results_stream; /* spec "results": "stream": collected records go to the JobManager at the end */
    int task_index;
    char token[SAGE__TOKEN_HEX + 1];
    char dir[1200];
    int ctl_fd;
    pthread_mutex_t send_mu; /* the control connection is written by two threads */
    int cancel_fd;
    sage__job *job;
    sage__task *task;
    sage__assign assign;
    int cpus[SAGE__NODE_CPUS_MAX], gpus[SAGE__NODE_GPUS_MAX];
    sage__netrecv *recv;
    int tcp;               /* the tcp data plane */
    int listen_fd;         /* tcp: our data-plane listener (-1: none) */
    char listen_addr[128]; /* tcp: "ADDR:PORT" of listen_fd, as reported in our HELLO */
    json_t *peers;         /* tcp: task index -> "ADDR:PORT" of every consumer, from the JobManager */
    char route_err[1024];  /* why the last consumer connection failed */
    pthread_t ctl_thread;
    _Atomic int finished;
    int skipped; /* not our job: this env's execute returns 0 at once */
    int wake_fd; /* eventfd: the task ended, the control thread must not wait out its report interval */
    pthread_mutex_t snap_mu;
    char *snap; /* the task thread's latest snapshot (JSON text: jansson values are not shared across threads) */
    sage__loaded ck_from; /* the checkpoint this attempt restores (spec "restore"), our part only */
    sage__restore ck_restore;
    uint64_t plan_hash;        /* the full plan hash (checkpoint manifests carry it) */
    sage__svc_place svc_place; /* where the job's services run */
    _Atomic int svc_ready;     /* a service's own process: its service started (the reports may read it) */
} worker;

static void send_event(worker *w, json_t *ev)
{
    char *txt = json_dumps(ev, JSON_COMPACT);
    json_decref(ev);
    if (!txt)
        return;
    pthread_mutex_lock(&w->send_mu);
    if (w->ctl_fd >= 0)
        sage__frame_send(w->ctl_fd, SAGE__MSG_EVENT, txt, (uint32_t)strlen(txt));
    pthread_mutex_unlock(&w->send_mu);
    free(txt);
}

/* Give up before the task could run: say why (to the JobManager if we
 * reached it, and on stderr, which it keeps), then exit non-zero. */
static _Noreturn void die(worker *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static _Noreturn void die(worker *w, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sage worker: %s\n", msg);
    sage__utf8_clean(msg, strlen(msg));
    if (w && w->ctl_fd >= 0)
        send_event(w, json_pack("{s:s,s:b,s:i,s:s}", "event", "done", "ok", 0, "code", code, "error", msg));
    fflush(NULL);
    exit(3);
}

static void net_fail(void *arg, const char *why)
{
    worker *w = arg;
    sage__job_fail(w->job, SAGE_EIO, "operator \"%s\" instance %d: %s", w->task->ops[0].op->name, w->task->instance,
                   why);
    uint64_t one = 1;
    (void)!write(w->cancel_fd, &one, sizeof one);
}

/* The spec's task index of chain `chain` instance `instance` (-1: none). */
static int task_of(worker *w, int chain, int instance)
{
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(w->spec, "tasks"), i, t)
    {
        if (json_integer_value(json_object_get(t, "chain")) == chain &&
            json_integer_value(json_object_get(t, "instance")) == instance)
            return (int)json_integer_value(json_object_get(t, "task"));
    }
    return -1;
}

/* Batches between processes: a quarter of the channel window, 16..64 KiB (fewer
 * frames and credits than the in-process default). Sender and receiver compute
 * the same size from the same config, so received batches are recycled. */
static size_t remote_batch(const sage__config *cfg)
{
    size_t b = cfg->channel_bytes / 4;
    if (b < cfg->batch_bytes)
        b = cfg->batch_bytes;
    if (b > ((size_t)64 << 10))
        b = (size_t)64 << 10;
    return b;
}

static sage__chan *remote_target(void *arg, const sage__chain *cch, int instance, int input)
{
    worker *w = arg;
    const char *head = sage__chain_op(w->b.plan, cch, 0)->name;
    char path[1300], err[512];
    sage__net_peer peer = {.token = w->token,
                           .job_id = w->job_id,
                           .from_task = w->task_index,
                           .window = w->b.cfg->channel_bytes,
                           .batch_bytes = remote_batch(w->b.cfg),
                           .cancel_fd = w->cancel_fd,
                           .canceled = &w->job->canceled,
                           .fail = net_fail,
                           .fail_arg = w};
    sage__chan *ch = NULL;
    int rc;
    if (w->tcp) {
        int t = task_of(w, cch->id, instance);
        char key[24];
        snprintf(key, sizeof key, "%d", t);
        const char *addr = json_string_value(json_object_get(w->peers, key));
        if (!addr) {
            snprintf(err, sizeof err,
                     "the JobManager gave no data-plane address for operator \"%s\" instance %d (task %d)", head,
                     instance, t);
            rc = SAGE_EPROTO;
        } else {
            rc = sage__net_connect_tcp(addr, &peer, &ch, err, sizeof err);
        }
    } else {
        snprintf(path, sizeof path, "%s/sock/%d.%d", w->dir, cch->id, instance);
        rc = sage__net_connect(path, &peer, &ch, err, sizeof err);
    }
    if (rc == 0 && sage__job_own(w->job, ch) != 0) {
        ch->ops->destroy(ch);
        snprintf(err, sizeof err, "out of memory");
        rc = SAGE_ENOMEM;
    }
    if (rc != 0) {
        snprintf(w->route_err, sizeof w->route_err, "operator \"%.200s\" instance %d: %s", head, instance, err);
        fprintf(stderr, "sage worker: %s\n", w->route_err);
        return NULL;
    }
    return ch;
}

static void take_snapshot(sage__task *t)
{
    worker *w = t->snap_arg;
    json_t *s = sage__metrics_snapshot(t);
    char *text = json_dumps(s, JSON_COMPACT);
    json_decref(s);
    pthread_mutex_lock(&w->snap_mu);
    free(w->snap);
    w->snap = text;
    pthread_mutex_unlock(&w->snap_mu);
}

/* ---- checkpoints (the JobManager coordinates: jobmanager/checkpoints.c) ---- */

typedef struct ck_req {
    worker *w;
    uint64_t id;
    int timeout_ms;
    char dir[1200];
} ck_req;

/* Checkpoint id: our task captures at the barrier (sources stay there until "release"), our part goes to disk,
 * the JobManager hears of it. A thread of its own: the control thread keeps reporting meanwhile. */
static void *ckpt_main(void *arg)
{
    ck_req *r = arg;
    worker *w = r->w;
    sage__ckpt_taken taken;
    char why[1400] = "";
    json_t *ev = NULL;
    int rc = sage__job_checkpoint(w->job, r->id, r->timeout_ms, 1, &taken);
    if (rc == 0) {
        json_t *sinks = json_array();
        for (size_t i = 0; i < taken.nsinks; i++)
            json_array_append_new(sinks, json_pack("{s:i,s:I,s:s}", "op", taken.sinks[i].op, "length",
                                                   (json_int_t)taken.sinks[i].length, "path", taken.sinks[i].path));
        if (!taken.parts[0]) {
            ev = json_pack("{s:s,s:I,s:b,s:o,s:o}", "event", "captured", "id", (json_int_t)r->id, "finished", 1,
                           "file_sinks", sinks, "plan_hash", sage__json_hex64(w->plan_hash));
        } else if (sage__ckpt_mkdirs(r->dir, why, sizeof why) == 0 &&
                   sage__ckpt_write_part(r->dir, (size_t)w->task_index, taken.parts[0], why, sizeof why) == 0) {
            ev = json_pack("{s:s,s:I,s:I,s:o,s:o,s:o}", "event", "captured", "id", (json_int_t)r->id, "bytes",
                           (json_int_t)taken.parts[0]->len, "checksum",
                           sage__json_hex64(sage__part_checksum(taken.parts[0]->p, taken.parts[0]->len)), "file_sinks",
                           sinks, "plan_hash", sage__json_hex64(w->plan_hash));
        } else {
            json_decref(sinks);
        }
        sage__ckpt_taken_free(&taken);
    } else {
        sage__fmt(why, sizeof why, "%s",
                  rc == SAGE_ETIMEDOUT ? "its task did not reach the barrier in time" : sage_strerror(rc));
    }
    if (!ev)
        ev = json_pack("{s:s,s:I,s:s}", "event", "captured", "id", (json_int_t)r->id, "error", why);
    send_event(w, ev);
    free(r);
    return NULL;
}

/* Commit checkpoint id: its manifest, then the older ones beyond what is kept go. */
static void ckpt_commit(worker *w, json_t *ev)
{
    json_int_t id = json_integer_value(json_object_get(ev, "id"));
    const char *dir = json_string_value(json_object_get(ev, "dir"));
    const char *text = json_string_value(json_object_get(ev, "manifest"));
    const char *rundir = json_string_value(json_object_get(ev, "rundir"));
    json_int_t keep = json_integer_value(json_object_get(ev, "keep"));
    char why[1400] = "";
    int rc = dir && text ? sage__ckpt_commit(dir, text, strlen(text), why, sizeof why) : SAGE_EPROTO;
    if (rc == 0 && rundir && keep > 0)
        sage__ckpt_prune(rundir, (size_t)keep);
    send_event(w, rc == 0 ? json_pack("{s:s,s:I,s:b}", "event", "committed", "id", id, "ok", 1)
                          : json_pack("{s:s,s:I,s:b,s:s}", "event", "committed", "id", id, "ok", 0, "error",
                                      why[0] ? why : "a malformed commit request"));
}

/* A control event from the JobManager (pause, resume, stop, checkpoints); others are ignored. */
static void apply_control(worker *w, json_t *ev)
{
    const char *action = json_string_value(json_object_get(ev, "action"));
    if (!action)
        return;
    if (!w->task) { /* a service's own process: it ends when told, once the job's tasks are done */
        if (strcmp(action, "stop") == 0)
            sage__job_stop(w->job);
        return;
    }
    if (strcmp(action, "checkpoint") == 0) {
        ck_req *r = calloc(1, sizeof *r);
        const char *dir = json_string_value(json_object_get(ev, "dir"));
        pthread_t th;
        if (!r || !dir) {
            free(r);
            return;
        }
        r->w = w;
        r->id = (uint64_t)json_integer_value(json_object_get(ev, "id"));
        r->timeout_ms = (int)json_integer_value(json_object_get(ev, "timeout_ms"));
        sage__strlcpy(r->dir, dir, sizeof r->dir);
        if (pthread_create(&th, NULL, ckpt_main, r) == 0)
            pthread_detach(th);
        else
            free(r);
        return;
    }
    if (strcmp(action, "release") == 0) {
        sage__job_release(w->job, (uint64_t)json_integer_value(json_object_get(ev, "id")),
                          json_is_true(json_object_get(ev, "stop")));
        return;
    }
    if (strcmp(action, "commit") == 0) {
        ckpt_commit(w, ev);
        return;
    }
    if (strcmp(action, "stop") == 0)
        sage__job_stop(w->job); /* reaches a paused source too */
    else if (strcmp(action, "pause") == 0)
        sage__job_pause(w->job, 1);
    else if (strcmp(action, "resume") == 0)
        sage__job_pause(w->job, 0);
}

/* tcp data plane: listen where the JobManager sees us, on an ephemeral
 * port. Returns 0, or an error with the reason in err. */
static int tcp_listen_here(worker *w, int backlog, char *err, size_t err_len)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    char host[128]; /* numeric: an IPv6 address with a scope fits */
    if (getsockname(w->ctl_fd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, err_len, "cannot learn the address of our connection to the JobManager: %s", strerror(errno));
        return SAGE_ESYS;
    }
    int e = getnameinfo((struct sockaddr *)&sa, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    if (e != 0) {
        snprintf(err, err_len, "cannot format the address of our connection to the JobManager: %s", gai_strerror(e));
        return SAGE_ESYS;
    }
    char lerr[512];
    if (sage__tcp_listen(host, 0, backlog, &w->listen_fd, lerr, sizeof lerr) != 0) {
        snprintf(err, err_len, "cannot listen for data connections: %s", lerr);
        return SAGE_ESYS;
    }
    sl = sizeof sa;
    if (getsockname(w->listen_fd, (struct sockaddr *)&sa, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&sa, sl, NULL, 0, lerr, 32, NI_NUMERICSERV) != 0) {
        lerr[0] = 0;
        snprintf(err, err_len, "cannot learn the port of our data listener on %s: %s", host, strerror(errno));
        close(w->listen_fd);
        w->listen_fd = -1;
        return SAGE_ESYS;
    }
    if ((size_t)snprintf(w->listen_addr, sizeof w->listen_addr, "%s:%.31s", host, lerr) >= sizeof w->listen_addr) {
        snprintf(err, err_len, "our data listener's address %s:%.31s is too long", host, lerr);
        close(w->listen_fd);
        w->listen_fd = -1;
        return SAGE_ETOOBIG;
    }
    return 0;
}

/* tcp data plane: wait for the "peers" event, applying control events that
 * come first. Only the JobManager bounds the wait: if it goes away, so do we. */
static void wait_peers(worker *w)
{
    while (!w->peers) {
        sage__frame f;
        unsigned char *payload = NULL;
        char why[256];
        if (sage__frame_recv(w->ctl_fd, SAGE__CONTROL_FRAME_MAX, &f, &payload, why, sizeof why) != 0)
            die(w, SAGE_EIO, "lost the JobManager while waiting for the other workers' data-plane addresses: %s", why);
        json_error_t jerr;
        json_t *ev = f.type == SAGE__MSG_EVENT ? json_loads((const char *)payload, 0, &jerr) : NULL;
        free(payload);
        const char *type = json_string_value(json_object_get(ev, "event"));
        if (type && strcmp(type, "peers") == 0) {
            if (!json_is_object(json_object_get(ev, "peers"))) {
                json_decref(ev);
                die(w, SAGE_EPROTO, "the JobManager's \"peers\" event has no \"peers\" object");
            }
            w->peers = json_incref(json_object_get(ev, "peers"));
        } else if (type && strcmp(type, "control") == 0) {
            apply_control(w, ev);
        }
        json_decref(ev);
    }
}

/* A service's own process reports its service's counts in place of operator metrics. */
static json_t *service_metrics(worker *w)
{
    size_t queued = 0;
    uint64_t served = atomic_load(&w->svc_ready) ? sage__service_served(w->job, (size_t)w->svc_place.host, &queued) : 0;
    return json_pack("{s:s,s:I,s:I,s:[]}", "service", w->job->g->services[w->svc_place.host].name, "requests",
                     (json_int_t)served, "queued", (json_int_t)queued, "operators");
}

/* A connection to service i's own process: the spec's "services" names its task; our Unix socket path or the
 * address from the "peers" event reaches it. */
static int connect_service(void *arg, size_t i, sage__svc_remote **out, char *err, size_t err_len)
{
    worker *w = arg;
    const sage__service_decl *d = &w->job->g->services[i];
    json_t *sv;
    size_t k;
    int task = -1, chain = -1;
    json_array_foreach(json_object_get(w->spec, "services"), k, sv)
    {
        const char *n = json_string_value(json_object_get(sv, "name"));
        if (n && strcmp(n, d->name) == 0)
            task = (int)json_integer_value(json_object_get(sv, "task"));
    }
    json_t *tj = task >= 0 ? json_array_get(json_object_get(w->spec, "tasks"), (size_t)task) : NULL;
    if (tj)
        chain = (int)json_integer_value(json_object_get(tj, "chain"));
    if (chain < 0) {
        sage__fmt(err, err_len, "the job spec gives it no process (was the job submitted by an older SAGE?)");
        return SAGE_EPLAN;
    }
    char where[1300];
    if (w->tcp) {
        char key[24];
        snprintf(key, sizeof key, "%d", task);
        const char *addr = json_string_value(json_object_get(w->peers, key));
        if (!addr) {
            sage__fmt(err, err_len, "the JobManager gave no address for its process (task %d)", task);
            return SAGE_EPROTO;
        }
        sage__strlcpy(where, addr, sizeof where);
    } else {
        snprintf(where, sizeof where, "%s/sock/%d.0", w->dir, chain);
    }
    return sage__svc_remote_connect(where, w->tcp, d->name, w->token, w->job_id, w->task_index, d->opts.queue_capacity,
                                    out, err, err_len);
}

static void *control_main(void *arg);
static void assignment_from_spec(worker *w, json_t *t);

/* This process is service `svc`'s one instance for the job: start it, answer the other workers' calls until
 * the JobManager says the job's tasks are done (or the job fails), then report and exit. */
static _Noreturn void serve_service(worker *w, sage__backend *b, json_t *tj, size_t svc)
{
    const sage__graph *g = b->g;
    const char *want = json_string_value(json_object_get(tj, "service"));
    if (svc >= g->nservices || !want || strcmp(want, g->services[svc].name) != 0)
        die(w, SAGE_EPLAN, "task %d is service \"%s\", but this program registers %s as service %zu", w->task_index,
            want ? want : "?", svc < g->nservices ? g->services[svc].name : "nothing", svc);
    w->job = sage__job_new(b->plan, b->cfg, 0, 0);
    if (!w->job)
        die(w, SAGE_ENOMEM, "out of memory");
    b->job = w->job;
    assignment_from_spec(w, tj);
    w->svc_place = (sage__svc_place){.host = (int)svc};
    w->job->svc_place = &w->svc_place;
    w->cancel_fd = eventfd(0, EFD_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_CLOEXEC);
    /* reports first: a start hook that loads a model for minutes is not a silent worker */
    pthread_create(&w->ctl_thread, NULL, control_main, w);
    int rc = sage__services_start(w->job, b->err);
    if (rc != 0)
        die(w, rc, "%s", b->err->msg);
    atomic_store(&w->svc_ready, 1);
    sage__svc_server *srv = NULL;
    if ((rc = sage__svc_serve(w->tcp ? w->listen_fd : 3, w->token, w->job_id, w->job, svc, &srv)) != 0)
        die(w, rc, "service \"%s\": cannot serve its connections: %s", want, sage_strerror(rc));
    pthread_mutex_lock(&w->job->mu);
    while (!atomic_load(&w->job->stopping) && !atomic_load(&w->job->canceled))
        pthread_cond_wait(&w->job->pause_cv, &w->job->mu);
    pthread_mutex_unlock(&w->job->mu);
    sage__services_stop(w->job);
    sage__svc_serve_stop(srv);
    atomic_store(&w->finished, 1);
    uint64_t one = 1;
    (void)!write(w->wake_fd, &one, sizeof one);
    pthread_join(w->ctl_thread, NULL);
    int ok = !w->job->err.code;
    send_event(w, json_pack("{s:s,s:b,s:i,s:s,s:o}", "event", "done", "ok", ok, "code", ok ? 0 : w->job->err.code,
                            "error", ok ? "" : w->job->err.msg, "metrics", service_metrics(w)));
    fflush(NULL);
    exit(ok ? 0 : 1);
}

static void *control_main(void *arg)
{
    worker *w = arg;
    uint64_t last = 0, t_last = sage_now_ns();
    for (;;) {
        struct pollfd pf[2] = {{.fd = w->ctl_fd, .events = POLLIN}, {.fd = w->wake_fd, .events = POLLIN}};
        int r = poll(pf, 2, REPORT_MS);
        if (atomic_load(&w->finished))
            return NULL;
        if (r > 0 && pf[0].revents) {
            sage__frame f;
            unsigned char *payload = NULL;
            char why[256];
            if (sage__frame_recv(w->ctl_fd, SAGE__CONTROL_FRAME_MAX, &f, &payload, why, sizeof why) != 0) {
                /* the JobManager is gone: nothing may run without it */
                sage__job_fail(w->job, SAGE_EIO, "lost the JobManager: %s", why);
                uint64_t one = 1;
                (void)!write(w->cancel_fd, &one, sizeof one);
                return NULL;
            }
            json_error_t jerr;
            json_t *ev = json_loads((const char *)payload, 0, &jerr);
            free(payload);
            apply_control(w, ev);
            json_decref(ev);
            continue;
        }
        uint64_t now = sage_now_ns();
        json_t *m;
        if (w->task) {
            pthread_mutex_lock(&w->snap_mu);
            json_error_t jerr;
            json_t *snap = w->snap ? json_loads(w->snap, 0, &jerr) : NULL;
            pthread_mutex_unlock(&w->snap_mu);
            m = sage__metrics_json(w->task, snap, (double)(now - t_last) / 1e9, &last);
            json_decref(snap);
            atomic_store(&w->task->snap_req, 1); /* fresh numbers for the next report */
        } else {
            m = service_metrics(w);
        }
        t_last = now;
        send_event(w, json_pack("{s:s,s:o}", "event", "report", "metrics", m));
    }
}

static void assignment_from_spec(worker *w, json_t *t)
{
    sage__assign *a = &w->assign;
    json_t *v;
    size_t i;
    a->cpus = w->cpus;
    a->gpus = w->gpus;
    json_array_foreach(json_object_get(t, "cpus"), i, v) if (a->ncpus < SAGE__NODE_CPUS_MAX)
        w->cpus[a->ncpus++] = (int)json_integer_value(v);
    json_array_foreach(json_object_get(t, "gpus"), i, v) if (a->ngpus < SAGE__NODE_GPUS_MAX)
        w->gpus[a->ngpus++] = (int)json_integer_value(v);
    a->exclusive = json_is_true(json_object_get(t, "exclusive"));
    a->pin = 0; /* the JobManager pinned the whole process before exec */
    a->gpu_fraction = json_number_value(json_object_get(t, "gpu_fraction"));
    a->memory = (uint64_t)json_integer_value(json_object_get(t, "memory"));
    a->object_store_memory = (uint64_t)json_integer_value(json_object_get(t, "object_store_memory"));
    const char *name;
    json_object_foreach(json_object_get(t, "resources"), name, v)
    {
        if (a->ncustom >= SAGE_RES_CUSTOM_MAX)
            break;
        snprintf(a->custom[a->ncustom].name, sizeof a->custom[0].name, "%s", name);
        a->custom[a->ncustom++].amount = json_number_value(v);
    }
    sage__assign_publish(a, json_string_value(json_object_get(t, "node")));
}

/* Our chain's built-in sinks write where the client can read them back. */
/* The checkpoint directory must be the one the JobManager wrote its nonce into (on Slurm: a directory every
 * node shares at the same path). A worker that cannot read it back fails the job at once with a
 * configuration error, which no restart retries. */
static void check_checkpoint_dir(worker *w)
{
    json_t *probe = json_object_get(w->spec, "checkpoint_probe");
    const char *dir = json_string_value(json_object_get(probe, "dir"));
    const char *nonce = json_string_value(json_object_get(probe, "nonce"));
    if (!probe)
        return;
    char path[PATH_MAX + 16], host[256] = "this node";
    gethostname(host, sizeof host - 1);
    if (!dir || !nonce)
        die(w, SAGE_EPROTO, "the job spec's \"checkpoint_probe\" lacks \"dir\" or \"nonce\"");
    sage__fmt(path, sizeof path, "%s/SHARED", dir);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    const char *seen = json_string_value(json_object_get(doc, "nonce"));
    int same = seen && strcmp(seen, nonce) == 0, readable = doc != NULL;
    json_decref(doc);
    if (!same)
        die(w, SAGE_ECONFIG,
            "\"fault_tolerance.checkpoint_dir\" %s is not shared with node %s: the file the JobManager wrote there "
            "is %s from this node (every node must see the same directory at the same path)",
            dir, host, readable ? "different" : "not readable");
}

static void prepare_sinks(worker *w)
{
    for (size_t k = 0; k < w->task->nops; k++) {
        const sage__op *op = w->task->ops[k].op;
        sage__sink_out *so = &w->job->sinks[op->id];
        if (op->builtin == SAGE__BUILTIN_COLLECT_SINK && w->results_stream) {
            /* no shared directory: an unlinked file of this node, sent to the JobManager at the end */
            if (!(so->file = tmpfile()))
                die(w, SAGE_EIO, "operator \"%s\": no temporary file for its results: %s", op->name, strerror(errno));
            so->mode = SAGE__SINK_RECORDS;
        } else if (op->builtin == SAGE__BUILTIN_COLLECT_SINK) {
            char path[1400];
            snprintf(path, sizeof path, "%s/results/%s.%d", w->dir, op->name, w->task->instance);
            /* private, never a link; a recovery keeps what the checkpoint committed (the task cuts it back) */
            int trunc = w->job->restore ? 0 : O_TRUNC;
            int fd = open(path, O_WRONLY | O_CREAT | trunc | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd >= 0 && !trunc)
                lseek(fd, 0, SEEK_END);
            so->file = fd >= 0 ? fdopen(fd, "wb") : NULL;
            if (!so->file && fd >= 0)
                close(fd);
            if (!so->file)
                die(w, SAGE_EIO, "operator \"%s\": cannot write %s: %s", op->name, path, strerror(errno));
            so->mode = SAGE__SINK_RECORDS;
        } else if (op->builtin == SAGE__BUILTIN_FILE_SINK) {
            so->fd = open(op->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (so->fd < 0)
                die(w, SAGE_EIO, "operator \"%s\": cannot open \"%s\" for writing: %s", op->name, op->path,
                    strerror(errno));
            so->mode = SAGE__SINK_APPEND;
        }
    }
}

/* The jobs this process executed that were not its own, for the report when it never meets its own. */
static char g_skipped[1024];
static int g_matched;
static unsigned long long g_same_name_hash; /* an env of our job's name with another plan hash (0: none) */

/* At exit, when the program never executed our job: tell the JobManager what it executed instead. */
static void report_unmatched(void)
{
    if (g_matched)
        return;
    char err[256];
    json_t *spec = sage__worker_spec(err, sizeof err);
    const char *name = json_string_value(json_object_get(spec, "name"));
    char msg[1600];
    unsigned long long want = (unsigned long long)json_integer_value(json_object_get(spec, "plan_hash"));
    if (g_same_name_hash) /* our job, built differently here */
        snprintf(msg, sizeof msg,
                 "the pipeline this worker built differs from the submitted one (plan hash %llx, submitted %llx): "
                 "graph building must be deterministic (same operators, names, parallelism and resources in every "
                 "run)",
                 g_same_name_hash, want);
    else
        snprintf(msg, sizeof msg,
                 "this program ended without executing job \"%s\" (plan hash %llx), which the JobManager started "
                 "this worker for; it executed %s: graph building must be deterministic (the same operators, names, "
                 "parallelism and resources in every run)",
                 name ? name : "?", want, g_skipped[0] ? g_skipped : "no job");
    worker w = {.ctl_fd = -1, .listen_fd = -1};
    pthread_mutex_init(&w.send_mu, NULL);
    sage__worker_ident id;
    if (spec && sage__worker_identify(&id, err, sizeof err) == 0 &&
        sage__worker_hello(&id, "worker", NULL, &w.ctl_fd, err, sizeof err, NULL) != 0)
        w.ctl_fd = -1;
    fprintf(stderr, "sage worker: %s\n", msg);
    sage__utf8_clean(msg, strlen(msg));
    if (w.ctl_fd >= 0)
        send_event(&w, json_pack("{s:s,s:b,s:i,s:s}", "event", "done", "ok", 0, "code", SAGE_EPLAN, "error", msg));
    fflush(NULL);
    _exit(3); /* from an exit handler: no second exit */
}

/* Is this env's job the one the JobManager started us for? No: skip it (its execute returns 0 at once). */
static int not_ours(worker *w, sage__backend *b)
{
    char err[64];
    json_t *spec = sage__worker_spec(err, sizeof err); /* borrowed */
    if (!spec)
        return 0; /* submit says why */
    const char *jname = json_string_value(json_object_get(spec, "name"));
    json_int_t want = json_integer_value(json_object_get(spec, "plan_hash"));
    int ours = jname && strcmp(jname, b->g->name) == 0;
    unsigned long long have = 0;
    char jn[128] = "";
    if (jname)
        sage__strlcpy(jn, jname, sizeof jn);
    if (ours && !b->err->code && sage__backend_compile(b) == 0) { /* a failed compile is reported as ours */
        have = (unsigned long long)(b->plan->hash >> 1);
        ours = (json_int_t)have == want;
    }
    jname = jn;
    if (ours) {
        g_matched = 1;
        return 0;
    }
    static int hooked;
    if (!hooked && atexit(report_unmatched) == 0)
        hooked = 1;
    if (jname && strcmp(jname, b->g->name) == 0 && have && !g_same_name_hash)
        g_same_name_hash = have;
    size_t used = strlen(g_skipped);
    if (used + 200 < sizeof g_skipped)
        snprintf(g_skipped + used, sizeof g_skipped - used, "%s\"%s\" (plan hash %llx)", used ? ", " : "", b->g->name,
                 have);
    w->skipped = 1;
    return 1;
}

/* Runs this process's task, then exits: never returns (a job that is not ours returns 0 at once). */
static int worker_submit(sage__backend *b)
{
    worker *w = (worker *)b;
    if (not_ours(w, b))
        return 0;
    /* user output goes to the JobManager through a pipe: one line at a time, not lost if we are killed */
    setvbuf(stdout, NULL, _IOLBF, 0);
    w->ctl_fd = -1;
    w->listen_fd = -1;
    pthread_mutex_init(&w->send_mu, NULL);
    pthread_mutex_init(&w->snap_mu, NULL);
    char err[1200];
    sage__worker_ident id;
    int rc = sage__worker_identify(&id, err, sizeof err);
    if (rc != 0)
        die(NULL, rc, "%s", err);
    if (!(w->spec = json_incref(sage__worker_spec(err, sizeof err))))
        die(NULL, SAGE_EIO, "%s", err);
    w->job_id = id.job_id;
    w->task_index = id.task;
    /* connected first: a tcp listener binds the address this connection leaves from */
    if ((rc = sage__tcp_connect(id.host, id.port, &w->ctl_fd, err, sizeof err)) != 0)
        die(NULL, rc, "%s", err);
    sage__strlcpy(w->token, id.secret, sizeof w->token); /* the job's: its workers know no other */
    snprintf(w->dir, sizeof w->dir, "%s", json_string_value(json_object_get(w->spec, "dir")) ?: "");
    json_t *tj = json_array_get(json_object_get(w->spec, "tasks"), (size_t)w->task_index);
    if (!tj)
        die(NULL, SAGE_ECONFIG, "the job spec has no task %d", w->task_index);
    const char *plane = json_string_value(json_object_get(w->spec, "data_plane"));
    w->tcp = plane && strcmp(plane, "tcp") == 0;
    if (plane && !w->tcp && strcmp(plane, "unix") != 0)
        die(NULL, SAGE_ECONFIG, "the job spec names data plane \"%s\", which this worker does not know", plane);
    /* tcp: our listener first, so that its address travels in the HELLO; if it
     * fails we say why once the JobManager listens to us (after the HELLO) */
    char listen_err[1024] = "";
    int listen_rc = 0;
    if (w->tcp && json_is_true(json_object_get(tj, "inputs"))) {
        int producers = (int)json_integer_value(json_object_get(tj, "producers"));
        listen_rc = tcp_listen_here(w, producers > 0 && producers < 4096 ? producers + 8 : 128, listen_err,
                                    sizeof listen_err);
    }
    /* the HELLO, so every later refusal reaches the JobManager */
    json_t *extra = json_pack("{s:i}", "pid", (int)getpid());
    if (extra && w->listen_fd >= 0)
        json_object_set_new(extra, "listen", json_string(w->listen_addr));
    rc = sage__worker_hello(&id, "worker", extra, &w->ctl_fd, err, sizeof err, NULL);
    json_decref(extra);
    if (rc != 0)
        die(NULL, rc, "the JobManager refused this worker: %s", err);
    if (listen_rc != 0)
        die(w, listen_rc, "task %d (chain %d, instance %d): %s", w->task_index,
            (int)json_integer_value(json_object_get(tj, "chain")),
            (int)json_integer_value(json_object_get(tj, "instance")), listen_err);

    /* 0. the same program as the submitter's? (on Slurm srun copied it here: it must be the file it ran) */
    const char *want_prog = getenv("SAGE_WORKER_EXE_COPY") /* a copy only: hashing costs start-up time */
                                ? json_string_value(json_object_get(w->spec, "program_hash"))
                                : NULL;
    char have_prog[32];
    if (want_prog && sage__program_hash("/proc/self/exe", have_prog, sizeof have_prog, err, sizeof err) == 0 &&
        strcmp(have_prog, want_prog) != 0)
        die(w, SAGE_EPLAN,
            "the program this worker runs is not the one that was submitted (hash %s, submitted %s): it changed on "
            "disk after the submit",
            have_prog, want_prog);

    /* 1. the same plan as the submitter's? */
    const char *jname = json_string_value(json_object_get(w->spec, "name"));
    if (!jname || strcmp(jname, b->g->name) != 0)
        die(w, SAGE_EPLAN, "this program executed job \"%s\" where the JobManager expected \"%s\"", b->g->name,
            jname ? jname : "?");
    if (b->err->code)
        die(w, b->err->code, "declaring the pipeline failed in the worker: %s", b->err->msg);
    if (b->g->has_binding && b->g->binding.copy)
        die(w, SAGE_EUNSUPPORTED, "records that are handles (sage_env_set_binding copy/drop) cannot leave a process");
    if (sage__backend_compile(b) != 0)
        die(w, b->err->code, "compiling the pipeline failed in the worker: %s", b->err->msg);
    const sage__plan *plan = b->plan;
    json_int_t want = json_integer_value(json_object_get(w->spec, "plan_hash"));
    if ((json_int_t)(plan->hash >> 1) != want)
        die(w, SAGE_EPLAN,
            "the pipeline this worker built differs from the submitted one (plan hash %llx, submitted %llx): graph "
            "building must be deterministic (same operators, names, parallelism and resources in every run)",
            (unsigned long long)(plan->hash >> 1), (unsigned long long)want);
    int chain = (int)json_integer_value(json_object_get(tj, "chain"));
    int instance = (int)json_integer_value(json_object_get(tj, "instance"));
    if (chain >= 0 && (size_t)chain >= plan->nchains && json_object_get(tj, "service"))
        serve_service(w, b, tj, (size_t)chain - plan->nchains); /* the job's services follow its chains */
    if (chain < 0 || (size_t)chain >= plan->nchains || instance < 0 || instance >= plan->chains[chain].parallelism)
        die(w, SAGE_EPLAN, "task %d names chain %d instance %d, which this plan does not have", w->task_index, chain,
            instance);

    /* 2. our task, with remote consumers */
    const sage__chain *ch = &plan->chains[chain];
    const char *head = sage__chain_op(plan, ch, 0)->name;
    const sage__op *tail = sage__chain_op(plan, ch, ch->nops - 1);
    const sage__pop *tp = &plan->ops[tail->id];
    size_t ntargets = 1;
    for (size_t k = 0; k < tp->nconsumers; k++)
        ntargets += (size_t)plan->ops[tp->consumers[k].op].op->parallelism;
    w->job = sage__job_new(plan, b->cfg, 1, ntargets);
    if (!w->job)
        die(w, SAGE_ENOMEM, "out of memory");
    b->job = w->job;
    w->task = &w->job->tasks[0];
    assignment_from_spec(w, tj);
    w->task->assign = &w->assign;
    w->task->timed = 1;
    w->task->snap_fn = take_snapshot;
    w->task->snap_arg = w;
    w->cancel_fd = eventfd(0, EFD_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_CLOEXEC);
    rc = sage__task_setup(w->job, w->task, ch, instance, 1);
    if (rc != 0)
        die(w, rc, "setting up the task: %s", sage_strerror(rc));
    if (w->tcp && !!w->task->in != (w->listen_fd >= 0))
        die(w, SAGE_EPLAN, "operator \"%s\" instance %d %s inputs, but the job spec says otherwise", head, instance,
            w->task->in ? "has" : "has no");
    if (w->task->in)
        w->task->in->chan.batch_bytes = remote_batch(b->cfg); /* every producer of ours is remote */
    if (w->task->in && (rc = sage__net_serve(w->tcp ? w->listen_fd : 3, w->task->expected_eos, w->task->in, w->token,
                                             w->cancel_fd, net_fail, w, &w->recv)) != 0)
        die(w, rc, "operator \"%s\" instance %d: cannot serve its data connections: %s", head, instance,
            sage_strerror(rc));
    if (w->tcp && (tp->nconsumers > 0 || b->g->nservices > 0))
        wait_peers(w);
    if ((rc = sage__task_routes(w->job, w->task, remote_target, w)) != 0)
        die(w, rc, "connecting to the consumers of operator \"%s\" failed%s%s", tail->name, w->route_err[0] ? ": " : "",
            w->route_err);
    w->plan_hash = plan->hash;
    check_checkpoint_dir(w);
    const char *from = json_string_value(json_object_get(w->spec, "restore"));
    if (from) { /* a recovery: our part of the checkpoint, checked against the plan */
        char why[1400];
        rc = sage__ckpt_load_one(from, (size_t)w->task_index, &w->ck_from, why, sizeof why);
        if (rc == 0 && (rc = sage__restore_check(plan, &w->ck_from, why, sizeof why)) != 0)
            sage__loaded_free(&w->ck_from);
        if (rc != 0)
            die(w, SAGE_EIO, "cannot restore from checkpoint \"%s\": %s", from, why);
        json_t *in_run = json_object_get(w->spec, "restore_in_run");
        w->ck_restore = (sage__restore){.ck = &w->ck_from,
                                        .in_run = !in_run || json_is_true(in_run),
                                        .first_task = (size_t)w->task_index};
        w->job->restore = &w->ck_restore;
    }
    const char *results = json_string_value(json_object_get(w->spec, "results"));
    w->results_stream = results && strcmp(results, "stream") == 0;
    prepare_sinks(w);
    w->svc_place = (sage__svc_place){.host = -1, .connect = connect_service, .arg = w};
    w->job->svc_place = &w->svc_place; /* every service runs in its own process */
    if ((rc = sage__services_start(w->job, b->err)) != 0)
        die(w, rc, "%s", b->err->msg);
    w->job->running_tasks = 1;
    pthread_create(&w->ctl_thread, NULL, control_main, w);

    /* 3. run */
    sage__crash_arm(w->task, w->ctl_fd, &w->send_mu); /* a crash names the chained operator it was in */
    sage__task_main(w->task);
    for (size_t i = 0; i < w->job->nchans; i++)
        sage__net_finish(w->job->chans[i]); /* our last frames reach the consumers before we exit */
    sage__net_serve_join(w->recv);
    sage__services_stop(w->job);
    if (w->job->err.code)
        sage__errf(b->err, w->job->err.code, "%s", w->job->err.msg);
    for (size_t k = 0; w->results_stream && !b->err->code && w->task->rc == 0 && k < w->task->nops; k++) {
        const sage__op *op = w->task->ops[k].op; /* what it collected, to the JobManager, before "done" */
        char why[512];
        if (op->builtin == SAGE__BUILTIN_COLLECT_SINK && w->job->sinks[op->id].file &&
            (rc = sage__worker_send_results(w->ctl_fd, &w->send_mu, op->name, w->job->sinks[op->id].file, why,
                                            sizeof why)) != 0)
            sage__errf(b->err, rc, "operator \"%s\": %s", op->name, why);
    }
    sage__sinks_close(w->job, b->err);
    atomic_store(&w->finished, 1);
    uint64_t one = 1;
    (void)!write(w->wake_fd, &one, sizeof one);
    pthread_join(w->ctl_thread, NULL);
    uint64_t last = 0;
    int ok = b->err->code == 0 && w->task->rc == 0;
    int code = b->err->code ? b->err->code : w->task->rc;
    sage__utf8_clean(b->err->msg, strlen(b->err->msg)); /* user text inside: must stay valid JSON */
    json_t *snap = sage__metrics_snapshot(w->task);     /* the task thread is this thread, and it is done */
    send_event(w, json_pack("{s:s,s:b,s:i,s:s,s:o}", "event", "done", "ok", ok, "code", ok ? 0 : code, "error",
                            ok ? "" : b->err->msg, "metrics", sage__metrics_json(w->task, snap, 0, &last)));
    json_decref(snap);
    fflush(NULL);
    exit(ok ? 0 : 1);
}

/* A worker's job is its process: wait, stop and cancel have nothing to act
 * on once submit ran (it never returns). */
static int worker_wait(sage__backend *b, int timeout_ms)
{
    if (((worker *)b)->skipped)
        return 0;
    return b->err->code ? b->err->code : SAGE_ESTATE;
}
static int worker_control(sage__backend *b) { return SAGE_ESTATE; }
static sage_job_state worker_state(const sage__backend *b)
{
    if (((const worker *)b)->skipped)
        return SAGE_JOB_FINISHED;
    return b->job ? sage__job_state(b->job) : SAGE_JOB_CREATED;
}
static void worker_destroy(sage__backend *b) { free(b); }

static const sage__backend_ops worker_ops = {
    .name = "worker",
    .places = 0,
    .owns_process = 1,
    .submit = worker_submit,
    .wait = worker_wait,
    .stop = worker_control,
    .cancel = worker_control,
    .state = worker_state,
    .destroy = worker_destroy,
};

sage__backend *sage__backend_worker(void)
{
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->b.ops = &worker_ops;
    return &w->b;
}
