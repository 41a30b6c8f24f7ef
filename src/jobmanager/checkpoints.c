/* jobmanager/checkpoints.c - a job's checkpoints through the JobManager: asking the workers, committing, recovering.
 *
 * Design note. The daemon coordinates; the workers do every disk write, so
 * the loop never waits on a disk. Every checkpoint_interval after the last
 * one ended (committed or abandoned), once every task runs (or had
 * finished), each connected worker gets EVENT {"event": "control",
 * "action": "checkpoint", "id": N, "dir": "<run>/chk-N", "timeout_ms": T}.
 * Its source tasks send barrier N down their data connections and wait; a
 * task captures its state once barrier N came from every producer (the
 * runtime's protocol, runtime/checkpoint.h, across processes: barriers are
 * SAGE__MSG_BARRIER frames). Each worker writes its part (fsynced, renamed)
 * into the checkpoint's directory and answers {"event": "captured", "id":
 * N, "bytes", "checksum", "file_sinks"} (or "finished": true when its task
 * had ended, or "error"). When every task is in, the sources are released
 * ("release") and one connected worker is asked to write the MANIFEST that
 * commits the checkpoint and to remove the older ones ("commit"); its
 * answer "committed" makes it the job's last checkpoint. A checkpoint that
 * is not in within checkpoint_timeout, or whose capture or commit failed,
 * is abandoned (sources released, the job goes on).
 *
 * Recovery. When an attempt failed and the strategy allows another, the
 * next attempt's spec.json names the last committed checkpoint ("restore")
 * and each worker restores its own part; the file sinks are cut back to the
 * checkpoint's lengths first (one truncate per file, by the daemon, while
 * no worker runs). An attempt that failed restoring (a corrupt part: the
 * worker says "cannot restore from checkpoint") falls back to the one
 * before, or to the beginning.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "jobmanager/jm.h"
#include "runtime/ckstore.h"
#include "util/err.h"
#include "util/json.h"
#include "util/time.h"

#define NOT_READY_RETRY_MS 100 /* a task not running yet: the checkpoint is tried again this much later */

static int interval_ms(const jm_job *j) { return (int)(j->ft.checkpoint_interval * 1000.0 + 0.5); }

/* Cut the file sinks back to the lengths a checkpoint committed (no worker runs). */
static void cut_sinks(jm *d, jm_job *j, json_t *sinks)
{
    json_t *s;
    size_t i;
    json_array_foreach(sinks, i, s)
    {
        const char *path = json_string_value(json_object_get(s, "path"));
        json_int_t len = json_integer_value(json_object_get(s, "length"));
        if (path && *path && truncate(path, (off_t)len) != 0)
            jm_log(d, "job %lld: cutting \"%s\" back to %lld bytes failed: %s", (long long)j->id, path, (long long)len,
                   strerror(errno));
    }
}

/* The document's "restore_from": a checkpoint or savepoint of this pipeline (its manifest read, the plan hash
 * compared); the first attempt's workers restore it. */
