/* cluster/cgroup.c - per-worker memory cgroups, v2 or v1: probe, create, attach, OOM verdict, peak, remove. */

/*
 * Design note.
 *
 * One worker process = one cgroup, a child of a "sage" parent directory the
 * probe prepares once per daemon:
 *
 *   v2 (unified hierarchy at /sys/fs/cgroup listing "memory" in its
 *       cgroup.controllers): parent = <own cgroup>/sage, where <own cgroup>
 *       comes from the "0::" line of /proc/self/cgroup, so that workers would
 *       stay below whatever limit was put on the daemon. That needs +memory in
 *       <own cgroup>/cgroup.subtree_control, and v2's "no internal processes"
 *       rule refuses it (EBUSY) for a non-root group that holds processes -
 *       and ours holds the daemon. We do not move the daemon into a leaf of its
 *       own group (that changes its cgroup under whoever manages it, and other
 *       processes in the group would still block the write); we fall back to
 *       the root cgroup, which is exempt from the rule, and say so in `why`.
 *       So in practice a daemon in a non-root group gets /sys/fs/cgroup/sage.
 *       If the root fails too, the mode is NONE. "+memory" is then also
 *       enabled in sage/cgroup.subtree_control, so the worker groups get
 *       memory.max.
 *   v1 (a cgroup v1 memory hierarchy mounted at /sys/fs/cgroup/memory):
 *       parent = /sys/fs/cgroup/memory/sage, at the root of the mount. v1 has
 *       no delegation protocol, and the group a process is in is usually owned
 *       by someone else (a systemd unit, a supervisor); the root of the mount is
 *       the one place that belongs to nobody (in a container it is the
 *       container's own group).
 *   Writability is proven, not guessed: the probe creates the parent
 *   (EEXIST is fine) and a throw-away child, and removes the child.
 *
 * A group gets the limit and, where the files exist, the swap side of it too
 * (v1 memory.memsw.limit_in_bytes = limit and memory.swappiness = 0, v2
 * memory.swap.max = 0): otherwise a worker over its limit is swapped out
 * instead of killed and the limit only slows it down. v2 groups also get
 * memory.oom.group = 1 so an OOM kills the worker as a whole. cgroup.procs is
 * opened at creation so that attaching in a freshly forked child is a single
 * write(2) of "0" (the writer moves itself), which is async-signal-safe and
 * needs no path building or allocation after fork.
 *
 * Every process of a group dies with it. A worker's user code may fork (a
 * helper, a shell, a double fork into a new session); sage__cgroup_kill
 * reaches all of them: v2 writes cgroup.kill (kernel 5.14+), which kills the
 * whole group at once; v1 has no such file, so each v1 group has a companion
 * of the same name in the freezer hierarchy (/sys/fs/cgroup/freezer/sage/...,
 * when that is mounted and writable), joined by the same write in the child:
 * kill freezes the group (no fork can slip between reading cgroup.procs and
 * the kills), SIGKILLs every pid listed, and thaws it (frozen tasks take the
 * signal once thawed). Without a freezer the kill still reaches every pid
 * listed; a process forked meanwhile is caught by the next call. Kill never
 * waits: the processes leave the group once dead and reaped.
 *
 * Removal never waits either: sage__cgroup_remove makes one attempt. After
 * the last process of a group is reaped the kernel may still count it for a
 * moment (it releases the group asynchronously), and a group with a child
 * group cannot go; rmdir then fails with EBUSY and the caller tries again
 * later (the JobManager from its loop's timers, with a backoff; launch_local.c).
 * sage__cgroup_destroy, for callers that may wait (tests), retries for up to
 * about 100 ms.
 *
 * If the parent has gone since the probe (an empty one may be removed by
 * another daemon or a test), create makes it again, once.
 *
 * No state is kept here (but an atomic counter for probe names): everything
 * a group needs is in sage__cgroup, so the functions are thread-safe as long
 * as one group is not used by two threads at once.
 */
