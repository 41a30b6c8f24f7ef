/* jobmanager/jm.h - the JobManager daemon's state: connections, jobs, tasks, launcher, commands (shared by its files).
 *
 * Where each idea lives (docs/internals/jobmanager.md has the long form):
 *   daemon.c    sage_jobmanager_run: start-up, the poll loop, signals, shutdown
 *   config.c    the configuration document
 *   conn.c      connections: buffers, frames, HELLO, replies
 *   requests.c  client requests (ping, submit, wait, list, status, control, logs, results, shutdown)
 *   admit.c     admission: the plan document, placement, spec.json, pending jobs
 *   jobs.c      the job state machine: start, failure attribution, end, control, shutdown
 *   launcher.h  how tasks are run: launch.c (shared), launch_local.c, launch_slurm.c
 *   command.c   Slurm commands run as children polled by the loop (never waited for)
 *   workers.c   the worker protocol: HELLO, events, peers, control; liveness deadlines
 *   checkpoints.c a job's checkpoints: asking the workers, committing, savepoints, recovering
 *   output.c    worker output: pipes, log files, stderr tails
 *   stream.c    replies streamed as the client reads them: results, logs (and following them)
 *   views.c     the JSON views: ping, status, list, end; a task's store row
 *   http.c      GET /metrics; http_head.c parses the request head, http_query.c its query; dashboard.c the
 *               web dashboard (dashboard_api.c a job's view and actions, dashboard_logs.c its log tails)
 *   store.c     SQLite job records; store_mem.c keeps them in memory, store_writer.c writes them (a thread)
 *   statedir.c  the state directory: private directories and files, never through a link
 *   log.c       jobmanager.log: escaped lines, rate-limited refusals, rotation
 */
#ifndef SAGE_JOBMANAGER_JM_H
#define SAGE_JOBMANAGER_JM_H

#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "cluster/cgroup.h"
#include "graph/graph.h" /* sage__ft_config */
#include "jobmanager/store.h"
#include "net/frame.h"
#include "resources/placement.h"
#include "sage/sage.h"
#include "util/buf.h"

#define JM_WBUF_MAX (32u << 20) /* a client that reads nothing is dropped past this */
#define JM_TAIL_LINES 8         /* stderr lines kept per task for failure messages */
#define JM_TAIL_BYTES 2048

typedef struct jm jm;
typedef struct jm_launcher jm_launcher;
typedef struct jm_cmd jm_cmd;

typedef enum jm_role { JM_UNAUTH = 0, JM_CLIENT, JM_WORKER, JM_HTTP } jm_role;

typedef struct jm_conn {
    int fd;
    jm_role role;
    sage__buf rbuf; /* bounded by the role's frame limit */
    sage__buf wbuf; /* bounded by JM_WBUF_MAX */
    int64_t job_id; /* worker: its job; client: the job it waits for or follows */
    int task;       /* worker: its task */
    int waiting;    /* client: a "wait" reply is due when the job ends */
    int parked;     /* client: a request waits for the daemon (a submit while the nodes are read); no more
                     * frames of it are handled until it is answered */
    int closing;    /* close once wbuf is flushed */
    char peer[64];
    struct jm_conn *next;
    /* perimeter (conn.c): what an unauthenticated peer may cost */
    int64_t since_ms; /* accepted at (sage__mono_ms); still unauthenticated at since_ms + handshake_ms: closed */
    int http_ok;      /* an HTTP request that presented the token: its reply is not cut by the handshake limit */
    /* a reply being produced for it while it is parked (a results or logs stream, a read of
     * the job store); whoever holds the deferred work finds its connection by this back-pointer */
    void *deferred;
} jm_conn;

typedef enum jm_task_state { JT_STARTING = 0, JT_RUNNING, JT_FINISHED, JT_FAILED, JT_KILLED } jm_task_state;