static int restore_from(jm *d, jm_job *j, char *err, size_t err_len)
{
    jm_ckpt *ck = &j->ck;
    const char *from = json_string_value(json_object_get(j->doc, "restore_from"));
    if (!from)
        return 0;
    sage__manifest m;
    char why[1400];
    int rc = strlen(from) < sizeof ck->restore_from ? sage__ckpt_read_manifest(from, &m, why, sizeof why) : SAGE_EINVAL;
    if (rc != 0) {
        sage__fmt(err, err_len, "submit: config key \"restore_from\": %s", rc == SAGE_EINVAL ? "path too long" : why);
        return SAGE_EINVAL;
    }
    json_int_t doc_hash = json_integer_value(json_object_get(j->doc, "plan_hash"));
    size_t ntasks = 0;
    for (size_t c = 0; c < j->nreqs; c++) /* the chains' tasks: the services' own processes keep no state */
        if (!json_object_get(json_array_get(json_object_get(j->doc, "chains"), c), "service"))
            ntasks += (size_t)j->reqs[c].parallelism;
    if ((json_int_t)(m.plan_hash >> 1) != doc_hash || m.ntasks != ntasks) {
        sage__fmt(err, err_len,
                  "submit: config key \"restore_from\": checkpoint \"%s\" was taken by a different pipeline (plan "
                  "hash %016llx, this one %016llx): operators, their order, parallelism or partitioning changed",
                  from, (unsigned long long)m.plan_hash, (unsigned long long)doc_hash << 1);
        sage__manifest_free(&m);
        return SAGE_EINVAL;
    }
    ck->from_sinks = json_array();
    for (size_t i = 0; i < m.nsinks; i++)
        json_array_append_new(ck->from_sinks, json_pack("{s:i,s:I,s:s}", "op", m.sinks[i].op, "length",
                                                        (json_int_t)m.sinks[i].length, "path", m.sinks[i].path));
    sage__manifest_free(&m);
    sage__strlcpy(ck->restore_from, from, sizeof ck->restore_from);
    sage__strlcpy(ck->restore, from, sizeof ck->restore);
    ck->restore_in_run = 0;
    cut_sinks(d, j, ck->from_sinks);
    jm_log(d, "job %lld \"%s\": starts from %s", (long long)j->id, j->name, from);
    return 0;
}

int jm_ckpt_setup(jm *d, jm_job *j, char *err, size_t err_len)
{
    jm_ckpt *ck = &j->ck;
    int rrc = restore_from(d, j, err, err_len);
    if (rrc != 0 || j->ft.strategy != SAGE__FT_CHECKPOINT)
        return rrc;
    int n = j->ft.checkpoint_dir[0]
                ? snprintf(ck->rundir, sizeof ck->rundir, "%s/%s-job%lld", j->ft.checkpoint_dir, j->name,
                           (long long)j->id)
                : snprintf(ck->rundir, sizeof ck->rundir, "%s/checkpoints", j->dir);
    if (n < 0 || (size_t)n >= sizeof ck->rundir) {
        sage__fmt(err, err_len, "submit: \"fault_tolerance.checkpoint_dir\": the path is too long");
        return SAGE_ECONFIG;
    }
    char why[512];
    if (sage__ckpt_mkdirs(ck->rundir, why, sizeof why) != 0 || access(ck->rundir, W_OK) != 0) {
        sage__fmt(err, err_len, "submit: \"fault_tolerance.checkpoint_dir\": checkpoints cannot be written: %s",
                  why[0] ? why : "the directory is not writable");
        return SAGE_EIO;
    }
    /* What every worker must read back from there: on Slurm the directory has to be the same on every node. */
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (uint64_t)sage__wall_ms() ^ ((uint64_t)getpid() << 32);
    sage__fmt(ck->probe, sizeof ck->probe, "%016" PRIx64, nonce);
    char path[PATH_MAX + 16];
    sage__fmt(path, sizeof path, "%s/SHARED", ck->rundir);
    json_t *doc = json_pack("{s:I,s:s}", "job_id", (json_int_t)j->id, "nonce", ck->probe);
    int rc = doc ? jm_private_dump(path, doc, JSON_COMPACT, why, sizeof why) : SAGE_ENOMEM;
    json_decref(doc);
    if (rc != 0) {
        sage__fmt(err, err_len, "submit: \"fault_tolerance.checkpoint_dir\": checkpoints cannot be written: %s",
                  doc ? why : "out of memory");
        return SAGE_EIO;
    }
    ck->on = 1;
    ck->next_at_ms = sage__mono_ms() + interval_ms(j);
    (void)d;
    return 0;
}

void jm_ckpt_free(jm_job *j)
{
    free(j->ck.in);
    free(j->ck.bytes);
    free(j->ck.sums);
    json_decref(j->ck.sinks);
    json_decref(j->ck.committed_sinks);
    json_decref(j->ck.prev_sinks);
    json_decref(j->ck.from_sinks);
    memset(&j->ck, 0, sizeof j->ck);
}

