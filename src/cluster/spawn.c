/* cluster/spawn.c - child processes with bounded output capture and a deadline (async pieces and a synchronous run).
 *
 * Design note. One command is one sage__proc: fork + execvp (never a
 * shell), stdout and stderr on two pipes whose read ends are non-blocking,
 * each captured into a sage__buf with a hard maximum (past it the bytes are
 * read and dropped, so the child never blocks on a full pipe), and a
 * deadline on the monotonic clock. The pieces are separate so that a poll
 * loop (the JobManager) can own them: it polls p->fd[], calls
 * sage__proc_read when they are readable, reaps every child itself and
 * hands the status over with sage__proc_reaped, and calls sage__proc_expire
 * from its timers. sage__proc_run strings the same pieces together for
 * callers that may wait (the `sage` command, the daemon before it serves):
 * it polls the pipes and a pidfd of the child, so it wakes exactly when
 * something happens, and reaps the child by its pid.
 *
 * The child gets a process group of its own: a deadline kills the group,
 * which takes down whatever the command started (a shell script's `sleep`,
 * say) instead of leaving it to hold the pipes. Its signal mask is emptied
 * (the daemon blocks SIGCHLD and SIGTERM for its signalfd, and a mask
 * survives exec), and every descriptor above 2 is closed before exec.
 * Everything the child needs (the environment, the argument vector) is
 * built before fork, so the child makes only async-signal-safe calls.
 */
#include "cluster/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sage/error.h"
#include "util/time.h"

extern char **environ;

/* Length of the NAME part of "NAME=value" (or of "NAME"). */
static size_t env_name_len(const char *s) { return strcspn(s, "="); }

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* environ with `changes` applied (see sage__spawn_opts.env); every string is a copy. */
static char **env_with(const char *const *changes)
{
    size_t n = 0, nc = 0;
    while (environ && environ[n])
        n++;
    while (changes && changes[nc])
        nc++;
    char **e = calloc(n + nc + 1, sizeof *e);
    if (!e)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = env_name_len(environ[i]);
        int changed = 0;
        for (size_t c = 0; c < nc && !changed; c++)
            changed = env_name_len(changes[c]) == l && strncmp(changes[c], environ[i], l) == 0;
        if (!changed && !(e[m++] = strdup(environ[i])))
            goto oom;
    }
    for (size_t c = 0; c < nc; c++)
        if (strchr(changes[c], '=') && !(e[m++] = strdup(changes[c])))
            goto oom;
    e[m] = NULL;
    return e;
oom:
    free_strv(e);
    return NULL;
}

/* In the child, before exec: async-signal-safe calls only. */
static void child(const sage__spawn_opts *o, char **envp, int out_w, int err_w)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul >= 0)
        dup2(nul, 0);
    if (o->log) {
        int fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
    } else {
        dup2(out_w, 1);
        dup2(err_w, 2);
    }
    close_range(3, ~0U, 0);
    execvpe(o->argv[0], o->argv, envp);
    static const char m[] = ": cannot execute (not installed, or not in PATH?)\n";
    (void)!write(2, o->argv[0], strlen(o->argv[0]));
    (void)!write(2, m, sizeof m - 1);
    _exit(127);
}

int sage__proc_start(sage__proc *p, const sage__spawn_opts *o, sage__err *e)
{
    memset(p, 0, sizeof *p);
    p->fd[0] = p->fd[1] = -1;
    sage__buf_init(&p->out, o->out_max);
    sage__buf_init(&p->err, o->err_max);
    if (!o->argv || !o->argv[0])
        return sage__errf(e, SAGE_EINVAL, "spawn: no command");
    sage__strlcpy(p->name, o->argv[0], sizeof p->name);
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (!o->log && (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)) {
        int en = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        return sage__errf(e, SAGE_ESYS, "%s: pipe: %s", p->name, strerror(en));
    }
    char **envp = o->env ? env_with(o->env) : environ;
    if (!envp) {
        for (int i = 0; i < 2 && !o->log; i++)
            close(po[i]), close(pe[i]);
        return sage__errf(e, SAGE_ENOMEM, "%s: out of memory building its environment", p->name);
    }
    pid_t pid = fork();
    if (pid == 0)
        child(o, envp, po[1], pe[1]);
    int fork_errno = errno;
    if (o->env)
        free_strv(envp);
    if (!o->log) {
        close(po[1]);
        close(pe[1]);
    }
    if (pid < 0) {
        if (!o->log)
            close(po[0]), close(pe[0]);
        return sage__errf(e, SAGE_ESYS, "%s: fork: %s", p->name, strerror(fork_errno));
    }
    setpgid(pid, pid); /* also in the child: whichever runs first */
    p->pid = pid;
    p->fd[0] = o->log ? -1 : po[0];
    p->fd[1] = o->log ? -1 : pe[0];
    for (int i = 0; i < 2; i++)
        if (p->fd[i] >= 0)
            fcntl(p->fd[i], F_SETFL, fcntl(p->fd[i], F_GETFL) | O_NONBLOCK);
    p->deadline_ms = o->timeout_ms > 0 ? sage__mono_ms() + o->timeout_ms : 0;
    p->timeout_ms = o->timeout_ms;
    return 0;
}

