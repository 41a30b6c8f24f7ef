/* plan/compile.c - graph to physical plan: checks, routing, chaining, placement, plan hash.
 *
 * Design note. Operators are stored in declaration order, and every input of
 * an operator was declared before it (except a future's, filled later), so
 * that order is topological once futures' inputs are set aside (the check
 * below proves it rather than assumes it). Compiling:
 *   1. every non-sink operator must have a consumer (no record is silently
 *      dropped at the end of a branch);
 *   2. DEFAULT routing becomes FORWARD when both sides have the same
 *      parallelism, REBALANCE otherwise; an explicit FORWARD across
 *      different parallelism is an error;
 *   3. chaining: B is fused after A when B has one input, that input is
 *      FORWARD from A, A feeds only B, chaining is on for both, and at most
 *      one of them declares resources (two operators that both reserve
 *      resources keep their own threads and reservations; the plan says so);
 *   4. feedback loops (plan/loops.c): a future's input is the one back
 *      edge allowed; the operators of its loop and the loop's entries;
 *   5. placement: one request per chain, with the resources of the chain's
 *      one reserving operator, placed atomically on the node.
 * The graph is only read: everything derived is written into the plan.
 */
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"
#include "util/buf.h"
#include "util/hash.h"

static int add_consumer(sage__pop *from, int to, int input)
{
    sage__consumer *c = realloc(from->consumers, (from->nconsumers + 1) * sizeof *c);
    if (!c)
        return SAGE_ENOMEM;
    c[from->nconsumers].op = to;
    c[from->nconsumers].input = input;
    from->consumers = c;
    from->nconsumers++;
    return 0;
}

void sage__plan_free(sage__plan *plan)
{
    if (!plan)
        return;
    if (plan->assign)
        sage__assign_free(plan->assign, plan->place, plan->nplace);
    for (size_t i = 0; i < plan->nops; i++) {
        free(plan->ops[i].part);
        free(plan->ops[i].consumers);
    }
    free(plan->ops);
    for (size_t i = 0; i < plan->nchains; i++)
        free(plan->chains[i].ops);
    free(plan->chains);
    free(plan->place);
    free(plan);
}

const char *sage__no_chain_reason(const sage__plan *plan, const sage__op *a, const sage__op *b)
{
    if (b->ninputs != 1)
        return "several inputs";
    if (plan->ops[b->id].part[0] != SAGE__PART_FORWARD)
        return "not forward";
    if (plan->ops[a->id].nconsumers != 1)
        return "the upstream output is consumed more than once";
    if (a->builtin == SAGE__BUILTIN_FUTURE || b->builtin == SAGE__BUILTIN_FUTURE)
        return "a future is a task of its own";
    if (!a->chaining || !b->chaining)
        return "chaining disabled";
    if (a->has_res && b->has_res)
        return "both declare resources";
    return NULL;
}

size_t sage__plan_first_task(const sage__plan *plan, int chain)
{
    size_t n = 0;
    for (int c = 0; c < chain; c++)
        n += (size_t)plan->chains[c].parallelism;
    return n;
}