#include "cluster/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "sage/error.h"
#include "util/err.h"
#include "util/num.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_V1_MEMORY CG_ROOT "/memory"
#define CG_V1_FREEZER CG_ROOT "/freezer"
#define CG_PARENT_NAME "sage"
#define CG_V1_MAGIC 0x27e0ebL /* CGROUP_SUPER_MAGIC */
#define CG_RMDIR_TRIES 100

/* ---- small helpers ------------------------------------------------------- */

static const char *errtext(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len); /* GNU variant: returns the text */
}

/* out = a "/" b; -1 if it does not fit. */
static int join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s/%s", a, b);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Write all of s to an existing file. 0, or -1 with errno set. */
static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = write(fd, s + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            errno = e;
            return -1;
        }
        off += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Read a small file whole, NUL-terminated. 0, or -1 with errno set. */
static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off + 1 < len) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    close(fd);
    return 0;
}

/* Is `word` one of the space-separated words of `list`? */
static int has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    const char *p = list;
    while (*p) {
        p += strspn(p, " \t\n");
        size_t n = strcspn(p, " \t\n");
        if (n == wl && strncmp(p, word, n) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* Value of "key N" in a flat-keyed cgroup file (memory.events,
 * memory.oom_control). -1 if the key is absent. */
static long long keyed_value(const char *text, const char *key)
{
    size_t kl = strlen(key);
    const char *p = text;
    while (*p) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
            char num[32];
            size_t n = strcspn(p + kl + 1, "\n");
            int64_t v;
            if (n >= sizeof num)
                return -1;
            memcpy(num, p + kl + 1, n);
            num[n] = '\0';
            return sage__parse_i64(num, 0, INT64_MAX, &v) == 0 ? v : -1;
        }
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    return -1;
}

/* A single unsigned number (a cgroup byte counter). 0 if unreadable. */
static uint64_t read_u64(const char *path)
{
    char buf[64];
    if (read_file(path, buf, sizeof buf) != 0)
        return 0;
    buf[strcspn(buf, "\n")] = '\0';
    int64_t v;
    return sage__parse_i64(buf, 0, INT64_MAX, &v) == 0 ? (uint64_t)v : 0;
}

/* Make `parent` usable for worker groups: create it (EEXIST is fine) and, on
 * v2, enable the memory controller for its children. 0, or the errno of the
 * failed step with a reason in `why`. */
static int prepare_parent(sage__cgroup_mode mode, const char *parent, char *why, size_t why_len)
{
    char eb[128], file[600];
    if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        sage__fmt(why, why_len, "cannot create %s: %s", parent, errtext(e, eb, sizeof eb));
        return e;
    }
    if (mode != SAGE__CGROUP_V2)
        return 0;
    char ctl[512];
    if (join(file, sizeof file, parent, "cgroup.subtree_control") != 0) {
        sage__fmt(why, why_len, "path too long: %s", parent);
        return ENAMETOOLONG;
    }
    if (read_file(file, ctl, sizeof ctl) == 0 && has_word(ctl, "memory"))
        return 0;
    if (write_file(file, "+memory") != 0) {
        int e = errno;
        sage__fmt(why, why_len, "cannot enable +memory in %s: %s", file, errtext(e, eb, sizeof eb));
        return e;
    }
    return 0;
}

/* Prove that groups can be made under `parent`: create and remove a child.
 * On v2 the child must also show memory.max (the controller reached it). */
static int probe_child(sage__cgroup_mode mode, const char *parent, char *why, size_t why_len)
{
    static atomic_uint seq;
    char eb[128], name[64], dir[600], file[700];
    snprintf(name, sizeof name, "probe-%ld-%u", (long)getpid(), atomic_fetch_add(&seq, 1u));
    if (join(dir, sizeof dir, parent, name) != 0) {
        sage__fmt(why, why_len, "path too long: %s", parent);
        return -1;
    }
    if (mkdir(dir, 0755) != 0) {
        int e = errno;
        sage__fmt(why, why_len, "cannot create a group under %s: %s", parent, errtext(e, eb, sizeof eb));
        return -1;
    }
    const char *want = mode == SAGE__CGROUP_V2 ? "memory.max" : "memory.limit_in_bytes";
    int ok = join(file, sizeof file, dir, want) == 0 && exists(file);
    rmdir(dir);
    if (!ok) {
        sage__fmt(why, why_len, "a group under %s has no %s: the memory controller is not enabled there", parent, want);
        return -1;
    }
    return 0;
}

