/* jobmanager/launch_slurm.c - the Slurm launcher: one allocation per job, sized to what it holds on each node; each task an srun step.
 *
 * Design note. With config "slurm": {"conf": PATH} the nodes are the
 * cluster's (sinfo --json: read synchronously at start, before the daemon
 * serves anyone, and again, asynchronously, at a submit while no job is
 * live: the submit waits for it, other clients do not) and the data plane is
 * tcp. A placed job gets one allocation, atomically, that asks for what its
 * tasks hold on each node (node_size: the CPUs they reserve, the sum of their
 * memory requests, their GPUs and custom resources as gres), so jobs share
 * nodes as on one host: on one node a plain sbatch; on several a
 * heterogeneous job, one component per node, which Slurm starts only when
 * every component can (its backfill pass schedules those). The batch script
 * only sleeps. The job stays "pending" with Slurm's reason (squeue, polled
 * every SLURM_POLL_MS once the previous answer came; a heterogeneous job runs
 * when every component does) until the allocation runs; then each task is
 * started as `srun --jobid --overlap [--het-group] -w NODE ... -- env
 * CUDA_VISIBLE_DEVICES=<its GPUs> EXE ARGS` with the worker's environment
 * (--export=ALL): the srun is the task's process, so supervision is the
 * local one. Every step overlaps the others (the allocation holds exactly
 * what SAGE placed; the worker pins itself to its CPUs), so Slurm never
 * makes one wait for what SAGE lets tasks share. GPUs and custom resources
 * are SAGE's to count inside the allocation (see srun_argv). scancel
 * releases the allocation when the job fails, is canceled, or ends in any
 * way.
 *
 * Every Slurm command here is a jm_cmd (command.c): started, then finished
 * by a callback from the poll loop; the commands of one job run in order.
 * That order carries one rule: when a task fails while the allocation is
 * held, `scontrol show job` is asked first (task_failed) and the job does
 * not end until the answer is in (busy); an allocation that Slurm ended
 * under the job (scancel from outside, a node lost, a time limit) then
 * names the failure (JM_PRIO_ALLOCATION), and the scancel the failure
 * triggers runs after the question, so it cannot be mistaken for the cause.
 * A callback finds its job by id: an sbatch that answers for a job already
 * gone (canceled while it ran) releases the allocation it got at once.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/slurm.h"
#include "jobmanager/launcher.h"
#include "util/err.h"
#include "util/num.h"
#include "util/time.h"

#define SLURM_POLL_MS 500 /* squeue while an allocation is pending */
#define SLURM_STEP_POLLS 25
#define SLURM_STEP_POLL_MS 200

/* The comment every allocation of ours carries: which JobManager state dir made it. */
static void slurm_tag(const jm *d, char *buf, size_t len) { sage__fmt(buf, len, "sage-jobmanager:%s", d->home); }

/* Start a command; when it cannot even be queued, log why (the caller decides what that means). */
static int run(jm *d, int64_t job_id, long long arg, char *const argv[], jm_cmd_fn fn)
{
    char err[512];
    int rc = jm_cmd_run(d, job_id, arg, argv, fn, err, sizeof err);
    if (rc != 0)
        jm_log(d, "%s", err);
    return rc;
}

/* ---- nodes ---- */

static void list_stale(jm *d);
static void def_mem(jm *d);

static int slurm_init(jm *d, char *err, size_t err_len)
{
    /* Synchronous, and the only Slurm commands that are (with list_stale): the daemon does not serve anyone
     * yet. */
    sage__err e = {0};
    if (sage__slurm_nodes(d->slurm.conf, d->slurm.timeout_ms, &d->slurm.nodes, &d->slurm.nnodes, &e) != 0) {
        sage__fmt(err, err_len, "reading the Slurm cluster's nodes: %s", e.msg);
        return e.code;
    }
    list_stale(d);
    def_mem(d);
    return 0;
}

static void slurm_fini(jm *d)
{
    free(d->slurm.stale);
    d->slurm.stale = NULL;
    d->slurm.nstale = 0;
    free(d->slurm.nodes);
    d->slurm.nodes = NULL;
    d->slurm.nnodes = 0;
}

static const sage__node *slurm_nodes(const jm *d, size_t *n)
{
    *n = d->slurm.nnodes;
    return d->slurm.nodes;
}

static void on_sinfo(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r)
{
    (void)job_id, (void)arg;
    d->slurm.refreshing = 0;
    sage__err e = {0};
    sage__node *nodes = NULL;
    size_t n = 0;
    if (r->code != 0)
        sage__errf(&e, SAGE_ESYS, "sinfo --json (SLURM_CONF=%s): %s", d->slurm.conf,
                   r->msg[0] ? r->msg : "failed without a message");
    else if (sage__slurm_nodes_from_sinfo(r->out, &nodes, &n, &e) == 0) {
        free(d->slurm.nodes);
        d->slurm.nodes = nodes;
        d->slurm.nnodes = n;
    }
    char err[SAGE__ERRMSG_MAX + 64];
    sage__fmt(err, sizeof err, "reading the Slurm cluster's nodes: %s", e.msg);
    jm_submits_resume(d, e.code, err);
}

