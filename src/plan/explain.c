/* plan/explain.c - the plan for people (text) and for scripts (JSON): operators, chains, routing, resources. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"
#include "util/buf.h"
#include "util/json.h"

/* Text accumulates in a bounded buffer (16 MiB: a plan never needs more);
 * the first failure sticks and the result is NULL. */
typedef struct strbuf {
    sage__buf b;
    int oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (sage__buf_vprintf(&b->b, fmt, ap) != 0)
        b->oom = 1;
    va_end(ap);
}

static void res_text(strbuf *b, const sage_resources *r)
{
    const char *sep = "";
    char bytes[32];
    if (r->num_cpus > 0) {
        sb_printf(b, "%snum_cpus=%g", sep, r->num_cpus);
        sep = " ";
    }
    if (r->num_gpus > 0) {
        sb_printf(b, "%snum_gpus=%g", sep, r->num_gpus);
        sep = " ";
    }
    if (r->memory) {
        sage__format_bytes(r->memory, bytes, sizeof bytes);
        sb_printf(b, "%smemory=%s", sep, bytes);
        sep = " ";
    }
    if (r->object_store_memory) {
        sage__format_bytes(r->object_store_memory, bytes, sizeof bytes);
        sb_printf(b, "%sobject_store_memory=%s", sep, bytes);
        sep = " ";
    }
    for (size_t i = 0; i < r->ncustom; i++) {
        sb_printf(b, "%s%s=%g", sep, r->custom[i].name, r->custom[i].amount);
        sep = " ";
    }
}

/* "0-3,8,10-11" */
static void id_list(strbuf *b, const int *ids, int n)
{
    if (n == 0) {
        sb_printf(b, "-");
        return;
    }
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && ids[j + 1] == ids[j] + 1)
            j++;
        sb_printf(b, "%s%d", i ? "," : "", ids[i]);
        if (j > i)
            sb_printf(b, "-%d", ids[j]);
        i = j + 1;
    }
}

static void assign_text(strbuf *b, const sage__assign *a)
{
    sb_printf(b, "cpus ");
    if (!a->pin)
        sb_printf(b, "any (unpinned: every core is reserved)");
    else {
        id_list(b, a->cpus, a->ncpus);
        sb_printf(b, a->exclusive ? " exclusive" : " shared");
    }
    if (a->ngpus) {
        sb_printf(b, ", gpus ");
        id_list(b, a->gpus, a->ngpus);
        if (a->gpu_fraction < 1)
            sb_printf(b, " (%g of each)", a->gpu_fraction);
    }
    char bytes[32];
    if (a->memory) {
        sage__format_bytes(a->memory, bytes, sizeof bytes);
        sb_printf(b, ", memory %s", bytes);
    }
    if (a->object_store_memory) {
        sage__format_bytes(a->object_store_memory, bytes, sizeof bytes);
        sb_printf(b, ", object store %s", bytes);
    }
    for (size_t i = 0; i < a->ncustom; i++)
        sb_printf(b, ", %s %g", a->custom[i].name, a->custom[i].amount);
}

/* What recovery guarantees, per source and sink (checkpoint strategy), as text or NULL. */
static const char *op_guarantee(const sage__op *op)
{
    if (op->kind == SAGE__OP_SOURCE) {
        if (op->builtin != SAGE__BUILTIN_NONE)
            return "replayable (its position is checkpointed)";
        return op->restore ? "replayable (its restore hook)"
                           : "not replayable: it starts again on recovery, at-least-once for its records (give it "
                             "snapshot and restore hooks)";
    }
    if (op->kind == SAGE__OP_SINK)
        return op->builtin != SAGE__BUILTIN_NONE
                   ? "exactly-once (cut back to the checkpoint on recovery)"
                   : "at-least-once (a user sink sees the records after the "
                     "checkpoint again)";
    return NULL;
}

static void ft_text(strbuf *b, const sage__plan *plan)
{
    const sage__config *cfg = plan->g->cfg;
    if (!cfg || cfg->ft.strategy == SAGE__FT_NONE)
        return;
    char how[160];
    sage__ft_describe(&cfg->ft, how, sizeof how);
    sb_printf(b, "fault tolerance: %s\n", how);
    if (cfg->ft.strategy != SAGE__FT_CHECKPOINT)
        return;
    for (size_t i = 0; i < plan->g->nops; i++) {
        const char *gu = op_guarantee(plan->g->ops[i]);
        if (gu)
            sb_printf(b, "  %s \"%s\": %s\n", sage__op_display_kind(plan->g->ops[i]), plan->g->ops[i]->name, gu);
    }
}

