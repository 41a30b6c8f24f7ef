/* python/src/context.c - _sage.Context, one per operator instance (self.ctx), and _sage.ServiceFuture. */
#include <string.h>

#include "sagepy.h"

/* ---- Context ---- */

ctxobj *sagepy_ctx_new(pyop *op, sage_ctx *c)
{
    PyTypeObject *tp = (PyTypeObject *)(sagepy_ContextClass ? sagepy_ContextClass : (PyObject *)&sagepy_ContextType);
    ctxobj *cx = (ctxobj *)tp->tp_alloc(tp, 0);
    if (!cx)
        return NULL;
    cx->op = op;
    cx->c = c;
    cx->thread = pthread_self();
    cx->parallel_index = sage_ctx_instance(c);
    cx->parallelism = sage_ctx_parallelism(c);
    cx->name = PyUnicode_FromString(sage_ctx_op_name(c));
    cx->env_name = PyUnicode_FromString(sage_ctx_job_name(c));
    if (!cx->name || !cx->env_name) {
        Py_DECREF(cx);
        return NULL;
    }
    return cx;
}

/* The engine's ctx, usable only on the instance's thread while it runs. */
static sage_ctx *live(ctxobj *cx)
{
    if (!cx->c || !pthread_equal(cx->thread, pthread_self())) {
        PyErr_SetString(PyExc_RuntimeError, cx->c ? "self.ctx is usable only on the thread of its operator instance"
                                                  : "self.ctx is usable only while its operator instance runs");
        return NULL;
    }
    return cx->c;
}

static int ctx_traverse(ctxobj *cx, visitproc visit, void *arg)
{
    Py_VISIT(cx->fn);
    Py_VISIT(cx->call);
    for (int i = 0; i < SAGEPY_MAX_INPUTS; i++)
        Py_VISIT(cx->calls[i]);
    Py_VISIT(cx->close_cb);
    Py_VISIT(cx->dict);
    return 0;
}

static int ctx_clear(ctxobj *cx)
{
    Py_CLEAR(cx->fn);
    Py_CLEAR(cx->call);
    for (int i = 0; i < SAGEPY_MAX_INPUTS; i++)
        Py_CLEAR(cx->calls[i]);
    Py_CLEAR(cx->close_cb);
    Py_CLEAR(cx->dict);
    return 0;
}

static void ctx_dealloc(ctxobj *cx)
{
    PyObject_GC_UnTrack(cx);
    ctx_clear(cx);
    Py_CLEAR(cx->name);
    Py_CLEAR(cx->env_name);
    PyMem_Free(cx->buf);
    Py_TYPE(cx)->tp_free((PyObject *)cx);
}

static PyObject *ctx_new_refused(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    PyErr_SetString(PyExc_TypeError, "runtime contexts are made by the engine, one per operator instance");
    return NULL;
}

static PyObject *get_name(ctxobj *cx, void *c) { return Py_NewRef(cx->name); }
static PyObject *get_env_name(ctxobj *cx, void *c) { return Py_NewRef(cx->env_name); }
static PyObject *get_index(ctxobj *cx, void *c) { return PyLong_FromLong(cx->parallel_index); }
static PyObject *get_parallelism(ctxobj *cx, void *c) { return PyLong_FromLong(cx->parallelism); }
static PyObject *get_records_in(ctxobj *cx, void *c)
{
    sage_ctx *sc = live(cx);
    return sc ? PyLong_FromUnsignedLongLong(sage_ctx_records_in(sc)) : NULL;
}
static PyObject *get_is_remote(ctxobj *cx, void *c) { return PyBool_FromLong(cx->op->eng->remote); }

static PyObject *id_list(const int *ids, int n)
{
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, i, v);
    }
    return l;
}

static PyObject *get_assignment(ctxobj *cx, void *c)
{
    sage_ctx *sc = live(cx);
    if (!sc)
        return NULL;
    const sage_assignment *a = sage_ctx_assignment(sc);
    if (!a)
        Py_RETURN_NONE;
    PyObject *custom = PyDict_New();
    for (size_t i = 0; custom && i < a->ncustom; i++) {
        PyObject *v = PyFloat_FromDouble(a->custom[i].amount);
        if (!v || PyDict_SetItemString(custom, a->custom[i].name, v) != 0)
            Py_CLEAR(custom);
        Py_XDECREF(v);
    }
    PyObject *cpus = id_list(a->cpus, a->ncpus), *gpus = id_list(a->gpus, a->ngpus);
    PyObject *d = NULL;
    if (custom && cpus && gpus)
        d = Py_BuildValue("{s:s,s:O,s:O,s:O,s:d,s:K,s:K,s:O}", "node", a->node ? a->node : "", "cpus", cpus,
                          "exclusive", a->exclusive ? Py_True : Py_False, "gpus", gpus, "gpu_fraction", a->gpu_fraction,
                          "memory", (unsigned long long)a->memory, "object_store_memory",
                          (unsigned long long)a->object_store_memory, "resources", custom);
    Py_XDECREF(custom);
    Py_XDECREF(cpus);
    Py_XDECREF(gpus);
    return d;
}

