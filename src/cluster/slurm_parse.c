/* cluster/slurm_parse.c - reading what Slurm's commands print: sinfo JSON, scontrol and squeue text, gres, counts.
 *
 * Pure functions over text (no process, no I/O), fuzzed by fuzz/fuzz_sinfo.c
 * and table-tested by tests/unit/test_slurm_parse.c. The rule for bad
 * input: a field SAGE needs that is missing or malformed is an error that
 * names the node and the field; what SAGE only shows (address, reason,
 * allocated amounts) may be missing. Nothing is truncated silently: a
 * string longer than its field is an error too.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/slurm.h"
#include "sage/error.h"
#include "sage/resources.h"
#include "util/num.h"

/* ---- counts and gres --------------------------------------------------------- */

int sage__slurm_count(const char *text, int64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return SAGE_EINVAL;
    size_t nd = strspn(text, "0123456789");
    char digits[32];
    if (nd >= sizeof digits)
        return SAGE_ETOOBIG;
    memcpy(digits, text, nd);
    digits[nd] = '\0';
    int64_t v;
    int rc = sage__parse_i64(digits, 0, INT64_MAX, &v);
    if (rc != 0)
        return rc;
    char suffix = (char)toupper((unsigned char)text[nd]);
    if (suffix == '\0') {
        *out = v;
        return 0;
    }
    if (text[nd + 1] != '\0' || !strchr("KMGTP", suffix))
        return SAGE_EINVAL;
    /* K..T are sage_parse_bytes' KiB..TiB (one table of multipliers); P is 1024 T. */
    char bytes[48];
    snprintf(bytes, sizeof bytes, "%s%ciB", digits, suffix == 'P' ? 'T' : suffix);
    uint64_t b;
    if (sage_parse_bytes(bytes, &b, NULL, 0) != 0)
        return SAGE_ETOOBIG;
    if (suffix == 'P') {
        if (b > (uint64_t)INT64_MAX / 1024)
            return SAGE_ETOOBIG;
        b *= 1024;
    }
    *out = (int64_t)b;
    return 0;
}

/* A count field of a gres item: "2", "10G" (out of range too); a type that starts with a digit ("1g.5gb") is not one. */
static int is_count(const char *s)
{
    int64_t v;
    return sage__slurm_count(s, &v) != SAGE_EINVAL;
}

const sage__slurm_gres *sage__slurm_gres_find(const sage__slurm_node *n, const char *name)
{
    for (int i = 0; i < n->ngres; i++)
        if (strcmp(n->g[i].name, name) == 0)
            return &n->g[i];
    return NULL;
}

/* One item, without its "(...)" part: NAME[:TYPE...][:COUNT]. */
static int gres_item(sage__slurm_node *n, const char *item, int used, sage__err *e)
{
    char copy[256];
    const char *who = n->name[0] ? n->name : "?";
    if (sage__strlcpy(copy, item, sizeof copy) >= sizeof copy)
        return sage__errf(e, SAGE_EPROTO, "node %s: gres item \"%.40s...\" is longer than %zu characters", who, item,
                          sizeof copy - 1);
    char *colon = strchr(copy, ':');
    int64_t cnt = 1;
    if (colon) {
        *colon = '\0';
        const char *last = strrchr(colon + 1, ':');
        int typed = last != NULL; /* NAME:TYPE:COUNT */
        last = last ? last + 1 : colon + 1;
        if (is_count(last)) {
            int rc = sage__slurm_count(last, &cnt);
            if (rc != 0)
                return sage__errf(e, SAGE_EPROTO, "node %s: gres \"%s\": count %s is out of range (at most 2^63-1)",
                                  who, item, last);
        } else if (typed) { /* NAME:TYPE:x - a third field is the count */
            return sage__errf(e, SAGE_EPROTO,
                              "node %s: gres \"%s\": count \"%s\" is not a number (digits and one of K M G T P)", who,
                              item, last);
        } /* else NAME:TYPE, one of it */
    }
    if (!copy[0])
        return sage__errf(e, SAGE_EPROTO, "node %s: gres item \"%s\" has no name", who, item);
    if (strlen(copy) >= sizeof n->g[0].name)
        return sage__errf(e, SAGE_EPROTO, "node %s: gres name \"%.40s...\" is longer than %zu characters", who, copy,
                          sizeof n->g[0].name - 1);
    int i;
    for (i = 0; i < n->ngres; i++)
        if (strcmp(n->g[i].name, copy) == 0)
            break;
    if (i == n->ngres) {
        if (n->ngres == SAGE__SLURM_GRES_MAX)
            return sage__errf(e, SAGE_EPROTO, "node %s: more than %d distinct gres names", who, SAGE__SLURM_GRES_MAX);
        sage__strlcpy(n->g[i].name, copy, sizeof n->g[i].name);
        n->ngres++;
    }
    int64_t *acc = used ? &n->g[i].used : &n->g[i].total;
    if (cnt > INT64_MAX - *acc)
        return sage__errf(e, SAGE_EPROTO, "node %s: gres %s adds up past 2^63-1", who, copy);
    *acc += cnt;
    return 0;
}

