/* resources/search.c - placement when first fit misses: a bounded depth-first search for any placement.
 *
 * Design note. When first fit in declaration order fails, a depth-first search over the
 * instances, largest first, looks for any placement: at each instance it
 * tries every node where it fits and, for a fractional GPU or CPU share,
 * every GPU or shared core with room (one per distinct load: equal loads
 * are interchangeable). Its first leaf is first fit decreasing; it stops
 * after SEARCH_BUDGET steps. Deterministic: the same job on the same nodes
 * gets the same placement. */
#include <stdlib.h>
#include <string.h>

#include "resources/place_fit.h"

typedef struct search {
    const sage__node *nodes;
    size_t nnodes;
    const sage__place_req *reqs;
    slot *order;
    size_t nslots;
    choice *chosen;
    scratch *s;
    pick *picks; /* one per depth */
    long budget;
} search;

/* sage__pl_fits() with the fractions forced onto one GPU / shared core. */
int sage__pl_fits_forced(const sage__node *n, size_t ni, const scratch *s, const sage_resources *r, const need *nd,
                         pick *pk, int gpu, int core)
{
    if (!sage__pl_fits(n, ni, s, r, nd, pk))
        return 0;
    if (gpu >= 0) {
        const int *g = s->gpu + ni * SAGE__NODE_GPUS_MAX;
        if (nd->gpu_frac == 0 || gpu >= n->ngpus || g[gpu] + nd->gpu_frac > UNITS)
            return 0;
        pk->gpus[0] = gpu;
    }
    if (core >= 0) {
        const unsigned char *cpu = s->cpu + s->cpu_off[ni];
        const int *shared = s->shared + s->cpu_off[ni];
        int last_excl = nd->cpu_whole > 0 ? pk->cpus[nd->cpu_whole - 1] : -1;
        if (nd->cpu_frac == 0 || core >= n->ncpus ||
            !((cpu[core] == CPU_SHARED && shared[core] + nd->cpu_frac <= UNITS) ||
              (cpu[core] == CPU_FREE && core > last_excl)))
            return 0;
        pk->shared_core = core;
        pk->cpus[pk->ncpus - 1] = core;
    }
    return 1;
}

/* Undo sage__pl_apply(); core_was_free: the shared core was opened by it. */
static void unapply(size_t ni, scratch *s, const sage_resources *r, const need *nd, const pick *pk, int core_was_free)
{
    unsigned char *cpu = s->cpu + s->cpu_off[ni];
    int *shared = s->shared + s->cpu_off[ni];
    int *gpu = s->gpu + ni * SAGE__NODE_GPUS_MAX;
    for (int i = 0; i < pk->ncpus; i++) {
        int k = pk->cpus[i];
        if (k == pk->shared_core) {
            shared[k] -= nd->cpu_frac;
            if (core_was_free && shared[k] == 0)
                cpu[k] = CPU_FREE;
        } else {
            cpu[k] = CPU_FREE;
        }
    }
    for (int i = 0; i < pk->ngpus; i++)
        gpu[pk->gpus[i]] -= nd->gpu_whole > 0 ? UNITS : nd->gpu_frac;
    s->mem[ni] -= nd->mem;
    for (size_t c = 0; c < r->ncustom && c < SAGE_RES_CUSTOM_MAX; c++)
        if (pk->custom_idx[c] >= 0)
            s->custom[ni * SAGE_RES_CUSTOM_MAX + (size_t)pk->custom_idx[c]] -= r->custom[c].amount;
}

/* Is core k a candidate for a fractional CPU share: a shared core with room whose load no
 * higher-numbered candidate has, or the highest free core above the exclusive ones? */
static int core_option(const unsigned char *cpu, const int *sh, int ncpus, int k, int frac, int last_excl)
{
    if (cpu[k] == CPU_SHARED) {
        if (sh[k] + frac > UNITS)
            return 0;
        for (int j = k + 1; j < ncpus; j++)
            if (cpu[j] == CPU_SHARED && sh[j] == sh[k])
                return 0;
        return 1;
    }
    if (cpu[k] != CPU_FREE || k <= last_excl)
        return 0;
    for (int j = k + 1; j < ncpus; j++)
        if (cpu[j] == CPU_FREE)
            return 0;
    return 1;
}

/* Is GPU g a candidate for a fractional share: room, and no lower GPU with the same load? */
static int gpu_option(const int *gl, int g, int frac)
{
    if (gl[g] + frac > UNITS)
        return 0;
    for (int j = 0; j < g; j++)
        if (gl[j] == gl[g])
            return 0;
    return 1;
}

