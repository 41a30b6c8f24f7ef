/* sage/jobmanager.h - talking to a JobManager: remote environments, worker processes, the client connection. */
#ifndef SAGE_JOBMANAGER_H
#define SAGE_JOBMANAGER_H

#include <stddef.h>
#include <stdint.h>

#include "sage/env.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SAGE_JOBMANAGER_PORT 19001

/* ---------------------------------------------------------------------------
 * Remote environment: the same pipeline code, run by a JobManager in worker
 * processes (one per operator instance, or per chain of fused instances).
 *
 * The program is launched again by the JobManager for every worker, with
 * SAGE_WORKER_JOB set in its environment: in such a process the same
 * declarations rebuild the same graph (keep graph building deterministic: no
 * random names, no parallelism read from a clock), sage_env_execute() or
 * sage_env_submit() runs only the instance assigned to that worker and then
 * ends the process; it never returns there. A worker whose graph differs
 * from the submitted one (a different plan hash) is refused with a clear
 * error and fails the job.
 *
 * host NULL means 127.0.0.1, port 0 means 19001. The token is read from
 * config key "token_file", else $SAGE_TOKEN_FILE, else $SAGE_HOME/token
 * (default ~/.sage/token). The env behaves as in embedded mode: execute
 * submits and waits for the end (autostop); submit returns once the
 * JobManager accepted the job (sage_env_job_id gives its id); wait, stop and
 * cancel act on the remote job; metrics and collectors are filled from the
 * workers' reports when the job ended.
 * ------------------------------------------------------------------------- */
SAGE_API sage_env *sage_env_create_remote(const char *name, const char *host, int port, const char *config);
/* The JobManager's id for the submitted job, or 0 (embedded, not submitted). */
SAGE_API int64_t sage_env_job_id(const sage_env *env);
/* 1 in a worker process launched by a JobManager. */
SAGE_API int sage_is_worker(void);

/* ---------------------------------------------------------------------------
 * State directory (the JobManager's, and where clients find its token).
 * ------------------------------------------------------------------------- */
/* The state directory in use: home, else $SAGE_HOME, else $HOME/.sage
 * (with HOME unset: the user's home directory from the password database).
 * Returns 0, SAGE_ENOTFOUND when there is no home directory at all (set
 * SAGE_HOME), or SAGE_ETOOBIG when the path does not fit out_len. */
SAGE_API int sage_home_dir(const char *home, char *out, size_t out_len);

/* ---------------------------------------------------------------------------
 * Client: one authenticated connection to a JobManager. Requests and replies
 * are JSON objects (see docs/cli.md for each "op"); a reply with "error"
 * makes the call return its code and copy the message into err. Not
 * thread-safe: one connection per thread.
 * ------------------------------------------------------------------------- */
typedef struct sage_client sage_client;
SAGE_API int sage_client_connect(const char *host, int port, const char *token_file, sage_client **out, char *err,
                                 size_t err_len);
SAGE_API void sage_client_close(sage_client *c); /* NULL is fine */
/* Send request (JSON text), wait without limit for the reply; *reply is
 * malloc'd JSON the caller frees. Requests answered with raw DATA frames
 * ("results", which remote environments use) are refused here with
 * SAGE_EPROTO ("unexpected data frame"). */
SAGE_API int sage_client_request(sage_client *c, const char *request, char **reply, char *err, size_t err_len);
/* Next event pushed by the JobManager on this connection (after a "follow"
 * or "wait" request), waiting up to timeout_ms (< 0: no limit). */
SAGE_API int sage_client_event(sage_client *c, int timeout_ms, char **event, char *err, size_t err_len);

/* Call service `service` of running job `job_id` from outside the job, as
 * its operators do (sage_call): the JobManager says where the service's
 * process listens, and the call goes there directly, authenticated with
 * this connection's token. Waits at most timeout_ms (< 0: no limit) for the
 * answer. On success *resp is the malloc'd answer (the caller frees it; a
 * NUL follows its *resp_len bytes). Errors, with err saying why:
 * SAGE_ENOTFOUND (no such running job), SAGE_ENOSERVICE (the job has no
 * such service: err lists its services), SAGE_ESTATE (the job or service is
 * not running: pending, starting, ending), SAGE_ETIMEDOUT, SAGE_ETOOBIG (a
 * request over 64 MiB), SAGE_EIO (the service's process went away), or the
 * service function's own negative code. On the "unix" data plane the
 * caller must be on the JobManager's host. Not thread-safe per client. */
SAGE_API int sage_client_call(sage_client *c, long long job_id, const char *service, const void *req, size_t req_len,
                              int timeout_ms, void **resp, size_t *resp_len, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
