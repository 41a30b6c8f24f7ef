/* tests/unit/test_histogram.c - log-linear histogram: exact stats, quantile accuracy, edge values, merge. */
#include "check.h"

#include <math.h>

#include "runtime/histogram.h"
#include "sage/error.h"

static int within(double got, double want, double rel) { return fabs(got - want) <= fabs(want) * rel; }

static void test_uniform(void)
{
    sage__hist h;
    sage__hist_init(&h);
    for (int v = 1; v <= 1000000; v++)
        CHECK_INT(sage__hist_record(&h, v), 0);
    CHECK_INT(h.count, 1000000);
    CHECK(h.sum == 500000500000.0);
    CHECK(h.min == 1.0);
    CHECK(h.max == 1000000.0);
    double p50 = sage__hist_quantile(&h, 0.5), p99 = sage__hist_quantile(&h, 0.99);
    CHECK(within(p50, 500000, 0.01));
    CHECK(within(p99, 990000, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.9), 900000, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.999), 999000, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.001), 1000, 0.01));
    CHECK(sage__hist_quantile(&h, 0.0) == 1.0);
    CHECK(sage__hist_quantile(&h, 1.0) == 1000000.0);
    /* Quantiles never decrease with q. */
    double prev = 0;
    for (double q = 0; q <= 1.0; q += 0.01) {
        double v = sage__hist_quantile(&h, q);
        CHECK(v >= prev);
        prev = v;
    }
    sage__hist_free(&h);
    CHECK(h.buckets == NULL);
    CHECK_INT(h.count, 0);
}

/* Every value of a wide log range is reported within 1% when it is the only
 * value, i.e. each bucket's representative is within 1% of its members. */
static void test_relative_error(void)
{
    int bad = 0;
    for (double v = 1.0; v < 4e18; v *= 1.0137) {
        sage__hist h;
        sage__hist_init(&h);
        CHECK_INT(sage__hist_record(&h, v), 0);
        CHECK_INT(sage__hist_record(&h, v * 1e-9), 0); /* so min/max do not clamp */
        CHECK_INT(sage__hist_record(&h, v * 4.0), 0);
        bad += !within(sage__hist_quantile(&h, 0.5), v, 0.01);
        sage__hist_free(&h);
    }
    CHECK_INT(bad, 0);
}

static void test_constant(void)
{
    sage__hist h;
    sage__hist_init(&h);
    for (int i = 0; i < 1000; i++)
        CHECK_INT(sage__hist_record(&h, 42.0), 0);
    CHECK_INT(h.count, 1000);
    CHECK(h.sum == 42000.0);
    CHECK(h.min == 42.0 && h.max == 42.0);
    /* Clamped to [min, max]: a constant stream reports its value exactly. */
    CHECK(sage__hist_quantile(&h, 0.5) == 42.0);
    CHECK(sage__hist_quantile(&h, 0.01) == 42.0);
    CHECK(sage__hist_quantile(&h, 0.99) == 42.0);
    sage__hist_free(&h);

    sage__hist_init(&h);
    CHECK_INT(sage__hist_record(&h, 1234.5), 0);
    CHECK(sage__hist_quantile(&h, 0.5) == 1234.5);
    sage__hist_free(&h);
}

static void test_small_zero_negative(void)
{
    sage__hist h;
    sage__hist_init(&h);
    CHECK_INT(sage__hist_record(&h, 0.25), 0);
    CHECK_INT(sage__hist_record(&h, 0.0), 0);
    CHECK_INT(sage__hist_record(&h, -5.0), 0); /* counts as 0 */
    CHECK_INT(sage__hist_record(&h, 0.75), 0);
    CHECK_INT(h.count, 4);
    CHECK(h.min == 0.0);
    CHECK(h.max == 0.75);
    CHECK(h.sum == 1.0);
    CHECK(h.buckets[0] == 4);
    double p50 = sage__hist_quantile(&h, 0.5);
    CHECK(p50 >= 0.0 && p50 <= 0.75);
    CHECK(sage__hist_quantile(&h, 0.0) == 0.0);
    CHECK(sage__hist_quantile(&h, 1.0) == 0.75);
    sage__hist_free(&h);

    /* Only negatives: everything is 0. */
    sage__hist_init(&h);
    CHECK_INT(sage__hist_record(&h, -1.0), 0);
    CHECK_INT(sage__hist_record(&h, -1e300), 0);
    CHECK(h.min == 0.0 && h.max == 0.0 && h.sum == 0.0);
    CHECK(sage__hist_quantile(&h, 0.5) == 0.0);
    sage__hist_free(&h);

    /* Fractional values between 1 and 128 keep the 1% resolution. */
    sage__hist_init(&h);
    CHECK_INT(sage__hist_record(&h, 1.0), 0);
    CHECK_INT(sage__hist_record(&h, 1.5), 0);
    CHECK_INT(sage__hist_record(&h, 3.0), 0);
    CHECK(within(sage__hist_quantile(&h, 0.5), 1.5, 0.01));
    sage__hist_free(&h);
}

