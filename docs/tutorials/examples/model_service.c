/* model_service.c - a shared model as a service: one instance per job, on a GPU, called by every instance of a map.
 *
 * Usage: model_service [--jobmanager HOST:PORT]
 * The "model" service stands for a model loaded once (its start hook) and asked by every instance of
 * "classify". Under a JobManager it runs in a worker process of its own, placed with its resources
 * (one GPU), so four classify instances on other hosts share that one model. Each answer says which
 * process, node and GPU gave it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sage/sage.h>

static const char *const texts[] = {"great product", "arrived broken", "works as described",
                                    "never again",   "five stars",     "meh",
                                    "refund please", "love it",        "too small",
                                    "perfect fit",   "late delivery",  "as expected"};
#define NTEXTS (sizeof texts / sizeof texts[0])

static int load_model(void *udata)
{
    printf("model loaded once, by pid %d\n", (int)getpid()); /* in its own worker: that worker's log */
    return 0;
}

/* model: request = a text, reply = "<label> (model pid P on NODE, GPU G)". */
static int model(const void *req, size_t len, sage_reply *reply, void *udata)
{
    static const char *const labels[] = {"negative", "neutral", "positive"};
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)req)[i]) * 16777619u;
    char host[64] = "?", out[256];
    gethostname(host, sizeof host - 1);
    const char *gpu = getenv("CUDA_VISIBLE_DEVICES");
    int n = snprintf(out, sizeof out, "%s (model pid %d on %s, GPU %s)", labels[h % 3], (int)getpid(), host,
                     gpu && *gpu ? gpu : "none");
    return sage_reply_set(reply, out, (size_t)n);
}

static int classify(sage_ctx *ctx, const void *rec, size_t len, sage_out *out, void *udata)
{
    char answer[256], line[512];
    size_t alen = 0;
    int rc = sage_call(ctx, "model", rec, len, 10000, answer, sizeof answer, &alen);
    if (rc != 0)
        return rc; /* the call said why (sage_ctx_fail): the job fails with it */
    int n = snprintf(line, sizeof line, "%.*s -> %.*s", (int)len, (const char *)rec, (int)alen, answer);
    return sage_emit(out, line, (size_t)n);
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    char config[256] = "{}";
    if (argc == 3 && strcmp(argv[1], "--jobmanager") == 0)
        snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", argv[2]);
    sage_env *env = sage_env_create("model_service", config);
    sage_env_register_service(env, "model", model, NULL,
                              &(sage_service_opts){.start = load_model, .resources = "{\"num_gpus\": 1}"});
    size_t lens[NTEXTS];
    for (size_t i = 0; i < NTEXTS; i++)
        lens[i] = strlen(texts[i]);
    sage_stream *s = sage_from_collection(env, (const void *const *)texts, lens, NTEXTS, NULL);
    s = sage_map(sage_rebalance(s), classify, NULL, &(sage_op_opts){.name = "classify", .parallelism = 4});
    sage_collector *c = sage_collector_create(0);
    sage_sink_collect(sage_rebalance(s), c, &(sage_op_opts){.name = "answers"});
    int rc = sage_env_execute(env);
    if (rc != 0) {
        fprintf(stderr, "job failed: %s\n", sage_env_errmsg(env));
        return 1;
    }
    /* print the answers in text order, and how many model processes gave them */
    size_t n = sage_collector_count(c);
    char **lines = calloc(n ? n : 1, sizeof *lines), pids[NTEXTS][32];
    size_t npids = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *r = sage_collector_get(c, i, &len);
        lines[i] = strndup(r, len);
        const char *p = strstr(lines[i], "model pid ");
        char pid[32] = "";
        if (p)
            sscanf(p + 10, "%31s", pid);
        size_t k = 0;
        while (k < npids && strcmp(pids[k], pid) != 0)
            k++;
        if (k == npids && npids < NTEXTS)
            snprintf(pids[npids++], sizeof pids[0], "%s", pid);
    }
    qsort(lines, n, sizeof *lines, by_text);
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
    printf("%zu answers from %zu model process%s\n", n, npids, npids == 1 ? "" : "es");
    free(lines);
    sage_collector_destroy(c);
    sage_env_destroy(env);
    return 0;
}