/* Nodes join and leave: read them again while no job holds a placement on them. */
static int slurm_refresh(jm *d, char *err, size_t err_len)
{
    if (d->slurm.refreshing)
        return 1;
    if (d->jobs)
        return 0;
    char *argv[] = {"sinfo", "--json", NULL};
    if (jm_cmd_run(d, 0, 0, argv, on_sinfo, err, err_len) != 0)
        return -1;
    d->slurm.refreshing = 1;
    return 1;
}

/* ---- allocations left by an earlier JobManager ---- */

static void on_stale_scancel(jm *d, int64_t job_id, long long id, const jm_cmd_result *r)
{
    (void)job_id;
    jm_log(d, "Slurm job %lld was left by an earlier JobManager of %s: %s%s", id, d->home,
           r->code == 0 ? "canceled" : "scancel failed: ", r->code == 0 ? "" : r->msg);
}

/* The memory a part of an allocation asks for per CPU when its tasks request none: the cluster's DefMemPerCPU
 * (`scontrol show config`, at start), else 1024 MB. */
#define DEF_MEM_PER_CPU_MB 1024
static void def_mem(jm *d)
{
    char *out = NULL, msg[512] = "", v[64] = "";
    char *argv[] = {"scontrol", "show", "config", NULL};
    int64_t mb = 0;
    if (sage__slurm_run(d->slurm.conf, argv, d->slurm.timeout_ms, &out, msg, sizeof msg) == 0 && out)
        sage__slurm_config_value(out, "DefMemPerCPU", v, sizeof v);
    free(out);
    d->slurm.def_mem_per_cpu_mb = sage__parse_i64(v, 1, 1 << 30, &mb) == 0 ? mb : DEF_MEM_PER_CPU_MB;
}

/* The allocations an earlier JobManager of this state dir left (its tag in their comment), from `squeue -h -o
 * "%i|%k"`: listed synchronously at start, before any job of ours can exist, so none of ours is taken for
 * one. A heterogeneous job's components ("12+1") count as their job. */
static void list_stale(jm *d)
{
    char *out = NULL, msg[512] = "", tag[1100];
    char *argv[] = {"squeue", "-h", "-o", "%i|%k", NULL};
    if (sage__slurm_run(d->slurm.conf, argv, d->slurm.timeout_ms, &out, msg, sizeof msg) != 0 || !out) {
        sage__fmt(d->slurm.stale_err, sizeof d->slurm.stale_err, "squeue: %s", msg[0] ? msg : "it failed");
        free(out);
        return;
    }
    slurm_tag(d, tag, sizeof tag);
    for (const char *line = out; *line;) {
        size_t l = strcspn(line, "\n");
        const char *bar = memchr(line, '|', l);
        char id[32];
        long long v;
        sage__err e = {0};
        if (bar && (size_t)(line + l - bar - 1) == strlen(tag) && strncmp(bar + 1, tag, strlen(tag)) == 0 &&
            (size_t)(bar - line) < sizeof id) {
            sage__fmt(id, sizeof id, "%.*s", (int)(strcspn(line, "+|")), line);
            long long *grown = realloc(d->slurm.stale, (d->slurm.nstale + 1) * sizeof *grown);
            if (sage__slurm_parse_jobid(id, &v, &e) == 0 && grown) {
                d->slurm.stale = grown;
                int known = 0;
                for (size_t i = 0; i < d->slurm.nstale && !known; i++)
                    known = d->slurm.stale[i] == v;
                if (!known)
                    d->slurm.stale[d->slurm.nstale++] = v;
            } else if (grown) {
                d->slurm.stale = grown;
            }
        }
        line += l;
        if (*line == '\n')
            line++;
    }
    free(out);
}

static void slurm_started(jm *d)
{
    char nodes[1024] = "";
    size_t o = 0;
    for (size_t i = 0; i < d->slurm.nnodes && o + 1 < sizeof nodes; i++) {
        char one[512];
        jm_node_text(&d->slurm.nodes[i], one, sizeof one);
        o += (size_t)snprintf(nodes + o, sizeof nodes - o, "%s%s", i ? ", " : "", one);
    }
    jm_log(d, "on Slurm (SLURM_CONF=%s): %zu nodes: %s", d->slurm.conf, d->slurm.nnodes, nodes);
    if (strncmp(d->host, "127.", 4) == 0 || strcmp(d->host, "localhost") == 0)
        jm_log(d, "warning: listening on %s: workers on other hosts cannot reach it (start with --host ADDR)", d->host);
    if (d->slurm.stale_err[0])
        jm_log(d, "could not look for allocations left by an earlier JobManager: %s", d->slurm.stale_err);
    for (size_t i = 0; i < d->slurm.nstale; i++) {
        char id[32];
        sage__fmt(id, sizeof id, "%lld", d->slurm.stale[i]);
        char *argv[] = {"scancel", id, NULL};
        run(d, 0, d->slurm.stale[i], argv, on_stale_scancel);
    }
}

