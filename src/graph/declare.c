/* graph/declare.c - declaring a pipeline: every operator, routing and sink checked and added to the graph. */
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "util/escape.h"
#include "util/utf8.h"

static int graph_usable(sage__graph *g, const char *what)
{
    if (g->seal == SAGE__GRAPH_EXPLAINED)
        return sage__errf(g->err, SAGE_ESTATE,
                          "%s: the plan of env \"%s\" was already compiled (by explain); declare everything before "
                          "explaining",
                          what, g->name);
    if (g->seal == SAGE__GRAPH_SUBMITTED)
        return sage__errf(g->err, SAGE_ESTATE,
                          "%s: the job of env \"%s\" was already submitted; streams cannot be extended after execute",
                          what, g->name);
    return 0;
}

static sage_stream *new_stream(sage__graph *g, sage__op *op)
{
    sage_stream *s = calloc(1, sizeof *s);
    if (!s) {
        sage__errf(g->err, SAGE_ENOMEM, "out of memory declaring a stream");
        return NULL;
    }
    s->g = g;
    s->op = op;
    s->part = SAGE__PART_DEFAULT;
    s->next_alloc = g->streams;
    g->streams = s;
    return s;
}

static int reserved_zero(const sage_op_opts *opts)
{
    for (size_t i = 0; i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
        if (opts->reserved[i])
            return 0;
    return opts->reserved_int == 0;
}

/* Validate options and create the operator (appended to the graph). */
static sage__op *new_op(sage__graph *g, sage__op_kind kind, const sage_op_opts *opts, const char *what)
{
    if (graph_usable(g, what) != 0)
        return NULL;
    static const sage_op_opts none;
    if (!opts)
        opts = &none;
    if (!reserved_zero(opts)) {
        sage__errf(g->err, SAGE_EINVAL,
                   "%s: the reserved fields of sage_op_opts must be zero (zero-initialise the struct; a program built "
                   "against a newer header needs a newer library)",
                   what);
        return NULL;
    }
    sage__op *op = calloc(1, sizeof *op);
    if (!op) {
        sage__errf(g->err, SAGE_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    op->id = (int)g->nops;
    op->kind = kind;
    op->chaining = !opts->disable_chaining;
    op->open = opts->open;
    op->close = opts->close;
    op->snapshot = opts->snapshot;
    op->restore = opts->restore;
    if (opts->name) {
        char why[128];
        const char *problem = sage__name_problem(opts->name, 1, why, sizeof why);
        if (problem) {
            sage__errf(g->err, SAGE_EINVAL, "%s: the operator name %s", what, problem);
            goto fail;
        }
        if (sage__graph_find(g, opts->name)) {
            sage__errf(g->err, SAGE_EINVAL, "%s: operator name \"%s\" is already used in job \"%s\"", what, opts->name,
                       g->name);
            goto fail;
        }
        sage__strlcpy(op->name, opts->name, sizeof op->name);
    } else {
        /* Generated names: kind_id, skipping any a user already took. */
        int k = op->id;
        do
            sage__fmt(op->name, sizeof op->name, "%s_%d", sage__op_kind_name(kind), k++);
        while (sage__graph_find(g, op->name));
    }
    int p = opts->parallelism == 0 ? 1 : opts->parallelism;
    if (p < 1 || p > g->cfg->max_parallelism) {
        sage__errf(g->err, SAGE_EINVAL, "operator \"%s\": parallelism %d is outside 1..%d%s", op->name,
                   opts->parallelism, g->cfg->max_parallelism,
                   g->cfg->max_parallelism < SAGE_PARALLELISM_MAX ? " (config max_parallelism)" : "");
        goto fail;
    }
    op->parallelism = p;
    if (opts->threads < SAGE_THREADS_EACH || opts->threads > SAGE_PARALLELISM_MAX) {
        sage__errf(g->err, SAGE_EINVAL,
                   "operator \"%s\": threads %d is outside 1..%d (0: the config's chain_threads, "
                   "SAGE_THREADS_EACH: a thread per instance)",
                   op->name, opts->threads, SAGE_PARALLELISM_MAX);
        goto fail;
    }
    op->threads = opts->threads;
    if (opts->resources && opts->resources_spec) {
        sage__errf(g->err, SAGE_ERESOURCES, "operator \"%s\": give resources as JSON text or as a struct, not both",
                   op->name);
        goto fail;
    }
    char err[512];
    int rc;
    if (opts->resources) {
        if ((rc = sage_resources_parse(opts->resources, &op->res, err, sizeof err)) != 0) {
            sage__errf(g->err, rc, "operator \"%s\": resources: %s", op->name, err);
            goto fail;
        }
        op->has_res = 1;
    } else if (opts->resources_spec) {
        if ((rc = sage_resources_validate(opts->resources_spec, err, sizeof err)) != 0) {
            sage__errf(g->err, rc, "operator \"%s\": resources: %s", op->name, err);
            goto fail;
        }
        op->res = *opts->resources_spec;
        op->has_res = 1;
    }
    if (op->has_res) {
        const sage_resources *r = &op->res;
        op->has_res = r->num_cpus > 0 || r->num_gpus > 0 || r->memory > 0 || r->object_store_memory > 0 ||
                      r->ncustom > 0;
    }
    if (g->nops == g->capops) {
        size_t cap = g->capops ? g->capops * 2 : 16;
        sage__op **ops = realloc(g->ops, cap * sizeof *ops);
        if (!ops) {
            sage__errf(g->err, SAGE_ENOMEM, "%s: out of memory", what);
            goto fail;
        }
        g->ops = ops;
        g->capops = cap;
    }
    g->ops[g->nops++] = op;
    return op;
fail:
    free(op);
    return NULL;
}

/* Check that `in` can feed a new operator. */
static int input_ok(sage_stream *in, const char *what, int allow_connected)
{
    sage__graph *g = in->g;
    if (graph_usable(g, what) != 0)
        return 0;
    if (in->is_sink) {
        sage__errf(g->err, SAGE_EPLAN, "%s: the stream of sink \"%s\" cannot be consumed", what, in->op->name);
        return 0;
    }
    if (in->conn && !allow_connected) {
        sage__errf(g->err, SAGE_EPLAN, "%s: a connected stream is consumed only by sage_comap", what);
        return 0;
    }
    return 1;
}

static void edge_from(sage__edge *e, const sage_stream *s)
{
    e->from = s->op;
    e->part = s->part;
    e->key = s->key;
    e->key_udata = s->key_udata;
    e->pfn = s->pfn;
    e->pfn_udata = s->pfn_udata;
}

static sage__edge *new_inputs(sage__graph *g, sage__op *op, size_t n, const char *what)
{
    op->inputs = calloc(n, sizeof *op->inputs);
    if (!op->inputs) {
        sage__errf(g->err, SAGE_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    op->ninputs = n;
    return op->inputs;
}

static sage_stream *one_input(sage_stream *in, sage__op_kind kind, void *fn, void *udata, const sage_op_opts *opts,
                              const char *what, sage__builtin builtin)
{
    if (!in)
        return NULL;
    sage__graph *g = in->g;
    if (!input_ok(in, what, 0))
        return NULL;
    if (!fn && builtin == SAGE__BUILTIN_NONE) {
        sage__errf(g->err, SAGE_EINVAL, "%s: the function is NULL", what);
        return NULL;
    }
    sage__op *op = new_op(g, kind, opts, what);
    if (!op || !new_inputs(g, op, 1, what))
        return NULL;
    edge_from(&op->inputs[0], in);
    op->keyed = in->part == SAGE__PART_KEY;
    op->udata = udata;
    op->builtin = builtin;
    switch (kind) {
    case SAGE__OP_MAP:
    case SAGE__OP_FLAT_MAP: op->fn.map = (sage_map_fn)fn; break;
    case SAGE__OP_FILTER: op->fn.filter = (sage_filter_fn)fn; break;
    case SAGE__OP_SINK: op->fn.sink = (sage_sink_fn)fn; break;
    default: break;
    }
    sage_stream *s = new_stream(g, op);
    if (s && kind == SAGE__OP_SINK)
        s->is_sink = 1;
    return s;
}

sage_stream *sage__declare_one_input(sage_stream *in, sage__op_kind kind, void *fn, void *udata,
                                     const sage_op_opts *opts, const char *what)
{
    return one_input(in, kind, fn, udata, opts, what, SAGE__BUILTIN_NONE);
}

sage_stream *sage__declare_route(sage_stream *in, sage__part part, void *fn, void *udata, const char *what)
{
    if (!in)
        return NULL;
    if ((part == SAGE__PART_KEY || part == SAGE__PART_CUSTOM) && !fn) {
        sage__errf(in->g->err, SAGE_EINVAL, "%s: the %s is NULL", what,
                   part == SAGE__PART_KEY ? "key function" : "partitioner");
        return NULL;
    }
    if (!input_ok(in, what, 0))
        return NULL;
    sage_stream *s = new_stream(in->g, in->op);
    if (!s)
        return NULL;
    s->part = part;
    if (part == SAGE__PART_KEY) {
        s->key = (sage_key_fn)fn;
        s->key_udata = udata;
    } else if (part == SAGE__PART_CUSTOM) {
        s->pfn = (sage_partition_fn)fn;
        s->pfn_udata = udata;
    }
    return s;
}

/* Two streams of different environments: an error for both. */
static int same_graph(sage_stream *a, sage_stream *b, const char *what)
{
    if (a->g == b->g)
        return 1;
    sage__errf(a->g->err, SAGE_EPLAN, "%s: the two streams belong to different environments (\"%s\" and \"%s\")", what,
               a->g->name, b->g->name);
    sage__errf(b->g->err, SAGE_EPLAN, "%s: the two streams belong to different environments (\"%s\" and \"%s\")", what,
               a->g->name, b->g->name);
    return 0;
}

sage_stream *sage__declare_connect(sage_stream *a, sage_stream *b)
{
    if (!a || !b || !same_graph(a, b, "sage_connect"))
        return NULL;
    if (!input_ok(a, "sage_connect", 1) || !input_ok(b, "sage_connect", 1))
        return NULL;
    size_t na = a->conn ? a->nconn : 1, nb = b->conn ? b->nconn : 1;
    sage_stream *s = new_stream(a->g, NULL);
    if (!s)
        return NULL;
    s->conn = calloc(na + nb, sizeof *s->conn);
    if (!s->conn) {
        sage__errf(a->g->err, SAGE_ENOMEM, "sage_connect: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < na; i++)
        s->conn[s->nconn++] = a->conn ? a->conn[i] : a;
    for (size_t i = 0; i < nb; i++)
        s->conn[s->nconn++] = b->conn ? b->conn[i] : b;
    return s;
}

sage_stream *sage__declare_comap(sage_stream *connected, const sage_map_fn *fns, size_t nfns, void *udata,
                                 const sage_op_opts *opts)
{
    if (!connected)
        return NULL;
    sage__graph *g = connected->g;
    if (!input_ok(connected, "sage_comap", 1))
        return NULL;
    if (!connected->conn) {
        sage__errf(g->err, SAGE_EPLAN, "sage_comap: expects a connected stream (sage_connect)");
        return NULL;
    }
    if (!fns || nfns != connected->nconn) {
        sage__errf(g->err, SAGE_EINVAL, "sage_comap: %zu functions given for %zu connected inputs", fns ? nfns : 0,
                   connected->nconn);
        return NULL;
    }
    for (size_t i = 0; i < nfns; i++)
        if (!fns[i]) {
            sage__errf(g->err, SAGE_EINVAL, "sage_comap: function %zu is NULL", i);
            return NULL;
        }
    sage__op *op = new_op(g, SAGE__OP_COMAP, opts, "sage_comap");
    if (!op || !new_inputs(g, op, nfns, "sage_comap"))
        return NULL;
    op->cofns = calloc(nfns, sizeof *op->cofns);
    if (!op->cofns) {
        sage__errf(g->err, SAGE_ENOMEM, "sage_comap: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < nfns; i++) {
        edge_from(&op->inputs[i], connected->conn[i]);
        op->cofns[i] = fns[i];
        if (connected->conn[i]->part == SAGE__PART_KEY)
            op->keyed = 1;
    }
    op->udata = udata;
    return new_stream(g, op);
}

/* A generated name with this prefix ("union_3"), when the user gave none. */
static void generated_name(sage__graph *g, sage__op *op, const sage_op_opts *opts, const char *prefix)
{
    if (opts && opts->name)
        return;
    int k = op->id;
    char name[SAGE__NAME_MAX];
    do
        sage__fmt(name, sizeof name, "%s_%d", prefix, k++);
    while (sage__graph_find(g, name));
    sage__strlcpy(op->name, name, sizeof op->name);
}

sage_stream *sage__declare_union(sage_stream *const *streams, size_t n, const sage_op_opts *opts)
{
    if (!streams || n == 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!streams[i])
            return NULL; /* its error is recorded already */
    sage__graph *g = streams[0]->g;
    if (n < 2) {
        sage__errf(g->err, SAGE_EINVAL, "sage_union: %zu stream given, a union needs at least 2", n);
        return NULL;
    }
    for (size_t i = 1; i < n; i++)
        if (!same_graph(streams[0], streams[i], "sage_union"))
            return NULL;
    for (size_t i = 0; i < n; i++)
        if (!input_ok(streams[i], "sage_union", 0))
            return NULL;
    sage__op *op = new_op(g, SAGE__OP_COMAP, opts, "sage_union");
    if (!op || !new_inputs(g, op, n, "sage_union"))
        return NULL;
    generated_name(g, op, opts, "union");
    op->builtin = SAGE__BUILTIN_UNION;
    for (size_t i = 0; i < n; i++) {
        edge_from(&op->inputs[i], streams[i]);
        if (streams[i]->part == SAGE__PART_KEY)
            op->keyed = 1;
    }
    return new_stream(g, op);
}

sage_stream *sage__declare_future(sage__graph *g, const char *name)
{
    sage_op_opts o = {.name = name};
    sage__op *op = new_op(g, SAGE__OP_COMAP, &o, "sage_from_future");
    if (!op)
        return NULL;
    if (!name) {
        int k = op->id;
        do
            sage__fmt(op->name, sizeof op->name, "future_%d", k++);
        while (sage__graph_find(g, op->name) != op);
    }
    op->builtin = SAGE__BUILTIN_FUTURE;
    op->chaining = 0; /* a task of its own: it holds back what the loop cannot take yet */
    return new_stream(g, op);
}

int sage__declare_fill_future(sage_stream *in, sage_stream *future)
{
    if (!in || !future)
        return in && in->g->err->code           ? in->g->err->code
               : future && future->g->err->code ? future->g->err->code
                                                : SAGE_EINVAL;
    sage__graph *g = in->g;
    if (!same_graph(in, future, "sage_fill_future"))
        return SAGE_EPLAN;
    if (!future->op || future->op->builtin != SAGE__BUILTIN_FUTURE || future->part != SAGE__PART_DEFAULT)
        return sage__errf(g->err, SAGE_EINVAL,
                          "sage_fill_future: the second stream is not a future (sage_from_future)");
    sage__op *op = future->op;
    if (op->filled)
        return sage__errf(g->err, SAGE_EPLAN, "sage_fill_future: future \"%s\" is already filled", op->name);
    if (!input_ok(in, "sage_fill_future", 0))
        return g->err->code ? g->err->code : SAGE_EINVAL;
    if (!new_inputs(g, op, 1, "sage_fill_future"))
        return SAGE_ENOMEM;
    edge_from(&op->inputs[0], in);
    if (op->inputs[0].part == SAGE__PART_FORWARD && in->op->parallelism != 1)
        op->inputs[0].part = SAGE__PART_REBALANCE; /* into one instance: what forward means here */
    op->filled = 1;
    return 0;
}

sage_stream *sage__declare_reduce(sage_stream *keyed, sage_reduce_fn fn, size_t acc_size, int emit, void *udata,
                                  const sage_op_opts *opts)
{
    if (!keyed)
        return NULL;
    sage__graph *g = keyed->g;
    if (!fn) {
        sage__errf(g->err, SAGE_EINVAL, "sage_reduce: the function is NULL");
        return NULL;
    }
    if (keyed->part != SAGE__PART_KEY) {
        sage__errf(g->err, SAGE_EINVAL, "sage_reduce: expects a keyed stream (call sage_key_by first)");
        return NULL;
    }
    if (acc_size == 0 || acc_size > SAGE_REDUCE_ACC_MAX) {
        sage__errf(g->err, SAGE_EINVAL, "sage_reduce: an accumulator of %zu bytes (1..%d)", acc_size,
                   SAGE_REDUCE_ACC_MAX);
        return NULL;
    }
    if (emit != SAGE_REDUCE_EACH && emit != SAGE_REDUCE_AT_CLOSE) {
        sage__errf(g->err, SAGE_EINVAL, "sage_reduce: emit is %d (SAGE_REDUCE_EACH or SAGE_REDUCE_AT_CLOSE)", emit);
        return NULL;
    }
    sage_stream *s = one_input(keyed, SAGE__OP_FLAT_MAP, (void *)fn, udata, opts, "sage_reduce", SAGE__BUILTIN_REDUCE);
    if (!s)
        return NULL;
    generated_name(g, s->op, opts, "reduce");
    s->op->fn.map = NULL; /* the runtime's fold calls reduce */
    s->op->reduce = fn;
    s->op->reduce_acc = acc_size;
    s->op->reduce_emit = emit;
    return s;
}

sage_stream *sage__declare_join(sage_stream *left, sage_key_fn left_key, sage_stream *right, sage_key_fn right_key,
                                sage_join_fn fn, void *udata, const sage_op_opts *opts)
{
    if (!left || !right || !same_graph(left, right, "sage_join"))
        return NULL;
    sage__graph *g = left->g;
    if (!input_ok(left, "sage_join", 0) || !input_ok(right, "sage_join", 0))
        return NULL;
    if (!left_key || !right_key || !fn) {
        sage__errf(g->err, SAGE_EINVAL, "sage_join: %s is NULL",
                   !fn         ? "the join function"
                   : !left_key ? "the left key function"
                               : "the right key function");
        return NULL;
    }
    sage__op *op = new_op(g, SAGE__OP_JOIN, opts, "sage_join");
    if (!op || !new_inputs(g, op, 2, "sage_join"))
        return NULL;
    sage_stream *sides[2] = {left, right};
    sage_key_fn keys[2] = {left_key, right_key};
    for (int i = 0; i < 2; i++) {
        op->inputs[i].from = sides[i]->op;
        op->inputs[i].part = SAGE__PART_KEY;
        op->inputs[i].key = keys[i];
        op->inputs[i].key_udata = udata;
    }
    op->keyed = 1;
    op->udata = udata;
    op->fn.join = fn;
    return new_stream(g, op);
}

/* ---- sources ---- */

static sage__op *source_op(sage__graph *g, sage_source_fn fn, void *udata, const sage_op_opts *opts, int bounded,
                           sage__builtin builtin, const char *what)
{
    if (!fn && builtin == SAGE__BUILTIN_NONE) {
        sage__errf(g->err, SAGE_EINVAL, "%s: the source function is NULL", what);
        return NULL;
    }
    sage__op *op = new_op(g, SAGE__OP_SOURCE, opts, what);
    if (!op)
        return NULL;
    op->fn.source = fn; /* built-ins: NULL, the runtime supplies the function */
    op->udata = udata;
    op->bounded = bounded;
    op->builtin = builtin;
    return op;
}

sage_stream *sage__declare_source(sage__graph *g, sage_source_fn fn, void *udata, const sage_op_opts *opts, int bounded,
                                  const char *what)
{
    sage__op *op = source_op(g, fn, udata, opts, bounded, SAGE__BUILTIN_NONE, what);
    return op ? new_stream(g, op) : NULL;
}

/* A collection source over `total` bytes in n records; the caller fills coll_data and coll_off. */
static sage__op *collection_op(sage__graph *g, size_t n, size_t total, const sage_op_opts *opts, const char *what)
{
    sage__op *op = source_op(g, NULL, NULL, opts, 1, SAGE__BUILTIN_COLLECTION, what);
    if (!op)
        return NULL;
    op->coll_data = malloc(total ? total : 1);
    op->coll_off = malloc((n + 1) * sizeof *op->coll_off);
    if (!op->coll_data || !op->coll_off) {
        sage__errf(g->err, SAGE_ENOMEM, "%s: out of memory copying %zu records", what, n);
        return NULL;
    }
    op->coll_n = n;
    return op;
}

sage_stream *sage__declare_collection(sage__graph *g, const void *const *recs, const size_t *lens, size_t n,
                                      const sage_op_opts *opts)
{
    if (n > 0 && (!recs || !lens)) {
        sage__errf(g->err, SAGE_EINVAL, "sage_from_collection: records or lengths are NULL");
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i] && lens[i]) {
            sage__errf(g->err, SAGE_EINVAL, "sage_from_collection: record %zu is NULL", i);
            return NULL;
        }
        if (lens[i] > g->cfg->max_record_bytes) {
            sage__errf(g->err, SAGE_ETOOBIG,
                       "sage_from_collection: record %zu has %zu bytes, more than max_record_bytes %zu", i, lens[i],
                       g->cfg->max_record_bytes);
            return NULL;
        }
        total += lens[i];
    }
    sage__op *op = collection_op(g, n, total, opts, "sage_from_collection");
    if (!op)
        return NULL;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        op->coll_off[i] = off;
        if (lens[i])
            memcpy(op->coll_data + off, recs[i], lens[i]);
        off += lens[i];
    }
    op->coll_off[n] = off;
    return new_stream(g, op);
}

sage_stream *sage__declare_int64s(sage__graph *g, const int64_t *values, size_t n, const sage_op_opts *opts)
{
    if (n > 0 && !values) {
        sage__errf(g->err, SAGE_EINVAL, "sage_from_int64s: values is NULL");
        return NULL;
    }
    sage__op *op = collection_op(g, n, n * 8, opts, "sage_from_int64s");
    if (!op)
        return NULL;
    if (n)
        memcpy(op->coll_data, values, n * 8);
    for (size_t i = 0; i <= n; i++)
        op->coll_off[i] = i * 8;
    return new_stream(g, op);
}

/* Copy a path into op->path (built-in file sources and sinks). */
static int set_path(sage__graph *g, sage__op *op, const char *path, const char *what)
{
    op->path = strdup(path);
    if (!op->path)
        return sage__errf(g->err, SAGE_ENOMEM, "%s: out of memory", what);
    return 0;
}

sage_stream *sage__declare_file_lines(sage__graph *g, const char *path, const sage_op_opts *opts)
{
    if (!path || !*path) {
        sage__errf(g->err, SAGE_EINVAL, "sage_from_file_lines: the path is empty");
        return NULL;
    }
    sage__op *op = source_op(g, NULL, NULL, opts, 1, SAGE__BUILTIN_FILE_LINES, "sage_from_file_lines");
    if (!op || set_path(g, op, path, "sage_from_file_lines") != 0)
        return NULL;
    return new_stream(g, op);
}

/* ---- built-in sinks ---- */

sage_stream *sage__declare_file_sink(sage_stream *in, const char *path, const sage_op_opts *opts)
{
    if (!in)
        return NULL;
    if (!path || !*path) {
        sage__errf(in->g->err, SAGE_EINVAL, "sage_sink_file: the path is empty");
        return NULL;
    }
    sage_stream *s = one_input(in, SAGE__OP_SINK, NULL, NULL, opts, "sage_sink_file", SAGE__BUILTIN_FILE_SINK);
    if (!s)
        return NULL;
    return set_path(in->g, s->op, path, "sage_sink_file") == 0 ? s : NULL;
}

sage_stream *sage__declare_collect_sink(sage_stream *in, sage_collector *c, const sage_op_opts *opts)
{
    if (!in)
        return NULL;
    if (!c) {
        sage__errf(in->g->err, SAGE_EINVAL, "sage_sink_collect: the collector is NULL");
        return NULL;
    }
    sage_stream *s = one_input(in, SAGE__OP_SINK, NULL, NULL, opts, "sage_sink_collect", SAGE__BUILTIN_COLLECT_SINK);
    if (!s)
        return NULL;
    s->op->collector = c;
    return s;
}

/* ---- services ---- */

int sage__declare_service(sage__graph *g, const char *name, sage_service_fn fn, void *udata,
                          const sage_service_opts *opts)
{
    if (g->seal == SAGE__GRAPH_SUBMITTED)
        return sage__errf(g->err, SAGE_ESTATE, "sage_env_register_service: register services before execute");
    char why[160];
    const char *bad = sage__name_problem(name, 1, why, sizeof why);
    if (!bad && strlen(name) > SAGE__SERVICE_NAME_MAX)
        bad = "is longer than 119 bytes";
    if (bad) {
        char shown[64];
        return sage__errf(g->err, SAGE_EINVAL, "sage_env_register_service: the service name \"%s\" %s",
                          name ? sage__escape_str(shown, sizeof shown, name) : "(null)", bad);
    }
    if (!fn)
        return sage__errf(g->err, SAGE_EINVAL, "sage_env_register_service: service \"%s\" has a NULL function", name);
    for (size_t i = 0; i < g->nservices; i++)
        if (strcmp(g->services[i].name, name) == 0)
            return sage__errf(g->err, SAGE_EINVAL, "sage_env_register_service: service \"%s\" is already registered",
                              name);
    sage_resources res = {0};
    if (opts && opts->resources) {
        char rerr[512];
        int rc = sage_resources_parse(opts->resources, &res, rerr, sizeof rerr);
        if (rc != 0)
            return sage__errf(g->err, rc, "sage_env_register_service: service \"%s\": resources: %s", name, rerr);
    }
    sage__service_decl *list = realloc(g->services, (g->nservices + 1) * sizeof *list);
    if (!list)
        return sage__errf(g->err, SAGE_ENOMEM, "out of memory registering service \"%s\"", name);
    g->services = list;
    sage__service_decl *s = &list[g->nservices];
    memset(s, 0, sizeof *s);
    memcpy(s->name, name, strlen(name) + 1);
    s->fn = fn;
    s->udata = udata;
    if (opts)
        s->opts = *opts;
    s->opts.resources = NULL; /* the caller's string need not outlive the call */
    s->res = res;
    if (s->opts.queue_capacity == 0)
        s->opts.queue_capacity = 1024;
    if (s->opts.queue_capacity > (1u << 20))
        s->opts.queue_capacity = 1u << 20;
    g->nservices++;
    return 0;
}
