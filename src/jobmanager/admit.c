/* jobmanager/admit.c - admission: the submitted plan document, placement against running jobs, spec.json, pending jobs.
 *
 * Design note. A submitted plan document lists the chains (fused operator
 * groups) with their parallelism and resource request. Admission places
 * them on the launcher's nodes: a job that could not fit even idle nodes is
 * refused at once (the same message as embedded mode) and gets no id; one
 * that fits but collides with resources held by live jobs waits as
 * "pending" with the reason. Pending jobs are served first come, first
 * served: a new job waits behind an older one that waits for resources,
 * and whenever a job ends the oldest pending jobs are placed again, in
 * order, until one still does not fit. A placed job gets a directory
 * (spec.json, what its workers fetch over their control connection, for
 * people; logs/, sock/, results/), on the unix data
 * plane one listening socket per task that has inputs (created here, before
 * any worker runs, so producers can connect at once), and is handed to the
 * launcher, which starts its tasks now (local) or once its allocation runs
 * (Slurm). The job's directories are private (jm_private_dir: 0700, ours,
 * never a link) and spec.json is written 0600 without following a link;
 * operator names, which name files there, must be plain names.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobmanager/launcher.h"
#include "plan/plan.h"
#include "net/sock.h"
#include "util/err.h"
#include "util/escape.h"
#include "util/time.h"
#include "util/utf8.h"

static void ids_text(char *buf, size_t len, const int *ids, int n)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o + 1 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", ids[i]);
}

int jm_write_spec(jm *d, jm_job *j, char *err, size_t err_len)
{
    if (!j->secret[0] && sage__token_random(j->secret, sizeof j->secret) != 0) {
        sage__fmt(err, err_len, "no random bytes for the job's worker secret");
        return SAGE_ESYS;
    }
    /* on Slurm a node need not see our directory: collected records come back over the control connection
     * (except with checkpoints, whose results files are cut back on recovery where the workers write them) */
    j->results_stream = strcmp(d->launcher->name, "slurm") == 0 && !j->ck.on;
    json_t *tasks = json_array(), *services = json_array();
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        const sage__assign *a = &j->assign[k->chain][k->instance];
        json_t *cpus = json_array(), *gpus = json_array(), *custom = json_object();
        for (int i = 0; i < a->ncpus; i++)
            json_array_append_new(cpus, json_integer(a->cpus[i]));
        for (int i = 0; i < a->ngpus; i++)
            json_array_append_new(gpus, json_integer(a->gpus[i]));
        for (size_t i = 0; i < a->ncustom; i++)
            json_object_set_new(custom, a->custom[i].name, json_real(a->custom[i].amount));
        json_t *tj = json_pack("{s:i,s:i,s:i,s:o,s:b,s:b,s:o,s:f,s:I,s:I,s:o,s:s}", "task", (int)t, "chain", k->chain,
                               "instance", k->instance, "cpus", cpus, "exclusive", a->exclusive, "pinned", a->pin,
                               "gpus", gpus, "gpu_fraction", a->gpu_fraction, "memory", (json_int_t)a->memory,
                               "object_store_memory", (json_int_t)a->object_store_memory, "resources", custom, "node",
                               k->node);
        /* a tcp worker opens its listener before it has compiled the plan: tell it whether to */
        json_object_set_new(tj, "inputs", json_boolean(k->has_inputs));
        json_object_set_new(tj, "producers", json_integer(k->producers));
        const char *svc = json_string_value(
            json_object_get(json_array_get(json_object_get(j->doc, "chains"), (size_t)k->chain), "service"));
        if (k->service && svc) { /* the one service this task's process runs; every worker finds it by name */
            json_object_set_new(tj, "service", json_string(svc));
            json_array_append_new(services, json_pack("{s:s,s:i}", "name", svc, "task", (int)t));
        }
        json_array_append_new(tasks, tj);
    }
    json_t *spec = json_pack("{s:I,s:s,s:O,s:s,s:s,s:i,s:s,s:o}", "job_id", (json_int_t)j->id, "name", j->name,
                             "plan_hash", json_object_get(j->doc, "plan_hash"), "dir", j->dir, "jobmanager_host",
                             d->host, "jobmanager_port", d->port, "data_plane",
                             d->data_plane == JM_DATA_TCP ? "tcp" : "unix", "tasks", tasks);
    if (spec) {
        json_object_set_new(spec, "services", services);
        json_object_set_new(spec, "results", json_string(j->results_stream ? "stream" : "file"));
        json_t *ph = json_object_get(j->doc, "program_hash"); /* each worker checks the program it runs */
        if (json_is_string(ph))
            json_object_set(spec, "program_hash", ph);
    } else {
        json_decref(services);
    }
    if (spec && j->ck.on) /* every worker reads the nonce back from there before it runs: the directory is shared */
        json_object_set_new(spec, "checkpoint_probe",
                            json_pack("{s:s,s:s}", "dir", j->ck.rundir, "nonce", j->ck.probe));
    if (spec && j->ck.restore[0]) { /* every worker restores its part of this checkpoint */
        json_object_set_new(spec, "restore", json_string(j->ck.restore));
        json_object_set_new(spec, "restore_in_run", json_boolean(j->ck.restore_in_run));
    }
    char path[PATH_MAX + 16];
    sage__fmt(path, sizeof path, "%s/spec.json", j->dir);
    int rc = spec ? jm_private_dump(path, spec, JSON_INDENT(1), err, err_len) : SAGE_ENOMEM;
    if (!spec)
        sage__fmt(err, err_len, "out of memory writing %s", path);
    json_decref(j->spec);
    j->spec = spec; /* what the workers fetch: the file is for people */
    return rc;
}