static PyObject *ctx_get_key(ctxobj *cx, PyObject *unused)
{
    sage_ctx *sc = live(cx);
    if (!sc)
        return NULL;
    size_t len = 0;
    const void *k = sage_ctx_key(sc, &len);
    if (!k)
        Py_RETURN_NONE;
    return sagepy_key_decode(k, len);
}

static PyObject *ctx_stop_requested(ctxobj *cx, PyObject *unused)
{
    sage_ctx *sc = live(cx);
    if (!sc)
        return NULL;
    return PyBool_FromLong(sage_ctx_stop_requested(sc));
}

/* collect(): emit into the current call's output. A failed emit (the job
 * is failing or canceled) raises EmitAborted, which unwinds the user's code;
 * the callback then returns the emit's code. */
static PyObject *ctx_emit(ctxobj *cx, PyObject *obj)
{
    if (!live(cx))
        return NULL;
    if (!cx->out) {
        PyErr_SetString(PyExc_RuntimeError, "collect() works only inside execute() (or close()) of a flatmap");
        return NULL;
    }
    int rc = sagepy_emit(cx, cx->out, obj);
    if (rc == -1 && PyErr_Occurred())
        return NULL; /* a key function or the encoding failed: the exception goes up through the user's code */
    if (rc < 0) {
        cx->emit_rc = rc;
        PyErr_SetString(sagepy_EmitAborted, "the job is ending: the record was not delivered");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *ctx_observe(ctxobj *cx, PyObject *args)
{
    const char *name;
    double v;
    if (!PyArg_ParseTuple(args, "sd:record", &name, &v))
        return NULL;
    sage_ctx *sc = live(cx);
    if (!sc)
        return NULL;
    int rc = sage_ctx_observe(sc, name, v);
    if (rc < 0)
        return PyErr_Format(PyExc_ValueError, "metric \"%s\": %s", name, sage_strerror(rc));
    Py_RETURN_NONE;
}

static PyObject *ctx_counter(ctxobj *cx, PyObject *args)
{
    const char *name;
    long long d = 1;
    if (!PyArg_ParseTuple(args, "s|L:counter", &name, &d))
        return NULL;
    sage_ctx *sc = live(cx);
    if (!sc)
        return NULL;
    int rc = sage_ctx_counter_add(sc, name, d);
    if (rc < 0)
        return PyErr_Format(PyExc_ValueError, "counter \"%s\": %s", name, sage_strerror(rc));
    Py_RETURN_NONE;
}

/* The reply of a service: b"" + pickled (ok, value). Errors of the call itself raise. */
static PyObject *call_error(int rc, const char *service, double timeout_s)
{
    if (rc == SAGE_ETIMEDOUT) {
        char t[32]; /* PyErr_Format has no %g */
        snprintf(t, sizeof t, "%.3g", timeout_s);
        return PyErr_Format(PyExc_TimeoutError, "service \"%s\" did not answer within %s s", service, t);
    }
    if (rc == SAGE_ENOSERVICE)
        return PyErr_Format(PyExc_RuntimeError, "no service \"%s\" is registered (env.register_service)", service);
    if (rc == SAGE_ECANCELED)
        return PyErr_Format(PyExc_RuntimeError, "service \"%s\" is stopping: the call was not served", service);
    return PyErr_Format(PyExc_RuntimeError, "calling service \"%s\" failed: %s (%s)", service, sage_strerror(rc),
                        sage_err_name(rc));
}

static int ms_of(double timeout_s)
{
    if (timeout_s < 0)
        return -1;
    double ms = timeout_s * 1000.0;
    return ms > 2147483647.0 ? 2147483647 : (int)ms;
}

/* _call(service, request: bytes, timeout_s: float) -> bytes */
static PyObject *ctx_call(ctxobj *cx, PyObject *args)
{
    const char *service;
    Py_buffer req;
    double timeout_s;
    if (!PyArg_ParseTuple(args, "sy*d:_call", &service, &req, &timeout_s))
        return NULL;
    sage_ctx *sc = live(cx);
    if (!sc) {
        PyBuffer_Release(&req);
        return NULL;
    }
    sage_future *f = NULL;
    const void *resp = NULL;
    size_t rlen = 0;
    int rc;
    GIL_RELEASE;
    rc = sage_call_async(sc, service, req.buf, (size_t)req.len, &f);
    if (rc == 0)
        rc = sage_future_wait(f, ms_of(timeout_s), &resp, &rlen);
    GIL_TAKE;
    PyBuffer_Release(&req);
    PyObject *r = rc == 0 ? PyBytes_FromStringAndSize(resp, (Py_ssize_t)rlen) : call_error(rc, service, timeout_s);
    sage_future_destroy(f);
    return r;
}

/* ---- ServiceFuture: an asynchronous call in flight ---- */

typedef struct svcfut {
    PyObject_HEAD sage_future *f;
    PyObject *service;
    int waiting;
} svcfut;

static void fut_dealloc(svcfut *sf)
{
    sage_future_destroy(sf->f);
    Py_XDECREF(sf->service);
    Py_TYPE(sf)->tp_free((PyObject *)sf);
}

/* wait(timeout_s) -> bytes, raising TimeoutError or RuntimeError; once. */
static PyObject *fut_wait(svcfut *sf, PyObject *args)
{
    double timeout_s;
    if (!PyArg_ParseTuple(args, "d:wait", &timeout_s))
        return NULL;
    if (!sf->f || sf->waiting) {
        PyErr_SetString(PyExc_RuntimeError, "this service future was already waited for");
        return NULL;
    }
    sf->waiting = 1;
    const void *resp = NULL;
    size_t rlen = 0;
    int rc;
    sage_future *f = sf->f;
    GIL_RELEASE;
    rc = sage_future_wait(f, ms_of(timeout_s), &resp, &rlen);
    GIL_TAKE;
    const char *svc = PyUnicode_AsUTF8(sf->service);
    PyObject *r = rc == 0 ? PyBytes_FromStringAndSize(resp, (Py_ssize_t)rlen)
                          : call_error(rc, svc ? svc : "?", timeout_s);
    sage_future_destroy(sf->f);
    sf->f = NULL;
    return r;
}

static PyMethodDef fut_methods[] = {
    {"wait", (PyCFunction)fut_wait, METH_VARARGS, "wait(timeout_s) -> the reply bytes (once)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FutureType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sage._sage.ServiceFuture",
    .tp_basicsize = sizeof(svcfut),
    .tp_dealloc = (destructor)fut_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A service call in flight (see Context._call_async).",
    .tp_methods = fut_methods,
};

/* _call_async(service, request: bytes) -> ServiceFuture (queued; waits for room in the service's queue) */
static PyObject *ctx_call_async(ctxobj *cx, PyObject *args)
{
    const char *service;
    Py_buffer req;
    if (!PyArg_ParseTuple(args, "sy*:_call_async", &service, &req))
        return NULL;
    sage_ctx *sc = live(cx);
    if (!sc) {
        PyBuffer_Release(&req);
        return NULL;
    }
    if (PyType_Ready(&FutureType) < 0) {
        PyBuffer_Release(&req);
        return NULL;
    }
    sage_future *f = NULL;
    int rc;
    GIL_RELEASE;
    rc = sage_call_async(sc, service, req.buf, (size_t)req.len, &f);
    GIL_TAKE;
    PyBuffer_Release(&req);
    if (rc != 0)
        return call_error(rc, service, 0);
    svcfut *sf = PyObject_New(svcfut, &FutureType);
    if (!sf) {
        sage_future_destroy(f);
        return NULL;
    }
    sf->f = f;
    sf->waiting = 0;
    sf->service = PyUnicode_FromString(service);
    if (!sf->service) {
        Py_DECREF(sf);
        return NULL;
    }
    return (PyObject *)sf;
}

static PyMethodDef ctx_methods[] = {
    {"get_key", (PyCFunction)ctx_get_key, METH_NOARGS,
     "The key of the record being processed (keyed operators), else None."},
    {"stop_requested", (PyCFunction)ctx_stop_requested, METH_NOARGS,
     "True once the job was asked to stop or cancel: a source that loops inside one call ends its loop."},
    {"_emit", (PyCFunction)ctx_emit, METH_O, "Emit a record from the current call (FlatMapFunction.collect)."},
    {"_observe", (PyCFunction)ctx_observe, METH_VARARGS, "Record one value in a histogram."},
    {"_counter", (PyCFunction)ctx_counter, METH_VARARGS, "Add to a counter."},
    {"_call", (PyCFunction)ctx_call, METH_VARARGS, "Call a service with a pickled request; the reply bytes."},
    {"_call_async", (PyCFunction)ctx_call_async, METH_VARARGS, "Queue a service call; a ServiceFuture."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ctx_getset[] = {
    {"name", (getter)get_name, NULL, "The operator's name.", NULL},
    {"env_name", (getter)get_env_name, NULL, "The job's (environment's) name.", NULL},
    {"parallel_index", (getter)get_index, NULL, "This instance's index, 0 .. parallelism-1.", NULL},
    {"parallelism", (getter)get_parallelism, NULL, "The operator's parallelism.", NULL},
    {"records_in", (getter)get_records_in, NULL, "Records this instance received so far.", NULL},
    {"assignment", (getter)get_assignment, NULL, "The resources placed for this instance (a dict).", NULL},
    {"is_remote", (getter)get_is_remote, NULL, "True in a JobManager worker process.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sagepy_ContextType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sage._sage.Context",
    .tp_basicsize = sizeof(ctxobj),
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The runtime context of one operator instance (the engine's side of self.ctx).",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_dictoffset = offsetof(ctxobj, dict),
    .tp_new = ctx_new_refused,
};
