/* tests/integration/test_dashboard.c - the JobManager's web dashboard: login, sessions, and the page in a real browser.
 *
 * Like test_jm_restart, this program is both the driver and the user
 * program the JobManager relaunches (`test_dashboard pipeline NAME
 * HOST:PORT`). Every case starts its own daemon (tests/jm_daemon.h). The
 * HTTP cases speak raw HTTP/1.1 over a socket; the browser case runs
 * Debian's Chromium headless (--dump-dom after the page's script ran, and
 * --screenshot into the build tree: tests/artifacts/dashboard.png) and
 * skips, saying so, when Chromium is not installed. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "jm_daemon.h"
#include "net/frame.h" /* internal: SAGE__TOKEN_HEX */
#include "net/sock.h"  /* internal: raw HTTP requests to the daemon's port */
#include "pipeline_util.h"

static char self[1024];
static char *big;

/* ---------------------------------------------------------------- the job */

/* The line the source prints first: markup and control bytes the page must show as text. */
#define DASH_LINE "dash: <script>document.title='pwned'</script> bell\a esc\x1b[1m tab\tend"
#define DASH_LINE_JSON "dash: <script>document.title='pwned'</script> bell\\u0007 esc\\u001B[1m tab\\tend\\n"
#define CHATTY_LINES 1500 /* the sink prints this many lines, 100 bytes each in its log: longer than 64 KiB */

/* A record a millisecond until the file $DASH_GO exists (then the end; or a failure when it holds "fail"): a
 * job that runs, and whose counters move. With $DASH_FAIL_ONCE (a path), the first attempt to reach record 300
 * creates that file and fails (a restart's cause). */
static int trickle(sage_ctx *c, sage_out *o, void *u)
{
    if (!sage_ctx_local(c)) {
        printf(DASH_LINE "\n");
        fflush(stdout);
    }
    const char *once = getenv("DASH_FAIL_ONCE");
    if (once && (uintptr_t)sage_ctx_local(c) == 300) {
        int fd = open(once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            sage_ctx_fail(c, "the source fails once, at record 300");
            return -1;
        }
    }
    if (access(getenv("DASH_GO"), F_OK) == 0) {
        char what[8] = "";
        FILE *f = fopen(getenv("DASH_GO"), "r");
        if (f && !fgets(what, sizeof what, f))
            what[0] = 0;
        if (f)
            fclose(f);
        if (strncmp(what, "fail", 4) != 0)
            return SAGE_DONE;
        sage_ctx_fail(c, "the source was asked to fail");
        return -1;
    }
    nanosleep(&(struct timespec){0, 1000000}, NULL); /* the source's pace: the job's shape, not a wait */
    int64_t v = (int64_t)(uintptr_t)sage_ctx_local(c) + 1;
    sage_ctx_set_local(c, (void *)(uintptr_t)v);
    return sage_emit_i64(o, v) < 0 ? SAGE_ECANCELED : SAGE_MORE;
}

/* map "parse": a user counter and a user histogram, for the page and for Prometheus */
static int pass(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    sage_ctx_counter_add(c, "parsed", 1);
    sage_ctx_observe(c, "size_bytes", (double)n);
    return sage_emit(o, r, n);
}
static int drop(sage_ctx *c, const void *r, size_t n, void *u)
{
    if (!sage_ctx_local(c)) { /* at its first record: a log longer than the dashboard's 64 KiB */
        sage_ctx_set_local(c, (void *)1);
        for (int i = 0; i < CHATTY_LINES; i++)
            printf("line %04d %s\n", i,
                   "01234567890123456789012345678901234567890123456789012345678901234567890123456789");
        fflush(stdout);
    }
    return 0;
}

static int same(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u) { return sage_emit(o, r, n); }

/* ticks -> parse, tag (one chain of 2 instances) -> store; $DASH_FT: the config's "fault_tolerance", $DASH_RES:
 * what each instance of parse requests. */
static int run_pipeline(const char *name, const char *jm)
{
    char config[1024];
    const char *ft = getenv("DASH_FT");
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"%s%s}", jm, ft ? ", \"fault_tolerance\": " : "",
             ft ? ft : "");
    sage_env *env = sage_env_create(name, config);
    sage_stream *s = sage_from_source(env, trickle, NULL, &(sage_op_opts){.name = "ticks"});
    s = sage_map(sage_rebalance(s), pass, NULL,
                 &(sage_op_opts){.name = "parse", .parallelism = 2, .resources = getenv("DASH_RES")});
    s = sage_map(s, same, NULL, &(sage_op_opts){.name = "tag", .parallelism = 2});
    sage_sink(sage_rebalance(s), drop, NULL, &(sage_op_opts){.name = "store"});
    int rc = sage_env_execute(env);
    printf("job %lld rc %d\n", (long long)sage_env_job_id(env), rc);
    sage_env_destroy(env);
    return rc == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- helpers */

/* One HTTP/1.1 request to daemon d (head lines in `head`, CRLF-separated, without the request line); the
 * whole answer in big (NUL-terminated); its status code, or -1. */
static int http(const daemon_t *d, const char *method, const char *target, const char *head)
{
    int fd = -1;
    char err[256], req[2048];
    big[0] = 0;
    if (sage__tcp_connect("127.0.0.1", d->port, &fd, err, sizeof err) != 0)
        return -1;
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\n%s%s\r\n", method, target,
                     head && strstr(head, "Host: ") ? "" : "Host: 127.0.0.1\r\n", head ? head : "");
    (void)!write(fd, req, (size_t)n);
    size_t got = 0;
    ssize_t r;
    while (got < (1u << 20) - 1 && (r = read(fd, big + got, (1u << 20) - 1 - got)) > 0)
        got += (size_t)r;
    big[got] = 0;
    close(fd);
    int status = -1;
    sscanf(big, "HTTP/1.1 %d", &status);
    return status;
}

/* The login address `sage dashboard` would print (the client request behind it). */
static int login_url(const daemon_t *d, char *url, size_t cap)
{
    json_t *r = request(d, "{\"op\": \"dashboard\"}");
    const char *u = json_string_value(json_object_get(r, "url"));
    snprintf(url, cap, "%s", u ? u : "");
    json_decref(r);
    return u ? 0 : -1;
}

/* The query's target of a login address ("/?token=..."). */
static const char *target_of(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    return p ? p : "/";
}

/* The job (its program in the background, told to end through the file go), with more of its environment in env
 * (NAME='value' words, or ""). */
