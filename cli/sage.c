/* cli/sage.c - the `sage` command: its options and commands (jobmanager, job, cluster, version). Public API only,
 * plus the daemon's entry point (jobmanager/jobmanager.h) and the code the daemon shares (src/cluster/).
 *
 *   cli_jobmanager.c   jobmanager start | status | stop; dashboard
 *   cli_job.c          job list | status | pause | resume | stop | cancel | logs
 *   cli_service.c      service call
 *   cli_client.c       the connection to a JobManager those use
 *   cluster*.c         cluster start | status | stop (its own options: cluster.c)
 *
 * Exit codes: 0 done; 1 the JobManager refused or failed the request (the
 * message says why); 2 usage error; 3 no JobManager answered. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cluster.h"
#include "util/num.h"

static const char *const usage_text =
    "usage: sage <command> [options]\n"
    "\n"
    "commands:\n"
    "  jobmanager start [--host H] [--port P] [--home DIR] [--config FILE|JSON] [--foreground]\n"
    "  jobmanager status [--json]\n"
    "  jobmanager stop\n"
    "  job list [--json]\n"
    "  job status <id> [--json]\n"
    "  job pause|resume|cancel <id>\n"
    "  job stop <id> [--timeout SECONDS]   (then what still runs is killed; default: the JobManager's)\n"
    "  job stop <id> --savepoint DIR      (a checkpoint into DIR first; restore_from starts a new run there)\n"
    "  job logs <id> [--follow]\n"
    "  service call <job> <service> [--method M] [--timeout SECONDS] <payload|->\n"
    "  dashboard                          (prints the address that logs a browser in to the dashboard)\n"
    "                                     (a running job's service; default timeout 30 s)\n"
    "  cluster start --head | --worker --head-address=H:P ...   (see: sage cluster --help)\n"
    "  cluster status [--json] | cluster stop\n"
    "  version\n"
    "\n"
    "client options (every command):\n"
    "  --host H, --port P   the JobManager (default 127.0.0.1:19001, or $SAGE_JOBMANAGER=host:port)\n"
    "  --token-file F       its token (default $SAGE_TOKEN_FILE, else $SAGE_HOME/token, else ~/.sage/token)\n"
    "  --home DIR           state directory of the JobManager (default $SAGE_HOME, else ~/.sage)\n"
    "\n"
    "exit status: 0 done, 1 the JobManager refused or failed the request, 2 usage error,\n"
    "             3 no JobManager answered\n";

static int usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "sage: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n\n");
    }
    fputs(usage_text, fmt ? stderr : stdout);
    return fmt ? EXIT_USAGE : 0;
}

/* "SECONDS" or "SECONDS.FRACTION" (at most 3 decimals), 0..max_s, as milliseconds. 0 or SAGE_EINVAL. */
static int parse_seconds_ms(const char *s, int max_s, int64_t *ms)
{
    char whole[24];
    const char *dot = strchr(s, '.');
    size_t wl = dot ? (size_t)(dot - s) : strlen(s), fl = dot ? strlen(dot + 1) : 0;
    int64_t w, f = 0;
    if (wl == 0 || wl >= sizeof whole || (dot && (fl == 0 || fl > 3)))
        return SAGE_EINVAL;
    memcpy(whole, s, wl);
    whole[wl] = 0;
    if (sage__parse_i64(whole, 0, max_s, &w) != 0 ||
        (dot && (dot[1] == '-' || sage__parse_i64(dot + 1, 0, 999, &f) != 0)))
        return SAGE_EINVAL;
    for (size_t i = fl; i < 3; i++)
        f *= 10;
    *ms = w * 1000 + f;
    return *ms <= (int64_t)max_s * 1000 ? 0 : SAGE_EINVAL;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "cluster") == 0)
        return sage_cluster_main(argc - 1, argv + 1); /* cli/cluster.c: its own options */
    cli_opts o = {.port = SAGE_JOBMANAGER_PORT, .stop_timeout_ms = -1};
    snprintf(o.host, sizeof o.host, "127.0.0.1");
    const char *env_jm = getenv("SAGE_JOBMANAGER");
    if (env_jm && *env_jm) {
        const char *colon = strrchr(env_jm, ':');
        if (colon) {
            snprintf(o.host, sizeof o.host, "%.*s", (int)(colon - env_jm), env_jm);
            if (sage__parse_int(colon + 1, 1, 65535, &o.port) != 0)
                return usage("SAGE_JOBMANAGER=%s: expected HOST:PORT with a port 1..65535", env_jm);
        } else {
            snprintf(o.host, sizeof o.host, "%s", env_jm);
        }
    }
    const char *pos[5] = {0};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return usage(NULL, NULL);
        else if (strcmp(a, "--json") == 0)
            o.json = 1;
        else if (strcmp(a, "--foreground") == 0)
            o.foreground = 1;
        else if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0)
            o.follow = 1;
        else if (strcmp(a, "--timeout") == 0) {
            int64_t ms;
            if (!val || parse_seconds_ms(val, 3600, &ms) != 0)
                return usage("--timeout expects seconds, 0..3600 (a decimal such as 0.5 is fine), got %s",
                             val ? val : "nothing");
            o.stop_timeout_ms = (int)ms;
            i++;
        } else if (strcmp(a, "--method") == 0) {
            if (!val || !*val)
                return usage("--method expects a method name", NULL);
            o.method = val;
            i++;
        } else if (strcmp(a, "--savepoint") == 0) {
            if (!val || !*val)
                return usage("--savepoint expects a directory", NULL);
            o.savepoint = val;
            i++;
        } else if (strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0 || strcmp(a, "--token-file") == 0 ||
                   strcmp(a, "--home") == 0 || strcmp(a, "--config") == 0) {
            if (!val)
                return usage("%s needs a value", a);
            i++;
            if (strcmp(a, "--host") == 0)
                snprintf(o.host, sizeof o.host, "%s", val);
            else if (strcmp(a, "--port") == 0) {
                if (sage__parse_int(val, 1, 65535, &o.port) != 0)
                    return usage("--port expects 1..65535, got %s", val);
            } else if (strcmp(a, "--token-file") == 0)
                o.token_file = val;
            else if (strcmp(a, "--home") == 0)
                o.home = val;
            else
                o.config = val;
        } else if (a[0] == '-' && a[1]) {
            return usage("unknown option %s", a);
        } else if (npos < 5) {
            pos[npos++] = a;
        } else {
            return usage("too many arguments (%s)", a);
        }
    }
    if (o.home && !o.token_file) {
        static char tf[1100];
        snprintf(tf, sizeof tf, "%s/token", o.home);
        o.token_file = tf;
    }
    if (npos == 0)
        return usage("a command is needed", NULL);
    if (strcmp(pos[0], "version") == 0 && npos == 1) {
        printf("sage %s\n", sage_version());
        return 0;
    }
    if (strcmp(pos[0], "jobmanager") == 0 && npos == 2) {
        if (strcmp(pos[1], "start") == 0)
            return cli_jobmanager_start(&o);
        if (strcmp(pos[1], "status") == 0)
            return cli_jobmanager_status(&o);
        if (strcmp(pos[1], "stop") == 0)
            return cli_jobmanager_stop(&o);
        return usage("unknown jobmanager command %s", pos[1]);
    }
    if (strcmp(pos[0], "job") == 0 && npos >= 2) {
        if (strcmp(pos[1], "list") == 0 && npos == 2)
            return cli_job_list(&o);
        int64_t id;
        if (npos != 3)
            return usage("job %s needs a job id", pos[1]);
        if (sage__parse_i64(pos[2], 1, INT64_MAX, &id) != 0)
            return usage("not a job id: %s", pos[2]);
        if (o.stop_timeout_ms >= 0 && strcmp(pos[1], "stop") != 0)
            return usage("--timeout goes with job stop only (not job %s)", pos[1]);
        if (o.savepoint && strcmp(pos[1], "stop") != 0)
            return usage("--savepoint goes with job stop only (not job %s)", pos[1]);
        if (strcmp(pos[1], "status") == 0)
            return cli_job_status(&o, id);
        if (strcmp(pos[1], "logs") == 0)
            return cli_job_logs(&o, id);
        if (strcmp(pos[1], "pause") == 0 || strcmp(pos[1], "resume") == 0 || strcmp(pos[1], "stop") == 0 ||
            strcmp(pos[1], "cancel") == 0)
            return cli_job_control(&o, pos[1], id);
        return usage("unknown job command %s", pos[1]);
    }
    if (strcmp(pos[0], "dashboard") == 0 && npos == 1)
        return cli_dashboard(&o);
    if (strcmp(pos[0], "service") == 0) {
        int64_t id;
        if (npos < 2 || strcmp(pos[1], "call") != 0)
            return usage("unknown service command %s", npos > 1 ? pos[1] : "(none)");
        if (npos != 5)
            return usage("service call needs a job id, a service name and a payload (- for stdin)", NULL);
        if (sage__parse_i64(pos[2], 1, INT64_MAX, &id) != 0)
            return usage("not a job id: %s", pos[2]);
        return cli_service_call(&o, (long long)id, pos[3], pos[4]);
    }
    if (o.method)
        return usage("--method goes with service call only", NULL);
    return usage("unknown command %s", pos[0]);
}
