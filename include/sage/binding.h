/* sage/binding.h - what a language binding (Python) needs from the engine: its lock, and records that are handles. */
#ifndef SAGE_BINDING_H
#define SAGE_BINDING_H

#include <stddef.h>

#include "sage/env.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A binding runs user code of another language inside the engine's
 * threads, and may pass records that are handles (a pointer to one of its
 * objects, as the record's bytes) instead of serialised bytes.
 *
 * enter / leave: the engine calls enter on a task thread before it runs any
 * user function or touches a record, and leave before that thread waits
 * (for input, for room downstream, while paused) or ends; it calls enter
 * again when the wait is over. Around a service's function the service
 * thread does the same. A binding takes and gives back its interpreter
 * lock here (Python: the GIL). A thread that entered may call back into the
 * binding freely; a binding that itself blocks inside user code (sage_call,
 * sage_future_wait) must leave first and enter again after.
 *
 * copy / drop (optional; both or neither): records whose bytes are handles.
 * Records a function emits are borrowed: valid while sage_emit runs. When
 * the engine keeps a record beyond that (it copies its bytes into a batch
 * for another thread: once per consumer instance it goes to), it calls
 * copy; when it lets go of a kept record (after the consuming function
 * returned, or when the record is discarded by a failure or a cancel), it
 * calls drop. Every copy is matched by exactly one drop, on some thread
 * that entered. Records that are handles cannot leave the process: a
 * remote environment refuses copy/drop at submit (SAGE_EUNSUPPORTED).
 *
 * Set before submit; the struct is copied. NULL clears it. Returns 0,
 * SAGE_EINVAL (enter without leave or the reverse, copy without drop),
 * SAGE_ESTATE (after submit). */
typedef struct sage_binding_hooks {
    void (*enter)(void *udata);
    void (*leave)(void *udata);
    void (*copy)(const void *rec, size_t len, void *udata);
    void (*drop)(const void *rec, size_t len, void *udata);
    void *udata;
} sage_binding_hooks;
SAGE_API int sage_env_set_binding(sage_env *env, const sage_binding_hooks *hooks);

#ifdef __cplusplus
}
#endif
#endif