int sage__slurm_parse_gres(sage__slurm_node *n, const char *s, int used, sage__err *e)
{
    if (!s || !*s || strcmp(s, "(null)") == 0 || strcmp(s, "N/A") == 0)
        return 0;
    const char *p = s;
    while (*p) {
        /* one item: up to a comma outside parentheses; "(S:0-1)" / "(IDX:0,2)" is dropped */
        const char *q = p, *paren = NULL;
        int depth = 0;
        while (*q && !(*q == ',' && depth == 0)) {
            if (*q == '(') {
                if (!paren)
                    paren = q;
                depth++;
            } else if (*q == ')' && depth > 0) {
                depth--;
            }
            q++;
        }
        if (depth != 0)
            return sage__errf(e, SAGE_EPROTO, "node %s: gres \"%s\": unbalanced parentheses",
                              n->name[0] ? n->name : "?", s);
        size_t len = (size_t)((paren ? paren : q) - p);
        if (len > 0) { /* empty items (",,") add nothing */
            char item[512];
            if (len >= sizeof item)
                return sage__errf(e, SAGE_EPROTO, "node %s: gres item \"%.40s...\" is too long",
                                  n->name[0] ? n->name : "?", p);
            memcpy(item, p, len);
            item[len] = '\0';
            int rc = gres_item(n, item, used, e);
            if (rc != 0)
                return rc;
        }
        p = *q ? q + 1 : q;
    }
    return 0;
}

/* ---- node states ------------------------------------------------------------- */

static const char *const unusable[] = {"DOWN",         "DRAIN",      "DRAINED",        "DRAINING",
                                       "FAIL",         "FAILING",    "NOT_RESPONDING", "FUTURE",
                                       "POWERED_DOWN", "POWER_DOWN", "INVALID_REG",    "INVALID",
                                       "UNKNOWN",      NULL};

static int bad_word(const char *w, size_t len)
{
    for (int b = 0; unusable[b]; b++)
        if (strlen(unusable[b]) == len && strncasecmp(w, unusable[b], len) == 0)
            return 1;
    return 0;
}

int sage__slurm_usable(const sage__slurm_node *n)
{
    if (bad_word(n->state, strlen(n->state)))
        return 0;
    for (const char *p = n->flags; *p;) {
        size_t l = strcspn(p, "+");
        if (bad_word(p, l))
            return 0;
        p += l;
        if (*p == '+')
            p++;
    }
    return 1;
}

