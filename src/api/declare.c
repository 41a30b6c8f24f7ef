/* api/declare.c - building the logical graph: one sage__op per declared operator, streams as routed views. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "util/utf8.h"

static int env_usable(sage_env *env, const char *what)
{
    if (env->plan && !env->executed)
        return sage__env_fail(env, SAGE_ESTATE, "%s: the plan of env \"%s\" was already compiled (by explain); declare "
                              "everything before explaining", what, env->name);
    if (env->executed)
        return sage__env_fail(env, SAGE_ESTATE,
                              "%s: the job of env \"%s\" was already submitted; streams cannot be extended after "
                              "execute",
                              what, env->name);
    return 0;
}

static sage_stream *new_stream(sage_env *env, sage__op *op)
{
    sage_stream *s = calloc(1, sizeof *s);
    if (!s) {
        sage__env_fail(env, SAGE_ENOMEM, "out of memory declaring a stream");
        return NULL;
    }
    s->env = env;
    s->op = op;
    s->part = SAGE__PART_DEFAULT;
    s->next_alloc = env->streams;
    env->streams = s;
    return s;
}

static sage__op *find_op(sage_env *env, const char *name)
{
    for (size_t i = 0; i < env->nops; i++)
        if (strcmp(env->ops[i]->name, name) == 0)
            return env->ops[i];
    return NULL;
}

/* Validate options and create the operator. */
static sage__op *new_op(sage_env *env, sage__op_kind kind, const sage_op_opts *opts, const char *what)
{
    if (env_usable(env, what) != 0)
        return NULL;
    sage_op_opts none = {0};
    if (!opts)
        opts = &none;
    sage__op *op = calloc(1, sizeof *op);
    if (!op) {
        sage__env_fail(env, SAGE_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    op->id = (int)env->nops;
    op->kind = kind;
    op->append_fd = -1;
    op->chaining = !opts->disable_chaining;
    op->open = opts->open;
    op->close = opts->close;
    if (opts->name) {
        size_t n = strlen(opts->name);
        if (n == 0 || n >= sizeof op->name) {
            sage__env_fail(env, SAGE_EINVAL, "%s: operator name must be 1 to %zu bytes", what, sizeof op->name - 1);
            goto fail;
        }
        if (!sage__utf8_valid(opts->name, n)) {
            sage__env_fail(env, SAGE_EINVAL, "%s: operator name is not valid UTF-8", what);
            goto fail;
        }
        if (find_op(env, opts->name)) {
            sage__env_fail(env, SAGE_EINVAL, "%s: operator name \"%s\" is already used in job \"%s\"", what, opts->name,
                           env->name);
            goto fail;
        }
        memcpy(op->name, opts->name, n + 1);
    } else {
        /* Generated names: kind_id, skipping any a user already took. */
        int k = op->id;
        do
            snprintf(op->name, sizeof op->name, "%s_%d", sage__op_kind_name(kind), k++);
        while (find_op(env, op->name));
    }
    int p = opts->parallelism == 0 ? 1 : opts->parallelism;
    if (p < 1 || p > env->cfg.max_parallelism) {
        sage__env_fail(env, SAGE_EINVAL, "operator \"%s\": parallelism %d is outside 1..%d%s", op->name,
                       opts->parallelism, env->cfg.max_parallelism,
                       env->cfg.max_parallelism < SAGE_PARALLELISM_MAX ? " (config max_parallelism)" : "");
        goto fail;
    }
    op->parallelism = p;
    if (opts->resources && opts->resources_spec) {
        sage__env_fail(env, SAGE_ERESOURCES, "operator \"%s\": give resources as JSON text or as a struct, not both",
                       op->name);
        goto fail;
    }
    char err[512];
    if (opts->resources) {
        if (sage_resources_parse(opts->resources, &op->res, err, sizeof err) != 0) {
            sage__env_fail(env, SAGE_ERESOURCES, "operator \"%s\": resources: %s", op->name, err);
            goto fail;
        }
        op->has_res = 1;
    } else if (opts->resources_spec) {
        if (sage_resources_validate(opts->resources_spec, err, sizeof err) != 0) {
            sage__env_fail(env, SAGE_ERESOURCES, "operator \"%s\": resources: %s", op->name, err);
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
    if (env->nops == env->capops) {
        size_t cap = env->capops ? env->capops * 2 : 16;
        sage__op **ops = realloc(env->ops, cap * sizeof *ops);
        if (!ops) {
            sage__env_fail(env, SAGE_ENOMEM, "%s: out of memory", what);
            goto fail;
        }
        env->ops = ops;
        env->capops = cap;
    }
    env->ops[env->nops++] = op;
    return op;
fail:
    free(op);
    return NULL;
}

/* Check that `in` can feed a new operator. */
static int input_ok(sage_stream *in, const char *what, int allow_connected)
{
    sage_env *env = in->env;
    if (env_usable(env, what) != 0)
        return 0;
    if (in->is_sink) {
        sage__env_fail(env, SAGE_EPLAN, "%s: the stream of sink \"%s\" cannot be consumed", what, in->op->name);
        return 0;
    }
    if (in->conn && !allow_connected) {
        sage__env_fail(env, SAGE_EPLAN, "%s: a connected stream is consumed only by sage_comap", what);
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

static sage_stream *one_input_op(sage_stream *in, sage__op_kind kind, void *fn, void *udata,
                                 const sage_op_opts *opts, const char *what)
{
    if (!in)
        return NULL;
    sage_env *env = in->env;
    if (!input_ok(in, what, 0))
        return NULL;
    if (!fn) {
        sage__env_fail(env, SAGE_EINVAL, "%s: the function is NULL", what);
        return NULL;
    }
    sage__op *op = new_op(env, kind, opts, what);
    if (!op)
        return NULL;
    op->inputs = calloc(1, sizeof *op->inputs);
    if (!op->inputs) {
        sage__env_fail(env, SAGE_ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    op->ninputs = 1;
    edge_from(&op->inputs[0], in);
    op->keyed = in->part == SAGE__PART_KEY;
    op->udata = udata;
    switch (kind) {
    case SAGE__OP_MAP:
    case SAGE__OP_FLAT_MAP: op->fn.map = (sage_map_fn)fn; break;
    case SAGE__OP_FILTER: op->fn.filter = (sage_filter_fn)fn; break;
    case SAGE__OP_SINK: op->fn.sink = (sage_sink_fn)fn; break;
    default: break;
    }
    sage_stream *s = new_stream(env, op);
    if (s && kind == SAGE__OP_SINK)
        s->is_sink = 1;
    return s;
}

SAGE_API sage_stream *sage_map(sage_stream *in, sage_map_fn fn, void *udata, const sage_op_opts *opts)
{
    return one_input_op(in, SAGE__OP_MAP, (void *)fn, udata, opts, "sage_map");
}

SAGE_API sage_stream *sage_flat_map(sage_stream *in, sage_map_fn fn, void *udata, const sage_op_opts *opts)
{
    return one_input_op(in, SAGE__OP_FLAT_MAP, (void *)fn, udata, opts, "sage_flat_map");
}

SAGE_API sage_stream *sage_filter(sage_stream *in, sage_filter_fn fn, void *udata, const sage_op_opts *opts)
{
    return one_input_op(in, SAGE__OP_FILTER, (void *)fn, udata, opts, "sage_filter");
}

SAGE_API sage_stream *sage_sink(sage_stream *in, sage_sink_fn fn, void *udata, const sage_op_opts *opts)
{
    return one_input_op(in, SAGE__OP_SINK, (void *)fn, udata, opts, "sage_sink");
}

/* ---- partitioning views ---- */

static sage_stream *repartition(sage_stream *in, sage__part part, const char *what)
{
    if (!in)
        return NULL;
    if (!input_ok(in, what, 0))
        return NULL;
    sage_stream *s = new_stream(in->env, in->op);
    if (s)
        s->part = part;
    return s;
}

SAGE_API sage_stream *sage_key_by(sage_stream *in, sage_key_fn fn, void *udata)
{
    if (in && !fn) {
        sage__env_fail(in->env, SAGE_EINVAL, "sage_key_by: the key function is NULL");
        return NULL;
    }
    sage_stream *s = repartition(in, SAGE__PART_KEY, "sage_key_by");
    if (s) {
        s->key = fn;
        s->key_udata = udata;
    }
    return s;
}

SAGE_API sage_stream *sage_partition_custom(sage_stream *in, sage_partition_fn fn, void *udata)
{
    if (in && !fn) {
        sage__env_fail(in->env, SAGE_EINVAL, "sage_partition_custom: the partitioner is NULL");
        return NULL;
    }
    sage_stream *s = repartition(in, SAGE__PART_CUSTOM, "sage_partition_custom");
    if (s) {
        s->pfn = fn;
        s->pfn_udata = udata;
    }
    return s;
}

SAGE_API sage_stream *sage_rebalance(sage_stream *in) { return repartition(in, SAGE__PART_REBALANCE, "sage_rebalance"); }
SAGE_API sage_stream *sage_broadcast(sage_stream *in) { return repartition(in, SAGE__PART_BROADCAST, "sage_broadcast"); }
SAGE_API sage_stream *sage_forward(sage_stream *in) { return repartition(in, SAGE__PART_FORWARD, "sage_forward"); }

/* ---- several inputs ---- */

SAGE_API sage_stream *sage_connect(sage_stream *a, sage_stream *b)
{
    if (!a || !b)
        return NULL;
    if (a->env != b->env) {
        sage__env_fail(a->env, SAGE_EPLAN, "sage_connect: the two streams belong to different environments (\"%s\" and \"%s\")",
                       a->env->name, b->env->name);
        sage__env_fail(b->env, SAGE_EPLAN, "sage_connect: the two streams belong to different environments (\"%s\" and \"%s\")",
                       a->env->name, b->env->name);
        return NULL;
    }
    if (!input_ok(a, "sage_connect", 1) || !input_ok(b, "sage_connect", 1))
        return NULL;
    size_t na = a->conn ? a->nconn : 1, nb = b->conn ? b->nconn : 1;
    sage_stream *s = new_stream(a->env, NULL);
    if (!s)
        return NULL;
    s->conn = calloc(na + nb, sizeof *s->conn);
    if (!s->conn) {
        sage__env_fail(a->env, SAGE_ENOMEM, "sage_connect: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < na; i++)
        s->conn[s->nconn++] = a->conn ? a->conn[i] : a;
    for (size_t i = 0; i < nb; i++)
        s->conn[s->nconn++] = b->conn ? b->conn[i] : b;
    return s;
}

SAGE_API sage_stream *sage_comap(sage_stream *connected, const sage_map_fn *fns, size_t nfns, void *udata,
                                 const sage_op_opts *opts)
{
    if (!connected)
        return NULL;
    sage_env *env = connected->env;
    if (!input_ok(connected, "sage_comap", 1))
        return NULL;
    if (!connected->conn) {
        sage__env_fail(env, SAGE_EPLAN, "sage_comap: expects a connected stream (sage_connect)");
        return NULL;
    }
    if (!fns || nfns != connected->nconn) {
        sage__env_fail(env, SAGE_EINVAL, "sage_comap: %zu functions given for %zu connected inputs", fns ? nfns : 0,
                       connected->nconn);
        return NULL;
    }
    for (size_t i = 0; i < nfns; i++)
        if (!fns[i]) {
            sage__env_fail(env, SAGE_EINVAL, "sage_comap: function %zu is NULL", i);
            return NULL;
        }
    sage__op *op = new_op(env, SAGE__OP_COMAP, opts, "sage_comap");
    if (!op)
        return NULL;
    op->inputs = calloc(nfns, sizeof *op->inputs);
    op->cofns = calloc(nfns, sizeof *op->cofns);
    if (!op->inputs || !op->cofns) {
        sage__env_fail(env, SAGE_ENOMEM, "sage_comap: out of memory");
        return NULL;
    }
    op->ninputs = nfns;
    for (size_t i = 0; i < nfns; i++) {
        edge_from(&op->inputs[i], connected->conn[i]);
        op->cofns[i] = fns[i];
        if (connected->conn[i]->part == SAGE__PART_KEY)
            op->keyed = 1;
    }
    op->udata = udata;
    return new_stream(env, op);
}

SAGE_API sage_stream *sage_join(sage_stream *left, sage_key_fn left_key, sage_stream *right, sage_key_fn right_key,
                                sage_join_fn fn, void *udata, const sage_op_opts *opts)
{
    if (!left || !right)
        return NULL;
    sage_env *env = left->env;
    if (left->env != right->env) {
        sage__env_fail(left->env, SAGE_EPLAN, "sage_join: the two streams belong to different environments (\"%s\" and \"%s\")",
                       left->env->name, right->env->name);
        sage__env_fail(right->env, SAGE_EPLAN, "sage_join: the two streams belong to different environments (\"%s\" and \"%s\")",
                       left->env->name, right->env->name);
        return NULL;
    }
    if (!input_ok(left, "sage_join", 0) || !input_ok(right, "sage_join", 0))
        return NULL;
    if (!left_key || !right_key || !fn) {
        sage__env_fail(env, SAGE_EINVAL, "sage_join: %s is NULL",
                       !fn ? "the join function" : !left_key ? "the left key function" : "the right key function");
        return NULL;
    }
    sage__op *op = new_op(env, SAGE__OP_JOIN, opts, "sage_join");
    if (!op)
        return NULL;
    op->inputs = calloc(2, sizeof *op->inputs);
    if (!op->inputs) {
        sage__env_fail(env, SAGE_ENOMEM, "sage_join: out of memory");
        return NULL;
    }
    op->ninputs = 2;
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
    return new_stream(env, op);
}

/* ---- sources ---- */

static sage_stream *source_op(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts, int bounded,
                              sage__builtin builtin, const char *what)
{
    if (!env)
        return NULL;
    if (!fn) {
        sage__env_fail(env, SAGE_EINVAL, "%s: the source function is NULL", what);
        return NULL;
    }
    sage__op *op = new_op(env, SAGE__OP_SOURCE, opts, what);
    if (!op)
        return NULL;
    op->fn.source = fn;
    op->udata = udata;
    op->bounded = bounded;
    op->builtin = builtin;
    return new_stream(env, op);
}

SAGE_API sage_stream *sage_from_generator(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts)
{
    return source_op(env, fn, udata, opts, 1, SAGE__BUILTIN_NONE, "sage_from_generator");
}

SAGE_API sage_stream *sage_from_source(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts)
{
    return source_op(env, fn, udata, opts, 0, SAGE__BUILTIN_NONE, "sage_from_source");
}

SAGE_API sage_stream *sage_from_collection(sage_env *env, const void *const *recs, const size_t *lens, size_t n,
                                           const sage_op_opts *opts)
{
    if (!env)
        return NULL;
    if (n > 0 && (!recs || !lens)) {
        sage__env_fail(env, SAGE_EINVAL, "sage_from_collection: records or lengths are NULL");
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i] && lens[i]) {
            sage__env_fail(env, SAGE_EINVAL, "sage_from_collection: record %zu is NULL", i);
            return NULL;
        }
        if (lens[i] > env->cfg.max_record_bytes) {
            sage__env_fail(env, SAGE_ETOOBIG, "sage_from_collection: record %zu has %zu bytes, more than max_record_bytes %zu",
                           i, lens[i], env->cfg.max_record_bytes);
            return NULL;
        }
        total += lens[i];
    }
    sage_stream *s = source_op(env, sage__builtin_source, NULL, opts, 1, SAGE__BUILTIN_COLLECTION, "sage_from_collection");
    if (!s)
        return NULL;
    sage__op *op = s->op;
    op->udata = op;
    op->coll_data = malloc(total ? total : 1);
    op->coll_off = malloc((n + 1) * sizeof *op->coll_off);
    if (!op->coll_data || !op->coll_off) {
        sage__env_fail(env, SAGE_ENOMEM, "sage_from_collection: out of memory copying %zu records", n);
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        op->coll_off[i] = off;
        if (lens[i])
            memcpy(op->coll_data + off, recs[i], lens[i]);
        off += lens[i];
    }
    op->coll_off[n] = off;
    op->coll_n = n;
    op->coll_bytes = total;
    return s;
}

SAGE_API sage_stream *sage_from_int64s(sage_env *env, const int64_t *values, size_t n, const sage_op_opts *opts)
{
    if (!env)
        return NULL;
    if (n > 0 && !values) {
        sage__env_fail(env, SAGE_EINVAL, "sage_from_int64s: values is NULL");
        return NULL;
    }
    sage_stream *s = source_op(env, sage__builtin_source, NULL, opts, 1, SAGE__BUILTIN_COLLECTION, "sage_from_int64s");
    if (!s)
        return NULL;
    sage__op *op = s->op;
    op->udata = op;
    op->coll_data = malloc(n ? n * 8 : 1);
    op->coll_off = malloc((n + 1) * sizeof *op->coll_off);
    if (!op->coll_data || !op->coll_off) {
        sage__env_fail(env, SAGE_ENOMEM, "sage_from_int64s: out of memory copying %zu values", n);
        return NULL;
    }
    if (n)
        memcpy(op->coll_data, values, n * 8);
    for (size_t i = 0; i <= n; i++)
        op->coll_off[i] = i * 8;
    op->coll_n = n;
    op->coll_bytes = n * 8;
    return s;
}

SAGE_API sage_stream *sage_from_file_lines(sage_env *env, const char *path, const sage_op_opts *opts)
{
    if (!env)
        return NULL;
    if (!path || !*path) {
        sage__env_fail(env, SAGE_EINVAL, "sage_from_file_lines: the path is empty");
        return NULL;
    }
    sage_stream *s = source_op(env, sage__builtin_source, NULL, opts, 1, SAGE__BUILTIN_FILE_LINES, "sage_from_file_lines");
    if (!s)
        return NULL;
    s->op->udata = s->op;
    s->op->path = strdup(path);
    if (!s->op->path) {
        sage__env_fail(env, SAGE_ENOMEM, "sage_from_file_lines: out of memory");
        return NULL;
    }
    return s;
}

/* ---- built-in sinks ---- */

SAGE_API sage_stream *sage_sink_file(sage_stream *in, const char *path, const sage_op_opts *opts)
{
    if (!in)
        return NULL;
    if (!path || !*path) {
        sage__env_fail(in->env, SAGE_EINVAL, "sage_sink_file: the path is empty");
        return NULL;
    }
    sage_stream *s = one_input_op(in, SAGE__OP_SINK, (void *)sage__builtin_sink, NULL, opts, "sage_sink_file");
    if (!s)
        return NULL;
    s->op->builtin = SAGE__BUILTIN_FILE_SINK;
    s->op->udata = s->op;
    s->op->path = strdup(path);
    if (!s->op->path) {
        sage__env_fail(in->env, SAGE_ENOMEM, "sage_sink_file: out of memory");
        return NULL;
    }
    return s;
}

SAGE_API sage_stream *sage_sink_collect(sage_stream *in, sage_collector *c, const sage_op_opts *opts)
{
    if (!in)
        return NULL;
    if (!c) {
        sage__env_fail(in->env, SAGE_EINVAL, "sage_sink_collect: the collector is NULL");
        return NULL;
    }
    sage_stream *s = one_input_op(in, SAGE__OP_SINK, (void *)sage__builtin_sink, NULL, opts, "sage_sink_collect");
    if (!s)
        return NULL;
    s->op->builtin = SAGE__BUILTIN_COLLECT_SINK;
    s->op->udata = s->op;
    s->op->collector = c;
    return s;
}
