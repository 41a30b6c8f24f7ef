/* python/src/engine.c - _sage.Engine: one sage_env, its pipeline declared from Python, run control. */
#include <string.h>
#include <time.h>

#include "sagepy.h"

/* ---------------------------------------------------------------------------
 * The Engine type
 * ------------------------------------------------------------------------- */

static int own(engine *e, void *p)
{
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    if (e->nowned == e->capowned) {
        size_t cap = e->capowned ? e->capowned * 2 : 16;
        void **v = PyMem_Realloc(e->owned, cap * sizeof *v);
        if (!v) {
            free(p);
            PyErr_NoMemory();
            return -1;
        }
        e->owned = v;
        e->capowned = cap;
    }
    e->owned[e->nowned++] = p;
    return 0;
}

static int keep(engine *e, PyObject *o) { return PyList_Append(e->keep, o); }

static engine *alive(engine *e)
{
    if (!e->env) {
        PyErr_SetString(sagepy_SageError, "this environment was closed");
        return NULL;
    }
    return e;
}

static PyObject *raise_env(engine *e, int rc)
{
    int code = rc ? rc : sage_env_errcode(e->env);
    const char *m = sage_env_errmsg(e->env);
    return sagepy_raise(code ? code : SAGE_EINVAL, m && m[0] ? m : sage_strerror(code));
}

/* A declaration's result: a new stream id (the output of producer, routed by route), or the env's (sticky)
 * error raised. */
static PyObject *stream_id(engine *e, sage_stream *s, pyop *producer, pykey *route)
{
    if (!s)
        return raise_env(e, 0);
    if (e->nstreams == e->capstreams) {
        size_t cap = e->capstreams ? e->capstreams * 2 : 16;
        sage_stream **v = PyMem_Realloc(e->streams, cap * sizeof *v);
        pyop **p = v ? PyMem_Realloc(e->producer, cap * sizeof *p) : NULL;
        pykey **r = p ? PyMem_Realloc(e->route, cap * sizeof *r) : NULL;
        if (v)
            e->streams = v;
        if (p)
            e->producer = p;
        if (!r)
            return PyErr_NoMemory();
        e->route = r;
        e->capstreams = cap;
    }
    e->streams[e->nstreams] = s;
    e->producer[e->nstreams] = producer;
    e->route[e->nstreams] = route;
    return PyLong_FromSize_t(e->nstreams++);
}

/* The key function or partitioner k routes the output of op: op computes it before it emits (route.c). */
static int add_route(pyop *op, pykey *k)
{
    if (!op)
        return 0;
    for (int i = 0; i < op->nroutes; i++)
        if (op->routes[i] == k)
            return 0;
    if (op->nroutes == SAGEPY_MAX_ROUTES) {
        PyErr_Format(PyExc_ValueError, "operator \"%s\" feeds more than %d keyed or custom-partitioned consumers",
                     op->name, SAGEPY_MAX_ROUTES);
        return -1;
    }
    op->routes[op->nroutes++] = k;
    return 0;
}

static sage_stream *stream_at(engine *e, Py_ssize_t sid)
{
    if (sid < 0 || (size_t)sid >= e->nstreams) {
        PyErr_Format(PyExc_ValueError, "no stream %zd in this environment", sid);
        return NULL;
    }
    return e->streams[sid];
}

static void engine_destroy(engine *e)
{
    if (e->env) {
        sage_env *env = e->env;
        e->env = NULL;
        GIL_RELEASE;
        sage_env_destroy(env);
        GIL_TAKE;
    }
    for (size_t i = 0; i < e->nowned; i++)
        free(e->owned[i]);
    PyMem_Free(e->owned);
    e->owned = NULL;
    e->nowned = e->capowned = 0;
    PyMem_Free(e->streams);
    PyMem_Free(e->producer);
    PyMem_Free(e->route);
    e->streams = NULL;
    e->producer = NULL;
    e->route = NULL;
    e->nstreams = e->capstreams = 0;
    if (e->keep)
        PyList_SetSlice(e->keep, 0, PyList_GET_SIZE(e->keep), NULL);
    if (e->failures) /* their tracebacks hold records and frames: raised already */
        PyDict_Clear(e->failures);
}

