/* graph/declare_batch.c - declaring batch operators (sage_map_batches, sage_sink_batches; sage/batch.h). */
#include "graph/graph.h"

sage_stream *sage__declare_batch(sage_stream *in, int sink, void *fn, void *udata, const sage_op_opts *opts)
{
    const char *what = sink ? "sage_sink_batches" : "sage_map_batches";
    if (!in)
        return NULL;
    if (!fn) {
        sage__errf(in->g->err, SAGE_EINVAL, "%s: the function is NULL", what);
        return NULL;
    }
    /* A flat_map or sink as far as the plan goes (records in, any number out); the runtime calls batch_*. */
    sage_stream *s = sage__declare_one_input(in, sink ? SAGE__OP_SINK : SAGE__OP_FLAT_MAP, fn, udata, opts, what);
    if (!s)
        return NULL;
    sage__op *op = s->op;
    op->batch = 1;
    if (sink) {
        op->fn.sink = NULL;
        op->batch_sink = (sage_sink_batch_fn)fn;
    } else {
        op->fn.map = NULL;
        op->batch_map = (sage_map_batch_fn)fn;
    }
    if (!opts || !opts->name) { /* "map_batches_3" rather than the kind's "flat_map_3" */
        sage__graph *g = in->g;
        char name[SAGE__NAME_MAX];
        int k = op->id;
        do
            sage__fmt(name, sizeof name, "%s_%d", sink ? "sink_batches" : "map_batches", k++);
        while (sage__graph_find(g, name));
        sage__strlcpy(op->name, name, sizeof op->name);
    }
    return s;
}
