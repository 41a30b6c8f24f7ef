/* jobmanager/store.c - the job store's SQLite file: schema, upgrades, statements, rows in and out.
 *
 * Design.
 *
 * Schema (version 3, kept in PRAGMA user_version):
 *   jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, name, state, error,
 *        submitted_ms, started_ms, ended_ms, executable, ntasks, error_code,
 *        seen_ms)
 *   tasks(job_id REFERENCES jobs(id), task, op, instance, state, pid, host,
 *         cpus, gpus, memory_limit, peak_memory, records_in, records_out,
 *         metrics, PRIMARY KEY(job_id, task))
 * A file whose user_version is newer than ours is refused (before anything
 * in it is touched): an older daemon must not write rows it does not
 * understand. Version 0 means a new file; the tables are created and the
 * version set in one transaction. Versions 1 (without error_code) and 2
 * (without seen_ms, the last time a job was known alive) are brought to 3 in
 * place, in the same transaction. A file already at version 3 is opened
 * without any write, so a file another process holds locked can be opened.
 *
 * WAL: readers (the CLI or a status page opening the same file from another
 * process) never block the daemon's writes and vice versa, and a commit is
 * one append to the log. With synchronous=NORMAL a commit survives the
 * daemon crashing (the case store_mem.c's sage__store_fail_unfinished exists
 * for); a power loss can lose the last few commits but never corrupts the
 * file. While another process holds the write lock our reads go on; our
 * writes get SAGE_ETIMEDOUT after the connection's short busy wait and are
 * retried by the writer thread (store_mem.c).
 *
 * Ids are never reused: AUTOINCREMENT makes SQLite remember the largest id
 * ever handed out (in sqlite_sequence), also for rows inserted with their id,
 * as store_mem.c does (it hands ids out itself, from store_db_max_id).
 *
 * Every statement is prepared once at open (SQLITE_PREPARE_PERSISTENT) and
 * reset (bindings cleared) after each use. Text is bound with its explicit
 * length, stored in full, and cut to the row's fixed-size field when read
 * (at a UTF-8 character boundary, always NUL-terminated).
 */
#include "jobmanager/store_internal.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sage/error.h"

#define STORE_SCHEMA_VERSION 3
#define STORE_STR_(x) #x
#define STORE_STR(x) STORE_STR_(x)

/* States after which a job or task never changes again, as SQL lists. */
#define JOB_ENDED_SQL "('finished','stopped','failed','canceled')"
#define TASK_ENDED_SQL "('finished','failed','killed')"

#define JOB_COLS "id, name, state, error, submitted_ms, started_ms, ended_ms, executable, ntasks, error_code, seen_ms"
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
    " error_code INTEGER NOT NULL DEFAULT 0,"
    " seen_ms INTEGER NOT NULL DEFAULT 0);"
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

/* What each older version lacks (applied in order from the file's version). */
static const char *const upgrades[STORE_SCHEMA_VERSION] = {
    [1] = "ALTER TABLE jobs ADD COLUMN error_code INTEGER NOT NULL DEFAULT 0",
    [2] = "ALTER TABLE jobs ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0",
};

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_JOB_PUT,
    ST_JOB_GET,
    ST_TASK_PUT,
    ST_TASK_LIST,
    ST_KILL_TASKS,
    ST_LOAD,
    ST_MAX_ID,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_JOB_PUT] = "INSERT INTO jobs (" JOB_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                   " ON CONFLICT(id) DO UPDATE SET name = excluded.name, state = excluded.state,"
                   " error = excluded.error, submitted_ms = excluded.submitted_ms,"
                   " started_ms = excluded.started_ms, ended_ms = excluded.ended_ms,"
                   " executable = excluded.executable, ntasks = excluded.ntasks,"
                   " error_code = excluded.error_code, seen_ms = excluded.seen_ms",
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [ST_TASK_PUT] = "INSERT OR REPLACE INTO tasks (" TASK_COLS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [ST_TASK_LIST] = "SELECT " TASK_COLS " FROM tasks WHERE job_id = ?1 ORDER BY task",
    [ST_KILL_TASKS] = "UPDATE tasks SET state = 'killed' WHERE job_id = ?1 AND state NOT IN " TASK_ENDED_SQL,
    [ST_LOAD] = "SELECT " JOB_COLS " FROM jobs WHERE id >= ?1 OR state NOT IN " JOB_ENDED_SQL " ORDER BY id",
    [ST_MAX_ID] = "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0),"
                  " coalesce((SELECT max(id) FROM jobs), 0))",
};

