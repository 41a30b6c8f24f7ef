/* backend/ckpt_run.c - one run's checkpoints: the run directory, taking and committing one, choosing what to restore. */
#include "backend/ckpt_run.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sage/jobmanager.h" /* sage_home_dir */
#include "util/time.h"

static _Atomic unsigned run_counter;

/* Load a checkpoint for restore_from: a checkpoint (it has a MANIFEST) or a run directory (its newest). */
static int load_from(const char *path, sage__loaded *l, char *why, size_t wl)
{
    char mf[1100];
    struct stat st;
    snprintf(mf, sizeof mf, "%s/MANIFEST", path);
    if (stat(mf, &st) == 0)
        return sage__ckpt_load(path, l, why, wl);
    return sage__ckpt_load_latest(path, l, NULL, NULL, why, wl);
}

int sage__ckrun_locks(sage__ckrun *r)
{
    memset(r, 0, sizeof *r);
    if (pthread_mutex_init(&r->take_mu, NULL) != 0)
        return SAGE_ESYS;
    if (pthread_mutex_init(&r->stats_mu, NULL) != 0) {
        pthread_mutex_destroy(&r->take_mu);
        return SAGE_ESYS;
    }
    return 0;
}

int sage__ckrun_init(sage__ckrun *r, const sage__plan *plan, const sage__config *cfg, sage__err *err)
{
    r->plan = plan;
    r->cfg = cfg;
    char why[1024];
    if (cfg->restore_from[0]) {
        sage__loaded *l = calloc(1, sizeof *l);
        if (!l)
            return sage__errf(err, SAGE_ENOMEM, "out of memory");
        int rc = load_from(cfg->restore_from, l, why, sizeof why);
        if (rc == 0 && (rc = sage__restore_check(plan, l, why, sizeof why)) != 0)
            sage__loaded_free(l);
        if (rc != 0) {
            free(l);
            return sage__errf(err, rc == SAGE_ENOMEM ? rc : SAGE_EINVAL, "config key \"restore_from\": %s", why);
        }
        r->from = l;
        r->restore.ck = l;
        r->restore.in_run = 0;
    }
    if (cfg->ft.strategy != SAGE__FT_CHECKPOINT)
        return 0;
    char base[1024];
    if (cfg->ft.checkpoint_dir[0]) {
        sage__strlcpy(base, cfg->ft.checkpoint_dir, sizeof base);
    } else {
        char home[900];
        if (sage_home_dir(NULL, home, sizeof home) != 0)
            return sage__errf(err, SAGE_ECONFIG,
                              "config key \"fault_tolerance\": no state directory for checkpoints ($SAGE_HOME and "
                              "$HOME unset); set \"checkpoint_dir\"");
        snprintf(base, sizeof base, "%s/checkpoints", home);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int n = snprintf(r->rundir, sizeof r->rundir, "%s/%s-%04d%02d%02dT%02d%02d%02d-%ld-%u", base, plan->g->name,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)getpid(),
                     atomic_fetch_add(&run_counter, 1));
    if (n < 0 || (size_t)n >= sizeof r->rundir)
        return sage__errf(err, SAGE_ECONFIG, "config key \"fault_tolerance.checkpoint_dir\": the path is too long");
    if (sage__ckpt_mkdirs(r->rundir, why, sizeof why) != 0 || access(r->rundir, W_OK) != 0)
        return sage__errf(err, SAGE_EIO,
                          "config key \"fault_tolerance.checkpoint_dir\": checkpoints cannot be "
                          "written: %s",
                          why[0] ? why : "the directory is not writable");
    r->periodic = 1;
    return 0;
}

void sage__ckrun_free(sage__ckrun *r, int remove_dir)
{
    if (r->from) {
        sage__loaded_free(r->from);
        free(r->from);
        r->from = NULL;
    }
    if (remove_dir && r->rundir[0])
        sage__ckpt_remove(r->rundir);
    pthread_mutex_destroy(&r->take_mu);
    pthread_mutex_destroy(&r->stats_mu);
}

const sage__restore *sage__ckrun_restore(const sage__ckrun *r) { return r->from ? &r->restore : NULL; }