typedef struct jm_task {
    int index, chain, instance;
    char op[128]; /* head operator of the chain */
    jm_task_state state;
    pid_t pid;                /* the process we started (on Slurm: its srun) */
    pid_t worker_pid;         /* the worker's own pid on its host, from its HELLO (0 until then) */
    int exited;               /* reaped */
    int status;               /* waitpid status */
    int listen_fd;            /* unix data plane: listener handed to the worker (-1: a source chain, or tcp) */
    int has_inputs;           /* its chain consumes a stream (it listens for producers) */
    int producers;            /* how many producer connections it accepts */
    int said_hello;           /* its worker reached us (stays set after the worker ends) */
    char host[64];            /* the worker's address as we see its control connection ("" until its HELLO) */
    char listen[128];         /* tcp data plane: "ADDR:PORT" the worker accepts producers on ("" if none) */
    int out_fd, err_fd;       /* pipes from the worker's stdout and stderr (-1 when closed) */
    FILE *log;                /* the task's log file */
    char tail[JM_TAIL_BYTES]; /* last bytes of stderr */
    size_t tail_len;
    char partial[2][1024]; /* unterminated log lines being assembled (stdout, stderr) */
    size_t partial_len[2];
    sage__cgroup cg;
    int has_cg;
    uint64_t mem_limit;
    char cpus[256], gpus[64];
    int killed_by_us;  /* we sent it SIGKILL (after another failure, or cancel) */
    int reported_done; /* the worker said it ended (ok or not) */
    int done_code;     /* the error code it reported */
    int done_ok;
    char error[1024];     /* the worker's own failure message */
    json_t *metrics;      /* last report */
    jm_conn *ctl;         /* the worker's control connection */
    char node[64];        /* the node its placement chose (Slurm: the node its srun step runs on) */
    long long slurm_step; /* Slurm launcher: its step id within the job's allocation (-1 until known) */
    /* perimeter (output.c) */
    char log_err[256]; /* why its log file could not be opened (said once in the daemon's log; "" if it was) */
    /* liveness (workers.c) */
    int64_t launched_ms;   /* when its process was started (sage__mono_ms) */
    int64_t seen_ms;       /* the last frame from its worker (sage__mono_ms; 0: none yet) */
    int reported;          /* its worker sent a report: it runs its task (the heartbeat deadline applies) */
    int silent;            /* it was killed for missing its deadline: it is the failure, not a victim */
    int conn_lost;         /* its control connection closed without a result while its process ran */
    int echo;              /* it failed only because another task did (a broken connection): shown "killed" */
    int service;           /* it runs one of the job's services (tasks j->nflow.. are), not a chain instance */
    char crash_op[128];    /* the operator of its chain whose code crashed, as its worker said ("": none) */
    FILE *results;         /* its collect sink's results as its worker streams them (results "stream"; NULL: none) */
    char results_err[256]; /* why they could not be written ("" if they could) */
} jm_task;

typedef enum jm_job_state {
    JJ_PENDING = 0, /* waiting for resources held by other jobs (or, on Slurm, for its allocation) */
    JJ_RUNNING,
    JJ_PAUSED,
    JJ_FINISHED,
    JJ_STOPPED,
    JJ_FAILED,
    JJ_CANCELED,
} jm_job_state;

#define JM_AVOID_MAX 16       /* nodes one job remembers as lost */
#define JM_SLURM_NODES_MAX 64 /* nodes one job's allocation may span (components of one sbatch) */

/* What the Slurm launcher keeps per job (launch_slurm.c). */
typedef struct jm_slurm_job {
    long long job;                     /* the job's allocation (0: none yet) */
    int requesting;                    /* sbatch for it is running */
    int polling;                       /* an squeue about it is running */
    int running;                       /* the allocation runs and the tasks were started */
    int het;                           /* a heterogeneous allocation: one component per node */
    char comp[JM_SLURM_NODES_MAX][64]; /* ... the node of each component, in --het-group order */
    int released;                      /* scancel was sent (or Slurm ended the allocation) */
    int checked;                       /* the allocation's state was asked after a task failed */
    int checking;                      /* ... and the answer is not in: the job does not end before it */
    int64_t poll_at;                   /* next squeue (sage__mono_ms; 0: nothing to poll) */
    int step_polls;                    /* step-id lookups done */
    char state[256];                   /* the allocation's last state and reason, for messages */
    char check_why[1024];              /* the task failure the check is about */
} jm_slurm_job;

