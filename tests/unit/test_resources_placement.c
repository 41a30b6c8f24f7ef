/* tests/unit/test_resources_placement.c - node discovery and config, byte formatting, and atomic placement. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "resources/placement.h"

#define GB UINT64_C(1000000000)
#define GIB (UINT64_C(1) << 30)

/* A simulated node built by hand: logical CPUs map 1:1 onto real CPUs 0..n-1. */
static sage__node mknode(const char *name, int ncpus, int ngpus, uint64_t memory)
{
    sage__node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "%s", name);
    n.ncpus = ncpus;
    n.nreal = ncpus > 0 ? ncpus : 1;
    for (int i = 0; i < n.nreal; i++)
        n.real_cpus[i] = i;
    n.simulated = 1;
    n.ngpus = ngpus;
    for (int i = 0; i < ngpus; i++)
        n.gpu_ids[i] = i;
    n.memory = memory;
    return n;
}

static sage__place_req mkreq(const char *name, int parallelism, double cpus, double gpus, uint64_t memory)
{
    sage__place_req q;
    memset(&q, 0, sizeof q);
    q.name = name;
    q.parallelism = parallelism;
    q.res.num_cpus = cpus;
    q.res.num_gpus = gpus;
    q.res.memory = memory;
    return q;
}

static void add_custom(sage__place_req *q, const char *name, double amount)
{
    snprintf(q->res.custom[q->res.ncustom].name, sizeof q->res.custom[0].name, "%s", name);
    q->res.custom[q->res.ncustom].amount = amount;
    q->res.ncustom++;
}

/* Configure a discovered node from JSON text; returns the rc. */
static int configure(sage__node *n, const char *json, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *obj = json_loads(json, 0, &jerr);
    if (!obj) {
        fprintf(stderr, "  bad test JSON: %s\n", jerr.text);
        return -999;
    }
    int rc = sage__node_configure(n, obj, err, err_len);
    json_decref(obj);
    return rc;
}

static int ids_are(const int *ids, int n, const int *want, int nwant)
{
    if (n != nwant)
        return 0;
    for (int i = 0; i < n; i++)
        if (ids[i] != want[i])
            return 0;
    return 1;
}
#define IDS(a, n, ...) ids_are((a), (n), (const int[]){__VA_ARGS__}, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)))

/* ----------------------------------------------------------------- tests */

static void test_seed_example(void)
{
    char err[1024] = "";
    sage__node node;
    CHECK_INT(sage__node_discover(&node, err, sizeof err), 0);
    CHECK_INT(configure(&node, "{\"name\": \"n1\", \"cpus\": 20, \"gpus\": 2, \"memory\": \"64GB\"}", err, sizeof err),
              0);
    CHECK_STR(node.name, "n1");
    CHECK_INT(node.ncpus, 20);
    CHECK_INT(node.ngpus, 2);
    CHECK(node.memory == 64 * GB);
    CHECK_INT(node.simulated, 1);

    sage__place_req reqs[3] = {mkreq("heavy", 4, 4, 0, 8 * GB), mkreq("gpu", 2, 2, 1, 0), mkreq("sink", 1, 0, 0, 0)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, reqs, 3, &a, err, sizeof err), 0);
    CHECK(a != NULL);
    if (!a)
        return;
    for (int i = 0; i < 4; i++) {
        sage__assign *x = &a[0][i];
        CHECK_INT(x->node, 0);
        CHECK_INT(x->ncpus, 4);
        CHECK(IDS(x->cpus, x->ncpus, 4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3));
        CHECK_INT(x->exclusive, 1);
        CHECK_INT(x->pin, 1);
        CHECK_INT(x->ngpus, 0);
        CHECK(x->memory == 8 * GB);
        for (int k = 4 * i; k < 4 * i + 4; k++)
            CHECK(CPU_ISSET(node.real_cpus[k % node.nreal], &x->affinity));
        CHECK(x->pub.cpus == x->cpus);
        CHECK_INT(x->pub.ncpus, 4);
        CHECK_INT(x->pub.exclusive, 1);
        CHECK(x->pub.memory == 8 * GB);
        CHECK_STR(x->pub.node, "n1");
    }
    CHECK(IDS(a[1][0].cpus, a[1][0].ncpus, 16, 17));
    CHECK(IDS(a[1][0].gpus, a[1][0].ngpus, 0));
    CHECK(IDS(a[1][1].cpus, a[1][1].ncpus, 18, 19));
    CHECK(IDS(a[1][1].gpus, a[1][1].ngpus, 1));
    CHECK(a[1][1].gpu_fraction == 1.0);
    CHECK(a[1][1].pub.gpus == a[1][1].gpus);
    CHECK_INT(a[1][1].pub.ngpus, 1);
    CHECK(a[1][1].pub.gpu_fraction == 1.0);
    /* sink: every core is reserved, so it runs unpinned */
    CHECK_INT(a[2][0].pin, 0);
    CHECK_INT(a[2][0].ncpus, 0);
    CHECK(a[2][0].cpus == NULL);
    CHECK_INT(a[2][0].exclusive, 0);
    CHECK_INT(a[2][0].pub.ncpus, 0);
    CHECK_STR(a[2][0].pub.node, "n1");
    CHECK_INT(CPU_COUNT(&a[2][0].affinity), 0);
    sage__assign_free(a, reqs, 3);
}

