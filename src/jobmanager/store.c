/* jobmanager/store.c - the JobManager's job records in SQLite: jobs, their tasks, final metrics. */
#include "jobmanager/store.h"
#include "util/time.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sage/error.h"

/* Design.
 *
 * Schema (version 2, kept in PRAGMA user_version):
 *   jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, name, state, error,
 *        submitted_ms, started_ms, ended_ms, executable, ntasks, error_code)
 *   tasks(job_id REFERENCES jobs(id), task, op, instance, state, pid, host,
 *         cpus, gpus, memory_limit, peak_memory, records_in, records_out,
 *         metrics, PRIMARY KEY(job_id, task))
 * A file whose user_version is newer than ours is refused (before anything
 * in it is touched): an older daemon must not write rows it does not
 * understand. Version 0 means a new file; the tables are created and the
 * version set in one transaction. Version 1 (without error_code) is brought
 * to version 2 in place, in the same transaction.
 *
 * WAL: readers (the CLI or a status page opening the same file from another
 * process) never block the daemon's writes and vice versa, and a commit is
 * one append to the log. With synchronous=NORMAL a commit survives the
 * daemon crashing (the case sage__store_fail_unfinished exists for); a power
 * loss can lose the last few commits but never corrupts the file. The busy
 * timeout (5 s) covers the short moments another process holds a lock.
 *
 * Ids are never reused: AUTOINCREMENT makes SQLite remember the largest id
 * ever handed out (in sqlite_sequence) and always go above it, even after
 * the newest rows are deleted; a plain rowid would hand out max+1 again.
 * Job ids end up in logs, cgroup names and users' scripts, so a stale id
 * must never name a different job. "Newest first" is ORDER BY id DESC for
 * the same reason: ids only grow, wall clocks may step back.
 *
 * Every statement is prepared once at open (SQLITE_PREPARE_PERSISTENT) and
 * reset (bindings cleared) after each use. Text is bound with its explicit
 * length, stored in full, and cut to the row's fixed-size field when read
 * (at a UTF-8 character boundary, always NUL-terminated). State strings must
 * fit their field (< 16 bytes) or the call fails with SAGE_EINVAL: a
 * truncated state would be a different state.
 *
 * Errors: sage__store_open writes SQLite's message into err; the other calls
 * return codes only (SQLITE_NOMEM -> SAGE_ENOMEM, a task for a job that does
 * not exist -> SAGE_ENOTFOUND, anything else -> SAGE_EIO).
 *
 * Not thread-safe: one connection and one set of statements, for the single
 * thread that owns the store (the connection is opened with NOMUTEX). Other
 * processes may open the same file. */

#define STORE_SCHEMA_VERSION 2
#define STORE_BUSY_TIMEOUT_MS 5000
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

/* States after which a job or task never changes again, as SQL lists. */
#define JOB_ENDED_SQL "('finished','stopped','failed','canceled')"
#define JOB_NOT_LIVE_SQL "('created','finished','stopped','failed','canceled')"
#define TASK_ENDED_SQL "('finished','failed','killed')"

