/* resources/placement.c - atomic placement of every operator instance on nodes, and the "does not fit" report.
 *
 * Design note. Placement is first fit: requests are taken in order, the
 * instances of each request in order, and every instance goes to the first
 * node (in array order) where all of its keys fit at once. When that leaves
 * some instance without a place, a bounded search (search.c) looks
 * for any placement before the job is refused, so a job that fits is never
 * refused for the order of its declarations; jobs that first fit places
 * keep exactly that placement. All bookkeeping
 * happens on scratch counters (per node: a state per logical CPU, the load
 * of each shared core and of each GPU in units of 0.0001, memory and custom
 * amounts used). The first pass only decides; a request that fails part way
 * is rolled back off the scratch counters and marked as not fitting, and the
 * pass goes on with the next request so every request that does not fit is
 * reported. Only when every instance fits is the (deterministic) pass run a
 * second time, now writing the assignments; instances without a CPU request
 * then get, in a last step, every core of their node that nobody reserved
 * exclusively. On failure nothing is left allocated.
 *
 * CPU rule. The whole part of num_cpus takes that many exclusive logical
 * CPUs, the lowest free ids. A fractional part goes to a shared core: the
 * first shared core (highest id first, i.e. in the order they were opened)
 * with enough room left, else a new shared core opened at the highest free
 * id, so exclusive CPUs keep the low ids and shared ones grow from the top.
 * A shared core is never handed out exclusively (it counts as reserved, but
 * not exclusively: unreserved instances may run on it).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/place_fit.h"
#include "resources/placement.h"
#include "util/err.h"

/* Append to a message buffer, truncating quietly. */
typedef struct msgbuf {
    char *buf;
    size_t len, used;
} msgbuf;

