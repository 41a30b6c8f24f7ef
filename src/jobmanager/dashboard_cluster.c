/* jobmanager/dashboard_cluster.c - the dashboard's cluster view: the nodes placement uses and what SAGE holds on each.
 *
 * The nodes are the launcher's, as placement sees them and `sage
 * jobmanager status` lists them: this host (discovered, or as config
 * "node" sets it), or the Slurm nodes from the JobManager's last sinfo,
 * which it keeps in memory (read at start and before a submit, by a
 * command the loop does not wait for): answering never runs a Slurm
 * command. What SAGE holds on a node is what placement reserved there for
 * the jobs that are placed (running or paused, or between the attempts of
 * a restart): each task's request (CPUs, GPUs, memory, custom resources;
 * a task that requests nothing reserves nothing), the tasks placed there
 * and how many of their processes are alive, and the jobs they belong to.
 */
#include <string.h>

#include "jobmanager/dashboard.h"
#include "jobmanager/launcher.h"

typedef struct held {
    double cpus, gpus;
    uint64_t memory;
    json_t *custom; /* name -> amount */
    int tasks, running;
    json_t *jobs; /* ids */
} held;

static void add_task(held *h, const jm_job *j, const jm_task *k)
{
    const sage_resources *r = &j->reqs[k->chain].res;
    h->cpus += r->num_cpus;
    h->gpus += r->num_gpus;
    h->memory += r->memory;
    for (size_t c = 0; c < r->ncustom; c++) {
        json_t *v = json_object_get(h->custom, r->custom[c].name);
        json_object_set_new(h->custom, r->custom[c].name, json_real(json_real_value(v) + r->custom[c].amount));
    }
    h->tasks++;
    if (k->pid > 0 && !k->exited)
        h->running++;
    size_t i;
    json_t *id;
    json_array_foreach(h->jobs, i, id) if (json_integer_value(id) == j->id) return;
    json_array_append_new(h->jobs, json_integer((json_int_t)j->id));
}

/* The node's own resources and what SAGE holds there. */
static json_t *node_json(const jm *d, const sage__node *n)
{
    held h = {.custom = json_object(), .jobs = json_array()};
    for (const jm_job *j = d->jobs; j && h.custom && h.jobs; j = j->next) {
        if (!j->assign || !j->reqs)
            continue; /* not placed (pending) */
        for (size_t t = 0; t < j->ntasks; t++)
            if ((size_t)j->tasks[t].chain < j->nreqs && strcmp(j->tasks[t].node, n->name) == 0)
                add_task(&h, j, &j->tasks[t]);
    }
    json_t *res = json_object();
    for (size_t c = 0; res && c < n->ncustom; c++)
        json_object_set_new(res, n->custom[c].name, json_real(n->custom[c].amount));
    return json_pack("{s:s,s:i,s:i,s:I,s:o,s:b,s:{s:f,s:f,s:I,s:o,s:i,s:i,s:o}}", "name", n->name, "cpus", n->ncpus,
                     "gpus", n->ngpus, "memory", (json_int_t)n->memory, "resources", res ? res : json_object(),
                     "unavailable", n->unavailable, "held", "cpus", h.cpus, "gpus", h.gpus, "memory",
                     (json_int_t)h.memory, "resources", h.custom ? h.custom : json_object(), "tasks", h.tasks,
                     "running", h.running, "jobs", h.jobs ? h.jobs : json_array());
}

void jm_dash_cluster(jm *d, jm_conn *c)
{
    size_t n;
    const sage__node *nodes = d->launcher->nodes(d, &n);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, node_json(d, &nodes[i]));
    jm_dash_json(c, 200, json_pack("{s:s,s:o}", "launcher", d->launcher->name, "nodes", a ? a : json_array()));
}
