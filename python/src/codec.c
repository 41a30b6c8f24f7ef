/* python/src/codec.c - records between processes (tagged fast paths, else pickle) and the canonical bytes of keys.
 *
 * Records of a RemoteEnvironment: pickle protocol 5 (its first byte is
 * always PROTO, 0x80), or one tag byte and the value for the exact types
 * int (int64), str (UTF-8), bytes, float and None, which skip pickle; or
 * 'C' and one value in the nested form below for lists, tuples and dicts
 * made only of those (and bools), up to 32 levels deep: the JSON-like
 * records of typical pipelines, several times cheaper than pickle. Like
 * JSON (unlike pickle) this form does not keep identity between parts of
 * one record: a list held twice arrives as two equal lists.
 * Nested form: 'N' None, 'T' True, 'X' False, 'I' int64 LE, 'F' double LE,
 * 's' u32 length + UTF-8, 'b' u32 length + bytes, 'L' list / 'U' tuple:
 * u32 count + values, 'D' dict: u32 count + (key, value) pairs.
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

enum { T_NONE = 'N', T_INT = 'I', T_STR = 'S', T_BYTES = 'B', T_FLOAT = 'F', T_CONTAINER = 'C', T_PICKLE = 0x80 };

#define NEST_MAX 32 /* deeper containers go to pickle */

/* ---- the nested form: decoding ---- */

static int rd(const unsigned char *p, size_t n, size_t *at, void *out, size_t k)
{
    if (n - *at < k) {
        PyErr_SetString(PyExc_ValueError, "a record cut short: not one a Python operator wrote");
        return -1;
    }
    memcpy(out, p + *at, k);
    *at += k;
    return 0;
}

static PyObject *vdec(const unsigned char *p, size_t n, size_t *at, int depth)
{
    unsigned char tag;
    if (depth > NEST_MAX) {
        PyErr_SetString(PyExc_ValueError, "a record nested too deep: not one a Python operator wrote");
        return NULL;
    }
    if (rd(p, n, at, &tag, 1) != 0)
        return NULL;
    switch (tag) {
    case 'N': Py_RETURN_NONE;
    case 'T': Py_RETURN_TRUE;
    case 'X': Py_RETURN_FALSE;
    case 'I': {
        int64_t v;
        return rd(p, n, at, &v, sizeof v) ? NULL : PyLong_FromLongLong(v);
    }
    case 'F': {
        double v;
        return rd(p, n, at, &v, sizeof v) ? NULL : PyFloat_FromDouble(v);
    }
    case 's':
    case 'b': {
        uint32_t k;
        if (rd(p, n, at, &k, sizeof k) != 0)
            return NULL;
        if (n - *at < k) {
            PyErr_SetString(PyExc_ValueError, "a record cut short: not one a Python operator wrote");
            return NULL;
        }
        const char *d = (const char *)p + *at;
        *at += k;
        return tag == 's' ? PyUnicode_DecodeUTF8(d, (Py_ssize_t)k, "strict")
                          : PyBytes_FromStringAndSize(d, (Py_ssize_t)k);
    }
    case 'L':
    case 'U':
    case 'D': {
        uint32_t k;
        if (rd(p, n, at, &k, sizeof k) != 0)
            return NULL;
        if (k > n - *at) { /* every value takes at least one byte */
            PyErr_SetString(PyExc_ValueError, "a record cut short: not one a Python operator wrote");
            return NULL;
        }
        PyObject *c = tag == 'L' ? PyList_New(k) : tag == 'U' ? PyTuple_New(k) : PyDict_New();
        for (uint32_t i = 0; c && i < k; i++) {
            PyObject *v = vdec(p, n, at, depth + 1);
            if (v && tag == 'D') {
                PyObject *val = vdec(p, n, at, depth + 1);
                int rc = val ? PyDict_SetItem(c, v, val) : -1;
                Py_XDECREF(val);
                Py_DECREF(v);
                v = rc == 0 ? Py_None : NULL;
            } else if (v && tag == 'L')
                PyList_SET_ITEM(c, i, v);
            else if (v)
                PyTuple_SET_ITEM(c, i, v);
            if (!v)
                Py_CLEAR(c);
        }
        return c;
    }
    default: break;
    }
    return PyErr_Format(PyExc_ValueError, "a record with the nested tag 0x%02x: not one a Python operator wrote", tag);
}

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
    case T_CONTAINER: {
        size_t at = 1;
        PyObject *o = vdec(p, len, &at, 0);
        if (o && at != len) {
            Py_DECREF(o);
            return PyErr_Format(PyExc_ValueError, "a record with %zu bytes left over: not one a Python operator wrote",
                                len - at);
        }
        return o;
    }
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

