/* runtime/netchan.h - channels between processes: batches over stream sockets with credit-based flow control. */
#ifndef SAGE_RUNTIME_NETCHAN_H
#define SAGE_RUNTIME_NETCHAN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/chan.h"
#include "runtime/queue.h"

/* The sending end: a channel (runtime/chan.h) whose push writes the batch
 * as one DATA frame and hands the batch back at once. The receiver grants
 * credit back (CREDIT frames) as it hands batches to its local queue; the
 * sender never has more than `window` bytes unacknowledged, except that one
 * batch may always go when nothing is outstanding (a record larger than the
 * window must still pass). Blocking for credit is backpressure; it wakes on
 * credit or on cancel_fd (an eventfd the job writes when it is canceled,
 * which the channel's wake also writes). One producer thread per sender.
 * fail(arg, why) is told first when the consumer is gone. */
typedef void (*sage__net_fail_fn)(void *arg, const char *why);
typedef struct sage__net_peer {
    const char *token;    /* the job's token, sent in the HELLO */
    int64_t job_id;
    int from_task;        /* our task index, sent in the HELLO */
    size_t window;        /* bytes in flight at most */
    size_t batch_bytes;   /* the consumer's standard batch size */
    int cancel_fd;
    _Atomic int *canceled;
    sage__net_fail_fn fail;
    void *fail_arg;
} sage__net_peer;
/* Connect to a consumer's Unix socket (path) or TCP listener (addr
 * "HOST:PORT", as a worker reports it to the JobManager; TCP_NODELAY) and
 * introduce ourselves. *out is the channel (its destroy closes it).
 * Returns 0, or an error with the reason in err. */
int sage__net_connect(const char *path, const sage__net_peer *p, sage__chan **out, char *err, size_t err_len);
int sage__net_connect_tcp(const char *addr, const sage__net_peer *p, sage__chan **out, char *err, size_t err_len);

/* The receiving end: accept `expected` producer connections on listen_fd
 * (a Unix or TCP listening socket), each served by its own thread that
 * validates frames and pushes batches into q (blocking when q is full: that
 * is what stops the credit). */
typedef struct sage__netrecv sage__netrecv;
int sage__net_serve(int listen_fd, int expected, sage__queue *q, const char *token, sage__net_fail_fn fail, void *arg,
                    sage__netrecv **out);
/* Wait for every connection to end (after their end-of-stream, or cancel). */
void sage__net_serve_join(sage__netrecv *r);
/* One producer connection, already accepted, served on the calling thread
 * until its end-of-stream, an error (reported through fail) or cancel. The
 * first frame must be a HELLO carrying token. Takes ownership of fd. (What
 * each connection thread runs; also the entry point of the fuzz target.) */
void sage__net_serve_conn(int fd, sage__queue *q, const char *token, sage__net_fail_fn fail, void *arg);
/* Every record of a received batch lies inside it: n records in data[0..used). */
int sage__batch_check(const unsigned char *data, size_t used, uint32_t n);

#endif