static int engine_traverse(engine *e, visitproc visit, void *arg)
{
    Py_VISIT(e->keep);
    Py_VISIT(e->failures);
    Py_VISIT(e->svc_errors);
    return 0;
}

static void engine_dealloc(engine *e)
{
    PyObject_GC_UnTrack(e);
    if (e->env && sagepy_on_engine_thread()) {
        /* The last reference went away inside one of the job's own operators: destroying the env would join the
         * thread we are on. The job and what it points to are left to run out (a leak, reported). */
        PySys_WriteStderr("sage: an environment was released by one of its own operators while its job ran; the "
                          "job is left running (keep a reference to the environment until it ended)\n");
        return; /* the object and what it keeps are leaked with the job: the callbacks still point into them */
    }
    engine_destroy(e);
    Py_CLEAR(e->keep);
    Py_CLEAR(e->failures);
    Py_CLEAR(e->svc_errors);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int engine_init(engine *e, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "config", "remote", "host", "port", NULL};
    const char *name, *config = NULL, *host = NULL;
    int remote = 0, port = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zpzi:Engine", kwlist, &name, &config, &remote, &host, &port))
        return -1;
    if (e->env) {
        PyErr_SetString(PyExc_RuntimeError, "Engine.__init__ called twice");
        return -1;
    }
    e->keep = PyList_New(0);
    e->failures = PyDict_New();
    e->svc_errors = PyList_New(0);
    if (!e->keep || !e->failures || !e->svc_errors)
        return -1;
    e->remote = remote;
    e->env = remote ? sage_env_create_remote(name, host, port, config) : sage_env_create(name, config);
    if (!e->env) {
        PyErr_NoMemory();
        return -1;
    }
    if (sage_env_errcode(e->env)) {
        raise_env(e, 0);
        return -1;
    }
    sage_binding_hooks h = {sagepy_enter, sagepy_leave, NULL, NULL, NULL};
    if (!remote) {
        h.copy = sagepy_copy;
        h.drop = sagepy_drop;
    }
    int rc = sage_env_set_binding(e->env, &h);
    if (rc != 0) {
        raise_env(e, rc);
        return -1;
    }
    return 0;
}

/* Operator options from the Python arguments; resources is JSON text or None. */
static void opts_of(sage_op_opts *o, const char *name, int parallelism, const char *resources)
{
    memset(o, 0, sizeof *o);
    o->name = name;
    o->parallelism = parallelism;
    o->resources = resources;
}

static pyop *new_op(engine *e, int kind, PyObject *factory, const char *name)
{
    pyop *op = calloc(1, sizeof *op);
    if (own(e, op) != 0)
        return NULL;
    op->eng = e;
    op->kind = kind;
    op->factory = factory;
    snprintf(op->name, sizeof op->name, "%s", name ? name : "");
    if (factory && keep(e, factory) != 0)
        return NULL;
    return op;
}

/* source(kind, factory, name, parallelism, resources) -> stream id */
static PyObject *engine_source(engine *e, PyObject *args)
{
    int kind, par;
    PyObject *factory;
    const char *name, *res;
    if (!PyArg_ParseTuple(args, "iOziz:source", &kind, &factory, &name, &par, &res) || !alive(e))
        return NULL;
    if (kind != K_SOURCE_BATCH && kind != K_SOURCE_STREAM && kind != K_SOURCE_ITER)
        return PyErr_Format(PyExc_ValueError, "source kind %d", kind);
    pyop *op = new_op(e, kind, factory, name);
    if (!op)
        return NULL;
    sage_op_opts o;
    opts_of(&o, name, par, res);
    o.open = sagepy_op_open;
    o.close = sagepy_op_close;
    sage_stream *s = kind == K_SOURCE_STREAM ? sage_from_source(e->env, sagepy_op_source, op, &o)
                                             : sage_from_generator(e->env, sagepy_op_source, op, &o);
    return stream_id(e, s, op, NULL);
}