static void send_all(jm_job *j, json_t *ev)
{
    for (size_t t = 0; t < j->nflow; t++)
        if (j->tasks[t].ctl)
            jm_send_json(j->tasks[t].ctl, SAGE__MSG_EVENT, json_incref(ev));
    json_decref(ev);
}

/* Let the sources go on (or, stop: end at the barrier). */
static void release(jm_job *j, uint64_t id, int stop)
{
    send_all(j, json_pack("{s:s,s:s,s:I,s:b}", "event", "control", "action", "release", "id", (json_int_t)id, "stop",
                          stop));
}

/* The client that asked for the savepoint gets its answer (code 0: OK), and the frames it sent meanwhile run. */
static void sp_answer(jm *d, jm_job *j, int code, const char *why)
{
    jm_ckpt *ck = &j->ck;
    jm_conn *c = ck->sp_conn;
    ck->sp_conn = NULL;
    ck->sp_active = ck->sp_pending = 0;
    if (!c || c->fd < 0)
        return;
    c->parked = 0;
    if (code == 0)
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b,s:s}", "ok", 1, "savepoint", ck->sp_dir));
    else
        jm_send_error(c, code, "job %lld: the savepoint was not taken (the job goes on): %s", (long long)j->id, why);
    jm_conn_frames(d, c);
}

static void abandon(jm *d, jm_job *j, const char *why)
{
    jm_ckpt *ck = &j->ck;
    if (ck->sp_active)
        sp_answer(d, j, strstr(why, "within") ? SAGE_ETIMEDOUT : SAGE_EIO, why);
    jm_log(d, "job %lld: checkpoint %" PRIu64 " abandoned: %s", (long long)j->id, ck->active, why);
    release(j, ck->active, 0);
    ck->abandoned++;
    ck->active = 0;
    ck->committing = 0;
    ck->next_at_ms = sage__mono_ms() + interval_ms(j);
}

/* Every task runs (its worker reported) or had finished: the job can take a checkpoint. */
static int all_ready(const jm_job *j)
{
    for (size_t t = 0; t < j->nflow; t++) {
        const jm_task *k = &j->tasks[t];
        if (!(k->reported_done && k->done_ok) && !(k->ctl && k->reported && !k->reported_done))
            return 0;
    }
    return 1;
}

static void start(jm *d, jm_job *j, int64_t now)
{
    jm_ckpt *ck = &j->ck;
    if (!all_ready(j)) {
        ck->next_at_ms = now + NOT_READY_RETRY_MS;
        return;
    }
    if (!ck->in && !(ck->in = calloc(j->ntasks, sizeof *ck->in))) {
        ck->next_at_ms = now + interval_ms(j);
        return;
    }
    memset(ck->in, 0, j->ntasks * sizeof *ck->in);
    json_decref(ck->sinks);
    ck->sinks = json_array();
    ck->active = ++ck->next_id;
    ck->started_ms = now;
    ck->ntasks_in = 0;
    int timeout = (int)(j->ft.checkpoint_timeout * 1000.0 + 0.5);
    if (ck->sp_pending) { /* a savepoint: into the client's directory */
        ck->sp_pending = 0;
        ck->sp_active = 1;
        sage__strlcpy(ck->dir, ck->sp_dir, sizeof ck->dir);
        if (ck->sp_timeout_ms >= 0 && ck->sp_timeout_ms < timeout)
            timeout = ck->sp_timeout_ms;
    } else {
        sage__ckpt_path(ck->dir, sizeof ck->dir, ck->rundir, ck->active);
    }
    ck->timeout_ms = timeout;
    for (size_t t = 0; t < j->nflow; t++)
        if (j->tasks[t].reported_done && j->tasks[t].done_ok) { /* ended before the barrier: finished */
            ck->in[t] = 2;
            ck->ntasks_in++;
        }
    send_all(j, json_pack("{s:s,s:s,s:I,s:s,s:i}", "event", "control", "action", "checkpoint", "id",
                          (json_int_t)ck->active, "dir", ck->dir, "timeout_ms", timeout));
}

