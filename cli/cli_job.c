/* cli/cli_job.c - `sage job list | status | pause | resume | stop | cancel | logs`: a JobManager's jobs.
 *
 * Every string a table shows that a user chose (job and operator names, failure messages, which quote
 * worker output) is printed escaped (util/escape.h): a newline shows as \n, an escape sequence as \e[...,
 * so a name cannot forge a row or drive the terminal. `--json` prints the exact text, JSON-escaped. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "cli.h"
#include "util/escape.h"

/* A string of the JobManager's answer, escaped for a table ("" when absent). */
static const char *esc(json_t *obj, const char *key, char *buf, size_t cap)
{
    return sage__escape_str(buf, cap, json_string_value(json_object_get(obj, key)));
}

static void human_bytes(char *buf, size_t len, double b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    if (b == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, i ? "%.1f%s" : "%.0f%s", b, u[i]);
}

static void human_ns(char *buf, size_t len, double ns)
{
    if (ns <= 0)
        snprintf(buf, len, "-");
    else if (ns < 10e3)
        snprintf(buf, len, "%.0fns", ns);
    else if (ns < 10e6)
        snprintf(buf, len, "%.1fus", ns / 1e3);
    else if (ns < 10e9)
        snprintf(buf, len, "%.1fms", ns / 1e6);
    else
        snprintf(buf, len, "%.1fs", ns / 1e9);
}

static void human_time(char *buf, size_t len, int64_t ms)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

int cli_job_list(const cli_opts *o)
{
    json_t *r;
    int ec = cli_request(o, json_pack("{s:s}", "op", "list"), &r);
    if (ec)
        return ec;
    json_t *jobs = json_object_get(r, "jobs");
    if (o->json) {
        cli_print_json(jobs);
        json_decref(r);
        return 0;
    }
    printf("%-6s %-24s %-9s %-19s %9s  %s\n", "ID", "NAME", "STATE", "SUBMITTED", "DURATION", "REASON");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        char sub[32], dur[32] = "-";
        human_time(sub, sizeof sub, json_integer_value(json_object_get(j, "submitted_ms")));
        int64_t st = json_integer_value(json_object_get(j, "started_ms")),
                en = json_integer_value(json_object_get(j, "ended_ms"));
        if (st > 0)
            snprintf(dur, sizeof dur, "%.1fs", (double)((en > 0 ? en : st) - st) / 1000.0);
        char reason[96], name[512], state[64];
        printf("%-6lld %-24s %-9s %-19s %9s  %s\n", json_integer_value(json_object_get(j, "job_id")),
               esc(j, "name", name, sizeof name), esc(j, "state", state, sizeof state), sub,
               en > 0 ? dur : (st > 0 ? "running" : "-"), esc(j, "error", reason, sizeof reason));
    }
    json_decref(r);
    return 0;
}

int cli_job_status(const cli_opts *o, json_int_t id)
{
    json_t *r;
    int ec = cli_request(o, json_pack("{s:s,s:I}", "op", "status", "job_id", id), &r);
    if (ec)
        return ec;
    if (o->json) {
        cli_print_json(r);
        json_decref(r);
        return 0;
    }
    const char *err = json_string_value(json_object_get(r, "error"));
    char name[512], state[64], reason[8192];
    printf("job %lld \"%s\": %s\n", (long long)id, esc(r, "name", name, sizeof name),
           esc(r, "state", state, sizeof state));
    if (err && *err)
        printf("reason: %s\n", esc(r, "error", reason, sizeof reason));
    json_t *restarts = json_object_get(r, "restarts"), *in = json_object_get(r, "restart_in_ms");
    if (restarts) { /* its fault_tolerance restarts it */
        printf("restarts: %lld", (long long)json_integer_value(restarts));
        if (in)
            printf(" (the next in %.1f s)", (double)json_integer_value(in) / 1e3);
        printf("\n");
        if (json_object_get(r, "last_failure")) {
            char when[32];
            human_time(when, sizeof when, json_integer_value(json_object_get(r, "last_failure_at_ms")));
            printf("last failure (%s): %s\n", when, esc(r, "last_failure", reason, sizeof reason));
        }
    }
    json_t *ck = json_object_get(r, "checkpoints");
    if (ck) { /* the checkpoint strategy */
        printf("checkpoints: %lld committed, %lld abandoned",
               (long long)json_integer_value(json_object_get(ck, "completed")),
               (long long)json_integer_value(json_object_get(ck, "abandoned")));
        if (json_object_get(ck, "last_path")) {
            char when[32], path[2048], sz[16];
            human_time(when, sizeof when, json_integer_value(json_object_get(ck, "last_at_ms")));
            human_bytes(sz, sizeof sz, (double)json_integer_value(json_object_get(ck, "last_bytes")));
            printf("; the last %lld (%s, %s): %s", (long long)json_integer_value(json_object_get(ck, "last_id")), when,
                   sz, esc(ck, "last_path", path, sizeof path));
        }
        printf("\n");
    }
    printf("%-18s %4s %-8s %7s %-10s %-8s %-5s %9s %9s %10s %10s %10s %9s %9s %5s %9s\n", "OPERATOR", "INST", "STATE",
           "PID", "HOST", "CPUS", "GPUS", "MEM_LIMIT", "PEAK_MEM", "IN", "OUT", "REC/S", "P50", "P99", "QUEUE",
           "BACKPRESS");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(r, "tasks"), i, t)
    {
        json_t *m = json_object_get(t, "metrics");
        json_t *ops = json_object_get(m, "operators");
        json_t *head = json_array_get(ops, 0), *tail = json_array_get(ops, json_array_size(ops) - 1);
        char lim[16], peak[16], p50[16] = "-", p99[16] = "-", bp[16] = "-";
        human_bytes(lim, sizeof lim, json_number_value(json_object_get(t, "memory_limit")));
        human_bytes(peak, sizeof peak, json_number_value(json_object_get(t, "peak_memory")));
        json_t *pt = json_object_get(m, "processing_time_ns");
        if (pt && json_number_value(json_object_get(pt, "p50")) > 0) {
            human_ns(p50, sizeof p50, json_number_value(json_object_get(pt, "p50")));
            human_ns(p99, sizeof p99, json_number_value(json_object_get(pt, "p99")));
        }
        if (m)
            snprintf(bp, sizeof bp, "%.3fs", json_number_value(json_object_get(m, "backpressure_ns")) / 1e9);
        char op[512], tstate[64], host[256], cpus[1100], gpus[300];
        esc(t, "operator", op, sizeof op);
        esc(t, "cpus", cpus, sizeof cpus);
        esc(t, "gpus", gpus, sizeof gpus);
        esc(t, "host", host, sizeof host);
        printf("%-18s %4lld %-8s %7lld %-10s %-8s %-5s %9s %9s %10lld %10lld %10.0f %9s %9s %5lld %9s\n", op,
               json_integer_value(json_object_get(t, "instance")), esc(t, "state", tstate, sizeof tstate),
               json_integer_value(json_object_get(t, "pid")), host[0] ? host : "-", cpus[0] ? cpus : "-",
               gpus[0] ? gpus : "-", lim, peak, json_integer_value(json_object_get(head, "records_in")),
               json_integer_value(json_object_get(tail, "records_out")),
               json_number_value(json_object_get(m, "records_per_s")), p50, p99,
               json_integer_value(json_object_get(m, "queue_depth")), bp);
    }
    json_decref(r);
    return 0;
}

