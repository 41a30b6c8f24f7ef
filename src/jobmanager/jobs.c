/* jobmanager/jobs.c - job lifecycle in the JobManager: admission, placement, worker processes, failure, end.
 *
 * Design note. A submitted plan document lists the chains (fused operator
 * groups) with their parallelism and resource request. Admission places
 * them on the node: a job that could not fit even an idle node is refused
 * at once (the same message as embedded mode); one that fits but collides
 * with resources held by running jobs waits as "pending" with the reason,
 * and is placed again whenever a job ends. A placed job gets a directory
 * (spec.json for its workers, logs/, sock/, results/), one Unix listening
 * socket per task that has inputs (created here, before any worker runs, so
 * producers can connect at once; see "Data plane" below for TCP), a
 * cgroup per task, and one worker process per task: the user's
 * executable relaunched with SAGE_WORKER_SPEC and SAGE_WORKER_TASK,
 * pinned to its cores, with CUDA_VISIBLE_DEVICES set to exactly its
 * GPUs, stdout and stderr piped back here. A worker that
 * exits badly fails the job with its operator, instance, exit status or
 * signal, an OOM verdict from its cgroup, and the last lines of its
 * stderr; the other workers are killed; the job ends when every worker has
 * been reaped, so no process outlives its job.
 *
 * Data plane. With config "data_plane": "tcp" (for workers on several
 * hosts) no Unix listener is made: each worker whose chain has inputs
 * listens on TCP itself, on the address its control connection to us
 * uses, and reports "listen": "ADDR:PORT" in its HELLO. Once every task of
 * the job has said HELLO, each worker still connected gets one EVENT
 * {"event": "peers", "peers": {"<task>": "ADDR:PORT", ...}} and connects
 * its routes; until then producers wait (for us only: a worker whose
 * control connection closes gives up). A worker that dies first takes the
 * normal failure path, and no "peers" event is sent for a failed job.
 *
 * Slurm. With config "slurm": {"conf": PATH} the nodes are the cluster's
 * (sinfo --json, read at start and again at a submit when no job is live)
 * and the data plane is tcp. A placed job gets one allocation of whole
 * nodes, atomically: sbatch --exclusive --nodelist=<the nodes its tasks
 * landed on> of a batch script that only sleeps. The job stays "pending"
 * with Slurm's reason (squeue, polled from jm_jobs_timers, each command
 * bounded) until the allocation runs; then each task is started where a
 * local worker would be forked, as `srun --jobid --exact|--overlap -w NODE
 * ... -- env CUDA_VISIBLE_DEVICES=<its GPUs> EXE ARGS` with the worker's
 * environment (--export=ALL): the srun's exit status is the task's, so
 * supervision is unchanged. A task with exclusive whole CPUs is an --exact
 * step with its CPUs (and memory); any other (shared cores) is an
 * --overlap step, which Slurm never makes wait for CPUs that SAGE's
 * placement lets it share. GPUs and custom resources are SAGE's to count
 * inside the whole-node allocation (see srun_argv).
 * scancel releases the allocation when the job fails, is canceled, or
 * ends in any way; an allocation that dies under us ends its sruns, which
 * takes the normal failure path with Slurm's state and reason appended.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/slurm.h"
#include "util/err.h"
#include "util/time.h"
#include "jobmanager/jm.h"
#include "net/sock.h"
#include "util/utf8.h"

extern char **environ;

const char *jm_job_state_name(jm_job_state s)
{
    static const char *const n[] = {"pending", "running", "paused", "finished", "stopped", "failed", "canceled"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

const char *jm_task_state_name(jm_task_state s)
{
    static const char *const n[] = {"starting", "running", "finished", "failed", "killed"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

jm_job *jm_job_find(jm *d, int64_t id)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        if (j->id == id)
            return j;
    return NULL;
}

static void ids_text(char *buf, size_t len, const int *ids, int n)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o + 1 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", ids[i]);
}

/* The nodes placement uses: the Slurm cluster's, or this host. */
static const sage__node *jm_nodes(const jm *d, size_t *n)
{
    if (d->slurm_conf[0]) {
        *n = d->slurm_nnodes;
        return d->slurm_nodes;
    }
    *n = 1;
    return &d->node;
}

int jm_slurm_refresh(jm *d, char *err, size_t err_len)
{
    sage__node *nodes = NULL;
    size_t n = 0;
    sage__err e = {0};
    int rc = sage__slurm_nodes(d->slurm_conf, SAGE__SLURM_WAIT_MS, &nodes, &n, &e);
    if (rc != 0) {
        snprintf(err, err_len, "reading the Slurm cluster's nodes: %s", e.msg);
        return rc;
    }
    free(d->slurm_nodes);
    d->slurm_nodes = nodes;
    d->slurm_nnodes = n;
    return 0;
}

/* The comment every allocation of ours carries: which JobManager state dir made it. */
static void slurm_tag(const jm *d, char *buf, size_t len) { snprintf(buf, len, "sage-jobmanager:%s", d->home); }

void jm_slurm_startup(jm *d)
{
    char *out = NULL, msg[1024], tag[1100];
    char *argv[] = {"squeue", "-h", "-o", "%i|%k", NULL};
    slurm_tag(d, tag, sizeof tag);
    if (sage__slurm_run(d->slurm_conf, argv, SAGE__SLURM_WAIT_MS, &out, msg, sizeof msg) != 0) {
        jm_log(d, "could not look for allocations left by an earlier JobManager: squeue: %s", msg);
        free(out);
        return;
    }
    for (char *line = out, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *bar = strchr(line, '|');
        if (!bar || strcmp(bar + 1, tag) != 0)
            continue;
        *bar = 0;
        char *cargv[] = {"scancel", line, NULL};
        int rc = sage__slurm_run(d->slurm_conf, cargv, SAGE__SLURM_WAIT_MS, NULL, msg, sizeof msg);
        jm_log(d, "Slurm job %s was left by an earlier JobManager of %s: %s%s", line, d->home,
               rc == 0 ? "canceled" : "scancel failed: ", rc == 0 ? "" : msg);
    }
    free(out);
}

/* ---- admission ---- */

/* Build placement requests from the document's chains. */
static int doc_reqs(json_t *doc, sage__place_req **out, size_t *n, char *err, size_t err_len)
{
    json_t *chains = json_object_get(doc, "chains");
    if (!json_is_array(chains) || json_array_size(chains) == 0 || json_array_size(chains) > 4096) {
        snprintf(err, err_len, "submit: the plan has no chains");
        return SAGE_EPROTO;
    }
    size_t nc = json_array_size(chains);
    sage__place_req *r = calloc(nc, sizeof *r);
    if (!r)
        return SAGE_ENOMEM;
    for (size_t i = 0; i < nc; i++) {
        json_t *c = json_array_get(chains, i);
        r[i].name = json_string_value(json_object_get(c, "name"));
        r[i].parallelism = (int)json_integer_value(json_object_get(c, "parallelism"));
        json_t *res = json_object_get(c, "resources");
        char rerr[512];
        if (!r[i].name || r[i].parallelism < 1 || r[i].parallelism > SAGE_PARALLELISM_MAX) {
            snprintf(err, err_len, "submit: chain %zu has no name or a bad parallelism", i);
            free(r);
            return SAGE_EPROTO;
        }
        if (json_is_object(res)) {
            char *txt = json_dumps(res, JSON_COMPACT);
            int rc = txt ? sage_resources_parse(txt, &r[i].res, rerr, sizeof rerr) : SAGE_ENOMEM;
            free(txt);
            if (rc != 0) {
                snprintf(err, err_len, "operator \"%s\": resources: %s", r[i].name, rerr);
                free(r);
                return SAGE_ERESOURCES;
            }
        }
    }
    *out = r;
    *n = nc;
    return 0;
}

static void job_free(jm_job *j)
{
    if (!j)
        return;
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if (k->listen_fd >= 0)
            close(k->listen_fd);
        if (k->out_fd >= 0)
            close(k->out_fd);
        if (k->err_fd >= 0)
            close(k->err_fd);
        if (k->log)
            fclose(k->log);
        if (k->has_cg)
            sage__cgroup_destroy(&k->cg);
        if (k->ctl)
            k->ctl->job_id = 0, k->ctl->task = -1;
        json_decref(k->metrics);
    }
    free(j->tasks);
    if (j->assign)
        sage__assign_free(j->assign, j->reqs, j->nreqs);
    free(j->reqs);
    json_decref(j->doc);
    free(j);
}

