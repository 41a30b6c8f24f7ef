/* graph/config.c - the environment's configuration: defaults, and JSON text or a file checked key by key. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "net/sock.h"
#include "resources/placement.h"
#include "util/json.h"
#include "util/suggest.h"

#define SAGE__CONFIG_FILE_MAX ((size_t)1 << 20) /* a config file is small */

void sage__config_init(sage__config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_parallelism = SAGE_PARALLELISM_MAX;
    cfg->batch_bytes = 16 * 1024;
    cfg->channel_bytes = 256 * 1024;
    cfg->max_record_bytes = 64u << 20;
    cfg->flush_linger_us = 200;
    cfg->loop_buffer_bytes = (size_t)256 << 20;
    cfg->jm_port = SAGE_JOBMANAGER_PORT;
    sage__strlcpy(cfg->jm_host, "127.0.0.1", sizeof cfg->jm_host);
}

void sage__config_free(sage__config *cfg)
{
    json_decref(cfg->node);
    cfg->node = NULL;
}

/* A byte quantity: a non-negative integer or a string with a unit. */
static int config_bytes(sage__err *e, const char *key, json_t *v, size_t lo, size_t hi, size_t *out)
{
    uint64_t b = 0;
    char err[256];
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        b = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if (sage_parse_bytes(json_string_value(v), &b, err, sizeof err) != 0)
            return sage__errf(e, SAGE_ECONFIG, "config key \"%s\": %s", key, err);
    } else {
        return sage__errf(e, SAGE_ECONFIG, "config key \"%s\": expected bytes (a number or a string like \"64KiB\")",
                          key);
    }
    if (b < lo || b > hi)
        return sage__errf(e, SAGE_ECONFIG, "config key \"%s\": %llu bytes is outside %zu..%zu", key,
                          (unsigned long long)b, lo, hi);
    *out = (size_t)b;
    return 0;
}

