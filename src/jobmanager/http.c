/* jobmanager/http.c - HTTP on the JobManager's port: Prometheus text metrics (GET /metrics, the token as bearer); the rest is the dashboard's.
 *
 * The token is taken from the Authorization header only (http_head.c
 * parses header lines; the name in any case), as "Bearer <token>", and
 * compared in constant time (sage__token_equal). Until it is presented the
 * connection is unauthenticated: the limits of conn.c apply (its head is
 * at most SAGE__HTTP_HEAD_MAX bytes and must arrive within the handshake
 * time). Label values (operator names) are escaped as the exposition format
 * wants (backslash, double quote, newline), so a name cannot add series.
 */
#include <string.h>
#include <strings.h>

#include "backend/backend.h" /* sage__hist_from_json */
#include "jobmanager/http.h"
#include "jobmanager/jm.h"
#include "util/err.h"
#include "util/utf8.h"

#define METRICS_MAX (8u << 20)

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 431: return "431 Request Header Fields Too Large";
    case 505: return "505 HTTP Version Not Supported";
    default: return "500 Internal Server Error";
    }
}

/* The whole answer, through the connection's bounded write buffer (flushed by the loop like any reply);
 * then the connection closes. */
static void reply(jm_conn *c, int status, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\nConnection: "
                     "close\r\n\r\n",
                     status_text(status), len);
    if (sage__buf_append(&c->wbuf, head, (size_t)n) == 0)
        sage__buf_append(&c->wbuf, body, len);
    c->closing = 1;
    c->rbuf.len = 0;
}

static void reply_text(jm_conn *c, int status, const char *text) { reply(c, status, text, strlen(text)); }

