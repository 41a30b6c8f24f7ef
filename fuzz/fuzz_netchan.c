/* fuzz/fuzz_netchan.c - fuzzes the receiving end of a data connection: the bytes a producer sends after its HELLO. */
/*
 * The input is what a (possibly hostile or broken) producer writes on an
 * authenticated data connection: DATA, EOS and anything else. It goes over
 * a real Unix socket into the real receiver (sage__net_serve, one expected
 * producer), whose batches a second thread drains from the consumer's queue.
 * Inputs starting with "HELLO" are sent without our HELLO first, so the
 * handshake (sage__net_hello_check) is fuzzed too; a refused stranger is
 * followed by a real producer that only sends its end-of-stream. Whatever the
 * bytes, the receiver must end (end-of-stream, a reported failure, or the
 * connection's end) without a crash, and every batch it hands on must hold
 * exactly the records its frame announced, each inside the batch.
 */
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/frame.h"
#include "net/sock.h"
#include "runtime/netchan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

typedef struct feed {
    int fd;
    const uint8_t *data;
    size_t size;
} feed;

static void send_hello(int fd)
{
    char hello[256];
    int n = snprintf(hello, sizeof hello, "{\"token\":\"%s\",\"role\":\"peer\",\"job_id\":1,\"from_task\":0}", token);
    unsigned char hdr[SAGE__FRAME_HDR];
    sage__frame_header(hdr, SAGE__MSG_HELLO, (uint32_t)n);
    (void)!send(fd, hdr, sizeof hdr, MSG_NOSIGNAL);
    (void)!send(fd, hello, (size_t)n, MSG_NOSIGNAL);
}

static void *writer(void *arg)
{
    feed *f = arg;
    size_t off = 0;
    while (off < f->size) {
        ssize_t w = send(f->fd, f->data + off, f->size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the receiver stopped reading and closed */
        off += (size_t)w;
    }
    shutdown(f->fd, SHUT_WR);
    return NULL;
}

static void *drain(void *arg)
{
    sage__queue *q = arg;
    sage__batch *b;
    while (sage__queue_pop(q, 0, NULL, &b) == 0) {
        if (!b->mark && sage__batch_check(b->data, b->used, b->n) != 0) {
            fprintf(stderr, "fuzz_netchan: a received batch's records do not fit it\n");
            abort();
        }
        free(b);
    }
    return NULL;
}

static void on_fail(void *arg, const char *why)
{
    if (!why || !*why) {
        fprintf(stderr, "fuzz_netchan: a failure without a reason\n");
        abort();
    }
    (*(int *)arg)++;
}

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    if (!path[0]) {
        char dir[] = "/tmp/sage-fuzz-netchan-XXXXXX";
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof path, "%s/s", dir);
    }
    char err[256];
    int lfd, fd;
    if (sage__unix_listen(path, 64, &lfd, err, sizeof err) != 0)
        abort();
    _Atomic int canceled = 0;
    sage__queue q;
    if (sage__queue_init(&q, 1u << 20, 4096, 1, &canceled) != 0)
        abort();
    int failures = 0;
    sage__netrecv *recv = NULL;
    if (sage__net_serve(lfd, 1, &q, token, -1, on_fail, &failures, &recv) != 0)
        abort();
    pthread_t td;
    pthread_create(&td, NULL, drain, &q);
    if (sage__unix_connect(path, &fd, err, sizeof err) != 0)
        abort();
    int handshake = size >= 5 && memcmp(data, "HELLO", 5) == 0;
    if (!handshake)
        send_hello(fd);
    feed f = {fd, handshake ? data + 5 : data, handshake ? size - 5 : size};
    pthread_t tw;
    pthread_create(&tw, NULL, writer, &f);
    pthread_join(tw, NULL);
    int fd2 = -1;
    if (handshake && sage__unix_connect(path, &fd2, err, sizeof err) == 0) {
        /* the input may not have authenticated: a real producer that only ends its stream ends the wait */
        send_hello(fd2);
        uint32_t in = 0;
        unsigned char e[SAGE__FRAME_HDR];
        sage__frame_header(e, SAGE__MSG_EOS, 4);
        (void)!send(fd2, e, sizeof e, MSG_NOSIGNAL);
        (void)!send(fd2, &in, 4, MSG_NOSIGNAL);
        shutdown(fd2, SHUT_WR);
    }
    sage__net_serve_join(recv); /* every admitted stream ends: its writer closed */
    atomic_store(&canceled, 1);
    sage__queue_wake(&q);
    pthread_join(td, NULL);
    close(fd);
    if (fd2 >= 0)
        close(fd2);
    sage__queue_destroy(&q);
    return 0;
}
