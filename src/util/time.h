/* util/time.h - clocks: monotonic time for deadlines and waits, wall time only for what people read. */
#ifndef SAGE_UTIL_TIME_H
#define SAGE_UTIL_TIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds and milliseconds (never jump with the wall clock). */
uint64_t sage__mono_ns(void);
int64_t sage__mono_ms(void);
/* Unix time in milliseconds, for timestamps shown to people and stored. */
int64_t sage__wall_ms(void);

/* A condition variable whose timed waits use the monotonic clock, and the
 * absolute deadline timeout_ms from now on that clock (for
 * pthread_cond_timedwait on such a condition variable only). */
int sage__cond_init_mono(pthread_cond_t *cv);
void sage__deadline(struct timespec *dl, int timeout_ms);

#endif