static void test_exclusive_no_overlap(void)
{
    char err[1024] = "";
    sage__node node = mknode("box", 16, 0, 16 * GB);
    sage__place_req reqs[3] = {mkreq("a", 3, 2, 0, 0), mkreq("b", 2, 3, 0, 0), mkreq("c", 1, 1, 0, 0)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, reqs, 3, &a, err, sizeof err), 0);
    if (!a)
        return;
    int seen[16] = {0};
    int total = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < reqs[i].parallelism; j++) {
            sage__assign *x = &a[i][j];
            CHECK_INT(x->exclusive, 1);
            CHECK_INT(x->ncpus, (int)reqs[i].res.num_cpus);
            CHECK_INT(CPU_COUNT(&x->affinity), x->ncpus);
            for (int k = 0; k < x->ncpus; k++) {
                CHECK(x->cpus[k] >= 0 && x->cpus[k] < 16);
                if (x->cpus[k] >= 0 && x->cpus[k] < 16) {
                    CHECK_INT(seen[x->cpus[k]], 0);
                    seen[x->cpus[k]]++;
                }
                total++;
            }
        }
    CHECK_INT(total, 3 * 2 + 2 * 3 + 1);
    CHECK(IDS(a[0][0].cpus, 2, 0, 1));
    CHECK(IDS(a[1][1].cpus, 3, 9, 10, 11));
    CHECK(IDS(a[2][0].cpus, 1, 12));
    sage__assign_free(a, reqs, 3);
}

static void test_fractional_gpus(void)
{
    char err[1024] = "";
    sage__node node = mknode("g", 8, 2, 16 * GB);
    node.gpu_ids[0] = 4; /* device ids come from the node (CUDA_VISIBLE_DEVICES order) */
    node.gpu_ids[1] = 7;
    sage__place_req half = mkreq("half", 3, 0, 0.5, 0);
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, &half, 1, &a, err, sizeof err), 0);
    if (a) {
        CHECK(IDS(a[0][0].gpus, a[0][0].ngpus, 4));
        CHECK(IDS(a[0][1].gpus, a[0][1].ngpus, 4));
        CHECK(IDS(a[0][2].gpus, a[0][2].ngpus, 7));
        CHECK(a[0][2].gpu_fraction == 0.5);
        CHECK(a[0][2].pub.gpu_fraction == 0.5);
        sage__assign_free(a, &half, 1);
    }

    node = mknode("g", 8, 2, 16 * GB);
    sage__place_req third = mkreq("third", 4, 0, 0.3, 0);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &third, 1, &a, err, sizeof err), 0);
    if (a) {
        for (int i = 0; i < 3; i++)
            CHECK(IDS(a[0][i].gpus, a[0][i].ngpus, 0));
        CHECK(IDS(a[0][3].gpus, a[0][3].ngpus, 1));
        sage__assign_free(a, &third, 1);
    }

    /* a whole GPU needs one nobody touched */
    sage__place_req mix[2] = {mkreq("frac", 1, 0, 0.1, 0), mkreq("whole", 1, 0, 1, 0)};
    a = NULL;
    CHECK_INT(sage__place(&node, 1, mix, 2, &a, err, sizeof err), 0);
    if (a) {
        CHECK(IDS(a[0][0].gpus, a[0][0].ngpus, 0));
        CHECK(IDS(a[1][0].gpus, a[1][0].ngpus, 1));
        sage__assign_free(a, mix, 2);
    }
    sage__place_req mix2[2] = {mkreq("frac", 2, 0, 0.1, 0), mkreq("two", 1, 0, 2, 0)};
    a = NULL;
    CHECK_INT(sage__place(&node, 1, mix2, 2, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"two\" (parallelism 1): one instance asks num_gpus=2; the largest node offers "
                   "num_gpus=2; already placed: operator \"frac\" holds num_gpus=0.2");
}

