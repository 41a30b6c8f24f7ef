/* jobmanager/http.c - Prometheus text metrics on the JobManager's port (GET /metrics with the token as bearer). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "jobmanager/jm.h"

/* Append raw bytes (HTTP, not frames) to the connection's bounded write buffer. */
static void send_raw(jm_conn *c, const char *data, size_t len)
{
    size_t need = c->wlen + len;
    if (need > JM_WBUF_MAX)
        return;
    if (need > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(c->wbuf, cap);
        if (!p)
            return;
        c->wbuf = p;
        c->wcap = cap;
    }
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
}

static void reply(jm_conn *c, const char *status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, strlen(body));
    /* through the connection's bounded write buffer, flushed by the loop like any reply */
    send_raw(c, head, (size_t)n);
    send_raw(c, body, strlen(body));
    c->closing = 1;
    c->rlen = 0;
}

static void metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        if (*cap >= (8u << 20))
            return; /* bounded */
        char *p = realloc(*buf, *cap * 2);
        if (!p)
            return;
        *buf = p;
        *cap *= 2;
    }
}

void jm_http(jm *d, jm_conn *c)
{
    if (c->rlen > 8192) {
        reply(c, "431 Request Header Fields Too Large", "request too large\n");
        return;
    }
    c->rbuf[c->rlen < c->rcap ? c->rlen : c->rcap - 1] = 0;
    const char *end = strstr((const char *)c->rbuf, "\r\n\r\n");
    if (!end)
        return; /* the headers are not all here yet */
    if (strncmp((const char *)c->rbuf, "GET /metrics ", 13) != 0) {
        reply(c, "404 Not Found", "only GET /metrics is served here\n");
        return;
    }
    char want[SAGE__TOKEN_HEX + 32];
    snprintf(want, sizeof want, "Authorization: Bearer %s\r\n", d->token);
    if (!strstr((const char *)c->rbuf, want)) {
        jm_log(d, "closing %s: metrics request without the token", c->peer);
        reply(c, "401 Unauthorized", "send the JobManager token as: Authorization: Bearer <token>\n");
        return;
    }
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        reply(c, "500 Internal Server Error", "out of memory\n");
        return;
    }
    buf[0] = 0;
    int live[7] = {0};
    for (jm_job *j = d->jobs; j; j = j->next)
        live[j->state]++;
    metric(&buf, &len, &cap, "# HELP sage_jobs Jobs the JobManager is running, by state.\n# TYPE sage_jobs gauge\n");
    for (int s = JJ_PENDING; s <= JJ_PAUSED; s++)
        metric(&buf, &len, &cap, "sage_jobs{state=\"%s\"} %d\n", jm_job_state_name((jm_job_state)s), live[s]);
    metric(&buf, &len, &cap,
           "# TYPE sage_task_records_in_total counter\n# TYPE sage_task_records_out_total counter\n"
           "# TYPE sage_task_processing_time_seconds summary\n# TYPE sage_task_queue_depth gauge\n"
           "# TYPE sage_task_backpressure_seconds_total counter\n# TYPE sage_task_peak_memory_bytes gauge\n");
    for (jm_job *j = d->jobs; j; j = j->next)
        for (size_t t = 0; t < j->ntasks; t++) {
            jm_task *k = &j->tasks[t];
            json_t *ops = json_object_get(k->metrics, "operators");
            size_t i;
            json_t *o;
            json_array_foreach(ops, i, o)
            {
                const char *name = json_string_value(json_object_get(o, "name"));
                char lab[320];
                snprintf(lab, sizeof lab, "job=\"%lld\",operator=\"%s\",instance=\"%d\"", (long long)j->id,
                         name ? name : "?", k->instance);
                metric(&buf, &len, &cap, "sage_task_records_in_total{%s} %lld\n", lab,
                       (long long)json_integer_value(json_object_get(o, "records_in")));
                metric(&buf, &len, &cap, "sage_task_records_out_total{%s} %lld\n", lab,
                       (long long)json_integer_value(json_object_get(o, "records_out")));
            }
            char lab[320];
            snprintf(lab, sizeof lab, "job=\"%lld\",operator=\"%s\",instance=\"%d\"", (long long)j->id, k->op,
                     k->instance);
            /* per task: the head operator's per-record time, averaged per batch */
            json_t *pt = json_object_get(k->metrics, "processing_time_ns");
            if (pt && json_number_value(json_object_get(pt, "p50")) > 0) {
                metric(&buf, &len, &cap, "sage_task_processing_time_seconds{%s,quantile=\"0.5\"} %.9f\n", lab,
                       json_number_value(json_object_get(pt, "p50")) / 1e9);
                metric(&buf, &len, &cap, "sage_task_processing_time_seconds{%s,quantile=\"0.99\"} %.9f\n", lab,
                       json_number_value(json_object_get(pt, "p99")) / 1e9);
            }
            metric(&buf, &len, &cap, "sage_task_queue_depth{%s} %lld\n", lab,
                   (long long)json_integer_value(json_object_get(k->metrics, "queue_depth")));
            metric(&buf, &len, &cap, "sage_task_backpressure_seconds_total{%s} %.6f\n", lab,
                   json_number_value(json_object_get(k->metrics, "backpressure_ns")) / 1e9);
            if (k->has_cg)
                metric(&buf, &len, &cap, "sage_task_peak_memory_bytes{%s} %llu\n", lab,
                       (unsigned long long)sage__cgroup_peak(&k->cg));
        }
    reply(c, "200 OK", buf);
    free(buf);
}
