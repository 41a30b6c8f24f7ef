/* resources/node.c - what this host offers (discovery), node config overrides, and byte-count formatting. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resources/placement.h"
#include "util/err.h"

/* Cgroup limits at or above this are "no limit" (v1 reports 2^63 rounded
 * down to a page; nothing real has an exabyte). */
#define NODE_MEM_ABSURD (UINT64_C(1) << 60)

/* ---------------------------------------------------------------- discovery */

/* fopen for reading; a failure for want of memory sets *oom (discovery must
 * not mistake it for a missing file and report a wrong capacity). */
static FILE *open_read(const char *path, int *oom)
{
    FILE *f = fopen(path, "re");
    if (!f && errno == ENOMEM)
        *oom = 1;
    return f;
}

/* Read a file's first line into buf (newline stripped). 0 on success. */
static int read_first_line(const char *path, char *buf, size_t len, int *oom)
{
    FILE *f = open_read(path, oom);
    if (!f)
        return -1;
    char *ok = fgets(buf, (int)len, f);
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* A cgroup memory limit file: bytes, or 0 for "no limit"/unreadable. */
static uint64_t read_limit_file(const char *path, int *oom)
{
    char line[64];
    if (read_first_line(path, line, sizeof line, oom) != 0 || strcmp(line, "max") == 0)
        return 0;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(line, &end, 10);
    if (errno != 0 || end == line || *end != '\0' || v == 0 || v >= NODE_MEM_ABSURD)
        return 0;
    return (uint64_t)v;
}

/* Limit file under a cgroup mount: <mount><path>/<file>, falling back to
 * <mount>/<file> (inside a cgroup namespace the listed path may not exist). */
static uint64_t cgroup_limit(const char *mount, const char *cg_path, const char *file, int *oom)
{
    char path[4096];
    uint64_t v = 0;
    if (cg_path && cg_path[0] && strcmp(cg_path, "/") != 0) {
        int n = snprintf(path, sizeof path, "%s%s/%s", mount, cg_path, file);
        if (n > 0 && (size_t)n < sizeof path)
            v = read_limit_file(path, oom);
        if (v)
            return v;
    }
    int n = snprintf(path, sizeof path, "%s/%s", mount, file);
    if (n > 0 && (size_t)n < sizeof path)
        v = read_limit_file(path, oom);
    return v;
}

/* The smallest cgroup memory limit of this process (v2 and v1), 0 if none. */
static uint64_t discover_cgroup_memory(int *oom)
{
    FILE *f = open_read("/proc/self/cgroup", oom);
    if (!f)
        return 0;
    char line[4096];
    uint64_t best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "hierarchy-id:controllers:path" */
        char *c1 = strchr(line, ':');
        if (!c1)
            continue;
        char *c2 = strchr(c1 + 1, ':');
        if (!c2)
            continue;
        *c1 = '\0';
        *c2 = '\0';
        const char *id = line, *ctrls = c1 + 1, *path = c2 + 1;
        uint64_t v = 0;
        if (strcmp(id, "0") == 0 && ctrls[0] == '\0') {
            v = cgroup_limit("/sys/fs/cgroup", path, "memory.max", oom);
        } else {
            /* v1: the controller list is comma-separated */
            int has_memory = 0;
            const char *p = ctrls;
            while (*p) {
                size_t n = strcspn(p, ",");
                if (n == 6 && strncmp(p, "memory", 6) == 0)
                    has_memory = 1;
                p += n;
                if (*p == ',')
                    p++;
            }
            if (has_memory)
                v = cgroup_limit("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes", oom);
        }
        if (v && (best == 0 || v < best))
            best = v;
    }
    fclose(f);
    return best;
}

/* MemTotal from /proc/meminfo, else physical pages times page size. */
static uint64_t discover_mem_total(int *oom)
{
    FILE *f = open_read("/proc/meminfo", oom);
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "MemTotal:", 9) != 0)
                continue;
            errno = 0;
            char *end = NULL;
            unsigned long long kb = strtoull(line + 9, &end, 10);
            fclose(f);
            if (errno == 0 && end != line + 9 && kb > 0 && kb < (NODE_MEM_ABSURD >> 10))
                return (uint64_t)kb * 1024u;
            f = NULL;
            break;
        }
        if (f)
            fclose(f);
    }
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0)
        return (uint64_t)pages * (uint64_t)psize;
    return 0;
}

