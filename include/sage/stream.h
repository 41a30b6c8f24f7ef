/* sage/stream.h - declaring a pipeline: sources, operators, partitioning, sinks. */
#ifndef SAGE_STREAM_H
#define SAGE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "sage/error.h"
#include "sage/resources.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sage_env sage_env;       /* one job's environment; see sage/env.h */
typedef struct sage_stream sage_stream; /* a declared stream; owned by its env */
typedef struct sage_ctx sage_ctx;       /* per-instance runtime context; see sage/context.h */
typedef struct sage_out sage_out;       /* where an operator emits records */

/* ---------------------------------------------------------------------------
 * Records
 *
 * A record is an opaque run of bytes (pointer + length). The engine owns every
 * buffer it hands to user code: a record passed to a function is valid only
 * until that function returns. To keep bytes longer, copy them (per-key state,
 * instance state). sage_emit() copies or forwards what it is given before it
 * returns, so the caller may reuse its buffer at once.
 * ------------------------------------------------------------------------- */

#define SAGE_KEY_MAX 1024 /* longest key a key extractor may produce, bytes */

/* Return values of sources: keep calling, or the stream has ended. Errors are
 * negative (any negative value fails the job). */
#define SAGE_MORE 0
#define SAGE_DONE 1

/* Emit one record downstream. Must be called only from inside the function
 * that was handed `out`, on its thread. Returns 0, or a negative code when the
 * job is being canceled or failed (then return that code from your function).
 * May block while downstream is full: that is backpressure. A record longer
 * than the config's max_record_bytes fails the job with SAGE_ETOOBIG when it
 * leaves its task (to another thread or process); between operators fused
 * in one chain it is passed by pointer and not checked. */
typedef int (*sage__push_fn)(sage_out *out, const void *data, size_t len);
static inline int sage_emit(sage_out *out, const void *data, size_t len)
{
    /* The first member of every sage_out is its push function; calling it
     * directly keeps an emit down a chain to one function call. */
    return (*(const sage__push_fn *)out)(out, data, len);
}

/* ---------------------------------------------------------------------------
 * User function types. `udata` is the pointer given at declaration; the
 * engine never touches what it points to. The same function runs concurrently
 * in every instance of the operator: share nothing mutable through udata
 * without your own locking; use instance state (sage_ctx_set_local) or per-key
 * state (sage_ctx_state) instead.
 * ------------------------------------------------------------------------- */

/* Source: emit zero or more records per call; return SAGE_MORE to be called
 * again, SAGE_DONE when finished, a negative value on error. A call that
 * emits nothing lets the engine flush partial batches (use it when idle). */
typedef int (*sage_source_fn)(sage_ctx *ctx, sage_out *out, void *udata);
/* map (exactly one emit per input), flat_map (0..n emits), comap inputs. */
typedef int (*sage_map_fn)(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata);
/* filter: a positive value keeps the record, 0 drops it, negative fails. */
typedef int (*sage_filter_fn)(sage_ctx *ctx, const void *rec, size_t len, void *udata);
/* sink: consume a record. */
typedef int (*sage_sink_fn)(sage_ctx *ctx, const void *rec, size_t len, void *udata);
/* Key extractor: write the key of `rec` into keybuf (capacity SAGE_KEY_MAX)
 * and return its length (0..SAGE_KEY_MAX), or a negative value on error. It
 * must be a pure function of the record bytes: the engine may call it on the
 * sending and on the receiving side. */
typedef int (*sage_key_fn)(const void *rec, size_t len, void *keybuf, void *udata);
/* Custom partitioner: return the target instance in [0, nparts). */
typedef int (*sage_partition_fn)(const void *rec, size_t len, int nparts, void *udata);
/* Join: side is 0 for the left stream, 1 for the right one; ctx carries the key. */
typedef int (*sage_join_fn)(sage_ctx *ctx, int side, const void *rec, size_t len, sage_out *out, void *udata);
/* Lifecycle hooks, called once per instance on the instance's own thread:
 * open before the first record, close after the last one (close may emit:
 * it runs before end-of-stream is passed on). Along a chain of fused
 * operators, open runs head first and stops at the first open that fails;
 * an instance is "opened" when its open hook returned 0, or when it has no
 * open hook and that pass reached it. close runs exactly for the opened
 * instances, also when the job fails or is canceled (its emits then fail
 * and its return value is ignored). */
typedef int (*sage_open_fn)(sage_ctx *ctx, void *udata);
typedef int (*sage_close_fn)(sage_ctx *ctx, sage_out *out, void *udata);

