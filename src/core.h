/* core.h - the engine's internal data model: env, logical graph, plan, job, tasks, channels.
 *
 * Design note. A pipeline is declared into an env as a list of operators
 * (sage__op), each with its inputs (edges carrying a partitioning). Stream
 * handles (sage_stream) are light views: "the output of op X, to be routed
 * like this to whatever consumes it". Compiling (plan/compile.c) resolves
 * partitioning, fuses forward-connected operators into chains, and places
 * every chain instance (a task) with the resource placer. Running
 * (runtime/) starts one thread per task. Inside a task records move by
 * direct function calls down the chain (sage_emit -> next operator, zero
 * copies); between tasks they move in batches through one bounded inbound
 * queue per task (runtime/queue.c). End-of-stream is a marker batch sent
 * once by every producer task to every consumer task it feeds; a task ends
 * when it has counted one from each.
 */
#ifndef SAGE_CORE_H
#define SAGE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "resources/placement.h"
#include "runtime/histogram.h"
#include "runtime/keystate.h"
#include "sage/sage.h"
#include "util/err.h"
#include "util/time.h"

#define SAGE__NAME_MAX 128

typedef enum sage__op_kind {
    SAGE__OP_SOURCE,
    SAGE__OP_MAP,
    SAGE__OP_FLAT_MAP,
    SAGE__OP_FILTER,
    SAGE__OP_SINK,
    SAGE__OP_COMAP,
    SAGE__OP_JOIN,
} sage__op_kind;

typedef enum sage__part {
    SAGE__PART_DEFAULT, /* forward if parallelism matches, rebalance otherwise */
    SAGE__PART_FORWARD,
    SAGE__PART_REBALANCE,
    SAGE__PART_BROADCAST,
    SAGE__PART_KEY,
    SAGE__PART_CUSTOM,
} sage__part;

typedef enum sage__builtin {
    SAGE__BUILTIN_NONE,
    SAGE__BUILTIN_COLLECTION, /* source over copied records */
    SAGE__BUILTIN_FILE_LINES, /* source over a text file */
    SAGE__BUILTIN_FILE_SINK,
    SAGE__BUILTIN_COLLECT_SINK,
} sage__builtin;

typedef struct sage__op sage__op;
typedef struct sage__task sage__task;
typedef struct sage__job sage__job;

/* How records reach one input of an operator. */
typedef struct sage__edge {
    sage__op *from;
    sage__part part;
    sage_key_fn key;
    void *key_udata;
    sage_partition_fn pfn;
    void *pfn_udata;
} sage__edge;

/* One consumer of an operator's output: (operator, which of its inputs). */
typedef struct sage__consumer {
    sage__op *op;
    int input;
} sage__consumer;

struct sage__op {
    int id;
    char name[SAGE__NAME_MAX];
    sage__op_kind kind;
    sage__builtin builtin;
    int parallelism;
    int chaining;
    int bounded; /* sources: 1 for generators/collections/files */
    int has_res;
    sage_resources res;
    sage_open_fn open;
    sage_close_fn close;
    void *udata;
    union {
        sage_source_fn source;
        sage_map_fn map;
        sage_filter_fn filter;
        sage_sink_fn sink;
        sage_join_fn join;
    } fn;
    sage_map_fn *cofns; /* comap: one per input */
    size_t ninputs;
    sage__edge *inputs;
    int keyed; /* some input is key-partitioned */
    /* builtin data */
    unsigned char *coll_data; /* collection: records packed [u64 len][bytes] */
    size_t coll_n, coll_bytes;
    size_t *coll_off;
    char *path;                 /* file source / file sink */
    sage_collector *collector;  /* collect sink */
    FILE *sink_file;            /* file sink, open while the job runs; worker: this instance's results file */
    int append_fd;              /* worker process: the file sink, O_APPEND, one write per record (-1: unused) */
    int results_to_file;        /* worker process: the collect sink writes [u32 len][bytes] to sink_file */
    uint64_t collected;         /* worker process: bytes written by the collect sink */
    /* filled by the compiler */
    size_t nconsumers;
    sage__consumer *consumers;
    int chain;     /* chain index */
    int chain_pos; /* position in the chain, 0 = head */
};