static FILE *start_job_env(const daemon_t *d, const char *go, const char *env)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s DASH_GO=%s SAGE_HOME=%s timeout -k 5 300 %s pipeline dashjob %s 2>&1", env, go,
             d->home, self, d->addr);
    fflush(NULL);
    return popen(cmd, "r");
}

static FILE *start_job(const daemon_t *d, const char *go) { return start_job_env(d, go, ""); }

/* The job's program ends (after its job, told to by writing `what` into the file go): its output in big, its
 * exit status. */
static int job_exit(FILE *job, const char *go, const char *what)
{
    char tmp[600]; /* whole when it appears: the source must not read it empty */
    snprintf(tmp, sizeof tmp, "%s.tmp", go);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        (void)!write(fd, what, strlen(what));
        close(fd);
        rename(tmp, go);
    }
    size_t n = job ? fread(big, 1, (1 << 20) - 1, job) : 0;
    big[n] = 0;
    return job ? WEXITSTATUS(pclose(job)) : -1;
}

static void end_job(FILE *job, const char *go)
{
    CHECK_INT(job_exit(job, go, ""), 0);
    CHECK_CONTAINS(big, " rc 0\n");
}

/* The daemon's token, as text (to check that no answer carries it). */
static const char *tok_text(const daemon_t *d)
{
    static char tok[SAGE__TOKEN_HEX + 2];
    FILE *f = fopen(d->token, "r");
    tok[0] = 0;
    if (f) {
        if (!fgets(tok, sizeof tok, f))
            tok[0] = 0;
        fclose(f);
    }
    tok[strcspn(tok, "\n")] = 0;
    return tok[0] ? tok : "(no token)";
}

/* Wait until job 1 runs and every task reported its metrics (30 s at most). */
static int job_running(const daemon_t *d)
{
    for (int64_t end = now_ms() + 30000; now_ms() < end; pause_ms(20)) {
        json_t *st = request(d, "{\"op\": \"status\", \"job_id\": 1}");
        const char *s = json_string_value(json_object_get(st, "state"));
        int run = s && strcmp(s, "running") == 0 && json_array_size(json_object_get(st, "tasks")) > 0;
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(st, "tasks"), i, t) run &= json_is_object(json_object_get(t, "metrics"));
        json_decref(st);
        if (run)
            return 1;
    }
    return 0;
}

/* A session of daemon d: "sage_session=HEX" into cookie (from a login); 0, or -1. */
static int login_cookie(const daemon_t *d, char *cookie, size_t cap)
{
    char url[600];
    cookie[0] = 0;
    if (login_url(d, url, sizeof url) != 0 || http(d, "GET", target_of(url), NULL) != 303)
        return -1;
    const char *sc = strstr(big, "Set-Cookie: ");
    if (sc)
        sscanf(sc + 12, "%199[^;]", cookie);
    return strncmp(cookie, "sage_session=", 13) == 0 ? 0 : -1;
}