/* First fit in declaration order misses a fit that exists; the search finds it (issue: 0.4, 0.4, 0.6, 0.6). */
static void test_search_finds_fit(void)
{
    char err[1024] = "";
    sage__node node = mknode("g", 8, 2, 16 * GB);
    sage__place_req reqs[4] = {mkreq("a", 1, 0, 0.4, 0), mkreq("b", 1, 0, 0.4, 0), mkreq("c", 1, 0, 0.6, 0),
                               mkreq("d", 1, 0, 0.6, 0)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, reqs, 4, &a, err, sizeof err), 0);
    if (a) {
        /* every GPU holds one 0.4 and one 0.6 */
        double load[2] = {0, 0};
        for (int i = 0; i < 4; i++) {
            CHECK_INT(a[i][0].ngpus, 1);
            load[a[i][0].gpus[0]] += a[i][0].gpu_fraction;
        }
        CHECK(load[0] > 0.999 && load[0] < 1.001 && load[1] > 0.999 && load[1] < 1.001);
        /* deterministic: the same job gets the same placement */
        sage__assign **b = NULL;
        CHECK_INT(sage__place(&node, 1, reqs, 4, &b, err, sizeof err), 0);
        for (int i = 0; b && i < 4; i++)
            CHECK_INT(b[i][0].gpus[0], a[i][0].gpus[0]);
        sage__assign_free(b, reqs, 4);
        sage__assign_free(a, reqs, 4);
    }
    /* the same with CPUs: 0.4, 0.4, 0.6, 0.6 of two cores */
    node = mknode("c", 2, 0, 16 * GB);
    sage__place_req cpus[4] = {mkreq("a", 1, 0.4, 0, 0), mkreq("b", 1, 0.4, 0, 0), mkreq("c", 1, 0.6, 0, 0),
                               mkreq("d", 1, 0.6, 0, 0)};
    a = NULL;
    CHECK_INT(sage__place(&node, 1, cpus, 4, &a, err, sizeof err), 0);
    if (a) {
        double load[2] = {0, 0};
        for (int i = 0; i < 4; i++) {
            CHECK_INT(a[i][0].ncpus, 1);
            load[a[i][0].cpus[0]] += a[i][0].cpu_share;
        }
        CHECK(load[0] > 0.999 && load[0] < 1.001 && load[1] > 0.999 && load[1] < 1.001);
        sage__assign_free(a, cpus, 4);
    }
    /* across nodes: two nodes of 3 CPUs, requests 1, 1, 2, 2 (first fit puts both 1s on the first node, and
     * then the second 2 finds one CPU free on each) */
    sage__node two[2] = {mknode("n0", 3, 0, 16 * GB), mknode("n1", 3, 0, 16 * GB)};
    sage__place_req mixed[4] = {mkreq("s1", 1, 1, 0, 0), mkreq("s2", 1, 1, 0, 0), mkreq("b1", 1, 2, 0, 0),
                                mkreq("b2", 1, 2, 0, 0)};
    a = NULL;
    CHECK_INT(sage__place(two, 2, mixed, 4, &a, err, sizeof err), 0);
    if (a) {
        CHECK(a[2][0].node != a[3][0].node); /* the two 2s on different nodes, a 1 beside each */
        CHECK(a[0][0].node != a[1][0].node);
    }
    sage__assign_free(a, mixed, 4);
    /* and a job that truly does not fit is still refused, with every operator that first fit left out */
    sage__place_req over[3] = {mkreq("a", 1, 0, 0.6, 0), mkreq("b", 1, 0, 0.6, 0), mkreq("c", 1, 0, 0.6, 0)};
    node = mknode("g", 8, 2, 16 * GB);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, over, 3, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_CONTAINS(err, "operator \"c\" (parallelism 1): one instance asks num_gpus=0.6; the largest node offers "
                        "num_gpus=2; already placed: operator \"a\" holds num_gpus=0.6, \"b\" num_gpus=0.6");
}

/* A request above what any node could have: SAGE_EINFEASIBLE naming the key, the value and the limit. */
static void test_impossible_request(void)
{
    char err[1024] = "";
    sage__node node = mknode("n", 20, 0, 16 * GB);
    sage__place_req huge = mkreq("huge", 1, 1e9, 0, 0);
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, &huge, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK_STR(err, "cannot place the job: operator \"huge\" asks num_cpus=1e+09 per instance, more than any node "
                   "can have (at most 1024); the largest node offers num_cpus=20");
    CHECK(a == NULL);
}

