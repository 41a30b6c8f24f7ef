/* runtime/checkpoint.c - checkpoints of a job in this process: barriers, each task's capture, restoring one.
 *
 * The protocol is described in checkpoint.h. What a task captures, per
 * operator of its chain: its counters; a built-in source's position (record
 * index, and byte offset for a file); its per-key state (every key with its
 * block); what its snapshot hook wrote; a collect sink's record count. The
 * file sinks' lengths are the coordinator's (one file per job in this
 * process). Restoring runs the same list backwards, after open.
 */
#include "runtime/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"
#include "util/hash.h"
#include "util/time.h"

#define USER_SNAPSHOT_MAX ((size_t)1 << 30)

struct sage_snapshot {
    sage__buf *b;
    size_t start;
};

SAGE_API int sage_snapshot_write(sage_snapshot *snap, const void *data, size_t len)
{
    if (!snap || (len && !data))
        return SAGE_EINVAL;
    if (snap->b->len - snap->start + len > USER_SNAPSHOT_MAX)
        return SAGE_ETOOBIG;
    return sage__buf_append(snap->b, data, len);
}

/* ---- capture ---- */

typedef struct keys_arg {
    sage__buf *b;
    size_t size;
    int rc;
} keys_arg;

static int put_key(const void *key, size_t len, void *state, void *arg)
{
    keys_arg *a = arg;
    uint32_t kl = (uint32_t)len;
    if ((a->rc = sage__buf_append(a->b, &kl, 4)) == 0 && (a->rc = sage__buf_append(a->b, key, len)) == 0)
        a->rc = sage__buf_append(a->b, state, a->size);
    return a->rc;
}

static int capture_op(sage__opinst *in, uint32_t k, sage__buf *b)
{
    const sage__op *op = in->op;
    sage__job *job = in->task->job;
    uint64_t counts[3] = {atomic_load(&in->ctx.records_in), atomic_load(&in->out.emitted), in->ctx.calls};
    int rc = sage__part_section(b, k, SAGE__SEC_COUNTS, counts, sizeof counts);
    if (rc == 0 && op->kind == SAGE__OP_SOURCE &&
        (op->builtin == SAGE__BUILTIN_COLLECTION || op->builtin == SAGE__BUILTIN_FILE_LINES)) {
        int64_t pos[2] = {(int64_t)in->builtin_pos, -1};
        if (in->builtin_file && (pos[1] = ftello(in->builtin_file)) < 0) {
            sage_ctx_fail(&in->ctx, "checkpoint: the position in \"%s\" is unknown: %s", op->path, strerror(errno));
            return SAGE_EIO;
        }
        rc = sage__part_section(b, k, SAGE__SEC_SOURCE, pos, sizeof pos);
    }
    if (rc == 0 && in->ctx.ks && sage__keystate_count(in->ctx.ks) > 0) {
        size_t mark;
        uint64_t hdr[2] = {sage__keystate_state_size(in->ctx.ks), sage__keystate_count(in->ctx.ks)};
        keys_arg a = {b, (size_t)hdr[0], 0};
        rc = sage__part_section_begin(b, k, SAGE__SEC_KEYS, &mark);
        if (rc == 0)
            rc = sage__buf_append(b, hdr, sizeof hdr);
        if (rc == 0 && sage__keystate_foreach(in->ctx.ks, put_key, &a) != 0)
            rc = a.rc;
        if (rc == 0)
            sage__part_section_end(b, mark);
    }
    if (rc == 0 && op->snapshot) {
        size_t mark;
        rc = sage__part_section_begin(b, k, SAGE__SEC_USER, &mark);
        if (rc == 0) {
            sage_snapshot snap = {b, b->len};
            in->ctx.calls++;
            int urc = op->snapshot(&in->ctx, &snap, in->udata);
            if (urc < 0)
                return sage__inst_fail_ret(in, urc, "its snapshot hook");
            sage__part_section_end(b, mark);
        }
    }
    sage__sink_out *so = &job->sinks[op->id];
    if (rc == 0 && op->builtin == SAGE__BUILTIN_COLLECT_SINK && so->mode == SAGE__SINK_COLLECT) {
        uint64_t n[2] = {sage__collector_part_count(op->collector, in->ctx.instance), 0};
        rc = sage__part_section(b, k, SAGE__SEC_COLLECT, n, sizeof n);
    } else if (rc == 0 && op->builtin == SAGE__BUILTIN_COLLECT_SINK && so->mode == SAGE__SINK_RECORDS) {
        /* a worker process: its results file, whose length is what it collected */
        off_t len = fflush(so->file) == 0 ? ftello(so->file) : -1;
        if (len < 0) {
            sage_ctx_fail(&in->ctx, "checkpoint: the length of its results file is unknown: %s", strerror(errno));
            return sage__inst_fail(in, SAGE_EIO);
        }
        uint64_t n[2] = {so->written, (uint64_t)len};
        rc = sage__part_section(b, k, SAGE__SEC_COLLECT, n, sizeof n);
    }
    if (rc != 0 && rc != SAGE_EUSER) {
        sage_ctx_fail(&in->ctx, "checkpoint: saving this instance's state failed: %s", sage_strerror(rc));
        return sage__inst_fail(in, rc);
    }
    return rc;
}

