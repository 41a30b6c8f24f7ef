/* sage/env.h - the environment: one pipeline, its configuration, its run and what the run measured. */
#ifndef SAGE_ENV_H
#define SAGE_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "sage/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Lifecycle
 *
 * An env holds one pipeline and runs it once. It is embedded (in-process,
 * one thread per task) unless configured otherwise. Envs share nothing:
 * several may live and run in one process at the same time.
 *
 * Thread-safety: declaration and execute/submit/wait/destroy belong to the
 * thread that created the env. sage_env_stop, sage_env_cancel and
 * sage_env_state may be called from any thread (and stop/cancel from a
 * signal-driven thread of yours) while the job runs.
 * ------------------------------------------------------------------------- */

/* name: the job's name, 1..127 bytes of UTF-8 without control characters.
 * config: NULL, JSON text (starting with '{' after blanks), or the path of a
 * JSON file. Keys (all optional; any other key is refused, naming it):
 *   "max_parallelism"    int, 1..1024 (default 1024)
 *   "batch_bytes"        bytes per channel batch, 256 B..16 MiB (default 16 KiB)
 *   "channel_bytes"      bytes a channel may hold before the sender waits,
 *                        256 B..4 GiB (default 256 KiB; raised to batch_bytes)
 *   "max_record_bytes"   largest record, 1 B..2 GiB (default 64 MiB)
 *   "flush_linger_us"    how long a partial batch waits for more records
 *                        when its consumer is idle, 0..1000000 (default 200);
 *                        times the consumer instances per core on a route
 *                        to more instances than cores
 *   "idle_spin_us"       how long a task with nothing queued polls for input
 *                        before it sleeps, 0..10000 (default 0: it sleeps at
 *                        once). Latency mode, for a job with no more busy
 *                        threads than cores: {"flush_linger_us": 0,
 *                        "idle_spin_us": 200} (docs/api.md)
 *   "chain_threads"      at most this many threads run the instances of one
 *                        chain, 0..1024 (default 0: a thread per instance),
 *                        or "cpus": the CPUs this process may run on.
 *                        (sage_op_opts.threads sets it per operator.)
 *                        A chain with more instances than this shares them
 *                        out: thread k serves instances k, k + n, k + 2n, ...
 *                        one batch each in turn. For CPU-bound chains with
 *                        many more instances than cores (n = the cores); a
 *                        function that blocks (I/O, sleep) holds up the other
 *                        instances on its thread. Sources, feedback loops,
 *                        instances that requested CPUs, Python operators and
 *                        instances in worker processes (a JobManager or Slurm
 *                        job: a process each) keep a thread each
 *   "loop_buffer_bytes"  bytes of records a feedback loop may hold back at
 *                        its future while the loop's first operators are
 *                        busy, 64 KiB..1 TiB (default 256 MiB); a loop that
 *                        outgrows it fails the job with SAGE_ETOOBIG naming
 *                        the future (sage_from_future, sage/stream.h)
 *   "node"               simulated or declared node capacity, see docs/resources.md:
 *                        {"cpus": 20, "gpus": 2, "memory": "64GB", "resources": {"ssd": 2}}
 *   "jobmanager"         "HOST:PORT" of a JobManager: the env becomes remote
 *                        (as sage_env_create_remote, sage/jobmanager.h)
 *   "token_file"         the token a remote env authenticates with (default:
 *                        $SAGE_TOKEN_FILE, else the state directory's token)
 *   "fault_tolerance"    what a failed task does to the job (default: fail fast).
 *                        {"strategy": "restart", "restart_strategy": "fixed",
 *                         "max_attempts": 3, "delay": 5}: the job runs again from
 *                        its beginning after delay seconds, at most max_attempts
 *                        times; "exponential" (initial_delay 1, multiplier 2,
 *                        max_delay 60, max_attempts 5) and "failure_rate"
 *                        (max_failures_per_interval 5 in interval_seconds 60,
 *                        delay 5) as in SAGE Kernel, "fixed_delay" and
 *                        "exponential_backoff" accepted. Embedded jobs restart
 *                        in this process; a remote job is restarted by its
 *                        JobManager (local launcher; the Slurm launcher refuses
 *                        it at submit, SAGE_EUNSUPPORTED). The collector starts
 *                        over with the job; user sinks see records again
 *                        (at-least-once), and so does a remote job's file sink.
 *                        {"strategy": "checkpoint", "checkpoint_interval": 60,
 *                         "max_recovery_attempts": 3}: every checkpoint_interval
 *                        seconds a barrier flows from the sources through the
 *                        pipeline and every task saves its state (per-key state,
 *                        counters, built-in source positions, snapshot hooks of
 *                        sage_op_opts) into "checkpoint_dir" (default:
 *                        <state directory>/checkpoints; each run has its own
 *                        directory below it, removed when the job finished);
 *                        a failed job recovers from the last committed
 *                        checkpoint, at most max_recovery_attempts times.
 *                        Per-key state is then exactly-once, and so are the
 *                        collector and the file sink (cut back to what the
 *                        checkpoint committed); user sinks are at-least-once.
 *                        "checkpoints_retained" (2) keeps the last N,
 *                        "checkpoint_timeout" (600 s) abandons a checkpoint
 *                        that takes longer (the job goes on). Embedded, and
 *                        through a JobManager, local or on Slurm (its workers
 *                        take the checkpoints; on Slurm "checkpoint_dir" must
 *                        be shared by every node at the same path, else the
 *                        job fails with SAGE_ECONFIG when its workers start,
 *                        not retried). docs/fault-tolerance.md.
 *   "restore_from"       the directory of a checkpoint or savepoint (or a run's
 *                        checkpoint directory: its last committed checkpoint) to
 *                        start from instead of the beginning; refused at submit
 *                        when it was taken by a different pipeline (plan hash),
 *                        or is corrupt. Through a JobManager: a checkpoint or
 *                        savepoint directory (not a run's).
 * Byte sizes are numbers or strings with a unit ("64KiB", see
 * sage_parse_bytes). Every key, "node" included, is checked here.
 * Returns NULL only when out of memory. A bad name or config is recorded as
 * the env's sticky error (sage_env_errmsg) and fails execute. */
