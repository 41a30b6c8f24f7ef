/* runtime/group.c - several instances of one chain on one thread (config chain_threads).
 *
 * Design note. A task normally has a thread of its own, which sleeps on its
 * queue when the queue is empty. With many more instances than cores (64
 * consumers on 2 cores), each consumer then drains its queue and sleeps
 * again for every batch: one wake-up per batch, paid by the producer, and a
 * woken consumer often preempts the producer on its core. A group is one
 * thread serving several consumer tasks of one chain in turn: one batch of
 * each member with something queued per pass, so while any member has
 * input the thread does not sleep. When none has, it first sends every
 * member's partial batches (the rule a task follows before it waits, so no
 * record waits in a batch while its producer sleeps), marks every member as
 * waiting (producers flush to it as to an idle consumer), and sleeps on the
 * group's doorbell, which every push into a member's queue rings while the
 * thread sleeps (queue.c; the depth store and the sleeping flag are ordered
 * by a fence on each side, so a push either sees the flag or is seen).
 *
 * Members keep everything else of a task: open and close hooks, restored
 * state, barriers, end-of-stream, failure. A member that blocks on a full
 * downstream queue holds the whole group: that is backpressure, and it
 * cannot deadlock, since a member never feeds another member of its chain
 * (no chain feeds itself outside a feedback loop, and loops are never
 * grouped). What a group changes is concurrency: a member's function that
 * waits (on I/O, a lock, a sleep) holds the other members of its thread,
 * which is why grouping is asked for (config chain_threads), never implied.
 * Which chains are grouped, and on how many threads, the plan decided
 * (plan/threads.c: never sources, loops, instances holding cores of their
 * own, a binding's operators); a group's thread takes the affinity its
 * members share.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint.h"
#include "runtime/runtime.h"

struct sage__group {
    sage__job *job;
    sage__task **members;
    sage__batch **done; /* per member: the batch its next pop recycles */
    int *live;          /* per member: not ended yet */
    int n, nlive;
    sage__bell bell;
    int bell_ok;
    pthread_t thread;
    int started;
};

int sage__groups_build(sage__job *job)
{
    const sage__plan *plan = job->plan;
    size_t want = 0;
    for (size_t c = 0; c < plan->nchains; c++)
        want += (size_t)plan->chains[c].threads; /* plan/threads.c decided which chains, and how many */
    if (!want)
        return 0;
    job->groups = calloc(want, sizeof *job->groups);
    if (!job->groups)
        return SAGE_ENOMEM;
    for (size_t c = 0, ti = 0; c < plan->nchains; ti += (size_t)plan->chains[c].parallelism, c++) {
        int p = plan->chains[c].parallelism, g = plan->chains[c].threads;
        for (int k = 0; k < g; k++) {
            sage__group *gr = &job->groups[job->ngroups++];
            int n = p / g + (k < p % g); /* instances k, k + g, k + 2g, ... */
            gr->job = job;
            gr->members = calloc((size_t)n, sizeof *gr->members);
            gr->done = calloc((size_t)n, sizeof *gr->done);
            gr->live = calloc((size_t)n, sizeof *gr->live);
            if (!gr->members || !gr->done || !gr->live)
                return SAGE_ENOMEM;
            if (sage__bell_init(&gr->bell) != 0)
                return SAGE_ESYS;
            gr->bell_ok = 1;
            for (int i = k; i < p; i += g) {
                sage__task *t = &job->tasks[ti + (size_t)i];
                t->grouped = 1;
                t->in->bell = &gr->bell;
                gr->members[gr->n++] = t;
            }
        }
    }
    return 0;
}

static void member_end(sage__group *g, int i, int rc, int finished)
{
    if (g->done[i]) {
        sage__queue_recycle(g->members[i]->in, g->done[i]);
        g->done[i] = NULL;
    }
    sage__task_end(g->members[i], rc, finished);
    g->live[i] = 0;
    g->nlive--;
}

