/* jobmanager/launch_local.c - the local launcher: every task a worker process on this host (cgroup, cores, GPUs). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "jobmanager/launcher.h"
#include "util/err.h"

static const sage__node *local_nodes(const jm *d, size_t *n)
{
    *n = 1;
    return &d->node;
}

static int local_start(jm *d, jm_job *j) { return jm_job_start_tasks(d, j); }

/* A worker: the user's executable relaunched in its own memory cgroup, pinned to its cores, with its GPUs. */
static int local_spawn(jm *d, jm_job *j, jm_task *k, char *err, size_t err_len)
{
    const sage__assign *a = &j->assign[k->chain][k->instance];
    const char *exe;
    char **argv = NULL;
    int rc = jm_job_exec_args(j, &exe, &argv, err, err_len);
    if (rc != 0)
        return rc;
    if (d->cgmode != SAGE__CGROUP_NONE) {
        char name[64], cgerr[512];
        sage__fmt(name, sizeof name, "jm%ld-job%lld-task%d", (long)d->pid, (long long)j->id, k->index);
        if (sage__cgroup_create(&k->cg, d->cgmode, d->cgparent, name, k->mem_limit, cgerr, sizeof cgerr) == 0)
            k->has_cg = 1;
        else
            jm_log(d, "job %lld task %d: no cgroup (%s); its memory is not limited", (long long)j->id, k->index, cgerr);
    }
    jm_exec x = {.file = exe,
                 .argv = argv,
                 .pdeathsig = SIGKILL,
                 .cg = k->has_cg ? &k->cg : NULL,
                 .affinity = a->pin ? &a->affinity : NULL,
                 .listen_fd = k->listen_fd,
                 .cwd = json_string_value(json_object_get(j->doc, "cwd"))};
    rc = jm_exec_task(d, j, k, &x, err, err_len);
    free(argv);
    return rc;
}

static void local_stop(jm *d, jm_job *j)
{
    (void)d;
    jm_kill_processes(j);
}

/* On the unix data plane every worker is on this node; on tcp, the address its worker reached us from. */
static const char *local_task_host(const jm *d, const jm_task *k)
{
    return d->data_plane == JM_DATA_TCP && k->host[0] ? k->host : d->node.name;
}

const jm_launcher jm_local_launcher = {
    .name = "local",
    .nodes = local_nodes,
    .start = local_start,
    .spawn = local_spawn,
    .stop = local_stop,
    .task_host = local_task_host,
};