static int dfs(search *S, size_t depth)
{
    if (depth == S->nslots)
        return 1;
    if (--S->budget <= 0)
        return 0;
    const slot *sl = &S->order[depth];
    const sage_resources *r = &S->reqs[sl->req].res;
    pick *pk = &S->picks[depth]; /* this depth's own: deeper ones must not overwrite it */
    need nd;
    sage__pl_need_of(r, &nd);
    for (size_t ni = 0; ni < S->nnodes; ni++) {
        const sage__node *n = &S->nodes[ni];
        if (!sage__pl_fits(n, ni, S->s, r, &nd, pk))
            continue; /* its own choices fail: so does every other on this node */
        int last_excl = nd.cpu_whole > 0 ? pk->cpus[nd.cpu_whole - 1] : -1;
        const int *gl = S->s->gpu + ni * SAGE__NODE_GPUS_MAX;
        const unsigned char *cpu = S->s->cpu + S->s->cpu_off[ni];
        const int *sh = S->s->shared + S->s->cpu_off[ni];
        int ngpu = n->ngpus < SAGE__NODE_GPUS_MAX ? n->ngpus : SAGE__NODE_GPUS_MAX;
        for (int g = nd.gpu_frac > 0 ? 0 : -1; g < (nd.gpu_frac > 0 ? ngpu : 0); g++) {
            if (g >= 0 && !gpu_option(gl, g, nd.gpu_frac))
                continue;
            for (int c = nd.cpu_frac > 0 ? n->ncpus - 1 : -1; c >= (nd.cpu_frac > 0 ? 0 : -1); c--) {
                if (c >= 0 && !core_option(cpu, sh, n->ncpus, c, nd.cpu_frac, last_excl))
                    continue;
                if (!sage__pl_fits_forced(n, ni, S->s, r, &nd, pk, g, c))
                    continue;
                int core_was_free = pk->shared_core >= 0 && cpu[pk->shared_core] == CPU_FREE;
                sage__pl_apply(n, ni, S->s, r, &nd, pk);
                S->chosen[depth] = (choice){(int)ni, g, c};
                if (dfs(S, depth + 1))
                    return 1;
                unapply(ni, S->s, r, &nd, pk, core_was_free);
                if (S->budget <= 0)
                    return 0;
                if (c < 0)
                    break;
            }
        }
    }
    return 0;
}

static int slot_cmp(const void *a, const void *b)
{
    const slot *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    if (x->req != y->req)
        return x->req < y->req ? -1 : 1;
    return x->inst - y->inst;
}

/* Search for a placement (base: what running jobs hold). 1 with *order and *chosen set (caller frees);
 * 0 when none was found (*gave_up: the budget ran out); SAGE_ENOMEM. */
int sage__pl_search(const sage__node *nodes, size_t nnodes, const sage__place_req *reqs, size_t nreqs,
                    const scratch *base, slot **order_out, choice **chosen_out, size_t *nslots_out, int *gave_up)
{
    *gave_up = 0;
    size_t nslots = 0;
    for (size_t i = 0; i < nreqs; i++)
        nslots += (size_t)reqs[i].parallelism;
    if (nslots > SEARCH_MAX_SLOTS) {
        *gave_up = 1;
        return 0;
    }
    slot *order = calloc(nslots ? nslots : 1, sizeof *order);
    choice *chosen = calloc(nslots ? nslots : 1, sizeof *chosen);
    pick *picks = malloc((nslots ? nslots : 1) * sizeof *picks);
    scratch s;
    if (!order || !chosen || !picks || sage__pl_scratch_init(&s, nodes, nnodes) != 0) {
        free(order);
        free(chosen);
        free(picks);
        return SAGE_ENOMEM;
    }
    sage__pl_scratch_copy(&s, base);
    size_t k = 0;
    for (size_t i = 0; i < nreqs; i++) {
        need nd;
        sage__pl_need_of(&reqs[i].res, &nd);
        long long size = ((long long)nd.gpu_whole * UNITS + nd.gpu_frac) * 100000000LL +
                         ((long long)nd.cpu_whole * UNITS + nd.cpu_frac) * 1000LL + (long long)(nd.mem >> 40);
        for (int j = 0; j < reqs[i].parallelism; j++)
            order[k++] = (slot){i, j, size};
    }
    qsort(order, nslots, sizeof *order, slot_cmp);
    search S = {nodes, nnodes, reqs, order, nslots, chosen, &s, picks, SEARCH_BUDGET};
    int found = dfs(&S, 0);
    sage__pl_scratch_free(&s);
    free(picks);
    if (!found) {
        *gave_up = S.budget <= 0;
        free(order);
        free(chosen);
        return 0;
    }
    *order_out = order;
    *chosen_out = chosen;
    *nslots_out = nslots;
    return 1;
}
