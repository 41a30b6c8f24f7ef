/* jobmanager/jm.h - the JobManager daemon's state: connections, jobs, tasks (shared by its files). */
#ifndef SAGE_JOBMANAGER_JM_H
#define SAGE_JOBMANAGER_JM_H

#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cluster/cgroup.h"
#include "jobmanager/store.h"
#include "net/frame.h"
#include "resources/placement.h"
#include "sage/sage.h"

#define JM_WBUF_MAX (32u << 20) /* a client that reads nothing is dropped past this */
#define JM_TAIL_LINES 8         /* stderr lines kept per task for failure messages */
#define JM_TAIL_BYTES 2048

typedef enum jm_role { JM_UNAUTH = 0, JM_CLIENT, JM_WORKER, JM_HTTP } jm_role;

typedef struct jm_conn {
    int fd;
    jm_role role;
    unsigned char *rbuf;
    size_t rlen, rcap;
    unsigned char *wbuf;
    size_t wlen, wcap;
    int64_t job_id; /* worker: its job; client: the job it waits for or follows */
    int task;       /* worker: its task */
    int waiting;    /* client: a "wait" reply is due when the job ends */
    int following;  /* client: log lines of job_id are pushed */
    int closing;    /* close once wbuf is flushed */
    char peer[64];
    struct jm_conn *next;
} jm_conn;

typedef enum jm_task_state { JT_STARTING = 0, JT_RUNNING, JT_FINISHED, JT_FAILED, JT_KILLED } jm_task_state;

typedef struct jm_task {
    int index, chain, instance;
    char op[128];         /* head operator of the chain */
    jm_task_state state;
    pid_t pid;
    int exited;           /* reaped */
    int status;           /* waitpid status */
    int listen_fd;        /* unix data plane: listener handed to the worker (-1: a source chain, or tcp) */
    int has_inputs;       /* its chain consumes a stream (it listens for producers) */
    int producers;        /* how many producer connections it accepts */
    int said_hello;       /* its worker reached us (stays set after the worker ends) */
    char host[64];        /* the worker's address as we see its control connection ("" until its HELLO) */
    char listen[128];     /* tcp data plane: "ADDR:PORT" the worker accepts producers on ("" if none) */
    int out_fd, err_fd;   /* pipes from the worker's stdout and stderr (-1 when closed) */
    FILE *log;            /* the task's log file */
    char tail[JM_TAIL_BYTES]; /* last bytes of stderr */
    size_t tail_len;
    char partial[2][1024]; /* unterminated log lines being assembled (stdout, stderr) */
    size_t partial_len[2];
    sage__cgroup cg;
    int has_cg;
    uint64_t mem_limit;
    char cpus[256], gpus[64];
    int killed_by_us;     /* we sent it SIGKILL (after another failure, or cancel) */
    int reported_done;    /* the worker said it ended (ok or not) */
    int done_code;        /* the error code it reported */
    int done_ok;
    char error[1024];     /* the worker's own failure message */
    json_t *metrics;      /* last report */
    jm_conn *ctl;         /* the worker's control connection */
    char node[64];        /* the node its placement chose (Slurm: the node its srun step runs on) */
    long long slurm_step; /* slurm: its step id within the job's allocation (-1 until known) */
} jm_task;

typedef enum jm_job_state {
    JJ_PENDING = 0, /* waiting for resources held by other jobs */
    JJ_RUNNING,
    JJ_PAUSED,
    JJ_FINISHED,
    JJ_STOPPED,
    JJ_FAILED,
    JJ_CANCELED,
} jm_job_state;

typedef struct jm_job {
    int64_t id;
    char name[128];
    jm_job_state state;
    json_t *doc;          /* the submitted plan document */
    char dir[1200];       /* home/jobs/<id> */
    size_t ntasks;
    jm_task *tasks;
    size_t nreqs;
    sage__place_req *reqs;
    sage__assign **assign;
    int stop_requested, cancel_requested, failed;
    int err_prio;         /* how much the recorded failure explains: a root cause outranks its echoes */
    int64_t kill_at_ms;   /* an echo failure: kill the remaining workers then (0: not scheduled) */
    char error[2048];
    char pending_reason[512];
    int64_t submitted_ms, started_ms;
    size_t running;       /* tasks not yet reaped */
    int peers_sent;       /* tcp data plane: every worker got the others' addresses */
    long long slurm_job;  /* slurm: the job's allocation (0: none) */
    int slurm_running;    /* slurm: the allocation runs and the tasks were started */
    int slurm_released;   /* slurm: scancel was sent (or Slurm ended the allocation) */
    int slurm_checked;    /* slurm: the allocation's state was asked after a task failed */
    int64_t slurm_poll_at; /* slurm: next squeue (0: nothing to poll) */
    int slurm_step_polls; /* slurm: step-id lookups done */
    char slurm_state[256]; /* slurm: the allocation's last state and reason, for messages */
    struct jm_job *next;
} jm_job;