#define JOB_COLS "id, name, state, error, submitted_ms, started_ms, ended_ms, executable, ntasks, error_code"
#define TASK_COLS                                                                                                      \
    "job_id, task, op, instance, state, pid, host, cpus, gpus, memory_limit, peak_memory, records_in, records_out, "   \
    "metrics"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " error TEXT NOT NULL DEFAULT '',"
    " submitted_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL DEFAULT 0,"
    " ended_ms INTEGER NOT NULL DEFAULT 0,"
    " executable TEXT NOT NULL,"
    " ntasks INTEGER NOT NULL,"
    " error_code INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS tasks ("
    " job_id INTEGER NOT NULL REFERENCES jobs(id),"
    " task INTEGER NOT NULL,"
    " op TEXT NOT NULL,"
    " instance INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " pid INTEGER NOT NULL,"
    " host TEXT NOT NULL,"
    " cpus TEXT NOT NULL,"
    " gpus TEXT NOT NULL,"
    " memory_limit INTEGER NOT NULL,"
    " peak_memory INTEGER NOT NULL,"
    " records_in INTEGER NOT NULL,"
    " records_out INTEGER NOT NULL,"
    " metrics TEXT NOT NULL,"
    " PRIMARY KEY (job_id, task));";

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_JOB_INSERT,
    ST_JOB_STATE,
    ST_JOB_GET,
    ST_JOB_LIST,
    ST_TASK_PUT,
    ST_TASK_LIST,
    ST_FAIL_TASKS,
    ST_FAIL_JOBS,
    ST_JOB_CODE,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_JOB_INSERT] = "INSERT INTO jobs (name, state, error, submitted_ms, started_ms, ended_ms, executable, ntasks)"
                      " VALUES (?1, 'created', '', ?2, 0, 0, ?3, ?4)",
    [ST_JOB_STATE] = "UPDATE jobs SET state = ?1, error = COALESCE(?2, error),"
                     " started_ms = CASE WHEN ?1 = 'running' AND started_ms = 0 THEN ?3 ELSE started_ms END,"
                     " ended_ms = CASE WHEN ?1 IN " JOB_ENDED_SQL " AND ended_ms = 0 THEN ?3 ELSE ended_ms END"
                     " WHERE id = ?4",
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [ST_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?1",
    [ST_TASK_PUT] = "INSERT OR REPLACE INTO tasks (" TASK_COLS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [ST_TASK_LIST] = "SELECT " TASK_COLS " FROM tasks WHERE job_id = ?1 ORDER BY task LIMIT ?2",
    [ST_FAIL_TASKS] = "UPDATE tasks SET state = 'killed' WHERE state NOT IN " TASK_ENDED_SQL
                      " AND job_id IN (SELECT id FROM jobs WHERE state NOT IN " JOB_NOT_LIVE_SQL ")",
    [ST_FAIL_JOBS] = "UPDATE jobs SET state = 'failed', error = ?1, ended_ms = ?2 WHERE state NOT IN " JOB_NOT_LIVE_SQL,
    [ST_JOB_CODE] = "UPDATE jobs SET error_code = ?1 WHERE id = ?2",
};

struct sage__store {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
};

/* ---- helpers ---- */

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return 0;
    case SQLITE_NOMEM: return SAGE_ENOMEM;
    default: break;
    }
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return SAGE_ENOTFOUND;
    return SAGE_EIO;
}

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binds n bytes of p (not necessarily NUL-terminated). The text must stay
 * valid until the statement is reset: every caller steps before returning. */
static int bind_text(sqlite3_stmt *st, int idx, const char *p, size_t n)
{
    if (n > INT_MAX)
        return SAGE_ETOOBIG;
    return map_rc(sqlite3_bind_text(st, idx, p, (int)n, SQLITE_STATIC));
}

static int bind_str(sqlite3_stmt *st, int idx, const char *p) { return bind_text(st, idx, p, strlen(p)); }

/* A fixed-size row field: its text ends at the first NUL or at the end of
 * the array, whichever comes first. */
#define bind_field(st, idx, field) bind_text((st), (idx), (field), strnlen((field), sizeof(field)))

/* Copies column col into dst[cap], cut to fit at a UTF-8 character boundary,
 * always NUL-terminated; NULL reads as "". */
static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap) {
        n = cap - 1;
        /* Do not end inside a multi-byte character: drop the continuation
         * bytes (10xxxxxx) and the lead byte they belong to. */
        if ((t[n] & 0xc0) == 0x80) {
            while (n > 0 && (t[n] & 0xc0) == 0x80)
                n--;
        }
    }
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
}

#define COPY_FIELD(dst, st, col) copy_text((dst), sizeof(dst), (st), (col))

/* A state: non-empty and short enough to fit the rows' state fields. */
static int valid_state(const char *state)
{
    size_t n = state ? strlen(state) : 0;
    return n > 0 && n < sizeof(((sage__job_row *)0)->state) && n < sizeof(((sage__task_row *)0)->state);
}

