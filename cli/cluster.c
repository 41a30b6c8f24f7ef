/* cli/cluster.c - `sage cluster`: a real Slurm cluster for SAGE, started and stopped by SAGE itself (options, dispatch).
 *
 *   start --head     munged (private socket), slurmctld and a slurmd for this host's resources (cluster_head.c)
 *   start --worker   a slurmd (and munged, unless one from this state dir runs) that joins a head:
 *                    configless (slurmd --conf-server) as a dynamic node (slurmd -Z --conf ...) (cluster_worker.c)
 *   status [--json]  every node: state, total and allocated CPUs, memory, GPUs and other gres (cluster_status.c)
 *   stop             stops what start started from this state dir, and nothing else (cluster_stop.c)
 *
 * Everything lives in the state dir ($SAGE_HOME/cluster; docs/cluster.md lists its files). Daemons are
 * started through cluster/spawn.c (cluster_daemons.c); Slurm's client commands (scontrol, sinfo, squeue,
 * scancel) run with SLURM_CONF set through the Slurm client the JobManager uses too (src/cluster/slurm.c),
 * which also reads their output. Every wait is bounded and a timeout names the log file to read.
 *
 * Exit codes: 0 done, 1 failed (the message says what failed and which log to read), 2 usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sage/sage.h>

#include "cluster.h"

static const char *const help_text =
    "usage: sage cluster <command> [options]\n"
    "\n"
    "A Slurm cluster started and stopped by SAGE (Slurm 22.05: munged, slurmctld, slurmd).\n"
    "\n"
    "commands:\n"
    "  start --head [--port N] [--address ADDR] [--name NODE] [resources] [--home DIR]\n"
    "      start munged, slurmctld and a slurmd for this host; print the command a worker runs to join\n"
    "  start --worker --head-address=HOST:PORT [--name NODE] [resources] [--home DIR]\n"
    "      start a slurmd here that joins that head (configless, as a dynamic node)\n"
    "  status [--json] [--home DIR]\n"
    "      every node with its state and total/allocated CPUs, memory, GPUs and other resources;\n"
    "      without a SAGE cluster in the state dir: the site's Slurm (SLURM_CONF or /etc/slurm/slurm.conf)\n"
    "  stop [--home DIR]\n"
    "      stop the Slurm daemons started from this state dir (never any other process)\n"
    "\n"
    "resources (default: this host's cores and memory, its /dev/nvidiaN GPUs, nothing else):\n"
    "  --cpus N                  CPUs the node offers\n"
    "  --memory SIZE             memory it offers: 64GB, 1.5GiB, or bytes\n"
    "  --gpus N                  GPUs (simulated by files in the state dir; Slurm gres \"gpu\")\n"
    "  --resources name=N,...    custom resources (Slurm gres); on the head, name=0 declares a name\n"
    "                            that only workers have\n"
    "\n"
    "options:\n"
    "  --port N            head: slurmctld port (default 6817); slurmd uses N+1\n"
    "  --address ADDR      head: IPv4 address the controller advertises to nodes\n"
    "                      (default: what the host name resolves to)\n"
    "  --head-address H:P  worker: the head's address and port (printed by start --head)\n"
    "  --name NODE         Slurm node name (default: the short host name)\n"
    "  --home DIR          SAGE state directory (default $SAGE_HOME, else ~/.sage); the cluster\n"
    "                      lives in DIR/cluster, which must be the same path on every node\n"
    "\n"
    "exit status: 0 done, 1 failed (the message names the log file to read), 2 usage error\n"
    "See docs/cluster.md.\n";

int sage_cluster_main(int argc, char **argv)
{
    cluster_opts o = {.port = 0};
    o.res.cpus = o.res.mem_mb = o.res.gpus = -1;
    if (argc < 2)
        return cluster_usage("missing command: start, status or stop");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help")) {
            fputs(help_text, stdout);
            return EX_OK;
        }
    o.cmd = argv[1];
    if (strcmp(o.cmd, "start") && strcmp(o.cmd, "status") && strcmp(o.cmd, "stop"))
        return cluster_usage("unknown command '%s': start, status or stop", o.cmd);

    for (int i = 2; i < argc; i++) {
        char opt[64];
        const char *a = argv[i], *val = NULL;
        if (strncmp(a, "--", 2) != 0)
            return cluster_usage("unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        snprintf(opt, sizeof opt, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        int takes = !strcmp(opt, "--port") || !strcmp(opt, "--address") || !strcmp(opt, "--head-address") ||
                    !strcmp(opt, "--name") || !strcmp(opt, "--home") || !strcmp(opt, "--cpus") ||
                    !strcmp(opt, "--memory") || !strcmp(opt, "--gpus") || !strcmp(opt, "--resources");
        if (takes) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cluster_usage("%s needs a value", opt);
        } else if (eq) {
            return cluster_usage("%s takes no value", opt);
        }
        int start_only = strcmp(o.cmd, "start") == 0;
        if (!strcmp(opt, "--home"))
            o.home = val;
        else if (!strcmp(opt, "--json") && !strcmp(o.cmd, "status"))
            o.json = 1;
        else if (!start_only)
            return cluster_usage("%s is not an option of `sage cluster %s`", opt, o.cmd);
        else if (!strcmp(opt, "--head"))
            o.head = 1;
        else if (!strcmp(opt, "--worker"))
            o.worker = 1;
        else if (!strcmp(opt, "--port")) {
            if (cluster_number(val, 1, 65534, &o.port) != 0)
                return cluster_usage("--port %s: a port number 1-65534 (slurmd takes the next one)", val);
        } else if (!strcmp(opt, "--address")) {
            struct in_addr ia;
            if (inet_pton(AF_INET, val, &ia) != 1)
                return cluster_usage("--address %s: an IPv4 address", val);
            o.address = val;
        } else if (!strcmp(opt, "--head-address"))
            o.head_address = val;
        else if (!strcmp(opt, "--name")) {
            if (!cluster_valid_name(val))
                return cluster_usage("--name %s: letters, digits, - _ . (up to 63)", val);
            o.name = val;
        } else if (!strcmp(opt, "--cpus")) {
            if (cluster_number(val, 1, 100000, &o.res.cpus) != 0)
                return cluster_usage("--cpus %s: a whole number >= 1", val);
        } else if (!strcmp(opt, "--gpus")) {
            if (cluster_number(val, 0, 1024, &o.res.gpus) != 0)
                return cluster_usage("--gpus %s: a whole number 0-1024", val);
        } else if (!strcmp(opt, "--memory")) {
            uint64_t bytes = 0;
            char err[256];
            if (sage_parse_bytes(val, &bytes, err, sizeof err) != SAGE_OK)
                return cluster_usage("--memory %s: %s", val, err);
            if (bytes < 1024 * 1024)
                return cluster_usage("--memory %s: at least 1MiB", val);
            o.res.mem_mb = (long)(bytes / (1024 * 1024));
        } else if (!strcmp(opt, "--resources")) {
            if (cluster_parse_resources(val, &o.res) != 0)
                return EX_USAGE;
        } else
            return cluster_usage("unknown option %s", opt);
    }
    if (!strcmp(o.cmd, "start")) {
        if (o.head == o.worker)
            return cluster_usage("start needs exactly one of --head or --worker");
        if (o.worker && !o.head_address)
            return cluster_usage("start --worker needs --head-address=HOST:PORT (printed by start --head)");
        if (o.head && o.head_address)
            return cluster_usage("--head-address is for --worker");
        if (o.worker && (o.port || o.address))
            return cluster_usage("--port and --address are for --head (a worker's slurmd uses the head's slurmd port)");
    }

    char home[PATH_MAX];
    if (sage_home_dir(o.home, home, sizeof home) != SAGE_OK || !home[0])
        return cluster_fail("cannot tell the SAGE state directory: give --home DIR or set SAGE_HOME");
    char abs_home[2 * PATH_MAX + 2];
    if (home[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return cluster_fail("cannot tell the current directory: %s", strerror(errno));
        snprintf(abs_home, sizeof abs_home, "%s/%s", cwd, home);
    } else {
        snprintf(abs_home, sizeof abs_home, "%s", home);
    }
    size_t hl = strlen(abs_home);
    while (hl > 1 && abs_home[hl - 1] == '/')
        abs_home[--hl] = '\0';
    if (hl + 200 >= sizeof cluster_dir)
        return cluster_usage("--home %s: path too long", abs_home);
    memcpy(cluster_dir, abs_home, hl);
    memcpy(cluster_dir + hl, "/cluster", sizeof "/cluster");
    if (!cluster_valid_dir_path(cluster_dir))
        return cluster_usage("the state directory %s cannot go into slurm.conf (no blanks or any of : # \" ' = , \\)",
                             cluster_dir);

    if (!strcmp(o.cmd, "status"))
        return cluster_status(&o);
    if (!strcmp(o.cmd, "stop"))
        return cluster_stop();
    return o.head ? cluster_start_head(&o) : cluster_start_worker(&o);
}
