/* tests/unit/test_runtime_queue.c - the bounded batch queue: order, bounds, blocking and waking, cancel, reuse. */
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"
#include "runtime/queue.h"
#include "sage/error.h"

static sage__batch *data_batch(size_t cap, uint32_t tag)
{
    sage__batch *b = sage__batch_new(cap);
    b->n = tag;
    b->used = cap;
    return b;
}

static void fifo_and_bounds(void)
{
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 4096, 1024, 2, &canceled), 0);
    for (uint32_t i = 0; i < 4; i++)
        CHECK_INT(sage__queue_push(&q, data_batch(1024, i), NULL), 0);
    CHECK_INT(q.bytes, 4096); /* full: a fifth push would wait */
    /* end-of-stream markers always have a slot, even when the queue is full */
    sage__batch *eos = sage__batch_new(0);
    eos->mark = 1;
    CHECK_INT(sage__queue_push(&q, eos, NULL), 0);
    sage__batch *b;
    for (uint32_t i = 0; i < 4; i++) {
        CHECK_INT(sage__queue_pop(&q, 1, NULL, &b), 0);
        CHECK(b && !b->mark && b->n == i);
        free(b);
    }
    CHECK_INT(sage__queue_pop(&q, 1, NULL, &b), 0);
    CHECK(b && b->mark);
    free(b);
    CHECK_INT(sage__queue_pop(&q, 1, NULL, &b), 0);
    CHECK(b == NULL); /* empty, nowait */
    sage__queue_destroy(&q);
}

static void oversized_batch_fits_empty_queue(void)
{
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 1024, 1024, 1, &canceled), 0);
    CHECK_INT(sage__queue_push(&q, data_batch(1 << 20, 7), NULL), 0); /* one large record always fits */
    sage__batch *b;
    CHECK_INT(sage__queue_pop(&q, 0, NULL, &b), 0);
    CHECK_INT(b->n, 7);
    free(b);
    sage__queue_destroy(&q);
}

typedef struct producer {
    sage__queue *q;
    int n;
    int rc;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->n && p->rc == 0; i++) {
        sage__batch *fresh = NULL;
        p->rc = sage__queue_push(p->q, data_batch(1024, (uint32_t)i), &fresh);
        free(fresh);
    }
    return NULL;
}

static void blocked_producer_is_released_by_pop(void)
{
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 2048, 1024, 1, &canceled), 0);
    producer p = {&q, 1000, 0};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    /* the producer can be at most 2 batches ahead; every batch arrives, in order */
    uint32_t expect = 0;
    int ok = 1;
    sage__batch *done = NULL;
    while (expect < 1000) {
        sage__batch *b;
        if (sage__queue_pop(&q, 0, done, &b) != 0)
            break;
        ok &= b->n == expect++;
        pthread_mutex_lock(&q.mu);
        ok &= q.bytes <= 2048;
        pthread_mutex_unlock(&q.mu);
        done = b; /* handed back on the next pop */
    }
    free(done);
    pthread_join(t, NULL);
    CHECK(ok);
    CHECK_INT(expect, 1000);
    CHECK_INT(p.rc, 0);
    sage__queue_destroy(&q);
}

static void cancel_wakes_both_sides(void)
{
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 1024, 1024, 1, &canceled), 0);
    CHECK_INT(sage__queue_push(&q, data_batch(1024, 0), NULL), 0);
    producer p = {&q, 5, 0};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p); /* blocks: the queue is full */
    /* wait until the producer is really waiting: it bumps producers_waiting under the lock */
    for (;;) {
        pthread_mutex_lock(&q.mu);
        int waiting = q.producers_waiting;
        pthread_mutex_unlock(&q.mu);
        if (waiting)
            break;
        sched_yield();
    }
    atomic_store(&canceled, 1);
    sage__queue_wake(&q);
    pthread_join(t, NULL);
    CHECK_INT(p.rc, SAGE_ECANCELED);
    sage__batch *b;
    CHECK_INT(sage__queue_pop(&q, 0, NULL, &b), SAGE_ECANCELED);
    CHECK(b == NULL);
    sage__queue_destroy(&q);
}

static void recycled_batches_come_back(void)
{
    _Atomic int canceled = 0;
    sage__queue q;
    CHECK_INT(sage__queue_init(&q, 8192, 1024, 1, &canceled), 0);
    sage__batch *first = data_batch(1024, 1);
    CHECK_INT(sage__queue_push(&q, first, NULL), 0);
    sage__batch *b;
    CHECK_INT(sage__queue_pop(&q, 0, NULL, &b), 0);
    CHECK(b == first);
    sage__queue_recycle(&q, b);
    sage__batch *fresh = NULL;
    CHECK_INT(sage__queue_push(&q, data_batch(1024, 2), &fresh), 0);
    CHECK(fresh == first); /* the consumed batch is handed back to the producer */
    CHECK_INT(fresh->n, 0);
    CHECK_INT(fresh->used, 0);
    free(fresh);
    sage__queue_recycle(&q, sage__batch_new(77)); /* odd sizes are freed, not kept */
    CHECK_INT(q.nfree, 0);
    sage__queue_destroy(&q);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(fifo_and_bounds);
    RUN(oversized_batch_fits_empty_queue);
    RUN(blocked_producer_is_released_by_pop);
    RUN(cancel_wakes_both_sides);
    RUN(recycled_batches_come_back);
    return CHECK_DONE();
}
