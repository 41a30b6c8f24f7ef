/* python/src/operators.c - the C callbacks every operator and service runs: they call Python, emit, fail. */
#include <string.h>
#include <time.h>

#include "sagepy.h"

/* ---------------------------------------------------------------------------
 * Failures
 * ------------------------------------------------------------------------- */

void sagepy_format_exc(char *out, size_t cap)
{
    out[0] = 0;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (!v) {
        snprintf(out, cap, "an unknown error");
        Py_XDECREF(t);
        Py_XDECREF(tb);
        return;
    }
    if (tb)
        PyException_SetTraceback(v, tb);
    PyObject *s = sagepy_format_failure ? PyObject_CallFunction(sagepy_format_failure, "On", v, (Py_ssize_t)cap - 1)
                                        : NULL;
    const char *txt = s ? PyUnicode_AsUTF8(s) : NULL;
    if (txt)
        snprintf(out, cap, "%s", txt);
    else {
        PyErr_Clear();
        snprintf(out, cap, "%s", Py_TYPE(v)->tp_name);
    }
    Py_XDECREF(s);
    PyErr_Restore(t, v, tb);
}

int sagepy_fail(ctxobj *cx, sage_ctx *c, const char *what)
{
    if (PyErr_ExceptionMatches(sagepy_EmitAborted)) { /* the job is ending for another reason */
        PyErr_Clear();
        return cx && cx->emit_rc ? cx->emit_rc : SAGE_ECANCELED;
    }
    char msg[SAGEPY_FAIL_MAX + 1];
    size_t lead = 0;
    if (!what && cx && cx->fail_what)
        what = cx->fail_what; /* collect() failed computing a key, or encoding */
    if (cx)
        cx->fail_what = NULL;
    if (what)
        lead = (size_t)snprintf(msg, sizeof msg, "%s: ", what);
    if (lead >= sizeof msg)
        lead = sizeof msg - 1;
    sagepy_format_exc(msg + lead, sizeof msg - lead);
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (cx && v) { /* kept for the submitting process (local): the first per instance */
        if (tb)
            PyException_SetTraceback(v, tb);
        PyObject *key = PyUnicode_FromFormat("%U\n%d", cx->name, cx->parallel_index);
        if (key && !PyDict_Contains(cx->op->eng->failures, key))
            PyDict_SetItem(cx->op->eng->failures, key, v);
        Py_XDECREF(key);
    }
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    PyErr_Clear();
    if (c)
        sage_ctx_fail(c, "%s", msg);
    return SAGE_EUSER;
}

static int emit_one(ctxobj *cx, sage_ctx *c, sage_out *out, PyObject *obj)
{
    int rc = sagepy_emit(cx, out, obj);
    if (rc == -1 && PyErr_Occurred())
        return sagepy_fail(cx, c, cx->fail_what);
    return rc < 0 ? rc : 0;
}

/* Emit every item of an iterable result (None: nothing). */
static int emit_all(ctxobj *cx, sage_ctx *c, sage_out *out, PyObject *r)
{
    if (r == Py_None)
        return 0;
    if (PyList_CheckExact(r) || PyTuple_CheckExact(r)) {
        PyObject *seq = Py_NewRef(r); /* a list may change while we emit (its items are borrowed) */
        int rc = 0;
        for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
            rc = emit_one(cx, c, out, item);
            Py_DECREF(item);
        }
        Py_DECREF(seq);
        return rc;
    }
    PyObject *it = PyObject_GetIter(r);
    if (!it)
        return sagepy_fail(cx, c, "its result is not iterable (a flatmap returns an iterable or None)");
    int rc = 0;
    PyObject *item;
    while (rc == 0 && (item = PyIter_Next(it))) {
        rc = emit_one(cx, c, out, item);
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (rc == 0 && PyErr_Occurred())
        rc = sagepy_fail(cx, c, NULL);
    return rc;
}

/* The input record as a new reference. Local mode: the handle, which the caller's batch or emitter holds. */
static inline PyObject *rec_in(ctxobj *cx, sage_ctx *c, const void *rec, size_t len, int *rc)
{
    PyObject *o = sagepy_rec_get(cx->op->eng, rec, len);
    if (!o)
        *rc = sagepy_fail(cx, c, "decoding its input record");
    return o;
}

