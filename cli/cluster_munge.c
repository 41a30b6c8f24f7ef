/* cli/cluster_munge.c - munge for the cluster: the key every node shares, and munged on a private socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "cluster/spawn.h"
#include "util/time.h"

int cluster_create_munge_key(const char *key)
{
    if (cluster_file_exists(key))
        return 0;
    if (cluster_have_program("mungekey")) {
        char *argv[] = {"mungekey", "--create", "--keyfile", (char *)key, NULL};
        sage__spawn_opts o = {.argv = argv, .out_max = 4096, .err_max = 4096, .timeout_ms = CLUSTER_WAIT_MS};
        sage__proc p;
        sage__err e = {0};
        int rc = sage__proc_run(&p, &o, &e) == 0 ? sage__proc_exit_code(&p) : -1;
        if (!e.code)
            sage__proc_free(&p);
        if (rc == 0 && cluster_file_exists(key)) {
            chmod(key, 0400);
            return 0;
        }
        unlink(key);
    }
    /* No mungekey (munge < 0.5.14): 1024 random bytes, mode 0400. */
    unsigned char bytes[1024];
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cluster_fail("cannot read random bytes for %s: %s", key, strerror(errno));
        got += (size_t)n;
    }
    int fd = open(key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0)
        return cluster_fail("cannot create %s: %s", key, strerror(errno));
    ssize_t w = write(fd, bytes, sizeof bytes);
    close(fd);
    if (w != (ssize_t)sizeof bytes) {
        unlink(key);
        return cluster_fail("cannot write %s", key);
    }
    return 0;
}

/* munged on the private socket <dir>/munge.socket with <dir>/munge.key. */
int cluster_start_munged(void)
{
    char sock[PATH_MAX], key[PATH_MAX], pidf[PATH_MAX], log[PATH_MAX], seed[PATH_MAX];
    char a_sock[PATH_MAX + 16], a_key[PATH_MAX + 16], a_pid[PATH_MAX + 16], a_log[PATH_MAX + 16], a_seed[PATH_MAX + 16];
    cluster_path(sock, "munge.socket");
    cluster_path(key, "munge.key");
    cluster_path(pidf, "munged.pid");
    cluster_path(log, "munged.log");
    cluster_path(seed, "munged.seed");
    snprintf(a_sock, sizeof a_sock, "--socket=%s", sock);
    snprintf(a_key, sizeof a_key, "--key-file=%s", key);
    snprintf(a_pid, sizeof a_pid, "--pid-file=%s", pidf);
    snprintf(a_log, sizeof a_log, "--log-file=%s", log);
    snprintf(a_seed, sizeof a_seed, "--seed-file=%s", seed);
    /* --force: munged wants every user to reach its socket's directory, which a state dir under
     * /root (or a 0700 home) is not; here only root (the Slurm daemons, root's commands) uses it. */
    char *argv[] = {"munged", "--force", a_sock, a_key, a_pid, a_log, a_seed, NULL};
    unlink(pidf);
    cluster_rotate_log(log);
    int rc = cluster_run_daemon(argv, log, NULL);
    if (rc != 0)
        return cluster_fail("munged failed to start (exit %d): read %s", rc, log);
    int64_t deadline = sage__mono_ms() + CLUSTER_WAIT_MS;
    while (!cluster_live_daemon(pidf, "munged") || !cluster_file_exists(sock)) {
        if (sage__mono_ms() > deadline)
            return cluster_fail("munged did not come up within %d s: read %s", CLUSTER_WAIT_MS / 1000, log);
        cluster_sleep_ms(CLUSTER_POLL_MS);
    }
    cluster_note_started(pidf, "munged");
    return 0;
}
