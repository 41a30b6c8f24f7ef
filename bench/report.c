/* bench/report.c - the result table (stdout) and the same rows as JSON. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sage/sage.h>

#include "bench.h"

static const char *mark_text(bench_mark m)
{
    switch (m) {
    case MARK_PASS: return "PASS";
    case MARK_SHORT: return "SHORT";
    case MARK_SKIP: return "SKIP";
    case MARK_NA: return "N/A";
    case MARK_ERROR: return "ERROR";
    case MARK_INFO: break;
    }
    return "";
}

/* The main figure with its unit, scaled for reading. */
void bench_fmt_value(char *buf, size_t len, const bench_row *r)
{
    const char *u = r->unit;
    double v = r->value;
    if (r->mark == MARK_SKIP || r->mark == MARK_NA || r->mark == MARK_ERROR)
        snprintf(buf, len, "-");
    else if (strcmp(u, "rec/s") == 0 || strcmp(u, "buf/s") == 0)
        bench_fmt_rate(buf, len, v, u);
    else if (strcmp(u, "item/s") == 0)
        bench_fmt_rate(buf, len, v, "items/s");
    else if (strcmp(u, "trip/s") == 0)
        bench_fmt_rate(buf, len, v, "trips/s");
    else if (strcmp(u, "B/s") == 0)
        snprintf(buf, len, v >= 1e9 ? "%.2f GB/s" : "%.1f MB/s", v >= 1e9 ? v / 1e9 : v / 1e6);
    else if (strcmp(u, "B") == 0)
        snprintf(buf, len, "%.1f MB", fabs(v) < 0.05e6 ? 0.0 : v / 1e6); /* no "-0.0" */
    else if (strcmp(u, "ns/rec") == 0)
        snprintf(buf, len, "%.2f ns/rec", v);
    else if (strcmp(u, "ns/dec") == 0)
        snprintf(buf, len, "%+.2f ns/dec", v);
    else if (strcmp(u, "%") == 0)
        snprintf(buf, len, "%.1f %%", v);
    else if (strcmp(u, "ms") == 0)
        snprintf(buf, len, "%.1f ms", v);
    else if (strcmp(u, "x") == 0)
        snprintf(buf, len, "%.2f x", v);
    else
        snprintf(buf, len, "%g %s", v, u);
}

static void fmt_us(char *buf, size_t len, int has, double us)
{
    if (!has)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, us >= 100 ? "%.0f" : "%.1f", us);
}

static const char *group_of(const char *id)
{
    if (strncmp(id, "limit.", 6) == 0)
        return "Limits of this machine (same run)";
    if (strncmp(id, "peer.tbb", 8) == 0)
        return "Peer: oneTBB flow graph, 2 threads (same run)";
    if (strncmp(id, "peer.zmq", 8) == 0)
        return "Peer: ZeroMQ between two processes (same run)";
    if (strncmp(id, "peer.", 5) == 0)
        return "Peer: GStreamer (same run)";
    switch (id[0]) {
    case 'a':
    case 'b':
    case 'c':
    case 'd': return "Throughput";
    case 'e': return "Latency (microseconds)";
    case 'f': return "Scaling";
    case 'g': return "Memory";
    case 'h':
    case 'i': return "Cross-process";
    case 'k': return "Checkpoints (same pipelines as (a), (c))";
    }
    return "Other";
}