static void mb_add(msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_add(msgbuf *m, const char *fmt, ...)
{
    if (!m->buf || m->len == 0 || m->used + 1 >= m->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->used, m->len - m->used, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    m->used += (size_t)n;
    if (m->used >= m->len)
        m->used = m->len - 1;
}

/* --------------------------------------------------------------- scratch */

void sage__pl_scratch_free(scratch *s)
{
    free(s->cpu_off);
    free(s->cpu);
    free(s->shared);
    free(s->gpu);
    free(s->mem);
    free(s->custom);
    memset(s, 0, sizeof *s);
}

int sage__pl_scratch_init(scratch *s, const sage__node *nodes, size_t nnodes)
{
    memset(s, 0, sizeof *s);
    s->nnodes = nnodes;
    s->cpu_off = calloc(nnodes, sizeof *s->cpu_off);
    size_t total = 0;
    if (s->cpu_off)
        for (size_t i = 0; i < nnodes; i++) {
            s->cpu_off[i] = total;
            total += (size_t)nodes[i].ncpus;
        }
    s->total_cpus = total;
    s->cpu = calloc(total ? total : 1, sizeof *s->cpu);
    s->shared = calloc(total ? total : 1, sizeof *s->shared);
    s->gpu = calloc(nnodes * SAGE__NODE_GPUS_MAX, sizeof *s->gpu);
    s->mem = calloc(nnodes, sizeof *s->mem);
    s->custom = calloc(nnodes * SAGE_RES_CUSTOM_MAX, sizeof *s->custom);
    if (!s->cpu_off || !s->cpu || !s->shared || !s->gpu || !s->mem || !s->custom) {
        sage__pl_scratch_free(s);
        return SAGE_ENOMEM;
    }
    return 0;
}

void sage__pl_scratch_copy(scratch *dst, const scratch *src)
{
    memcpy(dst->cpu, src->cpu, src->total_cpus * sizeof *src->cpu);
    memcpy(dst->shared, src->shared, src->total_cpus * sizeof *src->shared);
    memcpy(dst->gpu, src->gpu, src->nnodes * SAGE__NODE_GPUS_MAX * sizeof *src->gpu);
    memcpy(dst->mem, src->mem, src->nnodes * sizeof *src->mem);
    memcpy(dst->custom, src->custom, src->nnodes * SAGE_RES_CUSTOM_MAX * sizeof *src->custom);
}

/* ------------------------------------------------------------------ fit */

void sage__pl_need_of(const sage_resources *r, need *nd)
{
    long long c = llround(r->num_cpus * UNITS), g = llround(r->num_gpus * UNITS);
    nd->cpu_whole = (int)(c / UNITS);
    nd->cpu_frac = (int)(c % UNITS);
    if (g > 0 && g < UNITS) {
        nd->gpu_whole = 0;
        nd->gpu_frac = (int)g;
    } else {
        /* whole GPUs (validated requests have no other form above 1; round up) */
        nd->gpu_whole = (int)((g + UNITS - 1) / UNITS);
        nd->gpu_frac = 0;
    }
    uint64_t m = r->memory + r->object_store_memory;
    nd->mem = m < r->memory ? UINT64_MAX : m;
}

/* Custom amounts compare with a little slack so 0.1+0.2 fits in 0.3. */
static int custom_fits(double used, double want, double cap) { return used + want <= cap + 1e-9 * (cap > 1 ? cap : 1); }

static int node_custom_index(const sage__node *n, const char *name)
{
    for (size_t i = 0; i < n->ncustom && i < SAGE_RES_CUSTOM_MAX; i++)
        if (strcmp(n->custom[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Does one instance of r fit on node ni given the scratch counters? Fills pk. */
int sage__pl_fits(const sage__node *n, size_t ni, const scratch *s, const sage_resources *r, const need *nd, pick *pk)
{
    const unsigned char *cpu = s->cpu + s->cpu_off[ni];
    const int *shared = s->shared + s->cpu_off[ni];
    const int *gpu = s->gpu + ni * SAGE__NODE_GPUS_MAX;

    if (n->unavailable)
        return 0;

    /* memory */
    if (nd->mem > 0 && (nd->mem > n->memory || s->mem[ni] > n->memory - nd->mem))
        return 0;

    /* custom */
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++) {
        pk->custom_idx[c] = -1;
        if (!(r->custom[c].amount > 0))
            continue;
        int k = node_custom_index(n, r->custom[c].name);
        if (k < 0)
            return 0;
        if (!custom_fits(s->custom[ni * SAGE_RES_CUSTOM_MAX + (size_t)k], r->custom[c].amount, n->custom[k].amount))
            return 0;
        pk->custom_idx[c] = k;
    }

    /* CPUs: the lowest free ids exclusively, the fraction on a shared core */
    pk->ncpus = 0;
    pk->shared_core = -1;
    if (nd->cpu_whole > 0 || nd->cpu_frac > 0) {
        for (int k = 0; k < n->ncpus && pk->ncpus < nd->cpu_whole; k++)
            if (cpu[k] == CPU_FREE)
                pk->cpus[pk->ncpus++] = k;
        if (pk->ncpus < nd->cpu_whole)
            return 0;
        if (nd->cpu_frac > 0) {
            for (int k = n->ncpus - 1; k >= 0 && pk->shared_core < 0; k--)
                if (cpu[k] == CPU_SHARED && shared[k] + nd->cpu_frac <= UNITS)
                    pk->shared_core = k;
            if (pk->shared_core < 0) {
                int last_excl = pk->ncpus > 0 ? pk->cpus[pk->ncpus - 1] : -1;
                for (int k = n->ncpus - 1; k > last_excl && pk->shared_core < 0; k--)
                    if (cpu[k] == CPU_FREE)
                        pk->shared_core = k;
            }
            if (pk->shared_core < 0)
                return 0;
            pk->cpus[pk->ncpus++] = pk->shared_core;
        }
    }

    /* GPUs: whole ones untouched, a fraction on the lowest GPU with room */
    pk->ngpus = 0;
    int ng = n->ngpus < SAGE__NODE_GPUS_MAX ? n->ngpus : SAGE__NODE_GPUS_MAX;
    if (nd->gpu_whole > 0) {
        for (int g = 0; g < ng && pk->ngpus < nd->gpu_whole; g++)
            if (gpu[g] == 0)
                pk->gpus[pk->ngpus++] = g;
        if (pk->ngpus < nd->gpu_whole)
            return 0;
    } else if (nd->gpu_frac > 0) {
        for (int g = 0; g < ng && pk->ngpus == 0; g++)
            if (gpu[g] + nd->gpu_frac <= UNITS)
                pk->gpus[pk->ngpus++] = g;
        if (pk->ngpus == 0)
            return 0;
    }
    return 1;
}

void sage__pl_apply(const sage__node *n, size_t ni, scratch *s, const sage_resources *r, const need *nd, const pick *pk)
{
    unsigned char *cpu = s->cpu + s->cpu_off[ni];
    int *shared = s->shared + s->cpu_off[ni];
    int *gpu = s->gpu + ni * SAGE__NODE_GPUS_MAX;
    (void)n;
    for (int i = 0; i < pk->ncpus; i++) {
        int k = pk->cpus[i];
        if (k == pk->shared_core) {
            cpu[k] = CPU_SHARED;
            shared[k] += nd->cpu_frac;
        } else {
            cpu[k] = CPU_EXCL;
        }
    }
    for (int i = 0; i < pk->ngpus; i++)
        gpu[pk->gpus[i]] += nd->gpu_whole > 0 ? UNITS : nd->gpu_frac;
    s->mem[ni] += nd->mem;
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++)
        if (pk->custom_idx[c] >= 0)
            s->custom[ni * SAGE_RES_CUSTOM_MAX + (size_t)pk->custom_idx[c]] += r->custom[c].amount;
}

/* ------------------------------------------------------------ assignments */

static void set_affinity(const sage__node *n, sage__assign *a)
{
    CPU_ZERO(&a->affinity);
    for (int i = 0; i < a->ncpus; i++) {
        int k = a->cpus[i];
        int real = n->nreal > 0 ? n->real_cpus[k % n->nreal] : k; /* no real set known: identity */
        if (real >= 0 && real < CPU_SETSIZE)
            CPU_SET(real, &a->affinity);
    }
}

static int fill_assign(const sage__node *nodes, size_t ni, const sage_resources *r, const need *nd, const pick *pk,
                       sage__assign *a)
{
    a->node = (int)ni;
    a->ncpus = pk->ncpus;
    if (pk->ncpus > 0) {
        a->cpus = malloc((size_t)pk->ncpus * sizeof *a->cpus);
        if (!a->cpus)
            return SAGE_ENOMEM;
        memcpy(a->cpus, pk->cpus, (size_t)pk->ncpus * sizeof *a->cpus);
    }
    a->exclusive = nd->cpu_whole > 0 && nd->cpu_frac == 0;
    a->cpu_share = nd->cpu_frac > 0 ? (double)nd->cpu_frac / UNITS : 0;
    a->pin = pk->ncpus > 0;
    set_affinity(&nodes[ni], a);
    a->ngpus = pk->ngpus;
    if (pk->ngpus > 0) {
        a->gpus = malloc((size_t)pk->ngpus * sizeof *a->gpus);
        if (!a->gpus)
            return SAGE_ENOMEM;
        for (int i = 0; i < pk->ngpus; i++)
            a->gpus[i] = nodes[ni].gpu_ids[pk->gpus[i]];
    }
    a->gpu_fraction = nd->gpu_frac > 0 ? (double)nd->gpu_frac / UNITS : 1.0;
    a->memory = r->memory;
    a->object_store_memory = r->object_store_memory;
    a->ncustom = 0;
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++)
        if (r->custom[c].amount > 0)
            a->custom[a->ncustom++] = r->custom[c];
    return 0;
}

/* Instances without a CPU request: every core of the node nobody holds exclusively. */
static int fill_unreserved(const sage__node *nodes, const scratch *s, sage__assign *a)
{
    const sage__node *n = &nodes[a->node];
    const unsigned char *cpu = s->cpu + s->cpu_off[a->node];
    int count = 0;
    for (int k = 0; k < n->ncpus; k++)
        if (cpu[k] != CPU_EXCL)
            count++;
    a->exclusive = 0;
    a->cpu_share = 0;
    a->ncpus = count;
    a->pin = count > 0;
    CPU_ZERO(&a->affinity);
    if (count == 0)
        return 0;
    a->cpus = malloc((size_t)count * sizeof *a->cpus);
    if (!a->cpus)
        return SAGE_ENOMEM;
    int j = 0;
    for (int k = 0; k < n->ncpus; k++)
        if (cpu[k] != CPU_EXCL)
            a->cpus[j++] = k;
    set_affinity(n, a);
    return 0;
}

static void fill_pub(const sage__node *nodes, sage__assign *a) { sage__assign_publish(a, nodes[a->node].name); }

void sage__assign_publish(sage__assign *a, const char *node)
{
    a->pub.ncpus = a->ncpus;
    a->pub.cpus = a->cpus;
    a->pub.exclusive = a->exclusive;
    a->pub.ngpus = a->ngpus;
    a->pub.gpus = a->gpus;
    a->pub.gpu_fraction = a->gpu_fraction;
    a->pub.memory = a->memory;
    a->pub.object_store_memory = a->object_store_memory;
    a->pub.node = node;
    a->pub.ncustom = a->ncustom;
    a->pub.custom = a->custom;
}

void sage__assign_free(sage__assign **a, const sage__place_req *reqs, size_t nreqs)
{
    if (!a)
        return;
    for (size_t i = 0; i < nreqs; i++) {
        if (!a[i])
            continue;
        int p = reqs ? reqs[i].parallelism : 0;
        for (int j = 0; j < p; j++) {
            free(a[i][j].cpus);
            free(a[i][j].gpus);
        }
        free(a[i]);
    }
    free(a);
}

/* ---------------------------------------------------------------- report */

static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

/* " num_cpus=4 memory=8GB ..." for one instance (times = 1) or all of them. */
static void add_asks(msgbuf *m, const sage_resources *r, uint64_t times)
{
    char b[48];
    const char *sep = "";
    if (r->num_cpus > 0) {
        mb_add(m, "%snum_cpus=%g", sep, r->num_cpus * (double)times);
        sep = " ";
    }
    if (r->num_gpus > 0) {
        mb_add(m, "%snum_gpus=%g", sep, r->num_gpus * (double)times);
        sep = " ";
    }
    if (r->memory > 0) {
        sage__format_bytes(mul_sat(r->memory, times), b, sizeof b);
        mb_add(m, "%smemory=%s", sep, b);
        sep = " ";
    }
    if (r->object_store_memory > 0) {
        sage__format_bytes(mul_sat(r->object_store_memory, times), b, sizeof b);
        mb_add(m, "%sobject_store_memory=%s", sep, b);
        sep = " ";
    }
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++) {
        if (!(r->custom[c].amount > 0))
            continue;
        mb_add(m, "%s%s=%g", sep, r->custom[c].name, r->custom[c].amount * (double)times);
        sep = " ";
    }
}

/* The most any single node has of each key the request uses (total capacity).
 * memory and object_store_memory share the node's memory: shown once, as memory. */
static void add_offers(msgbuf *m, const sage__node *nodes, size_t nnodes, const sage_resources *r)
{
    char b[48];
    const char *sep = "";
    if (r->num_cpus > 0) {
        int best = 0;
        for (size_t i = 0; i < nnodes; i++)
            if (nodes[i].ncpus > best)
                best = nodes[i].ncpus;
        mb_add(m, "%snum_cpus=%g", sep, (double)best);
        sep = " ";
    }
    if (r->num_gpus > 0) {
        int best = 0;
        for (size_t i = 0; i < nnodes; i++)
            if (nodes[i].ngpus > best)
                best = nodes[i].ngpus;
        mb_add(m, "%snum_gpus=%g", sep, (double)best);
        sep = " ";
    }
    if (r->memory > 0 || r->object_store_memory > 0) {
        uint64_t best = 0;
        for (size_t i = 0; i < nnodes; i++)
            if (nodes[i].memory > best)
                best = nodes[i].memory;
        sage__format_bytes(best, b, sizeof b);
        mb_add(m, "%smemory=%s", sep, b);
        sep = " ";
    }
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++) {
        if (!(r->custom[c].amount > 0))
            continue;
        double best = 0;
        for (size_t i = 0; i < nnodes; i++) {
            int k = node_custom_index(&nodes[i], r->custom[c].name);
            if (k >= 0 && nodes[i].custom[k].amount > best)
                best = nodes[i].custom[k].amount;
        }
        mb_add(m, "%s%s=%g", sep, r->custom[c].name, best);
        sep = " ";
    }
}

/* The amounts of the keys r asks for that one request holds in all (0 when it holds none of them). */
static int holds(const sage_resources *r, const sage__place_req *h, sage_resources *out)
{
    memset(out, 0, sizeof *out);
    int any = 0;
    double p = h->parallelism;
    if (r->num_cpus > 0 && h->res.num_cpus > 0)
        any = (out->num_cpus = h->res.num_cpus * p) > 0;
    if (r->num_gpus > 0 && h->res.num_gpus > 0)
        any |= (out->num_gpus = h->res.num_gpus * p) > 0;
    if ((r->memory > 0 || r->object_store_memory > 0) && (h->res.memory > 0 || h->res.object_store_memory > 0)) {
        out->memory = mul_sat(h->res.memory + h->res.object_store_memory, (uint64_t)h->parallelism);
        any = 1;
    }
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++)
        for (size_t d = 0; d < h->res.ncustom && d < SAGE_RES_CUSTOM_MAX; d++)
            if (r->custom[c].amount > 0 && h->res.custom[d].amount > 0 &&
                strcmp(r->custom[c].name, h->res.custom[d].name) == 0 && out->ncustom < SAGE_RES_CUSTOM_MAX) {
                out->custom[out->ncustom] = h->res.custom[d];
                out->custom[out->ncustom++].amount *= p;
                any = 1;
            }
    return any;
}

