/* python/src/sagepy.h - the Python binding's shared declarations: the engine object, per-instance contexts, codecs. */
#ifndef SAGEPY_H
#define SAGEPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>

#include <sage/sage.h>

/* ---------------------------------------------------------------------------
 * Design note.
 *
 * The Python API (python/sage/) declares every operator through one
 * _sage.Engine, which owns a sage_env. Each operator gets a `pyop` as udata:
 * its kind and a factory, a Python callable that builds the user's function
 * object for one instance. The engine's open hook calls the factory on the
 * instance's own thread and keeps the result in a `ctxobj` (the instance's
 * Python context, self.ctx inside the function), set as the instance's
 * local; the record callbacks call the cached bound methods; the close hook
 * calls close() where the function has one and drops the references.
 *
 * Records. In a LocalEnvironment a record is the 8-byte PyObject pointer
 * itself (records as handles, sage/binding.h): the engine calls copy
 * (Py_INCREF) when a batch keeps one and drop (Py_DECREF) when it lets go,
 * so an object is never serialised inside one process. A RemoteEnvironment's
 * records cross processes: they are encoded bytes (codec.c), pickled
 * (protocol 5) except for a few exact types with a one-byte tag.
 *
 * The GIL. Engine threads run Python only between the binding's enter and
 * leave (gil.c), which take and give back the GIL; every blocking call into
 * the engine made from Python (submit, wait, stop, cancel, destroy, service
 * calls) releases the GIL first. A task thread therefore holds the GIL only
 * while it runs Python code or touches records.
 *
 * Failures. A Python exception in a user function becomes the job's
 * failure: sage_ctx_fail with the formatted traceback (the tail of it, the
 * engine keeps 511 bytes), then a negative return. The exception object is
 * also kept on the engine (first per operator instance) so that the
 * exception raised in the submitting process can chain it (__cause__).
 * Key functions and partitioners run inside sage_emit of the sending
 * operator, where the engine gives them no ctx: an exception there could only
 * become "the key function returned -7". So the sending operator computes
 * them itself before it emits (route.c): an error is its own failure, with
 * the traceback; the results wait in a per-thread cache, where the engine's
 * call during sage_emit finds them (no second Python call). The receiving
 * side calls the key function again (for get_key), as the engine does.
 * ------------------------------------------------------------------------- */

/* Operator kinds, as the Python layer names them. */
enum {
    K_SOURCE_BATCH = 1, /* execute() returns a record, None (or StopSignal) at the end */
    K_SOURCE_STREAM,    /* execute() returns a record, None when there is nothing now, StopSignal at the end */
    K_SOURCE_ITER,      /* the factory returns an iterator: one record per item */
    K_MAP,              /* one output per input; None means no output (as in SAGE Kernel) */
    K_FLATMAP,          /* an iterable per input and/or collect() */
    K_FILTER,           /* truthiness keeps */
    K_SINK,             /* consumes; close() at the end */
    K_COMAP,            /* map0..mapN, one per input; None means no output */
    K_JOIN,             /* execute(payload, key, tag) returns an iterable */
};

/* Finalization has begun: Python must not be entered (the public name since 3.13). */
#if PY_VERSION_HEX >= 0x030D0000
#define SAGEPY_FINALIZING() Py_IsFinalizing()
#else
#define SAGEPY_FINALIZING() _Py_IsFinalizing()
#endif

/* Around every blocking call into the engine: give the GIL back, take it again (one pair per block). */
#define GIL_RELEASE PyThreadState *gil_saved_ = PyEval_SaveThread()
#define GIL_TAKE PyEval_RestoreThread(gil_saved_)

#define SAGEPY_MAX_INPUTS 16 /* comap inputs (one C trampoline each) */
#define SAGEPY_FAIL_MAX 511  /* what sage_ctx_fail keeps */
#define SAGEPY_MAX_ROUTES 8  /* keyed or custom-partitioned consumers of one operator computed before emit */
#define SAGEPY_MAX_NPARTS 4  /* distinct consumer parallelisms of one custom partitioning */

typedef struct engine engine;

/* A key function or partitioner (udata of sage_key_by / sage_partition_custom; a join's two). */
typedef struct pykey {
    engine *eng;
    PyObject *fn;                  /* callable(record) -> key, or partition(record, n) */
    int partition;                 /* a partitioner */
    int nparts[SAGEPY_MAX_NPARTS]; /* partitioner: the parallelisms of the consumers declared on it */
    int nnparts;
    char what[160]; /* "the key function <lambda> (keyby)", for messages */
} pykey;

/* One declared operator (udata of its sage_* call). */
typedef struct pyop {
    engine *eng;
    int kind;
    int ninputs;       /* comap */
    PyObject *factory; /* callable(ctx) -> function object (K_SOURCE_ITER: -> iterator) */
    pykey *lkey;       /* join: left and right key functions */
    pykey *rkey;
    pykey *routes[SAGEPY_MAX_ROUTES]; /* the key functions and partitioners its output is routed by */
    int nroutes;
    char name[128];
} pyop;

/* A registered service (udata of sage_env_register_service). */
typedef struct pysvc {
    engine *eng;
    PyObject *host; /* a sage.kernel.api.service._ServiceHost: _start(), _dispatch(bytes), _stop() */
    char name[128];
} pysvc;

struct engine {
    PyObject_HEAD sage_env *env;
    int remote;    /* records are encoded bytes, not handles */
    int submitted; /* submit was called (successfully or not) */
    int ended;     /* wait returned the job's result */
    int rc;        /* that result */
    size_t nstreams, capstreams;
    sage_stream **streams;
    pyop **producer; /* per stream: the operator whose output it is (NULL: a connected stream) */
    pykey **route;   /* per stream: the key function or partitioner of a routed view, else NULL */
    size_t nowned, capowned;
    void **owned;         /* pyop / pykey / pysvc, freed with the engine */
    PyObject *keep;       /* list: Python objects the engine's udata point to */
    PyObject *failures;   /* dict "op\0instance" -> the exception a user function raised */
    PyObject *svc_errors; /* list of exceptions raised by service start hooks */
};