static int check_graph(const sage__graph *g, sage__plan *plan, sage__err *err)
{
    if (g->nops == 0)
        return sage__errf(err, SAGE_EPLAN, "job \"%s\" has no operators", g->name);
    int sinks = 0;
    for (size_t i = 0; i < g->nops; i++) {
        const sage__op *op = g->ops[i];
        if (op->builtin == SAGE__BUILTIN_FUTURE && !op->filled)
            return sage__errf(err, SAGE_EPLAN,
                              "future \"%s\" is never filled: close its loop with sage_fill_future(stream, future)",
                              op->name);
        for (size_t k = 0; k < op->ninputs; k++) /* a future's input is the one back edge a graph may hold */
            if (op->inputs[k].from->id >= op->id && op->builtin != SAGE__BUILTIN_FUTURE)
                return sage__errf(err, SAGE_EPLAN, "operator \"%s\" is part of a cycle", op->name);
        if (op->kind == SAGE__OP_SINK)
            sinks++;
    }
    if (sinks == 0)
        return sage__errf(err, SAGE_EPLAN, "job \"%s\" has no sink: end every stream with sage_sink", g->name);
    for (size_t i = 0; i < g->nops; i++)
        for (size_t k = 0; k < i; k++)
            if (g->ops[i]->collector && g->ops[i]->collector == g->ops[k]->collector)
                return sage__errf(err, SAGE_EPLAN,
                                  "sinks \"%s\" and \"%s\" collect into the same collector: give each its own",
                                  g->ops[k]->name, g->ops[i]->name);
    for (size_t i = 0; i < g->nops; i++) {
        const sage__op *op = g->ops[i];
        sage__pop *p = &plan->ops[i];
        p->op = op;
        p->part = calloc(op->ninputs ? op->ninputs : 1, sizeof *p->part);
        if (!p->part)
            return sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
        for (size_t k = 0; k < op->ninputs; k++)
            if (add_consumer(&plan->ops[op->inputs[k].from->id], op->id, (int)k) != 0)
                return sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
    }
    for (size_t i = 0; i < g->nops; i++) {
        const sage__op *op = g->ops[i];
        if (op->kind != SAGE__OP_SINK && plan->ops[i].nconsumers == 0)
            return sage__errf(err, SAGE_EPLAN,
                              "operator \"%s\" has no consumer: its records would be lost; end the stream with a sink",
                              op->name);
        for (size_t k = 0; k < op->ninputs; k++) {
            const sage__edge *e = &op->inputs[k];
            sage__part part = e->part;
            if (part == SAGE__PART_DEFAULT)
                part = e->from->parallelism == op->parallelism ? SAGE__PART_FORWARD : SAGE__PART_REBALANCE;
            else if (part == SAGE__PART_FORWARD && e->from->parallelism != op->parallelism)
                return sage__errf(err, SAGE_EPLAN,
                                  "operator \"%s\": forward from \"%s\" needs equal parallelism, got %d and %d",
                                  op->name, e->from->name, e->from->parallelism, op->parallelism);
            plan->ops[i].part[k] = part;
        }
    }
    return 0;
}

static int build_chains(const sage__graph *g, sage__plan *plan)
{
    plan->chains = calloc(g->nops, sizeof *plan->chains);
    if (!plan->chains)
        return SAGE_ENOMEM;
    for (size_t i = 0; i < g->nops; i++) {
        const sage__op *op = g->ops[i];
        sage__chain *ch;
        if (op->ninputs == 1 && !sage__no_chain_reason(plan, op->inputs[0].from, op)) {
            ch = &plan->chains[plan->ops[op->inputs[0].from->id].chain];
        } else {
            ch = &plan->chains[plan->nchains];
            ch->id = (int)plan->nchains++;
            ch->parallelism = op->parallelism;
            for (size_t k = 0; k < op->ninputs; k++)
                ch->producers += op->inputs[k].from->parallelism;
            ch->ops = calloc(g->nops, sizeof *ch->ops);
            if (!ch->ops)
                return SAGE_ENOMEM;
        }
        plan->ops[i].chain = ch->id;
        plan->ops[i].chain_pos = (int)ch->nops;
        ch->ops[ch->nops++] = op->id;
        if (op->has_res)
            ch->res_op = op;
    }
    for (size_t c = 0; c < plan->nchains; c++)
        plan->ntasks += (size_t)plan->chains[c].parallelism;
    return 0;
}