int sage__slurm_has_flag(const sage__slurm_node *n, const char *flag)
{
    size_t fl = strlen(flag);
    for (const char *p = n->flags; *p;) {
        size_t l = strcspn(p, "+");
        if (l == fl && strncmp(p, flag, l) == 0)
            return 1;
        p += l;
        if (*p == '+')
            p++;
    }
    return 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Copy a whole string into a field, or fail naming both. */
static int set_field(char *dst, size_t cap, const char *src, const char *node, const char *field, sage__err *e)
{
    if (sage__strlcpy(dst, src, cap) >= cap)
        return sage__errf(e, SAGE_EPROTO, "node %s: %s \"%.40s...\" is longer than %zu characters", node, field, src,
                          cap - 1);
    return 0;
}

static int add_flag(sage__slurm_node *n, const char *flag, sage__err *e)
{
    size_t len = strlen(n->flags);
    if (len + 1 + strlen(flag) >= sizeof n->flags)
        return sage__errf(e, SAGE_EPROTO, "node %s: its state flags are longer than %zu characters", n->name,
                          sizeof n->flags - 1);
    snprintf(n->flags + len, sizeof n->flags - len, "%s%s", len ? "+" : "", flag);
    return 0;
}

/* A node listed before (sinfo lists a node once per partition it is in). */
static int seen(const sage__slurm_node *v, size_t m, const char *name)
{
    for (size_t k = 0; k < m; k++)
        if (strcmp(v[k].name, name) == 0)
            return 1;
    return 0;
}

/* ---- sinfo --json ------------------------------------------------------------ */

/* A non-negative integer field: a JSON integer, an integral real, or {"number": N} (newer data_parser). */
static int json_count(json_t *j, const char *node, const char *key, int required, int64_t *out, sage__err *e)
{
    *out = 0;
    if (json_is_object(j)) {
        if (json_is_true(json_object_get(j, "infinite")))
            return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"%s\" is infinite", node, key);
        j = json_object_get(j, "number");
    }
    if (!j || json_is_null(j))
        return required ? sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s has no \"%s\"", node, key) : 0;
    double d;
    if (json_is_integer(j))
        d = (double)json_integer_value(j);
    else if (json_is_real(j))
        d = json_real_value(j);
    else
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"%s\" is not a number", node, key);
    if (!(d >= 0) || d != floor(d) || d >= 9223372036854775807.0)
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"%s\" is %.17g, not a whole number 0..2^63-1", node,
                          key, d);
    *out = json_is_integer(j) ? json_integer_value(j) : (int64_t)d;
    return 0;
}

/* An optional string field ("" if missing or null). */
static int json_text(json_t *j, char *dst, size_t cap, const char *node, const char *key, sage__err *e)
{
    dst[0] = '\0';
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_string(j))
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"%s\" is not a string", node, key);
    return set_field(dst, cap, json_string_value(j), node, key, e);
}

#define MEM_MB_MAX (INT64_MAX >> 20) /* RealMemory in MiB whose bytes still fit */

static int sinfo_state(json_t *j, sage__slurm_node *x, sage__err *e)
{
    json_t *st = json_object_get(j, "state");
    if (json_is_string(st)) { /* 22.05: "idle" plus state_flags */
        if (set_field(x->state, sizeof x->state, json_string_value(st), x->name, "state", e) != 0)
            return SAGE_EPROTO;
        json_t *fl = json_object_get(j, "state_flags");
        if (fl && !json_is_array(fl))
            return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"state_flags\" is not an array", x->name);
        for (size_t k = 0; k < json_array_size(fl); k++)
            if (json_is_string(json_array_get(fl, k)) && add_flag(x, json_string_value(json_array_get(fl, k)), e))
                return SAGE_EPROTO;
    } else if (json_is_array(st) && json_array_size(st) > 0) { /* later versions: ["IDLE", "DRAIN"] */
        for (size_t k = 0; k < json_array_size(st); k++) {
            const char *s = json_string_value(json_array_get(st, k));
            if (!s)
                return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"state\" holds a non-string", x->name);
            if (k == 0 ? set_field(x->state, sizeof x->state, s, x->name, "state", e) : add_flag(x, s, e))
                return SAGE_EPROTO;
        }
    } else {
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s has no \"state\" (a string or a non-empty array)",
                          x->name);
    }
    lower(x->state);
    return 0;
}

