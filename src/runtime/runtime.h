/* runtime/runtime.h - tasks, operator instances, contexts, batches and the job that runs them. */
#ifndef SAGE_RUNTIME_RUNTIME_H
#define SAGE_RUNTIME_RUNTIME_H

#include "core.h"
#include "runtime/queue.h"

/* A user metric of one operator instance. */
typedef struct sage__metric {
    char name[64];
    int is_hist;
    int64_t counter;
    sage__hist hist;
} sage__metric;

typedef struct sage__opinst sage__opinst;

struct sage_out {
    sage__push_fn push;      /* MUST stay the first member: the public inline sage_emit calls it */
    _Atomic int *canceled;   /* the job's cancel flag, checked on every emit */
    _Atomic uint64_t emitted; /* records_out of the owner; written by the owner thread only */
    sage__opinst *next;      /* next operator of the chain, or NULL: leave the task */
    sage__opinst *owner;     /* operator that emits through this out */
    sage__task *task;        /* set when records leave the task here; NULL for sinks */
};

struct sage_ctx {
    sage__opinst *inst;
    const char *job_name;
    const char *op_name;
    int instance, parallelism;
    _Atomic uint64_t records_in;
    const void *key;
    size_t key_len;
    void *local;
    sage__keystate *ks;
    char keybuf[SAGE_KEY_MAX];
    size_t nmetrics;
    sage__metric metrics[SAGE_METRICS_MAX];
    char failmsg[512];
    uint64_t failmsg_at;   /* records_in + records_out when it was written: stale once either moved */
    const sage_assignment *assignment;
};

typedef int (*sage__process_fn)(sage__opinst *inst, int input, const void *rec, size_t len);

struct sage__opinst {
    sage__process_fn process; /* entry for one record: the kind's function, or proc_keyed */
    sage__process_fn kind_process;
    void *udata;              /* copies of op->udata and op->fn: one load less per record */
    union {
        sage_map_fn map;
        sage_filter_fn filter;
        sage_sink_fn sink;
        sage_join_fn join;
    } fn;
    sage__op *op;
    sage__task *task;
    const sage_out *in_from; /* chained (not the head): the out feeding it, whose count is our records_in */
    int opened;              /* its open hook ran and succeeded: close is due */
    sage_ctx ctx;
    sage_out out;
    uint64_t builtin_pos; /* builtin sources: next record index */
    FILE *builtin_file;   /* file source: this instance's stream */
    char *line;           /* file source: line buffer */
    size_t line_cap;
};

/* Where one output edge of a task goes: the consumer chain's tasks. */
typedef struct sage__route {
    sage__part part;
    sage__edge *edge;       /* the consumer's input edge (key fn, partitioner) */
    int input;              /* consumer input index */
    int ntargets;
    sage__queue **targets;  /* one per consumer instance */
    sage__batch **pending;  /* partial batch per target */
    uint32_t rr;            /* round-robin cursor */
    int self;               /* forward: this task's instance */
} sage__route;

struct sage__task {
    sage__job *job;
    sage__chain *chain;
    int instance;
    size_t nops;
    sage__opinst *ops;
    sage__queue *in; /* NULL for source chains */
    int expected_eos;
    size_t nroutes;
    sage__route *routes;
    size_t batch_bytes;
    size_t max_record;       /* config max_record_bytes */
    uint64_t linger_ns;      /* config flush_linger_us */
    char keybuf[SAGE_KEY_MAX]; /* key_by routing: the key of the record being routed */
    pthread_t thread;
    int started;
    const sage__assign *assign;
    int rc; /* task result */
    int timed;          /* record processing time per batch (worker processes) */
    _Atomic int snap_req;         /* worker processes: the control thread wants a metrics snapshot */
    void (*snap_fn)(sage__task *t); /* called on the task's thread when snap_req is set */
    sage__hist proc_ns; /* per-record processing time, averaged over each batch */
};

struct sage__job {
    sage_env *env;
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    pthread_cond_t pause_cv; /* sources wait here while paused */
    _Atomic int paused;
    void (*on_free)(sage__job *job); /* extra cleanup (worker processes) */
    _Atomic int state; /* sage_job_state */
    _Atomic int stopping;
    _Atomic int canceled; /* cancel or failure: every wait wakes up */
    int rc;
    int ended; /* every task thread has been joined */
    int running_tasks;
    size_t ntasks;
    sage__task *tasks;
    size_t nqueues;
    sage__queue **queues;
};

/* The queue of consumer `instance` of chain cch, for a route's input. */
typedef sage__queue *(*sage__target_fn)(void *arg, sage__chain *cch, int instance, int input);
sage__job *sage__job_new(sage_env *env, size_t ntasks, size_t nqueues);
int sage__task_setup(sage_env *env, sage__job *job, sage__task *t, sage__chain *ch, int instance, int with_queue);
int sage__task_routes(sage_env *env, sage__task *t, sage__target_fn target, void *arg);
int sage__build_all_tasks(sage_env *env, sage__job *job, int with_queues);
void *sage__task_main(void *arg);
void sage__opinst_bind(sage__opinst *in);
void sage__out_bind(sage_out *o);

/* Records an operator instance received: counted at the chain head, and
 * for fused operators read from the previous operator's out (one counter
 * less per record and hop). */
static inline uint64_t sage__records_in(const sage__opinst *in)
{
    if (in->in_from)
        return atomic_load_explicit(&in->in_from->emitted, memory_order_relaxed);
    return atomic_load_explicit(&in->ctx.records_in, memory_order_relaxed);
}

/* Fail the job from a task (first failure wins; later ones are ignored). */
void sage__job_fail(sage__job *job, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The failure of one operator instance, with the records it had processed. */
int sage__inst_fail(sage__opinst *inst, int rc);
/* Emit past the end of a chain: partition into the routes' pending batches. */
int sage__task_emit(sage__task *t, const void *rec, size_t len);
int sage__task_flush(sage__task *t, int only_hungry);
void sage__metric_free_all(sage_ctx *ctx);

#endif