/* Checkpoint hooks (config "fault_tolerance": {"strategy": "checkpoint"};
 * docs/fault-tolerance.md). The engine saves by itself the per-key state
 * (sage_ctx_state), the counters, and the positions of the built-in
 * sources; what an instance keeps elsewhere (sage_ctx_set_local, a user
 * source's position) it saves with a snapshot hook and reads back with a
 * restore hook. snapshot runs on the instance's thread at a checkpoint,
 * between two records (for a source: between two calls), and writes any
 * number of bytes with sage_snapshot_write; return 0, or a negative value
 * to fail the job. restore runs on recovery (and with config
 * "restore_from") once, after open and before the first record, with the
 * bytes the last committed checkpoint saved (len 0 when its snapshot wrote
 * nothing); return 0, or a negative value to fail the job. A user source
 * with a restore hook is replayable: it must go on from the position its
 * snapshot saved. A user source without one starts again from its
 * beginning on recovery, so the job is at-least-once for it (sage_env_explain
 * says so). */
typedef struct sage_snapshot sage_snapshot;
typedef int (*sage_snapshot_fn)(sage_ctx *ctx, sage_snapshot *snap, void *udata);
typedef int (*sage_restore_fn)(sage_ctx *ctx, const void *data, size_t len, void *udata);
/* Append bytes to the snapshot being taken: 0, SAGE_ETOOBIG past 1 GiB per
 * instance, SAGE_ENOMEM. Only inside the snapshot hook that was handed snap. */
SAGE_API int sage_snapshot_write(sage_snapshot *snap, const void *data, size_t len);

/* ---------------------------------------------------------------------------
 * Operator options. Zero-initialise and set what you need; every field has a
 * meaningful zero. The struct is read during the declaring call only (the
 * name and the resources are copied), so it may live on the stack.
 *
 * Growth: new options take the place of `reserved` slots, so the struct's
 * size never changes and a program built against this header keeps working
 * with later libraries. Reserved slots must be zero (a zero-initialised
 * struct or compound literal does it); a declaration that finds one set is
 * refused with SAGE_EINVAL.
 * ------------------------------------------------------------------------- */
#define SAGE_PARALLELISM_MAX 1024 /* hard bound; config "max_parallelism" may lower it */

typedef struct sage_op_opts {
    /* name: unique in the job, generated ("map_3") when NULL; 1..127 bytes of UTF-8 without control
     * characters or '/', and not "." or ".." (it becomes a file name) */
    const char *name;
    int parallelism;                      /* 0 means 1; 1..max_parallelism */
    int disable_chaining;                 /* 1: never fuse this operator with its neighbours */
    const char *resources;                /* JSON spec, see sage/resources.h; NULL: none */
    const sage_resources *resources_spec; /* the same as a struct; not both */
    sage_open_fn open;                    /* optional */
    sage_close_fn close;                  /* optional */
    sage_snapshot_fn snapshot;            /* optional: checkpoints save this instance's own state */
    sage_restore_fn restore;              /* optional: recovery reads it back (see below) */
    /* Threads for this operator's chain when it has more instances than that (one thread then serves
     * several instances, one batch of each in turn; docs/api.md "Fewer threads than instances"):
     * 0: the env's config "chain_threads"; 1..1024: at most that many; SAGE_THREADS_EACH: a thread per
     * instance whatever the config (an operator whose function waits: I/O, a service, a sleep). In a
     * chain, SAGE_THREADS_EACH on any operator wins, then the smallest number. Embedded jobs only. */
    int threads;
    int reserved_int;  /* must be zero */
    void *reserved[5]; /* must be zero: room for new options */
} sage_op_opts;

#define SAGE_THREADS_EACH (-1) /* sage_op_opts.threads: a thread per instance */

/* ---------------------------------------------------------------------------
 * Declaration. Every call returns a new stream handle owned by the env, or
 * NULL on error. Errors are sticky: the env keeps the first one (see
 * sage_env_errmsg) and sage_env_execute() returns it, so a chain of calls may
 * be checked once at the end. A NULL input stream yields NULL silently (the
 * error that produced it is already recorded). Declaration is not
 * thread-safe: build one env's graph from one thread at a time.
 * ------------------------------------------------------------------------- */

/* Once an error is recorded, later declarations still check their own
 * arguments and return handles when those are fine; the job can never run.
 * Declaring after sage_env_explain (which compiles the plan) or after
 * submit is refused with SAGE_ESTATE. */

/* Sources. opts may be NULL. */
/* From an array of records (copied at declaration). */
SAGE_API sage_stream *sage_from_collection(sage_env *env, const void *const *recs, const size_t *lens, size_t n,
                                           const sage_op_opts *opts);
