/* cluster/slurm.c - Slurm client commands for the JobManager, and node capacities from `sinfo --json`.
 *
 * Design note. The JobManager is one poll loop, so every Slurm command it
 * runs is bounded: fork + execvp (never a shell), stdout collected up to
 * SAGE__SLURM_OUT_MAX, stderr's first line kept for messages, and the
 * command killed once its time is up. The child gets SLURM_CONF (the
 * munge socket then comes from that file's AuthInfo) and an empty signal
 * mask (the daemon blocks SIGCHLD/SIGTERM for its signalfd; a blocked
 * mask would survive exec). It is reaped here by its pid, so the daemon's
 * SIGCHLD handler never sees it as a worker.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/slurm.h"
#include "util/err.h"
#include "util/time.h"

extern char **environ;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* environ with SLURM_CONF replaced (conf != NULL). */
static char **env_with_conf(const char *conf)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **e = calloc(n + 2, sizeof *e);
    if (!e)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!conf || strncmp(environ[i], "SLURM_CONF=", 11) != 0)
            e[m++] = environ[i];
    char *c = NULL;
    if (conf) {
        size_t l = strlen(conf) + 12;
        c = malloc(l);
        if (!c) {
            free(e);
            return NULL;
        }
        snprintf(c, l, "SLURM_CONF=%s", conf);
        e[m++] = c;
    }
    e[m] = NULL;
    return e;
}

