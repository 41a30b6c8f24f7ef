/* tests/unit/test_keystate.c - per-key state table: 1M keys, stable pointers, insertion order, edge keys, collisions. */
#include "check.h"

#include "runtime/keystate.h"
#include "sage/stream.h"
#include "util/hash.h"

typedef struct counter {
    uint64_t n;
    uint64_t id;
} counter;

static void *get(sage__keystate *ks, const void *key, size_t len, size_t size)
{
    return sage__keystate_get(ks, sage__hash64(key, len), key, len, size);
}

static size_t key_of(char *buf, size_t cap, int i)
{
    int n = snprintf(buf, cap, "user-%d", i);
    return (size_t)n;
}

typedef struct order_walk {
    int next; /* the index expected next */
    int bad;
    int stop_at; /* return 42 when reaching this index (-1: never) */
} order_walk;

static int check_order(const void *key, size_t len, void *state, void *arg)
{
    order_walk *w = arg;
    char want[32];
    size_t n = key_of(want, sizeof want, w->next);
    const counter *c = state;
    if (len != n || memcmp(key, want, n) != 0 || c->n != 2 || c->id != (uint64_t)w->next)
        w->bad++;
    if (w->next == w->stop_at)
        return 42;
    w->next++;
    return 0;
}

static void test_million(void)
{
    enum { N = 1000000 };
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    void **ptrs = malloc(N * sizeof *ptrs);
    CHECK(ptrs != NULL);
    if (!ptrs) {
        sage__keystate_free(ks);
        return;
    }
    char key[32];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        size_t n = key_of(key, sizeof key, i);
        counter *c = get(ks, key, n, sizeof(counter));
        if (!c || c->n != 0 || c->id != 0 || ((uintptr_t)c % 16) != 0) {
            bad++;
            ptrs[i] = NULL;
            continue;
        }
        c->n++;
        c->id = (uint64_t)i;
        ptrs[i] = c;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sage__keystate_count(ks), N);
    CHECK_INT(sage__keystate_state_size(ks), sizeof(counter));

    /* Second pass: the same block (grows did not move it), values intact. */
    bad = 0;
    for (int i = 0; i < N; i++) {
        size_t n = key_of(key, sizeof key, i);
        counter *c = get(ks, key, n, sizeof(counter));
        if (c != ptrs[i] || !c || c->n != 1 || c->id != (uint64_t)i)
            bad++;
        else
            c->n++;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sage__keystate_count(ks), N);

    /* foreach: insertion order, every entry once. */
    order_walk w = {0, 0, -1};
    CHECK_INT(sage__keystate_foreach(ks, check_order, &w), 0);
    CHECK_INT(w.next, N);
    CHECK_INT(w.bad, 0);

    /* Early stop: the callback's value comes back, nothing after it is visited. */
    order_walk s = {0, 0, 10};
    CHECK_INT(sage__keystate_foreach(ks, check_order, &s), 42);
    CHECK_INT(s.next, 10);
    CHECK_INT(s.bad, 0);

    free(ptrs);
    sage__keystate_free(ks);
}

static void test_size_mismatch(void)
{
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    CHECK_INT(sage__keystate_count(ks), 0);
    void *a = get(ks, "a", 1, 24);
    CHECK(a != NULL);
    CHECK_INT(sage__keystate_state_size(ks), 24);
    CHECK(get(ks, "a", 1, 16) == NULL); /* existing key, wrong size */
    CHECK(get(ks, "b", 1, 32) == NULL); /* new key, wrong size: not created */
    CHECK_INT(sage__keystate_count(ks), 1);
    CHECK(get(ks, "a", 1, 24) == a);
    sage__keystate_free(ks);
}