/* "Bearer <token>" (the scheme in any case) with the daemon's token. */
static int authorized(const jm *d, const char *auth)
{
    if (strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    auth += 7;
    while (*auth == ' ')
        auth++;
    return sage__token_equal(auth, d->token);
}

/* A label value as the text exposition format wants it: \\, \" and \n escaped; other control bytes and
 * invalid UTF-8 as '?'. */
static const char *label(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (const char *p = in ? in : ""; *p && o + 3 < cap; p++) {
        char ch = *p;
        if (ch == '\\' || ch == '"' || ch == '\n') {
            out[o++] = '\\';
            out[o++] = ch == '\n' ? 'n' : ch;
        } else {
            out[o++] = (unsigned char)ch < 0x20 || ch == 0x7f ? '?' : ch;
        }
    }
    out[o] = '\0';
    sage__utf8_clean(out, o);
    return out;
}

/* The user counters and histograms (sage_ctx_counter_add, sage_ctx_observe) of task k's operators, as its
 * worker last reported them: counters as sage_user_counter_total, histograms as the summary
 * sage_user_histogram (p50, p99, _sum, _count); the user's name is a label (counter="...", histogram="..."),
 * never part of a metric name. */
static void user_metrics(sage__buf *b, const jm_job *j, const jm_task *k, int hists, int *bad)
{
    json_t *ops = json_object_get(k->metrics, "operators"), *o;
    size_t i;
    json_array_foreach(ops, i, o)
    {
        char lab[900], name[400], mname[200];
        const char *n = json_string_value(json_object_get(o, "name"));
        const char *key;
        json_t *m;
        json_object_foreach(json_object_get(o, "user"), key, m)
        {
            sage__fmt(lab, sizeof lab, "job=\"%lld\",operator=\"%s\",instance=\"%d\"", (long long)j->id,
                      label(name, sizeof name, n ? n : "?"), k->instance);
            json_t *h = json_object_get(m, "hist");
            if (!h != !hists)
                continue; /* one family at a time: a family's samples stay together */
            if (!h) {
                *bad |= sage__buf_printf(b, "sage_user_counter_total{%s,counter=\"%s\"} %lld\n", lab,
                                         label(mname, sizeof mname, key),
                                         (long long)json_integer_value(json_object_get(m, "counter"))) != 0;
                continue;
            }
            sage__hist hist;
            sage__hist_from_json(&hist, h);
            label(mname, sizeof mname, key);
            *bad |= sage__buf_printf(b,
                                     "sage_user_histogram{%s,histogram=\"%s\",quantile=\"0.5\"} %.9g\n"
                                     "sage_user_histogram{%s,histogram=\"%s\",quantile=\"0.99\"} %.9g\n"
                                     "sage_user_histogram_sum{%s,histogram=\"%s\"} %.9g\n"
                                     "sage_user_histogram_count{%s,histogram=\"%s\"} %llu\n",
                                     lab, mname, sage__hist_quantile(&hist, 0.5), lab, mname,
                                     sage__hist_quantile(&hist, 0.99), lab, mname, hist.sum, lab, mname,
                                     (unsigned long long)hist.count) != 0;
            sage__hist_free(&hist);
        }
    }
}

/* Every metric of the live jobs; 0, or -1 when it does not fit METRICS_MAX. */
static int metrics_text(jm *d, sage__buf *b)
{
    int bad = 0;
#define M(...) (bad |= sage__buf_printf(b, __VA_ARGS__) != 0)
    int live[JJ_CANCELED + 1] = {0};
    for (jm_job *j = d->jobs; j; j = j->next)
        live[j->state]++;
    M("# HELP sage_jobs Jobs the JobManager is running, by state.\n# TYPE sage_jobs gauge\n");
    for (int s = JJ_PENDING; s <= JJ_PAUSED; s++)
        M("sage_jobs{state=\"%s\"} %d\n", jm_job_state_name((jm_job_state)s), live[s]);
    M("# HELP sage_job_restarts_total Restarts a live job's fault_tolerance made.\n"
      "# TYPE sage_job_restarts_total counter\n");
    for (jm_job *j = d->jobs; j; j = j->next)
        if (j->ft.strategy != SAGE__FT_NONE)
            M("sage_job_restarts_total{job=\"%lld\"} %d\n", (long long)j->id, j->restarts);
    M("# HELP sage_job_checkpoints_total Checkpoints a live job committed (strategy checkpoint).\n"
      "# TYPE sage_job_checkpoints_total counter\n");
    for (jm_job *j = d->jobs; j; j = j->next)
        if (j->ck.on)
            M("sage_job_checkpoints_total{job=\"%lld\"} %llu\n", (long long)j->id, (unsigned long long)j->ck.completed);
    M("# TYPE sage_task_records_in_total counter\n# TYPE sage_task_records_out_total counter\n"
      "# TYPE sage_task_processing_time_seconds summary\n# TYPE sage_task_queue_depth gauge\n"
      "# TYPE sage_task_backpressure_seconds_total counter\n# TYPE sage_task_peak_memory_bytes gauge\n");
    for (jm_job *j = d->jobs; j && !bad; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            json_t *ops = json_object_get(k->metrics, "operators");
            size_t i;
            json_t *o;
            char lab[640], name[400];
            json_array_foreach(ops, i, o)
            {
                const char *n = json_string_value(json_object_get(o, "name"));
                sage__fmt(lab, sizeof lab, "job=\"%lld\",operator=\"%s\",instance=\"%d\"", (long long)j->id,
                          label(name, sizeof name, n ? n : "?"), k->instance);
                M("sage_task_records_in_total{%s} %lld\n", lab,
                  (long long)json_integer_value(json_object_get(o, "records_in")));
                M("sage_task_records_out_total{%s} %lld\n", lab,
                  (long long)json_integer_value(json_object_get(o, "records_out")));
            }
            sage__fmt(lab, sizeof lab, "job=\"%lld\",operator=\"%s\",instance=\"%d\"", (long long)j->id,
                      label(name, sizeof name, k->op), k->instance);
            /* per task: the head operator's per-record time, averaged per batch */
            json_t *pt = json_object_get(k->metrics, "processing_time_ns");
            if (pt && json_number_value(json_object_get(pt, "p50")) > 0) {
                M("sage_task_processing_time_seconds{%s,quantile=\"0.5\"} %.9f\n", lab,
                  json_number_value(json_object_get(pt, "p50")) / 1e9);
                M("sage_task_processing_time_seconds{%s,quantile=\"0.99\"} %.9f\n", lab,
                  json_number_value(json_object_get(pt, "p99")) / 1e9);
            }
            M("sage_task_queue_depth{%s} %lld\n", lab,
              (long long)json_integer_value(json_object_get(k->metrics, "queue_depth")));
            M("sage_task_backpressure_seconds_total{%s} %.6f\n", lab,
              json_number_value(json_object_get(k->metrics, "backpressure_ns")) / 1e9);
            if (k->has_cg)
                M("sage_task_peak_memory_bytes{%s} %llu\n", lab, (unsigned long long)sage__cgroup_peak(&k->cg));
        }
    M("# HELP sage_user_counter_total A user counter of an operator instance (sage_ctx_counter_add).\n"
      "# TYPE sage_user_counter_total counter\n");
    for (int hists = 0; hists < 2 && !bad; hists++) {
        if (hists)
            M("# HELP sage_user_histogram A user histogram of an operator instance (sage_ctx_observe), in its own "
              "unit.\n# TYPE sage_user_histogram summary\n");
        for (jm_job *j = d->jobs; j && !bad; j = j->next)
            for (size_t t = 0; t < j->ntasks; t++)
                user_metrics(b, j, &j->tasks[t], hists, &bad);
    }
#undef M
    return bad ? -1 : 0;
}

void jm_http(jm *d, jm_conn *c)
{
    sage__http_head h;
    int r = sage__http_parse_head(c->rbuf.p, c->rbuf.len, &h);
    if (r == SAGE__HTTP_MORE)
        return; /* the head is not all here yet */
    if (r != SAGE__HTTP_COMPLETE) {
        jm_log_refused(d, "closing %s: bad HTTP request: %s", c->peer, h.error);
        char body[200];
        sage__fmt(body, sizeof body, "%s\n", h.error);
        reply_text(c, h.status, body);
        return;
    }
    if (strcmp(h.target, "/metrics") != 0) { /* everything else is the dashboard's */
        jm_dashboard(d, c, &h);
        return;
    }
    if (strcmp(h.method, "GET") != 0) {
        reply_text(c, 405, "only GET /metrics is served here\n");
        return;
    }
    if (!authorized(d, h.authorization)) {
        jm_log_refused(d, "closing %s: metrics request without the token", c->peer);
        reply_text(c, 401, "send the JobManager token as: Authorization: Bearer <token>\n");
        return;
    }
    c->http_ok = 1; /* its answer may take longer to leave than the handshake limit */
    sage__buf b;
    sage__buf_init(&b, METRICS_MAX);
    if (metrics_text(d, &b) != 0)
        reply_text(c, 500, "the metrics exceed 8 MiB\n");
    else
        reply(c, 200, sage__buf_cstr(&b), b.len);
    sage__buf_free(&b);
}