void report_table(const bench_row *rows, size_t n, const bench_meta *m)
{
    printf("\nSAGE %s benchmark (%s mode) - %s - %s\n", sage_version(), m->mode, m->date, m->host);
    printf("Each figure is the best of its runs; on a shared host compare figures only as ratios within one run.\n");
    const char *fmt = "%-42s %15s %7s %7s %7s %9s  %-15s %-5s  %s\n";
    printf("\n");
    printf(fmt, "scenario", "result", "p50", "p99", "p99.9", "peak RSS", "target", "mark", "ratio; notes");
    const char *group = NULL;
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        const char *g = group_of(r->id);
        if (!group || strcmp(g, group) != 0) {
            printf("-- %s\n", g);
            group = g;
        }
        char val[40], p50[16], p99[16], p999[16], rss[16], tail[200];
        bench_fmt_value(val, sizeof val, r);
        fmt_us(p50, sizeof p50, r->has_lat, r->p50_us);
        fmt_us(p99, sizeof p99, r->has_lat, r->p99_us);
        fmt_us(p999, sizeof p999, r->has_lat, r->p999_us);
        if (r->peak_rss > 0)
            snprintf(rss, sizeof rss, "%.1f MB", r->peak_rss / 1e6);
        else
            snprintf(rss, sizeof rss, "-");
        if (r->ratio > 0)
            snprintf(tail, sizeof tail, "%.2fx %s%s%s", r->ratio, r->ratio_of, r->note[0] ? "; " : "", r->note);
        else
            snprintf(tail, sizeof tail, "%s", r->note);
        printf(fmt, r->name, val, p50, p99, p999, rss, r->target_text[0] ? r->target_text : "-", mark_text(r->mark),
               tail);
    }
    int pass = 0, shortc = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        pass += rows[i].mark == MARK_PASS;
        shortc += rows[i].mark == MARK_SHORT;
        err += rows[i].mark == MARK_ERROR;
    }
    printf("\ntargets: %d PASS, %d SHORT; ", pass, shortc);
    if (err)
        printf("%d scenario(s) FAILED (see ERROR rows); ", err);
    printf("%.0f s in all\n", m->total_s);
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

int report_json(const char *path, const bench_row *rows, size_t n, const bench_meta *m)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return bench_fail("cannot write %s", path);
    fprintf(f, "{\n  \"suite\": \"sage-bench\",\n  \"sage_version\": ");
    json_str(f, sage_version());
    fprintf(f, ",\n  \"mode\": ");
    json_str(f, m->mode);
    fprintf(f, ",\n  \"date\": ");
    json_str(f, m->date);
    fprintf(f, ",\n  \"host\": ");
    json_str(f, m->host);
    fprintf(f, ",\n  \"cpus\": %d,\n  \"total_seconds\": ", m->cpus);
    json_num(f, m->total_s);
    fprintf(f, ",\n  \"rows\": [\n");
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        fprintf(f, "    {\"id\": ");
        json_str(f, r->id);
        fprintf(f, ", \"name\": ");
        json_str(f, r->name);
        fprintf(f, ", \"value\": ");
        json_num(f, r->mark == MARK_SKIP || r->mark == MARK_NA || r->mark == MARK_ERROR ? NAN : r->value);
        fprintf(f, ", \"unit\": ");
        json_str(f, r->unit);
        if (r->has_lat) {
            fprintf(f, ", \"p50_us\": ");
            json_num(f, r->p50_us);
            fprintf(f, ", \"p99_us\": ");
            json_num(f, r->p99_us);
            fprintf(f, ", \"p999_us\": ");
            json_num(f, r->p999_us);
        }
        fprintf(f, ", \"peak_rss_bytes\": ");
        json_num(f, r->peak_rss > 0 ? r->peak_rss : NAN);
        fprintf(f, ", \"target\": ");
        json_str(f, r->target_text);
        fprintf(f, ", \"mark\": ");
        json_str(f, r->mark == MARK_INFO ? "INFO" : mark_text(r->mark));
        fprintf(f, ", \"ratio\": ");
        json_num(f, r->ratio > 0 ? r->ratio : NAN);
        fprintf(f, ", \"ratio_of\": ");
        json_str(f, r->ratio_of);
        fprintf(f, ", \"records\": %llu, \"reps\": %d, \"wall_s\": ", (unsigned long long)r->records, r->reps);
        json_num(f, r->wall_s);
        if (r->reps > 1) {
            fprintf(f, ", \"median_wall_s\": ");
            json_num(f, r->median_wall_s);
            fprintf(f, ", \"worst_wall_s\": ");
            json_num(f, r->worst_wall_s);
        }
        fprintf(f, ", \"cpu_s\": ");
        json_num(f, r->cpu_s);
        fprintf(f, ", \"context_switches\": %llu", (unsigned long long)r->ctxsw);
        fprintf(f, ", \"note\": ");
        json_str(f, r->note);
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0)
        return bench_fail("writing %s failed", path);
    return 0;
}
