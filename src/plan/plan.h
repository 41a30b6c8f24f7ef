/* plan/plan.h - the physical plan compiled from a graph: routing resolved, operators fused into chains, placement.
 *
 * Design note. Compiling reads the graph and writes only the plan: per
 * operator its resolved input routing (DEFAULT becomes FORWARD or
 * REBALANCE), its consumers, and where it sits in a chain; chains are the
 * units that run as tasks (one per instance). The plan hash is computed
 * over everything that shapes the plan, so that a worker process that
 * rebuilds the graph can prove it built the same one. The plan document
 * (plan/document.c) is the plan as the JobManager receives it.
 */
#ifndef SAGE_PLAN_PLAN_H
#define SAGE_PLAN_PLAN_H

#include <jansson.h>

#include "graph/graph.h"
#include "resources/placement.h"

/* One consumer of an operator's output: (operator id, which of its inputs). */
typedef struct sage__consumer {
    int op;
    int input;
} sage__consumer;

/* An operator as compiled. */
typedef struct sage__pop {
    const sage__op *op;
    sage__part *part; /* per input: the resolved routing (never DEFAULT) */
    size_t nconsumers;
    sage__consumer *consumers;
    int chain;     /* chain index */
    int chain_pos; /* position in the chain, 0 = head */
    int loop;      /* the future (operator id) whose feedback loop this operator is inside, or -1 */
    int ctl_to;    /* a loop's entry chain's tail: the future it tells when the loop's inputs ended, or -1 */
} sage__pop;

/* A chain: operators fused into one task per instance. */
typedef struct sage__chain {
    int id;
    int parallelism;
    size_t nops;
    int *ops;               /* operator ids, head first */
    const sage__op *res_op; /* the operator whose resources the chain reserves, or NULL */
    int producers;          /* producer instances feeding the head (0 for a source chain) */
    sage__assign *assign;   /* per instance, from the placer (NULL when not placed here) */
    int threads; /* > 0: that many threads serve the instances (config chain_threads, threads.c); 0: one each */
} sage__chain;

typedef struct sage__plan {
    const sage__graph *g;
    size_t nops;
    sage__pop *ops; /* indexed by operator id */
    size_t nchains;
    sage__chain *chains;
    size_t nplace;          /* placement requests (one per chain) */
    sage__place_req *place; /* indexed by chain */
    sage__assign **assign;  /* placer output, indexed by chain; NULL when not placed */
    sage__node node;        /* the node an embedded job runs on */
    size_t ntasks;
    uint64_t hash; /* plan hash: equal in the client and every worker */
} sage__plan;

/* Compile g (whose declaration succeeded) into *out. place: also place every
 * instance on this node (embedded jobs; a JobManager places remote ones).
 * Errors go to err (naming operators, limits, and what to change). */
int sage__plan_compile(const sage__graph *g, int place, sage__plan **out, sage__err *err);
void sage__plan_free(sage__plan *plan); /* NULL is fine */
/* threads.c: after placement, each chain's threads (chain->threads) under config chain_threads. */
void sage__plan_threads(const sage__graph *g, sage__plan *plan);

/* loops.c: feedback loops. Before chaining, each filled future's loop:
 * the operators on a cycle through it (pop->loop). After chaining, each
 * chain of a loop whose head has an input from outside it is an entry: its
 * tail gets a control edge to the future (pop->ctl_to, the future's input
 * index ninputs, broadcast, counted in the future's chain producers) that
 * carries its end-of-input and end-of-stream markers and no record.
 * Refused: a future never filled, an operator inside two loops, and loops
 * with the "checkpoint" strategy. */
int sage__plan_loops(const sage__graph *g, sage__plan *plan, sage__err *err);
int sage__plan_loop_entries(const sage__graph *g, sage__plan *plan, sage__err *err);

/* Why b is not fused after a (NULL when it is). */
const char *sage__no_chain_reason(const sage__plan *plan, const sage__op *a, const sage__op *b);
/* The chain's operators, as graph nodes. */
static inline const sage__op *sage__chain_op(const sage__plan *plan, const sage__chain *ch, size_t k)
{
    return plan->ops[ch->ops[k]].op;
}
/* Index of the first task of chain c: tasks are laid out chain by chain. */
size_t sage__plan_first_task(const sage__plan *plan, int chain);

/* explain.c: the plan as text and as JSON (malloc'd; NULL when out of memory). */
char *sage__plan_explain(const sage__plan *plan);
char *sage__plan_explain_json(const sage__plan *plan);

/* document.c: the plan document a remote environment submits, and its
 * reading by the JobManager. The document:
 *   {"name": job, "plan_hash": h>>1, "chains": [{"id", "name", "parallelism",
 *    "inputs": bool, "producers": n, "resources": {...}}, ...], ...}
 * (the client adds the program: executable, argv, cwd, env). The job's
 * services follow its chains, in registration order, one entry each with
 * parallelism 1, "name": "service:NAME" and "service": NAME: under a
 * JobManager each is a process of its own. "edges": [{"from": chain,
 * "to": chain, "routing": "forward"|"rebalance"|"broadcast"|"key_by"|
 * "custom", "feedback": true for the edge back into a loop's future}] is
 * for views of the job (the dashboard); nothing reads it to place or run. */
json_t *sage__plan_document(const sage__plan *plan);
/* The JobManager side: one placement request per chain of a submitted
 * document, checked (names, parallelism 1..SAGE_PARALLELISM_MAX, resources
 * with the same rules as sage_resources_parse). *reqs is malloc'd (free());
 * its names point into doc, which must outlive it. */
int sage__plan_document_reqs(const json_t *doc, sage__place_req **reqs, size_t *n, char *err, size_t err_len);
/* Resources as the document (and explain) write them. */
json_t *sage__resources_json(const sage_resources *r, int all_keys);

#endif