/* The manifest of the active checkpoint, from what the workers reported; NULL when out of memory. */
static char *manifest_text(jm_job *j, size_t *len)
{
    jm_ckpt *ck = &j->ck;
    sage__manifest m = {.id = ck->active, .savepoint = ck->sp_active, .taken_ms = sage__wall_ms(), .ntasks = j->nflow};
    m.plan_hash = ck->plan_hash; /* as the workers compiled it (the plan document holds only its high bits) */
    sage__strlcpy(m.job, j->name, sizeof m.job);
    m.tasks = calloc(j->ntasks, sizeof *m.tasks);
    m.nsinks = json_array_size(ck->sinks);
    m.sinks = calloc(m.nsinks ? m.nsinks : 1, sizeof *m.sinks);
    char *text = NULL;
    if (m.tasks && m.sinks) {
        for (size_t t = 0; t < j->nflow; t++) {
            m.tasks[t].chain = j->tasks[t].chain;
            m.tasks[t].instance = j->tasks[t].instance;
            m.tasks[t].finished = ck->in[t] == 2;
            m.tasks[t].bytes = ck->bytes ? ck->bytes[t] : 0;
            m.tasks[t].checksum = ck->sums ? ck->sums[t] : 0;
        }
        for (size_t i = 0; i < m.nsinks; i++) {
            json_t *s = json_array_get(ck->sinks, i);
            m.sinks[i].op = (int)json_integer_value(json_object_get(s, "op"));
            m.sinks[i].length = (uint64_t)json_integer_value(json_object_get(s, "length"));
            sage__strlcpy(m.sinks[i].path, json_string_value(json_object_get(s, "path")) ?: "", sizeof m.sinks[i].path);
        }
        sage__buf b;
        sage__buf_init(&b, SAGE__MANIFEST_MAX);
        if (sage__manifest_write(&m, &b) == 0)
            text = sage__buf_detach(&b, len);
        sage__buf_free(&b);
    }
    free(m.tasks);
    free(m.sinks);
    return text;
}

/* Every task is in: release the sources (a savepoint holds them until it is durable), and ask one worker to
 * commit. */
static void all_in(jm *d, jm_job *j)
{
    jm_ckpt *ck = &j->ck;
    if (!ck->sp_active)
        release(j, ck->active, 0);
    jm_task *writer = NULL;
    for (size_t t = 0; t < j->nflow && !writer; t++)
        if (j->tasks[t].ctl && !j->tasks[t].reported_done)
            writer = &j->tasks[t];
    size_t len = 0;
    char *text = writer ? manifest_text(j, &len) : NULL;
    if (!text) {
        abandon(d, j, writer ? "out of memory writing its manifest" : "no worker left to commit it");
        return;
    }
    json_t *ev = json_pack("{s:s,s:s,s:I,s:s,s:s}", "event", "control", "action", "commit", "id",
                           (json_int_t)ck->active, "dir", ck->dir, "manifest", text);
    if (ev && !ck->sp_active) { /* the run's older checkpoints go (a savepoint lives elsewhere) */
        json_object_set_new(ev, "rundir", json_string(ck->rundir));
        json_object_set_new(ev, "keep", json_integer(j->ft.checkpoints_retained));
    }
    free(text);
    ck->committing = 1;
    jm_send_json(writer->ctl, SAGE__MSG_EVENT, ev);
}

