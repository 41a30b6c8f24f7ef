/* cluster/spawn.h - child processes with their output captured (bounded) and a deadline, from a poll loop or not. */
#ifndef SAGE_CLUSTER_SPAWN_H
#define SAGE_CLUSTER_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "util/err.h"

/* How to run one command. */
typedef struct sage__spawn_opts {
    char *const *argv;      /* argv[0] is looked up in PATH (execvp); never a shell */
    const char *const *env; /* changes to this process's environment, NULL-terminated: "NAME=value" sets,
                             * "NAME" removes; NULL: the environment unchanged */
    size_t out_max;         /* bytes of stdout kept; more is read and dropped (out_truncated) */
    size_t err_max;         /* the same for stderr */
    int timeout_ms;         /* > 0: killed (its whole process group) once this is up; <= 0: no deadline */
    const char *log;        /* non-NULL: stdout and stderr are appended to this file instead of captured */
} sage__spawn_opts;

/* A started command. The child runs in a process group of its own (so a
 * deadline kills what it started too), with stdin from /dev/null, an empty
 * signal mask, SIGPIPE at its default, and no descriptor of ours but 0-2.
 * Owned by one thread. */
typedef struct sage__proc {
    pid_t pid;          /* > 0 until reaped */
    int fd[2];          /* non-blocking read ends of its stdout and stderr (-1: at end of file, or not captured) */
    sage__buf out, err; /* what it wrote, at most out_max / err_max bytes */
    int out_truncated, err_truncated;
    int64_t deadline_ms; /* sage__mono_ms() value; 0: none */
    int timeout_ms;      /* as given, for messages */
    int timed_out;       /* killed because its deadline passed */
    int reaped, status;  /* waitpid status once reaped */
    char name[64];       /* argv[0], for messages */
} sage__proc;

/* Start a command. 0, or an error (nothing runs, nothing to free) with the
 * reason in e. A program that cannot be executed is not an error here: the
 * child reports it on stderr and exits 127. */
int sage__proc_start(sage__proc *p, const sage__spawn_opts *o, sage__err *e);

/* Read what its pipes hold, without blocking. Returns 1 once both pipes are
 * at end of file (or were never there), 0 otherwise. */
int sage__proc_read(sage__proc *p);

/* The caller reaped it (a daemon that reaps every child with waitpid(-1)):
 * record the status and read what is left in its pipes. */
void sage__proc_reaped(sage__proc *p, int status);

/* Past its deadline: kill its process group (SIGKILL) and remember why.
 * Returns 1 if it did (the deadline had passed), 0 otherwise. */
int sage__proc_expire(sage__proc *p, int64_t now_ms);

/* Finished: reaped, and its pipes at end of file or closed after a kill (a
 * process it left behind holding a pipe does not keep it unfinished once it
 * was reaped and the pipe was drained). */
int sage__proc_done(sage__proc *p);

/* Close its pipes and free what it captured (it is not reaped here). */
void sage__proc_free(sage__proc *p);

/* Wait for a started command to end: capture, kill at the deadline, reap
 * it (by its pid: do not use while something else reaps every child). 0
 * when it ran to its end (its result is in p, to free with
 * sage__proc_free), else an error with the reason in e (p is freed then). */
int sage__proc_wait(sage__proc *p, sage__err *e);

/* sage__proc_start, then sage__proc_wait. */
int sage__proc_run(sage__proc *p, const sage__spawn_opts *o, sage__err *e);

/* Its exit status 0..255; -1 if it was killed (by a signal or its deadline). */
int sage__proc_exit_code(const sage__proc *p);

/* Why it did not succeed, for messages: "<name> did not finish within N ms",
 * "<name> was killed by signal N (Name)", "<name> exited with status N", then
 * ": " and the first line of its stderr when there is one. For a command
 * that exited 0: the first line of its stderr, or "". */
void sage__proc_describe(const sage__proc *p, char *buf, size_t len);

/* The first line of what it wrote to stderr (NUL-terminated, "" if none). */
void sage__proc_first_err_line(const sage__proc *p, char *buf, size_t len);

/* Its stdout as a NUL-terminated string ("" if nothing). */
const char *sage__proc_stdout(sage__proc *p);

#endif
