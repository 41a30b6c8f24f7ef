/* runtime/service.c - named services: one thread each, a bounded request queue, futures for answers.
 *
 * Design note. A call creates a future holding the request and two
 * references (caller and service). The caller pushes it into the service's
 * ring, waiting at most its timeout for space; the service thread pops
 * requests in order, runs the user function, stores the reply in the future
 * and drops its reference. A caller that times out (or destroys the future
 * early) just drops its own reference: the answer, if it ever comes, is
 * freed by whoever lets go last. Services start before the first task
 * thread and stop after the last one ended; requests still queued then are
 * answered with SAGE_ECANCELED. When the job is canceled or fails, every
 * caller is answered SAGE_ECANCELED at once (sage__services_cancel): the
 * queued requests are dropped, and the one being served is marked done for
 * its caller (the service's own answer, when it comes, is discarded), so
 * no caller waits on a service that is slow or never answers.
 *
 * Under a JobManager a service is one instance per job, in its own worker
 * process (job->svc_place): there, that one service runs as above and its
 * requests come from connections (runtime/svcnet.c, sage__service_submit;
 * the future's on_done sends the answer back); in every other worker each
 * service is a sage__svc_remote, and a call sends the future to it instead
 * of queueing it here. Callers see the same results and errors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/future.h"
#include "runtime/runtime.h"
#include "runtime/svcnet.h"
#include "util/time.h"

/* One running service: its declaration and the thread that serves it. */
typedef struct sage__service {
    const sage__service_decl *decl;
    const sage__job *job;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv_req, cv_space;
    struct sage_future **ring;
    size_t head, count, capacity;
    int stopping;
    int canceled;                /* the job was canceled or failed: calls end with SAGE_ECANCELED */
    struct sage_future *current; /* the request being served (the service's reference keeps it alive) */
    uint64_t served;             /* requests answered (under mu) */
    int inited;                  /* mu, the condition variables and the ring exist */
    sage__svc_remote *remote;    /* a worker: the service runs in its own process, reached over this */
    int elsewhere;               /* a service's own process: this other service is not here */
} sage__service;

struct sage__services {
    size_t n;
    sage__service *v;
};

#define SAGE__REPLY_MAX ((size_t)64 << 20)

struct sage_reply {
    struct sage_future *fut;
    int set;
};

void sage__future_unref(sage_future *f)
{
    pthread_mutex_lock(&f->mu);
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->req);
    free(f->resp);
    free(f);
}

sage_future *sage__future_adopt(void *req, size_t len, int refs)
{
    sage_future *f = calloc(1, sizeof *f);
    if (!f) {
        free(req);
        return NULL;
    }
    f->req = req;
    f->req_len = len;
    f->refs = refs;
    pthread_mutex_init(&f->mu, NULL);
    sage__cond_init_mono(&f->cv);
    return f;
}

sage_future *sage__future_new(const void *req, size_t len, int refs)
{
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return NULL;
    if (len)
        memcpy(copy, req, len);
    return sage__future_adopt(copy, len, refs);
}

void sage__future_set_resp(sage_future *f, void *resp, size_t len)
{
    pthread_mutex_lock(&f->mu);
    if (f->done || f->resp) {
        pthread_mutex_unlock(&f->mu);
        free(resp);
        return;
    }
    f->resp = resp;
    f->resp_len = len;
    pthread_mutex_unlock(&f->mu);
}