void jm_ckpt_event(jm *d, jm_job *j, jm_task *k, const char *type, json_t *ev)
{
    jm_ckpt *ck = &j->ck;
    uint64_t id = (uint64_t)json_integer_value(json_object_get(ev, "id"));
    if (!ck->on || !ck->active || id != ck->active || j->failed || j->cancel_requested)
        return; /* a late answer about an abandoned checkpoint */
    const char *error = json_string_value(json_object_get(ev, "error"));
    if (strcmp(type, "captured") == 0 && !ck->committing) {
        if (error) {
            char why[1400];
            sage__fmt(why, sizeof why, "operator \"%s\" instance %d: %s", k->op, k->instance, error);
            abandon(d, j, why);
            return;
        }
        size_t t = (size_t)k->index;
        if (ck->in[t])
            return;
        if (!ck->bytes && !(ck->bytes = calloc(j->ntasks, sizeof *ck->bytes)))
            return;
        if (!ck->sums && !(ck->sums = calloc(j->ntasks, sizeof *ck->sums)))
            return;
        if (json_is_true(json_object_get(ev, "finished"))) {
            ck->in[t] = 2;
        } else {
            json_t *b = json_object_get(ev, "bytes");
            uint64_t sum;
            if (!json_is_integer(b) || json_integer_value(b) < SAGE__PART_HDR ||
                sage__json_hex64_get(json_object_get(ev, "checksum"), &sum) != 0) {
                abandon(d, j, "a worker's answer lacks its part's size or checksum");
                return;
            }
            ck->in[t] = 1;
            ck->bytes[t] = (uint64_t)json_integer_value(b);
            ck->sums[t] = sum;
        }
        uint64_t ph;
        if (sage__json_hex64_get(json_object_get(ev, "plan_hash"), &ph) == 0)
            ck->plan_hash = ph;
        json_t *fs = json_object_get(ev, "file_sinks"), *s;
        size_t i;
        json_array_foreach(fs, i, s)
        { /* every instance of a file sink reports the same file: keep one entry per operator */
            int op = (int)json_integer_value(json_object_get(s, "op"));
            size_t e;
            json_t *x;
            int seen = 0;
            json_array_foreach(ck->sinks, e, x) seen |= json_integer_value(json_object_get(x, "op")) == op;
            if (!seen)
                json_array_append(ck->sinks, s);
        }
        if (++ck->ntasks_in == j->nflow)
            all_in(d, j);
        return;
    }
    if (strcmp(type, "committed") == 0 && ck->committing) {
        if (error || !json_is_true(json_object_get(ev, "ok"))) {
            abandon(d, j, error ? error : "its manifest could not be written");
            return;
        }
        /* the one before stays as the fallback of a checkpoint that cannot be restored */
        sage__strlcpy(ck->prev_path, ck->last_path, sizeof ck->prev_path);
        json_decref(ck->prev_sinks);
        ck->prev_sinks = ck->committed_sinks;
        ck->committed_sinks = NULL;
        ck->last_id = ck->active;
        sage__strlcpy(ck->last_path, ck->dir, sizeof ck->last_path);
        ck->last_ms = sage__wall_ms();
        ck->completed++;
        uint64_t total = 0;
        for (size_t t = 0; t < j->nflow; t++)
            total += ck->bytes ? ck->bytes[t] : 0;
        ck->last_bytes = total;
        ck->committed_sinks = json_incref(ck->sinks);
        jm_log(d, "job %lld: %s %" PRIu64 " committed (%" PRIu64 " bytes, %lld ms)%s%s", (long long)j->id,
               ck->sp_active ? "savepoint" : "checkpoint", ck->active, total,
               (long long)(sage__mono_ms() - ck->started_ms), ck->sp_active ? " in " : "",
               ck->sp_active ? ck->dir : "");
        int savepoint = ck->sp_active;
        ck->active = 0;
        ck->committing = 0;
        ck->next_at_ms = sage__mono_ms() + interval_ms(j);
        if (savepoint) { /* the sources, held at its barrier, stop there */
            char err[256];
            sp_answer(d, j, 0, NULL);
            jm_job_control(d, j->id, "stop", -1, err, sizeof err);
        }
    }
}

int64_t jm_ckpt_timers(jm *d, jm_job *j, int64_t now)
{
    jm_ckpt *ck = &j->ck;
    if (!ck->on || j->state != JJ_RUNNING || j->failed || j->cancel_requested || j->stop_requested || j->restart_at_ms)
        return -1;
    if (ck->active) {
        int64_t due = ck->started_ms + ck->timeout_ms;
        if (due <= now) {
            abandon(d, j, "not every task reached its barrier within checkpoint_timeout");
            return ck->next_at_ms;
        }
        return due;
    }
    if (ck->next_at_ms <= now || ck->sp_pending)
        start(d, j, now);
    return ck->active ? ck->started_ms + ck->timeout_ms : ck->next_at_ms;
}