/* Operator names become file names in the job's directory (logs/<op>.<i>.log, results/<op>.<i>): no '/', no
 * control character, not "." or "..". (The engine refuses such names at declaration; a hand-written plan
 * document is refused here.) */
static int plain_names(jm_job *j, char *err, size_t err_len)
{
    for (size_t c = 0; c < j->nreqs; c++) {
        const char *n = j->reqs[c].name ? j->reqs[c].name : "";
        int bad = !n[0] || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || !sage__utf8_valid(n, strlen(n));
        for (const char *p = n; *p && !bad; p++)
            bad = *p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f;
        if (bad) {
            char shown[256];
            sage__fmt(err, err_len,
                      "submit: operator name \"%s\" cannot name a file (it is empty, \".\" or \"..\", or holds '/', a "
                      "control character or invalid UTF-8)",
                      sage__escape_str(shown, sizeof shown, n));
            return SAGE_EPLAN;
        }
    }
    return 0;
}

/* Tasks chain by chain, instance by instance (the order of embedded mode and of spec.json), and on the unix
 * data plane every listener, before any worker runs. */
static int lay_out_tasks(jm *d, jm_job *j, const sage__node *nodes, size_t nnodes)
{
    char err[4096];
    size_t nt = 0;
    for (size_t c = 0; c < j->nreqs; c++)
        nt += (size_t)j->reqs[c].parallelism;
    j->tasks = calloc(nt, sizeof *j->tasks);
    if (!j->tasks) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ENOMEM, "out of memory for %zu tasks", nt);
        return SAGE_ENOMEM;
    }
    j->ntasks = nt;
    char dir[PATH_MAX + 32];
    static const char *const subdirs[] = {"logs", "results", "sock"};
    for (size_t i = 0; i < 3; i++) {
        if (i == 2 && d->data_plane != JM_DATA_UNIX)
            break;
        sage__fmt(dir, sizeof dir, "%s/%s", j->dir, subdirs[i]);
        if (jm_private_dir(dir, err, sizeof err) != 0) {
            jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "the job's directory: %s", err);
            return SAGE_EIO;
        }
    }
    json_t *chains = json_object_get(j->doc, "chains");
    size_t t = 0;
    for (size_t c = 0; c < j->nreqs; c++) {
        json_t *cj = json_array_get(chains, c), *pj = json_object_get(cj, "producers");
        int has_inputs = json_is_true(json_object_get(cj, "inputs"));
        int producers = json_is_integer(pj) && json_integer_value(pj) >= 0 && json_integer_value(pj) <= 1 << 20
                            ? (int)json_integer_value(pj)
                            : 0;
        int service = json_is_string(json_object_get(cj, "service"));
        if (!service)
            j->nflow = t + (size_t)j->reqs[c].parallelism;
        for (int i = 0; i < j->reqs[c].parallelism; i++, t++) {
            jm_task *k = &j->tasks[t];
            const sage__assign *a = &j->assign[c][i];
            k->index = (int)t;
            k->chain = (int)c;
            k->instance = i;
            k->service = service;
            k->listen_fd = k->out_fd = k->err_fd = -1;
            k->slurm_step = -1;
            sage__strlcpy(k->node, a->node >= 0 && (size_t)a->node < nnodes ? nodes[a->node].name : d->node.name,
                          sizeof k->node);
            sage__strlcpy(k->op, j->reqs[c].name, sizeof k->op);
            ids_text(k->cpus, sizeof k->cpus, a->cpus, a->ncpus);
            ids_text(k->gpus, sizeof k->gpus, a->gpus, a->ngpus);
            k->mem_limit = a->memory;
            k->has_inputs = has_inputs;
            k->producers = producers;
            if (jm_task_listen(d, j, k) != 0)
                return SAGE_EIO;
        }
    }
    int rc = jm_write_spec(d, j, err, sizeof err);
    if (rc != 0)
        jm_job_fail(d, j, JM_PRIO_ROOT, rc, "%s", err);
    return rc;
}

