/* cluster/slurm.h - running Slurm client commands (sinfo, sbatch, squeue, scancel, scontrol) for the
 * JobManager, and reading node capacities from `sinfo --json`. */
#ifndef SAGE_CLUSTER_SLURM_H
#define SAGE_CLUSTER_SLURM_H

#include <stddef.h>

#include "resources/placement.h"

#define SAGE__SLURM_OUT_MAX (4u << 20) /* most stdout kept from one command */
#define SAGE__SLURM_WAIT_MS 10000      /* default bound on one command */

/* Run argv (execvp: no shell) with SLURM_CONF=conf (unchanged if conf is NULL), stdin from /dev/null,
 * every signal unblocked. Waits at most timeout_ms, then kills it. On return *out holds its stdout
 * (malloc'd, NUL-terminated, at most SAGE__SLURM_OUT_MAX bytes; NULL if out is NULL) and `msg` the
 * first line of its stderr (or why it could not run). Returns its exit status, or -1 if it could not
 * be started, was killed by a signal or did not finish in time (msg says which). */
int sage__slurm_run(const char *conf, char *const argv[], int timeout_ms, char **out, char *msg, size_t msg_len);

/* Every usable node the controller reports (`sinfo --json`): one sage__node each with Slurm's name,
 * CPUs, RealMemory (MiB -> bytes), gres gpu:N as N GPUs with ids 0..N-1, and every other gres as a
 * custom resource. Nodes that are down, drained, failing or not responding are left out. *nodes is
 * malloc'd. Returns 0, or an error with the reason in err. */
int sage__slurm_nodes(const char *conf, sage__node **nodes, size_t *n, char *err, size_t err_len);

/* The parsing half of sage__slurm_nodes, on sinfo's JSON text. */
int sage__slurm_parse_sinfo(const char *json, sage__node **nodes, size_t *n, char *err, size_t err_len);

#endif