/* The process's own v2 cgroup ("0::/path" in /proc/self/cgroup), "/" if unknown. */
static void own_v2_path(char *out, size_t len)
{
    char buf[4096];
    snprintf(out, len, "/");
    if (read_file("/proc/self/cgroup", buf, sizeof buf) != 0)
        return;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "0::", 3) == 0 && line[3] == '/') {
            if (strlen(line + 3) < len)
                snprintf(out, len, "%s", line + 3);
            return;
        }
        line = nl ? nl + 1 : NULL;
    }
}

/* v2 with `base` as the cgroup that holds our "sage" parent. */
static int try_v2_base(const char *base, char *parent, size_t parent_len, char *why, size_t why_len)
{
    char file[600], buf[512];
    if (join(file, sizeof file, base, "cgroup.controllers") != 0 || read_file(file, buf, sizeof buf) != 0 ||
        !has_word(buf, "memory")) {
        sage__fmt(why, why_len, "the memory controller is not delegated to %s", base);
        return -1;
    }
    /* Enable memory for base's children (the "sage" parent). In a non-root
     * cgroup that holds processes this fails with EBUSY (no internal
     * processes); the caller falls back to the root. */
    int e = prepare_parent(SAGE__CGROUP_V2, base, why, why_len);
    if (e != 0) {
        if (e == EBUSY) {
            size_t n = why ? strlen(why) : 0;
            if (why && n < why_len)
                sage__fmt(why + n, why_len - n, " (cgroup v2 \"no internal processes\" rule: %s has processes)", base);
        }
        return -1;
    }
    if (join(parent, parent_len, base, CG_PARENT_NAME) != 0) {
        sage__fmt(why, why_len, "parent buffer too small for %s/" CG_PARENT_NAME, base);
        return -1;
    }
    if (prepare_parent(SAGE__CGROUP_V2, parent, why, why_len) != 0 ||
        probe_child(SAGE__CGROUP_V2, parent, why, why_len) != 0)
        return -1;
    return 0;
}

static sage__cgroup_mode probe_v2(char *parent, size_t parent_len, char *why, size_t why_len)
{
    char own[2048], base[2600], first[512] = "";
    own_v2_path(own, sizeof own);
    if (strcmp(own, "/") != 0) {
        snprintf(base, sizeof base, "%s%s", CG_ROOT, own);
        if (is_dir(base)) {
            if (try_v2_base(base, parent, parent_len, first, sizeof first) == 0) {
                sage__fmt(why, why_len, "%s", "");
                return SAGE__CGROUP_V2;
            }
        } else {
            sage__fmt(first, sizeof first, "own cgroup %s is not visible under " CG_ROOT, own);
        }
    }
    char second[512] = "";
    if (try_v2_base(CG_ROOT, parent, parent_len, second, sizeof second) == 0) {
        /* Worked at the root: keep the note on why not in our own group. */
        if (first[0])
            sage__fmt(why, why_len, "cgroup v2: using the root cgroup: %s", first);
        else
            sage__fmt(why, why_len, "%s", "");
        return SAGE__CGROUP_V2;
    }
    if (first[0])
        sage__fmt(why, why_len, "cgroup v2: %s; and at the root: %s", first, second);
    else
        sage__fmt(why, why_len, "cgroup v2: %s", second);
    if (parent && parent_len)
        parent[0] = '\0';
    return SAGE__CGROUP_NONE;
}