int jm_task_listen(jm *d, jm_job *j, jm_task *k)
{
    if (!k->has_inputs || d->data_plane != JM_DATA_UNIX)
        return 0;
    char sp[PATH_MAX + 64], err[1024];
    sage__fmt(sp, sizeof sp, "%s/sock/%d.%d", j->dir, k->chain, k->instance);
    if (sage__unix_listen(sp, k->producers > 0 ? k->producers + 8 : 64, &k->listen_fd, err, sizeof err) != 0) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_EIO, "operator \"%s\" instance %d: %s", k->op, k->instance, err);
        return SAGE_EIO;
    }
    return 0;
}

/* A restarted job placed again: each task keeps its index and takes its new node, CPUs, GPUs and memory limit;
 * spec.json says where each runs now. */
static int relay_tasks(jm *d, jm_job *j, const sage__node *nodes, size_t nnodes)
{
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        const sage__assign *a = &j->assign[k->chain][k->instance];
        sage__strlcpy(k->node, a->node >= 0 && (size_t)a->node < nnodes ? nodes[a->node].name : d->node.name,
                      sizeof k->node);
        ids_text(k->cpus, sizeof k->cpus, a->cpus, a->ncpus);
        ids_text(k->gpus, sizeof k->gpus, a->gpus, a->ngpus);
        k->mem_limit = a->memory;
    }
    char err[4096];
    int rc = jm_write_spec(d, j, err, sizeof err);
    if (rc != 0)
        jm_job_fail(d, j, JM_PRIO_ROOT, rc, "%s", err);
    return rc;
}

