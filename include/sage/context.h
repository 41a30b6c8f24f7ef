/* sage/context.h - what a user function knows about where it runs: identity, state, metrics, services. */
#ifndef SAGE_CONTEXT_H
#define SAGE_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "sage/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A sage_ctx belongs to one instance of one operator and is valid only on
 * that instance's thread, from open to close. Nothing here is thread-safe
 * across instances, and nothing needs to be: each instance has its own. */

/* Identity. Strings are owned by the engine and live as long as the job. */
SAGE_API const char *sage_ctx_job_name(const sage_ctx *ctx);
SAGE_API const char *sage_ctx_op_name(const sage_ctx *ctx);
SAGE_API int sage_ctx_instance(const sage_ctx *ctx); /* 0 .. parallelism-1 */
SAGE_API int sage_ctx_parallelism(const sage_ctx *ctx);
/* Records this instance has received so far (the current one included). */
SAGE_API uint64_t sage_ctx_records_in(const sage_ctx *ctx);
/* 1 once the job was asked to end: a graceful stop (sage_env_stop, a savepoint,
 * `sage job stop`), a cancel or a failure elsewhere; else 0. A source that
 * loops inside one call (rather than returning SAGE_MORE) checks it to
 * return in time; after a stop its emits still succeed (what it emits before
 * returning drains), after a cancel or failure they return SAGE_ECANCELED.
 * Any user function may ask; any thread of the job's. */
SAGE_API int sage_ctx_stop_requested(const sage_ctx *ctx);

/* Keyed operators (right after key_by, and joins): the key of the record
 * being processed. Returns NULL (and *len 0) on unkeyed operators and in
 * open/close. Valid until the function returns. */
SAGE_API const void *sage_ctx_key(const sage_ctx *ctx, size_t *len);

/* Instance state: a pointer of yours, kept for this instance (set it in
 * open, free it in close). */
SAGE_API void sage_ctx_set_local(sage_ctx *ctx, void *p);
SAGE_API void *sage_ctx_local(const sage_ctx *ctx);

/* Per-key state, kept by the engine: a block of `size` bytes for the current
 * key, zero-filled on first use, the same block every later time that key
 * comes back to this instance. One size per instance (its first call fixes
 * it; another size is refused). Returns NULL on unkeyed operators and in
 * open/close (no current key), for size 0, on a size mismatch or out of
 * memory; for the last two it also records the reason (as sage_ctx_fail
 * does): the job fails with it when your function then returns a negative
 * value (the code is the one you return). The pointer is valid until the
 * function returns. The block is aligned for any object of its size (to
 * 16 bytes from 16 bytes on). State lives until the env is destroyed. */
SAGE_API void *sage_ctx_state(sage_ctx *ctx, size_t size);
/* Visit every key's state of this instance, in the order keys were first
 * seen (typically in close, to emit final results: it works there, where
 * sage_ctx_state does not). The callback returns 0 to go on, non-zero to
 * stop (that value is returned); 0 when there is no state or fn is NULL. */
typedef int (*sage_state_visit_fn)(const void *key, size_t key_len, void *state, void *arg);
SAGE_API int sage_ctx_state_foreach(sage_ctx *ctx, sage_state_visit_fn fn, void *arg);
SAGE_API size_t sage_ctx_state_count(const sage_ctx *ctx);

/* Failing with a reason: record a message (printf-style) that the job's
 * error will carry, then return a negative value from your function. The
 * message belongs to the record being processed: one recorded for an
 * earlier record (say, a service call that timed out and was retried) is
 * not reused. */
SAGE_API void sage_ctx_fail(sage_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Metrics, per operator instance, read back after the run with
 * sage_env_metric(). Names are up to 63 bytes; at most SAGE_METRICS_MAX
 * per instance (the built-ins records_in and records_out included). */
#define SAGE_METRICS_MAX 32
SAGE_API int sage_ctx_counter_add(sage_ctx *ctx, const char *name, int64_t delta);
/* Record one observation in a histogram (any unit; use nanoseconds for
 * times, e.g. "processing_time"). Values are kept with about 1% precision. */
SAGE_API int sage_ctx_observe(sage_ctx *ctx, const char *name, double value);
/* A monotonic clock in nanoseconds, for timing. */
SAGE_API uint64_t sage_now_ns(void);

/* Resources assigned to this instance (see docs/resources.md). */
typedef struct sage_assignment {
    int ncpus;                    /* cores this instance's thread may run on */
    const int *cpus;              /* their ids */
    int exclusive;                /* 1: those cores are reserved for this instance */
    int ngpus;                    /* GPUs (or GPU shares) assigned */
    const int *gpus;              /* GPU ids */
    double gpu_fraction;          /* share of each GPU when num_gpus < 1, else 1 */
    uint64_t memory;              /* reserved bytes (0: none) */
    uint64_t object_store_memory; /* cap on this instance's engine buffers */
    const char *node;             /* node the instance was placed on */
    size_t ncustom;
    const sage_resource_amount *custom;
} sage_assignment;
SAGE_API const sage_assignment *sage_ctx_assignment(const sage_ctx *ctx);

/* ---------------------------------------------------------------------------
 * Services (registered on the env, see sage/env.h). A call blocks the caller
 * until the service answered or timeout_ms passed (SAGE_ETIMEDOUT); an
 * unknown name is SAGE_ENOSERVICE; timeout_ms < 0 waits without limit.
 * When the job is canceled or fails, every waiting caller gets
 * SAGE_ECANCELED at once (queued requests are dropped unserved). The
 * response is copied into resp (at most
 * resp_cap bytes; a longer one is SAGE_ETOOBIG) and *resp_len set.
 * ------------------------------------------------------------------------- */
SAGE_API int sage_call(sage_ctx *ctx, const char *service, const void *req, size_t req_len, int timeout_ms, void *resp,
                       size_t resp_cap, size_t *resp_len);

/* Asynchronous form: *fut receives a future to wait on and then destroy
 * (destroy is allowed before the answer came; the answer is then dropped). */
typedef struct sage_future sage_future;
SAGE_API int sage_call_async(sage_ctx *ctx, const char *service, const void *req, size_t req_len,
                             sage_future **fut); /* waits, without limit, while the service's queue is full */
/* Wait up to timeout_ms (negative: no limit) for the answer. On success
 * *resp points to the response bytes, owned by the future. */
SAGE_API int sage_future_wait(sage_future *fut, int timeout_ms, const void **resp, size_t *resp_len);
SAGE_API void sage_future_destroy(sage_future *fut); /* NULL is fine */

#ifdef __cplusplus
}
#endif
#endif
