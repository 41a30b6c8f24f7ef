/* tests/unit/test_cgroup.c - worker memory cgroups: SAGE_CGROUP=none, error paths, and as root a real OOM kill. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cgroup.h"
#include "sage/error.h"

#define MIB (UINT64_C(1) << 20)

/* ---- cleanup that also runs when the test dies ----------------------------
 * Every group and child the test makes is registered; a fatal signal (or the
 * watchdog alarm) kills the children and removes the groups with
 * async-signal-safe calls only, then dies of the same signal. */
#define MAX_TRACKED 8
static char tracked_dirs[MAX_TRACKED][512];
static volatile sig_atomic_t tracked_pids[MAX_TRACKED];
static char probe_parent[512];
static int probe_parent_made; /* remove the (empty) parent at the end */

static void track_dir(const char *path)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (!tracked_dirs[i][0]) {
            snprintf(tracked_dirs[i], sizeof tracked_dirs[i], "%s", path);
            return;
        }
}

static void untrack_dir(const char *path)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (strcmp(tracked_dirs[i], path) == 0)
            tracked_dirs[i][0] = '\0';
}

static void track_pid(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (!tracked_pids[i]) {
            tracked_pids[i] = pid;
            return;
        }
}

static void untrack_pid(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] == pid)
            tracked_pids[i] = 0;
}

/* Everything the scratch directory can hold, deepest first, built before use
 * so the signal handler only has to unlink/rmdir. */
#define SCRATCH_PATHS 9
static char scratch_paths[SCRATCH_PATHS][400];

static void emergency_cleanup(int sig)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i]) {
            kill(tracked_pids[i], SIGKILL);
            waitpid(tracked_pids[i], NULL, 0);
        }
    const struct timespec ms = {0, 1000000};
    for (int i = 0; i < MAX_TRACKED; i++)
        for (int t = 0; tracked_dirs[i][0] && t < 200; t++) {
            if (rmdir(tracked_dirs[i]) == 0 || errno != EBUSY)
                break;
            nanosleep(&ms, NULL);
        }
    if (probe_parent_made)
        rmdir(probe_parent);
    for (int i = 0; i < SCRATCH_PATHS; i++) /* files first, then dirs, the scratch dir last */
        if (scratch_paths[i][0] && unlink(scratch_paths[i]) != 0)
            rmdir(scratch_paths[i]);
    static const char msg[] = "test_cgroup: died of a signal; cleaned up its cgroups\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_cleanup(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGINT, SIGHUP, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], emergency_cleanup);
    alarm(60); /* watchdog: the whole test takes a few seconds */
}

/* In a forked child: forget the parent's cleanup duties. */
static void child_reset_signals(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGINT, SIGHUP, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
}

/* ---- helpers ------------------------------------------------------------- */

static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int file_exists(const char *dir, const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return path_exists(path);
}

static void write_text(const char *dir, const char *file, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static uint64_t read_number(const char *dir, const char *file)
{
    char path[1024], buf[64] = "";
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = '\0';
    fclose(f);
    if (strncmp(buf, "max", 3) == 0)
        return UINT64_MAX;
    return strtoull(buf, NULL, 10);
}

/* A scratch directory that is not a cgroup: the error paths use it. */
static char scratch[256];

static void make_scratch(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/sage-cgroup-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        exit(2);
    }
    static const char *const inside[SCRATCH_PATHS - 1] = {
        "fake/memory.oom_control",
        "fake/memory.max_usage_in_bytes",
        "fake/memory.events",
        "fake/memory.current",
        "fake/memory.peak",
        "fake",
        "procs",
        "w1",
    };
    for (int i = 0; i < SCRATCH_PATHS - 1; i++)
        snprintf(scratch_paths[i], sizeof scratch_paths[i], "%s/%s", scratch, inside[i]);
    snprintf(scratch_paths[SCRATCH_PATHS - 1], sizeof scratch_paths[0], "%s", scratch);
}

static void remove_scratch(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", scratch);
    memset(scratch_paths, 0, sizeof scratch_paths);
}

/* ---- fallback and error paths (any user) ----------------------------------- */

static void test_env_none(void)
{
    const char *old = getenv("SAGE_CGROUP");
    char saved[64] = "";
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    setenv("SAGE_CGROUP", "none", 1);
    char parent[512] = "junk", why[512] = "";
    CHECK_INT(sage__cgroup_probe(parent, sizeof parent, why, sizeof why), SAGE__CGROUP_NONE);
    CHECK_STR(parent, "");
    CHECK_CONTAINS(why, "SAGE_CGROUP=none");
    CHECK_CONTAINS(why, "not enforced");
    /* NULL buffers are tolerated */
    CHECK_INT(sage__cgroup_probe(NULL, 0, NULL, 0), SAGE__CGROUP_NONE);
    if (old)
        setenv("SAGE_CGROUP", saved, 1);
    else
        unsetenv("SAGE_CGROUP");
}

