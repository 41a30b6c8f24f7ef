/* runtime/netchan.h - channels between processes: batches over stream sockets with credit-based flow control. */
#ifndef SAGE_RUNTIME_NETCHAN_H
#define SAGE_RUNTIME_NETCHAN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/queue.h"

/* The sending end, attached to a sage__queue (q->remote) so that the
 * producer's code path is the same as for a local consumer: a push writes
 * the batch as one DATA frame and recycles it at once. The receiver grants
 * credit back (CREDIT frames) as it hands batches to its local queue; the
 * sender never has more than `window` bytes unacknowledged, except that one
 * batch may always go when nothing is outstanding (a record larger than the
 * window must still pass). Blocking for credit is backpressure; it wakes on
 * credit or on the job's cancel eventfd. One producer thread per sender. */
typedef struct sage__netsend {
    int fd;
    int cancel_fd;      /* eventfd, readable once the job is canceled */
    int64_t credit;     /* bytes the receiver still accepts */
    uint64_t outstanding;
    unsigned char rx[64];
    size_t rxlen;
    void (*fail)(void *arg, const char *why); /* told first when the consumer is gone */
    void *fail_arg;
} sage__netsend;

/* Connect to a consumer's Unix socket and introduce ourselves. */
typedef void (*sage__net_fail_fn)(void *arg, const char *why);
int sage__net_connect(sage__queue *q, const char *path, const char *token, int64_t job_id, int from_task,
                      size_t window, size_t batch_bytes, int cancel_fd, _Atomic int *canceled, sage__net_fail_fn fail, void *fail_arg,
                      char *err, size_t err_len);
/* The same over TCP to a consumer listening on addr ("HOST:PORT", as a
 * worker reports it to the JobManager); the protocol on the connection is
 * identical (HELLO, DATA/EOS, CREDIT), with TCP_NODELAY on both ends. */
int sage__net_connect_tcp(sage__queue *q, const char *addr, const char *token, int64_t job_id, int from_task,
                          size_t window, size_t batch_bytes, int cancel_fd, _Atomic int *canceled,
                          sage__net_fail_fn fail, void *fail_arg, char *err, size_t err_len);
int sage__net_push(sage__queue *q, sage__batch *b, sage__batch **fresh);
void sage__net_close(sage__queue *q);

/* The receiving end: accept `expected` producer connections on listen_fd
 * (a Unix or TCP listening socket),
 * each served by its own thread that validates frames and pushes batches
 * into q (blocking when q is full: that is what stops the credit). */
typedef struct sage__netrecv sage__netrecv;
int sage__net_serve(int listen_fd, int expected, sage__queue *q, const char *token, sage__net_fail_fn fail, void *arg,
                    sage__netrecv **out);
/* Wait for every connection to end (after their end-of-stream, or cancel). */
void sage__net_serve_join(sage__netrecv *r);

#endif
