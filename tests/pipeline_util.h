/* tests/pipeline_util.h - helpers for pipeline tests: int64 generators, collected-output comparison. */
#ifndef SAGE_TESTS_PIPELINE_UTIL_H
#define SAGE_TESTS_PIPELINE_UTIL_H

#include <sage/sage.h>
#include <stdlib.h>
#include <string.h>

/* Generator of 1..n as int64 records, n in udata (uint64_t *); each instance
 * emits the values v with (v-1) % parallelism == instance. */
static inline int gen_range(sage_ctx *ctx, sage_out *out, void *udata)
{
    uint64_t n = *(const uint64_t *)udata;
    uint64_t *next = sage_ctx_local(ctx);
    uint64_t p = (uint64_t)sage_ctx_parallelism(ctx);
    uint64_t v = (uint64_t)(uintptr_t)next;
    if (v == 0)
        v = (uint64_t)sage_ctx_instance(ctx) + 1;
    for (int k = 0; k < 4096 && v <= n; k++, v += p) {
        int rc = sage_emit_i64(out, (int64_t)v);
        if (rc < 0)
            return rc;
    }
    sage_ctx_set_local(ctx, (void *)(uintptr_t)v);
    return v > n ? SAGE_DONE : SAGE_MORE;
}

static inline int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The collector's int64 records, sorted (caller frees). */
static inline int64_t *collected_sorted(const sage_collector *c, size_t *n)
{
    *n = sage_collector_count(c);
    int64_t *v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        size_t len;
        const void *r = sage_collector_get(c, i, &len);
        v[i] = sage_rec_i64(r, len);
    }
    qsort(v, *n, sizeof *v, cmp_i64);
    return v;
}

static inline int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The collector's records as sorted NUL-terminated strings (free with free_strs). */
static inline char **collected_strs(const sage_collector *c, size_t *n)
{
    *n = sage_collector_count(c);
    char **v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) {
        size_t len;
        const char *r = sage_collector_get(c, i, &len);
        v[i] = malloc(len + 1);
        memcpy(v[i], r, len);
        v[i][len] = 0;
    }
    qsort(v, *n, sizeof *v, cmp_str);
    return v;
}

static inline void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

#endif
