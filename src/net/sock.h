/* net/sock.h - socket helpers: TCP and Unix listen/connect with errors that name the address. */
#ifndef SAGE_NET_SOCK_H
#define SAGE_NET_SOCK_H

#include <stddef.h>
#include <sys/uio.h>

/* Listen on host:port (TCP, SO_REUSEADDR, CLOEXEC). Port in use is reported
 * as SAGE_EIO with "127.0.0.1:19001 is already in use". */
int sage__tcp_listen(const char *host, int port, int backlog, int *fd, char *err, size_t err_len);
/* Connect (blocking) to host:port; host may be a name or an address. */
int sage__tcp_connect(const char *host, int port, int *fd, char *err, size_t err_len);
/* Unix stream sockets: listen creates the socket file (removing a stale one). */
int sage__unix_listen(const char *path, int backlog, int *fd, char *err, size_t err_len);
int sage__unix_connect(const char *path, int *fd, char *err, size_t err_len);
int sage__set_nonblock(int fd, int on);
/* Read exactly len bytes from a blocking fd (EINTR retried): 0; 1 when the peer closed before the first
 * byte (a clean end between messages); SAGE_EIO when it failed or closed in the middle. */
int sage__read_full(int fd, void *buf, size_t len);
/* Drop the first w bytes (that a write took) from the n buffers at *iov: *iov and *n move past the ones it
 * took whole, and the next one starts later. */
void sage__iov_consume(struct iovec **iov, int *n, size_t w);
/* Split "host:port" (port optional: default_port). */
int sage__parse_hostport(const char *s, char *host, size_t host_len, int *port, int default_port);

#endif