/* ---- releasing an allocation ---- */

static void on_release(jm *d, int64_t job_id, long long id, const jm_cmd_result *r)
{
    if (r->code == 0)
        jm_log(d, "job %lld: Slurm allocation %lld released", (long long)job_id, id);
    else if (strstr(r->msg, "Invalid job id") || strstr(r->msg, "already completing or completed"))
        jm_log(d, "job %lld: Slurm allocation %lld had already ended", (long long)job_id, id);
    else
        jm_log(d, "job %lld: scancel %lld failed (%s); the allocation may still be held", (long long)job_id, id,
               r->msg[0] ? r->msg : "no message");
}

static void release_id(jm *d, int64_t job_id, long long id)
{
    char ids[32];
    sage__fmt(ids, sizeof ids, "%lld", id);
    char *argv[] = {"scancel", ids, NULL};
    if (run(d, job_id, id, argv, on_release) != 0)
        jm_log(d, "job %lld: the allocation %lld may still be held", (long long)job_id, id);
}

/* Release the job's allocation (once): its steps end, so do their sruns. */
static void release(jm *d, jm_job *j)
{
    if (!j->slurm.job || j->slurm.released)
        return;
    j->slurm.released = 1;
    release_id(d, j->id, j->slurm.job);
}

/* ---- requesting an allocation ---- */

/* The nodes the job's tasks were placed on, each once: "a,b". 0, or -1 if they do not fit len. */
static int node_list(const jm_job *j, char *out, size_t len, int *count)
{
    size_t o = 0;
    out[0] = '\0';
    *count = 0;
    for (size_t t = 0; t < j->ntasks; t++) {
        int seen = 0;
        for (size_t u = 0; u < t && !seen; u++)
            seen = strcmp(j->tasks[u].node, j->tasks[t].node) == 0;
        if (seen)
            continue;
        if (o + strlen(j->tasks[t].node) + 2 >= len)
            return -1;
        o += (size_t)snprintf(out + o, len - o, "%s%s", o ? "," : "", j->tasks[t].node);
        (*count)++;
    }
    return 0;
}

static void on_sbatch(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r)
{
    (void)arg;
    long long id = 0;
    sage__err e = {0};
    int parsed = r->code == 0 && sage__slurm_parse_jobid(r->out, &id, &e) == 0;
    jm_job *j = jm_job_find(d, job_id);
    if (j)
        j->slurm.requesting = 0;
    if (!j || j->failed || j->cancel_requested || j->stop_requested || d->stop) {
        /* the job went while sbatch ran: the allocation it got is nobody's */
        if (parsed) {
            jm_log(d, "job %lld: Slurm allocation %lld came after the job ended or was stopped", (long long)job_id, id);
            if (j) {
                j->slurm.job = id;
                release(d, j);
            } else {
                release_id(d, job_id, id);
            }
        }
        if (j)
            jm_job_maybe_end(d, j);
        return;
    }
    char nodes[4096];
    int count;
    node_list(j, nodes, sizeof nodes, &count); /* it fitted when asked for */
    if (!parsed) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EINFEASIBLE, "Slurm refused the job's allocation (sbatch on %.400s): %s",
                    nodes, r->code != 0 ? (r->msg[0] ? r->msg : "no message") : e.msg);
        jm_job_maybe_end(d, j);
        return;
    }
    j->slurm.job = id;
    j->slurm.poll_at = sage__mono_ms(); /* at once: the next loop turn */
    sage__fmt(j->pending_reason, sizeof j->pending_reason, "waiting for Slurm allocation %lld on %.400s", id, nodes);
    sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
    jm_log(d, "job %lld \"%s\": Slurm allocation %lld requested on %s (%zu tasks)", (long long)j->id, j->name, id,
           nodes, j->ntasks);
}

/* What a job placed on one node holds there, as Slurm options: the CPUs its tasks reserve (their ids, each
 * once: exclusive ones and shared cores; at least 1), the sum of their memory requests, the GPUs they use
 * (each once) and each custom resource's sum, rounded up (Slurm counts gres in whole units). */
