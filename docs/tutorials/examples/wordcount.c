/* wordcount.c - key_by word count: per-key state kept by the engine, final counts emitted at close. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

/* flat_map: one record per space-separated word (0..n emits per input). */
static int split_words(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    const char *s = rec;
    size_t i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        size_t j = i;
        while (j < len && s[j] != ' ')
            j++;
        if (j > i) {
            int rc = sage_emit(out, s + i, j - i);
            if (rc < 0)
                return rc; /* the job is failing or canceled: pass the code on */
        }
        i = j;
    }
    return 0;
}

/* Key extractor: the word itself. Pure: the engine calls it on both sides of the channel. */
static int word_key(const void *rec, size_t len, void *keybuf, void *udata)
{
    if (len > SAGE_KEY_MAX)
        return SAGE_ETOOBIG;
    memcpy(keybuf, rec, len);
    return (int)len;
}

/* Keyed flat_map: add one to this word's counter, emit nothing yet. */
static int count_word(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    int64_t *count = sage_ctx_state(ctx, sizeof *count); /* zero-filled the first time */
    if (!count)
        return SAGE_ENOMEM;
    ++*count;
    return 0;
}

typedef struct emit_arg {
    sage_out *out;
    int instance;
} emit_arg;

static int emit_one(const void *key, size_t key_len, void *state, void *arg)
{
    emit_arg *a = arg;
    char line[SAGE_KEY_MAX + 64];
    int n = snprintf(line, sizeof line, "%-8.*s %" PRId64 "  (count[%d])", (int)key_len, (const char *)key,
                     *(int64_t *)state, a->instance);
    return sage_emit(a->out, line, (size_t)n) < 0; /* non-zero stops the visit */
}

/* close hook: runs once per instance after its last record, before end-of-stream goes downstream. */
static int emit_counts(sage_ctx *ctx, sage_out *out, void *udata)
{
    emit_arg a = {out, sage_ctx_instance(ctx)};
    return sage_ctx_state_foreach(ctx, emit_one, &a) ? SAGE_ECANCELED : 0;
}

/* Print the collected records (text) in sorted order. */
static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void print_sorted(const sage_collector *c)
{
    size_t n = sage_collector_count(c), len;
    char **v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        const char *r = sage_collector_get(c, i, &len);
        v[i] = malloc(len + 1);
        memcpy(v[i], r, len); /* records are bytes, not NUL-terminated strings */
        v[i][len] = '\0';
    }
    qsort(v, n, sizeof *v, by_text);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", v[i]);
        free(v[i]);
    }
    free(v);
}

int main(void)
{
    const char *lines[] = {"to be or not to be", "that is the question", "to do is to be"};
    size_t lens[3];
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(lines[i]);

    sage_env *env = sage_env_create("wordcount", NULL);
    sage_collector *results = sage_collector_create(0);
    sage_stream *s = sage_from_collection(env, (const void *const *)lines, lens, 3, NULL);
    s = sage_flat_map(s, split_words, NULL, &(sage_op_opts){.name = "split", .parallelism = 2});
    s = sage_key_by(s, word_key, NULL);
    s = sage_flat_map(s, count_word, NULL, &(sage_op_opts){.name = "count", .parallelism = 3, .close = emit_counts});
    sage_sink_collect(s, results, NULL);

    int rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "wordcount: %s\n", sage_env_errmsg(env));
    else
        print_sorted(results);
    sage_collector_destroy(results);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
