/* jobmanager/log.c - jobmanager.log: one escaped line per event, refused connections rate-limited, size-bounded.
 *
 * Design note. Every line is escaped as a whole (util/escape.h) after it is
 * formatted, so a job name, an operator name or a worker's message holding
 * a newline or a terminal escape shows as \n or \e and cannot forge a line
 * or drive the terminal of whoever reads the log; a failure message that
 * quotes several stderr lines is one log line.
 *
 * Anyone who reaches the port can make the daemon refuse connections, so
 * refusals (jm_log_refused) are rate-limited: in each interval
 * (limits.refusal_log_ms, 10 s) the first JM_REFUSALS_BURST are logged one
 * by one and the rest counted; when the interval ends, one line says how
 * many more there were and what the last one was. While refusals go on
 * interval after interval, only that count line is written, one per
 * interval. The log itself is bounded: a line that would take the file past
 * limits.log_bytes (10 MiB) first renames it to jobmanager.log.1 (the
 * previous one goes) and starts a new file, so the log takes at most about
 * twice the limit on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "util/err.h"
#include "util/escape.h"
#include "util/time.h"

int jm_log_open(jm *d, char *err, size_t err_len)
{
    char path[PATH_MAX + 32];
    sage__fmt(path, sizeof path, "%s/jobmanager.log", d->home);
    int fd = jm_private_open(path, O_WRONLY | O_APPEND | O_CREAT, err, err_len);
    if (fd < 0)
        return SAGE_ESTATE;
    struct stat st;
    d->logst.size = fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
    if (!(d->log = fdopen(fd, "a"))) {
        sage__fmt(err, err_len, "cannot open %s: %s", path, strerror(errno));
        close(fd);
        return SAGE_ESTATE;
    }
    return 0;
}

void jm_log_close(jm *d)
{
    if (d->log)
        fclose(d->log);
    d->log = NULL;
}

/* The file is full: it becomes jobmanager.log.1 and a new one starts. */
static void rotate(jm *d)
{
    char path[PATH_MAX + 32], old[PATH_MAX + 32], err[1024];
    sage__fmt(path, sizeof path, "%s/jobmanager.log", d->home);
    sage__fmt(old, sizeof old, "%s/jobmanager.log.1", d->home);
    jm_log_close(d);
    if (rename(path, old) != 0 && d->log_stderr)
        fprintf(stderr, "cannot rotate %s to %s: %s\n", path, old, strerror(errno));
    if (jm_log_open(d, err, sizeof err) != 0 && d->log_stderr)
        fprintf(stderr, "the log is lost: %s\n", err);
}

static void write_line(jm *d, const char *line)
{
    char esc[8192];
    size_t n = sage__escape(esc, sizeof esc, line, strlen(line));
    time_t t = (time_t)(sage__wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    long long len = (long long)(strlen(ts) + 1 + n + 1);
    if (d->log && d->logst.size > 0 && d->logst.size + len > d->limits.log_bytes)
        rotate(d);
    if (d->log) {
        fprintf(d->log, "%s %s\n", ts, esc);
        fflush(d->log);
        d->logst.size += len;
    }
    if (d->log_stderr)
        fprintf(stderr, "%s %s\n", ts, esc);
}

void jm_log(jm *d, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    sage__vfmt(line, sizeof line, fmt, ap);
    va_end(ap);
    write_line(d, line);
}

/* A new interval: the count of the last one, if any refusal went unlogged. */
static void next_interval(jm *d, int64_t now)
{
    jm_logstate *s = &d->logst;
    int unlogged = s->unlogged > 0;
    if (unlogged)
        jm_log(d, "%lld more connection(s) refused in the last %d s, not logged one by one; the last: %s", s->unlogged,
               (d->limits.refusal_log_ms + 999) / 1000, s->last);
    s->hot = unlogged;
    s->lines = 0;
    s->unlogged = 0;
    s->window_end = now + d->limits.refusal_log_ms;
}

void jm_log_refused(jm *d, const char *fmt, ...)
{
    jm_logstate *s = &d->logst;
    int64_t now = sage__mono_ms();
    if (now >= s->window_end)
        next_interval(d, now);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    sage__vfmt(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!s->hot && s->lines < JM_REFUSALS_BURST) {
        s->lines++;
        write_line(d, line);
        return;
    }
    s->unlogged++;
    sage__strlcpy(s->last, line, sizeof s->last);
}

int jm_log_timers(jm *d, int64_t now)
{
    jm_logstate *s = &d->logst;
    if (s->unlogged == 0)
        return -1;
    if (now >= s->window_end)
        next_interval(d, now);
    return s->unlogged ? (int)(s->window_end - now) : -1;
}
