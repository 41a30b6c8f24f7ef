/* runtime/queue.c - bounded many-producer one-consumer batch queue with blocking backpressure.
 *
 * Design note. Every task that has inputs owns one queue; all its upstream
 * task instances push whole batches into it. One FIFO per consumer (rather
 * than one per producer) keeps memory at O(tasks) and makes deadlock
 * impossible in a DAG: a consumer never waits for a particular input, so
 * whatever sits in its queue can always be processed, and sinks always make
 * progress. The queue is bounded twice: in bytes (a batch is accepted while
 * fewer than max_bytes are queued, or when the queue is empty, so one large
 * record always fits) and in data batches (max_data), which bounds the ring.
 * End-of-stream markers carry no data and have reserved slots (one per
 * producer), so sending one never blocks. Consumed batches of the standard
 * size are kept on a small free list and handed back to producers on their
 * next push: steady state allocates nothing.
 *
 * Condition variables are signalled only when somebody waits
 * (consumer_waiting, producers_waiting), so the uncontended path is one
 * lock/unlock per batch, and after the unlock (a thread woken under the
 * lock would block on it again). The consumer of a grouped task (group.c)
 * never waits here: a push rings its group's doorbell instead.
 */
#include "runtime/queue.h"

#include <stdlib.h>

#include "sage/error.h"
#include "util/time.h"

#define SAGE__QUEUE_FREE_MAX 8

sage__batch *sage__batch_new(size_t cap)
{
    sage__batch *b = malloc(sizeof *b + cap);
    if (!b)
        return NULL;
    b->next = NULL;
    b->mark = 0;
    b->epoch = 0;
    b->input = 0;
    b->n = 0;
    b->width = 0;
    b->used = 0;
    b->cap = cap;
    return b;
}

/* A batch that will not be processed: its records go as the job says. */
static void discard(sage__queue *q, sage__batch *b)
{
    if (q->dispose && b && !b->mark && b->n)
        q->dispose(b, q->dispose_arg);
    else
        free(b);
}

static int chan_push(sage__chan *c, sage__batch *b, sage__batch **fresh)
{
    return sage__queue_push((sage__queue *)c, b, fresh);
}
static void chan_wake(sage__chan *c) { sage__queue_wake((sage__queue *)c); }
static void chan_destroy(sage__chan *c)
{
    sage__queue_destroy((sage__queue *)c);
    free(c);
}
static const sage__chan_ops queue_ops = {chan_push, chan_wake, chan_destroy};

int sage__queue_init(sage__queue *q, size_t max_bytes, size_t batch_bytes, int nproducers, _Atomic int *canceled)
{
    q->chan.ops = &queue_ops;
    q->chan.batch_bytes = batch_bytes;
    q->chan.packed_ok = 1;
    atomic_init(&q->chan.consumer_waiting, 0);
    atomic_init(&q->chan.blocked_ns, 0);
    q->max_bytes = max_bytes;
    q->max_data = max_bytes / batch_bytes * 4 + 4; /* partial batches are common: allow more than bytes suggest */
    if (q->max_data > 256)
        q->max_data = 256;
    /* per producer: its end-of-stream, and one barrier or loop marker (a loop's entry: two) */
    q->slots = q->max_data + 3 * (size_t)nproducers + 1;
    q->ring = calloc(q->slots, sizeof *q->ring);
    if (!q->ring)
        return SAGE_ENOMEM;
    q->head = q->count = q->data_count = q->bytes = 0;
    atomic_init(&q->depth, 0);
    q->producers_waiting = 0;
    q->canceled = canceled;
    q->free = NULL;
    q->nfree = 0;
    q->dispose = NULL;
    q->dispose_arg = NULL;
    q->bell = NULL;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q->ring);
        return SAGE_ESYS;
    }
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return 0;
}

sage__queue *sage__queue_new(size_t max_bytes, size_t batch_bytes, int nproducers, _Atomic int *canceled)
{
    sage__queue *q = calloc(1, sizeof *q);
    if (q && sage__queue_init(q, max_bytes, batch_bytes, nproducers, canceled) != 0) {
        free(q);
        q = NULL;
    }
    return q;
}

void sage__queue_destroy(sage__queue *q)
{
    if (!q->ring)
        return;
    for (size_t i = 0; i < q->count; i++)
        discard(q, q->ring[(q->head + i) % q->slots]);
    while (q->free) {
        sage__batch *b = q->free;
        q->free = b->next;
        free(b);
    }
    free(q->ring);
    q->ring = NULL;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

static int full_for(const sage__queue *q, const sage__batch *b)
{
    if (b->mark || q->count == 0)
        return 0;
    return q->data_count >= q->max_data || q->bytes >= q->max_bytes;
}

int sage__queue_push(sage__queue *q, sage__batch *b, sage__batch **fresh)
{
    pthread_mutex_lock(&q->mu);
    if (full_for(q, b)) {
        uint64_t t0 = sage__mono_ns();
        q->producers_waiting++;
        while (full_for(q, b) && !atomic_load_explicit(q->canceled, memory_order_relaxed))
            pthread_cond_wait(&q->not_full, &q->mu);
        q->producers_waiting--;
        atomic_fetch_add_explicit(&q->chan.blocked_ns, sage__mono_ns() - t0, memory_order_relaxed);
    }
    if (atomic_load_explicit(q->canceled, memory_order_relaxed)) {
        pthread_mutex_unlock(&q->mu);
        discard(q, b);
        if (fresh)
            *fresh = NULL;
        return SAGE_ECANCELED;
    }
    q->ring[(q->head + q->count) % q->slots] = b;
    q->count++;
    if (!b->mark) {
        q->data_count++;
        q->bytes += b->used;
    }
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
    if (fresh) {
        *fresh = q->free;
        if (q->free) {
            q->free = q->free->next;
            q->nfree--;
        }
    }
    int wake = atomic_load_explicit(&q->chan.consumer_waiting, memory_order_relaxed);
    pthread_mutex_unlock(&q->mu);
    if (q->bell) { /* the depth stored above, then the sleeping flag read: group.c stores and reads the other way */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&q->bell->sleeping, memory_order_relaxed))
            sage__bell_ring(q->bell);
    } else if (wake) { /* after the unlock: a consumer woken under the lock would only block again on it */
        pthread_cond_signal(&q->not_empty);
    }
    return 0;
}

