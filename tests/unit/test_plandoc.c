/* tests/unit/test_plandoc.c - the plan document: what a client sends, what the JobManager reads back, bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "plan/plan.h"

typedef struct doc_case {
    const char *json;
    int rc;
    const char *msg;
} doc_case;

static const doc_case cases[] = {
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":2}]}", 0, NULL},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1,\"resources\":{}},{\"name\":\"b\",\"parallelism\":3,"
     "\"resources\":{\"num_cpus\":1.5,\"memory\":1000}}]}",
     0, NULL},
    {"{}", SAGE_EPROTO, "the plan has no chains"},
    {"{\"chains\":[]}", SAGE_EPROTO, "the plan has no chains"},
    {"{\"chains\":{}}", SAGE_EPROTO, "the plan has no chains"},
    {"{\"chains\":[{\"parallelism\":2}]}", SAGE_EPROTO, "chain 0 has no name"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":0}]}", SAGE_EPROTO, "parallelism outside 1..1024"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1025}]}", SAGE_EPROTO, "parallelism outside"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":2.0}]}", SAGE_EPROTO, "parallelism outside"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1},{\"name\":7,\"parallelism\":1}]}", SAGE_EPROTO, "chain 1"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1,\"resources\":{\"num_gpus\":1.5}}]}", SAGE_ERESOURCES,
     "operator \"a\": resources:"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1,\"resources\":{\"cpus\":1}}]}", SAGE_ERESOURCES, "cpus"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1,\"resources\":[1]}]}", SAGE_ERESOURCES, "expected an object"},
    /* services follow the chains, one process each */
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":2},{\"name\":\"service:m\",\"parallelism\":1,\"service\":\"m\","
     "\"resources\":{\"num_gpus\":1}}]}",
     0, NULL},
    {"{\"chains\":[{\"name\":\"service:m\",\"parallelism\":1,\"service\":\"m\"},{\"name\":\"a\",\"parallelism\":1}]}",
     SAGE_EPROTO, "chain 1 follows a service (the services come after every chain)"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1},{\"name\":\"service:m\",\"parallelism\":2,\"service\":\"m\"}]}",
     SAGE_EPROTO, "chain 1: \"service\" must name a service, with parallelism 1"},
    {"{\"chains\":[{\"name\":\"a\",\"parallelism\":1},{\"name\":\"service:m\",\"parallelism\":1,\"service\":3}]}",
     SAGE_EPROTO, "must name a service"},
};

static void document_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t jerr;
        json_t *doc = json_loads(cases[i].json, 0, &jerr);
        CHECK(doc != NULL);
        sage__place_req *reqs = NULL;
        size_t n = 0;
        char err[512] = "";
        int rc = sage__plan_document_reqs(doc, &reqs, &n, err, sizeof err);
        if (rc != cases[i].rc)
            fprintf(stderr, "  case %zu: %s -> %d (%s)\n", i, cases[i].json, rc, err);
        CHECK_INT(rc, cases[i].rc);
        if (cases[i].msg)
            CHECK_CONTAINS(err, cases[i].msg);
        if (rc == 0)
            CHECK(n == json_array_size(json_object_get(doc, "chains")));
        free(reqs);
        json_decref(doc);
    }
}

static int src(sage_ctx *c, sage_out *o, void *u) { return SAGE_DONE; }
static int snk(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }
static int svc(const void *req, size_t len, sage_reply *reply, void *u) { return 0; }