static int write_spec(jm *d, jm_job *j, char *err, size_t err_len)
{
    json_t *tasks = json_array();
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
        json_array_append_new(tasks, json_pack("{s:i,s:i,s:i,s:o,s:b,s:b,s:o,s:f,s:I,s:I,s:o,s:s}", "task", (int)t,
                                               "chain", k->chain, "instance", k->instance, "cpus", cpus, "exclusive",
                                               a->exclusive, "pinned", a->pin, "gpus", gpus, "gpu_fraction",
                                               a->gpu_fraction, "memory", (json_int_t)a->memory, "object_store_memory",
                                               (json_int_t)a->object_store_memory, "resources", custom, "node",
                                               k->node));
        /* a tcp worker opens its listener before it has compiled the plan: tell it whether to */
        json_t *tj = json_array_get(tasks, json_array_size(tasks) - 1);
        json_object_set_new(tj, "inputs", json_boolean(k->has_inputs));
        json_object_set_new(tj, "producers", json_integer(k->producers));
    }
    json_t *spec = json_pack("{s:I,s:s,s:O,s:s,s:s,s:i,s:s,s:o}", "job_id", (json_int_t)j->id, "name", j->name,
                             "plan_hash", json_object_get(j->doc, "plan_hash"), "dir", j->dir, "jobmanager_host",
                             d->host, "jobmanager_port", d->port, "data_plane",
                             d->data_plane == JM_DATA_TCP ? "tcp" : "unix", "tasks", tasks);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/spec.json", j->dir);
    int rc = json_dump_file(spec, path, JSON_INDENT(1));
    json_decref(spec);
    if (rc != 0) {
        snprintf(err, err_len, "cannot write %s/spec.json", j->dir);
        return SAGE_EIO;
    }
    return 0;
}

/* Environment for a worker: the submitter's, with SAGE's own variables set. */
static char **worker_env(jm *d, jm_job *j, jm_task *k)
{
    json_t *env = json_object_get(j->doc, "env");
    size_t n = json_is_array(env) ? json_array_size(env) : 0;
    char **e = calloc(n + 8, sizeof *e);
    if (!e)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_array_get(env, i));
        if (!v || strncmp(v, "SAGE_WORKER_", 12) == 0 || strncmp(v, "CUDA_VISIBLE_DEVICES=", 21) == 0 ||
            strncmp(v, "SAGE_HOME=", 10) == 0)
            continue;
        /* on Slurm the submitter's own Slurm variables (it may run inside a job) would mislead srun */
        if (d->slurm_conf[0] && strncmp(v, "SLURM_", 6) == 0)
            continue;
        e[m++] = strdup(v);
    }
    char buf[PATH_MAX + 64];
    snprintf(buf, sizeof buf, "SAGE_WORKER_SPEC=%s/spec.json", j->dir);
    e[m++] = strdup(buf);
    snprintf(buf, sizeof buf, "SAGE_WORKER_TASK=%d", k->index);
    e[m++] = strdup(buf);
    snprintf(buf, sizeof buf, "SAGE_HOME=%s", d->home);
    e[m++] = strdup(buf);
    snprintf(buf, sizeof buf, "CUDA_VISIBLE_DEVICES=%s", k->gpus);
    e[m++] = strdup(buf);
    if (d->slurm_conf[0]) {
        snprintf(buf, sizeof buf, "SLURM_CONF=%s", d->slurm_conf);
        e[m++] = strdup(buf);
    }
    e[m] = NULL;
    for (size_t i = 0; i < m; i++)
        if (!e[i]) {
            for (size_t z = 0; z < m; z++)
                free(e[z]);
            free(e);
            return NULL;
        }
    return e;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The srun command line that runs one task inside the job's allocation:
 * srun [options] -- EXE ARGS. Strings are malloc'd (free_strv). */
static char **srun_argv(jm *d, jm_job *j, jm_task *k, const char *exe, json_t *argvj)
{
    const sage__assign *a = &j->assign[k->chain][k->instance];
    size_t argc = json_array_size(argvj);
    char **v = calloc(argc + 28, sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    char buf[1024];
#define ARG(...) (snprintf(buf, sizeof buf, __VA_ARGS__), v[n++] = strdup(buf))
    ARG("srun");
    ARG("--jobid=%lld", j->slurm_job);
    /* exclusive whole CPUs: a step that holds them; shared cores: a step Slurm lets overlap the others */
    int exact = a->exclusive && a->ncpus > 0;
    ARG("%s", exact ? "--exact" : "--overlap");
    ARG("--nodes=1");
    ARG("--ntasks=1");
    ARG("--nodelist=%s", k->node);
    ARG("--job-name=sage-%lld-%d", (long long)j->id, k->index);
    ARG("--cpus-per-task=%d", exact ? a->ncpus : 1);
    uint64_t mem = a->memory + a->object_store_memory;
    if (mem)
        ARG("--mem=%lluM", (unsigned long long)((mem + (1u << 20) - 1) >> 20));
    /* GPUs and other gres are not asked of Slurm per step: the allocation holds no gres (one sbatch cannot
     * ask different gres per node without a heterogeneous job), and Slurm refuses a step's --gpus then
     * ("Invalid generic resource (gres) specification"). The allocation is whole nodes, SAGE's placement
     * counts them, and CUDA_VISIBLE_DEVICES names the task's own GPUs. */
    ARG("--input=none");
    ARG("--export=ALL");
    ARG("--");
    /* Slurm's gpu plugin sets (or clears) CUDA_VISIBLE_DEVICES in the step: put ours back last */
    ARG("env");
    ARG("CUDA_VISIBLE_DEVICES=%s", k->gpus);
    ARG("%s", exe);
    for (size_t i = 1; i < argc; i++)
        ARG("%s", json_string_value(json_array_get(argvj, i)) ? json_string_value(json_array_get(argvj, i)) : "");
#undef ARG
    v[n] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!v[i]) {
            for (size_t z = 0; z < n; z++)
                free(v[z]);
            free(v);
            return NULL;
        }
    return v;
}

static int spawn_task(jm *d, jm_job *j, jm_task *k, char *err, size_t err_len)
{
    const sage__assign *a = &j->assign[k->chain][k->instance];
    const char *exe = json_string_value(json_object_get(j->doc, "executable"));
    const char *cwd = json_string_value(json_object_get(j->doc, "cwd"));
    json_t *argvj = json_object_get(j->doc, "argv");
    if (!exe || !json_is_array(argvj) || json_array_size(argvj) > 4096) {
        snprintf(err, err_len, "submit: no executable or argv");
        return SAGE_EPROTO;
    }
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/logs/%s.%d.log", j->dir, k->op, k->instance);
    k->log = fopen(path, "we");
    int outp[2], errp[2];
    if (pipe2(outp, O_CLOEXEC) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        return SAGE_ESYS;
    }
    if (pipe2(errp, O_CLOEXEC) != 0) {
        close(outp[0]);
        close(outp[1]);
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        return SAGE_ESYS;
    }
    int slurm = d->slurm_conf[0] != 0;
    if (d->cgmode != SAGE__CGROUP_NONE && !slurm) {
        char name[64], cgerr[512];
        snprintf(name, sizeof name, "jm%ld-job%lld-task%d", (long)d->pid, (long long)j->id, k->index);
        if (sage__cgroup_create(&k->cg, d->cgmode, d->cgparent, name, k->mem_limit, cgerr, sizeof cgerr) == 0)
            k->has_cg = 1;
        else
            jm_log(d, "job %lld task %d: no cgroup (%s); its memory is not limited", (long long)j->id, k->index, cgerr);
    }
    size_t argc = json_array_size(argvj);
    char **argv = calloc(argc + 1, sizeof *argv);
    char **envp = worker_env(d, j, k);
    char **sargv = slurm ? srun_argv(d, j, k, exe, argvj) : NULL;
    if (!argv || !envp || (slurm && !sargv)) {
        free(argv);
        free_strv(envp);
        free_strv(sargv);
        close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
        return SAGE_ENOMEM;
    }
    for (size_t i = 0; i < argc; i++)
        argv[i] = (char *)json_string_value(json_array_get(argvj, i));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        /* the worker never outlives the JobManager (srun: SIGTERM, so that it ends its step) */
        prctl(PR_SET_PDEATHSIG, slurm ? SIGTERM : SIGKILL);
        if (getppid() != parent)
            _exit(126);
        if (slurm) {
            dup2(outp[1], 1);
            dup2(errp[1], 2);
            if (cwd && chdir(cwd) != 0) { /* srun runs the task in its own working directory */
                static const char msg[] = "sage worker: cannot enter the submitter's working directory\n";
                (void)!write(2, msg, sizeof msg - 1);
            }
            execvpe(sargv[0], sargv, envp);
            static const char msg[] = "sage worker: cannot execute srun (is Slurm's client installed and in PATH?)\n";
            (void)!write(2, msg, sizeof msg - 1);
            _exit(127);
        }
        if (k->has_cg)
            sage__cgroup_attach_self(&k->cg);
        if (a->pin)
            sched_setaffinity(0, sizeof a->affinity, &a->affinity);
        dup2(outp[1], 1);
        dup2(errp[1], 2);
        if (k->listen_fd >= 0)
            dup2(k->listen_fd, 3);
        if (cwd && chdir(cwd) != 0) {
            static const char msg[] = "sage worker: cannot enter the submitter's working directory\n";
            (void)!write(2, msg, sizeof msg - 1);
        }
        execve(exe, argv, envp);
        static const char msg[] = "sage worker: cannot execute the job's program\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(127);
    }
    int e = errno;
    free(argv);
    free_strv(envp);
    free_strv(sargv);
    close(outp[1]);
    close(errp[1]);
    if (pid < 0) {
        close(outp[0]);
        close(errp[0]);
        snprintf(err, err_len, "fork: %s", strerror(e));
        return SAGE_ESYS;
    }
    k->pid = pid;
    k->out_fd = outp[0];
    k->err_fd = errp[0];
    sage__set_nonblock(k->out_fd, 1);
    sage__set_nonblock(k->err_fd, 1);
    j->running++;
    return 0;
}