/* op(kind, stream, factory, name, parallelism, resources) -> stream id: map, flatmap, filter, sink */
static PyObject *engine_op(engine *e, PyObject *args)
{
    int kind, par;
    Py_ssize_t sid;
    PyObject *factory;
    const char *name, *res;
    if (!PyArg_ParseTuple(args, "inOziz:op", &kind, &sid, &factory, &name, &par, &res) || !alive(e))
        return NULL;
    sage_stream *in = stream_at(e, sid);
    if (!in)
        return NULL;
    pyop *op = new_op(e, kind, factory, name);
    if (!op)
        return NULL;
    sage_op_opts o;
    opts_of(&o, name, par, res);
    o.open = sagepy_op_open;
    o.close = sagepy_op_close;
    sage_stream *s;
    switch (kind) {
    case K_MAP: s = sage_flat_map(in, sagepy_op_map, op, &o); break; /* None: no output, as in SAGE Kernel */
    case K_FLATMAP: s = sage_flat_map(in, sagepy_op_flatmap, op, &o); break;
    case K_FILTER: s = sage_filter(in, sagepy_op_filter, op, &o); break;
    case K_SINK: s = sage_sink(in, sagepy_op_sink, op, &o); break;
    default: return PyErr_Format(PyExc_ValueError, "operator kind %d", kind);
    }
    return stream_id(e, s, op, NULL);
}

static pykey *new_key(engine *e, PyObject *fn, const char *what, int partition)
{
    pykey *k = calloc(1, sizeof *k);
    if (own(e, k) != 0)
        return NULL;
    k->eng = e;
    k->fn = fn;
    k->partition = partition;
    snprintf(k->what, sizeof k->what, "%s", what);
    return keep(e, fn) == 0 ? k : NULL;
}

/* key_by(stream, fn, what) and partition(stream, fn(record, n) -> int, what) -> stream id */
static PyObject *keyed_route(engine *e, PyObject *args, int partition)
{
    Py_ssize_t sid;
    PyObject *fn;
    const char *what;
    if (!PyArg_ParseTuple(args, partition ? "nOs:partition" : "nOs:key_by", &sid, &fn, &what) || !alive(e))
        return NULL;
    sage_stream *in = stream_at(e, sid);
    pykey *k = in ? new_key(e, fn, what, partition) : NULL;
    if (!k || add_route(e->producer[sid], k) != 0)
        return NULL;
    sage_stream *out = partition ? sage_partition_custom(in, sagepy_partition_fn, k)
                                 : sage_key_by(in, sagepy_key_fn, k);
    return stream_id(e, out, e->producer[sid], k);
}

static PyObject *engine_key_by(engine *e, PyObject *args) { return keyed_route(e, args, 0); }
static PyObject *engine_partition(engine *e, PyObject *args) { return keyed_route(e, args, 1); }

/* route(stream, "rebalance" | "broadcast" | "forward") -> stream id */
static PyObject *engine_route(engine *e, PyObject *args)
{
    Py_ssize_t sid;
    const char *how;
    if (!PyArg_ParseTuple(args, "ns:route", &sid, &how) || !alive(e))
        return NULL;
    sage_stream *in = stream_at(e, sid);
    if (!in)
        return NULL;
    if (strcmp(how, "rebalance") == 0)
        return stream_id(e, sage_rebalance(in), e->producer[sid], NULL);
    if (strcmp(how, "broadcast") == 0)
        return stream_id(e, sage_broadcast(in), e->producer[sid], NULL);
    if (strcmp(how, "forward") == 0)
        return stream_id(e, sage_forward(in), e->producer[sid], NULL);
    return PyErr_Format(PyExc_ValueError, "unknown routing \"%s\"", how);
}

