/* runtime/loop.c - feedback loops at run time: the future's task, probe rounds, and the end of a loop.
 *
 * Design note. A loop (plan/loops.c) is a cycle of tasks through a future F.
 * Two things must hold that a DAG gets for free.
 *
 * It must end exactly. A task normally ends when every producer sent its
 * end-of-stream, but inside a loop each task waits, through the cycle, for
 * itself. So F decides: each entry task (one with inputs from outside the
 * loop) tells F over its control route when those inputs have all ended
 * (INPUTS_ENDED); from then on F sends a probe round the loop: every task
 * inside it passes round k's probe on (after the records it emitted before)
 * once it received it from each of its producers inside the loop, so the
 * probe sweeps everything sent before it. When round k has come back from
 * every producer of F and F passed on no record since it sent round k, no
 * record is left in the loop and none can enter: any record still inside
 * would have been emitted after its task passed the probe on, so caused by
 * a record that task received after the probe, and so on back to a record
 * F passed on after sending it (a record from outside cannot come: the
 * inputs ended before the round began). Then F sends end-of-stream, and
 * the loop's tasks end as in a DAG. Otherwise F sends round k + 1. A round
 * costs one marker per edge; rounds run only after the inputs ended, one at
 * a time, and each comes back only when the loop drained what was ahead of
 * it, so they never spin.
 *
 * It must not deadlock. F passes on what comes back into the loop's first
 * tasks; when they are full F would wait, the loop's last task would wait on
 * F's full queue, and the cycle would stall. So F's task has two threads:
 * its own takes batches off F's queue at once, always, into a backlog (by
 * bytes, at most config loop_buffer_bytes: past it the job fails naming the
 * future: a loop multiplying its records without end), and a sender thread
 * passes the backlog on, waiting for room as any producer does. Markers go
 * through the backlog too, so a probe never overtakes a record.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint.h"
#include "runtime/runtime.h"

static int in_loop(const sage__task *t, const sage__op *op) { return t->job->plan->ops[op->id].loop == t->loop; }

void sage__loop_setup(sage__task *t)
{
    const sage__plan *plan = t->job->plan;
    const sage__op *head = sage__chain_op(plan, t->chain, 0);
    t->loop = plan->ops[head->id].loop;
    t->ext_expected = t->probe_expected = t->probe_n = t->ext_seen = 0;
    t->probe_round = 0;
    if (t->loop < 0)
        return;
    for (size_t k = 0; k < head->ninputs; k++) {
        const sage__op *from = head->inputs[k].from;
        if (in_loop(t, from))
            t->probe_expected += from->parallelism;
        else
            t->ext_expected += from->parallelism;
    }
}

/* A marker to the routes that want it (probe: the routes inside the loop; inputs ended: the control route). */
static int send_marker(sage__task *t, uint32_t mark, uint64_t round)
{
    int rc = sage__task_flush(t, 0); /* what was emitted before goes before */
    for (size_t i = 0; i < t->nroutes && rc == 0; i++) {
        sage__route *r = &t->routes[i];
        if (mark == SAGE__MARK_PROBE ? !r->probe : i < t->nemit)
            continue;
        for (int k = 0; k < r->ntargets && rc == 0; k++) {
            sage__batch *b = sage__batch_new(0);
            if (!b)
                return SAGE_ENOMEM;
            b->mark = mark;
            b->epoch = round;
            b->input = (uint32_t)r->input;
            sage__leave(t->job);
            rc = sage__chan_push(r->targets[k], b, NULL);
            sage__enter(t->job);
        }
    }
    return rc;
}

static int loop_protocol_error(sage__task *t, const char *what)
{
    sage__job_fail(t->job, SAGE_EPROTO, "operator \"%s\" instance %d: %s", t->ops[0].op->name, t->instance, what);
    return SAGE_EPROTO;
}

int sage__loop_mark(sage__task *t, const sage__batch *b)
{
    if (t->loop < 0 || b->mark != SAGE__MARK_PROBE)
        return loop_protocol_error(t, "a loop marker reached a task outside any loop");
    if (b->epoch != t->probe_round) { /* the first probe of a new round */
        if (t->probe_n != 0 || b->epoch < t->probe_round)
            return loop_protocol_error(t, "a loop's probe rounds overlapped");
        t->probe_round = b->epoch;
    }
    if (++t->probe_n < t->probe_expected)
        return 0;
    t->probe_n = 0;
    return send_marker(t, SAGE__MARK_PROBE, t->probe_round);
}