static sage__cgroup_mode probe_v1(char *parent, size_t parent_len, char *why, size_t why_len)
{
    char reason[512];
    if (join(parent, parent_len, CG_V1_MEMORY, CG_PARENT_NAME) != 0) {
        sage__fmt(why, why_len, "parent buffer too small for " CG_V1_MEMORY "/" CG_PARENT_NAME);
        if (parent && parent_len)
            parent[0] = '\0';
        return SAGE__CGROUP_NONE;
    }
    if (prepare_parent(SAGE__CGROUP_V1, parent, reason, sizeof reason) != 0 ||
        probe_child(SAGE__CGROUP_V1, parent, reason, sizeof reason) != 0) {
        sage__fmt(why, why_len, "cgroup v1: %s", reason);
        parent[0] = '\0';
        return SAGE__CGROUP_NONE;
    }
    sage__fmt(why, why_len, "%s", "");
    return SAGE__CGROUP_V1;
}

/* ---- the contract --------------------------------------------------------- */

sage__cgroup_mode sage__cgroup_probe(char *parent, size_t parent_len, char *why, size_t why_len)
{
    if (parent && parent_len)
        parent[0] = '\0';
    sage__fmt(why, why_len, "%s", "");
    const char *env = getenv("SAGE_CGROUP");
    if (env && strcmp(env, "none") == 0) {
        sage__fmt(why, why_len, "disabled by SAGE_CGROUP=none: memory limits are not enforced");
        return SAGE__CGROUP_NONE;
    }
    if (!parent || parent_len == 0) {
        sage__fmt(why, why_len, "no buffer for the parent path");
        return SAGE__CGROUP_NONE;
    }

    char buf[512];
    char v2note[160] = "";
    if (read_file(CG_ROOT "/cgroup.controllers", buf, sizeof buf) == 0) {
        if (has_word(buf, "memory"))
            return probe_v2(parent, parent_len, why, why_len);
        snprintf(v2note, sizeof v2note, "cgroup v2 at " CG_ROOT " has no memory controller; ");
    }

    struct statfs sf;
    if (statfs(CG_V1_MEMORY, &sf) == 0 && (long)sf.f_type == CG_V1_MAGIC &&
        exists(CG_V1_MEMORY "/memory.limit_in_bytes"))
        return probe_v1(parent, parent_len, why, why_len);

    sage__fmt(why, why_len,
              "%sno cgroup v1 memory hierarchy mounted at " CG_V1_MEMORY ": memory limits are not enforced", v2note);
    return SAGE__CGROUP_NONE;
}

