/* resources/placement.h - node capacity and the atomic placement of every operator instance on nodes. */
#ifndef SAGE_RESOURCES_PLACEMENT_H
#define SAGE_RESOURCES_PLACEMENT_H

#include <jansson.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "sage/context.h"
#include "sage/resources.h"

#define SAGE__NODE_CPUS_MAX 1024 /* logical CPUs one node may declare */
#define SAGE__NODE_GPUS_MAX 64

/* What one node offers. Logical CPU ids are 0..ncpus-1; logical CPU k runs on
 * the real CPU real_cpus[k % nreal] of this process's allowed set, so a
 * simulated node larger than the machine still pins deterministically. */
typedef struct sage__node {
    char name[64];
    int ncpus;                  /* logical CPUs offered */
    int nreal;                  /* real CPUs this process may run on */
    int real_cpus[CPU_SETSIZE]; /* their ids, ascending */
    int simulated;              /* 1: capacity came from config, not discovery */
    int ngpus;
    int gpu_ids[SAGE__NODE_GPUS_MAX]; /* device ids to hand out (CUDA_VISIBLE_DEVICES order) */
    uint64_t memory;                  /* bytes */
    size_t ncustom;
    sage_resource_amount custom[SAGE_RES_CUSTOM_MAX];
    int unavailable; /* 1: placement puts nothing here (a node a restarted job lost); 0 everywhere else */
} sage__node;

/* Discover this host: CPUs from sched_getaffinity, memory from the cgroup
 * limit (v2 memory.max, v1 memory.limit_in_bytes) or MemTotal, whichever is
 * smaller, GPUs from CUDA_VISIBLE_DEVICES or /proc/driver/nvidia/gpus. */
int sage__node_discover(sage__node *n, char *err, size_t err_len);

/* Apply a config object {"name": "...", "cpus": 20, "gpus": 2, "memory": "64GB",
 * "resources": {"ssd": 2}} over a discovered node (keys left out keep the
 * discovered value). Unknown keys and bad values are errors naming the key. */
int sage__node_configure(sage__node *n, const json_t *obj, char *err, size_t err_len);

/* One placement request: every instance of one task group (an operator or a
 * chain of operators) asks for `res`. */
typedef struct sage__place_req {
    const char *name; /* operator name, for messages */
    int parallelism;
    sage_resources res;
} sage__place_req;

/* Where one instance landed and what it got. */
typedef struct sage__assign {
    int node; /* index into the nodes array */
    int ncpus;
    int *cpus;          /* logical CPU ids (malloc'd) */
    int exclusive;      /* 1: cpus are reserved for this instance alone */
    double cpu_share;   /* fractional part placed on a shared core (0 if none) */
    int pin;            /* 0: leave the thread unpinned (no core left to pin to) */
    cpu_set_t affinity; /* real CPUs to pin to when pin is 1 */
    int ngpus;
    int *gpus;           /* GPU device ids (malloc'd) */
    double gpu_fraction; /* share of each GPU (1 for whole GPUs) */
    uint64_t memory, object_store_memory;
    size_t ncustom;
    sage_resource_amount custom[SAGE_RES_CUSTOM_MAX];
    sage_assignment pub; /* the public view (points into this struct and the node) */
} sage__assign;

/* Place every instance of every request, atomically: on success *out is an
 * array of nreqs arrays (out[i] has reqs[i].parallelism entries) and 0 is
 * returned; on failure nothing is allocated, SAGE_EINFEASIBLE is returned and
 * err lists every request that does not fit (see docs/resources.md for the
 * exact wording). Rules:
 *  - whole num_cpus k: k exclusive logical CPUs (lowest free ids first);
 *    a fractional part goes to a shared core, first fit;
 *  - instances without a CPU request are pinned to the cores nobody reserved
 *    exclusively (all of them), or left unpinned if there are none;
 *  - whole num_gpus k: k whole free GPUs; a fraction f: the lowest GPU with at
 *    least f left (three 0.5 requests land on GPUs 0, 0, 1);
 *  - memory + object_store_memory and custom resources are counted per node;
 *  - nodes are tried in order for each instance (first fit); when that fails,
 *    a bounded depth-first search (largest instances first) looks for any
 *    placement before refusing, so a job that fits is placed; jobs first fit
 *    places keep that placement; both are deterministic;
 *  - a refusal names, per operator that does not fit, what the job's placed
 *    operators and the running jobs (held) hold of the keys it asks for. */
int sage__place(const sage__node *nodes, size_t nnodes, const sage__place_req *reqs, size_t nreqs, sage__assign ***out,
                char *err, size_t err_len);
void sage__assign_free(sage__assign **a, const sage__place_req *reqs, size_t nreqs);
/* Point a->pub (the view user code gets) at a's own fields and the node name. */
void sage__assign_publish(sage__assign *a, const char *node);

/* What a running job holds: its requests and the assignments they got. */
typedef struct sage__held {
    const sage__place_req *reqs;
    size_t nreqs;
    sage__assign *const *assign;
} sage__held;
/* sage__place, with the resources of running jobs already taken: a job that
 * fits the empty nodes but not what is left fails with SAGE_EINFEASIBLE here
 * too; the caller tells the two apart by placing without `held` first. */
int sage__place_held(const sage__node *nodes, size_t nnodes, const sage__held *held, size_t nheld,
                     const sage__place_req *reqs, size_t nreqs, sage__assign ***out, char *err, size_t err_len);

/* "8 GB"-style text for a byte count, for messages and plans (exact when the
 * value is a whole number of the unit: 8000000000 -> "8GB", 1610612736 -> "1.5GiB"). */
void sage__format_bytes(uint64_t bytes, char *buf, size_t len);

#endif