static void job_end(jm *d, jm_job *j);

/* End the job once no worker of it is left to reap. Returns 1 if it ended
 * (the job is freed and unlinked then). */
static int maybe_end(jm *d, jm_job *j)
{
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].pid > 0 && !j->tasks[t].exited)
            return 0;
    int started = j->ntasks > 0 && j->tasks[0].pid > 0;
    if (!started && !j->failed && !j->cancel_requested && !j->stop_requested)
        return 0; /* still pending */
    job_end(d, j);
    return 1;
}

/* Release the job's Slurm allocation (once): its steps end, so do their sruns. */
static void slurm_release(jm *d, jm_job *j)
{
    if (!j->slurm_job || j->slurm_released)
        return;
    j->slurm_released = 1;
    char id[32], msg[1024];
    snprintf(id, sizeof id, "%lld", j->slurm_job);
    char *argv[] = {"scancel", id, NULL};
    int rc = sage__slurm_run(d->slurm_conf, argv, SAGE__SLURM_WAIT_MS, NULL, msg, sizeof msg);
    if (rc != 0)
        jm_log(d, "job %lld: scancel %s failed (%s); the allocation may still be held", (long long)j->id, id,
               msg[0] ? msg : "no message");
    else
        jm_log(d, "job %lld: Slurm allocation %s released", (long long)j->id, id);
}

/* Slurm's view of the allocation, for failure messages: "JobState=X Reason=Y". */
static void slurm_job_state(jm *d, jm_job *j, char *out, size_t len)
{
    out[0] = 0;
    if (!j->slurm_job)
        return;
    char id[32], msg[512], *txt = NULL;
    snprintf(id, sizeof id, "%lld", j->slurm_job);
    char *argv[] = {"scontrol", "show", "job", id, "-o", NULL};
    if (sage__slurm_run(d->slurm_conf, argv, 5000, &txt, msg, sizeof msg) == 0 && txt) {
        const char *st = strstr(txt, "JobState="), *re = strstr(txt, " Reason=");
        if (st)
            snprintf(out, len, "JobState=%.*s", (int)strcspn(st + 9, " \n"), st + 9);
        if (re) {
            size_t l = strlen(out);
            snprintf(out + l, len - l, "%sReason=%.*s", l ? " " : "", (int)strcspn(re + 8, " \n"), re + 8);
        }
    } else if (msg[0]) {
        snprintf(out, len, "unknown (%.200s)", msg);
    }
    free(txt);
}

static void kill_tasks(jm *d, jm_job *j)
{
    slurm_release(d, j);
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if (k->pid <= 0 || k->exited || k->killed_by_us)
            continue;
        /* one that already died on its own (not reaped yet) keeps its own story */
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)k->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == k->pid)
            continue;
        k->killed_by_us = 1;
        kill(k->pid, SIGKILL);
    }
}

/* Failure priorities: when one worker dies, its neighbours fail too (broken
 * connections); the reason kept is the one that explains most. An echo
 * alone does not kill the others at once: they end by themselves as their
 * connections break, which lets the real cause (a worker killed by a
 * signal, say) be reaped and named first; ECHO_GRACE_MS bounds that. */
enum { PRIO_ECHO = 1, PRIO_GONE = 2, PRIO_USER = 3, PRIO_ROOT = 4 };
#define ECHO_GRACE_MS 2000

static void job_fail(jm *d, jm_job *j, int prio, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void job_fail(jm *d, jm_job *j, int prio, const char *fmt, ...)
{
    if (!j->cancel_requested && (!j->failed || prio > j->err_prio)) {
        j->failed = 1;
        j->err_prio = prio;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->error, sizeof j->error, fmt, ap);
        va_end(ap);
        sage__utf8_clean(j->error, strlen(j->error)); /* program output inside: must stay valid JSON text */
        jm_log(d, "job %lld failed: %s", (long long)j->id, j->error);
    }
    if (prio <= PRIO_GONE && j->err_prio <= PRIO_GONE) {
        if (!j->kill_at_ms)
            j->kill_at_ms = jm_now_ms() + ECHO_GRACE_MS;
        return;
    }
    kill_tasks(d, j);
}

/* Start every task of a placed job (its allocation runs, on Slurm). */
static int start_tasks(jm *d, jm_job *j)
{
    char err[4096];
    int rc = 0;
    j->state = JJ_RUNNING;
    j->pending_reason[0] = 0;
    j->started_ms = jm_now_ms();
    sage__store_job_state(d->store, j->id, "running", "", j->started_ms);
    for (size_t t = 0; t < j->ntasks; t++) {
        jm_task *k = &j->tasks[t];
        if ((rc = spawn_task(d, j, k, err, sizeof err)) != 0) {
            job_fail(d, j, PRIO_ROOT, "operator \"%s\" instance %d could not start: %s", k->op, k->instance, err);
            break;
        }
        /* the listener now lives in the worker; ours is no longer needed */
        if (k->listen_fd >= 0) {
            close(k->listen_fd);
            k->listen_fd = -1;
        }
    }
    if (j->slurm_job)
        jm_log(d, "job %lld \"%s\" started: %zu tasks as steps of Slurm job %lld", (long long)j->id, j->name,
               j->ntasks, j->slurm_job);
    else
        jm_log(d, "job %lld \"%s\" started: %zu tasks", (long long)j->id, j->name, j->ntasks);
    return rc;
}

#define SLURM_POLL_MS 500 /* squeue while an allocation is pending, and for step ids after */
#define SLURM_STEP_POLLS 25
#define SLURM_STEP_POLL_MS 200

/* A pending allocation: run its tasks once Slurm runs it, fail the job if Slurm ended it,
 * else keep Slurm's reason. Returns 1 if the job ended (and was freed). */
