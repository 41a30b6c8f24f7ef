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
    const char *token; /* the job's token, sent in the HELLO */
    int64_t job_id;
    int from_task;      /* our task index, sent in the HELLO */
    size_t window;      /* bytes in flight at most */
    size_t batch_bytes; /* the consumer's standard batch size */
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
/* Once the producer sent its end-of-stream on c: wait until the consumer
 * read everything and closed (reading and dropping its credit meanwhile),
 * so that closing, or exiting, cannot reset the connection and lose the
 * last frames. Bounded: a consumer silent for 10 s, or a cancel, ends the
 * wait. Does nothing for a channel that is not a connection, or before its
 * end-of-stream. Producer thread only. */
void sage__net_finish(sage__chan *c);

/* The receiving end: accept producer connections on listen_fd (a Unix or
 * TCP listening socket) until `expected` of them authenticated, each then
 * served by its own thread that validates frames and pushes batches into q
 * (blocking when q is full: that is what stops the credit). A connection
 * that does not send a HELLO with the job's token within
 * SAGE__NET_HANDSHAKE_MS is closed and does not count: strangers on the
 * listener (garbage, silence, a wrong token, a flood) cannot fail or hang
 * the job; refusals are logged on stderr, at most one line a second. At
 * most `expected` + SAGE__NET_PENDING_MAX connections wait to authenticate
 * at once (when full, the oldest is dropped for a newer one), accepted
 * SAGE__NET_ACCEPT_BURST at a time so that the HELLOs already there are read
 * first: every producer fits even when all of them connect at once. Each
 * reads only its HELLO (at most SAGE__NET_HELLO_MAX bytes). cancel_fd (an eventfd, or -1) ends the wait
 * for producers when the job is canceled. Once every producer is admitted
 * (or the wait ended) the listener is closed: later strangers are refused
 * by the kernel, and those still in its backlog reset. Failures of
 * authenticated producers (a broken or malformed stream) go to fail. The
 * receiver owns listen_fd from here. */
#define SAGE__NET_HANDSHAKE_MS 2000
#define SAGE__NET_PENDING_MAX 32
#define SAGE__NET_ACCEPT_BURST 16
#define SAGE__NET_HELLO_MAX 4096
typedef struct sage__netrecv sage__netrecv;
int sage__net_serve(int listen_fd, int expected, sage__queue *q, const char *token, int cancel_fd,
                    sage__net_fail_fn fail, void *arg, sage__netrecv **out);
/* Wait for every connection to end (after their end-of-stream, or cancel). */
void sage__net_serve_join(sage__netrecv *r);
/* Connections refused so far (did not authenticate). */
unsigned sage__net_refused(const sage__netrecv *r);
/* The first frame of a connection, buf[0..len): > 0 its size when it is a
 * HELLO carrying token; 0 when more bytes are needed; < 0 refused, with the
 * reason in why. */
long sage__net_hello_check(const unsigned char *buf, size_t len, const char *token, char *why, size_t why_len);
/* Every record of a received batch lies inside it: n records in data[0..used). */
int sage__batch_check(const unsigned char *data, size_t used, uint32_t n);

#endif
