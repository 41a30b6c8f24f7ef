/* jobmanager/store_writer.c - the job store's writer thread: rows to the file in batches, retried while it is locked;
 * reads asked by the loop.
 *
 * Design note. The thread owns the connection (dbmu is held around every use
 * of it). Questions from the loop come first, also between the retries of a
 * write. A batch is up to BATCH_MAX changed rows in one transaction, jobs
 * first (tasks refer to them by foreign key). While another process holds
 * the file locked (SAGE_ETIMEDOUT after the connection's 10 ms busy wait)
 * the batch is retried with a backoff, 10 ms doubling to 1 s, for as long as
 * the lock is held: nothing is dropped, and the log says when the lock began
 * to hold writes back and when they were written. Other failures are retried
 * HARD_TRIES times; then the rows are written one by one and those that
 * still fail are dropped, said in the log and kept as their job's "trouble"
 * (sage__store_warning). A reader sees the file overlaid with the rows that
 * wait, read under dbmu, so no row is between "written" and "forgotten"
 * while it looks. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobmanager/store_internal.h"
#include "sage/error.h"
#include "util/err.h"
#include "util/time.h"

static void set_trouble(sage__store *s, int64_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_trouble(sage__store *s, int64_t id, const char *fmt, ...)
{
    mjob *m = store_find(s, id);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    sage__vfmt(text, sizeof text, fmt, ap);
    va_end(ap);
    store_say(s, "job %lld: %s", (long long)id, text);
    if (m) {
        free(m->trouble);
        m->trouble = strdup(text);
    }
}

typedef struct batch_item {
    int is_task;
    uint64_t version;
    int kill_tasks;
    store_job job; /* copies */
    sage__task_row task;
} batch_item;

static void batch_free(batch_item *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!b[i].is_task)
            store_job_free(&b[i].job);
    free(b);
}

/* Copy up to BATCH_MAX changed rows, jobs first (tasks refer to them). Caller holds mu. */
static size_t take_batch(sage__store *s, batch_item *b)
{
    size_t n = 0;
    for (size_t i = 0; i < s->njobs && n < BATCH_MAX; i++) {
        mjob *m = &s->jobs[i];
        if (!store_dirty(m))
            continue;
        batch_item *it = &b[n];
        memset(it, 0, sizeof *it);
        it->version = m->version;
        it->kill_tasks = m->kill_tasks;
        it->job = m->j;
        it->job.name = strdup(m->j.name);
        it->job.error = strdup(m->j.error);
        it->job.executable = strdup(m->j.executable);
        if (!it->job.name || !it->job.error || !it->job.executable) {
            store_job_free(&it->job);
            break;
        }
        n++;
    }
    for (size_t i = 0; i < s->ntasks && n < BATCH_MAX; i++) {
        b[n] = (batch_item){.is_task = 1, .version = s->tasks[i].version, .task = s->tasks[i].row};
        n++;
    }
    return n;
}

/* The items are in the file (or given up): forget what did not change meanwhile. Caller holds mu. */
static void written(sage__store *s, const batch_item *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!b[i].is_task) {
            mjob *m = store_find(s, b[i].job.id);
            if (m && m->version == b[i].version) {
                m->written = m->version;
                m->kill_tasks = 0;
            }
            continue;
        }
        mtask *t = store_find_task(s, b[i].task.job_id, b[i].task.task);
        if (t && t->version == b[i].version)
            *t = s->tasks[--s->ntasks];
    }
}

static int write_item(sage__store *s, const batch_item *it)
{
    if (it->is_task)
        return store_db_put_task(s->db, &it->task);
    int rc = store_db_put_job(s->db, &it->job);
    if (rc == 0 && it->kill_tasks)
        rc = store_db_kill_tasks(s->db, it->job.id);
    return rc;
}

/* One transaction of changed rows; one_by_one: each row on its own, the failing ones given up. 0, or
 * SAGE_ETIMEDOUT (locked by another process), or another error (s->hard_why). Called without mu. */
static int write_batch(sage__store *s, int one_by_one)
{
    batch_item *b = malloc(BATCH_MAX * sizeof *b);
    if (!b)
        return SAGE_ENOMEM;
    pthread_mutex_lock(&s->dbmu);
    pthread_mutex_lock(&s->mu);
    size_t taken = take_batch(s, b), n = taken;
    pthread_mutex_unlock(&s->mu);
    int rc = 0;
    if (one_by_one) {
        for (size_t i = 0; i < n; i++) {
            int r = write_item(s, &b[i]);
            if (r == SAGE_ETIMEDOUT) { /* locked again: keep the rest for later */
                n = i;
                rc = r;
                break;
            }
            if (r != 0) {
                pthread_mutex_lock(&s->mu);
                if (b[i].is_task)
                    set_trouble(s, b[i].task.job_id,
                                "the row of its task %d could not be written to jobs.db (%s); it is lost",
                                b[i].task.task, store_db_errmsg(s->db));
                else
                    set_trouble(s, b[i].job.id, "its row could not be written to jobs.db (%s); it is lost",
                                store_db_errmsg(s->db));
                pthread_mutex_unlock(&s->mu);
            }
        }
    } else if (n > 0) {
        rc = store_db_begin(s->db);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = write_item(s, &b[i]);
        if (rc == 0)
            rc = store_db_commit(s->db);
        if (rc != 0) {
            sage__fmt(s->hard_why, sizeof s->hard_why, "%s", store_db_errmsg(s->db));
            store_db_rollback(s->db);
            n = 0;
        }
    }
    pthread_mutex_lock(&s->mu);
    written(s, b, n);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->dbmu);
    batch_free(b, taken);
    return rc;
}