static int slurm_poll_pending(jm *d, jm_job *j)
{
    char id[32], msg[1024], *out = NULL;
    snprintf(id, sizeof id, "%lld", j->slurm_job);
    char *argv[] = {"squeue", "-h", "-j", id, "-o", "%T|%r", NULL};
    int rc = sage__slurm_run(d->slurm_conf, argv, SAGE__SLURM_WAIT_MS, &out, msg, sizeof msg);
    char state[64] = "", reason[256] = "";
    if (rc == 0 && out) {
        out[strcspn(out, "\n")] = 0;
        char *bar = strchr(out, '|');
        if (bar) {
            *bar = 0;
            snprintf(reason, sizeof reason, "%s", bar + 1);
        }
        snprintf(state, sizeof state, "%s", out);
    }
    free(out);
    if (rc < 0 || (rc != 0 && !strstr(msg, "Invalid job id"))) {
        /* squeue itself failed: say so, try again later (the allocation is Slurm's to keep) */
        snprintf(j->pending_reason, sizeof j->pending_reason,
                 "waiting for Slurm allocation %lld; squeue failed: %.400s", j->slurm_job, msg);
        return 0;
    }
    if (strcmp(state, "RUNNING") == 0) {
        j->slurm_running = 1;
        j->slurm_poll_at = jm_now_ms() + SLURM_STEP_POLL_MS; /* then: the step ids */
        snprintf(j->slurm_state, sizeof j->slurm_state, "RUNNING");
        start_tasks(d, j);
        if (j->failed && maybe_end(d, j))
            return 1;
        return 0;
    }
    if (strcmp(state, "PENDING") == 0 || strcmp(state, "CONFIGURING") == 0 || strcmp(state, "REQUEUED") == 0 ||
        strcmp(state, "RESIZING") == 0) {
        char pr[sizeof j->pending_reason];
        snprintf(pr, sizeof pr, "waiting for Slurm allocation %lld: %s (%s)", j->slurm_job, state,
                 reason[0] ? reason : "no reason given");
        if (strcmp(pr, j->pending_reason) != 0) {
            snprintf(j->pending_reason, sizeof j->pending_reason, "%s", pr);
            sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
        }
        return 0;
    }
    /* ended, or unknown to Slurm: the job cannot start */
    char st[256];
    slurm_job_state(d, j, st, sizeof st);
    j->slurm_released = 1; /* nothing left to release */
    j->slurm_poll_at = 0;
    j->pending_reason[0] = 0;
    job_fail(d, j, PRIO_ROOT, "the Slurm allocation %lld ended before the job started (%s%s%s)", j->slurm_job,
             state[0] ? state : "no longer known to squeue", st[0] ? "; " : "", st);
    return maybe_end(d, j);
}

/* A running allocation: learn each task's step id (the steps are named sage-<job>-<task>). */
static void slurm_poll_steps(jm *d, jm_job *j)
{
    char id[32], msg[512], *out = NULL;
    snprintf(id, sizeof id, "%lld", j->slurm_job);
    char *argv[] = {"squeue", "-h", "-s", "-j", id, "-o", "%i|%j", NULL};
    j->slurm_step_polls++;
    if (sage__slurm_run(d->slurm_conf, argv, SAGE__SLURM_WAIT_MS, &out, msg, sizeof msg) == 0 && out) {
        char prefix[64];
        int pl = snprintf(prefix, sizeof prefix, "sage-%lld-", (long long)j->id);
        for (char *line = out, *next; *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = 0;
            else
                next = line + strlen(line);
            char *bar = strchr(line, '|'), *dot = strchr(line, '.');
            if (!bar || !dot || dot > bar || strncmp(bar + 1, prefix, (size_t)pl) != 0)
                continue;
            long task = strtol(bar + 1 + pl, NULL, 10);
            if (task >= 0 && (size_t)task < j->ntasks)
                j->tasks[task].slurm_step = strtoll(dot + 1, NULL, 10);
        }
    }
    free(out);
    int missing = 0;
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].slurm_step < 0 && j->tasks[t].pid > 0 && !j->tasks[t].exited)
            missing = 1;
    j->slurm_poll_at = missing && j->slurm_step_polls < SLURM_STEP_POLLS ? jm_now_ms() + SLURM_STEP_POLL_MS : 0;
}

int jm_jobs_timers(jm *d)
{
    int64_t now, next;
again:
    now = jm_now_ms();
    next = -1;
    for (jm_job *j = d->jobs; j; j = j->next) {
        if (j->slurm_poll_at && j->slurm_poll_at <= now && !d->stop) {
            if (j->failed || j->cancel_requested || j->stop_requested) {
                j->slurm_poll_at = 0;
            } else if (!j->slurm_running) {
                j->slurm_poll_at = now + SLURM_POLL_MS;
                if (slurm_poll_pending(d, j))
                    goto again; /* the list changed */
                goto again;     /* starting may have taken a while: look at the clock again */
            } else {
                slurm_poll_steps(d, j);
            }
        }
        if (j->slurm_poll_at && (next < 0 || j->slurm_poll_at - now < next))
            next = j->slurm_poll_at > now ? j->slurm_poll_at - now : 0;
        if (!j->kill_at_ms)
            continue;
        if (j->kill_at_ms <= now || j->err_prio > PRIO_GONE || j->cancel_requested) {
            j->kill_at_ms = 0;
            kill_tasks(d, j);
        } else if (next < 0 || j->kill_at_ms - now < next) {
            next = j->kill_at_ms - now;
        }
    }
    return (int)next;
}

/* One allocation for the whole job, atomically: whole nodes, the ones its tasks were placed on.
 * The job stays pending until jm_jobs_timers sees it run. */
static int slurm_allocate(jm *d, jm_job *j)
{
    char nodelist[4096] = "", tag[1100], name[64], nn[32], list[4200], comment[1200], msg[1024], *out = NULL;
    size_t o = 0;
    int count = 0;
    for (size_t t = 0; t < j->ntasks; t++) {
        int seen = 0;
        for (size_t u = 0; u < t && !seen; u++)
            seen = strcmp(j->tasks[u].node, j->tasks[t].node) == 0;
        if (seen)
            continue;
        if (o + strlen(j->tasks[t].node) + 2 >= sizeof nodelist) {
            job_fail(d, j, PRIO_ROOT, "the job's node list is too long for sbatch");
            return SAGE_ETOOBIG;
        }
        o += (size_t)snprintf(nodelist + o, sizeof nodelist - o, "%s%s", o ? "," : "", j->tasks[t].node);
        count++;
    }
    slurm_tag(d, tag, sizeof tag);
    snprintf(name, sizeof name, "--job-name=sage-%lld", (long long)j->id);
    snprintf(nn, sizeof nn, "--nodes=%d", count);
    snprintf(list, sizeof list, "--nodelist=%s", nodelist);
    snprintf(comment, sizeof comment, "--comment=%s", tag);
    char *argv[] = {"sbatch", "--parsable", name, nn, list, "--exclusive", "--mem=0", comment, "--chdir=/",
                    "--output=/dev/null", "--wrap", "sleep infinity", NULL};
    int rc = sage__slurm_run(d->slurm_conf, argv, SAGE__SLURM_WAIT_MS, &out, msg, sizeof msg);
    long long id = rc == 0 && out ? strtoll(out, NULL, 10) : 0;
    free(out);
    if (id <= 0) {
        job_fail(d, j, PRIO_ROOT, "Slurm refused the job's allocation (sbatch --nodelist=%s --exclusive): %s",
                 nodelist, rc == 0 ? "sbatch printed no job id" : msg[0] ? msg : "no message");
        return SAGE_ESYS;
    }
    j->slurm_job = id;
    j->slurm_poll_at = jm_now_ms(); /* at once: the next loop turn */
    snprintf(j->pending_reason, sizeof j->pending_reason, "waiting for Slurm allocation %lld on %.400s", id, nodelist);
    sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
    jm_log(d, "job %lld \"%s\": Slurm allocation %lld requested on %s (%zu tasks)", (long long)j->id, j->name, id,
           nodelist, j->ntasks);
    return 0;
}

