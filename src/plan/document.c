/* plan/document.c - the plan document: what a remote environment submits and what the JobManager places. */
#include <stdio.h>
#include <stdlib.h>

#include "plan/plan.h"
#include "util/json.h"

json_t *sage__resources_json(const sage_resources *r, int all_keys)
{
    int bad = 0;
    json_t *o = json_object();
    if (all_keys || r->num_cpus > 0)
        sage__jset(&bad, o, "num_cpus", json_real(r->num_cpus));
    if (all_keys || r->num_gpus > 0)
        sage__jset(&bad, o, "num_gpus", json_real(r->num_gpus));
    if (all_keys || r->memory)
        sage__jset(&bad, o, "memory", json_integer((json_int_t)r->memory));
    if (all_keys || r->object_store_memory)
        sage__jset(&bad, o, "object_store_memory", json_integer((json_int_t)r->object_store_memory));
    if (all_keys || r->ncustom) {
        json_t *cu = json_object();
        for (size_t i = 0; i < r->ncustom; i++)
            sage__jset(&bad, cu, r->custom[i].name, json_real(r->custom[i].amount));
        sage__jset(&bad, o, "resources", cu);
    }
    return sage__jdone(bad, o);
}

json_t *sage__plan_document(const sage__plan *plan)
{
    int bad = 0;
    json_t *chains = json_array();
    for (size_t c = 0; c < plan->nchains; c++) {
        const sage__chain *ch = &plan->chains[c];
        const sage__op *head = sage__chain_op(plan, ch, 0), *ro = ch->res_op ? ch->res_op : head;
        sage__jadd(&bad, chains,
                   json_pack("{s:i,s:s,s:i,s:b,s:i,s:o}", "id", (int)c, "name", ro->name, "parallelism",
                             ch->parallelism, "inputs", head->ninputs > 0, "producers", ch->producers, "resources",
                             ch->res_op ? sage__resources_json(&ch->res_op->res, 0) : json_object()));
    }
    /* the job's services follow its chains, one process each: "service" names it; every task may call it */
    int tasks = 0;
    for (size_t c = 0; c < plan->nchains; c++)
        tasks += plan->chains[c].parallelism;
    for (size_t i = 0; i < plan->g->nservices; i++) {
        const sage__service_decl *sd = &plan->g->services[i];
        char name[SAGE__NAME_MAX + 16];
        snprintf(name, sizeof name, "service:%s", sd->name);
        sage__jadd(&bad, chains,
                   json_pack("{s:i,s:s,s:i,s:b,s:i,s:o,s:s}", "id", (int)(plan->nchains + i), "name", name,
                             "parallelism", 1, "inputs", 1, "producers", tasks, "resources",
                             sage__resources_json(&sd->res, 0), "service", sd->name));
    }
    /* the edges between chains, with their routing: what a view of the job draws (the JobManager places
     * chains; it reads no edge) */
    json_t *edges = json_array();
    for (size_t c = 0; c < plan->nchains; c++) {
        const sage__chain *ch = &plan->chains[c];
        const sage__pop *tp = &plan->ops[ch->ops[ch->nops - 1]];
        for (size_t k = 0; k < tp->nconsumers; k++) {
            const sage__pop *cp = &plan->ops[tp->consumers[k].op];
            json_t *e = json_pack("{s:i,s:i,s:s}", "from", (int)c, "to", cp->chain, "routing",
                                  sage__part_name(cp->part[tp->consumers[k].input]));
            if (e && cp->op->builtin == SAGE__BUILTIN_FUTURE && cp->loop == cp->op->id)
                json_object_set_new(e, "feedback", json_true()); /* back into a loop's future */
            sage__jadd(&bad, edges, e);
        }
    }
    if (bad) {
        json_decref(chains);
        json_decref(edges);
        return NULL;
    }
    /* the hash travels halved: JSON integers are signed 64-bit */
    return json_pack("{s:s,s:I,s:o,s:o}", "name", plan->g->name, "plan_hash", (json_int_t)(plan->hash >> 1), "chains",
                     chains, "edges", edges);
}

int sage__plan_document_reqs(const json_t *doc, sage__place_req **out, size_t *n, char *err, size_t err_len)
{
    json_t *chains = json_object_get(doc, "chains");
    if (!json_is_array(chains) || json_array_size(chains) == 0 || json_array_size(chains) > 4096) {
        snprintf(err, err_len, "submit: the plan has no chains (or more than 4096)");
        return SAGE_EPROTO;
    }
    size_t nc = json_array_size(chains);
    sage__place_req *r = calloc(nc, sizeof *r);
    if (!r) {
        snprintf(err, err_len, "submit: out of memory reading the plan");
        return SAGE_ENOMEM;
    }
    for (size_t i = 0; i < nc; i++) {
        json_t *c = json_array_get(chains, i);
        r[i].name = json_string_value(json_object_get(c, "name"));
        json_t *par = json_object_get(c, "parallelism");
        json_int_t p = json_integer_value(par);
        if (!r[i].name || !json_is_integer(par) || p < 1 || p > SAGE_PARALLELISM_MAX) {
            snprintf(err, err_len, "submit: chain %zu has no name or a parallelism outside 1..%d", i,
                     SAGE_PARALLELISM_MAX);
            free(r);
            return SAGE_EPROTO;
        }
        r[i].parallelism = (int)p;
        json_t *svc = json_object_get(c, "service");
        if (svc && (!json_is_string(svc) || p != 1)) {
            snprintf(err, err_len, "submit: chain %zu: \"service\" must name a service, with parallelism 1", i);
            free(r);
            return SAGE_EPROTO;
        }
        if (!svc && i > 0 && json_object_get(json_array_get(chains, i - 1), "service")) {
            snprintf(err, err_len, "submit: chain %zu follows a service (the services come after every chain)", i);
            free(r);
            return SAGE_EPROTO;
        }
        json_t *res = json_object_get(c, "resources");
        if (json_is_object(res)) {
            char rerr[512];
            char *txt = json_dumps(res, JSON_COMPACT);
            int rc = txt ? sage_resources_parse(txt, &r[i].res, rerr, sizeof rerr) : SAGE_ENOMEM;
            free(txt);
            if (rc != 0) {
                snprintf(err, err_len, "operator \"%s\": resources: %s", r[i].name,
                         rc == SAGE_ENOMEM ? "out of memory" : rerr);
                free(r);
                return rc;
            }
        } else if (res && !json_is_null(res)) {
            snprintf(err, err_len, "operator \"%s\": resources: expected an object", r[i].name);
            free(r);
            return SAGE_ERESOURCES;
        }
    }
    *out = r;
    *n = nc;
    return 0;
}
