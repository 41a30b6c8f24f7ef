/* jobmanager/daemon.c - the JobManager daemon: one poll loop over clients, workers, their pipes and signals.
 *
 * Design note. The daemon is single-threaded: every socket is non-blocking
 * and served from one poll(2) loop, so job state needs no locks and fork()
 * for workers is safe. Signals are never handled asynchronously: SIGCHLD,
 * SIGTERM and SIGINT are blocked and read from a signalfd in the same loop
 * (a termination signal only sets the stop flag). Every connection starts
 * unauthenticated; its first frame must be HELLO with the token, or the
 * connection is closed with a logged reason (the daemon keeps serving the
 * others). An HTTP GET on the same port is answered with Prometheus
 * metrics when it carries the token as a bearer. Reads are bounded by the
 * frame limit of the connection's role; writes are buffered up to
 * JM_WBUF_MAX per connection, past which a client that does not read is
 * dropped rather than letting the daemon grow without bound.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"
#include "util/time.h"
#include "jobmanager/jm.h"
#include "jobmanager/jobmanager.h"
#include "net/sock.h"

int64_t jm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void jm_log(jm *d, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (d->log) {
        fprintf(d->log, "%s %s\n", ts, line);
        fflush(d->log);
    }
    if (d->log_stderr)
        fprintf(stderr, "%s %s\n", ts, line);
}

/* ---- connections ---- */

static void conn_close(jm *d, jm_conn *c)
{
    if (c->role == JM_WORKER)
        jm_on_worker_gone(d, c);
    close(c->fd);
    c->fd = -1;
}

int jm_send(jm_conn *c, uint16_t type, const void *payload, size_t len)
{
    if (c->fd < 0)
        return SAGE_EIO;
    size_t need = c->wlen + SAGE__FRAME_HDR + len;
    if (need > JM_WBUF_MAX) {
        c->closing = 1;
        c->wlen = 0; /* the peer does not read: drop it */
        shutdown(c->fd, SHUT_RDWR);
        return SAGE_ETOOBIG;
    }
    if (need > c->wcap) {
        size_t cap = c->wcap ? c->wcap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(c->wbuf, cap);
        if (!p)
            return SAGE_ENOMEM;
        c->wbuf = p;
        c->wcap = cap;
    }
    sage__frame_header(c->wbuf + c->wlen, type, (uint32_t)len);
    if (len)
        memcpy(c->wbuf + c->wlen + SAGE__FRAME_HDR, payload, len);
    c->wlen += SAGE__FRAME_HDR + len;
    return 0;
}

int jm_send_json(jm_conn *c, uint16_t type, json_t *obj)
{
    if (!obj) /* json_pack refused its input: answer anyway, a client must never wait for nothing */
        obj = json_pack("{s:i,s:s}", "code", SAGE_EPROTO, "message", "the JobManager could not encode its reply"),
        type = SAGE__MSG_ERROR;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        return SAGE_ENOMEM;
    int rc = jm_send(c, type, s, strlen(s));
    free(s);
    return rc;
}

int jm_send_error(jm_conn *c, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jm_send_json(c, SAGE__MSG_ERROR, json_pack("{s:i,s:s}", "code", code, "message", msg));
}

static void flush_conn(jm_conn *c)
{
    while (c->wlen > 0) {
        ssize_t n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->wlen = 0, c->closing = 1;
            return;
        }
        memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
        c->wlen -= (size_t)n;
    }
}

static json_t *ping_json(jm *d)
{
    int running = 0;
    for (jm_job *j = d->jobs; j; j = j->next)
        running++;
    json_t *p = json_pack("{s:i,s:s,s:i,s:s,s:i,s:s,s:s,s:s}", "pid", (int)d->pid, "host", d->host, "port", d->port, "home",
                     d->home, "jobs_live", running, "version", sage_version(), "data_plane",
                     d->data_plane == JM_DATA_TCP ? "tcp" : "unix", "memory_enforcement",
                     d->cgmode == SAGE__CGROUP_V1   ? "cgroup v1"
                     : d->cgmode == SAGE__CGROUP_V2 ? "cgroup v2"
                                                    : d->cgwhy);
    if (p && d->slurm_conf[0])
        json_object_set_new(p, "slurm_conf", json_string(d->slurm_conf));
    return p;
}

