/* runtime/task.c - one task = one instance of a chain, on its own thread: records in, user functions, records out.
 *
 * Design note. Inside a task, records travel by direct calls: sage_emit()
 * calls the next operator's process function with the caller's pointer, so
 * a chained map -> filter -> sink copies nothing. Only at the end of the
 * chain (sage__task_emit) are records copied into per-target batches, which
 * are pushed whole into the consumer task's queue when full. Partial
 * batches are flushed (a) to consumers that are idle-waiting, after every
 * source call or input batch, and (b) all of them before the task itself
 * would wait for input, or when a source call emitted nothing. Rule (b) is
 * what guarantees no record ever waits in a partial batch while its
 * producer sleeps; rule (a) keeps latency low without shrinking batches
 * under load. End-of-stream: after its inputs ended (or its source
 * finished or was stopped), a task runs the close hooks (which may still
 * emit), flushes, and sends one end-of-stream marker to every consumer
 * task of every route.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/batch.h"
#include "runtime/checkpoint.h"
#include "runtime/runtime.h"
#include "util/hash.h"
#include "util/time.h"

static inline void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

static inline int job_canceled(const sage__job *job)
{
    return atomic_load_explicit(&job->canceled, memory_order_relaxed);
}

/* A fail message written during this very call (it belongs to it). */
static int msg_fresh(const sage__opinst *inst)
{
    return inst->ctx.failmsg[0] && inst->ctx.failmsg_in == sage__records_in(inst) &&
           inst->ctx.failmsg_calls == inst->ctx.calls;
}

/* what: the user code whose return value rc is ("its function"), or NULL for the engine's own codes. */
static int inst_fail(sage__opinst *inst, int rc, const char *what)
{
    sage__job *job = inst->task->job;
    if (job_canceled(job))
        return rc;
    int fresh = msg_fresh(inst);
    const char *why = fresh ? inst->ctx.failmsg : sage_strerror(rc);
    int known = strcmp(sage_err_name(rc), "SAGE_UNKNOWN") != 0;
    char code[160] = "", said[96];
    if (!fresh && !known) {
        snprintf(code, sizeof code, " (returned %d)", rc);
    } else if (!fresh && what) { /* a known code the user returned without a message: say it was returned */
        snprintf(said, sizeof said, "%s returned %d", what, rc);
        snprintf(code, sizeof code, " (%s: %s)", sage_err_name(rc), sage_strerror(rc));
        why = said;
    }
    int source = inst->op->kind == SAGE__OP_SOURCE;
    uint64_t n = source ? atomic_load_explicit(&inst->out.emitted, memory_order_relaxed) : sage__records_in(inst);
    sage__job_fail(job, known ? rc : SAGE_EUSER, "operator \"%s\" instance %d failed after %s%llu record%s: %s%s",
                   inst->op->name, inst->ctx.instance, source ? "emitting " : "", (unsigned long long)n,
                   n == 1 ? "" : "s", why, code);
    return rc;
}

int sage__inst_fail(sage__opinst *inst, int rc) { return inst_fail(inst, rc, NULL); }

int sage__inst_fail_ret(sage__opinst *inst, int rc, const char *what) { return inst_fail(inst, rc, what); }

/* ---- process functions, one per operator kind ---- */

/* The receiving side's key function returned kl, out of range. */
static int key_fail(sage__opinst *in, int kl)
{
    if (kl >= 0)
        sage_ctx_fail(&in->ctx, "key function returned length %d (at most %d)", kl, SAGE_KEY_MAX);
    return sage__inst_fail(in, kl < 0 ? kl : SAGE_ETOOBIG);
}

static int set_key(sage__opinst *in, int input, const void *rec, size_t len)
{
    const sage__edge *e = &in->op->inputs[input];
    sage_ctx *c = &in->ctx;
    c->key_hashed = 0;
    if (e->part != SAGE__PART_KEY) {
        c->key = NULL;
        c->key_len = 0;
        return 0;
    }
    int kl = e->key(rec, len, c->keybuf, e->key_udata);
    if (kl < 0 || kl > SAGE_KEY_MAX)
        return key_fail(in, kl);
    c->key = c->keybuf;
    c->key_len = (size_t)kl;
    return 0;
}

