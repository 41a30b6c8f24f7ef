/* plan/threads.c - which chains' instances share threads in this process (config chain_threads, sage_op_opts.threads).
 *
 * Decided at compile, after placement, so that explain shows it and the
 * runtime (runtime/group.c) only follows chain->threads. Only an embedded
 * job's chains are grouped (a worker process runs one instance); never a
 * source (its function may wait for its input), a chain of a feedback loop,
 * a binding's operators (a language's thread state is per thread), or
 * instances holding cores of their own (a CPU request, whole or a share):
 * the instances of a grouped chain share one affinity, which the group's
 * thread takes.
 */
#include <sched.h>
#include <string.h>

#include "plan/plan.h"

/* The threads per chain the config asks for (0: a thread per instance). */
static int threads_wanted(const sage__config *cfg)
{
    if (cfg->chain_threads != SAGE__CHAIN_THREADS_CPUS)
        return cfg->chain_threads;
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    return n > 0 ? n : 1;
}

static int groupable(const sage__plan *plan, const sage__chain *ch, int cap)
{
    const sage__op *head = sage__chain_op(plan, ch, 0);
    if (ch->parallelism <= cap || head->kind == SAGE__OP_SOURCE || head->builtin == SAGE__BUILTIN_FUTURE || !ch->assign)
        return 0;
    for (size_t k = 0; k < ch->nops; k++)
        if (plan->ops[ch->ops[k]].loop >= 0)
            return 0;
    const sage__assign *a0 = &ch->assign[0];
    for (int i = 0; i < ch->parallelism; i++) {
        const sage__assign *a = &ch->assign[i];
        if (a->exclusive || a->cpu_share > 0 || a->pin != a0->pin || !CPU_EQUAL(&a->affinity, &a0->affinity))
            return 0;
    }
    return 1;
}

/* What the chain's operators ask (sage_op_opts.threads), else the config. */
static int chain_cap(const sage__plan *plan, const sage__chain *ch, int config_cap)
{
    int cap = 0;
    for (size_t k = 0; k < ch->nops; k++) {
        int t = sage__chain_op(plan, ch, k)->threads;
        if (t == SAGE_THREADS_EACH)
            return 0;
        if (t > 0 && (cap == 0 || t < cap))
            cap = t;
    }
    return cap ? cap : config_cap;
}

void sage__plan_threads(const sage__graph *g, sage__plan *plan)
{
    int config_cap = threads_wanted(g->cfg);
    for (size_t c = 0; c < plan->nchains; c++) {
        sage__chain *ch = &plan->chains[c];
        int cap = chain_cap(plan, ch, config_cap);
        ch->threads = cap > 0 && !g->has_binding && groupable(plan, ch, cap) ? cap : 0;
    }
}
