/* runtime/runtime.h - a job running in this process: tasks, operator instances, contexts, routes, built-in sinks.
 *
 * A job runs (part of) one plan. Every task is one instance of one chain on
 * its own thread; its operators are instances (sage__opinst) with their
 * contexts; its output routes hold one channel per consumer instance.
 * Failures are recorded in the job (sage__job_fail: the first one wins,
 * under the job's lock), never in the environment: the backend that
 * started the job reads them when the job ended. The job owns every
 * channel it created (woken on cancel, destroyed with the job).
 */
#ifndef SAGE_RUNTIME_RUNTIME_H
#define SAGE_RUNTIME_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "plan/plan.h"
#include "runtime/chan.h"
#include "runtime/histogram.h"
#include "runtime/keystate.h"
#include "runtime/queue.h"
#include "util/buf.h"

/* A user metric of one operator instance. */
typedef struct sage__metric {
    char name[64];
    int is_hist;
    int64_t counter;
    sage__hist hist;
} sage__metric;

typedef struct sage__opinst sage__opinst;
typedef struct sage__task sage__task;
typedef struct sage__job sage__job;

struct sage_out {
    sage__push_fn push;       /* MUST stay the first member: the public inline sage_emit calls it */
    _Atomic int *canceled;    /* the job's cancel flag, checked on every emit */
    _Atomic uint64_t emitted; /* records_out of the owner; written by the owner thread only */
    sage__opinst *next;       /* next operator of the chain, or NULL: leave the task */
    sage__opinst *owner;      /* operator that emits through this out */
    sage__task *task;         /* set when records leave the task here; NULL for sinks */
};

struct sage_ctx {
    sage__opinst *inst;
    const char *job_name;
    const char *op_name;
    int instance, parallelism;
    _Atomic uint64_t records_in;
    const void *key;
    size_t key_len;
    uint64_t key_hash; /* sage__hash64 of the key, when key_hashed (the input loop hashed it ahead) */
    int key_hashed;
    void *local;
    sage__keystate *ks;
    char keybuf[SAGE_KEY_MAX];
    size_t nmetrics;
    sage__metric metrics[SAGE_METRICS_MAX];
    char failmsg[512];
    uint64_t calls;      /* calls that are not per record: source calls, open and close hooks */
    uint64_t failmsg_in; /* records_in and calls when failmsg was written: it belongs to that call only */
    uint64_t failmsg_calls;
    const sage_assignment *assignment;
    size_t ks_restored; /* state block size restored from a checkpoint (0: none), named when it no longer fits */
};

typedef int (*sage__process_fn)(sage__opinst *inst, int input, const void *rec, size_t len);

struct sage__opinst {
    sage__process_fn process; /* entry for one record: the kind's function, or proc_keyed */
    sage__process_fn kind_process;
    void *udata; /* copies of op->udata and op->fn (or a built-in's): one load less per record */
    sage__fn fn;
    const sage__op *op;
    sage__task *task;
    const sage_out *in_from; /* chained (not the head): the out feeding it, whose count is our records_in */
    int opened;              /* its open hook ran and succeeded: close is due */
    sage_ctx ctx;
    sage_out out;
    uint64_t builtin_pos; /* built-in sources: next record index */
    FILE *builtin_file;   /* file source: this instance's stream */
    char *line;           /* file source: line buffer */
    size_t line_cap;
    struct sage__bcoll *bcoll; /* batch operators: what was collected for the function (runtime/batch.h) */
};

/* Where one output edge of a task goes: the consumer chain's tasks. */
typedef struct sage__route {
    sage__part part;
    const sage__edge *edge; /* the consumer's input edge (key fn, partitioner) */
    int input;              /* consumer input index */
    int ntargets;
    sage__chan **targets;  /* one per consumer instance */
    sage__batch **pending; /* partial batch per target */
    uint32_t rr;           /* round-robin cursor */
    int self;              /* forward: this task's instance */
    uint64_t linger_ns;    /* a partial batch's linger on this route: flush_linger_us, times the fan-out per core */
    int probe;             /* the consumer is inside this task's loop: its probe markers go there */
    int packed;            /* fixed-width records go packed (runtime/batch.h): in-process targets, no key hash */
} sage__route;

typedef struct sage__future sage__future;

