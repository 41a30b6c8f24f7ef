/* runtime/future.h - a service request and its answer, shared by the caller and whoever serves it (service.c, svcnet.c).
 *
 * A future holds the request bytes, and later the answer, under a
 * reference count: the caller holds one, and so does whoever serves it (the
 * service's ring, or the table of calls sent to a remote service). The last
 * one to let go frees it. done/rc/resp are set once, under mu; a future
 * answered SAGE_ECANCELED keeps that answer and drops a late reply.
 */
#ifndef SAGE_RUNTIME_FUTURE_H
#define SAGE_RUNTIME_FUTURE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/sage.h"

struct sage_future {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int done;
    int rc;
    void *req;
    size_t req_len;
    void *resp;
    size_t resp_len;
    /* served for a remote caller (svcnet.c): called once the answer is set, on the serving thread, before
     * the server's reference goes; wire_id names the call on its connection */
    void (*on_done)(struct sage_future *f, void *arg);
    void *done_arg;
    uint64_t wire_id;
};

/* A future for a copy of req[0..len), with refs references. NULL when out of memory. */
sage_future *sage__future_new(const void *req, size_t len, int refs);
/* Take ownership of a malloc'd request instead of copying it (NULL when out of memory; req is then freed). */
sage_future *sage__future_adopt(void *req, size_t len, int refs);
void sage__future_unref(sage_future *f);
/* Answer f with rc (a future already answered keeps its answer), run on_done, drop one reference. */
void sage__future_complete(sage_future *f, int rc);
/* Answer f with SAGE_ECANCELED now; the server's reference stays. */
void sage__future_cancel(sage_future *f);
/* Set the answer's bytes (taken over: freed with the future) unless f is already answered (then freed now). */
void sage__future_set_resp(sage_future *f, void *resp, size_t len);

#endif