int sage__slurm_run(const char *conf, char *const argv[], int timeout_ms, char **out, char *msg, size_t msg_len)
{
    if (out)
        *out = NULL;
    msg[0] = 0;
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0) {
        snprintf(msg, msg_len, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(pe, O_CLOEXEC) != 0) {
        snprintf(msg, msg_len, "pipe: %s", strerror(errno));
        close(po[0]), close(po[1]);
        return -1;
    }
    char **envp = env_with_conf(conf);
    if (!envp) {
        snprintf(msg, msg_len, "out of memory");
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execvpe(argv[0], argv, envp);
        static const char m[] = "cannot execute the command (is Slurm's client installed and in PATH?)\n";
        (void)!write(2, m, sizeof m - 1);
        _exit(127);
    }
    int fork_errno = errno;
    if (envp) {
        for (size_t i = 0; envp[i]; i++)
            if (strncmp(envp[i], "SLURM_CONF=", 11) == 0 && conf)
                free(envp[i]);
        free(envp);
    }
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]), close(pe[0]);
        snprintf(msg, msg_len, "fork: %s", strerror(fork_errno));
        return -1;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char ebuf[1024];
    size_t elen = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_fds = 2, timed_out = 0, oom = 0;
    long long deadline = mono_ms() + timeout_ms;
    while (open_fds > 0) {
        long long left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int r = poll(fds, 2, (int)left);
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[8192];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n > 0) {
                if (i == 0 && out && len + (size_t)n <= SAGE__SLURM_OUT_MAX) {
                    if (len + (size_t)n + 1 > cap) {
                        size_t nc = cap ? cap * 2 : 16384;
                        while (nc < len + (size_t)n + 1)
                            nc *= 2;
                        char *p = realloc(buf, nc);
                        if (!p) {
                            oom = 1;
                            continue;
                        }
                        buf = p;
                        cap = nc;
                    }
                    memcpy(buf + len, chunk, (size_t)n);
                    len += (size_t)n;
                } else if (i == 1 && elen < sizeof ebuf - 1) {
                    size_t k = (size_t)n < sizeof ebuf - 1 - elen ? (size_t)n : sizeof ebuf - 1 - elen;
                    memcpy(ebuf + elen, chunk, k);
                    elen += k;
                }
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int st = 0;
    if (timed_out)
        kill(pid, SIGKILL);
    /* the pipes are closed: the command has exited or is about to; still bounded */
    long long reap_by = mono_ms() + (timed_out ? 5000 : timeout_ms > 0 ? timeout_ms : 1);
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            break;
        if (mono_ms() > reap_by) {
            kill(pid, SIGKILL);
            timed_out = 1;
        }
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    ebuf[elen] = 0;
    size_t l1 = strcspn(ebuf, "\n");
    ebuf[l1] = 0;
    if (buf)
        buf[len] = 0;
    if (out)
        *out = buf;
    else
        free(buf);
    if (timed_out) {
        snprintf(msg, msg_len, "%s did not finish within %d ms%s%s", argv[0], timeout_ms, ebuf[0] ? ": " : "", ebuf);
        return -1;
    }
    if (oom) {
        snprintf(msg, msg_len, "out of memory reading the output of %s", argv[0]);
        return -1;
    }
    snprintf(msg, msg_len, "%s", ebuf);
    if (WIFSIGNALED(st)) {
        snprintf(msg, msg_len, "%s was killed by signal %d%s%s", argv[0], WTERMSIG(st), ebuf[0] ? ": " : "", ebuf);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- sinfo --json ---- */

static long long json_num(json_t *j)
{
    if (json_is_integer(j))
        return json_integer_value(j);
    if (json_is_real(j))
        return (long long)json_real_value(j);
    if (json_is_object(j)) /* newer data_parser: {"set": true, "infinite": false, "number": N} */
        return json_num(json_object_get(j, "number"));
    return 0;
}

static long long gres_count(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    switch (toupper((unsigned char)*end)) {
    case 'K': v *= 1024LL; break;
    case 'M': v *= 1024LL * 1024; break;
    case 'G': v *= 1024LL * 1024 * 1024; break;
    default: break;
    }
    return v;
}

/* "gpu:2,ssd:4" or "gpu:tesla:1(S:0-1),ssd:0" into the node's GPUs and custom resources. */
static int add_gres(sage__node *nd, const char *s, char *err, size_t err_len)
{
    if (!s || !*s || !strcmp(s, "(null)") || !strcmp(s, "N/A"))
        return 0;
    const char *p = s;
    while (*p) {
        const char *q = p;
        int depth = 0;
        while (*q && !(*q == ',' && depth == 0)) {
            if (*q == '(')
                depth++;
            else if (*q == ')' && depth > 0)
                depth--;
            q++;
        }
        char item[256];
        snprintf(item, sizeof item, "%.*s", (int)(q - p), p);
        item[strcspn(item, "(")] = 0;
        char *colon = strchr(item, ':');
        long long cnt = 1;
        if (colon) {
            *colon = 0;
            const char *last = strrchr(colon + 1, ':');
            last = last ? last + 1 : colon + 1;
            if (isdigit((unsigned char)*last))
                cnt = gres_count(last);
        }
        p = *q ? q + 1 : q;
        if (!item[0] || cnt <= 0)
            continue;
        if (strcmp(item, "gpu") == 0) {
            for (long long g = 0; g < cnt && nd->ngpus < SAGE__NODE_GPUS_MAX; g++, nd->ngpus++)
                nd->gpu_ids[nd->ngpus] = nd->ngpus;
            continue;
        }
        size_t i;
        for (i = 0; i < nd->ncustom; i++)
            if (strcmp(nd->custom[i].name, item) == 0)
                break;
        if (i == nd->ncustom) {
            if (nd->ncustom >= SAGE_RES_CUSTOM_MAX || strlen(item) > SAGE_RES_NAME_MAX) {
                snprintf(err, err_len, "node %s: gres \"%s\" does not fit (at most %d resources of %d characters)",
                         nd->name, item, SAGE_RES_CUSTOM_MAX, SAGE_RES_NAME_MAX);
                return SAGE_ECONFIG;
            }
            size_t il = strlen(item); /* checked above: at most SAGE_RES_NAME_MAX */
            memcpy(nd->custom[i].name, item, il);
            nd->custom[i].name[il] = '\0';
            nd->ncustom++;
        }
        nd->custom[i].amount += (double)cnt;
    }
    return 0;
}

/* Whether Slurm would start work on a node in this state. */
static int usable(json_t *j)
{
    static const char *const bad[] = {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING",
                                      "FUTURE", "POWERED_DOWN", "POWER_DOWN", "INVALID_REG", "UNKNOWN", NULL};
    json_t *st = json_object_get(j, "state"), *fl = json_object_get(j, "state_flags");
    json_t *lists[2] = {json_is_array(st) ? st : NULL, fl};
    for (int l = 0; l < 2; l++)
        for (size_t k = 0; k < json_array_size(lists[l]); k++) {
            const char *s = json_string_value(json_array_get(lists[l], k));
            for (int b = 0; s && bad[b]; b++)
                if (strcasecmp(s, bad[b]) == 0)
                    return 0;
        }
    if (json_is_string(st))
        for (int b = 0; bad[b]; b++)
            if (strcasecmp(json_string_value(st), bad[b]) == 0)
                return 0;
    return 1;
}

int sage__slurm_parse_sinfo(const char *text, sage__node **nodes, size_t *count, char *err, size_t err_len)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    json_t *arr = json_object_get(root, "nodes");
    if (!json_is_array(arr)) {
        snprintf(err, err_len, "sinfo --json printed no \"nodes\" array%s%s", root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return SAGE_EPROTO;
    }
    size_t n = json_array_size(arr), m = 0;
    sage__node *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        json_decref(root);
        return SAGE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(j, "name"));
        if (!name || !usable(j))
            continue;
        /* sinfo lists a node once per partition it is in */
        int dup = 0;
        for (size_t k = 0; k < m && !dup; k++)
            dup = strcmp(v[k].name, name) == 0;
        if (dup)
            continue;
        sage__node *nd = &v[m];
        snprintf(nd->name, sizeof nd->name, "%s", name);
        long long cpus = json_num(json_object_get(j, "cpus"));
        nd->ncpus = cpus < 0 ? 0 : cpus > SAGE__NODE_CPUS_MAX ? SAGE__NODE_CPUS_MAX : (int)cpus;
        nd->nreal = 0; /* Slurm binds the tasks: no real CPU set known here */
        nd->simulated = 1;
        long long mb = json_num(json_object_get(j, "real_memory"));
        nd->memory = mb > 0 ? (uint64_t)mb * 1024 * 1024 : 0;
        int rc = add_gres(nd, json_string_value(json_object_get(j, "gres")), err, err_len);
        if (rc != 0) {
            free(v);
            json_decref(root);
            return rc;
        }
        m++;
    }
    json_decref(root);
    if (m == 0) {
        free(v);
        snprintf(err, err_len, "the Slurm cluster reports no usable node (%zu listed, all down, drained or failing)", n);
        return SAGE_EINFEASIBLE;
    }
    *nodes = v;
    *count = m;
    return 0;
}

int sage__slurm_nodes(const char *conf, sage__node **nodes, size_t *n, char *err, size_t err_len)
{
    char *out = NULL, msg[1024];
    char *argv[] = {"sinfo", "--json", NULL};
    int rc = sage__slurm_run(conf, argv, SAGE__SLURM_WAIT_MS, &out, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, err_len, "sinfo --json (SLURM_CONF=%s) %s%s%s", conf ? conf : "(unset)",
                 rc < 0 ? "failed" : "exited with status ", rc < 0 ? ": " : "", rc < 0 ? msg : "");
        if (rc > 0) {
            size_t l = strlen(err);
            snprintf(err + l, err_len - l, "%d: %s", rc, msg[0] ? msg : "(no message)");
        }
        free(out);
        return SAGE_ESYS;
    }
    rc = sage__slurm_parse_sinfo(out ? out : "", nodes, n, err, err_len);
    free(out);
    return rc;
}