static int place(const sage__graph *g, sage__plan *plan, sage__err *e)
{
    char err[4096];
    int rc = sage__node_discover(&plan->node, err, sizeof err);
    if (rc != 0)
        return sage__errf(e, rc == SAGE_ENOMEM ? rc : SAGE_ESYS, "discovering this node: %s", err);
    if (g->cfg->node && (rc = sage__node_configure(&plan->node, g->cfg->node, err, sizeof err)) != 0)
        return sage__errf(e, rc, "%s", err);
    plan->place = calloc(plan->nchains, sizeof *plan->place);
    if (!plan->place)
        return sage__errf(e, SAGE_ENOMEM, "out of memory placing the job");
    plan->nplace = plan->nchains;
    for (size_t c = 0; c < plan->nchains; c++) {
        sage__chain *ch = &plan->chains[c];
        sage__place_req *r = &plan->place[c];
        const sage__op *ro = ch->res_op ? ch->res_op : sage__chain_op(plan, ch, 0);
        r->name = ro->name;
        r->parallelism = ch->parallelism;
        if (ch->res_op)
            r->res = ch->res_op->res;
    }
    rc = sage__place(&plan->node, 1, plan->place, plan->nplace, &plan->assign, err, sizeof err);
    if (rc != 0)
        return sage__errf(e, rc, "%s", err);
    for (size_t c = 0; c < plan->nchains; c++)
        plan->chains[c].assign = plan->assign[c];
    return 0;
}

/* The plan hash: a fixed hash over a canonical text of everything that shapes
 * the plan (operators, kinds, parallelism, chaining, resources, inputs and
 * their routing), whole however long. A worker process rebuilds the graph and
 * must arrive at the same value. Function pointers are left out on purpose:
 * they differ between processes; what they are bound to is the program's
 * business. */
static int plan_hash(const sage__graph *g, uint64_t *out)
{
    uint64_t h = sage__hash64(g->name, strlen(g->name));
    sage__buf b;
    sage__buf_init(&b, (size_t)1 << 20); /* an operator's description is far smaller */
    int rc = 0;
    for (size_t i = 0; i < g->nops && rc == 0; i++) {
        const sage__op *op = g->ops[i];
        b.len = 0;
        rc = sage__buf_printf(&b, "%s|%d|%d%s|%d|%d|%d|%.4f|%.4f|%llu|%llu|%zu|%zu", op->name, (int)op->kind,
                              (int)op->builtin, op->batch ? "b" : "", op->parallelism, op->chaining, op->bounded,
                              op->res.num_cpus, op->res.num_gpus, (unsigned long long)op->res.memory,
                              (unsigned long long)op->res.object_store_memory, op->res.ncustom, op->ninputs);
        for (size_t k = 0; k < op->res.ncustom && rc == 0; k++)
            rc = sage__buf_printf(&b, "|%s=%.4f", op->res.custom[k].name, op->res.custom[k].amount);
        for (size_t k = 0; k < op->ninputs && rc == 0; k++)
            rc = sage__buf_printf(&b, "|%s>%d", op->inputs[k].from->name, (int)op->inputs[k].part);
        h = sage__hash64(&(uint64_t[2]){h, sage__hash64(b.p, b.len)}, 16);
    }
    sage__buf_free(&b);
    *out = h;
    return rc;
}

int sage__plan_compile(const sage__graph *g, int do_place, sage__plan **out, sage__err *err)
{
    *out = NULL;
    sage__plan *plan = calloc(1, sizeof *plan);
    if (!plan)
        return sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
    plan->g = g;
    plan->ops = calloc(g->nops ? g->nops : 1, sizeof *plan->ops);
    if (plan->ops)
        plan->nops = g->nops;
    int rc = plan->ops ? check_graph(g, plan, err) : sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
    if (rc == 0)
        rc = sage__plan_loops(g, plan, err);
    if (rc == 0 && build_chains(g, plan) != 0)
        rc = sage__errf(err, SAGE_ENOMEM, "out of memory compiling the plan");
    if (rc == 0)
        rc = sage__plan_loop_entries(g, plan, err);
    if (rc == 0 && plan_hash(g, &plan->hash) != 0)
        rc = sage__errf(err, SAGE_ENOMEM, "out of memory computing the plan hash");
    if (rc == 0 && do_place)
        rc = place(g, plan, err);
    if (rc == 0 && do_place)
        sage__plan_threads(g, plan);
    if (rc != 0) {
        sage__plan_free(plan);
        return rc;
    }
    *out = plan;
    return 0;
}
