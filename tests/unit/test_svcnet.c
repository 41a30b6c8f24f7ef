/* tests/unit/test_svcnet.c - calls to a service in another process: frames refused, strangers, answers, breaks, cancel. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "net/frame.h"
#include "net/sock.h"
#include "plan/plan.h"
#include "runtime/future.h"
#include "runtime/runtime.h"
#include "runtime/svcnet.h"

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* ---- sage__svc_parse: every bad payload refused, naming what is wrong ---- */

typedef struct parse_case {
    const char *name;
    int type;
    const char *hex; /* the payload */
    int rc;
    const char *why; /* a substring of the reason */
    unsigned long long id;
    int code;
    size_t off;
} parse_case;

static const parse_case parse_cases[] = {
    {"call_empty", SAGE__MSG_CALL, "", SAGE_EPROTO, "a service call of 0 bytes, shorter than its 8-byte head", 0, 0, 0},
    {"call_short", SAGE__MSG_CALL, "00000000000001", SAGE_EPROTO, "call of 7 bytes", 0, 0, 0},
    {"call_ok", SAGE__MSG_CALL, "0000000000000102ff", 0, NULL, 0x102, 0, 8},
    {"call_no_body", SAGE__MSG_CALL, "ffffffffffffffff", 0, NULL, 0xffffffffffffffffull, 0, 8},
    {"answer_short", SAGE__MSG_ANSWER, "000000000000000100", SAGE_EPROTO, "answer of 9 bytes, shorter than its 12", 0,
     0, 0},
    {"answer_ok", SAGE__MSG_ANSWER, "000000000000000700000000abcd", 0, NULL, 7, 0, 12},
    {"answer_error", SAGE__MSG_ANSWER, "0000000000000007fffffff7", 0, NULL, 7, -9, 12},
    {"answer_positive", SAGE__MSG_ANSWER, "000000000000000700000001", SAGE_EPROTO, "result code 1 (expected 0 or", 0, 0,
     0},
    {"answer_huge_negative", SAGE__MSG_ANSWER, "000000000000000780000000", SAGE_EPROTO, "result code -2147483648", 0, 0,
     0},
    {"data_type", SAGE__MSG_DATA, "0000000000000001", SAGE_EPROTO, "message type 6 where a service call", 0, 0, 0},
    {"hello_type", SAGE__MSG_HELLO, "{}", SAGE_EPROTO, "message type 1", 0, 0, 0},
};

static size_t unhex(const char *hex, unsigned char *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1)
            break;
        out[n++] = (unsigned char)v;
    }
    return n;
}

static void parse_table(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const parse_case *c = &parse_cases[i];
        unsigned char p[64];
        size_t n = c->type == SAGE__MSG_HELLO ? (memcpy(p, c->hex, 2), 2) : unhex(c->hex, p);
        uint64_t id = 0;
        int code = 1;
        size_t off = 0;
        char why[256] = "";
        int rc = sage__svc_parse(c->type, p, n, &id, &code, &off, why, sizeof why);
        if (rc != c->rc || (c->why && !strstr(why, c->why)) ||
            (rc == 0 && (id != c->id || code != c->code || off != c->off))) {
            fprintf(stderr, "case %s: rc %d why \"%s\" id %llx code %d off %zu\n", c->name, rc, why,
                    (unsigned long long)id, code, off);
            CHECK(!"the case's expectation");
        }
    }
}

/* ---- a service's process, in this one: a graph with one service, its job, its server ---- */

