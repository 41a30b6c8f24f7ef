/* runtime/queue.h - the bounded inbound queue of one task: the in-process channel. */
#ifndef SAGE_RUNTIME_QUEUE_H
#define SAGE_RUNTIME_QUEUE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/chan.h"

/* Many producers, one consumer. Bounded in bytes (a batch is accepted when
 * the queue is empty or holds fewer than max_bytes) and in data batches;
 * end-of-stream markers always have a slot. push blocks while full (that is
 * backpressure), pop blocks while empty; both return early with
 * SAGE_ECANCELED once the job's cancel flag is set and the queue woken. */
/* A doorbell shared by the queues of one task group (runtime/group.c): a
 * thread serving several consumers sleeps on it instead of on one queue. */
typedef struct sage__bell {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int rung;             /* under mu */
    _Atomic int sleeping; /* the group's thread is about to sleep or sleeps: pushes ring */
} sage__bell;

int sage__bell_init(sage__bell *b);
void sage__bell_destroy(sage__bell *b);
void sage__bell_ring(sage__bell *b);

typedef struct sage__queue {
    sage__chan chan; /* the producers' side: push through sage__chan_push (or sage__queue_push) */
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    sage__batch **ring;
    size_t slots, head, count, data_count, max_data;
    size_t bytes, max_bytes;
    _Atomic size_t depth; /* count, readable without the lock */
    int producers_waiting;
    _Atomic int *canceled;
    sage__batch *free; /* recycled batches of the standard size */
    size_t nfree;
    /* how a batch whose records were never processed goes (NULL: free()); a binding's handles need a drop */
    void (*dispose)(sage__batch *b, void *arg);
    void *dispose_arg;
    uint64_t spin_ns; /* an empty queue's consumer polls this long before it sleeps (config idle_spin_us) */
    sage__bell *bell; /* the consumer is one of a group's tasks: it never waits in pop, pushes ring this */
} sage__queue;

int sage__queue_init(sage__queue *q, size_t max_bytes, size_t batch_bytes, int nproducers, _Atomic int *canceled);
void sage__queue_destroy(sage__queue *q);
/* A heap queue (init'd), released by its channel's destroy; NULL when out of memory. */
sage__queue *sage__queue_new(size_t max_bytes, size_t batch_bytes, int nproducers, _Atomic int *canceled);
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

#endif
