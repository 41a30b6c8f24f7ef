/* jobmanager/store_mem.c - the job store as the daemon's loop sees it: rows in memory, one writer thread, late reads.
 *
 * Design note. The loop must never wait on SQLite: another process holding
 * jobs.db locked used to freeze it for the busy timeout at every write. So:
 *
 *  - Job rows live in memory: the newest MIRROR_KEEP jobs and every job that
 *    has not ended (loaded at open), each with its texts whole and a version
 *    (bumped by every change) and the version last written to the file.
 *    Task rows, written when their job ends, wait in memory until written.
 *    Every write call changes memory under `mu` (held for copies only, never
 *    across SQLite) and wakes the writer thread; nothing else happens on the
 *    caller's thread. Ids are handed out here (the file's largest, read at
 *    open, then one more each time), so a submit never waits either.
 *  - The writer thread (store_writer.c) writes what changed, retrying for
 *    as long as another process holds the file locked; rows that finally
 *    cannot be written are said in the log and as the job's "trouble"
 *    (sage__store_warning, which `status` shows), and so are rows that wait
 *    for a lock.
 *  - Reads the loop needs are answered from memory (a job's row, the list)
 *    or by the thread (an ended job's task rows, an old job's row), which
 *    runs them before any write and between retries (WAL lets a reader in
 *    while another process writes), then overlays the rows not written yet,
 *    so a reader sees every write made before its question. Answers come
 *    back through an eventfd the loop polls (sage__store_fd, then
 *    sage__store_dispatch runs their callbacks on the loop's thread).
 *  - Backpressure: past PENDING_MAX rows waiting, a new job is refused
 *    (sage__store_job_insert); the rows of jobs already admitted are always
 *    taken, so the memory held is bounded by what was admitted.
 *  - Close writes what waits, for up to CLOSE_WAIT_MS while the file is
 *    locked; what is still not written then is said to the log function.
 *
 * A daemon killed before the thread wrote a change loses that change (at
 * most the last few milliseconds: the thread writes as soon as it is woken).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "jobmanager/store_internal.h"
#include "sage/error.h"
#include "util/err.h"
#include "util/time.h"

#define STORE_OPEN_BUSY_MS 5000 /* creating or upgrading the schema at open may wait that long for a lock */
#define STORE_BUSY_MS 10        /* then each statement waits at most that long, and the thread retries */

/* ---- memory (callers hold mu) ---- */

int store_dirty(const mjob *m) { return m->version != m->written; }

mjob *store_find(sage__store *s, int64_t id)
{
    size_t lo = 0, hi = s->njobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->jobs[mid].j.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->njobs && s->jobs[lo].j.id == id ? &s->jobs[lo] : NULL;
}

/* Take j (its texts) into memory, in id order. NULL: out of memory (j is freed). */
static mjob *keep(sage__store *s, store_job *j)
{
    if (s->njobs == s->capjobs) {
        size_t cap = s->capjobs ? s->capjobs * 2 : 64;
        mjob *v = realloc(s->jobs, cap * sizeof *v);
        if (!v) {
            store_job_free(j);
            return NULL;
        }
        s->jobs = v;
        s->capjobs = cap;
    }
    size_t at = s->njobs;
    while (at > 0 && s->jobs[at - 1].j.id > j->id)
        at--;
    memmove(&s->jobs[at + 1], &s->jobs[at], (s->njobs - at) * sizeof *s->jobs);
    s->jobs[at] = (mjob){.j = *j};
    s->njobs++;
    return &s->jobs[at];
}

/* Drop the oldest jobs beyond MIRROR_KEEP that are written and ended. */
static void forget_old(sage__store *s)
{
    if (s->njobs <= MIRROR_KEEP + MIRROR_KEEP / 8)
        return;
    size_t cut = s->njobs - MIRROR_KEEP, o = 0;
    for (size_t i = 0; i < s->njobs; i++) {
        mjob *m = &s->jobs[i];
        if (i < cut && !store_dirty(m) && store_job_ended(m->j.state)) {
            store_job_free(&m->j);
            free(m->trouble);
        } else {
            s->jobs[o++] = *m;
        }
    }
    s->njobs = o;
}