/* Keyed operators: compute the key on the receiving side, then the kind's function. */
static int proc_keyed(sage__opinst *in, int input, const void *rec, size_t len)
{
    if (set_key(in, input, rec, len) < 0)
        return SAGE_EUSER;
    return in->kind_process(in, input, rec, len);
}

static inline int proc_map_(sage__opinst *in, const void *rec, size_t len, int count_in)
{
    if (count_in)
        bump(&in->ctx.records_in);
    uint64_t before = atomic_load_explicit(&in->out.emitted, memory_order_relaxed);
    int rc = in->fn.map(&in->ctx, rec, len, &in->out, in->udata);
    if (__builtin_expect(rc < 0, 0))
        return sage__inst_fail_ret(in, rc, "its function");
    uint64_t emitted = atomic_load_explicit(&in->out.emitted, memory_order_relaxed) - before;
    if (__builtin_expect(emitted != 1, 0)) {
        sage_ctx_fail(&in->ctx,
                      "a map must emit exactly one record per input, this one emitted %llu (use sage_flat_map)",
                      (unsigned long long)emitted);
        return sage__inst_fail(in, SAGE_EINVAL);
    }
    return 0;
}

static inline int proc_flat_map_(sage__opinst *in, const void *rec, size_t len, int count_in)
{
    if (count_in)
        bump(&in->ctx.records_in);
    int rc = in->fn.map(&in->ctx, rec, len, &in->out, in->udata);
    return __builtin_expect(rc < 0, 0) ? sage__inst_fail_ret(in, rc, "its function") : 0;
}

static inline int proc_filter_(sage__opinst *in, const void *rec, size_t len, int count_in)
{
    if (count_in)
        bump(&in->ctx.records_in);
    int rc = in->fn.filter(&in->ctx, rec, len, in->udata);
    if (__builtin_expect(rc < 0, 0))
        return sage__inst_fail_ret(in, rc, "its function");
    return rc ? sage_emit(&in->out, rec, len) : 0;
}

static inline int proc_sink_(sage__opinst *in, const void *rec, size_t len, int count_in)
{
    if (count_in)
        bump(&in->ctx.records_in);
    int rc = in->fn.sink(&in->ctx, rec, len, in->udata);
    return __builtin_expect(rc < 0, 0) ? sage__inst_fail_ret(in, rc, "its function") : 0;
}

static int proc_map(sage__opinst *in, int input, const void *rec, size_t len) { return proc_map_(in, rec, len, 1); }
static int proc_flat_map(sage__opinst *in, int input, const void *rec, size_t len)
{
    return proc_flat_map_(in, rec, len, 1);
}
static int proc_filter(sage__opinst *in, int input, const void *rec, size_t len)
{
    return proc_filter_(in, rec, len, 1);
}
static int proc_sink(sage__opinst *in, int input, const void *rec, size_t len) { return proc_sink_(in, rec, len, 1); }

static int proc_comap(sage__opinst *in, int input, const void *rec, size_t len)
{
    bump(&in->ctx.records_in);
    int rc = in->op->cofns[input](&in->ctx, rec, len, &in->out, in->udata);
    return rc < 0 ? sage__inst_fail_ret(in, rc, "its function") : 0;
}

static int proc_union(sage__opinst *in, int input, const void *rec, size_t len)
{
    bump(&in->ctx.records_in);
    return sage_emit(&in->out, rec, len);
}

static int proc_join(sage__opinst *in, int input, const void *rec, size_t len)
{
    bump(&in->ctx.records_in);
    int rc = in->fn.join(&in->ctx, input, rec, len, &in->out, in->udata);
    return rc < 0 ? sage__inst_fail_ret(in, rc, "its function") : 0;
}

/* ---- sage_emit targets (sage_out.push) ---- */

#define SAGE__EMIT_CHECK(o)                                                                                            \
    do {                                                                                                               \
        if (__builtin_expect(atomic_load_explicit((o)->canceled, memory_order_relaxed), 0))                            \
            return SAGE_ECANCELED;                                                                                     \
        bump(&(o)->emitted);                                                                                           \
    } while (0)

/* Into the next operator of the chain: one call per emit, the kind's body
 * inlined. Two variants: operators that emit at most one record per input
 * (map, filter) skip the cancel check, because the input loop or source
 * loop that called them checks it for every batch or call; operators that
 * may emit without bound per input (sources, flat_map, comap, join, close
 * hooks) check it on every emit, so a cancel always stops them. */