/* Try to place a pending job on what running jobs leave free. */
static int try_start(jm *d, jm_job *j)
{
    size_t nheld = 0;
    for (jm_job *o = d->jobs; o; o = o->next)
        if (o != j && o->assign)
            nheld++;
    sage__held *held = calloc(nheld ? nheld : 1, sizeof *held);
    if (!held)
        return SAGE_ENOMEM;
    size_t h = 0;
    for (jm_job *o = d->jobs; o; o = o->next)
        if (o != j && o->assign)
            held[h++] = (sage__held){o->reqs, o->nreqs, o->assign};
    char err[4096];
    size_t nnodes;
    const sage__node *nodes = jm_nodes(d, &nnodes);
    int rc = sage__place_held(nodes, nnodes, held, nheld, j->reqs, j->nreqs, &j->assign, err, sizeof err);
    free(held);
    if (rc == SAGE_EINFEASIBLE) {
        snprintf(j->pending_reason, sizeof j->pending_reason, "waiting for resources held by running jobs");
        return 0;
    }
    if (rc != 0) {
        job_fail(d, j, PRIO_ROOT, "placement: %s", err);
        return rc;
    }
    j->pending_reason[0] = 0;
    /* tasks: chain by chain, instance by instance (the same order as embedded mode) */
    size_t nt = 0;
    for (size_t c = 0; c < j->nreqs; c++)
        nt += (size_t)j->reqs[c].parallelism;
    j->tasks = calloc(nt, sizeof *j->tasks);
    if (!j->tasks)
        return SAGE_ENOMEM;
    j->ntasks = nt;
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/logs", j->dir);
    mkdir(dir, 0700);
    if (d->data_plane == JM_DATA_UNIX) {
        snprintf(dir, sizeof dir, "%s/sock", j->dir);
        mkdir(dir, 0700);
    }
    snprintf(dir, sizeof dir, "%s/results", j->dir);
    mkdir(dir, 0700);
    json_t *chains = json_object_get(j->doc, "chains");
    size_t t = 0;
    for (size_t c = 0; c < j->nreqs; c++) {
        int has_inputs = json_is_true(json_object_get(json_array_get(chains, c), "inputs"));
        int producers = (int)json_integer_value(json_object_get(json_array_get(chains, c), "producers"));
        for (int i = 0; i < j->reqs[c].parallelism; i++, t++) {
            jm_task *k = &j->tasks[t];
            const sage__assign *a = &j->assign[c][i];
            k->index = (int)t;
            k->chain = (int)c;
            k->instance = i;
            k->listen_fd = k->out_fd = k->err_fd = -1;
            k->slurm_step = -1;
            snprintf(k->node, sizeof k->node, "%s",
                     a->node >= 0 && (size_t)a->node < nnodes ? nodes[a->node].name : d->node.name);
            snprintf(k->op, sizeof k->op, "%s", j->reqs[c].name);
            ids_text(k->cpus, sizeof k->cpus, a->cpus, a->ncpus);
            ids_text(k->gpus, sizeof k->gpus, a->gpus, a->ngpus);
            k->mem_limit = a->memory;
            k->has_inputs = has_inputs;
            k->producers = producers;
            if (has_inputs && d->data_plane == JM_DATA_UNIX) {
                char sp[PATH_MAX + 64];
                snprintf(sp, sizeof sp, "%s/sock/%zu.%d", j->dir, c, i);
                if (sage__unix_listen(sp, producers > 0 ? producers + 8 : 64, &k->listen_fd, err, sizeof err) != 0) {
                    job_fail(d, j, PRIO_ROOT, "operator \"%s\" instance %d: %s", k->op, i, err);
                    return SAGE_EIO;
                }
            }
        }
    }
    if ((rc = write_spec(d, j, err, sizeof err)) != 0) {
        job_fail(d, j, PRIO_ROOT, "%s", err);
        return rc;
    }
    if (d->slurm_conf[0])
        return slurm_allocate(d, j);
    return start_tasks(d, j);
}

int jm_job_submit(jm *d, json_t *doc, int64_t *id, char *err, size_t err_len)
{
    jm_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(doc);
        return SAGE_ENOMEM;
    }
    j->doc = doc;
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *exe = json_string_value(json_object_get(doc, "executable"));
    if (!name || !exe || !json_is_integer(json_object_get(doc, "plan_hash"))) {
        snprintf(err, err_len, "submit: the job document lacks name, executable or plan_hash");
        job_free(j);
        return SAGE_EPROTO;
    }
    snprintf(j->name, sizeof j->name, "%s", name);
    int rc = doc_reqs(doc, &j->reqs, &j->nreqs, err, err_len);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    /* Slurm: nodes join and leave; read them again while no job holds a placement on them */
    if (d->slurm_conf[0] && !d->jobs && (rc = jm_slurm_refresh(d, err, err_len)) != 0) {
        job_free(j);
        return rc;
    }
    /* Refuse at once what could never fit, even on an idle node. */
    sage__assign **probe = NULL;
    size_t nnodes;
    const sage__node *nodes = jm_nodes(d, &nnodes);
    rc = sage__place(nodes, nnodes, j->reqs, j->nreqs, &probe, err, err_len);
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    sage__assign_free(probe, j->reqs, j->nreqs);
    j->submitted_ms = jm_now_ms();
    size_t nt = 0;
    for (size_t c = 0; c < j->nreqs; c++)
        nt += (size_t)j->reqs[c].parallelism;
    if ((rc = sage__store_job_insert(d->store, j->name, exe, (int)nt, j->submitted_ms, &j->id)) != 0) {
        snprintf(err, err_len, "the job store failed (%s)", sage_strerror(rc));
        job_free(j);
        return rc;
    }
    snprintf(j->dir, sizeof j->dir, "%s/jobs/%lld", d->home, (long long)j->id);
    if (mkdir(j->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create %s: %s", j->dir, strerror(errno));
        sage__store_job_state(d->store, j->id, "failed", err, jm_now_ms());
        job_free(j);
        return SAGE_EIO;
    }
    j->state = JJ_PENDING;
    j->next = d->jobs;
    d->jobs = j;
    *id = j->id;
    jm_log(d, "job %lld \"%s\" submitted: %zu chains, %zu tasks", (long long)j->id, j->name, j->nreqs, nt);
    /* first come, first served: behind an older job that waits for resources, a new one waits too */
    jm_job *older = NULL;
    for (jm_job *o = d->jobs; o; o = o->next)
        if (o != j && o->state == JJ_PENDING && !o->assign && !o->failed && (!older || o->id < older->id))
            older = o;
    if (older)
        snprintf(j->pending_reason, sizeof j->pending_reason, "waiting behind job %lld, which waits for resources",
                 (long long)older->id);
    else
        try_start(d, j);
    if (j->state == JJ_PENDING && j->pending_reason[0])
        sage__store_job_state(d->store, j->id, "pending", j->pending_reason, 0);
    if (j->failed)
        maybe_end(d, j); /* it failed before any worker ran */
    return 0;
}

/* ---- worker reports ---- */

void jm_on_worker_event(jm *d, jm_conn *c, json_t *ev)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks)
        return;
    jm_task *k = &j->tasks[c->task];
    const char *type = json_string_value(json_object_get(ev, "event"));
    json_t *m = json_object_get(ev, "metrics");
    if (m) {
        json_decref(k->metrics);
        k->metrics = json_incref(m);
    }
    if (type && strcmp(type, "done") == 0) {
        k->reported_done = 1;
        k->done_ok = json_is_true(json_object_get(ev, "ok"));
        const char *e = json_string_value(json_object_get(ev, "error"));
        snprintf(k->error, sizeof k->error, "%s", e ? e : "");
        sage__utf8_clean(k->error, strlen(k->error));
        k->done_code = (int)json_integer_value(json_object_get(ev, "code"));
    }
}

/* Every task said HELLO: give each connected worker the consumers' addresses. */
static void send_peers(jm *d, jm_job *j)
{
    json_t *peers = json_object();
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].listen[0]) {
            char key[24];
            snprintf(key, sizeof key, "%zu", t);
            json_object_set_new(peers, key, json_string(j->tasks[t].listen));
        }
    json_t *ev = json_pack("{s:s,s:o}", "event", "peers", "peers", peers);
    char *txt = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!txt) {
        job_fail(d, j, PRIO_ROOT, "out of memory sending the workers' data-plane addresses");
        return;
    }
    size_t len = strlen(txt);
    if (len > SAGE__CONTROL_FRAME_MAX) {
        free(txt);
        job_fail(d, j, PRIO_ROOT,
                 "the workers' data-plane addresses (%zu bytes for %zu tasks) exceed the %u-byte control frame limit",
                 len, j->ntasks, SAGE__CONTROL_FRAME_MAX);
        return;
    }
    j->peers_sent = 1;
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].ctl)
            jm_send(j->tasks[t].ctl, SAGE__MSG_EVENT, txt, len);
    free(txt);
    jm_log(d, "job %lld: all %zu workers reached us; data-plane addresses sent", (long long)j->id, j->ntasks);
}

