/* jobmanager/dashboard_api.c - the dashboard's answers about one job: its view, live or ended, and its actions.
 *
 * A live job is answered from memory (the status view, as `sage job
 * status`). An ended job keeps its page: its end document (final state,
 * failure message, error code, and every task's row with its last
 * counters), read from the job store like the `status` request reads it:
 * the job's row from memory, its task rows by the store's thread while the
 * connection is parked, so the loop never waits on SQLite. Actions go
 * through jm_job_control, the function behind the client requests pause,
 * resume, stop and cancel, and so fail as they do (pausing a job that is
 * not running, anything on a job that already ended).
 *
 * The page may run on another machine than the JobManager, whose clock is
 * the one that counts: ages (of the last checkpoint, of the last failure)
 * are computed here, and every view carries the JobManager's wall clock
 * ("now_ms"). A user histogram, reported as raw buckets, gains its p50 and
 * p99 here (on a copy: the job's own metrics stay as its worker sent them).
 */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h" /* sage__hist_from_json */
#include "jobmanager/dashboard.h"
#include "util/err.h"
#include "util/time.h"

typedef struct dash_read {
    jm *d;
    jm_dash_stored_fn fn;
    int64_t a, b;
} dash_read;

static void stored_answer(sage__store_read *r, void *arg)
{
    dash_read *q = arg;
    jm_conn *c = jm_conn_resume(q->d, q);
    if (c)
        q->fn(q->d, c, r, q->a, q->b);
    free(q);
}

void jm_dash_stored(jm *d, jm_conn *c, int64_t id, int tasks, jm_dash_stored_fn fn, int64_t a, int64_t b)
{
    sage__store_read r = {.id = id};
    if (!tasks && (r.rc = sage__store_job_cached(d->store, id, &r.job)) != 1) {
        fn(d, c, &r, a, b);
        return;
    }
    dash_read *q = malloc(sizeof *q);
    if (q)
        *q = (dash_read){d, fn, a, b};
    int rc = q ? sage__store_read_async(d->store, id, tasks, stored_answer, q) : SAGE_ENOMEM;
    if (rc != 0) {
        free(q);
        jm_dash_error(c, 503, rc, "the job store cannot answer now (%s): try again", sage_strerror(rc));
        return;
    }
    c->deferred = q;
    c->parked = 1;
}

/* An answer from the store that is not the job: no such job, or the store failed. */
static void store_failed(jm_conn *c, const sage__store_read *r)
{
    if (r->rc == SAGE_ENOTFOUND)
        jm_dash_error(c, 404, SAGE_ENOTFOUND, "no job %lld", (long long)r->id);
    else
        jm_dash_error(c, 503, r->rc, "job %lld: the job store could not be read (%s)", (long long)r->id,
                      sage_strerror(r->rc));
}

/* p50 and p99 of every user histogram of metrics m (modified: a copy for a live task). */
static void hist_quantiles(json_t *m)
{
    json_t *o, *v;
    size_t i;
    const char *name;
    json_array_foreach(json_object_get(m, "operators"), i, o) json_object_foreach(json_object_get(o, "user"), name, v)
    {
        json_t *h = json_object_get(v, "hist");
        if (!json_is_object(h))
            continue;
        sage__hist hist;
        sage__hist_from_json(&hist, h);
        json_object_set_new(h, "p50", json_real(sage__hist_quantile(&hist, 0.5)));
        json_object_set_new(h, "p99", json_real(sage__hist_quantile(&hist, 0.99)));
        json_object_del(h, "buckets"); /* the page has no use for them (`sage job status --json` has them) */
        sage__hist_free(&hist);
    }
}

/* key_age_ms = now - key_ms (wall clock, at least 0) in o, when o has key_ms. */
static void age(json_t *o, const char *key_ms, const char *key_age, int64_t now)
{
    json_t *at = json_object_get(o, key_ms);
    if (json_is_integer(at))
        json_object_set_new(o, key_age,
                            json_integer(
                                now > json_integer_value(at) ? (json_int_t)(now - json_integer_value(at)) : 0));
}