static int sinfo_node(json_t *j, size_t index, sage__slurm_node *x, sage__err *e)
{
    memset(x, 0, sizeof *x);
    if (!json_is_object(j))
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: nodes[%zu] is not an object", index);
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !name[0])
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: nodes[%zu] has no \"name\"", index);
    if (set_field(x->name, sizeof x->name, name, "?", "name", e) != 0)
        return SAGE_EPROTO;
    if (sinfo_state(j, x, e) != 0 || json_count(json_object_get(j, "cpus"), name, "cpus", 1, &x->cpus, e) ||
        json_count(json_object_get(j, "alloc_cpus"), name, "alloc_cpus", 0, &x->cpus_alloc, e) ||
        json_count(json_object_get(j, "real_memory"), name, "real_memory", 1, &x->mem_mb, e) ||
        json_count(json_object_get(j, "alloc_memory"), name, "alloc_memory", 0, &x->mem_alloc_mb, e) ||
        json_text(json_object_get(j, "address"), x->address, sizeof x->address, name, "address", e) ||
        json_text(json_object_get(j, "reason"), x->reason, sizeof x->reason, name, "reason", e))
        return SAGE_EPROTO;
    if (x->mem_mb > MEM_MB_MAX)
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: real_memory %lld MB is out of range", name,
                          (long long)x->mem_mb);
    json_t *g = json_object_get(j, "gres"), *gu = json_object_get(j, "gres_used");
    if ((g && !json_is_string(g) && !json_is_null(g)) || (gu && !json_is_string(gu) && !json_is_null(gu)))
        return sage__errf(e, SAGE_EPROTO, "sinfo --json: node %s: \"gres\" and \"gres_used\" must be strings", name);
    const char *gs = json_string_value(g);
    if (set_field(x->gres, sizeof x->gres, gs && strcmp(gs, "(null)") != 0 ? gs : "", name, "gres", e) != 0 ||
        sage__slurm_parse_gres(x, gs, 0, e) != 0 || sage__slurm_parse_gres(x, json_string_value(gu), 1, e) != 0)
        return SAGE_EPROTO;
    return 0;
}

int sage__slurm_parse_sinfo(const char *text, sage__slurm_node **nodes, size_t *count, sage__err *e)
{
    json_error_t jerr;
    json_t *root = json_loads(text ? text : "", 0, &jerr);
    if (!root)
        return sage__errf(e, SAGE_EPROTO, "sinfo --json printed no JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                          jerr.column);
    json_t *arr = json_object_get(root, "nodes");
    if (!json_is_array(arr)) {
        json_decref(root);
        return sage__errf(e, SAGE_EPROTO, "sinfo --json printed no \"nodes\" array");
    }
    size_t n = json_array_size(arr), m = 0;
    sage__slurm_node *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        json_decref(root);
        return sage__errf(e, SAGE_ENOMEM, "out of memory reading %zu nodes", n);
    }
    for (size_t i = 0; i < n; i++) {
        if (sinfo_node(json_array_get(arr, i), i, &v[m], e) != 0) {
            free(v);
            json_decref(root);
            return SAGE_EPROTO;
        }
        if (!seen(v, m, v[m].name))
            m++;
    }
    json_decref(root);
    *nodes = v;
    *count = m;
    return 0;
}

/* ---- scontrol show nodes -o -d ------------------------------------------------ */

static int scontrol_num(const char *val, const char *node, const char *key, int64_t *out, sage__err *e)
{
    if (sage__parse_i64(val, 0, INT64_MAX, out) != 0)
        return sage__errf(e, SAGE_EPROTO, "scontrol: node %s: %s=%s is not a whole number", node, key, val);
    return 0;
}