static void node_size(const jm *d, const jm_job *j, const char *node, char *cpus, char *mem, char *gres, size_t len)
{
    unsigned char cpu_used[CPU_SETSIZE] = {0}, gpu_used[SAGE__NODE_GPUS_MAX] = {0};
    int ncpus = 0, ngpus = 0;
    uint64_t bytes = 0;
    sage_resource_amount custom[SAGE_RES_CUSTOM_MAX];
    size_t ncustom = 0;
    for (size_t t = 0; t < j->ntasks; t++) {
        const jm_task *k = &j->tasks[t];
        if (strcmp(k->node, node) != 0)
            continue;
        const sage__assign *a = &j->assign[k->chain][k->instance];
        const sage_resources *r = &j->reqs[k->chain].res;
        for (int i = 0; r->num_cpus > 0 && i < a->ncpus; i++)
            if (a->cpus[i] >= 0 && a->cpus[i] < CPU_SETSIZE && !cpu_used[a->cpus[i]]++)
                ncpus++;
        for (int i = 0; r->num_gpus > 0 && i < a->ngpus; i++)
            if (a->gpus[i] >= 0 && a->gpus[i] < SAGE__NODE_GPUS_MAX && !gpu_used[a->gpus[i]]++)
                ngpus++;
        bytes += a->memory + a->object_store_memory;
        for (size_t c = 0; c < a->ncustom; c++) {
            size_t x = 0;
            while (x < ncustom && strcmp(custom[x].name, a->custom[c].name) != 0)
                x++;
            if (x == ncustom && ncustom < SAGE_RES_CUSTOM_MAX)
                custom[ncustom++] = (sage_resource_amount){.amount = 0};
            if (x < ncustom) {
                sage__strlcpy(custom[x].name, a->custom[c].name, sizeof custom[x].name);
                custom[x].amount += a->custom[c].amount;
            }
        }
    }
    sage__fmt(cpus, len, "--cpus-per-task=%d", ncpus > 0 ? ncpus : 1);
    if (bytes)
        sage__fmt(mem, len, "--mem=%lluM", (unsigned long long)((bytes + (1u << 20) - 1) >> 20));
    else /* every part names its memory: in a heterogeneous job one without --mem fails beside one with it
          * ("Memory specification can not be satisfied") */
        sage__fmt(mem, len, "--mem=%lldM", (long long)(ncpus > 0 ? ncpus : 1) * d->slurm.def_mem_per_cpu_mb);
    size_t o = 0;
    gres[0] = 0;
    if (ngpus)
        o += (size_t)snprintf(gres, len, "--gres=gpu:%d", ngpus);
    for (size_t x = 0; x < ncustom && o < len; x++)
        if (custom[x].amount > 0)
            o += (size_t)snprintf(gres + o, len - o, "%s%s:%.0f", o ? "," : "--gres=", custom[x].name,
                                  ceil(custom[x].amount - 1e-9));
}

/* One allocation for the whole job, atomically, sized to what its tasks hold on each node (node_size), so
 * jobs share nodes as on one host: on one node a plain allocation; on several a heterogeneous job with one
 * component per node (Slurm starts all components together; its backfill pass schedules them). The job
 * stays pending until the allocation runs (slurm_timers, on_queue_state). */
