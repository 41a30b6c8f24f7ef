/* jobmanager/stream.c - replies streamed in bounded chunks as the client reads them: collected records, job logs.
 *
 * Design note. A reply made of files (a collect sink's results files, a
 * job's task logs) can be any size, and the daemon must neither hold it
 * whole nor wait for a slow reader. So the reply is a stream: a list of
 * files (parts), each read with pread at its own offset, a chunk at a time,
 * and queued on the connection only while less than STREAM_QUEUED_MAX bytes
 * wait there. The loop refills every stream at every turn
 * (jm_streams_pump, from jm_jobs_timers); a connection with bytes queued is
 * polled for POLLOUT, so a stream moves exactly as fast as its client reads.
 * While it runs, its connection is parked (no other frame of it is handled:
 * replies keep their order); the stream finds its connection again through
 * c->deferred, and ends (logged) when the connection went away.
 *
 *   results: DATA [u32 BE instance][up to 1 MiB of results/<op>.<instance>]
 *            per chunk, then OK {"done": true, "bytes": N}.
 *   logs:    EVENT {"event": "logs", "task": T, "text": "..."} per chunk of
 *            logs/<op>.<instance>.log (up to 128 KiB of the file, cut at a
 *            UTF-8 character boundary, invalid UTF-8 and NUL as '?', so that
 *            its JSON fits a control frame even when every byte is escaped),
 *            then OK {"live": bool, "bytes": N} once every file was sent to
 *            its end (a live job's files are flushed first at every pump and
 *            looked at again: they grow). With "follow" and a live job the
 *            stream goes on after the OK: it tails the files, sending what
 *            they gain as more "logs" chunks, and once the job has ended and
 *            its files were sent to their end, EVENT {"event": "end",
 *            "state": S, "bytes": N} closes it. Following is the same
 *            bounded stream, so a follower that reads slowly slows nothing
 *            and loses nothing: the files are the buffer.
 *
 * A part whose file does not exist is skipped (an instance that collected
 * nothing, a task that never started). Any other error ends the stream with
 * an ERROR frame naming the file, and the daemon logs it.
 *
 * Memory: per stream one chunk buffer (1 MiB) and at most
 * STREAM_QUEUED_MAX + one frame queued on its connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "util/err.h"
#include "util/utf8.h"

#define STREAM_QUEUED_MAX (4u << 20) /* bytes queued on a streaming connection before we wait for it */
#define RESULTS_CHUNK (1u << 20)
#define LOGS_CHUNK (128u << 10) /* escaped as JSON (at most 6 bytes a byte) it stays within a control frame */

typedef enum { STREAM_RESULTS, STREAM_LOGS } stream_kind;

typedef struct stream_part {
    char path[PATH_MAX];
    uint32_t tag; /* results: the instance; logs: the task */
    int64_t off;  /* sent so far */
} stream_part;

struct jm_stream {
    stream_kind kind;
    int64_t job_id;
    char what[256]; /* for messages: results of job 3 operator "kept" */
    stream_part *parts;
    size_t nparts, cur;
    int fd; /* parts[cur] open (-1) */
    uint64_t bytes;
    int follow;  /* logs: follow the job once caught up */
    int ok_sent; /* logs: caught up once (the reply is sent; following from then on) */
    unsigned char *buf;
    struct jm_stream *next;
};

static void stream_free(jm_stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s->parts);
    free(s->buf);
    free(s);
}

static jm_conn *owner(jm *d, const jm_stream *s)
{
    for (jm_conn *c = d->conns; c; c = c->next)
        if (c->deferred == s)
            return c->fd >= 0 && !c->closing ? c : NULL;
    return NULL;
}

