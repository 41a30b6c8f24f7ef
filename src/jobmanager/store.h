/* jobmanager/store.h - the JobManager's job records in SQLite: jobs, their tasks, final metrics. */
#ifndef SAGE_JOBMANAGER_STORE_H
#define SAGE_JOBMANAGER_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sage__store sage__store;

typedef struct sage__job_row {
    int64_t id;
    char name[128];
    char state[16];                             /* created running paused finished stopped failed canceled */
    char error[1024];                           /* failure reason, "" if none */
    int64_t submitted_ms, started_ms, ended_ms; /* unix ms, 0 if not yet */
    char executable[1024];
    int ntasks;
    int error_code; /* a failed job: the code its root cause reported (0: none) */
} sage__job_row;

typedef struct sage__task_row {
    int64_t job_id;
    int task;     /* index in the job */
    char op[128]; /* head operator of the chain */
    int instance;
    char state[16]; /* starting running finished failed killed */
    int pid;
    char host[64];
    char cpus[256];       /* "0-3" */
    char gpus[64];        /* "0,1" */
    int64_t memory_limit; /* bytes, 0 = none */
    int64_t peak_memory;  /* bytes */
    int64_t records_in, records_out;
    char metrics[8192]; /* JSON: the worker's last metrics report */
} sage__task_row;

/* Open (creating if needed) the database at path; WAL mode, busy timeout.
 * Returns NULL and writes err on failure. Not thread-safe: one thread. */
sage__store *sage__store_open(const char *path, char *err, size_t err_len);
void sage__store_close(sage__store *s); /* NULL is fine */

/* Mark every job that is neither ended nor created as failed with `reason`
 * (used at daemon start: those jobs were running when it died). Returns how
 * many were changed, or a negative code. */
int sage__store_fail_unfinished(sage__store *s, const char *reason);

/* Insert a job; *id receives its new id (1, 2, ...; never reused). */
int sage__store_job_insert(sage__store *s, const char *name, const char *executable, int ntasks, int64_t now_ms,
                           int64_t *id);
/* Update state (and error when non-NULL; started/ended set when the state
 * is running / an ended state and they are still 0). */
int sage__store_job_state(sage__store *s, int64_t id, const char *state, const char *error, int64_t now_ms);
/* A failed job's error code (what the failing worker reported, SAGE_E*). */
int sage__store_job_error_code(sage__store *s, int64_t id, int code);
int sage__store_job_get(sage__store *s, int64_t id, sage__job_row *out); /* SAGE_ENOTFOUND if none */
/* All jobs, newest first, at most max; *n receives the count. */
int sage__store_job_list(sage__store *s, sage__job_row *rows, size_t max, size_t *n);

/* Tasks: insert or replace the whole row; list a job's tasks by task index. */
int sage__store_task_put(sage__store *s, const sage__task_row *t);
int sage__store_task_list(sage__store *s, int64_t job_id, sage__task_row *rows, size_t max, size_t *n);
/* Every task row of a job, however many, in task order: fn(row, arg) for each (row is valid during the
 * call only); a non-zero return from fn stops the walk and is returned. */
int sage__store_task_each(sage__store *s, int64_t job_id, int (*fn)(const sage__task_row *r, void *arg), void *arg);

#endif
