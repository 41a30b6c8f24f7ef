/* tests/check.h - the tiny test harness every SAGE test uses: cases in their own processes, checks, skips.
 *
 * A test program is a main() that starts with CHECK_MAIN(argc, argv), does its common setup, runs its
 * cases with one `RUN(name);` line each and ends with `return CHECK_DONE();`:
 *
 *   prog NAME    runs the common setup and case NAME only; exits 0 (ok), 1 (FAIL) or 77 (SKIP).
 *                This is how ctest runs every case: one ctest test per case (tests/cases.cmake).
 *   prog         runs every case, each in a forked child (its own process group) that runs the common
 *                setup and that case, with a timeout (CHECK_TIMEOUT seconds, or $SAGE_TEST_TIMEOUT);
 *                prints ok / FAIL / SKIP per case and a summary; exits 1 if any case failed.
 *   prog --list  prints the case names.
 *
 * The case list is CHECK_CASES, a string of names that tests/cases.cmake reads from the `RUN(name);`
 * lines of the source; a RUN whose case is not in it fails the program, so a RUN line the build did not
 * see cannot go unnoticed. SKIP("reason %s", ...) ends the current case as skipped (a failed CHECK
 * before it still fails the case); SKIP_CASES("reason") in main makes the RUN lines after it report
 * their cases as skipped without running them. */
#ifndef SAGE_TESTS_CHECK_H
#define SAGE_TESTS_CHECK_H

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CHECK_CASES
#error "CHECK_CASES is not defined: register the test with sage_test_cases() (tests/cases.cmake)"
#endif
#ifndef CHECK_TIMEOUT
#define CHECK_TIMEOUT 300
#endif
#define CHECK_SKIP_CODE 77

static int check__failed_checks __attribute__((unused)); /* for a debugger: CHECKs failed in this process */
static int check__case_failed;
static int check__case_skipped;
static char check__skip_reason[512];
static char check__skip_rest[512];

enum { CHECK__UNSET, CHECK__ONE };
static int check__mode;
static const char *check__only;
static int check__reached, check__unlisted;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                                 \
            check__failed_checks++;                                                                                    \
            check__case_failed = 1;                                                                                    \
        }                                                                                                              \
    } while (0)

#define CHECK_INT(a, b)                                                                                                \
    do {                                                                                                               \
        long long check__a = (long long)(a), check__b = (long long)(b);                                                \
        if (check__a != check__b) {                                                                                    \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, check__a,          \
                    check__b);                                                                                         \
            check__failed_checks++;                                                                                    \
            check__case_failed = 1;                                                                                    \
        }                                                                                                              \
    } while (0)

#define CHECK_STR(a, b)                                                                                                \
    do {                                                                                                               \
        const char *check__a = (a), *check__b = (b);                                                                   \
        if (!check__a || !check__b || strcmp(check__a, check__b) != 0) {                                               \
            fprintf(stderr, "  %s:%d: %s == %s failed:\n    got:      \"%s\"\n    expected: \"%s\"\n", __FILE__,       \
                    __LINE__, #a, #b, check__a ? check__a : "(null)", check__b ? check__b : "(null)");                 \
            check__failed_checks++;                                                                                    \
            check__case_failed = 1;                                                                                    \
        }                                                                                                              \
    } while (0)

/* Substring check, for messages whose tail varies. */
#define CHECK_CONTAINS(hay, needle)                                                                                    \
    do {                                                                                                               \
        const char *check__h = (hay), *check__n = (needle);                                                            \
        if (!check__h || !strstr(check__h, check__n)) {                                                                \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,                           \
                    check__h ? check__h : "(null)", check__n);                                                         \
            check__failed_checks++;                                                                                    \
            check__case_failed = 1;                                                                                    \
        }                                                                                                              \
    } while (0)

/* Ends the current case as skipped, with a reason (printf format). Only in a case's own function. */
#define SKIP(...)                                                                                                      \
    do {                                                                                                               \
        check__skip(__VA_ARGS__);                                                                                      \
        return;                                                                                                        \
    } while (0)

/* In main: the RUN lines after this report their cases as skipped, with this reason. */
#define SKIP_CASES(...) check__skip_cases(__VA_ARGS__)

#define RUN(fn) check__run(#fn, fn)

/* First statement of main: parses the command line; drives every case when given none. */
#define CHECK_MAIN(argc, argv)                                                                                         \
    do {                                                                                                               \
        int check__rc = check__main((argc), (argv));                                                                   \
        if (check__rc >= 0)                                                                                            \
            return check__rc;                                                                                          \
    } while (0)

#define CHECK_DONE() check__done()

static void check__skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void check__skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(check__skip_reason, sizeof check__skip_reason, fmt, ap);
    va_end(ap);
    check__case_skipped = 1;
}

