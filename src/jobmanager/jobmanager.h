/* jobmanager/jobmanager.h - the JobManager daemon's entry point (its own library, linked by the `sage` program).
 *
 * This is not part of the user library (libsage): programs that declare and
 * run pipelines never link the daemon or SQLite. The `sage` command, the
 * tests and the benchmarks link libsage_jobmanager.a to run a daemon. */
#ifndef SAGE_JOBMANAGER_JOBMANAGER_H
#define SAGE_JOBMANAGER_JOBMANAGER_H

#include <stddef.h>

#include "sage/jobmanager.h"

/* Runs the daemon in the calling process until stopped (SIGTERM, SIGINT or
 * a "shutdown" request), serving clients on host:port. home is the state
 * directory (NULL: $SAGE_HOME or ~/.sage): token, pid file, log, jobs.db and
 * one directory per job. Returns 0 after a clean stop (every job ended, every
 * Slurm command finished), or an error with the reason in err: at start (port
 * in use, another daemon owns home, a bad config, Slurm's nodes unreadable,
 * no signalfd) or when the loop failed (poll).
 *
 * The state directory must be the daemon's alone (docs/security.md): owned
 * by its user, no access for group or others, below directories only root
 * or that user can change; one that is not is refused, naming the fix.
 *
 * Process-wide effects, for as long as it runs (the daemon owns the process:
 * call it from a process that does nothing else, as `sage jobmanager start`
 * does): the umask is 077 (restored on return; workers inherit it, so what
 * they create, results included, is 0600 unless they ask otherwise); every
 * descriptor above 2 the process held at the call is made close-on-exec, so
 * no worker inherits it; SIGPIPE is ignored; SIGCHLD, SIGTERM, SIGINT and
 * SIGHUP are blocked and read from a signalfd (the previous mask is restored
 * on return); every child of the process is reaped (waitpid(-1)), so the
 * caller must not have children of its own it wants to wait for; the
 * daemon's own children are its workers and, on Slurm, the client commands
 * it runs (each in a process group of its own), and it is a child subreaper
 * (PR_SET_CHILD_SUBREAPER: what its workers start and leave behind comes back
 * to it, and is reaped); the soft RLIMIT_NOFILE is raised to the hard limit;
 * one more thread writes the job store (it blocks every signal). Not
 * re-entrant: one daemon per process. */
typedef struct sage_jobmanager_opts {
    const char *host; /* NULL: 127.0.0.1 */
    int port;         /* 0: SAGE_JOBMANAGER_PORT */
    const char *home;
    /* JSON text (starting with '{') or a file; NULL: this host as discovered, local launcher. Keys:
     *   "node"        this host's capacity, as the env config's "node" (not with "slurm")
     *   "data_plane"  "unix" (default on one host) or "tcp" (workers connect over TCP)
     *   "slurm"       {"conf": "/abs/slurm.conf", "command_timeout_ms": N (default 10000)}: run jobs on
     *                 that Slurm cluster (the tcp data plane, nodes from sinfo)
     *   "limits"      {"handshake_ms": 5000, "unauthenticated": 128, "connections": half the open-file
     *                 limit, "log_bytes": 10485760, "refusal_log_ms": 10000}: what a connection without the
     *                 token may cost, and the size at which jobmanager.log rotates (docs/security.md)
     *   "heartbeat_timeout_ms"  a running worker silent this long fails its job (default 5000)
     *   "start_timeout_ms"      ... and from its launch to its first report (default 30000)
     *   "stop_timeout_ms"       a stop's grace before what still runs is killed (default 10000)
     * Any other key is refused, naming it. */
    const char *config;
    int ready_fd;      /* >= 0: write 'R' to it once the port listens, then close it (used to daemonize) */
    int log_to_stderr; /* 1: log lines go to stderr as well as the log file */
} sage_jobmanager_opts;
int sage_jobmanager_run(const sage_jobmanager_opts *opts, char *err, size_t err_len);

#endif