struct sage__task {
    sage__job *job;
    const sage__chain *chain;
    int instance;
    size_t nops;
    sage__opinst *ops;
    sage__queue *in; /* NULL for source chains */
    int expected_eos;
    size_t nroutes;
    sage__route *routes; /* records go to the first nemit; a loop entry's control route follows them */
    size_t nemit;
    size_t batch_bytes;
    size_t max_record;         /* config max_record_bytes */
    uint64_t linger_ns;        /* config flush_linger_us */
    char keybuf[SAGE_KEY_MAX]; /* key_by routing: the key of the record being routed */
    pthread_t thread;
    int started;
    int grouped; /* runs on a group's thread (runtime/group.c), not one of its own */
    const sage__assign *assign;
    int rc;                         /* task result */
    int timed;                      /* record processing time per batch (worker processes) */
    _Atomic int snap_req;           /* worker processes: the control thread wants a metrics snapshot */
    void (*snap_fn)(sage__task *t); /* called on the task's thread when snap_req is set */
    void *snap_arg;                 /* for snap_fn */
    sage__hist proc_ns;             /* per-record processing time, averaged over each batch */
    /* checkpoints (runtime/checkpoint.c) */
    uint64_t ckpt_epoch;  /* the last checkpoint this task captured (written under job->mu) */
    uint64_t part_epoch;  /* the checkpoint job->parts[this task] belongs to (0: none; under job->mu) */
    uint64_t align_epoch; /* the checkpoint whose barriers are arriving */
    int align_n;          /* barriers of align_epoch received */
    int eos_seen;         /* end-of-stream markers received */
    int ended_ok;         /* ended without failure (under job->mu): finished for later checkpoints */
    /* feedback loops (runtime/loop.c) */
    int loop;             /* the future whose loop this task is inside, or -1 */
    int ext_expected;     /* end-of-stream markers from outside the loop (an entry: then it tells the future) */
    int ext_seen;         /* ... received */
    int probe_expected;   /* producers inside the loop: a round's probe from each before it goes on */
    int probe_n;          /* ... received in probe_round */
    uint64_t probe_round; /* the round being counted */
    int eos_sent;         /* a future sent its end-of-stream itself */
};

/* How a built-in sink writes, in this process (set by whoever starts the job). */
typedef enum sage__sink_mode {
    SAGE__SINK_NONE = 0,
    SAGE__SINK_FILE,    /* file sink: one FILE shared by the instances of this process (locked writes) */
    SAGE__SINK_APPEND,  /* file sink: an O_APPEND descriptor, one writev per record (several processes) */
    SAGE__SINK_COLLECT, /* collect sink: into the user's collector */
    SAGE__SINK_RECORDS, /* collect sink: [u32 len][bytes] into a file the submitter reads back */
} sage__sink_mode;

typedef struct sage__sink_out {
    sage__sink_mode mode;
    FILE *file;       /* FILE, RECORDS */
    int fd;           /* APPEND */
    uint64_t written; /* RECORDS: bytes of records, held to the collector's limit */
} sage__sink_out;

typedef struct sage__services sage__services;
typedef struct sage__svc_remote sage__svc_remote;

/* Where a job's services run, in a worker process (job->svc_place; NULL in
 * embedded mode: every service on a thread of this process). */
typedef struct sage__svc_place {
    int host; /* the one service (index in g->services) this process serves, or -1: it calls them all */
    /* host < 0: an authenticated connection to service i's own process (err says why not) */
    int (*connect)(void *arg, size_t i, sage__svc_remote **out, char *err, size_t err_len);
    void *arg;
} sage__svc_place;

struct sage__job {
    const sage__plan *plan;
    const sage__graph *g;
    const sage__config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    pthread_cond_t pause_cv; /* sources wait here while paused */
    _Atomic int paused;
    _Atomic int state; /* sage_job_state */
    _Atomic int stopping;
    _Atomic int canceled; /* cancel or failure: every wait wakes up */
    sage__err err;        /* the first failure (under mu) */
    int rc;               /* the job's result once ended */
    int ended;            /* every task thread has been joined */
    int running_tasks;
    size_t ntasks;
    sage__task *tasks;
    size_t nchans, capchans;
    sage__chan **chans;    /* every channel of this process: woken on cancel, destroyed with the job */
    sage__sink_out *sinks; /* per operator id */
    sage__services *services;
    const sage__svc_place *svc_place;  /* a worker's services (NULL: embedded) */
    const sage_binding_hooks *binding; /* a language binding's hooks (NULL: none) */
    /* checkpoints (runtime/checkpoint.c); the coordinator is the backend's thread */
    _Atomic uint64_t ckpt_req;           /* the newest checkpoint sources are asked to take */
    uint64_t ckpt_active;                /* under mu: the checkpoint whose parts are collected (0: none) */
    uint64_t ckpt_released;              /* under mu: sources held at a barrier go on once it reaches theirs */
    pthread_cond_t ckpt_cv;              /* tasks captured or ended (the coordinator waits) */
    sage__buf *parts;                    /* per task: its part of ckpt_active, when captured */
    const struct sage__restore *restore; /* what this job starts from (NULL: its beginning) */
    struct sage__group *groups;          /* threads that serve several tasks each (config chain_threads) */
    size_t ngroups;
};

