/* cli/cluster_res.c - what a node offers Slurm: --cpus/--memory/--gpus/--resources, host defaults, gres files. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"

int cluster_parse_resources(const char *spec, cluster_res *r)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", spec) >= (int)sizeof buf)
        return cluster_usage("--resources is too long");
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return cluster_usage("--resources: '%s' is not name=amount", tok);
        *eq = '\0';
        const char *name = tok;
        long amount;
        if (!*name || strlen(name) >= 64)
            return cluster_usage("--resources: a resource needs a name (up to 63 characters)");
        for (const char *p = name; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_')
                return cluster_usage("--resources: '%s': names are letters, digits and _", name);
        if (!strcmp(name, "gpu") || !strcmp(name, "cpu") || !strcmp(name, "mem") || !strcmp(name, "memory"))
            return cluster_usage("--resources: '%s' is not a custom resource (use --cpus, --memory, --gpus)", name);
        if (cluster_number(eq + 1, 0, 1000000000L, &amount) != 0)
            return cluster_usage("--resources: %s=%s: the amount must be a whole number >= 0", name, eq + 1);
        for (int i = 0; i < r->ngres; i++)
            if (!strcmp(r->gres_name[i], name))
                return cluster_usage("--resources: %s given twice", name);
        if (r->ngres == CLUSTER_GRES_MAX)
            return cluster_usage("--resources: at most %d custom resources", CLUSTER_GRES_MAX);
        snprintf(r->gres_name[r->ngres], 64, "%s", name);
        r->gres_cnt[r->ngres++] = amount;
    }
    return 0;
}

/* Count of /dev/nvidia0, /dev/nvidia1, ... present. */
static long real_gpu_count(void)
{
    long n = 0;
    char path[64];
    for (;; n++) {
        snprintf(path, sizeof path, "/dev/nvidia%ld", n);
        if (!cluster_file_exists(path))
            return n;
    }
}

/* Fills in this host's defaults for what was not given. */
void cluster_host_defaults(cluster_res *r)
{
    if (r->cpus < 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        r->cpus = n > 0 ? n : 1;
    }
    if (r->mem_mb < 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        long long mb = pages > 0 && psize > 0 ? (long long)pages * psize / (1024 * 1024) : 1024;
        r->mem_mb = mb > 0 ? (long)mb : 1;
    }
    if (r->gpus < 0) {
        r->gpus = real_gpu_count();
        r->real_gpus = r->gpus > 0;
    }
}

/* "gpu:2,ssd:4" (what Slurm calls Gres= of a node); "" if none. */
void cluster_gres_spec(const cluster_res *r, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    if (r->gpus > 0)
        n += (size_t)snprintf(out + n, len - n, "gpu:%ld", r->gpus);
    for (int i = 0; i < r->ngres && n < len; i++)
        if (r->gres_cnt[i] > 0)
            n += (size_t)snprintf(out + n, len - n, "%s%s:%ld", n ? "," : "", r->gres_name[i], r->gres_cnt[i]);
}

void cluster_describe_res(const cluster_res *r, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "%ld CPUs, %ld MB memory, %ld GPU%s%s", r->cpus, r->mem_mb, r->gpus,
                                r->gpus == 1 ? "" : "s", r->real_gpus ? " (/dev/nvidia*)" : "");
    for (int i = 0; i < r->ngres && n < len; i++)
        if (r->gres_cnt[i] > 0)
            n += (size_t)snprintf(out + n, len - n, ", %s=%ld", r->gres_name[i], r->gres_cnt[i]);
}

/* Simulated GPUs: empty files <dir>/gpus/<node>/gpu0..N-1 (Slurm's gres.conf needs File= entries
 * that exist; it counts and allocates them but sets no CUDA_VISIBLE_DEVICES for them). */
int cluster_make_gpu_files(const char *node, const cluster_res *r)
{
    if (r->gpus <= 0 || r->real_gpus)
        return 0;
    char dir[PATH_MAX], f[PATH_MAX + 32];
    if (cluster_mkdir_p(cluster_path(dir, "gpus/%s", node), 0755) != 0)
        return cluster_fail("cannot create %s: %s", dir, strerror(errno));
    for (long i = 0; i < r->gpus; i++) {
        snprintf(f, sizeof f, "%s/gpu%ld", dir, i);
        int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return cluster_fail("cannot create %s: %s", f, strerror(errno));
        close(fd);
    }
    return 0;
}

/* The gres.conf lines of one node (every line starts with "NodeName=<node> "). */
static void gres_lines(const char *node, const cluster_res *r, cluster_text *m)
{
    char dir[PATH_MAX];
    if (r->gpus > 0) {
        if (r->real_gpus)
            cluster_textf(m, "NodeName=%s Name=gpu File=/dev/nvidia%s%ld%s\n", node, r->gpus > 1 ? "[0-" : "",
                          r->gpus > 1 ? r->gpus - 1 : 0, r->gpus > 1 ? "]" : "");
        else
            cluster_textf(m, "NodeName=%s Name=gpu File=%s/gpu%s%ld%s\n", node, cluster_path(dir, "gpus/%s", node),
                          r->gpus > 1 ? "[0-" : "", r->gpus > 1 ? r->gpus - 1 : 0, r->gpus > 1 ? "]" : "");
    }
    for (int i = 0; i < r->ngres; i++)
        if (r->gres_cnt[i] > 0)
            cluster_textf(m, "NodeName=%s Name=%s Count=%ld\n", node, r->gres_name[i], r->gres_cnt[i]);
}

/* gres-nodes.conf, included by gres.conf, holds every node's lines. Each node (head or worker)
 * rewrites its own lines there; the include is read from the local file system of each node,
 * which is how a worker's GPU files reach its slurmd in configless mode. */
int cluster_update_gres_nodes(const char *node, const cluster_res *r, int fresh)
{
    char path[PATH_MAX];
    cluster_path(path, "gres-nodes.conf");
    char *old = fresh ? NULL : cluster_read_file(path);
    cluster_text t;
    cluster_text_init(&t);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "NodeName=%s ", node);
    if (old) {
        for (char *line = old, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (strncmp(line, prefix, strlen(prefix)) != 0 && strncmp(line, "# gres of every node", 20) != 0)
                cluster_textf(&t, "%s\n", line);
        }
    }
    if (fresh || !old)
        cluster_textf(&t, "# gres of every node of the SAGE cluster, one NodeName= line per gres; "
                          "written by sage cluster start\n");
    gres_lines(node, r, &t);
    free(old);
    return cluster_text_write(&t, path);
}
