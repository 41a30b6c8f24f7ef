/* python/src/route.c - emitting a record: its keys and partitions computed by the sender first, then sage_emit.
 *
 * The engine calls a key function (or partitioner) inside sage_emit, with
 * only its udata: a Python exception there could reach the job's message
 * only as "the key function returned -7". So before it emits, the sending
 * operator calls every key function and partitioner its output is routed by
 * (registered on it at declaration: pyop.routes), where a failure is its own,
 * traceback included. The results wait in this thread's cache for the
 * engine's call during the same sage_emit, found by the record's address and
 * length (each emit passes its own buffer): Python runs once per record per
 * route. The cache is cleared when sage_emit returns; routing happens only
 * at the tail of a chain, so emits do not nest inside one.
 *
 * A call that misses the cache (the receiving side sets get_key() with the
 * key function again, as the engine does; a partitioning whose consumer's
 * parallelism is not known) calls Python there; an exception is then printed
 * on stderr and the engine's own message fails the job. */
#include <string.h>

#include "sagepy.h"

typedef struct cached {
    const pykey *k;
    const void *rec;
    size_t len;
    int nparts; /* a partition computed for this many consumers */
    int result; /* key length, or the partition */
    unsigned char key[SAGE_KEY_MAX];
} cached;

static _Thread_local cached cache[SAGEPY_MAX_ROUTES * SAGEPY_MAX_NPARTS];
static _Thread_local int ncache;

static int call_key(const pykey *k, PyObject *obj, unsigned char *keybuf)
{
    PyObject *key = PyObject_CallOneArg(k->fn, obj);
    if (!key)
        return -1;
    int n = sagepy_key_encode(key, keybuf);
    Py_DECREF(key);
    return n;
}

/* partition(record, nparts) as an int in [0, nparts): -1 with an exception set otherwise. */
static int call_partition(const pykey *k, PyObject *obj, int nparts)
{
    PyObject *r = PyObject_CallFunction(k->fn, "Oi", obj, nparts);
    if (!r)
        return -1;
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v >= nparts) {
        PyErr_Format(PyExc_ValueError, "it returned %ld for %d instances (expected 0 to %d)", v, nparts, nparts - 1);
        return -1;
    }
    return (int)v;
}

/* Compute the routes of obj (whose record is rec/len). 0, or -1 with an exception and cx->fail_what set. */
static int prepare(ctxobj *cx, PyObject *obj, const void *rec, size_t len)
{
    const pyop *op = cx->op;
    ncache = 0;
    for (int i = 0; i < op->nroutes; i++) {
        const pykey *k = op->routes[i];
        int rounds = k->partition ? k->nnparts : 1;
        for (int j = 0; j < rounds; j++) {
            cached *c = &cache[ncache];
            c->k = k;
            c->rec = rec;
            c->len = len;
            c->nparts = k->partition ? k->nparts[j] : 0;
            c->result = k->partition ? call_partition(k, obj, c->nparts) : call_key(k, obj, c->key);
            if (c->result < 0) {
                ncache = 0;
                cx->fail_what = k->what;
                return -1;
            }
            ncache++;
        }
    }
    return 0;
}

int sagepy_emit(ctxobj *cx, sage_out *out, PyObject *obj)
{
    const void *data;
    size_t len;
    PyObject *hold = NULL;
    if (cx->op->eng->remote) {
        if (sagepy_encode(cx, obj, &data, &len, &hold) != 0) {
            cx->fail_what = "a record it emitted cannot be sent to another process";
            return -1;
        }
    } else {
        data = &obj; /* the record is the handle */
        len = sizeof obj;
    }
    if (cx->op->nroutes && prepare(cx, obj, data, len) != 0) {
        Py_XDECREF(hold);
        return -1;
    }
    int rc = sage_emit(out, data, len);
    ncache = 0;
    Py_XDECREF(hold);
    return rc;
}

/* ---- what the engine calls ---- */

static const cached *lookup(const pykey *k, const void *rec, size_t len, int nparts)
{
    for (int i = 0; i < ncache; i++)
        if (cache[i].k == k && cache[i].rec == rec && cache[i].len == len && cache[i].nparts == nparts)
            return &cache[i];
    return NULL;
}

static void report_uncached(const pykey *k)
{
    char msg[SAGEPY_FAIL_MAX + 1];
    sagepy_format_exc(msg, sizeof msg);
    PyErr_Clear();
    PySys_FormatStderr("sage: %s failed: %s\n", k->what, msg);
}

static int key_of(const pykey *k, const void *rec, size_t len, void *keybuf)
{
    const cached *c = lookup(k, rec, len, 0);
    if (c) {
        memcpy(keybuf, c->key, (size_t)c->result);
        return c->result;
    }
    PyObject *obj = sagepy_rec_get(k->eng, rec, len);
    int n = obj ? call_key(k, obj, keybuf) : -1;
    Py_XDECREF(obj);
    if (n < 0) {
        report_uncached(k);
        return SAGE_EUSER;
    }
    return n;
}

int sagepy_key_fn(const void *rec, size_t len, void *keybuf, void *udata) { return key_of(udata, rec, len, keybuf); }

int sagepy_join_lkey(const void *rec, size_t len, void *keybuf, void *udata)
{
    return key_of(((const pyop *)udata)->lkey, rec, len, keybuf);
}

int sagepy_join_rkey(const void *rec, size_t len, void *keybuf, void *udata)
{
    return key_of(((const pyop *)udata)->rkey, rec, len, keybuf);
}

int sagepy_partition_fn(const void *rec, size_t len, int nparts, void *udata)
{
    const pykey *k = udata;
    const cached *c = lookup(k, rec, len, nparts);
    if (c)
        return c->result;
    PyObject *obj = sagepy_rec_get(k->eng, rec, len);
    int v = obj ? call_partition(k, obj, nparts) : -1;
    Py_XDECREF(obj);
    if (v < 0) {
        report_uncached(k);
        return -1;
    }
    return v;
}