static void check__skip_cases(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void check__skip_cases(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(check__skip_rest, sizeof check__skip_rest, fmt, ap);
    va_end(ap);
}

/* The i-th name of CHECK_CASES into out; 0 when there is none. */
static int check__case_at(int i, char *out, size_t cap)
{
    const char *p = CHECK_CASES;
    for (;;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n == 0)
            return 0;
        if (i-- == 0) {
            snprintf(out, cap, "%.*s", (int)n, p);
            return 1;
        }
        p += n;
    }
}

static int check__listed(const char *name)
{
    char c[256];
    for (int i = 0; check__case_at(i, c, sizeof c); i++)
        if (strcmp(c, name) == 0)
            return 1;
    return 0;
}

static void check__run(const char *name, void (*fn)(void))
{
    if (check__mode == CHECK__UNSET) {
        fprintf(stderr, "RUN(%s) before CHECK_MAIN(argc, argv): main must start with it\n", name);
        exit(2);
    }
    if (!check__listed(name)) {
        fprintf(stderr, "FAIL RUN(%s) is not in the case list \"%s\": write it as `RUN(%s);` alone on a line\n", name,
                CHECK_CASES, name);
        check__unlisted = 1;
        return;
    }
    if (strcmp(name, check__only) != 0)
        return;
    check__reached = 1;
    check__case_failed = 0;
    check__case_skipped = 0;
    if (check__skip_rest[0]) {
        check__case_skipped = 1;
        snprintf(check__skip_reason, sizeof check__skip_reason, "%s", check__skip_rest);
    } else {
        fn();
    }
    if (check__case_failed)
        fprintf(stderr, "FAIL %s\n", name);
    else if (check__case_skipped)
        printf("SKIP %s: %s\n", name, check__skip_reason);
    else
        printf("ok   %s\n", name);
    fflush(stdout);
}

static int check__done(void)
{
    if (check__unlisted)
        return 1;
    if (!check__reached) {
        fprintf(stderr, "FAIL %s: its RUN line was not reached\n", check__only);
        return 1;
    }
    return check__case_failed ? 1 : check__case_skipped ? CHECK_SKIP_CODE : 0;
}

static volatile sig_atomic_t check__alarmed;
static volatile pid_t check__child;

static void check__on_alarm(int sig) { check__alarmed = 1; }

/* ^C or a kill while driving: the case's whole process group goes too. */
static void check__on_stop(int sig)
{
    if (check__child > 0)
        kill(-check__child, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Runs every case in a child of its own; returns the exit status, or -1 in the child (which goes on
 * into main as `prog NAME`). */
static int check__drive(const char *prog)
{
    int timeout = CHECK_TIMEOUT;
    const char *t = getenv("SAGE_TEST_TIMEOUT");
    if (t && atoi(t) > 0)
        timeout = atoi(t);
    struct sigaction sa = {.sa_handler = check__on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: waitpid returns EINTR */
    signal(SIGINT, check__on_stop);
    signal(SIGTERM, check__on_stop);
    static char name[256];
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; check__case_at(i, name, sizeof name); i++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            setpgid(0, 0);
            signal(SIGALRM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            check__mode = CHECK__ONE;
            check__only = name;
            return -1;
        }
        setpgid(pid, pid);
        check__child = pid;
        check__alarmed = 0;
        alarm((unsigned)timeout);
        int st = 0;
        pid_t w;
        while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR && !check__alarmed)
            ;
        alarm(0);
        if (w != pid) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            fprintf(stderr, "FAIL %s (timed out after %d s; its processes were killed)\n", name, timeout);
            failed++;
        } else if (WIFSIGNALED(st)) {
            kill(-pid, SIGKILL);
            fprintf(stderr, "FAIL %s (killed by signal %d, %s)\n", name, WTERMSIG(st), strsignal(WTERMSIG(st)));
            failed++;
        } else if (WEXITSTATUS(st) == 0) {
            passed++;
        } else if (WEXITSTATUS(st) == CHECK_SKIP_CODE) {
            skipped++;
        } else {
            failed++;
        }
        check__child = 0;
    }
    printf("%s: %d passed, %d failed, %d skipped\n", prog, passed, failed, skipped);
    return failed ? 1 : passed == 0 && skipped > 0 ? CHECK_SKIP_CODE : 0;
}

static int check__main(int argc, char **argv)
{
    if (argc == 1)
        return check__drive(argv[0]);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        char c[256];
        for (int i = 0; check__case_at(i, c, sizeof c); i++)
            printf("%s\n", c);
        return 0;
    }
    if (argc == 2 && argv[1][0] != '-' && check__listed(argv[1])) {
        check__mode = CHECK__ONE;
        check__only = argv[1];
        return -1;
    }
    fprintf(stderr, "usage: %s [--list | CASE]\ncases: %s\n", argv[0], CHECK_CASES);
    return 2;
}

#endif
