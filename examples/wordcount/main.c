/* examples/wordcount - key_by word count over a text file with parallelism 4; prints "word count" lines sorted by word.
 * Usage: wordcount [--jobmanager HOST:PORT] FILE */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sage/sage.h>

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* flat_map: one record per whitespace-separated word. */
static int split_words(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    const char *s = rec;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space(s[i]))
            i++;
        size_t j = i;
        while (j < len && !is_space(s[j]))
            j++;
        if (j > i) {
            int rc = sage_emit(out, s + i, j - i);
            if (rc < 0)
                return rc;
        }
        i = j;
    }
    return 0;
}

/* key_by: the word itself (longer words are cut at the key limit). */
static int word_key(const void *rec, size_t len, void *keybuf, void *udata)
{
    size_t n = len < SAGE_KEY_MAX ? len : SAGE_KEY_MAX;
    memcpy(keybuf, rec, n);
    return (int)n;
}

/* Per-key state: the count of this word, kept by the engine. */
static int count_word(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
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

/* At end of stream, every instance emits the final count of each of its words. */
static int emit_counts(sage_ctx *ctx, sage_out *out, void *udata)
{
    return sage_ctx_state_foreach(ctx, emit_count, out) ? SAGE_ECANCELED : 0;
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    /* --jobmanager HOST:PORT runs the same pipeline through a JobManager, in worker processes */
    char config[300] = "";
    if (argc == 4 && strcmp(argv[1], "--jobmanager") == 0) {
        snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", argv[2]);
        argv += 2;
    } else if (argc != 2) {
        fprintf(stderr, "usage: %s [--jobmanager HOST:PORT] FILE\n", argv[0]);
        return 2;
    }
    sage_env *env = sage_env_create("wordcount", config[0] ? config : NULL);
    sage_collector *results = sage_collector_create(0);
    sage_stream *lines = sage_from_file_lines(env, argv[1], NULL);
    sage_stream *words = sage_flat_map(lines, split_words, NULL, &(sage_op_opts){.name = "split", .parallelism = 4});
    sage_stream *counts = sage_flat_map(sage_key_by(words, word_key, NULL), count_word, NULL,
                                        &(sage_op_opts){.name = "count", .parallelism = 4, .close = emit_counts});
    sage_sink_collect(counts, results, &(sage_op_opts){.name = "results"});
    if (sage_env_execute(env) != 0) {
        fprintf(stderr, "wordcount: %s\n", sage_env_errmsg(env));
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
