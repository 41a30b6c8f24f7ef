/* cli/cluster_stop.c - `sage cluster stop`: cancel the cluster's jobs, stop the daemons of this state dir. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "cluster/slurm.h"
#include "util/time.h"

/* Cancels every job of the cluster and waits (bounded) until none is left, so no step outlives
 * the slurmd that started it. */
static void cancel_jobs(const char *conf)
{
    char *so = NULL, msg[256];
    char *argv[] = {"squeue", "-h", "-o", "%i", NULL};
    if (sage__slurm_run(conf, argv, 10000, &so, msg, sizeof msg) != 0 || !so || !*so) {
        free(so);
        return;
    }
    char *ids[256];
    int n = 0;
    ids[n++] = "scancel";
    char *save = NULL;
    for (char *t = strtok_r(so, " \n", &save); t && n < 254; t = strtok_r(NULL, " \n", &save))
        ids[n++] = t;
    ids[n] = NULL;
    sage__slurm_run(conf, ids, 10000, NULL, msg, sizeof msg);
    free(so);
    int64_t deadline = sage__mono_ms() + 15000;
    while (sage__mono_ms() < deadline) {
        so = NULL;
        if (sage__slurm_run(conf, argv, 10000, &so, msg, sizeof msg) != 0 || !so || !*so) {
            free(so);
            return;
        }
        free(so);
        cluster_sleep_ms(CLUSTER_POLL_MS * 2);
    }
}

/* Stop one daemon of the state dir (<name>.pid, <name>.log), counting the result. */
static void stop_daemon(pid_t pid, const char *name, int *stopped, int *failed)
{
    char path[PATH_MAX];
    if (cluster_stop_pid(pid, name) != 0) {
        cluster_fail("%s (pid %ld) did not exit: read %s", name, (long)pid, cluster_path(path, "%s.log", name));
        *failed = 1;
        return;
    }
    printf("stopped %s (pid %ld)\n", name, (long)pid);
    unlink(cluster_path(path, "%s.pid", name));
    (*stopped)++;
}

int cluster_stop(void)
{
    char path[PATH_MAX], why[256];
    struct stat st;
    if (stat(cluster_dir, &st) != 0) {
        printf("no SAGE cluster in %s (nothing to stop)\n", cluster_dir);
        return EX_OK;
    }
    if (geteuid() != 0 && cluster_anything_running(why, sizeof why))
        return cluster_fail("the cluster's daemons run as root: run sage cluster stop as root");
    if (cluster_lock_state_dir())
        return EX_FAIL;

    int failed = 0, stopped = 0;
    pid_t ctld = cluster_live_daemon(cluster_path(path, "slurmctld.pid"), "slurmctld");
    if (ctld)
        cancel_jobs(cluster_path(path, "slurm.conf"));

    /* slurmd(s) of this state dir: the head's node and workers started from here, in network
     * namespaces or not (same pid namespace, same files). */
    char names[64][128];
    pid_t pids[64];
    int nd = 0;
    DIR *d = opendir(cluster_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && nd < 64) {
            size_t l = strlen(e->d_name);
            if (strncmp(e->d_name, "slurmd-", 7) != 0 || l <= 11 || strcmp(e->d_name + l - 4, ".pid") != 0)
                continue;
            pid_t pid = cluster_pidfile_read(cluster_path(path, "%s", e->d_name));
            if (pid && cluster_is_ours(pid, "slurmd")) {
                snprintf(names[nd], sizeof names[nd], "%.*s", (int)(l - 11), e->d_name + 7);
                pids[nd++] = pid;
            } else {
                unlink(path);
            }
        }
        closedir(d);
    }
    for (int i = 0; i < nd; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < nd; i++) {
        char what[160];
        snprintf(what, sizeof what, "slurmd %.127s", names[i]);
        if (cluster_stop_pid(pids[i], what) != 0) {
            cluster_fail("slurmd of node %s (pid %ld) did not exit: read %s", names[i], (long)pids[i],
                         cluster_path(path, "slurmd-%s.log", names[i]));
            failed = 1;
            continue;
        }
        printf("stopped slurmd of node %s (pid %ld)\n", names[i], (long)pids[i]);
        unlink(cluster_path(path, "slurmd-%s.pid", names[i]));
        stopped++;
        /* A worker of a head elsewhere: take its dynamic node out of the cluster. */
        char wconf[PATH_MAX];
        if (!ctld && cluster_file_exists(cluster_path(wconf, "worker.conf"))) {
            char arg[160], msg[256];
            snprintf(arg, sizeof arg, "nodename=%.127s", names[i]);
            char *argv[] = {"scontrol", "delete", arg, NULL};
            sage__slurm_run(wconf, argv, 10000, NULL, msg, sizeof msg);
        }
    }
    if (ctld)
        stop_daemon(ctld, "slurmctld", &stopped, &failed);
    pid_t munged = cluster_live_daemon(cluster_path(path, "munged.pid"), "munged");
    if (munged)
        stop_daemon(munged, "munged", &stopped, &failed);
    cluster_remove_stale_pidfiles();
    /* A configless slurmd links /run/slurm/conf to its cache in our spool: remove a link into it. */
    char target[PATH_MAX];
    ssize_t tl = readlink("/run/slurm/conf", target, sizeof target - 1);
    if (tl > 0) {
        target[tl] = '\0';
        if (cluster_arg_in_dir(target)) {
            unlink("/run/slurm/conf");
            rmdir("/run/slurm"); /* only if empty */
        }
    }
    if (!stopped && !failed)
        printf("no SAGE cluster running in %s (nothing to stop)\n", cluster_dir);
    return failed ? EX_FAIL : EX_OK;
}
