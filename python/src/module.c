/* python/src/module.c - the sage._sage extension module: exception classes, the hooks into the Python layer. */
#include "sagepy.h"

PyObject *sagepy_SageError, *sagepy_ConfigError, *sagepy_ResourceError, *sagepy_InfeasibleError, *sagepy_PlanError,
    *sagepy_JobFailedError, *sagepy_EmitAborted;
PyObject *sagepy_StopSignal, *sagepy_ContextClass, *sagepy_format_failure, *sagepy_pickle_dumps, *sagepy_pickle_loads;

PyObject *sagepy_exc_for(int code)
{
    switch (code) {
    case SAGE_ECONFIG: return sagepy_ConfigError;
    case SAGE_ERESOURCES: return sagepy_ResourceError;
    case SAGE_EINFEASIBLE: return sagepy_InfeasibleError;
    case SAGE_EINVAL:
    case SAGE_EPLAN: return sagepy_PlanError;
    default: return sagepy_SageError;
    }
}

PyObject *sagepy_raise(int code, const char *msg)
{
    PyObject *cls = sagepy_exc_for(code);
    PyObject *exc = PyObject_CallFunction(cls, "s", msg);
    if (!exc)
        return NULL;
    PyObject *c = PyLong_FromLong(code);
    PyObject *n = PyUnicode_FromString(sage_err_name(code));
    if (c && n) {
        PyObject_SetAttrString(exc, "code", c);
        PyObject_SetAttrString(exc, "code_name", n);
    }
    Py_XDECREF(c);
    Py_XDECREF(n);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

/* _init(StopSignal, ContextClass, format_failure): the Python layer's classes and helpers. */
static PyObject *mod_init(PyObject *m, PyObject *args)
{
    PyObject *stop, *ctxcls, *fmt;
    if (!PyArg_ParseTuple(args, "OOO:_init", &stop, &ctxcls, &fmt))
        return NULL;
    if (!PyType_Check(ctxcls) || !PyType_IsSubtype((PyTypeObject *)ctxcls, &sagepy_ContextType)) {
        PyErr_SetString(PyExc_TypeError, "the context class must derive from _sage.Context");
        return NULL;
    }
    Py_XSETREF(sagepy_StopSignal, Py_NewRef(stop));
    Py_XSETREF(sagepy_ContextClass, Py_NewRef(ctxcls));
    Py_XSETREF(sagepy_format_failure, Py_NewRef(fmt));
    Py_RETURN_NONE;
}

static PyObject *mod_is_worker(PyObject *m, PyObject *unused) { return PyBool_FromLong(sage_is_worker()); }

static PyObject *mod_version(PyObject *m, PyObject *unused) { return PyUnicode_FromString(sage_version()); }

static PyObject *mod_strerror(PyObject *m, PyObject *args)
{
    int code;
    if (!PyArg_ParseTuple(args, "i:strerror", &code))
        return NULL;
    return Py_BuildValue("(ss)", sage_err_name(code), sage_strerror(code));
}

/* key_bytes(key) -> the canonical bytes keys are routed by (tests and tools). */
static PyObject *mod_key_bytes(PyObject *m, PyObject *key)
{
    unsigned char buf[SAGE_KEY_MAX];
    int n = sagepy_key_encode(key, buf);
    return n < 0 ? NULL : PyBytes_FromStringAndSize((const char *)buf, n);
}

static PyObject *mod_key_from_bytes(PyObject *m, PyObject *arg)
{
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) != 0)
        return NULL;
    PyObject *r = sagepy_key_decode(b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return r;
}

static PyObject *mod_encode_record(PyObject *m, PyObject *obj);
static PyObject *mod_decode_record(PyObject *m, PyObject *arg);

/* client_call(host, port, token_file_or_None, job_id, service, request_bytes, timeout_ms) -> reply bytes: a
 * running job's service called from outside the job (sage_client_call), without the GIL while it waits. */
static PyObject *mod_client_call(PyObject *m, PyObject *args)
{
    const char *host, *token_file, *service;
    int port, timeout_ms;
    long long job;
    Py_buffer req;
    if (!PyArg_ParseTuple(args, "sizLsy*i:client_call", &host, &port, &token_file, &job, &service, &req, &timeout_ms))
        return NULL;
    sage_client *c = NULL;
    char err[2048];
    void *resp = NULL;
    size_t len = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = sage_client_connect(host, port, token_file, &c, err, sizeof err);
    if (rc == 0)
        rc = sage_client_call(c, job, service, req.buf, (size_t)req.len, timeout_ms, &resp, &len, err, sizeof err);
    sage_client_close(c);
    Py_END_ALLOW_THREADS PyBuffer_Release(&req);
    if (rc != 0) {
        if (rc == SAGE_ETIMEDOUT) {
            PyErr_SetString(PyExc_TimeoutError, err);
            return NULL;
        }
        return sagepy_raise(rc, err);
    }
    PyObject *out = PyBytes_FromStringAndSize(resp, (Py_ssize_t)len);
    free(resp);
    return out;
}

static PyMethodDef mod_methods[] = {
    {"_init", mod_init, METH_VARARGS, "_init(StopSignal, ContextClass, format_failure)"},
    {"is_worker", mod_is_worker, METH_NOARGS, "True in a worker process launched by a JobManager."},
    {"version", mod_version, METH_NOARGS, "The engine's version, MAJOR.MINOR.PATCH."},
    {"strerror", mod_strerror, METH_VARARGS, "strerror(code) -> (name, text)"},
    {"key_bytes", mod_key_bytes, METH_O, "The canonical bytes a key is routed by."},
    {"key_from_bytes", mod_key_from_bytes, METH_O, "The key back from its canonical bytes."},
    {"encode_record", mod_encode_record, METH_O, "The bytes a record travels as between processes."},
    {"decode_record", mod_decode_record, METH_O, "The record back from those bytes."},
    {"client_call", mod_client_call, METH_VARARGS,
     "client_call(host, port, token_file, job_id, service, request, timeout_ms) -> the reply bytes"},
    {NULL, NULL, 0, NULL},
};

