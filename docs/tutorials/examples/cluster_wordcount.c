/* cluster_wordcount.c - a key_by word count whose instances each reserve a CPU, so that on a cluster they spread
 * over several nodes; with --custom a custom partitioner replaces key_by. Prints "word count" lines sorted by
 * word (as examples/wordcount does).
 * Usage: cluster_wordcount [--jobmanager HOST:PORT] [--custom] [FILE]
 * Without --jobmanager it runs embedded on a simulated node of 8 CPUs; without FILE it counts a built-in text. */
#define _POSIX_C_SOURCE 200809L /* strndup */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

static const char *const text[] = {"the cat sat on the mat", "the dog sat on the log", "a cat and a dog"};

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* flat_map: one record per whitespace-separated word. */
static int split_words(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    const char *s = rec;
    for (size_t i = 0, j; i < len; i = j) {
        while (i < len && is_space(s[i]))
            i++;
        for (j = i; j < len && !is_space(s[j]); j++)
            ;
        if (j > i && sage_emit(out, s + i, j - i) < 0)
            return SAGE_ECANCELED;
    }
    return 0;
}

/* key_by: the word itself (cut at the key limit). Equal keys always reach the same instance. */
static int word_key(const void *rec, size_t len, void *keybuf, void *udata)
{
    size_t n = len < SAGE_KEY_MAX ? len : SAGE_KEY_MAX;
    memcpy(keybuf, rec, n);
    return (int)n;
}

/* Custom partitioner: FNV-1a of the word, modulo the instances. Deterministic, so a word always goes to the
 * same instance, but the instance is ours to choose (return a value in [0, nparts)). */
static int by_word_hash(const void *rec, size_t len, int nparts, void *udata)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)rec)[i]) * 1099511628211ULL;
    return (int)(h % (uint64_t)nparts);
}

/* With key_by: per-key state kept by the engine. */
static int count_keyed(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    int64_t *count = sage_ctx_state(ctx, sizeof *count);
    if (!count)
        return SAGE_ENOMEM;
    ++*count;
    return 0;
}

static int emit_count(const void *key, size_t key_len, void *state, void *out)
{
    char line[SAGE_KEY_MAX + 32];
    int n = snprintf(line, sizeof line, "%.*s %" PRId64, (int)key_len, (const char *)key, *(int64_t *)state);
    return sage_emit(out, line, (size_t)n) < 0;
}

static int emit_counts(sage_ctx *ctx, sage_out *out, void *udata)
{
    return sage_ctx_state_foreach(ctx, emit_count, out) ? SAGE_ECANCELED : 0;
}

/* With the custom partitioner: records arrive unkeyed, so the instance keeps its own table (open/close hooks). */
typedef struct table {
    size_t n, cap;
    char **words;
    int64_t *counts;
} table;

static int table_open(sage_ctx *ctx, void *udata)
{
    table *t = calloc(1, sizeof *t);
    if (!t)
        return SAGE_ENOMEM;
    sage_ctx_set_local(ctx, t);
    return 0;
}

static int count_custom(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    table *t = sage_ctx_local(ctx);
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->words[i]) == len && memcmp(t->words[i], rec, len) == 0) {
            t->counts[i]++;
            return 0;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **w = realloc(t->words, cap * sizeof *w);
        if (w)
            t->words = w;
        int64_t *c = realloc(t->counts, cap * sizeof *c);
        if (c)
            t->counts = c;
        if (!w || !c)
            return SAGE_ENOMEM;
        t->cap = cap;
    }
    if (!(t->words[t->n] = strndup(rec, len)))
        return SAGE_ENOMEM;
    t->counts[t->n++] = 1;
    return 0;
}

static int table_close(sage_ctx *ctx, sage_out *out, void *udata)
{
    table *t = sage_ctx_local(ctx);
    int rc = 0;
    for (size_t i = 0; i < t->n; i++) {
        char line[SAGE_KEY_MAX + 32];
        int n = snprintf(line, sizeof line, "%s %" PRId64, t->words[i], t->counts[i]);
        if (rc == 0 && sage_emit(out, line, (size_t)n) < 0)
            rc = SAGE_ECANCELED;
        free(t->words[i]);
    }
    free(t->words);
    free(t->counts);
    free(t);
    return rc;
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    char config[300] = "{\"node\": {\"name\": \"laptop\", \"cpus\": 8}}"; /* embedded: a simulated node */
    const char *file = NULL;
    int custom = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jobmanager") == 0 && i + 1 < argc)
            snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", argv[++i]);
        else if (strcmp(argv[i], "--custom") == 0)
            custom = 1;
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else {
            fprintf(stderr, "usage: %s [--jobmanager HOST:PORT] [--custom] [FILE]\n", argv[0]);
            return 2;
        }
    }

    sage_env *env = sage_env_create("cluster_wordcount", config);
    sage_collector *results = sage_collector_create(0);
    sage_stream *lines = file ? sage_from_file_lines(env, file, NULL)
                              : sage_from_collection(env, (const void *const *)text, (const size_t[]){22, 22, 15}, 3,
                                                     NULL);
    /* every instance of split and count reserves one CPU of its own: 8 CPUs in all */
    sage_stream *words = sage_flat_map(
        lines, split_words, NULL, &(sage_op_opts){.name = "split", .parallelism = 4, .resources = "{\"num_cpus\": 1}"});
    sage_stream *counts;
    if (!custom)
        counts = sage_flat_map(
            sage_key_by(words, word_key, NULL), count_keyed, NULL,
            &(sage_op_opts){.name = "count", .parallelism = 4, .close = emit_counts, .resources = "{\"num_cpus\": 1}"});
    else
        counts = sage_flat_map(sage_partition_custom(words, by_word_hash, NULL), count_custom, NULL,
                               &(sage_op_opts){.name = "count",
                                               .parallelism = 4,
                                               .open = table_open,
                                               .close = table_close,
                                               .resources = "{\"num_cpus\": 1}"});
    sage_sink_collect(counts, results, &(sage_op_opts){.name = "results"});
    if (sage_env_execute(env) != 0) {
        fprintf(stderr, "cluster_wordcount: %s\n", sage_env_errmsg(env));
        sage_collector_destroy(results);
        sage_env_destroy(env);
        return 1;
    }
    size_t n = sage_collector_count(results);
    char **out = calloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *r = sage_collector_get(results, i, &len);
        out[i] = strndup(r, len);
    }
    qsort(out, n, sizeof *out, by_text);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", out[i]);
        free(out[i]);
    }
    free(out);
    sage_collector_destroy(results);
    sage_env_destroy(env);
    return 0;
}