const char *jm_ckpt_recover(jm *d, jm_job *j)
{
    jm_ckpt *ck = &j->ck;
    if (!ck->on) { /* the restart strategy: from the beginning, or from what the job started from */
        if (ck->restore_from[0])
            cut_sinks(d, j, ck->from_sinks);
        return ck->restore_from[0] ? ck->restore_from : NULL;
    }
    if (ck->sp_active || ck->sp_pending)
        sp_answer(d, j, SAGE_ECANCELED, "the job failed before it was taken");
    /* the attempt before failed restoring: that checkpoint is bad; the one before it (kept), else the start */
    if (ck->last_id && strstr(j->last_failure, "cannot restore from checkpoint")) {
        jm_log(d, "job %lld: checkpoint \"%s\" cannot be restored; recovering from %s", (long long)j->id, ck->last_path,
               ck->prev_path[0] ? ck->prev_path : "where the job started");
        sage__strlcpy(ck->last_path, ck->prev_path, sizeof ck->last_path);
        ck->prev_path[0] = '\0';
        json_decref(ck->committed_sinks);
        ck->committed_sinks = ck->prev_sinks;
        ck->prev_sinks = NULL;
        if (!ck->last_path[0])
            ck->last_id = 0;
    }
    ck->active = 0;
    ck->committing = 0;
    ck->recoveries++;
    ck->next_at_ms = sage__mono_ms() + interval_ms(j);
    if (!ck->last_id || !ck->last_path[0]) { /* where the job started: its beginning, or its restore_from */
        ck->restore_in_run = 0;
        if (ck->restore_from[0])
            cut_sinks(d, j, ck->from_sinks);
        return ck->restore_from[0] ? ck->restore_from : NULL;
    }
    ck->restore_in_run = 1;
    cut_sinks(d, j, ck->committed_sinks); /* the file sinks hold exactly what the checkpoint committed */
    return ck->last_path;
}

void jm_ckpt_view(const jm_job *j, json_t *st)
{
    const jm_ckpt *ck = &j->ck;
    if (!ck->on || !st)
        return;
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:i}", "completed", (json_int_t)ck->completed, "abandoned",
                          (json_int_t)ck->abandoned, "last_id", (json_int_t)ck->last_id, "last_bytes",
                          (json_int_t)ck->last_bytes, "recoveries", ck->recoveries);
    if (o && ck->last_path[0]) {
        json_object_set_new(o, "last_path", json_string(ck->last_path));
        json_object_set_new(o, "last_at_ms", json_integer((json_int_t)ck->last_ms));
    }
    if (o)
        json_object_set_new(o, "dir", json_string(ck->rundir));
    if (o && ck->active) /* being taken */
        json_object_set_new(o, "taking", json_integer((json_int_t)ck->active));
    json_object_set_new(st, "checkpoints", o);
}

int jm_ckpt_savepoint(jm *d, jm_job *j, const char *dir, int timeout_ms, jm_conn *c, char *err, size_t err_len)
{
    jm_ckpt *ck = &j->ck;
    if (!ck->on) {
        sage__fmt(err, err_len,
                  "job %lld: savepoints need the checkpoint strategy (config \"fault_tolerance\": {\"strategy\": "
                  "\"checkpoint\"})",
                  (long long)j->id);
        return SAGE_ESTATE;
    }
    if (j->state != JJ_RUNNING || j->failed || j->stop_requested || j->cancel_requested || j->restart_at_ms) {
        sage__fmt(err, err_len, "job %lld is not running (%s)", (long long)j->id, jm_job_state_name(j->state));
        return SAGE_ESTATE;
    }
    if (ck->sp_pending || ck->sp_active) {
        sage__fmt(err, err_len, "job %lld: a savepoint is being taken already", (long long)j->id);
        return SAGE_ESTATE;
    }
    if (dir[0] != '/' || strlen(dir) >= sizeof ck->sp_dir) {
        sage__fmt(err, err_len, "the savepoint directory must be an absolute path shorter than %zu bytes",
                  sizeof ck->sp_dir);
        return SAGE_EINVAL;
    }
    DIR *dd = opendir(dir); /* it must not exist, or be empty (one readdir of a directory) */
    if (dd) {
        struct dirent *e;
        int empty = 1;
        while (empty && (e = readdir(dd)))
            empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
        closedir(dd);
        if (!empty) {
            sage__fmt(err, err_len, "the savepoint directory \"%s\" is not empty", dir);
            return SAGE_EINVAL;
        }
    }
    sage__strlcpy(ck->sp_dir, dir, sizeof ck->sp_dir);
    ck->sp_timeout_ms = timeout_ms;
    ck->sp_pending = 1;
    ck->sp_conn = c;
    c->parked = 1;
    jm_log(d, "job %lld: savepoint into %s requested", (long long)j->id, dir);
    if (!ck->active)
        start(d, j, sage__mono_ms());
    return 0;
}

