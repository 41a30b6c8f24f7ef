/* runtime/collector.c - the in-memory collector: records gathered per instance, bounded, read after the job. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

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

size_t sage__collector_part_count(const sage_collector *c, int part) { return c->parts[part].n; }

int sage__collector_truncate(sage_collector *c, int part, size_t n)
{
    collect_part *p = &c->parts[part];
    if (n > p->n)
        return SAGE_EINVAL;
    if (n == p->n)
        return 0;
    size_t keep = n ? p->off[n] : 0;
    atomic_fetch_sub(&c->bytes, p->used - keep);
    p->used = keep;
    p->n = n;
    return 0;
}

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