static int echo(const void *req, size_t len, sage_reply *reply, void *udata)
{
    if (len == 4 && memcmp(req, "fail", 4) == 0)
        return SAGE_EUSER;
    if (len == 4 && memcmp(req, "wait", 4) == 0) { /* until the test says go */
        _Atomic int *go = udata;
        while (!atomic_load(go))
            nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return sage_reply_set(reply, req, len);
}

typedef struct host {
    sage__graph g;
    sage__plan plan;
    sage__svc_place place;
    sage__job *job;
    sage__svc_server *srv;
    char path[108];
    _Atomic int go;
} host;

static int host_up(host *h, size_t capacity)
{
    memset(h, 0, sizeof *h);
    static sage__service_decl decl;
    memset(&decl, 0, sizeof decl);
    snprintf(decl.name, sizeof decl.name, "echo");
    decl.fn = echo;
    decl.udata = (void *)&h->go;
    decl.opts.queue_capacity = capacity;
    h->g.services = &decl;
    h->g.nservices = 1;
    h->plan.g = &h->g;
    h->job = sage__job_new(&h->plan, NULL, 0, 0);
    h->place.host = 0;
    h->job->svc_place = &h->place;
    sage__err err = {0};
    CHECK_INT(sage__services_start(h->job, &err), 0);
    snprintf(h->path, sizeof h->path, "/tmp/sage-svcnet-%d-%p", (int)getpid(), (void *)h);
    unlink(h->path);
    int lfd = -1;
    char why[256];
    CHECK_INT(sage__unix_listen(h->path, 16, &lfd, why, sizeof why), 0);
    return sage__svc_serve(lfd, token, 7, h->job, 0, &h->srv);
}

static void host_down(host *h)
{
    atomic_store(&h->go, 1);
    sage__services_stop(h->job);
    sage__svc_serve_stop(h->srv);
    sage__job_free(h->job);
    unlink(h->path);
}

static sage__svc_remote *caller(host *h, size_t capacity)
{
    sage__svc_remote *r = NULL;
    char err[256];
    CHECK_INT(sage__svc_remote_connect(h->path, 0, "echo", token, 7, 0, capacity, &r, err, sizeof err), 0);
    return r;
}

/* Send text, wait for the answer; the answer's code, and its bytes in out. */
static int call(sage__svc_remote *r, const char *text, char *out, size_t cap)
{
    sage_future *f = sage__future_new(text, strlen(text), 2);
    char why[256];
    int rc = sage__svc_remote_send(r, f, 5000, why, sizeof why);
    if (rc != 0) {
        f->refs = 1;
        sage__future_unref(f);
        return rc;
    }
    const void *resp;
    size_t len;
    rc = sage_future_wait(f, 10000, &resp, &len);
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)len, (const char *)resp);
    sage_future_destroy(f);
    return rc;
}

static void answers_and_errors(void)
{
    host h;
    CHECK_INT(host_up(&h, 4), 0);
    sage__svc_remote *r = caller(&h, 4);
    char out[64];
    CHECK_INT(call(r, "hello", out, sizeof out), 0);
    CHECK_STR(out, "hello");
    CHECK_INT(call(r, "fail", out, sizeof out), SAGE_EUSER); /* the service's own code travels */
    CHECK_INT(call(r, "", out, sizeof out), 0);
    CHECK_STR(out, "");
    /* more calls than the capacity, in flight at once, all answered */
    sage_future *f[16];
    char why[256];
    for (int i = 0; i < 16; i++) {
        char t[16];
        snprintf(t, sizeof t, "n%d", i);
        f[i] = sage__future_new(t, strlen(t), 2);
        CHECK_INT(sage__svc_remote_send(r, f[i], 5000, why, sizeof why), 0);
        if (i >= 4) { /* the table holds 4: wait for the oldest before the next goes */
            const void *p;
            size_t n;
            CHECK_INT(sage_future_wait(f[i - 4], 5000, &p, &n), 0);
        }
    }
    for (int i = 0; i < 16; i++) {
        const void *p;
        size_t n;
        CHECK_INT(sage_future_wait(f[i], 5000, &p, &n), 0);
        char t[16];
        snprintf(t, sizeof t, "n%d", i);
        CHECK(n == strlen(t) && memcmp(p, t, n) == 0);
        sage_future_destroy(f[i]);
    }
    sage__svc_remote_close(r);
    host_down(&h);
}

/* A full table: the next call waits its timeout, then says why. */
static void full_table_times_out(void)
{
    host h;
    CHECK_INT(host_up(&h, 1), 0);
    sage__svc_remote *r = caller(&h, 1);
    sage_future *held = sage__future_new("wait", 4, 2), *next = sage__future_new("x", 1, 2);
    char why[256];
    CHECK_INT(sage__svc_remote_send(r, held, 5000, why, sizeof why), 0);
    CHECK_INT(sage__svc_remote_send(r, next, 30, why, sizeof why), SAGE_ETIMEDOUT);
    CHECK_CONTAINS(why, "1 calls were outstanding for 30 ms");
    next->refs = 1;
    sage__future_unref(next);
    atomic_store(&h.go, 1);
    const void *p;
    size_t n;
    CHECK_INT(sage_future_wait(held, 5000, &p, &n), 0);
    sage_future_destroy(held);
    sage__svc_remote_close(r);
    host_down(&h);
}