/* ---------------------------------------------------------------------------
 * Lifecycle hooks
 * ------------------------------------------------------------------------- */

static int bind_calls(ctxobj *cx, PyObject *fn)
{
    pyop *op = cx->op;
    if (op->kind == K_SOURCE_ITER) {
        cx->call = PyObject_GetIter(fn);
        return cx->call ? 0 : -1;
    }
    cx->fn = Py_NewRef(fn);
    if (op->kind == K_COMAP) {
        for (int i = 0; i < op->ninputs; i++) {
            char m[16];
            snprintf(m, sizeof m, "map%d", i);
            if (!(cx->calls[i] = PyObject_GetAttrString(fn, m)))
                return -1;
        }
    } else if (!(cx->call = PyObject_GetAttrString(fn, "execute")))
        return -1;
    PyObject *cl = PyObject_GetAttrString(fn, "close");
    if (cl && PyCallable_Check(cl))
        cx->close_cb = cl;
    else {
        Py_XDECREF(cl);
        PyErr_Clear();
    }
    return 0;
}

static void release_ctx(sage_ctx *c, ctxobj *cx)
{
    cx->c = NULL;
    cx->out = NULL;
    Py_CLEAR(cx->fn);
    Py_CLEAR(cx->call);
    for (int i = 0; i < SAGEPY_MAX_INPUTS; i++)
        Py_CLEAR(cx->calls[i]);
    Py_CLEAR(cx->close_cb);
    sage_ctx_set_local(c, NULL);
    Py_DECREF(cx);
}

int sagepy_op_open(sage_ctx *c, void *udata)
{
    pyop *op = udata;
    ctxobj *cx = sagepy_ctx_new(op, c);
    if (!cx)
        return sagepy_fail(NULL, c, "creating its context");
    PyObject *fn = PyObject_CallOneArg(op->factory, (PyObject *)cx);
    int rc = 0;
    if (!fn)
        rc = sagepy_fail(cx, c, "building its function");
    else if (bind_calls(cx, fn) != 0)
        rc = sagepy_fail(cx, c, "its function does not fit the operator");
    Py_XDECREF(fn);
    if (rc != 0) { /* close will not run for an instance whose open failed */
        cx->c = NULL;
        Py_CLEAR(cx->fn);
        Py_CLEAR(cx->call);
        for (int i = 0; i < SAGEPY_MAX_INPUTS; i++)
            Py_CLEAR(cx->calls[i]);
        Py_CLEAR(cx->close_cb);
        Py_DECREF(cx);
        return rc;
    }
    sage_ctx_set_local(c, cx);
    return 0;
}

