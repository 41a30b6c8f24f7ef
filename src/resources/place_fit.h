/* resources/place_fit.h - placement's shared insides: scratch counters, what an instance needs, where it fits; the search. */
#ifndef SAGE_RESOURCES_PLACE_FIT_H
#define SAGE_RESOURCES_PLACE_FIT_H

#include "resources/placement.h"

#define UNITS 10000 /* one CPU or GPU, in steps of 0.0001 */

enum { CPU_FREE = 0, CPU_EXCL = 1, CPU_SHARED = 2 };

/* Scratch counters for all nodes. */
typedef struct scratch {
    size_t nnodes;
    size_t *cpu_off; /* nnodes: first index of node i's CPUs in cpu / shared */
    size_t total_cpus;
    unsigned char *cpu; /* total_cpus: CPU_FREE / CPU_EXCL / CPU_SHARED */
    int *shared;        /* total_cpus: load of a shared core, in UNITS */
    int *gpu;           /* nnodes * SAGE__NODE_GPUS_MAX: load in UNITS */
    uint64_t *mem;      /* nnodes: bytes used */
    double *custom;     /* nnodes * SAGE_RES_CUSTOM_MAX: used, by the node's custom index */
} scratch;

/* What one instance of a request needs, in placement units. */
typedef struct need {
    int cpu_whole; /* exclusive CPUs */
    int cpu_frac;  /* share of a shared core, UNITS (0: none) */
    int gpu_whole; /* whole GPUs */
    int gpu_frac;  /* share of one GPU, UNITS (0: none) */
    uint64_t mem;  /* memory + object_store_memory, saturated */
} need;

/* Where one instance would go on one node. */
typedef struct pick {
    int cpus[SAGE__NODE_CPUS_MAX + 1]; /* exclusive ids ascending, then the shared core */
    int ncpus;
    int shared_core;               /* -1: none */
    int gpus[SAGE__NODE_GPUS_MAX]; /* indexes into the node's GPUs */
    int ngpus;
    int custom_idx[SAGE_RES_CUSTOM_MAX]; /* node custom index per request custom (-1: none) */
} pick;

/* Scratch counters (placement.c). */
int sage__pl_scratch_init(scratch *s, const sage__node *nodes, size_t nnodes);
void sage__pl_scratch_free(scratch *s);
void sage__pl_scratch_copy(scratch *dst, const scratch *src);
/* What one instance of r needs; whether it fits node ni (filling pk); taking it. */
void sage__pl_need_of(const sage_resources *r, need *nd);
int sage__pl_fits(const sage__node *n, size_t ni, const scratch *s, const sage_resources *r, const need *nd, pick *pk);
void sage__pl_apply(const sage__node *n, size_t ni, scratch *s, const sage_resources *r, const need *nd,
                    const pick *pk);

/* The search (search.c): one instance's place, and the order the instances were placed in. */
typedef struct slot {
    size_t req;
    int inst;
    long long size; /* ordering key: GPU, then CPU, then memory need */
} slot;

typedef struct choice {
    int node, gpu, core; /* gpu, core: which GPU / shared core the fractions take (-1: fits()'s own) */
} choice;

#define SEARCH_BUDGET 200000L /* steps */
#define SEARCH_MAX_SLOTS 1024 /* instances a job may have for the search */

/* fits with the fractions forced onto one GPU / shared core (-1: its own choice). */
int sage__pl_fits_forced(const sage__node *n, size_t ni, const scratch *s, const sage_resources *r, const need *nd,
                         pick *pk, int gpu, int core);
/* Search for a placement (base: what running jobs hold). 1 with *order and *chosen set (caller frees);
 * 0 when none was found (*gave_up: the budget ran out); SAGE_ENOMEM. */
int sage__pl_search(const sage__node *nodes, size_t nnodes, const sage__place_req *reqs, size_t nreqs,
                    const scratch *base, slot **order_out, choice **chosen_out, size_t *nslots_out, int *gave_up);

#endif
