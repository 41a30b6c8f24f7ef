/* runtime/histogram.h - fixed-size log-linear histograms for latency and size metrics. */
#ifndef SAGE_RUNTIME_HISTOGRAM_H
#define SAGE_RUNTIME_HISTOGRAM_H

#include <stdint.h>

/* Bucket 0 holds [0, 1); then 128 sub-buckets for each power of two
 * [2^e, 2^(e+1)), e = 0..62 (values >= 2^63 land in the last one). */
#define SAGE__HIST_SUB_BITS 7
#define SAGE__HIST_SUB (1 << SAGE__HIST_SUB_BITS)
#define SAGE__HIST_BUCKETS (1 + 63 * SAGE__HIST_SUB)

/* Buckets cover [0, 2^63) with relative error under 1% (128 sub-buckets per
 * power of two); values below 1 go to bucket 0, negatives count as 0.
 * Not thread-safe: one writer; merge copies for aggregate views. */
typedef struct sage__hist {
    uint64_t count;
    double sum, min, max;
    uint64_t *buckets; /* lazily allocated, SAGE__HIST_BUCKETS entries */
} sage__hist;

void sage__hist_init(sage__hist *h);
void sage__hist_free(sage__hist *h);
int sage__hist_record(sage__hist *h, double v); /* SAGE_ENOMEM on first use failure */
int sage__hist_merge(sage__hist *dst, const sage__hist *src);
double sage__hist_quantile(const sage__hist *h, double q); /* q in [0,1]; 0 when empty */

#endif