/* A job's checkpoints through the JobManager (checkpoints.c). */
typedef struct jm_ckpt {
    int on;                  /* strategy "checkpoint" */
    char rundir[PATH_MAX];   /* where its checkpoints go: chk-<id> below it */
    char probe[20];          /* the nonce in <rundir>/SHARED: every worker must read it there (a shared dir) */
    uint64_t next_id;        /* the last id handed out */
    uint64_t active;         /* being taken (0: none) */
    char dir[PATH_MAX + 32]; /* ... its directory */
    int64_t started_ms;      /* ... when it was asked for (sage__mono_ms) */
    int timeout_ms;          /* ... abandoned this long after */
    int committing;          /* ... its commit was asked of a worker, no answer yet */
    int64_t next_at_ms;      /* the next one is due (sage__mono_ms) */
    unsigned char *in;       /* per task: 0 waiting, 1 captured, 2 finished */
    uint64_t *bytes, *sums;  /* per task: its part's size and checksum */
    size_t ntasks_in;
    uint64_t plan_hash; /* the full plan hash, as the workers report it */
    json_t *sinks;      /* file sinks of the active one: [{"op", "length", "path"}] */
    uint64_t last_id;   /* the last committed (0: none) */
    char last_path[PATH_MAX + 32];
    json_t *committed_sinks;       /* its file sinks */
    char prev_path[PATH_MAX + 32]; /* the one committed before it (the fallback) */
    json_t *prev_sinks;
    int64_t last_ms; /* when it was committed (wall clock) */
    uint64_t last_bytes, completed, abandoned;
    int recoveries;
    char restore[PATH_MAX + 32]; /* what the current attempt's workers restore ("" nothing) */
    int restore_in_run;          /* ... a checkpoint of this job (else config "restore_from": collectors start empty) */
    char restore_from[PATH_MAX]; /* config "restore_from": the job's own start ("" none) */
    json_t *from_sinks;          /* ... its file sinks' lengths */
    /* a savepoint asked by a client (stop with a savepoint) */
    int sp_pending, sp_active; /* asked (waits for the active checkpoint), being taken */
    char sp_dir[PATH_MAX];     /* where it goes */
    int sp_timeout_ms;         /* its bound (-1: checkpoint_timeout) */
    struct jm_conn *sp_conn;   /* who waits for the answer (parked; NULL once it went away) */
} jm_ckpt;