struct store_db {
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
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return SAGE_ETIMEDOUT;
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

void store_cut(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        /* Do not end inside a multi-byte character: drop the continuation
         * bytes (10xxxxxx) and the lead byte they belong to. */
        if (((unsigned char)src[n] & 0xc0) == 0x80) {
            while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
                n--;
        }
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Column col into dst[cap], cut to fit; NULL reads as "". */
static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    store_cut(dst, cap, t ? t : "", t ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

#define COPY_FIELD(dst, st, col) copy_text((dst), sizeof(dst), (st), (col))
#define CUT_FIELD(dst, src) store_cut((dst), sizeof(dst), (src), strnlen((src), sizeof(src)))

static char *dup_text(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, t, n);
        p[n] = '\0';
    }
    return p;
}

/* Steps a statement that returns no rows, then resets it. */
static int exec_stmt(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    done(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

static int read_job(sqlite3_stmt *st, store_job *j)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    j->name = dup_text(st, 1);
    COPY_FIELD(j->state, st, 2);
    j->error = dup_text(st, 3);
    j->submitted_ms = sqlite3_column_int64(st, 4);
    j->started_ms = sqlite3_column_int64(st, 5);
    j->ended_ms = sqlite3_column_int64(st, 6);
    j->executable = dup_text(st, 7);
    j->ntasks = sqlite3_column_int(st, 8);
    j->error_code = sqlite3_column_int(st, 9);
    j->seen_ms = sqlite3_column_int64(st, 10);
    if (j->name && j->error && j->executable)
        return 0;
    store_job_free(j);
    return SAGE_ENOMEM;
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

void store_job_free(store_job *j)
{
    if (!j)
        return;
    free(j->name);
    free(j->error);
    free(j->executable);
    j->name = j->error = j->executable = NULL;
}

void store_job_row(const store_job *j, sage__job_row *r)
{
    memset(r, 0, sizeof *r);
    r->id = j->id;
    store_cut(r->name, sizeof r->name, j->name, strlen(j->name));
    store_cut(r->state, sizeof r->state, j->state, strlen(j->state));
    store_cut(r->error, sizeof r->error, j->error, strlen(j->error));
    r->submitted_ms = j->submitted_ms;
    r->started_ms = j->started_ms;
    r->ended_ms = j->ended_ms;
    store_cut(r->executable, sizeof r->executable, j->executable, strlen(j->executable));
    r->ntasks = j->ntasks;
    r->error_code = j->error_code;
    r->seen_ms = j->seen_ms;
}

void store_task_normal(const sage__task_row *in, sage__task_row *out)
{
    *out = *in;
    CUT_FIELD(out->op, in->op);
    CUT_FIELD(out->state, in->state);
    CUT_FIELD(out->host, in->host);
    CUT_FIELD(out->cpus, in->cpus);
    CUT_FIELD(out->gpus, in->gpus);
    CUT_FIELD(out->metrics, in->metrics);
}

int store_job_ended(const char *state)
{
    return strcmp(state, "finished") == 0 || strcmp(state, "stopped") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "canceled") == 0;
}

int store_task_ended(const char *state)
{
    return strcmp(state, "finished") == 0 || strcmp(state, "failed") == 0 || strcmp(state, "killed") == 0;
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

static int too_new(int version, const char *path, char *err, size_t err_len)
{
    if (version <= STORE_SCHEMA_VERSION)
        return 0;
    if (err && err_len)
        snprintf(err, err_len,
                 "store: %s: schema version %d is newer than this JobManager supports (%d); "
                 "it was written by a newer SAGE - upgrade, or use another database file",
                 path, version, STORE_SCHEMA_VERSION);
    return 1;
}

/* Create or upgrade the schema in one transaction, re-reading the version inside it in case another process
 * got there first. 0, or -1 with err. */
static int make_schema(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    int version = 0;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        db_err(err, err_len, "cannot lock", path, db);
        return -1;
    }
    if (read_user_version(db, &version) != SQLITE_OK) {
        db_err(err, err_len, "cannot read", path, db);
        goto fail;
    }
    if (too_new(version, path, err, err_len))
        goto fail;
    if (version == 0 && sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
        db_err(err, err_len, "cannot create the schema in", path, db);
        goto fail;
    }
    for (int v = version ? version : STORE_SCHEMA_VERSION; v < STORE_SCHEMA_VERSION; v++)
        if (sqlite3_exec(db, upgrades[v], NULL, NULL, NULL) != SQLITE_OK) {
            char what[80];
            snprintf(what, sizeof what, "cannot upgrade the schema (version %d to %d) in", version,
                     STORE_SCHEMA_VERSION);
            db_err(err, err_len, what, path, db);
            goto fail;
        }
    if (sqlite3_exec(db, "PRAGMA user_version=" STORE_STR(STORE_SCHEMA_VERSION), NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        db_err(err, err_len, "cannot commit to", path, db);
        goto fail;
    }
    return 0;
fail:
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

store_db *store_db_open(const char *path, int busy_ms, int run_busy_ms, char *err, size_t err_len)
{
    store_db *s = calloc(1, sizeof *s);
    if (!s) {
        if (err && err_len)
            snprintf(err, err_len, "store: %s: out of memory", path);
        return NULL;
    }
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                             NULL);
    if (rc != SQLITE_OK) {
        db_err(err, err_len, "cannot open", path, s->db);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, busy_ms);

    /* Refuse a newer schema before changing anything in the file (even the
     * journal mode). This read also catches "file is not a database". */
    int version = 0;
    if (read_user_version(s->db, &version) != SQLITE_OK) {
        db_err(err, err_len, "cannot read", path, s->db);
        goto fail;
    }
    if (too_new(version, path, err, err_len))
        goto fail;
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
    if (version != STORE_SCHEMA_VERSION && make_schema(s->db, path, err, err_len) != 0)
        goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
            db_err(err, err_len, "unexpected schema in", path, s->db);
            goto fail;
        }
    }
    sqlite3_busy_timeout(s->db, run_busy_ms);
    return s;

fail:
    store_db_close(s);
    return NULL;
}

void store_db_close(store_db *s)
{
    if (!s)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db); /* NULL is a no-op; the last connection checkpoints and removes the WAL */
    free(s);
}

