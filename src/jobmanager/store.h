/* jobmanager/store.h - the JobManager's job records in SQLite: jobs, their tasks, final metrics; written by a thread.
 *
 * Two kinds of callers. The daemon's loop must never wait on SQLite: it uses
 * the writes (they change rows kept in memory and return at once; a thread
 * writes them to the file), the reads marked "never waits" (memory only), and
 * sage__store_read_async for the rest. Everyone else (tests, tools) may also
 * use the reads that wait for the file. */
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
    int error_code;  /* a failed job: the code its root cause reported (0: none) */
    int64_t seen_ms; /* the last time it was known alive (unix ms, 0: never said) */
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

/* Open (creating if needed) the database at path (WAL mode), read the newest
 * jobs and every unfinished one into memory, and start the writer thread.
 * Returns NULL and writes err on failure. */
sage__store *sage__store_open(const char *path, char *err, size_t err_len);
/* Write what waits (for up to 10 s while another process holds the file
 * locked), stop the thread, close. What could not be written is said to the
 * log function (sage__store_attach), if any. NULL is fine. */
void sage__store_close(sage__store *s);

/* Mark every job that is neither ended nor created as failed with `reason`
 * (used at daemon start: those jobs were running when it died); its end is
 * the last time it was known alive (sage__store_job_seen), or now if never
 * said, and its unfinished task rows become "killed". Returns how many were
 * changed, or a negative code. Their ids: sage__store_unfinished. */
int sage__store_fail_unfinished(sage__store *s, const char *reason);
/* The ids the last sage__store_fail_unfinished changed (valid until close). */
const int64_t *sage__store_unfinished(const sage__store *s, size_t *n);

/* ---- writes: in memory at once, in the file shortly after (never wait) ---- */

/* Insert a job; *id receives its new id (1, 2, ...; never reused).
 * SAGE_EIO when too many rows wait to be written already (the file has been
 * locked or failing for a while). */
int sage__store_job_insert(sage__store *s, const char *name, const char *executable, int ntasks, int64_t now_ms,
                           int64_t *id);
/* Update state (and error when non-NULL; started/ended set when the state
 * is running / an ended state and they are still 0). */
int sage__store_job_state(sage__store *s, int64_t id, const char *state, const char *error, int64_t now_ms);
/* A failed job's error code (what the failing worker reported, SAGE_E*). */
int sage__store_job_error_code(sage__store *s, int64_t id, int code);
/* The last time the job was known alive (unix ms): its end if the daemon dies before it ends. */
int sage__store_job_seen(sage__store *s, int64_t id, int64_t seen_ms);
/* Tasks: insert or replace the whole row. */
int sage__store_task_put(sage__store *s, const sage__task_row *t);

/* ---- reads that never wait ---- */

/* From memory: 0, SAGE_ENOTFOUND (there is no such job), or 1 (not in
 * memory: an old job, ask with sage__store_read_async). */
int sage__store_job_cached(sage__store *s, int64_t id, sage__job_row *out);
/* The newest jobs, newest first, at most max (at most the newest 1000 are
 * kept in memory); *n receives the count. */
int sage__store_job_list(sage__store *s, sage__job_row *rows, size_t max, size_t *n);
/* A note about the job's records for people, when there is one (1, else 0):
 * its rows could not be written (and are lost), or they wait because the
 * file has been locked for a while. */
int sage__store_warning(sage__store *s, int64_t id, char *out, size_t len);

/* ---- reads answered later, on the caller's thread ---- */

typedef struct sage__store_read {
    int64_t id;
    int rc; /* 0, SAGE_ENOTFOUND, or why the file could not be read */
    sage__job_row job;
    sage__task_row *tasks; /* every task row, in task order, when asked for (else NULL) */
    size_t ntasks;
} sage__store_read;
typedef void (*sage__store_read_fn)(sage__store_read *r, void *arg);
/* Read job id's row (and its task rows if tasks) on the writer thread: 0, and
 * fn(r, arg) runs from a later sage__store_dispatch (r is freed after it
 * returns); or an error, and fn never runs. */
int sage__store_read_async(sage__store *s, int64_t id, int tasks, sage__store_read_fn fn, void *arg);
/* A descriptor that is readable while answers or messages wait. */
int sage__store_fd(const sage__store *s);
/* Where the thread's messages go (why rows wait, what could not be written),
 * from sage__store_dispatch and from sage__store_close. */
void sage__store_attach(sage__store *s, void (*log)(void *arg, const char *msg), void *arg);
/* Run the callbacks of the answers that are in, and hand over the messages. */
void sage__store_dispatch(sage__store *s);

/* ---- reads that may wait for the file (not for the daemon's loop) ---- */

int sage__store_job_get(sage__store *s, int64_t id, sage__job_row *out); /* SAGE_ENOTFOUND if none */
/* List a job's tasks by task index. */
int sage__store_task_list(sage__store *s, int64_t job_id, sage__task_row *rows, size_t max, size_t *n);
/* Every task row of a job, however many, in task order: fn(row, arg) for each (row is valid during the
 * call only); a non-zero return from fn stops the walk and is returned. */
int sage__store_task_each(sage__store *s, int64_t job_id, int (*fn)(const sage__task_row *r, void *arg), void *arg);

#endif
