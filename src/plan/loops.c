/* plan/loops.c - feedback loops: which operators each future's loop holds, its entries, their control edges.
 *
 * Design note. A future (sage_from_future) is an operator whose input comes
 * from operators declared after it: the only back edge a graph may hold.
 * Its loop is the set of operators on a cycle through it: those reachable
 * from it along consumers and from which it is reachable along inputs. The
 * runtime (runtime/loop.c) ends a loop with markers that go round it, so
 * it must know, per task, which inputs come from inside the loop (a probe
 * marker is expected from each of their producers) and which from outside
 * (the loop may end only once they all ended). A chain whose head has an
 * input from outside is an entry; it tells the future, over a control edge
 * of its own, when those inputs ended. Loops may not share operators: a
 * loop inside a loop would need its own markers to go round the outer one.
 */
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"

/* mark[i] = 1 for every operator reachable from `from` (not counting from itself unless on a cycle). */
static int reach(const sage__plan *plan, int from, int forward, unsigned char *mark)
{
    int *stack = malloc(plan->nops * sizeof *stack * 2 + sizeof *stack);
    if (!stack)
        return SAGE_ENOMEM;
    size_t n = 0;
    stack[n++] = from;
    while (n > 0) {
        int v = stack[--n];
        const sage__pop *p = &plan->ops[v];
        size_t deg = forward ? p->nconsumers : p->op->ninputs;
        for (size_t k = 0; k < deg; k++) {
            int w = forward ? p->consumers[k].op : p->op->inputs[k].from->id;
            if (!mark[w]) {
                mark[w] = 1;
                stack[n++] = w;
            }
        }
    }
    free(stack);
    return 0;
}

int sage__plan_loops(const sage__graph *g, sage__plan *plan, sage__err *err)
{
    for (size_t i = 0; i < plan->nops; i++) {
        plan->ops[i].loop = -1;
        plan->ops[i].ctl_to = -1;
    }
    unsigned char *fwd = calloc(plan->nops * 2, 1);
    if (!fwd)
        return sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
    unsigned char *bwd = fwd + plan->nops;
    int rc = 0;
    for (size_t f = 0; f < g->nops && rc == 0; f++) {
        const sage__op *fut = g->ops[f];
        if (fut->builtin != SAGE__BUILTIN_FUTURE)
            continue;
        memset(fwd, 0, plan->nops * 2);
        if (reach(plan, fut->id, 1, fwd) != 0 || reach(plan, fut->id, 0, bwd) != 0) {
            rc = sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
            break;
        }
        if (!fwd[fut->id])
            continue; /* not on a cycle: a plain pass-through of what fills it */
        if (g->cfg->ft.strategy == SAGE__FT_CHECKPOINT) {
            rc = sage__errf(err, SAGE_EPLAN,
                            "future \"%s\" closes a feedback loop, and checkpoints do not cover loops yet: use "
                            "\"strategy\": \"restart\" (the job runs again from its beginning)",
                            fut->name);
            break;
        }
        for (size_t i = 0; i < plan->nops && rc == 0; i++) {
            if (!fwd[i] || !bwd[i])
                continue;
            sage__pop *p = &plan->ops[i];
            if (p->loop >= 0)
                rc = sage__errf(err, SAGE_EPLAN,
                                "operator \"%s\" is inside the loops of futures \"%s\" and \"%s\": a loop inside "
                                "another loop is not supported",
                                p->op->name, g->ops[p->loop]->name, fut->name);
            else
                p->loop = fut->id;
        }
    }
    free(fwd);
    return rc;
}

int sage__plan_loop_entries(const sage__graph *g, sage__plan *plan, sage__err *err)
{
    for (size_t c = 0; c < plan->nchains; c++) {
        sage__chain *ch = &plan->chains[c];
        const sage__op *head = sage__chain_op(plan, ch, 0);
        int loop = plan->ops[head->id].loop;
        if (loop < 0 || head->builtin == SAGE__BUILTIN_FUTURE)
            continue;
        int entry = 0;
        for (size_t k = 0; k < head->ninputs; k++)
            if (plan->ops[head->inputs[k].from->id].loop != loop)
                entry = 1;
        if (!entry)
            continue;
        const sage__op *tail = sage__chain_op(plan, ch, ch->nops - 1);
        plan->ops[tail->id].ctl_to = loop;
        sage__chain *fch = &plan->chains[plan->ops[loop].chain];
        fch->producers += ch->parallelism;
    }
    for (size_t i = 0; i < g->nops; i++) { /* a future's control input: index ninputs, broadcast */
        const sage__op *op = g->ops[i];
        if (op->builtin != SAGE__BUILTIN_FUTURE || plan->ops[i].loop != op->id)
            continue;
        sage__part *part = realloc(plan->ops[i].part, (op->ninputs + 1) * sizeof *part);
        if (!part)
            return sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
        part[op->ninputs] = SAGE__PART_BROADCAST;
        plan->ops[i].part = part;
    }
    return 0;
}
