/* jobmanager/views.c - what clients read: ping, a job's status, the job list, the end document; a task's store row.
 *
 * A live job is shown from memory; an ended one from the store (every task
 * row, however many) plus what its launcher kept (Slurm ids). The
 * launcher adds its own fields through its view hooks.
 */
#include <stdlib.h>
#include <string.h>

#include "jobmanager/launcher.h"
#include "util/err.h"
#include "util/time.h"

#define LIST_MAX 1000 /* the newest jobs `list` shows */

void jm_node_text(const sage__node *n, char *buf, size_t len)
{
    char mem[32];
    sage__format_bytes(n->memory, mem, sizeof mem);
    size_t o = (size_t)snprintf(buf, len, "%s (%d cpus, %d gpus, %s", n->name, n->ncpus, n->ngpus, mem);
    for (size_t c = 0; c < n->ncustom && o < len; c++)
        o += (size_t)snprintf(buf + o, len - o, ", %s=%g", n->custom[c].name, n->custom[c].amount);
    if (o < len)
        snprintf(buf + o, len - o, ")");
}

/* The nodes placement uses, for `jobmanager status`. */
static json_t *nodes_json(const jm *d)
{
    size_t n;
    const sage__node *nodes = d->launcher->nodes(d, &n);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *res = json_object();
        for (size_t c = 0; res && c < nodes[i].ncustom; c++)
            json_object_set_new(res, nodes[i].custom[c].name, json_real(nodes[i].custom[c].amount));
        json_array_append_new(a, json_pack("{s:s,s:i,s:i,s:I,s:o}", "name", nodes[i].name, "cpus", nodes[i].ncpus,
                                           "gpus", nodes[i].ngpus, "memory", (json_int_t)nodes[i].memory, "resources",
                                           res ? res : json_object()));
    }
    return a;
}

json_t *jm_ping_json(jm *d)
{
    int live = 0;
    for (jm_job *j = d->jobs; j; j = j->next)
        live++;
    json_t *p = json_pack("{s:i,s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:s}", "pid", (int)d->pid, "host", d->host, "port", d->port,
                          "home", d->home, "jobs_live", live, "version", sage_version(), "data_plane",
                          d->data_plane == JM_DATA_TCP ? "tcp" : "unix", "memory_enforcement",
                          d->cgmode == SAGE__CGROUP_V1   ? "cgroup v1"
                          : d->cgmode == SAGE__CGROUP_V2 ? "cgroup v2"
                                                         : d->cgwhy,
                          "launcher", d->launcher->name);
    if (p)
        json_object_set_new(p, "nodes", nodes_json(d));
    if (p && d->launcher->view_ping)
        d->launcher->view_ping(d, p);
    return p;
}

static uint64_t peak_memory(const jm_task *k) { return k->has_cg ? sage__cgroup_peak(&k->cg) : 0; }

pid_t jm_task_pid(const jm_task *k) { return k->worker_pid > 0 ? k->worker_pid : k->pid; }

static json_t *task_json(const jm_task *k)
{
    return json_pack("{s:i,s:s,s:i,s:s,s:i,s:s,s:s,s:I,s:I,s:O}", "task", k->index, "operator", k->op, "instance",
                     k->instance, "state", jm_task_state_name(k->state), "pid", (int)jm_task_pid(k), "cpus", k->cpus,
                     "gpus", k->gpus, "memory_limit", (json_int_t)k->mem_limit, "peak_memory",
                     (json_int_t)peak_memory(k), "metrics", k->metrics ? k->metrics : json_null());
}

