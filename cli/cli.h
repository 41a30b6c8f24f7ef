/* cli/cli.h - what the `sage` command's files share: its options, exit codes and the JobManager connection. */
#ifndef SAGE_CLI_CLI_H
#define SAGE_CLI_CLI_H

#include <jansson.h>

#include <sage/sage.h>

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_NOJM = 3 };

typedef struct cli_opts {
    char host[256];
    int port;
    const char *token_file;
    const char *home;
    const char *config;
    int json, foreground, follow;
    int stop_timeout_ms;   /* job stop --timeout SECONDS (-1: the JobManager's default) */
    const char *savepoint; /* job stop --savepoint DIR (NULL: none) */
    const char *method;    /* service call --method M (NULL: raw bytes) */
} cli_opts;

/* cli_client.c: connect to the JobManager (exit code: 0, EXIT_NOJM when nothing answered, EXIT_REFUSED
 * when it refused us), and one request/reply (the JobManager's error printed, an exit code returned). */
int cli_connect(const cli_opts *o, sage_client **c);
int cli_request(const cli_opts *o, json_t *req, json_t **reply); /* steals req */
/* JSON for --json output, indented. */
void cli_print_json(const json_t *j);

/* cli_jobmanager.c: sage jobmanager start | status | stop */
int cli_jobmanager_start(const cli_opts *o);
int cli_jobmanager_status(const cli_opts *o);
int cli_jobmanager_stop(const cli_opts *o);
/* sage dashboard: a one-time login address of the JobManager's dashboard, as the last line */
int cli_dashboard(const cli_opts *o);

/* cli_job.c: sage job list | status | pause | resume | stop | cancel | logs */
int cli_job_list(const cli_opts *o);
int cli_job_status(const cli_opts *o, json_int_t id);
int cli_job_control(const cli_opts *o, const char *action, json_int_t id);
int cli_job_logs(const cli_opts *o, json_int_t id);

/* cli_service.c: sage service call JOB NAME [--method M] [--timeout S] PAYLOAD|- */
int cli_service_call(const cli_opts *o, long long job, const char *service, const char *payload);

#endif