/* The launcher's nodes without the ones this job lost (NULL when it lost none: use them as they are). */
static sage__node *nodes_avoiding(const jm_job *j, const sage__node *nodes, size_t nnodes, char *names,
                                  size_t names_len)
{
    names[0] = 0;
    if (!j->navoid)
        return NULL;
    sage__node *copy = malloc((nnodes ? nnodes : 1) * sizeof *copy);
    if (!copy)
        return NULL;
    memcpy(copy, nodes, nnodes * sizeof *copy);
    size_t o = 0;
    for (size_t i = 0; i < nnodes; i++)
        for (int a = 0; a < j->navoid; a++)
            if (strcmp(copy[i].name, j->avoid[a]) == 0) {
                copy[i].unavailable = 1;
                if (o + 1 < names_len)
                    o += (size_t)snprintf(names + o, names_len - o, "%s%s", o ? ", " : "", copy[i].name);
            }
    return copy;
}

/* Place a pending job on what live jobs leave free and hand it to the launcher. 0 (placed, or still waiting
 * with the reason) or an error (the job failed with the reason). A restarted job (its tasks exist) is placed
 * again the same way, away from the nodes it lost. */
static int try_start(jm *d, jm_job *j)
{
    size_t nheld = 0;
    for (jm_job *o = d->jobs; o; o = o->next)
        if (o != j && o->assign)
            nheld++;
    sage__held *held = calloc(nheld ? nheld : 1, sizeof *held);
    if (!held) {
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ENOMEM, "out of memory placing the job");
        return SAGE_ENOMEM;
    }
    size_t h = 0;
    for (jm_job *o = d->jobs; o; o = o->next)
        if (o != j && o->assign)
            held[h++] = (sage__held){o->reqs, o->nreqs, o->assign};
    char err[4096], lost[1024];
    size_t nnodes;
    const sage__node *nodes = d->launcher->nodes(d, &nnodes);
    sage__node *avoiding = nodes_avoiding(j, nodes, nnodes, lost, sizeof lost);
    if (j->navoid && !avoiding) {
        free(held);
        jm_job_fail(d, j, JM_PRIO_ROOT, SAGE_ENOMEM, "out of memory placing the job");
        return SAGE_ENOMEM;
    }
    const sage__node *use = avoiding ? avoiding : nodes;
    int rc = sage__place_held(use, nnodes, held, nheld, j->reqs, j->nreqs, &j->assign, err, sizeof err);
    free(held);
    if (rc == SAGE_EINFEASIBLE && avoiding) { /* does it fit the other nodes once they are idle? */
        sage__assign **probe = NULL;
        char why[4096];
        int prc = sage__place(use, nnodes, j->reqs, j->nreqs, &probe, why, sizeof why);
        sage__assign_free(probe, j->reqs, j->nreqs);
        if (prc != 0) {
            free(avoiding);
            jm_job_fail(d, j, JM_PRIO_ROOT, prc,
                        "placement for recovery %d without node%s %s, lost by an earlier "
                        "attempt: %s; the last failure: %s",
                        j->restarts, j->navoid > 1 ? "s" : "", lost, why, j->last_failure);
            return prc;
        }
    }
    free(avoiding);
    if (rc == SAGE_EINFEASIBLE) {
        sage__fmt(j->pending_reason, sizeof j->pending_reason, "%swaiting for resources held by running jobs",
                  j->tasks ? "recovery: " : "");
        return 0;
    }
    if (rc != 0) {
        jm_job_fail(d, j, JM_PRIO_ROOT, rc, "placement: %s", err);
        return rc;
    }
    j->pending_reason[0] = 0;
    if ((rc = j->tasks ? relay_tasks(d, j, nodes, nnodes) : lay_out_tasks(d, j, nodes, nnodes)) != 0)
        return rc;
    if (lost[0])
        jm_log(d, "job %lld \"%s\": placed again without %s", (long long)j->id, j->name, lost);
    return d->launcher->start(d, j);
}

/* The oldest pending job that waits for resources, other than `not`. */
static jm_job *oldest_waiting(jm *d, const jm_job * not )
{
    jm_job *oldest = NULL;
    for (jm_job *p = d->jobs; p; p = p->next)
        if (p != not &&(p->state == JJ_PENDING || p->tasks) && !p->assign && !p->failed &&
            (!oldest || p->id < oldest->id)) /* (tasks: a restart, maybe paused, to be placed again) */
            oldest = p;
    return oldest;
}