/* Nothing queued for any member: send what they hold, then sleep until a push or a cancel rings. */
static void group_sleep(sage__group *g)
{
    for (int i = 0; i < g->n; i++) {
        if (!g->live[i])
            continue;
        int rc = sage__task_flush(g->members[i], 0);
        if (rc < 0)
            member_end(g, i, rc, 0);
    }
    if (!g->nlive)
        return;
    for (int i = 0; i < g->n; i++)
        if (g->live[i])
            atomic_store_explicit(&g->members[i]->in->chan.consumer_waiting, 1, memory_order_relaxed);
    atomic_store_explicit(&g->bell.sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst); /* the flag stored, then the depths read: queue.c does the reverse */
    int ready = atomic_load_explicit(&g->job->canceled, memory_order_relaxed);
    for (int i = 0; !ready && i < g->n; i++)
        ready = g->live[i] && atomic_load_explicit(&g->members[i]->in->depth, memory_order_relaxed) > 0;
    pthread_mutex_lock(&g->bell.mu);
    while (!ready && !g->bell.rung)
        pthread_cond_wait(&g->bell.cv, &g->bell.mu);
    g->bell.rung = 0;
    pthread_mutex_unlock(&g->bell.mu);
    atomic_store_explicit(&g->bell.sleeping, 0, memory_order_relaxed);
    for (int i = 0; i < g->n; i++)
        if (g->live[i])
            atomic_store_explicit(&g->members[i]->in->chan.consumer_waiting, 0, memory_order_relaxed);
}

static void *group_main(void *arg)
{
    sage__group *g = arg;
    const sage__assign *a = g->members[0]->assign; /* the same for every member (plan/threads.c) */
    int pinned = 0;
    if (a && a->pin) {
        int e = pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), &a->affinity);
        if (e != 0) {
            sage_ctx_fail(&g->members[0]->ops[0].ctx, "pinning to its cores failed: %s", strerror(e));
            pinned = sage__inst_fail(&g->members[0]->ops[0], SAGE_ESYS);
        }
    }
    for (int i = 0; i < g->n; i++) {
        sage__task *t = g->members[i];
        sage__enter(g->job); /* the task's pairing: sage__task_end leaves */
        int finished = sage__task_was_finished(t);
        int rc = pinned ? pinned : sage__task_begin(t, finished);
        g->live[i] = 1;
        g->nlive++;
        if (rc != 0 || finished)
            member_end(g, i, rc, finished);
    }
    while (g->nlive > 0) {
        int did = 0;
        for (int i = 0; i < g->n; i++) {
            if (!g->live[i])
                continue;
            sage__task *t = g->members[i];
            if (!g->done[i] && atomic_load_explicit(&t->in->depth, memory_order_relaxed) == 0 &&
                !atomic_load_explicit(&g->job->canceled, memory_order_relaxed))
                continue; /* nothing for it: no lock taken (a push missed here is seen before any sleep) */
            sage__batch *b;
            int rc = sage__queue_pop(t->in, 1, g->done[i], &b);
            g->done[i] = NULL;
            if (rc == 0 && !b)
                continue;
            did = 1;
            if (rc == 0)
                rc = sage__task_input(t, b, &g->done[i]);
            if (rc != 0)
                member_end(g, i, rc < 0 ? rc : 0, 0);
        }
        if (!did && g->nlive > 0)
            group_sleep(g);
    }
    return NULL;
}

size_t sage__groups_tasks(const sage__job *job)
{
    size_t n = 0;
    for (size_t i = 0; i < job->ngroups; i++)
        n += (size_t)job->groups[i].n;
    return n;
}

int sage__groups_start(sage__job *job, size_t *failed_tasks)
{
    *failed_tasks = 0;
    for (size_t i = 0; i < job->ngroups; i++) {
        sage__group *g = &job->groups[i];
        int e = pthread_create(&g->thread, NULL, group_main, g);
        if (e != 0) {
            for (size_t k = i; k < job->ngroups; k++)
                *failed_tasks += (size_t)job->groups[k].n;
            return e;
        }
        g->started = 1;
    }
    return 0;
}

void sage__groups_join(sage__job *job)
{
    for (size_t i = 0; i < job->ngroups; i++)
        if (job->groups[i].started) {
            pthread_join(job->groups[i].thread, NULL);
            job->groups[i].started = 0;
        }
}

void sage__groups_free(sage__job *job)
{
    for (size_t i = 0; i < job->ngroups; i++) {
        sage__group *g = &job->groups[i];
        free(g->members);
        free(g->done);
        free(g->live);
        if (g->bell_ok)
            sage__bell_destroy(&g->bell);
    }
    free(job->groups);
    job->groups = NULL;
    job->ngroups = 0;
}
