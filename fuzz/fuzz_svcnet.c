/* fuzz/fuzz_svcnet.c - fuzzes a service's process: the bytes a caller sends after its HELLO, and the frame parser. */
/*
 * The input goes over a real Unix socket into the real server
 * (sage__svc_serve) of a one-service job whose service echoes each request;
 * a thread reads whatever comes back and checks that every frame is an
 * ANSWER that parses. Inputs starting with "HELLO" are sent, without those
 * five bytes, in place of our HELLO, so the handshake is fuzzed too. The input's first bytes are
 * also parsed as a CALL and as an ANSWER payload (sage__svc_parse). Whatever
 * the bytes, the server must close or answer without a crash, and stop.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/sock.h"
#include "plan/plan.h"
#include "runtime/runtime.h"
#include "runtime/svcnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int echo(const void *req, size_t len, sage_reply *reply, void *udata) { return sage_reply_set(reply, req, len); }

/* Everything the server sends: ANSWER frames only, each one parsing. */
static void *drain(void *arg)
{
    int fd = *(int *)arg;
    for (;;) {
        sage__frame f;
        unsigned char *payload = NULL;
        char why[256];
        if (sage__frame_recv(fd, SAGE__DATA_FRAME_MAX, &f, &payload, why, sizeof why) != 0)
            return NULL;
        uint64_t id;
        int rc;
        size_t off;
        if (f.type != SAGE__MSG_ANSWER || sage__svc_parse(f.type, payload, f.len, &id, &rc, &off, why, sizeof why))
            abort(); /* the server only ever answers */
        free(payload);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t id;
    int code;
    size_t off;
    char why[256];
    sage__svc_parse(SAGE__MSG_CALL, data, size, &id, &code, &off, why, sizeof why);
    if (sage__svc_parse(SAGE__MSG_ANSWER, data, size, &id, &code, &off, why, sizeof why) == 0 &&
        (code > 0 || off != 12))
        abort();

    static sage__service_decl decl = {.name = "echo", .fn = echo, .opts = {.queue_capacity = 4}};
    static sage__graph g = {.services = &decl, .nservices = 1};
    static sage__plan plan = {.g = &g};
    sage__svc_place place = {.host = 0};
    sage__job *job = sage__job_new(&plan, NULL, 0, 0);
    if (!job)
        return 0;
    job->svc_place = &place;
    sage__err err = {0};
    int sv[2], lfd = -1;
    char path[108];
    snprintf(path, sizeof path, "/tmp/sage-fuzz-svc-%d", (int)getpid());
    unlink(path);
    if (sage__services_start(job, &err) != 0 || sage__unix_listen(path, 4, &lfd, why, sizeof why) != 0) {
        sage__services_stop(job);
        sage__job_free(job);
        return 0;
    }
    sage__svc_server *srv = NULL;
    if (sage__svc_serve(lfd, token, 1, job, 0, &srv) != 0 || sage__unix_connect(path, &sv[0], why, sizeof why)) {
        sage__services_stop(job);
        sage__svc_serve_stop(srv);
        sage__job_free(job);
        unlink(path);
        return 0;
    }
    int own_hello = size >= 5 && memcmp(data, "HELLO", 5) == 0;
    if (own_hello) { /* the input brings its own handshake, after the marker */
        data += 5;
        size -= 5;
    } else {
        char hello[256];
        int n = snprintf(hello, sizeof hello, "{\"token\":\"%s\",\"role\":\"peer\",\"job_id\":1,\"from_task\":0}",
                         token);
        sage__frame_send(sv[0], SAGE__MSG_HELLO, hello, (uint32_t)n);
    }
    pthread_t th;
    pthread_create(&th, NULL, drain, &sv[0]);
    (void)!send(sv[0], data, size, MSG_NOSIGNAL);
    shutdown(sv[0], SHUT_WR);  /* the server reads to the end, answers, and closes */
    sage__services_stop(job);  /* every queued call answered (or canceled) */
    sage__svc_serve_stop(srv); /* every connection closed: drain ends */
    pthread_join(th, NULL);
    close(sv[0]);
    sage__job_free(job);
    unlink(path);
    return 0;
}
