/* api/client_call.c - sage_client_call: a running job's service called from outside the job. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/client.h"
#include "runtime/future.h"
#include "runtime/svcnet.h"
#include "sage/error.h"
#include "sage/jobmanager.h"
#include "util/err.h"

SAGE_API int sage_client_call(sage_client *c, long long job_id, const char *service, const void *req, size_t req_len,
                              int timeout_ms, void **resp, size_t *resp_len, char *err, size_t err_len)
{
    char scratch[8];
    if (!err || !err_len)
        err = scratch, err_len = sizeof scratch;
    if (!c || !service || !resp || (!req && req_len)) {
        sage__fmt(err, err_len, "sage_client_call: a NULL client, service, resp or request");
        return SAGE_EINVAL;
    }
    *resp = NULL;
    if (resp_len)
        *resp_len = 0;
    /* where it listens */
    json_t *q = json_pack("{s:s,s:I,s:s}", "op", "service", "job_id", (json_int_t)job_id, "service", service);
    char *txt = q ? json_dumps(q, JSON_COMPACT) : NULL, *reply = NULL;
    json_decref(q);
    if (!txt) {
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    int rc = sage_client_request(c, txt, &reply, err, err_len);
    free(txt);
    if (rc != 0)
        return rc;
    json_error_t je;
    json_t *r = json_loads(reply, 0, &je);
    free(reply);
    const char *where = json_string_value(json_object_get(r, "address"));
    const char *plane = json_string_value(json_object_get(r, "data_plane"));
    const char *token = json_string_value(json_object_get(r, "token")); /* the job's: its workers know no other */
    if (!where || !plane || !token) {
        json_decref(r);
        sage__fmt(err, err_len, "the JobManager's answer names no address for service \"%s\"", service);
        return SAGE_EPROTO;
    }
    /* the call itself, straight to the service's process */
    sage__svc_remote *rem = NULL;
    char why[1024];
    rc = sage__svc_remote_connect(where, strcmp(plane, "tcp") == 0, service, token, job_id, -1, 1, &rem, why,
                                  sizeof why);
    json_decref(r);
    if (rc != 0) {
        sage__fmt(err, err_len, "cannot reach service \"%s\" of job %lld: %s", service, job_id, why);
        return rc;
    }
    sage_future *f = sage__future_new(req, req_len, 2);
    if (!f) {
        sage__svc_remote_close(rem);
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    rc = sage__svc_remote_send(rem, f, timeout_ms, why, sizeof why);
    if (rc != 0) {
        f->refs = 1;
        sage__future_unref(f);
        sage__svc_remote_close(rem);
        sage__fmt(err, err_len, "service \"%s\" of job %lld: %s", service, job_id, why);
        return rc;
    }
    const void *data;
    size_t len;
    rc = sage_future_wait(f, timeout_ms, &data, &len);
    if (rc == 0) {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, data, len);
            copy[len] = 0;
            *resp = copy;
            if (resp_len)
                *resp_len = len;
        } else {
            rc = SAGE_ENOMEM;
            sage__fmt(err, err_len, "out of memory for an answer of %zu bytes", len);
        }
    } else if (rc == SAGE_ETIMEDOUT) {
        sage__fmt(err, err_len, "service \"%s\" of job %lld did not answer within %d ms", service, job_id, timeout_ms);
    } else if (rc == SAGE_EIO) {
        sage__fmt(err, err_len, "service \"%s\" of job %lld: %s", service, job_id, sage__svc_remote_why(rem));
    } else if (rc == SAGE_ECANCELED) {
        sage__fmt(err, err_len, "service \"%s\" of job %lld stopped before answering (the job ended)", service, job_id);
    } else {
        sage__fmt(err, err_len, "service \"%s\" of job %lld answered %d (%s)", service, job_id, rc, sage_strerror(rc));
    }
    sage_future_destroy(f); /* before the connection goes: it may still hold the future */
    sage__svc_remote_close(rem);
    return rc;
}
