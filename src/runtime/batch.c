/* runtime/batch.c - batch operators: collecting records for them, views of queue batches, batch emits, packed batches.
 *
 * Design note. A batch operator is handed a sage_batch view; where its
 * records live depends on how they came:
 *   - a queue batch at the head of a task: packed (width > 0) it is the
 *     columnar view as it is; with headers, the view's recs/lens point into
 *     it (records of one width are packed into a scratch buffer first, so
 *     that one-width batches are always columnar, as sage/batch.h promises);
 *   - sage_emit_batch from the operator before it: the emitter's array,
 *     handed over as it is, after whatever was collected before it;
 *   - records emitted one at a time: copied into the instance's collection
 *     (sage__bcoll), columnar until a record of another length comes, then
 *     per record (recs/lens filled in for the ones already there).
 * A collection is handed over when full, and by sage__batch_flush_chain
 * after every input batch and source call (task.c), so none is pending
 * when a task waits, takes a checkpoint or ends; close_all hands over an
 * operator's collection before its close hook, since earlier close hooks
 * may have emitted into it.
 *
 * Producers pack: on a route whose targets are in-process queues and which
 * needs no key hash in the record headers (sage__route.packed), a pending
 * batch starts packed with the width of its first record and stays so while
 * records have that width; a record of another length turns it into the
 * header format in place (from the back) when there is room, or sends it.
 */
#include "runtime/batch.h"

#include <stdlib.h>
#include <string.h>

#include "util/time.h"

static inline int canceled(const sage__opinst *in)
{
    return atomic_load_explicit(&in->task->job->canceled, memory_order_relaxed);
}