#define SAGE__PUSH(kind)                                                                                               \
    static int push_##kind(sage_out *o, const void *d, size_t n)                                                       \
    {                                                                                                                  \
        bump(&o->emitted);                                                                                             \
        return proc_##kind##_(o->next, d, n, 0);                                                                       \
    }                                                                                                                  \
    static int push_##kind##_checked(sage_out *o, const void *d, size_t n)                                             \
    {                                                                                                                  \
        SAGE__EMIT_CHECK(o);                                                                                           \
        return proc_##kind##_(o->next, d, n, 0);                                                                       \
    }
SAGE__PUSH(map)
SAGE__PUSH(flat_map)
SAGE__PUSH(filter)
SAGE__PUSH(sink)
static int push_other(sage_out *o, const void *d, size_t n)
{
    SAGE__EMIT_CHECK(o);
    return o->next->process(o->next, 0, d, n);
}
/* Out of the task: into the routes' batches. */
static int push_task(sage_out *o, const void *d, size_t n)
{
    SAGE__EMIT_CHECK(o);
    return sage__task_emit(o->task, d, n);
}
static int push_nowhere(sage_out *o, const void *d, size_t n)
{
    sage_ctx_fail(&o->owner->ctx, "a sink cannot emit records");
    return sage__inst_fail(o->owner, SAGE_ESTATE);
}

/* always_check: every emit checks the cancel flag (close hooks, which no
 * input loop watches over). */
static sage__push_fn push_for(const sage_out *o, int always_check)
{
    if (!o->next)
        return o->task ? push_task : push_nowhere;
    if (o->next->op->batch)
        return sage__batch_push;
    if (o->next->op->keyed)
        return push_other;
    sage__op_kind k = o->owner->op->kind;
    int one = !always_check && (k == SAGE__OP_MAP || k == SAGE__OP_FILTER); /* at most one emit per input */
    switch (o->next->op->kind) {
    case SAGE__OP_MAP: return one ? push_map : push_map_checked;
    case SAGE__OP_FLAT_MAP: return one ? push_flat_map : push_flat_map_checked;
    case SAGE__OP_FILTER: return one ? push_filter : push_filter_checked;
    case SAGE__OP_SINK: return one ? push_sink : push_sink_checked;
    default: return push_other;
    }
}

static sage__process_fn kind_process(const sage__op *op)
{
    switch (op->kind) {
    case SAGE__OP_MAP: return proc_map;
    case SAGE__OP_FLAT_MAP: return proc_flat_map;
    case SAGE__OP_FILTER: return proc_filter;
    case SAGE__OP_SINK: return proc_sink;
    case SAGE__OP_COMAP: return proc_comap;
    case SAGE__OP_JOIN: return proc_join;
    case SAGE__OP_SOURCE: return NULL;
    }
    return NULL;
}

void sage__opinst_bind(sage__opinst *in)
{
    const sage__op *op = in->op;
    in->udata = op->udata;
    if (op->builtin != SAGE__BUILTIN_NONE)
        in->udata = (void *)op; /* the built-ins read their declared data from the operator */
    switch (op->kind) {
    case SAGE__OP_SOURCE:
        in->fn.source = op->builtin != SAGE__BUILTIN_NONE ? sage__builtin_source : op->fn.source;
        break;
    case SAGE__OP_MAP:
    case SAGE__OP_FLAT_MAP: in->fn.map = op->builtin == SAGE__BUILTIN_REDUCE ? sage__builtin_reduce : op->fn.map; break;
    case SAGE__OP_FILTER: in->fn.filter = op->fn.filter; break;
    case SAGE__OP_SINK: in->fn.sink = op->builtin != SAGE__BUILTIN_NONE ? sage__builtin_sink : op->fn.sink; break;
    case SAGE__OP_JOIN: in->fn.join = op->fn.join; break;
    default: break;
    }
    in->kind_process = op->builtin == SAGE__BUILTIN_UNION || op->builtin == SAGE__BUILTIN_FUTURE
                           ? proc_union
                           : kind_process(op);
    in->process = op->keyed ? proc_keyed : in->kind_process;
    if (op->batch) /* runtime/batch.c: no per-key context, the records are collected for the function */
        in->kind_process = in->process = sage__batch_process;
}

void sage__out_bind(sage_out *o) { o->push = push_for(o, 0); }