/* What a client writes, the JobManager reads: names, parallelism and resources survive the trip. */
static void round_trip(void)
{
    sage__config cfg;
    sage__config_init(&cfg);
    sage__err err = {0};
    sage__graph g;
    sage__graph_init(&g, "trip", &cfg, &err);
    sage_stream *s = sage__declare_source(&g, src, NULL, &(sage_op_opts){.name = "gen", .parallelism = 2}, 1, "src");
    sage__declare_one_input(s, SAGE__OP_SINK, (void *)snk, NULL,
                            &(sage_op_opts){.name = "out",
                                            .parallelism = 3,
                                            .resources = "{\"num_cpus\": 2, \"memory\": \"1GB\", \"resources\": "
                                                         "{\"ssd\": 1}}"},
                            "sink");
    CHECK_INT(sage__declare_service(&g, "model", svc, NULL,
                                    &(sage_service_opts){.resources = "{\"num_gpus\": 1, \"memory\": \"2GB\"}"}),
              0);
    CHECK_INT(err.code, 0);
    sage__plan *plan = NULL;
    CHECK_INT(sage__plan_compile(&g, 0, &plan, &err), 0);
    json_t *doc = sage__plan_document(plan);
    CHECK(doc != NULL);
    CHECK_STR(json_string_value(json_object_get(doc, "name")), "trip");
    sage__place_req *reqs = NULL;
    size_t n = 0;
    char msg[256];
    CHECK_INT(sage__plan_document_reqs(doc, &reqs, &n, msg, sizeof msg), 0);
    CHECK_INT(n, 3); /* the service follows the chains, a process of its own */
    CHECK_STR(reqs[2].name, "service:model");
    CHECK_INT(reqs[2].parallelism, 1);
    CHECK(reqs[2].res.num_gpus == 1);
    CHECK_INT(reqs[2].res.memory, 2000000000);
    json_t *sc = json_array_get(json_object_get(doc, "chains"), 2);
    CHECK_STR(json_string_value(json_object_get(sc, "service")), "model");
    CHECK_INT(json_integer_value(json_object_get(sc, "producers")), 5); /* every task may call it */
    json_t *edges = json_object_get(doc, "edges"); /* gen -> out, as declared (forward: parallelism differs) */
    CHECK_INT(json_array_size(edges), 1);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(edges, 0), "from")), 0);
    CHECK_INT(json_integer_value(json_object_get(json_array_get(edges, 0), "to")), 1);
    CHECK(json_string_value(json_object_get(json_array_get(edges, 0), "routing")) != NULL);
    CHECK_STR(reqs[0].name, "gen");
    CHECK_INT(reqs[0].parallelism, 2);
    CHECK_STR(reqs[1].name, "out");
    CHECK_INT(reqs[1].parallelism, 3);
    CHECK(reqs[1].res.num_cpus == 2);
    CHECK_INT(reqs[1].res.memory, 1000000000);
    CHECK_INT(reqs[1].res.ncustom, 1);
    CHECK_STR(reqs[1].res.custom[0].name, "ssd");
    free(reqs);
    json_decref(doc);
    sage__plan_free(plan);
    sage__graph_free(&g);
    sage__config_free(&cfg);
}

static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }

/* A feedback loop: the future's chain counts its entry's control producers; the edge back into the future is
 * marked "feedback" (a view draws the rest as a graph without a cycle); explain names the loop. */
static void loop_document(void)
{
    sage__config cfg;
    sage__config_init(&cfg);
    sage__err err = {0};
    sage__graph g;
    sage__graph_init(&g, "loop", &cfg, &err);
    sage_stream *s = sage__declare_source(&g, src, NULL, &(sage_op_opts){.name = "gen", .parallelism = 2}, 1, "src");
    sage_stream *fut = sage__declare_future(&g, "again");
    sage_stream *both[2] = {s, fut};
    sage_stream *u = sage__declare_union(both, 2, &(sage_op_opts){.name = "enter", .parallelism = 3});
    sage_stream *m = sage__declare_one_input(u, SAGE__OP_MAP, (void *)pass, NULL, &(sage_op_opts){.name = "step"},
                                             "sage_map");
    CHECK_INT(sage__declare_fill_future(m, fut), 0);
    sage__declare_one_input(m, SAGE__OP_SINK, (void *)snk, NULL, &(sage_op_opts){.name = "out"}, "sink");
    CHECK_INT(err.code, 0);
    sage__plan *plan = NULL;
    CHECK_INT(sage__plan_compile(&g, 0, &plan, &err), 0);
    CHECK_STR(err.msg, "");
    json_t *doc = sage__plan_document(plan);
    json_t *chains = json_object_get(doc, "chains"), *e;
    int fut_chain = plan->ops[fut->op->id].chain;
    json_t *fc = json_array_get(chains, (size_t)fut_chain);
    CHECK_STR(json_string_value(json_object_get(fc, "name")), "again");
    /* its producers: step (1 instance, the feedback) and the entry "enter" (3 instances, control) */
    CHECK_INT(json_integer_value(json_object_get(fc, "producers")), 1 + 3);
    size_t i, feedback = 0;
    json_array_foreach(json_object_get(doc, "edges"), i, e)
    {
        if (json_is_true(json_object_get(e, "feedback"))) {
            feedback++;
            CHECK_INT(json_integer_value(json_object_get(e, "to")), fut_chain);
        }
    }
    CHECK_INT(feedback, 1);
    char *text = sage__plan_explain(plan);
    CHECK_CONTAINS(text ? text : "",
                   "future \"again\" <- forward from \"step\" (feedback loop through \"enter\", \"step\")");
    free(text);
    json_decref(doc);
    sage__plan_free(plan);
    sage__graph_free(&g);
    sage__config_free(&cfg);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(document_table);
    RUN(round_trip);
    RUN(loop_document);
    return CHECK_DONE();
}
