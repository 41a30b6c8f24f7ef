/* tests/integration/test_pipelines.c - whole pipelines with exact expected outputs, one per operator and routing kind. */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "pipeline_util.h"
#include "util/hash.h" /* internal: to predict where key_by routes a key */

static int times2(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_emit_i64(o, 2 * sage_rec_i64(r, n));
}
static int mult3(sage_ctx *c, const void *r, size_t n, void *u) { return sage_rec_i64(r, n) % 3 == 0; }

static void map_filter_exact(void)
{
    for (int chain = 0; chain < 2; chain++) {
        uint64_t n = 1000;
        sage_env *env = sage_env_create("mf", NULL);
        sage_collector *c = sage_collector_create(0);
        sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
        s = sage_map(s, times2, NULL, &(sage_op_opts){.disable_chaining = chain});
        s = sage_filter(s, mult3, NULL, &(sage_op_opts){.disable_chaining = chain});
        sage_sink_collect(s, c, NULL);
        CHECK_INT(sage_env_execute(env), 0);
        size_t got;
        int64_t *v = collected_sorted(c, &got);
        CHECK_INT(got, 333);
        for (size_t i = 0; i < got; i++)
            CHECK_INT(v[i], 6 * (int64_t)(i + 1));
        CHECK_INT(sage_env_state(env), SAGE_JOB_FINISHED);
        free(v);
        sage_collector_destroy(c);
        sage_env_destroy(env);
    }
}