/* The body of the last answer (in big) as JSON, or NULL. */
static json_t *body_json(void)
{
    const char *b = strstr(big, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

static const char *str_or(const json_t *v) { return json_is_string(v) ? json_string_value(v) : ""; }

static long long body_int(const char *key)
{
    json_t *j = body_json();
    long long v = json_is_integer(json_object_get(j, key)) ? (long long)json_integer_value(json_object_get(j, key))
                                                           : -1;
    json_decref(j);
    return v;
}

/* The tasks' user histograms of a job view without the raw buckets and quantiles (to compare a page with
 * `status`). */
static void strip_hists(json_t *view)
{
    json_t *t, *o, *v;
    size_t i, k;
    const char *name;
    json_array_foreach(json_object_get(view, "tasks"), i, t)
        json_array_foreach(json_object_get(json_object_get(t, "metrics"), "operators"), k, o)
            json_object_foreach(json_object_get(o, "user"), name, v)
    {
        json_t *h = json_object_get(v, "hist");
        json_object_del(h, "buckets");
        json_object_del(h, "p50");
        json_object_del(h, "p99");
    }
}

/* GET target with the session in head: its JSON body when the answer is a 200, else NULL. */
static json_t *api(const daemon_t *d, const char *head, const char *target)
{
    return http(d, "GET", target, head) == 200 ? body_json() : NULL;
}

static long long jint(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* Job id's state as the JobManager's status request says it ("?" when it cannot). */
static const char *jm_state(const daemon_t *d, int id)
{
    static char state[32];
    json_t *st = request(d, "{\"op\": \"status\", \"job_id\": %d}", id);
    const char *s = json_string_value(json_object_get(st, "state"));
    snprintf(state, sizeof state, "%s", s ? s : "?");
    json_decref(st);
    return state;
}

/* Until job id is in `state` (30 s at most): 1, or 0 (and says what it is). */
static int wait_state(const daemon_t *d, int id, const char *state)
{
    for (int64_t end = now_ms() + 30000; now_ms() < end; pause_ms(20))
        if (strcmp(jm_state(d, id), state) == 0)
            return 1;
    fprintf(stderr, "job %d is %s, not %s\n", id, jm_state(d, id), state);
    return 0;
}

/* Until task `task` of job `id`'s log, as the dashboard reads it (the tail), holds `text` (30 s at most). */
static int wait_log(const daemon_t *d, const char *cookie_head, int id, int task, const char *text)
{
    char target[100];
    snprintf(target, sizeof target, "/api/jobs/%d/logs?task=%d", id, task);
    for (int64_t end = now_ms() + 30000; now_ms() < end; pause_ms(20))
        if (http(d, "GET", target, cookie_head) == 200 && strstr(big, text))
            return 1;
    fprintf(stderr, "the log of task %d never held %s; the last answer:\n%s\n", task, text, big);
    return 0;
}

/* -------------------------------------------------------------------- cases */

/* Without a session: 401 and no job data, on every path; a login secret works once, sets an HttpOnly,
 * SameSite=Strict cookie and redirects to "/"; the session then reads the job list. */
static void login_and_sessions(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400];
    snprintf(go, sizeof go, "%s/go", d.home);
    FILE *job = start_job(&d, go);
    CHECK(job_running(&d));
    static const char *const paths[] = {"/", "/api/jobs", "/api/jobs/1", "/app.js", "/nope"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        CHECK_INT(http(&d, "GET", paths[i], NULL), 401);
        CHECK(strstr(big, "dashjob") == NULL);
    }
    CHECK_INT(http(&d, "GET", "/?token=0123", NULL), 401);
    CHECK_INT(http(&d, "GET", "/api/jobs", "Cookie: sage_session=0123456789abcdef\r\n"), 401);
    char url[600];
    CHECK_INT(login_url(&d, url, sizeof url), 0);
    CHECK_INT(http(&d, "GET", target_of(url), NULL), 303);
    CHECK_CONTAINS(big, "Location: /\r\n");
    CHECK_CONTAINS(big, "; HttpOnly; SameSite=Strict; Path=/;");
    char cookie[200] = "";
    const char *sc = strstr(big, "Set-Cookie: ");
    if (sc)
        sscanf(sc + 12, "%199[^;]", cookie);
    CHECK(strncmp(cookie, "sage_session=", 13) == 0);
    CHECK_INT(http(&d, "GET", target_of(url), NULL), 401); /* spent */
    char head[400];
    snprintf(head, sizeof head, "Cookie: theme=dark; %s; other=1\r\n", cookie);
    CHECK_INT(http(&d, "GET", "/api/jobs", head), 200);
    CHECK_CONTAINS(big, "\"name\":\"dashjob\"");
    CHECK_CONTAINS(big, "Content-Security-Policy: default-src 'self'");
    CHECK_INT(http(&d, "GET", "/api/jobs/1", head), 200);
    CHECK_CONTAINS(big, "\"operator\":\"parse\"");
    CHECK_INT(http(&d, "GET", "/api/jobs/77", head), 404);
    /* no file is ever read: the assets are compiled in, and any other path is unknown */
    static const char *const strange[] =
        {"/../../etc/passwd",       "/app.js/../index.html", "/%2e%2e/token", "//etc/passwd",
         "/api/jobs/1/../../token", "/api/jobs/-1",          "/api/jobs/1x",  "/index.html"};
    for (size_t i = 0; i < sizeof strange / sizeof strange[0]; i++) {
        CHECK_INT(http(&d, "GET", strange[i], head), 404);
        CHECK(strstr(big, "root:") == NULL && strstr(big, tok_text(&d)) == NULL);
    }
    CHECK_INT(http(&d, "POST", "/api/jobs", head), 403); /* a POST without the CSRF guard: refused first */
    CHECK(strstr(big, "dashjob") == NULL);
    CHECK(http(&d, "PUT", "/api/jobs", head) != 200); /* HTTP here is GET and POST: anything else is closed */
    CHECK(strstr(big, "dashjob") == NULL);
    CHECK_INT(http(&d, "GET", "/", head), 200);
    CHECK_CONTAINS(big, "<script src=\"/app.js\"></script>");
    end_job(job, go);
    daemon_down(&d);
}

/* A task's log through the dashboard: its first bytes, what follows an offset, the last 64 KiB of a longer
 * log (from a whole line, with what was skipped said), markup and control bytes as JSON text; bad queries. */
static void logs_tail_and_offsets(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400], cookie[200], head[300], target[200];
    snprintf(go, sizeof go, "%s/go", d.home);
    FILE *job = start_job(&d, go);
    CHECK(job_running(&d));
    CHECK_INT(login_cookie(&d, cookie, sizeof cookie), 0);
    snprintf(head, sizeof head, "Cookie: %s\r\n", cookie);
    CHECK(wait_log(&d, head, 1, 0, "ticks[0] " DASH_LINE_JSON));
    /* the source's log (task 0): one line, from its first byte */
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=0", head), 200);
    CHECK_CONTAINS(big, "Content-Type: application/json\r\n");
    CHECK_CONTAINS(big, "\"text\":\"ticks[0] " DASH_LINE_JSON "\"");
    CHECK_CONTAINS(big, "\"operator\":\"ticks\",\"instance\":0,\"live\":true");
    long long size = body_int("size");
    CHECK_INT(size, (long long)strlen("ticks[0] " DASH_LINE "\n"));
    CHECK_INT(body_int("from"), 0);
    CHECK_INT(body_int("next"), size);
    CHECK_INT(body_int("skipped"), 0);
    snprintf(target, sizeof target, "/api/jobs/1/logs?task=0&offset=%lld", size); /* following: nothing new */
    CHECK_INT(http(&d, "GET", target, head), 200);
    CHECK_CONTAINS(big, "\"text\":\"\"");
    CHECK_INT(body_int("from"), size);
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=0&offset=6", head), 200);
    CHECK_CONTAINS(big, "\"text\":\"0] dash: <script>");
    CHECK_INT(body_int("from"), 6);
    snprintf(target, sizeof target, "/api/jobs/1/logs?task=0&offset=%lld", size + 100); /* past the end */
    CHECK_INT(http(&d, "GET", target, head), 200);
    CHECK_INT(body_int("from"), 0);
    CHECK_CONTAINS(big, "\"text\":\"ticks[0] dash: ");

    /* the sink's log (task 3): 1500 lines of 100 bytes; the answer is its last 64 KiB from a whole line */
    char last[64];
    snprintf(last, sizeof last, "store[0] line %04d ", CHATTY_LINES - 1);
    CHECK(wait_log(&d, head, 1, 3, last));
    long long full = CHATTY_LINES * 100LL;
    CHECK_CONTAINS(big, "\"operator\":\"store\"");
    CHECK_INT(body_int("size"), full);
    CHECK_INT(body_int("next"), full);
    long long from = body_int("from");
    CHECK(full - from <= 65536 && full - from > 65536 - 120);
    CHECK_INT(body_int("skipped"), from);
    CHECK_INT((from % 100), 0); /* a line's first byte */
    CHECK_CONTAINS(big, "\"text\":\"store[0] line ");
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=3&offset=0", head), 200); /* far behind: skips to the tail */
    CHECK_INT(body_int("from"), from);
    CHECK_INT(body_int("skipped"), from);
    snprintf(target, sizeof target, "/api/jobs/1/logs?task=3&offset=%lld", full - 102); /* near: from there */
    CHECK_INT(http(&d, "GET", target, head), 200);
    CHECK_INT(body_int("from"), full - 102);
    CHECK_INT(body_int("skipped"), 0);
    snprintf(last, sizeof last, "\"text\":\"9\\nstore[0] line %04d 0123", CHATTY_LINES - 1);
    CHECK_CONTAINS(big, last);

    /* bad queries are refused whole; an unknown task or job is a 404; no session, a 401 */
    static const char *const bad[] =
        {"/api/jobs/1/logs",          "/api/jobs/1/logs?task=x",           "/api/jobs/1/logs?task=0&task=1",
         "/api/jobs/1/logs?offset=5", "/api/jobs/1/logs?task=0&offset=-1", "/api/jobs/1/logs?task=0&offset=%35",
         "/api/jobs/1/logs?task=0&",  "/api/jobs/1/logs?task=0&offset",    "/api/jobs/1/logs?task=-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(http(&d, "GET", bad[i], head), 400);
        CHECK_CONTAINS(big, "{\"error\":\"logs: give ?task=T (a task index) and optionally &offset=N (bytes)\"");
    }
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=4", head), 404);
    CHECK_CONTAINS(big, "\"error\":\"job 1 has no task 4 (it has 4)\"");
    CHECK_INT(http(&d, "GET", "/api/jobs/9/logs?task=0", head), 404);
    CHECK_CONTAINS(big, "{\"error\":\"no job 9\",\"code\":-15}");
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=0", NULL), 401);
    CHECK(strstr(big, "dash:") == NULL);
    end_job(job, go);
    daemon_down(&d);
}

/* Actions: a POST with the session, the session's CSRF secret and no foreign Origin pauses, resumes and
 * cancels the job (as the JobManager then says); without any of them it is refused and the job goes on. */
static void actions_need_session_and_csrf(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400], cookie[200], other[200], head[600], csrf[80] = "", other_csrf[80] = "";
    snprintf(go, sizeof go, "%s/go", d.home);
    FILE *job = start_job(&d, go);
    CHECK(job_running(&d));
    CHECK_INT(login_cookie(&d, other, sizeof other), 0);
    snprintf(head, sizeof head, "Cookie: %s\r\n", other);
    CHECK_INT(http(&d, "GET", "/api/jobs", head), 200);
    json_t *l = body_json();
    snprintf(other_csrf, sizeof other_csrf, "%s", str_or(json_object_get(l, "csrf")));
    json_decref(l);
    CHECK_INT(login_cookie(&d, cookie, sizeof cookie), 0);
    snprintf(head, sizeof head, "Cookie: %s\r\n", cookie);
    CHECK_INT(http(&d, "GET", "/api/jobs", head), 200);
    l = body_json();
    snprintf(csrf, sizeof csrf, "%s", str_or(json_object_get(l, "csrf")));
    json_decref(l);
    CHECK_INT(strlen(csrf), 64);
    CHECK(strcmp(csrf, other_csrf) != 0); /* one per session */
    char host[64], origin[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", d.port);
    snprintf(origin, sizeof origin, "http://127.0.0.1:%d", d.port);

    static const struct {
        const char *cookie, *csrf, *origin; /* "C": the session's cookie, "X": its CSRF secret, "Y": the other's */
        int status;
        const char *error;
    } refused[] = {
        {"", "X", "", 401, "no session: open the address sage dashboard prints"},
        {"C", "", "", 403, "refused: the request has no X-SAGE-CSRF header (the dashboard's page sends it)"},
        {"C", "", "O", 403, "refused: the request has no X-SAGE-CSRF header"},
        {"C", "0000000000000000000000000000000000000000000000000000000000000000", "O", 403,
         "refused: the X-SAGE-CSRF header is not this session's"},
        {"C", "Y", "O", 403, "refused: the X-SAGE-CSRF header is not this session's"},
        {"C", "abc", "O", 403, "refused: the X-SAGE-CSRF header is not this session's"},
        {"C", "not hex", "O", 403, "refused: the request has no X-SAGE-CSRF header"},
        {"C", "X", "http://evil.example", 403, "refused: the request comes from another origin"},
        {"C", "X", "http://127.0.0.1:1", 403, "refused: the request comes from another origin"},
        {"C", "X", "null", 403, "refused: the request comes from another origin"},
        {"C", "X", "https://127.0.0.1", 403, "refused: the request comes from another origin"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *x = refused[i].csrf;
        x = strcmp(x, "X") == 0 ? csrf : strcmp(x, "Y") == 0 ? other_csrf : x;
        const char *o = strcmp(refused[i].origin, "O") == 0 ? origin : refused[i].origin;
        snprintf(head, sizeof head, "Host: %s\r\n%s%s%s%s%s%s%s", host, refused[i].cookie[0] ? "Cookie: " : "",
                 refused[i].cookie[0] ? cookie : "", refused[i].cookie[0] ? "\r\n" : "", x[0] ? "X-SAGE-CSRF: " : "", x,
                 x[0] ? "\r\n" : "", "");
        if (o[0])
            snprintf(head + strlen(head), sizeof head - strlen(head), "Origin: %s\r\n", o);
        CHECK_INT(http(&d, "POST", "/api/jobs/1/pause", head), refused[i].status);
        CHECK_CONTAINS(big, refused[i].error);
        CHECK_STR(jm_state(&d, 1), "running"); /* no effect */
    }
    CHECK_CONTAINS(daemon_log(&d), "POST /api/jobs/1/pause refused: the request comes from another origin (Origin: "
                                   "http://evil.example)");

    /* right: the session, its secret, the page's own origin (a browser sends it) or none (a script) */
    snprintf(head, sizeof head, "Host: %s\r\nCookie: %s\r\nX-SAGE-CSRF: %s\r\nOrigin: %s\r\n", host, cookie, csrf,
             origin);
    CHECK_INT(http(&d, "GET", "/api/jobs/1/pause", head), 405); /* an action is a POST */
    CHECK_STR(jm_state(&d, 1), "running");
    CHECK_INT(http(&d, "POST", "/api/jobs/1", head), 405);
    CHECK_INT(http(&d, "POST", "/api/jobs/1/pause", head), 200);
    CHECK_CONTAINS(big, "{\"ok\":true,\"job_id\":1,\"action\":\"pause\",\"state\":\"paused\"}");
    CHECK_STR(jm_state(&d, 1), "paused");
    CHECK_INT(http(&d, "POST", "/api/jobs/1/pause", head), 409); /* as `sage job pause` says it */
    CHECK_CONTAINS(big, "{\"error\":\"job 1 is paused, not running\",\"code\":");
    snprintf(head, sizeof head, "Cookie: %s\r\nX-SAGE-CSRF: %s\r\n", cookie, csrf);
    CHECK_INT(http(&d, "POST", "/api/jobs/1/resume", head), 200);
    CHECK_CONTAINS(big, "\"action\":\"resume\",\"state\":\"running\"}");
    CHECK_STR(jm_state(&d, 1), "running");
    CHECK_INT(http(&d, "POST", "/api/jobs/1/cancel", head), 200);
    CHECK_CONTAINS(big, "\"action\":\"cancel\",\"state\":\"");
    CHECK(wait_state(&d, 1, "canceled"));
    CHECK_INT(http(&d, "POST", "/api/jobs/1/pause", head), 409);
    CHECK_CONTAINS(big, "{\"error\":\"job 1 already ended (canceled)\"");
    CHECK_INT(http(&d, "POST", "/api/jobs/77/stop", head), 404);
    CHECK_CONTAINS(big, "{\"error\":\"no job 77\"");
    CHECK_INT(http(&d, "POST", "/api/jobs/1/explode", head), 404);
    CHECK(job_exit(job, go, "") != 0); /* its program says the job was canceled */
    CHECK(strstr(big, " rc 0\n") == NULL);
    CHECK_CONTAINS(daemon_log(&d), "asks to cancel job 1\n");
    daemon_down(&d);
}

/* Ended jobs keep their pages: a finished job's end document with its last counters (what `sage job status`
 * shows), a failed one's failure message, and their logs. */
static void ended_job_pages(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400], cookie[200], head[300];
    snprintf(go, sizeof go, "%s/go", d.home);
    CHECK_INT(login_cookie(&d, cookie, sizeof cookie), 0);
    snprintf(head, sizeof head, "Cookie: %s\r\n", cookie);
    FILE *job = start_job(&d, go);
    CHECK(job_running(&d));
    end_job(job, go);
    CHECK(wait_state(&d, 1, "finished"));
    CHECK_INT(http(&d, "GET", "/api/jobs/1", head), 200);
    json_t *page = body_json(), *st = request(&d, "{\"op\": \"status\", \"job_id\": 1}");
    CHECK_STR(json_string_value(json_object_get(page, "state")), "finished");
    CHECK(json_is_true(json_object_get(page, "ended")));
    CHECK(json_integer_value(json_object_get(page, "ended_ms")) >=
          json_integer_value(json_object_get(page, "started_ms")));
    /* the rows `status` has; the page's histograms carry their p50 and p99 instead of the raw buckets */
    json_t *parse = json_object_get(json_array_get(json_object_get(page, "tasks"), 1), "metrics");
    json_t *parse_ops = json_object_get(parse, "operators");
    json_t *parse_hist = json_object_get(json_object_get(json_array_get(parse_ops, 0), "user"), "size_bytes");
    CHECK(json_real_value(json_object_get(json_object_get(parse_hist, "hist"), "p99")) == 8.0);
    CHECK(json_object_get(json_object_get(parse_hist, "hist"), "buckets") == NULL);
    strip_hists(page);
    strip_hists(st);
    CHECK(json_equal(json_object_get(page, "tasks"), json_object_get(st, "tasks")));
    json_t *sink = json_array_get(json_object_get(page, "tasks"), 3);
    CHECK_STR(json_string_value(json_object_get(sink, "operator")), "store");
    json_t *ops = json_object_get(json_object_get(sink, "metrics"), "operators");
    CHECK(json_integer_value(json_object_get(json_array_get(ops, 0), "records_in")) > 0); /* its last counters */
    json_decref(page);
    json_decref(st);
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=0", head), 200);
    CHECK_CONTAINS(big, "\"live\":false");
    CHECK_CONTAINS(big, "\"text\":\"ticks[0] " DASH_LINE_JSON "\"");
    CHECK_INT(http(&d, "GET", "/api/jobs/1/logs?task=4", head), 404);
    CHECK_CONTAINS(big, "\"error\":\"job 1 has no task 4\"");

    /* a failed job: its state and failure message */
    unlink(go);
    job = start_job(&d, go);
    CHECK(wait_state(&d, 2, "running"));
    CHECK(job_exit(job, go, "fail") != 0);
    CHECK(wait_state(&d, 2, "failed"));
    CHECK_INT(http(&d, "GET", "/api/jobs/2", head), 200);
    page = body_json();
    CHECK_STR(json_string_value(json_object_get(page, "state")), "failed");
    CHECK_CONTAINS(str_or(json_object_get(page, "error")), "the source was asked to fail");
    json_decref(page);
    CHECK_INT(http(&d, "GET", "/api/jobs", head), 200);
    CHECK_CONTAINS(big, "\"job_id\":2,\"name\":\"dashjob\",\"state\":\"failed\"");
    CHECK_CONTAINS(big, "\"job_id\":1,\"name\":\"dashjob\",\"state\":\"finished\"");
    CHECK_INT(http(&d, "GET", "/api/jobs/3", head), 404);
    CHECK_CONTAINS(big, "{\"error\":\"no job 3\"");
    daemon_down(&d);
}

/* User counters and histograms of a running job in /metrics: the user's names as labels, histograms as
 * summaries with p50 and p99. */
static void prometheus_user_metrics(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400], head[200];
    snprintf(go, sizeof go, "%s/go", d.home);
    snprintf(head, sizeof head, "Authorization: Bearer %s\r\n", tok_text(&d));
    FILE *job = start_job(&d, go);
    CHECK(job_running(&d));
    /* user metrics come with the reports after the task thread's first snapshot: wait for both instances' */
    for (int64_t end = now_ms() + 20000; now_ms() < end; pause_ms(50)) {
        CHECK_INT(http(&d, "GET", "/metrics", head), 200);
        if (strstr(big, "instance=\"0\",histogram=\"size_bytes\"} ") && strstr(big, "instance=\"1\",histogram="))
            break;
    }
    CHECK_CONTAINS(big, "# TYPE sage_user_counter_total counter\n");
    CHECK_CONTAINS(big, "sage_user_counter_total{job=\"1\",operator=\"parse\",instance=\"0\",counter=\"parsed\"} ");
    CHECK_CONTAINS(big, "# TYPE sage_user_histogram summary\n");
    CHECK_CONTAINS(big, "sage_user_histogram{job=\"1\",operator=\"parse\",instance=\"1\",histogram=\"size_bytes\","
                        "quantile=\"0.99\"} 8");
    CHECK_CONTAINS(big,
                   "sage_user_histogram_count{job=\"1\",operator=\"parse\",instance=\"0\",histogram=\"size_bytes\"} ");
    end_job(job, go);
    daemon_down(&d);
}