static int64_t req_job_id(json_t *req) { return json_integer_value(json_object_get(req, "job_id")); }

static void client_request(jm *d, jm_conn *c, json_t *req)
{
    const char *op = json_string_value(json_object_get(req, "op"));
    char err[4096] = "";
    if (!op) {
        jm_send_error(c, SAGE_EPROTO, "request without \"op\"");
        return;
    }
    if (strcmp(op, "ping") == 0) {
        jm_send_json(c, SAGE__MSG_OK, ping_json(d));
    } else if (strcmp(op, "submit") == 0) {
        int64_t id = 0;
        json_t *doc = json_object_get(req, "job");
        int rc = doc ? jm_job_submit(d, json_incref(doc), &id, err, sizeof err) : SAGE_EPROTO;
        if (rc != 0)
            jm_send_error(c, rc, "%s", doc ? err : "submit without \"job\"");
        else
            jm_send_json(c, SAGE__MSG_OK, json_pack("{s:I}", "job_id", (json_int_t)id));
    } else if (strcmp(op, "wait") == 0) {
        int64_t id = req_job_id(req);
        if (jm_job_find(d, id)) {
            c->job_id = id;
            c->waiting = 1; /* answered when the job ends */
        } else {
            json_t *end = jm_job_end_json(d, id);
            if (end)
                jm_send_json(c, SAGE__MSG_OK, end);
            else
                jm_send_error(c, SAGE_ENOTFOUND, "no job %lld", (long long)id);
        }
    } else if (strcmp(op, "list") == 0) {
        jm_send_json(c, SAGE__MSG_OK, jm_job_list_json(d));
    } else if (strcmp(op, "status") == 0) {
        json_t *st = jm_job_status_json(d, req_job_id(req), err, sizeof err);
        if (st)
            jm_send_json(c, SAGE__MSG_OK, st);
        else
            jm_send_error(c, SAGE_ENOTFOUND, "%s", err);
    } else if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0 || strcmp(op, "stop") == 0 ||
               strcmp(op, "cancel") == 0) {
        int rc = jm_job_control(d, req_job_id(req), op, err, sizeof err);
        if (rc != 0)
            jm_send_error(c, rc, "%s", err);
        else
            jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b}", "ok", 1));
    } else if (strcmp(op, "logs") == 0) {
        char *text = NULL;
        size_t len = 0;
        int64_t id = req_job_id(req);
        int rc = jm_job_logs(d, id, &text, &len, err, sizeof err);
        if (rc != 0) {
            jm_send_error(c, rc, "%s", err);
            return;
        }
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:s%,s:b}", "logs", text, len, "live", jm_job_find(d, id) != NULL));
        free(text);
        if (json_is_true(json_object_get(req, "follow")) && jm_job_find(d, id)) {
            c->job_id = id;
            c->following = 1;
        }
    } else if (strcmp(op, "results") == 0) {
        /* Collected records of one operator: DATA frames [u32 instance][bytes], then OK. */
        int64_t id = req_job_id(req);
        const char *name = json_string_value(json_object_get(req, "operator"));
        int par = (int)json_integer_value(json_object_get(req, "parallelism"));
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/jobs/%lld/results", d->home, (long long)id);
        if (!name || strchr(name, '/') || par < 1 || par > SAGE_PARALLELISM_MAX) {
            jm_send_error(c, SAGE_EINVAL, "results: bad operator or parallelism");
            return;
        }
        unsigned char *chunk = malloc(4 + (1u << 20));
        if (!chunk) {
            jm_send_error(c, SAGE_ENOMEM, "out of memory");
            return;
        }
        for (int i = 0; i < par; i++) {
            char path[PATH_MAX + 160];
            snprintf(path, sizeof path, "%s/%s.%d", dir, name, i);
            FILE *f = fopen(path, "rb");
            if (!f)
                continue;
            uint32_t be = htonl((uint32_t)i);
            memcpy(chunk, &be, 4);
            size_t n;
            while ((n = fread(chunk + 4, 1, 1u << 20, f)) > 0)
                jm_send(c, SAGE__MSG_DATA, chunk, n + 4);
            fclose(f);
        }
        free(chunk);
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b}", "done", 1));
    } else if (strcmp(op, "shutdown") == 0) {
        jm_log(d, "shutdown requested by %s", c->peer);
        d->stop = 1;
        jm_send_json(c, SAGE__MSG_OK, json_pack("{s:b}", "ok", 1));
    } else {
        jm_send_error(c, SAGE_EPROTO, "unknown request \"%s\"", op);
    }
}

