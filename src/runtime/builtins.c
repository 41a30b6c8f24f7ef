/* runtime/builtins.c - the built-in sources (collections, file lines) and sinks (print, file, collect). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/checkpoint.h"
#include "runtime/runtime.h"

#define SAGE__SOURCE_BURST 1024 /* records a built-in source emits per call */

/* ---- sources ---- */

int sage__builtin_open(sage_ctx *ctx, void *udata)
{
    const sage__op *op = udata;
    sage__opinst *inst = ctx->inst;
    if (op->builtin == SAGE__BUILTIN_FILE_LINES) {
        inst->builtin_file = fopen(op->path, "r");
        if (!inst->builtin_file) {
            sage_ctx_fail(ctx, "cannot open \"%s\": %s", op->path, strerror(errno));
            return SAGE_EIO;
        }
    } else if (op->builtin == SAGE__BUILTIN_COLLECTION) {
        inst->builtin_pos = (uint64_t)ctx->instance;
    }
    return 0;
}

int sage__builtin_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    sage__opinst *inst = ctx->inst;
    if (inst->builtin_file) {
        fclose(inst->builtin_file);
        inst->builtin_file = NULL;
    }
    free(inst->line);
    inst->line = NULL;
    return 0;
}

/* Read one line (without its terminator) into inst->line; bounded by max. */
static int read_line(sage__opinst *inst, size_t max, size_t *len, uint64_t lineno)
{
    size_t n = 0;
    for (;;) {
        if (inst->line_cap - n < 2) {
            size_t cap = inst->line_cap ? inst->line_cap * 2 : 256;
            if (cap > max + 2)
                cap = max + 2;
            if (cap <= inst->line_cap) {
                sage_ctx_fail(&inst->ctx, "line %llu of \"%s\" is longer than max_record_bytes (%zu)",
                              (unsigned long long)lineno + 1, inst->op->path, max);
                return SAGE_ETOOBIG;
            }
            char *l = realloc(inst->line, cap);
            if (!l)
                return SAGE_ENOMEM;
            inst->line = l;
            inst->line_cap = cap;
        }
        if (!fgets(inst->line + n, (int)(inst->line_cap - n), inst->builtin_file)) {
            if (ferror(inst->builtin_file)) {
                sage_ctx_fail(&inst->ctx, "reading \"%s\": %s", inst->op->path, strerror(errno));
                return SAGE_EIO;
            }
            if (n == 0)
                return SAGE_DONE;
            break;
        }
        n += strlen(inst->line + n);
        if (n > 0 && inst->line[n - 1] == '\n') {
            n--;
            break;
        }
    }
    if (n > 0 && inst->line[n - 1] == '\r')
        n--;
    *len = n;
    return 0;
}

int sage__builtin_source(sage_ctx *ctx, sage_out *out, void *udata)
{
    const sage__op *op = udata;
    sage__opinst *inst = ctx->inst;
    uint64_t p = (uint64_t)ctx->parallelism;
    if (op->builtin == SAGE__BUILTIN_COLLECTION) {
        for (int k = 0; k < SAGE__SOURCE_BURST; k++) {
            uint64_t i = inst->builtin_pos;
            if (i >= op->coll_n)
                return SAGE_DONE;
            int rc = sage_emit(out, op->coll_data + op->coll_off[i], op->coll_off[i + 1] - op->coll_off[i]);
            if (rc < 0)
                return rc;
            inst->builtin_pos = i + p;
        }
        return SAGE_MORE;
    }
    /* File lines: instance i keeps lines i, i+p, ... */
    size_t max = inst->task->job->cfg->max_record_bytes;
    for (int k = 0; k < SAGE__SOURCE_BURST; k++) {
        size_t len;
        uint64_t lineno = inst->builtin_pos;
        int rc = read_line(inst, max, &len, lineno);
        if (rc != 0)
            return rc;
        inst->builtin_pos++;
        if (lineno % p != (uint64_t)ctx->instance)
            continue;
        rc = sage_emit(out, inst->line, len);
        if (rc < 0)
            return rc;
    }
    return SAGE_MORE;
}

/* ---- reduce ---- */

/* [accumulator][key] */
static int emit_acc(sage_out *out, const void *acc, size_t acc_size, const void *key, size_t key_len)
{
    unsigned char rec[SAGE_REDUCE_ACC_MAX + SAGE_KEY_MAX];
    memcpy(rec, acc, acc_size);
    if (key_len)
        memcpy(rec + acc_size, key, key_len);
    return sage_emit(out, rec, acc_size + key_len);
}

int sage__builtin_reduce(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    const sage__op *op = udata;
    void *acc = sage_ctx_state(ctx, op->reduce_acc);
    if (!acc)
        return ctx->failmsg[0] ? SAGE_ENOMEM : SAGE_ESTATE;
    int rc = op->reduce(ctx, acc, rec, len, op->udata);
    if (rc < 0)
        return rc;
    if (op->reduce_emit == SAGE_REDUCE_EACH)
        return emit_acc(out, acc, op->reduce_acc, ctx->key, ctx->key_len);
    return 0;
}

typedef struct acc_emit {
    sage_out *out;
    size_t size;
} acc_emit;

static int emit_one_acc(const void *key, size_t len, void *state, void *arg)
{
    acc_emit *a = arg;
    int rc = emit_acc(a->out, state, a->size, key, len);
    return rc < 0 ? rc : 0;
}

int sage__builtin_reduce_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    const sage__op *op = udata;
    if (op->reduce_emit != SAGE_REDUCE_AT_CLOSE)
        return 0;
    acc_emit a = {out, op->reduce_acc};
    return sage_ctx_state_foreach(ctx, emit_one_acc, &a);
}