static int have_chromium(void)
{
    static int have = -1;
    if (have < 0)
        have = system("command -v chromium >/dev/null 2>&1") == 0;
    if (!have)
        fprintf(stderr, "chromium is not installed (scripts/deps.sh installs it): the page's checks are skipped\n");
    return have;
}

/* The page of daemon d after its script ran, in headless Chromium (a fresh profile named by tag, the page's
 * address + suffix): its DOM in big; 0, or the command's status. */
static int chromium_dom(const daemon_t *d, const char *tag, const char *suffix)
{
    char url[600];
    if (login_url(d, url, sizeof url) != 0)
        return -1;
    return run_cmd(big, 1 << 20,
                   "timeout -k 5 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
                   "--user-data-dir=%s/chromium.%s --virtual-time-budget=4000 --dump-dom '%s%s' 2>/dev/null",
                   d->home, tag, url, suffix);
}

/* The text of the element with id `id` in the DOM in big ("" if none), at most cap-1 bytes. */
static const char *dom_text(const char *id, char *out, size_t cap)
{
    char pat[80];
    snprintf(pat, sizeof pat, " id=\"%s\">", id);
    const char *p = strstr(big, pat);
    out[0] = 0;
    if (p) {
        p += strlen(pat);
        size_t n = strcspn(p, "<");
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    }
    return out;
}

