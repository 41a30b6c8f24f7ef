/* jobmanager/config.c - the JobManager's configuration (JSON text or file): node, data_plane, slurm, limits.
 *
 * Keys: "node" (this host's capacity, as in sage_env_create), "data_plane"
 * ("unix" or "tcp"), "slurm" ({"conf": "/abs/slurm.conf",
 * "command_timeout_ms": N}), "limits" (what a peer without the token may
 * cost, and the log's size: jm_limits). "slurm" picks the Slurm launcher
 * (and the tcp data plane) once, here; without it the local launcher runs
 * every task on this host. Unknown keys and bad values are refused with the
 * key named.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/slurm.h"
#include "jobmanager/launcher.h"
#include "util/err.h"

#define SLURM_TIMEOUT_MAX_MS 3600000

static int config_data_plane(jm *d, json_t *v, char *err, size_t err_len)
{
    const char *dp = json_string_value(v);
    if (dp && strcmp(dp, "unix") == 0) {
        d->data_plane = JM_DATA_UNIX;
        return 0;
    }
    if (dp && strcmp(dp, "tcp") == 0) {
        d->data_plane = JM_DATA_TCP;
        return 0;
    }
    char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    sage__fmt(err, err_len, "config: \"data_plane\" must be \"unix\" or \"tcp\", not %.200s", txt ? txt : "this value");
    free(txt);
    return SAGE_ECONFIG;
}

static int config_slurm(jm *d, json_t *v, char *err, size_t err_len)
{
    if (!json_is_object(v)) {
        sage__fmt(err, err_len, "config: \"slurm\" must be an object such as {\"conf\": \"/abs/path/slurm.conf\"}");
        return SAGE_ECONFIG;
    }
    const char *sk;
    json_t *sv;
    json_object_foreach(v, sk, sv)
    {
        if (strcmp(sk, "conf") != 0 && strcmp(sk, "command_timeout_ms") != 0) {
            sage__fmt(err, err_len, "config: unknown key \"slurm.%s\" (known: conf, command_timeout_ms)", sk);
            return SAGE_ECONFIG;
        }
    }
    const char *conf = json_string_value(json_object_get(v, "conf"));
    struct stat st;
    if (!conf || conf[0] != '/' || strlen(conf) >= sizeof d->slurm.conf) {
        sage__fmt(err, err_len, "config: \"slurm\": \"conf\" must be the absolute path of a slurm.conf");
        return SAGE_ECONFIG;
    }
    if (stat(conf, &st) != 0 || !S_ISREG(st.st_mode)) {
        sage__fmt(err, err_len, "config: \"slurm\": \"conf\": %s is not a readable file (%s)", conf,
                  strerror(errno ? errno : EINVAL));
        return SAGE_ECONFIG;
    }
    sage__strlcpy(d->slurm.conf, conf, sizeof d->slurm.conf);
    d->slurm.timeout_ms = SAGE__SLURM_WAIT_MS;
    json_t *t = json_object_get(v, "command_timeout_ms");
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > SLURM_TIMEOUT_MAX_MS) {
            sage__fmt(err, err_len, "config: \"slurm\": \"command_timeout_ms\" must be a whole number 1..%d",
                      SLURM_TIMEOUT_MAX_MS);
            return SAGE_ECONFIG;
        }
        d->slurm.timeout_ms = (int)json_integer_value(t);
    }
    d->launcher = &jm_slurm_launcher;
    return 0;
}

/* "limits": {"handshake_ms", "unauthenticated", "connections", "log_bytes", "refusal_log_ms"}, each a whole
 * number in its range. */