static void changed(sage__store *s, mjob *m)
{
    m->version = ++s->seq;
    pthread_cond_signal(&s->cv);
}

size_t store_pending(const sage__store *s)
{
    size_t n = s->ntasks;
    for (size_t i = 0; i < s->njobs; i++)
        n += store_dirty(&s->jobs[i]);
    return n;
}

mtask *store_find_task(sage__store *s, int64_t job_id, int task)
{
    for (size_t i = 0; i < s->ntasks; i++)
        if (s->tasks[i].row.job_id == job_id && s->tasks[i].row.task == task)
            return &s->tasks[i];
    return NULL;
}

void store_say(sage__store *s, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    sage__vfmt(text, sizeof text, fmt, ap);
    va_end(ap);
    message *m = s->nmsgs < MESSAGES_MAX ? malloc(sizeof *m + strlen(text) + 1) : NULL;
    if (!m) {
        s->dropped_msgs++;
        return;
    }
    strcpy(m->text, text);
    m->next = NULL;
    message **pp = &s->msgs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    s->nmsgs++;
    uint64_t one = 1;
    (void)!write(s->efd, &one, sizeof one);
}

/* ---- open / close ---- */

static int load_job(store_job *j, void *arg)
{
    mjob *m = keep(arg, j);
    return m ? 0 : SAGE_ENOMEM;
}

sage__store *sage__store_open(const char *path, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!path || !*path) {
        if (err && err_len)
            snprintf(err, err_len, "store: no database path given");
        return NULL;
    }
    sage__store *s = calloc(1, sizeof *s);
    if (!s) {
        if (err && err_len)
            snprintf(err, err_len, "store: %s: out of memory", path);
        return NULL;
    }
    s->efd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->dbmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!(s->db = store_db_open(path, STORE_OPEN_BUSY_MS, STORE_BUSY_MS, err, err_len)))
        goto fail;
    int rc = store_db_load(s->db, MIRROR_KEEP, load_job, s);
    if (rc != 0) {
        if (err && err_len)
            snprintf(err, err_len, "store: cannot read the jobs of %s: %s", path,
                     rc == SAGE_ENOMEM ? "out of memory" : store_db_errmsg(s->db));
        goto fail;
    }
    s->max_id = store_db_max_id(s->db);
    /* the thread takes no signal: the daemon reads its signals from a signalfd, which sees only signals
     * blocked in every thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = (s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0 &&
                  (errno = pthread_create(&s->thread, NULL, store_writer_main, s)) == 0;
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        if (err && err_len)
            snprintf(err, err_len, "store: cannot start its writer: %s", strerror(e));
        goto fail;
    }
    s->started = 1;
    return s;
fail:
    sage__store_close(s);
    return NULL;
}

static void deliver(sage__store *s, message *list)
{
    while (list) {
        message *m = list;
        list = m->next;
        if (s->log)
            s->log(s->log_arg, m->text);
        free(m);
    }
}

void sage__store_close(sage__store *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->closing = 1;
        s->close_by = sage__mono_ms() + CLOSE_WAIT_MS;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        size_t left = store_pending(s);
        if (left)
            store_say(s, "%zu rows could not be written to jobs.db before the JobManager stopped (%s); they are lost",
                      left, s->busy_since ? "it stayed locked by another process" : s->hard_why);
    }
    deliver(s, s->msgs);
    for (read_req *q = s->reads, *next; q; q = next) {
        next = q->next;
        free(q);
    }
    for (read_req *q = s->answers, *next; q; q = next) {
        next = q->next;
        free(q->r.tasks);
        free(q);
    }
    for (size_t i = 0; i < s->njobs; i++) {
        store_job_free(&s->jobs[i].j);
        free(s->jobs[i].trouble);
    }
    free(s->jobs);
    free(s->tasks);
    free(s->unfinished);
    store_db_close(s->db);
    if (s->efd >= 0)
        close(s->efd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->dbmu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- writes ---- */