/* Answer f (a canceled one keeps SAGE_ECANCELED and drops a late reply) and drop the service's reference. */
void sage__future_complete(sage_future *f, int rc)
{
    pthread_mutex_lock(&f->mu);
    if (!f->done) {
        f->rc = rc;
        f->done = 1;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    if (f->on_done) /* a remote caller's request: its answer goes back on its connection */
        f->on_done(f, f->done_arg);
    sage__future_unref(f);
}

/* Answer f with SAGE_ECANCELED now; whoever holds the service's reference still drops it. */
void sage__future_cancel(sage_future *f)
{
    pthread_mutex_lock(&f->mu);
    if (!f->done) {
        f->rc = SAGE_ECANCELED;
        f->done = 1;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
}

SAGE_API int sage_reply_set(sage_reply *r, const void *data, size_t len)
{
    if (!r || (!data && len))
        return SAGE_EINVAL;
    if (r->set)
        return SAGE_ESTATE;
    if (len > SAGE__REPLY_MAX)
        return SAGE_ETOOBIG;
    void *copy = malloc(len ? len : 1);
    if (!copy)
        return SAGE_ENOMEM;
    if (len)
        memcpy(copy, data, len);
    sage_future *f = r->fut;
    pthread_mutex_lock(&f->mu); /* a canceled caller may be reading the future: its reply stays unset */
    if (f->done) {
        pthread_mutex_unlock(&f->mu);
        free(copy);
        r->set = 1;
        return 0;
    }
    f->resp = copy;
    f->resp_len = len;
    pthread_mutex_unlock(&f->mu);
    r->set = 1;
    return 0;
}

static void *service_main(void *arg)
{
    sage__service *s = arg;
    const sage__service_decl *d = s->decl;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->count == 0 && !s->stopping)
            pthread_cond_wait(&s->cv_req, &s->mu);
        if (s->count == 0)
            break;
        sage_future *f = s->ring[s->head];
        s->head = (s->head + 1) % s->capacity;
        s->count--;
        pthread_cond_signal(&s->cv_space);
        if (s->stopping || s->canceled) {
            pthread_mutex_unlock(&s->mu);
            sage__future_complete(f, SAGE_ECANCELED);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        s->current = f;
        pthread_mutex_unlock(&s->mu);
        sage_reply reply = {f, 0};
        sage__enter(s->job);
        int rc = d->fn(f->req, f->req_len, &reply, d->udata);
        sage__leave(s->job);
        pthread_mutex_lock(&s->mu);
        s->current = NULL; /* before the reference goes: a cancel must not reach a freed future */
        s->served++;
        pthread_mutex_unlock(&s->mu);
        sage__future_complete(f, rc < 0 ? rc : 0);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static sage__service *service_find(const sage__job *job, const char *name)
{
    for (size_t i = 0; job->services && i < job->services->n; i++)
        if (strcmp(job->services->v[i].decl->name, name) == 0)
            return &job->services->v[i];
    return NULL;
}

int sage__services_start(sage__job *job, sage__err *err)
{
    const sage__graph *g = job->g;
    if (g->nservices == 0)
        return 0;
    sage__services *ss = calloc(1, sizeof *ss);
    if (!ss || !(ss->v = calloc(g->nservices, sizeof *ss->v))) {
        free(ss);
        return sage__errf(err, SAGE_ENOMEM, "out of memory starting the services");
    }
    job->services = ss;
    const sage__svc_place *place = job->svc_place;
    for (size_t i = 0; i < g->nservices; i++) {
        sage__service *s = &ss->v[i];
        const sage__service_decl *d = &g->services[i];
        s->decl = d;
        s->job = job;
        ss->n = i + 1;
        if (place && place->host >= 0 && (size_t)place->host != i) {
            s->elsewhere = 1; /* a service's own process serves that one service only */
            continue;
        }
        if (place && place->host < 0) { /* a worker: every service runs in its own process */
            char why[1024];
            int rc = place->connect(place->arg, i, &s->remote, why, sizeof why);
            if (rc != 0) {
                sage__services_stop(job);
                return sage__errf(err, rc, "service \"%s\": %s", d->name, why);
            }
            continue;
        }
        s->capacity = d->opts.queue_capacity;
        s->ring = calloc(s->capacity, sizeof *s->ring);
        if (!s->ring) {
            sage__services_stop(job);
            return sage__errf(err, SAGE_ENOMEM, "out of memory starting service \"%s\"", d->name);
        }
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->cv_req, NULL);
        sage__cond_init_mono(&s->cv_space);
        s->inited = 1;
        if (d->opts.start) {
            sage__enter(job);
            int rc = d->opts.start(d->udata);
            sage__leave(job);
            if (rc < 0) {
                sage__services_stop(job);
                int known = strcmp(sage_err_name(rc), "SAGE_UNKNOWN") != 0;
                return sage__errf(err, known ? rc : SAGE_EUSER, "service \"%s\" failed to start (%d: %s)", d->name, rc,
                                  sage_strerror(rc));
            }
        }
        int e = pthread_create(&s->thread, NULL, service_main, s);
        if (e != 0) {
            if (d->opts.stop) {
                sage__enter(job);
                d->opts.stop(d->udata);
                sage__leave(job);
            }
            sage__services_stop(job);
            return sage__errf(err, SAGE_ESYS, "starting service \"%s\": %s", d->name, strerror(e));
        }
        s->started = 1;
    }
    return 0;
}

void sage__services_stop(sage__job *job)
{
    for (size_t i = job->services ? job->services->n : 0; i-- > 0;) {
        sage__service *s = &job->services->v[i];
        if (s->remote) {
            sage__svc_remote_close(s->remote);
            s->remote = NULL;
        }
        if (!s->started)
            continue;
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        pthread_cond_broadcast(&s->cv_req);
        pthread_cond_broadcast(&s->cv_space);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        s->started = 0;
        if (s->decl->opts.stop) {
            sage__enter(job);
            s->decl->opts.stop(s->decl->udata);
            sage__leave(job);
        }
    }
}

void sage__services_cancel(sage__job *job)
{
    for (size_t i = 0; job->services && i < job->services->n; i++) {
        sage__service *s = &job->services->v[i];
        if (s->remote)
            sage__svc_remote_cancel(s->remote);
        if (!s->inited)
            continue;
        pthread_mutex_lock(&s->mu);
        s->canceled = 1;
        while (s->count > 0) { /* queued: never served */
            sage_future *f = s->ring[s->head];
            s->head = (s->head + 1) % s->capacity;
            s->count--;
            sage__future_complete(f, SAGE_ECANCELED);
        }
        if (s->current)
            sage__future_cancel(s->current);
        pthread_cond_broadcast(&s->cv_space);
        pthread_mutex_unlock(&s->mu);
    }
}

void sage__services_free(sage__job *job)
{
    sage__services *ss = job->services;
    if (!ss)
        return;
    for (size_t i = 0; i < ss->n; i++) {
        sage__service *s = &ss->v[i];
        if (!s->inited)
            continue;
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv_req);
        pthread_cond_destroy(&s->cv_space);
        free(s->ring);
    }
    free(ss->v);
    free(ss);
    job->services = NULL;
}

/* Enqueue a request; waits for space up to timeout_ms (< 0: no limit). */
static int call_start(sage_ctx *ctx, const char *name, const void *req, size_t len, int timeout_ms, sage_future **out)
{
    *out = NULL;
    sage__service *s = name ? service_find(ctx->inst->task->job, name) : NULL;
    if (!s) {
        sage_ctx_fail(ctx, "no service named \"%s\" is registered", name ? name : "(null)");
        return SAGE_ENOSERVICE;
    }
    if (!req && len)
        return SAGE_EINVAL;
    if (s->elsewhere) {
        sage_ctx_fail(ctx, "service \"%s\" runs in its own process: only operators call it", name);
        return SAGE_ENOSERVICE;
    }
    sage_future *f = sage__future_new(req, len, 2);
    if (!f)
        return SAGE_ENOMEM;
    if (s->remote) { /* the job's one instance of it runs in its own process */
        char why[512];
        int rc = sage__svc_remote_send(s->remote, f, timeout_ms, why, sizeof why);
        if (rc != 0) {
            sage_ctx_fail(ctx, "service \"%s\": %s", name, why);
            f->refs = 1;
            sage__future_unref(f);
            return rc;
        }
        *out = f;
        return 0;
    }
    struct timespec dl;
    if (timeout_ms >= 0)
        sage__deadline(&dl, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->count == s->capacity && !s->stopping && !s->canceled) {
        if (timeout_ms < 0)
            pthread_cond_wait(&s->cv_space, &s->mu);
        else if (pthread_cond_timedwait(&s->cv_space, &s->mu, &dl) == ETIMEDOUT)
            break;
    }
    int rc = 0;
    if (s->stopping || s->canceled)
        rc = SAGE_ECANCELED;
    else if (s->count == s->capacity)
        rc = SAGE_ETIMEDOUT;
    else {
        s->ring[(s->head + s->count) % s->capacity] = f;
        s->count++;
        pthread_cond_signal(&s->cv_req);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        if (rc == SAGE_ETIMEDOUT)
            sage_ctx_fail(ctx, "service \"%s\": its queue of %zu requests stayed full for %d ms", name, s->capacity,
                          timeout_ms);
        f->refs = 1;
        sage__future_unref(f);
        return rc;
    }
    *out = f;
    return 0;
}

SAGE_API int sage_call_async(sage_ctx *ctx, const char *service, const void *req, size_t req_len, sage_future **fut)
{
    if (!ctx || !fut)
        return SAGE_EINVAL;
    return call_start(ctx, service, req, req_len, -1, fut);
}

SAGE_API int sage_future_wait(sage_future *f, int timeout_ms, const void **resp, size_t *resp_len)
{
    if (!f)
        return SAGE_EINVAL;
    struct timespec dl;
    if (timeout_ms >= 0)
        sage__deadline(&dl, timeout_ms);
    pthread_mutex_lock(&f->mu);
    while (!f->done) {
        if (timeout_ms < 0)
            pthread_cond_wait(&f->cv, &f->mu);
        else if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
            break;
    }
    int rc = f->done ? f->rc : SAGE_ETIMEDOUT;
    pthread_mutex_unlock(&f->mu);
    if (rc == 0) {
        if (resp)
            *resp = f->resp ? f->resp : (const void *)"";
        if (resp_len)
            *resp_len = f->resp_len;
    }
    return rc;
}

SAGE_API void sage_future_destroy(sage_future *f)
{
    if (f)
        sage__future_unref(f);
}

SAGE_API int sage_call(sage_ctx *ctx, const char *service, const void *req, size_t req_len, int timeout_ms, void *resp,
                       size_t resp_cap, size_t *resp_len)
{
    if (!ctx)
        return SAGE_EINVAL;
    uint64_t t0 = sage_now_ns();
    sage_future *f;
    int rc = call_start(ctx, service, req, req_len, timeout_ms, &f);
    if (rc != 0)
        return rc;
    int left = timeout_ms;
    if (timeout_ms >= 0) {
        uint64_t spent = (sage_now_ns() - t0) / 1000000u;
        left = spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
    }
    const void *data;
    size_t len;
    rc = sage_future_wait(f, left, &data, &len);
    if (rc == SAGE_ETIMEDOUT)
        sage_ctx_fail(ctx, "service \"%s\" did not answer within %d ms", service, timeout_ms);
    else if (rc == SAGE_EIO && service_find(ctx->inst->task->job, service)->remote)
        sage_ctx_fail(ctx, "service \"%s\": %s", service,
                      sage__svc_remote_why(service_find(ctx->inst->task->job, service)->remote));
    else if (rc == 0) {
        if (len > resp_cap) {
            sage_ctx_fail(ctx, "service \"%s\" answered %zu bytes, more than the %zu-byte buffer", service, len,
                          resp_cap);
            rc = SAGE_ETOOBIG;
        } else {
            if (len)
                memcpy(resp, data, len);
            if (resp_len)
                *resp_len = len;
        }
    }
    sage_future_destroy(f);
    return rc;
}

int sage__service_submit(sage__job *job, size_t i, sage_future *f)
{
    sage__service *s = job->services && i < job->services->n ? &job->services->v[i] : NULL;
    if (!s || !s->inited)
        return SAGE_ENOSERVICE;
    pthread_mutex_lock(&s->mu);
    while (s->count == s->capacity && !s->stopping && !s->canceled)
        pthread_cond_wait(&s->cv_space, &s->mu); /* full: the caller's connection stops being read */
    int rc = 0;
    if (s->stopping || s->canceled)
        rc = SAGE_ECANCELED;
    else {
        s->ring[(s->head + s->count) % s->capacity] = f;
        s->count++;
        pthread_cond_signal(&s->cv_req);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t sage__service_served(sage__job *job, size_t i, size_t *queued)
{
    sage__service *s = job->services && i < job->services->n ? &job->services->v[i] : NULL;
    if (!s || !s->inited) {
        *queued = 0;
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->served;
    *queued = s->count;
    pthread_mutex_unlock(&s->mu);
    return n;
}
