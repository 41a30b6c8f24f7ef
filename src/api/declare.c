/* api/declare.c - the declaration calls of sage/stream.h and service registration, entering the env's graph. */
#include "api/env.h"

SAGE_API sage_stream *sage_from_collection(sage_env *env, const void *const *recs, const size_t *lens, size_t n,
                                           const sage_op_opts *opts)
{
    return env ? sage__declare_collection(&env->graph, recs, lens, n, opts) : NULL;
}

SAGE_API sage_stream *sage_from_int64s(sage_env *env, const int64_t *values, size_t n, const sage_op_opts *opts)
{
    return env ? sage__declare_int64s(&env->graph, values, n, opts) : NULL;
}

SAGE_API sage_stream *sage_from_generator(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts)
{
    return env ? sage__declare_source(&env->graph, fn, udata, opts, 1, "sage_from_generator") : NULL;
}

SAGE_API sage_stream *sage_from_source(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts)
{
    return env ? sage__declare_source(&env->graph, fn, udata, opts, 0, "sage_from_source") : NULL;
}

SAGE_API sage_stream *sage_from_file_lines(sage_env *env, const char *path, const sage_op_opts *opts)
{
    return env ? sage__declare_file_lines(&env->graph, path, opts) : NULL;
}

SAGE_API sage_stream *sage_from_future(sage_env *env, const char *name)
{
    return env ? sage__declare_future(&env->graph, name) : NULL;
}

SAGE_API int sage_fill_future(sage_stream *in, sage_stream *future) { return sage__declare_fill_future(in, future); }

SAGE_API sage_stream *sage_map(sage_stream *in, sage_map_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_one_input(in, SAGE__OP_MAP, (void *)fn, udata, opts, "sage_map");
}

SAGE_API sage_stream *sage_flat_map(sage_stream *in, sage_map_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_one_input(in, SAGE__OP_FLAT_MAP, (void *)fn, udata, opts, "sage_flat_map");
}

SAGE_API sage_stream *sage_filter(sage_stream *in, sage_filter_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_one_input(in, SAGE__OP_FILTER, (void *)fn, udata, opts, "sage_filter");
}

SAGE_API sage_stream *sage_sink(sage_stream *in, sage_sink_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_one_input(in, SAGE__OP_SINK, (void *)fn, udata, opts, "sage_sink");
}

SAGE_API sage_stream *sage_key_by(sage_stream *in, sage_key_fn fn, void *udata)
{
    return sage__declare_route(in, SAGE__PART_KEY, (void *)fn, udata, "sage_key_by");
}

SAGE_API sage_stream *sage_partition_custom(sage_stream *in, sage_partition_fn fn, void *udata)
{
    return sage__declare_route(in, SAGE__PART_CUSTOM, (void *)fn, udata, "sage_partition_custom");
}

SAGE_API sage_stream *sage_rebalance(sage_stream *in)
{
    return sage__declare_route(in, SAGE__PART_REBALANCE, NULL, NULL, "sage_rebalance");
}

SAGE_API sage_stream *sage_broadcast(sage_stream *in)
{
    return sage__declare_route(in, SAGE__PART_BROADCAST, NULL, NULL, "sage_broadcast");
}

SAGE_API sage_stream *sage_forward(sage_stream *in)
{
    return sage__declare_route(in, SAGE__PART_FORWARD, NULL, NULL, "sage_forward");
}

SAGE_API sage_stream *sage_connect(sage_stream *a, sage_stream *b) { return sage__declare_connect(a, b); }

SAGE_API sage_stream *sage_comap(sage_stream *connected, const sage_map_fn *fns, size_t nfns, void *udata,
                                 const sage_op_opts *opts)
{
    return sage__declare_comap(connected, fns, nfns, udata, opts);
}

SAGE_API sage_stream *sage_union(sage_stream *const *streams, size_t n, const sage_op_opts *opts)
{
    return sage__declare_union(streams, n, opts);
}

SAGE_API sage_stream *sage_reduce(sage_stream *keyed, sage_reduce_fn fn, size_t acc_size, int emit, void *udata,
                                  const sage_op_opts *opts)
{
    return sage__declare_reduce(keyed, fn, acc_size, emit, udata, opts);
}

SAGE_API sage_stream *sage_join(sage_stream *left, sage_key_fn left_key, sage_stream *right, sage_key_fn right_key,
                                sage_join_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_join(left, left_key, right, right_key, fn, udata, opts);
}

SAGE_API sage_stream *sage_sink_file(sage_stream *in, const char *path, const sage_op_opts *opts)
{
    return sage__declare_file_sink(in, path, opts);
}

SAGE_API sage_stream *sage_sink_collect(sage_stream *in, sage_collector *c, const sage_op_opts *opts)
{
    return sage__declare_collect_sink(in, c, opts);
}

SAGE_API int sage_env_register_service(sage_env *env, const char *name, sage_service_fn fn, void *udata,
                                       const sage_service_opts *opts)
{
    return env ? sage__declare_service(&env->graph, name, fn, udata, opts) : SAGE_EINVAL;
}

SAGE_API int sage_env_set_binding(sage_env *env, const sage_binding_hooks *hooks)
{
    if (!env)
        return SAGE_EINVAL;
    if (env->executed)
        return sage__errf(&env->err, SAGE_ESTATE, "sage_env_set_binding: set it before submit");
    if (!hooks) {
        env->graph.has_binding = 0;
        return 0;
    }
    if (!hooks->enter != !hooks->leave || !hooks->copy != !hooks->drop)
        return sage__errf(&env->err, SAGE_EINVAL,
                          "sage_env_set_binding: enter and leave (and copy and drop) go "
                          "together");
    env->graph.binding = *hooks;
    env->graph.has_binding = 1;
    return 0;
}

SAGE_API sage_stream *sage_map_batches(sage_stream *in, sage_map_batch_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_batch(in, 0, (void *)fn, udata, opts);
}

SAGE_API sage_stream *sage_sink_batches(sage_stream *in, sage_sink_batch_fn fn, void *udata, const sage_op_opts *opts)
{
    return sage__declare_batch(in, 1, (void *)fn, udata, opts);
}
