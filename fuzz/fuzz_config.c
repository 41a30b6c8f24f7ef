/* fuzz/fuzz_config.c - fuzzes the environment's configuration (JSON text), the node config inside it included. */
/*
 * Only text that starts with '{' (after blanks) is a configuration; anything
 * else would be read as a file path, which is not what this target is for.
 * A refusal must carry a non-empty message; an acceptance must leave every
 * value inside its documented range.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p != '{') {
        free(text);
        return 0;
    }
    sage__config cfg;
    sage__config_init(&cfg);
    sage__err err = {0};
    int rc = sage__config_parse(&cfg, text, &err);
    if (rc != 0 && (err.code != rc || err.msg[0] == '\0')) {
        fprintf(stderr, "fuzz_config: refused (%d) without a message or with another code (%d)\n", rc, err.code);
        abort();
    }
    if (rc == 0 && (cfg.max_parallelism < 1 || cfg.max_parallelism > SAGE_PARALLELISM_MAX || cfg.batch_bytes < 256 ||
                    cfg.channel_bytes < cfg.batch_bytes || cfg.max_record_bytes < 1 || cfg.flush_linger_us > 1000000 ||
                    cfg.jm_port < 0 || cfg.jm_port > 65535)) {
        fprintf(stderr, "fuzz_config: accepted a value outside its range\n");
        abort();
    }
    sage__config_free(&cfg);
    free(text);
    return 0;
}