static void test_huge(void)
{
    sage__hist h;
    sage__hist_init(&h);
    const double base = 4611686018427387904.0; /* 2^62 */
    for (int i = 0; i < 100; i++)
        CHECK_INT(sage__hist_record(&h, base * (1.0 + i / 100.0)), 0);
    CHECK_INT(h.count, 100);
    CHECK(h.min == base);
    CHECK(h.max == base * 1.99);
    CHECK(within(sage__hist_quantile(&h, 0.5), base * 1.49, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.99), base * 1.98, 0.01));
    /* At and beyond 2^63 (and +inf): the top bucket, stats stay exact. */
    CHECK_INT(sage__hist_record(&h, base * 2.0), 0);
    CHECK_INT(sage__hist_record(&h, 1e300), 0);
    CHECK(h.max == 1e300);
    CHECK(h.buckets[SAGE__HIST_BUCKETS - 1] >= 2);
    CHECK(sage__hist_quantile(&h, 1.0) == 1e300);
    sage__hist_free(&h);
}

static void test_merge(void)
{
    sage__hist all, lo, hi, empty;
    sage__hist_init(&all);
    sage__hist_init(&lo);
    sage__hist_init(&hi);
    sage__hist_init(&empty);
    for (int v = 1; v <= 200000; v++) {
        double x = (double)v * 3.7;
        CHECK_INT(sage__hist_record(&all, x), 0);
        CHECK_INT(sage__hist_record(v <= 100000 ? &lo : &hi, x), 0);
    }
    /* Merge into an empty histogram (allocates dst), then the other half. */
    sage__hist m;
    sage__hist_init(&m);
    CHECK_INT(sage__hist_merge(&m, &hi), 0);
    CHECK_INT(sage__hist_merge(&m, &lo), 0);
    CHECK_INT(sage__hist_merge(&m, &empty), 0);
    CHECK(empty.buckets == NULL);
    CHECK_INT(m.count, all.count);
    CHECK(within(m.sum, all.sum, 1e-12));
    CHECK(m.min == all.min);
    CHECK(m.max == all.max);
    CHECK(memcmp(m.buckets, all.buckets, SAGE__HIST_BUCKETS * sizeof *m.buckets) == 0);
    for (double q = 0; q <= 1.0; q += 0.05)
        CHECK(sage__hist_quantile(&m, q) == sage__hist_quantile(&all, q));

    /* Merging an empty source into an empty destination leaves it empty. */
    sage__hist e2;
    sage__hist_init(&e2);
    CHECK_INT(sage__hist_merge(&e2, &empty), 0);
    CHECK_INT(e2.count, 0);
    CHECK(e2.buckets == NULL);

    sage__hist_free(&all);
    sage__hist_free(&lo);
    sage__hist_free(&hi);
    sage__hist_free(&m);
    sage__hist_free(&empty);
    sage__hist_free(&e2);
}

static void test_empty(void)
{
    sage__hist h;
    sage__hist_init(&h);
    CHECK(sage__hist_quantile(&h, 0.0) == 0.0);
    CHECK(sage__hist_quantile(&h, 0.5) == 0.0);
    CHECK(sage__hist_quantile(&h, 1.0) == 0.0);
    CHECK_INT(h.count, 0);
    CHECK(h.buckets == NULL);
    sage__hist_free(&h);
    sage__hist_free(NULL);
}

static void test_quantile_edges(void)
{
    sage__hist h;
    sage__hist_init(&h);
    static const double vals[] = {7.0, 300.0, 0.5, 1e6, 12.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        CHECK_INT(sage__hist_record(&h, vals[i]), 0);
    CHECK(sage__hist_quantile(&h, 0.0) == 0.5);
    CHECK(sage__hist_quantile(&h, 1.0) == 1e6);
    CHECK(sage__hist_quantile(&h, -1.0) == 0.5);
    CHECK(sage__hist_quantile(&h, 2.0) == 1e6);
    /* ceil(q*count)-th observation: q=0.2 -> 1st (0.5), 0.4 -> 2nd (7), 0.6 -> 3rd (12). */
    CHECK(sage__hist_quantile(&h, 0.2) == 0.5);
    CHECK(within(sage__hist_quantile(&h, 0.4), 7.0, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.6), 12.0, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.61), 300.0, 0.01));
    CHECK(within(sage__hist_quantile(&h, 0.99), 1e6, 0.01));
    sage__hist_free(&h);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_uniform);
    RUN(test_relative_error);
    RUN(test_constant);
    RUN(test_small_zero_negative);
    RUN(test_huge);
    RUN(test_merge);
    RUN(test_empty);
    RUN(test_quantile_edges);
    return CHECK_DONE();
}