/* GPUs from CUDA_VISIBLE_DEVICES, read the way CUDA reads it: a comma list
 * of device ids, ending at the first entry that is not a non-negative
 * integer or repeats an earlier one ("" and "-1" mean none). UUID entries
 * ("GPU-...") therefore end the list; use indices for SAGE. */
static void discover_gpus_env(sage__node *n, const char *env)
{
    const char *p = env;
    n->ngpus = 0;
    while (*p && n->ngpus < SAGE__NODE_GPUS_MAX) {
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            break;
        errno = 0;
        char *end = NULL;
        long id = strtol(p, &end, 10);
        if (errno != 0 || end == p || id < 0 || id > 1000000)
            break;
        while (*end == ' ')
            end++;
        if (*end != ',' && *end != '\0')
            break;
        int dup = 0;
        for (int i = 0; i < n->ngpus; i++)
            if (n->gpu_ids[i] == (int)id)
                dup = 1;
        if (dup)
            break;
        n->gpu_ids[n->ngpus++] = (int)id;
        p = *end == ',' ? end + 1 : end;
    }
}

static void discover_gpus(sage__node *n, int *oom)
{
    const char *env = getenv("CUDA_VISIBLE_DEVICES");
    if (env) {
        discover_gpus_env(n, env);
        return;
    }
    n->ngpus = 0;
    DIR *d = opendir("/proc/driver/nvidia/gpus");
    if (!d && errno == ENOMEM)
        *oom = 1;
    if (!d)
        return;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            count++;
    closedir(d);
    if (count > SAGE__NODE_GPUS_MAX)
        count = SAGE__NODE_GPUS_MAX;
    for (int i = 0; i < count; i++)
        n->gpu_ids[i] = i;
    n->ngpus = count;
}

static void discover_cpus(sage__node *n)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    n->nreal = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set))
                n->real_cpus[n->nreal++] = c;
    }
    if (n->nreal == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        if (online < 1)
            online = 1;
        if (online > CPU_SETSIZE)
            online = CPU_SETSIZE;
        for (int c = 0; c < (int)online; c++)
            n->real_cpus[n->nreal++] = c;
    }
    n->ncpus = n->nreal > SAGE__NODE_CPUS_MAX ? SAGE__NODE_CPUS_MAX : n->nreal;
}