/* A state: non-empty and short enough to fit the rows' state fields. */
static int valid_state(const char *state)
{
    size_t n = state ? strlen(state) : 0;
    return n > 0 && n < sizeof(((sage__job_row *)0)->state) && n < sizeof(((sage__task_row *)0)->state);
}

/* Job id in memory, fetched from the file if it is an old one (that may wait: not on the daemon's loop,
 * whose jobs are in memory). Returns it with mu held, or NULL (not found, mu released) with *rc. */
static mjob *job_locked(sage__store *s, int64_t id, int *rc)
{
    pthread_mutex_lock(&s->mu);
    mjob *m = store_find(s, id);
    if (m || id <= 0 || id > s->max_id) {
        *rc = m ? 0 : SAGE_ENOTFOUND;
        if (!m)
            pthread_mutex_unlock(&s->mu);
        return m;
    }
    pthread_mutex_unlock(&s->mu);
    store_job j;
    pthread_mutex_lock(&s->dbmu);
    *rc = store_db_get_job(s->db, id, &j);
    pthread_mutex_unlock(&s->dbmu);
    if (*rc != 0)
        return NULL;
    pthread_mutex_lock(&s->mu);
    if (!(m = store_find(s, id)) && !(m = keep(s, &j))) {
        pthread_mutex_unlock(&s->mu);
        *rc = SAGE_ENOMEM;
        return NULL;
    }
    if (m->j.name != j.name)
        store_job_free(&j); /* someone else got there first */
    return m;
}

int sage__store_fail_unfinished(sage__store *s, const char *reason)
{
    if (!s || !reason)
        return SAGE_EINVAL;
    pthread_mutex_lock(&s->mu);
    int64_t now = sage__wall_ms();
    size_t n = 0;
    for (size_t i = 0; i < s->njobs; i++)
        n += !store_job_ended(s->jobs[i].j.state) && strcmp(s->jobs[i].j.state, "created") != 0;
    int64_t *ids = n ? malloc(n * sizeof *ids) : NULL;
    if (n && !ids) {
        pthread_mutex_unlock(&s->mu);
        return SAGE_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->njobs; i++) {
        mjob *m = &s->jobs[i];
        if (store_job_ended(m->j.state) || strcmp(m->j.state, "created") == 0)
            continue;
        char *e = strdup(reason);
        if (!e)
            break;
        free(m->j.error);
        m->j.error = e;
        strcpy(m->j.state, "failed");
        m->j.ended_ms = m->j.seen_ms > 0 ? m->j.seen_ms : now; /* the last time it was known alive */
        m->kill_tasks = 1;
        ids[k++] = m->j.id;
        changed(s, m);
    }
    free(s->unfinished);
    s->unfinished = ids;
    s->nunfinished = k;
    pthread_mutex_unlock(&s->mu);
    return (int)k;
}

const int64_t *sage__store_unfinished(const sage__store *s, size_t *n)
{
    *n = s ? s->nunfinished : 0;
    return s ? s->unfinished : NULL;
}