/* What the job's placed operators and the running jobs already hold of the keys request i asks for. */
static void add_holdings(msgbuf *m, const sage__place_req *reqs, size_t nreqs, const unsigned char *failed, size_t i,
                         const sage__held *held, size_t nheld)
{
    const sage_resources *r = &reqs[i].res;
    sage_resources h;
    int shown = 0;
    for (size_t j = 0; j < nreqs; j++) {
        if (j == i || failed[j] || !holds(r, &reqs[j], &h))
            continue;
        if (shown == 4) {
            mb_add(m, ", ...");
            break;
        }
        mb_add(m, shown ? ", \"%s\" " : "; already placed: operator \"%s\" holds ", reqs[j].name ? reqs[j].name : "?");
        add_asks(m, &h, 1);
        shown++;
    }
    sage_resources sum = {0};
    int any = 0;
    for (size_t k = 0; k < nheld; k++)
        for (size_t j = 0; j < held[k].nreqs; j++)
            if (holds(r, &held[k].reqs[j], &h)) {
                any = 1;
                sum.num_cpus += h.num_cpus;
                sum.num_gpus += h.num_gpus;
                sum.memory = sum.memory + h.memory < sum.memory ? UINT64_MAX : sum.memory + h.memory;
                for (size_t c = 0; c < h.ncustom; c++) {
                    size_t d = 0;
                    while (d < sum.ncustom && strcmp(sum.custom[d].name, h.custom[c].name) != 0)
                        d++;
                    if (d == sum.ncustom && sum.ncustom < SAGE_RES_CUSTOM_MAX)
                        sum.custom[sum.ncustom++] = (sage_resource_amount){.amount = 0};
                    if (d < sum.ncustom) {
                        if (sum.custom[d].amount == 0)
                            memcpy(sum.custom[d].name, h.custom[c].name, sizeof sum.custom[d].name);
                        sum.custom[d].amount += h.custom[c].amount;
                    }
                }
            }
    if (any) {
        mb_add(m, "; running jobs hold ");
        add_asks(m, &sum, 1);
    }
}

