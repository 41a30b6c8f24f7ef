/* python/src/gil.c - the binding's hooks: enter/leave take and give back the GIL, copy/drop count references.
 *
 * enter and leave alternate on every thread the engine runs user code on
 * (sage/binding.h). A thread Python has never seen (an engine task or
 * service thread) gets a thread state at its first enter, kept until the
 * thread ends (a pthread key's destructor deletes it): creating one per
 * wait would cost a thread state per batch and lose threading.local data.
 * Threads Python already knows (the caller's, blocked in submit or wait
 * with the GIL released) go through PyGILState_Ensure/Release, which are
 * reentrant. */
#include "sagepy.h"

static pthread_key_t tstate_key;    /* value: the thread state we created for an engine thread */
static _Thread_local int tl_pinned; /* this thread's state is ours, kept until it ends */
static _Thread_local int tl_first;  /* the current enter created it (leave saves, not releases) */
static _Thread_local PyGILState_STATE tl_state;

static void thread_end(void *value)
{
    PyThreadState *ts = value;
    /* After finalization began Python must not be touched: the state is left behind. */
    if (!ts || !Py_IsInitialized() || SAGEPY_FINALIZING())
        return;
    /* Python's own thread-specific slot may already be cleared here (glibc clears every key's value at thread
     * exit, in key order), so PyGILState_Release cannot find the state: delete it directly. */
    PyEval_RestoreThread(ts);
    PyThreadState_Clear(ts);
    PyThreadState_DeleteCurrent(); /* and gives back the GIL */
}

int sagepy_on_engine_thread(void) { return tl_pinned; }

int sagepy_gil_init(void) { return pthread_key_create(&tstate_key, thread_end) == 0 ? 0 : -1; }

void sagepy_enter(void *udata)
{
    (void)udata;
    if (!tl_pinned && PyGILState_GetThisThreadState() == NULL) {
        (void)PyGILState_Ensure(); /* creates the state, takes the GIL; released by thread_end */
        tl_pinned = 1;
        tl_first = 1;
        pthread_setspecific(tstate_key, PyGILState_GetThisThreadState());
        return;
    }
    tl_state = PyGILState_Ensure();
}

void sagepy_leave(void *udata)
{
    (void)udata;
    if (tl_first) {
        tl_first = 0;
        (void)PyEval_SaveThread();
        return;
    }
    PyGILState_Release(tl_state);
}

/* Records as handles: the 8 bytes are a PyObject pointer; the engine holds the GIL (entered) here. */
void sagepy_copy(const void *rec, size_t len, void *udata)
{
    (void)udata;
    PyObject *o;
    if (len != sizeof o)
        return;
    memcpy(&o, rec, sizeof o);
    Py_INCREF(o);
}

void sagepy_drop(const void *rec, size_t len, void *udata)
{
    (void)udata;
    PyObject *o;
    if (len != sizeof o)
        return;
    memcpy(&o, rec, sizeof o);
    Py_DECREF(o);
}