/* The per-instance context (base type of sage.kernel.api.runtime.RuntimeContext). */
typedef struct ctxobj {
    PyObject_HEAD pyop *op;
    sage_ctx *c;   /* valid from open to close, on `thread` */
    sage_out *out; /* during a call that may emit */
    pthread_t thread;
    PyObject *fn;   /* the user's function object */
    PyObject *call; /* its bound execute (or the iterator of an iter source) */
    PyObject *calls[SAGEPY_MAX_INPUTS];
    PyObject *close_cb; /* its bound close, or NULL */
    PyObject *name;     /* attributes */
    PyObject *env_name;
    PyObject *dict; /* __dict__ for the Python subclass */
    int parallel_index, parallelism;
    int idle;              /* stream sources: consecutive calls that had nothing */
    int emit_rc;           /* the code a failed emit returned inside collect() */
    const char *fail_what; /* what failed inside collect() (a key function, encoding), for the message */
    unsigned char *buf;    /* remote mode: encoding scratch */
    size_t bufcap;
} ctxobj;

/* module.c */
extern PyObject *sagepy_SageError, *sagepy_ConfigError, *sagepy_ResourceError, *sagepy_InfeasibleError,
    *sagepy_PlanError, *sagepy_JobFailedError, *sagepy_EmitAborted;
extern PyObject *sagepy_StopSignal;     /* sage.common.core.signals.StopSignal */
extern PyObject *sagepy_ContextClass;   /* the Python subclass of _sage.Context to instantiate */
extern PyObject *sagepy_format_failure; /* callable(exc) -> str, the traceback as the job's message */
extern PyObject *sagepy_pickle_dumps, *sagepy_pickle_loads;
extern PyTypeObject sagepy_ContextType, sagepy_EngineType;
/* Raise the exception class for an engine code with msg. Returns NULL. */
PyObject *sagepy_raise(int code, const char *msg);
/* The exception class for a code. */
PyObject *sagepy_exc_for(int code);

/* gil.c: the binding's enter/leave. */
void sagepy_enter(void *udata);
void sagepy_leave(void *udata);
void sagepy_copy(const void *rec, size_t len, void *udata);
void sagepy_drop(const void *rec, size_t len, void *udata);
int sagepy_gil_init(void);
/* 1 on a thread the engine started (a task or service thread): it must not destroy its own env. */
int sagepy_on_engine_thread(void);

/* codec.c: records of remote environments, and the canonical bytes of keys. */
/* Decode a record into a new reference (local mode: the handle, increfed). */
PyObject *sagepy_rec_get(const engine *eng, const void *rec, size_t len);
/* The encoding itself: data and len in cx's scratch buffer or in *hold (release it). 0, or -1 with an exception. */
int sagepy_encode(ctxobj *cx, PyObject *obj, const void **data, size_t *len, PyObject **hold);
/* Canonical key bytes of obj into buf (SAGE_KEY_MAX): length, or -1 with a
 * Python exception set. */
int sagepy_key_encode(PyObject *obj, unsigned char *buf);
PyObject *sagepy_key_decode(const void *key, size_t len);

/* context.c */
ctxobj *sagepy_ctx_new(pyop *op, sage_ctx *c);

/* route.c: emitting, with the keys and partitions of the operator's routed consumers computed first. */
/* Emit obj from cx's operator (encoded in remote mode). Returns sage_emit's code, or -1 with a Python exception
 * set and cx->fail_what naming what failed (encoding it, a key function, a partitioner). */
int sagepy_emit(ctxobj *cx, sage_out *out, PyObject *obj);
/* The engine's key functions and partitioner (udata: the pykey; join: the pyop). */
int sagepy_key_fn(const void *rec, size_t len, void *keybuf, void *udata);
int sagepy_join_lkey(const void *rec, size_t len, void *keybuf, void *udata);
int sagepy_join_rkey(const void *rec, size_t len, void *keybuf, void *udata);
int sagepy_partition_fn(const void *rec, size_t len, int nparts, void *udata);

/* operators.c: the engine's callbacks for every operator kind and for services (udata: the pyop / pysvc) */
int sagepy_op_open(sage_ctx *c, void *udata);
int sagepy_op_close(sage_ctx *c, sage_out *out, void *udata);
int sagepy_op_map(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *udata);
int sagepy_op_flatmap(sage_ctx *c, const void *rec, size_t len, sage_out *out, void *udata);
int sagepy_op_filter(sage_ctx *c, const void *rec, size_t len, void *udata);
int sagepy_op_sink(sage_ctx *c, const void *rec, size_t len, void *udata);
int sagepy_op_join(sage_ctx *c, int side, const void *rec, size_t len, sage_out *out, void *udata);
int sagepy_op_source(sage_ctx *c, sage_out *out, void *udata);
extern const sage_map_fn sagepy_comap_fns[SAGEPY_MAX_INPUTS];
int sagepy_svc_fn(const void *req, size_t len, sage_reply *reply, void *udata);
int sagepy_svc_start(void *udata);
void sagepy_svc_stop(void *udata);
/* Record the current Python exception as this instance's failure (traceback
 * in the job's message) and return the code to return from the callback. */
int sagepy_fail(ctxobj *cx, sage_ctx *c, const char *what);
/* The traceback message of the current exception (which stays set), trimmed to cap. */
void sagepy_format_exc(char *out, size_t cap);

#endif