char *sage__plan_explain(const sage__plan *plan)
{
    const sage__graph *g = plan->g;
    strbuf b = {0};
    sage__buf_init(&b.b, 16u << 20);
    char mem[32];
    sage__format_bytes(plan->node.memory, mem, sizeof mem);
    sb_printf(&b, "job \"%s\": %zu operators in %zu chains, %zu tasks\n", g->name, g->nops, plan->nchains,
              plan->ntasks);
    sb_printf(&b, "node \"%s\": %d cpus, %d gpus, memory %s%s", plan->node.name, plan->node.ncpus, plan->node.ngpus,
              mem, plan->node.simulated ? " (from config)" : "");
    for (size_t i = 0; i < plan->node.ncustom; i++)
        sb_printf(&b, ", %s %g", plan->node.custom[i].name, plan->node.custom[i].amount);
    sb_printf(&b, "\n");
    ft_text(&b, plan);
    for (size_t c = 0; c < plan->nchains; c++) {
        const sage__chain *ch = &plan->chains[c];
        if (ch->threads)
            sb_printf(&b, "chain %zu (parallelism %d, on %d threads: config chain_threads)\n", c, ch->parallelism,
                      ch->threads);
        else
            sb_printf(&b, "chain %zu (parallelism %d)\n", c, ch->parallelism);
        for (size_t k = 0; k < ch->nops; k++) {
            const sage__op *op = sage__chain_op(plan, ch, k);
            int fut = op->builtin == SAGE__BUILTIN_FUTURE;
            sb_printf(&b, "  %s \"%s\"", sage__op_display_kind(op), op->name);
            if (k == 0 && op->ninputs) {
                sb_printf(&b, " <-");
                for (size_t i = 0; i < op->ninputs; i++)
                    sb_printf(&b, "%s %s from \"%s\"", i ? "," : "", sage__part_name(plan->ops[op->id].part[i]),
                              op->inputs[i].from->name);
            } else if (k > 0) {
                sb_printf(&b, " (chained)");
            }
            if (fut && plan->ops[op->id].loop == op->id) {
                sb_printf(&b, " (feedback loop through");
                for (size_t i = 0, n = 0; i < plan->nops; i++)
                    if (plan->ops[i].loop == op->id && (int)i != op->id)
                        sb_printf(&b, "%s \"%s\"", n++ ? "," : "", plan->ops[i].op->name);
                sb_printf(&b, ")");
            }
            if (op->has_res) {
                sb_printf(&b, " resources per instance: ");
                res_text(&b, &op->res);
            }
            sb_printf(&b, "\n");
        }
        /* Forward edges that did not fuse, with the reason. */
        const sage__op *tail = sage__chain_op(plan, ch, ch->nops - 1);
        const sage__pop *tp = &plan->ops[tail->id];
        for (size_t k = 0; k < tp->nconsumers; k++) {
            const sage__op *cop = plan->ops[tp->consumers[k].op].op;
            const char *why = sage__no_chain_reason(plan, tail, cop);
            if (why && plan->ops[cop->id].part[tp->consumers[k].input] == SAGE__PART_FORWARD)
                sb_printf(&b, "  not chained with \"%s\": %s\n", cop->name, why);
        }
        if (ch->assign)
            for (int i = 0; i < ch->parallelism; i++) {
                sb_printf(&b, "  instance %d: ", i);
                assign_text(&b, &ch->assign[i]);
                sb_printf(&b, "\n");
            }
    }
    if (b.oom) {
        sage__buf_free(&b.b);
        return NULL;
    }
    return sage__buf_detach(&b.b, NULL);
}

static json_t *ids_json(const int *ids, int n)
{
    int bad = 0;
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        sage__jadd(&bad, a, json_integer(ids[i]));
    return sage__jdone(bad, a);
}