/* One "NodeName=..." line (modified in place). */
static int scontrol_line(char *line, sage__slurm_node *x, sage__err *e)
{
    memset(x, 0, sizeof *x);
    char *reason = strstr(line, " Reason=");
    if (reason) {
        *reason = '\0';
        if (set_field(x->reason, sizeof x->reason, reason + 8, "?", "Reason", e) != 0)
            return SAGE_EPROTO;
    }
    int have_cpus = 0, have_mem = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *k = tok, *val = eq + 1, *who = x->name[0] ? x->name : "?";
        int rc = 0;
        if (!strcmp(k, "NodeName"))
            rc = set_field(x->name, sizeof x->name, val, "?", "NodeName", e);
        else if (!strcmp(k, "NodeAddr"))
            rc = set_field(x->address, sizeof x->address, val, who, "NodeAddr", e);
        else if (!strcmp(k, "CPUTot"))
            rc = scontrol_num(val, who, k, &x->cpus, e), have_cpus = 1;
        else if (!strcmp(k, "CPUAlloc"))
            rc = scontrol_num(val, who, k, &x->cpus_alloc, e);
        else if (!strcmp(k, "RealMemory"))
            rc = scontrol_num(val, who, k, &x->mem_mb, e), have_mem = 1;
        else if (!strcmp(k, "AllocMem"))
            rc = scontrol_num(val, who, k, &x->mem_alloc_mb, e);
        else if (!strcmp(k, "Gres"))
            rc = set_field(x->gres, sizeof x->gres, strcmp(val, "(null)") ? val : "", who, "Gres", e) ||
                 sage__slurm_parse_gres(x, val, 0, e);
        else if (!strcmp(k, "GresUsed"))
            rc = sage__slurm_parse_gres(x, val, 1, e);
        else if (!strcmp(k, "State")) {
            /* IDLE+DRAIN; the first word may carry Slurm's markers (IDLE*, MIXED~) */
            char st[512];
            if ((rc = set_field(st, sizeof st, val, who, "State", e)) != 0)
                return SAGE_EPROTO;
            char *save2 = NULL;
            int first = 1;
            for (char *f = strtok_r(st, "+", &save2); f && rc == 0; f = strtok_r(NULL, "+", &save2), first = 0) {
                if (first) {
                    f[strcspn(f, "*~#!%$@^-")] = '\0';
                    rc = set_field(x->state, sizeof x->state, f, who, "State", e);
                } else {
                    rc = add_flag(x, f, e);
                }
            }
            lower(x->state);
        }
        if (rc != 0)
            return SAGE_EPROTO;
    }
    if (!x->name[0])
        return sage__errf(e, SAGE_EPROTO, "scontrol: a NodeName= line without a name");
    if (!have_cpus || !have_mem || !x->state[0])
        return sage__errf(e, SAGE_EPROTO, "scontrol: node %s: no %s", x->name,
                          !have_cpus  ? "CPUTot"
                          : !have_mem ? "RealMemory"
                                      : "State");
    if (x->mem_mb > MEM_MB_MAX)
        return sage__errf(e, SAGE_EPROTO, "scontrol: node %s: RealMemory=%lld is out of range", x->name,
                          (long long)x->mem_mb);
    return 0;
}

int sage__slurm_parse_scontrol_nodes(const char *text, sage__slurm_node **nodes, size_t *count, sage__err *e)
{
    char *copy = strdup(text ? text : "");
    size_t cap = 16, n = 0;
    sage__slurm_node *v = calloc(cap, sizeof *v);
    if (!copy || !v) {
        free(copy);
        free(v);
        return sage__errf(e, SAGE_ENOMEM, "out of memory reading scontrol's nodes");
    }
    for (char *line = copy, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "NodeName=", 9) != 0)
            continue;
        if (n == cap) {
            sage__slurm_node *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                free(copy);
                free(v);
                return sage__errf(e, SAGE_ENOMEM, "out of memory reading scontrol's nodes");
            }
            v = nv;
            cap *= 2;
        }
        if (scontrol_line(line, &v[n], e) != 0) {
            free(copy);
            free(v);
            return SAGE_EPROTO;
        }
        if (!seen(v, n, v[n].name))
            n++;
    }
    free(copy);
    *nodes = v;
    *count = n;
    return 0;
}

