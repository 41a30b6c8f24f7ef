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

/* A record a millisecond until the file $DASH_GO exists: a job that runs, and whose counters move. */
static int trickle(sage_ctx *c, sage_out *o, void *u)
{
    if (access(getenv("DASH_GO"), F_OK) == 0)
        return SAGE_DONE;
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
static int drop(sage_ctx *c, const void *r, size_t n, void *u) { return 0; }

static int run_pipeline(const char *name, const char *jm)
{
    char config[256];
    snprintf(config, sizeof config, "{\"jobmanager\": \"%s\"}", jm);
    sage_env *env = sage_env_create(name, config);
    sage_stream *s = sage_from_source(env, trickle, NULL, &(sage_op_opts){.name = "ticks"});
    s = sage_map(sage_rebalance(s), pass, NULL, &(sage_op_opts){.name = "parse", .parallelism = 2});
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
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", method, target, head ? head : "");
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

static FILE *start_job(const daemon_t *d, const char *go)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "DASH_GO=%s SAGE_HOME=%s timeout -k 5 300 %s pipeline dashjob %s 2>&1", go, d->home, self,
             d->addr);
    fflush(NULL);
    return popen(cmd, "r");
}

static void end_job(FILE *job, const char *go)
{
    int fd = open(go, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    size_t n = job ? fread(big, 1, (1 << 20) - 1, job) : 0;
    big[n] = 0;
    CHECK_INT(job ? WEXITSTATUS(pclose(job)) : -1, 0);
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
    CHECK(http(&d, "POST", "/api/jobs", head) != 200); /* only GET is HTTP here: closed unanswered */
    CHECK(strstr(big, "dashjob") == NULL);
    CHECK_INT(http(&d, "GET", "/", head), 200);
    CHECK_CONTAINS(big, "<script src=\"/app.js\"></script>");
    end_job(job, go);
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

/* The page in Chromium: the job's name, its operators and instance rows, counters that move between two
 * loads; a screenshot for docs/dashboard.md. */
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
    mkdir("artifacts", 0755);
    CHECK_INT(login_url(&d, url, sizeof url), 0);
    CHECK_INT(run_cmd(big, 1 << 20,
                      "timeout -k 5 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
                      "--user-data-dir=%s.shot --virtual-time-budget=4000 --window-size=1400,800 "
                      "--screenshot=artifacts/dashboard.png '%s' 2>/dev/null",
                      profile, url),
              0);
    struct stat st;
    CHECK(stat("artifacts/dashboard.png", &st) == 0 && st.st_size > 10000);
    end_job(job, go);
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
    RUN(prometheus_user_metrics);
    RUN(page_in_chromium);
    free(big);
    return CHECK_DONE();
}
