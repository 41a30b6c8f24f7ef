/* runtime/histogram.c - log-linear histograms: O(1) record, exact count/sum/min/max, quantiles within 1%. */
#include "runtime/histogram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sage/error.h"

/* Design: a value v >= 1 is an IEEE-754 double 2^e * 1.m; its bucket is
 * 1 + e*128 + (top 7 bits of m), read straight from the bit pattern (no
 * loop, no log, no clz: the exponent field already is floor(log2 v), and it
 * gives fractional values in [1, 128) the same 128-way resolution as large
 * ones). A bucket spans 1/128 of its power of two, so its midpoint is within
 * 1/256 (< 0.4%) of every value in it. Values below 1 (and negatives and
 * NaN, which count as 0) share bucket 0; values >= 2^63 share the last one.
 * The bucket array (SAGE__HIST_BUCKETS counters, ~63 KiB) is allocated on
 * the first record so that idle metrics cost nothing. */

#define HIST_LAST (SAGE__HIST_BUCKETS - 1)

static inline int hist_index(double v)
{
    if (!(v >= 1.0)) /* also NaN */
        return 0;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023; /* >= 0 since v >= 1 */
    if (e >= 63)
        return HIST_LAST;
    int sub = (int)((bits >> (52 - SAGE__HIST_SUB_BITS)) & (SAGE__HIST_SUB - 1));
    return 1 + e * SAGE__HIST_SUB + sub;
}

/* The representative (midpoint) value of bucket i. */
static double hist_mid(int i)
{
    if (i == 0)
        return 0.5;
    int e = (i - 1) / SAGE__HIST_SUB, sub = (i - 1) % SAGE__HIST_SUB;
    return ldexp(1.0 + (sub + 0.5) / SAGE__HIST_SUB, e);
}

void sage__hist_init(sage__hist *h)
{
    h->count = 0;
    h->sum = h->min = h->max = 0.0;
    h->buckets = NULL;
}

void sage__hist_free(sage__hist *h)
{
    if (!h)
        return;
    free(h->buckets);
    sage__hist_init(h);
}

static int hist_alloc(sage__hist *h)
{
    h->buckets = calloc(SAGE__HIST_BUCKETS, sizeof *h->buckets);
    return h->buckets ? 0 : SAGE_ENOMEM;
}

int sage__hist_record(sage__hist *h, double v)
{
    if (__builtin_expect(h->buckets == NULL, 0) && hist_alloc(h) != 0)
        return SAGE_ENOMEM;
    if (!(v >= 0.0)) /* negatives and NaN count as 0 */
        v = 0.0;
    h->buckets[hist_index(v)]++;
    if (h->count == 0) {
        h->min = h->max = v;
    } else {
        if (v < h->min)
            h->min = v;
        if (v > h->max)
            h->max = v;
    }
    h->count++;
    h->sum += v;
    return 0;
}

int sage__hist_merge(sage__hist *dst, const sage__hist *src)
{
    if (src->count == 0 || !src->buckets)
        return 0;
    if (!dst->buckets && hist_alloc(dst) != 0)
        return SAGE_ENOMEM;
    for (int i = 0; i < SAGE__HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    if (dst->count == 0) {
        dst->min = src->min;
        dst->max = src->max;
    } else {
        if (src->min < dst->min)
            dst->min = src->min;
        if (src->max > dst->max)
            dst->max = src->max;
    }
    dst->count += src->count;
    dst->sum += src->sum;
    return 0;
}

double sage__hist_quantile(const sage__hist *h, double q)
{
    if (h->count == 0 || !h->buckets)
        return 0.0;
    if (!(q > 0.0)) /* also NaN */
        return h->min;
    if (q >= 1.0)
        return h->max;
    /* The rank (1-based) of the observation asked for: ceil(q * count). */
    double r = ceil(q * (double)h->count);
    uint64_t rank = r < 1.0 ? 1 : (r >= (double)h->count ? h->count : (uint64_t)r);
    uint64_t seen = 0;
    int i = 0;
    for (; i < HIST_LAST; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            break;
    }
    double v = hist_mid(i);
    if (v < h->min)
        v = h->min;
    if (v > h->max)
        v = h->max;
    return v;
}