static int slurm_start(jm *d, jm_job *j)
{
    char nodelist[4096], tag[1100], name[64], comment[1200];
    int count;
    if (node_list(j, nodelist, sizeof nodelist, &count) != 0 || count > JM_SLURM_NODES_MAX) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ETOOBIG, "the job's node list is too long for sbatch (at most %d nodes)",
                    JM_SLURM_NODES_MAX);
        return SAGE_ETOOBIG;
    }
    slurm_tag(d, tag, sizeof tag);
    sage__fmt(name, sizeof name, "--job-name=sage-%lld", (long long)j->id);
    sage__fmt(comment, sizeof comment, "--comment=%s", tag);
    j->slurm.het = count > 1;
    /* per component: --nodes=1 --nodelist=N --ntasks=1 --cpus-per-task=C [--mem=M] [--gres=...] [:] */
    char(*opts)[4][256] = calloc((size_t)count, sizeof *opts);
    char **argv = calloc((size_t)count * 8 + 16, sizeof *argv);
    if (!opts || !argv) {
        free(opts);
        free(argv);
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ENOMEM, "out of memory asking for the job's allocation");
        return SAGE_ENOMEM;
    }
    size_t n = 0;
    argv[n++] = "sbatch";
    argv[n++] = "--parsable";
    argv[n++] = name;
    argv[n++] = comment;
    argv[n++] = "--chdir=/";
    argv[n++] = "--output=/dev/null";
    argv[n++] = "--wrap";
    argv[n++] = "sleep infinity";
    /* one component per node, in node_list's order: the one --het-group counts (het_group) */
    const char *p = nodelist;
    for (int c = 0; c < count; c++) {
        size_t l = strcspn(p, ",");
        char node[128];
        sage__fmt(node, sizeof node, "%.*s", (int)l, p);
        p += l + (p[l] == ',');
        sage__fmt(opts[c][0], sizeof opts[c][0], "--nodelist=%s", node);
        node_size(d, j, node, opts[c][1], opts[c][2], opts[c][3], sizeof opts[c][1]);
        sage__strlcpy(j->slurm.comp[c], node, sizeof j->slurm.comp[c]);
        if (c > 0)
            argv[n++] = ":";
        argv[n++] = "--nodes=1";
        argv[n++] = "--ntasks=1";
        argv[n++] = opts[c][0];
        argv[n++] = opts[c][1];
        if (opts[c][2][0])
            argv[n++] = opts[c][2];
        if (opts[c][3][0])
            argv[n++] = opts[c][3];
    }
    argv[n] = NULL;
    char line[2048];
    size_t o = 0;
    for (size_t a = 8; a < n && o + 1 < sizeof line; a++) /* the sizes (the first 8 are the same for every job) */
        o += (size_t)snprintf(line + o, sizeof line - o, "%s%s", o ? " " : "", argv[a]);
    jm_log(d, "job %lld \"%s\": asks Slurm for %s", (long long)j->id, j->name, line);
    char err[512];
    int rc = jm_cmd_run(d, j->id, 0, argv, on_sbatch, err, sizeof err);
    free(argv);
    free(opts);
    if (rc != 0) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ESYS, "the job's allocation could not be asked for: %s", err);
        return SAGE_ESYS;
    }
    j->slurm.requesting = 1;
    sage__fmt(j->pending_reason, sizeof j->pending_reason, "requesting a Slurm allocation on %.400s", nodelist);
    sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
    return 0;
}

/* ---- waiting for the allocation, and its step ids ---- */

static void on_ended_state(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r)
{
    jm_job *j = jm_job_find(d, job_id);
    if (!j || arg != j->slurm.job)
        return;
    char st[256] = "";
    if (r->code == 0)
        sage__slurm_job_state(r->out, st, sizeof st);
    else if (r->msg[0])
        sage__fmt(st, sizeof st, "unknown (%.200s)", r->msg);
    j->pending_reason[0] = 0;
    jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "the Slurm allocation %lld ended before the job started (%s%s%s)",
                j->slurm.job, j->slurm.state[0] ? j->slurm.state : "no longer known to squeue", st[0] ? "; " : "", st);
    jm_job_maybe_end(d, j);
}

static void ask_job_state(jm *d, jm_job *j, jm_cmd_fn fn)
{
    char id[32];
    sage__fmt(id, sizeof id, "%lld", j->slurm.job);
    char *argv[] = {"scontrol", "show", "job", id, "-o", NULL};
    if (run(d, j->id, j->slurm.job, argv, fn) != 0) {
        jm_cmd_result none = {.code = -1, .out = "", .msg = "scontrol could not be started"};
        fn(d, j->id, j->slurm.job, &none);
    }
}

/* The job an squeue answered about (NULL if it is gone), no longer waiting for that answer. */
static jm_job *polled(jm *d, int64_t job_id)
{
    jm_job *j = jm_job_find(d, job_id);
    if (j)
        j->slurm.polling = 0;
    return j;
}

/* A pending allocation: run its tasks once Slurm runs it, fail the job if Slurm ended it, else keep Slurm's reason. */
static void on_queue_state(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r)
{
    jm_job *j = polled(d, job_id);
    if (!j || arg != j->slurm.job /* about the allocation of an attempt before a restart */ || j->failed ||
        j->cancel_requested || j->stop_requested || j->slurm.running || d->stop)
        return;
    char state[64] = "", reason[256] = "";
    sage__err e = {0};
    int64_t now = sage__mono_ms();
    if (r->code < 0 || (r->code != 0 && !strstr(r->msg, "Invalid job id")) ||
        (r->code == 0 && sage__slurm_parse_queue_state(r->out, state, sizeof state, reason, sizeof reason, &e) != 0)) {
        /* squeue itself failed: say so, try again later (the allocation is Slurm's to keep) */
        sage__fmt(j->pending_reason, sizeof j->pending_reason,
                  "waiting for Slurm allocation %lld; squeue failed: %.400s", j->slurm.job, e.code ? e.msg : r->msg);
        j->slurm.poll_at = now + SLURM_POLL_MS;
        return;
    }
    if (strcmp(state, "RUNNING") == 0) {
        j->slurm.running = 1;
        j->slurm.poll_at = now + SLURM_STEP_POLL_MS; /* then: the step ids */
        sage__fmt(j->slurm.state, sizeof j->slurm.state, "RUNNING");
        jm_job_start_tasks(d, j);
        if (j->failed)
            jm_job_maybe_end(d, j);
        return;
    }
    if (strcmp(state, "PENDING") == 0 || strcmp(state, "CONFIGURING") == 0 || strcmp(state, "REQUEUED") == 0 ||
        strcmp(state, "RESIZING") == 0) {
        char pr[sizeof j->pending_reason];
        sage__fmt(pr, sizeof pr, "waiting for Slurm allocation %lld: %s (%s)", j->slurm.job, state,
                  reason[0] ? reason : "no reason given");
        if (strcmp(pr, j->pending_reason) != 0) {
            sage__strlcpy(j->pending_reason, pr, sizeof j->pending_reason);
            sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
        }
        j->slurm.poll_at = now + SLURM_POLL_MS;
        return;
    }
    /* ended, or unknown to Slurm: the job cannot start; Slurm's own words for the message first */
    sage__strlcpy(j->slurm.state, state, sizeof j->slurm.state);
    j->slurm.released = 1; /* nothing left to release */
    j->slurm.poll_at = 0;
    ask_job_state(d, j, on_ended_state);
}