char *sage__plan_explain_json(const sage__plan *plan)
{
    const sage__graph *g = plan->g;
    int bad = 0;
    json_t *root = json_object();
    sage__jset(&bad, root, "job", json_string(g->name));
    json_t *node = json_object();
    sage__jset(&bad, node, "name", json_string(plan->node.name));
    sage__jset(&bad, node, "cpus", json_integer(plan->node.ncpus));
    sage__jset(&bad, node, "gpus", json_integer(plan->node.ngpus));
    sage__jset(&bad, node, "memory", json_integer((json_int_t)plan->node.memory));
    sage__jset(&bad, node, "simulated", json_boolean(plan->node.simulated));
    sage__jset(&bad, root, "node", node);
    json_t *ops = json_array();
    for (size_t i = 0; i < g->nops; i++) {
        const sage__op *op = g->ops[i];
        json_t *o = json_object();
        sage__jset(&bad, o, "name", json_string(op->name));
        sage__jset(&bad, o, "kind", json_string(sage__op_display_kind(op)));
        if (plan->ops[op->id].loop >= 0)
            sage__jset(&bad, o, "loop", json_string(plan->g->ops[plan->ops[op->id].loop]->name));
        sage__jset(&bad, o, "parallelism", json_integer(op->parallelism));
        sage__jset(&bad, o, "chain", json_integer(plan->ops[i].chain));
        sage__jset(&bad, o, "chaining", json_boolean(op->chaining));
        json_t *ins = json_array();
        for (size_t k = 0; k < op->ninputs; k++) {
            json_t *e = json_object();
            sage__jset(&bad, e, "from", json_string(op->inputs[k].from->name));
            sage__jset(&bad, e, "partitioning", json_string(sage__part_name(plan->ops[i].part[k])));
            sage__jadd(&bad, ins, e);
        }
        sage__jset(&bad, o, "inputs", ins);
        const char *gu = g->cfg && g->cfg->ft.strategy == SAGE__FT_CHECKPOINT ? op_guarantee(op) : NULL;
        if (gu)
            sage__jset(&bad, o, "recovery", json_string(gu));
        sage__jset(&bad, o, "resources", op->has_res ? sage__resources_json(&op->res, 1) : json_null());
        sage__jadd(&bad, ops, o);
    }
    sage__jset(&bad, root, "operators", ops);
    json_t *chains = json_array();
    for (size_t c = 0; c < plan->nchains; c++) {
        const sage__chain *ch = &plan->chains[c];
        json_t *o = json_object();
        sage__jset(&bad, o, "id", json_integer((json_int_t)c));
        sage__jset(&bad, o, "parallelism", json_integer(ch->parallelism));
        sage__jset(&bad, o, "threads", json_integer(ch->threads ? ch->threads : ch->parallelism));
        json_t *names = json_array();
        for (size_t k = 0; k < ch->nops; k++)
            sage__jadd(&bad, names, json_string(sage__chain_op(plan, ch, k)->name));
        sage__jset(&bad, o, "operators", names);
        json_t *insts = json_array();
        for (int i = 0; ch->assign && i < ch->parallelism; i++) {
            const sage__assign *a = &ch->assign[i];
            json_t *ij = json_object();
            sage__jset(&bad, ij, "instance", json_integer(i));
            sage__jset(&bad, ij, "node", json_string(plan->node.name));
            sage__jset(&bad, ij, "cpus", ids_json(a->cpus, a->ncpus));
            sage__jset(&bad, ij, "exclusive", json_boolean(a->exclusive));
            sage__jset(&bad, ij, "pinned", json_boolean(a->pin));
            sage__jset(&bad, ij, "gpus", ids_json(a->gpus, a->ngpus));
            sage__jset(&bad, ij, "gpu_fraction", json_real(a->gpu_fraction));
            sage__jset(&bad, ij, "memory", json_integer((json_int_t)a->memory));
            sage__jset(&bad, ij, "object_store_memory", json_integer((json_int_t)a->object_store_memory));
            json_t *cu = json_object();
            for (size_t k = 0; k < a->ncustom; k++)
                sage__jset(&bad, cu, a->custom[k].name, json_real(a->custom[k].amount));
            sage__jset(&bad, ij, "resources", cu);
            sage__jadd(&bad, insts, ij);
        }
        sage__jset(&bad, o, "instances", insts);
        sage__jadd(&bad, chains, o);
    }
    sage__jset(&bad, root, "chains", chains);
    root = sage__jdone(bad, root);
    char *s = root ? sage__json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return s; /* NULL: out of memory */
}
