/* cli/cluster_wait.c - waiting (bounded) until the controller answers and a node is registered and usable. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "cluster/slurm.h"
#include "util/time.h"

int cluster_wait_ctld_up(const char *conf, const char *log)
{
    char pidf[PATH_MAX];
    cluster_path(pidf, "slurmctld.pid");
    int64_t start = sage__mono_ms(), deadline = start + CLUSTER_WAIT_MS;
    char last[512] = "no answer";
    for (;;) {
        char *so = NULL, msg[512];
        char *argv[] = {"scontrol", "ping", NULL};
        int rc = sage__slurm_run(conf, argv, 10000, &so, msg, sizeof msg);
        if (rc == 0 && so && strstr(so, "is UP")) {
            free(so);
            return 0;
        }
        if (so && *so)
            snprintf(last, sizeof last, "%.*s", (int)strcspn(so, "\n"), so);
        else if (msg[0])
            snprintf(last, sizeof last, "%s", msg);
        free(so);
        if (!cluster_live_daemon(pidf, "slurmctld") && sage__mono_ms() > start + 3000)
            return cluster_fail("slurmctld is not running (scontrol ping: %s): read %s", last, log);
        if (sage__mono_ms() > deadline)
            return cluster_fail("slurmctld did not answer within %d s (scontrol ping: %s): read %s",
                                CLUSTER_WAIT_MS / 1000, last, log);
        cluster_sleep_ms(CLUSTER_POLL_MS);
    }
}

/* Waits (bounded) until node `name` is registered and usable. slurmd_pidfile: fail early if it dies. */
int cluster_wait_node_idle(const char *conf, const char *name, const char *slurmd_pidfile, const char *log)
{
    int64_t start = sage__mono_ms(), deadline = start + CLUSTER_WAIT_MS;
    char last[512] = "not registered yet";
    for (;;) {
        sage__slurm_node *nodes = NULL;
        size_t n = 0;
        sage__err err = {0};
        int64_t left = deadline - sage__mono_ms();
        if (sage__slurm_collect(conf, left > 1000 ? (int)left : 1000, &nodes, &n, &err) == 0) {
            snprintf(last, sizeof last, "not registered yet");
            for (size_t i = 0; i < n; i++) {
                sage__slurm_node *x = &nodes[i];
                if (strcmp(x->name, name) != 0)
                    continue;
                snprintf(last, sizeof last, "state %.60s%s%.200s%s%.200s", x->state, x->flags[0] ? "+" : "", x->flags,
                         x->reason[0] ? ", reason: " : "", x->reason);
                if (sage__slurm_has_flag(x, "INVALID_REG") || sage__slurm_has_flag(x, "INVALID") ||
                    (sage__slurm_has_flag(x, "DRAIN") && x->reason[0])) {
                    free(nodes);
                    return cluster_fail("node %s registered but Slurm rejected it (%s): read %s", name, last, log);
                }
                if ((!strcmp(x->state, "idle") || !strcmp(x->state, "mixed") || !strcmp(x->state, "allocated")) &&
                    !sage__slurm_has_flag(x, "NOT_RESPONDING")) {
                    free(nodes);
                    return 0;
                }
            }
            free(nodes);
        } else {
            snprintf(last, sizeof last, "controller: %.400s", err.msg);
        }
        if (!cluster_live_daemon(slurmd_pidfile, "slurmd") && sage__mono_ms() > start + 3000)
            return cluster_fail("slurmd for node %s is not running (%s): read %s", name, last, log);
        if (sage__mono_ms() > deadline)
            return cluster_fail("node %s did not become idle within %d s (%s): read %s", name, CLUSTER_WAIT_MS / 1000,
                                last, log);
        cluster_sleep_ms(CLUSTER_POLL_MS);
    }
}