static inline void add_emitted(sage_out *o, size_t n)
{
    atomic_store_explicit(&o->emitted, atomic_load_explicit(&o->emitted, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The instance's collection, made at first use. */
static sage__bcoll *bcoll_of(sage__opinst *in)
{
    if (in->bcoll)
        return in->bcoll;
    sage__bcoll *c = calloc(1, sizeof *c);
    size_t cap = in->task->batch_bytes ? in->task->batch_bytes : 16384;
    if (!c || !(c->bytes = malloc(cap))) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    c->max_n = cap / 8 > 16 ? cap / 8 : 16;
    in->bcoll = c;
    return c;
}

void sage__batch_free(sage__opinst *in)
{
    sage__bcoll *c = in->bcoll;
    if (!c)
        return;
    free(c->bytes);
    free(c->recs);
    free(c->lens);
    free(c->vrecs);
    free(c->vlens);
    free(c->pack);
    free(c);
    in->bcoll = NULL;
}

/* Call the operator's function on a view of n >= 1 records. */
static int call(sage__opinst *in, const sage_batch *v)
{
    if (canceled(in))
        return SAGE_ECANCELED;
    in->ctx.key = NULL;
    in->ctx.key_len = 0;
    int rc = in->op->batch_map ? in->op->batch_map(&in->ctx, v, &in->out, in->udata)
                               : in->op->batch_sink(&in->ctx, v, in->udata);
    return __builtin_expect(rc < 0, 0) ? sage__inst_fail_ret(in, rc, "its function") : 0;
}

static int hand_over(sage__opinst *in)
{
    sage__bcoll *c = in->bcoll;
    if (!c || c->n == 0)
        return 0;
    sage_batch v = {.n = c->n};
    if (c->varied) {
        v.recs = c->recs;
        v.lens = c->lens;
    } else {
        v.width = c->width;
        v.data = c->bytes;
    }
    int rc = call(in, &v);
    c->n = 0;
    c->used = 0;
    c->varied = 0;
    return rc;
}

int sage__batch_flush_one(sage__opinst *in) { return hand_over(in); }

int sage__batch_flush_chain(sage__task *t)
{
    for (size_t k = 0; k < t->nops; k++) {
        int rc = hand_over(&t->ops[k]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The collected columnar records become per record. */
static int to_varied(sage__bcoll *c)
{
    if (!c->recs) {
        c->recs = malloc(c->max_n * sizeof *c->recs);
        c->lens = malloc(c->max_n * sizeof *c->lens);
        if (!c->recs || !c->lens)
            return SAGE_ENOMEM;
    }
    for (size_t i = 0; i < c->n; i++) {
        c->recs[i] = c->bytes + i * c->width;
        c->lens[i] = c->width;
    }
    c->varied = 1;
    return 0;
}

static int collect(sage__opinst *in, const void *rec, size_t len)
{
    sage__bcoll *c = bcoll_of(in);
    if (!c)
        return sage__inst_fail(in, SAGE_ENOMEM);
    int rc;
    if (len > c->cap) { /* alone, as it is */
        if ((rc = hand_over(in)) < 0)
            return rc;
        sage_batch v = {.n = 1, .width = len, .data = rec};
        return call(in, &v);
    }
    if (c->n == c->max_n || c->used + len > c->cap)
        if ((rc = hand_over(in)) < 0)
            return rc;
    if (c->n == 0) {
        c->width = len;
        c->varied = 0;
        if (len == 0 && (rc = to_varied(c)) < 0)
            return sage__inst_fail(in, rc);
    } else if (!c->varied && len != c->width && (rc = to_varied(c)) < 0) {
        return sage__inst_fail(in, rc);
    }
    unsigned char *p = c->bytes + c->used;
    if (len)
        memcpy(p, rec, len);
    if (c->varied) {
        c->recs[c->n] = p;
        c->lens[c->n] = len;
    }
    c->used += len;
    c->n++;
    return 0;
}

int sage__batch_process(sage__opinst *in, int input, const void *rec, size_t len)
{
    if (!in->in_from)
        atomic_fetch_add_explicit(&in->ctx.records_in, 1, memory_order_relaxed);
    return collect(in, rec, len);
}

int sage__batch_push(sage_out *o, const void *rec, size_t len)
{
    if (__builtin_expect(atomic_load_explicit(o->canceled, memory_order_relaxed), 0))
        return SAGE_ECANCELED;
    add_emitted(o, 1);
    return collect(o->next, rec, len);
}

/* Room for n view entries. */
static int view_room(sage__bcoll *c, size_t n)
{
    if (n <= c->vcap)
        return 0;
    const void **r = realloc(c->vrecs, n * sizeof *r);
    if (r)
        c->vrecs = r;
    size_t *l = realloc(c->vlens, n * sizeof *l);
    if (l)
        c->vlens = l;
    if (!r || !l)
        return SAGE_ENOMEM;
    c->vcap = n;
    return 0;
}

int sage__batch_input(sage__opinst *h, const sage__batch *b)
{
    if (b->n == 0)
        return 0;
    atomic_fetch_add_explicit(&h->ctx.records_in, b->n, memory_order_relaxed);
    sage_batch v = {.n = b->n};
    if (b->width) { /* packed by the producer: the columnar view as it is */
        v.width = b->width;
        v.data = b->data;
        return call(h, &v);
    }
    sage__bcoll *c = bcoll_of(h);
    if (!c || view_room(c, b->n) != 0)
        return sage__inst_fail(h, SAGE_ENOMEM);
    const unsigned char *p = b->data;
    size_t w = 0;
    int same = 1;
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t len;
        memcpy(&len, p, 4);
        c->vrecs[i] = p + SAGE__REC_HDR;
        c->vlens[i] = len;
        if (i == 0)
            w = len;
        same &= len == w;
        p += sage__rec_size(len);
    }
    if (same && w > 0) { /* one width: columnar, as promised (one copy) */
        if (c->pack_cap < b->n * w) {
            unsigned char *np = realloc(c->pack, b->n * w);
            if (!np)
                return sage__inst_fail(h, SAGE_ENOMEM);
            c->pack = np;
            c->pack_cap = b->n * w;
        }
        for (uint32_t i = 0; i < b->n; i++)
            memcpy(c->pack + i * w, c->vrecs[i], w);
        v.width = w;
        v.data = c->pack;
    } else {
        v.recs = c->vrecs;
        v.lens = c->vlens;
    }
    return call(h, &v);
}

/* ---- emitting many records ---- */

static int bad_emit(sage_out *out, const char *why)
{
    sage_ctx_fail(&out->owner->ctx, "%s", why);
    return sage__inst_fail(out->owner, SAGE_EINVAL);
}

SAGE_API int sage_emit_batch(sage_out *out, const void *data, size_t width, size_t n)
{
    if (n == 0)
        return 0;
    if (!data || width == 0)
        return bad_emit(out, !data ? "sage_emit_batch: data is NULL" : "sage_emit_batch: width is 0");
    if (__builtin_expect(atomic_load_explicit(out->canceled, memory_order_relaxed), 0))
        return SAGE_ECANCELED;
    sage__opinst *nx = out->next;
    const unsigned char *p = data;
    if (nx && nx->op->batch) {
        add_emitted(out, n);
        sage__bcoll *c = nx->bcoll;
        if (c && c->n) {
            if (!c->varied && c->width == width && c->n + n <= c->max_n && c->used + n * width <= c->cap) {
                memcpy(c->bytes + c->used, p, n * width); /* a few more for the batch being collected */
                c->used += n * width;
                c->n += n;
                return 0;
            }
            int rc = hand_over(nx);
            if (rc < 0)
                return rc;
        }
        sage_batch v = {.n = n, .width = width, .data = data}; /* zero-copy */
        return call(nx, &v);
    }
    if (!nx && out->task) {
        add_emitted(out, n);
        return sage__task_emit_fixed(out->task, data, width, n);
    }
    for (size_t i = 0; i < n; i++, p += width) {
        int rc = out->push(out, p, width);
        if (rc < 0)
            return rc;
    }
    return 0;
}

SAGE_API int sage_emit_view(sage_out *out, const sage_batch *b)
{
    if (!b || b->n == 0)
        return 0;
    if (b->width)
        return sage_emit_batch(out, b->data, b->width, b->n);
    if (!b->recs || !b->lens)
        return bad_emit(out, "sage_emit_view: a view of width 0 without recs and lens");
    sage__opinst *nx = out->next;
    if (nx && nx->op->batch) {
        int same = b->lens[0] > 0;
        for (size_t i = 1; i < b->n && same; i++)
            same = b->lens[i] == b->lens[0];
        if (!same) { /* per record as it is, after what was collected */
            if (__builtin_expect(atomic_load_explicit(out->canceled, memory_order_relaxed), 0))
                return SAGE_ECANCELED;
            int rc = hand_over(nx);
            if (rc < 0)
                return rc;
            add_emitted(out, b->n);
            return call(nx, b);
        }
    }
    for (size_t i = 0; i < b->n; i++) { /* one width: collected columnar; or per record downstream */
        int rc = out->push(out, b->recs[i], b->lens[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- packed batches ---- */

/* A packed batch to the header format in place, with room for one more record of len bytes after it. */
static int to_rows(sage__batch *b, size_t len)
{
    size_t w = b->width, rs = sage__rec_size(w);
    if (b->n * rs + sage__rec_size(len) > b->cap)
        return 0;
    for (uint32_t i = b->n; i-- > 0;) { /* from the back: no record is overwritten before it moved */
        unsigned char *dst = b->data + (size_t)i * rs;
        memmove(dst + SAGE__REC_HDR, b->data + (size_t)i * w, w);
        uint32_t hdr[2] = {(uint32_t)w, 0};
        memcpy(dst, hdr, 8);
    }
    b->used = b->n * rs;
    b->width = 0;
    return 1;
}

static void append_row(sage__batch *b, const void *rec, size_t len)
{
    unsigned char *p = b->data + b->used;
    uint32_t hdr[2] = {(uint32_t)len, 0};
    memcpy(p, hdr, 8);
    if (len)
        memcpy(p + SAGE__REC_HDR, rec, len);
    b->used += sage__rec_size(len);
    b->n++;
}

int sage__append_packed_slow(sage__task *t, sage__route *r, int tgt, const void *rec, size_t len)
{
    sage__batch *b = r->pending[tgt];
    int rc;
    if (b && b->n) {
        if (b->width && b->width != len && to_rows(b, len)) {
            append_row(b, rec, len);
            return 0;
        }
        if (!b->width && b->used + sage__rec_size(len) <= b->cap) {
            append_row(b, rec, len);
            return 0;
        }
        if ((rc = sage__task_send(t, r, tgt)) < 0) /* full, or cannot change format: it goes */
            return rc;
        b = r->pending[tgt];
    }
    size_t need = len ? len : sage__rec_size(0);
    if (b && b->cap < need) {
        free(b);
        b = r->pending[tgt] = NULL;
    }
    if (!b) {
        size_t cap = r->targets[tgt]->batch_bytes;
        if (!(b = sage__batch_new(need > cap ? need : cap)))
            return SAGE_ENOMEM;
        r->pending[tgt] = b;
    }
    b->input = (uint32_t)r->input;
    b->first_ns = t->linger_ns ? sage__mono_ns() : 0;
    b->n = 0;
    b->used = 0;
    b->width = (uint32_t)len;
    if (len == 0) {
        append_row(b, rec, len);
        return 0;
    }
    memcpy(b->data, rec, len);
    b->used = len;
    b->n = 1;
    return 0;
}

/* Forward and rebalance routes take runs: as many records as fit in the target's batch, copied at once
 * (rebalance moves on to the next target when that batch is full). */
static int emit_runs(sage__task *t, sage__route *r, const unsigned char *p, size_t width, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int tgt = r->part == SAGE__PART_FORWARD ? r->self : (int)r->rr;
        sage__batch *b = r->pending[tgt];
        if (!b || !b->n || b->width != width || b->used + width > b->cap) {
            int rc = sage__append_packed_slow(t, r, tgt, p + i * width, width);
            if (rc < 0)
                return rc;
            i++;
            b = r->pending[tgt];
        }
        size_t room = b->width == width ? (b->cap - b->used) / width : 0, k = n - i < room ? n - i : room;
        if (k) {
            memcpy(b->data + b->used, p + i * width, k * width);
            b->used += k * width;
            b->n += (uint32_t)k;
            i += k;
        }
        if (r->part == SAGE__PART_REBALANCE && b->used + width > b->cap && ++r->rr == (uint32_t)r->ntargets)
            r->rr = 0;
    }
    return 0;
}

int sage__task_emit_fixed(sage__task *t, const void *data, size_t width, size_t n)
{
    const unsigned char *p = data;
    int runs = width <= t->max_record;
    for (size_t i = 0; i < t->nemit && runs; i++)
        runs = t->routes[i].packed &&
               (t->routes[i].part == SAGE__PART_FORWARD || t->routes[i].part == SAGE__PART_REBALANCE);
    if (!runs) {
        for (size_t i = 0; i < n; i++) {
            int rc = sage__task_emit(t, p + i * width, width);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    for (size_t i = 0; i < t->nemit; i++) {
        int rc = emit_runs(t, &t->routes[i], p, width, n);
        if (rc < 0)
            return rc;
    }
    return 0;
}