/* Steps a statement that returns no rows, then resets it. */
static int exec_stmt(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    done(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

static sqlite3_int64 limit_of(size_t max)
{
    return max > (size_t)INT64_MAX ? (sqlite3_int64)INT64_MAX : (sqlite3_int64)max;
}

static void read_job(sqlite3_stmt *st, sage__job_row *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    COPY_FIELD(r->name, st, 1);
    COPY_FIELD(r->state, st, 2);
    COPY_FIELD(r->error, st, 3);
    r->submitted_ms = sqlite3_column_int64(st, 4);
    r->started_ms = sqlite3_column_int64(st, 5);
    r->ended_ms = sqlite3_column_int64(st, 6);
    COPY_FIELD(r->executable, st, 7);
    r->ntasks = sqlite3_column_int(st, 8);
    r->error_code = sqlite3_column_int(st, 9);
}

static void read_task(sqlite3_stmt *st, sage__task_row *r)
{
    memset(r, 0, sizeof *r);
    r->job_id = sqlite3_column_int64(st, 0);
    r->task = sqlite3_column_int(st, 1);
    COPY_FIELD(r->op, st, 2);
    r->instance = sqlite3_column_int(st, 3);
    COPY_FIELD(r->state, st, 4);
    r->pid = sqlite3_column_int(st, 5);
    COPY_FIELD(r->host, st, 6);
    COPY_FIELD(r->cpus, st, 7);
    COPY_FIELD(r->gpus, st, 8);
    r->memory_limit = sqlite3_column_int64(st, 9);
    r->peak_memory = sqlite3_column_int64(st, 10);
    r->records_in = sqlite3_column_int64(st, 11);
    r->records_out = sqlite3_column_int64(st, 12);
    COPY_FIELD(r->metrics, st, 13);
}

/* ---- open / close ---- */

/* SQLite's message for db, with the OS error when there is one. */
static void db_err(char *err, size_t err_len, const char *what, const char *path, sqlite3 *db)
{
    if (!err || !err_len)
        return;
    const char *msg = db ? sqlite3_errmsg(db) : "out of memory";
    int sys = db ? sqlite3_system_errno(db) : 0;
    if (sys)
        snprintf(err, err_len, "store: %s %s: %s (%s)", what, path, msg, strerror(sys));
    else
        snprintf(err, err_len, "store: %s %s: %s", what, path, msg);
}

static int read_user_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *version = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st); /* leaves the step's error in sqlite3_errmsg */
    return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
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
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        db_err(err, err_len, "cannot open", path, s->db);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

    /* Refuse a newer schema before changing anything in the file (even the
     * journal mode). This read also catches "file is not a database". */
    int version = 0;
    if (read_user_version(s->db, &version) != SQLITE_OK) {
        db_err(err, err_len, "cannot read", path, s->db);
        goto fail;
    }
    if (version > STORE_SCHEMA_VERSION) {
        if (err && err_len)
            snprintf(err, err_len,
                     "store: %s: schema version %d is newer than this JobManager supports (%d); "
                     "it was written by a newer SAGE - upgrade, or use another database file",
                     path, version, STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (version < 0) {
        if (err && err_len)
            snprintf(err, err_len, "store: %s: invalid schema version %d", path, version);
        goto fail;
    }

    /* journal_mode answers with the mode in effect: "wal", or "memory" for
     * an in-memory database, which cannot use WAL (accepted). */
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", NULL, NULL,
                     NULL) != SQLITE_OK) {
        db_err(err, err_len, "cannot configure", path, s->db);
        goto fail;
    }

    /* Create the schema in one transaction, re-reading the version inside it
     * in case another process got there first. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_err(err, err_len, "cannot lock", path, s->db);
        goto fail;
    }
    if (read_user_version(s->db, &version) != SQLITE_OK) {
        db_err(err, err_len, "cannot read", path, s->db);
        goto fail_rollback;
    }
    if (version > STORE_SCHEMA_VERSION) {
        if (err && err_len)
            snprintf(err, err_len, "store: %s: schema version %d is newer than this JobManager supports (%d)", path,
                     version, STORE_SCHEMA_VERSION);
        goto fail_rollback;
    }
    if (version == 0) {
        if (sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(s->db, "PRAGMA user_version=" STORE_STR(STORE_SCHEMA_VERSION), NULL, NULL, NULL) !=
                SQLITE_OK) {
            db_err(err, err_len, "cannot create the schema in", path, s->db);
            goto fail_rollback;
        }
    } else if (version == 1) { /* version 2 added the failed job's error code */
        if (sqlite3_exec(s->db, "ALTER TABLE jobs ADD COLUMN error_code INTEGER NOT NULL DEFAULT 0", NULL, NULL,
                         NULL) != SQLITE_OK ||
            sqlite3_exec(s->db, "PRAGMA user_version=" STORE_STR(STORE_SCHEMA_VERSION), NULL, NULL, NULL) !=
                SQLITE_OK) {
            db_err(err, err_len, "cannot upgrade the schema (version 1 to 2) in", path, s->db);
            goto fail_rollback;
        }
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_err(err, err_len, "cannot commit to", path, s->db);
        goto fail_rollback;
    }

    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            db_err(err, err_len, "unexpected schema in", path, s->db);
            goto fail;
        }
    }
    return s;

