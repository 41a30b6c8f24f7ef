/* graph/graph.h - the declared pipeline: operators, their inputs and routing, services, configuration.
 *
 * Design note. A pipeline is declared into a graph as a list of operators
 * (sage__op), each with its inputs (edges carrying a routing). Stream
 * handles (sage_stream) are light views: "the output of op X, to be routed
 * like this to whatever consumes it". Everything here is declaration-time
 * data and stays unchanged once declared: what compiling derives (resolved
 * routing, consumers, chains, placement) lives in the plan (plan/plan.h),
 * and what running needs per process (open files, collected bytes, state)
 * lives in the job (runtime/runtime.h). Operators are stored in
 * declaration order; every input of an operator was declared before it.
 *
 * Errors: every declaration function records the first failure in the
 * graph's error slot (g->err, the env's sticky error) and returns NULL or a
 * negative code; a NULL input stream yields NULL silently (its error is
 * already recorded). Not thread-safe: one declaring thread per graph.
 */
#ifndef SAGE_GRAPH_GRAPH_H
#define SAGE_GRAPH_GRAPH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/sage.h"
#include "util/err.h"

#define SAGE__NAME_MAX 128
#define SAGE__SERVICE_NAME_MAX 119 /* "service:" + the name is its process's operator name under a JobManager */

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
    SAGE__PART_DEFAULT, /* forward if parallelism matches, rebalance otherwise (resolved by the plan) */
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
    SAGE__BUILTIN_UNION,  /* comap passing every record on unchanged */
    SAGE__BUILTIN_REDUCE, /* flat_map folding records into per-key accumulators */
    SAGE__BUILTIN_FUTURE, /* sage_from_future: a loop's way back, its inputs filled later (runtime/loop.c) */
} sage__builtin;

typedef struct sage__op sage__op;

/* An operator's user function, by kind. */
typedef union sage__fn {
    sage_source_fn source;
    sage_map_fn map;
    sage_filter_fn filter;
    sage_sink_fn sink;
    sage_join_fn join;
} sage__fn;

/* How records reach one input of an operator, as declared. */
typedef struct sage__edge {
    sage__op *from;
    sage__part part;
    sage_key_fn key;
    void *key_udata;
    sage_partition_fn pfn;
    void *pfn_udata;
} sage__edge;

struct sage__op {
    int id; /* index in declaration order */
    char name[SAGE__NAME_MAX];
    sage__op_kind kind;
    sage__builtin builtin;
    int parallelism;
    int chaining;
    int threads; /* sage_op_opts.threads: 0 the config's chain_threads, n at most n, SAGE_THREADS_EACH */
    int bounded; /* sources: 1 for generators, collections and files */
    int has_res;
    sage_resources res;
    sage_open_fn open;
    sage_close_fn close;
    sage_snapshot_fn snapshot; /* checkpoint hooks (optional) */
    sage_restore_fn restore;
    void *udata;
    sage__fn fn;
    sage_map_fn *cofns; /* comap: one per input */
    size_t ninputs;
    sage__edge *inputs;
    int keyed; /* some input is key-partitioned */
    /* built-in operators' declared data */
    unsigned char *coll_data; /* collection: the records, packed */
    size_t coll_n;
    size_t *coll_off;          /* collection: n+1 offsets into coll_data */
    char *path;                /* file source / file sink */
    sage_collector *collector; /* collect sink (owned by the user) */
    sage_reduce_fn reduce;     /* reduce: the fold, the accumulator's size, SAGE_REDUCE_EACH or _AT_CLOSE */
    size_t reduce_acc;
    int reduce_emit;
    int filled; /* future: sage_fill_future was called (its inputs come from operators declared after it) */
    /* batch operators (declare_batch.c): kind FLAT_MAP (map_batches) or SINK (sink_batches), fn unused */
    int batch;
    sage_map_batch_fn batch_map;
    sage_sink_batch_fn batch_sink;
};