/* union((stream, ...), name) -> stream id: the records of every stream, unchanged */
static PyObject *engine_union(engine *e, PyObject *args)
{
    PyObject *seq;
    const char *name;
    if (!PyArg_ParseTuple(args, "Oz:union", &seq, &name) || !alive(e))
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "union: a sequence of stream ids");
    if (!fast)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    sage_stream **v = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    if (!v) {
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t sid = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
        if ((sid == -1 && PyErr_Occurred()) || !(v[i] = stream_at(e, sid))) {
            PyMem_Free(v);
            Py_DECREF(fast);
            return NULL;
        }
    }
    Py_DECREF(fast);
    sage_stream *out = sage_union(v, (size_t)n, &(sage_op_opts){.name = name});
    PyMem_Free(v);
    return stream_id(e, out, NULL, NULL);
}

/* future(name) -> stream id: a stream fed later by fill_future (a feedback loop) */
static PyObject *engine_future(engine *e, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "z:future", &name) || !alive(e))
        return NULL;
    return stream_id(e, sage_from_future(e->env, name), NULL, NULL);
}

/* fill_future(stream, future): the stream's records go back into the future */
static PyObject *engine_fill_future(engine *e, PyObject *args)
{
    Py_ssize_t a, f;
    if (!PyArg_ParseTuple(args, "nn:fill_future", &a, &f) || !alive(e))
        return NULL;
    sage_stream *sa = stream_at(e, a), *sf = sa ? stream_at(e, f) : NULL;
    if (!sf)
        return NULL;
    int rc = sage_fill_future(sa, sf);
    return rc ? raise_env(e, rc) : Py_NewRef(Py_None);
}

static PyObject *engine_connect(engine *e, PyObject *args)
{
    Py_ssize_t a, b;
    if (!PyArg_ParseTuple(args, "nn:connect", &a, &b) || !alive(e))
        return NULL;
    sage_stream *sa = stream_at(e, a), *sb = sa ? stream_at(e, b) : NULL;
    return sb ? stream_id(e, sage_connect(sa, sb), NULL, NULL) : NULL;
}

/* comap(connected, ninputs, factory, name, parallelism, resources) -> stream id */
static PyObject *engine_comap(engine *e, PyObject *args)
{
    Py_ssize_t sid;
    int nin, par;
    PyObject *factory;
    const char *name, *res;
    if (!PyArg_ParseTuple(args, "niOziz:comap", &sid, &nin, &factory, &name, &par, &res) || !alive(e))
        return NULL;
    if (nin < 1 || nin > SAGEPY_MAX_INPUTS)
        return PyErr_Format(PyExc_ValueError, "a comap takes 1 to %d inputs, not %d", SAGEPY_MAX_INPUTS, nin);
    sage_stream *in = stream_at(e, sid);
    pyop *op = in ? new_op(e, K_COMAP, factory, name) : NULL;
    if (!op)
        return NULL;
    op->ninputs = nin;
    sage_op_opts o;
    opts_of(&o, name, par, res);
    o.open = sagepy_op_open;
    o.close = sagepy_op_close;
    return stream_id(e, sage_comap(in, sagepy_comap_fns, (size_t)nin, op, &o), op, NULL);
}

/* join(left, left_key, right, right_key, factory, name, parallelism, resources) -> stream id */
static PyObject *engine_join(engine *e, PyObject *args)
{
    Py_ssize_t l, r;
    int par;
    PyObject *lk, *rk, *factory;
    const char *name, *res;
    if (!PyArg_ParseTuple(args, "nOnOOziz:join", &l, &lk, &r, &rk, &factory, &name, &par, &res) || !alive(e))
        return NULL;
    sage_stream *sl = stream_at(e, l), *sr = sl ? stream_at(e, r) : NULL;
    pyop *op = sr ? new_op(e, K_JOIN, factory, name) : NULL;
    if (!op || !(op->lkey = new_key(e, lk, "the left key function of the join", 0)) ||
        !(op->rkey = new_key(e, rk, "the right key function of the join", 0)) ||
        add_route(e->producer[l], op->lkey) != 0 || add_route(e->producer[r], op->rkey) != 0)
        return NULL;
    sage_op_opts o;
    opts_of(&o, name, par, res);
    o.open = sagepy_op_open;
    o.close = sagepy_op_close;
    return stream_id(e, sage_join(sl, sagepy_join_lkey, sr, sagepy_join_rkey, sagepy_op_join, op, &o), op, NULL);
}

