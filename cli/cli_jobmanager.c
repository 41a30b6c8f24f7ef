/* cli/cli_jobmanager.c - `sage jobmanager start | status | stop`: run a JobManager daemon, ask it, stop it. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "jobmanager/jobmanager.h"

/* An absolute form of a path given relative to where `sage` was started (the
 * daemon changes to / before it reads anything). JSON text is left alone. */
static const char *absolute(const char *path, char *buf, size_t len)
{
    const char *t = path;
    while (t && (*t == ' ' || *t == '\t' || *t == '\n'))
        t++;
    if (!path || path[0] == '/' || *t == '{')
        return path;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return path;
    int n = snprintf(buf, len, "%s/%s", cwd, path);
    return n > 0 && (size_t)n < len ? buf : path;
}

int cli_jobmanager_start(const cli_opts *o)
{
    char home_abs[4200], config_abs[4200], env_home[4200];
    const char *home = o->home;
    if (!home && getenv("SAGE_HOME") && *getenv("SAGE_HOME"))
        home = absolute(getenv("SAGE_HOME"), env_home, sizeof env_home);
    sage_jobmanager_opts jo = {.host = o->host,
                               .port = o->port,
                               .home = absolute(home, home_abs, sizeof home_abs),
                               .config = absolute(o->config, config_abs, sizeof config_abs),
                               .ready_fd = -1};
    char err[2048];
    if (o->foreground) {
        jo.log_to_stderr = 1;
        int rc = sage_jobmanager_run(&jo, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "sage: the JobManager could not start: %s\n", err);
            return EXIT_REFUSED;
        }
        return 0;
    }
    int p[2];
    if (pipe(p) != 0) {
        perror("sage: pipe");
        return EXIT_REFUSED;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("sage: fork");
        return EXIT_REFUSED;
    }
    if (pid == 0) {
        close(p[0]);
        setsid();
        if (fork() > 0) /* the daemon is a grandchild: not a session leader, no terminal */
            _exit(0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0), dup2(null, 1), dup2(null, 2);
            if (null > 2)
                close(null);
        }
        if (chdir("/") != 0)
            _exit(1);
        jo.ready_fd = p[1];
        int rc = sage_jobmanager_run(&jo, err, sizeof err);
        if (rc != 0) {
            char msg[2100];
            int n = snprintf(msg, sizeof msg, "E%s", err);
            (void)!write(p[1], msg, (size_t)n);
        }
        _exit(rc ? 1 : 0);
    }
    close(p[1]);
    waitpid(pid, NULL, 0);
    char buf[2100];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    if (n > 0 && buf[0] == 'R') {
        char hd[1024];
        sage_home_dir(jo.home, hd, sizeof hd);
        printf("JobManager started on %s:%d (state directory %s, log %s/jobmanager.log)\n", o->host, o->port, hd, hd);
        return 0;
    }
    buf[n > 0 ? n : 0] = 0;
    fprintf(stderr, "sage: the JobManager could not start: %s\n", n > 1 ? buf + 1 : "it exited during startup");
    return EXIT_REFUSED;
}

int cli_jobmanager_status(const cli_opts *o)
{
    json_t *r;
    int ec = cli_request(o, json_pack("{s:s}", "op", "ping"), &r);
    if (ec)
        return ec;
    if (o->json) {
        cli_print_json(r);
    } else {
        printf("JobManager %s running on %s:%lld, pid %lld, state directory %s\n",
               json_string_value(json_object_get(r, "version")), json_string_value(json_object_get(r, "host")),
               json_integer_value(json_object_get(r, "port")), json_integer_value(json_object_get(r, "pid")),
               json_string_value(json_object_get(r, "home")));
        printf("live jobs: %lld; memory limits: %s\n", json_integer_value(json_object_get(r, "jobs_live")),
               json_string_value(json_object_get(r, "memory_enforcement")));
    }
    json_decref(r);
    return 0;
}

int cli_jobmanager_stop(const cli_opts *o)
{
    json_t *r;
    int ec = cli_request(o, json_pack("{s:s}", "op", "ping"), &r);
    if (ec)
        return ec;
    pid_t pid = (pid_t)json_integer_value(json_object_get(r, "pid"));
    json_decref(r);
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if ((ec = cli_request(o, json_pack("{s:s}", "op", "shutdown"), &r)) != 0) {
        if (pfd >= 0)
            close(pfd);
        return ec;
    }
    json_decref(r);
    /* wait (bounded) until the process is gone, so a new start finds the port and state free */
    int gone = 0;
    if (pfd >= 0) {
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        gone = poll(&p, 1, 30000) == 1;
        close(pfd);
    } else {
        for (int i = 0; i < 3000 && !gone; i++) {
            gone = kill(pid, 0) != 0;
            if (!gone)
                nanosleep(&(struct timespec){0, 10000000}, NULL);
        }
    }
    if (!gone) {
        fprintf(stderr, "sage: the JobManager (pid %d) accepted the shutdown but is still running after 30 s\n",
                (int)pid);
        return EXIT_REFUSED;
    }
    printf("JobManager on %s:%d stopped\n", o->host, o->port);
    return 0;
}
