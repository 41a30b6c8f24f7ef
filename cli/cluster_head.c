/* cli/cluster_head.c - `sage cluster start --head`: slurm.conf, munged, slurmctld and a slurmd for this host. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define MAX_NODE_COUNT 1024 /* MaxNodeCount: room for dynamic nodes */
#define DEF_MEM_PER_CPU 512 /* MB a job gets per CPU when it does not ask (--mem) */
#define PARTITION "sage"

static int write_slurm_conf(const char *name, const char *addr, long port, const cluster_res *r)
{
    char path[PATH_MAX], d[PATH_MAX], gres[512];
    cluster_text t, *m = &t;
    cluster_text_init(&t);
    snprintf(d, sizeof d, "%s", cluster_dir);
    cluster_gres_spec(r, gres, sizeof gres);
    cluster_textf(m,
                  "# slurm.conf of the SAGE cluster in %s, written by `sage cluster start --head`\n"
                  "# (rewritten on every start). Workers fetch it from slurmctld (configless).\n",
                  d);
    cluster_textf(m, "ClusterName=sage\n");
    cluster_textf(m, "SlurmctldHost=%s(%s)\n", name, addr);
    cluster_textf(m, "SlurmctldPort=%ld\nSlurmdPort=%ld\n", port, port + 1);
    cluster_textf(m, "SlurmUser=root\nSlurmdUser=root\n");
    cluster_textf(m, "AuthType=auth/munge\nAuthInfo=socket=%s/munge.socket\n", d);
    cluster_textf(m, "StateSaveLocation=%s/state\n", d);
    cluster_textf(m, "SlurmdSpoolDir=%s/spool/%%n\n", d);
    cluster_textf(m, "SlurmctldPidFile=%s/slurmctld.pid\nSlurmdPidFile=%s/slurmd-%%n.pid\n", d, d);
    cluster_textf(m, "SlurmctldLogFile=%s/slurmctld.log\nSlurmdLogFile=%s/slurmd-%%n.log\n", d, d);
    cluster_textf(m, "ProctrackType=proctrack/linuxproc\n"
                     "TaskPlugin=task/affinity\n"
                     "SelectType=select/cons_tres\n"
                     "SelectTypeParameters=CR_Core_Memory\n"
                     "SlurmdParameters=config_overrides\n"
                     "MpiDefault=none\n"
                     "SwitchType=switch/none\n"
                     "JobAcctGatherType=jobacct_gather/none\n"
                     "AccountingStorageType=accounting_storage/none\n");
    cluster_textf(m,
                  "# Workers: configless (slurmd --conf-server) dynamic nodes (slurmd -Z)\n"
                  "SlurmctldParameters=enable_configless\n"
                  "MaxNodeCount=%d\n"
                  "TreeWidth=65533\n",
                  MAX_NODE_COUNT);
    cluster_textf(m, "ReturnToService=2\nKillWait=5\nDefMemPerCPU=%d\n", DEF_MEM_PER_CPU);
    /* heterogeneous jobs (a SAGE job over several nodes) are started only by the backfill pass: every second */
    cluster_textf(m, "SchedulerParameters=bf_interval=1\n");
    cluster_textf(m, "GresTypes=gpu");
    for (int i = 0; i < r->ngres; i++)
        cluster_textf(m, ",%s", r->gres_name[i]);
    cluster_textf(m, "\n");
    cluster_textf(m, "NodeName=%s NodeAddr=%s CPUs=%ld RealMemory=%ld%s%s State=UNKNOWN\n", name, addr, r->cpus,
                  r->mem_mb, gres[0] ? " Gres=" : "", gres);
    cluster_textf(m, "PartitionName=%s Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n", PARTITION);
    if (cluster_text_write(&t, cluster_path(path, "slurm.conf")) != 0)
        return EX_FAIL;
    char gconf[PATH_MAX * 2];
    snprintf(gconf, sizeof gconf,
             "# gres.conf of the SAGE cluster, written by `sage cluster start --head`.\n"
             "# Each node's lines are in the included file, read on that node (see docs/cluster.md).\n"
             "AutoDetect=off\n"
             "Include %s/gres-nodes.conf\n",
             d);
    if (cluster_write_file(cluster_path(path, "gres.conf"), gconf, 0644) != 0)
        return cluster_fail("cannot write %s: %s", path, strerror(errno));
    return cluster_update_gres_nodes(name, r, 1);
}