int sage__ckrun_take(sage__ckrun *r, sage__job *job, const char *savepoint_dir, int timeout_ms, char *why, size_t wl)
{
    uint64_t id = ++r->next_id, t0 = sage__mono_ns();
    char dir[1100];
    if (savepoint_dir)
        sage__strlcpy(dir, savepoint_dir, sizeof dir);
    else
        sage__ckpt_path(dir, sizeof dir, r->rundir, id);
    if (timeout_ms < 0)
        timeout_ms = (int)(r->cfg->ft.checkpoint_timeout * 1000.0 + 0.5);
    sage__ckpt_taken taken;
    int rc = sage__job_checkpoint(job, id, timeout_ms, savepoint_dir != NULL, &taken);
    if (rc == SAGE_ETIMEDOUT)
        sage__fmt(why, wl, "checkpoint %" PRIu64 " was abandoned: not every task reached its barrier within %gs", id,
                  r->cfg->ft.checkpoint_timeout);
    else if (rc == SAGE_ENOMEM)
        sage__fmt(why, wl, "checkpoint %" PRIu64 " was abandoned: out of memory", id);
    else if (rc != 0)
        sage__fmt(why, wl, "checkpoint %" PRIu64 ": the job ended before it was taken", id);
    if (rc == 0 && !savepoint_dir) { /* every task had ended: the job is done, nothing to recover */
        size_t live = 0;
        for (size_t i = 0; i < taken.ntasks; i++)
            live += taken.parts[i] != NULL;
        if (live == 0) {
            sage__ckpt_taken_free(&taken);
            rc = SAGE_ECANCELED;
            sage__fmt(why, wl, "checkpoint %" PRIu64 ": the job ended before it was taken", id);
        }
    }
    uint64_t bytes = 0, pause_ns = rc == 0 ? taken.pause_ns : 0;
    if (rc == 0) {
        sage__manifest m = {.id = id, .plan_hash = r->plan->hash, .savepoint = savepoint_dir != NULL};
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        m.taken_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
        sage__strlcpy(m.job, r->plan->g->name, sizeof m.job);
        m.ntasks = job->ntasks;
        m.tasks = calloc(job->ntasks, sizeof *m.tasks);
        m.nsinks = taken.nsinks;
        m.sinks = taken.sinks;
        if (!m.tasks) {
            rc = SAGE_ENOMEM;
            sage__fmt(why, wl, "checkpoint %" PRIu64 " was abandoned: out of memory", id);
        }
        for (size_t i = 0; rc == 0 && i < job->ntasks; i++) {
            m.tasks[i].chain = job->tasks[i].chain->id;
            m.tasks[i].instance = job->tasks[i].instance;
            m.tasks[i].finished = taken.parts[i] == NULL;
        }
        if (rc == 0)
            rc = sage__ckpt_write(dir, &m, taken.parts, &bytes, why, wl);
        if (rc != 0 && rc != SAGE_EINVAL && !savepoint_dir)
            sage__ckpt_remove(dir); /* never committed: nothing may restore from it */
        free(m.tasks);
        sage__ckpt_taken_free(&taken); /* frees m.sinks */
        if (savepoint_dir)             /* held at the barrier: they stop once the savepoint is durable, else go on */
            sage__job_release(job, id, rc == 0);
    }
    uint64_t t1 = sage__mono_ns();
    pthread_mutex_lock(&r->stats_mu);
    if (rc == 0) {
        r->stats.completed++;
        r->stats.last_id = id;
        r->stats.last_bytes = bytes;
        r->stats.last_pause_ms = (double)pause_ns / 1e6;
        r->stats.last_total_ms = (double)(t1 - t0) / 1e6;
        sage__strlcpy(r->stats.last_path, dir, sizeof r->stats.last_path);
    } else if (rc != SAGE_ECANCELED && rc != SAGE_EINVAL) {
        r->stats.abandoned++;
    }
    pthread_mutex_unlock(&r->stats_mu);
    if (rc == 0 && !savepoint_dir)
        sage__ckpt_prune(r->rundir, (size_t)r->cfg->ft.checkpoints_retained);
    return rc;
}

static void skipped(const char *why, void *arg)
{
    const sage__ckrun *r = arg;
    fprintf(stderr, "sage: job \"%s\": %s; recovering from an older one\n", r->plan->g->name, why);
}

int sage__ckrun_recover(sage__ckrun *r, char *why, size_t wl)
{
    pthread_mutex_lock(&r->stats_mu);
    r->stats.recoveries++;
    pthread_mutex_unlock(&r->stats_mu);
    if (!r->periodic)
        return 0;
    sage__loaded *l = calloc(1, sizeof *l);
    if (!l)
        return SAGE_ENOMEM;
    int rc = sage__ckpt_load_latest(r->rundir, l, skipped, r, why, wl);
    if (rc == 0 && (rc = sage__restore_check(r->plan, l, why, wl)) != 0)
        sage__loaded_free(l);
    if (rc != 0) {
        free(l);
        return rc == SAGE_ENOTFOUND ? 0 : rc; /* none committed yet: as the run started */
    }
    if (r->from) {
        sage__loaded_free(r->from);
        free(r->from);
    }
    r->from = l;
    r->restore.ck = l;
    r->restore.in_run = 1;
    return 0;
}
