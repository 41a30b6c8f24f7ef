/* examples/refine - a feedback loop: drafts go round a "refine" step until they are good enough (SAGE's future
 * streams, sage_from_future / sage_fill_future), as agentic and RAG pipelines iterate on an answer.
 *
 * Each question starts as a draft of quality 0; refine adds a fixed amount per round (the question's
 * "difficulty" decides how much); a draft below 100 goes back into the loop, a draft at 100 or more leaves it
 * and is printed with the rounds it took. The job ends by itself once every question has left the loop. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sage/sage.h>

typedef struct draft {
    char question[24];
    int64_t step;    /* quality gained per round */
    int64_t quality; /* 0..100+ */
    int64_t rounds;
} draft;

static int refine(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    draft d;
    memcpy(&d, rec, sizeof d);
    d.quality += d.step;
    d.rounds++;
    return sage_emit(out, &d, sizeof d);
}

static int not_good_enough(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    draft d;
    memcpy(&d, rec, sizeof d);
    return d.quality < 100;
}

static int good_enough(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    return !not_good_enough(ctx, rec, len, udata);
}

static int print_answer(sage_ctx *ctx, const void *rec, size_t len, void *udata)
{
    draft d;
    memcpy(&d, rec, sizeof d);
    printf("%s: good enough after %" PRId64 " rounds (quality %" PRId64 ")\n", d.question, d.rounds, d.quality);
    return 0;
}

int main(void)
{
    static const draft questions[] = {
        {"what is SAGE", 50, 0, 0},       {"why streams", 34, 0, 0},       {"how to key_by", 25, 0, 0},
        {"when to checkpoint", 10, 0, 0}, {"where do GPUs go", 100, 0, 0},
    };
    const void *recs[5];
    size_t lens[5];
    for (int i = 0; i < 5; i++) {
        recs[i] = &questions[i];
        lens[i] = sizeof questions[i];
    }
    sage_env *env = sage_env_create("refine", NULL);
    sage_stream *asked = sage_from_collection(env, recs, lens, 5, &(sage_op_opts){.name = "questions"});
    sage_stream *again = sage_from_future(env, "again"); /* fed below, from further down */
    sage_stream *both[2] = {asked, again};
    sage_stream *drafts = sage_map(sage_rebalance(sage_union(both, 2, &(sage_op_opts){.name = "enter"})), refine, NULL,
                                   &(sage_op_opts){.name = "refine", .parallelism = 2});
    sage_fill_future(sage_filter(drafts, not_good_enough, NULL, &(sage_op_opts){.name = "back"}), again);
    sage_sink(sage_filter(drafts, good_enough, NULL, &(sage_op_opts){.name = "done"}), print_answer, NULL,
              &(sage_op_opts){.name = "answers"});
    int rc = sage_env_execute(env);
    if (rc != 0)
        fprintf(stderr, "refine: %s\n", sage_env_errmsg(env));
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}
