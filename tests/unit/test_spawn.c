/* tests/unit/test_spawn.c - child processes: capture, bounds, deadlines, exit statuses, environment, the async pieces. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/slurm.h"
#include "cluster/spawn.h"
#include "sage/error.h"
#include "util/time.h"

static int run_sh(sage__proc *p, const char *script, size_t out_max, int timeout_ms)
{
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    sage__spawn_opts o = {.argv = argv, .out_max = out_max, .err_max = 4096, .timeout_ms = timeout_ms};
    sage__err e = {0};
    int rc = sage__proc_run(p, &o, &e);
    if (rc != 0)
        fprintf(stderr, "  run: %s\n", e.msg);
    return rc;
}

static void test_capture(void)
{
    sage__proc p;
    CHECK_INT(run_sh(&p, "printf 'out\\nline2'; printf 'first err\\nsecond\\n' >&2; exit 0", 1024, 5000), 0);
    CHECK_STR(sage__proc_stdout(&p), "out\nline2");
    char line[64], msg[256];
    sage__proc_first_err_line(&p, line, sizeof line);
    CHECK_STR(line, "first err");
    CHECK_INT(sage__proc_exit_code(&p), 0);
    sage__proc_describe(&p, msg, sizeof msg);
    CHECK_STR(msg, "first err"); /* success: just what it said */
    CHECK(!p.out_truncated && !p.timed_out);
    sage__proc_free(&p);
}

static void test_exit_and_signal(void)
{
    sage__proc p;
    char msg[256];
    CHECK_INT(run_sh(&p, "echo nope >&2; exit 3", 1024, 5000), 0);
    CHECK_INT(sage__proc_exit_code(&p), 3);
    sage__proc_describe(&p, msg, sizeof msg);
    CHECK_STR(msg, "sh exited with status 3: nope");
    sage__proc_free(&p);

    CHECK_INT(run_sh(&p, "kill -9 $$", 1024, 5000), 0);
    CHECK_INT(sage__proc_exit_code(&p), -1);
    sage__proc_describe(&p, msg, sizeof msg);
    CHECK_STR(msg, "sh was killed by signal 9 (Killed)");
    sage__proc_free(&p);

    char *argv[] = {"sage-test-no-such-command", NULL};
    sage__spawn_opts o = {.argv = argv, .out_max = 64, .err_max = 256};
    sage__err e = {0};
    CHECK_INT(sage__proc_run(&p, &o, &e), 0);
    CHECK_INT(sage__proc_exit_code(&p), 127);
    sage__proc_describe(&p, msg, sizeof msg);
    CHECK_STR(msg, "sage-test-no-such-command exited with status 127: sage-test-no-such-command: cannot execute "
                   "(not installed, or not in PATH?)");
    sage__proc_free(&p);

    sage__spawn_opts none = {.argv = (char *[]){NULL}};
    sage__err e2 = {0};
    CHECK_INT(sage__proc_start(&p, &none, &e2), SAGE_EINVAL);
    CHECK_CONTAINS(e2.msg, "no command");
}

/* More output than kept: the rest is read and dropped, the child is never blocked by a full pipe. */
static void test_bounded(void)
{
    sage__proc p;
    CHECK_INT(run_sh(&p, "head -c 300000 /dev/zero | tr '\\0' x; head -c 100000 /dev/zero >&2", 1000, 10000), 0);
    CHECK_INT(p.out.len, 1000);
    CHECK(p.out_truncated);
    CHECK_INT(p.err.len, 4096);
    CHECK(p.err_truncated);
    CHECK_INT(sage__proc_exit_code(&p), 0);
    CHECK(strspn(sage__proc_stdout(&p), "x") == 1000);
    sage__proc_free(&p);

    /* exactly the maximum is not truncated */
    CHECK_INT(run_sh(&p, "printf 12345", 5, 5000), 0);
    CHECK_STR(sage__proc_stdout(&p), "12345");
    CHECK(!p.out_truncated);
    sage__proc_free(&p);
}

/* A command past its deadline is killed with everything it started (its process group). */
static void test_deadline(void)
{
    sage__proc p;
    int64_t t0 = sage__mono_ms();
    /* the shell waits for a sleep that holds the pipes: both must die */
    CHECK_INT(run_sh(&p, "echo started; sleep 30; echo never", 1024, 300), 0);
    int64_t took = sage__mono_ms() - t0;
    CHECK(p.timed_out);
    CHECK_INT(sage__proc_exit_code(&p), -1);
    CHECK_STR(sage__proc_stdout(&p), "started\n");
    char msg[256];
    sage__proc_describe(&p, msg, sizeof msg);
    CHECK_STR(msg, "sh did not finish within 300 ms");
    CHECK(took >= 300 && took < 5000);
    sage__proc_free(&p);
}

