/* bench/wordcount.c - scenario (d): word count over a generated text file (file lines -> split -> key_by word -> count at close). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sage/sage.h>

#include "bench.h"
#include "pipelines.h"

#define WC_VOCAB 50000u

typedef struct wc_file {
    char path[128];
    uint64_t bytes, lines, words, distinct;
} wc_file;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Word k of the vocabulary: 0..5 pseudo-random letters, then k in four
 * base-26 letters (so the words are distinct by construction). */
static size_t make_word(uint32_t k, char *w)
{
    uint64_t s = k * UINT64_C(2654435761);
    size_t n = (size_t)(splitmix64(&s) % 6);
    for (size_t i = 0; i < n; i++)
        w[i] = (char)('a' + splitmix64(&s) % 26);
    for (int d = 0; d < 4; d++, k /= 26)
        w[n++] = (char)('a' + k % 26);
    return n;
}

/* Write about `target` bytes of lines of 6..14 words, word ranks skewed
 * towards the front of the vocabulary (rank = V * u^3). Deterministic. */
static int wc_generate(wc_file *f, uint64_t target)
{
    snprintf(f->path, sizeof f->path, "/tmp/sage-bench-words-%ld.txt", (long)getpid());
    FILE *fp = fopen(f->path, "w");
    unsigned char *used = calloc(WC_VOCAB, 1);
    if (!fp || !used) {
        if (fp)
            fclose(fp);
        free(used);
        return bench_fail("(d) cannot write %s", f->path);
    }
    setvbuf(fp, NULL, _IOFBF, 1 << 20);
    uint64_t seed = 42;
    char line[256];
    f->bytes = f->lines = f->words = f->distinct = 0;
    while (f->bytes < target) {
        size_t len = 0;
        int nw = 6 + (int)(splitmix64(&seed) % 9);
        for (int i = 0; i < nw; i++) {
            double u = (double)(splitmix64(&seed) >> 11) / 9007199254740992.0;
            uint32_t k = (uint32_t)(WC_VOCAB * u * u * u);
            if (i)
                line[len++] = ' ';
            len += make_word(k, line + len);
            if (!used[k]) {
                used[k] = 1;
                f->distinct++;
            }
        }
        line[len++] = '\n';
        fwrite(line, 1, len, fp);
        f->bytes += len;
        f->lines++;
        f->words += (uint64_t)nw;
    }
    free(used);
    if (fclose(fp) != 0)
        return bench_fail("(d) writing %s failed", f->path);
    return 0;
}

/* ---- the pipeline ---- */

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
                return rc;
        }
        i = j;
    }
    return 0;
}

static int word_key(const void *rec, size_t len, void *keybuf, void *udata)
{
    size_t n = len < SAGE_KEY_MAX ? len : SAGE_KEY_MAX;
    memcpy(keybuf, rec, n);
    return (int)n;
}

static int count_word(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    int64_t *c = sage_ctx_state(ctx, sizeof *c);
    if (!c)
        return SAGE_ENOMEM;
    ++*c;
    return 0;
}

/* At close, each count instance emits [int64 count][word bytes] per word. */
static int emit_one(const void *key, size_t key_len, void *state, void *out)
{
    char rec[8 + SAGE_KEY_MAX];
    memcpy(rec, state, 8);
    memcpy(rec + 8, key, key_len);
    return sage_emit(out, rec, 8 + key_len) < 0;
}

static int emit_counts(sage_ctx *ctx, sage_out *out, void *udata)
{
    return sage_ctx_state_foreach(ctx, emit_one, out) ? SAGE_ECANCELED : 0;
}

typedef struct wc_total {
    _Atomic uint64_t words, distinct;
} wc_total;

/* The result sink adds up the counts; one atomic add per distinct word is cheap. */
static int result_sink(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    wc_total *t = udata;
    int64_t c;
    if (len < 8)
        return SAGE_EINVAL;
    memcpy(&c, rec, 8);
    atomic_fetch_add(&t->words, (uint64_t)c);
    atomic_fetch_add(&t->distinct, 1);
    return 0;
}

static int wc_run(uint64_t n, void *arg, bench_run *out)
{
    const wc_file *f = arg;
    wc_total tot = {0};
    sage_env *env = sage_env_create("bench_wordcount", pipe_config);
    sage_stream *s = sage_from_file_lines(env, f->path, &(sage_op_opts){.name = "lines"});
    s = sage_flat_map(s, split_words, NULL, &(sage_op_opts){.name = "split"});
    s = sage_flat_map(sage_key_by(s, word_key, NULL), count_word, NULL,
                      &(sage_op_opts){.name = "count", .parallelism = 2, .close = emit_counts});
    sage_sink(s, result_sink, &tot, &(sage_op_opts){.name = "results", .parallelism = 2});
    bench_timer tm;
    bench_timer_start(&tm);
    int rc = sage_env_execute(env);
    bench_timer_stop(&tm, out);
    sage_env_checkpoint_stats(env, &pipe_ckpt_stats);
    if (rc != 0)
        rc = bench_fail("(d) word count failed (%s): %s", sage_err_name(rc), sage_env_errmsg(env));
    else if (atomic_load(&tot.words) != f->words || atomic_load(&tot.distinct) != f->distinct)
        rc = bench_fail("(d) counted %llu words (%llu distinct), the file has %llu (%llu distinct)",
                        (unsigned long long)atomic_load(&tot.words), (unsigned long long)atomic_load(&tot.distinct),
                        (unsigned long long)f->words, (unsigned long long)f->distinct);
    sage_env_destroy(env);
    return rc;
}

int scen_wordcount(int arg)
{
    wc_file f;
    uint64_t target = g_opts.quick ? 16000000 : 64000000;
    if (wc_generate(&f, target) < 0)
        return -1;
    bench_row r = bench_row_new("d", "(d) word count: words", "rec/s");
    int rc = bench_measure_fixed(&r, wc_run, &f, f.words, g_opts.reps);
    unlink(f.path);
    if (rc < 0)
        return -1;
    snprintf(r.note, sizeof r.note, "lines p1 -> split p1 -> key_by -> count p2; %.2f cores busy", r.cpu_s / r.wall_s);
    bench_row mb = r;
    snprintf(mb.id, sizeof mb.id, "d.bytes");
    snprintf(mb.name, sizeof mb.name, "(d) word count: input bytes");
    snprintf(mb.unit, sizeof mb.unit, "B/s");
    mb.value = (double)f.bytes / r.wall_s;
    snprintf(mb.note, sizeof mb.note, "%.0f MB file, %llu lines, %llu words, %llu distinct", (double)f.bytes / 1e6,
             (unsigned long long)f.lines, (unsigned long long)f.words, (unsigned long long)f.distinct);
    bench_emit(&r);
    bench_emit(&mb);
    /* (k.d) the same with a checkpoint every 0.1 s */
    bench_row k = bench_row_new("k.d", "(k) (d) with a checkpoint every 0.1 s", "rec/s");
    if (wc_generate(&f, target) < 0 || bench_ckpt_begin(0.1) != 0)
        return -1;
    rc = bench_measure_fixed(&k, wc_run, &f, f.words, g_opts.reps);
    bench_ckpt_end();
    unlink(f.path);
    if (rc < 0)
        return -1;
    snprintf(k.note, sizeof k.note, "words/s; %llu checkpoints in the last run, the last %.1f MB, pause %.1f ms",
             (unsigned long long)pipe_ckpt_stats.completed, (double)pipe_ckpt_stats.last_bytes / 1e6,
             pipe_ckpt_stats.last_pause_ms);
    bench_emit(&k);
    return 0;
}