#define LAB_NODE                                                                                                       \
    "{\"node\": {\"name\": \"lab\", \"cpus\": 4, \"gpus\": 2, \"memory\": \"8GB\", \"resources\": {\"ssd\": 1}}}"
#define RESTART_FT "{\"strategy\": \"restart\", \"restart_strategy\": \"fixed\", \"max_attempts\": 3, \"delay\": 0.2}"
#define RESTART_FAILURE                                                                                                \
    "operator \"ticks\" instance 0 failed after emitting 300 records: the source fails once, at record 300"

/* Job 1's page once pred holds for it (30 s at most; NULL then, saying what the last page was). */
static json_t *page_when(const daemon_t *d, const char *head, int (*pred)(json_t *))
{
    for (int64_t end = now_ms() + 30000; now_ms() < end; pause_ms(20)) {
        json_t *p = api(d, head, "/api/jobs/1");
        if (p && pred(p))
            return p;
        json_decref(p);
    }
    fprintf(stderr, "job 1's page never got there; the last answer:\n%s\n", big);
    return NULL;
}

/* Restarted once, and running again: every process of the second attempt alive and reporting. */
static int restarted_and_running(json_t *p)
{
    int ok = jint(p, "restarts") == 1 && !json_object_get(p, "restart_in_ms") &&
             strcmp(str_or(json_object_get(p, "state")), "running") == 0;
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(p, "tasks"), i, t)
        ok &= strcmp(str_or(json_object_get(t, "state")), "running") == 0 &&
              json_is_object(json_object_get(t, "metrics"));
    /* and the new attempt's parse reported its histogram (the page shows it; a first report may come before) */
    json_t *ops = json_object_get(json_object_get(json_array_get(json_object_get(p, "tasks"), 1), "metrics"),
                                  "operators");
    return ok && json_object_get(json_object_get(json_array_get(ops, 0), "user"), "size_bytes") != NULL;
}