static void test_create_rejects(void)
{
    sage__cgroup cg;
    char err[512];

    CHECK_INT(sage__cgroup_create(NULL, SAGE__CGROUP_V1, scratch, "x", 0, err, sizeof err), SAGE_EINVAL);

    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_NONE, scratch, "x", 64 * MIB, err, sizeof err), SAGE_EUNSUPPORTED);
    CHECK_CONTAINS(err, "not enforced");
    CHECK_INT(cg.procs_fd, -1);
    CHECK_STR(cg.path, "");

    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, "a/b", 0, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, "", 0, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, "..", 0, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V2, scratch, NULL, 0, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V2, "", "x", 0, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(cg.procs_fd, -1);

    char longname[600];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, longname, 0, err, sizeof err), SAGE_ETOOBIG);
    CHECK_CONTAINS(err, "too long");
    CHECK_STR(cg.path, "");

    /* A parent that cannot be made: the message names the path and errno text. */
    char parent[400];
    snprintf(parent, sizeof parent, "%s/missing/deeper", scratch);
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, parent, "w", 0, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "deeper/w");
    CHECK_CONTAINS(err, "No such file or directory");

    /* Nothing to do on a group that was never made; destroy is idempotent. */
    CHECK_INT(sage__cgroup_attach_self(&cg), SAGE_EINVAL);
    CHECK_INT(sage__cgroup_attach_self(NULL), SAGE_EINVAL);
    CHECK_INT(sage__cgroup_oom_killed(&cg), 0);
    CHECK_INT(sage__cgroup_oom_killed(NULL), 0);
    CHECK(sage__cgroup_peak(&cg) == 0);
    CHECK(sage__cgroup_peak(NULL) == 0);
    sage__cgroup_destroy(&cg);
    sage__cgroup_destroy(&cg);
    sage__cgroup_destroy(NULL);
}

/* A parent that is a plain directory: mkdir works, the first cgroup file
 * does not exist, so create fails naming that file and removes its dir. */
static void test_create_failure_removes_dir(void)
{
    sage__cgroup cg;
    char err[512], dir[600];
    snprintf(dir, sizeof dir, "%s/w1", scratch);

    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, "w1", 64 * MIB, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "memory.limit_in_bytes");
    CHECK_CONTAINS(err, "No such file or directory");
    CHECK(!path_exists(dir));
    CHECK_STR(cg.path, "");
    CHECK_INT(cg.procs_fd, -1);

    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V2, scratch, "w1", 64 * MIB, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "memory.max");
    CHECK(!path_exists(dir));

    /* No limit: no limit file is touched, cgroup.procs is what is missing. */
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, "w1", 0, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "cgroup.procs");
    CHECK(!path_exists(dir));

    /* An existing directory is not ours: EEXIST, and it is left alone. */
    CHECK_INT(mkdir(dir, 0755), 0);
    CHECK_INT(sage__cgroup_create(&cg, SAGE__CGROUP_V1, scratch, "w1", 0, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "File exists");
    CHECK(path_exists(dir));
    sage__cgroup_destroy(&cg);
    CHECK(path_exists(dir));
    rmdir(dir);
}

/* attach_self writes exactly "0\n" (the writer moves itself). */
static void test_attach_writes_zero(void)
{
    char path[400], buf[16] = "";
    snprintf(path, sizeof path, "%s/procs", scratch);
    sage__cgroup cg;
    memset(&cg, 0, sizeof cg);
    cg.mode = SAGE__CGROUP_V1;
    cg.procs_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(cg.procs_fd >= 0);
    CHECK_INT(sage__cgroup_attach_self(&cg), 0);
    close(cg.procs_fd);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    CHECK_STR(buf, "0\n");
    unlink(path);
}

