/* backend/select.c - which backend an environment gets: worker, JobManager client, or embedded. */
#include <stdlib.h>

#include "backend/backend.h"

sage__backend *sage__backend_new(const sage__graph *g, const sage__config *cfg, sage__err *err)
{
    sage__backend *b;
    if (cfg->has_jobmanager)
        b = getenv("SAGE_WORKER_JOB") ? sage__backend_worker() : sage__backend_client();
    else
        b = sage__backend_embedded();
    if (b) {
        b->g = g;
        b->cfg = cfg;
        b->err = err;
    }
    return b;
}

int sage__backend_compile(sage__backend *b)
{
    if (b->err->code)
        return b->err->code;
    if (b->plan)
        return 0;
    return sage__plan_compile(b->g, b->ops->places, &b->plan, b->err);
}

void sage__backend_destroy(sage__backend *b)
{
    if (!b)
        return;
    sage__plan *plan = b->plan;
    b->ops->destroy(b);
    sage__plan_free(plan);
}