/* encode_record(obj) -> bytes: what a record of a RemoteEnvironment travels as. */
static PyObject *mod_encode_record(PyObject *m, PyObject *obj)
{
    ctxobj cx;
    memset(&cx, 0, sizeof cx);
    const void *data;
    size_t len;
    PyObject *hold;
    if (sagepy_encode(&cx, obj, &data, &len, &hold) != 0) {
        PyMem_Free(cx.buf);
        return NULL;
    }
    PyObject *r = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    Py_XDECREF(hold);
    PyMem_Free(cx.buf);
    return r;
}

/* decode_record(bytes) -> the object a RemoteEnvironment's operator receives. */
static PyObject *mod_decode_record(PyObject *m, PyObject *arg)
{
    static engine remote_eng = {.remote = 1};
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) != 0)
        return NULL;
    PyObject *r = sagepy_rec_get(&remote_eng, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return r;
}

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_sage",
    .m_doc = "The SAGE engine for the sage Python package (sage.kernel.api builds on it).",
    .m_size = -1,
    .m_methods = mod_methods,
};

static PyObject *exc(PyObject *m, const char *name, PyObject *bases, const char *doc)
{
    char full[128];
    snprintf(full, sizeof full, "sage._sage.%s", name);
    PyObject *e = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
    Py_DECREF(bases);
    if (e && PyModule_AddObjectRef(m, name, e) != 0)
        Py_CLEAR(e);
    return e;
}

PyMODINIT_FUNC PyInit__sage(void)
{
    if (sagepy_gil_init() != 0)
        return PyErr_NoMemory();
    if (PyType_Ready(&sagepy_ContextType) < 0 || PyType_Ready(&sagepy_EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    PyObject *pickle = PyImport_ImportModule("pickle");
    if (!pickle)
        goto fail;
    sagepy_pickle_dumps = PyObject_GetAttrString(pickle, "dumps");
    sagepy_pickle_loads = PyObject_GetAttrString(pickle, "loads");
    Py_DECREF(pickle);
    if (!sagepy_pickle_dumps || !sagepy_pickle_loads)
        goto fail;
    if (!(sagepy_SageError = exc(m, "SageError", Py_BuildValue("(O)", PyExc_RuntimeError),
                                 "An error of the SAGE engine; .code is its code (negative), .code_name its name.")))
        goto fail;
    if (!(sagepy_ConfigError = exc(m, "ConfigError", Py_BuildValue("(OO)", sagepy_SageError, PyExc_ValueError),
                                   "An invalid environment configuration (SAGE_ECONFIG).")) ||
        !(sagepy_ResourceError = exc(m, "ResourceError", Py_BuildValue("(OO)", sagepy_SageError, PyExc_ValueError),
                                     "An invalid resources request (SAGE_ERESOURCES).")) ||
        !(sagepy_InfeasibleError = exc(m, "InfeasibleError", Py_BuildValue("(O)", sagepy_SageError),
                                       "The resources requested cannot be placed (SAGE_EINFEASIBLE).")) ||
        !(sagepy_PlanError = exc(m, "PlanError", Py_BuildValue("(OO)", sagepy_SageError, PyExc_ValueError),
                                 "An invalid pipeline or argument (SAGE_EPLAN, SAGE_EINVAL).")) ||
        !(sagepy_JobFailedError = exc(m, "JobFailedError", Py_BuildValue("(O)", sagepy_SageError),
                                      "The job failed while it ran; the message names the operator, the instance, "
                                      "the records it had processed and the Python traceback.")) ||
        !(sagepy_EmitAborted = exc(m, "EmitAborted", Py_BuildValue("(O)", PyExc_BaseException),
                                   "Raised by collect() when the job is ending; let it propagate.")))
        goto fail;
    if (PyModule_AddObjectRef(m, "Context", (PyObject *)&sagepy_ContextType) != 0 ||
        PyModule_AddObjectRef(m, "Engine", (PyObject *)&sagepy_EngineType) != 0)
        goto fail;
    static const struct {
        const char *name;
        int value;
    } kinds[] = {{"K_SOURCE_BATCH", K_SOURCE_BATCH},
                 {"K_SOURCE_STREAM", K_SOURCE_STREAM},
                 {"K_SOURCE_ITER", K_SOURCE_ITER},
                 {"K_MAP", K_MAP},
                 {"K_FLATMAP", K_FLATMAP},
                 {"K_FILTER", K_FILTER},
                 {"K_SINK", K_SINK},
                 {"K_COMAP", K_COMAP},
                 {"K_JOIN", K_JOIN},
                 {"MAX_INPUTS", SAGEPY_MAX_INPUTS},
                 {"KEY_MAX", SAGE_KEY_MAX},
                 {"FAIL_MAX", SAGEPY_FAIL_MAX}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (PyModule_AddIntConstant(m, kinds[i].name, kinds[i].value) != 0)
            goto fail;
#define ERRCONST(name, value, text)                                                                                    \
    if (PyModule_AddIntConstant(m, "SAGE_" #name, value) != 0)                                                         \
        goto fail;
    SAGE_ERRNO_MAP(ERRCONST)
#undef ERRCONST
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