/* ---- nodes for placement ------------------------------------------------------ */

static int placement_node(const sage__slurm_node *x, sage__node *nd, sage__err *e)
{
    memset(nd, 0, sizeof *nd);
    if (sage__strlcpy(nd->name, x->name, sizeof nd->name) >= sizeof nd->name)
        return sage__errf(e, SAGE_ECONFIG, "node %s: its name is longer than %zu characters", x->name,
                          sizeof nd->name - 1);
    nd->ncpus = x->cpus > SAGE__NODE_CPUS_MAX ? SAGE__NODE_CPUS_MAX : (int)x->cpus;
    nd->nreal = 0; /* Slurm binds the tasks: no real CPU set known here */
    nd->simulated = 1;
    nd->memory = (uint64_t)x->mem_mb << 20; /* bounded by MEM_MB_MAX when parsed */
    for (int i = 0; i < x->ngres; i++) {
        const sage__slurm_gres *g = &x->g[i];
        if (g->total <= 0)
            continue;
        if (strcmp(g->name, "gpu") == 0) {
            for (int64_t k = 0; k < g->total && nd->ngpus < SAGE__NODE_GPUS_MAX; k++, nd->ngpus++)
                nd->gpu_ids[nd->ngpus] = nd->ngpus;
            continue;
        }
        if (nd->ncustom >= SAGE_RES_CUSTOM_MAX || strlen(g->name) > SAGE_RES_NAME_MAX)
            return sage__errf(e, SAGE_ECONFIG,
                              "node %s: gres \"%s\" does not fit (at most %d resources of %d characters)", x->name,
                              g->name, SAGE_RES_CUSTOM_MAX, SAGE_RES_NAME_MAX);
        sage__strlcpy(nd->custom[nd->ncustom].name, g->name, sizeof nd->custom[0].name);
        nd->custom[nd->ncustom++].amount = (double)g->total;
    }
    return 0;
}

int sage__slurm_placement_nodes(const sage__slurm_node *v, size_t n, sage__node **out, size_t *count, sage__err *e)
{
    sage__node *nodes = calloc(n ? n : 1, sizeof *nodes);
    if (!nodes)
        return sage__errf(e, SAGE_ENOMEM, "out of memory for %zu nodes", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sage__slurm_usable(&v[i]))
            continue;
        if (placement_node(&v[i], &nodes[m], e) != 0) {
            free(nodes);
            return SAGE_ECONFIG;
        }
        m++;
    }
    if (m == 0) {
        free(nodes);
        return sage__errf(e, SAGE_EINFEASIBLE,
                          "the Slurm cluster reports no usable node (%zu listed, all down, drained or failing)", n);
    }
    *out = nodes;
    *count = m;
    return 0;
}

int sage__slurm_nodes_from_sinfo(const char *json, sage__node **out, size_t *count, sage__err *e)
{
    sage__slurm_node *v = NULL;
    size_t n = 0;
    int rc = sage__slurm_parse_sinfo(json, &v, &n, e);
    if (rc == 0)
        rc = sage__slurm_placement_nodes(v, n, out, count, e);
    free(v);
    return rc;
}

/* ---- other commands ------------------------------------------------------------- */

