/* remote/remote.h - environments that run through a JobManager: the submitting client and the worker processes. */
#ifndef SAGE_REMOTE_REMOTE_H
#define SAGE_REMOTE_REMOTE_H

#include <jansson.h>
#include <limits.h>

#include "core.h"
#include "runtime/runtime.h"

struct sage__remote {
    char host[256];
    int port;
    char token_file[1024];
    int64_t job_id;
    sage_client *waiter; /* connection on which "wait" was sent */
    int ended;
    int rc;
};

/* client.c */
int sage__remote_init(sage_env *env, const char *host, int port, const char *token_file);
int sage__client_submit(sage_env *env);
int sage__client_wait(sage_env *env, int timeout_ms);
int sage__client_control(sage_env *env, const char *action);
/* worker.c: never returns */
_Noreturn void sage__worker_run(sage_env *env);

/* metrics_json.c: a task's metrics as JSON (worker reports) and back (client) */
/* snapshot: built on the task's own thread (user metrics, processing time);
 * metrics_json: the report, from atomics plus the latest snapshot. */
json_t *sage__metrics_snapshot(sage__task *t);
json_t *sage__metrics_json(sage__task *t, json_t *snap, double interval_s, uint64_t *last_count);
void sage__metrics_import(sage__task *t, json_t *m);

#endif