int sagepy_op_close(sage_ctx *c, sage_out *out, void *udata)
{
    pyop *op = udata;
    ctxobj *cx = sage_ctx_local(c);
    if (!cx)
        return 0;
    int rc = 0;
    if (cx->close_cb) {
        int emits = op->kind != K_SINK && op->kind != K_FILTER && op->kind != K_SOURCE_BATCH &&
                    op->kind != K_SOURCE_STREAM && op->kind != K_SOURCE_ITER;
        cx->out = emits ? out : NULL;
        cx->emit_rc = 0;
        cx->fail_what = NULL;
        PyObject *r = PyObject_CallNoArgs(cx->close_cb);
        if (!r)
            rc = sagepy_fail(cx, c, "in close()");
        else if (cx->emit_rc)
            rc = cx->emit_rc;
        else if (emits && r != Py_None)
            rc = (op->kind == K_FLATMAP || op->kind == K_JOIN) ? emit_all(cx, c, out, r) : emit_one(cx, c, out, r);
        Py_XDECREF(r);
    }
    release_ctx(c, cx);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Record callbacks
 * ------------------------------------------------------------------------- */

int sagepy_op_map(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *udata)
{
    ctxobj *cx = sage_ctx_local(c);
    int rc = 0;
    PyObject *in = rec_in(cx, c, rec, len, &rc);
    if (!in)
        return rc;
    PyObject *r = PyObject_CallOneArg(cx->call, in);
    Py_DECREF(in);
    if (!r)
        return sagepy_fail(cx, c, NULL);
    if (r != Py_None)
        rc = emit_one(cx, c, out, r);
    Py_DECREF(r);
    return rc;
}

int sagepy_op_flatmap(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *udata)
{
    ctxobj *cx = sage_ctx_local(c);
    int rc = 0;
    PyObject *in = rec_in(cx, c, rec, len, &rc);
    if (!in)
        return rc;
    cx->out = out;
    cx->emit_rc = 0;
    cx->fail_what = NULL;
    PyObject *r = PyObject_CallOneArg(cx->call, in);
    Py_DECREF(in);
    if (!r)
        rc = sagepy_fail(cx, c, NULL);
    else if (cx->emit_rc)
        rc = cx->emit_rc; /* collect() failed and the function went on */
    else
        rc = emit_all(cx, c, out, r);
    Py_XDECREF(r);
    cx->out = NULL;
    return rc;
}

int sagepy_op_filter(sage_ctx *c, const void *rec, size_t len, void *udata)
{
    ctxobj *cx = sage_ctx_local(c);
    int rc = 0;
    PyObject *in = rec_in(cx, c, rec, len, &rc);
    if (!in)
        return rc;
    PyObject *r = PyObject_CallOneArg(cx->call, in);
    Py_DECREF(in);
    if (!r)
        return sagepy_fail(cx, c, NULL);
    int keep = PyObject_IsTrue(r);
    Py_DECREF(r);
    return keep < 0 ? sagepy_fail(cx, c, "the truth value of its result") : keep;
}

int sagepy_op_sink(sage_ctx *c, const void *rec, size_t len, void *udata)
{
    ctxobj *cx = sage_ctx_local(c);
    int rc = 0;
    PyObject *in = rec_in(cx, c, rec, len, &rc);
    if (!in)
        return rc;
    PyObject *r = PyObject_CallOneArg(cx->call, in);
    Py_DECREF(in);
    if (!r)
        return sagepy_fail(cx, c, NULL);
    Py_DECREF(r);
    return 0;
}

static int comap_in(int input, sage_ctx *c, const void *rec, size_t len, sage_out *out)
{
    ctxobj *cx = sage_ctx_local(c);
    int rc = 0;
    PyObject *in = rec_in(cx, c, rec, len, &rc);
    if (!in)
        return rc;
    PyObject *r = PyObject_CallOneArg(cx->calls[input], in);
    Py_DECREF(in);
    if (!r)
        return sagepy_fail(cx, c, NULL);
    if (r != Py_None)
        rc = emit_one(cx, c, out, r);
    Py_DECREF(r);
    return rc;
}

#define COMAP_TRAMPOLINE(i)                                                                                            \
    static int comap_##i(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *udata)                         \
    {                                                                                                                  \
        return comap_in(i, c, rec, len, out);                                                                          \
    }
COMAP_TRAMPOLINE(0)
COMAP_TRAMPOLINE(1)
COMAP_TRAMPOLINE(2)
COMAP_TRAMPOLINE(3)
COMAP_TRAMPOLINE(4)
COMAP_TRAMPOLINE(5)
COMAP_TRAMPOLINE(6)
COMAP_TRAMPOLINE(7)
COMAP_TRAMPOLINE(8)
COMAP_TRAMPOLINE(9)
COMAP_TRAMPOLINE(10)
COMAP_TRAMPOLINE(11)
COMAP_TRAMPOLINE(12)
COMAP_TRAMPOLINE(13)
COMAP_TRAMPOLINE(14)
COMAP_TRAMPOLINE(15)
const sage_map_fn sagepy_comap_fns[SAGEPY_MAX_INPUTS] = {comap_0,  comap_1,  comap_2,  comap_3, comap_4,  comap_5,
                                                         comap_6,  comap_7,  comap_8,  comap_9, comap_10, comap_11,
                                                         comap_12, comap_13, comap_14, comap_15};

int sagepy_op_join(sage_ctx *c, int side, const void *rec, size_t len, sage_out *out, void *udata)
{
    ctxobj *cx = sage_ctx_local(c);
    int rc = 0;
    PyObject *in = rec_in(cx, c, rec, len, &rc);
    if (!in)
        return rc;
    size_t klen = 0;
    const void *k = sage_ctx_key(c, &klen);
    PyObject *key = k ? sagepy_key_decode(k, klen) : Py_NewRef(Py_None);
    if (!key) {
        Py_DECREF(in);
        return sagepy_fail(cx, c, "decoding the key");
    }
    cx->out = out;
    cx->emit_rc = 0;
    cx->fail_what = NULL;
    PyObject *r = PyObject_CallFunction(cx->call, "OOi", in, key, side);
    Py_DECREF(in);
    Py_DECREF(key);
    if (!r)
        rc = sagepy_fail(cx, c, NULL);
    else if (cx->emit_rc)
        rc = cx->emit_rc;
    else
        rc = emit_all(cx, c, out, r);
    Py_XDECREF(r);
    cx->out = NULL;
    return rc;
}

/* Sources emit up to this many records per call, so stop and cancel are checked often enough. */
#define SOURCE_BURST 64

static int is_stop(PyObject *r)
{
    return sagepy_StopSignal && PyObject_TypeCheck(r, (PyTypeObject *)sagepy_StopSignal);
}

static void idle_wait(ctxobj *cx)
{
    /* A stream source with nothing to give: the engine calls again at once; after a few empty calls wait a
     * little (GIL released), up to 1 ms, instead of spinning. */
    if (++cx->idle <= 4)
        return;
    long us = 50L << (cx->idle - 5 < 5 ? cx->idle - 5 : 5);
    if (us > 1000)
        us = 1000;
    struct timespec t = {0, us * 1000};
    GIL_RELEASE;
    nanosleep(&t, NULL);
    GIL_TAKE;
}

int sagepy_op_source(sage_ctx *c, sage_out *out, void *udata)
{
    pyop *op = udata;
    ctxobj *cx = sage_ctx_local(c);
    for (int n = 0; n < SOURCE_BURST; n++) {
        PyObject *r;
        if (op->kind == K_SOURCE_ITER) {
            r = PyIter_Next(cx->call);
            if (!r)
                return PyErr_Occurred() ? sagepy_fail(cx, c, NULL) : SAGE_DONE;
        } else {
            r = PyObject_CallNoArgs(cx->call);
            if (!r)
                return sagepy_fail(cx, c, NULL);
            if (is_stop(r) || (r == Py_None && op->kind == K_SOURCE_BATCH)) {
                Py_DECREF(r);
                return SAGE_DONE;
            }
            if (r == Py_None) { /* a stream source with nothing now */
                Py_DECREF(r);
                if (n == 0)
                    idle_wait(cx);
                return SAGE_MORE;
            }
            cx->idle = 0;
        }
        int rc = emit_one(cx, c, out, r);
        Py_DECREF(r);
        if (rc < 0)
            return rc;
    }
    return SAGE_MORE;
}

/* ---------------------------------------------------------------------------
 * Services
 * ------------------------------------------------------------------------- */

int sagepy_svc_fn(const void *req, size_t len, sage_reply *reply, void *udata)
{
    pysvc *s = udata;
    PyObject *b = PyBytes_FromStringAndSize(req, (Py_ssize_t)len);
    PyObject *r = b ? PyObject_CallMethod(s->host, "_dispatch", "O", b) : NULL;
    Py_XDECREF(b);
    if (!r || !PyBytes_Check(r)) {
        if (!r)
            PyErr_WriteUnraisable(s->host);
        Py_XDECREF(r);
        return SAGE_EUSER;
    }
    int rc = sage_reply_set(reply, PyBytes_AS_STRING(r), (size_t)PyBytes_GET_SIZE(r));
    Py_DECREF(r);
    return rc;
}

int sagepy_svc_start(void *udata)
{
    pysvc *s = udata;
    PyObject *r = PyObject_CallMethod(s->host, "_start", NULL);
    if (r) {
        Py_DECREF(r);
        return 0;
    }
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v) {
        if (tb)
            PyException_SetTraceback(v, tb);
        PyList_Append(s->eng->svc_errors, v);
    }
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return SAGE_EUSER;
}

void sagepy_svc_stop(void *udata)
{
    pysvc *s = udata;
    PyObject *r = PyObject_CallMethod(s->host, "_stop", NULL);
    if (!r)
        PyErr_WriteUnraisable(s->host);
    Py_XDECREF(r);
}