int sage__loop_eos(sage__task *t, uint32_t input)
{
    const sage__op *head = t->ops[0].op;
    if (input >= head->ninputs || in_loop(t, head->inputs[input].from))
        return 0;
    if (++t->ext_seen == t->ext_expected)
        return send_marker(t, SAGE__MARK_INPUTS_ENDED, 0);
    return 0;
}

/* ---- the future's task ---- */

struct sage__future {
    sage__task *t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sage__batch *head, *tail; /* the backlog: batches and markers, in arrival order */
    size_t bytes, limit;
    int quit; /* the own thread is done: the sender stops once the backlog is sent (or at once on failure) */
    int rc;   /* the sender's result */
};

static void backlog_put(sage__future *f, sage__batch *b)
{
    b->next = NULL;
    pthread_mutex_lock(&f->mu);
    if (f->tail)
        f->tail->next = b;
    else
        f->head = b;
    f->tail = b;
    f->bytes += b->used;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int put_marker(sage__future *f, uint32_t mark, uint64_t round)
{
    sage__batch *m = sage__batch_new(0);
    if (!m)
        return SAGE_ENOMEM;
    m->mark = mark;
    m->epoch = round;
    backlog_put(f, m);
    return 0;
}

/* Pass one batch of records on, as the input loop would: each record through the future's pass-through. */
static int pass_on(sage__task *t, sage__batch *b)
{
    sage__opinst *h = &t->ops[0];
    const sage_binding_hooks *bh = t->job->binding && t->job->binding->drop ? t->job->binding : NULL;
    const unsigned char *p = b->data;
    const uint32_t w = b->width; /* packed: no headers (chan.h) */
    const size_t hdr = w ? 0 : SAGE__REC_HDR;
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t len = w;
        if (!w)
            memcpy(&len, p, 4);
        int rc = h->process(h, (int)b->input, p + hdr, len);
        if (__builtin_expect(bh != NULL, 0))
            bh->drop(p + hdr, len, bh->udata);
        if (rc < 0) {
            sage__batch_drop(t->job, b, i + 1);
            return rc;
        }
        p += w ? w : sage__rec_size(len);
    }
    return sage__task_flush(t, 1);
}

static void *sender_main(void *arg)
{
    sage__future *f = arg;
    sage__task *t = f->t;
    sage__enter(t->job);
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        if (!f->head && !f->quit) { /* idle: nothing may wait in a partial batch meanwhile */
            pthread_mutex_unlock(&f->mu);
            if ((rc = sage__task_flush(t, 0)) < 0)
                break;
            sage__leave(t->job);
            pthread_mutex_lock(&f->mu);
            while (!f->head && !f->quit)
                pthread_cond_wait(&f->cv, &f->mu);
            pthread_mutex_unlock(&f->mu);
            sage__enter(t->job);
            continue;
        }
        sage__batch *b = f->head;
        if (b) {
            f->head = b->next;
            if (!f->head)
                f->tail = NULL;
            f->bytes -= b->used;
        }
        pthread_mutex_unlock(&f->mu);
        if (!b)
            break; /* quit, and everything was sent */
        if (atomic_load_explicit(&t->job->canceled, memory_order_relaxed)) {
            sage__batch_drop(t->job, b, 0);
            free(b);
            rc = SAGE_ECANCELED;
            continue; /* drain the backlog: every record is dropped, none leaks */
        }
        if (b->mark == SAGE__MARK_PROBE) {
            rc = send_marker(t, SAGE__MARK_PROBE, b->epoch);
            free(b);
        } else if (b->mark == SAGE__MARK_EOS) {
            free(b);
            if ((rc = sage__task_flush(t, 0)) == 0 && (rc = sage__task_send_mark(t, SAGE__MARK_EOS, 0)) == 0)
                t->eos_sent = 1;
        } else {
            rc = pass_on(t, b);
            sage__queue_recycle(t->in, b);
            sage__task_maybe_snapshot(t);
        }
        if (rc < 0 && !atomic_load(&t->job->canceled))
            sage__job_fail(t->job, rc, "future \"%s\": passing records back into its loop: %s", t->ops[0].op->name,
                           sage_strerror(rc));
    }
    sage__leave(t->job);
    f->rc = rc;
    return NULL;
}