static void report(const sage__node *nodes, size_t nnodes, const sage__place_req *reqs, size_t nreqs,
                   const unsigned char *failed, size_t nfailed, const sage__held *held, size_t nheld, char *err,
                   size_t err_len)
{
    msgbuf m = {err, err_len, 0};
    if (err && err_len > 0)
        err[0] = '\0';
    mb_add(&m, "cannot place the job: %zu operator%s not fit", nfailed, nfailed == 1 ? " does" : "s do");
    for (size_t i = 0; i < nreqs; i++) {
        if (!failed[i])
            continue;
        const sage__place_req *q = &reqs[i];
        mb_add(&m, "\n  operator \"%s\" (parallelism %d): one instance asks ", q->name ? q->name : "?", q->parallelism);
        add_asks(&m, &q->res, 1);
        if (q->parallelism > 1) {
            mb_add(&m, "; all %d ask ", q->parallelism);
            add_asks(&m, &q->res, (uint64_t)q->parallelism);
        }
        mb_add(&m, "; the largest node offers ");
        add_offers(&m, nodes, nnodes, &q->res);
        add_holdings(&m, reqs, nreqs, failed, i, held, nheld);
    }
}

/* ----------------------------------------------------------------- place */

/* One pass over every request. With out == NULL only decide (marking the
 * requests that do not fit in failed[], rolling each back); otherwise every
 * instance is known to fit and its assignment is written. */