static int config_limits(jm *d, json_t *v, char *err, size_t err_len)
{
    static const struct {
        const char *key;
        long long lo, hi;
    } keys[] = {{"handshake_ms", 100, 600000},
                {"unauthenticated", 1, 1 << 20},
                {"connections", 8, 1 << 24},
                {"log_bytes", 4096, 1LL << 40},
                {"refusal_log_ms", 100, 3600000}};
    if (!json_is_object(v)) {
        sage__fmt(err, err_len, "config: \"limits\" must be an object such as {\"handshake_ms\": 5000}");
        return SAGE_ECONFIG;
    }
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        size_t i = 0;
        while (i < sizeof keys / sizeof keys[0] && strcmp(k, keys[i].key) != 0)
            i++;
        if (i == sizeof keys / sizeof keys[0]) {
            sage__fmt(err, err_len,
                      "config: unknown key \"limits.%s\" (known: handshake_ms, unauthenticated, connections, "
                      "log_bytes, refusal_log_ms)",
                      k);
            return SAGE_ECONFIG;
        }
        if (!json_is_integer(x) || json_integer_value(x) < keys[i].lo || json_integer_value(x) > keys[i].hi) {
            sage__fmt(err, err_len, "config: \"limits.%s\" must be a whole number %lld..%lld", k, keys[i].lo,
                      keys[i].hi);
            return SAGE_ECONFIG;
        }
        long long n = json_integer_value(x);
        switch (i) {
        case 0: d->limits.handshake_ms = (int)n; break;
        case 1: d->limits.unauthenticated = (int)n; break;
        case 2: d->limits.connections = (int)n; break;
        case 3: d->limits.log_bytes = n; break;
        default: d->limits.refusal_log_ms = (int)n; break;
        }
    }
    return 0;
}

/* Read the configuration (NULL: none) over this host's discovered capacity, and choose the launcher. */
int jm_config_load(jm *d, const char *config, char *err, size_t err_len)
{
    char nerr[1024];
    d->launcher = &jm_local_launcher;
    d->limits = (jm_limits){.handshake_ms = 5000,
                            .unauthenticated = 128,
                            .connections = 0,
                            .log_bytes = 10LL << 20,
                            .refusal_log_ms = 10000};
    if (sage__node_discover(&d->node, nerr, sizeof nerr) != 0) {
        sage__fmt(err, err_len, "discovering this node: %s", nerr);
        return SAGE_ESYS;
    }
    if (!config)
        return 0;
    json_error_t jerr;
    const char *p = config;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    json_t *root = *p == '{' ? json_loads(config, JSON_REJECT_DUPLICATES, &jerr)
                             : json_load_file(config, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        sage__fmt(err, err_len, "config: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return SAGE_ECONFIG;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        sage__fmt(err, err_len, "config: must be a JSON object such as {\"data_plane\": \"tcp\"}");
        return SAGE_ECONFIG;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "node") == 0) {
            if ((rc = sage__node_configure(&d->node, v, nerr, sizeof nerr)) != 0)
                sage__fmt(err, err_len, "%s", nerr);
        } else if (strcmp(key, "data_plane") == 0) {
            rc = config_data_plane(d, v, err, err_len);
        } else if (strcmp(key, "slurm") == 0) {
            rc = config_slurm(d, v, err, err_len);
        } else if (strcmp(key, "limits") == 0) {
            rc = config_limits(d, v, err, err_len);
        } else if (jm_worker_config_key(key)) { /* the workers' deadlines: workers.c */
            rc = jm_worker_config(d, key, v, err, err_len);
        } else {
            sage__fmt(err, err_len, "config: unknown key \"%s\" (known: node, data_plane, slurm, limits, %s)", key,
                      JM_WORKER_CONFIG_KEYS);
            rc = SAGE_ECONFIG;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && d->launcher == &jm_slurm_launcher) {
        /* workers run on the cluster's nodes: only the tcp data plane reaches between them */
        json_t *dp = json_object_get(root, "data_plane");
        if (dp && json_is_string(dp) && strcmp(json_string_value(dp), "tcp") != 0) {
            sage__fmt(err, err_len, "config: \"slurm\" needs \"data_plane\": \"tcp\" (workers run on other hosts)");
            rc = SAGE_ECONFIG;
        } else if (json_object_get(root, "node")) {
            sage__fmt(err, err_len,
                      "config: \"node\" and \"slurm\" exclude each other (on Slurm the nodes come from sinfo)");
            rc = SAGE_ECONFIG;
        }
        d->data_plane = JM_DATA_TCP;
    }
    json_decref(root);
    return rc;
}