/* flat_map: value v emits v % 4 copies of v. */
static int copies(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t v = sage_rec_i64(r, n);
    for (int i = 0; i < v % 4; i++) {
        int rc = sage_emit_i64(o, v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void flat_map_counts(void)
{
    uint64_t n = 10000;
    sage_env *env = sage_env_create("fm", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.parallelism = 2});
    s = sage_flat_map(s, copies, NULL, &(sage_op_opts){.parallelism = 3});
    sage_sink_collect(s, c, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    size_t expect = 0;
    for (uint64_t i = 1; i <= n; i++)
        expect += i % 4;
    CHECK_INT(got, expect);
    int64_t sum = 0, esum = 0;
    for (size_t i = 0; i < got; i++)
        sum += v[i];
    for (uint64_t i = 1; i <= n; i++)
        esum += (int64_t)(i * (i % 4));
    CHECK_INT(sum, esum);
    free(v);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* key_by: every key reaches exactly one instance, the one its stable hash names. */
static int key_mod(const void *r, size_t n, void *kb, void *u)
{
    int64_t k = sage_rec_i64(r, n) % 97;
    memcpy(kb, &k, sizeof k);
    return sizeof k;
}

static int tag_instance(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    size_t kl;
    const void *key = sage_ctx_key(c, &kl);
    int64_t k;
    if (!key || kl != 8)
        return SAGE_EINVAL;
    memcpy(&k, key, 8);
    if (k != sage_rec_i64(r, n) % 97)
        return SAGE_EINVAL;
    int64_t packed = k * 1000 + sage_ctx_instance(c);
    return sage_emit_i64(o, packed);
}

static void key_routing(void)
{
    for (int run = 0; run < 2; run++) {
        uint64_t n = 20000;
        sage_env *env = sage_env_create("keys", NULL);
        sage_collector *c = sage_collector_create(0);
        sage_stream *s = sage_from_generator(env, gen_range, &n, &(sage_op_opts){.parallelism = 3});
        s = sage_map(sage_key_by(s, key_mod, NULL), tag_instance, NULL, &(sage_op_opts){.parallelism = 5});
        sage_sink_collect(s, c, NULL);
        CHECK_INT(sage_env_execute(env), 0);
        size_t got;
        int64_t *v = collected_sorted(c, &got);
        CHECK_INT(got, n);
        int bad = 0;
        for (size_t i = 0; i < got; i++) {
            int64_t k = v[i] / 1000, inst = v[i] % 1000;
            int expect = (int)sage__hash_bucket(sage__hash64(&k, 8), 5);
            if (inst != expect)
                bad++;
        }
        CHECK_INT(bad, 0);
        free(v);
        sage_collector_destroy(c);
        sage_env_destroy(env);
    }
}

/* Word count with per-key state, emitted from close. */
static int split_words(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    const char *s = r;
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (j > i) {
            char word[64];
            size_t wl = j - i < sizeof word - 1 ? j - i : sizeof word - 1;
            memcpy(word, s + i, wl);
            word[wl] = 0;
            int rc = sage_emit_str(o, word); /* the string helper */
            if (rc < 0)
                return rc;
        }
        i = j;
    }
    return 0;
}

static int word_key(const void *r, size_t n, void *kb, void *u)
{
    memcpy(kb, r, n);
    return (int)n;
}

static int count_word(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    int64_t *cnt = sage_ctx_state(c, sizeof *cnt);
    if (!cnt)
        return SAGE_ENOMEM;
    ++*cnt;
    return 0;
}

static int emit_count(const void *key, size_t kl, void *state, void *arg)
{
    char line[128];
    int n = snprintf(line, sizeof line, "%.*s=%" PRId64, (int)kl, (const char *)key, *(int64_t *)state);
    return sage_emit(arg, line, (size_t)n) < 0;
}

static int counts_close(sage_ctx *c, sage_out *o, void *u)
{
    return sage_ctx_state_foreach(c, emit_count, o) ? SAGE_ECANCELED : 0;
}

static void word_count_with(const char *config);
static void word_count(void) { word_count_with(NULL); }
/* Latency mode (consumers poll before they sleep, no linger): the same exact counts. */
static void word_count_latency_mode(void) { word_count_with("{\"flush_linger_us\": 0, \"idle_spin_us\": 200}"); }

static void word_count_with(const char *config)
{
    const char *lines[] = {"the cat sat", "on the mat", "the end", "", "cat cat"};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(lines[i]);
    sage_env *env = sage_env_create("wc", config);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_collection(env, (const void *const *)lines, lens, 5, NULL);
    s = sage_flat_map(s, split_words, NULL, &(sage_op_opts){.parallelism = 2});
    s = sage_flat_map(sage_key_by(s, word_key, NULL), count_word, NULL,
                      &(sage_op_opts){.name = "count", .parallelism = 4, .close = counts_close});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    size_t n;
    char **v = collected_strs(c, &n);
    CHECK_INT(n, 6);
    if (n == 6) {
        CHECK_STR(v[0], "cat=3");
        CHECK_STR(v[1], "end=1");
        CHECK_STR(v[2], "mat=1");
        CHECK_STR(v[3], "on=1");
        CHECK_STR(v[4], "sat=1");
        CHECK_STR(v[5], "the=3");
    }
    free_strs(v, n);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

static int part_last_digit(const void *r, size_t n, int np, void *u) { return (int)(sage_rec_i64(r, n) % 10) % np; }
static int tag_only(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_emit_i64(o, sage_rec_i64(r, n) * 100 + sage_ctx_instance(c));
}

static void custom_partition(void)
{
    uint64_t n = 1000;
    sage_env *env = sage_env_create("custom", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(sage_partition_custom(s, part_last_digit, NULL), tag_only, NULL, &(sage_op_opts){.parallelism = 4});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, n);
    int bad = 0;
    for (size_t i = 0; i < got; i++)
        bad += (v[i] % 100) != ((v[i] / 100) % 10) % 4;
    CHECK_INT(bad, 0);
    free(v);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

static void broadcast_and_rebalance(void)
{
    uint64_t n = 999;
    sage_env *env = sage_env_create("bc", NULL);
    sage_collector *cb = sage_collector_create(0), *cr = sage_collector_create(0);
    sage_stream *src = sage_from_generator(env, gen_range, &n, NULL);
    sage_stream *b = sage_map(sage_broadcast(src), tag_only, NULL, &(sage_op_opts){.name = "bcast", .parallelism = 3});
    sage_sink_collect(b, cb, NULL);
    sage_stream *r = sage_map(sage_rebalance(src), tag_only, NULL, &(sage_op_opts){.name = "rr", .parallelism = 3});
    sage_sink_collect(r, cr, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(cb), 3 * n);
    CHECK_INT(sage_collector_count(cr), n);
    for (int i = 0; i < 3; i++) {
        sage_metric m;
        CHECK_INT(sage_env_metric(env, "bcast", i, "records_in", &m), 0);
        CHECK_INT(m.value, n);
        CHECK_INT(sage_env_metric(env, "rr", i, "records_in", &m), 0);
        CHECK_INT(m.value, n / 3);
    }
    sage_collector_destroy(cb);
    sage_collector_destroy(cr);
    sage_env_destroy(env);
}

static int from_a(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_emit_i64(o, sage_rec_i64(r, n));
}
static int from_b(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    return sage_emit_i64(o, -sage_rec_i64(r, n));
}

static void connect_comap(void)
{
    uint64_t na = 100, nb = 50;
    sage_env *env = sage_env_create("comap", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *a = sage_from_generator(env, gen_range, &na, NULL);
    sage_stream *b = sage_from_generator(env, gen_range, &nb, &(sage_op_opts){.parallelism = 2});
    sage_map_fn fns[2] = {from_a, from_b};
    sage_stream *s = sage_comap(sage_connect(a, b), fns, 2, NULL, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    size_t got;
    int64_t *v = collected_sorted(c, &got);
    CHECK_INT(got, 150);
    if (got == 150) {
        CHECK_INT(v[0], -50);
        CHECK_INT(v[49], -1);
        CHECK_INT(v[50], 1);
        CHECK_INT(v[149], 100);
    }
    free(v);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

/* Join: left records "id:name", right records "id:amount"; output "name:amount". */
static int id_key(const void *r, size_t n, void *kb, void *u)
{
    const char *colon = memchr(r, ':', n);
    if (!colon)
        return SAGE_EINVAL;
    memcpy(kb, r, (size_t)(colon - (const char *)r));
    return (int)(colon - (const char *)r);
}

typedef struct join_state {
    char name[32];
    int have_name;
    int npending;
    char pending[8][16];
} join_state;

static int join_fn(sage_ctx *c, int side, const void *r, size_t n, sage_out *o, void *u)
{
    join_state *st = sage_ctx_state(c, sizeof *st);
    const char *colon = memchr(r, ':', n);
    size_t vl = n - (size_t)(colon + 1 - (const char *)r);
    char line[64];
    if (side == 0) {
        memcpy(st->name, colon + 1, vl);
        st->name[vl] = 0;
        st->have_name = 1;
        for (int i = 0; i < st->npending; i++) {
            int k = snprintf(line, sizeof line, "%s:%s", st->name, st->pending[i]);
            if (sage_emit(o, line, (size_t)k) < 0)
                return SAGE_ECANCELED;
        }
        st->npending = 0;
        return 0;
    }
    char amount[16];
    memcpy(amount, colon + 1, vl);
    amount[vl] = 0;
    if (!st->have_name) {
        memcpy(st->pending[st->npending++], amount, vl + 1);
        return 0;
    }
    int k = snprintf(line, sizeof line, "%s:%s", st->name, amount);
    return sage_emit(o, line, (size_t)k);
}

static void keyed_join(void)
{
    const char *left[] = {"1:ann", "2:bob", "3:cy"};
    const char *right[] = {"2:20", "1:10", "2:21", "3:30", "4:40"};
    size_t ll[3], rl[5];
    for (int i = 0; i < 3; i++)
        ll[i] = strlen(left[i]);
    for (int i = 0; i < 5; i++)
        rl[i] = strlen(right[i]);
    sage_env *env = sage_env_create("join", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *l = sage_from_collection(env, (const void *const *)left, ll, 3, NULL);
    sage_stream *r = sage_from_collection(env, (const void *const *)right, rl, 5, NULL);
    sage_stream *j = sage_join(l, id_key, r, id_key, join_fn, NULL, &(sage_op_opts){.parallelism = 3});
    sage_sink_collect(j, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    size_t n;
    char **v = collected_strs(c, &n);
    CHECK_INT(n, 4);
    if (n == 4) {
        CHECK_STR(v[0], "ann:10");
        CHECK_STR(v[1], "bob:20");
        CHECK_STR(v[2], "bob:21");
        CHECK_STR(v[3], "cy:30");
    }
    free_strs(v, n);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

static void file_roundtrip(void)
{
    char in[] = "/tmp/sage_test_in_XXXXXX";
    int fd = mkstemp(in);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 100; i++)
        fprintf(f, "line %d\r\n", i);
    fprintf(f, "last without newline");
    fclose(f);
    char out[64];
    snprintf(out, sizeof out, "%s.out", in);
    sage_env *env = sage_env_create("files", NULL);
    sage_stream *s = sage_from_file_lines(env, in, &(sage_op_opts){.parallelism = 3});
    sage_sink_file(s, out, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), 0);
    sage_env_destroy(env);
    f = fopen(out, "r");
    CHECK(f != NULL);
    char line[64];
    int seen[101] = {0}, nlines = 0;
    while (f && fgets(line, sizeof line, f)) {
        int k;
        nlines++;
        if (sscanf(line, "line %d\n", &k) == 1 && k >= 0 && k < 100 && strchr(line, '\r') == NULL)
            seen[k]++;
        else if (strcmp(line, "last without newline\n") == 0)
            seen[100]++;
    }
    if (f)
        fclose(f);
    CHECK_INT(nlines, 101);
    int ok = 1;
    for (int i = 0; i <= 100; i++)
        ok &= seen[i] == 1;
    CHECK(ok);
    unlink(in);
    unlink(out);
}

static void large_records(void)
{
    static char big[3][1 << 20];
    const void *recs[3] = {big[0], big[1], big[2]};
    size_t lens[3] = {sizeof big[0], 12345, 0};
    for (int i = 0; i < 3; i++)
        memset(big[i], 'a' + i, sizeof big[i]);
    sage_env *env = sage_env_create("large", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_collection(env, recs, lens, 3, NULL);
    sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.parallelism = 2});
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), 3);
    size_t total = 0;
    for (size_t i = 0; i < sage_collector_count(c); i++) {
        size_t len;
        const unsigned char *r = sage_collector_get(c, i, &len);
        total += len;
        if (len)
            CHECK(r[0] == r[len - 1]);
    }
    CHECK_INT(total, (1 << 20) + 12345);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

static int timed(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    sage_ctx_counter_add(c, "seen", 1);
    sage_ctx_observe(c, "value", (double)sage_rec_i64(r, n));
    return sage_emit(o, r, n);
}

static void metrics_readback(void)
{
    uint64_t n = 1000;
    sage_env *env = sage_env_create("metrics", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_from_generator(env, gen_range, &n, NULL);
    s = sage_map(s, timed, NULL, &(sage_op_opts){.name = "timed", .parallelism = 2});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    sage_metric m;
    CHECK_INT(sage_env_metric(env, "timed", -1, "seen", &m), 0);
    CHECK_INT(m.value, 1000);
    CHECK_INT(m.is_histogram, 0);
    CHECK_INT(sage_env_metric(env, "timed", -1, "value", &m), 0);
    CHECK_INT(m.is_histogram, 1);
    CHECK_INT(m.count, 1000);
    CHECK(m.min == 1 && m.max == 1000);
    CHECK(m.p50 > 490 && m.p50 < 510);
    CHECK(m.p99 > 980 && m.p99 < 1000.5);
    CHECK_INT(sage_env_metric(env, "timed", 0, "seen", &m), 0);
    CHECK_INT(m.value, 500);
    CHECK_INT(sage_env_metric(env, "timed", -1, "nope", &m), SAGE_ENOTFOUND);
    CHECK_INT(sage_env_metric(env, "nope", -1, "seen", &m), SAGE_ENOTFOUND);
    sage_collector_destroy(c);
    sage_env_destroy(env);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(map_filter_exact);
    RUN(flat_map_counts);
    RUN(key_routing);
    RUN(word_count);
    RUN(word_count_latency_mode);
    RUN(custom_partition);
    RUN(broadcast_and_rebalance);
    RUN(connect_comap);
    RUN(keyed_join);
    RUN(file_roundtrip);
    RUN(large_records);
    RUN(metrics_readback);
    return CHECK_DONE();
}
