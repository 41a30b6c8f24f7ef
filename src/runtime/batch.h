/* runtime/batch.h - batch operators at run time: collected input batches, views of queue batches, packed batches.
 *
 * A batch operator instance (op->batch) keeps a sage__bcoll: the records the
 * operator before it in the chain emitted one at a time, copied into one
 * buffer (columnar while they all have one length), handed to the function
 * when full, when the task finished an input batch or a source call
 * (sage__batch_flush_chain) and before its close hook. Queue batches that
 * reach a batch operator at the head of a task become a view without copying
 * (runtime/batch.c). Producers pack the records of a route's batch when the
 * route allows it (sage__route.packed): fixed-width records without headers,
 * which the consumer reads as a columnar view.
 */
#ifndef SAGE_RUNTIME_BATCH_H
#define SAGE_RUNTIME_BATCH_H

#include "runtime/runtime.h"

typedef struct sage__bcoll {
    size_t n, max_n;      /* records collected; at most max_n */
    size_t width;         /* columnar: every collected record has width bytes (packed) */
    int varied;           /* per record: recs and lens hold the records */
    unsigned char *bytes; /* the records' bytes, cap of them (the task's batch_bytes) */
    size_t used, cap;
    const void **recs; /* max_n each, allocated when first varied */
    size_t *lens;
    /* views of queue batches (the head of a task) */
    const void **vrecs;
    size_t *vlens;
    size_t vcap;
    unsigned char *pack; /* one-width records of a batch with headers, packed */
    size_t pack_cap;
} sage__bcoll;

/* The process function of a batch operator: collect one record (a per-record emit, or its task's input). */
int sage__batch_process(sage__opinst *in, int input, const void *rec, size_t len);
/* sage_out.push into a batch operator fused after the owner. */
int sage__batch_push(sage_out *o, const void *rec, size_t len);
/* A queue batch into a batch operator at the head of the task (records counted, function called). */
int sage__batch_input(sage__opinst *h, const sage__batch *b);
/* Hand every collected batch of the chain to its function, head first. */
int sage__batch_flush_chain(sage__task *t);
/* Hand over what a batch operator collected (before its close hook). */
int sage__batch_flush_one(sage__opinst *in);
void sage__batch_free(sage__opinst *in);

/* ---- packed batches (chan.h: width > 0) on routes that allow them ---- */
int sage__append_packed_slow(sage__task *t, sage__route *r, int tgt, const void *rec, size_t len);
/* Append one record to a packed route's pending batch for target tgt. */
static inline int sage__append_packed(sage__task *t, sage__route *r, int tgt, const void *rec, size_t len)
{
    sage__batch *b = r->pending[tgt];
    if (__builtin_expect(b && b->n && b->width == len && len && b->used + len <= b->cap, 1)) { /* width 0: rows */
        unsigned char *p = b->data + b->used;
        if (len == 8)
            __builtin_memcpy(p, rec, 8);
        else
            __builtin_memcpy(p, rec, len);
        b->used += len;
        b->n++;
        return 0;
    }
    return sage__append_packed_slow(t, r, tgt, rec, len);
}
/* n records of width bytes out of the task (sage_emit_batch at the end of a chain). */
int sage__task_emit_fixed(sage__task *t, const void *data, size_t width, size_t n);

#endif