static int place_pass(const sage__node *nodes, size_t nnodes, const sage__place_req *reqs, size_t nreqs, scratch *work,
                      scratch *committed, pick *pk, unsigned char *failed, size_t *nfailed, sage__assign **out)
{
    for (size_t i = 0; i < nreqs; i++) {
        const sage__place_req *q = &reqs[i];
        need nd;
        sage__pl_need_of(&q->res, &nd);
        int ok = 1;
        for (int j = 0; j < q->parallelism && ok; j++) {
            size_t ni;
            for (ni = 0; ni < nnodes; ni++)
                if (sage__pl_fits(&nodes[ni], ni, work, &q->res, &nd, pk))
                    break;
            if (ni == nnodes) {
                ok = 0;
                break;
            }
            sage__pl_apply(&nodes[ni], ni, work, &q->res, &nd, pk);
            if (out) {
                int rc = fill_assign(nodes, ni, &q->res, &nd, pk, &out[i][j]);
                if (rc)
                    return rc;
            }
        }
        if (!out) {
            if (ok) {
                sage__pl_scratch_copy(committed, work);
            } else {
                sage__pl_scratch_copy(work, committed);
                failed[i] = 1;
                (*nfailed)++;
            }
        }
    }
    return 0;
}

/* Mark what already-running jobs hold, so new placements avoid it. */
static void apply_held(const sage__node *nodes, size_t nnodes, scratch *s, const sage__held *held, size_t nheld)
{
    for (size_t h = 0; h < nheld; h++)
        for (size_t i = 0; i < held[h].nreqs; i++) {
            const sage__place_req *q = &held[h].reqs[i];
            need nd;
            sage__pl_need_of(&q->res, &nd);
            for (int j = 0; j < q->parallelism; j++) {
                const sage__assign *a = &held[h].assign[i][j];
                if (a->node < 0 || (size_t)a->node >= nnodes)
                    continue;
                size_t ni = (size_t)a->node;
                unsigned char *cpu = s->cpu + s->cpu_off[ni];
                int *shared = s->shared + s->cpu_off[ni];
                if (nd.cpu_whole > 0 || nd.cpu_frac > 0)
                    for (int k = 0; k < a->ncpus; k++) {
                        int id = a->cpus[k];
                        if (id < 0 || id >= nodes[ni].ncpus)
                            continue;
                        if (nd.cpu_frac > 0 && k == a->ncpus - 1) {
                            cpu[id] = CPU_SHARED;
                            shared[id] += nd.cpu_frac;
                        } else {
                            cpu[id] = CPU_EXCL;
                        }
                    }
                int *gpu = s->gpu + ni * SAGE__NODE_GPUS_MAX;
                for (int k = 0; k < a->ngpus; k++)
                    for (int g = 0; g < nodes[ni].ngpus; g++)
                        if (nodes[ni].gpu_ids[g] == a->gpus[k])
                            gpu[g] += nd.gpu_whole > 0 ? UNITS : nd.gpu_frac;
                s->mem[ni] += nd.mem;
                for (size_t c = 0; c < q->res.ncustom; c++) {
                    int idx = node_custom_index(&nodes[ni], q->res.custom[c].name);
                    if (idx >= 0)
                        s->custom[ni * SAGE_RES_CUSTOM_MAX + (size_t)idx] += q->res.custom[c].amount;
                }
            }
        }
}