typedef enum jm_data_plane {
    JM_DATA_UNIX = 0, /* one host: the daemon creates a Unix listener per task under <jobdir>/sock */
    JM_DATA_TCP,      /* workers listen on TCP and exchange addresses through the daemon ("peers" event) */
} jm_data_plane;

typedef struct jm {
    char home[1024]; /* short enough that every path under it fits PATH_MAX */
    char host[256];
    int port;
    int lfd, sfd;
    pid_t pid;
    char token[SAGE__TOKEN_HEX + 1];
    char token_path[PATH_MAX];
    FILE *log;
    int log_stderr;
    sage__store *store;
    sage__node node;
    sage__cgroup_mode cgmode;
    char cgparent[512], cgwhy[256];
    jm_data_plane data_plane; /* config key "data_plane" */
    char slurm_conf[PATH_MAX]; /* config "slurm": {"conf": ...}; "" when not on Slurm */
    sage__node *slurm_nodes;   /* slurm: the cluster's usable nodes (sinfo --json) */
    size_t slurm_nnodes;
    jm_conn *conns;
    jm_job *jobs; /* live jobs (pending or running); ended ones live in the store */
    int stop;
} jm;

void jm_log(jm *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t jm_now_ms(void);
const char *jm_job_state_name(jm_job_state s);
const char *jm_task_state_name(jm_task_state s);

/* connections (daemon.c) */
int jm_send(jm_conn *c, uint16_t type, const void *payload, size_t len);
int jm_send_json(jm_conn *c, uint16_t type, json_t *obj); /* steals obj */
int jm_send_error(jm_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Read and handle whatever the connection has buffered, without waiting. */
void jm_conn_drain(jm *d, jm_conn *c);

/* jobs (jobs.c) */
int jm_job_submit(jm *d, json_t *doc, int64_t *id, char *err, size_t err_len);
jm_job *jm_job_find(jm *d, int64_t id);
int jm_job_control(jm *d, int64_t id, const char *action, char *err, size_t err_len);
void jm_on_child_exit(jm *d, pid_t pid, int status);
void jm_on_worker_event(jm *d, jm_conn *c, json_t *ev);
/* A worker's HELLO was accepted (and answered): record where it runs and,
 * on the tcp data plane, where it listens; once every task of its job has
 * said HELLO, send each worker the "peers" event. peer_host: the numeric
 * address of its control connection. */
void jm_on_worker_hello(jm *d, jm_conn *c, json_t *hello, const char *peer_host);
void jm_on_worker_gone(jm *d, jm_conn *c);
void jm_job_pipes(jm *d, struct pollfd *pfds, size_t *n, size_t cap);
void jm_job_pipe_ready(jm *d, int fd);
json_t *jm_job_status_json(jm *d, int64_t id, char *err, size_t err_len);
json_t *jm_job_list_json(jm *d);
json_t *jm_job_end_json(jm *d, int64_t id);
void jm_jobs_shutdown(jm *d);
/* slurm: read the cluster's nodes into d->slurm_nodes (0, or an error with the reason). */
int jm_slurm_refresh(jm *d, char *err, size_t err_len);
/* slurm: release allocations a previous JobManager of this state directory left (logged). */
void jm_slurm_startup(jm *d);
/* Milliseconds until the next scheduled action (-1: none): kills, and on
 * Slurm the allocation polls; run the ones due. */
int jm_jobs_timers(jm *d);
int jm_job_logs(jm *d, int64_t id, char **text, size_t *len, char *err, size_t err_len);

/* metrics over HTTP (http.c) */
void jm_http(jm *d, jm_conn *c);

#endif
