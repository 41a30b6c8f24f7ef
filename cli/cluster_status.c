/* cli/cluster_status.c - `sage cluster status [--json]`: every node with its state and what is allocated on it. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster/slurm.h"

/* --json: one object per node (the test and scripts read it with jq). */
static int print_json(const char *source, const char *conf, const sage__slurm_node *nodes, size_t n)
{
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "source", json_string(source));
    json_object_set_new(root, "conf", json_string(conf));
    json_object_set_new(root, "state_dir", json_string(cluster_dir));
    for (size_t i = 0; i < n; i++) {
        const sage__slurm_node *x = &nodes[i];
        json_t *j = json_object(), *flags = json_array(), *res = json_object();
        char fl[sizeof x->flags];
        snprintf(fl, sizeof fl, "%s", x->flags);
        char *save = NULL;
        for (char *f = strtok_r(fl, "+", &save); f; f = strtok_r(NULL, "+", &save))
            json_array_append_new(flags, json_string(f));
        const sage__slurm_gres *gpu = sage__slurm_gres_find(x, "gpu");
        for (int k = 0; k < x->ngres; k++)
            if (strcmp(x->g[k].name, "gpu") != 0 && (x->g[k].total || x->g[k].used))
                json_object_set_new(res, x->g[k].name,
                                    json_pack("{s:I,s:I}", "total", (json_int_t)x->g[k].total, "allocated",
                                              (json_int_t)x->g[k].used));
        json_object_set_new(j, "name", json_string(x->name));
        json_object_set_new(j, "state", json_string(x->state));
        json_object_set_new(j, "flags", flags);
        json_object_set_new(j, "address", json_string(x->address));
        json_object_set_new(j, "cpus",
                            json_pack("{s:I,s:I}", "total", (json_int_t)x->cpus, "allocated",
                                      (json_int_t)x->cpus_alloc));
        json_object_set_new(j, "memory_mb",
                            json_pack("{s:I,s:I}", "total", (json_int_t)x->mem_mb, "allocated",
                                      (json_int_t)x->mem_alloc_mb));
        json_object_set_new(j, "gpus",
                            json_pack("{s:I,s:I}", "total", (json_int_t)(gpu ? gpu->total : 0), "allocated",
                                      (json_int_t)(gpu ? gpu->used : 0)));
        json_object_set_new(j, "resources", res);
        json_object_set_new(j, "gres", json_string(x->gres));
        json_object_set_new(j, "reason", json_string(x->reason));
        json_array_append_new(arr, j);
    }
    json_object_set_new(root, "nodes", arr);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(root);
    return EX_OK;
}

