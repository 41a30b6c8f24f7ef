/* jobmanager/dashboard.h - what the dashboard's files share: answers, a job's view and actions, its log tails.
 *
 * dashboard.c logs browsers in, guards them (session, CSRF) and routes; dashboard_api.c answers about one
 * job (its view, live or ended, and the actions pause, resume, stop, cancel); dashboard_logs.c reads the
 * tail of a task's log; dashboard_cluster.c shows the nodes and what SAGE holds on each. Every answer is
 * whole in the connection's bounded write buffer, then it closes. */
#ifndef SAGE_JOBMANAGER_DASHBOARD_H
#define SAGE_JOBMANAGER_DASHBOARD_H

#include "jobmanager/jm.h"

#define JM_DASH_LOG_MAX (64u << 10) /* most bytes of a task's log one answer carries */

/* The whole answer (status, Content-Type `type`, extra header lines each ending in CRLF or NULL), then close. */
void jm_dash_answer(jm_conn *c, int status, const char *type, const char *extra, const char *body, size_t len);
/* j as JSON (stolen; NULL: a 500). */
void jm_dash_json(jm_conn *c, int status, json_t *j);
/* {"error": "...", "code": code} (code: a SAGE_E* value, 0 for none). */
void jm_dash_error(jm_conn *c, int status, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The HTTP status of a SAGE_E* code from the JobManager: 404 not found, 409 wrong state, 400 bad input, else 500. */
int jm_dash_status_of(int code);

/* An ended job's records from the job store: fn(d, c, r, a, b) runs at once when memory holds what is needed
 * (no task rows asked: the job's row), else once the store's thread read them; the connection is parked
 * meanwhile (the loop goes on). When the store cannot take the read, the answer is a 503. */
typedef void (*jm_dash_stored_fn)(jm *d, jm_conn *c, const sage__store_read *r, int64_t a, int64_t b);
void jm_dash_stored(jm *d, jm_conn *c, int64_t id, int tasks, jm_dash_stored_fn fn, int64_t a, int64_t b);

/* GET /api/jobs/ID: a live job's status, or an ended job's end document ("ended": true). */
void jm_dash_job(jm *d, jm_conn *c, int64_t id);
/* POST /api/jobs/ID/ACTION (pause, resume, stop, cancel), already past the session and the CSRF guard. */
void jm_dash_action(jm *d, jm_conn *c, int64_t id, const char *action);
/* GET /api/cluster: the launcher's nodes, their resources and what SAGE holds on each (dashboard_cluster.c). */
void jm_dash_cluster(jm *d, jm_conn *c);
/* GET /api/jobs/ID/logs?task=T[&offset=N]: at most JM_DASH_LOG_MAX bytes of task T's log from offset N
 * (-1: its tail). */
void jm_dash_logs(jm *d, jm_conn *c, int64_t id, int64_t task, int64_t offset);

#endif