/* Job 1's page in Chromium (restarts_and_cluster): the fault-tolerance panel, the cluster's row, the graph's
 * chain and request, a histogram's quantiles. */
static void restart_page(const daemon_t *d)
{
    char text[2048];
    CHECK_INT(chromium_dom(d, "restart", ""), 0);
    CHECK_STR(dom_text("ft-strategy", text, sizeof text), "restart: fixed delay 0.2s, at most 3 restarts");
    CHECK_STR(dom_text("ft-restarts", text, sizeof text), "1");
    CHECK_CONTAINS(dom_text("ft-failure", text, sizeof text), " ago: " RESTART_FAILURE);
    CHECK_CONTAINS(big, "<div id=\"ft\">"); /* shown */
    CHECK_CONTAINS(big, "<tr class=\"ckpt\" hidden=\"\">");
    CHECK_CONTAINS(big, "<td class=\"name\">lab</td><td class=\"num cpus\">2 / 4</td><td class=\"num gpus\">1 / "
                        "2</td><td class=\"num memory\">1.9GiB / 7.5GiB</td><td class=\"custom\">ssd 1 / 1</td><td "
                        "class=\"num tasks\">4 / 4</td><td class=\"jobs\">1</td>");
    CHECK_CONTAINS(big, "class=\"chain\">parse → tag</text>");
    CHECK_CONTAINS(big, "class=\"res\">1 CPU · 0.5 GPU · 953.7MiB · ssd 0.5</text>");
    CHECK_CONTAINS(big, "size_bytes: n=");
    CHECK_CONTAINS(big, " p99=8 max=8");
}

/* A job with the restart strategy whose source fails once: its page shows the strategy, the restart and the
 * failure (also once it ended); the cluster view shows the node (config "node") and what the job holds there,
 * in raw HTTP and in Chromium. */
