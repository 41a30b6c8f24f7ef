/* fuzz/fuzz_plandoc.c - fuzzes the JobManager's reading of a submitted plan document (chains, parallelism, resources). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return 0;
    sage__place_req *reqs = NULL;
    size_t n = 0;
    char err[512] = "";
    int rc = sage__plan_document_reqs(doc, &reqs, &n, err, sizeof err);
    if (rc != 0) {
        if (err[0] == '\0' || reqs) {
            fprintf(stderr, "fuzz_plandoc: refused (%d) without a message, or left requests behind\n", rc);
            abort();
        }
    } else {
        char verr[512];
        for (size_t i = 0; i < n; i++)
            if (!reqs[i].name || reqs[i].parallelism < 1 || reqs[i].parallelism > SAGE_PARALLELISM_MAX ||
                sage_resources_validate(&reqs[i].res, verr, sizeof verr) != 0) {
                fprintf(stderr, "fuzz_plandoc: accepted chain %zu with a bad name, parallelism or resources\n", i);
                abort();
            }
        free(reqs);
    }
    json_decref(doc);
    return 0;
}