void jm_jobs_retry_pending(jm *d)
{
    for (;;) {
        jm_job *oldest = oldest_waiting(d, NULL);
        if (!oldest)
            return;
        try_start(d, oldest);
        if (oldest->failed && jm_job_maybe_end(d, oldest))
            continue; /* the list changed */
        if (!oldest->assign)
            return; /* still does not fit: it (and the younger ones) wait */
    }
}

int jm_job_place_again(jm *d, jm_job *j)
{
    sage__assign_free(j->assign, j->reqs, j->nreqs);
    j->assign = NULL;
    if (j->state != JJ_PAUSED)
        j->state = JJ_PENDING;
    jm_job *older = oldest_waiting(d, j);
    if (older && older->id < j->id) { /* first come, first served, as at its submit */
        sage__fmt(j->pending_reason, sizeof j->pending_reason,
                  "recovery: waiting behind job %lld, which waits for resources", (long long)older->id);
        return 0;
    }
    return try_start(d, j);
}

/* The document's "fault_tolerance" (what the client's config said), checked as sage_env_create checks it. */
static int fault_tolerance(jm *d, jm_job *j, char *err, size_t err_len)
{
    json_t *v = json_object_get(j->doc, "fault_tolerance");
    if (!v)
        return 0;
    sage__err fe = {0};
    if (sage__ft_parse(&j->ft, v, &fe) != 0) {
        sage__fmt(err, err_len, "submit: %s", fe.msg);
        return fe.code;
    }
    if (j->ft.restart == SAGE__RESTART_FAILURE_RATE &&
        !(j->fail_at = calloc((size_t)j->ft.max_failures_per_interval + 1, sizeof *j->fail_at))) {
        sage__fmt(err, err_len, "submit: out of memory");
        return SAGE_ENOMEM;
    }
    return 0;
}

int jm_job_submit(jm *d, json_t *doc, int64_t *id, char *err, size_t err_len)
{
    jm_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(doc);
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    j->doc = doc;
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *exe = json_string_value(json_object_get(doc, "executable"));
    if (!name || !exe || !json_is_integer(json_object_get(doc, "plan_hash"))) {
        sage__fmt(err, err_len, "submit: the job document lacks name, executable or plan_hash");
        jm_job_free(j);
        return SAGE_EPROTO;
    }
    sage__strlcpy(j->name, name, sizeof j->name);
    int rc = sage__plan_document_reqs(doc, &j->reqs, &j->nreqs, err,
                                      err_len); /* the client wrote it with plan/document.c */
    if (rc == 0)
        rc = plain_names(j, err, err_len);
    if (rc == 0)
        rc = fault_tolerance(d, j, err, err_len);
    if (rc != 0) {
        jm_job_free(j);
        return rc;
    }
    /* Refuse at once what could never fit, even on idle nodes. */
    sage__assign **probe = NULL;
    size_t nnodes;
    const sage__node *nodes = d->launcher->nodes(d, &nnodes);
    rc = sage__place(nodes, nnodes, j->reqs, j->nreqs, &probe, err, err_len);
    if (rc != 0) {
        jm_job_free(j);
        return rc;
    }
    sage__assign_free(probe, j->reqs, j->nreqs);
    j->submitted_ms = sage__wall_ms();
    size_t nt = 0;
    for (size_t c = 0; c < j->nreqs; c++)
        nt += (size_t)j->reqs[c].parallelism;
    if ((rc = sage__store_job_insert(d->store, j->name, exe, (int)nt, j->submitted_ms, &j->id)) != 0) {
        sage__fmt(err, err_len, "the job store failed (%s)", sage_strerror(rc));
        jm_job_free(j);
        return rc;
    }
    sage__fmt(j->dir, sizeof j->dir, "%s/jobs/%lld", d->home, (long long)j->id);
    if (jm_private_dir(j->dir, err, err_len) != 0) {
        sage__store_job_state(d->store, j->id, "failed", err, sage__wall_ms());
        jm_job_free(j);
        return SAGE_EIO;
    }
    if ((rc = jm_ckpt_setup(d, j, err, err_len)) != 0) {
        sage__store_job_state(d->store, j->id, "failed", err, sage__wall_ms());
        jm_job_free(j);
        return rc;
    }
    if (j->ck.on) { /* kept for a JobManager that restarts: it resumes the job from its checkpoints */
        char path[PATH_MAX + 16];
        sage__fmt(path, sizeof path, "%s/doc.json", j->dir);
        if (jm_private_dump(path, j->doc, JSON_COMPACT, err, err_len) != 0)
            jm_log(d, "job %lld: %s (it cannot be resumed after a restart of the JobManager)", (long long)j->id, err);
    }
    j->state = JJ_PENDING;
    j->next = d->jobs;
    d->jobs = j;
    *id = j->id;
    jm_log(d, "job %lld \"%s\" submitted: %zu chains, %zu tasks", (long long)j->id, j->name, j->nreqs, nt);
    /* first come, first served: behind an older job that waits for resources, a new one waits too */
    jm_job *older = oldest_waiting(d, j);
    if (older)
        sage__fmt(j->pending_reason, sizeof j->pending_reason, "waiting behind job %lld, which waits for resources",
                  (long long)older->id);
    else
        try_start(d, j);
    if (j->state == JJ_PENDING && j->pending_reason[0] && !j->failed)
        sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
    if (j->failed)
        jm_job_maybe_end(d, j); /* it failed before any worker ran */
    return 0;
}