/* Adopt the outcome of a write attempt (caller holds mu). */
static void after_write(sage__store *s, int rc)
{
    int64_t now = sage__mono_ms();
    if (rc == 0) {
        if (s->busy_since)
            store_say(s, "jobs.db is free again: the rows that waited %lld ms for its lock are written",
                      (long long)(now - s->busy_since));
        s->busy_since = 0;
        s->backoff_ms = s->hard_tries = 0;
        s->retry_at = 0;
        return;
    }
    if (rc == SAGE_ETIMEDOUT) {
        if (!s->busy_since) {
            s->busy_since = now;
            size_t n = store_pending(s);
            store_say(s, "jobs.db is locked by another process: %zu row%s wait%s in memory, written once it is free", n,
                      n == 1 ? "" : "s", n == 1 ? "s" : "");
        }
    } else if (++s->hard_tries <= HARD_TRIES) {
        store_say(s, "writing to jobs.db failed (%s): %zu rows wait, retried", s->hard_why, store_pending(s));
    }
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->retry_at = now + s->backoff_ms;
}

static int add_task(const sage__task_row *r, void *arg)
{
    store_tasks *l = arg;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].task == r->task) {
            l->v[i] = *r;
            return 0;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sage__task_row *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return SAGE_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *r;
    return 0;
}

static int by_task(const void *a, const void *b)
{
    int x = ((const sage__task_row *)a)->task, y = ((const sage__task_row *)b)->task;
    return (x > y) - (x < y);
}

/* What a reader sees of job id: the file overlaid with what waits to be written. Caller holds dbmu. */
int store_read_now(sage__store *s, int64_t id, sage__job_row *job, store_tasks *tasks)
{
    int rc = 0;
    if (job) {
        pthread_mutex_lock(&s->mu);
        mjob *m = store_find(s, id);
        int maybe = id > 0 && id <= s->max_id;
        if (m)
            store_job_row(&m->j, job);
        pthread_mutex_unlock(&s->mu);
        if (!m) {
            store_job j;
            rc = maybe ? store_db_get_job(s->db, id, &j) : SAGE_ENOTFOUND;
            if (rc == 0) {
                store_job_row(&j, job);
                store_job_free(&j);
            }
        }
    }
    if (tasks && rc == 0) {
        int trc = store_db_each_task(s->db, id, add_task, tasks);
        pthread_mutex_lock(&s->mu);
        mjob *m = store_find(s, id);
        for (size_t i = 0; trc == 0 && i < tasks->n; i++)
            if (m && m->kill_tasks && !store_task_ended(tasks->v[i].state))
                strcpy(tasks->v[i].state, "killed");
        for (size_t i = 0; trc == 0 && i < s->ntasks; i++)
            if (s->tasks[i].row.job_id == id) {
                sage__task_row r;
                store_task_normal(&s->tasks[i].row, &r);
                trc = add_task(&r, tasks);
            }
        pthread_mutex_unlock(&s->mu);
        if (tasks->n > 1)
            qsort(tasks->v, tasks->n, sizeof *tasks->v, by_task);
        rc = trc;
    }
    return rc;
}

static void serve_read(sage__store *s, read_req *q)
{
    store_tasks l = {0};
    pthread_mutex_lock(&s->dbmu);
    /* a read waits for another process only in rare cases (an exclusive locking mode): a few tries */
    for (int i = 0; i < 20; i++) {
        free(l.v);
        l = (store_tasks){0};
        q->r.rc = store_read_now(s, q->r.id, &q->r.job, q->tasks ? &l : NULL);
        if (q->r.rc != SAGE_ETIMEDOUT)
            break;
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    pthread_mutex_unlock(&s->dbmu);
    q->r.tasks = l.v;
    q->r.ntasks = l.n;
}

void *store_writer_main(void *arg)
{
    sage__store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->reads) { /* questions first, also between the retries of a write */
            read_req *q = s->reads;
            s->reads = q->next;
            s->nreads--;
            pthread_mutex_unlock(&s->mu);
            serve_read(s, q);
            pthread_mutex_lock(&s->mu);
            q->next = s->answers;
            s->answers = q;
            uint64_t one = 1;
            (void)!write(s->efd, &one, sizeof one);
            continue;
        }
        int64_t now = sage__mono_ms();
        size_t work = store_pending(s);
        if (s->closing && (!work || now >= s->close_by))
            break;
        if (work && now >= s->retry_at) {
            int one_by_one = s->hard_tries >= HARD_TRIES;
            pthread_mutex_unlock(&s->mu);
            int rc = write_batch(s, one_by_one);
            pthread_mutex_lock(&s->mu);
            after_write(s, one_by_one && rc != SAGE_ETIMEDOUT ? 0 : rc);
            continue;
        }
        if (!work) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int64_t until = s->closing && s->close_by < s->retry_at ? s->close_by : s->retry_at;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (until - now) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
