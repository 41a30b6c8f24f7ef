/* sage/batch.h - batch operators: user functions that take a batch of records and emit into an output batch.
 *
 * A batch operator's function is called once per batch instead of once per
 * record, so its body can be a tight loop the compiler inlines and
 * vectorizes. Batch and per-record operators mix freely in one chain (and
 * fuse into one task like any other operators); what flows between them is
 * the same stream of records. Batch boundaries carry no meaning: the engine
 * chooses them (see "Where batches begin and end" below) and a function must
 * give the same records whatever way its input was cut.
 */
#ifndef SAGE_BATCH_H
#define SAGE_BATCH_H

#include <stddef.h>

#include "sage/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only view of n >= 1 records, in stream order. Exactly one of its two
 * forms is set:
 *   columnar (width > 0): every record has `width` bytes; record i is the
 *     bytes at (const char *)data + i * width. recs and lens are NULL. The
 *     engine gives this form whenever every record of the batch has the same
 *     nonzero length, so a stream of 8-byte integers always arrives as an
 *     array of them. data is 8-byte aligned when the engine packed the
 *     records; a view an upstream function handed over unchanged (see
 *     sage_emit_batch) is as aligned as that function's buffer. Read values
 *     with memcpy (sage_rec_i64 does): compilers make it a plain load.
 *   per record (width == 0): record i is recs[i], lens[i] bytes; data is NULL.
 * Ownership: the engine's (or the emitting function's), never the callee's.
 * The view and every byte it points to are valid only until the function
 * that received it returns; copy what you keep. Zero-copy: a batch whose
 * records came from another task is a view into the queue batch that
 * carried them (columnar when the producer packed them, which it does on
 * forward, rebalance and broadcast edges in one process; records routed by
 * key_by or from another process are copied once when they have one width,
 * to give the columnar form); within a chain, an upstream sage_emit_batch is
 * handed over without a copy, and records emitted one at a time are copied
 * once into the batch being collected. */
typedef struct sage_batch {
    size_t n;                /* records, >= 1 */
    size_t width;            /* > 0: the columnar form; 0: the per-record form */
    const void *data;        /* columnar: n * width bytes; else NULL */
    const void *const *recs; /* per record: the records; else NULL */
    const size_t *lens;      /* per record: their lengths; else NULL */
} sage_batch;

/* Record i of a batch in either form (i < b->n); its length into *len. */
static inline const void *sage_batch_rec(const sage_batch *b, size_t i, size_t *len)
{
    if (b->width) {
        *len = b->width;
        return (const char *)b->data + i * b->width;
    }
    *len = b->lens[i];
    return b->recs[i];
}

/* map_batches: emit any number of records (0..many per batch) through out,
 * with sage_emit (one record) or sage_emit_batch / sage_emit_view (many);
 * return 0, or a negative value to fail the job (the message names the
 * operator and the records it had received). sink_batches: consume the batch.
 * Like every user function, the same function runs concurrently in every
 * instance (sage/stream.h); per-key state (sage_ctx_state) is not available
 * to batch functions: sage_ctx_key is NULL during the call. */
typedef int (*sage_map_batch_fn)(sage_ctx *ctx, const sage_batch *in, sage_out *out, void *udata);
typedef int (*sage_sink_batch_fn)(sage_ctx *ctx, const sage_batch *in, void *udata);

/* Declaration, as sage_flat_map and sage_sink (sage/stream.h: opts, names,
 * errors, parallelism, hooks). Generated names are "map_batches_<id>" and
 * "sink_batches_<id>". After sage_key_by a batch operator receives the
 * records of its keys (each key reaches one instance), batched across keys.
 * Hooks: open and close run as for any operator; close runs after the last
 * batch (every record emitted before close was handed to the function) and
 * what close emits is delivered before end-of-stream goes on. */
SAGE_API sage_stream *sage_map_batches(sage_stream *in, sage_map_batch_fn fn, void *udata, const sage_op_opts *opts);
SAGE_API sage_stream *sage_sink_batches(sage_stream *in, sage_sink_batch_fn fn, void *udata, const sage_op_opts *opts);

/* Emit n records of `width` bytes each, packed at data (n * width bytes;
 * width > 0; n == 0 emits nothing). Same rules as sage_emit: only from inside
 * the function that was handed out, on its thread; 0 or a negative code to
 * return (canceled, failed downstream); may block (backpressure); the caller
 * may reuse data once it returns. When the next operator of the chain is a
 * batch operator, data is handed to it as its input view without a copy
 * (records already collected for it go first). The records leave the task in
 * the order given; on a rebalance edge a run of them goes to one consumer
 * instance (as many as fill a batch) before the next instance's turn. */
SAGE_API int sage_emit_batch(sage_out *out, const void *data, size_t width, size_t n);
/* Emit every record of a view (either form), e.g. the input unchanged or a
 * user-built one; as sage_emit_batch. A per-record view whose records all
 * have one width reaches a batch operator columnar (copied once). */
SAGE_API int sage_emit_view(sage_out *out, const sage_batch *b);

/* Where batches begin and end (what a batch function receives):
 * - at the head of a task (records from other tasks): one call per arriving
 *   queue batch (config batch_bytes; records of one producer instance);
 * - fused after other operators: the records emitted by the operator before
 *   it are collected and handed over when batch_bytes are collected (or
 *   about batch_bytes / 8 records; a batch of records of one length is
 *   columnar, one whose lengths differ per record), when an input queue
 *   batch was processed through the whole chain, after every source call,
 *   and before the operator's close hook. A record longer than batch_bytes
 *   is handed over alone. So nothing waits in a collected batch between two
 *   input batches or source calls: a checkpoint barrier, a pause or an idle
 *   wait finds every collected batch handed over.
 * - sage_emit_batch / sage_emit_view into it: see above.
 * On failure or cancel, collected records that were not handed over are
 * dropped, like records in flight between tasks. */

#ifdef __cplusplus
}
#endif
#endif
