/* backend/embedded.c - the default backend: every task a thread of this process. */
#include <stdlib.h>

#include "backend/backend.h"

static int emb_submit(sage__backend *b)
{
    int rc = sage__backend_compile(b);
    if (rc != 0)
        return rc;
    sage__job *job = sage__job_new(b->plan, b->cfg, b->plan->ntasks, b->plan->ntasks);
    if (!job)
        return sage__errf(b->err, SAGE_ENOMEM, "out of memory starting the job");
    b->job = job;
    rc = sage__build_all_tasks(job, 1);
    if (rc != 0) {
        job->ended = 1;
        job->rc = rc;
        atomic_store(&job->state, SAGE_JOB_FAILED);
        return sage__errf(b->err, rc, "building the job's tasks: %s", sage_strerror(rc));
    }
    return sage__job_start(job, b->err);
}

static int emb_wait(sage__backend *b, int timeout_ms)
{
    int rc = sage__job_wait(b->job, timeout_ms);
    if (rc == SAGE_ETIMEDOUT)
        return rc;
    if (b->job->err.code)
        sage__errf(b->err, b->job->err.code, "%s", b->job->err.msg);
    return rc;
}

static int emb_stop(sage__backend *b)
{
    sage__job_stop(b->job);
    return 0;
}

static int emb_cancel(sage__backend *b)
{
    sage__job_cancel(b->job);
    return 0;
}

static sage_job_state emb_state(const sage__backend *b) { return sage__job_state(b->job); }

static void emb_destroy(sage__backend *b)
{
    if (b->job) {
        sage__job_cancel(b->job);
        sage__job_wait(b->job, -1);
        sage__job_free(b->job);
    }
    free(b);
}

static const sage__backend_ops embedded_ops = {
    .name = "embedded",
    .places = 1,
    .submit = emb_submit,
    .wait = emb_wait,
    .stop = emb_stop,
    .cancel = emb_cancel,
    .state = emb_state,
    .destroy = emb_destroy,
};

sage__backend *sage__backend_embedded(void)
{
    sage__backend *b = calloc(1, sizeof *b);
    if (b)
        b->ops = &embedded_ops;
    return b;
}
