/* runtime/chan.h - what travels between tasks (batches of records) and the channel interface that carries them.
 *
 * A producer task sees every consumer as a channel: push a batch, and (on
 * cancel) wake whoever waits. The in-process queue (runtime/queue.c) and
 * the socket sender (runtime/netchan.c) are the two implementations; a
 * task's code is the same for both, and neither knows of the other.
 */
#ifndef SAGE_RUNTIME_CHAN_H
#define SAGE_RUNTIME_CHAN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A batch of records: [u32 len][u32 hash][bytes, padded to 8] each. hash:
 * on a key_by route, the low 32 bits of sage__hash64 of the record's key
 * (what the producer routed by; the consumer's per-key state uses them
 * instead of hashing the key again), 0 elsewhere or when not given. */
typedef struct sage__batch {
    struct sage__batch *next;
    uint32_t mark;  /* 0: records; else a SAGE__MARK_* from one producer, no records */
    uint32_t input; /* consumer input index the records belong to */
    uint32_t n;     /* records */
    uint32_t width; /* 0: records as above; > 0: packed, n records of width bytes, no headers (in-process only) */
    size_t used, cap;
    uint64_t first_ns; /* when its first record was appended (producer side, for flush linger) */
    uint64_t epoch;    /* SAGE__MARK_BARRIER: the checkpoint it belongs to; SAGE__MARK_PROBE: its round */
    _Alignas(8) unsigned char data[];
} sage__batch;

/* Markers: end-of-stream (nothing follows from that producer), and a
 * checkpoint barrier (everything that producer sent before it belongs to
 * the checkpoint; runtime/checkpoint.c). Queues always have room for them. */
#define SAGE__MARK_EOS 1u
#define SAGE__MARK_BARRIER 2u
/* Feedback loops (runtime/loop.c): a probe going round a loop (epoch: its
 * round), and an entry's "the inputs from outside the loop ended". */
#define SAGE__MARK_PROBE 3u
#define SAGE__MARK_INPUTS_ENDED 4u

#define SAGE__REC_HDR 8u
static inline size_t sage__rec_size(size_t len) { return SAGE__REC_HDR + ((len + 7u) & ~(size_t)7u); }
sage__batch *sage__batch_new(size_t cap);

typedef struct sage__chan sage__chan;
typedef struct sage__chan_ops {
    /* Hand b to the consumer (the channel owns it from here). Blocks while
     * the consumer is full: that is backpressure. On success *fresh (if
     * fresh is not NULL) is an empty batch of the channel's standard size
     * for the producer to fill next, or NULL. Returns 0 or a negative code
     * (SAGE_ECANCELED once the job's cancel flag is set and the channel
     * woken; SAGE_EIO / SAGE_EPROTO when a remote consumer is gone). */
    int (*push)(sage__chan *c, sage__batch *b, sage__batch **fresh);
    /* Wake every thread blocked in push (called after the cancel flag was set). */
    void (*wake)(sage__chan *c);
    /* Release the channel and everything it holds (no thread may use it). */
    void (*destroy)(sage__chan *c);
} sage__chan_ops;

/* The producer's view; implementations embed it as their first member. */
struct sage__chan {
    const sage__chan_ops *ops;
    size_t batch_bytes;           /* the consumer's standard batch size (received batches are recycled) */
    _Atomic int consumer_waiting; /* 1 while the consumer idles for input (always 1 for a remote one) */
    _Atomic uint64_t blocked_ns;  /* time producers spent blocked on this channel (backpressure) */
    int packed_ok;                /* the consumer reads packed batches (an in-process queue) */
};

static inline int sage__chan_push(sage__chan *c, sage__batch *b, sage__batch **fresh)
{
    return c->ops->push(c, b, fresh);
}

#endif
