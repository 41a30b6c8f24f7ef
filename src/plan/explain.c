/* plan/explain.c - the plan for people (text) and for scripts (JSON): operators, chains, routing, resources. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

const char *sage__op_kind_name(sage__op_kind k)
{
    switch (k) {
    case SAGE__OP_SOURCE: return "source";
    case SAGE__OP_MAP: return "map";
    case SAGE__OP_FLAT_MAP: return "flat_map";
    case SAGE__OP_FILTER: return "filter";
    case SAGE__OP_SINK: return "sink";
    case SAGE__OP_COMAP: return "comap";
    case SAGE__OP_JOIN: return "join";
    }
    return "?";
}

const char *sage__part_name(sage__part p)
{
    switch (p) {
    case SAGE__PART_DEFAULT: return "default";
    case SAGE__PART_FORWARD: return "forward";
    case SAGE__PART_REBALANCE: return "rebalance";
    case SAGE__PART_BROADCAST: return "broadcast";
    case SAGE__PART_KEY: return "key_by";
    case SAGE__PART_CUSTOM: return "custom";
    }
    return "?";
}

/* A growable text buffer (bounded at 16 MiB: a plan never needs more). */
typedef struct strbuf {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        if (cap > (16u << 20)) {
            b->oom = 1;
            return;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
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

SAGE_API char *sage_env_explain(sage_env *env)
{
    if (!env || sage__compile(env) != 0)
        return NULL;
    const sage__plan *plan = env->plan;
    strbuf b = {0};
    char mem[32];
    sage__format_bytes(plan->node.memory, mem, sizeof mem);
    sb_printf(&b, "job \"%s\": %zu operators in %zu chains, %zu tasks\n", env->name, env->nops, plan->nchains,
              plan->ntasks);
    sb_printf(&b, "node \"%s\": %d cpus, %d gpus, memory %s%s", plan->node.name, plan->node.ncpus, plan->node.ngpus, mem,
              plan->node.simulated ? " (from config)" : "");
    for (size_t i = 0; i < plan->node.ncustom; i++)
        sb_printf(&b, ", %s %g", plan->node.custom[i].name, plan->node.custom[i].amount);
    sb_printf(&b, "\n");
    for (size_t c = 0; c < plan->nchains; c++) {
        const sage__chain *ch = &plan->chains[c];
        sb_printf(&b, "chain %zu (parallelism %d)\n", c, ch->parallelism);
        for (size_t k = 0; k < ch->nops; k++) {
            const sage__op *op = ch->ops[k];
            sb_printf(&b, "  %s \"%s\"", sage__op_kind_name(op->kind), op->name);
            if (k == 0 && op->ninputs) {
                sb_printf(&b, " <-");
                for (size_t i = 0; i < op->ninputs; i++)
                    sb_printf(&b, "%s %s from \"%s\"", i ? "," : "", sage__part_name(op->inputs[i].part),
                              op->inputs[i].from->name);
            } else if (k > 0) {
                sb_printf(&b, " (chained)");
            }
            if (op->has_res) {
                sb_printf(&b, " resources per instance: ");
                res_text(&b, &op->res);
            }
            sb_printf(&b, "\n");
        }
        /* Forward edges that did not fuse, with the reason. */
        const sage__op *tail = ch->ops[ch->nops - 1];
        for (size_t k = 0; k < tail->nconsumers; k++) {
            const sage__op *cop = tail->consumers[k].op;
            const char *why = sage__no_chain_reason(tail, cop);
            if (why && cop->inputs[tail->consumers[k].input].part == SAGE__PART_FORWARD)
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
        free(b.p);
        sage__env_fail(env, SAGE_ENOMEM, "out of memory explaining the plan");
        return NULL;
    }
    return b.p;
}

static json_t *res_json(const sage_resources *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "num_cpus", json_real(r->num_cpus));
    json_object_set_new(o, "num_gpus", json_real(r->num_gpus));
    json_object_set_new(o, "memory", json_integer((json_int_t)r->memory));
    json_object_set_new(o, "object_store_memory", json_integer((json_int_t)r->object_store_memory));
    json_t *cu = json_object();
    for (size_t i = 0; i < r->ncustom; i++)
        json_object_set_new(cu, r->custom[i].name, json_real(r->custom[i].amount));
    json_object_set_new(o, "resources", cu);
    return o;
}

static json_t *ids_json(const int *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

SAGE_API char *sage_env_explain_json(sage_env *env)
{
    if (!env || sage__compile(env) != 0)
        return NULL;
    const sage__plan *plan = env->plan;
    json_t *root = json_object();
    json_object_set_new(root, "job", json_string(env->name));
    json_t *node = json_object();
    json_object_set_new(node, "name", json_string(plan->node.name));
    json_object_set_new(node, "cpus", json_integer(plan->node.ncpus));
    json_object_set_new(node, "gpus", json_integer(plan->node.ngpus));
    json_object_set_new(node, "memory", json_integer((json_int_t)plan->node.memory));
    json_object_set_new(node, "simulated", json_boolean(plan->node.simulated));
    json_object_set_new(root, "node", node);
    json_t *ops = json_array();
    for (size_t i = 0; i < env->nops; i++) {
        const sage__op *op = env->ops[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(op->name));
        json_object_set_new(o, "kind", json_string(sage__op_kind_name(op->kind)));
        json_object_set_new(o, "parallelism", json_integer(op->parallelism));
        json_object_set_new(o, "chain", json_integer(op->chain));
        json_object_set_new(o, "chaining", json_boolean(op->chaining));
        json_t *ins = json_array();
        for (size_t k = 0; k < op->ninputs; k++) {
            json_t *e = json_object();
            json_object_set_new(e, "from", json_string(op->inputs[k].from->name));
            json_object_set_new(e, "partitioning", json_string(sage__part_name(op->inputs[k].part)));
            json_array_append_new(ins, e);
        }
        json_object_set_new(o, "inputs", ins);
        json_object_set_new(o, "resources", op->has_res ? res_json(&op->res) : json_null());
        json_array_append_new(ops, o);
    }
    json_object_set_new(root, "operators", ops);
    json_t *chains = json_array();
    for (size_t c = 0; c < plan->nchains; c++) {
        const sage__chain *ch = &plan->chains[c];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer((json_int_t)c));
        json_object_set_new(o, "parallelism", json_integer(ch->parallelism));
        json_t *names = json_array();
        for (size_t k = 0; k < ch->nops; k++)
            json_array_append_new(names, json_string(ch->ops[k]->name));
        json_object_set_new(o, "operators", names);
        json_t *insts = json_array();
        for (int i = 0; ch->assign && i < ch->parallelism; i++) {
            const sage__assign *a = &ch->assign[i];
            json_t *ij = json_object();
            json_object_set_new(ij, "instance", json_integer(i));
            json_object_set_new(ij, "node", json_string(plan->node.name));
            json_object_set_new(ij, "cpus", ids_json(a->cpus, a->ncpus));
            json_object_set_new(ij, "exclusive", json_boolean(a->exclusive));
            json_object_set_new(ij, "pinned", json_boolean(a->pin));
            json_object_set_new(ij, "gpus", ids_json(a->gpus, a->ngpus));
            json_object_set_new(ij, "gpu_fraction", json_real(a->gpu_fraction));
            json_object_set_new(ij, "memory", json_integer((json_int_t)a->memory));
            json_object_set_new(ij, "object_store_memory", json_integer((json_int_t)a->object_store_memory));
            json_t *cu = json_object();
            for (size_t k = 0; k < a->ncustom; k++)
                json_object_set_new(cu, a->custom[k].name, json_real(a->custom[k].amount));
            json_object_set_new(ij, "resources", cu);
            json_array_append_new(insts, ij);
        }
        json_object_set_new(o, "instances", insts);
        json_array_append_new(chains, o);
    }
    json_object_set_new(root, "chains", chains);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s)
        sage__env_fail(env, SAGE_ENOMEM, "out of memory explaining the plan");
    return s;
}
