/* plan/compile.c - logical graph to physical plan: checks, partitioning, chaining, placement.
 *
 * Design note. Operators are stored in declaration order, and every input of
 * an operator was declared before it, so that order is already topological
 * (the check below proves it rather than assumes it). Compiling:
 *   1. every non-sink operator must have a consumer (no record is silently
 *      dropped at the end of a branch);
 *   2. DEFAULT partitioning becomes FORWARD when both sides have the same
 *      parallelism, REBALANCE otherwise; an explicit FORWARD across
 *      different parallelism is an error;
 *   3. chaining: B is fused after A when B has one input, that input is
 *      FORWARD from A, A feeds only B, chaining is on for both, and at most
 *      one of them declares resources (two operators that both reserve
 *      resources keep their own threads and reservations; the plan says so);
 *   4. placement: one request per chain, with the resources of the chain's
 *      one reserving operator, placed atomically on the node.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "util/hash.h"

static int add_consumer(sage__op *from, sage__op *to, int input)
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
    for (size_t i = 0; i < plan->nchains; i++)
        free(plan->chains[i].ops);
    free(plan->chains);
    free(plan->place);
    free(plan);
}

/* The reason B does not chain after A, or NULL when it does. */
const char *sage__no_chain_reason(const sage__op *a, const sage__op *b)
{
    if (b->ninputs != 1)
        return "several inputs";
    if (b->inputs[0].part != SAGE__PART_FORWARD)
        return "not forward";
    if (a->nconsumers != 1)
        return "the upstream output is consumed more than once";
    if (!a->chaining || !b->chaining)
        return "chaining disabled";
    if (a->has_res && b->has_res)
        return "both declare resources";
    return NULL;
}

static int check_graph(sage_env *env)
{
    if (env->nops == 0)
        return sage__env_fail(env, SAGE_EPLAN, "job \"%s\" has no operators", env->name);
    int sinks = 0;
    for (size_t i = 0; i < env->nops; i++) {
        sage__op *op = env->ops[i];
        for (size_t k = 0; k < op->ninputs; k++)
            if (op->inputs[k].from->id >= op->id)
                return sage__env_fail(env, SAGE_EPLAN, "operator \"%s\" is part of a cycle", op->name);
        if (op->kind == SAGE__OP_SINK)
            sinks++;
    }
    if (sinks == 0)
        return sage__env_fail(env, SAGE_EPLAN, "job \"%s\" has no sink: end every stream with sage_sink", env->name);
    for (size_t i = 0; i < env->nops; i++)
        for (size_t k = 0; k < i; k++)
            if (env->ops[i]->collector && env->ops[i]->collector == env->ops[k]->collector)
                return sage__env_fail(env, SAGE_EPLAN,
                                      "sinks \"%s\" and \"%s\" collect into the same collector: give each its own",
                                      env->ops[k]->name, env->ops[i]->name);
    for (size_t i = 0; i < env->nops; i++) {
        sage__op *op = env->ops[i];
        for (size_t k = 0; k < op->ninputs; k++)
            if (add_consumer(op->inputs[k].from, op, (int)k) != 0)
                return sage__env_fail(env, SAGE_ENOMEM, "out of memory compiling the plan");
    }
    for (size_t i = 0; i < env->nops; i++) {
        sage__op *op = env->ops[i];
        if (op->kind != SAGE__OP_SINK && op->nconsumers == 0)
            return sage__env_fail(env, SAGE_EPLAN,
                                  "operator \"%s\" has no consumer: its records would be lost; end the stream with a sink",
                                  op->name);
        for (size_t k = 0; k < op->ninputs; k++) {
            sage__edge *e = &op->inputs[k];
            if (e->part == SAGE__PART_DEFAULT)
                e->part = e->from->parallelism == op->parallelism ? SAGE__PART_FORWARD : SAGE__PART_REBALANCE;
            else if (e->part == SAGE__PART_FORWARD && e->from->parallelism != op->parallelism)
                return sage__env_fail(env, SAGE_EPLAN,
                                      "operator \"%s\": forward from \"%s\" needs equal parallelism, got %d and %d",
                                      op->name, e->from->name, e->from->parallelism, op->parallelism);
        }
    }
    return 0;
}

