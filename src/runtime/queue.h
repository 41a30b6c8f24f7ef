/* runtime/queue.h - the bounded inbound queue of one task, and the record batches it carries. */
#ifndef SAGE_RUNTIME_QUEUE_H
#define SAGE_RUNTIME_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A batch of records: [u32 len][u32 reserved][bytes, padded to 8] each. */
typedef struct sage__batch {
    struct sage__batch *next;
    uint32_t eos;   /* 1: end-of-stream marker from one producer, no records */
    uint32_t input; /* consumer input index the records belong to */
    uint32_t n;     /* records */
    size_t used, cap;
    uint64_t first_ns; /* when its first record was appended (producer side, for flush linger) */
    _Alignas(8) unsigned char data[];
} sage__batch;

#define SAGE__REC_HDR 8u
static inline size_t sage__rec_size(size_t len) { return SAGE__REC_HDR + ((len + 7u) & ~(size_t)7u); }

/* Many producers, one consumer. Bounded in bytes (a batch is accepted when
 * the queue is empty or holds fewer than max_bytes) and in data batches;
 * end-of-stream markers always have a slot. push blocks while full (that is
 * backpressure), pop blocks while empty; both return early with
 * SAGE_ECANCELED once the job's cancel flag is set and the queue woken. */
typedef struct sage__queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    sage__batch **ring;
    size_t slots, head, count, data_count, max_data;
    size_t bytes, max_bytes;
    _Atomic int consumer_waiting;
    _Atomic size_t depth; /* count, readable without the lock */
    int producers_waiting;
    _Atomic int *canceled;
    sage__batch *free; /* recycled batches of the standard size */
    size_t nfree;
    size_t batch_bytes; /* standard batch capacity */
    _Atomic uint64_t blocked_ns; /* time producers spent waiting (backpressure) */
    struct sage__netsend *remote; /* set: the consumer is in another process (runtime/netchan.c) */
} sage__queue;

int sage__queue_init(sage__queue *q, size_t max_bytes, size_t batch_bytes, int nproducers, _Atomic int *canceled);
void sage__queue_destroy(sage__queue *q);
/* Hand a batch to the consumer. On success *fresh (if fresh != NULL) is a
 * recycled empty batch of the standard size, or NULL if none was available.
 * On SAGE_ECANCELED the batch is freed. */
int sage__queue_push(sage__queue *q, sage__batch *b, sage__batch **fresh);
/* Take the next batch; wait when empty unless nowait (then NULL, 0).
 * `done` (may be NULL) is a batch the consumer finished with: it is put on
 * the free list under the same lock, before any wait, so a producer woken
 * by this pop finds it there. */
int sage__queue_pop(sage__queue *q, int nowait, sage__batch *done, sage__batch **out);
/* An empty batch of the standard size from the free list, or NULL (for
 * producers in this process that fill batches themselves, like a network
 * receiver). */
sage__batch *sage__queue_take_free(sage__queue *q);
/* Give a consumed batch back for reuse (or free it). */
void sage__queue_recycle(sage__queue *q, sage__batch *b);
void sage__queue_wake(sage__queue *q); /* after setting the cancel flag */

sage__batch *sage__batch_new(size_t cap);

#endif
