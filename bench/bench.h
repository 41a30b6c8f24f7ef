/* bench/bench.h - what the benchmark files share: result rows, run options, timing, memory and sizing helpers. */
#ifndef SAGE_BENCH_H
#define SAGE_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------
 * Result rows. Every scenario produces rows; each scenario runs in a forked
 * child (see main.c) that sends its rows to the driver as plain structs
 * through a pipe, so a row holds no pointers.
 * ------------------------------------------------------------------------- */

typedef enum bench_mark {
    MARK_INFO = 0, /* a figure without a target */
    MARK_PASS,
    MARK_SHORT,
    MARK_SKIP,  /* not run (a tool is missing) */
    MARK_NA,    /* not available yet */
    MARK_ERROR, /* the scenario failed */
} bench_mark;

typedef enum bench_goal {
    GOAL_NONE = 0,
    GOAL_GE,     /* value >= target */
    GOAL_LE,     /* value <= target */
    GOAL_P99_LT, /* p99 latency (us) < target */
} bench_goal;

typedef struct bench_row {
    char id[24];   /* short key: "a", "f.p4", "limit.memcpy" */
    char name[64]; /* what was measured, for the table */
    double value;  /* the main figure, in `unit` */
    char unit[12]; /* "rec/s", "B/s", "item/s", "trip/s", "buf/s", "ns/rec", "%", "x", "B" */
    int has_lat;   /* latency percentiles below are set */
    double p50_us, p99_us, p999_us;
    double peak_rss; /* bytes (VmHWM of the process that ran it), 0: not measured */
    bench_goal goal;
    double target; /* in `unit` (microseconds for GOAL_P99_LT) */
    char target_text[32];
    bench_mark mark;
    double ratio;      /* 0: none */
    char ratio_of[24]; /* what the ratio is taken against: "COST", "P=1" */
    char note[112];
    uint64_t records;                   /* records (or items, bytes) per timed run */
    double wall_s, cpu_s;               /* of the best timed run */
    double median_wall_s, worst_wall_s; /* over the timed runs: the noise */
    uint64_t ctxsw;                     /* context switches during the best timed run */
    int reps;
} bench_row;

/* Run options, fixed before the first scenario starts. */
typedef struct bench_opts {
    int quick;
    uint64_t records; /* --records: fixed record count for the throughput scenarios; 0: sized by time */
    double target_s;  /* wall time one timed run should take */
    int reps;         /* timed runs per figure (the best one is kept) */
} bench_opts;

extern bench_opts g_opts;

/* Hand a finished row to the driver (from inside a scenario). */
void bench_emit(const bench_row *row);
/* A row with id, name and unit set, everything else zero. */
bench_row bench_row_new(const char *id, const char *name, const char *unit);
void bench_set_target(bench_row *row, bench_goal goal, double target, const char *text);
/* A failed scenario: print why on stderr; the child then exits non-zero. */
int bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* This program's path (the submitter a JobManager relaunches as a worker): 0, or -1. */
int bench_self_exe(char *buf, size_t len);

/* ---------------------------------------------------------------------------
 * Measurement helpers (util.c).
 * ------------------------------------------------------------------------- */

double bench_now_s(void);    /* monotonic wall clock, seconds */
double bench_cpu_s(void);    /* CPU time of this process (all threads), seconds */
double bench_peak_rss(void); /* VmHWM of this process, bytes; 0 if unknown */

/* One timed run of n records: returns 0 and fills *out, or a negative value
 * after calling bench_fail. CPU time and context switches are the whole
 * process's (every thread), from getrusage. */
typedef struct bench_run {
    double wall_s, cpu_s;
    uint64_t ctxsw; /* voluntary + involuntary context switches */
} bench_run;
typedef struct bench_timer {
    double t0, c0;
    uint64_t s0;
} bench_timer;
void bench_timer_start(bench_timer *t);
void bench_timer_stop(const bench_timer *t, bench_run *out);
typedef int (*bench_run_fn)(uint64_t n, void *arg, bench_run *out);

/* Pick n so that one run takes about g_opts.target_s (starting from n0,
 * never below n_min; --records overrides), then keep the best of g_opts.reps
 * runs. Fills row->records, wall_s, cpu_s, reps and sets value = n / wall.
 * Returns 0 or negative on failure. */
