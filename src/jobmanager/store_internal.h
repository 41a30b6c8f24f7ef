/* jobmanager/store_internal.h - the job store's parts: the SQLite file (store.c), the rows in memory and the API
 * (store_mem.c), the writer thread (store_writer.c). Only those three include it.
 *
 * The file: one connection, used by one thread at a time (dbmu). Errors are codes: SAGE_ETIMEDOUT
 * when another connection holds the lock (SQLITE_BUSY, SQLITE_LOCKED: try again later), SAGE_ENOMEM,
 * SAGE_ENOTFOUND (no such row, or a task of a job that does not exist), else SAGE_EIO;
 * store_db_errmsg says SQLite's why. */
#ifndef SAGE_JOBMANAGER_STORE_INTERNAL_H
#define SAGE_JOBMANAGER_STORE_INTERNAL_H

#include <pthread.h>

#include "jobmanager/store.h"

typedef struct store_db store_db;

/* A job row with its texts whole (the rows handed to callers are cut to their fields). */
typedef struct store_job {
    int64_t id;
    char *name, *error, *executable; /* malloc'd */
    char state[16];
    int64_t submitted_ms, started_ms, ended_ms, seen_ms;
    int ntasks, error_code;
} store_job;

void store_job_free(store_job *j);
/* Into a caller's row, each text cut to its field at a UTF-8 character boundary. */
void store_job_row(const store_job *j, sage__job_row *r);
/* Copy n bytes of src into dst[cap], cut to fit at a UTF-8 character boundary, always NUL-terminated. */
void store_cut(char *dst, size_t cap, const char *src, size_t n);
/* A task row as reading it back from the file would give it (texts cut the same way). */
void store_task_normal(const sage__task_row *in, sage__task_row *out);
/* A state after which a job (a task) never changes again. */
int store_job_ended(const char *state);
int store_task_ended(const char *state);

/* Open the file (creating or upgrading its schema; busy_ms: how long to wait for another process's lock
 * meanwhile), then wait at most run_busy_ms for a lock from then on. NULL and err on failure. */
store_db *store_db_open(const char *path, int busy_ms, int run_busy_ms, char *err, size_t err_len);
void store_db_close(store_db *db);
const char *store_db_errmsg(store_db *db);

int store_db_begin(store_db *db); /* BEGIN IMMEDIATE */
int store_db_commit(store_db *db);
void store_db_rollback(store_db *db); /* if a transaction is open */

/* Insert or replace the whole row (its id given). */
int store_db_put_job(store_db *db, const store_job *j);
int store_db_put_task(store_db *db, const sage__task_row *t);
/* The job's task rows that are not in an end state become "killed". */
int store_db_kill_tasks(store_db *db, int64_t job_id);

int store_db_get_job(store_db *db, int64_t id, store_job *out); /* SAGE_ENOTFOUND if none */
/* Every task row of the job in task order, handed to fn; a non-zero return stops the walk. */
int store_db_each_task(store_db *db, int64_t job_id, int (*fn)(const sage__task_row *r, void *arg), void *arg);
/* The newest `newest` jobs and every job not in an end state, oldest first: fn takes each (and owns its
 * texts); a non-zero return stops. */
int store_db_load(store_db *db, size_t newest, int (*fn)(store_job *j, void *arg), void *arg);
/* The largest id ever handed out (AUTOINCREMENT's memory), 0 for none. */
int64_t store_db_max_id(store_db *db);

/* ---- rows in memory (store_mem.c) and the writer thread (store_writer.c) ---- */

#define MIRROR_KEEP 1000  /* the newest jobs kept in memory (the list shows as many) */
#define PENDING_MAX 20000 /* rows waiting to be written past which new jobs are refused */
#define BATCH_MAX 256     /* rows in one transaction */
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define HARD_TRIES 3 /* failures other than a lock before rows are written one by one */
#define CLOSE_WAIT_MS 10000
#define READS_MAX 1024
#define MESSAGES_MAX 64

typedef struct mjob {
    store_job j;
    uint64_t version, written; /* in the file when equal */
    int kill_tasks;            /* its unfinished task rows become "killed" (sage__store_fail_unfinished) */
    char *trouble;             /* a write about it that finally failed */
} mjob;

typedef struct mtask {
    sage__task_row row;
    uint64_t version;
} mtask;

typedef struct read_req {
    sage__store_read r;
    int tasks;
    sage__store_read_fn fn;
    void *arg;
    struct read_req *next;
} read_req;

typedef struct message {
    struct message *next;
    char text[];
} message;

struct sage__store {
    store_db *db;
    pthread_mutex_t mu, dbmu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, closing;
    int64_t close_by; /* sage__mono_ms */
    mjob *jobs;       /* by id, ascending */
    size_t njobs, capjobs;
    mtask *tasks; /* waiting to be written */
    size_t ntasks, captasks;
    uint64_t seq;   /* versions */
    int64_t max_id; /* the largest id handed out */
    read_req *reads, *answers;
    size_t nreads;
    message *msgs;
    size_t nmsgs, dropped_msgs;
    int efd;
    void (*log)(void *arg, const char *msg);
    void *log_arg;
    int64_t busy_since; /* the file is locked by another process since (sage__mono_ms; 0: it is not) */
    int64_t retry_at;   /* next write attempt after a failure */
    int backoff_ms, hard_tries;
    char hard_why[256];  /* the last failure that was not a lock */
    int64_t *unfinished; /* ids sage__store_fail_unfinished changed */
    size_t nunfinished;
};


/* Callers hold mu. */
int store_dirty(const mjob *m);
mjob *store_find(sage__store *s, int64_t id);
mtask *store_find_task(sage__store *s, int64_t job_id, int task);
size_t store_pending(const sage__store *s);
/* A message for the log, handed over by sage__store_dispatch. */
void store_say(sage__store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* store_writer.c: the thread (started by sage__store_open; it stops once closing and done). */
void *store_writer_main(void *arg);
/* Task rows of a job (the file's overlaid with those waiting), as a reader sees them. */
typedef struct store_tasks {
    sage__task_row *v;
    size_t n, cap;
} store_tasks;
/* Job id's row (job) and its task rows (tasks), either may be NULL: what the file holds overlaid with what
 * waits to be written. Caller holds dbmu. 0, SAGE_ENOTFOUND, or an error. */
int store_read_now(sage__store *s, int64_t id, sage__job_row *job, store_tasks *tasks);

#endif