struct step_ctx {
    jm_job *j;
    char prefix[64];
    size_t pl;
};

static void on_step(long long job, long long step, const char *name, void *arg)
{
    struct step_ctx *s = arg;
    int64_t task;
    if (job != s->j->slurm.job || strncmp(name, s->prefix, s->pl) != 0 ||
        sage__parse_i64(name + s->pl, 0, (int64_t)s->j->ntasks - 1, &task) != 0)
        return;
    s->j->tasks[task].slurm_step = step;
}

/* A running allocation: learn each task's step id (the steps are named sage-<job>-<task>). */
static void on_steps(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r)
{
    jm_job *j = polled(d, job_id);
    if (!j || arg != j->slurm.job)
        return;
    if (r->code == 0) {
        struct step_ctx s = {.j = j};
        s.pl = (size_t)snprintf(s.prefix, sizeof s.prefix, "sage-%lld-", (long long)j->id);
        sage__slurm_each_step(r->out, on_step, &s);
    }
    int missing = 0;
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].slurm_step < 0 && j->tasks[t].pid > 0 && !j->tasks[t].exited)
            missing = 1;
    j->slurm.poll_at = missing && j->slurm.step_polls < SLURM_STEP_POLLS && !j->failed
                           ? sage__mono_ms() + SLURM_STEP_POLL_MS
                           : 0;
}

static void poll_job(jm *d, jm_job *j)
{
    char id[32];
    sage__fmt(id, sizeof id, "%lld", j->slurm.job);
    char *pending[] = {"squeue", "-h", "-j", id, "-o", "%T|%r", NULL};
    char *steps[] = {"squeue", "-h", "-s", "-j", id, "-o", "%i|%j", NULL};
    if (j->slurm.running)
        j->slurm.step_polls++;
    if (run(d, j->id, j->slurm.job, j->slurm.running ? steps : pending, j->slurm.running ? on_steps : on_queue_state) ==
        0)
        j->slurm.polling = 1;
    else
        j->slurm.poll_at = sage__mono_ms() + SLURM_POLL_MS; /* try again */
}

static int slurm_timers(jm *d, int64_t now)
{
    int64_t next = -1;
    for (jm_job *j = d->jobs; j; j = j->next) {
        if (!j->slurm.poll_at || j->slurm.polling)
            continue;
        if (j->failed || j->cancel_requested || j->stop_requested || d->stop) {
            j->slurm.poll_at = 0;
            continue;
        }
        if (j->slurm.poll_at <= now) {
            j->slurm.poll_at = 0; /* the answer schedules the next one */
            poll_job(d, j);
        }
        if (j->slurm.poll_at && (next < 0 || j->slurm.poll_at - now < next))
            next = j->slurm.poll_at > now ? j->slurm.poll_at - now : 0;
    }
    return (int)next;
}

/* ---- tasks ---- */

/* A heterogeneous allocation's component for a node (slurm_start's order). */
static int het_group(const jm_job *j, const char *node)
{
    for (int c = 0; c < JM_SLURM_NODES_MAX; c++)
        if (strcmp(j->slurm.comp[c], node) == 0)
            return c;
    return 0;
}

/* The srun command line that runs one task inside the job's allocation:
 * srun [options] -- env CUDA_VISIBLE_DEVICES=... EXE ARGS. Strings are malloc'd (jm_strv_free). */