static void on_hello(jm *d, jm_conn *c, json_t *hello)
{
    const char *token = json_string_value(json_object_get(hello, "token"));
    const char *role = json_string_value(json_object_get(hello, "role"));
    if (!token || !sage__token_equal(token, d->token)) {
        jm_log(d, "closing %s: wrong or missing token", c->peer);
        jm_send_error(c, SAGE_EAUTH, "authentication failed: wrong or missing token");
        c->closing = 1;
        return;
    }
    if (role && strcmp(role, "worker") == 0) {
        c->role = JM_WORKER;
        c->job_id = json_integer_value(json_object_get(hello, "job_id"));
        c->task = (int)json_integer_value(json_object_get(hello, "task"));
        jm_job *j = jm_job_find(d, c->job_id);
        if (!j || c->task < 0 || (size_t)c->task >= j->ntasks || j->tasks[c->task].ctl) {
            jm_log(d, "closing %s: worker hello for unknown job %lld task %d", c->peer, (long long)c->job_id, c->task);
            jm_send_error(c, SAGE_ENOTFOUND, "no such job task");
            c->role = JM_UNAUTH;
            c->closing = 1;
            return;
        }
        j->tasks[c->task].ctl = c;
        if (j->tasks[c->task].state == JT_STARTING)
            j->tasks[c->task].state = JT_RUNNING;
        jm_send_json(c, SAGE__MSG_OK, ping_json(d));
        /* the address other hosts reach this worker by, as its connection shows it */
        char host[64] = "";
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        if (getpeername(c->fd, (struct sockaddr *)&sa, &sl) == 0 &&
            getnameinfo((struct sockaddr *)&sa, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
            host[0] = 0;
        jm_on_worker_hello(d, c, hello, host); /* after the OK: a "peers" event must follow it */
        return;
    }
    c->role = JM_CLIENT;
    jm_send_json(c, SAGE__MSG_OK, ping_json(d));
}

/* Handle every complete frame in the read buffer. */
static void conn_frames(jm *d, jm_conn *c)
{
    size_t off = 0;
    while (!c->closing && c->fd >= 0) {
        if (c->role == JM_UNAUTH && c->rlen - off >= 4 && memcmp(c->rbuf + off, "GET ", 4) == 0) {
            c->role = JM_HTTP;
            break;
        }
        sage__frame f;
        char why[256];
        uint32_t max = c->role == JM_WORKER ? SAGE__DATA_FRAME_MAX : SAGE__CONTROL_FRAME_MAX;
        long n = sage__frame_decode(c->rbuf + off, c->rlen - off, max, &f, why, sizeof why);
        if (n == 0)
            break;
        if (n < 0) {
            jm_log(d, "closing %s: malformed frame: %s", c->peer, why);
            jm_send_error(c, SAGE_EPROTO, "malformed frame: %s", why);
            c->closing = 1;
            break;
        }
        off += (size_t)n;
        json_error_t jerr;
        json_t *msg = json_loadb((const char *)f.payload, f.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!msg || !json_is_object(msg)) {
            jm_log(d, "closing %s: message type %u is not a JSON object (%s)", c->peer, f.type,
                   msg ? "not an object" : jerr.text);
            jm_send_error(c, SAGE_EPROTO, "expected a JSON object");
            json_decref(msg);
            c->closing = 1;
            break;
        }
        if (c->role == JM_UNAUTH) {
            if (f.type != SAGE__MSG_HELLO) {
                jm_log(d, "closing %s: first frame is type %u, not HELLO", c->peer, f.type);
                jm_send_error(c, SAGE_EAUTH, "authentication required: the first frame must be HELLO");
                c->closing = 1;
            } else {
                on_hello(d, c, msg);
            }
        } else if (c->role == JM_CLIENT && f.type == SAGE__MSG_REQUEST) {
            client_request(d, c, msg);
        } else if (c->role == JM_WORKER && f.type == SAGE__MSG_EVENT) {
            jm_on_worker_event(d, c, msg);
        } else {
            jm_log(d, "closing %s: unexpected message type %u", c->peer, f.type);
            jm_send_error(c, SAGE_EPROTO, "unexpected message type %u", f.type);
            c->closing = 1;
        }
        json_decref(msg);
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    if (c->role == JM_HTTP)
        jm_http(d, c);
}

static void conn_read(jm *d, jm_conn *c)
{
    for (;;) {
        uint32_t max = c->role == JM_WORKER ? SAGE__DATA_FRAME_MAX : SAGE__CONTROL_FRAME_MAX;
        size_t cap_needed = c->rlen + 65536;
        if (cap_needed > (size_t)max + SAGE__FRAME_HDR + 65536)
            cap_needed = (size_t)max + SAGE__FRAME_HDR + 65536;
        if (c->rcap < cap_needed) {
            unsigned char *p = realloc(c->rbuf, cap_needed);
            if (!p) {
                c->closing = 1;
                return;
            }
            c->rbuf = p;
            c->rcap = cap_needed;
        }
        if (c->rlen == c->rcap) { /* a frame the decoder accepted cannot exceed this: malformed */
            jm_log(d, "closing %s: read buffer full", c->peer);
            c->closing = 1;
            return;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(d, c);
            return;
        }
        if (n == 0) {
            conn_close(d, c);
            return;
        }
        c->rlen += (size_t)n;
        conn_frames(d, c);
        if (c->closing || c->fd < 0)
            return;
    }
}

void jm_conn_drain(jm *d, jm_conn *c) { conn_read(d, c); }

static void accept_conns(jm *d)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(d->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        jm_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->task = -1;
        snprintf(c->peer, sizeof c->peer, "connection %d", fd);
        c->next = d->conns;
        d->conns = c;
    }
}

static void free_closed(jm *d)
{
    jm_conn **pp = &d->conns;
    while (*pp) {
        jm_conn *c = *pp;
        if (c->fd >= 0 && c->closing && c->wlen == 0)
            conn_close(d, c);
        if (c->fd < 0) {
            *pp = c->next;
            free(c->rbuf);
            free(c->wbuf);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

static void on_signals(jm *d)
{
    struct signalfd_siginfo si;
    while (read(d->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                jm_on_child_exit(d, pid, status);
        } else {
            jm_log(d, "signal %u: stopping", si.ssi_signo);
            d->stop = 1;
        }
    }
}

/* The state directory: created 0700; the pid file is locked for our lifetime. */
static int take_home(jm *d, int *pidfd, char *err, size_t err_len)
{
    if (mkdir(d->home, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "cannot create %s: %s", d->home, strerror(errno));
        return SAGE_EIO;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/jobs", d->home);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/jobmanager.pid", d->home);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return SAGE_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        snprintf(err, err_len, "a JobManager is already running with pid %ld (state directory %s)", strtol(buf, NULL, 10),
                 d->home);
        close(fd);
        return SAGE_ESTATE;
    }
    *pidfd = fd;
    return 0;
}

/* Worker groups left by a JobManager that died (named jm<pid>-...): remove
 * the empty ones whose daemon is gone. */
static void remove_stale_cgroups(jm *d)
{
    if (d->cgmode == SAGE__CGROUP_NONE)
        return;
    DIR *dir = opendir(d->cgparent);
    if (!dir)
        return;
    struct dirent *e;
    int removed = 0;
    while ((e = readdir(dir)) != NULL) {
        long pid;
        if (sscanf(e->d_name, "jm%ld-", &pid) != 1 || pid <= 0 || pid == (long)d->pid)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", d->cgparent, e->d_name);
        if (rmdir(path) == 0)
            removed++;
    }
    closedir(dir);
    if (removed)
        jm_log(d, "removed %d worker cgroup(s) left by JobManagers that are gone", removed);
}

static int load_config(jm *d, const char *config, char *err, size_t err_len)
{
    char nerr[1024];
    if (sage__node_discover(&d->node, nerr, sizeof nerr) != 0) {
        snprintf(err, err_len, "discovering this node: %s", nerr);
        return SAGE_ESYS;
    }
    if (!config)
        return 0;
    json_error_t jerr;
    const char *p = config;
    while (*p == ' ' || *p == '\n' || *p == '\t')
        p++;
    json_t *root = *p == '{' ? json_loads(config, JSON_REJECT_DUPLICATES, &jerr)
                             : json_load_file(config, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, err_len, "config: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return SAGE_ECONFIG;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "node") == 0) {
            if ((rc = sage__node_configure(&d->node, v, nerr, sizeof nerr)) != 0) {
                snprintf(err, err_len, "%s", nerr);
                break;
            }
        } else if (strcmp(key, "data_plane") == 0) {
            const char *dp = json_string_value(v);
            if (dp && strcmp(dp, "unix") == 0) {
                d->data_plane = JM_DATA_UNIX;
            } else if (dp && strcmp(dp, "tcp") == 0) {
                d->data_plane = JM_DATA_TCP;
            } else {
                char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                snprintf(err, err_len, "config: \"data_plane\" must be \"unix\" or \"tcp\", not %.200s",
                         txt ? txt : "this value");
                free(txt);
                rc = SAGE_ECONFIG;
                break;
            }
        } else if (strcmp(key, "slurm") == 0) {
            const char *sk;
            json_t *sv;
            if (!json_is_object(v)) {
                snprintf(err, err_len, "config: \"slurm\" must be an object such as {\"conf\": \"/abs/path/slurm.conf\"}");
                rc = SAGE_ECONFIG;
                break;
            }
            json_object_foreach(v, sk, sv)
            {
                if (strcmp(sk, "conf") != 0) {
                    snprintf(err, err_len, "config: unknown key \"slurm.%s\" (known: conf)", sk);
                    rc = SAGE_ECONFIG;
                    break;
                }
            }
            if (rc != 0)
                break;
            const char *conf = json_string_value(json_object_get(v, "conf"));
            struct stat st;
            if (!conf || conf[0] != '/' || strlen(conf) >= sizeof d->slurm_conf) {
                snprintf(err, err_len, "config: \"slurm\": \"conf\" must be the absolute path of a slurm.conf");
                rc = SAGE_ECONFIG;
                break;
            }
            if (stat(conf, &st) != 0 || !S_ISREG(st.st_mode)) {
                snprintf(err, err_len, "config: \"slurm\": \"conf\": %s is not a readable file (%s)", conf,
                         strerror(errno ? errno : EINVAL));
                rc = SAGE_ECONFIG;
                break;
            }
            snprintf(d->slurm_conf, sizeof d->slurm_conf, "%s", conf);
        } else {
            snprintf(err, err_len, "config: unknown key \"%s\" (known: node, data_plane, slurm)", key);
            rc = SAGE_ECONFIG;
            break;
        }
    }
    if (rc == 0 && d->slurm_conf[0]) {
        /* workers run on the cluster's nodes: only the tcp data plane reaches between them */
        json_t *dp = json_object_get(root, "data_plane");
        if (dp && json_is_string(dp) && strcmp(json_string_value(dp), "tcp") != 0) {
            snprintf(err, err_len, "config: \"slurm\" needs \"data_plane\": \"tcp\" (workers run on other hosts)");
            rc = SAGE_ECONFIG;
        } else if (json_object_get(root, "node")) {
            snprintf(err, err_len, "config: \"node\" and \"slurm\" exclude each other (on Slurm the nodes come from sinfo)");
            rc = SAGE_ECONFIG;
        }
        d->data_plane = JM_DATA_TCP;
    }
    json_decref(root);
    if (rc == 0 && d->slurm_conf[0])
        rc = jm_slurm_refresh(d, err, err_len);
    return rc;
}

int sage_jobmanager_run(const sage_jobmanager_opts *opts, char *err, size_t err_len)
{
    static const sage_jobmanager_opts none = {.ready_fd = -1};
    if (!opts)
        opts = &none;
    char scratch[64];
    if (!err || err_len == 0) {
        err = scratch;
        err_len = sizeof scratch;
    }
    jm *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    d->lfd = d->sfd = -1;
    d->pid = getpid();
    d->log_stderr = opts->log_to_stderr;
    d->port = opts->port ? opts->port : SAGE_JOBMANAGER_PORT;
    snprintf(d->host, sizeof d->host, "%s", opts->host ? opts->host : "127.0.0.1");
    int rc, pidfd = -1;
    if ((rc = sage_home_dir(opts->home, d->home, sizeof d->home)) != 0) {
        snprintf(err, err_len, "the state directory path is too long");
        goto out;
    }
    if ((rc = take_home(d, &pidfd, err, err_len)) != 0)
        goto out;
    if ((rc = load_config(d, opts->config, err, err_len)) != 0)
        goto out;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/jobmanager.log", d->home);
    d->log = fopen(path, "ae");
    snprintf(d->token_path, sizeof d->token_path, "%s/token", d->home);
    if ((rc = sage__token_create(d->token_path, d->token, sizeof d->token, err, err_len)) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/jobs.db", d->home);
    if (!(d->store = sage__store_open(path, err, err_len))) {
        rc = SAGE_EIO;
        goto out;
    }
    int failed = sage__store_fail_unfinished(d->store, "the JobManager stopped while the job was running");
    if ((rc = sage__tcp_listen(d->host, d->port, 128, &d->lfd, err, err_len)) != 0) {
        if (strstr(err, "already in use")) {
            size_t l = strlen(err);
            snprintf(err + l, err_len - l, " (is a JobManager running there? try: sage jobmanager status --port %d)",
                     d->port);
        }
        goto out;
    }
    sage__set_nonblock(d->lfd, 1);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigset_t oldmask;
    pthread_sigmask(SIG_BLOCK, &mask, &oldmask);
    d->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    d->cgmode = sage__cgroup_probe(d->cgparent, sizeof d->cgparent, d->cgwhy, sizeof d->cgwhy);
    /* every worker costs the daemon a few descriptors (pipes, its connection): use what the host allows */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    remove_stale_cgroups(d);
    char pidtxt[32];
    int pl = snprintf(pidtxt, sizeof pidtxt, "%ld\n", (long)d->pid);
    if (ftruncate(pidfd, 0) != 0 || pwrite(pidfd, pidtxt, (size_t)pl, 0) != pl)
        jm_log(d, "could not write the pid file");
    if (d->slurm_conf[0]) {
        char nodes[1024] = "";
        size_t o = 0;
        for (size_t i = 0; i < d->slurm_nnodes && o + 1 < sizeof nodes; i++) {
            char mem[32];
            sage__format_bytes(d->slurm_nodes[i].memory, mem, sizeof mem);
            o += (size_t)snprintf(nodes + o, sizeof nodes - o, "%s%s (%d cpus, %d gpus, %s)", i ? ", " : "",
                                  d->slurm_nodes[i].name, d->slurm_nodes[i].ncpus, d->slurm_nodes[i].ngpus, mem);
        }
        jm_log(d, "on Slurm (SLURM_CONF=%s): %zu nodes: %s", d->slurm_conf, d->slurm_nnodes, nodes);
        if (strncmp(d->host, "127.", 4) == 0 || strcmp(d->host, "localhost") == 0)
            jm_log(d, "warning: listening on %s: workers on other hosts cannot reach it (start with --host ADDR)",
                   d->host);
        jm_slurm_startup(d);
    }
    jm_log(d, "JobManager %s listening on %s:%d (pid %ld, state %s); node \"%s\": %d cpus, %d gpus; %smemory limits: %s%s",
           sage_version(), d->host, d->port, (long)d->pid, d->home, d->node.name, d->node.ncpus, d->node.ngpus,
           d->data_plane == JM_DATA_TCP ? "data plane: tcp; " : "",
           d->cgmode == SAGE__CGROUP_NONE ? "not enforced: " : "cgroup ",
           d->cgmode == SAGE__CGROUP_NONE ? d->cgwhy : d->cgparent);
    if (failed > 0)
        jm_log(d, "%d job(s) were running when the JobManager last stopped; they are marked failed", failed);
    if (opts->ready_fd >= 0) {
        if (write(opts->ready_fd, "R", 1) != 1)
            jm_log(d, "could not signal readiness");
        close(opts->ready_fd);
    }

    struct pollfd *pfds = NULL;
    size_t pcap = 0;
    while (!d->stop) {
        size_t nconns = 0;
        for (jm_conn *c = d->conns; c; c = c->next)
            nconns++;
        size_t need = 2 + nconns + 4096;
        if (need > pcap) {
            struct pollfd *p = realloc(pfds, need * sizeof *p);
            if (!p) {
                rc = SAGE_ENOMEM;
                snprintf(err, err_len, "out of memory");
                break;
            }
            pfds = p;
            pcap = need;
        }
        size_t n = 0;
        pfds[n++] = (struct pollfd){.fd = d->lfd, .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = d->sfd, .events = POLLIN};
        for (jm_conn *c = d->conns; c; c = c->next)
            pfds[n++] = (struct pollfd){.fd = c->fd, .events = (short)(POLLIN | (c->wlen ? POLLOUT : 0))};
        size_t first_pipe = n;
        jm_job_pipes(d, pfds, &n, pcap);
        if (poll(pfds, (nfds_t)n, jm_jobs_timers(d)) < 0 && errno != EINTR) {
            jm_log(d, "poll: %s", strerror(errno));
            break;
        }
        if (pfds[1].revents)
            on_signals(d);
        size_t k = 2;
        for (jm_conn *c = d->conns; c && k < first_pipe; c = c->next, k++) {
            if (c->fd != pfds[k].fd)
                continue;
            if (pfds[k].revents & (POLLIN | POLLHUP | POLLERR))
                conn_read(d, c);
        }
        for (size_t i = first_pipe; i < n; i++)
            if (pfds[i].revents)
                jm_job_pipe_ready(d, pfds[i].fd);
        if (pfds[0].revents) /* last: new connections go to the head of the list */
            accept_conns(d);
        jm_jobs_timers(d);
        for (jm_conn *c = d->conns; c; c = c->next)
            if (c->fd >= 0 && c->wlen)
                flush_conn(c);
        free_closed(d);
    }
    free(pfds);
    jm_log(d, "JobManager stopping");
    jm_jobs_shutdown(d);
    for (jm_conn *c = d->conns; c; c = c->next) {
        if (c->fd >= 0)
            flush_conn(c);
        c->closing = 1;
    }
    free_closed(d);
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    rc = 0;
out:
    if (d->lfd >= 0)
        close(d->lfd);
    if (d->sfd >= 0)
        close(d->sfd);
    sage__store_close(d->store);
    free(d->slurm_nodes);
    if (d->log)
        fclose(d->log);
    if (pidfd >= 0) {
        if (rc == 0) {
            snprintf(path, sizeof path, "%s/jobmanager.pid", d->home);
            unlink(path);
        }
        close(pidfd);
    }
    free(d);
    return rc;
}