void jm_ckpt_forget(jm *d, jm_conn *c)
{
    for (jm_job *j = d->jobs; j; j = j->next)
        if (j->ck.sp_conn == c)
            j->ck.sp_conn = NULL; /* the savepoint goes on; nobody waits for its answer */
}

void jm_ckpt_end(jm *d, jm_job *j)
{
    if (j->ck.sp_active || j->ck.sp_pending)
        sp_answer(d, j, SAGE_ESTATE, "the job ended before it was taken");
}

/* The ids of rundir's committed checkpoints' manifests, newest first: the newest and the one before it. */
int jm_ckpt_latest(jm *d, jm_job *j)
{
    jm_ckpt *ck = &j->ck;
    DIR *dd = opendir(ck->rundir);
    if (!dd)
        return SAGE_ENOTFOUND;
    uint64_t best[2] = {0, 0};
    for (struct dirent *e; (e = readdir(dd));) {
        const char *nm = e->d_name;
        if (strncmp(nm, "chk-", 4) != 0 || !nm[4] || strspn(nm + 4, "0123456789") != strlen(nm + 4) ||
            strlen(nm + 4) > 18)
            continue;
        uint64_t id = strtoull(nm + 4, NULL, 10);
        char dir[PATH_MAX + 32];
        sage__manifest m;
        char why[512];
        sage__ckpt_path(dir, sizeof dir, ck->rundir, id);
        if (sage__ckpt_read_manifest(dir, &m, why, sizeof why) != 0) /* never committed, or damaged */
            continue;
        sage__manifest_free(&m);
        if (id > best[0]) {
            best[1] = best[0];
            best[0] = id;
        } else if (id > best[1]) {
            best[1] = id;
        }
    }
    closedir(dd);
    if (!best[0])
        return SAGE_ENOTFOUND;
    for (int k = 1; k >= 0; k--) { /* the one before first: it becomes prev_* when the newest is loaded */
        if (!best[k])
            continue;
        char dir[PATH_MAX + 32];
        sage__manifest m;
        char why[512];
        sage__ckpt_path(dir, sizeof dir, ck->rundir, best[k]);
        if (sage__ckpt_read_manifest(dir, &m, why, sizeof why) != 0)
            continue;
        json_t *sinks = json_array();
        for (size_t i = 0; i < m.nsinks; i++)
            json_array_append_new(sinks, json_pack("{s:i,s:I,s:s}", "op", m.sinks[i].op, "length",
                                                   (json_int_t)m.sinks[i].length, "path", m.sinks[i].path));
        sage__manifest_free(&m);
        sage__strlcpy(ck->prev_path, ck->last_path, sizeof ck->prev_path);
        json_decref(ck->prev_sinks);
        ck->prev_sinks = ck->committed_sinks;
        ck->committed_sinks = sinks;
        sage__strlcpy(ck->last_path, dir, sizeof ck->last_path);
        ck->last_id = best[k];
    }
    ck->next_id = best[0];
    ck->restore_in_run = 1;
    sage__strlcpy(ck->restore, ck->last_path, sizeof ck->restore);
    cut_sinks(d, j, ck->committed_sinks);
    return 0;
}
