/* jobmanager/output.c - worker output: the pipes the loop polls, log files, stderr tails.
 *
 * A task's stdout and stderr are split into lines (a line longer than 1024
 * bytes is cut into pieces), written to logs/<op>.<instance>.log with the
 * prefix "<op>[<instance>] " ("! " added for stderr) as the bytes came
 * (stream.c sends the files to `logs` and its followers). The last
 * JM_TAIL_BYTES of stderr are kept for failure messages.
 * Log files are created 0600 and never through a symbolic link
 * (jm_private_open); a task whose log cannot be opened so still runs, its
 * output only followed, and the daemon's log says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/utf8.h"

static void log_path(char *out, size_t len, const char *jobdir, const char *op, int instance)
{
    sage__fmt(out, len, "%s/logs/%s.%d.log", jobdir, op, instance);
}

void jm_output_open(jm_job *j, jm_task *k)
{
    char path[PATH_MAX + 128];
    log_path(path, sizeof path, j->dir, k->op, k->instance);
    k->log_err[0] = '\0';
    /* a restarted job's logs keep what its earlier attempts wrote */
    int fd = jm_private_open(path, O_WRONLY | O_CREAT | (j->restarts ? O_APPEND : O_TRUNC), k->log_err,
                             sizeof k->log_err);
    if (fd >= 0 && !(k->log = fdopen(fd, "w"))) {
        sage__fmt(k->log_err, sizeof k->log_err, "cannot open %s: %s", path, strerror(errno));
        close(fd);
    }
}

size_t jm_output_count(const jm *d)
{
    size_t n = 0;
    for (const jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++)
            n += (j->tasks[t].out_fd >= 0) + (j->tasks[t].err_fd >= 0);
    return n;
}

void jm_output_pollfds(jm *d, struct pollfd *pfds, size_t *n, size_t cap)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            if (k->out_fd >= 0 && *n < cap)
                pfds[(*n)++] = (struct pollfd){.fd = k->out_fd, .events = POLLIN};
            if (k->err_fd >= 0 && *n < cap)
                pfds[(*n)++] = (struct pollfd){.fd = k->err_fd, .events = POLLIN};
        }
}

/* One complete line from a worker: to its log file (stream.c sends the files to whoever asks or follows). */
static void log_line(jm *d, jm_job *j, jm_task *k, int is_err, const char *line, size_t len)
{
    char prefix[160];
    int pl = snprintf(prefix, sizeof prefix, "%s[%d]%s ", k->op, k->instance, is_err ? " !" : "");
    if (k->log) {
        fwrite(prefix, 1, (size_t)pl, k->log);
        fwrite(line, 1, len, k->log);
        fputc('\n', k->log);
    }
}

static void keep_tail(jm_task *k, const char *buf, size_t n)
{
    if (n >= sizeof k->tail) {
        memcpy(k->tail, buf + n - sizeof k->tail, sizeof k->tail);
        k->tail_len = sizeof k->tail;
        return;
    }
    if (k->tail_len + n > sizeof k->tail) {
        size_t drop = k->tail_len + n - sizeof k->tail;
        memmove(k->tail, k->tail + drop, k->tail_len - drop);
        k->tail_len -= drop;
    }
    memcpy(k->tail + k->tail_len, buf, n);
    k->tail_len += n;
}

/* Read what a worker wrote on one pipe; returns 1 at end of file (the pipe is closed then). */
static int drain_pipe(jm *d, jm_job *j, jm_task *k, int is_err)
{
    int *fdp = is_err ? &k->err_fd : &k->out_fd;
    char buf[8192];
    if (!k->log && k->log_err[0]) { /* said once, at its first output or at the end of it */
        jm_log(d, "job %lld: the output of operator \"%s\" instance %d is not logged: %s", (long long)j->id, k->op,
               k->instance, k->log_err);
        k->log_err[0] = '\0';
    }
    for (;;) {
        ssize_t n = read(*fdp, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0; /* EAGAIN */
        if (n == 0) {
            if (k->partial_len[is_err])
                log_line(d, j, k, is_err, k->partial[is_err], k->partial_len[is_err]);
            k->partial_len[is_err] = 0;
            close(*fdp);
            *fdp = -1;
            if (k->log)
                fflush(k->log);
            return 1;
        }
        if (is_err)
            keep_tail(k, buf, (size_t)n);
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch == '\n' || k->partial_len[is_err] == sizeof k->partial[is_err]) {
                log_line(d, j, k, is_err, k->partial[is_err], k->partial_len[is_err]);
                k->partial_len[is_err] = 0;
                if (ch == '\n')
                    continue;
            }
            k->partial[is_err][k->partial_len[is_err]++] = ch;
        }
    }
}

void jm_output_drain(jm *d, jm_job *j, jm_task *k)
{
    if (k->out_fd >= 0)
        drain_pipe(d, j, k, 0);
    if (k->err_fd >= 0)
        drain_pipe(d, j, k, 1);
}

void jm_output_ready(jm *d, int fd)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            if (k->out_fd == fd)
                drain_pipe(d, j, k, 0);
            else if (k->err_fd == fd)
                drain_pipe(d, j, k, 1);
        }
}

void jm_output_tail(const jm_task *k, char *out, size_t len)
{
    size_t start = 0, lines = 0;
    for (size_t i = k->tail_len; i-- > 0;) {
        if (k->tail[i] == '\n' && i + 1 < k->tail_len && ++lines >= JM_TAIL_LINES) {
            start = i + 1;
            break;
        }
    }
    size_t n = k->tail_len - start;
    while (n > 0 && k->tail[start + n - 1] == '\n')
        n--;
    if (n >= len)
        n = len - 1;
    memcpy(out, k->tail + start, n);
    out[n] = 0;
    sage__utf8_clean(out, n);
}