/* Cancel answers every outstanding call SAGE_ECANCELED at once, and later calls too. */
static void cancel_answers_everyone(void)
{
    host h;
    CHECK_INT(host_up(&h, 4), 0);
    sage__svc_remote *r = caller(&h, 4);
    sage_future *f = sage__future_new("wait", 4, 2);
    char why[256];
    CHECK_INT(sage__svc_remote_send(r, f, 5000, why, sizeof why), 0);
    sage__svc_remote_cancel(r);
    const void *p;
    size_t n;
    CHECK_INT(sage_future_wait(f, 0, &p, &n), SAGE_ECANCELED);
    sage_future_destroy(f);
    char out[16];
    CHECK_INT(call(r, "x", out, sizeof out), SAGE_ECANCELED);
    sage__svc_remote_close(r);
    host_down(&h);
}

/* The service's process goes away: calls end with SAGE_EIO and the reason. */
static void server_gone_is_eio(void)
{
    host h;
    CHECK_INT(host_up(&h, 4), 0);
    sage__svc_remote *r = caller(&h, 4);
    char out[16];
    CHECK_INT(call(r, "x", out, sizeof out), 0);
    host_down(&h); /* stops the service and closes every connection */
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) /* a call may go out before the close reaches us */
        rc = call(r, "x", out, sizeof out);
    CHECK_INT(rc, SAGE_EIO);
    /* the reader saw the close ("its process is gone"), or a write saw it first ("the connection to its
     * process broke"): both say where */
    CHECK_CONTAINS(sage__svc_remote_why(r), "its process");
    sage__svc_remote_close(r);
}

/* Strangers: no HELLO, a wrong token, another job's id, garbage: closed unread; the service still answers. */
static int raw_connect(const char *path)
{
    int fd = -1;
    char err[256];
    return sage__unix_connect(path, &fd, err, sizeof err) == 0 ? fd : -1;
}

static void strangers_refused(void)
{
    host h;
    CHECK_INT(host_up(&h, 4), 0);
    const char *hellos[] = {
        "{\"token\":\"00\",\"role\":\"peer\",\"job_id\":7}",
        "{\"token\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"role\":\"peer\",\"job_id\":"
        "8}",
        "{\"token\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"role\":\"client\",\"job_"
        "id\":7}",
        "not json",
    };
    for (size_t i = 0; i < 4; i++) {
        int fd = raw_connect(h.path);
        CHECK(fd >= 0);
        sage__frame_send(fd, SAGE__MSG_HELLO, hellos[i], (uint32_t)strlen(hellos[i]));
        unsigned char call_frame[SAGE__FRAME_HDR + 12];
        sage__frame_header(call_frame, SAGE__MSG_CALL, 12);
        memset(call_frame + SAGE__FRAME_HDR, 0, 8);
        memcpy(call_frame + SAGE__FRAME_HDR + 8, "ping", 4);
        (void)!send(fd, call_frame, sizeof call_frame, MSG_NOSIGNAL); /* refused: it may be closed already */
        char c;
        CHECK(read(fd, &c, 1) <= 0); /* closed: no answer */
        close(fd);
    }
    int garbage = raw_connect(h.path);
    (void)!send(garbage, "GET / HTTP/1.1\r\n\r\n", 18, MSG_NOSIGNAL);
    char c;
    CHECK(read(garbage, &c, 1) <= 0);
    close(garbage);
    /* a flood of silent strangers costs no slot once their handshake time passed */
    sage__svc_remote *r = caller(&h, 4);
    char out[16];
    CHECK_INT(call(r, "still", out, sizeof out), 0);
    CHECK_STR(out, "still");
    sage__svc_remote_close(r);
    host_down(&h);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(parse_table);
    RUN(answers_and_errors);
    RUN(full_table_times_out);
    RUN(cancel_answers_everyone);
    RUN(server_gone_is_eio);
    RUN(strangers_refused);
    return CHECK_DONE();
}