/* Put b on the free list (lock held); returns b if it must be freed instead. */
static sage__batch *keep_free(sage__queue *q, sage__batch *b)
{
    if (!b || b->cap != q->chan.batch_bytes || b->mark || q->nfree >= SAGE__QUEUE_FREE_MAX)
        return b;
    b->n = 0;
    b->width = 0;
    b->used = 0;
    b->next = q->free;
    q->free = b;
    q->nfree++;
    return NULL;
}

/* Latency mode (config idle_spin_us): with the lock released, poll the queue's depth for spin_ns before
 * sleeping, so a batch that comes soon is taken without the futex wake-up (tens of microseconds on a VM).
 * consumer_waiting stays set meanwhile: producers flush partial batches to us as to a sleeping consumer.
 * Called and returns with the lock held; 1 when something is queued (or the job was canceled). */
static int spin_for_input(sage__queue *q)
{
    pthread_mutex_unlock(&q->mu);
    uint64_t end = sage__mono_ns() + q->spin_ns;
    int got = 0;
    for (unsigned i = 0; !got; i++) {
        got = atomic_load_explicit(&q->depth, memory_order_acquire) > 0 ||
              atomic_load_explicit(q->canceled, memory_order_relaxed);
        if (!got && (i & 63) == 63 && sage__mono_ns() >= end)
            break;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&q->mu);
    if (q->count > 0 || atomic_load_explicit(q->canceled, memory_order_relaxed)) {
        atomic_store_explicit(&q->chan.consumer_waiting, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

int sage__queue_pop(sage__queue *q, int nowait, sage__batch *done, sage__batch **out)
{
    *out = NULL;
    pthread_mutex_lock(&q->mu);
    done = keep_free(q, done);
    while (q->count == 0) {
        if (atomic_load_explicit(q->canceled, memory_order_relaxed)) {
            pthread_mutex_unlock(&q->mu);
            free(done);
            return SAGE_ECANCELED;
        }
        if (nowait) {
            pthread_mutex_unlock(&q->mu);
            free(done);
            return 0;
        }
        atomic_store_explicit(&q->chan.consumer_waiting, 1, memory_order_relaxed);
        if (q->spin_ns && spin_for_input(q)) /* latency mode: a batch came while we polled */
            continue;
        pthread_cond_wait(&q->not_empty, &q->mu);
        atomic_store_explicit(&q->chan.consumer_waiting, 0, memory_order_relaxed);
    }
    if (atomic_load_explicit(q->canceled, memory_order_relaxed)) {
        pthread_mutex_unlock(&q->mu);
        free(done);
        return SAGE_ECANCELED;
    }
    sage__batch *b = q->ring[q->head];
    q->head = (q->head + 1) % q->slots;
    q->count--;
    if (!b->mark) {
        q->data_count--;
        q->bytes -= b->used;
    }
    atomic_store_explicit(&q->depth, q->count, memory_order_relaxed);
    int wake = q->producers_waiting != 0;
    pthread_mutex_unlock(&q->mu);
    if (wake)
        pthread_cond_broadcast(&q->not_full);
    free(done);
    *out = b;
    return 0;
}

sage__batch *sage__queue_take_free(sage__queue *q)
{
    pthread_mutex_lock(&q->mu);
    sage__batch *b = q->free;
    if (b) {
        q->free = b->next;
        q->nfree--;
        b->next = NULL;
        b->mark = 0;
        b->epoch = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

void sage__queue_recycle(sage__queue *q, sage__batch *b)
{
    pthread_mutex_lock(&q->mu);
    b = keep_free(q, b);
    pthread_mutex_unlock(&q->mu);
    free(b);
}

void sage__queue_wake(sage__queue *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    if (q->bell)
        sage__bell_ring(q->bell);
}

int sage__bell_init(sage__bell *b)
{
    b->rung = 0;
    atomic_init(&b->sleeping, 0);
    if (pthread_mutex_init(&b->mu, NULL) != 0)
        return SAGE_ESYS;
    if (pthread_cond_init(&b->cv, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        return SAGE_ESYS;
    }
    return 0;
}

void sage__bell_destroy(sage__bell *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
}

void sage__bell_ring(sage__bell *b)
{
    pthread_mutex_lock(&b->mu);
    b->rung = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}
