/* jobmanager/daemon.c - sage_jobmanager_run: start-up, the one poll loop (clients, workers, pipes, commands, signals),
 * and the shutdown.
 *
 * Design note. The daemon is single-threaded: every socket and pipe is
 * non-blocking and served from one poll(2) loop, so job state needs no
 * locks and fork() is safe. The loop never waits for anything but poll:
 * Slurm's commands are children whose pipes are polled like a worker's
 * (command.c), and every deadline (a scheduled kill, a command's timeout,
 * an squeue poll) is a timer on the monotonic clock that sets poll's
 * timeout. Signals are never handled asynchronously: SIGCHLD, SIGTERM,
 * SIGINT and SIGHUP are blocked and read from a signalfd in the same loop;
 * SIGCHLD reaps every child and hands it to jm_on_child_exit (a command,
 * or a task's process), the others only set the stop flag.
 *
 * Stopping is part of the loop too: once the flag is set, no connection is
 * accepted and no job submitted, every live job is failed and its processes
 * killed (jm_jobs_shutdown, which on Slurm also releases the allocations),
 * and the loop goes on until every job has ended through the normal path
 * (store rows, answers to waiting clients) and every command has finished;
 * then the replies still queued get up to SHUTDOWN_FLUSH_MS to leave.
 *
 * What anyone who reaches the port may cost is bounded elsewhere and only
 * driven from here: the connection limits and the handshake deadline
 * (conn.c), the refusal log's interval (log.c), and a pause of the listener
 * when no descriptor is left to accept with (accept_resume_ms). The state
 * directory's checks are statedir.c's; docs/security.md has the whole list.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobmanager/jobmanager.h"
#include "jobmanager/launcher.h"
#include "net/sock.h"
#include "util/err.h"
#include "util/num.h"
#include "util/time.h"

#define SHUTDOWN_FLUSH_MS 2000

static void on_signals(jm *d)
{
    struct signalfd_siginfo si;
    while (read(d->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                jm_on_child_exit(d, pid, status);
        } else {
            jm_log(d, "signal %u: stopping", si.ssi_signo);
            d->stop = 1;
        }
    }
}

static int min_timeout(int a, int b) { return a < 0 ? b : b < 0 ? a : a < b ? a : b; }

/* Replies still queued once everything else is done. */
static int output_pending(const jm *d)
{
    for (const jm_conn *c = d->conns; c; c = c->next)
        if (c->fd >= 0 && c->wbuf.len)
            return 1;
    return 0;
}