typedef struct jm_job {
    int64_t id;
    char name[128];
    jm_job_state state;
    json_t *doc;    /* the submitted plan document */
    char dir[1200]; /* home/jobs/<id> */
    /* what its workers authenticate with (to us and to each other), instead of the daemon's token: made with its
     * first spec, handed to each worker in its environment (SAGE_WORKER_SECRET) */
    char secret[SAGE__TOKEN_HEX + 1];
    json_t *spec;       /* the spec its workers fetch (role "spec"), also written to spec.json */
    int results_stream; /* its workers stream collected records to us (Slurm: no shared file system needed) */
    size_t ntasks;
    jm_task *tasks;
    size_t nreqs;
    sage__place_req *reqs;
    sage__assign **assign;
    int stop_requested, cancel_requested, failed;
    int err_prio;       /* how much the recorded failure explains: a root cause outranks its echoes */
    int64_t kill_at_ms; /* an echo failure: kill the remaining workers then (sage__mono_ms; 0: not scheduled) */
    char error[2048];
    int err_code; /* the recorded failure's code (SAGE_E*) */
    char pending_reason[512];
    int64_t submitted_ms, started_ms; /* wall clock, for people */
    size_t running;                   /* tasks not yet reaped */
    int peers_sent;                   /* tcp data plane: every worker got the others' addresses */
    size_t nflow;                     /* tasks that run chains (the first ones); the rest run its services */
    int services_told;                /* the chains' tasks all ended: its services were told to stop */
    jm_slurm_job slurm;
    struct jm_job *next;
    /* stop deadline and liveness (jobs.c) */
    int64_t stop_at_ms;     /* a stop was asked: what still runs then is killed (sage__mono_ms; 0: none) */
    int stop_grace_ms;      /* ... that long after the stop */
    int64_t seen_wall_ms;   /* the last time the job was known alive (wall clock: a worker's report) */
    int64_t seen_stored_ms; /* ... as last handed to the store (written at most once a second) */
    int64_t seen_store_at;  /* when that was (sage__mono_ms) */
    /* fault tolerance (jobs.c): the submitted "fault_tolerance", the restarts made */
    sage__ft_config ft;
    int restarts;
    int64_t restart_at_ms; /* a failed attempt: the next starts then (sage__mono_ms; 0: none pending) */
    double *fail_at;       /* failure_rate: recent failures (seconds, monotonic) */
    int nfail;
    char last_failure[2048]; /* the failure that led to the last restart */
    int last_code;
    int64_t last_failure_ms; /* when (wall clock) */
    jm_ckpt ck;              /* strategy "checkpoint" (checkpoints.c) */
    /* nodes a failed attempt lost (a launcher that places again, Slurm): the next attempts avoid them */
    char avoid[JM_AVOID_MAX][64];
    int navoid;
} jm_job;

typedef enum jm_data_plane {
    JM_DATA_UNIX = 0, /* one host: the daemon creates a Unix listener per task under <jobdir>/sock */
    JM_DATA_TCP,      /* workers listen on TCP and exchange addresses through the daemon ("peers" event) */
} jm_data_plane;

/* What the Slurm launcher keeps for the daemon (launch_slurm.c). */
typedef struct jm_slurm {
    char conf[PATH_MAX]; /* config "slurm": {"conf": ...} */
    int timeout_ms;      /* bound on one Slurm command (config "slurm": {"command_timeout_ms": ...}) */
    sage__node *nodes;   /* the cluster's usable nodes (sinfo --json) */
    size_t nnodes;
    int refreshing; /* an sinfo for the nodes is running; submits wait for it */
    /* allocations an earlier JobManager of this state dir left (listed at start, before any submit; canceled
     * once the loop runs), or the reason they could not be listed */
    long long *stale;
    size_t nstale;
    int64_t def_mem_per_cpu_mb; /* memory per CPU a part of an allocation asks for when its tasks request none */
    char stale_err[512];
} jm_slurm;

/* ---- perimeter: what anyone who reaches the port, without the token, can cost (conn.c, log.c, statedir.c) ---- */
#define JM_HELLO_MAX 4096         /* the largest frame read before authentication (a HELLO is ~200 bytes) */
#define JM_PREAUTH_READ_MAX 8192u /* bytes buffered before authentication: a HELLO, or an HTTP head */
#define JM_ACCEPT_BATCH 64        /* connections accepted per turn of the loop */
#define JM_REFUSALS_BURST 10      /* refused connections logged one by one per interval, before a count */

/* Config "limits" (config.c); every field has a default. */
typedef struct jm_limits {
    int handshake_ms;    /* "handshake_ms": time to authenticate (default 5000) */
    int unauthenticated; /* "unauthenticated": most connections not yet authenticated (default 128) */
    int connections;     /* "connections": most connections (default 0: half the open-file limit) */
    long long log_bytes; /* "log_bytes": jobmanager.log is rotated to jobmanager.log.1 past this (10 MiB) */
    int refusal_log_ms;  /* "refusal_log_ms": the interval of the refusal log's rate limit (default 10000) */
} jm_limits;

/* The log's state (log.c). */
typedef struct jm_logstate {
    long long size;     /* bytes in jobmanager.log */
    int64_t window_end; /* refusals: the current interval ends (sage__mono_ms) */
    int lines;          /* refusals logged in this interval */
    int hot;            /* the previous interval had refusals not logged one by one: none are now */
    long long unlogged; /* refusals counted, not logged, in this interval */
    char last[256];     /* the last of them */
} jm_logstate;