/* consumed(stream, parallelism): an operator of that parallelism consumes the stream; for a custom partitioning
 * the sender then computes partition(record, parallelism) before it emits. */
static PyObject *engine_consumed(engine *e, PyObject *args)
{
    Py_ssize_t sid;
    int par;
    if (!PyArg_ParseTuple(args, "ni:consumed", &sid, &par) || !alive(e) || !stream_at(e, sid))
        return NULL;
    pykey *k = e->route[sid];
    if (k && k->partition && par > 0) {
        int known = 0;
        for (int i = 0; i < k->nnparts; i++)
            known |= k->nparts[i] == par;
        if (!known && k->nnparts < SAGEPY_MAX_NPARTS)
            k->nparts[k->nnparts++] = par;
    }
    Py_RETURN_NONE;
}

/* register_service(name, host, resources_json_or_None) */
static PyObject *engine_register_service(engine *e, PyObject *args)
{
    const char *name, *resources = NULL;
    PyObject *host;
    if (!PyArg_ParseTuple(args, "sO|z:register_service", &name, &host, &resources) || !alive(e))
        return NULL;
    pysvc *s = calloc(1, sizeof *s);
    if (own(e, s) != 0 || keep(e, host) != 0)
        return NULL;
    s->eng = e;
    s->host = host;
    snprintf(s->name, sizeof s->name, "%s", name);
    sage_service_opts so = {.start = sagepy_svc_start, .stop = sagepy_svc_stop, .resources = resources};
    int rc = sage_env_register_service(e->env, name, sagepy_svc_fn, s, &so);
    if (rc != 0)
        return raise_env(e, rc);
    Py_RETURN_NONE;
}

static PyObject *engine_explain(engine *e, PyObject *args)
{
    int json = 0;
    if (!PyArg_ParseTuple(args, "|p:explain", &json) || !alive(e))
        return NULL;
    char *txt = json ? sage_env_explain_json(e->env) : sage_env_explain(e->env);
    if (!txt)
        return raise_env(e, 0);
    PyObject *r = PyUnicode_FromString(txt);
    free(txt);
    return r;
}

/* The worker process ends inside submit (the engine exits it): Python's own buffers must reach the log first. */
static int worker_exiting;
static void flush_python_at_exit(void)
{
    if (!worker_exiting || !Py_IsInitialized() || SAGEPY_FINALIZING())
        return;
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject *sys = PyImport_ImportModule("sys");
    for (int i = 0; sys && i < 2; i++) {
        PyObject *f = PyObject_GetAttrString(sys, i ? "stderr" : "stdout");
        PyObject *r = f && f != Py_None ? PyObject_CallMethod(f, "flush", NULL) : NULL;
        Py_XDECREF(r);
        Py_XDECREF(f);
        PyErr_Clear();
    }
    Py_XDECREF(sys);
    PyGILState_Release(st);
}

static PyObject *engine_submit(engine *e, PyObject *unused)
{
    if (!alive(e))
        return NULL;
    if (e->submitted) {
        PyErr_SetString(sagepy_SageError, "this environment already ran its job; create a new one");
        return NULL;
    }
    e->submitted = 1;
    if (e->remote && sage_is_worker()) {
        static int registered;
        if (!registered && atexit(flush_python_at_exit) == 0)
            registered = 1;
        worker_exiting = 1;
    }
    int rc;
    sage_env *env = e->env;
    GIL_RELEASE;
    rc = sage_env_submit(env);
    GIL_TAKE;
    worker_exiting = 0;
    if (rc != 0) {
        e->ended = 1;
        e->rc = rc;
        return raise_env(e, rc);
    }
    Py_RETURN_NONE;
}

