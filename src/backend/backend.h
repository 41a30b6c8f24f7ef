/* backend/backend.h - one interface to run a compiled plan: embedded threads, a JobManager client, a worker process.
 *
 * A backend receives the env's graph, configuration and plan, runs the job
 * somewhere and reports its end. The api layer picks one when the env is
 * created (backend_new below) and from then on only calls through ops, so
 * a new way of running pipelines is a new file here. Every call is made on
 * the env's own thread except stop and cancel, which may come from any
 * thread while the job runs. Errors go to the env's slot (b->err), which
 * only the env's thread writes.
 */
#ifndef SAGE_BACKEND_BACKEND_H
#define SAGE_BACKEND_BACKEND_H

#include <jansson.h>

#include "plan/plan.h"
#include "runtime/runtime.h"
#include "sage/env.h"

typedef struct sage__backend sage__backend;

typedef struct sage__backend_ops {
    const char *name;
    int places;       /* 1: the plan is placed in this process at compile time (embedded); 0: placed elsewhere */
    int owns_process; /* 1: submit takes the process over (a worker): it runs even after a declaration error, to
                         report it where the job is watched */
    /* Start the job: check the env's sticky error, compile (or use the plan
     * explain compiled), run. Returns 0 once it runs, or an error in b->err.
     * A worker backend never returns. */
    int (*submit)(sage__backend *b);
    /* Wait up to timeout_ms (< 0: no limit) for the end: SAGE_ETIMEDOUT, or
     * the job's result (its error in b->err). */
    int (*wait)(sage__backend *b, int timeout_ms);
    int (*stop)(sage__backend *b);   /* graceful: sources stop, records drain */
    int (*cancel)(sage__backend *b); /* now: in-flight records are discarded */
    sage_job_state (*state)(const sage__backend *b);
    /* A metric of the job (sage_env_metric), read under whatever lock the
     * backend's job needs (NULL: read b->job directly). */
    int (*metric)(sage__backend *b, const sage__op *op, int instance, const char *name, sage_metric *out);
    /* Stop with a savepoint into dir (NULL: not built for this backend). */
    int (*savepoint)(sage__backend *b, const char *dir, int timeout_ms);
    /* Checkpoint statistics, from any thread (NULL: none, all zero). */
    void (*ckpt_stats)(sage__backend *b, sage_checkpoint_stats *out);
    /* Free everything (a running embedded job is canceled and joined; a
     * remote job goes on: it is the JobManager's). */
    void (*destroy)(sage__backend *b);
} sage__backend_ops;

/* Every backend embeds this as its first member. */
struct sage__backend {
    const sage__backend_ops *ops;
    const sage__graph *g;
    const sage__config *cfg;
    sage__plan *plan; /* owned; compiled by sage__backend_compile (explain, or submit) */
    sage__err *err;   /* the env's sticky error */
    sage__job *job;   /* after submit: the tasks and their metrics (a thread-less copy for remote jobs) */
    int64_t job_id;   /* the JobManager's id of the job (0: none) */
};

/* The backend for an env: a worker process (SAGE_WORKER_JOB set and a
 * JobManager configured), a JobManager client (cfg->has_jobmanager), or
 * embedded threads. NULL only when out of memory. */
sage__backend *sage__backend_new(const sage__graph *g, const sage__config *cfg, sage__err *err);

/* Compile the plan if not yet (placed when ops->places). Errors to b->err. */
int sage__backend_compile(sage__backend *b);
/* ops->destroy, then the plan. NULL is fine. */
void sage__backend_destroy(sage__backend *b);

sage__backend *sage__backend_embedded(void);
sage__backend *sage__backend_client(void);
sage__backend *sage__backend_worker(void);

/* worker_link.c: a worker process's identity (its environment, set by the JobManager's launcher), its job's
 * spec, its collected records back (see the file's note). */
typedef struct sage__worker_ident {
    char host[256];
    int port;
    int64_t job_id;
    int task;
    char secret[65]; /* SAGE__TOKEN_HEX + 1 */
} sage__worker_ident;
int sage__worker_identify(sage__worker_ident *id, char *err, size_t err_len);
/* Say HELLO to the JobManager as role ("worker" or "spec", with the secret; extra's members added) on *fd,
 * connected first when it is -1: 0 (and *reply, when not NULL, the OK's JSON), or a code with err (the
 * JobManager's refusal, or why it was not reached; *fd then closed and -1). */
int sage__worker_hello(const sage__worker_ident *id, const char *role, json_t *extra, int *fd, char *err,
                       size_t err_len, json_t **reply);
/* The job's spec (fetched once per process, then kept; borrowed), or NULL with err. */
json_t *sage__worker_spec(char *err, size_t err_len);
/* A hash of the program file at path (hex, 16 digits) that a worker compares with what the submitter ran. */
int sage__program_hash(const char *path, char *hex, size_t hex_len, char *err, size_t err_len);
/* Send the records of f (a collect sink's [u32 len][bytes] file) to the JobManager on fd, under mu: a "results"
 * event naming op, then DATA frames. 0, or a code with err. */
int sage__worker_send_results(int fd, pthread_mutex_t *mu, const char *op, FILE *f, char *err, size_t err_len);

/* metrics_json.c: a task's metrics as JSON (worker reports) and back (client).
 * snapshot: built on the task's own thread (user metrics, processing time);
 * metrics_json: the report, from atomics plus the latest snapshot. */
json_t *sage__metrics_snapshot(sage__task *t);
json_t *sage__metrics_json(sage__task *t, json_t *snap, double interval_s, uint64_t *last_count);
void sage__metrics_import(sage__task *t, json_t *m);
/* A histogram as a worker reports it ({"count", "sum", "min", "max", "buckets"}) back into h (initialized
 * here; sage__hist_free it). */
void sage__hist_from_json(sage__hist *h, json_t *j);

#endif