fail_rollback:
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
fail:
    sage__store_close(s);
    return NULL;
}

void sage__store_close(sage__store *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db); /* NULL is a no-op; the last connection checkpoints and removes the WAL */
    free(s);
}

/* ---- jobs ---- */

int sage__store_fail_unfinished(sage__store *s, const char *reason)
{
    if (!s || !reason)
        return SAGE_EINVAL;
    int rc = exec_stmt(s->st[ST_BEGIN]);
    if (rc < 0)
        return rc;

    /* Tasks first: they are chosen by their job's state, which the second
     * statement changes. */
    rc = exec_stmt(s->st[ST_FAIL_TASKS]);
    int changed = 0;
    if (rc == 0) {
        sqlite3_stmt *st = s->st[ST_FAIL_JOBS];
        rc = bind_str(st, 1, reason);
        if (rc == 0)
            rc = map_rc(sqlite3_bind_int64(st, 2, sage__wall_ms()));
        if (rc == 0) {
            int step = sqlite3_step(st);
            if (step == SQLITE_DONE)
                changed = sqlite3_changes(s->db);
            else
                rc = map_rc(step == SQLITE_ROW ? SQLITE_ERROR : step);
        }
        done(st);
    }
    if (rc == 0)
        rc = exec_stmt(s->st[ST_COMMIT]);
    if (rc < 0) {
        if (!sqlite3_get_autocommit(s->db))
            exec_stmt(s->st[ST_ROLLBACK]);
        return rc;
    }
    return changed;
}

int sage__store_job_insert(sage__store *s, const char *name, const char *executable, int ntasks, int64_t now_ms,
                           int64_t *id)
{
    if (!s || !name || !executable || ntasks < 0 || !id)
        return SAGE_EINVAL;
    sqlite3_stmt *st = s->st[ST_JOB_INSERT];
    int rc = bind_str(st, 1, name);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 2, now_ms));
    if (rc == 0)
        rc = bind_str(st, 3, executable);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 4, ntasks));
    if (rc == 0) {
        rc = exec_stmt(st); /* resets */
        if (rc == 0)
            *id = sqlite3_last_insert_rowid(s->db);
        return rc;
    }
    done(st);
    return rc;
}

int sage__store_job_error_code(sage__store *s, int64_t id, int code)
{
    if (!s)
        return SAGE_EINVAL;
    sqlite3_stmt *st = s->st[ST_JOB_CODE];
    int rc = map_rc(sqlite3_bind_int(st, 1, code));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 2, id));
    if (rc != 0) {
        done(st);
        return rc;
    }
    rc = exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return SAGE_ENOTFOUND;
    return rc;
}