int sage__node_discover(sage__node *n, char *err, size_t err_len)
{
    if (!n) {
        sage__fmt(err, err_len, "node discovery: no node to fill");
        return SAGE_EINVAL;
    }
    memset(n, 0, sizeof *n);
    if (gethostname(n->name, sizeof n->name - 1) != 0 || n->name[0] == '\0')
        snprintf(n->name, sizeof n->name, "localhost");
    n->name[sizeof n->name - 1] = '\0';

    discover_cpus(n);

    int oom = 0;
    uint64_t total = discover_mem_total(&oom), limit = discover_cgroup_memory(&oom);
    n->memory = total;
    if (limit && (total == 0 || limit < total))
        n->memory = limit;

    discover_gpus(n, &oom);
    n->simulated = 0;
    n->ncustom = 0;
    if (oom) {
        sage__fmt(err, err_len, "node discovery: out of memory reading /proc and /sys");
        return SAGE_ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------- config */

/* A short rendering of a JSON value for "got ..." in messages. */
static void describe_json(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER: snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: snprintf(buf, len, "%g", json_real_value(v)); break;
    case JSON_STRING:
        snprintf(buf, len, "\"%.40s\"%s", json_string_value(v), json_string_length(v) > 40 ? "..." : "");
        break;
    case JSON_TRUE: snprintf(buf, len, "true"); break;
    case JSON_FALSE: snprintf(buf, len, "false"); break;
    case JSON_NULL: snprintf(buf, len, "null"); break;
    case JSON_OBJECT: snprintf(buf, len, "an object"); break;
    case JSON_ARRAY: snprintf(buf, len, "an array"); break;
    default: snprintf(buf, len, "an unknown value"); break;
    }
}

static int valid_custom_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > SAGE_RES_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

/* The names a request reserves for its own keys (same list as resources/spec.c), any case. */
static int reserved_name(const char *s)
{
    static const char *const names[] = {"CPU", "GPU", "memory", "object_store_memory", "num_cpus", "num_gpus"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *a = s, *b = names[i];
        while (*a && *b) {
            char x = *a, y = *b;
            if (x >= 'A' && x <= 'Z')
                x = (char)(x - 'A' + 'a');
            if (y >= 'A' && y <= 'Z')
                y = (char)(y - 'A' + 'a');
            if (x != y)
                break;
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0')
            return 1;
    }
    return 0;
}

static int configure_resources(sage__node *t, const json_t *v, char *err, size_t err_len)
{
    char got[96];
    if (!json_is_object(v)) {
        describe_json(v, got, sizeof got);
        sage__fmt(err, err_len, "node config: key \"resources\": expected an object of name -> amount, got %s", got);
        return SAGE_ECONFIG;
    }
    if (json_object_size(v) > SAGE_RES_CUSTOM_MAX) {
        sage__fmt(err, err_len, "node config: key \"resources\": at most %d resources, got %zu", SAGE_RES_CUSTOM_MAX,
                  json_object_size(v));
        return SAGE_ECONFIG;
    }
    size_t nc = 0;
    const char *name;
    const json_t *amt;
    json_object_foreach((json_t *)v, name, amt)
    {
        if (!valid_custom_name(name)) {
            sage__fmt(err, err_len,
                      "node config: key \"resources\": bad resource name \"%.80s\" (expected 1 to %d of "
                      "A-Z a-z 0-9 _ . : -)",
                      name, SAGE_RES_NAME_MAX);
            return SAGE_ECONFIG;
        }
        if (reserved_name(name)) {
            sage__fmt(err, err_len,
                      "node config: key \"resources\": \"%s\" is reserved (use the cpus, gpus and memory keys)", name);
            return SAGE_ECONFIG;
        }
        double a = json_is_number(amt) ? json_number_value(amt) : NAN;
        if (!(a > 0) || !isfinite(a)) {
            describe_json(amt, got, sizeof got);
            sage__fmt(err, err_len, "node config: key \"resources\": \"%s\" must be a number greater than 0, got %s",
                      name, got);
            return SAGE_ECONFIG;
        }
        snprintf(t->custom[nc].name, sizeof t->custom[nc].name, "%s", name);
        t->custom[nc].amount = a;
        nc++;
    }
    t->ncustom = nc;
    return 0;
}

int sage__node_configure(sage__node *n, const json_t *obj, char *err, size_t err_len)
{
    char got[96];
    if (!n) {
        sage__fmt(err, err_len, "node config: no node to configure");
        return SAGE_EINVAL;
    }
    if (!obj)
        return 0;
    if (!json_is_object(obj)) {
        describe_json(obj, got, sizeof got);
        sage__fmt(err, err_len, "node config: expected an object, got %s", got);
        return SAGE_ECONFIG;
    }
    /* Work on a copy so a bad key leaves *n untouched. */
    sage__node *t = malloc(sizeof *t);
    if (!t) {
        sage__fmt(err, err_len, "node config: out of memory");
        return SAGE_ENOMEM;
    }
    *t = *n;
    int rc = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= sizeof t->name ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                describe_json(v, got, sizeof got);
                sage__fmt(err, err_len, "node config: key \"name\": expected a string of 1 to %zu bytes, got %s",
                          sizeof t->name - 1, got);
                rc = SAGE_ECONFIG;
                break;
            }
            snprintf(t->name, sizeof t->name, "%s", json_string_value(v));
        } else if (strcmp(key, "cpus") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SAGE__NODE_CPUS_MAX) {
                describe_json(v, got, sizeof got);
                sage__fmt(err, err_len, "node config: key \"cpus\": expected a whole number from 1 to %d, got %s",
                          SAGE__NODE_CPUS_MAX, got);
                rc = SAGE_ECONFIG;
                break;
            }
            t->ncpus = (int)json_integer_value(v);
            t->simulated = 1;
        } else if (strcmp(key, "gpus") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > SAGE__NODE_GPUS_MAX) {
                describe_json(v, got, sizeof got);
                sage__fmt(err, err_len, "node config: key \"gpus\": expected a whole number from 0 to %d, got %s",
                          SAGE__NODE_GPUS_MAX, got);
                rc = SAGE_ECONFIG;
                break;
            }
            t->ngpus = (int)json_integer_value(v);
            for (int i = 0; i < t->ngpus; i++)
                t->gpu_ids[i] = i;
            t->simulated = 1;
        } else if (strcmp(key, "memory") == 0) {
            uint64_t bytes = 0;
            if (json_is_integer(v) && json_integer_value(v) > 0) {
                bytes = (uint64_t)json_integer_value(v);
            } else if (json_is_string(v)) {
                char perr[160];
                perr[0] = '\0';
                if (sage_parse_bytes(json_string_value(v), &bytes, perr, sizeof perr) != 0) {
                    sage__fmt(err, err_len, "node config: key \"memory\": %s", perr[0] ? perr : "not a byte count");
                    rc = SAGE_ECONFIG;
                    break;
                }
            }
            if (bytes == 0 || bytes >= (UINT64_C(1) << 63)) {
                describe_json(v, got, sizeof got);
                sage__fmt(err, err_len,
                          "node config: key \"memory\": expected a byte count greater than 0 such as \"64GB\" "
                          "or 68719476736, got %s",
                          got);
                rc = SAGE_ECONFIG;
                break;
            }
            t->memory = bytes;
            t->simulated = 1;
        } else if (strcmp(key, "resources") == 0) {
            rc = configure_resources(t, v, err, err_len);
            if (rc)
                break;
        } else {
            sage__fmt(err, err_len,
                      "node config: unknown key \"%.80s\" (expected name, cpus, gpus, memory or resources)", key);
            rc = SAGE_ECONFIG;
            break;
        }
    }
    if (rc == 0)
        *n = *t;
    free(t);
    return rc;
}