/* A submit that waits for the node list (requests.c). */
typedef struct jm_parked {
    jm_conn *c;
    json_t *doc;
    struct jm_parked *next;
} jm_parked;

/* A dashboard login secret or session id (dashboard.c): 64 hex digits, until expires_ms. */
typedef struct jm_dash_secret {
    char hex[SAGE__TOKEN_HEX + 1];
    char csrf[SAGE__TOKEN_HEX + 1]; /* a session's: what its POSTs carry in X-SAGE-CSRF */
    int64_t expires_ms;             /* sage__mono_ms */
} jm_dash_secret;
#define JM_DASH_LOGINS 16   /* login secrets not yet used */
#define JM_DASH_SESSIONS 64 /* browser sessions */

struct jm {
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
    jm_data_plane data_plane;    /* config key "data_plane" */
    const jm_launcher *launcher; /* chosen once by the configuration: local or Slurm */
    jm_slurm slurm;
    jm_dash_secret dash_logins[JM_DASH_LOGINS], dash_sessions[JM_DASH_SESSIONS]; /* dashboard.c */
    jm_cmd *cmds;      /* Slurm commands running or queued (command.c) */
    jm_parked *parked; /* submits waiting for the node list, oldest first */
    jm_conn *conns;
    jm_job *jobs; /* live jobs (pending or running); ended ones live in the store */
    int stop;     /* stopping: no new job, the loop runs until every job and command is done */
    /* perimeter */
    jm_limits limits;
    jm_logstate logst;
    int spare_fd;             /* /dev/null, given up to accept-and-close a connection at the open-file limit */
    int64_t accept_resume_ms; /* the listener is not polled before (sage__mono_ms; 0: it is) */
    int conn_max;             /* limits.connections, or half the open-file limit */
    /* deadlines, dying cgroups, streamed replies */
    int heartbeat_ms, start_ms, stop_ms; /* config: liveness and stop deadlines (0: the defaults, workers.c) */
    int stop_ms_set;                     /* stop_ms was configured (it may be 0) */
    struct jm_cg_dying *dying;           /* task cgroups being emptied and removed (launch.c) */
    struct jm_stream *streams;           /* results and logs being sent (stream.c) */
};