/* The future's own thread: everything off the queue at once; probe rounds; the end of the loop. */
static int take_inputs(sage__task *t, sage__future *f)
{
    const sage__op *op = t->ops[0].op;
    int ctl_expected = t->expected_eos - t->probe_expected, ctl_ended = 0, ended = 0, dirty = 0, rc;
    uint64_t round = 0;
    if (ctl_expected == 0 && (rc = put_marker(f, SAGE__MARK_PROBE, round = 1)) < 0) /* nothing enters the loop */
        return rc;
    for (;;) {
        sage__batch *b;
        if ((rc = sage__queue_pop(t->in, 1, NULL, &b)) < 0)
            return rc;
        if (!b) {
            sage__leave(t->job); /* waiting for input */
            rc = sage__queue_pop(t->in, 0, NULL, &b);
            sage__enter(t->job);
            if (rc < 0)
                return rc;
        }
        if (!b->mark) {
            if (ended) {
                sage__batch_drop(t->job, b, 0);
                free(b);
                sage__job_fail(t->job, SAGE_EPLAN,
                               "future \"%s\": a record came back into its loop after the loop ended (a close hook of "
                               "an operator inside the loop emitted into it)",
                               op->name);
                return SAGE_EPLAN;
            }
            dirty = 1;
            pthread_mutex_lock(&f->mu);
            size_t held = f->bytes + b->used;
            pthread_mutex_unlock(&f->mu);
            if (held > f->limit) {
                sage__batch_drop(t->job, b, 0);
                free(b);
                sage__job_fail(t->job, SAGE_ETOOBIG,
                               "future \"%s\": more than %zu bytes of records wait to go round its loop again "
                               "(config loop_buffer_bytes): the loop sends back more than its first operators take",
                               op->name, f->limit);
                return SAGE_ETOOBIG;
            }
            backlog_put(f, b);
            continue;
        }
        uint32_t mark = b->mark, input = b->input;
        uint64_t epoch = b->epoch;
        free(b);
        int control = input >= op->ninputs;
        if (mark == SAGE__MARK_EOS) {
            if (++t->eos_seen == t->expected_eos)
                return 0; /* every producer ended: the loop ended before */
        } else if (mark == SAGE__MARK_INPUTS_ENDED && control) {
            if (++ctl_ended == ctl_expected && (rc = put_marker(f, SAGE__MARK_PROBE, round = 1)) < 0)
                return rc;
            dirty = 0;
        } else if (mark == SAGE__MARK_PROBE && !control && epoch == round && !ended) {
            if (++t->probe_n < t->probe_expected)
                continue;
            t->probe_n = 0;
            if (!dirty) { /* a whole round and nothing came back: the loop is empty */
                ended = 1;
                if ((rc = put_marker(f, SAGE__MARK_EOS, 0)) < 0)
                    return rc;
            } else {
                dirty = 0;
                if ((rc = put_marker(f, SAGE__MARK_PROBE, ++round)) < 0)
                    return rc;
            }
        } else {
            return loop_protocol_error(t, "an unexpected marker reached a future");
        }
    }
}

int sage__loop_run(sage__task *t)
{
    sage__future f = {.t = t, .limit = t->job->cfg->loop_buffer_bytes};
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    pthread_t th;
    int e = pthread_create(&th, NULL, sender_main, &f);
    if (e != 0) {
        pthread_mutex_destroy(&f.mu);
        pthread_cond_destroy(&f.cv);
        sage_ctx_fail(&t->ops[0].ctx, "starting its sender thread: %s", strerror(e));
        return sage__inst_fail(&t->ops[0], SAGE_ESYS);
    }
    int rc = take_inputs(t, &f);
    if (rc < 0 && !atomic_load(&t->job->canceled)) /* the sender may wait for room: the failure wakes it */
        sage__job_fail(t->job, rc, "future \"%s\": %s", t->ops[0].op->name, sage_strerror(rc));
    pthread_mutex_lock(&f.mu);
    f.quit = 1;
    pthread_cond_signal(&f.cv);
    pthread_mutex_unlock(&f.mu);
    sage__leave(t->job);
    pthread_join(th, NULL);
    sage__enter(t->job);
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv);
    if (rc == 0 && f.rc < 0)
        rc = f.rc;
    if (rc == 0 && !t->eos_sent)
        rc = loop_protocol_error(t, "its loop's producers ended before the loop did");
    return rc;
}