int cluster_start_head(const cluster_opts *o)
{
    static const char *const progs[] = {"munged", "slurmctld", "slurmd", "scontrol", "sinfo", NULL};
    if (cluster_need_root() || cluster_need_programs(progs))
        return EX_FAIL;
    char name[128], addr[64], home[PATH_MAX];
    if (cluster_node_name(o, name, sizeof name))
        return EX_USAGE;
    if (o->address)
        snprintf(addr, sizeof addr, "%s", o->address);
    else
        cluster_default_address(addr, sizeof addr);
    long port = o->port ? o->port : CLUSTER_DEFAULT_PORT;
    cluster_res r = o->res;
    cluster_host_defaults(&r);

    char path[PATH_MAX], conf[PATH_MAX], why[256];
    if (cluster_mkdir_p(cluster_dir, 0700) != 0)
        return cluster_fail("cannot create the state directory %s: %s", cluster_dir, strerror(errno));
    if (cluster_lock_state_dir())
        return EX_FAIL;
    cluster_home(home, sizeof home);
    if (cluster_anything_running(why, sizeof why))
        return cluster_fail("a SAGE cluster is already running in %s (%s); stop it first: sage cluster stop --home %s",
                            cluster_dir, why, home);
    if (!cluster_port_free((int)port) || !cluster_port_free((int)port + 1))
        return cluster_fail("port %ld or %ld is in use on this host: choose another with --port", port, port + 1);
    cluster_remove_stale_pidfiles();
    if (cluster_mkdir_p(cluster_path(path, "state"), 0700) != 0 ||
        cluster_mkdir_p(cluster_path(path, "spool"), 0755) != 0)
        return cluster_fail("cannot create %s: %s", path, strerror(errno));
    if (cluster_create_munge_key(cluster_path(path, "munge.key")) || cluster_make_gpu_files(name, &r) ||
        write_slurm_conf(name, addr, port, &r))
        return EX_FAIL;
    cluster_path(conf, "slurm.conf");

    if (cluster_start_munged())
        goto fail;

    char ctld_log[PATH_MAX], d_log[PATH_MAX];
    cluster_path(ctld_log, "slurmctld.log");
    cluster_rotate_log(ctld_log);
    {
        /* -c: start from a clean state (no jobs or nodes of an earlier run of this state dir). */
        char *argv[] = {"slurmctld", "-f", conf, "-c", NULL};
        int rc = cluster_run_daemon(argv, ctld_log, conf);
        if (rc != 0) {
            cluster_fail("slurmctld failed to start (exit %d): read %s", rc, ctld_log);
            goto fail;
        }
        cluster_note_started(cluster_path(path, "slurmctld.pid"), "slurmctld");
    }
    if (cluster_wait_ctld_up(conf, ctld_log))
        goto fail;

    cluster_path(d_log, "slurmd-%s.log", name);
    {
        char *argv[] = {"slurmd", "-f", conf, "-N", name, NULL};
        if (cluster_start_slurmd(argv, name, conf, conf))
            goto fail;
    }

    char desc[512];
    cluster_describe_res(&r, desc, sizeof desc);
    printf("SAGE cluster started in %s\n", cluster_dir);
    printf("  controller  slurmctld on %s (%s), port %ld; slurmd port %ld\n", name, addr, port, port + 1);
    printf("  node %-6s %s: idle\n", name, desc);
    printf("  logs        %s/slurmctld.log, %s, %s/munged.log\n", cluster_dir, d_log, cluster_dir);
    printf("Use it with the Slurm commands:\n");
    printf("  export SLURM_CONF=%s\n", conf);
    printf("  sinfo; srun hostname; sage cluster status --home %s\n", home);
    printf("Add a worker (another host, or a network namespace of this one):\n");
    printf("  1. give it the munge key: copy %s/munge.key to the same path there (owner root, mode 0400)\n",
           cluster_dir);
    printf("  2. run there (add --cpus/--memory/--gpus/--resources/--name as needed):\n");
    printf("     sage cluster start --worker --head-address=%s:%ld --home %s\n", addr, port, home);
    if (!strncmp(addr, "127.", 4))
        printf("  note: the controller advertises %s, which other hosts cannot reach; start the head with\n"
               "        --address ADDR (an address of this host the workers reach) to add workers\n",
               addr);
    printf("Stop: sage cluster stop --home %s\n", home);
    return EX_OK;

fail:
    cluster_undo_started();
    return EX_FAIL;
}
