/* backend/ckpt_run.h - one run's checkpoints: where they go, taking and committing one, what a restart restores.
 *
 * The embedded backend owns one of these per env. Checkpoints of a run go
 * to <checkpoint_dir>/<job>-<time>-<pid>-<n>/chk-<id> (checkpoint_dir
 * defaults to <state directory>/checkpoints); the run directory is created
 * at submit, so a directory that cannot be written is refused there, and it
 * is removed when the job finished. One checkpoint is taken at a time
 * (take_mu): the periodic ones on the supervisor's thread, a savepoint on
 * the caller's. Statistics are read from any thread (stats_mu).
 */
#ifndef SAGE_BACKEND_CKPT_RUN_H
#define SAGE_BACKEND_CKPT_RUN_H

#include <pthread.h>

#include "runtime/checkpoint.h"
#include "sage/env.h"

typedef struct sage__ckrun {
    const sage__plan *plan;
    const sage__config *cfg;
    int periodic;      /* strategy checkpoint: the run directory exists */
    char rundir[1024]; /* "" when not periodic */
    uint64_t next_id;  /* under take_mu */
    pthread_mutex_t take_mu;
    pthread_mutex_t stats_mu;
    sage_checkpoint_stats stats; /* under stats_mu */
    sage__loaded *from;          /* what the current attempt starts from (NULL: its beginning) */
    sage__restore restore;
} sage__ckrun;

/* Zero r and create its locks (when its owner is created: statistics may be read at any time). */
int sage__ckrun_locks(sage__ckrun *r);
/* Set up: the run directory (strategy checkpoint) and config "restore_from"
 * (loaded and checked against the plan). Errors name the path and the cause. */
int sage__ckrun_init(sage__ckrun *r, const sage__plan *plan, const sage__config *cfg, sage__err *err);
/* Free, the locks too; remove_dir: the job finished, its checkpoints are no longer needed. */
void sage__ckrun_free(sage__ckrun *r, int remove_dir);
/* What the next attempt starts from (NULL: its beginning). */
const sage__restore *sage__ckrun_restore(const sage__ckrun *r);
/* Take one checkpoint of job now and commit it: into the run directory, or
 * (savepoint_dir) into that directory, the sources then stopping at its
 * barrier. The caller holds take_mu (which also keeps job alive: whoever
 * retires a job takes it). timeout_ms < 0: the config's checkpoint_timeout.
 * 0; SAGE_ETIMEDOUT / SAGE_EIO (abandoned, the job goes on; why says why);
 * SAGE_ECANCELED (the job ended meanwhile); SAGE_EINVAL (the savepoint
 * directory is not empty). */
int sage__ckrun_take(sage__ckrun *r, sage__job *job, const char *savepoint_dir, int timeout_ms, char *why,
                     size_t why_len);
/* Before a recovery (counted in the statistics): the newest committed checkpoint of the run becomes
 * what the next attempt restores (corrupt ones are skipped, each with a
 * line on stderr). Without one, the attempt restores what the run started
 * from (restore_from), else it starts from the beginning. */
int sage__ckrun_recover(sage__ckrun *r, char *why, size_t why_len);

#endif
