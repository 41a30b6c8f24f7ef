/* api/builtins.c - the built-in sources (collections, file lines), sinks (print, file, collect) and record helpers. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core.h"
#include "runtime/runtime.h"

#define SAGE__SOURCE_BURST 1024 /* records a built-in source emits per call */

/* ---- collector ---- */

typedef struct collect_part {
    unsigned char *data;
    size_t used, cap;
    size_t *off; /* n+1 offsets */
    size_t n, offcap;
} collect_part;

struct sage_collector {
    size_t max_bytes;
    _Atomic size_t bytes;
    int nparts;
    collect_part *parts;
    size_t total;   /* records, computed after the run */
    size_t *starts; /* first global index of each part */
};

SAGE_API sage_collector *sage_collector_create(size_t max_bytes)
{
    sage_collector *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max_bytes = max_bytes ? max_bytes : (size_t)1 << 30;
    atomic_init(&c->bytes, 0);
    return c;
}

static void collector_clear(sage_collector *c)
{
    for (int i = 0; i < c->nparts; i++) {
        free(c->parts[i].data);
        free(c->parts[i].off);
    }
    free(c->parts);
    free(c->starts);
    c->parts = NULL;
    c->starts = NULL;
    c->nparts = 0;
    c->total = 0;
}

SAGE_API void sage_collector_destroy(sage_collector *c)
{
    if (!c)
        return;
    collector_clear(c);
    free(c);
}

int sage__collector_prepare(sage_collector *c, int parallelism)
{
    collector_clear(c);
    atomic_store(&c->bytes, 0);
    c->parts = calloc((size_t)parallelism, sizeof *c->parts);
    c->starts = calloc((size_t)parallelism + 1, sizeof *c->starts);
    if (!c->parts || !c->starts)
        return SAGE_ENOMEM;
    c->nparts = parallelism;
    return 0;
}

int sage__collector_add(sage_collector *c, int part, const void *rec, size_t len)
{
    size_t total = atomic_fetch_add(&c->bytes, len) + len;
    if (total > c->max_bytes)
        return SAGE_ETOOBIG;
    collect_part *p = &c->parts[part];
    if (p->used + len > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->used + len)
            cap *= 2;
        unsigned char *d = realloc(p->data, cap);
        if (!d)
            return SAGE_ENOMEM;
        p->data = d;
        p->cap = cap;
    }
    if (p->n + 2 > p->offcap) {
        size_t cap = p->offcap ? p->offcap * 2 : 256;
        size_t *o = realloc(p->off, cap * sizeof *o);
        if (!o)
            return SAGE_ENOMEM;
        p->off = o;
        p->offcap = cap;
    }
    if (p->n == 0)
        p->off[0] = 0;
    if (len)
        memcpy(p->data + p->used, rec, len);
    p->used += len;
    p->off[++p->n] = p->used;
    return 0;
}

size_t sage__collector_max(const sage_collector *c) { return c->max_bytes; }

SAGE_API size_t sage_collector_count(const sage_collector *c)
{
    if (!c)
        return 0;
    size_t n = 0;
    for (int i = 0; i < c->nparts; i++)
        n += c->parts[i].n;
    return n;
}

SAGE_API const void *sage_collector_get(const sage_collector *c, size_t i, size_t *len)
{
    if (!c)
        return NULL;
    for (int k = 0; k < c->nparts; k++) {
        const collect_part *p = &c->parts[k];
        if (i < p->n) {
            if (len)
                *len = p->off[i + 1] - p->off[i];
            return p->data ? p->data + p->off[i] : (const void *)"";
        }
        i -= p->n;
    }
    if (len)
        *len = 0;
    return NULL;
}

/* ---- sources ---- */

int sage__builtin_open(sage_ctx *ctx, void *udata)
{
    sage__op *op = udata;
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
    sage__op *op = udata;
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
    size_t max = inst->task->job->env->cfg.max_record_bytes;
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

/* ---- sinks ---- */

int sage__builtin_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    sage__op *op = udata;
    if (op->builtin == SAGE__BUILTIN_COLLECT_SINK && op->results_to_file) {
        /* worker process: the client reads these back when the job ended */
        op->collected += len;
        if (op->collected > sage__collector_max(op->collector)) {
            sage_ctx_fail(ctx, "the collector holds more than its limit of %zu bytes", sage__collector_max(op->collector));
            return SAGE_ETOOBIG;
        }
        uint32_t l32 = (uint32_t)len;
        if (fwrite(&l32, 4, 1, op->sink_file) != 1 || fwrite(rec, 1, len, op->sink_file) != len) {
            sage_ctx_fail(ctx, "writing collected records: %s", strerror(errno));
            return SAGE_EIO;
        }
        return 0;
    }
    if (op->append_fd >= 0) {
        /* worker process: several processes append to one file; one write(2) per record keeps it whole */
        struct iovec iov[2] = {{(void *)rec, len}, {"\n", 1}};
        if (writev(op->append_fd, iov, 2) != (ssize_t)len + 1) {
            sage_ctx_fail(ctx, "writing \"%s\": %s", op->path, strerror(errno));
            return SAGE_EIO;
        }
        return 0;
    }
    if (op->builtin == SAGE__BUILTIN_COLLECT_SINK) {
        int rc = sage__collector_add(op->collector, ctx->instance, rec, len);
        if (rc == SAGE_ETOOBIG)
            sage_ctx_fail(ctx, "the collector holds more than its limit of %zu bytes", op->collector->max_bytes);
        return rc;
    }
    /* File sink: one locked stdio write per record keeps lines whole. */
    FILE *f = op->sink_file;
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

SAGE_API int sage_print_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    flockfile(stdout);
    fwrite_unlocked(rec, 1, len, stdout);
    fputc_unlocked('\n', stdout);
    funlockfile(stdout);
    return 0;
}