int sage__place(const sage__node *nodes, size_t nnodes, const sage__place_req *reqs, size_t nreqs, sage__assign ***out,
                char *err, size_t err_len)
{
    return sage__place_held(nodes, nnodes, NULL, 0, reqs, nreqs, out, err, err_len);
}

int sage__place_held(const sage__node *nodes, size_t nnodes, const sage__held *held, size_t nheld,
                     const sage__place_req *reqs, size_t nreqs, sage__assign ***out, char *err, size_t err_len)
{
    if (err && err_len > 0)
        err[0] = '\0';
    if (!out) {
        sage__fmt(err, err_len, "placement: no output");
        return SAGE_EINVAL;
    }
    *out = NULL;
    if ((!nodes && nnodes > 0) || (!reqs && nreqs > 0)) {
        sage__fmt(err, err_len, "placement: missing nodes or requests");
        return SAGE_EINVAL;
    }
    if (nnodes == 0) {
        sage__fmt(err, err_len, "cannot place the job: there are no nodes");
        return SAGE_EINFEASIBLE;
    }
    for (size_t i = 0; i < nnodes; i++) {
        const sage__node *n = &nodes[i];
        if (n->ncpus < 0 || n->ncpus > SAGE__NODE_CPUS_MAX || n->ngpus < 0 || n->ngpus > SAGE__NODE_GPUS_MAX ||
            n->nreal < 0 || n->nreal > CPU_SETSIZE || n->ncustom > SAGE_RES_CUSTOM_MAX) {
            sage__fmt(err, err_len, "placement: node %zu (\"%.63s\") has out-of-range capacity", i, n->name);
            return SAGE_EINVAL;
        }
    }
    for (size_t i = 0; i < nreqs; i++) {
        const sage__place_req *q = &reqs[i];
        const char *name = q->name ? q->name : "?";
        if (q->parallelism < 1) {
            sage__fmt(err, err_len, "placement: operator \"%s\": parallelism must be at least 1, got %d", name,
                      q->parallelism);
            return SAGE_EINVAL;
        }
        if (!(q->res.num_cpus >= 0) || !(q->res.num_gpus >= 0) || q->res.ncustom > SAGE_RES_CUSTOM_MAX) {
            sage__fmt(err, err_len, "placement: operator \"%s\": invalid resource request", name);
            return SAGE_EINVAL;
        }
        /* beyond any node there could be: refused as not fitting, naming the key, the value and the limit */
        const char *key = q->res.num_cpus > SAGE__NODE_CPUS_MAX   ? "num_cpus"
                          : q->res.num_gpus > SAGE__NODE_GPUS_MAX ? "num_gpus"
                                                                  : NULL;
        if (key) {
            double v = key[4] == 'c' ? q->res.num_cpus : q->res.num_gpus;
            int best = 0;
            for (size_t k = 0; k < nnodes; k++) {
                int have = key[4] == 'c' ? nodes[k].ncpus : nodes[k].ngpus;
                best = have > best ? have : best;
            }
            sage__fmt(err, err_len,
                      "cannot place the job: operator \"%s\" asks %s=%g per instance, more than any node can have "
                      "(at most %d); the largest node offers %s=%d",
                      name, key, v, key[4] == 'c' ? SAGE__NODE_CPUS_MAX : SAGE__NODE_GPUS_MAX, key, best);
            return SAGE_EINFEASIBLE;
        }
    }

    scratch work, committed;
    if (sage__pl_scratch_init(&work, nodes, nnodes) != 0) {
        sage__fmt(err, err_len, "placement: out of memory");
        return SAGE_ENOMEM;
    }
    if (sage__pl_scratch_init(&committed, nodes, nnodes) != 0) {
        sage__pl_scratch_free(&work);
        sage__fmt(err, err_len, "placement: out of memory");
        return SAGE_ENOMEM;
    }
    scratch base;
    if (sage__pl_scratch_init(&base, nodes, nnodes) != 0) {
        sage__pl_scratch_free(&work);
        sage__pl_scratch_free(&committed);
        sage__fmt(err, err_len, "placement: out of memory");
        return SAGE_ENOMEM;
    }
    apply_held(nodes, nnodes, &base, held, nheld);
    sage__pl_scratch_copy(&work, &base);
    sage__pl_scratch_copy(&committed, &base);
    pick *pk = malloc(sizeof *pk);
    unsigned char *failed = calloc(nreqs ? nreqs : 1, 1);
    sage__assign **res = NULL;
    slot *order = NULL; /* set when the search found the placement */
    choice *chosen = NULL;
    size_t nslots = 0;
    int rc = 0;
    if (!pk || !failed) {
        rc = SAGE_ENOMEM;
        goto fail;
    }

    /* Pass 1: decide on scratch counters only (first fit in declaration order). */
    size_t nfailed = 0;
    place_pass(nodes, nnodes, reqs, nreqs, &work, &committed, pk, failed, &nfailed, NULL);
    if (nfailed > 0) {
        /* first fit missed: search for any placement before refusing */
        int gave_up = 0, found = sage__pl_search(nodes, nnodes, reqs, nreqs, &base, &order, &chosen, &nslots, &gave_up);
        if (found < 0) {
            rc = found;
            goto fail;
        }
        if (!found) {
            report(nodes, nnodes, reqs, nreqs, failed, nfailed, held, nheld, err, err_len);
            if (gave_up) {
                size_t used = strlen(err);
                sage__fmt(err + used, err_len - used, "\n  (the placement search gave up after %ld steps)",
                          SEARCH_BUDGET);
            }
            rc = SAGE_EINFEASIBLE;
            goto done;
        }
    }

    /* Pass 2: everything fits; replay and write the assignments. */
    res = calloc(nreqs ? nreqs : 1, sizeof *res);
    if (!res) {
        rc = SAGE_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nreqs; i++) {
        res[i] = calloc((size_t)reqs[i].parallelism, sizeof *res[i]);
        if (!res[i]) {
            rc = SAGE_ENOMEM;
            goto fail;
        }
    }
    sage__pl_scratch_copy(&work, &base);
    if (order) { /* the search's placement, replayed in its order */
        for (size_t k = 0; k < nslots; k++) {
            const sage__place_req *q = &reqs[order[k].req];
            need nd;
            sage__pl_need_of(&q->res, &nd);
            size_t ni = (size_t)chosen[k].node;
            if (!sage__pl_fits_forced(&nodes[ni], ni, &work, &q->res, &nd, pk, chosen[k].gpu, chosen[k].core)) {
                sage__fmt(err, err_len, "placement: the search's placement does not replay (a bug)");
                rc = SAGE_EINVAL;
                goto done;
            }
            sage__pl_apply(&nodes[ni], ni, &work, &q->res, &nd, pk);
            if ((rc = fill_assign(nodes, ni, &q->res, &nd, pk, &res[order[k].req][order[k].inst])) != 0)
                goto fail;
        }
    } else if ((rc = place_pass(nodes, nnodes, reqs, nreqs, &work, &committed, pk, failed, &nfailed, res)) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < nreqs; i++) {
        int unreserved = llround(reqs[i].res.num_cpus * UNITS) == 0;
        for (int j = 0; j < reqs[i].parallelism; j++) {
            if (unreserved && (rc = fill_unreserved(nodes, &work, &res[i][j])) != 0)
                goto fail;
            fill_pub(nodes, &res[i][j]);
        }
    }
    *out = res;
    res = NULL;
    goto done;

fail:
    sage__fmt(err, err_len, "placement: out of memory");
    if (!rc)
        rc = SAGE_ENOMEM;
done:
    sage__assign_free(res, reqs, nreqs);
    free(order);
    free(chosen);
    free(pk);
    free(failed);
    sage__pl_scratch_free(&work);
    sage__pl_scratch_free(&committed);
    sage__pl_scratch_free(&base);
    return rc;
}
