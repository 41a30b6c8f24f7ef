/* tests/unit/test_store.c - the JobManager's SQLite job store: jobs, states, tasks, restart, ids, truncation, errors. */
#include "check.h"

#include <dirent.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobmanager/store.h"
#include "sage/error.h"

static char tmpdir[512];
static int dbseq;

/* A fresh database path in the test's temporary directory. */
static void db_path(char *out, size_t cap) { snprintf(out, cap, "%s/jobs%d.db", tmpdir, ++dbseq); }

static sage__store *open_ok(const char *path)
{
    char err[512] = "";
    sage__store *s = sage__store_open(path, err, sizeof err);
    if (!s)
        fprintf(stderr, "  open %s: %s\n", path, err);
    CHECK(s != NULL);
    CHECK_STR(err, "");
    return s;
}

/* Runs one statement on the file directly, bypassing the store. */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* Reads one integer or text value from the file directly. */
static void raw_query(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sage__task_row make_task(int64_t job, int task, const char *state)
{
    sage__task_row t;
    memset(&t, 0, sizeof t);
    t.job_id = job;
    t.task = task;
    snprintf(t.op, sizeof t.op, "map#%d", task);
    t.instance = task % 2;
    snprintf(t.state, sizeof t.state, "%s", state);
    t.pid = 1000 + task;
    snprintf(t.host, sizeof t.host, "node%d", task);
    snprintf(t.cpus, sizeof t.cpus, "%d-%d", task * 4, task * 4 + 3);
    snprintf(t.gpus, sizeof t.gpus, "%s", task ? "0,1" : "");
    t.memory_limit = (int64_t)1 << 33;
    t.peak_memory = 123456789 + task;
    t.records_in = INT64_C(5000000000) + task;
    t.records_out = 42 + task;
    snprintf(t.metrics, sizeof t.metrics, "{\"task\":%d,\"lat_p99_us\":17.5}", task);
    return t;
}

/* ---- cases ---- */

/* A version 1 file (before jobs.error_code) is upgraded in place; its jobs keep everything. */
static void test_upgrade_from_1(void)
{
    char path[600], v[64];
    db_path(path, sizeof path);
    CHECK_INT(raw_exec(path, "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,"
                             " state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', submitted_ms INTEGER NOT NULL,"
                             " started_ms INTEGER NOT NULL DEFAULT 0, ended_ms INTEGER NOT NULL DEFAULT 0,"
                             " executable TEXT NOT NULL, ntasks INTEGER NOT NULL);"
                             "CREATE TABLE tasks (job_id INTEGER NOT NULL REFERENCES jobs(id), task INTEGER NOT NULL,"
                             " op TEXT NOT NULL, instance INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER NOT NULL,"
                             " host TEXT NOT NULL, cpus TEXT NOT NULL, gpus TEXT NOT NULL,"
                             " memory_limit INTEGER NOT NULL, peak_memory INTEGER NOT NULL,"
                             " records_in INTEGER NOT NULL, records_out INTEGER NOT NULL, metrics TEXT NOT NULL,"
                             " PRIMARY KEY (job_id, task));"
                             "INSERT INTO jobs (name, state, error, submitted_ms, executable, ntasks)"
                             " VALUES ('old', 'failed', 'it broke', 5, '/bin/old', 1);"
                             "PRAGMA user_version = 1;"),
              SQLITE_OK);
    sage__store *s = open_ok(path);
    raw_query(path, "PRAGMA user_version", v, sizeof v);
    CHECK_STR(v, "3");
    sage__job_row row;
    CHECK_INT(sage__store_job_get(s, 1, &row), 0);
    CHECK_STR(row.name, "old");
    CHECK_STR(row.error, "it broke");
    CHECK_INT(row.error_code, 0);
    CHECK_INT(sage__store_job_error_code(s, 1, SAGE_ETOOBIG), 0);
    CHECK_INT(sage__store_job_get(s, 1, &row), 0);
    CHECK_INT(row.error_code, SAGE_ETOOBIG);
    CHECK_INT(sage__store_job_error_code(s, 99, SAGE_EIO), SAGE_ENOTFOUND);
    sage__store_close(s);
}

static void test_open_schema(void)
{
    char path[600], v[64];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    raw_query(path, "PRAGMA user_version", v, sizeof v);
    CHECK_STR(v, "3"); /* version 2: jobs.error_code; 3: jobs.seen_ms */
    raw_query(path, "PRAGMA journal_mode", v, sizeof v);
    CHECK_STR(v, "wal");
    sage__store_close(s);
    /* Reopening an existing file keeps it. */
    s = open_ok(path);
    sage__store_close(s);
    sage__store_close(NULL);
}

static void test_insert_get(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t id = 0;
    CHECK_INT(sage__store_job_insert(s, "wordcount", "/opt/jobs/wc", 4, 1000, &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(sage__store_job_insert(s, "etl", "/opt/jobs/etl", 2, 2000, &id), 0);
    CHECK_INT(id, 2);
    CHECK_INT(sage__store_job_insert(s, "", "", 0, 3000, &id), 0);
    CHECK_INT(id, 3);

    sage__job_row r;
    memset(&r, 0x5a, sizeof r);
    CHECK_INT(sage__store_job_get(s, 2, &r), 0);
    CHECK_INT(r.id, 2);
    CHECK_STR(r.name, "etl");
    CHECK_STR(r.state, "created");
    CHECK_STR(r.error, "");
    CHECK_INT(r.submitted_ms, 2000);
    CHECK_INT(r.started_ms, 0);
    CHECK_INT(r.ended_ms, 0);
    CHECK_STR(r.executable, "/opt/jobs/etl");
    CHECK_INT(r.ntasks, 2);

    CHECK_INT(sage__store_job_get(s, 3, &r), 0);
    CHECK_STR(r.name, "");
    CHECK_STR(r.executable, "");

    CHECK_INT(sage__store_job_get(s, 4, &r), SAGE_ENOTFOUND);
    CHECK_INT(sage__store_job_get(s, 0, &r), SAGE_ENOTFOUND);
    CHECK_INT(sage__store_job_get(s, -7, &r), SAGE_ENOTFOUND);

    /* Bad arguments. */
    CHECK_INT(sage__store_job_insert(NULL, "a", "b", 1, 0, &id), SAGE_EINVAL);
    CHECK_INT(sage__store_job_insert(s, NULL, "b", 1, 0, &id), SAGE_EINVAL);
    CHECK_INT(sage__store_job_insert(s, "a", NULL, 1, 0, &id), SAGE_EINVAL);
    CHECK_INT(sage__store_job_insert(s, "a", "b", -1, 0, &id), SAGE_EINVAL);
    CHECK_INT(sage__store_job_insert(s, "a", "b", 1, 0, NULL), SAGE_EINVAL);
    CHECK_INT(sage__store_job_get(s, 1, NULL), SAGE_EINVAL);
    CHECK_INT(sage__store_job_get(NULL, 1, &r), SAGE_EINVAL);
    /* None of those inserted anything. */
    size_t n = 0;
    sage__job_row rows[8];
    CHECK_INT(sage__store_job_list(s, rows, 8, &n), 0);
    CHECK_INT(n, 3);
    sage__store_close(s);
}

static void test_states(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t a = 0, b = 0;
    CHECK_INT(sage__store_job_insert(s, "a", "/bin/a", 1, 100, &a), 0);
    CHECK_INT(sage__store_job_insert(s, "b", "/bin/b", 1, 100, &b), 0);
    sage__job_row r;

    CHECK_INT(sage__store_job_state(s, a, "running", NULL, 200), 0);
    CHECK_INT(sage__store_job_get(s, a, &r), 0);
    CHECK_STR(r.state, "running");
    CHECK_INT(r.started_ms, 200);
    CHECK_INT(r.ended_ms, 0);

    /* Pause and resume: started_ms stays the first start. */
    CHECK_INT(sage__store_job_state(s, a, "paused", NULL, 300), 0);
    CHECK_INT(sage__store_job_state(s, a, "running", NULL, 400), 0);
    CHECK_INT(sage__store_job_get(s, a, &r), 0);
    CHECK_STR(r.state, "running");
    CHECK_INT(r.started_ms, 200);
    CHECK_INT(r.ended_ms, 0);

    CHECK_INT(sage__store_job_state(s, a, "finished", NULL, 500), 0);
    CHECK_INT(sage__store_job_get(s, a, &r), 0);
    CHECK_STR(r.state, "finished");
    CHECK_STR(r.error, "");
    CHECK_INT(r.started_ms, 200);
    CHECK_INT(r.ended_ms, 500);

    /* Failed with a reason; a later update without one keeps it, and
     * ended_ms keeps its first value. */
    CHECK_INT(sage__store_job_state(s, b, "failed", "task 3 exited with status 1", 600), 0);
    CHECK_INT(sage__store_job_state(s, b, "failed", NULL, 700), 0);
    CHECK_INT(sage__store_job_get(s, b, &r), 0);
    CHECK_STR(r.state, "failed");
    CHECK_STR(r.error, "task 3 exited with status 1");
    CHECK_INT(r.started_ms, 0);
    CHECK_INT(r.ended_ms, 600);
    /* An explicit "" clears it. */
    CHECK_INT(sage__store_job_state(s, b, "canceled", "", 800), 0);
    CHECK_INT(sage__store_job_get(s, b, &r), 0);
    CHECK_STR(r.state, "canceled");
    CHECK_STR(r.error, "");
    CHECK_INT(r.ended_ms, 600);

    /* Each ended state sets ended_ms. */
    static const char *const ended[] = {"finished", "stopped", "failed", "canceled"};
    for (int i = 0; i < 4; i++) {
        int64_t id = 0;
        CHECK_INT(sage__store_job_insert(s, ended[i], "/bin/x", 1, 100, &id), 0);
        CHECK_INT(sage__store_job_state(s, id, ended[i], NULL, 900 + i), 0);
        CHECK_INT(sage__store_job_get(s, id, &r), 0);
        CHECK_STR(r.state, ended[i]);
        CHECK_INT(r.started_ms, 0);
        CHECK_INT(r.ended_ms, 900 + i);
    }

    CHECK_INT(sage__store_job_state(s, 999, "running", NULL, 1), SAGE_ENOTFOUND);
    CHECK_INT(sage__store_job_state(s, a, NULL, NULL, 1), SAGE_EINVAL);
    CHECK_INT(sage__store_job_state(s, a, "", NULL, 1), SAGE_EINVAL);
    CHECK_INT(sage__store_job_state(s, a, "a-state-too-long-for-its-field", NULL, 1), SAGE_EINVAL);
    CHECK_INT(sage__store_job_state(s, a, "0123456789abcde", NULL, 1), 0); /* 15 bytes: fits */
    CHECK_INT(sage__store_job_get(s, a, &r), 0);
    CHECK_STR(r.state, "0123456789abcde");
    CHECK_INT(sage__store_job_state(NULL, a, "running", NULL, 1), SAGE_EINVAL);
    sage__store_close(s);
}

static void test_list(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    sage__job_row rows[5];
    size_t n = 77;
    CHECK_INT(sage__store_job_list(s, rows, 5, &n), 0);
    CHECK_INT(n, 0);

    /* Submission times out of order: the list follows ids, not clocks. */
    int64_t id;
    CHECK_INT(sage__store_job_insert(s, "one", "/x", 1, 3000, &id), 0);
    CHECK_INT(sage__store_job_insert(s, "two", "/x", 1, 1000, &id), 0);
    CHECK_INT(sage__store_job_insert(s, "three", "/x", 1, 2000, &id), 0);

    CHECK_INT(sage__store_job_list(s, rows, 5, &n), 0);
    CHECK_INT(n, 3);
    CHECK_INT(rows[0].id, 3);
    CHECK_STR(rows[0].name, "three");
    CHECK_INT(rows[1].id, 2);
    CHECK_STR(rows[1].name, "two");
    CHECK_INT(rows[2].id, 1);
    CHECK_STR(rows[2].name, "one");
    CHECK_INT(rows[2].submitted_ms, 3000);

    CHECK_INT(sage__store_job_list(s, rows, 2, &n), 0);
    CHECK_INT(n, 2);
    CHECK_INT(rows[0].id, 3);
    CHECK_INT(rows[1].id, 2);

    CHECK_INT(sage__store_job_list(s, rows, 1, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(rows[0].id, 3);

    CHECK_INT(sage__store_job_list(s, NULL, 0, &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(sage__store_job_list(s, NULL, 3, &n), SAGE_EINVAL);
    CHECK_INT(sage__store_job_list(s, rows, 3, NULL), SAGE_EINVAL);
    sage__store_close(s);
}

static void check_task_eq(const sage__task_row *got, const sage__task_row *want)
{
    CHECK_INT(got->job_id, want->job_id);
    CHECK_INT(got->task, want->task);
    CHECK_STR(got->op, want->op);
    CHECK_INT(got->instance, want->instance);
    CHECK_STR(got->state, want->state);
    CHECK_INT(got->pid, want->pid);
    CHECK_STR(got->host, want->host);
    CHECK_STR(got->cpus, want->cpus);
    CHECK_STR(got->gpus, want->gpus);
    CHECK_INT(got->memory_limit, want->memory_limit);
    CHECK_INT(got->peak_memory, want->peak_memory);
    CHECK_INT(got->records_in, want->records_in);
    CHECK_INT(got->records_out, want->records_out);
    CHECK_STR(got->metrics, want->metrics);
}

static sage__task_row trows[8];

static void test_tasks(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t j1, j2;
    CHECK_INT(sage__store_job_insert(s, "j1", "/x", 3, 1, &j1), 0);
    CHECK_INT(sage__store_job_insert(s, "j2", "/x", 1, 1, &j2), 0);

    sage__task_row t2 = make_task(j1, 2, "starting"), t0 = make_task(j1, 0, "running"),
                   t1 = make_task(j1, 1, "running"), other = make_task(j2, 0, "finished");
    CHECK_INT(sage__store_task_put(s, &t2), 0);
    CHECK_INT(sage__store_task_put(s, &t0), 0);
    CHECK_INT(sage__store_task_put(s, &other), 0);
    CHECK_INT(sage__store_task_put(s, &t1), 0);

    size_t n = 0;
    CHECK_INT(sage__store_task_list(s, j1, trows, 8, &n), 0);
    CHECK_INT(n, 3);
    check_task_eq(&trows[0], &t0);
    check_task_eq(&trows[1], &t1);
    check_task_eq(&trows[2], &t2);

    /* Replace task 1 entirely. */
    sage__task_row t1b = make_task(j1, 1, "finished");
    t1b.pid = 0;
    snprintf(t1b.host, sizeof t1b.host, "elsewhere");
    t1b.records_out = 999;
    snprintf(t1b.metrics, sizeof t1b.metrics, "{\"final\":true}");
    CHECK_INT(sage__store_task_put(s, &t1b), 0);
    CHECK_INT(sage__store_task_list(s, j1, trows, 8, &n), 0);
    CHECK_INT(n, 3);
    check_task_eq(&trows[0], &t0);
    check_task_eq(&trows[1], &t1b);
    check_task_eq(&trows[2], &t2);

    CHECK_INT(sage__store_task_list(s, j1, trows, 2, &n), 0);
    CHECK_INT(n, 2);
    CHECK_INT(trows[0].task, 0);
    CHECK_INT(trows[1].task, 1);

    CHECK_INT(sage__store_task_list(s, j2, trows, 8, &n), 0);
    CHECK_INT(n, 1);
    check_task_eq(&trows[0], &other);

    CHECK_INT(sage__store_task_list(s, 12345, trows, 8, &n), 0);
    CHECK_INT(n, 0);

    /* A task of a job that does not exist. */
    sage__task_row orphan = make_task(12345, 0, "running");
    CHECK_INT(sage__store_task_put(s, &orphan), SAGE_ENOTFOUND);

    /* Bad rows: negative index, empty or unterminated state. */
    sage__task_row bad = make_task(j1, -1, "running");
    CHECK_INT(sage__store_task_put(s, &bad), SAGE_EINVAL);
    bad = make_task(j1, 5, "");
    CHECK_INT(sage__store_task_put(s, &bad), SAGE_EINVAL);
    bad = make_task(j1, 5, "x");
    memset(bad.state, 'r', sizeof bad.state);
    CHECK_INT(sage__store_task_put(s, &bad), SAGE_EINVAL);
    CHECK_INT(sage__store_task_put(s, NULL), SAGE_EINVAL);
    CHECK_INT(sage__store_task_list(s, j1, NULL, 8, &n), SAGE_EINVAL);

    /* Fixed-size text fields filled to the last byte (no NUL) are stored
     * up to the end of the field, and read back cut to fit with a NUL. */
    sage__task_row full = make_task(j2, 1, "running");
    memset(full.host, 'h', sizeof full.host);
    memset(full.metrics, 'm', sizeof full.metrics);
    CHECK_INT(sage__store_task_put(s, &full), 0);
    CHECK_INT(sage__store_task_list(s, j2, trows, 8, &n), 0);
    CHECK_INT(n, 2);
    CHECK_INT(strlen(trows[1].host), sizeof trows[1].host - 1);
    CHECK_INT(strlen(trows[1].metrics), sizeof trows[1].metrics - 1);
    CHECK_STR(trows[1].state, "running");
    CHECK_STR(trows[1].cpus, "4-7");
    sage__store_close(s);
}

static void test_restart(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t run = 0, fin = 0, paused = 0;
    CHECK_INT(sage__store_job_insert(s, "streaming", "/x", 3, 100, &run), 0);
    CHECK_INT(sage__store_job_insert(s, "batch", "/x", 1, 200, &fin), 0);
    CHECK_INT(sage__store_job_insert(s, "held", "/x", 1, 300, &paused), 0);
    CHECK_INT(run, 1);
    CHECK_INT(fin, 2);
    CHECK_INT(paused, 3);
    CHECK_INT(sage__store_job_state(s, run, "running", NULL, 110), 0);
    CHECK_INT(sage__store_job_state(s, fin, "running", NULL, 210), 0);
    CHECK_INT(sage__store_job_state(s, fin, "finished", NULL, 250), 0);
    CHECK_INT(sage__store_job_state(s, paused, "running", NULL, 310), 0);
    CHECK_INT(sage__store_job_state(s, paused, "paused", NULL, 320), 0);
    sage__task_row r0 = make_task(run, 0, "running"), r1 = make_task(run, 1, "finished"),
                   r2 = make_task(run, 2, "starting"), f0 = make_task(fin, 0, "finished"),
                   p0 = make_task(paused, 0, "running");
    CHECK_INT(sage__store_task_put(s, &r0), 0);
    CHECK_INT(sage__store_task_put(s, &r1), 0);
    CHECK_INT(sage__store_task_put(s, &r2), 0);
    CHECK_INT(sage__store_task_put(s, &f0), 0);
    CHECK_INT(sage__store_task_put(s, &p0), 0);
    sage__store_close(s); /* the daemon "dies" */

    s = open_ok(path);
    int64_t before = now_ms();
    CHECK_INT(sage__store_fail_unfinished(s, "jobmanager restarted"), 2);
    int64_t after = now_ms();

    sage__job_row rows[8];
    size_t n = 0;
    CHECK_INT(sage__store_job_list(s, rows, 8, &n), 0);
    CHECK_INT(n, 3);
    /* rows[0] = paused (3), rows[1] = finished (2), rows[2] = running (1) */
    CHECK_INT(rows[0].id, paused);
    CHECK_STR(rows[0].state, "failed");
    CHECK_STR(rows[0].error, "jobmanager restarted");
    CHECK_INT(rows[0].started_ms, 310);
    CHECK(rows[0].ended_ms >= before && rows[0].ended_ms <= after);

    CHECK_INT(rows[1].id, fin);
    CHECK_STR(rows[1].state, "finished");
    CHECK_STR(rows[1].error, "");
    CHECK_INT(rows[1].started_ms, 210);
    CHECK_INT(rows[1].ended_ms, 250);

    CHECK_INT(rows[2].id, run);
    CHECK_STR(rows[2].state, "failed");
    CHECK_STR(rows[2].error, "jobmanager restarted");
    CHECK_INT(rows[2].submitted_ms, 100);
    CHECK_INT(rows[2].started_ms, 110);
    CHECK(rows[2].ended_ms >= before && rows[2].ended_ms <= after);

    CHECK_INT(sage__store_task_list(s, run, trows, 8, &n), 0);
    CHECK_INT(n, 3);
    CHECK_STR(trows[0].state, "killed");
    CHECK_STR(trows[1].state, "finished");
    CHECK_STR(trows[2].state, "killed");
    CHECK_INT(trows[0].records_in, r0.records_in); /* only the state changed */
    CHECK_STR(trows[0].metrics, r0.metrics);
    CHECK_INT(sage__store_task_list(s, fin, trows, 8, &n), 0);
    CHECK_INT(n, 1);
    CHECK_STR(trows[0].state, "finished");
    CHECK_INT(sage__store_task_list(s, paused, trows, 8, &n), 0);
    CHECK_INT(n, 1);
    CHECK_STR(trows[0].state, "killed");

    /* Ids go on after a reopen; a created job is left alone; a second pass
     * changes nothing. */
    int64_t id = 0;
    CHECK_INT(sage__store_job_insert(s, "after-restart", "/x", 1, 400, &id), 0);
    CHECK_INT(id, 4);
    CHECK_INT(sage__store_fail_unfinished(s, "again"), 0);
    sage__job_row r;
    CHECK_INT(sage__store_job_get(s, 4, &r), 0);
    CHECK_STR(r.state, "created");
    CHECK_INT(r.ended_ms, 0);
    CHECK_INT(sage__store_job_get(s, run, &r), 0);
    CHECK_STR(r.error, "jobmanager restarted");
    CHECK_INT(sage__store_fail_unfinished(s, NULL), SAGE_EINVAL);
    CHECK_INT(sage__store_fail_unfinished(NULL, "x"), SAGE_EINVAL);
    sage__store_close(s);
}

/* AUTOINCREMENT: deleting the newest job (which the store never does, but
 * an operator with the sqlite3 shell might) must not free its id. */
static void test_ids_never_reused(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t id = 0;
    for (int i = 0; i < 3; i++)
        CHECK_INT(sage__store_job_insert(s, "j", "/x", 1, 1, &id), 0);
    CHECK_INT(id, 3);
    sage__store_close(s);

    CHECK_INT(raw_exec(path, "DELETE FROM jobs WHERE id >= 2"), SQLITE_OK);
    s = open_ok(path);
    CHECK_INT(sage__store_job_insert(s, "j", "/x", 1, 1, &id), 0);
    CHECK_INT(id, 4);
    sage__job_row rows[8];
    size_t n = 0;
    CHECK_INT(sage__store_job_list(s, rows, 8, &n), 0);
    CHECK_INT(n, 2);
    CHECK_INT(rows[0].id, 4);
    CHECK_INT(rows[1].id, 1);
    sage__store_close(s);
}

static int valid_utf8_prefix(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    while (*u) {
        int len = *u < 0x80 ? 1 : (*u & 0xe0) == 0xc0 ? 2 : (*u & 0xf0) == 0xe0 ? 3 : (*u & 0xf8) == 0xf0 ? 4 : 0;
        if (!len)
            return 0;
        for (int i = 1; i < len; i++)
            if ((u[i] & 0xc0) != 0x80)
                return 0;
        u += len;
    }
    return 1;
}

/* The rows are inside a struct with guards on both sides: a write past a
 * field would show in the next field or the guard (and under valgrind). */
static struct {
    char before[64];
    sage__job_row row;
    char after[64];
} guarded;

static void test_truncation(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);

    static char longname[4000], longexe[20000], longerr[50000], utf8[301];
    memset(longname, 'n', sizeof longname - 1);
    memset(longexe, 'e', sizeof longexe - 1);
    memset(longerr, 'r', sizeof longerr - 1);
    for (int i = 0; i < 100; i++) /* "é" x 100 = 200 bytes, then "€" x 33 = 99 bytes */
        memcpy(utf8 + 2 * i, "\xc3\xa9", 2);
    for (int i = 0; i < 33; i++)
        memcpy(utf8 + 200 + 3 * i, "\xe2\x82\xac", 3);

    int64_t id = 0, uid = 0;
    CHECK_INT(sage__store_job_insert(s, longname, longexe, 1, 1, &id), 0);
    CHECK_INT(sage__store_job_state(s, id, "failed", longerr, 2), 0);
    CHECK_INT(sage__store_job_insert(s, utf8, utf8, 1, 1, &uid), 0);

    memset(guarded.before, 'G', sizeof guarded.before);
    memset(guarded.after, 'G', sizeof guarded.after);
    CHECK_INT(sage__store_job_get(s, id, &guarded.row), 0);
    CHECK_INT(strlen(guarded.row.name), sizeof guarded.row.name - 1);
    CHECK_INT(strlen(guarded.row.executable), sizeof guarded.row.executable - 1);
    CHECK_INT(strlen(guarded.row.error), sizeof guarded.row.error - 1);
    CHECK_INT(strspn(guarded.row.name, "n"), sizeof guarded.row.name - 1);
    CHECK_STR(guarded.row.state, "failed");
    CHECK_INT(guarded.row.ntasks, 1);
    CHECK_INT(guarded.row.ended_ms, 2);
    for (size_t i = 0; i < sizeof guarded.after; i++) {
        CHECK(guarded.before[i] == 'G');
        CHECK(guarded.after[i] == 'G');
    }

    /* Cut at a character boundary: 127 bytes would split an "é". */
    CHECK_INT(sage__store_job_get(s, uid, &guarded.row), 0);
    CHECK_INT(strlen(guarded.row.name), 126);
    CHECK(valid_utf8_prefix(guarded.row.name));
    CHECK(strncmp(guarded.row.name, utf8, 126) == 0);
    CHECK_STR(guarded.row.executable, utf8); /* fits whole */

    /* The full text is kept in the database: only the copy is cut. */
    char q[256], got[64];
    snprintf(q, sizeof q, "SELECT length(CAST(error AS BLOB)) FROM jobs WHERE id = %lld", (long long)id);
    sage__store_close(s);
    raw_query(path, q, got, sizeof got);
    CHECK_STR(got, "49999");

    /* Text written by someone else, longer than any field: 3-byte "€"s in
     * the state and the task's fields. */
    int64_t tj = 0;
    s = open_ok(path);
    CHECK_INT(sage__store_job_insert(s, "t", "/x", 1, 1, &tj), 0);
    sage__task_row t = make_task(tj, 0, "running");
    CHECK_INT(sage__store_task_put(s, &t), 0);
    sage__store_close(s);
    CHECK_INT(raw_exec(path,
                       "UPDATE tasks SET state = printf('%.100c', 'S'), host = replace(printf('%.500c', 'x'), 'x', "
                       "char(8364)), metrics = printf('%.20000c', '{'), gpus = ''"),
              SQLITE_OK);
    s = open_ok(path);
    size_t n = 0;
    CHECK_INT(sage__store_task_list(s, tj, trows, 8, &n), 0);
    CHECK_INT(n, 1);
    CHECK_INT(strlen(trows[0].state), sizeof trows[0].state - 1);
    CHECK_INT(strlen(trows[0].host), 63); /* 21 x 3 bytes */
    CHECK(valid_utf8_prefix(trows[0].host));
    CHECK_INT(strlen(trows[0].metrics), sizeof trows[0].metrics - 1);
    CHECK_STR(trows[0].gpus, "");
    CHECK_STR(trows[0].op, "map#0");
    sage__store_close(s);
}

static void test_open_errors(void)
{
    char path[600], err[512];

    snprintf(path, sizeof path, "%s/no/such/dir/jobs.db", tmpdir);
    snprintf(err, sizeof err, "unchanged");
    CHECK(sage__store_open(path, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "store: cannot open");
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, "unable to open database file");
    fprintf(stderr, "  (message: %s)\n", err);

    /* A short buffer is cut, not overrun; no buffer at all is fine. */
    char small[12];
    memset(small, 'Z', sizeof small);
    CHECK(sage__store_open(path, small, 8) == NULL);
    CHECK_INT(strlen(small), 7);
    CHECK(small[8] == 'Z');
    CHECK(sage__store_open(path, NULL, 0) == NULL);
    CHECK(sage__store_open(NULL, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "no database path");
    CHECK(sage__store_open("", err, sizeof err) == NULL);

    /* A schema from the future is refused, and the file left as it was. */
    db_path(path, sizeof path);
    CHECK_INT(raw_exec(path, "CREATE TABLE jobs(x); PRAGMA user_version = 99;"), SQLITE_OK);
    err[0] = '\0';
    CHECK(sage__store_open(path, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, "schema version 99 is newer than this JobManager supports (3)");
    fprintf(stderr, "  (message: %s)\n", err);
    char v[64];
    raw_query(path, "PRAGMA journal_mode", v, sizeof v);
    CHECK_STR(v, "delete");
    raw_query(path, "PRAGMA user_version", v, sizeof v);
    CHECK_STR(v, "99");

    /* Not a database at all. */
    db_path(path, sizeof path);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 200; i++)
            fputs("this is not a database file. ", f);
        fclose(f);
    }
    err[0] = '\0';
    CHECK(sage__store_open(path, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, path);
    CHECK_CONTAINS(err, "not a database");

    /* A directory where the file should be. */
    err[0] = '\0';
    CHECK(sage__store_open(tmpdir, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, tmpdir);
    CHECK(err[0] != '\0');
}

/* ---- temporary directory ---- */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Every task of a job, however many (the views of ended jobs once stopped at 1024). */
typedef struct each_seen {
    int n, in_order;
} each_seen;

static int count_task(const sage__task_row *r, void *arg)
{
    each_seen *e = arg;
    if (r->task != e->n)
        e->in_order = 0;
    e->n++;
    return 0;
}

static int stop_at_ten(const sage__task_row *r, void *arg)
{
    (void)arg;
    return r->task == 9 ? 42 : 0;
}

static void test_task_each(void)
{
    char path[600];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t j;
    enum { N = 1500 };
    CHECK_INT(sage__store_job_insert(s, "wide", "/x", N, 1, &j), 0);
    for (int t = N - 1; t >= 0; t--) {
        sage__task_row r = make_task(j, t, "finished");
        CHECK_INT(sage__store_task_put(s, &r), 0);
    }
    each_seen e = {0, 1};
    CHECK_INT(sage__store_task_each(s, j, count_task, &e), 0);
    CHECK_INT(e.n, N);
    CHECK(e.in_order);
    CHECK_INT(sage__store_task_each(s, j, stop_at_ten, NULL), 42); /* a non-zero return stops the walk */
    each_seen none = {0, 1};
    CHECK_INT(sage__store_task_each(s, 999, count_task, &none), 0);
    CHECK_INT(none.n, 0);
    CHECK_INT(sage__store_task_each(NULL, j, count_task, &e), SAGE_EINVAL);
    CHECK_INT(sage__store_task_each(s, j, NULL, NULL), SAGE_EINVAL);
    sage__store_close(s);
}

/* A version 2 file (before jobs.seen_ms) is upgraded in place. */
static void test_upgrade_from_2(void)
{
    char path[600], v[64];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t id = 0;
    CHECK_INT(sage__store_job_insert(s, "two", "/bin/two", 1, 5, &id), 0);
    sage__store_close(s);
    CHECK_INT(raw_exec(path, "ALTER TABLE jobs DROP COLUMN seen_ms; PRAGMA user_version = 2;"), SQLITE_OK);
    s = open_ok(path);
    raw_query(path, "PRAGMA user_version", v, sizeof v);
    CHECK_STR(v, "3");
    sage__job_row row;
    CHECK_INT(sage__store_job_get(s, id, &row), 0);
    CHECK_STR(row.name, "two");
    CHECK_INT(row.seen_ms, 0);
    sage__store_close(s);
}

/* A job the daemon knew alive until some time ends then if the daemon dies (not at the restart). */
static void test_seen_is_the_end(void)
{
    char path[600], v[64];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    int64_t id = 0;
    CHECK_INT(sage__store_job_insert(s, "alive", "/x", 1, 100, &id), 0);
    CHECK_INT(sage__store_job_state(s, id, "running", NULL, 110), 0);
    CHECK_INT(sage__store_job_seen(s, id, 1500), 0);
    CHECK_INT(sage__store_job_seen(s, 999, 1500), SAGE_ENOTFOUND);
    sage__store_close(s);
    raw_query(path, "SELECT seen_ms FROM jobs WHERE id = 1", v, sizeof v);
    CHECK_STR(v, "1500");
    s = open_ok(path);
    CHECK_INT(sage__store_fail_unfinished(s, "died"), 1);
    size_t n = 0;
    const int64_t *ids = sage__store_unfinished(s, &n);
    CHECK_INT(n, 1);
    CHECK_INT(n ? ids[0] : 0, id);
    sage__job_row r;
    CHECK_INT(sage__store_job_get(s, id, &r), 0);
    CHECK_STR(r.state, "failed");
    CHECK_INT(r.ended_ms, 1500);
    sage__store_close(s);
    raw_query(path, "SELECT ended_ms FROM jobs WHERE id = 1", v, sizeof v);
    CHECK_STR(v, "1500");
}

typedef struct answered {
    int calls, rc;
    size_t ntasks;
    char state[16];
} answered;

static void on_answer(sage__store_read *r, void *arg)
{
    answered *a = arg;
    a->calls++;
    a->rc = r->rc;
    a->ntasks = r->ntasks;
    snprintf(a->state, sizeof a->state, "%s", r->job.state);
}

static void log_line(void *arg, const char *msg)
{
    char *seen = arg;
    size_t l = strlen(seen);
    snprintf(seen + l, 4096 - l, "%s\n", msg);
}

/* Another process holds the file locked: every call returns at once, reads see every write (memory and
 * the file together), and once the lock is gone every row is written. */
static void test_locked_file(void)
{
    char path[600], v[64];
    static char seen[4096];
    db_path(path, sizeof path);
    sage__store *s = open_ok(path);
    sage__store_attach(s, log_line, seen);
    sqlite3 *other = NULL;
    CHECK_INT(sqlite3_open(path, &other), SQLITE_OK);
    CHECK_INT(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    int64_t t0 = now_ms(), id = 0;
    for (int i = 0; i < 50; i++) {
        CHECK_INT(sage__store_job_insert(s, "locked", "/x", 2, 1, &id), 0);
        CHECK_INT(sage__store_job_state(s, id, "finished", "", 2), 0);
        sage__task_row t = make_task(id, 0, "finished"), u = make_task(id, 1, "finished");
        CHECK_INT(sage__store_task_put(s, &t), 0);
        CHECK_INT(sage__store_task_put(s, &u), 0);
    }
    int64_t took = now_ms() - t0;
    CHECK(took < 100); /* 200 writes, none waited for the lock */
    sage__job_row rows[8];
    size_t n = 0;
    CHECK_INT(sage__store_job_list(s, rows, 8, &n), 0);
    CHECK_INT(n, 8);
    CHECK_INT(rows[0].id, 50);
    char w[512] = "";
    /* a question answered by the writer thread, with the rows that wait */
    answered a = {0};
    CHECK_INT(sage__store_read_async(s, id, 1, on_answer, &a), 0);
    for (int64_t end = now_ms() + 5000; a.calls == 0 && now_ms() < end;) {
        struct pollfd p = {.fd = sage__store_fd(s), .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            sage__store_dispatch(s);
    }
    CHECK_INT(a.calls, 1);
    CHECK_INT(a.rc, 0);
    CHECK_INT(a.ntasks, 2);
    CHECK_STR(a.state, "finished");
    /* once the writer met the lock, the job's rows say they wait for it */
    int warned = 0;
    for (int64_t end = now_ms() + 3000; !warned && now_ms() < end;)
        if (!(warned = sage__store_warning(s, id, w, sizeof w)))
            poll(NULL, 0, 5);
    CHECK_INT(warned, 1);
    CHECK_CONTAINS(w, "locked by another process");
    raw_query(path, "SELECT count(*) FROM jobs", v, sizeof v);
    CHECK_STR(v, "0");
    CHECK_INT(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    sage__store_close(s); /* writes what waits */
    raw_query(path, "SELECT count(*) FROM jobs WHERE state = 'finished'", v, sizeof v);
    CHECK_STR(v, "50");
    raw_query(path, "SELECT count(*) FROM tasks", v, sizeof v);
    CHECK_STR(v, "100");
    CHECK_CONTAINS(seen, "jobs.db is locked by another process");
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sage-store-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_open_schema);
    RUN(test_upgrade_from_1);
    RUN(test_upgrade_from_2);
    RUN(test_seen_is_the_end);
    RUN(test_locked_file);
    RUN(test_insert_get);
    RUN(test_states);
    RUN(test_list);
    RUN(test_tasks);
    RUN(test_task_each);
    RUN(test_restart);
    RUN(test_ids_never_reused);
    RUN(test_truncation);
    RUN(test_open_errors);
    remove_tree(tmpdir);
    return CHECK_DONE();
}