/* The binding's hooks (sage/binding.h), no-ops without one. */
static inline void sage__enter(const sage__job *job)
{
    if (job->binding)
        job->binding->enter(job->binding->udata);
}
static inline void sage__leave(const sage__job *job)
{
    if (job->binding)
        job->binding->leave(job->binding->udata);
}
/* Drop the records of b from the first (index) on: they will not be processed (entered). */
void sage__batch_drop(const sage__job *job, const sage__batch *b, uint32_t first);
/* A queue's dispose for a job with handle records: enter, drop every record, leave, free. */
void sage__job_dispose_batch(sage__batch *b, void *job);

/* ---- job.c ---- */
/* A job of ntasks tasks (not yet set up) for plan; room for nchans channels. */
sage__job *sage__job_new(const sage__plan *plan, const sage__config *cfg, size_t ntasks, size_t nchans);
void sage__job_free(sage__job *job); /* NULL is fine; the threads must have been joined */
/* Take ownership of a channel (woken on cancel, destroyed with the job). */
int sage__job_own(sage__job *job, sage__chan *c);
/* The queue of consumer `instance` of chain cch, for a route's input. */
typedef sage__chan *(*sage__target_fn)(void *arg, const sage__chain *cch, int instance, int input);
int sage__task_setup(sage__job *job, sage__task *t, const sage__chain *ch, int instance, int with_queue);
int sage__task_routes(sage__job *job, sage__task *t, sage__target_fn target, void *arg);
/* Every task of the plan: as threads of this process (with_queues 1), or
 * as bare bookkeeping for metrics (0: a remote client's view). */
int sage__build_all_tasks(sage__job *job, int with_queues);
/* Embedded: open the built-in sinks, start the services and every task
 * thread. Errors before the threads start go to err. */
int sage__job_start(sage__job *job, sage__err *err);
/* Wait for every task (timeout_ms < 0: no limit): SAGE_ETIMEDOUT, or the
 * job's result once every thread was joined and the state settled. */