static void restarts_and_cluster(void)
{
    daemon_t d = {.config = LAB_NODE};
    if (!daemon_up(&d))
        return;
    char go[400], cookie[200], head[300], env[1200];
    snprintf(go, sizeof go, "%s/go", d.home);
    CHECK_INT(login_cookie(&d, cookie, sizeof cookie), 0);
    snprintf(head, sizeof head, "Cookie: %s\r\n", cookie);
    snprintf(env, sizeof env,
             "DASH_FT='" RESTART_FT "' DASH_FAIL_ONCE=%s/failed DASH_RES='{\"num_cpus\": 1, \"num_gpus\": 0.5, "
             "\"memory\": \"1GB\", \"resources\": {\"ssd\": 0.5}}'",
             d.home);
    FILE *job = start_job_env(&d, go, env);
    json_t *p = page_when(&d, head, restarted_and_running);
    CHECK(p != NULL);
    json_t *want = json_loads(RESTART_FT, 0, NULL);
    CHECK(json_equal(json_object_get(p, "fault_tolerance"), want));
    CHECK_STR(str_or(json_object_get(p, "fault_tolerance_text")), "restart: fixed delay 0.2s, at most 3 restarts");
    CHECK_INT(jint(p, "restarts"), 1);
    CHECK_STR(str_or(json_object_get(p, "last_failure")), RESTART_FAILURE);
    long long age = jint(p, "last_failure_age_ms");
    CHECK(age >= 0 && age < 60000);
    CHECK_INT(jint(p, "now_ms") - jint(p, "last_failure_at_ms"), age);
    CHECK(json_object_get(p, "checkpoints") == NULL); /* no checkpoint strategy */
    json_t *chain = json_array_get(json_object_get(json_object_get(p, "graph"), "chains"), 1);
    CHECK_STR(str_or(json_object_get(chain, "name")), "parse");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(chain, "resources"), "memory")), 1000000000);
    json_decref(p);

    /* the cluster: the node "lab" and what job 1 holds there (two instances of parse's request) */
    json_t *c = api(&d, head, "/api/cluster");
    json_t *lab = json_loads("{\"name\": \"lab\", \"cpus\": 4, \"gpus\": 2, \"memory\": 8000000000, \"resources\": "
                             "{\"ssd\": 1.0}, \"unavailable\": false, \"held\": {\"cpus\": 2.0, \"gpus\": 1.0, "
                             "\"memory\": 2000000000, \"resources\": {\"ssd\": 1.0}, \"tasks\": 4, \"running\": 4, "
                             "\"jobs\": [1]}}",
                             0, NULL);
    CHECK_STR(str_or(json_object_get(c, "launcher")), "local");
    CHECK_INT(json_array_size(json_object_get(c, "nodes")), 1);
    CHECK(json_equal(json_array_get(json_object_get(c, "nodes"), 0), lab));
    if (!json_equal(json_array_get(json_object_get(c, "nodes"), 0), lab))
        fprintf(stderr, "/api/cluster: %s\n", big);
    json_decref(c);
    CHECK_INT(http(&d, "POST", "/api/cluster", head), 403); /* (no CSRF secret: refused before the route) */
    CHECK_INT(http(&d, "GET", "/api/cluster", NULL), 401);
    /* the job list: records in and out of the live job */
    json_t *l = api(&d, head, "/api/jobs");
    json_t *row = json_array_get(json_object_get(l, "jobs"), 0);
    CHECK(jint(row, "records_in") > 0 && jint(row, "records_out") > 0);
    CHECK(jint(l, "now_ms") > 0);
    json_decref(l);

    /* in Chromium: the panel and the cluster's row */
    if (have_chromium())
        restart_page(&d);

    end_job(job, go);
    CHECK(wait_state(&d, 1, "finished"));
    p = api(&d, head, "/api/jobs/1"); /* ended: what the strategy did stays on its page */
    CHECK(json_equal(json_object_get(p, "fault_tolerance"), want));
    CHECK_INT(jint(p, "restarts"), 1);
    CHECK_STR(str_or(json_object_get(p, "last_failure")), RESTART_FAILURE);
    json_decref(p);
    json_decref(want);
    c = api(&d, head, "/api/cluster"); /* nothing held any more */
    json_t *held = json_object_get(json_array_get(json_object_get(c, "nodes"), 0), "held");
    CHECK_INT(jint(held, "tasks"), 0);
    CHECK_INT(json_array_size(json_object_get(held, "jobs")), 0);
    CHECK(json_real_value(json_object_get(held, "cpus")) == 0.0);
    json_decref(c);
    json_decref(lab);
    daemon_down(&d);
}

/* Two checkpoints committed (at least). */
static int two_checkpoints(json_t *p) { return jint(json_object_get(p, "checkpoints"), "completed") >= 2; }

static long long ckpt_seen; /* the count page_when waits to see exceeded */
static int more_checkpoints(json_t *p) { return jint(json_object_get(p, "checkpoints"), "completed") > ckpt_seen; }

/* Job 1's page in Chromium (checkpoints_move): the checkpoint rows, with a count past `before`; the screenshot
 * (tests/artifacts/dashboard.png, for docs/dashboard.md). */
static void checkpoint_page(const daemon_t *d, long long before)
{
    char text[2048], url[600];
    CHECK_INT(chromium_dom(d, "ckpt", ""), 0);
    CHECK_CONTAINS(dom_text("ft-strategy", text, sizeof text), "checkpoint every 0.2s");
    CHECK_STR(dom_text("ft-restarts", text, sizeof text), "0");
    CHECK_STR(dom_text("ft-failure", text, sizeof text), "none");
    long long shown = -1, abandoned = -1, last = -1;
    CHECK_INT(sscanf(dom_text("ft-checkpoints", text, sizeof text), "%lld committed, %lld abandoned, 0 recoveries",
                     &shown, &abandoned),
              2);
    CHECK(shown > before);
    CHECK_INT(abandoned, 0);
    sscanf(dom_text("ft-last", text, sizeof text), "#%lld, ", &last);
    CHECK(last >= shown && last <= shown + 1);
    CHECK_CONTAINS(text, " ago, ");
    if (shown <= before)
        fprintf(stderr, "the page:\n%s\n", big);

    mkdir("artifacts", 0755);
    CHECK_INT(login_url(d, url, sizeof url), 0);
    CHECK_INT(run_cmd(big, 1 << 20,
                      "timeout -k 5 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
                      "--user-data-dir=%s/chromium.shot --virtual-time-budget=4000 --window-size=1400,1300 "
                      "--screenshot=artifacts/dashboard.png '%s' 2>/dev/null",
                      d->home, url),
              0);
    struct stat st;
    CHECK(stat("artifacts/dashboard.png", &st) == 0 && st.st_size > 10000);
}

/* A job with the checkpoint strategy: its page's checkpoint numbers move (count, last id, time, size), with
 * nothing abandoned or recovered; Chromium shows them. */