/* A group name is one path component. */
static int valid_name(const char *name)
{
    return name && name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Write `value` to <group>/<file>; on failure say which file and why. */
static int set_file(const sage__cgroup *cg, const char *file, const char *value, char *err, size_t err_len)
{
    char path[700], eb[128];
    if (join(path, sizeof path, cg->path, file) != 0) {
        sage__fmt(err, err_len, "cgroup: path too long: %s/%s", cg->path, file);
        errno = ENAMETOOLONG;
        return -1;
    }
    if (write_file(path, value) != 0) {
        int e = errno;
        sage__fmt(err, err_len, "cgroup: cannot write \"%.*s\" to %s: %s", (int)strcspn(value, "\n"), value, path,
                  errtext(e, eb, sizeof eb));
        errno = e;
        return -1;
    }
    return 0;
}

/* Does <group>/<file> exist? */
static int has_file(const sage__cgroup *cg, const char *file)
{
    char path[700];
    return join(path, sizeof path, cg->path, file) == 0 && exists(path);
}

static int set_limits(sage__cgroup *cg, char *err, size_t err_len)
{
    char v[32];
    snprintf(v, sizeof v, "%" PRIu64 "\n", cg->limit);
    if (cg->mode == SAGE__CGROUP_V1) {
        if (cg->limit == 0)
            return 0;
        /* memsw must stay >= the memory limit: set the memory limit first. */
        if (set_file(cg, "memory.limit_in_bytes", v, err, err_len) != 0)
            return -1;
        if (has_file(cg, "memory.memsw.limit_in_bytes") &&
            set_file(cg, "memory.memsw.limit_in_bytes", v, err, err_len) != 0)
            return -1;
        if (has_file(cg, "memory.swappiness") && set_file(cg, "memory.swappiness", "0\n", err, err_len) != 0)
            return -1;
        return 0;
    }
    if (cg->limit != 0) {
        if (set_file(cg, "memory.max", v, err, err_len) != 0)
            return -1;
        if (has_file(cg, "memory.swap.max") && set_file(cg, "memory.swap.max", "0\n", err, err_len) != 0)
            return -1;
    }
    if (has_file(cg, "memory.oom.group") && set_file(cg, "memory.oom.group", "1\n", err, err_len) != 0)
        return -1;
    return 0;
}

static void freezer_create(sage__cgroup *cg, const char *name);

int sage__cgroup_create(sage__cgroup *cg, sage__cgroup_mode mode, const char *parent, const char *name, uint64_t limit,
                        char *err, size_t err_len)
{
    char eb[128];
    sage__fmt(err, err_len, "%s", "");
    if (!cg) {
        sage__fmt(err, err_len, "cgroup: no group given");
        return SAGE_EINVAL;
    }
    memset(cg, 0, sizeof *cg);
    cg->mode = mode;
    cg->procs_fd = cg->freezer_fd = -1;
    cg->limit = limit;
    if (mode != SAGE__CGROUP_V1 && mode != SAGE__CGROUP_V2) {
        sage__fmt(err, err_len, "cgroup: no writable memory controller on this host: memory limits are not enforced");
        return SAGE_EUNSUPPORTED;
    }
    if (!parent || !parent[0] || !valid_name(name)) {
        sage__fmt(err, err_len, "cgroup: invalid parent or group name \"%s\"", name ? name : "(null)");
        return SAGE_EINVAL;
    }
    if (join(cg->path, sizeof cg->path, parent, name) != 0) {
        sage__fmt(err, err_len, "cgroup: path too long: %s/%s", parent, name);
        cg->path[0] = '\0';
        return SAGE_ETOOBIG;
    }

    int rc = mkdir(cg->path, 0755);
    if (rc != 0 && errno == ENOENT) {
        /* The parent went away since the probe (another daemon or a test
         * cleaned up an empty one): make it again, once. */
        char why[512];
        int e = prepare_parent(mode, parent, why, sizeof why);
        if (e == 0)
            rc = mkdir(cg->path, 0755);
        else
            errno = e;
    }
    if (rc != 0) {
        int e = errno;
        sage__fmt(err, err_len, "cgroup: cannot create %s: %s", cg->path, errtext(e, eb, sizeof eb));
        cg->path[0] = '\0'; /* not ours: destroy must not remove it */
        return SAGE_ESYS;
    }

    if (set_limits(cg, err, err_len) != 0)
        goto fail;
    char procs[700];
    if (join(procs, sizeof procs, cg->path, "cgroup.procs") != 0) {
        sage__fmt(err, err_len, "cgroup: path too long: %s/cgroup.procs", cg->path);
        goto fail;
    }
    cg->procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (cg->procs_fd < 0) {
        int e = errno;
        sage__fmt(err, err_len, "cgroup: cannot open %s: %s", procs, errtext(e, eb, sizeof eb));
        goto fail;
    }
    freezer_create(cg, name);
    return 0;

fail:
    if (cg->procs_fd >= 0)
        close(cg->procs_fd);
    cg->procs_fd = -1;
    rmdir(cg->path);
    cg->path[0] = '\0';
    return SAGE_ESYS;
}

/* Async-signal-safe: one write of "0" (the writing process itself). */
static int join_self(int fd)
{
    for (;;) {
        ssize_t n = write(fd, "0\n", 2);
        if (n == 2)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return SAGE_ESYS;
    }
}

int sage__cgroup_attach_self(const sage__cgroup *cg)
{
    if (!cg || cg->procs_fd < 0)
        return SAGE_EINVAL;
    int rc = join_self(cg->procs_fd);
    if (rc == 0 && cg->freezer_fd >= 0)
        join_self(cg->freezer_fd); /* without it the group is killed unfrozen: still killed */
    return rc;
}

int sage__cgroup_oom_killed(const sage__cgroup *cg)
{
    if (!cg || !cg->path[0] || (cg->mode != SAGE__CGROUP_V1 && cg->mode != SAGE__CGROUP_V2))
        return 0;
    char path[700], buf[1024];
    const char *file = cg->mode == SAGE__CGROUP_V1 ? "memory.oom_control" : "memory.events";
    if (join(path, sizeof path, cg->path, file) != 0 || read_file(path, buf, sizeof buf) != 0)
        return 0;
    return keyed_value(buf, "oom_kill") > 0 ? 1 : 0;
}

uint64_t sage__cgroup_peak(const sage__cgroup *cg)
{
    if (!cg || !cg->path[0])
        return 0;
    char path[700];
    if (cg->mode == SAGE__CGROUP_V1)
        return join(path, sizeof path, cg->path, "memory.max_usage_in_bytes") == 0 ? read_u64(path) : 0;
    if (cg->mode != SAGE__CGROUP_V2)
        return 0;
    if (join(path, sizeof path, cg->path, "memory.peak") == 0 && exists(path))
        return read_u64(path);
    return join(path, sizeof path, cg->path, "memory.current") == 0 ? read_u64(path) : 0;
}

/* SIGKILL every pid dir/cgroup.procs lists; how many there were (0 if the file is gone). */
static int kill_listed(const char *dir)
{
    char path[700];
    if (join(path, sizeof path, dir, "cgroup.procs") != 0)
        return SAGE_ETOOBIG;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : SAGE_ESYS;
    int n = 0;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 0) {
            kill((pid_t)pid, SIGKILL);
            n++;
        }
    fclose(f);
    return n;
}