int sage__job_wait(sage__job *job, int timeout_ms);
void sage__job_stop(sage__job *job);   /* sources stop, in-flight records drain */
void sage__job_cancel(sage__job *job); /* every task stops at its next record or wait */
sage_job_state sage__job_state(const sage__job *job);
/* Fail the job (first failure wins; later ones are ignored). */
void sage__job_fail(sage__job *job, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Pause (sources wait), resume. */
void sage__job_pause(sage__job *job, int paused);

/* ---- group.c: several instances of a chain on one thread (config chain_threads) ---- */
typedef struct sage__group sage__group;
/* Decide the groups of a job whose tasks are set up, before any starts: tasks and queues are marked. */
int sage__groups_build(sage__job *job);
/* Start each group's thread; on failure (an errno) *failed_tasks is the count of tasks left unstarted. */
int sage__groups_start(sage__job *job, size_t *failed_tasks);
void sage__groups_join(sage__job *job);
size_t sage__groups_tasks(const sage__job *job); /* the tasks the groups serve */
void sage__groups_free(sage__job *job);

/* ---- task.c ---- */
/* A task's thread: sage__task_begin, sage__task_run, sage__task_end. */
void *sage__task_main(void *arg);
/* Before the first record: open hooks and restored state; with finished (sage__task_was_finished) only
 * the end-of-stream markers go out. 0 or a negative code. */
int sage__task_begin(sage__task *t, int finished);
/* The task's loop: a source's calls, a consumer's inputs or a future's loop, to its end or failure. */
int sage__task_run(sage__task *t);
/* One batch taken off a consumer's queue (b: data or a marker; the task owns it): processed through
 * the chain. *done is the batch to recycle with the next pop (or NULL). 1 when it was the last
 * end-of-stream the task waited for, 0 to go on, or a negative code. */
int sage__task_input(sage__task *t, sage__batch *b, sage__batch **done);
/* After the run (rc its result): close hooks, the last flush and end-of-stream (unless finished), and
 * the job's count of running tasks. The task is done with after this. */
void sage__task_end(sage__task *t, int rc, int finished);
void sage__opinst_bind(sage__opinst *in);
void sage__out_bind(sage_out *o);
/* The failure of one operator instance, with the records it had processed. */
int sage__inst_fail(sage__opinst *inst, int rc);
/* The same for a value user code returned (what: "its function", "its open hook", ...): a known code
 * without a message of the user's is reported as returned ("its function returned -1 (SAGE_EINVAL:
 * invalid argument)"), not as if the engine had found that error. */
int sage__inst_fail_ret(sage__opinst *inst, int rc, const char *what);
/* Emit past the end of a chain: partition into the routes' pending batches. */
int sage__task_emit(sage__task *t, const void *rec, size_t len);
int sage__task_flush(sage__task *t, int only_hungry);
/* Push the route's pending batch for target tgt (a fresh one takes its place, or NULL). */
int sage__task_send(sage__task *t, sage__route *r, int tgt);

/* Records an operator instance received: counted at the chain head, and
 * for fused operators read from the previous operator's out (one counter
 * less per record and hop). */
static inline uint64_t sage__records_in(const sage__opinst *in)
{
    if (in->in_from)
        return atomic_load_explicit(&in->in_from->emitted, memory_order_relaxed);
    return atomic_load_explicit(&in->ctx.records_in, memory_order_relaxed);
}

/* Between records: hand the control thread what only this thread may read (the metrics snapshot). */
void sage__task_maybe_snapshot(sage__task *t);

/* ---- loop.c: feedback loops ---- */
/* The loop fields of a task being set up (after its routes). */
void sage__loop_setup(sage__task *t);
/* A loop marker (PROBE, INPUTS_ENDED) reached a task inside a loop: count it, pass the probe on once every
 * producer inside the loop sent it. */
int sage__loop_mark(sage__task *t, const sage__batch *b);
/* End-of-stream on input `input`: an entry tells its future once every input from outside the loop ended. */
int sage__loop_eos(sage__task *t, uint32_t input);
/* A future's task, instead of the input loop: pass back what comes back, end the loop when it is empty. */
int sage__loop_run(sage__task *t);
static inline int sage__task_is_future(const sage__task *t)
{
    return t->loop >= 0 && t->ops[0].op->builtin == SAGE__BUILTIN_FUTURE;
}

/* ---- builtins.c: the built-in sources and sinks ---- */
int sage__builtin_source(sage_ctx *ctx, sage_out *out, void *udata);
int sage__builtin_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata);
int sage__builtin_open(sage_ctx *ctx, void *udata);
int sage__builtin_close(sage_ctx *ctx, sage_out *out, void *udata);
/* sage_reduce: fold one record into its key's accumulator (and emit it, SAGE_REDUCE_EACH); emit every key's
 * accumulator (SAGE_REDUCE_AT_CLOSE), in the order keys were first seen. */
int sage__builtin_reduce(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata);
int sage__builtin_reduce_close(sage_ctx *ctx, sage_out *out, void *udata);
/* Embedded: truncate and open file sinks, prepare collectors (errors to err). */
int sage__sinks_open_local(sage__job *job, sage__err *err);
/* Close whatever sinks hold; the first write error goes to err. */
int sage__sinks_close(sage__job *job, sage__err *err);

/* ---- collector.c ---- */
int sage__collector_prepare(sage_collector *c, int parallelism);
int sage__collector_add(sage_collector *c, int part, const void *rec, size_t len);
size_t sage__collector_max(const sage_collector *c);
/* Records of one instance's part; cut it back to its first n (checkpoint recovery). */
size_t sage__collector_part_count(const sage_collector *c, int part);
int sage__collector_truncate(sage_collector *c, int part, size_t n);

/* ---- service.c: the job's services (one thread each) ---- */
int sage__services_start(sage__job *job, sage__err *err);
void sage__services_stop(sage__job *job);
/* The job was canceled or failed: every caller, queued or being served, gets SAGE_ECANCELED now. */
void sage__services_cancel(sage__job *job);
void sage__services_free(sage__job *job);
/* A service's own process: queue future f (from a connection, on_done set) for service i, waiting while its
 * queue is full. 0, or SAGE_ECANCELED once the service stops (f is then still the caller's to answer). */
int sage__service_submit(sage__job *job, size_t i, sage_future *f);
/* Requests service i answered so far, and how many wait in its queue (*queued). */
uint64_t sage__service_served(sage__job *job, size_t i, size_t *queued);

/* ---- context.c ---- */
void sage__metric_free_all(sage_ctx *ctx);
/* A metric of operator op (instance < 0: all instances) as sage_env_metric reads it. */
int sage__job_metric(const sage__job *job, const sage__op *op, int instance, const char *name, sage_metric *out);

#endif