void jm_log(jm *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *jm_job_state_name(jm_job_state s);
const char *jm_task_state_name(jm_task_state s);

/* ---- config.c ---- */
/* Read the configuration (JSON text or a file; NULL: none) over this host's discovered capacity, and choose
 * the launcher (d->launcher). 0, or an error naming the key. */
int jm_config_load(jm *d, const char *config, char *err, size_t err_len);

/* ---- conn.c ---- */
int jm_send(jm_conn *c, uint16_t type, const void *payload, size_t len);
int jm_send_json(jm_conn *c, uint16_t type, json_t *obj); /* steals obj */
int jm_send_error(jm_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Read and handle whatever the connection has, without waiting. */
void jm_conn_drain(jm *d, jm_conn *c);
/* Handle the frames already buffered (after a parked request was answered). */
void jm_conn_frames(jm *d, jm_conn *c);
void jm_conns_accept(jm *d);
void jm_conn_flush(jm_conn *c);
/* The live connection parked on the deferred work q (its `deferred`), un-parked; NULL when it went away. */
jm_conn *jm_conn_resume(jm *d, const void *q);
/* Close and free the connections that are done (closed, or closing with nothing left to send). */
void jm_conns_reap(jm *d);

/* ---- requests.c ---- */
void jm_client_request(jm *d, jm_conn *c, json_t *req);
/* The node list was read again (rc 0) or could not be (rc != 0, err says why): answer the parked submits. */
void jm_submits_resume(jm *d, int rc, const char *err);
/* A connection goes away: drop its parked submit. */
void jm_submits_forget(jm *d, jm_conn *c);

/* ---- admit.c ---- */
int jm_job_submit(jm *d, json_t *doc, int64_t *id, char *err, size_t err_len); /* steals doc */
/* (Re)write the job's spec.json for its workers (a restart rewrites it with what they restore). */
int jm_write_spec(jm *d, jm_job *j, char *err, size_t err_len);
/* After a job ended: start pending jobs, oldest first, as long as they fit. */
void jm_jobs_retry_pending(jm *d);
/* A restart on a launcher that places again (Slurm): the job gives up its placement, is placed again away
 * from the nodes it lost (j->avoid) and handed to the launcher, or waits, pending, for resources as a new job
 * would. 0, or an error (the job failed with the reason: it fits nowhere without those nodes). */
int jm_job_place_again(jm *d, jm_job *j);
/* At start: the jobs the last JobManager left running with the checkpoint strategy go on from their newest
 * committed checkpoint (their plan documents are kept as jobs/<id>/doc.json); the others stay failed. */
void jm_jobs_resume(jm *d);

/* ---- jobs.c ---- */
/* Failure priorities: when one worker dies, its neighbours fail too (broken
 * connections); the reason kept is the one that explains most. */
enum { JM_PRIO_ECHO = 1, JM_PRIO_GONE = 2, JM_PRIO_USER = 3, JM_PRIO_ROOT = 4, JM_PRIO_ALLOCATION = 5 };
jm_job *jm_job_find(jm *d, int64_t id);
void jm_job_free(jm_job *j);
/* unix data plane: the listener a task's worker gets (its producers connect there); 0, or the job failed */
int jm_task_listen(jm *d, jm_job *j, jm_task *k);
/* Start every task of a placed job (on Slurm: once its allocation runs). 0, or the job failed. */
int jm_job_start_tasks(jm *d, jm_job *j);
/* Record why the job fails (kept if it explains more than the reason recorded so far) with its code
 * (SAGE_E*: what the client's sage_env_wait returns, the same code the pipeline fails with embedded). */
void jm_job_fail(jm *d, jm_job *j, int prio, int code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Kill what the job runs and release what it holds (the launcher's stop). */
void jm_job_kill(jm *d, jm_job *j);
/* End the job if nothing of it is left to wait for. 1 if it ended (it is freed and unlinked then). */
int jm_job_maybe_end(jm *d, jm_job *j);
/* pause, resume, stop, cancel. A stop asks the workers to drain and end; what still runs stop_timeout_ms
 * later (< 0: the config's "stop_timeout_ms") is killed. */
int jm_job_control(jm *d, int64_t id, const char *action, int stop_timeout_ms, char *err, size_t err_len);
/* A child was reaped: a command, or a task's process. */
void jm_on_child_exit(jm *d, pid_t pid, int status);
/* Run what is due at `now` (sage__mono_ms), once every turn of the loop: scheduled kills, the workers'
 * deadlines, forced stops, the jobs' "last seen" times, dying cgroups, streamed replies. Milliseconds until
 * the next (-1: none). */
int jm_jobs_timers(jm *d, int64_t now);
/* At start: what the jobs a JobManager left unfinished when it died left here (their data-plane sockets) goes. */
void jm_jobs_leftovers(jm *d);
/* The daemon is stopping: fail every live job and kill what it runs (their ends follow as they are reaped). */
void jm_jobs_shutdown(jm *d);

/* ---- checkpoints.c ---- */
/* After the job's directory exists: its checkpoints' directory (strategy checkpoint), and what it starts from
 * (the document's "restore_from": read and checked now). 0, or an error. */
int jm_ckpt_setup(jm *d, jm_job *j, char *err, size_t err_len);
void jm_ckpt_free(jm_job *j);
/* A worker's "captured" or "committed" event. */
void jm_ckpt_event(jm *d, jm_job *j, jm_task *k, const char *type, json_t *ev);
/* Start or time out the job's checkpoint: when it is next due (sage__mono_ms; -1: nothing). */
int64_t jm_ckpt_timers(jm *d, jm_job *j, int64_t now);
/* Before the next attempt: the checkpoint its workers restore (NULL: the beginning), the file sinks cut
 * back to it. */
const char *jm_ckpt_recover(jm *d, jm_job *j);
/* The status view's "checkpoints" object. */
void jm_ckpt_view(const jm_job *j, json_t *st);
/* Stop with a savepoint into dir: 0 when it was asked for (c is parked until the answer: OK once the savepoint
 * is durable and the stop requested, an error when it could not be taken and the job goes on), or an error now. */
int jm_ckpt_savepoint(jm *d, jm_job *j, const char *dir, int timeout_ms, struct jm_conn *c, char *err, size_t err_len);
/* A connection goes away: no answer is due to it. */
void jm_ckpt_forget(jm *d, struct jm_conn *c);
/* The job ends: a savepoint still asked for is answered with the reason. */
void jm_ckpt_end(jm *d, jm_job *j);
/* A job resumed after the JobManager's restart: its newest committed checkpoint becomes what its workers
 * restore (the file sinks cut back to it). 0, or SAGE_ENOTFOUND when it has none. */
int jm_ckpt_latest(jm *d, jm_job *j);

/* ---- workers.c ---- */
/* A worker's HELLO with a valid token: link it to its task and answer (or refuse and close). */
void jm_worker_hello(jm *d, jm_conn *c, json_t *hello);
/* A worker streams its collect sink's records ([u32 len][bytes] each, as results/<op>.<instance> holds them):
 * appended to that file, which its first chunk of the attempt truncates. */
void jm_worker_results(jm *d, jm_conn *c, const unsigned char *data, size_t len);
void jm_on_worker_event(jm *d, jm_conn *c, json_t *ev);
void jm_on_worker_gone(jm *d, jm_conn *c);
/* A "control" event (pause, resume, stop) to every connected worker of the job. */
void jm_workers_control(jm_job *j, const char *action);
/* Config keys of the workers' deadlines (all in ms): "heartbeat_timeout_ms" (a running worker's reports),
 * "start_timeout_ms" (from launch to its first report), "stop_timeout_ms" (a stop's grace before the kill). */
#define JM_WORKER_CONFIG_KEYS "heartbeat_timeout_ms, start_timeout_ms, stop_timeout_ms"
int jm_worker_config_key(const char *key);
int jm_worker_config(jm *d, const char *key, json_t *v, char *err, size_t err_len);
int jm_stop_timeout_ms(const jm *d);
/* Fail the jobs whose workers missed a deadline (never reached us, went silent); ms to the next (-1: none). */
int jm_workers_timers(jm *d, int64_t now);

/* ---- output.c ---- */
/* Open logs/<op>.<instance>.log for the task (a task without it still runs; its output is only followed). */
void jm_output_open(jm_job *j, jm_task *k);
/* The worker pipes to poll; how many there are. */
size_t jm_output_count(const jm *d);
void jm_output_pollfds(jm *d, struct pollfd *pfds, size_t *n, size_t cap);
void jm_output_ready(jm *d, int fd);
/* Read what the task's pipes hold now (before its exit is handled). */
void jm_output_drain(jm *d, jm_job *j, jm_task *k);
/* The last lines of its stderr, for failure messages (invalid UTF-8 replaced). */
void jm_output_tail(const jm_task *k, char *out, size_t len);

/* ---- stream.c: replies streamed as the client reads them (the connection is parked meanwhile) ---- */
typedef struct jm_stream jm_stream;
/* Operator op's collected records of job id, instance by instance: DATA [u32 BE instance][<= 1 MiB], then OK
 * {"done": true, "bytes": N}, or ERROR naming the file that could not be read. */
void jm_stream_results(jm *d, jm_conn *c, int64_t id, const char *op, int parallelism);
/* A job's task logs in task order: EVENT {"event": "logs", "task", "text"} chunks, then OK {"live", "bytes"};
 * with follow (and a live job), what the files gain as more chunks, then EVENT {"event": "end", "state"}. */
typedef struct jm_log_file {
    int task, instance;
    const char *op;
} jm_log_file;
void jm_stream_logs(jm *d, jm_conn *c, int64_t id, const jm_log_file *files, size_t n, int follow);
/* Every turn of the loop: refill the streams whose connection has room. */
void jm_streams_pump(jm *d);

/* ---- views.c ---- */
json_t *jm_ping_json(jm *d);
/* A live job, from memory. */
json_t *jm_job_status_json(jm *d, const jm_job *j);
json_t *jm_job_list_json(jm *d);
/* The end document of an ended job (status, wait): its rows, from memory at its end or from the store. */
/* "name (4 cpus, 2 gpus, 16GB, ssd=1)": a node as logs and messages show it. */
void jm_node_text(const sage__node *n, char *buf, size_t len);
/* The pid a user sees for a task: its worker's own (from its HELLO), else the process we started. */
pid_t jm_task_pid(const jm_task *k);
/* What the job's fault-tolerance strategy did so far ("restarts", "last_failure", "checkpoints", ...), into st. */
void jm_ft_view(const jm_job *j, json_t *st, int64_t now);
json_t *jm_job_end_json(jm *d, const sage__job_row *row, const sage__task_row *tasks, size_t ntasks);
/* The store row of a task at its job's end. */
void jm_task_row(const jm *d, const jm_job *j, const jm_task *k, sage__task_row *r);

/* ---- http.c ---- */
void jm_http(jm *d, jm_conn *c);
/* dashboard.c: a one-time login secret for `sage dashboard` (into secret, at least 65 bytes); the answer
 * to an HTTP request other than /metrics (h: its parsed head). */
int jm_dashboard_login(jm *d, char *secret, size_t len);
struct sage__http_head;
void jm_dashboard(jm *d, jm_conn *c, const struct sage__http_head *h);
/* (dashboard.h: what the dashboard's files share; dashboard_api.c a job's view and actions, dashboard_logs.c
 * its log tails) */

/* ---- perimeter: statedir.c, log.c, and the connection limits in conn.c ---- */
/* The state directory d->home: created 0700 if missing, else refused unless it is ours with no access for
 * group or others, and reached through directories only root or we can change; d->home becomes its real
 * path. jobs/ checked the same way; jobmanager.pid opened (never through a link) and locked. */
int jm_home_take(jm *d, int *pidfd, char *err, size_t err_len);
/* A directory the daemon keeps under its state directory: created 0700, or refused (with the reason and
 * the fix) if it is a link, not a directory, not ours, or open to group or others. 0 or SAGE_ESTATE. */
int jm_private_dir(const char *path, char *err, size_t err_len);
/* Open a file under the state directory with O_NOFOLLOW | O_CLOEXEC (and mode 0600 when created): refused
 * if it is a link or not a regular file of ours; group and other bits of our own file are cleared.
 * The descriptor, or -1 with err. */
int jm_private_open(const char *path, int flags, char *err, size_t err_len);
/* Write doc (json_dumps flags) to path through jm_private_open: 0, or an error with err. */
int jm_private_dump(const char *path, const json_t *doc, size_t flags, char *err, size_t err_len);
/* jobs.db and its -wal, -shm and -journal files: private regular files (jobs.db created if missing). */
int jm_store_files(const char *db, char *err, size_t err_len);

/* Open (or reopen) jobmanager.log. 0, or SAGE_ESTATE with err. */
int jm_log_open(jm *d, char *err, size_t err_len);
void jm_log_close(jm *d);
/* A refused connection: logged like jm_log for the first JM_REFUSALS_BURST of an interval, then counted. */
void jm_log_refused(jm *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write the count of refusals not logged once their interval ended; ms until that is due (-1: nothing). */
int jm_log_timers(jm *d, int64_t now);
/* Close connections still unauthenticated past the handshake limit; ms until the next is due (-1: none). */
int jm_conns_timers(jm *d, int64_t now);
/* Connections now, and those not authenticated (for the limits and their log lines). */
size_t jm_conns_count(const jm *d, size_t *unauth);

#endif
