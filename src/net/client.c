/* net/client.c - one authenticated connection to a JobManager: requests, replies and pushed events. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/client.h"
#include "net/frame.h"
#include "net/sock.h"
#include "sage/jobmanager.h"

struct sage_client {
    int fd;
    char token[SAGE__TOKEN_HEX + 1]; /* what we presented: a job's service asks for it too */
};

SAGE_API int sage_client_connect(const char *host, int port, const char *token_file, sage_client **out, char *err,
                                 size_t err_len)
{
    char scratch[8];
    if (!err || !err_len)
        err = scratch, err_len = sizeof scratch;
    *out = NULL;
    char path[1200], token[SAGE__TOKEN_HEX + 1];
    if (token_file && *token_file)
        snprintf(path, sizeof path, "%s", token_file);
    else if (getenv("SAGE_TOKEN_FILE") && *getenv("SAGE_TOKEN_FILE"))
        snprintf(path, sizeof path, "%s", getenv("SAGE_TOKEN_FILE"));
    else {
        char home[1024];
        int hrc = sage_home_dir(NULL, home, sizeof home);
        if (hrc != 0) {
            snprintf(err, err_len, "%s",
                     hrc == SAGE_ENOTFOUND ? "no home directory to find the token in (set SAGE_HOME or SAGE_TOKEN_FILE)"
                                           : "the state directory path is too long");
            return hrc;
        }
        snprintf(path, sizeof path, "%s/token", home);
    }
    int fd, rc;
    /* connect first: "nothing answers there" is a different problem from a bad token file */
    if ((rc = sage__tcp_connect(host && *host ? host : "127.0.0.1", port ? port : SAGE_JOBMANAGER_PORT, &fd, err,
                                err_len)) != 0)
        return rc;
    if ((rc = sage__token_read(path, token, sizeof token, err, err_len)) != 0) {
        close(fd);
        return rc;
    }
    sage_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return SAGE_ENOMEM;
    }
    c->fd = fd;
    memcpy(c->token, token, sizeof c->token);
    json_t *hello = json_pack("{s:s,s:s,s:s}", "token", token, "role", "client", "version", sage_version());
    char *txt = json_dumps(hello, JSON_COMPACT);
    json_decref(hello);
    char *reply = NULL;
    rc = txt ? sage__frame_send(fd, SAGE__MSG_HELLO, txt, (uint32_t)strlen(txt)) : SAGE_ENOMEM;
    free(txt);
    if (rc == 0)
        rc = sage_client_event(c, -1, &reply, err, err_len);
    free(reply);
    if (rc != 0) {
        sage_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

const char *sage__client_token(const sage_client *c) { return c->token; }

SAGE_API void sage_client_close(sage_client *c)
{
    if (!c)
        return;
    close(c->fd);
    explicit_bzero(c->token, sizeof c->token);
    free(c);
}

/* One frame: OK/EVENT -> 0 and the JSON text; ERROR -> its code and message. */
SAGE_API int sage_client_event(sage_client *c, int timeout_ms, char **event, char *err, size_t err_len)
{
    char scratch[8];
    if (!err || !err_len)
        err = scratch, err_len = sizeof scratch;
    *event = NULL;
    if (timeout_ms >= 0) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
            ;
        if (r == 0) {
            snprintf(err, err_len, "no answer within %d ms", timeout_ms);
            return SAGE_ETIMEDOUT;
        }
    }
    sage__frame f;
    unsigned char *payload = NULL;
    int rc = sage__frame_recv(c->fd, SAGE__DATA_FRAME_MAX, &f, &payload, err, err_len);
    if (rc != 0)
        return rc;
    if (f.type == SAGE__MSG_ERROR) {
        json_error_t jerr;
        json_t *e = json_loads((const char *)payload, 0, &jerr);
        rc = (int)json_integer_value(json_object_get(e, "code"));
        snprintf(err, err_len, "%s", json_string_value(json_object_get(e, "message")) ?: "error without a message");
        json_decref(e);
        free(payload);
        return rc < 0 ? rc : SAGE_EPROTO;
    }
    if (f.type == SAGE__MSG_DATA) { /* raw frames are only read through results() */
        free(payload);
        snprintf(err, err_len, "unexpected data frame");
        return SAGE_EPROTO;
    }
    *event = (char *)payload;
    return 0;
}

SAGE_API int sage_client_request(sage_client *c, const char *request, char **reply, char *err, size_t err_len)
{
    *reply = NULL;
    int rc = sage__frame_send(c->fd, SAGE__MSG_REQUEST, request, (uint32_t)strlen(request));
    if (rc != 0) {
        if (err && err_len)
            snprintf(err, err_len, "the JobManager closed the connection");
        return rc;
    }
    return sage_client_event(c, -1, reply, err, err_len);
}

int sage__client_fd(const sage_client *c) { return c->fd; }
