/* cluster/slurm.h - the one Slurm client, shared by the JobManager and `sage cluster`: its commands and their output. */
#ifndef SAGE_CLUSTER_SLURM_H
#define SAGE_CLUSTER_SLURM_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/spawn.h"
#include "resources/placement.h"
#include "util/err.h"

#define SAGE__SLURM_OUT_MAX (4u << 20)  /* most stdout one command may print (more is an error) */
#define SAGE__SLURM_ERR_MAX (64u << 10) /* most stderr kept (the first line goes into messages) */
#define SAGE__SLURM_WAIT_MS 10000       /* default bound on one command */
#define SAGE__SLURM_GRES_MAX 32         /* distinct gres names one node may report */

/* ---- running commands (cluster/slurm.c) ----------------------------------- */

/* Start a Slurm client command (argv[0] from PATH) with SLURM_CONF=conf
 * (the inherited environment if conf is NULL), stdout and stderr captured
 * with the maxima above, killed after timeout_ms. For a poll loop: see
 * cluster/spawn.h for the rest of the life of p. */
int sage__slurm_start(sage__proc *p, const char *conf, char *const argv[], int timeout_ms, sage__err *e);

/* What a finished command amounts to: its exit status 0..255, or -1 when it
 * was killed, did not finish in time, or printed more than
 * SAGE__SLURM_OUT_MAX. msg gets why (or, for any exit status, the first
 * line of its stderr, "" if none). */
int sage__slurm_result(const sage__proc *p, char *msg, size_t msg_len);

/* Start, wait (bounded by timeout_ms) and reap by pid. *out gets its stdout
 * (malloc'd, NUL-terminated; NULL if out is NULL or it could not start).
 * Returns as sage__slurm_result, or -1 if it could not start (msg says why). */
int sage__slurm_run(const char *conf, char *const argv[], int timeout_ms, char **out, char *msg, size_t msg_len);

/* ---- nodes ------------------------------------------------------------------ */

typedef struct sage__slurm_gres {
    char name[64];
    int64_t total, used; /* counts, suffixes applied (gpu:2, bw:10G) */
} sage__slurm_gres;

/* One node as the controller reports it. */
typedef struct sage__slurm_node {
    char name[128];
    char state[64];  /* lower case: "idle", "mixed", "allocated", "down", ... */
    char flags[512]; /* the other state words, '+'-separated as Slurm prints them: "DRAIN+NOT_RESPONDING" */
    char address[128], reason[512], gres[256];
    int64_t cpus, cpus_alloc;
    int64_t mem_mb, mem_alloc_mb; /* RealMemory and allocated memory, MiB */
    int ngres;
    sage__slurm_gres g[SAGE__SLURM_GRES_MAX];
} sage__slurm_node;

/* `sinfo --json` (22.05 and later shapes: state as a string plus
 * state_flags, or as an array; numbers plain or {"number": N}). Every node
 * needs "name", "cpus", "real_memory" and "state"; alloc_cpus,
 * alloc_memory, address, reason, gres and gres_used may be missing. A node
 * listed twice (once per partition) is kept once. *nodes is malloc'd (free).
 * 0, or SAGE_EPROTO with what was wrong and where in e. */
int sage__slurm_parse_sinfo(const char *json, sage__slurm_node **nodes, size_t *n, sage__err *e);

/* `scontrol show nodes -o -d`: one "NodeName=..." line per node (other
 * lines are ignored). CPUTot, RealMemory and State are needed. */
int sage__slurm_parse_scontrol_nodes(const char *text, sage__slurm_node **nodes, size_t *n, sage__err *e);

/* Add a gres string ("gpu:2,ssd:4", "gpu:tesla:1(S:0-1),bw:10G") to the
 * node's totals (used 0) or used amounts (used 1). An item is NAME,
 * NAME:COUNT, NAME:TYPE (a count of 1) or NAME:TYPE...:COUNT, with an
 * optional "(...)" after it; COUNT is sage__slurm_count's (with three fields
 * or more the last must be one). Items of one name add up; "(null)", "N/A",
 * "" and empty items add nothing. 0, or SAGE_EPROTO naming the node. */