SAGE_API sage_env *sage_env_create(const char *name, const char *config);
/* Cancels a running job, waits for its threads, frees everything the env
 * owns (streams, plan, metrics). NULL is fine. */
SAGE_API void sage_env_destroy(sage_env *env);

/* The first error recorded for this env (declaration, compile, or run), or
 * "" when there is none. Owned by the env; valid until the next call on it. */
SAGE_API const char *sage_env_errmsg(const sage_env *env);
SAGE_API int sage_env_errcode(const sage_env *env);

/* Compile, place, run, and wait until every sink instance has seen
 * end-of-stream from every upstream instance (or the job failed or was
 * canceled). Returns 0 or the job's error code. */
SAGE_API int sage_env_execute(sage_env *env);

/* Non-blocking form: start the job and return at once. An error before the
 * job runs (compile, placement, opening a file sink, a service's start hook,
 * the JobManager refusing it) is returned here and stays the env's error:
 * sage_env_wait then returns the same code. */
SAGE_API int sage_env_submit(sage_env *env);
/* Wait for the job submitted with sage_env_submit: timeout_ms < 0 waits for
 * ever; on timeout returns SAGE_ETIMEDOUT and the job goes on. Returns the
 * job's result once it ended. */
SAGE_API int sage_env_wait(sage_env *env, int timeout_ms);
/* Graceful stop: sources stop producing, records in flight drain through the
 * pipeline, close hooks run, the job ends as stopped (result 0). */
SAGE_API int sage_env_stop(sage_env *env);
/* Cancel now: every task stops at its next record or wait; in-flight records
 * are discarded; the job ends with SAGE_ECANCELED. */
SAGE_API int sage_env_cancel(sage_env *env);

/* Stop with a savepoint (fault_tolerance strategy "checkpoint"): take one
 * more checkpoint into dir (created; it must not exist or be empty), then
 * stop at that very barrier: sources produce nothing after it, the records
 * before it drain, close hooks run, the job ends as stopped. A new env of
 * the same pipeline with config {"restore_from": dir} goes on from there:
 * per-key state, source positions and snapshot hooks' state as saved, the
 * file sink cut back to the savepoint's length (a collector of the new env
 * holds only what came after). Waits up to timeout_ms (< 0: no limit) for
 * the savepoint to be durable. Returns 0; SAGE_ESTATE without the checkpoint
 * strategy or when the job is not running; SAGE_EINVAL when dir is not
 * empty; SAGE_EIO when it cannot be written; SAGE_ETIMEDOUT (the job goes on,
 * nothing is stopped). A remote env asks its JobManager (the same as `sage
 * job stop N --savepoint DIR`); dir must then be an absolute path or one
 * relative to this process's directory, on a file system the JobManager's
 * workers write. Call it from the env's thread (as sage_env_wait). */
SAGE_API int sage_env_stop_with_savepoint(sage_env *env, const char *dir, int timeout_ms);