/* From int64 values 1..n style arrays: each value becomes an 8-byte record. */
SAGE_API sage_stream *sage_from_int64s(sage_env *env, const int64_t *values, size_t n, const sage_op_opts *opts);
/* Bounded generator: ends when fn returns SAGE_DONE (or when the job stops). */
SAGE_API sage_stream *sage_from_generator(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts);
/* Unbounded source: runs until the job is stopped (SAGE_DONE also ends it). */
SAGE_API sage_stream *sage_from_source(sage_env *env, sage_source_fn fn, void *udata, const sage_op_opts *opts);
/* The lines of a text file, without their line terminators. With parallelism
 * p, instance i reads lines i, i+p, i+2p, ... (counting from 0). */
SAGE_API sage_stream *sage_from_file_lines(sage_env *env, const char *path, const sage_op_opts *opts);

/* Transformations. */
SAGE_API sage_stream *sage_map(sage_stream *in, sage_map_fn fn, void *udata, const sage_op_opts *opts);
SAGE_API sage_stream *sage_flat_map(sage_stream *in, sage_map_fn fn, void *udata, const sage_op_opts *opts);
SAGE_API sage_stream *sage_filter(sage_stream *in, sage_filter_fn fn, void *udata, const sage_op_opts *opts);

/* Partitioning: each returns a stream whose NEXT operator receives records
 * routed that way. key_by also makes the next operator keyed (per-key state,
 * sage_ctx_key). Without one, records go forward (instance i to instance i)
 * when both sides have the same parallelism, round-robin otherwise. key_by
 * uses a fixed, seedless hash of the key bytes: the same key reaches the same
 * instance in every run and every process. */
SAGE_API sage_stream *sage_key_by(sage_stream *in, sage_key_fn fn, void *udata);
SAGE_API sage_stream *sage_partition_custom(sage_stream *in, sage_partition_fn fn, void *udata);
SAGE_API sage_stream *sage_rebalance(sage_stream *in);
SAGE_API sage_stream *sage_broadcast(sage_stream *in);
SAGE_API sage_stream *sage_forward(sage_stream *in);

/* Several inputs, one function per input. sage_connect(a, b) makes a
 * connected stream (connect it again to add inputs); only sage_comap accepts
 * it. fns[i] handles records of input i; the ctx tells nothing else about
 * the input, so use one function per input. */
SAGE_API sage_stream *sage_connect(sage_stream *a, sage_stream *b);
SAGE_API sage_stream *sage_comap(sage_stream *connected, const sage_map_fn *fns, size_t nfns, void *udata,
                                 const sage_op_opts *opts);

/* Union: the records of every input stream, unchanged, as one stream (n >= 2
 * streams of one env; their order between inputs is not defined). An
 * operator of its own ("union_<n>" unless named), with opts' parallelism. */
SAGE_API sage_stream *sage_union(sage_stream *const *streams, size_t n, const sage_op_opts *opts);
/* Keyed reduce, on a keyed stream (right after sage_key_by): one accumulator
 * of acc_size bytes (1..SAGE_REDUCE_ACC_MAX) per key, zero-filled when the key
 * first comes, kept by the engine (checkpointed with the per-key state); fn
 * folds each record into it (return 0, or a negative value to fail the job).
 * What it emits is [acc_size bytes: the accumulator][the key's bytes]: after
 * every record (SAGE_REDUCE_EACH: a running value), or once per key when the
 * input ended (SAGE_REDUCE_AT_CLOSE: the final value; a stopped job emits
 * what it has). Word count is sage_reduce(sage_key_by(words, ...), add_one,
 * 8, SAGE_REDUCE_AT_CLOSE, ...). opts' close hook, if any, runs after the
 * final emits. */
#define SAGE_REDUCE_ACC_MAX 4096
enum { SAGE_REDUCE_EACH = 0, SAGE_REDUCE_AT_CLOSE = 1 };
typedef int (*sage_reduce_fn)(sage_ctx *ctx, void *acc, const void *rec, size_t len, void *udata);
SAGE_API sage_stream *sage_reduce(sage_stream *keyed, sage_reduce_fn fn, size_t acc_size, int emit, void *udata,
                                  const sage_op_opts *opts);
/* Keyed join of two streams: records of either side with equal keys reach
 * the same instance; fn sees which side each came from and the key
 * (sage_ctx_key), and keeps what it must remember in per-key state. Both
 * key functions receive the join's udata. */