/* ---- the nested form: encoding ---- */

static int wr(ctxobj *cx, size_t *len, const void *d, size_t k)
{
    if (grow(cx, *len + k) != 0)
        return -1;
    memcpy(cx->buf + *len, d, k);
    *len += k;
    return 0;
}

static int wtag(ctxobj *cx, size_t *len, unsigned char tag) { return wr(cx, len, &tag, 1); }

/* 1: written, 0: a value this form does not take (use pickle), -1: error (exception set). */
static int venc(ctxobj *cx, size_t *len, PyObject *o, int depth)
{
    if (o == Py_None)
        return wtag(cx, len, 'N') ? -1 : 1;
    if (o == Py_True || o == Py_False)
        return wtag(cx, len, o == Py_True ? 'T' : 'X') ? -1 : 1;
    if (PyLong_CheckExact(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        int64_t w = v;
        return wtag(cx, len, 'I') || wr(cx, len, &w, sizeof w) ? -1 : 1;
    }
    if (PyFloat_CheckExact(o)) {
        double v = PyFloat_AS_DOUBLE(o);
        return wtag(cx, len, 'F') || wr(cx, len, &v, sizeof v) ? -1 : 1;
    }
    if (PyUnicode_CheckExact(o) || PyBytes_CheckExact(o)) {
        Py_ssize_t n;
        const char *d;
        if (PyBytes_CheckExact(o)) {
            d = PyBytes_AS_STRING(o);
            n = PyBytes_GET_SIZE(o);
        } else if (!(d = PyUnicode_AsUTF8AndSize(o, &n))) {
            PyErr_Clear(); /* lone surrogates: pickle keeps them */
            return 0;
        }
        if ((uint64_t)n > UINT32_MAX)
            return 0;
        uint32_t k = (uint32_t)n;
        return wtag(cx, len, PyBytes_CheckExact(o) ? 'b' : 's') || wr(cx, len, &k, sizeof k) ||
                       wr(cx, len, d, (size_t)n)
                   ? -1
                   : 1;
    }
    int list = PyList_CheckExact(o), tuple = PyTuple_CheckExact(o), dict = PyDict_CheckExact(o);
    if (!list && !tuple && !dict)
        return 0;
    if (depth >= NEST_MAX)
        return 0;
    Py_ssize_t n = PyObject_Length(o);
    if (n < 0 || (uint64_t)n > UINT32_MAX) {
        PyErr_Clear();
        return 0;
    }
    uint32_t k = (uint32_t)n;
    if (wtag(cx, len, list ? 'L' : tuple ? 'U' : 'D') || wr(cx, len, &k, sizeof k))
        return -1;
    if (dict) {
        Py_ssize_t pos = 0;
        PyObject *key, *val;
        uint32_t seen = 0;
        while (PyDict_Next(o, &pos, &key, &val)) { /* nothing here runs Python code: the dict cannot change */
            int rc = venc(cx, len, key, depth + 1);
            if (rc == 1)
                rc = venc(cx, len, val, depth + 1);
            if (rc != 1)
                return rc;
            seen++;
        }
        return seen == k ? 1 : 0;
    }
    for (uint32_t i = 0; i < k; i++) {
        int rc = venc(cx, len, list ? PyList_GET_ITEM(o, i) : PyTuple_GET_ITEM(o, i), depth + 1);
        if (rc != 1)
            return rc;
    }
    return 1;
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
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj) || PyDict_CheckExact(obj) || PyBool_Check(obj)) {
        size_t n = 0;
        int rc = wtag(cx, &n, T_CONTAINER) ? -1 : venc(cx, &n, obj, 0);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            *data = cx->buf;
            *len = n;
            return 0;
        }
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