int sage__proc_read(sage__proc *p)
{
    for (int i = 0; i < 2; i++) {
        sage__buf *b = i == 0 ? &p->out : &p->err;
        int *trunc = i == 0 ? &p->out_truncated : &p->err_truncated;
        while (p->fd[i] >= 0) {
            char chunk[8192];
            ssize_t n = read(p->fd[i], chunk, sizeof chunk);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n <= 0) {
                close(p->fd[i]);
                p->fd[i] = -1;
                break;
            }
            size_t room = b->max - b->len, take = (size_t)n < room ? (size_t)n : room;
            if (take < (size_t)n)
                *trunc = 1;
            if (take && sage__buf_append(b, chunk, take) != 0)
                *trunc = 1; /* out of memory: what is kept stays consistent */
        }
    }
    return p->fd[0] < 0 && p->fd[1] < 0;
}

void sage__proc_reaped(sage__proc *p, int status)
{
    p->reaped = 1;
    p->status = status;
    p->pid = 0;
    sage__proc_read(p); /* everything it wrote before it exited is in the pipes now */
}

static void kill_group(sage__proc *p)
{
    p->timed_out = 1;
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL); /* in case it left its group */
}

int sage__proc_expire(sage__proc *p, int64_t now_ms)
{
    if (p->reaped || p->pid <= 0 || !p->deadline_ms || now_ms < p->deadline_ms || p->timed_out)
        return 0;
    kill_group(p);
    return 1;
}

int sage__proc_done(sage__proc *p) { return p->reaped; }

void sage__proc_free(sage__proc *p)
{
    for (int i = 0; i < 2; i++)
        if (p->fd[i] >= 0) {
            close(p->fd[i]);
            p->fd[i] = -1;
        }
    sage__buf_free(&p->out);
    sage__buf_free(&p->err);
}

int sage__proc_run(sage__proc *p, const sage__spawn_opts *o, sage__err *e)
{
    int rc = sage__proc_start(p, o, e);
    return rc != 0 ? rc : sage__proc_wait(p, e);
}

int sage__proc_wait(sage__proc *p, sage__err *e)
{
    int rc = 0;
    int pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    while (!p->reaped) {
        int64_t now = sage__mono_ms();
        if (sage__proc_expire(p, now) || p->timed_out) {
            int st = 0;
            while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
            }
            sage__proc_reaped(p, st);
            break;
        }
        struct pollfd fds[3];
        nfds_t n = 0;
        for (int i = 0; i < 2; i++)
            if (p->fd[i] >= 0)
                fds[n++] = (struct pollfd){.fd = p->fd[i], .events = POLLIN};
        if (pidfd >= 0)
            fds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int64_t left = p->deadline_ms ? p->deadline_ms - now : -1;
        int wait_ms = pidfd >= 0 ? (int)(left > 60000 ? 60000 : left) : (left >= 0 && left < 10 ? (int)left : 10);
        if (poll(fds, n, wait_ms) < 0 && errno != EINTR) {
            rc = sage__errf(e, SAGE_ESYS, "%s: poll: %s", p->name, strerror(errno));
            kill_group(p);
            continue;
        }
        sage__proc_read(p);
        int st = 0;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid)
            sage__proc_reaped(p, st);
    }
    if (pidfd >= 0)
        close(pidfd);
    if (rc != 0)
        sage__proc_free(p);
    return rc;
}

int sage__proc_exit_code(const sage__proc *p)
{
    return p->reaped && !p->timed_out && WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1;
}

void sage__proc_first_err_line(const sage__proc *p, char *buf, size_t len)
{
    const char *s = p->err.p ? (const char *)p->err.p : "";
    size_t n = p->err.p ? p->err.len : 0;
    while (n > 0 && (*s == '\n' || *s == '\r')) /* a blank first line says nothing */
        s++, n--;
    size_t l = 0;
    while (l < n && s[l] != '\n' && s[l] != '\r')
        l++;
    sage__fmt(buf, len, "%.*s", (int)l, s);
}

void sage__proc_describe(const sage__proc *p, char *buf, size_t len)
{
    char line[512], what[160] = "";
    sage__proc_first_err_line(p, line, sizeof line);
    if (!p->reaped)
        sage__fmt(what, sizeof what, "%s is still running", p->name);
    else if (p->timed_out)
        sage__fmt(what, sizeof what, "%s did not finish within %d ms", p->name, p->timeout_ms);
    else if (WIFSIGNALED(p->status))
        sage__fmt(what, sizeof what, "%s was killed by signal %d (%s)", p->name, WTERMSIG(p->status),
                  strsignal(WTERMSIG(p->status)));
    else if (WIFEXITED(p->status) && WEXITSTATUS(p->status) != 0)
        sage__fmt(what, sizeof what, "%s exited with status %d", p->name, WEXITSTATUS(p->status));
    sage__fmt(buf, len, "%s%s%s", what, what[0] && line[0] ? ": " : "", line);
}

const char *sage__proc_stdout(sage__proc *p) { return sage__buf_cstr(&p->out); }