/* oom_killed and peak parse the kernel's files (fake copies here). */
static void test_parse_counters(void)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/fake", scratch);
    CHECK_INT(mkdir(dir, 0755), 0);
    sage__cgroup cg;
    memset(&cg, 0, sizeof cg);
    cg.procs_fd = -1;
    snprintf(cg.path, sizeof cg.path, "%s", dir);

    cg.mode = SAGE__CGROUP_V1;
    CHECK_INT(sage__cgroup_oom_killed(&cg), 0); /* file missing */
    write_text(dir, "memory.oom_control", "oom_kill_disable 1\nunder_oom 0\noom_kill 0\n");
    CHECK_INT(sage__cgroup_oom_killed(&cg), 0); /* oom_kill_disable is not oom_kill */
    write_text(dir, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    CHECK_INT(sage__cgroup_oom_killed(&cg), 1);
    write_text(dir, "memory.max_usage_in_bytes", "67108864\n");
    CHECK(sage__cgroup_peak(&cg) == 64 * MIB);

    cg.mode = SAGE__CGROUP_V2;
    write_text(dir, "memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n");
    CHECK_INT(sage__cgroup_oom_killed(&cg), 0);
    write_text(dir, "memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n");
    CHECK_INT(sage__cgroup_oom_killed(&cg), 1);
    write_text(dir, "memory.current", "1000\n");
    CHECK(sage__cgroup_peak(&cg) == 1000); /* no memory.peak: current */
    write_text(dir, "memory.peak", "5000\n");
    CHECK(sage__cgroup_peak(&cg) == 5000);

    cg.mode = SAGE__CGROUP_NONE;
    CHECK_INT(sage__cgroup_oom_killed(&cg), 0);
    CHECK(sage__cgroup_peak(&cg) == 0);
}

/* ---- enforcement (root with a writable v1 or v2 memory controller) -------- */

static sage__cgroup_mode mode;
static char parent[512], why[512];

