/* runtime/svcnet.h - a job's service across processes: the calling side (sage__svc_remote) and the serving side (sage__svc_server).
 *
 * Under a JobManager each registered service runs once per job, in its own
 * worker process; every other worker holds one connection to it per
 * service. The first frame on a connection is HELLO (token, role "peer",
 * job_id, from_task), as on the data plane. Then the caller sends CALL
 * frames (u64 call id, the request) and the service answers each with an
 * ANSWER frame (u64 call id, i32 result code, the response), in any order.
 * Both ends are bounded: a caller has at most the service's queue_capacity
 * calls outstanding per connection (more wait, within their timeout), the
 * server reads a connection's next call only once the service's queue took
 * the last one, and frames are at most SAGE__DATA_FRAME_MAX.
 */
#ifndef SAGE_RUNTIME_SVCNET_H
#define SAGE_RUNTIME_SVCNET_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/runtime.h"

#define SAGE__SVC_REQ_MAX ((size_t)64 << 20) /* request bytes in one call to another process */
#define SAGE__SVC_CONNS_MAX 4096             /* connections one service's process accepts */

/* ---- the calling side (any thread; one per worker and service) ---- */

/* Connect to a service's process (a Unix socket path, or tcp "HOST:PORT" when tcp is set), introduce
 * ourselves and start the thread that reads answers. capacity: calls outstanding at once (1..2^20).
 * `name` (the service's) appears in errors. 0, or an error with the reason in err. */
int sage__svc_remote_connect(const char *where, int tcp, const char *name, const char *token, int64_t job_id,
                             int from_task, size_t capacity, sage__svc_remote **out, char *err, size_t err_len);
/* Send future f (its request; refs: the caller's and one this connection drops once f is answered). Waits
 * up to timeout_ms (< 0: no limit) for room among the outstanding calls. 0 (the answer comes through f,
 * SAGE_EIO with sage__svc_remote_why if the connection breaks first), or SAGE_ETIMEDOUT, SAGE_ETOOBIG,
 * SAGE_ECANCELED, SAGE_EIO with the reason in why; f is then not sent and keeps both references. */
int sage__svc_remote_send(sage__svc_remote *r, sage_future *f, int timeout_ms, char *why, size_t why_len);
/* Why the connection broke ("" while it works); stable once set. */
const char *sage__svc_remote_why(sage__svc_remote *r);
/* Every outstanding call is answered SAGE_ECANCELED now, later ones too; the connection closes. */
void sage__svc_remote_cancel(sage__svc_remote *r);
/* Cancel, wait for the reading thread, free. NULL is fine. */
void sage__svc_remote_close(sage__svc_remote *r);

/* ---- the serving side (a service's own process) ---- */

typedef struct sage__svc_server sage__svc_server;
/* Accept connections on listen_fd (taken over) for service `svc` of job (started with sage__services_start,
 * job->svc_place->host == svc); each authenticated connection's calls go to the service's queue and their
 * answers back. 0, or an error. */
int sage__svc_serve(int listen_fd, const char *token, int64_t job_id, sage__job *job, size_t svc,
                    sage__svc_server **out);
/* Close the listener and every connection, join their threads, free. Call after sage__services_stop(job):
 * no answer is sent after it. NULL is fine. */
void sage__svc_serve_stop(sage__svc_server *s);

/* ---- frames (exposed for tests and the fuzz target) ---- */

/* Parse a CALL (no rc) or ANSWER payload p[0..len): the call id, the result code (ANSWER: a SAGE_ code,
 * 0 or negative) and where the body starts. 0, or SAGE_EPROTO with why naming what is wrong. */
int sage__svc_parse(int type, const unsigned char *p, size_t len, uint64_t *id, int *rc, size_t *body_off, char *why,
                    size_t why_len);

#endif
