/* graph/graph.c - the graph container: lifetime, lookup by name, the names of kinds and routings. */
#include "graph/graph.h"

#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

void sage__graph_init(sage__graph *g, const char *name, const sage__config *cfg, sage__err *err)
{
    memset(g, 0, sizeof *g);
    sage__strlcpy(g->name, name, sizeof g->name);
    g->cfg = cfg;
    g->err = err;
}

static void op_free(sage__op *op)
{
    free(op->inputs);
    free(op->cofns);
    free(op->coll_data);
    free(op->coll_off);
    free(op->path);
    free(op);
}

void sage__graph_free(sage__graph *g)
{
    for (size_t i = 0; i < g->nops; i++)
        op_free(g->ops[i]);
    free(g->ops);
    for (sage_stream *s = g->streams; s;) {
        sage_stream *n = s->next_alloc;
        free(s->conn);
        free(s);
        s = n;
    }
    free(g->services);
    g->ops = NULL;
    g->streams = NULL;
    g->services = NULL;
    g->nops = g->capops = g->nservices = 0;
}

sage__op *sage__graph_find(const sage__graph *g, const char *name)
{
    for (size_t i = 0; i < g->nops; i++)
        if (strcmp(g->ops[i]->name, name) == 0)
            return g->ops[i];
    return NULL;
}

const char *sage__name_problem(const char *name, int op_name, char *why, size_t why_len)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0)
        return "is empty";
    if (n >= SAGE__NAME_MAX) {
        sage__fmt(why, why_len, "is longer than %d bytes", SAGE__NAME_MAX - 1);
        return why;
    }
    if (!sage__utf8_valid(name, n))
        return "is not valid UTF-8";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f) {
            sage__fmt(why, why_len, "contains a control character (byte 0x%02x at offset %zu)", c, i);
            return why;
        }
        if (op_name && c == '/') {
            sage__fmt(why, why_len, "contains '/' (at offset %zu): operator names become file names", i);
            return why;
        }
    }
    if (op_name && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
        return "is \".\" or \"..\", which are not file names";
    return NULL;
}

const char *sage__op_display_kind(const sage__op *op)
{
    if (op->builtin == SAGE__BUILTIN_FUTURE)
        return "future";
    if (op->batch)
        return op->kind == SAGE__OP_SINK ? "sink_batches" : "map_batches";
    return sage__op_kind_name(op->kind);
}

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