/* Capture the task's state and hand it to the coordinator (if it still wants it). */
static int capture(sage__task *t, uint64_t epoch)
{
    sage__job *job = t->job;
    sage__buf *b = malloc(sizeof *b);
    if (!b)
        return sage__inst_fail(&t->ops[0], SAGE_ENOMEM);
    sage__buf_init(b, (size_t)SAGE__PART_MAX);
    int rc = sage__part_begin(b);
    for (size_t k = 0; rc == 0 && k < t->nops; k++)
        rc = capture_op(&t->ops[k], (uint32_t)k, b);
    if (rc != 0) {
        sage__buf_free(b);
        free(b);
        return rc < 0 ? rc : SAGE_EUSER;
    }
    sage__part_finish(b);
    pthread_mutex_lock(&job->mu);
    size_t i = (size_t)(t - job->tasks);
    /* In a worker process the barrier may reach this task before the JobManager's request reaches our
     * coordinator (ckpt_active still older): the part is kept for it all the same. */
    if (epoch >= job->ckpt_active && (!job->parts[i].p || t->part_epoch < epoch)) {
        sage__buf_free(&job->parts[i]);
        job->parts[i] = *b; /* the coordinator takes it from here */
        t->part_epoch = epoch;
        free(b);
        b = NULL;
    }
    t->ckpt_epoch = epoch;
    pthread_cond_broadcast(&job->ckpt_cv);
    pthread_mutex_unlock(&job->mu);
    if (b) { /* abandoned meanwhile */
        sage__buf_free(b);
        free(b);
    }
    return 0;
}