struct sage_stream {
    struct sage__graph *g;
    sage__op *op; /* producing operator; NULL for a connected stream */
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

/* A registered service (run by the runtime, one per job). */
typedef struct sage__service_decl {
    char name[SAGE__NAME_MAX];
    sage_service_fn fn;
    void *udata;
    sage_service_opts opts; /* queue_capacity resolved (1..2^20); opts.resources not kept (see res) */
    sage_resources res;     /* what its process asks for under a JobManager (parsed at registration) */
} sage__service_decl;

/* "fault_tolerance": what happens when a task fails (SAGE Kernel's keys and
 * defaults; graph/fault.c reads them). Without the key: fail fast. */
typedef enum sage__ft_strategy {
    SAGE__FT_NONE = 0,   /* fail fast */
    SAGE__FT_RESTART,    /* run the job again from its beginning */
    SAGE__FT_CHECKPOINT, /* resume from the last checkpoint (embedded; a JobManager's local launcher) */
} sage__ft_strategy;

typedef enum sage__restart_kind {
    SAGE__RESTART_FIXED,        /* "fixed" / "fixed_delay": max_attempts restarts, delay apart */
    SAGE__RESTART_EXPONENTIAL,  /* "exponential" / "exponential_backoff": initial_delay * multiplier^k, capped */
    SAGE__RESTART_FAILURE_RATE, /* "failure_rate": at most max_failures_per_interval in interval_seconds */
} sage__restart_kind;

typedef struct sage__ft_config {
    sage__ft_strategy strategy;
    sage__restart_kind restart;
    int max_attempts;                            /* fixed, exponential: restarts allowed */
    double delay;                                /* fixed, failure_rate: seconds before a restart */
    double initial_delay, max_delay, multiplier; /* exponential */
    int max_failures_per_interval;               /* failure_rate */
    double interval_seconds;                     /* failure_rate */
    double checkpoint_interval;                  /* checkpoint: seconds */
    int max_recovery_attempts;                   /* checkpoint */
    char checkpoint_dir[1024];                   /* checkpoint: "" = the job's state directory */
    int checkpoints_retained;                    /* checkpoint */
    double checkpoint_timeout;                   /* checkpoint: seconds */
} sage__ft_config;

#define SAGE__CHAIN_THREADS_CPUS (-1) /* config "chain_threads": "cpus" */

/* The environment's configuration (keys in include/sage/env.h). */
typedef struct sage__config {
    int max_parallelism;
    size_t batch_bytes;
    size_t channel_bytes;
    size_t max_record_bytes;
    unsigned flush_linger_us; /* a partial batch waits this long for more records when its consumer is idle
                               * (times the consumer instances per core: sage__task_routes) */
    unsigned idle_spin_us;    /* a consumer with nothing queued polls this long before it sleeps (0: sleeps) */
    size_t loop_buffer_bytes; /* a feedback loop's records waiting at its future, at most (runtime/loop.c) */
    int chain_threads;        /* at most this many threads run a chain's instances (0: one each; runtime/group.c);
                               * SAGE__CHAIN_THREADS_CPUS: as many as the process may use CPUs */
    json_t *node;             /* "node" object or NULL (owned) */
    int has_jobmanager;       /* "jobmanager" was given (or sage_env_create_remote) */
    char jm_host[256];
    int jm_port;
    char token_file[1024];   /* "" : the default */
    sage__ft_config ft;      /* "fault_tolerance" */
    char restore_from[1024]; /* "restore_from": a checkpoint or savepoint directory ("" none) */
} sage__config;

typedef enum sage__seal {
    SAGE__GRAPH_OPEN = 0,
    SAGE__GRAPH_EXPLAINED, /* the plan was compiled (by explain): no more declarations */
    SAGE__GRAPH_SUBMITTED, /* the job was submitted */
} sage__seal;

typedef struct sage__graph {
    char name[SAGE__NAME_MAX]; /* the job's name */
    sage__err *err;            /* where declaration errors go (the env's sticky error) */
    const sage__config *cfg;
    sage__seal seal;
    size_t nops, capops;
    sage__op **ops;
    sage_stream *streams; /* every handle, for freeing */
    size_t nservices;
    sage__service_decl *services;
    int has_binding; /* a language binding's hooks (sage/binding.h) */
    sage_binding_hooks binding;
} sage__graph;

/* ---- graph.c ---- */
void sage__graph_init(sage__graph *g, const char *name, const sage__config *cfg, sage__err *err);
void sage__graph_free(sage__graph *g);
sage__op *sage__graph_find(const sage__graph *g, const char *name);
/* Why a job or operator name is refused (NULL: it is fine), written into
 * why: empty, longer than SAGE__NAME_MAX - 1 bytes, not UTF-8, a control
 * character (it would forge log lines and terminal output); operator names
 * also become file names (a worker's results, a task's log), so '/' and the
 * names "." and ".." are refused for them too. Every mode applies the same
 * rule, at declaration. */
const char *sage__name_problem(const char *name, int op_name, char *why, size_t why_len);
const char *sage__op_kind_name(sage__op_kind k);
/* What explain calls an operator: its kind's name, or "future", "map_batches", "sink_batches". */
const char *sage__op_display_kind(const sage__op *op);
const char *sage__part_name(sage__part p);

/* ---- declare.c: the declaration calls of include/sage/stream.h, validated ---- */
sage_stream *sage__declare_source(sage__graph *g, sage_source_fn fn, void *udata, const sage_op_opts *opts, int bounded,
                                  const char *what);
sage_stream *sage__declare_collection(sage__graph *g, const void *const *recs, const size_t *lens, size_t n,
                                      const sage_op_opts *opts);
sage_stream *sage__declare_int64s(sage__graph *g, const int64_t *values, size_t n, const sage_op_opts *opts);
sage_stream *sage__declare_file_lines(sage__graph *g, const char *path, const sage_op_opts *opts);
sage_stream *sage__declare_one_input(sage_stream *in, sage__op_kind kind, void *fn, void *udata,
                                     const sage_op_opts *opts, const char *what);
sage_stream *sage__declare_route(sage_stream *in, sage__part part, void *fn, void *udata, const char *what);
sage_stream *sage__declare_connect(sage_stream *a, sage_stream *b);
sage_stream *sage__declare_union(sage_stream *const *streams, size_t n, const sage_op_opts *opts);
sage_stream *sage__declare_reduce(sage_stream *keyed, sage_reduce_fn fn, size_t acc_size, int emit, void *udata,
                                  const sage_op_opts *opts);
sage_stream *sage__declare_comap(sage_stream *connected, const sage_map_fn *fns, size_t nfns, void *udata,
                                 const sage_op_opts *opts);
sage_stream *sage__declare_join(sage_stream *left, sage_key_fn left_key, sage_stream *right, sage_key_fn right_key,
                                sage_join_fn fn, void *udata, const sage_op_opts *opts);
/* Feedback loops: a future stream (an operator of its own, parallelism 1) and the stream that fills it. */
sage_stream *sage__declare_future(sage__graph *g, const char *name);
int sage__declare_fill_future(sage_stream *in, sage_stream *future);
/* declare_batch.c: sage_map_batches (sink 0) and sage_sink_batches (sink 1). */
sage_stream *sage__declare_batch(sage_stream *in, int sink, void *fn, void *udata, const sage_op_opts *opts);
sage_stream *sage__declare_file_sink(sage_stream *in, const char *path, const sage_op_opts *opts);
sage_stream *sage__declare_collect_sink(sage_stream *in, sage_collector *c, const sage_op_opts *opts);
int sage__declare_service(sage__graph *g, const char *name, sage_service_fn fn, void *udata,
                          const sage_service_opts *opts);

/* ---- fault.c ---- */
/* Read the "fault_tolerance" object into *ft (defaults first). Unknown keys
 * are refused naming the key and the nearest known one; keys of another
 * strategy are refused naming the strategy they belong to. */
int sage__ft_parse(sage__ft_config *ft, json_t *v, sage__err *err);
/* The delay before restart number k (1 = the first), in seconds. */
double sage__ft_delay(const sage__ft_config *ft, int k);
/* One line describing the strategy, for messages ("fixed delay 1s, at most 3 restarts"). */
void sage__ft_describe(const sage__ft_config *ft, char *buf, size_t len);
/* As a JSON object (the chosen strategy's keys, every one explicit), for the plan document; sage__ft_parse
 * reads it back. NULL: out of memory. */
json_t *sage__ft_json(const sage__ft_config *ft);
/* Whether the restart strategy allows a restart after failure number `failures` (1 = the first), `now` in
 * monotonic seconds; failure_rate keeps the recent failures' times in fail_at (room for
 * max_failures_per_interval + 1) and *nfail. */
int sage__ft_may_restart(const sage__ft_config *ft, int failures, double now, double *fail_at, int *nfail);

/* ---- config.c ---- */
/* Defaults for every key. */
void sage__config_init(sage__config *cfg);
void sage__config_free(sage__config *cfg);
/* Apply config: JSON text (starting with '{' after blanks) or the path of a
 * JSON file. Unknown keys and bad values are SAGE_ECONFIG naming the key;
 * jansson running out of memory is SAGE_ENOMEM. */
int sage__config_parse(sage__config *cfg, const char *config, sage__err *err);

#endif
