/* cli/cluster.h - `sage cluster`: its entry point, and what its files share (state dir, messages, daemons, resources). */
#ifndef SAGE_CLI_CLUSTER_H
#define SAGE_CLI_CLUSTER_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"

/* argv[0] is "cluster"; returns the process exit status (0 done, 1 failed, 2 usage). */
int sage_cluster_main(int argc, char **argv);

/* ---- what the cluster_*.c files share ------------------------------------------------------ */

enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2 };

#define CLUSTER_DEFAULT_PORT 6817
#define CLUSTER_WAIT_MS 30000 /* bound of every wait for a daemon */
#define CLUSTER_POLL_MS 100   /* how often a wait checks */
#define CLUSTER_GRES_MAX 16   /* custom resources per node */

/* cluster_util.c: the state dir, messages, small file and host helpers */
extern char cluster_dir[PATH_MAX]; /* the state dir: <home>/cluster, absolute */
int cluster_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* "sage cluster: ..." -> EX_FAIL */
int cluster_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* the same, -> EX_USAGE */
/* "<state dir>/<fmt...>" into buf (PATH_MAX bytes); returns buf. */
const char *cluster_path(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The --home that names the state dir (cluster_dir without "/cluster"). */
void cluster_home(char *out, size_t len);
void cluster_sleep_ms(int ms);
int cluster_file_exists(const char *path);
int cluster_mkdir_p(const char *path, mode_t mode);
int cluster_write_file(const char *path, const char *content, mode_t mode); /* through a temporary file */
char *cluster_read_file(const char *path);                                  /* at most 1 MiB; NULL if it cannot */
void cluster_rotate_log(const char *log);                                   /* keep the last one as <log>.old */
void cluster_short_hostname(char *out, size_t len);
int cluster_valid_name(const char *s);                          /* a Slurm node name */
int cluster_valid_dir_path(const char *s);                      /* a path Slurm's configuration files take */
int cluster_number(const char *s, long lo, long hi, long *out); /* strict decimal in [lo, hi]: 0 or -1 */
int cluster_have_program(const char *name);
int cluster_need_programs(const char *const *names); /* 0, or the failure printed and EX_FAIL */
int cluster_need_root(void);
int cluster_port_free(int port);
void cluster_default_address(char *out, size_t len);
/* A configuration file being written: bounded (64 KiB); a printf that does not fit marks it failed. */
typedef struct cluster_text {
    sage__buf b;
    int failed;
} cluster_text;
void cluster_text_init(cluster_text *t);
void cluster_textf(cluster_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write it to path (cluster_write_file); 0, or the failure printed and EX_FAIL. Frees it either way. */
int cluster_text_write(cluster_text *t, const char *path);

/* cluster_daemons.c: the daemons started from this state dir, and only those */
int cluster_proc_running(pid_t pid);
int cluster_arg_in_dir(const char *arg);
int cluster_is_ours(pid_t pid, const char *daemon);
pid_t cluster_pidfile_read(const char *path);
pid_t cluster_live_daemon(const char *pidfile, const char *daemon);
int cluster_run_daemon(char *const argv[], const char *log, const char *slurm_conf);
int cluster_lock_state_dir(void);
int cluster_stop_pid(pid_t pid, const char *what);
void cluster_note_started(const char *pidfile, const char *daemon);
void cluster_undo_started(void);
int cluster_anything_running(char *buf, size_t len);
void cluster_remove_stale_pidfiles(void);
/* Start the slurmd of node `name` (argv; SLURM_CONF=conf, or none if NULL), its log and pid file
 * slurmd-<name>.*, and wait until the node is usable (asking with wait_conf). 0, or the failure printed. */
int cluster_start_slurmd(char *const argv[], const char *name, const char *conf, const char *wait_conf);

/* cluster_munge.c */
int cluster_create_munge_key(const char *key);
int cluster_start_munged(void);

/* cluster_wait.c: waiting for the controller and the nodes (bounded) */
int cluster_wait_ctld_up(const char *conf, const char *log);
int cluster_wait_node_idle(const char *conf, const char *name, const char *slurmd_pidfile, const char *log);

/* cluster_res.c: what a node offers */
typedef struct cluster_res {
    long cpus;     /* -1: this host's */
    long mem_mb;   /* -1: this host's */
    long gpus;     /* -1: this host's /dev/nvidiaN */
    int real_gpus; /* the GPUs are /dev/nvidia0..N-1, not simulated */
    int ngres;
    char gres_name[CLUSTER_GRES_MAX][64];
    long gres_cnt[CLUSTER_GRES_MAX];
} cluster_res;
int cluster_parse_resources(const char *spec, cluster_res *r);
void cluster_host_defaults(cluster_res *r);
void cluster_gres_spec(const cluster_res *r, char *out, size_t len);
void cluster_describe_res(const cluster_res *r, char *out, size_t len);
int cluster_make_gpu_files(const char *node, const cluster_res *r);
int cluster_update_gres_nodes(const char *node, const cluster_res *r, int fresh);

/* The command line. */
typedef struct cluster_opts {
    const char *cmd; /* start, status, stop */
    int head, worker, json;
    long port; /* head: SlurmctldPort (0: default) */
    const char *address, *head_address, *name, *home;
    cluster_res res; /* --cpus, --memory, --gpus, --resources */
} cluster_opts;

/* The node's Slurm name: --name, else the short host name; 0, or the usage error printed and EX_USAGE. */
int cluster_node_name(const cluster_opts *o, char *name, size_t len);

int cluster_start_head(const cluster_opts *o);   /* cluster_head.c */
int cluster_start_worker(const cluster_opts *o); /* cluster_worker.c */
int cluster_stop(void);                          /* cluster_stop.c */
int cluster_status(const cluster_opts *o);       /* cluster_status.c */

#endif
