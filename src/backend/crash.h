/* backend/crash.h - a worker whose task crashes names the operator whose code it was in. */
#ifndef SAGE_BACKEND_CRASH_H
#define SAGE_BACKEND_CRASH_H

#include <pthread.h>

#include "runtime/runtime.h"

/* Arm the crash handler of a worker process for task t (a chain of operators): on SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL or SIGABRT it walks the crashing thread's stack, finds the innermost frame inside one of the
 * chain's user functions or hooks, tells the JobManager on ctl_fd (an EVENT {"event": "crash",
 * "operator": NAME}, unless send_mu is held by another thread mid-frame) and stderr, then dies of the same
 * signal. Nothing is done per record: the cost is at arm time and at the crash. Call once, from the task's
 * thread, after the task is set up. */
void sage__crash_arm(const sage__task *t, int ctl_fd, pthread_mutex_t *send_mu);

#endif