static void checkpoints_move(void)
{
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400], cookie[200], head[300], want_path[64];
    snprintf(go, sizeof go, "%s/go", d.home);
    CHECK_INT(login_cookie(&d, cookie, sizeof cookie), 0);
    snprintf(head, sizeof head, "Cookie: %s\r\n", cookie);
    FILE *job = start_job_env(&d, go, "DASH_FT='{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 0.2}'");
    json_t *a = page_when(&d, head, two_checkpoints);
    CHECK(a != NULL);
    json_t *ca = json_object_get(a, "checkpoints");
    ckpt_seen = jint(ca, "completed");
    json_t *b = page_when(&d, head, more_checkpoints);
    CHECK(b != NULL);
    json_t *cb = json_object_get(b, "checkpoints");
    CHECK_STR(str_or(json_object_get(json_object_get(b, "fault_tolerance"), "strategy")), "checkpoint");
    CHECK(json_real_value(json_object_get(json_object_get(b, "fault_tolerance"), "checkpoint_interval")) == 0.2);
    CHECK_CONTAINS(str_or(json_object_get(b, "fault_tolerance_text")), "checkpoint every 0.2s, at most ");
    CHECK_INT(jint(b, "restarts"), 0);
    CHECK(json_object_get(b, "last_failure") == NULL);
    CHECK_INT(jint(cb, "recoveries"), 0);
    /* ids 1, 2, ...: each committed or (one) being taken; none abandoned (a worker whose barrier came before
     * the JobManager's request once answered with an empty part: "a worker's answer lacks its part's size") */
    CHECK_INT(jint(cb, "abandoned"), 0);
    CHECK(jint(cb, "last_id") >= jint(cb, "completed"));
    CHECK(jint(cb, "last_id") <= jint(cb, "completed") + 1);
    CHECK(jint(cb, "last_id") > jint(ca, "last_id"));
    CHECK(jint(cb, "last_at_ms") >= jint(ca, "last_at_ms"));
    CHECK(jint(cb, "last_bytes") > 0);
    CHECK(jint(cb, "last_age_ms") >= 0 && jint(cb, "last_age_ms") < 30000);
    CHECK_INT(jint(b, "now_ms") - jint(cb, "last_at_ms"), jint(cb, "last_age_ms"));
    snprintf(want_path, sizeof want_path, "/chk-%lld", jint(cb, "last_id"));
    const char *path = str_or(json_object_get(cb, "last_path"));
    CHECK(strlen(path) > strlen(want_path) && strcmp(path + strlen(path) - strlen(want_path), want_path) == 0);
    long long before = jint(cb, "completed");
    json_decref(a);
    json_decref(b);

    if (have_chromium())
        checkpoint_page(&d, before);
    end_job(job, go);
    daemon_down(&d);
}

/* The page in Chromium: the job's name, its operators and instance rows, counters that move between two
 * loads. */
static void page_in_chromium(void)
{
    if (system("command -v chromium >/dev/null 2>&1") != 0)
        SKIP("chromium is not installed (scripts/deps.sh installs it)");
    daemon_t d = {0};
    if (!daemon_up(&d))
        return;
    char go[400], url[600], profile[400];
    snprintf(go, sizeof go, "%s/go", d.home);
    snprintf(profile, sizeof profile, "%s/chromium", d.home);
    FILE *job = start_job(&d, go);
    CHECK(job_running(&d));
    long long seen[2] = {-1, -1};
    for (int load = 0; load < 2; load++) {
        CHECK_INT(login_url(&d, url, sizeof url), 0);
        int rc = run_cmd(big, 1 << 20,
                         "timeout -k 5 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
                         "--user-data-dir=%s.%d --virtual-time-budget=4000 --dump-dom '%s' 2>/dev/null",
                         profile, load, url);
        CHECK_INT(rc, 0);
        CHECK_CONTAINS(big, "<td class=\"name\">dashjob</td>");
        CHECK_CONTAINS(big, "Job 1 \"dashjob\": running");
        CHECK_CONTAINS(big, "class=\"name\">ticks</text>");
        CHECK_CONTAINS(big, "class=\"name\">parse</text>");
        CHECK_CONTAINS(big, "class=\"meta\">×2 · 2 running</text>");
        CHECK_CONTAINS(big, "class=\"routing\">rebalance</text>"); /* the edges, with their routing */
        /* the logs panel: the source's line, its markup as text (the page's title is its own) */
        CHECK_CONTAINS(big, "<pre id=\"log\">ticks[0] dash: &lt;script&gt;document.title='pwned'&lt;/script&gt; bell");
        CHECK(strstr(big, "<script>document.title") == NULL);
        CHECK_CONTAINS(big, "<title>SAGE JobManager</title>");
        CHECK_CONTAINS(big, "<option value=\"3\">store [0]</option>");
        /* the actions of a running job */
        CHECK_CONTAINS(big, "<button type=\"button\" data-action=\"pause\">Pause</button>");
        CHECK_CONTAINS(big, "<button type=\"button\" data-action=\"resume\" disabled=\"\">Resume</button>");
        int rows = 0;
        for (const char *p = big; (p = strstr(p, "<tr><td class=\"name\">parse</td>")) != NULL; p++)
            rows++;
        CHECK_INT(rows, 2);
        /* the sink's records in: the 9th cell of its row */
        const char *row = strstr(big, "<tr><td class=\"name\">store</td>");
        for (int cellno = 0; row && cellno < 9; cellno++) /* <tr>, then the cells up to the 9th */
            row = strstr(row + 1, "<td");
        if (row)
            sscanf(strchr(row, '>') + 1, "%lld", &seen[load]);
        CHECK(seen[load] >= 0);
        if (seen[load] < 0)
            fprintf(stderr, "the page:\n%s\n", big);
        if (load == 0) /* a second load later: the job went on */
            pause_ms(1500);
    }
    CHECK(seen[1] > seen[0]);
    if (seen[1] <= seen[0])
        fprintf(stderr, "the sink's records in: %lld, then %lld\n", seen[0], seen[1]);
    end_job(job, go);
    /* the job ended: its own address (#job=1) still shows it, with its last counters and its logs */
    CHECK(wait_state(&d, 1, "finished"));
    CHECK_INT(login_url(&d, url, sizeof url), 0);
    CHECK_INT(run_cmd(big, 1 << 20,
                      "timeout -k 5 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
                      "--user-data-dir=%s.ended --virtual-time-budget=4000 --dump-dom '%s#job=1' 2>/dev/null",
                      profile, url),
              0);
    CHECK_CONTAINS(big, "Job 1 \"dashjob\": finished");
    CHECK_CONTAINS(big, "the counters below are the last each instance reported");
    CHECK_CONTAINS(big, "<pre id=\"log\">ticks[0] dash: &lt;script&gt;");
    CHECK_CONTAINS(big, "(the job ended)");
    CHECK_CONTAINS(big, "<button type=\"button\" data-action=\"cancel\" disabled=\"\">Cancel</button>");
    int rows = 0;
    for (const char *p = big; (p = strstr(p, "<tr><td class=\"name\">parse</td>")) != NULL; p++)
        rows++;
    CHECK_INT(rows, 2);
    daemon_down(&d);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pipeline") == 0)
        return run_pipeline(argv[2], argv[3]);
    CHECK_MAIN(argc, argv);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    big = malloc(1 << 20);
    RUN(login_and_sessions);
    RUN(logs_tail_and_offsets);
    RUN(actions_need_session_and_csrf);
    RUN(ended_job_pages);
    RUN(prometheus_user_metrics);
    RUN(page_in_chromium);
    RUN(restarts_and_cluster);
    RUN(checkpoints_move);
    free(big);
    return CHECK_DONE();
}