static void test_fractional_cpus_and_unreserved(void)
{
    char err[1024] = "";
    sage__node node = mknode("f", 4, 0, 16 * GB);
    sage__place_req reqs[4] = {mkreq("a", 1, 1.5, 0, 0), mkreq("b", 2, 0.25, 0, 0), mkreq("c", 1, 0.5, 0, 0),
                               mkreq("d", 2, 0, 0, 0)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, reqs, 4, &a, err, sizeof err), 0);
    if (!a)
        return;
    /* a: one exclusive CPU (lowest) and half of a shared core (highest) */
    CHECK(IDS(a[0][0].cpus, a[0][0].ncpus, 0, 3));
    CHECK_INT(a[0][0].exclusive, 0);
    CHECK(a[0][0].cpu_share == 0.5);
    CHECK_INT(a[0][0].pin, 1);
    /* b: both quarters share core 3 with a */
    CHECK(IDS(a[1][0].cpus, a[1][0].ncpus, 3));
    CHECK(IDS(a[1][1].cpus, a[1][1].ncpus, 3));
    CHECK_INT(a[1][1].exclusive, 0);
    CHECK(a[1][1].cpu_share == 0.25);
    CHECK(CPU_ISSET(3, &a[1][1].affinity));
    CHECK_INT(CPU_COUNT(&a[1][1].affinity), 1);
    /* c: core 3 is full, a new shared core opens at the highest free id */
    CHECK(IDS(a[2][0].cpus, a[2][0].ncpus, 2));
    /* d: no request, so every core nobody holds exclusively (shared ones too) */
    for (int j = 0; j < 2; j++) {
        CHECK(IDS(a[3][j].cpus, a[3][j].ncpus, 1, 2, 3));
        CHECK_INT(a[3][j].exclusive, 0);
        CHECK_INT(a[3][j].pin, 1);
        CHECK_INT(CPU_COUNT(&a[3][j].affinity), 3);
        CHECK_INT(a[3][j].pub.ncpus, 3);
    }
    sage__assign_free(a, reqs, 4);

    /* nothing reserved at all: unreserved instances get every core */
    sage__place_req free_only = mkreq("free", 1, 0, 0, 0);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &free_only, 1, &a, err, sizeof err), 0);
    if (a) {
        CHECK(IDS(a[0][0].cpus, a[0][0].ncpus, 0, 1, 2, 3));
        sage__assign_free(a, &free_only, 1);
    }

    /* a fraction needs a core beyond the exclusive ones */
    sage__place_req over = mkreq("over", 1, 3.5, 0, 0);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &over, 1, &a, err, sizeof err), 0);
    if (a) {
        CHECK(IDS(a[0][0].cpus, a[0][0].ncpus, 0, 1, 2, 3));
        sage__assign_free(a, &over, 1);
    }
    sage__place_req over2 = mkreq("over", 1, 4.5, 0, 0);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &over2, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"over\" (parallelism 1): one instance asks num_cpus=4.5; the largest node offers "
                   "num_cpus=4");
}

static void test_affinity_wraps_real_cpus(void)
{
    char err[1024] = "";
    sage__node node = mknode("wrap", 6, 0, GB);
    node.nreal = 2;
    node.real_cpus[0] = 3;
    node.real_cpus[1] = 5;
    sage__place_req q = mkreq("w", 2, 3, 0, 0);
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, &q, 1, &a, err, sizeof err), 0);
    if (!a)
        return;
    CHECK(IDS(a[0][1].cpus, 3, 3, 4, 5)); /* real 5, 3, 5 */
    CHECK_INT(CPU_COUNT(&a[0][1].affinity), 2);
    CHECK(CPU_ISSET(3, &a[0][1].affinity));
    CHECK(CPU_ISSET(5, &a[0][1].affinity));
    sage__assign_free(a, &q, 1);
}

static void test_custom_resources(void)
{
    char err[1024] = "";
    sage__node node;
    CHECK_INT(sage__node_discover(&node, err, sizeof err), 0);
    CHECK_INT(configure(&node, "{\"name\": \"c\", \"cpus\": 4, \"resources\": {\"ssd\": 2, \"fpga\": 0.5}}", err,
                        sizeof err),
              0);
    CHECK_INT((int)node.ncustom, 2);

    sage__place_req q = mkreq("writer", 2, 0, 0, 0);
    add_custom(&q, "ssd", 1);
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, &q, 1, &a, err, sizeof err), 0);
    if (a) {
        CHECK_INT((int)a[0][1].ncustom, 1);
        CHECK_STR(a[0][1].custom[0].name, "ssd");
        CHECK(a[0][1].custom[0].amount == 1);
        CHECK_INT((int)a[0][1].pub.ncustom, 1);
        CHECK(a[0][1].pub.custom == a[0][1].custom);
        sage__assign_free(a, &q, 1);
    }

    q.parallelism = 3;
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &q, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"writer\" (parallelism 3): one instance asks ssd=1; all 3 ask ssd=3; the largest "
                   "node offers ssd=2");

    /* fractions of a custom resource add up exactly */
    sage__place_req f = mkreq("f", 5, 0, 0, 0);
    add_custom(&f, "fpga", 0.1);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &f, 1, &a, err, sizeof err), 0);
    sage__assign_free(a, &f, 1);
    f.parallelism = 6;
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &f, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);

    /* a node without the name has none of it */
    sage__place_req t = mkreq("tpu_op", 1, 1, 0, 0);
    add_custom(&t, "tpu", 1);
    a = NULL;
    CHECK_INT(sage__place(&node, 1, &t, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"tpu_op\" (parallelism 1): one instance asks num_cpus=1 tpu=1; the largest node "
                   "offers num_cpus=4 tpu=0");
}