/* wait(timeout_ms) -> None while the job runs, else its result code (0, or negative). */
static PyObject *engine_wait(engine *e, PyObject *args)
{
    int timeout_ms;
    if (!PyArg_ParseTuple(args, "i:wait", &timeout_ms) || !alive(e))
        return NULL;
    if (e->ended)
        return PyLong_FromLong(e->rc);
    int rc;
    sage_env *env = e->env;
    GIL_RELEASE;
    rc = sage_env_wait(env, timeout_ms);
    GIL_TAKE;
    if (rc == SAGE_ETIMEDOUT && sage_env_state(env) == SAGE_JOB_RUNNING)
        Py_RETURN_NONE;
    if (rc == SAGE_ESTATE && !e->submitted)
        return raise_env(e, rc);
    e->ended = 1;
    e->rc = rc;
    return PyLong_FromLong(rc);
}

/* stop or cancel, with the GIL released (both may wait for the engine's threads). */
static PyObject *engine_end(engine *e, int (*end)(sage_env *))
{
    if (!alive(e))
        return NULL;
    int rc;
    sage_env *env = e->env;
    GIL_RELEASE;
    rc = end(env);
    GIL_TAKE;
    return PyLong_FromLong(rc);
}

static PyObject *engine_stop(engine *e, PyObject *unused) { return engine_end(e, sage_env_stop); }

static PyObject *engine_cancel(engine *e, PyObject *unused) { return engine_end(e, sage_env_cancel); }

static PyObject *engine_close(engine *e, PyObject *unused)
{
    if (e->env && sagepy_on_engine_thread()) {
        PyErr_SetString(sagepy_SageError, "an environment cannot be closed from one of its own operators");
        return NULL;
    }
    engine_destroy(e);
    Py_RETURN_NONE;
}

static PyObject *engine_state(engine *e, PyObject *unused)
{
    if (!e->env)
        return PyUnicode_FromString("closed");
    return PyUnicode_FromString(sage_job_state_name(sage_env_state(e->env)));
}

static PyObject *engine_error(engine *e, PyObject *unused)
{
    if (!e->env)
        return Py_BuildValue("(is)", 0, "");
    return Py_BuildValue("(is)", sage_env_errcode(e->env), sage_env_errmsg(e->env));
}

static PyObject *engine_job_id(engine *e, PyObject *unused)
{
    return PyLong_FromLongLong(e->env ? (long long)sage_env_job_id(e->env) : 0);
}

/* metric(op, instance, name) -> dict, or None when there is no such metric */
static PyObject *engine_metric(engine *e, PyObject *args)
{
    const char *op, *name;
    int instance;
    if (!PyArg_ParseTuple(args, "sis:metric", &op, &instance, &name) || !alive(e))
        return NULL;
    sage_metric m;
    int rc = sage_env_metric(e->env, op, instance, name, &m);
    if (rc == SAGE_ENOTFOUND) {
        for (size_t i = 0; i < sage_env_op_count(e->env); i++)
            if (strcmp(sage_env_op_name(e->env, i), op) == 0)
                Py_RETURN_NONE; /* no such metric */
        return PyErr_Format(PyExc_KeyError, "no operator \"%s\" in this job", op);
    }
    if (rc != 0)
        return sagepy_raise(rc, rc == SAGE_ESTATE ? "metrics exist once the job was submitted" : sage_strerror(rc));
    if (!m.is_histogram)
        return Py_BuildValue("{s:s,s:L}", "kind", "counter", "value", (long long)m.value);
    return Py_BuildValue("{s:s,s:K,s:d,s:d,s:d,s:d,s:d,s:d,s:d}", "kind", "histogram", "count",
                         (unsigned long long)m.count, "sum", m.sum, "min", m.min, "max", m.max, "p50", m.p50, "p90",
                         m.p90, "p99", m.p99, "p999", m.p999);
}

static PyObject *engine_operators(engine *e, PyObject *unused)
{
    if (!alive(e))
        return NULL;
    size_t n = sage_env_op_count(e->env);
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *t = Py_BuildValue("(si)", sage_env_op_name(e->env, i), sage_env_op_parallelism(e->env, i));
        if (!t) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    return l;
}

