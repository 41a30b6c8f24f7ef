/* python/src/codec.c - records between processes (tagged fast paths, else pickle) and the canonical bytes of keys.
 *
 * Records of a RemoteEnvironment: pickle protocol 5 (its first byte is
 * always PROTO, 0x80), or one tag byte and the value for the exact types
 * int (int64), str (UTF-8), bytes, float and None, which skip pickle.
 *
 * Keys (both environments): the engine routes by a fixed hash of the key's
 * bytes, so the bytes must be the same for equal keys in every process.
 * Python's hash() is salted per process and is never used. The form:
 *   'n'                 None
 *   'i' int64 LE        int, bool, and floats with an integral value in
 *                       int64 range (1 == 1.0 == True, as dict keys)
 *   'I' decimal         other ints
 *   'f' double LE       other floats (-0.0 as 0)
 *   's' UTF-8           str
 *   'b' bytes           bytes
 *   't' (u32 len, form)* tuple, element by element
 *   'p' pickle (proto 4) anything else: its pickle must be deterministic
 * ctx.get_key() decodes the same bytes back. */
#include <math.h>
#include <string.h>

#include "sagepy.h"

enum { T_NONE = 'N', T_INT = 'I', T_STR = 'S', T_BYTES = 'B', T_FLOAT = 'F', T_PICKLE = 0x80 };

PyObject *sagepy_rec_get(const engine *eng, const void *rec, size_t len)
{
    if (!eng->remote) {
        PyObject *o;
        if (len != sizeof o) {
            PyErr_Format(PyExc_SystemError, "a record of %zu bytes where an object handle was expected", len);
            return NULL;
        }
        memcpy(&o, rec, sizeof o);
        return Py_NewRef(o);
    }
    const unsigned char *p = rec;
    if (len == 0)
        return PyErr_Format(PyExc_ValueError, "an empty record: not one a Python operator wrote");
    switch (p[0]) {
    case T_NONE: Py_RETURN_NONE;
    case T_INT: {
        int64_t v;
        if (len != 1 + sizeof v)
            break;
        memcpy(&v, p + 1, sizeof v);
        return PyLong_FromLongLong(v);
    }
    case T_FLOAT: {
        double v;
        if (len != 1 + sizeof v)
            break;
        memcpy(&v, p + 1, sizeof v);
        return PyFloat_FromDouble(v);
    }
    case T_STR: return PyUnicode_DecodeUTF8((const char *)p + 1, (Py_ssize_t)len - 1, "surrogatepass");
    case T_BYTES: return PyBytes_FromStringAndSize((const char *)p + 1, (Py_ssize_t)len - 1);
    case T_PICKLE: {
        PyObject *mv = PyMemoryView_FromMemory((char *)p, (Py_ssize_t)len, PyBUF_READ);
        if (!mv)
            return NULL;
        PyObject *o = PyObject_CallOneArg(sagepy_pickle_loads, mv);
        Py_DECREF(mv);
        return o;
    }
    default: break;
    }
    return PyErr_Format(PyExc_ValueError, "a record of %zu bytes with tag 0x%02x: not one a Python operator wrote", len,
                        p[0]);
}

static int grow(ctxobj *cx, size_t need)
{
    if (need <= cx->bufcap)
        return 0;
    size_t cap = cx->bufcap ? cx->bufcap : 256;
    while (cap < need)
        cap *= 2;
    unsigned char *b = PyMem_Realloc(cx->buf, cap);
    if (!b) {
        PyErr_NoMemory();
        return -1;
    }
    cx->buf = b;
    cx->bufcap = cap;
    return 0;
}

/* Encode obj for another process: data and len point into cx's scratch buffer or into *hold (a bytes object the
 * caller releases). Returns 0, or -1 with a Python exception set. */
int sagepy_encode(ctxobj *cx, PyObject *obj, const void **data, size_t *len, PyObject **hold)
{
    *hold = NULL;
    if (obj == Py_None) {
        if (grow(cx, 1) != 0)
            return -1;
        cx->buf[0] = T_NONE;
        *data = cx->buf;
        *len = 1;
        return 0;
    }
    if (PyLong_CheckExact(obj)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            int64_t w = v;
            if (grow(cx, 1 + sizeof w) != 0)
                return -1;
            cx->buf[0] = T_INT;
            memcpy(cx->buf + 1, &w, sizeof w);
            *data = cx->buf;
            *len = 1 + sizeof w;
            return 0;
        }
        PyErr_Clear();
    } else if (PyFloat_CheckExact(obj)) {
        double v = PyFloat_AS_DOUBLE(obj);
        if (grow(cx, 1 + sizeof v) != 0)
            return -1;
        cx->buf[0] = T_FLOAT;
        memcpy(cx->buf + 1, &v, sizeof v);
        *data = cx->buf;
        *len = 1 + sizeof v;
        return 0;
    } else if (PyUnicode_CheckExact(obj)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (!s) /* lone surrogates: pickle keeps them */
            PyErr_Clear();
        else {
            if (grow(cx, (size_t)n + 1) != 0)
                return -1;
            cx->buf[0] = T_STR;
            memcpy(cx->buf + 1, s, (size_t)n);
            *data = cx->buf;
            *len = (size_t)n + 1;
            return 0;
        }
    } else if (PyBytes_CheckExact(obj)) {
        size_t n = (size_t)PyBytes_GET_SIZE(obj);
        if (grow(cx, n + 1) != 0)
            return -1;
        cx->buf[0] = T_BYTES;
        memcpy(cx->buf + 1, PyBytes_AS_STRING(obj), n);
        *data = cx->buf;
        *len = n + 1;
        return 0;
    }
    PyObject *pk = PyObject_CallFunction(sagepy_pickle_dumps, "Oi", obj, 5);
    if (!pk)
        return -1;
    *hold = pk;
    *data = PyBytes_AS_STRING(pk);
    *len = (size_t)PyBytes_GET_SIZE(pk);
    return 0;
}