void jm_on_worker_hello(jm *d, jm_conn *c, json_t *hello, const char *peer_host)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks)
        return;
    jm_task *k = &j->tasks[c->task];
    k->said_hello = 1;
    snprintf(k->host, sizeof k->host, "%s", peer_host ? peer_host : "");
    if (d->data_plane != JM_DATA_TCP)
        return;
    const char *listen = json_string_value(json_object_get(hello, "listen"));
    if (k->has_inputs) {
        char h[128];
        int p = 0;
        if (!listen || strlen(listen) >= sizeof k->listen ||
            sage__parse_hostport(listen, h, sizeof h, &p, 0) != 0 || p == 0) {
            /* a worker that could not listen says why itself: its reason outranks this one */
            job_fail(d, j, PRIO_ECHO,
                     "operator \"%s\" instance %d: its worker reported %s%s%s as its data-plane address; the tcp "
                     "data plane needs \"listen\": \"HOST:PORT\" in its HELLO",
                     k->op, k->instance, listen ? "\"" : "no \"listen\"", listen ? listen : "",
                     listen ? "\"" : "");
            return;
        }
        snprintf(k->listen, sizeof k->listen, "%s", listen);
    }
    if (j->peers_sent || j->failed || j->cancel_requested)
        return;
    for (size_t t = 0; t < j->ntasks; t++)
        if (!j->tasks[t].said_hello || (j->tasks[t].has_inputs && !j->tasks[t].listen[0]))
            return;
    send_peers(d, j);
}

void jm_on_worker_gone(jm *d, jm_conn *c)
{
    jm_job *j = jm_job_find(d, c->job_id);
    if (!j || c->task < 0 || (size_t)c->task >= j->ntasks || j->tasks[c->task].ctl != c)
        return;
    jm_task *k = &j->tasks[c->task];
    k->ctl = NULL;
    /* A worker whose connection closes before it reported a result, while its process is
     * not known to have ended: its host may be gone (a local crash is named more precisely
     * by its exit status, which outranks this; a lost Slurm node may never report one). */
    if (!k->reported_done && !k->exited && !k->killed_by_us && !j->cancel_requested && !j->stop_requested)
        job_fail(d, j, PRIO_GONE,
                 "operator \"%s\" instance %d on %s lost its connection to the JobManager without a result "
                 "(its process or its host went away)",
                 k->op, k->instance, k->node[0] ? k->node : (k->host[0] ? k->host : "its host"));
}

static void send_control(jm_job *j, const char *action)
{
    for (size_t t = 0; t < j->ntasks; t++)
        if (j->tasks[t].ctl)
            jm_send_json(j->tasks[t].ctl, SAGE__MSG_EVENT, json_pack("{s:s,s:s}", "event", "control", "action", action));
}

int jm_job_control(jm *d, int64_t id, const char *action, char *err, size_t err_len)
{
    jm_job *j = jm_job_find(d, id);
    if (!j) {
        sage__job_row row;
        if (sage__store_job_get(d->store, id, &row) == 0)
            snprintf(err, err_len, "job %lld already ended (%s)", (long long)id, row.state);
        else
            snprintf(err, err_len, "no job %lld", (long long)id);
        return j ? 0 : (sage__store_job_get(d->store, id, &row) == 0 ? SAGE_ESTATE : SAGE_ENOTFOUND);
    }
    jm_log(d, "job %lld: %s requested", (long long)id, action);
    if (strcmp(action, "cancel") == 0) {
        j->cancel_requested = 1;
        kill_tasks(d, j);
        maybe_end(d, j);
        return 0;
    }
    if (j->state == JJ_PENDING) {
        if (strcmp(action, "stop") == 0) {
            j->stop_requested = 1;
            maybe_end(d, j);
            return 0;
        }
        snprintf(err, err_len, "job %lld is pending: only stop and cancel apply", (long long)id);
        return SAGE_ESTATE;
    }
    if (strcmp(action, "stop") == 0) {
        j->stop_requested = 1;
        send_control(j, "stop");
    } else if (strcmp(action, "pause") == 0) {
        if (j->state != JJ_RUNNING) {
            snprintf(err, err_len, "job %lld is %s, not running", (long long)id, jm_job_state_name(j->state));
            return SAGE_ESTATE;
        }
        j->state = JJ_PAUSED;
        send_control(j, "pause");
        sage__store_job_state(d->store, id, "paused", NULL, 0);
    } else if (strcmp(action, "resume") == 0) {
        if (j->state != JJ_PAUSED) {
            snprintf(err, err_len, "job %lld is %s, not paused", (long long)id, jm_job_state_name(j->state));
            return SAGE_ESTATE;
        }
        j->state = JJ_RUNNING;
        send_control(j, "resume");
        sage__store_job_state(d->store, id, "running", NULL, 0);
    }
    return 0;
}

/* ---- worker output ---- */

void jm_job_pipes(jm *d, struct pollfd *pfds, size_t *n, size_t cap)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            if (k->out_fd >= 0 && *n < cap)
                pfds[(*n)++] = (struct pollfd){.fd = k->out_fd, .events = POLLIN};
            if (k->err_fd >= 0 && *n < cap)
                pfds[(*n)++] = (struct pollfd){.fd = k->err_fd, .events = POLLIN};
        }
}

/* One complete line from a worker: to its log file and to followers. */
static void log_line(jm *d, jm_job *j, jm_task *k, int is_err, const char *line, size_t len)
{
    char prefix[160];
    int pl = snprintf(prefix, sizeof prefix, "%s[%d]%s ", k->op, k->instance, is_err ? " !" : "");
    if (k->log) {
        fwrite(prefix, 1, (size_t)pl, k->log);
        fwrite(line, 1, len, k->log);
        fputc('\n', k->log);
    }
    for (jm_conn *c = d->conns; c; c = c->next)
        if (c->fd >= 0 && c->following && c->job_id == j->id) {
            char *msg = malloc((size_t)pl + len + 1);
            if (!msg)
                continue;
            memcpy(msg, prefix, (size_t)pl);
            memcpy(msg + pl, line, len);
            msg[(size_t)pl + len] = 0;
            sage__utf8_clean(msg, (size_t)pl + len);
            jm_send_json(c, SAGE__MSG_EVENT, json_pack("{s:s,s:s}", "event", "log", "line", msg));
            free(msg);
        }
}

static void keep_tail(jm_task *k, const char *buf, size_t n)
{
    if (n >= sizeof k->tail) {
        memcpy(k->tail, buf + n - sizeof k->tail, sizeof k->tail);
        k->tail_len = sizeof k->tail;
        return;
    }
    if (k->tail_len + n > sizeof k->tail) {
        size_t drop = k->tail_len + n - sizeof k->tail;
        memmove(k->tail, k->tail + drop, k->tail_len - drop);
        k->tail_len -= drop;
    }
    memcpy(k->tail + k->tail_len, buf, n);
    k->tail_len += n;
}

/* Read what a worker wrote; returns 1 at end of file. */
static int drain_pipe(jm *d, jm_job *j, jm_task *k, int is_err)
{
    int *fdp = is_err ? &k->err_fd : &k->out_fd;
    char buf[8192];
    for (;;) {
        ssize_t n = read(*fdp, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return 0; /* EAGAIN */
        if (n == 0) {
            if (k->partial_len[is_err])
                log_line(d, j, k, is_err, k->partial[is_err], k->partial_len[is_err]);
            k->partial_len[is_err] = 0;
            close(*fdp);
            *fdp = -1;
            if (k->log)
                fflush(k->log);
            return 1;
        }
        if (is_err)
            keep_tail(k, buf, (size_t)n);
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch == '\n' || k->partial_len[is_err] == sizeof k->partial[is_err]) {
                log_line(d, j, k, is_err, k->partial[is_err], k->partial_len[is_err]);
                k->partial_len[is_err] = 0;
                if (ch == '\n')
                    continue;
            }
            k->partial[is_err][k->partial_len[is_err]++] = ch;
        }
    }
}

void jm_job_pipe_ready(jm *d, int fd)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            if (k->out_fd == fd)
                drain_pipe(d, j, k, 0);
            else if (k->err_fd == fd)
                drain_pipe(d, j, k, 1);
        }
}

/* The last lines of a task's stderr, for failure messages. */
static void tail_lines(const jm_task *k, char *out, size_t len)
{
    size_t start = 0, lines = 0;
    for (size_t i = k->tail_len; i-- > 0;) {
        if (k->tail[i] == '\n' && i + 1 < k->tail_len && ++lines >= JM_TAIL_LINES) {
            start = i + 1;
            break;
        }
    }
    size_t n = k->tail_len - start;
    while (n > 0 && k->tail[start + n - 1] == '\n')
        n--;
    if (n >= len)
        n = len - 1;
    memcpy(out, k->tail + start, n);
    out[n] = 0;
    sage__utf8_clean(out, n);
}

/* ---- ends ---- */