static int config_key(sage__config *cfg, const char *key, json_t *v, sage__err *e)
{
    if (strcmp(key, "max_parallelism") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SAGE_PARALLELISM_MAX)
            return sage__errf(e, SAGE_ECONFIG, "config key \"max_parallelism\": expected a whole number from 1 to %d",
                              SAGE_PARALLELISM_MAX);
        cfg->max_parallelism = (int)json_integer_value(v);
    } else if (strcmp(key, "batch_bytes") == 0) {
        return config_bytes(e, key, v, 256, 16u << 20, &cfg->batch_bytes);
    } else if (strcmp(key, "channel_bytes") == 0) {
        return config_bytes(e, key, v, 256, (size_t)1 << 32, &cfg->channel_bytes);
    } else if (strcmp(key, "loop_buffer_bytes") == 0) {
        return config_bytes(e, key, v, 64 * 1024, (size_t)1 << 40, &cfg->loop_buffer_bytes);
    } else if (strcmp(key, "max_record_bytes") == 0) {
        return config_bytes(e, key, v, 1, (size_t)1 << 31, &cfg->max_record_bytes);
    } else if (strcmp(key, "flush_linger_us") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
            return sage__errf(e, SAGE_ECONFIG,
                              "config key \"flush_linger_us\": expected microseconds from 0 to 1000000");
        cfg->flush_linger_us = (unsigned)json_integer_value(v);
    } else if (strcmp(key, "idle_spin_us") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000)
            return sage__errf(e, SAGE_ECONFIG, "config key \"idle_spin_us\": expected microseconds from 0 to 10000");
        cfg->idle_spin_us = (unsigned)json_integer_value(v);
    } else if (strcmp(key, "chain_threads") == 0) {
        if (json_is_string(v) && strcmp(json_string_value(v), "cpus") == 0)
            cfg->chain_threads = SAGE__CHAIN_THREADS_CPUS;
        else if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1024)
            return sage__errf(e, SAGE_ECONFIG,
                              "config key \"chain_threads\": expected a number of threads from 0 (one per instance) "
                              "to 1024, or \"cpus\"");
        else
            cfg->chain_threads = (int)json_integer_value(v);
    } else if (strcmp(key, "jobmanager") == 0) {
        if (!json_is_string(v) || sage__parse_hostport(json_string_value(v), cfg->jm_host, sizeof cfg->jm_host,
                                                       &cfg->jm_port, SAGE_JOBMANAGER_PORT) != 0)
            return sage__errf(e, SAGE_ECONFIG, "config key \"jobmanager\": expected \"host:port\"");
        cfg->has_jobmanager = 1;
    } else if (strcmp(key, "token_file") == 0) {
        if (!json_is_string(v) || !*json_string_value(v))
            return sage__errf(e, SAGE_ECONFIG, "config key \"token_file\": expected a path");
        if (sage__strlcpy(cfg->token_file, json_string_value(v), sizeof cfg->token_file) >= sizeof cfg->token_file)
            return sage__errf(e, SAGE_ECONFIG, "config key \"token_file\": the path is longer than %zu bytes",
                              sizeof cfg->token_file - 1);
    } else if (strcmp(key, "node") == 0) {
        if (!json_is_object(v))
            return sage__errf(e, SAGE_ECONFIG, "config key \"node\": expected an object");
        /* checked now, on a blank node, so a bad value is refused where it was written */
        sage__node *scratch = calloc(1, sizeof *scratch);
        if (!scratch)
            return sage__errf(e, SAGE_ENOMEM, "config key \"node\": out of memory");
        char why[512];
        int rc = sage__node_configure(scratch, v, why, sizeof why);
        free(scratch);
        if (rc != 0)
            return sage__errf(e, rc, "%s", why);
        json_decref(cfg->node);
        cfg->node = json_incref(v);
    } else if (strcmp(key, "fault_tolerance") == 0) {
        int rc = sage__ft_parse(&cfg->ft, v, e);
        if (rc != 0)
            return rc;
    } else if (strcmp(key, "restore_from") == 0) {
        if (!json_is_string(v) || !*json_string_value(v))
            return sage__errf(e, SAGE_ECONFIG, "config key \"restore_from\": expected the path of a checkpoint");
        if (sage__strlcpy(cfg->restore_from, json_string_value(v), sizeof cfg->restore_from) >=
            sizeof cfg->restore_from)
            return sage__errf(e, SAGE_ECONFIG, "config key \"restore_from\": the path is longer than %zu bytes",
                              sizeof cfg->restore_from - 1);
    } else {
        static const char *const known[] = {"max_parallelism", "batch_bytes",     "channel_bytes", "max_record_bytes",
                                            "flush_linger_us", "idle_spin_us",    "node",          "jobmanager",
                                            "token_file",      "fault_tolerance", "restore_from",  "loop_buffer_bytes",
                                            "chain_threads"};
        const char *near = sage__suggest(key, known, sizeof known / sizeof known[0]);
        char hint[96] = "";
        if (near)
            sage__fmt(hint, sizeof hint, "did you mean \"%s\"? ", near);
        return sage__errf(e, SAGE_ECONFIG,
                          "config: unknown key \"%s\" (%sknown: max_parallelism, batch_bytes, channel_bytes, "
                          "max_record_bytes, flush_linger_us, idle_spin_us, node, jobmanager, token_file, "
                          "fault_tolerance, restore_from, loop_buffer_bytes, chain_threads)",
                          key, hint);
    }
    return 0;
}

int sage__config_parse(sage__config *cfg, const char *config, sage__err *e)
{
    json_error_t jerr;
    json_t *root;
    const char *p = config;
    while (isspace((unsigned char)*p))
        p++;
    int text = *p == '{', oom = 0;
    root = text ? sage__json_loadb(config, strlen(config), JSON_REJECT_DUPLICATES, &jerr, &oom)
                : sage__json_load_file(config, SAGE__CONFIG_FILE_MAX, JSON_REJECT_DUPLICATES, &jerr, &oom);
    if (!root) {
        if (oom)
            return sage__errf(e, SAGE_ENOMEM, "config: out of memory reading it");
        if (jerr.line < 1) /* the file could not be read: no position to give */
            return sage__errf(e, SAGE_ECONFIG, "config %s: %s", config, jerr.text);
        return sage__errf(e, SAGE_ECONFIG, "config %s: %s (line %d, column %d)", text ? "text" : config, jerr.text,
                          jerr.line, jerr.column);
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = sage__errf(e, SAGE_ECONFIG, "config: expected a JSON object");
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
            if ((rc = config_key(cfg, key, v, e)) != 0)
                break;
        }
    }
    json_decref(root);
    if (rc == 0 && cfg->channel_bytes < cfg->batch_bytes)
        cfg->channel_bytes = cfg->batch_bytes;
    return rc;
}
