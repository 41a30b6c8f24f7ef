/* backend/worker_link.c - what a worker process learns without a shared file system: its job's spec, its secret; and how its collected records go back.
 *
 * A worker finds everything through its environment (set by the
 * JobManager's launcher): SAGE_WORKER_JOBMANAGER (HOST:PORT),
 * SAGE_WORKER_JOB (the job id), SAGE_WORKER_TASK (its task) and
 * SAGE_WORKER_SECRET (the job's secret, which it authenticates with to the
 * JobManager and to the job's other workers; it never holds the daemon's
 * token). The spec (tasks, placement, data plane) is fetched once per
 * process over a short connection (HELLO role "spec") and kept. With spec
 * "results": "stream" a collect sink writes into an unlinked temporary file
 * on this node, sent to the JobManager over the control connection when the
 * task ended (a "results" event naming the sink, then DATA frames of at most
 * 1 MiB): no path needs to be shared between the nodes and the JobManager.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "net/frame.h"
#include "net/sock.h"
#include "util/hash.h"
#include "util/num.h"

static json_t *g_spec; /* the spec, fetched once (a program may execute several envs) */
static char g_spec_err[1024];

int sage__worker_identify(sage__worker_ident *id, char *err, size_t err_len)
{
    memset(id, 0, sizeof *id);
    const char *jm = getenv("SAGE_WORKER_JOBMANAGER"), *job = getenv("SAGE_WORKER_JOB");
    const char *task = getenv("SAGE_WORKER_TASK"), *secret = getenv("SAGE_WORKER_SECRET");
    const char *colon = jm ? strrchr(jm, ':') : NULL;
    int64_t j = 0;
    int t = 0, port = 0;
    if (!colon || (size_t)(colon - jm) >= sizeof id->host || sage__parse_int(colon + 1, 1, 65535, &port) != 0) {
        sage__fmt(err, err_len, "SAGE_WORKER_JOBMANAGER is \"%s\", not HOST:PORT", jm ? jm : "(unset)");
        return SAGE_ECONFIG;
    }
    if (!job || sage__parse_i64(job, 1, INT64_MAX, &j) != 0 || !task || sage__parse_int(task, 0, INT32_MAX, &t) != 0) {
        sage__fmt(err, err_len, "SAGE_WORKER_JOB (\"%s\") or SAGE_WORKER_TASK (\"%s\") is not a number",
                  job ? job : "(unset)", task ? task : "(unset)");
        return SAGE_ECONFIG;
    }
    if (!secret || strlen(secret) != SAGE__TOKEN_HEX) {
        sage__fmt(err, err_len, "SAGE_WORKER_SECRET is %s, not the job's secret of %d hex digits",
                  secret ? "malformed" : "unset", SAGE__TOKEN_HEX);
        return SAGE_EAUTH;
    }
    memcpy(id->host, jm, (size_t)(colon - jm));
    id->host[colon - jm] = 0;
    id->port = port;
    id->job_id = j;
    id->task = t;
    memcpy(id->secret, secret, SAGE__TOKEN_HEX + 1);
    return 0;
}