int cli_job_control(const cli_opts *o, const char *action, json_int_t id)
{
    json_t *r, *req = json_pack("{s:s,s:I}", "op", action, "job_id", id);
    if (req && o->stop_timeout_ms >= 0) /* the grace before what still runs is killed */
        json_object_set_new(req, "timeout_ms", json_integer(o->stop_timeout_ms));
    if (req && o->savepoint) { /* a final checkpoint there first: the reply comes once it is durable */
        char abs[4096];
        if (o->savepoint[0] != '/' && getcwd(abs, sizeof abs - 1024))
            snprintf(abs + strlen(abs), sizeof abs - strlen(abs), "/%s", o->savepoint);
        else
            snprintf(abs, sizeof abs, "%s", o->savepoint);
        json_object_set_new(req, "savepoint", json_string(abs));
    }
    int ec = cli_request(o, req, &r);
    if (ec)
        return ec;
    if (o->savepoint)
        printf("job %lld: savepoint %s taken; stop requested\n", (long long)id,
               json_string_value(json_object_get(r, "savepoint")) ?: o->savepoint);
    else
        printf("job %lld: %s requested\n", (long long)id, action);
    json_decref(r);
    return 0;
}

/* The JobManager streams the logs: "logs" events with chunks of text, then an OK that says whether the job
 * is live; with --follow, more "logs" chunks as the job writes, until "end". */
int cli_job_logs(const cli_opts *o, json_int_t id)
{
    sage_client *c;
    int ec = cli_connect(o, &c);
    if (ec)
        return ec;
    json_t *req = json_pack("{s:s,s:I,s:b}", "op", "logs", "job_id", id, "follow", o->follow);
    char *txt = json_dumps(req, JSON_COMPACT), err[4096];
    json_decref(req);
    char *ev = NULL;
    int rc = sage_client_request(c, txt, &ev, err, sizeof err); /* its first frame */
    free(txt);
    int streaming = 1, following = 0;
    while (rc == 0 && (streaming || following)) {
        json_error_t jerr;
        if (!ev && (rc = sage_client_event(c, -1, &ev, err, sizeof err)) != 0)
            break;
        json_t *e = json_loads(ev, 0, &jerr);
        free(ev);
        ev = NULL;
        const char *kind = json_string_value(json_object_get(e, "event"));
        json_t *text = json_object_get(e, "text");
        if (!kind) { /* the reply: the stream is over */
            streaming = 0;
            following = o->follow && json_is_true(json_object_get(e, "live"));
        } else if (strcmp(kind, "logs") == 0 && json_is_string(text)) {
            fwrite(json_string_value(text), 1, json_string_length(text), stdout);
            if (!streaming)
                fflush(stdout); /* following: as it comes */
        } else if (strcmp(kind, "end") == 0) {
            following = 0;
        }
        json_decref(e);
    }
    fflush(stdout);
    sage_client_close(c);
    if (rc != 0) {
        fprintf(stderr, "sage: %s\n", err);
        return EXIT_REFUSED;
    }
    return 0;
}