void sage__slurm_config_value(const char *text, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (ll > kl && !strncmp(line, key, kl) && (line[kl] == ' ' || line[kl] == '=')) {
            const char *v = memchr(line, '=', ll);
            if (v) {
                v++;
                while (*v == ' ')
                    v++;
                sage__fmt(out, len, "%.*s", (int)(ll - (size_t)(v - line)), v);
                return;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
}

void sage__slurm_job_state(const char *text, char *out, size_t len)
{
    out[0] = '\0';
    const char *st = strstr(text, "JobState="), *re = strstr(text, " Reason=");
    if (st)
        sage__fmt(out, len, "JobState=%.*s", (int)strcspn(st + 9, " \n"), st + 9);
    if (re) {
        size_t l = strlen(out);
        sage__fmt(out + l, len - l, "%sReason=%.*s", l ? " " : "", (int)strcspn(re + 8, " \n"), re + 8);
    }
}

int sage__slurm_parse_jobid(const char *text, long long *id, sage__err *e)
{
    char first[64];
    size_t l = strcspn(text ? text : "", ";\r\n");
    if (!text || l == 0 || l >= sizeof first)
        return sage__errf(e, SAGE_EPROTO, "sbatch printed no job id (\"%.40s\")", text ? text : "");
    memcpy(first, text, l);
    first[l] = '\0';
    int64_t v;
    if (sage__parse_i64(first, 1, INT64_MAX, &v) != 0)
        return sage__errf(e, SAGE_EPROTO, "sbatch printed \"%s\", not a job id", first);
    *id = (long long)v;
    return 0;
}

int sage__slurm_parse_queue_state(const char *text, char *state, size_t state_len, char *reason, size_t reason_len,
                                  sage__err *e)
{
    state[0] = reason[0] = '\0';
    /* one line per component of a heterogeneous job: the first that is not RUNNING speaks for the job */
    for (const char *t = text ? text : ""; *t;) {
        size_t l = strcspn(t, "\n");
        if (l > 0) {
            const char *bar = memchr(t, '|', l);
            if (!bar)
                return sage__errf(e, SAGE_EPROTO, "squeue printed \"%.*s\", not STATE|REASON", (int)(l > 80 ? 80 : l),
                                  t);
            size_t sl = (size_t)(bar - t), rl = l - sl - 1;
            if (sl == 0 || sl >= state_len)
                return sage__errf(e, SAGE_EPROTO, "squeue printed a state of %zu characters", sl);
            int running = sl == 7 && memcmp(t, "RUNNING", 7) == 0;
            if (!state[0] || (!running && strcmp(state, "RUNNING") == 0)) {
                sage__fmt(state, state_len, "%.*s", (int)sl, t);
                sage__fmt(reason, reason_len, "%.*s", (int)rl, bar + 1);
            }
        }
        t += l;
        if (*t == '\n')
            t++;
    }
    return 0;
}

size_t sage__slurm_each_step(const char *text, void (*fn)(long long job, long long step, const char *name, void *arg),
                             void *arg)
{
    size_t count = 0;
    for (const char *line = text ? text : ""; *line;) {
        size_t l = strcspn(line, "\n");
        char buf[512];
        if (l < sizeof buf) {
            memcpy(buf, line, l);
            buf[l] = '\0';
            char *bar = strchr(buf, '|'), *dot = strchr(buf, '.');
            int64_t job, step;
            if (bar && dot && dot < bar) {
                *bar = *dot = '\0';
                char *plus = strchr(buf, '+'); /* "J+K.S": step S of component K of heterogeneous job J */
                int64_t comp = 0;
                if (plus)
                    *plus = '\0';
                if ((!plus || sage__parse_i64(plus + 1, 0, INT32_MAX, &comp) == 0) &&
                    sage__parse_i64(buf, 1, INT64_MAX, &job) == 0 &&
                    sage__parse_i64(dot + 1, 0, INT64_MAX, &step) == 0) {
                    fn((long long)job, (long long)step, bar + 1, arg);
                    count++;
                }
            }
        }
        line += l;
        if (*line == '\n')
            line++;
    }
    return count;
}
