/* runtime/context.c - what user functions reach through sage_ctx: identity, key, state, metrics; metric read-back. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime.h"
#include "util/hash.h"
#include "util/time.h"

SAGE_API const char *sage_ctx_job_name(const sage_ctx *ctx) { return ctx->job_name; }
SAGE_API const char *sage_ctx_op_name(const sage_ctx *ctx) { return ctx->op_name; }
SAGE_API int sage_ctx_instance(const sage_ctx *ctx) { return ctx->instance; }
SAGE_API int sage_ctx_parallelism(const sage_ctx *ctx) { return ctx->parallelism; }
SAGE_API uint64_t sage_ctx_records_in(const sage_ctx *ctx) { return sage__records_in(ctx->inst); }

SAGE_API int sage_ctx_stop_requested(const sage_ctx *ctx)
{
    const sage__job *job = ctx->inst->task->job;
    return atomic_load_explicit(&job->stopping, memory_order_relaxed) ||
           atomic_load_explicit(&job->canceled, memory_order_relaxed);
}
SAGE_API void sage_ctx_set_local(sage_ctx *ctx, void *p) { ctx->local = p; }
SAGE_API void *sage_ctx_local(const sage_ctx *ctx) { return ctx->local; }
SAGE_API const sage_assignment *sage_ctx_assignment(const sage_ctx *ctx) { return ctx->assignment; }

SAGE_API const void *sage_ctx_key(const sage_ctx *ctx, size_t *len)
{
    if (len)
        *len = ctx->key ? ctx->key_len : 0;
    return ctx->key;
}

SAGE_API void *sage_ctx_state(sage_ctx *ctx, size_t size)
{
    if (!ctx->key || size == 0)
        return NULL; /* unkeyed: nothing to blame on the record */
    if (!ctx->ks) {
        ctx->ks = sage__keystate_new();
        if (!ctx->ks) {
            sage_ctx_fail(ctx, "out of memory creating per-key state");
            return NULL;
        }
    }
    size_t have = ctx->ks->state_size;
    if (have && have != size) {
        if (ctx->ks_restored == have)
            sage_ctx_fail(ctx,
                          "per-key state asked with %zu bytes, but the state restored from the checkpoint has blocks "
                          "of %zu (the operator's state layout changed since it was taken)",
                          size, have);
        else
            sage_ctx_fail(ctx, "per-key state asked with %zu bytes, but this operator's state blocks have %zu", size,
                          have);
        return NULL;
    }
    uint64_t h = ctx->key_hashed ? ctx->key_hash : sage__hash64(ctx->key, ctx->key_len);
    void *p = sage__keystate_get(ctx->ks, h, ctx->key, ctx->key_len, size);
    if (!p)
        sage_ctx_fail(ctx, "out of memory for per-key state (%zu keys)", sage__keystate_count(ctx->ks));
    return p;
}

SAGE_API int sage_ctx_state_foreach(sage_ctx *ctx, sage_state_visit_fn fn, void *arg)
{
    if (!ctx->ks || !fn)
        return 0;
    return sage__keystate_foreach(ctx->ks, fn, arg);
}

SAGE_API size_t sage_ctx_state_count(const sage_ctx *ctx) { return ctx->ks ? sage__keystate_count(ctx->ks) : 0; }

SAGE_API void sage_ctx_fail(sage_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->failmsg, sizeof ctx->failmsg, fmt, ap);
    va_end(ap);
    ctx->failmsg_in = sage__records_in(ctx->inst);
    ctx->failmsg_calls = ctx->calls;
}

SAGE_API uint64_t sage_now_ns(void) { return sage__mono_ns(); }

/* ---- metrics ---- */

static sage__metric *metric_get(sage_ctx *ctx, const char *name, int is_hist)
{
    if (!name || !*name || strlen(name) >= sizeof ctx->metrics[0].name)
        return NULL;
    if (strcmp(name, "records_in") == 0 || strcmp(name, "records_out") == 0)
        return NULL;
    for (size_t i = 0; i < ctx->nmetrics; i++)
        if (strcmp(ctx->metrics[i].name, name) == 0)
            return ctx->metrics[i].is_hist == is_hist ? &ctx->metrics[i] : NULL;
    if (ctx->nmetrics >= SAGE_METRICS_MAX - 2) /* records_in and records_out count too */
        return NULL;
    sage__metric *m = &ctx->metrics[ctx->nmetrics++];
    memset(m, 0, sizeof *m);
    memcpy(m->name, name, strlen(name) + 1);
    m->is_hist = is_hist;
    sage__hist_init(&m->hist);
    return m;
}

SAGE_API int sage_ctx_counter_add(sage_ctx *ctx, const char *name, int64_t delta)
{
    sage__metric *m = metric_get(ctx, name, 0);
    if (!m)
        return SAGE_EINVAL;
    m->counter += delta;
    return 0;
}

SAGE_API int sage_ctx_observe(sage_ctx *ctx, const char *name, double value)
{
    if (isnan(value))
        return SAGE_EINVAL;
    sage__metric *m = metric_get(ctx, name, 1);
    if (!m)
        return SAGE_EINVAL;
    return sage__hist_record(&m->hist, value);
}

void sage__metric_free_all(sage_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nmetrics; i++)
        sage__hist_free(&ctx->metrics[i].hist);
    ctx->nmetrics = 0;
}

int sage__job_metric(const sage__job *job, const sage__op *op, int instance, const char *name, sage_metric *out)
{
    const sage__pop *pop = &job->plan->ops[op->id];
    int builtin = strcmp(name, "records_in") == 0 ? 1 : strcmp(name, "records_out") == 0 ? 2 : 0;
    sage__hist agg;
    sage__hist_init(&agg);
    int found = builtin != 0, rc = 0;
    for (size_t t = 0; t < job->ntasks; t++) {
        const sage__task *task = &job->tasks[t];
        if (task->chain->id != pop->chain || (instance >= 0 && task->instance != instance))
            continue;
        const sage_ctx *c = &task->ops[pop->chain_pos].ctx;
        if (builtin) {
            out->value += (int64_t)(builtin == 1 ? sage__records_in(&task->ops[pop->chain_pos])
                                                 : atomic_load(&task->ops[pop->chain_pos].out.emitted));
            continue;
        }
        for (size_t m = 0; m < c->nmetrics; m++) {
            const sage__metric *mt = &c->metrics[m];
            if (strcmp(mt->name, name) != 0)
                continue;
            found = 1;
            out->is_histogram = mt->is_hist;
            if (mt->is_hist)
                rc = sage__hist_merge(&agg, &mt->hist);
            else
                out->value += mt->counter;
        }
    }
    if (out->is_histogram && agg.count) {
        out->count = agg.count;
        out->sum = agg.sum;
        out->min = agg.min;
        out->max = agg.max;
        out->p50 = sage__hist_quantile(&agg, 0.5);
        out->p90 = sage__hist_quantile(&agg, 0.9);
        out->p99 = sage__hist_quantile(&agg, 0.99);
        out->p999 = sage__hist_quantile(&agg, 0.999);
    }
    sage__hist_free(&agg);
    if (rc != 0)
        return rc;
    return found ? 0 : SAGE_ENOTFOUND;
}