/* The loop: until stopped and nothing of any job or command is left. 0, or an error (poll failed). */
static int run_loop(jm *d, char *err, size_t err_len)
{
    struct pollfd *pfds = NULL;
    size_t pcap = 0;
    int shutting_down = 0, rc = 0;
    int64_t flush_until = 0;
    for (;;) {
        if (d->stop && !shutting_down) {
            jm_log(d, "JobManager stopping");
            shutting_down = 1;
            jm_jobs_shutdown(d);
        }
        int64_t now = sage__mono_ms();
        if (shutting_down && !d->jobs && jm_cmd_count(d) == 0) {
            if (!flush_until)
                flush_until = now + SHUTDOWN_FLUSH_MS;
            if ((!output_pending(d) && !d->streams) || now >= flush_until)
                break; /* replies and streams (a followed job's end event) go out first, for a bounded time */
        }
        int timeout = jm_jobs_timers(d, now);
        timeout = min_timeout(timeout, jm_cmd_timers(d, now));
        timeout = min_timeout(timeout, jm_conns_timers(d, now));
        timeout = min_timeout(timeout, jm_log_timers(d, now));
        if (d->accept_resume_ms && now >= d->accept_resume_ms)
            d->accept_resume_ms = 0;
        if (d->accept_resume_ms)
            timeout = min_timeout(timeout, (int)(d->accept_resume_ms - now));
        if (d->launcher->timers)
            timeout = min_timeout(timeout, d->launcher->timers(d, now));
        if (flush_until)
            timeout = min_timeout(timeout, (int)(flush_until > now ? flush_until - now : 0));
        size_t nconns = 0;
        for (jm_conn *c = d->conns; c; c = c->next)
            nconns++;
        size_t need = 2 + nconns + jm_output_count(d) + jm_cmd_nfds(d);
        if (need > pcap) {
            struct pollfd *p = realloc(pfds, need * sizeof *p);
            if (!p) {
                rc = SAGE_ENOMEM;
                sage__fmt(err, err_len, "out of memory for %zu descriptors to poll", need);
                break;
            }
            pfds = p;
            pcap = need;
        }
        size_t n = 0;
        /* stopping: nobody new; out of descriptors: nobody new for a while */
        pfds[n++] = (struct pollfd){.fd = d->stop || d->accept_resume_ms ? -1 : d->lfd, .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = d->sfd, .events = POLLIN};
        for (jm_conn *c = d->conns; c; c = c->next)
            pfds[n++] = (struct pollfd){.fd = c->fd,
                                        .events = (short)((c->parked ? 0 : POLLIN) | (c->wbuf.len ? POLLOUT : 0))};
        size_t first_out = n;
        jm_output_pollfds(d, pfds, &n, pcap);
        size_t first_cmd = n;
        jm_cmd_pollfds(d, pfds, &n, pcap);
        if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR) {
            rc = SAGE_ESYS;
            sage__fmt(err, err_len, "poll: %s", strerror(errno));
            jm_log(d, "%s", err);
            break;
        }
        if (pfds[1].revents)
            on_signals(d);
        size_t k = 2;
        for (jm_conn *c = d->conns; c && k < first_out; c = c->next, k++) {
            if (c->fd != pfds[k].fd || !(pfds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (c->parked && (pfds[k].revents & (POLLHUP | POLLERR)))
                c->closing = 1, c->wbuf.len = 0; /* gone while its submit waited: nothing to answer */
            else
                jm_conn_drain(d, c);
        }
        for (size_t i = first_out; i < first_cmd; i++)
            if (pfds[i].revents)
                jm_output_ready(d, pfds[i].fd);
        for (size_t i = first_cmd; i < n; i++)
            if (pfds[i].revents) {
                jm_cmd_io(d);
                break;
            }
        if (pfds[0].revents) /* last: new connections go to the head of the list */
            jm_conns_accept(d);
        for (jm_conn *c = d->conns; c; c = c->next)
            if (c->fd >= 0 && c->wbuf.len)
                jm_conn_flush(c);
        jm_conns_reap(d);
    }
    free(pfds);
    if (rc != 0 && d->jobs)
        jm_jobs_shutdown(d); /* no loop to see them end: what is left dies with us (PR_SET_PDEATHSIG) */
    return rc;
}

/* Every descriptor above 2 that the process holds now gets close-on-exec: workers inherit none of them.
 * (What the daemon opens itself is opened with O_CLOEXEC.) */
static void inherited_cloexec(void)
{
    if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    DIR *dir = opendir("/proc/self/fd"); /* a kernel before 5.11 */
    if (!dir)
        return;
    struct dirent *e;
    int64_t fd;
    while ((e = readdir(dir)) != NULL)
        if (sage__parse_i64(e->d_name, 3, INT32_MAX, &fd) == 0 && fd != dirfd(dir))
            fcntl((int)fd, F_SETFD, fcntl((int)fd, F_GETFD) | FD_CLOEXEC);
    closedir(dir);
}

static void log_started(jm *d, int failed)
{
    char where[600], one[512];
    jm_node_text(&d->node, one, sizeof one);
    if (strcmp(d->launcher->name, "slurm") == 0) /* its started() lists the cluster's nodes */
        sage__fmt(where, sizeof where, "nodes: the Slurm cluster's (listed below)");
    else
        sage__fmt(where, sizeof where, "node %s", one);
    jm_log(d,
           "JobManager %s listening on %s:%d (pid %ld, state %s); %s launcher; %s; "
           "%smemory limits: %s%s",
           sage_version(), d->host, d->port, (long)d->pid, d->home, d->launcher->name, where,
           d->data_plane == JM_DATA_TCP ? "data plane: tcp; " : "",
           d->cgmode == SAGE__CGROUP_NONE ? "not enforced: " : "cgroup ",
           d->cgmode == SAGE__CGROUP_NONE ? d->cgwhy : d->cgparent);
    if (failed > 0)
        jm_log(d, "%d job(s) were running when the JobManager last stopped; they are marked failed", failed);
}

int sage_jobmanager_run(const sage_jobmanager_opts *opts, char *err, size_t err_len)
{
    static const sage_jobmanager_opts none = {.ready_fd = -1};
    if (!opts)
        opts = &none;
    char scratch[64];
    if (!err || err_len == 0) {
        err = scratch;
        err_len = sizeof scratch;
    }
    err[0] = '\0';
    jm *d = calloc(1, sizeof *d);
    if (!d) {
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    d->lfd = d->sfd = -1;
    d->pid = getpid();
    d->log_stderr = opts->log_to_stderr;
    d->port = opts->port ? opts->port : SAGE_JOBMANAGER_PORT;
    d->launcher = &jm_local_launcher;
    sage__strlcpy(d->host, opts->host ? opts->host : "127.0.0.1", sizeof d->host);
    d->spare_fd = -1;
    int rc, pidfd = -1, masked = 0;
    sigset_t mask, oldmask;
    char path[PATH_MAX + 32];
    /* what we create is ours alone, whatever the caller's umask (the modes are explicit too) */
    mode_t oldumask = umask(077);
    /* descriptors the caller left open must not reach the workers */
    inherited_cloexec();
    if ((rc = sage_home_dir(opts->home, d->home, sizeof d->home)) != 0) {
        sage__fmt(err, err_len, "%s",
                  rc == SAGE_ENOTFOUND ? "no state directory: set SAGE_HOME or HOME (there is no shared fallback)"
                                       : "the state directory path is too long");
        goto out;
    }
    if ((rc = jm_home_take(d, &pidfd, err, err_len)) != 0)
        goto out;
    if ((rc = jm_config_load(d, opts->config, err, err_len)) != 0)
        goto out;
    if ((rc = jm_log_open(d, err, err_len)) != 0)
        goto out;
    if (d->launcher->init && (rc = d->launcher->init(d, err, err_len)) != 0)
        goto out;
    sage__fmt(d->token_path, sizeof d->token_path, "%s/token", d->home);
    if ((rc = sage__token_create(d->token_path, d->token, sizeof d->token, err, err_len)) != 0)
        goto out;
    sage__fmt(path, sizeof path, "%s/jobs.db", d->home);
    if ((rc = jm_store_files(path, err, err_len)) != 0)
        goto out;
    if (!(d->store = sage__store_open(path, err, err_len))) {
        rc = SAGE_EIO;
        goto out;
    }
    int failed = sage__store_fail_unfinished(d->store, "the JobManager stopped while the job was running");
    if ((rc = sage__tcp_listen(d->host, d->port, 128, &d->lfd, err, err_len)) != 0) {
        if (strstr(err, "already in use")) {
            size_t l = strlen(err);
            sage__fmt(err + l, err_len - l, " (is a JobManager running there? try: sage jobmanager status --port %d)",
                      d->port);
        }
        goto out;
    }
    sage__set_nonblock(d->lfd, 1);
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, &oldmask);
    masked = 1;
    d->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (d->sfd < 0) {
        /* without it no child would be reaped and no signal seen: refuse to run */
        rc = SAGE_ESYS;
        sage__fmt(err, err_len, "signalfd: %s", strerror(errno));
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    d->cgmode = sage__cgroup_probe(d->cgparent, sizeof d->cgparent, d->cgwhy, sizeof d->cgwhy);
    /* every worker costs the daemon a few descriptors (pipes, its connection): use what the host allows */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    /* connections may take half of the descriptors: the rest is for workers' pipes, listeners, files */
    if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur > (1u << 20))
        nofile.rlim_cur = 1u << 20;
    d->conn_max = d->limits.connections ? d->limits.connections : (int)(nofile.rlim_cur / 2);
    if (d->conn_max < 8)
        d->conn_max = 8;
    /* kept for the moment the limit is reached: given up to accept and close a connection (no busy loop) */
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char pidtxt[32];
    int pl = snprintf(pidtxt, sizeof pidtxt, "%ld\n", (long)d->pid);
    if (ftruncate(pidfd, 0) != 0 || pwrite(pidfd, pidtxt, (size_t)pl, 0) != pl)
        jm_log(d, "could not write the pid file");
    if (d->launcher->started)
        d->launcher->started(d);
    jm_jobs_resume(d); /* after the leftovers of the last JobManager's jobs went */
    log_started(d, failed);
    if (opts->ready_fd >= 0) {
        if (write(opts->ready_fd, "R", 1) != 1)
            jm_log(d, "could not signal readiness");
        close(opts->ready_fd);
    }
    rc = run_loop(d, err, err_len);
    for (jm_conn *c = d->conns; c; c = c->next) {
        jm_conn_flush(c);
        c->closing = 1;
        c->wbuf.len = 0;
    }
    jm_conns_reap(d);
    jm_log_timers(d, d->logst.window_end); /* the count of refusals not logged yet */
    if (rc == 0)
        jm_log(d, "JobManager stopped");
    else
        jm_log(d, "JobManager stopped: %s", err);
out:
    jm_cmd_fini(d);
    while (d->jobs) { /* only after a failed loop: their processes die with us */
        jm_job *j = d->jobs;
        d->jobs = j->next;
        jm_job_free(j);
    }
    for (jm_parked *p = d->parked, *next; p; p = next) {
        next = p->next;
        json_decref(p->doc);
        free(p);
    }
    if (d->launcher->fini)
        d->launcher->fini(d);
    if (masked)
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    if (d->lfd >= 0)
        close(d->lfd);
    if (d->sfd >= 0)
        close(d->sfd);
    sage__store_close(d->store);
    jm_log_close(d);
    if (d->spare_fd >= 0)
        close(d->spare_fd);
    if (pidfd >= 0) {
        if (rc == 0) {
            sage__fmt(path, sizeof path, "%s/jobmanager.pid", d->home);
            unlink(path);
        }
        close(pidfd);
    }
    free(d);
    umask(oldumask);
    return rc;
}