/* ---- leaving the task: batches per target ---- */

static int send_batch(sage__task *t, sage__route *r, int tgt);
int sage__task_send(sage__task *t, sage__route *r, int tgt) { return send_batch(t, r, tgt); }

static int send_batch(sage__task *t, sage__route *r, int tgt)
{
    sage__batch *b = r->pending[tgt];
    r->pending[tgt] = NULL;
    sage__batch *fresh = NULL;
    sage__leave(t->job); /* the push may wait for room downstream */
    int rc = sage__chan_push(r->targets[tgt], b, &fresh);
    sage__enter(t->job);
    r->pending[tgt] = fresh; /* may be NULL: allocated on next append */
    return rc;
}

/* Copy a record's bytes; short records (the common case) without a call. */
static inline void copy_bytes(unsigned char *d, const void *src, size_t n)
{
    const unsigned char *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n > 16) {
        memcpy(d, s, n);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    }
}

static int append_slow(sage__task *t, sage__route *r, int tgt, size_t need)
{
    sage__batch *b = r->pending[tgt];
    if (b && b->n > 0) {
        int rc = send_batch(t, r, tgt);
        if (rc < 0)
            return rc;
        b = r->pending[tgt];
    }
    if (b && b->used + need > b->cap) { /* an empty recycled batch too small for a large record */
        free(b);
        b = NULL;
    }
    if (!b) {
        size_t cap = r->targets[tgt]->batch_bytes;
        b = sage__batch_new(need > cap ? need : cap);
        if (!b)
            return SAGE_ENOMEM;
        r->pending[tgt] = b;
    }
    return 0;
}

/* hash32: the low 32 bits of the key's hash on a key_by route (the record
 * header's second word, see chan.h), else 0. */
static inline int append(sage__task *t, sage__route *r, int tgt, const void *rec, size_t len, uint32_t hash32)
{
    if (r->packed)
        return sage__append_packed(t, r, tgt, rec, len);
    size_t need = sage__rec_size(len);
    sage__batch *b = r->pending[tgt];
    if (__builtin_expect(!b || b->used + need > b->cap, 0)) {
        int rc = append_slow(t, r, tgt, need);
        if (rc < 0)
            return rc;
        b = r->pending[tgt];
    }
    if (b->n == 0) {
        b->input = (uint32_t)r->input;
        b->first_ns = t->linger_ns ? sage__mono_ns() : 0;
    }
    unsigned char *p = b->data + b->used;
    uint32_t hdr[2] = {(uint32_t)len, hash32};
    memcpy(p, hdr, 8);
    copy_bytes(p + SAGE__REC_HDR, rec, len);
    b->used += need;
    b->n++;
    if (__builtin_expect(t->job->binding != NULL, 0) && t->job->binding->copy)
        t->job->binding->copy(rec, len, t->job->binding->udata); /* the batch keeps it */
    return 0;
}

int sage__task_emit(sage__task *t, const void *rec, size_t len)
{
    if (__builtin_expect(len > t->max_record, 0)) {
        sage__opinst *tail = &t->ops[t->nops - 1];
        sage_ctx_fail(&tail->ctx, "emitted a record of %zu bytes, more than max_record_bytes (%zu)", len,
                      t->max_record);
        return sage__inst_fail(tail, SAGE_ETOOBIG);
    }
    for (size_t i = 0; i < t->nemit; i++) {
        sage__route *r = &t->routes[i];
        int tgt, rc;
        uint32_t hash32 = 0;
        switch (r->part) {
        case SAGE__PART_FORWARD: tgt = r->self; break;
        case SAGE__PART_REBALANCE:
            tgt = (int)r->rr;
            if (++r->rr == (uint32_t)r->ntargets)
                r->rr = 0;
            break;
        case SAGE__PART_KEY: {
            int kl = r->edge->key(rec, len, t->keybuf, r->edge->key_udata);
            if (__builtin_expect(kl < 0 || kl > SAGE_KEY_MAX, 0)) {
                sage__opinst *tail = &t->ops[t->nops - 1];
                if (msg_fresh(tail)) /* what the emitting function said (a binding's traceback) stands */
                    ;
                else if (kl >= 0)
                    sage_ctx_fail(&tail->ctx, "the key function of \"%s\" returned length %d (at most %d)",
                                  sage__chain_op(t->job->plan, t->chain, 0)->name, kl, SAGE_KEY_MAX);
                else
                    sage_ctx_fail(&tail->ctx, "the key function returned %d", kl);
                return sage__inst_fail(tail, kl < 0 ? SAGE_EUSER : SAGE_ETOOBIG);
            }
            uint64_t h = sage__hash64(t->keybuf, (size_t)kl);
            tgt = (int)sage__hash_bucket(h, (uint32_t)r->ntargets); /* the high bits */
            hash32 = (uint32_t)h;                                   /* the low bits, for the consumer's state */
            break;
        }
        case SAGE__PART_CUSTOM:
            tgt = r->edge->pfn(rec, len, r->ntargets, r->edge->pfn_udata);
            if (tgt < 0 || tgt >= r->ntargets) {
                sage__opinst *tail = &t->ops[t->nops - 1];
                if (!msg_fresh(tail))
                    sage_ctx_fail(&tail->ctx, "the custom partitioner returned %d for %d instances", tgt, r->ntargets);
                return sage__inst_fail(tail, SAGE_EINVAL);
            }
            break;
        case SAGE__PART_BROADCAST:
            for (int k = 0; k < r->ntargets; k++)
                if ((rc = append(t, r, k, rec, len, 0)) < 0)
                    return rc;
            continue;
        default: return SAGE_EPLAN;
        }
        if ((rc = append(t, r, tgt, rec, len, hash32)) < 0)
            return rc;
    }
    return 0;
}

