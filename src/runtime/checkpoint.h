/* runtime/checkpoint.h - checkpoints of a job in this process: barriers through the tasks, captures, restores.
 *
 * Protocol (a barrier that holds the sources). The coordinator (the
 * backend's thread) asks for checkpoint E: every source task, between two
 * source calls, flushes its partial batches, captures its state, sends a
 * barrier E to every consumer and waits. A task with inputs captures when
 * it has a barrier E (or an end-of-stream) from every producer: since the
 * sources wait, nothing after a barrier exists anywhere, so the records a
 * task processed before its capture are exactly those before the cut (the
 * alignment needs no buffering). It then forwards barrier E. When every
 * task captured E or had ended (ended tasks are "finished": they hold no
 * state and are not run again), the coordinator notes the file sinks'
 * lengths and releases the sources: the pause lasts one drain of the
 * bounded queues plus the in-memory copies. Writing the parts to disk
 * happens after the release, off the data path (ckstore.h).
 */
#ifndef SAGE_RUNTIME_CHECKPOINT_H
#define SAGE_RUNTIME_CHECKPOINT_H

#include "runtime/ckstore.h"
#include "runtime/runtime.h"

/* What a job starts from instead of its beginning. */
typedef struct sage__restore {
    const sage__loaded *ck; /* parts per task index (checked against the plan: sage__restore_check) */
    int in_run;             /* recovery within this run: collectors are cut back (restore_from: they start empty) */
    size_t first_task;      /* the checkpoint's index of this job's task 0 (a worker process runs one task) */
} sage__restore;

/* Does a loaded checkpoint fit this plan (tasks, chains, instances, plan hash)? 0 or SAGE_EINVAL with why. */
int sage__restore_check(const sage__plan *plan, const sage__loaded *ck, char *why, size_t why_len);

/* One checkpoint as the coordinator got it. */
typedef struct sage__ckpt_taken {
    size_t ntasks;
    sage__buf **parts; /* per task: its part, or NULL when it had finished */
    size_t nsinks;
    sage__manifest_sink *sinks; /* file sinks' lengths */
    uint64_t pause_ns;          /* request to release */
} sage__ckpt_taken;
void sage__ckpt_taken_free(sage__ckpt_taken *t);

/* Take checkpoint epoch (greater than any before): 0 with *out filled;
 * SAGE_ETIMEDOUT when not every task captured within timeout_ms (the
 * checkpoint is abandoned, the sources go on); SAGE_ECANCELED when the job
 * failed, was canceled or ended meanwhile. hold: on success the sources stay
 * at the barrier until sage__job_release (a savepoint: they stop once it is
 * durable, or go on when it could not be written). */
int sage__job_checkpoint(sage__job *job, uint64_t epoch, int timeout_ms, int hold, sage__ckpt_taken *out);
/* Let the sources held at barrier epoch go on, or (stop) end there. */
void sage__job_release(sage__job *job, uint64_t epoch, int stop);

/* ---- task side (task.c) ---- */
/* A source task saw a request: flush, capture, send barriers, wait for the release. */
int sage__task_source_barrier(sage__task *t, uint64_t epoch);
/* A barrier arrived (epoch), or an end-of-stream did (epoch 0): capture and forward once aligned. */
int sage__task_align(sage__task *t, uint64_t epoch);
/* After open: restore the task's part, if the job starts from a checkpoint. */
int sage__task_restore(sage__task *t);
/* The job starts from a checkpoint in which this task had finished. */
int sage__task_was_finished(const sage__task *t);
/* Send a marker to every consumer of every route (end-of-stream, or a barrier of epoch). */
int sage__task_send_mark(sage__task *t, uint32_t mark, uint64_t epoch);

#endif
