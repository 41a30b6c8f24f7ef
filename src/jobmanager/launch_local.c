/* jobmanager/launch_local.c - the local launcher: every task a worker process on this host (cgroup, cores, GPUs).
 *
 * Design note: removing a task's cgroup. When a job ends its workers have
 * been reaped, but what they started may still be dying, and the kernel
 * releases an emptied group a moment after its last process is reaped:
 * rmdir fails with EBUSY meanwhile. The loop never waits for that. At the
 * job's end each group is killed (every process in it) and removed in one
 * attempt; a group that is still busy joins d->dying and is retried from
 * the loop's timers (local_timers), killed again each time, after 1, 2, 4
 * ... ms, at most 250 ms apart; one still busy after CG_GIVE_UP_MS is left
 * (and said in the log) for the next start of a JobManager, which removes
 * the groups of daemons that are gone.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "jobmanager/launcher.h"
#include "util/err.h"
#include "util/time.h"

#define CG_RETRY_MAX_MS 250
#define CG_GIVE_UP_MS 60000

/* A task cgroup whose removal waits (d->dying). */
typedef struct jm_cg_dying {
    sage__cgroup cg;
    int64_t since, next_at; /* sage__mono_ms */
    int tries;
    struct jm_cg_dying *next;
} jm_cg_dying;

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
        /* the attempt in the name: the last attempt's group may still be going (local_ended) */
        sage__fmt(name, sizeof name, "jm%ld-job%lld-task%d-run%d", (long)d->pid, (long long)j->id, k->index,
                  j->restarts);
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

/* One attempt: kill what is left, remove. 0 gone, 1 busy, < 0 cannot be removed (why says so). */
static int cg_try(sage__cgroup *cg, char *why, size_t why_len)
{
    sage__cgroup_kill(cg);
    return sage__cgroup_remove(cg, why, why_len);
}

static int local_timers(jm *d, int64_t now)
{
    int64_t next = -1;
    for (jm_cg_dying **pp = &d->dying; *pp;) {
        jm_cg_dying *g = *pp;
        if (g->next_at > now) {
            next = next < 0 || g->next_at - now < next ? g->next_at - now : next;
            pp = &g->next;
            continue;
        }
        char why[600] = "";
        int rc = cg_try(&g->cg, why, sizeof why);
        if (rc == 1 && now - g->since < CG_GIVE_UP_MS) {
            int64_t wait = g->tries < 8 ? (int64_t)1 << g->tries : CG_RETRY_MAX_MS;
            g->tries++;
            g->next_at = now + (wait < CG_RETRY_MAX_MS ? wait : CG_RETRY_MAX_MS);
            next = next < 0 || g->next_at - now < next ? g->next_at - now : next;
            pp = &g->next;
            continue;
        }
        if (rc != 0)
            jm_log(d, "cgroup left behind after %lld ms and %d tries: %s (a later JobManager removes it)",
                   (long long)(now - g->since), g->tries + 1, why);
        *pp = g->next;
        free(g);
    }
    return (int)next;
}

/* Queue a group for removal from the timers (first try at once). */
static void cg_retire(jm *d, sage__cgroup *cg, const char *what)
{
    char why[600] = "";
    int rc = cg_try(cg, why, sizeof why);
    jm_cg_dying *g = rc == 1 ? calloc(1, sizeof *g) : NULL;
    if (rc < 0 || (rc == 1 && !g)) {
        jm_log(d, "%s: cgroup left behind: %s", what, rc < 0 ? why : "out of memory");
        return;
    }
    if (!g)
        return;
    g->cg = *cg;
    g->since = g->next_at = sage__mono_ms();
    g->next = d->dying;
    d->dying = g;
}

/* The job ended: its tasks' groups go now, or from the timers once the kernel lets them. */
static void local_ended(jm *d, jm_job *j)
{
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if (!k->has_cg)
            continue;
        char what[64];
        sage__fmt(what, sizeof what, "job %lld task %d", (long long)j->id, k->index);
        k->has_cg = 0;
        cg_retire(d, &k->cg, what);
    }
}

static void stale_group(const char *name, void *arg)
{
    jm *d = arg;
    sage__cgroup cg;
    if (sage__cgroup_existing(&cg, d->cgmode, d->cgparent, name) == 0)
        cg_retire(d, &cg, name);
}

/* Once the loop runs: what JobManagers that died (kill -9, a crash) left. Their groups may still hold what
 * their workers started (PR_SET_PDEATHSIG reaches the workers only): kill it, remove them; and the sockets
 * of the jobs they left unfinished. */
static void local_started(jm *d)
{
    jm_jobs_leftovers(d);
    int n = sage__cgroup_each_stale(d->cgmode, d->cgparent, (long)d->pid, stale_group, d);
    if (n > 0)
        jm_log(d, "removing %d worker cgroup(s) left by JobManagers that are gone (what still ran in them is killed)",
               n);
}

/* At exit: one last try for what waits; the rest is for the next start. */
static void local_fini(jm *d)
{
    while (d->dying) {
        jm_cg_dying *g = d->dying;
        d->dying = g->next;
        cg_try(&g->cg, NULL, 0);
        free(g);
    }
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
    .started = local_started,
    .ended = local_ended,
    .timers = local_timers,
    .fini = local_fini,
    .task_host = local_task_host,
};
