/* tests/integration/test_reduce_union.c - sage_reduce (keyed accumulators, per record or at close) and sage_union. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pipeline_util.h"

static int key_self(const void *r, size_t n, void *kb, void *u)
{
    memcpy(kb, r, n);
    return (int)n;
}

static int add_one(sage_ctx *c, void *acc, const void *rec, size_t len, void *u)
{
    ++*(int64_t *)acc;
    return 0;
}

/* [int64 count][word] as "word count" lines, sorted */
static char *lines_of(const sage_collector *c)
{
    size_t n = sage_collector_count(c), cap = 64 * n + 1, used = 0;
    char **v = malloc((n ? n : 1) * sizeof *v), *out = calloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const unsigned char *r = sage_collector_get(c, i, &len);
        int64_t cnt;
        memcpy(&cnt, r, 8);
        v[i] = malloc(64);
        snprintf(v[i], 64, "%.*s %" PRId64, (int)(len - 8), (const char *)r + 8, cnt);
    }
    qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(out + used, cap - used, "%s\n", v[i]);
        free(v[i]);
    }
    free(v);
    return out;
}

static const char *const WORDS[] = {"to", "be", "or", "not", "to", "be", "that", "is", "the", "question", "to", "be"};
#define NW (sizeof WORDS / sizeof WORDS[0])

static sage_stream *words(sage_env *env)
{
    size_t lens[NW];
    for (size_t i = 0; i < NW; i++)
        lens[i] = strlen(WORDS[i]);
    return sage_from_collection(env, (const void *const *)WORDS, lens, NW, &(sage_op_opts){.parallelism = 2});
}

/* Word count in one call: the final count of each word, once. */
static void word_count_at_close(void)
{
    sage_env *env = sage_env_create("wc", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_reduce(sage_key_by(words(env), key_self, NULL), add_one, sizeof(int64_t),
                                 SAGE_REDUCE_AT_CLOSE, NULL, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    char *got = lines_of(c);
    CHECK_STR(got, "be 3\nis 1\nnot 1\nor 1\nquestion 1\nthat 1\nthe 1\nto 3\n");
    free(got);
    CHECK_STR(sage_env_op_name(env, 1), "reduce_1"); /* its generated name */
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* SAGE_REDUCE_EACH: a running value per record (1, 2, 3 for a word seen three times). */
static void running_values(void)
{
    sage_env *env = sage_env_create("running", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_reduce(sage_key_by(words(env), key_self, NULL), add_one, sizeof(int64_t), SAGE_REDUCE_EACH,
                                 NULL, NULL);
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    char *got = lines_of(c);
    CHECK_STR(got, "be 1\nbe 2\nbe 3\nis 1\nnot 1\nor 1\nquestion 1\nthat 1\nthe 1\nto 1\nto 2\nto 3\n");
    free(got);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* A close hook of the user's runs after the final values went out. */
static int closes_after;
static int user_close(sage_ctx *c, sage_out *o, void *u)
{
    closes_after += sage_ctx_state_count(c) > 0;
    return sage_emit_str(o, "12345678closing");
}

static void user_close_after_final_values(void)
{
    closes_after = 0;
    sage_env *env = sage_env_create("closing", NULL);
    sage_collector *c = sage_collector_create(0);
    sage_stream *s = sage_reduce(sage_key_by(words(env), key_self, NULL), add_one, sizeof(int64_t),
                                 SAGE_REDUCE_AT_CLOSE, NULL, &(sage_op_opts){.close = user_close});
    sage_sink_collect(s, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(closes_after, 1);
    size_t n = sage_collector_count(c), len;
    CHECK_INT(n, 9);
    const char *last = sage_collector_get(c, n - 1, &len);
    CHECK(len == 15 && memcmp(last, "12345678closing", 15) == 0);
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

/* Three streams as one: every record exactly once. */
static void union_of_three(void)
{
    sage_env *env = sage_env_create("union", NULL);
    sage_collector *c = sage_collector_create(0);
    uint64_t n1 = 1000, n2 = 2000, n3 = 3000;
    sage_stream *in[3] = {sage_from_generator(env, gen_range, &n1, NULL),
                          sage_from_generator(env, gen_range, &n2, &(sage_op_opts){.parallelism = 2}),
                          sage_from_generator(env, gen_range, &n3, NULL)};
    sage_stream *u = sage_union(in, 3, &(sage_op_opts){.parallelism = 2});
    sage_sink_collect(u, c, NULL);
    CHECK_INT(sage_env_execute(env), 0);
    CHECK_INT(sage_collector_count(c), 6000);
    int64_t sum = 0;
    for (size_t i = 0; i < sage_collector_count(c); i++) {
        size_t len;
        const void *r = sage_collector_get(c, i, &len);
        sum += sage_rec_i64(r, len);
    }
    CHECK(sum == 1000 * 1001 / 2 + 2000 * 2001 / 2 + 3000 * 3001 / 2);
    CHECK_STR(sage_env_op_name(env, 3), "union_3");
    sage_env_destroy(env);
    sage_collector_destroy(c);
}

static void bad_declarations_refused(void)
{
    sage_env *env = sage_env_create("bad", NULL);
    sage_stream *w = words(env);
    CHECK(sage_reduce(w, add_one, 8, SAGE_REDUCE_EACH, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_reduce: expects a keyed stream (call sage_key_by first)");
    sage_env_destroy(env);

    env = sage_env_create("bad", NULL);
    CHECK(sage_reduce(sage_key_by(words(env), key_self, NULL), add_one, 0, SAGE_REDUCE_EACH, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_reduce: an accumulator of 0 bytes (1..4096)");
    sage_env_destroy(env);

    env = sage_env_create("bad", NULL);
    CHECK(sage_reduce(sage_key_by(words(env), key_self, NULL), add_one, 8, 7, NULL, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_reduce: emit is 7 (SAGE_REDUCE_EACH or SAGE_REDUCE_AT_CLOSE)");
    sage_env_destroy(env);

    env = sage_env_create("bad", NULL);
    sage_stream *one[1] = {words(env)};
    CHECK(sage_union(one, 1, NULL) == NULL);
    CHECK_STR(sage_env_errmsg(env), "sage_union: 1 stream given, a union needs at least 2");
    CHECK_INT(sage_env_execute(env), SAGE_EINVAL);
    sage_env_destroy(env);

    sage_env *a = sage_env_create("a", NULL), *b = sage_env_create("b", NULL);
    sage_stream *two[2] = {words(a), words(b)};
    CHECK(sage_union(two, 2, NULL) == NULL);
    CHECK_CONTAINS(sage_env_errmsg(a), "sage_union: the two streams belong to different environments");
    sage_env_destroy(a);
    sage_env_destroy(b);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(word_count_at_close);
    RUN(running_values);
    RUN(user_close_after_final_values);
    RUN(union_of_three);
    RUN(bad_declarations_refused);
    return CHECK_DONE();
}