static void unlink_stream(jm *d, jm_stream *s)
{
    for (jm_stream **pp = &d->streams; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
}

/* The stream is over (answered with `end`, or a failure already sent): the connection goes on. */
static void finish(jm *d, jm_stream *s, jm_conn *c, int resume)
{
    unlink_stream(d, s);
    stream_free(s);
    c->deferred = NULL;
    c->parked = 0;
    if (resume)
        jm_conn_frames(d, c); /* what it sent meanwhile */
}

static void fail(jm *d, jm_stream *s, jm_conn *c, int resume, const char *path, int e)
{
    char why[PATH_MAX + 512];
    sage__fmt(why, sizeof why, "%s: cannot read %s: %s (after %llu bytes)", s->what, path, strerror(e),
              (unsigned long long)s->bytes);
    jm_log(d, "%s: %s", c->peer, why);
    jm_send_error(c, SAGE_EIO, "%s", why);
    finish(d, s, c, resume);
}

/* Bytes at the end of p[0..n) that start a UTF-8 character not complete within it (0..3). */
static size_t utf8_cut(const unsigned char *p, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char b = p[n - back];
        if ((b & 0xc0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

/* Queue one chunk of the current part; 1 if something was queued, 0 at its end, < 0 on error (errno). */
static int send_chunk(jm_stream *s, jm_conn *c)
{
    stream_part *p = &s->parts[s->cur];
    size_t want = s->kind == STREAM_RESULTS ? RESULTS_CHUNK : LOGS_CHUNK;
    ssize_t n = pread(s->fd, s->buf + 4, want, p->off);
    if (n < 0)
        return errno == EINTR ? 1 : -1;
    if (n == 0)
        return 0;
    size_t len = (size_t)n;
    if (s->kind == STREAM_RESULTS) {
        uint32_t be = htonl(p->tag);
        memcpy(s->buf, &be, 4);
        jm_send(c, SAGE__MSG_DATA, s->buf, len + 4);
    } else {
        size_t cut = utf8_cut(s->buf + 4, len);
        if (cut < len) /* else only a broken character is left: it goes as '?' */
            len -= cut;
        char *text = (char *)s->buf + 4;
        sage__utf8_clean(text, len);
        jm_send_json(c, SAGE__MSG_EVENT,
                     json_pack("{s:s,s:i,s:s%}", "event", "logs", "task", (int)p->tag, "text", text, len));
    }
    p->off += (int64_t)len;
    s->bytes += len;
    return 1;
}

/* A live job's log lines may still sit in its stdio buffers: write them to the files we read. */
static void flush_logs(jm *d, int64_t id)
{
    jm_job *j = jm_job_find(d, id);
    for (size_t t = 0; j && t < j->ntasks; t++)
        if (j->tasks[t].log)
            fflush(j->tasks[t].log);
}

/* The log files have grown since they were sent (a live job's, or one that ended since the last look): go
 * back to the first such part. 1 if one did. */
static int logs_grew(jm_stream *s)
{
    for (size_t i = 0; i < s->nparts; i++) {
        struct stat st;
        if (stat(s->parts[i].path, &st) == 0 && st.st_size > s->parts[i].off) {
            s->cur = i;
            return 1;
        }
    }
    return 0;
}

/* Everything was sent: the reply (results), the reply then maybe following (logs), the end of a followed
 * job. 1 if the stream is over (it was finished), 0 if it goes on (following). */
static int at_end(jm *d, jm_stream *s, jm_conn *c, int resume)
{
    int live = jm_job_find(d, s->job_id) != NULL;
    if (s->kind == STREAM_RESULTS) {
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b,s:I}", "done", 1, "bytes", (json_int_t)s->bytes));
    } else if (!s->ok_sent) {
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b,s:I}", "live", live, "bytes", (json_int_t)s->bytes));
        s->ok_sent = 1;
        if (s->follow && live)
            return 0;
    } else if (live) {
        return 0; /* following: the files will grow, or the job end */
    } else {
        sage__job_row row;
        json_t *end = json_pack("{s:s,s:s,s:I}", "event", "end", "state",
                                sage__store_job_cached(d->store, s->job_id, &row) == 0 ? row.state : "ended", "bytes",
                                (json_int_t)s->bytes);
        jm_send_json(c, SAGE__MSG_EVENT, end);
    }
    finish(d, s, c, resume);
    return 1;
}

/* Queue what the connection has room for; finish when all is sent. resume: frames of the connection may
 * wait (called from the loop, not from inside the handling of its request). */
static void pump_one(jm *d, jm_stream *s, int resume)
{
    jm_conn *c = owner(d, s);
    if (!c) {
        if (!s->ok_sent) /* (a follower leaves when it likes) */
            jm_log(d, "%s: the client went away after %llu bytes", s->what, (unsigned long long)s->bytes);
        unlink_stream(d, s);
        stream_free(s);
        return;
    }
    if (s->kind == STREAM_LOGS)
        flush_logs(d, s->job_id);
    while (c->wbuf.len < STREAM_QUEUED_MAX && !c->closing) {
        if (s->cur == s->nparts && !(s->kind == STREAM_LOGS && logs_grew(s))) {
            at_end(d, s, c, resume);
            return;
        }
        stream_part *p = &s->parts[s->cur];
        if (s->fd < 0 && (s->fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
            if (errno != ENOENT) {
                fail(d, s, c, resume, p->path, errno);
                return;
            }
            s->cur++; /* nothing there: an instance that collected nothing, a task that never ran */
            continue;
        }
        int r = send_chunk(s, c);
        if (r < 0) {
            fail(d, s, c, resume, p->path, errno);
            return;
        }
        if (r == 0) {
            close(s->fd);
            s->fd = -1;
            s->cur++;
        }
    }
}

void jm_streams_pump(jm *d)
{
    for (jm_stream *s = d->streams, *next; s; s = next) {
        next = s->next; /* s may end here (and the stream a resumed connection starts goes to the head) */
        pump_one(d, s, 1);
    }
}

static jm_stream *stream_new(jm *d, jm_conn *c, stream_kind kind, int64_t id, size_t nparts)
{
    jm_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->parts = calloc(nparts ? nparts : 1, sizeof *s->parts)) || !(s->buf = malloc(RESULTS_CHUNK + 4))) {
        if (s)
            stream_free(s);
        jm_send_error(c, SAGE_ENOMEM, "out of memory");
        return NULL;
    }
    s->kind = kind;
    s->job_id = id;
    s->fd = -1;
    s->nparts = nparts;
    return s;
}

/* Park the connection and send what fits now; the loop sends the rest. */
static void stream_go(jm *d, jm_conn *c, jm_stream *s)
{
    s->next = d->streams;
    d->streams = s;
    c->deferred = s;
    c->parked = 1;
    pump_one(d, s, 0);
}

void jm_stream_results(jm *d, jm_conn *c, int64_t id, const char *op, int parallelism)
{
    jm_stream *s = stream_new(d, c, STREAM_RESULTS, id, (size_t)parallelism);
    if (!s)
        return;
    sage__fmt(s->what, sizeof s->what, "results of job %lld operator \"%s\"", (long long)id, op);
    for (int i = 0; i < parallelism; i++) {
        sage__fmt(s->parts[i].path, sizeof s->parts[i].path, "%s/jobs/%lld/results/%s.%d", d->home, (long long)id, op,
                  i);
        s->parts[i].tag = (uint32_t)i;
    }
    stream_go(d, c, s);
}

void jm_stream_logs(jm *d, jm_conn *c, int64_t id, const jm_log_file *files, size_t n, int follow)
{
    jm_stream *s = stream_new(d, c, STREAM_LOGS, id, n);
    if (!s)
        return;
    sage__fmt(s->what, sizeof s->what, "logs of job %lld", (long long)id);
    s->follow = follow;
    for (size_t i = 0; i < n; i++) {
        sage__fmt(s->parts[i].path, sizeof s->parts[i].path, "%s/jobs/%lld/logs/%s.%d.log", d->home, (long long)id,
                  files[i].op, files[i].instance);
        s->parts[i].tag = (uint32_t)files[i].task;
    }
    stream_go(d, c, s);
}