/* A table, one line per node, and its reason when Slurm gives one. */
static int print_table(int ours, const char *conf, const sage__slurm_node *nodes, size_t n)
{
    printf("%s cluster (configuration %s): %zu node%s\n", ours ? "SAGE" : "site Slurm", conf, n, n == 1 ? "" : "s");
    const char *hdr[7] = {"NODE",
                          "STATE",
                          "ADDRESS",
                          "CPUS used/total",
                          "MEMORY_MB used/total",
                          "GPUS used/total",
                          "RESOURCES used/total"};
    size_t w[7];
    for (int c = 0; c < 7; c++)
        w[c] = strlen(hdr[c]);
    char(*cells)[7][256] = calloc(n ? n : 1, sizeof *cells);
    if (!cells)
        return cluster_fail("out of memory");
    for (size_t i = 0; i < n; i++) {
        const sage__slurm_node *x = &nodes[i];
        const sage__slurm_gres *gpu = sage__slurm_gres_find(x, "gpu");
        snprintf(cells[i][0], 256, "%s", x->name);
        snprintf(cells[i][1], 256, "%.60s%s%.190s", x->state, x->flags[0] ? "+" : "", x->flags);
        for (char *c = cells[i][1]; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        snprintf(cells[i][2], 256, "%s", x->address);
        snprintf(cells[i][3], 256, "%lld/%lld", (long long)x->cpus_alloc, (long long)x->cpus);
        snprintf(cells[i][4], 256, "%lld/%lld", (long long)x->mem_alloc_mb, (long long)x->mem_mb);
        snprintf(cells[i][5], 256, "%lld/%lld", (long long)(gpu ? gpu->used : 0), (long long)(gpu ? gpu->total : 0));
        size_t len = 0;
        cells[i][6][0] = '\0';
        for (int k = 0; k < x->ngres; k++)
            if (strcmp(x->g[k].name, "gpu") != 0 && (x->g[k].total || x->g[k].used) && len < 250)
                len += (size_t)snprintf(cells[i][6] + len, 256 - len, "%s%s=%lld/%lld", len ? " " : "", x->g[k].name,
                                        (long long)x->g[k].used, (long long)x->g[k].total);
        if (!cells[i][6][0])
            snprintf(cells[i][6], 256, "-");
        for (int c = 0; c < 7; c++)
            if (strlen(cells[i][c]) > w[c])
                w[c] = strlen(cells[i][c]);
    }
    for (int c = 0; c < 7; c++)
        printf("%-*s%s", c < 6 ? (int)w[c] : 0, hdr[c], c < 6 ? "  " : "\n");
    for (size_t i = 0; i < n; i++) {
        for (int c = 0; c < 7; c++)
            printf("%-*s%s", c < 6 ? (int)w[c] : 0, cells[i][c], c < 6 ? "  " : "\n");
        if (nodes[i].reason[0])
            printf("    reason: %s\n", nodes[i].reason);
    }
    free(cells);
    return EX_OK;
}

int cluster_status(const cluster_opts *o)
{
    char path[PATH_MAX], conf[PATH_MAX] = "", err[512];
    const char *source = "sage";
    const char *use = NULL; /* SLURM_CONF for the client commands; NULL: the site's own lookup */
    int ours = 0;
    if (cluster_live_daemon(cluster_path(path, "slurmctld.pid"), "slurmctld") &&
        cluster_file_exists(cluster_path(conf, "slurm.conf"))) {
        ours = 1;
    } else if (cluster_file_exists(cluster_path(conf, "worker.conf")) && cluster_anything_running(err, sizeof err)) {
        ours = 1; /* a worker of a head elsewhere */
    }
    if (ours) {
        use = conf;
    } else {
        source = "site";
        const char *env = getenv("SLURM_CONF");
        if (env && *env && !cluster_file_exists(env))
            return cluster_fail("no SAGE cluster is running in %s, and SLURM_CONF names %s, which does not exist",
                                cluster_dir, env);
        if (env && *env)
            snprintf(conf, sizeof conf, "%s", env);
        else if (cluster_file_exists("/etc/slurm/slurm.conf"))
            snprintf(conf, sizeof conf, "/etc/slurm/slurm.conf");
        else
            return cluster_fail("no SAGE cluster is running in %s and no Slurm configuration was found (SLURM_CONF "
                                "is unset, no /etc/slurm/slurm.conf); start one with: sage cluster start --head",
                                cluster_dir);
    }
    if (!cluster_have_program("sinfo") && !cluster_have_program("scontrol"))
        return cluster_fail("sinfo and scontrol not found in PATH: install slurm-client (scripts/deps.sh)");
    sage__slurm_node *nodes = NULL;
    size_t n = 0;
    sage__err e = {0};
    if (sage__slurm_collect(use, CLUSTER_WAIT_MS, &nodes, &n, &e) != 0)
        return cluster_fail("cannot read the nodes of the %s cluster (configuration %s): %s%s%s", source, conf, e.msg,
                            ours ? "; read " : "", ours ? cluster_path(path, "slurmctld.log") : "");
    int rc = o->json ? print_json(source, conf, nodes, n) : print_table(ours, conf, nodes, n);
    free(nodes);
    return rc;
}
