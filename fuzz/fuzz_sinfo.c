/* fuzz/fuzz_sinfo.c - fuzzes the Slurm client's parsers: sinfo JSON, scontrol node lines, gres strings, counts.
 *
 * Each input is read four ways: as `sinfo --json` output (and, when it
 * parses, turned into placement nodes), as `scontrol show nodes -o -d`
 * output, as a gres string and as a count. Invariants: a failure comes with
 * a non-empty message; a success gives NUL-terminated names and states,
 * non-negative amounts, a gres table within its bound, no duplicate node
 * names, and placement nodes within SAGE's limits whose memory is the
 * node's RealMemory in bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/slurm.h"
#include "sage/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 65536

static void fail(const char *what, const char *input, const char *msg)
{
    fprintf(stderr, "fuzz_sinfo: %s\n  input: %.300s\n  message: %s\n", what, input, msg ? msg : "");
    abort();
}

static void check_error(int rc, const sage__err *e, const char *input)
{
    if (rc == 0)
        return;
    if (e->code != rc || e->msg[0] == '\0' || memchr(e->msg, '\0', sizeof e->msg) == NULL)
        fail("failure without a matching code and message", input, e->msg);
}

static void check_node(const sage__slurm_node *x, const char *input)
{
    if (!memchr(x->name, '\0', sizeof x->name) || !x->name[0] || !memchr(x->state, '\0', sizeof x->state) ||
        !memchr(x->flags, '\0', sizeof x->flags) || !memchr(x->gres, '\0', sizeof x->gres))
        fail("node text not NUL-terminated or empty name", input, x->name);
    if (x->cpus < 0 || x->cpus_alloc < 0 || x->mem_mb < 0 || x->mem_alloc_mb < 0 || x->mem_mb > (INT64_MAX >> 20))
        fail("negative or unbounded amount", input, x->name);
    if (x->ngres < 0 || x->ngres > SAGE__SLURM_GRES_MAX)
        fail("gres table out of bounds", input, x->name);
    for (int i = 0; i < x->ngres; i++)
        if (!x->g[i].name[0] || x->g[i].total < 0 || x->g[i].used < 0)
            fail("bad gres entry", input, x->g[i].name);
    for (const char *c = x->state; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            fail("state not lower case", input, x->state);
}

static void check_nodes(const sage__slurm_node *v, size_t n, const char *input)
{
    for (size_t i = 0; i < n; i++) {
        check_node(&v[i], input);
        for (size_t k = 0; k < i; k++)
            if (strcmp(v[i].name, v[k].name) == 0)
                fail("a node listed twice", input, v[i].name);
    }
}

static void check_placement(const sage__slurm_node *v, size_t n, const char *input)
{
    sage__node *nodes = NULL;
    size_t m = 0;
    sage__err e = {0};
    int rc = sage__slurm_placement_nodes(v, n, &nodes, &m, &e);
    if (rc != 0 && rc != SAGE_EINFEASIBLE && rc != SAGE_ECONFIG)
        fail("placement_nodes returned an unexpected code", input, e.msg);
    check_error(rc, &e, input);
    if (rc != 0)
        return;
    if (m == 0 || m > n)
        fail("placement node count out of range", input, "");
    for (size_t i = 0; i < m; i++) {
        const sage__node *nd = &nodes[i];
        const sage__slurm_node *x = NULL;
        for (size_t k = 0; k < n && !x; k++)
            if (strcmp(v[k].name, nd->name) == 0)
                x = &v[k];
        if (!x || !sage__slurm_usable(x))
            fail("a placement node that is not a usable Slurm node", input, nd->name);
        if (nd->ncpus < 0 || nd->ncpus > SAGE__NODE_CPUS_MAX || nd->ngpus < 0 || nd->ngpus > SAGE__NODE_GPUS_MAX ||
            nd->ncustom > SAGE_RES_CUSTOM_MAX || nd->memory != (uint64_t)x->mem_mb << 20)
            fail("placement node outside SAGE's limits", input, nd->name);
        for (int g = 0; g < nd->ngpus; g++)
            if (nd->gpu_ids[g] != g)
                fail("GPU ids not 0..N-1", input, nd->name);
    }
    free(nodes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    sage__slurm_node *v = NULL;
    size_t n = 0;
    sage__err e = {0};
    int rc = sage__slurm_parse_sinfo(text, &v, &n, &e);
    if (rc != 0 && rc != SAGE_EPROTO && rc != SAGE_ENOMEM)
        fail("parse_sinfo returned an unexpected code", text, e.msg);
    check_error(rc, &e, text);
    if (rc == 0) {
        check_nodes(v, n, text);
        check_placement(v, n, text);
        free(v);
    }

    sage__err e2 = {0};
    rc = sage__slurm_parse_scontrol_nodes(text, &v, &n, &e2);
    check_error(rc, &e2, text);
    if (rc == 0) {
        check_nodes(v, n, text);
        check_placement(v, n, text);
        free(v);
    }

    sage__slurm_node g = {.name = "fuzz"};
    sage__err e3 = {0};
    rc = sage__slurm_parse_gres(&g, text, 0, &e3);
    check_error(rc, &e3, text);
    if (rc == 0)
        check_node(&g, text);

    int64_t c = 0;
    rc = sage__slurm_count(text, &c);
    if (rc != 0 && rc != SAGE_EINVAL && rc != SAGE_ETOOBIG)
        fail("count returned an unexpected code", text, "");
    if (rc == 0 && c < 0)
        fail("negative count", text, "");

    free(text);
    return 0;
}