static void describe_exit(jm_task *k, char *out, size_t len)
{
    char mem[32];
    sage__format_bytes(k->mem_limit, mem, sizeof mem);
    if (k->has_cg && k->mem_limit && sage__cgroup_oom_killed(&k->cg))
        snprintf(out, len, "operator \"%s\" instance %d exceeded its memory limit of %s", k->op, k->instance, mem);
    else if (WIFSIGNALED(k->status))
        snprintf(out, len, "operator \"%s\" instance %d (pid %d) was killed by signal %d (%s)", k->op, k->instance,
                 (int)k->pid, WTERMSIG(k->status), strsignal(WTERMSIG(k->status)));
    else
        snprintf(out, len, "operator \"%s\" instance %d (pid %d) exited with status %d", k->op, k->instance, (int)k->pid,
                 WEXITSTATUS(k->status));
}

static json_t *task_json(const jm_task *k)
{
    return json_pack("{s:i,s:s,s:i,s:s,s:i,s:s,s:s,s:I,s:I,s:O}", "task", k->index, "operator", k->op, "instance",
                     k->instance, "state", jm_task_state_name(k->state), "pid", (int)k->pid, "cpus", k->cpus, "gpus",
                     k->gpus, "memory_limit", (json_int_t)k->mem_limit, "peak_memory",
                     (json_int_t)(k->has_cg ? sage__cgroup_peak(&k->cg) : 0), "metrics",
                     k->metrics ? k->metrics : json_null());
}

/* Where a task runs: on Slurm, the node its step runs on; on the unix data
 * plane every worker is on this node; on tcp, the address its worker
 * reached us from (the node until then). */
static const char *task_host(const jm *d, const jm_task *k)
{
    if (d->slurm_conf[0] && k->node[0])
        return k->node;
    return d->data_plane == JM_DATA_TCP && k->host[0] ? k->host : d->node.name;
}

/* Slurm ids of a job's tasks, kept in <jobdir>/slurm.json for the views of ended jobs. */
static void slurm_ids_set(json_t *obj, long long job, long long step, const char *addr)
{
    json_object_set_new(obj, "slurm_job", json_integer(job));
    json_object_set_new(obj, "slurm_step", step >= 0 ? json_integer(step) : json_null());
    if (addr && addr[0])
        json_object_set_new(obj, "address", json_string(addr));
}

static void slurm_ids_save(const jm_job *j)
{
    if (!j->slurm_job)
        return;
    json_t *tasks = json_array();
    for (size_t t = 0; t < j->ntasks; t++) {
        json_t *o = json_object();
        slurm_ids_set(o, j->slurm_job, j->tasks[t].slurm_step, j->tasks[t].host);
        json_array_append_new(tasks, o);
    }
    json_t *doc = json_pack("{s:I,s:s,s:o}", "slurm_job", (json_int_t)j->slurm_job, "slurm_state", j->slurm_state,
                            "tasks", tasks);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/slurm.json", j->dir);
    if (doc)
        json_dump_file(doc, path, JSON_COMPACT);
    json_decref(doc);
}

static void task_row(const jm_job *j, const jm_task *k, const char *host, sage__task_row *r)
{
    memset(r, 0, sizeof *r);
    r->job_id = j->id;
    r->task = k->index;
    snprintf(r->op, sizeof r->op, "%s", k->op);
    r->instance = k->instance;
    snprintf(r->state, sizeof r->state, "%s", jm_task_state_name(k->state));
    r->pid = (int)k->pid;
    snprintf(r->host, sizeof r->host, "%s", host);
    snprintf(r->cpus, sizeof r->cpus, "%s", k->cpus);
    snprintf(r->gpus, sizeof r->gpus, "%s", k->gpus);
    r->memory_limit = (int64_t)k->mem_limit;
    r->peak_memory = (int64_t)(k->has_cg ? sage__cgroup_peak(&k->cg) : 0);
    if (k->metrics) {
        char *s = json_dumps(k->metrics, JSON_COMPACT);
        if (s && strlen(s) < sizeof r->metrics)
            memcpy(r->metrics, s, strlen(s) + 1);
        free(s);
        json_t *ops = json_object_get(k->metrics, "operators");
        json_t *head = json_array_get(ops, 0), *tail = json_array_get(ops, json_array_size(ops) - 1);
        r->records_in = json_integer_value(json_object_get(head, "records_in"));
        r->records_out = json_integer_value(json_object_get(tail, "records_out"));
    }
}