static int build_chains(sage_env *env, sage__plan *plan)
{
    plan->chains = calloc(env->nops, sizeof *plan->chains);
    if (!plan->chains)
        return SAGE_ENOMEM;
    for (size_t i = 0; i < env->nops; i++) {
        sage__op *op = env->ops[i];
        sage__chain *ch;
        if (op->ninputs == 1 && !sage__no_chain_reason(op->inputs[0].from, op)) {
            ch = &plan->chains[op->inputs[0].from->chain];
        } else {
            ch = &plan->chains[plan->nchains];
            ch->id = (int)plan->nchains++;
            ch->parallelism = op->parallelism;
            ch->ops = calloc(env->nops, sizeof *ch->ops);
            if (!ch->ops)
                return SAGE_ENOMEM;
        }
        op->chain = ch->id;
        op->chain_pos = (int)ch->nops;
        ch->ops[ch->nops++] = op;
        if (op->has_res)
            ch->res_op = op;
    }
    for (size_t c = 0; c < plan->nchains; c++)
        plan->ntasks += (size_t)plan->chains[c].parallelism;
    return 0;
}

static int place(sage_env *env, sage__plan *plan)
{
    char err[4096];
    if (sage__node_discover(&plan->node, err, sizeof err) != 0)
        return sage__env_fail(env, SAGE_ESYS, "discovering this node: %s", err);
    if (env->cfg.node && sage__node_configure(&plan->node, env->cfg.node, err, sizeof err) != 0)
        return sage__env_fail(env, SAGE_ECONFIG, "%s", err);
    plan->place = calloc(plan->nchains, sizeof *plan->place);
    if (!plan->place)
        return sage__env_fail(env, SAGE_ENOMEM, "out of memory placing the job");
    plan->nplace = plan->nchains;
    for (size_t c = 0; c < plan->nchains; c++) {
        sage__chain *ch = &plan->chains[c];
        sage__place_req *r = &plan->place[c];
        sage__op *ro = ch->res_op ? ch->res_op : ch->ops[0];
        r->name = ro->name;
        r->parallelism = ch->parallelism;
        if (ch->res_op)
            r->res = ch->res_op->res;
    }
    int rc = sage__place(&plan->node, 1, plan->place, plan->nplace, &plan->assign, err, sizeof err);
    if (rc != 0)
        return sage__env_fail(env, rc, "%s", err);
    for (size_t c = 0; c < plan->nchains; c++)
        plan->chains[c].assign = plan->assign[c];
    return 0;
}

/* The plan hash: a fixed hash over a canonical text of everything that shapes
 * the plan (operators, kinds, parallelism, chaining, resources, inputs and
 * their routing). A worker process rebuilds the graph and must arrive at the
 * same value. Function pointers are left out on purpose: they differ
 * between processes; what they are bound to is the program's business. */
static uint64_t plan_hash(const sage_env *env)
{
    uint64_t h = sage__hash64(env->name, strlen(env->name));
    for (size_t i = 0; i < env->nops; i++) {
        const sage__op *op = env->ops[i];
        char buf[1024];
        int n = snprintf(buf, sizeof buf, "%s|%d|%d|%d|%d|%d|%.4f|%.4f|%llu|%llu|%zu|%zu", op->name, (int)op->kind,
                         (int)op->builtin, op->parallelism, op->chaining, op->bounded, op->res.num_cpus,
                         op->res.num_gpus, (unsigned long long)op->res.memory,
                         (unsigned long long)op->res.object_store_memory, op->res.ncustom, op->ninputs);
        for (size_t k = 0; k < op->res.ncustom && n > 0 && (size_t)n < sizeof buf; k++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s=%.4f", op->res.custom[k].name, op->res.custom[k].amount);
        for (size_t k = 0; k < op->ninputs && n > 0 && (size_t)n < sizeof buf; k++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, "|%s>%d", op->inputs[k].from->name, (int)op->inputs[k].part);
        if (n < 0 || (size_t)n >= sizeof buf)
            n = (int)sizeof buf - 1;
        uint64_t oh = sage__hash64(buf, (size_t)n);
        h = sage__hash64(&(uint64_t[2]){h, oh}, 16);
    }
    return h;
}

int sage__compile(sage_env *env)
{
    if (env->plan)
        return 0;
    if (env->err)
        return env->err;
    int rc = check_graph(env);
    if (rc != 0)
        return rc;
    sage__plan *plan = calloc(1, sizeof *plan);
    if (!plan)
        return sage__env_fail(env, SAGE_ENOMEM, "out of memory compiling the plan");
    if (build_chains(env, plan) != 0) {
        sage__plan_free(plan);
        return sage__env_fail(env, SAGE_ENOMEM, "out of memory compiling the plan");
    }
    plan->hash = plan_hash(env);
    if (env->remote == SAGE__ENV_EMBEDDED) { /* remote jobs are placed by the JobManager */
        rc = place(env, plan);
        if (rc != 0) {
            sage__plan_free(plan);
            return rc;
        }
    }
    env->plan = plan;
    return 0;
}
