/* tests/jm_daemon.h - a JobManager daemon of a test's own: a forked child on a free port and a fresh state directory.
 *
 * For integration tests that drive a real daemon (sage_jobmanager_run from the daemon library): daemon_up
 * starts one (config: d->config, NULL for the defaults), request() sends it a JSON request as a client,
 * daemon_log() reads its log, daemon_down() stops it and removes its directory. Waits are bounded. */
#ifndef SAGE_TESTS_JM_DAEMON_H
#define SAGE_TESTS_JM_DAEMON_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "jobmanager/jobmanager.h" /* the daemon library */
#include "sage/jobmanager.h"

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void pause_ms(int ms) { nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL); }

typedef struct daemon_t {
    char home[256], token[300], addr[64], log[300];
    int port;
    pid_t pid;
    const char *config; /* the daemon's configuration document (NULL: defaults) */
} daemon_t;

static inline int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

/* The JobManager of d (a forked child) on d's state directory, on a free port. */
static inline int daemon_start(daemon_t *d)
{
    for (int tries = 0; tries < 3; tries++) { /* another test may take the port first */
        d->port = free_port();
        snprintf(d->addr, sizeof d->addr, "127.0.0.1:%d", d->port);
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            return 0;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            sage_jobmanager_opts o =
                {.host = "127.0.0.1", .port = d->port, .home = d->home, .ready_fd = p[1], .config = d->config};
            char err[2048];
            int rc = sage_jobmanager_run(&o, err, sizeof err);
            if (rc != 0)
                fprintf(stderr, "jobmanager: %s\n", err);
            _exit(rc ? 1 : 0);
        }
        close(p[1]);
        char c = 0;
        ssize_t n = read(p[0], &c, 1);
        close(p[0]);
        if (n == 1 && c == 'R') {
            d->pid = pid;
            return 1;
        }
        waitpid(pid, NULL, 0);
    }
    return 0;
}

/* A JobManager on a free port and a fresh state directory; 1 once it listens (a failed check if not). */
static inline int daemon_up(daemon_t *d)
{
    snprintf(d->home, sizeof d->home, "/tmp/sage-jmtest-XXXXXX");
    if (!mkdtemp(d->home)) {
        CHECK(!"a state directory under /tmp");
        return 0;
    }
    snprintf(d->token, sizeof d->token, "%s/token", d->home);
    snprintf(d->log, sizeof d->log, "%s/jobmanager.log", d->home);
    if (daemon_start(d))
        return 1;
    CHECK(!"the JobManager started");
    return 0;
}

static inline void daemon_down(daemon_t *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, NULL, 0);
        d->pid = -1;
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->home);
    (void)!system(cmd);
}

/* A request to daemon d; the reply parsed (NULL on any failure). */
static inline json_t *request(const daemon_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline json_t *request(const daemon_t *d, const char *fmt, ...)
{
    char req[512], err[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req, sizeof req, fmt, ap);
    va_end(ap);
    sage_client *c = NULL;
    char *reply = NULL;
    if (sage_client_connect("127.0.0.1", d->port, d->token, &c, err, sizeof err) != 0)
        return NULL;
    int rc = sage_client_request(c, req, &reply, err, sizeof err);
    sage_client_close(c);
    json_t *r = rc == 0 ? json_loads(reply, 0, NULL) : NULL;
    free(reply);
    return r;
}

/* Daemon d's log so far (its first 64 KiB). */
static inline const char *daemon_log(const daemon_t *d)
{
    static char log[1 << 16];
    FILE *f = fopen(d->log, "r");
    size_t n = f ? fread(log, 1, sizeof log - 1, f) : 0;
    log[n] = 0;
    if (f)
        fclose(f);
    return log;
}

/* Run a shell command (stderr joined to stdout); its output in out (at most cap - 1 bytes, NUL-terminated),
 * its exit status (128 + signal when killed). */
static inline int run_cmd(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int run_cmd(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    size_t n = 0, r;
    while (f && n < cap - 1 && (r = fread(out + n, 1, cap - 1 - n, f)) > 0)
        n += r;
    out[n] = 0;
    int st = f ? pclose(f) : -1;
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif
