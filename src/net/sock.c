/* net/sock.c - TCP and Unix socket setup for the JobManager, its clients and the data plane. */
#include "net/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sage/error.h"

int sage__set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return SAGE_ESYS;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? SAGE_ESYS : 0;
}

static int resolve(const char *host, int port, struct addrinfo **res, char *err, size_t err_len)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int e = getaddrinfo(host, ps, &hints, res);
    if (e != 0) {
        snprintf(err, err_len, "cannot resolve %s: %s", host, gai_strerror(e));
        return SAGE_EIO;
    }
    return 0;
}

int sage__tcp_listen(const char *host, int port, int backlog, int *fd, char *err, size_t err_len)
{
    struct addrinfo *res;
    int rc = resolve(host, port, &res, err, err_len);
    if (rc)
        return rc;
    int s = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return SAGE_ESYS;
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, res->ai_addr, res->ai_addrlen) != 0 || listen(s, backlog) != 0) {
        int e = errno;
        if (e == EADDRINUSE)
            snprintf(err, err_len, "%s:%d is already in use", host, port);
        else
            snprintf(err, err_len, "listening on %s:%d: %s", host, port, strerror(e));
        close(s);
        freeaddrinfo(res);
        return SAGE_EIO;
    }
    freeaddrinfo(res);
    *fd = s;
    return 0;
}

int sage__tcp_connect(const char *host, int port, int *fd, char *err, size_t err_len)
{
    struct addrinfo *res;
    int rc = resolve(host, port, &res, err, err_len);
    if (rc)
        return rc;
    int e = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int s = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            e = errno;
            continue;
        }
        if (connect(s, a->ai_addr, a->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            freeaddrinfo(res);
            *fd = s;
            return 0;
        }
        e = errno;
        close(s);
    }
    freeaddrinfo(res);
    snprintf(err, err_len, "cannot connect to %s:%d: %s", host, port, strerror(e));
    return SAGE_EIO;
}

static int unix_addr(const char *path, struct sockaddr_un *sa, char *err, size_t err_len)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        snprintf(err, err_len, "socket path %s is longer than %zu bytes", path, sizeof sa->sun_path - 1);
        return SAGE_ETOOBIG;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

int sage__unix_listen(const char *path, int backlog, int *fd, char *err, size_t err_len)
{
    struct sockaddr_un sa;
    int rc = unix_addr(path, &sa, err, err_len);
    if (rc)
        return rc;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return SAGE_ESYS;
    }
    unlink(path);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s, backlog) != 0) {
        snprintf(err, err_len, "listening on %s: %s", path, strerror(errno));
        close(s);
        return SAGE_EIO;
    }
    *fd = s;
    return 0;
}

int sage__unix_connect(const char *path, int *fd, char *err, size_t err_len)
{
    struct sockaddr_un sa;
    int rc = unix_addr(path, &sa, err, err_len);
    if (rc)
        return rc;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return SAGE_ESYS;
    }
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, err_len, "cannot connect to %s: %s", path, strerror(errno));
        close(s);
        return SAGE_EIO;
    }
    *fd = s;
    return 0;
}

int sage__parse_hostport(const char *s, char *host, size_t host_len, int *port, int default_port)
{
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : strlen(s);
    if (hl == 0 || hl >= host_len)
        return SAGE_EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = default_port;
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535)
            return SAGE_EINVAL;
        *port = (int)p;
    }
    return 0;
}

int sage__read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return got == 0 && n == 0 ? 1 : SAGE_EIO;
        got += (size_t)n;
    }
    return 0;
}

void sage__iov_consume(struct iovec **iov, int *n, size_t w)
{
    while (*n > 0 && w >= (*iov)->iov_len) {
        w -= (*iov)->iov_len;
        (*iov)++;
        (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + w;
        (*iov)->iov_len -= w;
    }
}