/* ---- keys ---- */

typedef struct kbuf {
    unsigned char *p;
    size_t len, cap;
} kbuf;

static int kput(kbuf *k, const void *data, size_t n)
{
    if (k->len + n > k->cap) {
        PyErr_Format(PyExc_ValueError, "the key is longer than %d bytes in its canonical form", SAGE_KEY_MAX);
        return -1;
    }
    memcpy(k->p + k->len, data, n);
    k->len += n;
    return 0;
}

static int kint64(kbuf *k, int64_t v)
{
    unsigned char t = 'i';
    return kput(k, &t, 1) || kput(k, &v, sizeof v) ? -1 : 0;
}

static int kenc(kbuf *k, PyObject *o, int depth)
{
    if (depth > 16) {
        PyErr_SetString(PyExc_ValueError, "the key nests tuples more than 16 deep");
        return -1;
    }
    if (o == Py_None)
        return kput(k, "n", 1);
    if (PyLong_Check(o)) { /* bool too: True == 1 */
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (!overflow)
            return kint64(k, v);
        PyObject *s = PyObject_Str(o);
        if (!s)
            return -1;
        Py_ssize_t n;
        const char *d = PyUnicode_AsUTF8AndSize(s, &n);
        int rc = d ? (kput(k, "I", 1) || kput(k, d, (size_t)n) ? -1 : 0) : -1;
        Py_DECREF(s);
        return rc;
    }
    if (PyFloat_Check(o)) {
        double v = PyFloat_AS_DOUBLE(o);
        if (isfinite(v) && v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0)
            return kint64(k, (int64_t)v);
        unsigned char t = 'f';
        return kput(k, &t, 1) || kput(k, &v, sizeof v) ? -1 : 0;
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *d = PyUnicode_AsUTF8AndSize(o, &n);
        if (!d)
            return -1;
        return kput(k, "s", 1) || kput(k, d, (size_t)n) ? -1 : 0;
    }
    if (PyBytes_Check(o))
        return kput(k, "b", 1) || kput(k, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o)) ? -1 : 0;
    if (PyTuple_Check(o)) {
        if (kput(k, "t", 1))
            return -1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++) {
            size_t at = k->len;
            uint32_t n = 0;
            if (kput(k, &n, sizeof n) || kenc(k, PyTuple_GET_ITEM(o, i), depth + 1))
                return -1;
            n = (uint32_t)(k->len - at - sizeof n);
            memcpy(k->p + at, &n, sizeof n);
        }
        return 0;
    }
    PyObject *pk = PyObject_CallFunction(sagepy_pickle_dumps, "Oi", o, 4);
    if (!pk)
        return -1;
    int rc = kput(k, "p", 1) || kput(k, PyBytes_AS_STRING(pk), (size_t)PyBytes_GET_SIZE(pk)) ? -1 : 0;
    Py_DECREF(pk);
    return rc;
}

int sagepy_key_encode(PyObject *obj, unsigned char *buf)
{
    kbuf k = {buf, 0, SAGE_KEY_MAX};
    return kenc(&k, obj, 0) ? -1 : (int)k.len;
}

static PyObject *kdec(const unsigned char *p, size_t len)
{
    if (len == 0)
        return PyErr_Format(PyExc_ValueError, "an empty key");
    const unsigned char *d = p + 1;
    size_t n = len - 1;
    switch (p[0]) {
    case 'n': Py_RETURN_NONE;
    case 'i': {
        int64_t v;
        if (n != sizeof v)
            break;
        memcpy(&v, d, sizeof v);
        return PyLong_FromLongLong(v);
    }
    case 'I': {
        PyObject *s = PyUnicode_DecodeASCII((const char *)d, (Py_ssize_t)n, "strict");
        if (!s)
            return NULL;
        PyObject *v = PyLong_FromUnicodeObject(s, 10);
        Py_DECREF(s);
        return v;
    }
    case 'f': {
        double v;
        if (n != sizeof v)
            break;
        memcpy(&v, d, sizeof v);
        return PyFloat_FromDouble(v);
    }
    case 's': return PyUnicode_DecodeUTF8((const char *)d, (Py_ssize_t)n, "strict");
    case 'b': return PyBytes_FromStringAndSize((const char *)d, (Py_ssize_t)n);
    case 't': {
        PyObject *items = PyList_New(0);
        if (!items)
            return NULL;
        size_t at = 0;
        while (at < n) {
            uint32_t m;
            if (n - at < sizeof m)
                goto bad_tuple;
            memcpy(&m, d + at, sizeof m);
            at += sizeof m;
            if (m > n - at)
                goto bad_tuple;
            PyObject *e = kdec(d + at, m);
            if (!e || PyList_Append(items, e) != 0) {
                Py_XDECREF(e);
                Py_DECREF(items);
                return NULL;
            }
            Py_DECREF(e);
            at += m;
        }
        PyObject *t = PyList_AsTuple(items);
        Py_DECREF(items);
        return t;
    bad_tuple:
        Py_DECREF(items);
        break;
    }
    case 'p': {
        PyObject *b = PyBytes_FromStringAndSize((const char *)d, (Py_ssize_t)n);
        if (!b)
            return NULL;
        PyObject *v = PyObject_CallOneArg(sagepy_pickle_loads, b);
        Py_DECREF(b);
        return v;
    }
    default: break;
    }
    return PyErr_Format(PyExc_ValueError, "a key of %zu bytes with tag 0x%02x: not one a Python key function made", len,
                        p[0]);
}

PyObject *sagepy_key_decode(const void *key, size_t len) { return kdec(key, len); }