static void test_env_and_log(void)
{
    setenv("SAGE_TEST_B", "inherited", 1);
    setenv("SAGE_TEST_C", "kept", 1);
    char *argv[] = {"sh", "-c", "echo \"$SAGE_TEST_A|${SAGE_TEST_B-unset}|$SAGE_TEST_C\"", NULL};
    const char *env[] = {"SAGE_TEST_A=set", "SAGE_TEST_B", NULL};
    sage__spawn_opts o = {.argv = argv, .env = env, .out_max = 256, .err_max = 256, .timeout_ms = 5000};
    sage__proc p;
    sage__err e = {0};
    CHECK_INT(sage__proc_run(&p, &o, &e), 0);
    CHECK_STR(sage__proc_stdout(&p), "set|unset|kept\n");
    sage__proc_free(&p);

    /* stdout and stderr appended to a file instead */
    char log[] = "/tmp/sage-test-spawn-XXXXXX";
    int fd = mkstemp(log);
    CHECK(fd >= 0);
    if (write(fd, "before\n", 7) != 7)
        CHECK(0);
    close(fd);
    char *argv2[] = {"sh", "-c", "echo out; echo err >&2", NULL};
    sage__spawn_opts o2 = {.argv = argv2, .log = log, .timeout_ms = 5000};
    CHECK_INT(sage__proc_run(&p, &o2, &e), 0);
    CHECK_INT(sage__proc_exit_code(&p), 0);
    CHECK_INT(p.fd[0], -1);
    sage__proc_free(&p);
    char buf[64] = "";
    fd = open(log, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    CHECK_STR(buf, "before\nout\nerr\n");
    unlink(log);
}

/* The pieces a poll loop uses: it polls the pipes, reaps the child itself and hands the status over. */
static void test_async(void)
{
    char *argv[] = {"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' y; exit 5", NULL};
    sage__spawn_opts o = {.argv = argv, .out_max = 1 << 20, .err_max = 256, .timeout_ms = 10000};
    sage__proc p;
    sage__err e = {0};
    CHECK_INT(sage__proc_start(&p, &o, &e), 0);
    CHECK(p.pid > 0 && p.fd[0] >= 0 && p.fd[1] >= 0);
    int64_t deadline = sage__mono_ms() + 10000;
    while (!sage__proc_done(&p) && sage__mono_ms() < deadline) {
        struct pollfd fds[2];
        nfds_t n = 0;
        for (int i = 0; i < 2; i++)
            if (p.fd[i] >= 0)
                fds[n++] = (struct pollfd){.fd = p.fd[i], .events = POLLIN};
        poll(fds, n, 100);
        sage__proc_read(&p);
        int st;
        if (waitpid(p.pid, &st, WNOHANG) == p.pid)
            sage__proc_reaped(&p, st);
    }
    CHECK(sage__proc_done(&p));
    CHECK_INT(sage__proc_exit_code(&p), 5);
    CHECK_INT(p.out.len, 200000);             /* more than a pipe holds: all of it read */
    CHECK(!sage__proc_expire(&p, INT64_MAX)); /* reaped: nothing to kill */
    sage__proc_free(&p);

    /* expire from the caller's timer */
    char *argv2[] = {"sleep", "30", NULL};
    sage__spawn_opts o2 = {.argv = argv2, .out_max = 16, .err_max = 16, .timeout_ms = 50};
    CHECK_INT(sage__proc_start(&p, &o2, &e), 0);
    CHECK(!sage__proc_expire(&p, sage__mono_ms())); /* not yet */
    CHECK(sage__proc_expire(&p, p.deadline_ms));
    int st = 0;
    CHECK_INT(waitpid(p.pid, &st, 0), p.pid);
    sage__proc_reaped(&p, st);
    CHECK(p.timed_out && WIFSIGNALED(st));
    sage__proc_free(&p);
}

/* The Slurm wrapper: SLURM_CONF for the command, output past its maximum is an error. */
static void test_slurm_run(void)
{
    char *out = NULL, msg[256];
    char *argv[] = {"sh", "-c", "echo \"$SLURM_CONF\"; echo warn >&2", NULL};
    CHECK_INT(sage__slurm_run("/etc/x/slurm.conf", argv, 5000, &out, msg, sizeof msg), 0);
    CHECK_STR(out, "/etc/x/slurm.conf\n");
    CHECK_STR(msg, "warn");
    free(out);
    char *argv2[] = {"sh", "-c", "echo 'squeue: error: Invalid job id specified' >&2; exit 1", NULL};
    CHECK_INT(sage__slurm_run(NULL, argv2, 5000, &out, msg, sizeof msg), 1);
    CHECK_STR(msg, "sh exited with status 1: squeue: error: Invalid job id specified");
    free(out);
    char script[64];
    snprintf(script, sizeof script, "head -c %u /dev/zero", SAGE__SLURM_OUT_MAX + 1);
    char *argv3[] = {"sh", "-c", script, NULL};
    CHECK_INT(sage__slurm_run(NULL, argv3, 10000, &out, msg, sizeof msg), -1);
    CHECK(out == NULL);
    CHECK_CONTAINS(msg, "printed more than 4194304 bytes");
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    RUN(test_capture);
    RUN(test_exit_and_signal);
    RUN(test_bounded);
    RUN(test_deadline);
    RUN(test_env_and_log);
    RUN(test_async);
    RUN(test_slurm_run);
    return CHECK_DONE();
}