int sage__store_job_insert(sage__store *s, const char *name, const char *executable, int ntasks, int64_t now_ms,
                           int64_t *id)
{
    if (!s || !name || !executable || ntasks < 0 || !id)
        return SAGE_EINVAL;
    store_job j = {.name = strdup(name), .error = strdup(""), .executable = strdup(executable)};
    strcpy(j.state, "created");
    j.submitted_ms = now_ms;
    j.ntasks = ntasks;
    if (!j.name || !j.error || !j.executable) {
        store_job_free(&j);
        return SAGE_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    if (store_pending(s) >= PENDING_MAX) {
        if (s->nmsgs == 0)
            store_say(s, "a job was refused: %zu rows wait to be written to jobs.db (%s)", store_pending(s),
                      s->busy_since ? "it is locked by another process" : s->hard_why);
        pthread_mutex_unlock(&s->mu);
        store_job_free(&j);
        return SAGE_EIO;
    }
    j.id = s->max_id + 1;
    mjob *m = keep(s, &j);
    if (m) {
        s->max_id = j.id;
        *id = j.id;
        changed(s, m);
        forget_old(s);
    }
    pthread_mutex_unlock(&s->mu);
    return m ? 0 : SAGE_ENOMEM;
}

int sage__store_job_state(sage__store *s, int64_t id, const char *state, const char *error, int64_t now_ms)
{
    if (!s || !valid_state(state))
        return SAGE_EINVAL;
    char *e = error ? strdup(error) : NULL;
    int rc;
    mjob *m = error && !e ? NULL : job_locked(s, id, &rc);
    if (!m) {
        free(e);
        return error && !e ? SAGE_ENOMEM : rc;
    }
    strcpy(m->j.state, state);
    if (e) {
        free(m->j.error);
        m->j.error = e;
    }
    if (strcmp(state, "running") == 0 && m->j.started_ms == 0)
        m->j.started_ms = now_ms;
    if (store_job_ended(state) && m->j.ended_ms == 0)
        m->j.ended_ms = now_ms;
    else if (!store_job_ended(state))
        m->j.ended_ms = 0; /* live again: a job resumed from its checkpoint after the JobManager's restart */
    changed(s, m);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int job_set(sage__store *s, int64_t id, int is_code, int64_t v)
{
    if (!s)
        return SAGE_EINVAL;
    int rc;
    mjob *m = job_locked(s, id, &rc);
    if (!m)
        return rc;
    if (is_code)
        m->j.error_code = (int)v;
    else
        m->j.seen_ms = v;
    changed(s, m);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int sage__store_job_error_code(sage__store *s, int64_t id, int code) { return job_set(s, id, 1, code); }
int sage__store_job_seen(sage__store *s, int64_t id, int64_t seen_ms) { return job_set(s, id, 0, seen_ms); }

int sage__store_task_put(sage__store *s, const sage__task_row *t)
{
    if (!s || !t || t->task < 0)
        return SAGE_EINVAL;
    size_t state_len = strnlen(t->state, sizeof t->state);
    if (state_len == 0 || state_len == sizeof t->state)
        return SAGE_EINVAL;
    pthread_mutex_lock(&s->mu);
    if (t->job_id <= 0 || t->job_id > s->max_id) { /* the file would refuse it (foreign key) */
        pthread_mutex_unlock(&s->mu);
        return SAGE_ENOTFOUND;
    }
    mtask *k = store_find_task(s, t->job_id, t->task);
    if (!k && s->ntasks == s->captasks) {
        size_t cap = s->captasks ? s->captasks * 2 : 64;
        mtask *v = realloc(s->tasks, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&s->mu);
            return SAGE_ENOMEM;
        }
        s->tasks = v;
        s->captasks = cap;
    }
    if (!k)
        k = &s->tasks[s->ntasks++];
    k->row = *t;
    k->version = ++s->seq;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- reads that never wait ---- */

int sage__store_job_cached(sage__store *s, int64_t id, sage__job_row *out)
{
    if (!s || !out)
        return SAGE_EINVAL;
    pthread_mutex_lock(&s->mu);
    mjob *m = store_find(s, id);
    if (m)
        store_job_row(&m->j, out);
    int rc = m ? 0 : id <= 0 || id > s->max_id ? SAGE_ENOTFOUND : 1;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sage__store_job_list(sage__store *s, sage__job_row *rows, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!s || !n || (max && !rows))
        return SAGE_EINVAL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = s->njobs; i-- > 0 && *n < max;)
        store_job_row(&s->jobs[i].j, &rows[(*n)++]);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int sage__store_warning(sage__store *s, int64_t id, char *out, size_t len)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->mu);
    mjob *m = store_find(s, id);
    int waits = m && store_dirty(m);
    for (size_t i = 0; i < s->ntasks && !waits; i++)
        waits = s->tasks[i].row.job_id == id;
    int said = 1;
    if (m && m->trouble)
        sage__fmt(out, len, "%s", m->trouble);
    else if (waits && s->busy_since)
        sage__fmt(out, len,
                  "its records are not in jobs.db yet: the file has been locked by another process for %lld ms; they "
                  "are written once it is free",
                  (long long)(sage__mono_ms() - s->busy_since));
    else if (waits && s->hard_tries)
        sage__fmt(out, len, "its records are not in jobs.db yet: writing it failed (%s); retrying", s->hard_why);
    else
        said = 0;
    pthread_mutex_unlock(&s->mu);
    return said;
}

/* ---- reads answered later ---- */

int sage__store_read_async(sage__store *s, int64_t id, int tasks, sage__store_read_fn fn, void *arg)
{
    if (!s || !fn)
        return SAGE_EINVAL;
    read_req *q = calloc(1, sizeof *q);
    if (!q)
        return SAGE_ENOMEM;
    q->r.id = id;
    q->tasks = tasks;
    q->fn = fn;
    q->arg = arg;
    pthread_mutex_lock(&s->mu);
    if (s->nreads >= READS_MAX) {
        pthread_mutex_unlock(&s->mu);
        free(q);
        return SAGE_ETOOBIG;
    }
    read_req **pp = &s->reads;
    while (*pp)
        pp = &(*pp)->next;
    *pp = q;
    s->nreads++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int sage__store_fd(const sage__store *s) { return s ? s->efd : -1; }

void sage__store_attach(sage__store *s, void (*log)(void *arg, const char *msg), void *arg)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->log = log;
    s->log_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

void sage__store_dispatch(sage__store *s)
{
    if (!s)
        return;
    uint64_t v;
    (void)!read(s->efd, &v, sizeof v);
    pthread_mutex_lock(&s->mu);
    read_req *answers = s->answers;
    message *msgs = s->msgs;
    size_t dropped = s->dropped_msgs;
    s->answers = NULL;
    s->msgs = NULL;
    s->nmsgs = s->dropped_msgs = 0;
    pthread_mutex_unlock(&s->mu);
    deliver(s, msgs);
    if (dropped && s->log) {
        char text[96];
        sage__fmt(text, sizeof text, "(%zu more messages about jobs.db were dropped)", dropped);
        s->log(s->log_arg, text);
    }
    /* the list is newest first: answer in the order asked */
    read_req *ordered = NULL;
    while (answers) {
        read_req *q = answers;
        answers = q->next;
        q->next = ordered;
        ordered = q;
    }
    while (ordered) {
        read_req *q = ordered;
        ordered = q->next;
        q->fn(&q->r, q->arg);
        free(q->r.tasks);
        free(q);
    }
}

/* ---- reads that may wait ---- */

int sage__store_job_get(sage__store *s, int64_t id, sage__job_row *out)
{
    if (!s || !out)
        return SAGE_EINVAL;
    int rc = sage__store_job_cached(s, id, out);
    if (rc != 1)
        return rc;
    pthread_mutex_lock(&s->dbmu);
    rc = store_read_now(s, id, out, NULL);
    pthread_mutex_unlock(&s->dbmu);
    return rc;
}

int sage__store_task_each(sage__store *s, int64_t job_id, int (*fn)(const sage__task_row *r, void *arg), void *arg)
{
    if (!s || !fn)
        return SAGE_EINVAL;
    store_tasks l = {0};
    pthread_mutex_lock(&s->dbmu);
    int rc = store_read_now(s, job_id, NULL, &l);
    pthread_mutex_unlock(&s->dbmu);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = fn(&l.v[i], arg);
    free(l.v);
    return rc;
}

typedef struct task_copy {
    sage__task_row *rows;
    size_t max, *n;
} task_copy;

static int copy_task(const sage__task_row *r, void *arg)
{
    task_copy *c = arg;
    if (*c->n == c->max)
        return 1;
    c->rows[(*c->n)++] = *r;
    return 0;
}

int sage__store_task_list(sage__store *s, int64_t job_id, sage__task_row *rows, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!s || !n || (max && !rows))
        return SAGE_EINVAL;
    if (max == 0)
        return 0;
    task_copy c = {rows, max, n};
    int rc = sage__store_task_each(s, job_id, copy_task, &c);
    return rc == 1 ? 0 : rc;
}