int sage__task_send_mark(sage__task *t, uint32_t mark, uint64_t epoch)
{
    for (size_t i = 0; i < t->nroutes; i++) {
        sage__route *r = &t->routes[i];
        for (int k = 0; k < r->ntargets; k++) {
            sage__batch *b = sage__batch_new(0);
            if (!b)
                return SAGE_ENOMEM;
            b->mark = mark;
            b->epoch = epoch;
            b->input = (uint32_t)r->input;
            sage__leave(t->job);
            int rc = sage__chan_push(r->targets[k], b, NULL);
            sage__enter(t->job);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int barrier(sage__task *t, uint64_t epoch)
{
    int rc = sage__task_flush(t, 0); /* everything before the barrier goes before it */
    if (rc == 0)
        rc = capture(t, epoch);
    if (rc == 0)
        rc = sage__task_send_mark(t, SAGE__MARK_BARRIER, epoch);
    return rc;
}

int sage__task_source_barrier(sage__task *t, uint64_t epoch)
{
    sage__job *job = t->job;
    int rc = barrier(t, epoch);
    if (rc != 0)
        return rc;
    sage__leave(job);
    pthread_mutex_lock(&job->mu);
    while (job->ckpt_released < epoch && !atomic_load(&job->canceled) && !atomic_load(&job->stopping))
        pthread_cond_wait(&job->pause_cv, &job->mu);
    pthread_mutex_unlock(&job->mu);
    sage__enter(job);
    return 0;
}

int sage__task_align(sage__task *t, uint64_t epoch)
{
    if (epoch) {
        if (epoch > t->align_epoch) { /* a newer checkpoint: an older unfinished one was abandoned */
            t->align_epoch = epoch;
            t->align_n = 0;
        }
        if (epoch == t->align_epoch)
            t->align_n++;
    }
    if (t->align_epoch > t->ckpt_epoch && t->align_n > 0 && t->align_n + t->eos_seen >= t->expected_eos)
        return barrier(t, t->align_epoch);
    return 0;
}

/* ---- the coordinator ---- */

void sage__ckpt_taken_free(sage__ckpt_taken *t)
{
    for (size_t i = 0; t->parts && i < t->ntasks; i++)
        if (t->parts[i]) {
            sage__buf_free(t->parts[i]);
            free(t->parts[i]);
        }
    free(t->parts);
    free(t->sinks);
    memset(t, 0, sizeof *t);
}

/* Under mu: has every task captured epoch or ended? */
static int all_in(const sage__job *job, uint64_t epoch)
{
    for (size_t i = 0; i < job->ntasks; i++) {
        const sage__task *t = &job->tasks[i];
        if (t->ckpt_epoch != epoch && !t->ended_ok)
            return 0;
    }
    return 1;
}

/* Parts of checkpoints older than keep_from go (a newer one's part, captured early, stays). */
static void drop_parts(sage__job *job, uint64_t keep_from)
{
    for (size_t i = 0; i < job->ntasks; i++)
        if (job->tasks[i].part_epoch < keep_from) {
            sage__buf_free(&job->parts[i]);
            job->tasks[i].part_epoch = 0;
        }
}

void sage__job_release(sage__job *job, uint64_t epoch, int stop)
{
    pthread_mutex_lock(&job->mu);
    if (stop)
        atomic_store(&job->stopping, 1);
    if (job->ckpt_released < epoch)
        job->ckpt_released = epoch;
    pthread_cond_broadcast(&job->pause_cv);
    pthread_mutex_unlock(&job->mu);
}

int sage__job_checkpoint(sage__job *job, uint64_t epoch, int timeout_ms, int hold, sage__ckpt_taken *out)
{
    memset(out, 0, sizeof *out);
    out->ntasks = job->ntasks;
    out->parts = calloc(job->ntasks, sizeof *out->parts);
    out->sinks = calloc(job->plan->nops ? job->plan->nops : 1, sizeof *out->sinks);
    if (!out->parts || !out->sinks) {
        sage__ckpt_taken_free(out);
        return SAGE_ENOMEM;
    }
    uint64_t t0 = sage__mono_ns();
    struct timespec dl;
    sage__deadline(&dl, timeout_ms);
    pthread_mutex_lock(&job->mu);
    drop_parts(job, epoch); /* a task that captured this one before we were asked keeps its part */
    job->ckpt_active = epoch;
    atomic_store(&job->ckpt_req, epoch);
    pthread_cond_broadcast(&job->pause_cv); /* paused sources take it too */
    int rc = 0;
    while (!all_in(job, epoch) && !atomic_load(&job->canceled))
        if (pthread_cond_timedwait(&job->ckpt_cv, &job->mu, &dl) == ETIMEDOUT) {
            rc = all_in(job, epoch) ? 0 : SAGE_ETIMEDOUT;
            break;
        }
    if (rc == 0 && atomic_load(&job->canceled))
        rc = SAGE_ECANCELED; /* failed or canceled: nothing to checkpoint (tasks that ended are "finished") */
    if (rc == 0) {
        for (size_t i = 0; i < job->ntasks; i++) {
            if (job->tasks[i].ckpt_epoch != epoch)
                continue; /* finished: no part */
            if (job->tasks[i].part_epoch != epoch || !job->parts[i].p) {
                rc = SAGE_EPROTO; /* captured, but its part is gone: never an empty part */
                break;
            }
            sage__buf *b = malloc(sizeof *b);
            if (!b) {
                rc = SAGE_ENOMEM;
                break;
            }
            *b = job->parts[i];
            memset(&job->parts[i], 0, sizeof job->parts[i]);
            job->tasks[i].part_epoch = 0;
            out->parts[i] = b;
        }
        for (size_t i = 0; rc == 0 && i < job->plan->nops; i++) {
            sage__sink_out *so = &job->sinks[i];
            off_t len = -1;
            struct stat st;
            /* every task is between records: the file holds exactly what came before the cut (appended to by
             * several processes: every one of them is at the barrier too) */
            if (so->mode == SAGE__SINK_FILE && so->file)
                len = fflush(so->file) == 0 ? ftello(so->file) : -1;
            else if (so->mode == SAGE__SINK_APPEND && so->fd >= 0)
                len = fstat(so->fd, &st) == 0 ? st.st_size : -1;
            else
                continue;
            if (len < 0) {
                rc = SAGE_EIO;
                break;
            }
            out->sinks[out->nsinks].op = (int)i;
            sage__strlcpy(out->sinks[out->nsinks].path, job->g->ops[i]->path, sizeof out->sinks[0].path);
            out->sinks[out->nsinks++].length = (uint64_t)len;
        }
    }
    drop_parts(job, epoch + 1);
    job->ckpt_active = 0;
    if (!(rc == 0 && hold)) {
        job->ckpt_released = epoch;
        pthread_cond_broadcast(&job->pause_cv);
    }
    pthread_mutex_unlock(&job->mu);
    out->pause_ns = sage__mono_ns() - t0;
    if (rc != 0)
        sage__ckpt_taken_free(out);
    return rc;
}

/* ---- restore ---- */

int sage__restore_check(const sage__plan *plan, const sage__loaded *ck, char *why, size_t wl)
{
    const sage__manifest *m = &ck->m;
    if (m->plan_hash != plan->hash) {
        sage__fmt(why, wl,
                  "checkpoint \"%s\" was taken by a different pipeline (plan hash %016" PRIx64 ", this one %016" PRIx64
                  "): operators, their order, parallelism or partitioning changed",
                  ck->dir, m->plan_hash, plan->hash);
        return SAGE_EINVAL;
    }
    if (m->ntasks != plan->ntasks) {
        sage__fmt(why, wl, "checkpoint \"%s\" has %zu tasks, this pipeline %zu", ck->dir, m->ntasks, plan->ntasks);
        return SAGE_EINVAL;
    }
    size_t ti = 0;
    for (size_t c = 0; c < plan->nchains; c++)
        for (int i = 0; i < plan->chains[c].parallelism; i++, ti++)
            if (m->tasks[ti].chain != plan->chains[c].id || m->tasks[ti].instance != i) {
                sage__fmt(why, wl,
                          "checkpoint \"%s\": task %zu is chain %d instance %d, this pipeline's chain %d "
                          "instance %d",
                          ck->dir, ti, m->tasks[ti].chain, m->tasks[ti].instance, plan->chains[c].id, i);
                return SAGE_EINVAL;
            }
    for (size_t i = 0; i < m->nsinks; i++)
        if (m->sinks[i].op < 0 || (size_t)m->sinks[i].op >= plan->nops ||
            plan->ops[m->sinks[i].op].op->builtin != SAGE__BUILTIN_FILE_SINK) {
            sage__fmt(why, wl, "checkpoint \"%s\": operator %d is not a file sink", ck->dir, m->sinks[i].op);
            return SAGE_EINVAL;
        }
    return 0;
}

int sage__task_was_finished(const sage__task *t)
{
    const sage__restore *r = t->job->restore;
    return r && r->ck->m.tasks[(size_t)(t - t->job->tasks) + r->first_task].finished;
}

static int restore_fail(sage__opinst *in, int rc, const char *fmt, const char *detail)
{
    sage_ctx_fail(&in->ctx, fmt, detail);
    return sage__inst_fail(in, rc);
}

static int restore_keys(sage__opinst *in, const unsigned char *p, uint64_t len)
{
    uint64_t size, count;
    memcpy(&size, p, 8);
    memcpy(&count, p + 8, 8);
    if (!in->op->keyed)
        return restore_fail(in, SAGE_EINVAL, "restoring: the checkpoint holds per-key state for %s, which is not keyed",
                            in->op->name);
    if (!in->ctx.ks && !(in->ctx.ks = sage__keystate_new()))
        return sage__inst_fail(in, SAGE_ENOMEM);
    size_t off = 16;
    for (uint64_t i = 0; i < count; i++) {
        uint32_t kl;
        memcpy(&kl, p + off, 4);
        const unsigned char *key = p + off + 4;
        void *st = sage__keystate_get(in->ctx.ks, sage__hash64(key, kl), key, kl, (size_t)size);
        if (!st)
            return restore_fail(in, SAGE_ENOMEM, "restoring: out of memory for per-key state%s", "");
        memcpy(st, key + kl, (size_t)size);
        off += 4 + kl + (size_t)size;
    }
    in->ctx.ks_restored = (size_t)size;
    (void)len;
    return 0;
}

int sage__task_restore(sage__task *t)
{
    sage__job *job = t->job;
    const sage__restore *r = job->restore;
    if (!r)
        return 0;
    size_t ti = (size_t)(t - job->tasks) + r->first_task;
    const unsigned char *p = r->ck->parts[ti];
    size_t n = r->ck->part_len[ti];
    unsigned char *has_user = calloc(t->nops, 1);
    if (!has_user)
        return sage__inst_fail(&t->ops[0], SAGE_ENOMEM);
    sage__section s;
    int rc = 0;
    for (size_t off = 0; rc == 0 && sage__part_next(p, n, &off, &s);) {
        if (s.op >= t->nops) {
            rc = restore_fail(&t->ops[0], SAGE_EINVAL,
                              "restoring: the checkpoint names operator %s of this chain, "
                              "which has fewer",
                              "a later");
            break;
        }
        sage__opinst *in = &t->ops[s.op];
        const sage__op *op = in->op;
        switch (s.kind) {
        case SAGE__SEC_COUNTS: {
            uint64_t c[3];
            memcpy(c, s.p, sizeof c);
            atomic_store(&in->ctx.records_in, c[0]);
            atomic_store(&in->out.emitted, c[1]);
            in->ctx.calls = c[2];
            break;
        }
        case SAGE__SEC_SOURCE: {
            int64_t pos[2];
            memcpy(pos, s.p, sizeof pos);
            if (op->builtin == SAGE__BUILTIN_COLLECTION && pos[1] < 0) {
                in->builtin_pos = (uint64_t)pos[0];
            } else if (op->builtin == SAGE__BUILTIN_FILE_LINES && pos[1] >= 0 && in->builtin_file) {
                if (fseeko(in->builtin_file, (off_t)pos[1], SEEK_SET) != 0)
                    rc = restore_fail(in, SAGE_EIO, "restoring: cannot seek in \"%s\"", op->path);
                in->builtin_pos = (uint64_t)pos[0];
            } else {
                rc = restore_fail(in, SAGE_EINVAL,
                                  "restoring: the checkpoint holds a source position for %s, "
                                  "which is not that kind of built-in source",
                                  op->name);
            }
            break;
        }
        case SAGE__SEC_KEYS: rc = restore_keys(in, s.p, s.len); break;
        case SAGE__SEC_USER:
            has_user[s.op] = 1;
            if (!op->restore) {
                rc = restore_fail(in, SAGE_EINVAL,
                                  "restoring: the checkpoint holds state that the snapshot hook of "
                                  "\"%s\" wrote, but the operator has no restore hook",
                                  op->name);
                break;
            }
            in->ctx.calls++;
            if ((rc = op->restore(&in->ctx, s.len ? s.p : (const void *)"", (size_t)s.len, in->udata)) < 0)
                rc = sage__inst_fail_ret(in, rc, "its restore hook");
            break;
        case SAGE__SEC_COLLECT: {
            uint64_t c[2];
            memcpy(c, s.p, sizeof c);
            sage__sink_out *so = &job->sinks[op->id];
            if (op->builtin != SAGE__BUILTIN_COLLECT_SINK) {
                rc = restore_fail(in, SAGE_EINVAL,
                                  "restoring: the checkpoint holds collected records for %s, "
                                  "which is not a collect sink",
                                  op->name);
            } else if (!r->in_run) {
                /* restore_from: a new run's collector holds what comes after the checkpoint */
            } else if (so->mode == SAGE__SINK_COLLECT &&
                       sage__collector_truncate(op->collector, in->ctx.instance, (size_t)c[0]) != 0) {
                rc = restore_fail(in, SAGE_EINVAL,
                                  "restoring: the collector of %s holds fewer records than the "
                                  "checkpoint committed",
                                  op->name);
            } else if (so->mode == SAGE__SINK_RECORDS &&
                       (fflush(so->file) != 0 || ftruncate(fileno(so->file), (off_t)c[1]) != 0 ||
                        fseeko(so->file, 0, SEEK_END) != 0)) {
                rc = restore_fail(in, SAGE_EIO, "restoring: the results file of %s cannot be cut back", op->name);
            } else if (so->mode == SAGE__SINK_RECORDS) {
                so->written = c[0];
            }
            break;
        }
        }
    }
    for (size_t k = 0; rc == 0 && k < t->nops; k++) { /* a restore hook without saved bytes: still told */
        sage__opinst *in = &t->ops[k];
        if (in->op->restore && !has_user[k]) {
            in->ctx.calls++;
            if ((rc = in->op->restore(&in->ctx, "", 0, in->udata)) < 0)
                rc = sage__inst_fail_ret(in, rc, "its restore hook");
        }
    }
    free(has_user);
    return rc < 0 ? rc : 0;
}