const char *store_db_errmsg(store_db *s) { return sqlite3_errmsg(s->db); }

int store_db_begin(store_db *s) { return exec_stmt(s->st[ST_BEGIN]); }
int store_db_commit(store_db *s) { return exec_stmt(s->st[ST_COMMIT]); }

void store_db_rollback(store_db *s)
{
    if (!sqlite3_get_autocommit(s->db))
        exec_stmt(s->st[ST_ROLLBACK]);
}

/* ---- rows ---- */

int store_db_put_job(store_db *s, const store_job *j)
{
    sqlite3_stmt *st = s->st[ST_JOB_PUT];
    int rc = map_rc(sqlite3_bind_int64(st, 1, j->id));
    if (rc == 0)
        rc = bind_str(st, 2, j->name);
    if (rc == 0)
        rc = bind_str(st, 3, j->state);
    if (rc == 0)
        rc = bind_str(st, 4, j->error);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 5, j->submitted_ms));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 6, j->started_ms));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 7, j->ended_ms));
    if (rc == 0)
        rc = bind_str(st, 8, j->executable);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 9, j->ntasks));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 10, j->error_code));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int64(st, 11, j->seen_ms));
    if (rc != 0) {
        done(st);
        return rc;
    }
    return exec_stmt(st);
}

int store_db_put_task(store_db *s, const sage__task_row *t)
{
    sqlite3_stmt *st = s->st[ST_TASK_PUT];
    int rc = map_rc(sqlite3_bind_int64(st, 1, t->job_id));
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 2, t->task));
    if (rc == 0)
        rc = bind_field(st, 3, t->op);
    if (rc == 0)
        rc = map_rc(sqlite3_bind_int(st, 4, t->instance));
    if (rc == 0)
        rc = bind_field(st, 5, t->state);
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

int store_db_kill_tasks(store_db *s, int64_t job_id)
{
    sqlite3_stmt *st = s->st[ST_KILL_TASKS];
    int rc = map_rc(sqlite3_bind_int64(st, 1, job_id));
    if (rc != 0) {
        done(st);
        return rc;
    }
    return exec_stmt(st);
}

int store_db_get_job(store_db *s, int64_t id, store_job *out)
{
    sqlite3_stmt *st = s->st[ST_JOB_GET];
    int rc = map_rc(sqlite3_bind_int64(st, 1, id));
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = read_job(st, out);
        else
            rc = step == SQLITE_DONE ? SAGE_ENOTFOUND : map_rc(step);
    }
    done(st);
    return rc;
}

int store_db_each_task(store_db *s, int64_t job_id, int (*fn)(const sage__task_row *r, void *arg), void *arg)
{
    sage__task_row *row = malloc(sizeof *row);
    if (!row)
        return SAGE_ENOMEM;
    sqlite3_stmt *st = s->st[ST_TASK_LIST];
    int rc = map_rc(sqlite3_bind_int64(st, 1, job_id));
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

int store_db_load(store_db *s, size_t newest, int (*fn)(store_job *j, void *arg), void *arg)
{
    /* the id of the newest-th newest job: everything from it on, and whatever has not ended */
    sqlite3_stmt *q = NULL;
    int64_t from = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM jobs ORDER BY id DESC LIMIT 1 OFFSET ?1", -1, &q, NULL) != SQLITE_OK)
        return map_rc(sqlite3_errcode(s->db));
    sqlite3_bind_int64(q, 1, newest ? (sqlite3_int64)newest - 1 : 0);
    int step = sqlite3_step(q);
    if (step == SQLITE_ROW)
        from = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return map_rc(step);
    sqlite3_stmt *st = s->st[ST_LOAD];
    int rc = map_rc(sqlite3_bind_int64(st, 1, from));
    while (rc == 0) {
        step = sqlite3_step(st);
        if (step == SQLITE_DONE)
            break;
        if (step != SQLITE_ROW) {
            rc = map_rc(step);
            break;
        }
        store_job j;
        if ((rc = read_job(st, &j)) == 0)
            rc = fn(&j, arg);
    }
    done(st);
    return rc;
}

int64_t store_db_max_id(store_db *s)
{
    sqlite3_stmt *st = s->st[ST_MAX_ID];
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    done(st);
    return id;
}