/* copy: where the step's own copy of the program goes on its node (srun --bcast; "" to run exe in place) */
static char **srun_argv(jm_job *j, jm_task *k, const char *exe, char *const *args, const char *copy)
{
    size_t argc = 0;
    while (args[argc])
        argc++;
    char **v = calloc(argc + 28, sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    char buf[1024];
#define ARG(...) (sage__fmt(buf, sizeof buf, __VA_ARGS__), v[n++] = strdup(buf))
    ARG("srun");
    ARG("--jobid=%lld", j->slurm.job);
    /* the allocation holds exactly what SAGE placed, and the worker pins itself to its CPUs: every step
     * overlaps the others (Slurm would otherwise make a step wait for CPUs SAGE lets tasks share) */
    ARG("--overlap");
    if (j->slurm.het)
        ARG("--het-group=%d", het_group(j, k->node));
    ARG("--nodes=1");
    ARG("--ntasks=1");
    ARG("--nodelist=%s", k->node);
    ARG("--job-name=sage-%lld-%d", (long long)j->id, k->index);
    ARG("--cpus-per-task=1");
    /* GPUs and other gres are not asked of Slurm per step: the allocation holds the job's, SAGE's placement
     * counts them, and CUDA_VISIBLE_DEVICES names the task's own GPUs. */
    ARG("--input=none");
    ARG("--export=ALL");
    if (copy[0]) /* the node need not see the program: srun copies it there and runs the copy */
        ARG("--bcast=%s", copy);
    ARG("--");
    /* Slurm's gpu plugin sets (or clears) CUDA_VISIBLE_DEVICES in the step: put ours back last (a copied
     * program puts SAGE_WORKER_CUDA back itself, before its main: api/env.c) */
    if (!copy[0]) {
        ARG("env");
        ARG("CUDA_VISIBLE_DEVICES=%s", k->gpus);
    }
    ARG("%s", exe);
    for (size_t i = 1; i < argc; i++)
        ARG("%s", args[i]);
#undef ARG
    return jm_strv_done(v, n);
}

static int slurm_spawn(jm *d, jm_job *j, jm_task *k, char *err, size_t err_len)
{
    const char *exe;
    char **args = NULL;
    int rc = jm_job_exec_args(j, &exe, &args, err, err_len);
    if (rc != 0)
        return rc;
    char conf[PATH_MAX + 16], copy[128] = "", copy_env[160] = "", cuda[96] = "";
    sage__fmt(conf, sizeof conf, "SLURM_CONF=%s", d->slurm.conf);
    if (json_is_string(json_object_get(j->doc, "program_hash"))) { /* a C program: copied to its node */
        sage__fmt(copy, sizeof copy, "/tmp/sage-%ld-job%lld-%d-task%d", (long)d->pid, (long long)j->id, j->restarts,
                  k->index);
        sage__fmt(copy_env, sizeof copy_env, "SAGE_WORKER_EXE_COPY=%s", copy);
        sage__fmt(cuda, sizeof cuda, "SAGE_WORKER_CUDA=%s", k->gpus);
    }
    char **argv = srun_argv(j, k, exe, args, copy);
    free(args);
    if (!argv) {
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    /* srun runs the task in its own working directory: the submitter's; SIGTERM makes srun end its step;
     * the submitter's own Slurm variables (it may run inside a job) would mislead srun */
    jm_exec x = {.file = "srun",
                 .search_path = 1,
                 .argv = argv,
                 .env_drop = "SLURM_",
                 .env_extra = {conf, copy[0] ? copy_env : NULL, copy[0] ? cuda : NULL},
                 .pdeathsig = SIGTERM,
                 .listen_fd = -1,
                 .cwd = json_string_value(json_object_get(j->doc, "cwd"))};
    rc = jm_exec_task(d, j, k, &x, err, err_len);
    jm_strv_free(argv);
    return rc;
}

static void slurm_stop(jm *d, jm_job *j)
{
    release(d, j);
    jm_kill_processes(j);
}

static void on_check(jm *d, int64_t job_id, long long arg, const jm_cmd_result *r)
{
    jm_job *j = jm_job_find(d, job_id);
    if (!j || arg != j->slurm.job)
        return;
    j->slurm.checking = 0;
    char st[256] = "";
    if (r->code == 0)
        sage__slurm_job_state(r->out, st, sizeof st);
    if (st[0])
        sage__strlcpy(j->slurm.state, st, sizeof j->slurm.state);
    if (st[0] && !strstr(st, "JobState=RUNNING")) {
        j->slurm.released = 1;
        jm_job_fail(d, j, JM_PRIO_ALLOCATION, SAGE_EIO, "the Slurm allocation %lld of the job ended under it (%s); %s",
                    j->slurm.job, st, j->slurm.check_why);
    }
    jm_job_maybe_end(d, j);
}

/* A step failed while we still hold the allocation: did Slurm end it under us (scancel from outside, a node
 * lost, a time limit)? Asked once per job, before anything of ours releases the allocation. */
static void slurm_task_failed(jm *d, jm_job *j, jm_task *k, const char *why)
{
    if (!j->slurm.job || j->slurm.released || j->slurm.checked)
        return;
    j->slurm.checked = 1;
    j->slurm.checking = 1;
    sage__fmt(j->slurm.check_why, sizeof j->slurm.check_why, "%s (srun on node %s)", why, k->node);
    ask_job_state(d, j, on_check);
}

static int slurm_busy(const jm *d, const jm_job *j)
{
    (void)d;
    return j->slurm.checking;
}

/* Slurm ids of a job's tasks, kept in <jobdir>/slurm.json for the views of ended jobs. */
static void ids_set(json_t *obj, long long job, long long step, const char *addr)
{
    json_object_set_new(obj, "slurm_job", json_integer(job));
    json_object_set_new(obj, "slurm_step", step >= 0 ? json_integer(step) : json_null());
    if (addr && addr[0])
        json_object_set_new(obj, "address", json_string(addr));
}

static void slurm_ended(jm *d, jm_job *j)
{
    release(d, j); /* any outcome: the allocation goes back to Slurm */
    if (!j->slurm.job)
        return;
    json_t *tasks = json_array();
    for (size_t t = 0; t < j->ntasks; t++) {
        json_t *o = json_object();
        ids_set(o, j->slurm.job, j->tasks[t].slurm_step, j->tasks[t].host);
        json_array_append_new(tasks, o);
    }
    json_t *doc = json_pack("{s:I,s:s,s:o}", "slurm_job", (json_int_t)j->slurm.job, "slurm_state", j->slurm.state,
                            "tasks", tasks);
    char path[PATH_MAX + 16];
    sage__fmt(path, sizeof path, "%s/slurm.json", j->dir);
    char err[512] = "out of memory";
    if (!doc || jm_private_dump(path, doc, JSON_COMPACT, err, sizeof err) != 0) /* 0600, never through a link */
        jm_log(d, "job %lld: could not write %s: %s", (long long)j->id, path, err);
    json_decref(doc);
}

/* A restart: the last attempt's allocation was released (ended); the next attempt asks for its own, on the
 * nodes it is placed on again. Answers about the old allocation that are still to come are told apart by its
 * id (the callbacks' arg). */
static void slurm_restarting(jm *d, jm_job *j)
{
    (void)d;
    j->slurm = (jm_slurm_job){0};
}

void jm_slurm_view_ended(const jm *d, int64_t id, json_t *end)
{
    char path[PATH_MAX + 64];
    sage__fmt(path, sizeof path, "%s/jobs/%lld/slurm.json", d->home, (long long)id);
    json_error_t jerr;
    json_t *sl = json_load_file(path, 0, &jerr);
    if (!sl)
        return; /* not a Slurm job */
    json_object_set(end, "slurm_job", json_object_get(sl, "slurm_job"));
    json_t *stasks = json_object_get(sl, "tasks"), *tj;
    size_t i;
    json_array_foreach(json_object_get(end, "tasks"), i, tj)
    {
        json_t *ids = json_array_get(stasks, (size_t)json_integer_value(json_object_get(tj, "task")));
        if (json_is_object(ids))
            json_object_update(tj, ids);
    }
    json_decref(sl);
}

/* Where a task runs: the node its step runs on. */
static const char *slurm_task_host(const jm *d, const jm_task *k) { return k->node[0] ? k->node : d->node.name; }

static void slurm_view_task(const jm *d, const jm_job *j, const jm_task *k, json_t *tj)
{
    (void)d;
    if (j->slurm.job)
        ids_set(tj, j->slurm.job, k->slurm_step, k->host);
    if (k->pid > 0) /* "pid" is the worker's own, on its node */
        json_object_set_new(tj, "srun_pid", json_integer(k->pid));
}

static void slurm_view_job(const jm *d, const jm_job *j, json_t *jj)
{
    (void)d;
    if (j->slurm.job)
        json_object_set_new(jj, "slurm_job", json_integer(j->slurm.job));
}

static void slurm_view_ping(const jm *d, json_t *ping)
{
    json_object_set_new(ping, "slurm_conf", json_string(d->slurm.conf));
}

const jm_launcher jm_slurm_launcher = {
    .name = "slurm",
    .init = slurm_init,
    .started = slurm_started,
    .fini = slurm_fini,
    .nodes = slurm_nodes,
    .refresh = slurm_refresh,
    .start = slurm_start,
    .spawn = slurm_spawn,
    .stop = slurm_stop,
    .task_failed = slurm_task_failed,
    .busy = slurm_busy,
    .ended = slurm_ended,
    .restarting = slurm_restarting,
    .timers = slurm_timers,
    .task_host = slurm_task_host,
    .view_task = slurm_view_task,
    .view_job = slurm_view_job,
    .view_ping = slurm_view_ping,
};