/* --------------------------------------------------------------- formatting */

/* Shortest exact text for a byte count: whole TB/GB/MB/KB (powers of 1000),
 * or TiB/GiB/MiB/KiB (powers of 1024) in quarters (".25", ".5", ".75") when
 * the value is at least one unit, else plain bytes. Ties go to the decimal
 * units, then the larger unit, then plain bytes. */
void sage__format_bytes(uint64_t bytes, char *buf, size_t len)
{
    static const struct {
        const char *suffix;
        uint64_t unit;
        int binary;
    } units[] = {
        {"TB", UINT64_C(1000000000000), 0}, {"GB", UINT64_C(1000000000), 0}, {"MB", UINT64_C(1000000), 0},
        {"KB", UINT64_C(1000), 0},          {"TiB", UINT64_C(1) << 40, 1},   {"GiB", UINT64_C(1) << 30, 1},
        {"MiB", UINT64_C(1) << 20, 1},      {"KiB", UINT64_C(1) << 10, 1},
    };
    static const char *const quarter[] = {"", ".25", ".5", ".75"};
    if (!buf || len == 0)
        return;
    char best[48], cand[48];
    best[0] = '\0';
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        uint64_t u = units[i].unit;
        if (bytes < u)
            continue;
        if (!units[i].binary) {
            if (bytes % u != 0)
                continue;
            snprintf(cand, sizeof cand, "%" PRIu64 "%s", bytes / u, units[i].suffix);
        } else {
            uint64_t q = u / 4;
            if (bytes % q != 0)
                continue;
            snprintf(cand, sizeof cand, "%" PRIu64 "%s%s", bytes / u, quarter[(bytes % u) / q], units[i].suffix);
        }
        if (best[0] == '\0' || strlen(cand) < strlen(best))
            snprintf(best, sizeof best, "%s", cand);
    }
    snprintf(cand, sizeof cand, "%" PRIu64 "B", bytes);
    if (best[0] == '\0' || strlen(cand) < strlen(best))
        snprintf(best, sizeof best, "%s", cand);
    snprintf(buf, len, "%s", best);
}