static PyObject *get_failures(engine *e, void *c) { return Py_NewRef(e->failures); }
static PyObject *get_svc_errors(engine *e, void *c) { return Py_NewRef(e->svc_errors); }
static PyObject *get_remote(engine *e, void *c) { return PyBool_FromLong(e->remote); }

static PyMethodDef engine_methods[] = {
    {"source", (PyCFunction)engine_source, METH_VARARGS, "source(kind, factory, name, parallelism, resources) -> sid"},
    {"union", (PyCFunction)engine_union, METH_VARARGS, "union((sid, ...), name) -> sid"},
    {"future", (PyCFunction)engine_future, METH_VARARGS, "future(name) -> sid"},
    {"fill_future", (PyCFunction)engine_fill_future, METH_VARARGS, "fill_future(sid, future_sid)"},
    {"op", (PyCFunction)engine_op, METH_VARARGS, "op(kind, sid, factory, name, parallelism, resources) -> sid"},
    {"key_by", (PyCFunction)engine_key_by, METH_VARARGS, "key_by(sid, fn, what) -> sid"},
    {"partition", (PyCFunction)engine_partition, METH_VARARGS, "partition(sid, fn, what) -> sid"},
    {"route", (PyCFunction)engine_route, METH_VARARGS, "route(sid, 'rebalance'|'broadcast'|'forward') -> sid"},
    {"connect", (PyCFunction)engine_connect, METH_VARARGS, "connect(sid, sid) -> sid"},
    {"consumed", (PyCFunction)engine_consumed, METH_VARARGS, "consumed(sid, parallelism): a consumer's parallelism"},
    {"comap", (PyCFunction)engine_comap, METH_VARARGS, "comap(sid, ninputs, factory, name, parallelism, resources)"},
    {"join", (PyCFunction)engine_join, METH_VARARGS, "join(l, lkey, r, rkey, factory, name, parallelism, resources)"},
    {"register_service", (PyCFunction)engine_register_service, METH_VARARGS,
     "register_service(name, host, resources=None)"},
    {"explain", (PyCFunction)engine_explain, METH_VARARGS, "explain(json=False) -> str"},
    {"submit", (PyCFunction)engine_submit, METH_NOARGS, "Start the job (in a worker: run its task and exit)."},
    {"wait", (PyCFunction)engine_wait, METH_VARARGS, "wait(timeout_ms) -> None while running, else the result"},
    {"stop", (PyCFunction)engine_stop, METH_NOARGS, "Graceful stop: sources end, records in flight drain."},
    {"cancel", (PyCFunction)engine_cancel, METH_NOARGS, "Cancel now."},
    {"close", (PyCFunction)engine_close, METH_NOARGS, "Destroy the engine's env (cancels a running local job)."},
    {"state", (PyCFunction)engine_state, METH_NOARGS, "The job's state name."},
    {"error", (PyCFunction)engine_error, METH_NOARGS, "(code, message) of the env's first error."},
    {"job_id", (PyCFunction)engine_job_id, METH_NOARGS, "The JobManager's job id (0 when embedded)."},
    {"metric", (PyCFunction)engine_metric, METH_VARARGS, "metric(op, instance, name) -> dict or None"},
    {"operators", (PyCFunction)engine_operators, METH_NOARGS, "[(name, parallelism)] in declaration order"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"failures", (getter)get_failures, NULL, "{'op\\ninstance': exception} raised by user functions", NULL},
    {"service_errors", (getter)get_svc_errors, NULL, "exceptions raised while starting services", NULL},
    {"remote", (getter)get_remote, NULL, "records cross processes (RemoteEnvironment)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sagepy_EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sage._sage.Engine",
    .tp_basicsize = sizeof(engine),
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One SAGE job: a sage_env and the Python operators declared on it (used by sage.kernel.api).",
    .tp_traverse = (traverseproc)engine_traverse,
    .tp_methods = engine_methods,
    .tp_getset = engine_getset,
    .tp_init = (initproc)engine_init,
    .tp_new = PyType_GenericNew,
};