/* What the page reads besides the status view: the JobManager's clock, ages, histogram quantiles. */
static void page_fields(json_t *st, int live)
{
    int64_t now = sage__wall_ms();
    json_object_set_new(st, "now_ms", json_integer((json_int_t)now));
    age(st, "last_failure_at_ms", "last_failure_age_ms", now);
    age(json_object_get(st, "checkpoints"), "last_at_ms", "last_age_ms", now);
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(st, "tasks"), i, t)
    {
        json_t *m = json_object_get(t, "metrics");
        if (!json_is_object(m))
            continue;
        if (live) { /* shared with the job (its worker's last report) */
            m = json_deep_copy(m);
            if (!m || json_object_set_new(t, "metrics", m) != 0)
                continue;
        }
        hist_quantiles(m);
    }
}

static void job_ended(jm *d, jm_conn *c, const sage__store_read *r, int64_t a, int64_t b)
{
    (void)a;
    (void)b;
    if (r->rc != 0) {
        store_failed(c, r);
        return;
    }
    json_t *end = jm_job_end_json(d, &r->job, r->tasks, r->ntasks);
    if (end) {
        json_object_set_new(end, "ended", json_true());
        json_object_set_new(end, "submitted_ms", json_integer((json_int_t)r->job.submitted_ms));
        json_object_set_new(end, "started_ms", json_integer((json_int_t)r->job.started_ms));
        json_object_set_new(end, "ended_ms", json_integer((json_int_t)r->job.ended_ms));
        page_fields(end, 0);
    }
    jm_dash_json(c, 200, end);
}

void jm_dash_job(jm *d, jm_conn *c, int64_t id)
{
    jm_job *j = jm_job_find(d, id);
    if (!j) {
        jm_dash_stored(d, c, id, 1, job_ended, 0, 0);
        return;
    }
    json_t *st = jm_job_status_json(d, j);
    if (st) {
        json_object_set_new(st, "ended", json_false());
        json_object_set_new(st, "submitted_ms", json_integer((json_int_t)j->submitted_ms));
        json_object_set_new(st, "started_ms", json_integer((json_int_t)j->started_ms));
        page_fields(st, 1);
    }
    jm_dash_json(c, 200, st);
}

/* ---- actions ---- */

static const char *const actions[] = {"pause", "resume", "stop", "cancel"};

/* An action on a job that is not live: as the client request answers it. */
static void action_ended(jm *d, jm_conn *c, const sage__store_read *r, int64_t a, int64_t b)
{
    (void)d;
    (void)a;
    (void)b;
    if (r->rc == 0)
        jm_dash_error(c, 409, SAGE_ESTATE, "job %lld already ended (%s)", (long long)r->id, r->job.state);
    else if (r->rc == SAGE_ENOTFOUND)
        jm_dash_error(c, 404, SAGE_ENOTFOUND, "no job %lld", (long long)r->id);
    else
        store_failed(c, r);
}

void jm_dash_action(jm *d, jm_conn *c, int64_t id, const char *action)
{
    int64_t which = 0;
    while (which < 3 && strcmp(actions[which], action) != 0)
        which++;
    if (!jm_job_find(d, id)) {
        jm_dash_stored(d, c, id, 0, action_ended, 0, 0);
        return;
    }
    jm_log(d, "dashboard: %s asks to %s job %lld", c->peer, action, (long long)id);
    char err[1024] = "";
    int rc = jm_job_control(d, id, actions[which], -1, err, sizeof err);
    if (rc != 0) {
        jm_dash_error(c, jm_dash_status_of(rc), rc, "%s", err);
        return;
    }
    jm_job *j = jm_job_find(d, id); /* a cancel may have ended it already */
    sage__job_row row;
    const char *state = j                                                 ? jm_job_state_name(j->state)
                        : sage__store_job_cached(d->store, id, &row) == 0 ? row.state
                                                                          : "ended";
    jm_dash_json(c, 200,
                 json_pack("{s:b,s:I,s:s,s:s}", "ok", 1, "job_id", (json_int_t)id, "action", action, "state", state));
}