/* v1: the freezer companion of parent/name, made and joined with the memory group (best effort: without
 * it the group is killed unfrozen). */
static void freezer_create(sage__cgroup *cg, const char *name)
{
    char parent[600], procs[700];
    struct statfs sf;
    if (cg->mode != SAGE__CGROUP_V1 || statfs(CG_V1_FREEZER, &sf) != 0 || (long)sf.f_type != CG_V1_MAGIC ||
        join(parent, sizeof parent, CG_V1_FREEZER, CG_PARENT_NAME) != 0 ||
        (mkdir(parent, 0755) != 0 && errno != EEXIST) || join(cg->freezer, sizeof cg->freezer, parent, name) != 0) {
        cg->freezer[0] = '\0';
        return;
    }
    if (mkdir(cg->freezer, 0755) != 0) {
        cg->freezer[0] = '\0'; /* an existing one is not ours */
        return;
    }
    if (join(procs, sizeof procs, cg->freezer, "cgroup.procs") != 0 ||
        (cg->freezer_fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0) {
        rmdir(cg->freezer);
        cg->freezer[0] = '\0';
    }
}

/* The freezer companion's state: "FROZEN" or "THAWED". 0 or -1. */
static int freeze(const sage__cgroup *cg, const char *state)
{
    char path[700];
    return cg->freezer[0] && join(path, sizeof path, cg->freezer, "freezer.state") == 0 ? write_file(path, state) : -1;
}

int sage__cgroup_kill(sage__cgroup *cg)
{
    if (!cg || !cg->path[0])
        return 0;
    char path[700];
    if (cg->mode == SAGE__CGROUP_V2 && join(path, sizeof path, cg->path, "cgroup.kill") == 0 &&
        write_file(path, "1") == 0) {
        char buf[64]; /* killed as one; anything still listed is dying */
        if (join(path, sizeof path, cg->path, "cgroup.procs") != 0 || read_file(path, buf, sizeof buf) != 0)
            return 0;
        return buf[0] != '\0';
    }
    int frozen = freeze(cg, "FROZEN") == 0;
    int n = kill_listed(cg->path);
    if (frozen)
        freeze(cg, "THAWED"); /* frozen tasks take their SIGKILL once thawed */
    return n;
}

int sage__cgroup_remove(sage__cgroup *cg, char *why, size_t why_len)
{
    if (!cg)
        return 0;
    if (cg->procs_fd >= 0)
        close(cg->procs_fd);
    if (cg->freezer_fd >= 0)
        close(cg->freezer_fd);
    cg->procs_fd = cg->freezer_fd = -1;
    int rc = 0;
    char *dirs[2] = {cg->path, cg->freezer};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i][0])
            continue;
        if (rmdir(dirs[i]) == 0 || errno == ENOENT) {
            dirs[i][0] = '\0';
        } else if (errno == EBUSY || errno == ENOTEMPTY) {
            rc = rc < 0 ? rc : 1;
        } else {
            char eb[128];
            int e = errno;
            sage__fmt(why, why_len, "cannot remove %s: %s", dirs[i], errtext(e, eb, sizeof eb));
            rc = SAGE_ESYS;
        }
    }
    if (rc == 1)
        sage__fmt(why, why_len, "%s is still busy", cg->path[0] ? cg->path : cg->freezer);
    return rc;
}