int sage__slurm_parse_gres(sage__slurm_node *n, const char *text, int used, sage__err *e);

/* A Slurm count: decimal digits and an optional suffix K, M, G, T or P
 * (case-insensitive; powers of 1024, as Slurm's and as sage_parse_bytes'
 * KiB..TiB). 0, SAGE_EINVAL (not such a count) or SAGE_ETOOBIG (>= 2^63). */
int sage__slurm_count(const char *text, int64_t *out);

/* 1 if Slurm would start work on the node: no state word (state or flag)
 * among DOWN, DRAIN(ED/ING), FAIL(ING), NOT_RESPONDING, FUTURE,
 * POWER(ED)_DOWN, INVALID_REG, INVALID, UNKNOWN. */
int sage__slurm_usable(const sage__slurm_node *n);
/* 1 if flag is one of the node's '+'-separated flags (exactly). */
int sage__slurm_has_flag(const sage__slurm_node *n, const char *flag);
/* The gres entry of that name, or NULL. */
const sage__slurm_gres *sage__slurm_gres_find(const sage__slurm_node *n, const char *name);

/* The nodes placement can use: the usable ones, as sage__node: Slurm's
 * name, CPUs (at most SAGE__NODE_CPUS_MAX), RealMemory, gres gpu:N as GPUs
 * 0..N-1 (at most SAGE__NODE_GPUS_MAX), every other gres with a count as a
 * custom resource. *out is malloc'd. SAGE_EINFEASIBLE when none is usable,
 * SAGE_ECONFIG when a node does not fit SAGE's limits (name, custom
 * resources), with the reason in e. */
int sage__slurm_placement_nodes(const sage__slurm_node *v, size_t n, sage__node **out, size_t *count, sage__err *e);

/* sage__slurm_parse_sinfo, then sage__slurm_placement_nodes. */
int sage__slurm_nodes_from_sinfo(const char *json, sage__node **out, size_t *count, sage__err *e);

/* Run `sinfo --json` and read the placement nodes (bounded by timeout_ms). */
int sage__slurm_nodes(const char *conf, int timeout_ms, sage__node **out, size_t *count, sage__err *e);

/* Every node the controller knows: `sinfo --json`, or where sinfo cannot
 * print JSON, `scontrol show nodes -o -d`; timeout_ms bounds both together. */
int sage__slurm_collect(const char *conf, int timeout_ms, sage__slurm_node **nodes, size_t *n, sage__err *e);

/* ---- other command output (cluster/slurm_parse.c) --------------------------- */

/* The value of "Key = value" in `scontrol show config` output ("" if absent). */
void sage__slurm_config_value(const char *text, const char *key, char *out, size_t len);
/* "JobState=X Reason=Y" from `scontrol show job -o` ("" if neither is there). */
void sage__slurm_job_state(const char *text, char *out, size_t len);
/* The job id `sbatch --parsable` printed ("ID" or "ID;CLUSTER"). 0 or SAGE_EPROTO. */
int sage__slurm_parse_jobid(const char *text, long long *id, sage__err *e);
/* `squeue -h -o "%T|%r"` of one job: its state and reason ("" and "" for
 * empty output: the job is not known). A heterogeneous job prints a line per
 * component: the first that is not RUNNING gives the state (RUNNING only
 * when all are). 0 or SAGE_EPROTO. */
int sage__slurm_parse_queue_state(const char *text, char *state, size_t state_len, char *reason, size_t reason_len,
                                  sage__err *e);
/* Each numbered step in `squeue -h -s -o "%i|%j"` ("12.3|name", or "12+1.3|name"
 * in component 1 of heterogeneous job 12; batch and extern steps are skipped):
 * fn(job, step, name, arg). Malformed lines are
 * skipped. Returns how many steps were seen. */
size_t sage__slurm_each_step(const char *text, void (*fn)(long long job, long long step, const char *name, void *arg),
                             void *arg);

#endif