/* Whatever the host: a consistent answer. */
static void test_probe_result(void)
{
    CHECK(mode == SAGE__CGROUP_NONE || mode == SAGE__CGROUP_V1 || mode == SAGE__CGROUP_V2);
    if (mode == SAGE__CGROUP_NONE) {
        CHECK_STR(parent, "");
        CHECK(why[0] != '\0');
        return;
    }
    struct stat st;
    CHECK(stat(parent, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(strstr(parent, "/sage") != NULL);
    if (mode == SAGE__CGROUP_V1) {
        CHECK_STR(why, ""); /* no note on v1 */
        CHECK_STR(parent, "/sys/fs/cgroup/memory/sage");
    } else {
        CHECK(strncmp(parent, "/sys/fs/cgroup/", 15) == 0); /* v2 may note a fallback to the root in why */
    }
}

/* Fork a child that attaches itself to `cg`, then touches `bytes` of memory
 * 1 MiB at a time. Exit codes: 0 done, 3 attach failed, 4 malloc failed. */
static pid_t spawn_toucher(const sage__cgroup *cg, uint64_t bytes)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    child_reset_signals();
    alarm(20); /* never hang the suite if the kill does not come */
    if (sage__cgroup_attach_self(cg) != 0)
        _exit(3);
    volatile unsigned sum = 0;
    for (uint64_t done = 0; done < bytes; done += MIB) {
        unsigned char *p = malloc(MIB); /* kept: the point is to hold it */
        if (!p)
            _exit(4);
        memset(p, (int)(done / MIB) | 1, MIB);
        sum += p[MIB / 2];
    }
    _exit(sum == 0 ? 5 : 0);
}

static int wait_child(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    untrack_pid(pid);
    return status;
}

static void test_oom_kill(void)
{
    char name[64], err[512];
    snprintf(name, sizeof name, "ut-%ld-oom", (long)getpid());
    sage__cgroup cg;
    int rc = sage__cgroup_create(&cg, mode, parent, name, 64 * MIB, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    track_dir(cg.path);
    char path[600];
    snprintf(path, sizeof path, "%s", cg.path);
    CHECK(path_exists(path));
    CHECK(cg.procs_fd >= 0);
    CHECK(cg.limit == 64 * MIB);

    /* The limit (and its swap side) really is in the kernel. */
    if (mode == SAGE__CGROUP_V1) {
        CHECK(read_number(path, "memory.limit_in_bytes") == 64 * MIB);
        if (file_exists(path, "memory.memsw.limit_in_bytes"))
            CHECK(read_number(path, "memory.memsw.limit_in_bytes") == 64 * MIB);
    } else {
        CHECK(read_number(path, "memory.max") == 64 * MIB);
        if (file_exists(path, "memory.swap.max"))
            CHECK(read_number(path, "memory.swap.max") == 0);
    }
    CHECK_INT(sage__cgroup_oom_killed(&cg), 0);

    /* Same name again: EEXIST, and the existing group survives. */
    sage__cgroup dup;
    CHECK_INT(sage__cgroup_create(&dup, mode, parent, name, 64 * MIB, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "File exists");
    CHECK(path_exists(path));

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = spawn_toucher(&cg, 256 * MIB);
    CHECK(pid > 0);
    if (pid > 0) {
        track_pid(pid);
        int status = wait_child(pid);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        CHECK(WIFSIGNALED(status));
        if (WIFSIGNALED(status))
            CHECK_INT(WTERMSIG(status), SIGKILL);
        else
            fprintf(stderr, "  child exited with %d instead of being killed\n", WEXITSTATUS(status));
        CHECK_INT(sage__cgroup_oom_killed(&cg), 1);
        uint64_t peak = sage__cgroup_peak(&cg);
        CHECK(peak >= 60 * MIB);
        printf("     oom: killed by signal %d after %.0f ms, peak %.1f MiB\n",
               WIFSIGNALED(status) ? WTERMSIG(status) : 0,
               (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
               (double)peak / (double)MIB);
    }
    sage__cgroup_destroy(&cg);
    CHECK(!path_exists(path));
    CHECK_INT(cg.procs_fd, -1);
    if (!path_exists(path))
        untrack_dir(path);
}

static void test_within_limit(void)
{
    char name[64], err[512];
    snprintf(name, sizeof name, "ut-%ld-ok", (long)getpid());
    sage__cgroup cg;
    int rc = sage__cgroup_create(&cg, mode, parent, name, 256 * MIB, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    track_dir(cg.path);
    char path[600];
    snprintf(path, sizeof path, "%s", cg.path);

    pid_t pid = spawn_toucher(&cg, 32 * MIB);
    CHECK(pid > 0);
    if (pid > 0) {
        track_pid(pid);
        int status = wait_child(pid);
        CHECK(WIFEXITED(status));
        if (WIFEXITED(status))
            CHECK_INT(WEXITSTATUS(status), 0);
        CHECK_INT(sage__cgroup_oom_killed(&cg), 0);
        uint64_t peak = sage__cgroup_peak(&cg);
        CHECK(peak >= 32 * MIB);
        CHECK(peak < 256 * MIB);
        printf("     within limit: peak %.1f MiB\n", (double)peak / (double)MIB);
    }
    sage__cgroup_destroy(&cg);
    CHECK(!path_exists(path));
    if (!path_exists(path))
        untrack_dir(path);
}

/* No limit: the group is still made (peak is readable), no OOM. */
static void test_no_limit(void)
{
    char name[64], err[512];
    snprintf(name, sizeof name, "ut-%ld-nolimit", (long)getpid());
    sage__cgroup cg;
    int rc = sage__cgroup_create(&cg, mode, parent, name, 0, err, sizeof err);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    track_dir(cg.path);
    char path[600];
    snprintf(path, sizeof path, "%s", cg.path);
    CHECK(read_number(path, mode == SAGE__CGROUP_V1 ? "memory.limit_in_bytes" : "memory.max") >= (UINT64_C(1) << 40));
    pid_t pid = spawn_toucher(&cg, 8 * MIB);
    CHECK(pid > 0);
    if (pid > 0) {
        track_pid(pid);
        int status = wait_child(pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(sage__cgroup_peak(&cg) >= 8 * MIB);
        CHECK_INT(sage__cgroup_oom_killed(&cg), 0);
    }
    sage__cgroup_destroy(&cg);
    CHECK(!path_exists(path));
    if (!path_exists(path))
        untrack_dir(path);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    install_cleanup();
    make_scratch();

    RUN(test_env_none);
    RUN(test_create_rejects);
    RUN(test_create_failure_removes_dir);
    RUN(test_attach_writes_zero);
    RUN(test_parse_counters);
    remove_scratch();

    const char *env = getenv("SAGE_CGROUP");
    int off = env && strcmp(env, "none") == 0;
    if (off)
        SKIP_CASES("enforcement cases (SAGE_CGROUP=none)");
    else
        mode = sage__cgroup_probe(parent, sizeof parent, why, sizeof why);
    printf("probe: %s parent=\"%s\" why=\"%s\"\n",
           mode == SAGE__CGROUP_V2   ? "V2"
           : mode == SAGE__CGROUP_V1 ? "V1"
                                     : "NONE",
           parent, why);
    if (mode != SAGE__CGROUP_NONE) {
        /* The parent is SAGE's own and is removed at the end if empty
         * (another run or a daemon still using it keeps it: EBUSY; a daemon
         * whose parent went away makes it again on its next create). */
        snprintf(probe_parent, sizeof probe_parent, "%s", parent);
        probe_parent_made = 1;
    }
    RUN(test_probe_result);
    if (!off && (geteuid() != 0 || mode == SAGE__CGROUP_NONE))
        SKIP_CASES("enforcement cases (%s)", geteuid() != 0 ? "not root" : why);
    RUN(test_oom_kill);
    RUN(test_within_limit);
    RUN(test_no_limit);

    if (probe_parent_made && rmdir(probe_parent) != 0 && errno != EBUSY && errno != ENOENT)
        fprintf(stderr, "  could not remove %s: %s\n", probe_parent, strerror(errno));
    return CHECK_DONE();
}