int sage__store_job_state(sage__store *s, int64_t id, const char *state, const char *error, int64_t now_ms)
{
    if (!s || !valid_state(state))
        return SAGE_EINVAL;
    sqlite3_stmt *st = s->st[ST_JOB_STATE];
    int rc = bind_str(st, 1, state);
    if (rc == 0 && error)
        rc = bind_str(st, 2, error); /* unbound ?2 is NULL: keep the error */
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 3, now_ms));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 4, id));
    if (rc != 0) {
        done(st);
        return rc;
    }
    rc = exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        return SAGE_ENOTFOUND;
    return rc;
}

int sage__store_job_get(sage__store *s, int64_t id, sage__job_row *out)
{
    if (!s || !out)
        return SAGE_EINVAL;
    sqlite3_stmt *st = s->st[ST_JOB_GET];
    int rc = map_rc(sqlite3_bind_int64(st, 1, id));
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            read_job(st, out);
        else
            rc = step == SQLITE_DONE ? SAGE_ENOTFOUND : map_rc(step);
    }
    done(st);
    return rc;
}

int sage__store_job_list(sage__store *s, sage__job_row *rows, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!s || !n || (max && !rows))
        return SAGE_EINVAL;
    if (max == 0)
        return 0;
    sqlite3_stmt *st = s->st[ST_JOB_LIST];
    int rc = map_rc(sqlite3_bind_int64(st, 1, limit_of(max)));
    while (rc == 0 && *n < max) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            rc = map_rc(step);
            break;
        }
        read_job(st, &rows[(*n)++]);
    }
    done(st);
    return rc;
}

/* ---- tasks ---- */

int sage__store_task_put(sage__store *s, const sage__task_row *t)
{
    if (!s || !t || t->task < 0)
        return SAGE_EINVAL;
    size_t state_len = strnlen(t->state, sizeof t->state);
    if (state_len == 0 || state_len == sizeof t->state)
        return SAGE_EINVAL;
    sqlite3_stmt *st = s->st[ST_TASK_PUT];
    int rc = map_rc(sqlite3_bind_int64(st, 1, t->job_id));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 2, t->task));
    if (rc == 0)
        rc = bind_field(st, 3, t->op);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 4, t->instance));
    if (rc == 0)
        rc = bind_text(st, 5, t->state, state_len);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 6, t->pid));
    if (rc == 0)
        rc = bind_field(st, 7, t->host);
    if (rc == 0)
        rc = bind_field(st, 8, t->cpus);
    if (rc == 0)
        rc = bind_field(st, 9, t->gpus);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 10, t->memory_limit));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 11, t->peak_memory));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 12, t->records_in));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 13, t->records_out));
    if (rc == 0)
        rc = bind_field(st, 14, t->metrics);
    if (rc != 0) {
        done(st);
        return rc;
    }
    return exec_stmt(st); /* a job_id with no job: foreign key -> SAGE_ENOTFOUND */
}

/* Every task row of a job in task order, at most limit (< 0: all), each handed to fn. */
static int task_rows(sage__store *s, int64_t job_id, sqlite3_int64 limit, int (*fn)(const sage__task_row *r, void *arg),
                     void *arg)
{
    sage__task_row *row = malloc(sizeof *row);
    if (!row)
        return SAGE_ENOMEM;
    sqlite3_stmt *st = s->st[ST_TASK_LIST];
    int rc = map_rc(sqlite3_bind_int64(st, 1, job_id));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 2, limit));
    while (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            rc = map_rc(step);
            break;
        }
        read_task(st, row);
        rc = fn(row, arg);
    }
    done(st);
    free(row);
    return rc;
}

typedef struct task_copy {
    sage__task_row *rows;
    size_t *n;
} task_copy;

static int copy_task(const sage__task_row *r, void *arg)
{
    task_copy *c = arg;
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
    task_copy c = {rows, n};
    return task_rows(s, job_id, limit_of(max), copy_task, &c);
}

int sage__store_task_each(sage__store *s, int64_t job_id, int (*fn)(const sage__task_row *r, void *arg), void *arg)
{
    if (!s || !fn)
        return SAGE_EINVAL;
    return task_rows(s, job_id, -1, fn, arg);
}