int sage__worker_hello(const sage__worker_ident *id, const char *role, json_t *extra, int *fd, char *err,
                       size_t err_len, json_t **reply)
{
    if (reply)
        *reply = NULL;
    int rc = *fd >= 0 ? 0 : sage__tcp_connect(id->host, id->port, fd, err, err_len);
    if (rc != 0)
        return rc;
    json_t *hello = json_pack("{s:s,s:s,s:I,s:i}", "token", id->secret, "role", role, "job_id", (json_int_t)id->job_id,
                              "task", id->task);
    if (hello && extra)
        json_object_update(hello, extra);
    char *txt = hello ? json_dumps(hello, JSON_COMPACT) : NULL;
    json_decref(hello);
    sage__frame f;
    unsigned char *payload = NULL;
    rc = !txt ? SAGE_ENOMEM : sage__frame_send(*fd, SAGE__MSG_HELLO, txt, (uint32_t)strlen(txt));
    free(txt);
    if (rc == 0)
        rc = sage__frame_recv(*fd, SAGE__DATA_FRAME_MAX, &f, &payload, err, err_len);
    else
        sage__fmt(err, err_len, "sending its HELLO: %s", sage_strerror(rc));
    if (rc == 0 && f.type != SAGE__MSG_OK) {
        json_error_t je;
        json_t *e = json_loads((const char *)payload, 0, &je);
        const char *m = json_string_value(json_object_get(e, "message"));
        sage__fmt(err, err_len, "%s", m ? m : "refused");
        rc = (int)json_integer_value(json_object_get(e, "code"));
        if (rc >= 0)
            rc = SAGE_EAUTH;
        json_decref(e);
    } else if (rc == 0 && reply) {
        json_error_t je;
        *reply = json_loads((const char *)payload, 0, &je);
        if (!*reply) {
            sage__fmt(err, err_len, "the JobManager's answer is not JSON: %s", je.text);
            rc = SAGE_EPROTO;
        }
    }
    free(payload);
    if (rc != 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

json_t *sage__worker_spec(char *err, size_t err_len)
{
    if (g_spec)
        return g_spec;
    if (g_spec_err[0]) { /* asked before and refused: the same answer, not a second connection */
        sage__fmt(err, err_len, "%s", g_spec_err);
        return NULL;
    }
    sage__worker_ident id;
    int fd = -1; /* connected by the HELLO */
    json_t *reply = NULL;
    if (sage__worker_identify(&id, g_spec_err, sizeof g_spec_err) == 0 &&
        sage__worker_hello(&id, "spec", NULL, &fd, g_spec_err, sizeof g_spec_err, &reply) == 0) {
        json_t *spec = json_object_get(reply, "spec");
        if (json_is_object(spec))
            g_spec = json_incref(spec);
        else
            sage__fmt(g_spec_err, sizeof g_spec_err, "the JobManager sent no spec for job %lld", (long long)id.job_id);
        close(fd);
    } else if (!strstr(g_spec_err, "SAGE_WORKER")) {
        char why[sizeof g_spec_err];
        sage__fmt(why, sizeof why, "%s", g_spec_err);
        sage__fmt(g_spec_err, sizeof g_spec_err, "fetching the job's spec from the JobManager at %s:%d: %s", id.host,
                  id.port, why);
    }
    json_decref(reply);
    if (!g_spec)
        sage__fmt(err, err_len, "%s", g_spec_err);
    return g_spec;
}

int sage__program_hash(const char *path, char *hex, size_t hex_len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sage__fmt(err, err_len, "cannot read %s: %s", path, strerror(errno));
        return SAGE_EIO;
    }
    unsigned char *buf = malloc((size_t)1 << 20);
    uint64_t h = sage__hash64("sage-program", 12);
    size_t n;
    while (buf && (n = fread(buf, 1, (size_t)1 << 20, f)) > 0) /* chunk by chunk, each folded in */
        h = sage__hash64(&(uint64_t[2]){h, sage__hash64(buf, n)}, 16);
    int bad = !buf || ferror(f);
    free(buf);
    fclose(f);
    if (bad) {
        sage__fmt(err, err_len, "reading %s failed", path);
        return SAGE_EIO;
    }
    sage__fmt(hex, hex_len, "%016llx", (unsigned long long)h);
    return 0;
}

int sage__worker_send_results(int fd, pthread_mutex_t *mu, const char *op, FILE *f, char *err, size_t err_len)
{
    if (fflush(f) != 0 || fseeko(f, 0, SEEK_SET) != 0) {
        sage__fmt(err, err_len, "reading back its collected records: %s", strerror(errno));
        return SAGE_EIO;
    }
    json_t *ev = json_pack("{s:s,s:s}", "event", "results", "operator", op);
    char *txt = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    if (!txt)
        return SAGE_ENOMEM;
    pthread_mutex_lock(mu);
    int rc = sage__frame_send(fd, SAGE__MSG_EVENT, txt, (uint32_t)strlen(txt));
    free(txt);
    size_t cap = (size_t)1 << 20, n;
    unsigned char *buf = rc == 0 ? malloc(cap) : NULL;
    if (rc == 0 && !buf)
        rc = SAGE_ENOMEM;
    while (rc == 0 && (n = fread(buf, 1, cap, f)) > 0)
        rc = sage__frame_send(fd, SAGE__MSG_DATA, buf, (uint32_t)n);
    if (rc == 0 && ferror(f))
        rc = SAGE_EIO;
    pthread_mutex_unlock(mu);
    free(buf);
    if (rc != 0)
        sage__fmt(err, err_len, "sending its collected records to the JobManager: %s", sage_strerror(rc));
    return rc;
}