void jm_task_row(const jm *d, const jm_job *j, const jm_task *k, sage__task_row *r)
{
    memset(r, 0, sizeof *r);
    r->job_id = j->id;
    r->task = k->index;
    sage__strlcpy(r->op, k->op, sizeof r->op);
    r->instance = k->instance;
    sage__strlcpy(r->state, jm_task_state_name(k->state), sizeof r->state);
    r->pid = (int)jm_task_pid(k);
    sage__strlcpy(r->host, d->launcher->task_host(d, k), sizeof r->host);
    sage__strlcpy(r->cpus, k->cpus, sizeof r->cpus);
    sage__strlcpy(r->gpus, k->gpus, sizeof r->gpus);
    r->memory_limit = (int64_t)k->mem_limit;
    r->peak_memory = (int64_t)peak_memory(k);
    if (k->metrics) {
        char *s = json_dumps(k->metrics, JSON_COMPACT);
        if (s && strlen(s) < sizeof r->metrics) /* larger: not stored (the end document has them from memory) */
            memcpy(r->metrics, s, strlen(s) + 1);
        free(s);
        json_t *ops = json_object_get(k->metrics, "operators");
        json_t *head = json_array_get(ops, 0), *tail = json_array_get(ops, json_array_size(ops) - 1);
        r->records_in = json_integer_value(json_object_get(head, "records_in"));
        r->records_out = json_integer_value(json_object_get(tail, "records_out"));
    }
}

static int add_task_row(const sage__task_row *r, void *arg)
{
    json_error_t e;
    json_t *m = r->metrics[0] ? json_loads(r->metrics, 0, &e) : NULL;
    json_t *t = json_pack("{s:i,s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:I,s:I,s:o}", "task", r->task, "operator", r->op,
                          "instance", r->instance, "state", r->state, "pid", r->pid, "host", r->host, "cpus", r->cpus,
                          "gpus", r->gpus, "memory_limit", (json_int_t)r->memory_limit, "peak_memory",
                          (json_int_t)r->peak_memory, "metrics", m ? m : json_null());
    return t && json_array_append_new(arg, t) == 0 ? 0 : SAGE_ENOMEM;
}

/* The job store's note about the job's records, if any ("store"). */
static void add_store_warning(jm *d, int64_t id, json_t *doc)
{
    char w[1024];
    if (doc && sage__store_warning(d->store, id, w, sizeof w))
        json_object_set_new(doc, "store", json_string(w));
}

void jm_ft_view(const jm_job *j, json_t *st, int64_t now)
{
    jm_ckpt_view(j, st);
    if (!st || j->ft.strategy == SAGE__FT_NONE)
        return;
    char how[160];
    sage__ft_describe(&j->ft, how, sizeof how);
    json_object_set_new(st, "fault_tolerance", sage__ft_json(&j->ft)); /* the strategy, every key explicit */
    json_object_set_new(st, "fault_tolerance_text", json_string(how));
    json_object_set_new(st, "restarts", json_integer(j->restarts));
    if (j->last_failure[0]) {
        json_object_set_new(st, "last_failure", json_string(j->last_failure));
        json_object_set_new(st, "last_failure_at_ms", json_integer((json_int_t)j->last_failure_ms));
    }
    if (j->restart_at_ms)
        json_object_set_new(st, "restart_in_ms",
                            json_integer((json_int_t)(j->restart_at_ms > now ? j->restart_at_ms - now : 0)));
}

/* What the fault-tolerance strategy did, kept at the end (jobs.c: <jobdir>/fault_tolerance.json), into an ended
 * job's view. */
static void ft_view_ended(const jm *d, int64_t id, json_t *end)
{
    char path[PATH_MAX + 64];
    sage__fmt(path, sizeof path, "%s/jobs/%lld/fault_tolerance.json", d->home, (long long)id);
    json_error_t jerr;
    json_t *ft = json_load_file(path, 0, &jerr);
    if (json_is_object(ft))
        json_object_update(end, ft);
    json_decref(ft);
}