/* ---- sinks ---- */

int sage__builtin_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    const sage__op *op = udata;
    sage__sink_out *so = &ctx->inst->task->job->sinks[op->id];
    switch (so->mode) {
    case SAGE__SINK_RECORDS: {
        /* a worker process: the submitter reads these back when the job ended */
        so->written += len;
        if (so->written > sage__collector_max(op->collector)) {
            sage_ctx_fail(ctx, "the collector holds more than its limit of %zu bytes",
                          sage__collector_max(op->collector));
            return SAGE_ETOOBIG;
        }
        uint32_t l32 = (uint32_t)len;
        if (fwrite(&l32, 4, 1, so->file) != 1 || fwrite(rec, 1, len, so->file) != len) {
            sage_ctx_fail(ctx, "writing collected records: %s", strerror(errno));
            return SAGE_EIO;
        }
        return 0;
    }
    case SAGE__SINK_APPEND: {
        /* several processes append to one file; one write(2) per record keeps it whole */
        struct iovec iov[2] = {{(void *)rec, len}, {"\n", 1}};
        if (writev(so->fd, iov, 2) != (ssize_t)len + 1) {
            sage_ctx_fail(ctx, "writing \"%s\": %s", op->path, strerror(errno));
            return SAGE_EIO;
        }
        return 0;
    }
    case SAGE__SINK_COLLECT: {
        int rc = sage__collector_add(op->collector, ctx->instance, rec, len);
        if (rc == SAGE_ETOOBIG)
            sage_ctx_fail(ctx, "the collector holds more than its limit of %zu bytes",
                          sage__collector_max(op->collector));
        return rc;
    }
    case SAGE__SINK_FILE: {
        /* one locked stdio write per record keeps lines whole */
        FILE *f = so->file;
        flockfile(f);
        size_t w = fwrite_unlocked(rec, 1, len, f);
        int nl = fputc_unlocked('\n', f);
        funlockfile(f);
        if (w != len || nl == EOF) {
            sage_ctx_fail(ctx, "writing \"%s\": %s", op->path, strerror(errno));
            return SAGE_EIO;
        }
        return 0;
    }
    case SAGE__SINK_NONE: break;
    }
    sage_ctx_fail(ctx, "built-in sink \"%s\" was not opened in this process", op->name);
    return SAGE_ESTATE;
}

int sage__sinks_open_local(sage__job *job, sage__err *err)
{
    const sage__graph *g = job->g;
    for (size_t i = 0; i < g->nops; i++) {
        const sage__op *op = g->ops[i];
        sage__sink_out *so = &job->sinks[i];
        if (op->builtin == SAGE__BUILTIN_FILE_SINK) {
            if (job->restore) { /* from a checkpoint: the file as it committed (a file it never saw: empty) */
                uint64_t len = 0;
                for (size_t k = 0; k < job->restore->ck->m.nsinks; k++)
                    if (job->restore->ck->m.sinks[k].op == op->id)
                        len = job->restore->ck->m.sinks[k].length;
                int fd = open(op->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
                if (fd < 0 || ftruncate(fd, (off_t)len) != 0 || lseek(fd, 0, SEEK_END) < 0 ||
                    !(so->file = fdopen(fd, "w"))) {
                    int e = errno;
                    if (fd >= 0)
                        close(fd);
                    return sage__errf(err, SAGE_EIO,
                                      "operator \"%s\": cannot reopen \"%s\" at its committed "
                                      "length (%llu bytes): %s",
                                      op->name, op->path, (unsigned long long)len, strerror(e));
                }
            } else if (!(so->file = fopen(op->path, "we"))) {
                return sage__errf(err, SAGE_EIO, "operator \"%s\": cannot open \"%s\" for writing: %s", op->name,
                                  op->path, strerror(errno));
            }
            so->mode = SAGE__SINK_FILE;
        } else if (op->builtin == SAGE__BUILTIN_COLLECT_SINK) {
            /* recovery in the same run keeps what was collected (each instance cuts its part back) */
            if (!(job->restore && job->restore->in_run) && sage__collector_prepare(op->collector, op->parallelism) != 0)
                return sage__errf(err, SAGE_ENOMEM, "operator \"%s\": out of memory", op->name);
            so->mode = SAGE__SINK_COLLECT;
        }
    }
    return 0;
}

int sage__sinks_close(sage__job *job, sage__err *err)
{
    int rc = 0;
    for (size_t i = 0; i < job->plan->nops; i++) {
        sage__sink_out *so = &job->sinks[i];
        const sage__op *op = job->g->ops[i];
        if (so->file) {
            if (fclose(so->file) != 0 && rc == 0)
                rc = so->mode == SAGE__SINK_RECORDS
                         ? sage__errf(err, SAGE_EIO, "operator \"%s\": writing its results failed: %s", op->name,
                                      strerror(errno))
                         : sage__errf(err, SAGE_EIO, "operator \"%s\": writing \"%s\": %s", op->name, op->path,
                                      strerror(errno));
            so->file = NULL;
        }
        if (so->fd >= 0) {
            if (close(so->fd) != 0 && rc == 0)
                rc = sage__errf(err, SAGE_EIO, "operator \"%s\": writing \"%s\": %s", op->name, op->path,
                                strerror(errno));
            so->fd = -1;
        }
    }
    return rc;
}

SAGE_API int sage_print_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    flockfile(stdout);
    fwrite_unlocked(rec, 1, len, stdout);
    fputc_unlocked('\n', stdout);
    funlockfile(stdout);
    return 0;
}