struct sage_stream {
    sage_env *env;
    sage__op *op;  /* producing operator; NULL for a connected stream */
    sage__part part;
    sage_key_fn key;
    void *key_udata;
    sage_partition_fn pfn;
    void *pfn_udata;
    int is_sink;
    size_t nconn; /* connected streams: the inputs */
    sage_stream **conn;
    sage_stream *next_alloc;
};

/* A chain: operators fused into one task per instance. */
typedef struct sage__chain {
    int id;
    int parallelism;
    size_t nops;
    sage__op **ops;      /* head first */
    sage__op *res_op;    /* the operator whose resources the chain reserves, or NULL */
    sage__assign *assign;  /* per instance, from the placer */
} sage__chain;

typedef struct sage__plan {
    size_t nchains;
    sage__chain *chains;
    size_t nplace;           /* placement requests (one per chain) */
    sage__place_req *place;  /* indexed by chain */
    sage__assign **assign;   /* placer output, indexed by chain */
    sage__node node;         /* the node the embedded job runs on */
    size_t ntasks;
    uint64_t hash;           /* plan hash: equal in the client and every worker */
} sage__plan;

typedef struct sage__service {
    char name[SAGE__NAME_MAX];
    sage_service_fn fn;
    void *udata;
    sage_service_opts opts;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv_req, cv_space;
    struct sage_future **ring;
    size_t head, count;
    int stopping;
} sage__service;

typedef struct sage__config {
    int max_parallelism;
    size_t batch_bytes;
    size_t channel_bytes;
    size_t max_record_bytes;
    unsigned flush_linger_us; /* a partial batch waits this long for more records when its consumer is idle */
    json_t *node; /* "node" object or NULL */
} sage__config;

typedef enum sage__env_mode {
    SAGE__ENV_EMBEDDED = 0, /* threads in this process */
    SAGE__ENV_CLIENT,       /* submits to a JobManager */
    SAGE__ENV_WORKER,       /* runs one task of a JobManager job, then exits */
} sage__env_mode;

typedef struct sage__remote sage__remote; /* remote/client.c, remote/worker.c */

struct sage_env {
    char name[SAGE__NAME_MAX];
    sage__env_mode remote;
    sage__remote *rt;
    sage__config cfg;
    int err;
    char errmsg[SAGE__ERRMSG_MAX];
    int executed; /* submit was called: the graph is frozen */
    size_t nops, capops;
    sage__op **ops;
    sage_stream *streams; /* every handle, for freeing */
    size_t nservices;
    sage__service **services;
    sage__plan *plan;
    sage__job *job;
};

/* ---- env.c ---- */
/* Record the env's first error (sticky). Returns code. */
int sage__env_fail(sage_env *env, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- plan/compile.c ---- */
int sage__compile(sage_env *env);
void sage__plan_free(sage__plan *plan);
/* Why b is not fused after a (NULL when it is). */
const char *sage__no_chain_reason(const sage__op *a, const sage__op *b);
/* ---- plan/explain.c ---- */
const char *sage__op_kind_name(sage__op_kind k);
const char *sage__part_name(sage__part p);

/* ---- runtime ---- */
int sage__job_start(sage_env *env);
int sage__job_wait(sage_env *env, int timeout_ms);
void sage__job_free(sage__job *job);
sage_job_state sage__job_state(const sage__job *job);
int sage__services_start(sage_env *env);
void sage__services_stop(sage_env *env);
void sage__service_free(sage__service *s);
sage__service *sage__service_find(sage_env *env, const char *name);
int sage__collector_prepare(sage_collector *c, int parallelism);
int sage__collector_add(sage_collector *c, int part, const void *rec, size_t len);
size_t sage__collector_max(const sage_collector *c);
int sage__builtin_source(sage_ctx *ctx, sage_out *out, void *udata);
int sage__builtin_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata);
int sage__builtin_open(sage_ctx *ctx, void *udata);
int sage__builtin_close(sage_ctx *ctx, sage_out *out, void *udata);


#endif