static int count_visit(const void *key, size_t len, void *state, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_empty_and_long_keys(void)
{
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    int visits = 0;
    CHECK_INT(sage__keystate_foreach(ks, count_visit, &visits), 0);
    CHECK_INT(visits, 0);

    /* Empty key: a key like any other (and NULL is fine for 0 bytes). */
    uint64_t *e = get(ks, "", 0, sizeof(uint64_t));
    CHECK(e != NULL);
    if (e) {
        CHECK(*e == 0);
        *e = 7;
    }
    CHECK(get(ks, NULL, 0, sizeof(uint64_t)) == e);
    CHECK_INT(sage__keystate_count(ks), 1);

    /* Longest key, and one differing only in its last byte. */
    unsigned char big[SAGE_KEY_MAX + 1];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    uint64_t *b1 = get(ks, big, SAGE_KEY_MAX, sizeof(uint64_t));
    CHECK(b1 != NULL && *b1 == 0);
    big[SAGE_KEY_MAX - 1] ^= 1;
    uint64_t *b2 = get(ks, big, SAGE_KEY_MAX, sizeof(uint64_t));
    CHECK(b2 != NULL && b2 != b1);
    big[SAGE_KEY_MAX - 1] ^= 1;
    CHECK(get(ks, big, SAGE_KEY_MAX, sizeof(uint64_t)) == b1);
    /* Longer than SAGE_KEY_MAX: refused. */
    CHECK(get(ks, big, SAGE_KEY_MAX + 1, sizeof(uint64_t)) == NULL);
    CHECK_INT(sage__keystate_count(ks), 3);

    /* Keys that are prefixes of each other are distinct. */
    uint64_t *p1 = get(ks, "abc", 2, sizeof(uint64_t));
    uint64_t *p2 = get(ks, "abc", 3, sizeof(uint64_t));
    CHECK(p1 && p2 && p1 != p2 && p1 != e);
    CHECK_INT(sage__keystate_count(ks), 5);
    CHECK(e && *e == 7);

    visits = 0;
    CHECK_INT(sage__keystate_foreach(ks, count_visit, &visits), 0);
    CHECK_INT(visits, 5);
    sage__keystate_free(ks);
}

/* Callers pass the hash: give many different keys the same one on purpose. */
static void test_colliding_hashes(void)
{
    enum { N = 2000 };
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    static uint32_t *ptrs[N];
    char key[32];
    int bad = 0;
    for (int i = 0; i < N; i++) {
        size_t n = key_of(key, sizeof key, i);
        uint32_t *s = sage__keystate_get(ks, 0x5eed, key, n, sizeof(uint32_t));
        if (!s || *s != 0)
            bad++;
        else
            *s = (uint32_t)i + 1;
        ptrs[i] = s;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sage__keystate_count(ks), N);
    /* Same hash, different lengths too. */
    uint32_t *x = sage__keystate_get(ks, 0x5eed, "user-1", 5, sizeof(uint32_t));
    CHECK(x != NULL && x != ptrs[1] && *x == 0);
    bad = 0;
    for (int i = 0; i < N; i++) {
        size_t n = key_of(key, sizeof key, i);
        uint32_t *s = sage__keystate_get(ks, 0x5eed, key, n, sizeof(uint32_t));
        if (s != ptrs[i] || !s || *s != (uint32_t)i + 1)
            bad++;
    }
    CHECK_INT(bad, 0);
    /* The same key under a different hash is (by contract, the caller's
     * mistake) a different entry: the hash is compared first. */
    CHECK(sage__keystate_get(ks, 0x5eee, "user-0", 6, sizeof(uint32_t)) != ptrs[0]);
    CHECK_INT(sage__keystate_count(ks), N + 2);
    sage__keystate_free(ks);
}

static void test_state_blocks(void)
{
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    /* Large state blocks are zero-filled and 16-byte aligned for any key length. */
    char key[40];
    int bad = 0;
    for (size_t len = 0; len < sizeof key; len++) {
        memset(key, 'k', len);
        unsigned char *s = get(ks, key, len, 1000);
        if (!s || ((uintptr_t)s % 16) != 0) {
            bad++;
            continue;
        }
        for (size_t i = 0; i < 1000; i++)
            bad += s[i] != 0;
        memset(s, 0xff, 1000); /* must not spill into other entries */
    }
    CHECK_INT(bad, 0);
    CHECK_INT(sage__keystate_count(ks), sizeof key);
    sage__keystate_free(ks);

    /* Zero-size state: still a distinct, non-NULL handle per key. */
    ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    void *a = get(ks, "a", 1, 0), *b = get(ks, "b", 1, 0);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK(get(ks, "a", 1, 0) == a);
    sage__keystate_free(ks);
}

/* Small blocks are packed (aligned for an object of their size, not to 16),
 * never overlap, and survive the index doubling; a block size no entry
 * could hold is refused, every time. */
static void test_block_sizes(void)
{
    static const size_t sizes[] = {1, 2, 3, 4, 6, 8, 12, 24, 40};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t size = sizes[k], align = size >= 16 ? 16 : size & (~size + 1);
        enum { N = 5000 };
        sage__keystate *ks = sage__keystate_new();
        CHECK(ks != NULL);
        if (!ks)
            return;
        char key[32];
        int bad = 0;
        for (int i = 0; i < N; i++) {
            size_t n = key_of(key, sizeof key, i);
            unsigned char *s = get(ks, key, n, size);
            if (!s || (uintptr_t)s % align != 0) {
                bad++;
                continue;
            }
            for (size_t j = 0; j < size; j++)
                bad += s[j] != 0;
            memset(s, (unsigned char)(i + 1), size);
        }
        for (int i = 0; i < N; i++) {
            size_t n = key_of(key, sizeof key, i);
            unsigned char *s = get(ks, key, n, size);
            for (size_t j = 0; s && j < size; j++)
                bad += s[j] != (unsigned char)(i + 1);
            bad += s == NULL;
        }
        CHECK_INT(bad, 0);
        CHECK_INT(sage__keystate_count(ks), N);
        sage__keystate_free(ks);
    }
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    if (!ks)
        return;
    CHECK(get(ks, "a", 1, SIZE_MAX / 2) == NULL);
    CHECK(get(ks, "a", 1, SIZE_MAX / 2) == NULL);
    CHECK_INT(sage__keystate_count(ks), 0);
    sage__keystate_free(ks);
}

static void test_free_null(void)
{
    sage__keystate_free(NULL);
    sage__keystate *ks = sage__keystate_new();
    CHECK(ks != NULL);
    sage__keystate_free(ks); /* empty table */
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_million);
    RUN(test_size_mismatch);
    RUN(test_empty_and_long_keys);
    RUN(test_colliding_hashes);
    RUN(test_state_blocks);
    RUN(test_block_sizes);
    RUN(test_free_null);
    return CHECK_DONE();
}
