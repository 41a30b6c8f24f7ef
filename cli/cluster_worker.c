/* cli/cluster_worker.c - `sage cluster start --worker`: a slurmd here that joins a head (configless, dynamic node). */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster.h"
#include "cluster/slurm.h"

/* A TCP connection to the head's slurmctld, within 5 s: 0, or -1 with why (refused, unreachable, no
 * answer). Done before munge or Slurm are asked anything, so that a wrong address or port is reported as
 * such, not as the authentication error Slurm's client would show. */
static int probe_controller(const char *host, long port, char *why, size_t len)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%ld", port);
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0) {
        snprintf(why, len, "cannot resolve %.100s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
    if (fd < 0) {
        err = errno;
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n;
            while ((n = poll(&p, 1, 5000)) < 0 && errno == EINTR)
                ;
            socklen_t el = sizeof err;
            if (n == 0)
                err = ETIMEDOUT;
            else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
        }
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    if (err)
        snprintf(why, len, "%s", err == ETIMEDOUT ? "no answer within 5 s" : strerror(err));
    return err ? -1 : 0;
}

int cluster_start_worker(const cluster_opts *o)
{
    static const char *const progs[] = {"munged", "slurmd", "scontrol", "sinfo", NULL};
    if (cluster_need_root() || cluster_need_programs(progs))
        return EX_FAIL;
    /* --head-address=HOST:PORT. HOST goes verbatim into Slurm configuration lines: plain names only. */
    char host[256];
    long port = CLUSTER_DEFAULT_PORT;
    const char *colon = strrchr(o->head_address, ':');
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - o->head_address) : (int)strlen(o->head_address),
             o->head_address);
    if (colon && cluster_number(colon + 1, 1, 65535, &port) != 0)
        return cluster_usage("--head-address=%s: the port must be a number 1-65535", o->head_address);
    if (!host[0])
        return cluster_usage("--head-address=%s: no host", o->head_address);
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return cluster_usage("--head-address=%s: the host must be a name or an IPv4 address", o->head_address);
    char why[256];
    if (probe_controller(host, port, why, sizeof why) != 0)
        return cluster_fail("the head's controller at %s:%ld is unreachable (%s): check --head-address (the head's "
                            "`sage cluster start --head` printed the join command with its address and port) and "
                            "that this host can reach it",
                            host, port, why);
    char name[128], home[PATH_MAX];
    if (cluster_node_name(o, name, sizeof name))
        return EX_USAGE;
    cluster_res r = o->res;
    cluster_host_defaults(&r);

    char path[PATH_MAX], sock[PATH_MAX], wconf[PATH_MAX], d_log[PATH_MAX], d_pid[PATH_MAX];
    if (cluster_mkdir_p(cluster_dir, 0700) != 0)
        return cluster_fail("cannot create the state directory %s: %s", cluster_dir, strerror(errno));
    if (cluster_lock_state_dir())
        return EX_FAIL;
    cluster_home(home, sizeof home);
    cluster_path(sock, "munge.socket");
    cluster_path(d_log, "slurmd-%s.log", name);
    cluster_path(d_pid, "slurmd-%s.pid", name);
    pid_t pid = cluster_live_daemon(d_pid, "slurmd");
    if (pid)
        return cluster_fail("a slurmd for node %s is already running from %s (pid %ld); stop it first: sage cluster "
                            "stop --home %s",
                            name, cluster_dir, (long)pid, home);
    if (cluster_mkdir_p(cluster_path(path, "spool"), 0755) != 0)
        return cluster_fail("cannot create %s: %s", path, strerror(errno));

    /* munged: the one of this state dir if it runs (a head here, or a shared file system), else ours. */
    if (!cluster_live_daemon(cluster_path(path, "munged.pid"), "munged")) {
        if (!cluster_file_exists(cluster_path(path, "munge.key")))
            return cluster_fail("no munge key at %s: copy the head's munge.key there (the same key on every node; "
                                "owner root, mode 0400)",
                                path);
        unlink(sock);
        if (cluster_start_munged())
            return EX_FAIL;
    }

    /* A minimal client configuration: enough for scontrol/sinfo to reach the controller here. */
    cluster_path(wconf, "worker.conf");
    {
        char text[PATH_MAX * 2];
        snprintf(text, sizeof text,
                 "# written by `sage cluster start --worker`: lets Slurm client commands on this node reach the "
                 "head\nClusterName=sage\nSlurmctldHost=%s\nSlurmctldPort=%ld\nAuthType=auth/munge\n"
                 "AuthInfo=socket=%s\n",
                 host, port, sock);
        if (cluster_write_file(wconf, text, 0644) != 0) {
            cluster_fail("cannot write %s: %s", wconf, strerror(errno));
            goto fail;
        }
    }

    /* Ask the controller for its configuration: proves the address and the munge key, and tells
     * whether its paths match ours (the fetched config names the state dir of the head). */
    {
        char *so = NULL, msg[512];
        char *argv[] = {"scontrol", "show", "config", NULL};
        int rc = sage__slurm_run(wconf, argv, CLUSTER_WAIT_MS, &so, msg, sizeof msg);
        if (rc != 0 || !so) {
            cluster_fail("cannot talk to the controller at %s:%ld (%s). A munge key that differs from the head's "
                         "shows as an authentication error or \"Zero Bytes were transmitted or received\" (the "
                         "head's slurmctld.log says so): copy the head's munge.key to %s/munge.key",
                         host, port, msg[0] ? msg : "scontrol failed without a message", cluster_dir);
            free(so);
            goto fail;
        }
        char authinfo[1024], gres_types[1024], params[1024], slurmd_port[64], want[PATH_MAX + 16];
        sage__slurm_config_value(so, "AuthInfo", authinfo, sizeof authinfo);
        sage__slurm_config_value(so, "GresTypes", gres_types, sizeof gres_types);
        sage__slurm_config_value(so, "SlurmctldParameters", params, sizeof params);
        sage__slurm_config_value(so, "SlurmdPort", slurmd_port, sizeof slurmd_port);
        free(so);
        snprintf(want, sizeof want, "socket=%s", sock);
        char *hs = strstr(authinfo, "socket=");
        if (!hs || strncmp(hs, want, strlen(want)) != 0 || (hs[strlen(want)] && hs[strlen(want)] != ',')) {
            char headdir[PATH_MAX] = "?";
            if (hs) {
                snprintf(headdir, sizeof headdir, "%.*s", (int)strcspn(hs + 7, ","), hs + 7);
                char *slash = strrchr(headdir, '/');
                if (slash)
                    *slash = '\0';
                slash = strrchr(headdir, '/');
                if (slash && !strcmp(slash, "/cluster"))
                    *slash = '\0';
            }
            cluster_fail("the head keeps its cluster in another directory (its AuthInfo is %s); Slurm daemons use "
                         "the same paths on every node: run the worker with --home %s",
                         authinfo, headdir);
            goto fail;
        }
        long sdport = 0;
        if (slurmd_port[0] && cluster_number(slurmd_port, 1, 65535, &sdport) != 0) {
            cluster_fail("the controller at %s:%ld reports SlurmdPort=%s, not a port number", host, port, slurmd_port);
            goto fail;
        }
        if (sdport > 0 && !cluster_port_free((int)sdport)) {
            cluster_fail("port %ld (the cluster's SlurmdPort) is in use here: one slurmd per host or network "
                         "namespace (is a head or another worker running on this host?)",
                         sdport);
            goto fail;
        }
        if (!strstr(params, "enable_configless")) {
            cluster_fail("the controller at %s:%ld does not serve its configuration (no SlurmctldParameters="
                         "enable_configless): is it a SAGE head?",
                         host, port);
            goto fail;
        }
        for (int i = 0; i < r.ngres + 1; i++) {
            const char *g = i < r.ngres ? r.gres_name[i] : "gpu";
            if (i == r.ngres && r.gpus <= 0)
                continue;
            char list[1100];
            snprintf(list, sizeof list, ",%s,", gres_types);
            char needle[80];
            snprintf(needle, sizeof needle, ",%s,", g);
            if (!strstr(list, needle)) {
                cluster_fail("the cluster does not know the resource '%s' (its GresTypes=%s): start the head "
                             "with --resources %s=0 (or more) to declare it",
                             g, gres_types, g);
                goto fail;
            }
        }
    }
    /* A static node of that name (the head's own, say) cannot be taken over. */
    {
        char *so = NULL, msg[512];
        char *argv[] = {"scontrol", "show", "node", name, "-o", NULL};
        sage__slurm_node *x = NULL;
        size_t n = 0;
        sage__err e = {0};
        /* "Node X not found" (exit 1) is the usual answer; output we cannot read is not a static node either */
        int rc = sage__slurm_run(wconf, argv, CLUSTER_WAIT_MS, &so, msg, sizeof msg);
        int taken = rc == 0 && so && sage__slurm_parse_scontrol_nodes(so, &x, &n, &e) == 0 && n == 1 &&
                    !sage__slurm_has_flag(&x[0], "DYNAMIC_NORM");
        free(x);
        free(so);
        if (taken) {
            cluster_fail("the cluster already has a node called %s: name this one with --name", name);
            goto fail;
        }
    }

    if (cluster_make_gpu_files(name, &r) || cluster_update_gres_nodes(name, &r, 0))
        goto fail;

    /* slurmd, configless: the 22.05 slurmd fetches slurm.conf and gres.conf from slurmctld before it
     * reads any configuration, so it would authenticate through munge's default socket. It has no
     * --authinfo option yet (later Slurm has), but it writes the --conf-server value into its
     * bootstrap configuration as "SlurmctldHost=<value>" and takes the port after the first ':',
     * so a second line "AuthInfo=socket=<ours>" before the port points it at our munged. */
    {
        char gres[512], conf_line[1024], server[PATH_MAX + 512];
        cluster_gres_spec(&r, gres, sizeof gres);
        snprintf(conf_line, sizeof conf_line, "CPUs=%ld RealMemory=%ld%s%s", r.cpus, r.mem_mb, gres[0] ? " Gres=" : "",
                 gres);
        snprintf(server, sizeof server, "%s\nAuthInfo=socket=%s:%ld", host, sock, port);
        char *argv[] = {"slurmd", "-N", name, "-Z", "--conf", conf_line, "--conf-server", server, NULL};
        if (cluster_start_slurmd(argv, name, NULL, wconf)) /* no SLURM_CONF: it fetches its configuration */
            goto fail;
    }
    char desc[512];
    cluster_describe_res(&r, desc, sizeof desc);
    printf("worker %s joined the SAGE cluster at %s:%ld: %s: idle\n", name, host, port, desc);
    printf("  log %s; stop it with: sage cluster stop --home %s\n", d_log, home);
    return EX_OK;

fail:
    cluster_undo_started();
    return EX_FAIL;
}