static void job_end(jm *d, jm_job *j)
{
    jm_job_state st = j->failed             ? JJ_FAILED
                      : j->cancel_requested ? JJ_CANCELED
                      : j->stop_requested   ? JJ_STOPPED
                                            : JJ_FINISHED;
    j->state = st;
    slurm_release(d, j); /* any outcome: the allocation goes back to Slurm */
    slurm_ids_save(j);
    for (size_t t = 0; t < j->ntasks; t++) {
        sage__task_row r;
        task_row(j, &j->tasks[t], task_host(d, &j->tasks[t]), &r);
        sage__store_task_put(d->store, &r);
    }
    sage__store_job_state(d->store, j->id, jm_job_state_name(st), j->error, jm_now_ms());
    jm_log(d, "job %lld \"%s\" %s%s%s", (long long)j->id, j->name, jm_job_state_name(st), j->error[0] ? ": " : "",
           j->error);
    json_t *end = jm_job_end_json(d, j->id);
    /* the waiting client gets every task's full final metrics from memory (the
     * store keeps them only up to its field size) */
    json_t *tasks = json_object_get(end, "tasks");
    for (size_t t = 0; t < j->ntasks && t < json_array_size(tasks); t++)
        if (j->tasks[t].metrics)
            json_object_set(json_array_get(tasks, t), "metrics", j->tasks[t].metrics);
    for (jm_conn *c = d->conns; c; c = c->next) {
        if (c->fd < 0 || c->job_id != j->id)
            continue;
        if (c->waiting) {
            jm_send_json(c, SAGE__MSG_OK, json_incref(end));
            c->waiting = 0;
        }
        if (c->following) {
            jm_send_json(c, SAGE__MSG_EVENT, json_pack("{s:s,s:s}", "event", "end", "state", jm_job_state_name(st)));
            c->following = 0;
        }
    }
    json_decref(end);
    /* unlink the job, free it, and give pending jobs a chance */
    for (jm_job **pp = &d->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    char sock[PATH_MAX + 16];
    for (size_t t = 0; d->data_plane == JM_DATA_UNIX && t < j->ntasks; t++) {
        snprintf(sock, sizeof sock, "%s/sock/%d.%d", j->dir, j->tasks[t].chain, j->tasks[t].instance);
        unlink(sock);
    }
    job_free(j);
    if (d->stop)
        return; /* shutting down: nothing new starts */
    /* pending jobs, oldest first (the list holds the newest first) */
    for (;;) {
        jm_job *oldest = NULL;
        for (jm_job *p = d->jobs; p; p = p->next)
            if (p->state == JJ_PENDING && !p->assign && !p->failed &&
                (!oldest || p->id < oldest->id))
                oldest = p;
        if (!oldest)
            return;
        try_start(d, oldest);
        if (oldest->failed && maybe_end(d, oldest))
            continue; /* the list changed */
        if (oldest->state == JJ_PENDING && !oldest->assign) {
            /* still does not fit: leave it (and the younger ones) waiting */
            return;
        }
    }
}

void jm_on_child_exit(jm *d, pid_t pid, int status)
{
    for (jm_job *j = d->jobs; j; j = j->next) {
        for (size_t t = 0; pid > 0 && t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            if (k->pid != pid || k->exited)
                continue;
            k->exited = 1;
            k->status = status;
            j->running--;
            /* what it wrote and said before it died is still buffered: read it first */
            if (k->out_fd >= 0)
                drain_pipe(d, j, k, 0);
            if (k->err_fd >= 0)
                drain_pipe(d, j, k, 1);
            if (k->ctl && k->ctl->fd >= 0)
                jm_conn_drain(d, k->ctl); /* its last report may still sit in the socket */
            /* success means: it said it finished, and then exited 0 (a program that ends
             * before reaching sage_env_execute would otherwise look finished and leave its
             * consumers waiting for ever) */
            int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && k->reported_done && k->done_ok;
            if (ok) {
                k->state = JT_FINISHED;
            } else if (k->killed_by_us || j->cancel_requested) {
                k->state = JT_KILLED;
            } else {
                k->state = JT_FAILED;
                char why[1024], tail[1200];
                int prio;
                if (!k->reported_done && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                    snprintf(why, sizeof why,
                             "operator \"%s\" instance %d (pid %d) exited with status 0 without running its task "
                             "(did the program reach sage_env_execute with the same pipeline?)",
                             k->op, k->instance, (int)k->pid);
                    prio = PRIO_ROOT;
                } else if (k->reported_done && !k->done_ok && k->error[0]) {
                    snprintf(why, sizeof why, "%s", k->error);
                    prio = k->done_code == SAGE_ECANCELED || k->done_code == SAGE_EIO ? PRIO_ECHO : PRIO_USER;
                } else {
                    describe_exit(k, why, sizeof why);
                    prio = WIFSIGNALED(status) || (k->has_cg && k->mem_limit && sage__cgroup_oom_killed(&k->cg))
                               ? PRIO_ROOT
                               : PRIO_ECHO;
                }
                if (j->slurm_job && !j->slurm_released && !j->slurm_checked) {
                    /* a step failed while we still hold the allocation: did Slurm end it under us
                     * (scancel from outside, a node lost, a time limit)? Asked once per job. */
                    char sst[256];
                    j->slurm_checked = 1;
                    slurm_job_state(d, j, sst, sizeof sst);
                    if (sst[0])
                        snprintf(j->slurm_state, sizeof j->slurm_state, "%s", sst);
                    if (sst[0] && !strstr(sst, "JobState=RUNNING")) {
                        size_t l = strlen(why);
                        snprintf(why + l, sizeof why - l, " (srun on node %s)", k->node);
                        j->slurm_released = 1;
                        job_fail(d, j, PRIO_ROOT, "the Slurm allocation %lld of the job ended under it (%s); %s",
                                 j->slurm_job, sst, why);
                    }
                }
                tail_lines(k, tail, sizeof tail);
                if (tail[0] && prio != PRIO_USER)
                    job_fail(d, j, prio, "%s; last lines of its stderr:\n%s", why, tail);
                else
                    job_fail(d, j, prio, "%s", why);
            }
        }
        if (pid > 0 && maybe_end(d, j))
            return; /* the list changed */
    }
}

/* ---- views ---- */

json_t *jm_job_end_json(jm *d, int64_t id)
{
    sage__job_row row;
    if (sage__store_job_get(d->store, id, &row) != 0)
        return NULL;
    json_t *tasks = json_array();
    sage__task_row *rows = calloc(SAGE_PARALLELISM_MAX, sizeof *rows);
    size_t n = 0;
    if (rows && sage__store_task_list(d->store, id, rows, SAGE_PARALLELISM_MAX, &n) == 0)
        for (size_t i = 0; i < n; i++) {
            json_error_t e;
            json_t *m = rows[i].metrics[0] ? json_loads(rows[i].metrics, 0, &e) : NULL;
            json_array_append_new(tasks, json_pack("{s:i,s:s,s:i,s:s,s:i,s:s,s:s,s:s,s:I,s:I,s:o}", "task", rows[i].task,
                                                   "operator", rows[i].op, "instance", rows[i].instance, "state",
                                                   rows[i].state, "pid", rows[i].pid, "host", rows[i].host, "cpus",
                                                   rows[i].cpus, "gpus", rows[i].gpus, "memory_limit",
                                                   (json_int_t)rows[i].memory_limit, "peak_memory",
                                                   (json_int_t)rows[i].peak_memory, "metrics", m ? m : json_null()));
        }
    free(rows);
    json_t *end = json_pack("{s:I,s:s,s:s,s:s,s:o}", "job_id", (json_int_t)id, "name", row.name, "state", row.state,
                            "error", row.error, "tasks", tasks);
    /* Slurm jobs: the allocation and step ids */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/jobs/%lld/slurm.json", d->home, (long long)id);
    json_error_t jerr;
    json_t *sl = end ? json_load_file(path, 0, &jerr) : NULL;
    if (sl) {
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
    return end;
}

json_t *jm_job_list_json(jm *d)
{
    json_t *jobs = json_array();
    size_t max = 1000, n = 0;
    sage__job_row *rows = calloc(max, sizeof *rows);
    if (rows && sage__store_job_list(d->store, rows, max, &n) == 0)
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

json_t *jm_job_status_json(jm *d, int64_t id, char *err, size_t err_len)
{
    jm_job *j = jm_job_find(d, id);
    if (!j) {
        json_t *end = jm_job_end_json(d, id);
        if (!end)
            snprintf(err, err_len, "no job %lld", (long long)id);
        return end;
    }
    json_t *tasks = json_array();
    for (size_t t = 0; t < j->ntasks; t++) {
        json_t *tj = task_json(&j->tasks[t]);
        json_object_set_new(tj, "host", json_string(task_host(d, &j->tasks[t])));
        if (j->slurm_job)
            slurm_ids_set(tj, j->slurm_job, j->tasks[t].slurm_step, j->tasks[t].host);
        if (d->data_plane == JM_DATA_TCP && j->tasks[t].listen[0])
            json_object_set_new(tj, "listen", json_string(j->tasks[t].listen));
        json_array_append_new(tasks, tj);
    }
    json_t *st = json_pack("{s:I,s:s,s:s,s:s,s:o}", "job_id", (json_int_t)j->id, "name", j->name, "state",
                           jm_job_state_name(j->state), "error", j->pending_reason[0] ? j->pending_reason : j->error,
                           "tasks", tasks);
    if (st && j->slurm_job)
        json_object_set_new(st, "slurm_job", json_integer(j->slurm_job));
    return st;
}

int jm_job_logs(jm *d, int64_t id, char **text, size_t *len, char *err, size_t err_len)
{
    sage__job_row row;
    if (sage__store_job_get(d->store, id, &row) != 0) {
        snprintf(err, err_len, "no job %lld", (long long)id);
        return SAGE_ENOTFOUND;
    }
    jm_job *j = jm_job_find(d, id);
    if (j)
        for (size_t t = 0; t < j->ntasks; t++)
            if (j->tasks[t].log)
                fflush(j->tasks[t].log);
    /* concatenate logs/<op>.<instance>.log in task order, at most 16 MiB */
    size_t cap = 16u << 20, used = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return SAGE_ENOMEM;
    sage__task_row *rows = calloc(SAGE_PARALLELISM_MAX, sizeof *rows);
    size_t n = 0;
    if (j) {
        for (size_t t = 0; t < j->ntasks && used < cap; t++) {
            char path[PATH_MAX + 200];
            snprintf(path, sizeof path, "%s/logs/%s.%d.log", j->dir, j->tasks[t].op, j->tasks[t].instance);
            FILE *f = fopen(path, "r");
            if (f) {
                used += fread(buf + used, 1, cap - used, f);
                fclose(f);
            }
        }
    } else if (rows && sage__store_task_list(d->store, id, rows, SAGE_PARALLELISM_MAX, &n) == 0) {
        for (size_t t = 0; t < n && used < cap; t++) {
            char path[PATH_MAX + 200];
            snprintf(path, sizeof path, "%s/jobs/%lld/logs/%s.%d.log", d->home, (long long)id, rows[t].op,
                     rows[t].instance);
            FILE *f = fopen(path, "r");
            if (f) {
                used += fread(buf + used, 1, cap - used, f);
                fclose(f);
            }
        }
    }
    free(rows);
    buf[used] = 0;
    sage__utf8_clean(buf, used);
    *text = buf;
    *len = used;
    return 0;
}

void jm_jobs_shutdown(jm *d)
{
    for (jm_job *j = d->jobs; j; j = j->next) {
        if (!j->failed && !j->cancel_requested) {
            j->failed = 1;
            snprintf(j->error, sizeof j->error, "the JobManager stopped while the job was running");
        }
        kill_tasks(d, j);
    }
    /* reap every worker: none may outlive the daemon */
    while (d->jobs) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            /* nothing left to reap: end the remaining jobs as they are */
            for (jm_job *j = d->jobs; j; j = j->next)
                for (size_t t = 0; t < j->ntasks; t++)
                    if (!j->tasks[t].exited && j->tasks[t].pid > 0)
                        j->tasks[t].exited = 1, j->running--;
            job_end(d, d->jobs);
            continue;
        }
        jm_on_child_exit(d, pid, status);
        if (d->jobs && maybe_end(d, d->jobs))
            continue;
    }
}