void sage__cgroup_destroy(sage__cgroup *cg)
{
    if (!cg)
        return;
    /* The kernel may still count a just-reaped process for a moment. */
    const struct timespec ms = {0, 1000000};
    for (int i = 0; i < CG_RMDIR_TRIES; i++) {
        sage__cgroup_kill(cg);
        if (sage__cgroup_remove(cg, NULL, 0) != 1)
            break;
        nanosleep(&ms, NULL);
    }
    cg->path[0] = cg->freezer[0] = '\0';
}

int sage__cgroup_existing(sage__cgroup *cg, sage__cgroup_mode mode, const char *parent, const char *name)
{
    if (!cg)
        return SAGE_EINVAL;
    memset(cg, 0, sizeof *cg);
    cg->mode = mode;
    cg->procs_fd = cg->freezer_fd = -1;
    if (!parent || !valid_name(name) || join(cg->path, sizeof cg->path, parent, name) != 0) {
        cg->path[0] = '\0';
        return SAGE_EINVAL;
    }
    char fp[600];
    if (mode == SAGE__CGROUP_V1 && join(fp, sizeof fp, CG_V1_FREEZER "/" CG_PARENT_NAME, name) == 0 && is_dir(fp))
        sage__strlcpy(cg->freezer, fp, sizeof cg->freezer);
    return 0;
}

/* fn for every entry of dir named jm<pid>-... whose daemon (pid) is gone. */
static int each_stale_in(const char *dir, long own_pid, void (*fn)(const char *name, void *arg), void *arg)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        char digits[24];
        size_t nd = strncmp(e->d_name, "jm", 2) == 0 ? strspn(e->d_name + 2, "0123456789") : 0;
        int64_t pid;
        if (nd == 0 || nd >= sizeof digits || e->d_name[2 + nd] != '-')
            continue;
        memcpy(digits, e->d_name + 2, nd);
        digits[nd] = '\0';
        if (sage__parse_i64(digits, 1, INT32_MAX, &pid) != 0 || pid == own_pid || kill((pid_t)pid, 0) == 0 ||
            errno != ESRCH)
            continue;
        fn(e->d_name, arg);
        n++;
    }
    closedir(dp);
    return n;
}

int sage__cgroup_each_stale(sage__cgroup_mode mode, const char *parent, long own_pid,
                            void (*fn)(const char *name, void *arg), void *arg)
{
    if (mode != SAGE__CGROUP_V1 && mode != SAGE__CGROUP_V2)
        return 0;
    int n = each_stale_in(parent, own_pid, fn, arg);
    if (mode == SAGE__CGROUP_V1)
        n += each_stale_in(CG_V1_FREEZER "/" CG_PARENT_NAME, own_pid, fn, arg);
    return n;
}
