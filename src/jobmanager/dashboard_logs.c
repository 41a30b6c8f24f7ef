/* jobmanager/dashboard_logs.c - the tail of a task's log for the dashboard, from a byte offset, bounded.
 *
 * GET /api/jobs/ID/logs?task=T&offset=N answers with at most
 * JM_DASH_LOG_MAX (64 KiB) of logs/<op>.<instance>.log, the file stream.c
 * sends to `sage job logs`:
 *
 *   {"job_id", "task", "operator", "instance", "live": bool,
 *    "size": the file's size, "from": the first byte sent, "next": the
 *    offset to ask next, "skipped": bytes between the offset asked and
 *    "from", "text": the bytes}
 *
 * Without an offset (or with one past the end: a file that was replaced)
 * the answer is the file's last 64 KiB, starting at its first whole line.
 * With one, it is what follows it; an offset more than 64 KiB behind the
 * end skips to the last 64 KiB ("skipped" says how much), so a page that
 * follows by asking again with "next" every second shows the newest lines
 * and never falls behind by more than one answer. A UTF-8 character cut at
 * the end is left for the next answer (at the file's end even when it is
 * all there is); invalid UTF-8 and NUL become '?'.
 * The page shows the text with textContent: markup in a log is text.
 *
 * One bounded pread of a local file per request (the job's directory, on
 * the JobManager's host), in the loop: a live task's buffered lines are
 * flushed to the file first. An ended job's task (which file) comes from
 * its task rows in the job store (dashboard_api.c reads them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobmanager/dashboard.h"
#include "util/err.h"
#include "util/utf8.h"

/* Bytes at the end of p[0..n) that start a UTF-8 character not complete within it (0..3). */
static size_t utf8_cut(const char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char b = (unsigned char)p[n - back];
        if ((b & 0xc0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

static void tail(jm *d, jm_conn *c, int64_t id, int task, const char *op, int instance, const char *path,
                 int64_t offset, int live)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st = {0};
    if (fd < 0 && errno != ENOENT) {
        int e = errno;
        jm_log(d, "dashboard: cannot read %s: %s", path, strerror(e));
        jm_dash_error(c, 500, SAGE_EIO, "cannot read the log of task %d: %s", task, strerror(e));
        return;
    }
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        jm_dash_error(c, 500, SAGE_EIO, "the log of task %d is not a regular file", task);
        return;
    }
    int64_t size = fd >= 0 ? (int64_t)st.st_size : 0;
    int64_t floor = size > (int64_t)JM_DASH_LOG_MAX ? size - (int64_t)JM_DASH_LOG_MAX : 0;
    int tail_only = offset < 0 || offset > size; /* no offset, or one past the end (the file was replaced) */
    int64_t asked = tail_only ? 0 : offset, start = tail_only || offset < floor ? floor : offset;
    char *buf = malloc(JM_DASH_LOG_MAX + 1);
    ssize_t n = 0;
    if (!buf) {
        if (fd >= 0)
            close(fd);
        jm_dash_error(c, 500, SAGE_ENOMEM, "out of memory");
        return;
    }
    if (fd >= 0 && size > start) {
        n = pread(fd, buf, (size_t)(size - start), start);
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            jm_dash_error(c, 500, SAGE_EIO, "cannot read the log of task %d: %s", task, strerror(e));
            return;
        }
    }
    if (fd >= 0)
        close(fd);
    size_t drop = 0, len = (size_t)n;
    if (start > asked && start > 0) { /* we chose where to start: at a line's beginning, when one is in reach */
        const char *nl = memchr(buf, '\n', len);
        if (nl)
            drop = (size_t)(nl + 1 - buf);
    }
    len -= drop;
    size_t cut = utf8_cut(buf + drop, len);
    if (cut < len || start + (int64_t)(drop + len) == size)
        len -= cut; /* the rest of the character comes later (at the file's end: wait for it) */
    /* else only a broken character is left before more bytes: it goes as '?' */
    sage__utf8_clean(buf + drop, len);
    int64_t from = start + (int64_t)drop;
    jm_dash_json(c, 200,
                 json_pack("{s:I,s:i,s:s,s:i,s:b,s:I,s:I,s:I,s:I,s:s%}", "job_id", (json_int_t)id, "task", task,
                           "operator", op, "instance", instance, "live", live, "size", (json_int_t)size, "from",
                           (json_int_t)from, "next", (json_int_t)(from + (int64_t)len), "skipped",
                           (json_int_t)(from - asked), "text", buf + drop, len));
    free(buf);
}

static void logs_ended(jm *d, jm_conn *c, const sage__store_read *r, int64_t task, int64_t offset)
{
    if (r->rc == SAGE_ENOTFOUND) {
        jm_dash_error(c, 404, r->rc, "no job %lld", (long long)r->id);
        return;
    }
    if (r->rc != 0) {
        jm_dash_error(c, 503, r->rc, "job %lld: the job store could not be read (%s)", (long long)r->id,
                      sage_strerror(r->rc));
        return;
    }
    for (size_t t = 0; t < r->ntasks; t++)
        if (r->tasks[t].task == task) {
            char path[PATH_MAX + 400];
            sage__fmt(path, sizeof path, "%s/jobs/%lld/logs/%s.%d.log", d->home, (long long)r->id, r->tasks[t].op,
                      r->tasks[t].instance);
            tail(d, c, r->id, (int)task, r->tasks[t].op, r->tasks[t].instance, path, offset, 0);
            return;
        }
    jm_dash_error(c, 404, SAGE_ENOTFOUND, "job %lld has no task %lld", (long long)r->id, (long long)task);
}

void jm_dash_logs(jm *d, jm_conn *c, int64_t id, int64_t task, int64_t offset)
{
    jm_job *j = jm_job_find(d, id);
    if (!j) {
        jm_dash_stored(d, c, id, 1, logs_ended, task, offset);
        return;
    }
    if (task < 0 || (size_t)task >= j->ntasks) {
        jm_dash_error(c, 404, SAGE_ENOTFOUND, "job %lld has no task %lld (it has %zu)", (long long)id, (long long)task,
                      j->ntasks);
        return;
    }
    jm_task *k = &j->tasks[task];
    if (k->log)
        fflush(k->log); /* its lines so far, in the file */
    char path[PATH_MAX + 400];
    sage__fmt(path, sizeof path, "%s/logs/%s.%d.log", j->dir, k->op, k->instance);
    tail(d, c, id, (int)task, k->op, k->instance, path, offset, 1);
}