static void test_infeasible_messages(void)
{
    char err[2048] = "";
    sage__assign **a = NULL;

    /* too many CPUs (the example from docs) */
    sage__node small = mknode("small", 2, 0, 24 * GIB);
    sage__place_req heavy = mkreq("heavy", 4, 4, 0, 8 * GB);
    CHECK_INT(sage__place(&small, 1, &heavy, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"heavy\" (parallelism 4): one instance asks num_cpus=4 memory=8GB; all 4 ask "
                   "num_cpus=16 memory=32GB; the largest node offers num_cpus=2 memory=24GiB");

    /* 3 GPUs on a 2-GPU node */
    sage__node gnode = mknode("g", 8, 2, 64 * GB);
    sage__place_req train = mkreq("train", 1, 0, 3, 0);
    CHECK_INT(sage__place(&gnode, 1, &train, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"train\" (parallelism 1): one instance asks num_gpus=3; the largest node offers "
                   "num_gpus=2");

    /* memory: the first instance fits, the second does not; object store memory counts too */
    sage__place_req cache = mkreq("cache", 2, 0, 0, 12 * GIB);
    cache.res.object_store_memory = 1536 * (UINT64_C(1) << 20);
    CHECK_INT(sage__place(&small, 1, &cache, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"cache\" (parallelism 2): one instance asks memory=12GiB object_store_memory=1.5GiB; "
                   "all 2 ask memory=24GiB object_store_memory=3GiB; the largest node offers memory=24GiB");
    cache.res.object_store_memory = 0;
    CHECK_INT(sage__place(&small, 1, &cache, 1, &a, err, sizeof err), 0); /* exactly full */
    sage__assign_free(a, &cache, 1);
    a = NULL;

    /* two operators fail at once; a failed one is rolled back so a later one still fits */
    sage__node box = mknode("box", 8, 1, 64 * GB);
    sage__place_req reqs[4] = {mkreq("ok", 2, 2, 0, 0), mkreq("big", 2, 4, 0, 0), mkreq("gpu", 2, 1, 1, 0),
                               mkreq("tail", 1, 3, 0, 0)};
    CHECK_INT(sage__place(&box, 1, reqs, 4, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_STR(err, "cannot place the job: 2 operators do not fit\n"
                   "  operator \"big\" (parallelism 2): one instance asks num_cpus=4; all 2 ask num_cpus=8; the "
                   "largest node offers num_cpus=8; already placed: operator \"ok\" holds num_cpus=4, \"tail\" "
                   "num_cpus=3\n"
                   "  operator \"gpu\" (parallelism 2): one instance asks num_cpus=1 num_gpus=1; all 2 ask "
                   "num_cpus=2 num_gpus=2; the largest node offers num_cpus=8 num_gpus=1; already placed: operator "
                   "\"ok\" holds num_cpus=4, \"tail\" num_cpus=3");

    /* fractional numbers print with %g */
    sage__place_req frac = mkreq("frac", 3, 2.5, 0.5, 0);
    CHECK_INT(sage__place(&small, 1, &frac, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"frac\" (parallelism 3): one instance asks num_cpus=2.5 num_gpus=0.5; all 3 ask "
                   "num_cpus=7.5 num_gpus=1.5; the largest node offers num_cpus=2 num_gpus=0");

    /* a small buffer truncates but stays terminated */
    char tiny[16];
    CHECK_INT(sage__place(&small, 1, &heavy, 1, &a, tiny, sizeof tiny), SAGE_EINFEASIBLE);
    CHECK_STR(tiny, "cannot place th");
    CHECK(a == NULL);
}

static void test_atomic_on_failure(void)
{
    char err[1024] = "";
    sage__node node = mknode("n", 4, 0, GB);
    sage__place_req reqs[2] = {mkreq("fits", 2, 1, 0, 0), mkreq("nope", 1, 5, 0, 0)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(&node, 1, reqs, 2, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_CONTAINS(err, "operator \"nope\"");
    CHECK(strstr(err, "operator \"fits\" (") == NULL); /* it fits: not among those that do not */
    CHECK_CONTAINS(err, "already placed: operator \"fits\" holds num_cpus=2"); /* but it holds what is missing */

    /* bad input is refused before anything is placed */
    sage__place_req zero = mkreq("zero", 0, 1, 0, 0);
    CHECK_INT(sage__place(&node, 1, &zero, 1, &a, err, sizeof err), SAGE_EINVAL);
    CHECK(a == NULL);
    CHECK_INT(sage__place(NULL, 0, reqs, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    CHECK_CONTAINS(err, "no nodes");

    /* no requests is a valid (empty) placement */
    CHECK_INT(sage__place(&node, 1, NULL, 0, &a, err, sizeof err), 0);
    CHECK(a != NULL);
    sage__assign_free(a, NULL, 0);
    sage__assign_free(NULL, reqs, 2);
}

static void test_multiple_nodes_first_fit(void)
{
    char err[1024] = "";
    sage__node nodes[2] = {mknode("a", 4, 0, 8 * GB), mknode("b", 8, 1, 32 * GB)};
    sage__place_req reqs[3] = {mkreq("x", 3, 3, 0, 0), mkreq("y", 1, 1, 0, 0), mkreq("g", 1, 0, 1, 10 * GB)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(nodes, 2, reqs, 3, &a, err, sizeof err), 0);
    if (!a)
        return;
    CHECK_INT(a[0][0].node, 0);
    CHECK(IDS(a[0][0].cpus, 3, 0, 1, 2));
    CHECK_STR(a[0][0].pub.node, "a");
    CHECK_INT(a[0][1].node, 1);
    CHECK(IDS(a[0][1].cpus, 3, 0, 1, 2));
    CHECK_INT(a[0][2].node, 1);
    CHECK(IDS(a[0][2].cpus, 3, 3, 4, 5));
    CHECK_STR(a[0][2].pub.node, "b");
    CHECK_INT(a[1][0].node, 0); /* back-fills the first node */
    CHECK(IDS(a[1][0].cpus, 1, 3));
    CHECK_INT(a[2][0].node, 1); /* needs the GPU and more memory than "a" has */
    CHECK(IDS(a[2][0].gpus, a[2][0].ngpus, 0));
    CHECK(IDS(a[2][0].cpus, a[2][0].ncpus, 6, 7)); /* unreserved cores of its node */
    sage__assign_free(a, reqs, 3);

    /* the report shows the largest single node, not the sum */
    sage__place_req wide = mkreq("wide", 1, 9, 0, 0);
    a = NULL;
    CHECK_INT(sage__place(nodes, 2, &wide, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"wide\" (parallelism 1): one instance asks num_cpus=9; the largest node offers "
                   "num_cpus=8");
    /* fits in the sum of both nodes but in no single one */
    sage__place_req split = mkreq("split", 2, 6, 0, 0);
    CHECK_INT(sage__place(nodes, 2, &split, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK_STR(err, "cannot place the job: 1 operator does not fit\n"
                   "  operator \"split\" (parallelism 2): one instance asks num_cpus=6; all 2 ask num_cpus=12; the "
                   "largest node offers num_cpus=8");
}

static void test_node_configure(void)
{
    char err[512] = "";
    sage__node n;
    CHECK_INT(sage__node_discover(&n, err, sizeof err), 0);
    sage__node before = n;

    CHECK_INT(configure(&n, "{\"bogus\": 1}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "unknown key \"bogus\"");
    CHECK_INT(configure(&n, "{\"cpus\": -3}", err, sizeof err), SAGE_ECONFIG);
    CHECK_STR(err, "node config: key \"cpus\": expected a whole number from 1 to 1024, got -3");
    CHECK_INT(configure(&n, "{\"cpus\": 2.5}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"cpus\"");
    CHECK_INT(configure(&n, "{\"cpus\": 1025}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "got 1025");
    CHECK_INT(configure(&n, "{\"gpus\": 65}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"gpus\"");
    CHECK_INT(configure(&n, "{\"memory\": \"lots\"}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"memory\"");
    CHECK_INT(configure(&n, "{\"memory\": -5}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"memory\"");
    CHECK_INT(configure(&n, "{\"memory\": true}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "got true");
    CHECK_INT(configure(&n, "{\"name\": 7}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"name\"");
    CHECK_INT(configure(&n, "{\"resources\": {\"ssd\": -1}}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"resources\"");
    CHECK_CONTAINS(err, "\"ssd\"");
    CHECK_INT(configure(&n, "{\"resources\": {\"ssd\": \"two\"}}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"resources\"");
    CHECK_INT(configure(&n, "{\"resources\": [1]}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "key \"resources\"");
    CHECK_INT(configure(&n, "{\"resources\": {\"bad name\": 1}}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "bad name");
    CHECK_INT(configure(&n, "{\"resources\": {\"gpu\": 1}}", err, sizeof err), SAGE_ECONFIG);
    CHECK_CONTAINS(err, "reserved");
    CHECK_INT(configure(&n, "[1]", err, sizeof err), SAGE_ECONFIG);
    /* a bad key after good ones changes nothing */
    CHECK_INT(configure(&n, "{\"cpus\": 3, \"memory\": \"nope\"}", err, sizeof err), SAGE_ECONFIG);
    CHECK_STR(n.name, before.name);
    CHECK_INT(n.ncpus, before.ncpus);
    CHECK_INT(n.ngpus, before.ngpus);
    CHECK(n.memory == before.memory);
    CHECK_INT(n.simulated, before.simulated);
    CHECK_INT((int)n.ncustom, (int)before.ncustom);

    /* good config */
    CHECK_INT(configure(&n,
                        "{\"name\": \"sim\", \"cpus\": 64, \"gpus\": 3, \"memory\": 1073741824, "
                        "\"resources\": {\"ssd\": 2}}",
                        err, sizeof err),
              0);
    CHECK_STR(n.name, "sim");
    CHECK_INT(n.ncpus, 64);
    CHECK_INT(n.nreal, before.nreal); /* pinning still uses the real CPUs */
    CHECK_INT(n.ngpus, 3);
    CHECK(IDS(n.gpu_ids, n.ngpus, 0, 1, 2));
    CHECK(n.memory == GIB);
    CHECK_INT(n.simulated, 1);
    CHECK_INT((int)n.ncustom, 1);
    CHECK_STR(n.custom[0].name, "ssd");
    CHECK(n.custom[0].amount == 2);
    CHECK_INT(configure(&n, "{\"memory\": \"1.5GiB\"}", err, sizeof err), 0);
    CHECK(n.memory == 1610612736u);

    /* a name alone is not a simulation */
    sage__node m;
    CHECK_INT(sage__node_discover(&m, err, sizeof err), 0);
    CHECK_INT(configure(&m, "{\"name\": \"worker-1\"}", err, sizeof err), 0);
    CHECK_INT(m.simulated, 0);
    CHECK_STR(m.name, "worker-1");
}

static void test_node_discover(void)
{
    char err[512] = "";
    const char *saved = getenv("CUDA_VISIBLE_DEVICES");
    char *saved_copy = saved ? strdup(saved) : NULL;
    sage__node n;

    unsetenv("CUDA_VISIBLE_DEVICES");
    CHECK_INT(sage__node_discover(&n, err, sizeof err), 0);
    CHECK(n.ncpus >= 1);
    CHECK(n.nreal >= 1);
    CHECK_INT(n.ncpus, n.nreal);
    for (int i = 1; i < n.nreal; i++)
        CHECK(n.real_cpus[i] > n.real_cpus[i - 1]);
    CHECK(n.memory > 0);
    CHECK(n.name[0] != '\0');
    CHECK_INT(n.simulated, 0);
    CHECK(n.ngpus >= 0);
    CHECK_INT((int)n.ncustom, 0);

    setenv("CUDA_VISIBLE_DEVICES", "0,2", 1);
    CHECK_INT(sage__node_discover(&n, err, sizeof err), 0);
    CHECK_INT(n.ngpus, 2);
    CHECK(IDS(n.gpu_ids, n.ngpus, 0, 2));
    setenv("CUDA_VISIBLE_DEVICES", "", 1);
    CHECK_INT(sage__node_discover(&n, err, sizeof err), 0);
    CHECK_INT(n.ngpus, 0);
    setenv("CUDA_VISIBLE_DEVICES", "-1", 1);
    CHECK_INT(sage__node_discover(&n, err, sizeof err), 0);
    CHECK_INT(n.ngpus, 0);
    setenv("CUDA_VISIBLE_DEVICES", "3,1,-1,0", 1); /* like CUDA: stops at the first invalid entry */
    CHECK_INT(sage__node_discover(&n, err, sizeof err), 0);
    CHECK(IDS(n.gpu_ids, n.ngpus, 3, 1));

    if (saved_copy)
        setenv("CUDA_VISIBLE_DEVICES", saved_copy, 1);
    else
        unsetenv("CUDA_VISIBLE_DEVICES");
    free(saved_copy);
}

static void fmt_is(uint64_t bytes, const char *want)
{
    char buf[32];
    sage__format_bytes(bytes, buf, sizeof buf);
    CHECK_STR(buf, want);
}

static void test_format_bytes(void)
{
    fmt_is(0, "0B");
    fmt_is(123, "123B");
    fmt_is(1000, "1KB");
    fmt_is(1024, "1KiB");
    fmt_is(1536, "1536B");
    fmt_is(8 * GB, "8GB");
    fmt_is(32 * GB, "32GB");
    fmt_is(1610612736, "1.5GiB");
    fmt_is(24 * GIB, "24GiB");
    fmt_is(GIB / 4 * 3, "768MiB");
    fmt_is(5 * GIB / 4, "1.25GiB");
    fmt_is(7 * GIB / 4, "1.75GiB");
    fmt_is(1000 * GIB, "1000GiB");
    fmt_is(UINT64_C(2000000000000), "2TB");
    fmt_is(UINT64_C(1) << 40, "1TiB");
    fmt_is(1500000, "1500KB");
    fmt_is(UINT64_MAX, "18446744073709551615B");
    char small[4];
    sage__format_bytes(8 * GB, small, sizeof small);
    CHECK_STR(small, "8GB");
    sage__format_bytes(1610612736, small, sizeof small);
    CHECK_STR(small, "1.5");
}

/* Running jobs hold their resources: a second job gets what is left, a third waits. */
/* A node marked unavailable (one a restarted job lost) gets no task, not even one that asks for nothing; with
 * every node unavailable nothing fits. */
static void test_unavailable_node(void)
{
    char err[1024] = "";
    sage__node nodes[2] = {mknode("lost", 8, 0, 8 * GB), mknode("b", 8, 0, 8 * GB)};
    nodes[0].unavailable = 1;
    sage__place_req reqs[2] = {mkreq("x", 2, 2, 0, 0), mkreq("free", 1, 0, 0, 0)};
    sage__assign **a = NULL;
    CHECK_INT(sage__place(nodes, 2, reqs, 2, &a, err, sizeof err), 0);
    if (a) {
        CHECK_INT(a[0][0].node, 1);
        CHECK_INT(a[0][1].node, 1);
        CHECK_INT(a[1][0].node, 1);
        sage__assign_free(a, reqs, 2);
    }
    sage__place_req big = mkreq("big", 3, 4, 0, 0); /* 12 CPUs: fits both nodes, not "b" alone */
    a = NULL;
    CHECK_INT(sage__place(nodes, 2, &big, 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(a == NULL);
    nodes[1].unavailable = 1;
    CHECK_INT(sage__place(nodes, 2, &reqs[1], 1, &a, err, sizeof err), SAGE_EINFEASIBLE);
    nodes[0].unavailable = nodes[1].unavailable = 0;
    CHECK_INT(sage__place(nodes, 2, &big, 1, &a, err, sizeof err), 0);
    sage__assign_free(a, &big, 1);
}

static void test_held_by_running_jobs(void)
{
    sage__node n = mknode("n", 8, 2, 0);
    sage__place_req first = {.name = "a", .parallelism = 1, .res = {.num_cpus = 4, .num_gpus = 0.5}};
    sage__assign **held_a = NULL;
    char err[1024];
    CHECK_INT(sage__place(&n, 1, &first, 1, &held_a, err, sizeof err), 0);
    sage__held h = {&first, 1, held_a};
    sage__place_req second = {.name = "b", .parallelism = 2, .res = {.num_cpus = 2, .num_gpus = 0.5}};
    sage__assign **b = NULL;
    CHECK_INT(sage__place_held(&n, 1, &h, 1, &second, 1, &b, err, sizeof err), 0);
    if (b) {
        CHECK_INT(b[0][0].cpus[0], 4);
        CHECK_INT(b[0][1].cpus[0], 6);
        CHECK_INT(b[0][0].gpus[0], 0); /* GPU 0 had 0.5 left */
        CHECK_INT(b[0][1].gpus[0], 1);
    }
    sage__held both[2] = {{&first, 1, held_a}, {&second, 1, b}};
    sage__place_req third = {.name = "c", .parallelism = 1, .res = {.num_cpus = 1}};
    sage__assign **c = NULL;
    CHECK_INT(sage__place_held(&n, 1, both, 2, &third, 1, &c, err, sizeof err), SAGE_EINFEASIBLE);
    CHECK(c == NULL);
    CHECK_INT(sage__place(&n, 1, &third, 1, &c, err, sizeof err), 0); /* fits an empty node: it must wait */
    sage__assign_free(c, &third, 1);
    sage__assign_free(b, &second, 1);
    sage__assign_free(held_a, &first, 1);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_held_by_running_jobs);
    RUN(test_unavailable_node);
    RUN(test_seed_example);
    RUN(test_exclusive_no_overlap);
    RUN(test_fractional_gpus);
    RUN(test_search_finds_fit);
    RUN(test_impossible_request);
    RUN(test_fractional_cpus_and_unreserved);
    RUN(test_affinity_wraps_real_cpus);
    RUN(test_custom_resources);
    RUN(test_infeasible_messages);
    RUN(test_atomic_on_failure);
    RUN(test_multiple_nodes_first_fit);
    RUN(test_node_configure);
    RUN(test_node_discover);
    RUN(test_format_bytes);
    return CHECK_DONE();
}
