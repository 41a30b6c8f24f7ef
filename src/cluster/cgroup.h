/* cluster/cgroup.h - memory limits for worker processes with cgroups (v2 or v1), and what they saw. */
#ifndef SAGE_CLUSTER_CGROUP_H
#define SAGE_CLUSTER_CGROUP_H

#include <stddef.h>
#include <stdint.h>

typedef enum sage__cgroup_mode {
    SAGE__CGROUP_NONE = 0, /* no writable memory controller: limits are not enforced (documented fallback) */
    SAGE__CGROUP_V1,       /* /sys/fs/cgroup/memory/... */
    SAGE__CGROUP_V2,       /* unified hierarchy with the memory controller enabled for our subtree */
} sage__cgroup_mode;

/* Which mode this host offers to this process, and the parent directory
 * SAGE creates its groups under (e.g. /sys/fs/cgroup/memory/sage or
 * <own v2 cgroup>/sage with +memory in subtree_control). A read-only or
 * absent hierarchy gives NONE with the reason in `why`. Honours the
 * environment variable SAGE_CGROUP=none (force the fallback, for tests). */
sage__cgroup_mode sage__cgroup_probe(char *parent, size_t parent_len, char *why, size_t why_len);

/* One group per worker process. */
typedef struct sage__cgroup {
    sage__cgroup_mode mode;
    char path[512]; /* the group's directory */
    int procs_fd;   /* open fd of cgroup.procs, for attaching after fork */
    uint64_t limit; /* bytes, 0 = none */
    /* v1 only: a group of the same name in the freezer hierarchy, joined at the same time, so the whole
     * group can be frozen while it is killed ("" and -1 when the host has no writable freezer) */
    char freezer[512];
    int freezer_fd;
} sage__cgroup;

/* Create parent/name with a memory limit (bytes; 0: no limit, still
 * created so peak usage can be read). Swap is limited too where the host
 * allows (memory.memsw.limit_in_bytes / memory.swap.max = 0) so the limit
 * is a real one. */
int sage__cgroup_create(sage__cgroup *cg, sage__cgroup_mode mode, const char *parent, const char *name, uint64_t limit,
                        char *err, size_t err_len);
/* In a freshly forked child, before exec: move the calling process into
 * the group. Async-signal-safe (write(2) only). */
int sage__cgroup_attach_self(const sage__cgroup *cg);
/* Did the kernel OOM-kill something in this group? (v1 memory.oom_control
 * "oom_kill N", v2 memory.events "oom_kill N"). 1 yes, 0 no. */
int sage__cgroup_oom_killed(const sage__cgroup *cg);
/* Peak memory of the group in bytes (v1 memory.max_usage_in_bytes, v2
 * memory.peak where present, else current); 0 if unknown. */
uint64_t sage__cgroup_peak(const sage__cgroup *cg);
/* SIGKILL every process in the group, whatever it started (a forked child, a double fork, a new session):
 * v2 writes cgroup.kill (kernel 5.14+; else as v1 without a freezer); v1 freezes the group (its freezer
 * companion), kills every pid cgroup.procs lists, and thaws it. Never waits: the processes die (and leave
 * the group) a moment later. Returns how many processes were still listed (0: empty), or a negative code. */
int sage__cgroup_kill(sage__cgroup *cg);
/* One attempt to remove the group's directories (and its freezer companion), without waiting; closes its
 * descriptors. 0 once they are gone; 1 while the kernel still counts a process in it (EBUSY: a process not
 * yet dead or reaped, or a child group someone made), try again later; a negative code (errno in `why`)
 * when removal cannot succeed. */
int sage__cgroup_remove(sage__cgroup *cg, char *why, size_t why_len);
/* Kill what is left, then remove the group, retrying for up to about 100 ms (for callers that may wait:
 * tests, a program's exit; the JobManager's loop uses sage__cgroup_kill and sage__cgroup_remove from its
 * timers instead). Closes procs_fd. */
void sage__cgroup_destroy(sage__cgroup *cg);
/* The groups JobManagers that are gone left under parent (and, v1, under the freezer's "sage"): every
 * entry named jm<pid>-... whose pid is not own_pid and no longer exists; fn(name, arg) for each (a name
 * may come twice: once per hierarchy). Returns how many. */
int sage__cgroup_each_stale(sage__cgroup_mode mode, const char *parent, long own_pid,
                            void (*fn)(const char *name, void *arg), void *arg);
/* A group that exists already (one a dead JobManager left), to kill and remove: parent/name and its
 * freezer companion. 0, or SAGE_EINVAL for a bad name. */
int sage__cgroup_existing(sage__cgroup *cg, sage__cgroup_mode mode, const char *parent, const char *name);

#endif
