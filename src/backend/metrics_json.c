/* backend/metrics_json.c - a task's metrics to JSON in a worker, and back into a task in the client. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

static json_t *hist_json(const sage__hist *h)
{
    json_t *b = json_array();
    for (size_t i = 0; h->buckets && i < SAGE__HIST_BUCKETS; i++)
        if (h->buckets[i])
            json_array_append_new(b, json_pack("[I,I]", (json_int_t)i, (json_int_t)h->buckets[i]));
    return json_pack("{s:I,s:f,s:f,s:f,s:o}", "count", (json_int_t)h->count, "sum", h->sum, "min", h->min, "max",
                     h->max, "buckets", b);
}

void sage__hist_from_json(sage__hist *h, json_t *j)
{
    sage__hist_init(h);
    h->count = (uint64_t)json_integer_value(json_object_get(j, "count"));
    h->sum = json_number_value(json_object_get(j, "sum"));
    h->min = json_number_value(json_object_get(j, "min"));
    h->max = json_number_value(json_object_get(j, "max"));
    json_t *b = json_object_get(j, "buckets");
    if (!json_array_size(b))
        return;
    h->buckets = calloc(SAGE__HIST_BUCKETS, sizeof *h->buckets);
    if (!h->buckets)
        return;
    size_t i;
    json_t *e;
    json_array_foreach(b, i, e)
    {
        json_int_t idx = json_integer_value(json_array_get(e, 0));
        if (idx >= 0 && idx < (json_int_t)SAGE__HIST_BUCKETS)
            h->buckets[idx] = (uint64_t)json_integer_value(json_array_get(e, 1));
    }
}

/* What only the task's own thread may read: user metrics and processing time. */
json_t *sage__metrics_snapshot(sage__task *t)
{
    json_t *ops = json_array();
    for (size_t k = 0; k < t->nops; k++) {
        sage_ctx *c = &t->ops[k].ctx;
        json_t *user = json_object();
        for (size_t m = 0; m < c->nmetrics; m++) {
            const sage__metric *mt = &c->metrics[m];
            json_object_set_new(user, mt->name,
                                mt->is_hist ? json_pack("{s:o}", "hist", hist_json(&mt->hist))
                                            : json_pack("{s:I}", "counter", (json_int_t)mt->counter));
        }
        json_array_append_new(ops, user);
    }
    return json_pack("{s:o,s:{s:f,s:f}}", "user", ops, "processing_time_ns", "p50",
                     sage__hist_quantile(&t->proc_ns, 0.5), "p99", sage__hist_quantile(&t->proc_ns, 0.99));
}

json_t *sage__metrics_json(sage__task *t, json_t *snap, double interval_s, uint64_t *last_count)
{
    json_t *ops = json_array();
    json_t *user = json_object_get(snap, "user");
    for (size_t k = 0; k < t->nops; k++) {
        json_t *u = json_array_get(user, k);
        json_array_append_new(ops, json_pack("{s:s,s:I,s:I,s:o}", "name", t->ops[k].op->name, "records_in",
                                             (json_int_t)sage__records_in(&t->ops[k]), "records_out",
                                             (json_int_t)atomic_load(&t->ops[k].out.emitted), "user",
                                             u ? json_incref(u) : json_object()));
    }
    /* throughput over the last interval: what the head took in (a source: what it emitted) */
    uint64_t count = t->in ? sage__records_in(&t->ops[0]) : atomic_load(&t->ops[0].out.emitted);
    double rate = interval_s > 0 ? (double)(count - *last_count) / interval_s : 0;
    *last_count = count;
    uint64_t blocked = 0;
    for (size_t r = 0; r < t->nroutes; r++)
        for (int n = 0; n < t->routes[r].ntargets; n++)
            blocked += atomic_load(&t->routes[r].targets[n]->blocked_ns);
    json_t *pt = json_object_get(snap, "processing_time_ns");
    return json_pack("{s:o,s:o,s:I,s:I,s:f}", "operators", ops, "processing_time_ns",
                     pt ? json_incref(pt) : json_object(), "queue_depth",
                     (json_int_t)(t->in ? atomic_load(&t->in->depth) : 0), "backpressure_ns", (json_int_t)blocked,
                     "records_per_s", rate);
}

void sage__metrics_import(sage__task *t, json_t *m)
{
    json_t *ops = json_object_get(m, "operators");
    for (size_t k = 0; k < t->nops && k < json_array_size(ops); k++) {
        json_t *o = json_array_get(ops, k);
        sage_ctx *c = &t->ops[k].ctx;
        atomic_store(&c->records_in, (uint64_t)json_integer_value(json_object_get(o, "records_in")));
        atomic_store(&t->ops[k].out.emitted, (uint64_t)json_integer_value(json_object_get(o, "records_out")));
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(o, "user"), name, v)
        {
            if (c->nmetrics >= SAGE_METRICS_MAX || strlen(name) >= sizeof c->metrics[0].name)
                break;
            sage__metric *mt = &c->metrics[c->nmetrics++];
            memset(mt, 0, sizeof *mt);
            memcpy(mt->name, name, strlen(name) + 1);
            json_t *h = json_object_get(v, "hist");
            if (h) {
                mt->is_hist = 1;
                sage__hist_from_json(&mt->hist, h);
            } else {
                sage__hist_init(&mt->hist);
                mt->counter = json_integer_value(json_object_get(v, "counter"));
            }
        }
    }
}