/* only_hungry: flush just the partial batches whose consumer is idle-waiting
 * and that have lingered at least linger_ns (config flush_linger_us): idle
 * consumers get data soon, busy producers still send full batches. */
int sage__task_flush(sage__task *t, int only_hungry)
{
    uint64_t now = 0;
    for (size_t i = 0; i < t->nroutes; i++) {
        sage__route *r = &t->routes[i];
        for (int k = 0; k < r->ntargets; k++) {
            sage__batch *b = r->pending[k];
            if (!b || b->n == 0)
                continue;
            if (only_hungry) {
                if (!atomic_load_explicit(&r->targets[k]->consumer_waiting, memory_order_relaxed))
                    continue;
                if (r->linger_ns) {
                    if (!now)
                        now = sage__mono_ns();
                    if (now - b->first_ns < r->linger_ns)
                        continue;
                }
            }
            int rc = send_batch(t, r, k);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ---- the task loop ---- */

/* Between records: hand the control thread what only this thread may read. */
static inline void maybe_snapshot(sage__task *t)
{
    if (t->snap_fn && atomic_load_explicit(&t->snap_req, memory_order_relaxed)) {
        atomic_store(&t->snap_req, 0);
        t->snap_fn(t);
    }
}

void sage__task_maybe_snapshot(sage__task *t) { maybe_snapshot(t); }

static int run_source(sage__task *t)
{
    sage__opinst *h = &t->ops[0];
    sage__job *job = t->job;
    for (;;) {
        if (job_canceled(job))
            return SAGE_ECANCELED;
        if (atomic_load_explicit(&job->stopping, memory_order_relaxed))
            return 0;
        uint64_t want = atomic_load_explicit(&job->ckpt_req, memory_order_acquire);
        if (__builtin_expect(want > t->ckpt_epoch, 0)) { /* a checkpoint: its barrier goes out here */
            int rc = sage__task_source_barrier(t, want);
            if (rc < 0)
                return rc;
            continue;
        }
        if (atomic_load_explicit(&job->paused, memory_order_relaxed)) {
            /* paused: what is in flight drains, nothing new is produced */
            int rc = sage__task_flush(t, 0);
            if (rc < 0)
                return rc;
            sage__leave(job);
            pthread_mutex_lock(&job->mu);
            while (atomic_load(&job->paused) && !atomic_load(&job->canceled) && !atomic_load(&job->stopping) &&
                   atomic_load(&job->ckpt_req) <= t->ckpt_epoch)
                pthread_cond_wait(&job->pause_cv, &job->mu);
            pthread_mutex_unlock(&job->mu);
            sage__enter(job);
            continue;
        }
        uint64_t before = atomic_load_explicit(&h->out.emitted, memory_order_relaxed);
        h->ctx.calls++;
        int rc = h->fn.source(&h->ctx, &h->out, h->udata);
        if (rc < 0)
            return sage__inst_fail_ret(h, rc, "its function");
        if (rc == SAGE_DONE)
            return 0;
        if (rc != SAGE_MORE) {
            sage_ctx_fail(&h->ctx, "source returned %d (expected SAGE_MORE, SAGE_DONE or a negative error)", rc);
            return sage__inst_fail(h, SAGE_EINVAL);
        }
        int idle = atomic_load_explicit(&h->out.emitted, memory_order_relaxed) == before;
        if ((rc = sage__batch_flush_chain(t)) < 0) /* nothing waits in a collected batch between calls */
            return rc;
        maybe_snapshot(t);
        if ((rc = sage__task_flush(t, !idle)) < 0)
            return rc;
    }
}

/* A batch into a keyed operator (C functions only: a binding's key
 * function may cache per record, see python/src/route.c). Same calls, same
 * order, same failures as proc_keyed one record at a time, except that
 * each record's key is extracted KEY_AHEAD records before its function
 * runs, with its hash (the one the producer routed by, from the record
 * header, else computed here): its state's index slot is prefetched then,
 * and its entry KEY_AHEAD / 2 records before (keystate.h), so the lookup
 * the function makes through sage_ctx_state finds both in cache and does
 * not hash. The key function is still called once per record here, and
 * never past a record whose key it failed. On failure *at is the record
 * that failed. */
#define KEY_AHEAD 8 /* a power of two */

typedef struct ahead_rec {
    const unsigned char *rec;
    uint32_t len;
    int kl;
    uint64_t hash;
} ahead_rec;

static int keyed_batch(sage__opinst *in, const sage__edge *e, const sage__batch *b, uint32_t *at)
{
    unsigned char keys[KEY_AHEAD][SAGE_KEY_MAX];
    ahead_rec q[KEY_AHEAD];
    sage_ctx *c = &in->ctx;
    const unsigned char *p = b->data;
    uint32_t n = b->n, next = 0, i; /* next: the first record not yet keyed */
    int rc = 0, input = (int)b->input;
    for (i = 0; i < n; i++) {
        for (; next < n && next - i < KEY_AHEAD; next++) {
            ahead_rec *a = &q[next % KEY_AHEAD];
            memcpy(&a->len, p, 4);
            a->rec = p + SAGE__REC_HDR;
            p += sage__rec_size(a->len);
            a->kl = e->key(a->rec, a->len, keys[next % KEY_AHEAD], e->key_udata);
            if (__builtin_expect(a->kl < 0 || a->kl > SAGE_KEY_MAX, 0)) {
                n = next + 1; /* no key function past this record: it fails when its turn comes */
                continue;
            }
            uint32_t sent; /* the producer's hash of this key, if it sent one (chan.h) */
            memcpy(&sent, a->rec - 4, 4);
            a->hash = sent ? sent : sage__hash64(keys[next % KEY_AHEAD], (size_t)a->kl);
            if (c->ks)
                sage__keystate_prefetch_slot(c->ks, a->hash);
        }
        uint32_t m = i + KEY_AHEAD / 2;
        if (c->ks && m < next && q[m % KEY_AHEAD].kl >= 0 && q[m % KEY_AHEAD].kl <= SAGE_KEY_MAX)
            sage__keystate_prefetch_entry(c->ks, q[m % KEY_AHEAD].hash);
        const ahead_rec *a = &q[i % KEY_AHEAD];
        if (__builtin_expect(a->kl < 0 || a->kl > SAGE_KEY_MAX, 0)) {
            key_fail(in, a->kl);
            rc = SAGE_EUSER;
            break;
        }
        c->key = keys[i % KEY_AHEAD];
        c->key_len = (size_t)a->kl;
        c->key_hash = a->hash;
        c->key_hashed = 1;
        if ((rc = in->kind_process(in, input, a->rec, a->len)) < 0)
            break;
    }
    /* the ring dies with this call: the last key stays readable where proc_keyed leaves it */
    if (c->key && c->key != c->keybuf) {
        memcpy(c->keybuf, c->key, c->key_len);
        c->key = c->keybuf;
    }
    *at = i;
    return rc;
}

int sage__task_input(sage__task *t, sage__batch *b, sage__batch **done)
{
    sage__opinst *h = &t->ops[0];
    int rc = 0;
    *done = NULL;
    if (b->mark) {
        if (b->mark == SAGE__MARK_PROBE || b->mark == SAGE__MARK_INPUTS_ENDED) {
            rc = sage__loop_mark(t, b);
            free(b);
            return rc < 0 ? rc : 0;
        }
        uint64_t epoch = b->mark == SAGE__MARK_BARRIER ? b->epoch : 0;
        uint32_t input = b->input;
        free(b);
        if (!epoch && t->loop >= 0 && (rc = sage__loop_eos(t, input)) < 0)
            return rc;
        if (!epoch && ++t->eos_seen == t->expected_eos)
            return 1;
        if ((epoch || t->align_n) && (rc = sage__task_align(t, epoch)) < 0)
            return rc;
        return 0;
    }
    const unsigned char *p = b->data;
    uint64_t t0 = t->timed ? sage__mono_ns() : 0;
    const sage_binding_hooks *bh = t->job->binding && t->job->binding->drop ? t->job->binding : NULL;
    const sage__edge *ke = &h->op->inputs[b->input];
    if (h->op->batch) {
        rc = sage__batch_input(h, b);
        if (bh) /* the function is done with every record */
            sage__batch_drop(t->job, b, 0);
        if (rc < 0) {
            sage__queue_recycle(t->in, b);
            return rc;
        }
    } else if (h->process == proc_keyed && ke->part == SAGE__PART_KEY && !t->job->binding) {
        uint32_t at;
        if ((rc = keyed_batch(h, ke, b, &at)) < 0) {
            sage__batch_drop(t->job, b, at + 1); /* the rest will not be processed */
            sage__queue_recycle(t->in, b);
            return rc;
        }
    } else {
        const uint32_t w = b->width; /* packed: no headers (chan.h) */
        const size_t hdr = w ? 0 : SAGE__REC_HDR;
        for (uint32_t i = 0; i < b->n; i++) {
            uint32_t len = w;
            if (!w)
                memcpy(&len, p, 4);
            rc = h->process(h, (int)b->input, p + hdr, len);
            if (__builtin_expect(bh != NULL, 0))
                bh->drop(p + hdr, len, bh->udata); /* the function is done with it */
            if (rc < 0) {
                sage__batch_drop(t->job, b, i + 1); /* the rest will not be processed */
                sage__queue_recycle(t->in, b);
                return rc;
            }
            p += w ? w : sage__rec_size(len);
        }
    }
    if ((rc = sage__batch_flush_chain(t)) < 0) { /* the input batch went through the whole chain */
        sage__queue_recycle(t->in, b);
        return rc;
    }
    if (t->timed && b->n)
        sage__hist_record(&t->proc_ns, (double)(sage__mono_ns() - t0) / b->n);
    maybe_snapshot(t);
    if ((rc = sage__task_flush(t, 1)) < 0) {
        sage__queue_recycle(t->in, b);
        return rc;
    }
    *done = b;
    return 0;
}

static int run_inputs(sage__task *t)
{
    sage__batch *done = NULL; /* the batch just processed, recycled by the next pop */
    for (;;) {
        sage__batch *b;
        int rc = sage__queue_pop(t->in, 1, done, &b);
        done = NULL;
        if (rc < 0)
            return rc;
        if (!b) {
            if ((rc = sage__task_flush(t, 0)) < 0)
                return rc;
            sage__leave(t->job); /* waiting for input */
            rc = sage__queue_pop(t->in, 0, NULL, &b);
            sage__enter(t->job);
            if (rc < 0)
                return rc;
        }
        if ((rc = sage__task_input(t, b, &done)) != 0)
            return rc < 0 ? rc : 0;
    }
}

static int open_all(sage__task *t)
{
    for (size_t i = 0; i < t->nops; i++) {
        sage__opinst *in = &t->ops[i];
        int rc = 0;
        in->ctx.calls++;
        if (in->op->builtin != SAGE__BUILTIN_NONE)
            rc = sage__builtin_open(&in->ctx, in->udata);
        const char *what = NULL;
        if (rc == 0 && in->op->open) {
            rc = in->op->open(&in->ctx, in->op->udata);
            what = "its open hook";
        }
        if (rc < 0)
            return sage__inst_fail_ret(in, rc, what);
        in->opened = 1;
    }
    return 0;
}

/* Close hooks run head first, so what a close emits still flows through the
 * rest of the chain. They run on failure and cancel too (emits then fail). */
static int close_all(sage__task *t, int ok)
{
    int first = 0;
    for (size_t i = 0; i < t->nops; i++) /* what close hooks emit must fail once the job is canceled */
        t->ops[i].out.push = push_for(&t->ops[i].out, 1);
    for (size_t i = 0; i < t->nops; i++) {
        sage__opinst *in = &t->ops[i];
        int rc = 0;
        in->ctx.key = NULL;
        in->ctx.key_len = 0;
        if (!in->opened) {
            if (in->op->builtin != SAGE__BUILTIN_NONE) /* a failed built-in open may hold a file */
                sage__builtin_close(&in->ctx, &in->out, in->udata);
            continue;
        }
        if (in->op->builtin == SAGE__BUILTIN_REDUCE && ok) { /* the final values, before the user's close */
            in->ctx.calls++;
            if ((rc = sage__builtin_reduce_close(&in->ctx, &in->out, in->udata)) < 0)
                rc = sage__inst_fail(in, rc);
        }
        if (rc == 0 && in->op->batch && ok) /* what earlier close hooks emitted into it, before its own close */
            rc = sage__batch_flush_one(in);
        if (rc == 0 && in->op->close) {
            in->ctx.calls++;
            rc = in->op->close(&in->ctx, &in->out, in->op->udata);
            if (rc < 0 && ok)
                rc = sage__inst_fail_ret(in, rc, "its close hook");
        }
        if (in->op->builtin != SAGE__BUILTIN_NONE)
            sage__builtin_close(&in->ctx, &in->out, in->udata);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return ok ? first : 0;
}

int sage__task_begin(sage__task *t, int finished)
{
    if (finished) /* restored from a checkpoint taken after this task had ended: its output is all downstream */
        return sage__task_send_mark(t, SAGE__MARK_EOS, 0);
    int rc = open_all(t);
    if (rc == 0)
        rc = sage__task_restore(t);
    return rc;
}

int sage__task_run(sage__task *t)
{
    return sage__task_is_future(t) ? sage__loop_run(t) : t->in ? run_inputs(t) : run_source(t);
}

void sage__task_end(sage__task *t, int rc, int finished)
{
    sage__job *job = t->job;
    if (!finished) {
        int crc = close_all(t, rc == 0 && !job_canceled(job));
        if (rc == 0)
            rc = crc;
        if (rc == 0 && !t->eos_sent)
            rc = sage__task_flush(t, 0);
        if (rc == 0 && !t->eos_sent)
            rc = sage__task_send_mark(t, SAGE__MARK_EOS, 0);
    }
    for (size_t i = 0; i < t->nroutes; i++)
        for (int k = 0; k < t->routes[i].ntargets; k++) {
            sage__batch *b = t->routes[i].pending[k];
            if (b) /* a failure or cancel left records unsent */
                sage__batch_drop(job, b, 0);
            free(b);
            t->routes[i].pending[k] = NULL;
        }
    sage__leave(job);
    if (rc < 0 && !job_canceled(job))
        sage__job_fail(job, rc, "task of \"%s\" instance %d ended with %s", t->ops[0].op->name, t->instance,
                       sage_strerror(rc));
    t->rc = rc;
    pthread_mutex_lock(&job->mu);
    t->ended_ok = rc == 0;
    pthread_cond_broadcast(&job->ckpt_cv); /* a checkpoint's coordinator counts it as finished */
    if (--job->running_tasks == 0)
        pthread_cond_broadcast(&job->done_cv);
    pthread_mutex_unlock(&job->mu);
}

void *sage__task_main(void *arg)
{
    sage__task *t = arg;
    int rc = 0;
    if (t->assign && t->assign->pin) {
        int e = pthread_setaffinity_np(pthread_self(), sizeof(cpu_set_t), &t->assign->affinity);
        if (e != 0) {
            sage_ctx_fail(&t->ops[0].ctx, "pinning to its cores failed: %s", strerror(e));
            rc = sage__inst_fail(&t->ops[0], SAGE_ESYS);
        }
    }
    sage__enter(t->job); /* left only to wait, and at the end */
    int finished = sage__task_was_finished(t);
    if (rc == 0)
        rc = sage__task_begin(t, finished);
    if (rc == 0 && !finished)
        rc = sage__task_run(t);
    sage__task_end(t, rc, finished);
    return NULL;
}
