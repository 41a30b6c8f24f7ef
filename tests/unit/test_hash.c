/* tests/unit/test_hash.c - sage__hash64: pinned golden values, bucket distribution, avalanche, bucket range. */
#include "check.h"

#include "util/hash.h"

/* The 1000-byte pattern the golden values use: byte i = (i*31 + 7) mod 256. */
static void fill_pattern(unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + 7);
}

/* A small deterministic generator for the statistical tests (xorshift64). */
static uint64_t rng_state = UINT64_C(0x2545f4914f6cdd1d);
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* These values are frozen: key routing of deployed jobs depends on them. If
 * this test fails, the hash changed - revert the change, do not re-pin. (They
 * were also checked against an independent model of the algorithm described
 * in src/util/hash.c.) */
static void test_golden(void)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char pat[1000];
    fill_pattern(pat, sizeof pat);

    CHECK(sage__hash64("", 0) == UINT64_C(0x483ae23ba768c765));
    CHECK(sage__hash64(NULL, 0) == UINT64_C(0x483ae23ba768c765));
    CHECK(sage__hash64("a", 1) == UINT64_C(0xdc62d1610d949abd));
    CHECK(sage__hash64("hello", 5) == UINT64_C(0x645a86456e131f51));
    CHECK(sage__hash64(digits, 7) == UINT64_C(0x8d2fafbc29b4dfd1));
    CHECK(sage__hash64(digits, 8) == UINT64_C(0x5bcd7c97f7344fae));
    CHECK(sage__hash64(digits, 9) == UINT64_C(0x3f779981c04e8d96));
    CHECK(sage__hash64(digits, 16) == UINT64_C(0x957aedf0e260b5f1));
    CHECK(sage__hash64(digits, 17) == UINT64_C(0x844fb32499a52192));
    CHECK(sage__hash64(digits, 32) == UINT64_C(0x6ca4b4886d8c082e));
    CHECK(sage__hash64(pat, 100) == UINT64_C(0xde810762cb349b61));
    CHECK(sage__hash64(pat, 1000) == UINT64_C(0x55216fa16efdec8e));
}

/* Same bytes at any alignment hash the same; trailing zero bytes still count. */
static void test_alignment_and_length(void)
{
    unsigned char buf[64 + 8];
    unsigned char pat[64];
    fill_pattern(pat, sizeof pat);
    uint64_t want = sage__hash64(pat, 37);
    for (size_t off = 0; off < 8; off++) {
        memcpy(buf + off, pat, 37);
        CHECK(sage__hash64(buf + off, 37) == want);
    }
    unsigned char zeros[16] = {0};
    for (size_t n = 0; n < 16; n++)
        CHECK(sage__hash64(zeros, n) != sage__hash64(zeros, n + 1));
    CHECK(sage__hash64("a", 1) != sage__hash64("a\0", 2));
    CHECK(sage__hash64("ab", 2) != sage__hash64("ba", 2));
}

static void test_distribution(void)
{
    enum { N = 1000000, B = 64 };
    static uint32_t bucket[B];
    memset(bucket, 0, sizeof bucket);
    char key[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof key, "key%d", i);
        bucket[sage__hash_bucket(sage__hash64(key, (size_t)n), B)]++;
    }
    double mean = (double)N / B;
    int bad = 0;
    for (int b = 0; b < B; b++) {
        if (bucket[b] < mean * 0.95 || bucket[b] > mean * 1.05) {
            fprintf(stderr, "  bucket %d has %u keys (mean %.0f)\n", b, bucket[b], mean);
            bad++;
        }
    }
    CHECK_INT(bad, 0);
}

/* Flipping any one input bit flips each output bit with probability ~1/2,
 * so ~32 of 64 on average, for every key length. */
static void test_avalanche(void)
{
    static const size_t lens[] = {1, 3, 5, 8, 9, 13, 16, 24, 32, 40, 64};
    unsigned char buf[64];
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t len = lens[li];
        uint64_t flips = 0, trials = 0;
        for (int s = 0; s < 300; s++) {
            for (size_t i = 0; i < len; i++)
                buf[i] = (unsigned char)rng();
            uint64_t h0 = sage__hash64(buf, len);
            for (size_t bit = 0; bit < len * 8; bit++) {
                buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                flips += (uint64_t)__builtin_popcountll(h0 ^ sage__hash64(buf, len));
                buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                trials++;
            }
        }
        double avg = (double)flips / (double)trials;
        if (avg < 28.0 || avg > 36.0)
            fprintf(stderr, "  len %zu: %.2f output bits flip on average\n", len, avg);
        CHECK(avg >= 28.0 && avg <= 36.0);
    }
    /* Also each output bit on its own: over many flips of the low bit of a
     * small integer key, every output bit flips 40..60% of the time. */
    uint32_t per_bit[64] = {0};
    enum { T = 20000 };
    for (uint64_t k = 0; k < T; k++) {
        uint64_t a = k * 2, b = a + 1;
        uint64_t d = sage__hash64(&a, 8) ^ sage__hash64(&b, 8);
        for (int o = 0; o < 64; o++)
            per_bit[o] += (uint32_t)((d >> o) & 1);
    }
    int bad = 0;
    for (int o = 0; o < 64; o++)
        bad += per_bit[o] < T * 0.4 || per_bit[o] > T * 0.6;
    CHECK_INT(bad, 0);
}

static void test_bucket_range(void)
{
    static const uint64_t edge[] = {0,
                                    1,
                                    UINT64_C(0xffffffff),
                                    UINT64_C(0x100000000),
                                    UINT64_C(0x7fffffffffffffff),
                                    UINT64_C(0x8000000000000000),
                                    UINT64_MAX,
                                    UINT64_MAX - 1};
    int bad = 0;
    for (uint32_t n = 1; n <= 1024; n++) {
        for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
            bad += sage__hash_bucket(edge[i], n) >= n;
        for (int i = 0; i < 200; i++)
            bad += sage__hash_bucket(rng(), n) >= n;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sage__hash_bucket(UINT64_MAX, 1024), 1023);
    CHECK_INT(sage__hash_bucket(0, 1024), 0);
    CHECK_INT(sage__hash_bucket(UINT64_MAX, 1), 0);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_golden);
    RUN(test_alignment_and_length);
    RUN(test_distribution);
    RUN(test_avalanche);
    RUN(test_bucket_range);
    return CHECK_DONE();
}