int bench_measure(bench_row *row, bench_run_fn fn, void *arg, uint64_t n0, uint64_t n_min);
/* The best of `reps` runs at exactly n records (no sizing). */
int bench_measure_fixed(bench_row *row, bench_run_fn fn, void *arg, uint64_t n, int reps);

/* Human-readable quantities for notes. */
void bench_fmt_rate(char *buf, size_t len, double v, const char *unit);

/* ---------------------------------------------------------------------------
 * Output (report.c): the table on stdout and the same rows as JSON.
 * ------------------------------------------------------------------------- */
typedef struct bench_meta {
    const char *mode; /* "quick" or "full" */
    char date[32];    /* UTC, ISO 8601 */
    char host[160];   /* kernel, machine, CPUs */
    int cpus;
    double total_s;
} bench_meta;

void bench_fmt_value(char *buf, size_t len, const bench_row *row); /* "123 M rec/s" */
void report_table(const bench_row *rows, size_t n, const bench_meta *meta);
int report_json(const char *path, const bench_row *rows, size_t n, const bench_meta *meta);

/* ---------------------------------------------------------------------------
 * Scenarios. Each runs in its own forked child, emits its rows and returns 0,
 * or returns negative after bench_fail. `arg` is scenario-specific (a
 * parallelism, a power of ten); 0 when unused.
 * ------------------------------------------------------------------------- */
typedef int (*bench_scenario_fn)(int arg);

/* baselines.c: the limits of this machine, measured in the same run. */
int limit_rss_floor(int arg);
int limit_memcpy(int arg);
int limit_spsc(int arg);
int limit_wake(int arg);
int limit_tcp(int arg);
int limit_unix(int arg); /* socketpair between two processes, 64 KiB writes: the floor under (h) */
int limit_cost(int arg);
/* scenarios.c: (a) (b) (c), (f) and (g). */
int scen_chain(int arg);
int scen_rebalance(int arg);
int scen_chain_batch(int arg);     /* (a.batch) */
int scen_rebalance_batch(int arg); /* (b.batch) */
int scen_keyed(int arg);
int scen_parallelism(int arg);         /* arg: parallelism P */
int scen_parallelism_grouped(int arg); /* the same on one thread per CPU (config chain_threads) */
int scen_size(int arg);                /* arg: log10 of the record count */
int scen_memory(int arg);              /* arg: log10 of the record count */
/* wordcount.c: (d). latency.c: (e). gst.c: the GStreamer peer. */
int scen_wordcount(int arg);
int scen_latency(int arg);
int peer_gst(int arg);
int peer_tbb(int arg); /* oneTBB flow graphs for (a), (b), (c): 1 record per message and 4096 per message */
int peer_zmq(int arg); /* ZeroMQ PUSH/PULL for (h): ipc and tcp, 1 record per message and 64 KiB messages */
/* remote.c: (h) across worker processes under a JobManager the scenario starts itself. */
int scen_ckpt_chain(int arg); /* (k) checkpoints: (a) and (c) while checkpointing, one checkpoint of 1M keys */
int scen_ckpt_keyed(int arg);
int scen_ckpt_size(int arg);
int scen_ckpt_align(int arg);
/* Checkpoints for a bench pipeline: pipe_config set to the checkpoint strategy at this interval, into a fresh
 * directory (removed by bench_ckpt_end). */
int bench_ckpt_begin(double interval);
void bench_ckpt_end(void);
int scen_remote_small(int arg);   /* (h1) 8 B records, records/s */
int scen_remote_large(int arg);   /* (h2) 4 KiB records, bytes/s */
int scen_remote_first(int arg);   /* (h3) submit to first record */
int scen_remote_recover(int arg); /* (h4) worker death to records flowing again (restart strategy) */
/* `sage-bench --worker-pipeline ...`: the submitter of an (h) job, and every
 * worker the JobManager relaunches from it with the same argv. */
int bench_worker_main(int argc, char **argv);
/* slurm3.c: (i) a pipeline across three Slurm hosts (bench/slurm3.sh builds them; needs root and Slurm), and
 * `sage-bench --worker-slurm3 ...`, its submitter and workers. */
int scen_slurm3(int arg);
int bench_slurm3_worker_main(int argc, char **argv);

#endif
