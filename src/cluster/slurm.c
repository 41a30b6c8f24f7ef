/* cluster/slurm.c - running Slurm's client commands (sinfo, squeue, sbatch, scancel, scontrol) with SLURM_CONF.
 *
 * Every command goes through cluster/spawn.c: no shell, stdout kept up to
 * SAGE__SLURM_OUT_MAX (more is an error, never a silently cut JSON),
 * stderr up to SAGE__SLURM_ERR_MAX for messages, a deadline after which its
 * process group is killed. The child gets SLURM_CONF (the munge socket then
 * comes from that file's AuthInfo). The JobManager starts commands with
 * sage__slurm_start and runs them from its poll loop (jobmanager/command.c);
 * `sage cluster` and the daemon's start-up, which may wait, use
 * sage__slurm_run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/slurm.h"
#include "sage/error.h"
#include "util/time.h"

int sage__slurm_start(sage__proc *p, const char *conf, char *const argv[], int timeout_ms, sage__err *e)
{
    char setting[4200];
    const char *env[2] = {setting, NULL};
    if (conf && (size_t)snprintf(setting, sizeof setting, "SLURM_CONF=%s", conf) >= sizeof setting)
        return sage__errf(e, SAGE_ETOOBIG, "SLURM_CONF path too long: %.80s...", conf);
    sage__spawn_opts o = {.argv = argv,
                          .env = conf ? env : NULL,
                          .out_max = SAGE__SLURM_OUT_MAX,
                          .err_max = SAGE__SLURM_ERR_MAX,
                          .timeout_ms = timeout_ms};
    return sage__proc_start(p, &o, e);
}

int sage__slurm_result(const sage__proc *p, char *msg, size_t msg_len)
{
    if (p->out_truncated) {
        sage__fmt(msg, msg_len, "%s printed more than %u bytes", p->name, SAGE__SLURM_OUT_MAX);
        return -1;
    }
    sage__proc_describe(p, msg, msg_len);
    return sage__proc_exit_code(p);
}

int sage__slurm_run(const char *conf, char *const argv[], int timeout_ms, char **out, char *msg, size_t msg_len)
{
    if (out)
        *out = NULL;
    sage__proc p;
    sage__err e = {0};
    int rc = sage__slurm_start(&p, conf, argv, timeout_ms, &e);
    if (rc == 0) {
        /* the same wait as sage__proc_run, on a command already started with SLURM_CONF */
        rc = sage__proc_wait(&p, &e);
    }
    if (rc != 0) {
        sage__fmt(msg, msg_len, "%s", e.msg);
        return -1;
    }
    int code = sage__slurm_result(&p, msg, msg_len);
    if (out && !p.out_truncated)
        *out = sage__buf_detach(&p.out, NULL);
    sage__proc_free(&p);
    return code;
}

int sage__slurm_nodes(const char *conf, int timeout_ms, sage__node **nodes, size_t *n, sage__err *e)
{
    char *out = NULL, msg[1024];
    char *argv[] = {"sinfo", "--json", NULL};
    int rc = sage__slurm_run(conf, argv, timeout_ms, &out, msg, sizeof msg);
    if (rc != 0) {
        free(out);
        return sage__errf(e, SAGE_ESYS, "sinfo --json (SLURM_CONF=%s): %s", conf ? conf : "(unset)",
                          msg[0] ? msg : "failed without a message");
    }
    rc = sage__slurm_nodes_from_sinfo(out ? out : "", nodes, n, e);
    free(out);
    return rc;
}

int sage__slurm_collect(const char *conf, int timeout_ms, sage__slurm_node **nodes, size_t *n, sage__err *e)
{
    char *out = NULL, msg[1024];
    int64_t deadline = sage__mono_ms() + timeout_ms;
    char *argv1[] = {"sinfo", "--json", NULL};
    int rc = sage__slurm_run(conf, argv1, timeout_ms, &out, msg, sizeof msg);
    if (rc == 0) {
        rc = sage__slurm_parse_sinfo(out ? out : "", nodes, n, e);
        free(out);
        return rc;
    }
    free(out);
    if (rc < 0) /* no answer: the text form would not get one either */
        return sage__errf(e, SAGE_ESYS, "%s", msg[0] ? msg : "sinfo failed without a message");
    /* sinfo without --json (no serializer/json plugin, other Slurm versions): the text form */
    char *argv2[] = {"scontrol", "show", "nodes", "-o", "-d", NULL};
    int64_t left = deadline - sage__mono_ms();
    rc = sage__slurm_run(conf, argv2, left > 1000 ? (int)left : 1000, &out, msg, sizeof msg);
    if (rc == 0)
        rc = sage__slurm_parse_scontrol_nodes(out ? out : "", nodes, n, e);
    else
        rc = sage__errf(e, SAGE_ESYS, "%s", msg[0] ? msg : "scontrol show nodes failed without a message");
    free(out);
    return rc;
}