SAGE_API sage_stream *sage_join(sage_stream *left, sage_key_fn left_key, sage_stream *right, sage_key_fn right_key,
                                sage_join_fn fn, void *udata, const sage_op_opts *opts);

/* Feedback loops (SAGE's future streams). sage_from_future declares a stream
 * that is fed later, from further down the pipeline: consume it like any
 * stream (typically in a sage_union or sage_connect with the records that
 * enter the loop), then close the loop with sage_fill_future(in, future):
 * every record of `in` goes back into the future, as many rounds as the
 * user's functions send it back; records leave the loop through another
 * consumer of the loop's operators (a filter's complement, a flat_map that
 * stops emitting a record back). name: the future's operator name (the
 * same rules as operator names; NULL: generated), parallelism 1.
 *
 * End-of-stream is exact: a loop ends when every stream entering it has
 * ended and no record is left inside it (no timeout: the future sends a
 * marker round the loop, and ends it when a round finds nothing moving).
 * Backpressure cannot deadlock a loop: what comes back while the loop's
 * first operators are full waits at the future, up to config
 * "loop_buffer_bytes" (a loop that multiplies its records past that fails
 * the job with SAGE_ETOOBIG naming the future). Close hooks of operators
 * inside a loop run after it ended: what they emit back into the loop fails
 * the job (what they emit out of it flows on). Refused by the plan
 * (SAGE_EPLAN): a future never filled, a loop inside another loop, and the
 * "checkpoint" fault-tolerance strategy (a restart runs the loop again).
 * A future filled by a stream that does not depend on it is no loop: it
 * passes that stream's records on and ends with it. */
SAGE_API sage_stream *sage_from_future(sage_env *env, const char *name);
/* Fill future (from sage_from_future, not yet filled) with the records of
 * in; in is consumed as by a sink. 0, or a negative code (also recorded as
 * the env's error). */
SAGE_API int sage_fill_future(sage_stream *in, sage_stream *future);

/* Sinks. They return the sink's stream handle (for naming in errors); it
 * cannot be consumed further. */
SAGE_API sage_stream *sage_sink(sage_stream *in, sage_sink_fn fn, void *udata, const sage_op_opts *opts);
/* Built-in sink functions for sage_sink (udata unused / as documented). */
SAGE_API int sage_print_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata); /* stdout, one line per record */
/* Write each record followed by '\n' to a file (truncated at job start;
 * all instances share it; each record is written whole). */
SAGE_API sage_stream *sage_sink_file(sage_stream *in, const char *path, const sage_op_opts *opts);

/* Collector: gathers records in memory for tests and small results. Create
 * it before execute, read it after the job ended, destroy it after the env
 * that writes into it ended (or was destroyed). One collector per sink: the
 * plan refuses two sinks sharing one (SAGE_EPLAN). Bounded by max_bytes (0:
 * 1 GiB): a job that collects more fails with SAGE_ETOOBIG. In a remote env
 * the records travel back from the workers when the job ended. */
typedef struct sage_collector sage_collector;
SAGE_API sage_collector *sage_collector_create(size_t max_bytes);
SAGE_API void sage_collector_destroy(sage_collector *c); /* NULL is fine */
SAGE_API sage_stream *sage_sink_collect(sage_stream *in, sage_collector *c, const sage_op_opts *opts);
/* Records in instance order, then arrival order; the pointer stays valid
 * until the collector is destroyed. */
SAGE_API size_t sage_collector_count(const sage_collector *c);
SAGE_API const void *sage_collector_get(const sage_collector *c, size_t i, size_t *len);

/* Record helpers for fixed-width values (no alignment needed; 0 if len != 8).
 * Inline: they cost a load, not a call. */
static inline int64_t sage_rec_i64(const void *rec, size_t len)
{
    int64_t v = 0;
    if (rec && len == sizeof v)
        __builtin_memcpy(&v, rec, sizeof v);
    return v;
}
static inline double sage_rec_f64(const void *rec, size_t len)
{
    double v = 0;
    if (rec && len == sizeof v)
        __builtin_memcpy(&v, rec, sizeof v);
    return v;
}
static inline int sage_emit_i64(sage_out *out, int64_t v) { return sage_emit(out, &v, sizeof v); }
static inline int sage_emit_f64(sage_out *out, double v) { return sage_emit(out, &v, sizeof v); }
/* A NUL-terminated string as a record (without its NUL). */
static inline int sage_emit_str(sage_out *out, const char *s) { return sage_emit(out, s, __builtin_strlen(s)); }

#ifdef __cplusplus
}
#endif
#endif