void jm_jobs_resume(jm *d)
{
    size_t n;
    const int64_t *ids = sage__store_unfinished(d->store, &n);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX + 64], err[1024];
        sage__fmt(path, sizeof path, "%s/jobs/%lld/doc.json", d->home, (long long)ids[i]);
        if (access(path, F_OK) != 0)
            continue;
        json_error_t je;
        json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        jm_job *j = doc ? calloc(1, sizeof *j) : NULL;
        if (!j) {
            json_decref(doc);
            continue;
        }
        j->doc = doc;
        j->id = ids[i];
        sage__strlcpy(j->name, json_string_value(json_object_get(doc, "name")) ?: "?", sizeof j->name);
        sage__fmt(j->dir, sizeof j->dir, "%s/jobs/%lld", d->home, (long long)j->id);
        int rc = sage__plan_document_reqs(doc, &j->reqs, &j->nreqs, err, sizeof err);
        if (rc == 0)
            rc = fault_tolerance(d, j, err, sizeof err);
        if (rc == 0)
            rc = jm_ckpt_setup(d, j, err, sizeof err);
        if (rc == 0 && j->ck.on)
            rc = jm_ckpt_latest(d, j);
        if (rc != 0 || !j->ck.on) {
            jm_log(d, "job %lld \"%s\" stays failed: %s", (long long)j->id, j->name,
                   rc == SAGE_ENOTFOUND ? "no committed checkpoint to resume from" : err);
            jm_job_free(j);
            continue;
        }
        j->submitted_ms = sage__wall_ms();
        j->restarts = 1;
        j->ck.recoveries = 1;
        sage__fmt(j->last_failure, sizeof j->last_failure, "the JobManager stopped while the job was running");
        j->last_failure_ms = sage__wall_ms();
        j->state = JJ_PENDING;
        j->next = d->jobs;
        d->jobs = j;
        sage__store_job_state(d->store, j->id, "pending", "", 0);
        jm_log(d, "job %lld \"%s\": resumed after the JobManager's restart, from %s", (long long)j->id, j->name,
               j->ck.last_path);
        try_start(d, j);
        if (j->failed)
            jm_job_maybe_end(d, j);
    }
}