/* Checkpoints of this env's job so far (any thread, while it runs and after). */
typedef struct sage_checkpoint_stats {
    uint64_t completed;   /* checkpoints committed (savepoints included) */
    uint64_t abandoned;   /* given up: timed out, or a write failed (the job went on) */
    uint64_t last_id;     /* the last committed one (0: none) */
    uint64_t last_bytes;  /* its size on disk */
    double last_pause_ms; /* how long its barrier held the sources */
    double last_total_ms; /* from its barrier to its commit (the write included) */
    int recoveries;       /* times the job was restored from a checkpoint */
    char last_path[1024]; /* its directory ("" none) */
} sage_checkpoint_stats;
/* Zeros before submit and without the checkpoint strategy; SAGE_EINVAL for NULL. */
SAGE_API int sage_env_checkpoint_stats(const sage_env *env, sage_checkpoint_stats *out);

typedef enum sage_job_state {
    SAGE_JOB_CREATED = 0,
    SAGE_JOB_RUNNING,
    SAGE_JOB_FINISHED, /* every source ended and everything drained */
    SAGE_JOB_STOPPED,  /* ended by sage_env_stop, drained */
    SAGE_JOB_FAILED,
    SAGE_JOB_CANCELED,
} sage_job_state;
SAGE_API sage_job_state sage_env_state(const sage_env *env);
SAGE_API const char *sage_job_state_name(sage_job_state s);

/* ---------------------------------------------------------------------------
 * Plan. Compiles the pipeline (if not yet) and describes it: operators,
 * parallelism, chains, partitioning, resources requested and assigned.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL on
 * error (see sage_env_errmsg).
 * ------------------------------------------------------------------------- */
SAGE_API char *sage_env_explain(sage_env *env);
SAGE_API char *sage_env_explain_json(sage_env *env);

/* ---------------------------------------------------------------------------
 * Metrics. instance < 0 aggregates all instances of the operator. The
 * built-ins "records_in" and "records_out" may be read while the job runs
 * (from any thread); user counters and histograms only once the job ended
 * (sage_env_wait or sage_env_execute returned): the task threads write them
 * without locks. Everything stays readable until sage_env_destroy. Returns
 * SAGE_ENOTFOUND (no such operator or metric), SAGE_EINVAL (instance out of
 * range), SAGE_ESTATE (nothing was submitted).
 * ------------------------------------------------------------------------- */
typedef struct sage_metric {
    int is_histogram;
    int64_t value;  /* counters: the sum */
    uint64_t count; /* histograms: observations */
    double sum, min, max;
    double p50, p90, p99, p999;
} sage_metric;
SAGE_API int sage_env_metric(const sage_env *env, const char *op, int instance, const char *name, sage_metric *out);
/* Operators in declaration order: name and parallelism. */
SAGE_API size_t sage_env_op_count(const sage_env *env);
SAGE_API const char *sage_env_op_name(const sage_env *env, size_t i);
SAGE_API int sage_env_op_parallelism(const sage_env *env, size_t i);

/* ---------------------------------------------------------------------------
 * Services: named request/response functions that operators call
 * (sage/context.h). Register before execute. A service is one instance per
 * job: it runs on its own thread, started before the pipeline and stopped
 * after it; requests are served one at a time in arrival order, whoever
 * calls. Embedded, that thread is in this process. Under a JobManager (and
 * on Slurm) each service runs in a worker process of its own, placed with
 * its `resources` like an operator instance (a model service can take one
 * GPU) and shown as operator "service:NAME" by `sage job status`; every
 * operator instance reaches it over the job's connections, with the same
 * results, timeouts and errors as embedded, and it stops once every task
 * of the job ended. start/stop hooks are optional. The name: 1..119 bytes
 * of UTF-8, no control character, no '/' (it names the process's log).
 * ------------------------------------------------------------------------- */
typedef struct sage_reply sage_reply;
/* Set the response (copied; at most 64 MiB). Call at most once. */
SAGE_API int sage_reply_set(sage_reply *r, const void *data, size_t len);
typedef int (*sage_service_fn)(const void *req, size_t len, sage_reply *reply, void *udata);
typedef struct sage_service_opts {
    int (*start)(void *udata); /* before the pipeline starts; an error fails the submit */
    void (*stop)(void *udata); /* after the pipeline ended */
    size_t queue_capacity;     /* pending requests before callers wait (default 1024, at most 2^20) */
    const char *resources;     /* JSON spec (sage/resources.h) of its process under a JobManager; NULL: none */
    void *reserved[4];         /* must be zero: room for new options */
} sage_service_opts;
SAGE_API int sage_env_register_service(sage_env *env, const char *name, sage_service_fn fn, void *udata,
                                       const sage_service_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
