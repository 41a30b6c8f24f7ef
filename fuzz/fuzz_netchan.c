/* fuzz/fuzz_netchan.c - fuzzes the receiving end of a data connection: the bytes a producer sends after its HELLO. */
/*
 * The input is what a (possibly hostile or broken) producer writes on an
 * authenticated data connection: DATA, EOS and anything else. It goes
 * through a socket pair into the real receiver (sage__net_serve_conn), whose
 * batches a second thread drains from the consumer's queue. Whatever the
 * bytes, the receiver must end (end-of-stream, a reported failure, or the
 * connection's end) without a crash, and every batch it hands on must hold
 * exactly the records its frame announced, each inside the batch.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/frame.h"
#include "runtime/netchan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

typedef struct feed {
    int fd;
    const uint8_t *data;
    size_t size;
} feed;

static void *writer(void *arg)
{
    feed *f = arg;
    char hello[256];
    int n = snprintf(hello, sizeof hello, "{\"token\":\"%s\",\"role\":\"peer\",\"job_id\":1,\"from_task\":0}", token);
    unsigned char hdr[SAGE__FRAME_HDR];
    sage__frame_header(hdr, SAGE__MSG_HELLO, (uint32_t)n);
    if (send(f->fd, hdr, sizeof hdr, MSG_NOSIGNAL) == (ssize_t)sizeof hdr && send(f->fd, hello, (size_t)n, MSG_NOSIGNAL) == n) {
        size_t off = 0;
        while (off < f->size) {
            ssize_t w = send(f->fd, f->data + off, f->size - off, MSG_NOSIGNAL);
            if (w <= 0)
                break; /* the receiver stopped reading and closed */
            off += (size_t)w;
        }
    }
    shutdown(f->fd, SHUT_WR);
    return NULL;
}

static void *drain(void *arg)
{
    sage__queue *q = arg;
    sage__batch *b;
    while (sage__queue_pop(q, 0, NULL, &b) == 0) {
        if (!b->eos && sage__batch_check(b->data, b->used, b->n) != 0) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    _Atomic int canceled = 0;
    sage__queue q;
    if (sage__queue_init(&q, 1u << 20, 4096, 1, &canceled) != 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    feed f = {sv[0], data, size};
    pthread_t tw, td;
    pthread_create(&tw, NULL, writer, &f);
    pthread_create(&td, NULL, drain, &q);
    int failures = 0;
    sage__net_serve_conn(sv[1], &q, token, on_fail, &failures); /* closes sv[1] */
    pthread_join(tw, NULL);
    atomic_store(&canceled, 1);
    sage__queue_wake(&q);
    pthread_join(td, NULL);
    close(sv[0]);
    sage__queue_destroy(&q);
    return 0;
}
