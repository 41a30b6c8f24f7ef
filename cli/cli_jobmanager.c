/* cli/cli_jobmanager.c - `sage jobmanager start | status | stop`: run a JobManager daemon, ask it, stop it. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
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
#include "util/escape.h"

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

/* Close every descriptor from lo to hi (inclusive). */
static void close_fds(int lo, int hi)
{
    if (lo > hi || close_range((unsigned)lo, (unsigned)hi, 0) == 0)
        return;
    DIR *dir = opendir("/proc/self/fd"); /* a kernel before 5.9 */
    if (!dir)
        return;
    int fds[1024], n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < 1024) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (!*end && e->d_name[0] && fd >= lo && fd <= hi && fd != dirfd(dir))
            fds[n++] = (int)fd;
    }
    closedir(dir);
    for (int i = 0; i < n; i++)
        close(fds[i]);
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
    if (pipe2(p, O_CLOEXEC) != 0) {
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
        /* the daemon keeps nothing it inherited: the shell's descriptors (`9>&1 | cat` would wait for it
         * forever) reach neither it nor its workers; only the readiness pipe, above 2, stays */
        int ready = fcntl(p[1], F_DUPFD_CLOEXEC, 3);
        int null = open("/dev/null", O_RDWR); /* 0-2 are the workers' too: not close-on-exec */
        if (null >= 0)
            dup2(null, 0), dup2(null, 1), dup2(null, 2);
        if (ready < 0)
            _exit(1);
        close_fds(3, ready - 1);
        close_fds(ready + 1, INT_MAX);
        if (chdir("/") != 0)
            _exit(1);
        jo.ready_fd = ready;
        int rc = sage_jobmanager_run(&jo, err, sizeof err);
        if (rc != 0) {
            char msg[2100];
            int n = snprintf(msg, sizeof msg, "E%s", err);
            (void)!write(ready, msg, (size_t)n);
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
        char version[128], host[1024], home[4200], mem[1024];
        printf("JobManager %s running on %s:%lld, pid %lld, state directory %s\n",
               sage__escape_str(version, sizeof version, json_string_value(json_object_get(r, "version"))),
               sage__escape_str(host, sizeof host, json_string_value(json_object_get(r, "host"))),
               json_integer_value(json_object_get(r, "port")), json_integer_value(json_object_get(r, "pid")),
               sage__escape_str(home, sizeof home, json_string_value(json_object_get(r, "home"))));
        printf("live jobs: %lld; memory limits: %s\n", json_integer_value(json_object_get(r, "jobs_live")),
               sage__escape_str(mem, sizeof mem, json_string_value(json_object_get(r, "memory_enforcement"))));
        const char *launcher = json_string_value(json_object_get(r, "launcher"));
        const char *conf = json_string_value(json_object_get(r, "slurm_conf"));
        char lb[256], cb[4200];
        printf("launcher: %s%s%s%s\n", sage__escape_str(lb, sizeof lb, launcher ? launcher : "?"),
               conf ? " (SLURM_CONF=" : "", conf ? sage__escape_str(cb, sizeof cb, conf) : "", conf ? ")" : "");
        json_t *node;
        size_t i;
        json_array_foreach(json_object_get(r, "nodes"), i, node)
        {
            char name[256], res[1024] = "";
            size_t at = 0;
            const char *key;
            json_t *v;
            json_object_foreach(json_object_get(node, "resources"), key, v)
            {
                char k[160];
                if (at < sizeof res)
                    at += (size_t)snprintf(res + at, sizeof res - at, ", %s=%g", sage__escape_str(k, sizeof k, key),
                                           json_number_value(v));
            }
            printf("node %s: %lld cpus, %lld gpus, %.0f MiB memory%s\n",
                   sage__escape_str(name, sizeof name, json_string_value(json_object_get(node, "name"))),
                   json_integer_value(json_object_get(node, "cpus")), json_integer_value(json_object_get(node, "gpus")),
                   (double)json_integer_value(json_object_get(node, "memory")) / (1 << 20), res);
        }
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

int cli_dashboard(const cli_opts *o)
{
    json_t *reply = NULL;
    int ec = cli_request(o, json_pack("{s:s}", "op", "dashboard"), &reply);
    if (ec)
        return ec;
    const char *url = json_string_value(json_object_get(reply, "url"));
    printf("The JobManager's dashboard: open this address once (it logs you in, for %lld s; the session then lasts "
           "12 hours):\n%s\n",
           (long long)json_integer_value(json_object_get(reply, "valid_s")), url ? url : "?");
    json_decref(reply);
    return url ? 0 : EXIT_REFUSED;
}