json_t *jm_job_end_json(jm *d, const sage__job_row *row, const sage__task_row *tasks, size_t ntasks)
{
    json_t *tj = json_array();
    for (size_t t = 0; tj && t < ntasks; t++)
        if (add_task_row(&tasks[t], tj) != 0)
            jm_log(d, "job %lld: out of memory listing its tasks", (long long)row->id);
    json_t *end = json_pack("{s:I,s:s,s:s,s:s,s:o}", "job_id", (json_int_t)row->id, "name", row->name, "state",
                            row->state, "error", row->error, "tasks", tj);
    if (end && row->error_code < 0) /* a failed job: the code its pipeline failed with */
        json_object_set_new(end, "code", json_integer(row->error_code));
    if (end) {
        jm_slurm_view_ended(d, row->id, end);
        ft_view_ended(d, row->id, end);
    }
    add_store_warning(d, row->id, end);
    return end;
}

json_t *jm_job_list_json(jm *d)
{
    json_t *jobs = json_array();
    size_t n = 0;
    sage__job_row *rows = calloc(LIST_MAX, sizeof *rows);
    if (rows && sage__store_job_list(d->store, rows, LIST_MAX, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            jm_job *live = jm_job_find(d, rows[i].id);
            json_array_append_new(
                jobs, json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:i}", "job_id", (json_int_t)rows[i].id, "name",
                                rows[i].name, "state", live ? jm_job_state_name(live->state) : rows[i].state, "error",
                                live && live->pending_reason[0] ? live->pending_reason : rows[i].error, "submitted_ms",
                                (json_int_t)rows[i].submitted_ms, "started_ms", (json_int_t)rows[i].started_ms,
                                "ended_ms", (json_int_t)rows[i].ended_ms, "tasks", rows[i].ntasks));
        }
    free(rows);
    return json_pack("{s:o}", "jobs", jobs);
}

json_t *jm_job_status_json(jm *d, const jm_job *j)
{
    json_t *tasks = json_array();
    int64_t now = sage__mono_ms();
    for (size_t t = 0; t < j->ntasks; t++) {
        const jm_task *k = &j->tasks[t];
        json_t *tj = task_json(k);
        json_object_set_new(tj, "host", json_string(d->launcher->task_host(d, k)));
        if (k->pid > 0 && !k->exited && k->seen_ms) /* since its worker was last heard from */
            json_object_set_new(tj, "silent_ms", json_integer((json_int_t)(now - k->seen_ms)));
        if (d->launcher->view_task)
            d->launcher->view_task(d, j, k, tj);
        if (d->data_plane == JM_DATA_TCP && k->listen[0])
            json_object_set_new(tj, "listen", json_string(k->listen));
        json_array_append_new(tasks, tj);
    }
    json_t *st = json_pack("{s:I,s:s,s:s,s:s,s:o}", "job_id", (json_int_t)j->id, "name", j->name, "state",
                           jm_job_state_name(j->state), "error", j->pending_reason[0] ? j->pending_reason : j->error,
                           "tasks", tasks);
    jm_ft_view(j, st, now);
    if (st) { /* the job's shape, for views that draw it: chains (name, parallelism, requested resources) and
               * edges with routing */
        json_t *chains = json_array(), *c;
        size_t i;
        json_array_foreach(json_object_get(j->doc, "chains"), i, c)
        {
            json_t *one = json_pack("{s:O,s:O}", "name", json_object_get(c, "name"), "parallelism",
                                    json_object_get(c, "parallelism"));
            json_t *res = json_object_get(c, "resources");
            if (one && json_is_object(res))
                json_object_set(one, "resources", res);
            json_array_append_new(chains, one);
        }
        json_t *edges = json_object_get(j->doc, "edges");
        json_object_set_new(st, "graph",
                            json_pack("{s:o,s:o}", "chains", chains, "edges",
                                      json_is_array(edges) ? json_incref(edges) : json_array()));
    }
    if (st && d->launcher->view_job)
        d->launcher->view_job(d, j, st);
    add_store_warning(d, j->id, st);
    return st;
}
