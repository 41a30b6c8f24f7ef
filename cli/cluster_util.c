/* cli/cluster_util.c - `sage cluster`'s small helpers: the state dir, messages, files, names, this host. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "util/buf.h"
#include "util/num.h"

char cluster_dir[PATH_MAX];

/* "sage cluster: <message><tail>" on stderr. */
__attribute__((format(printf, 1, 0))) static void say(const char *fmt, va_list ap, const char *tail)
{
    fputs("sage cluster: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

int cluster_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, "\n");
    va_end(ap);
    return EX_FAIL;
}

int cluster_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(fmt, ap, "\n(see: sage cluster --help)\n");
    va_end(ap);
    return EX_USAGE;
}

const char *cluster_path(char *buf, const char *fmt, ...)
{
    int n = snprintf(buf, PATH_MAX, "%s/", cluster_dir);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < PATH_MAX)
        vsnprintf(buf + n, (size_t)(PATH_MAX - n), fmt, ap);
    va_end(ap);
    return buf;
}

void cluster_home(char *out, size_t len)
{
    snprintf(out, len, "%.*s", (int)(strlen(cluster_dir) - strlen("/cluster")), cluster_dir);
}

void cluster_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int cluster_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int cluster_mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Writes content to path through a temporary file and rename. */
int cluster_write_file(const char *path, const char *content, mode_t mode)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(content), off = 0;
    while (off < len) {
        ssize_t w = write(fd, content + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Reads a whole small file (state files, pid files, gres lists); NULL if it cannot or it is over 1 MiB. */
char *cluster_read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    sage__buf b;
    sage__buf_init(&b, 1u << 20);
    for (;;) {
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            break;
        if (n < 0 || sage__buf_append(&b, chunk, (size_t)n) != 0) {
            close(fd);
            sage__buf_free(&b);
            return NULL;
        }
    }
    close(fd);
    return sage__buf_detach(&b, NULL);
}

/* Keeps the previous log of a daemon as <log>.old so the current one shows only this start. */
void cluster_rotate_log(const char *log)
{
    char old[PATH_MAX + 8];
    snprintf(old, sizeof old, "%s.old", log);
    if (cluster_file_exists(log))
        rename(log, old);
}

void cluster_short_hostname(char *out, size_t len)
{
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !h[0])
        snprintf(h, sizeof h, "localhost");
    h[strcspn(h, ".")] = '\0';
    snprintf(out, len, "%.63s", h); /* Slurm node names: up to 63 here (cluster_valid_name) */
}

int cluster_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return 0;
    return 1;
}

/* Slurm's configuration files take the state dir path unquoted, and the worker passes it inside
 * --conf-server (see cluster_start_worker): no blanks and none of the characters those parsers split on. */
int cluster_valid_dir_path(const char *s)
{
    if (s[0] != '/')
        return 0;
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || strchr(":#\"'=,\\", *p))
            return 0;
    return 1;
}

int cluster_number(const char *s, long lo, long hi, long *out)
{
    int64_t v;
    if (sage__parse_i64(s, lo, hi, &v) != 0)
        return -1;
    *out = (long)v;
    return 0;
}

int cluster_have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    char dir[PATH_MAX];
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, p, name);
        if (access(dir, X_OK) == 0)
            return 1;
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

int cluster_need_programs(const char *const *names)
{
    for (; *names; names++)
        if (!cluster_have_program(*names))
            return cluster_fail("%s not found in PATH: install the Debian packages slurm-wlm slurmctld slurmd "
                                "munge slurm-client (scripts/deps.sh)",
                                *names);
    return 0;
}

int cluster_need_root(void)
{
    if (geteuid() != 0)
        return cluster_fail("the Slurm daemons run as root here (SlurmUser=root): run this as root");
    return 0;
}

int cluster_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_ANY)};
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The IPv4 address the host name resolves to, else 127.0.0.1. */
void cluster_default_address(char *out, size_t len)
{
    char host[256] = "";
    snprintf(out, len, "127.0.0.1");
    if (gethostname(host, sizeof host - 1) != 0)
        return;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, out, (socklen_t)len);
        freeaddrinfo(ai);
    }
}

void cluster_text_init(cluster_text *t)
{
    sage__buf_init(&t->b, 64u << 10);
    t->failed = 0;
}

void cluster_textf(cluster_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sage__buf_reserve(&t->b, (size_t)n) != 0) {
        t->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)t->b.p + t->b.len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->b.len += (size_t)n;
}

int cluster_text_write(cluster_text *t, const char *path)
{
    int rc = t->failed ? -1 : cluster_write_file(path, sage__buf_cstr(&t->b), 0644);
    int failed = t->failed;
    sage__buf_free(&t->b);
    if (failed)
        return cluster_fail("cannot write %s: its text would exceed %zu bytes", path, t->b.max);
    if (rc != 0)
        return cluster_fail("cannot write %s: %s", path, strerror(errno));
    return 0;
}

int cluster_node_name(const cluster_opts *o, char *name, size_t len)
{
    if (o->name)
        snprintf(name, len, "%s", o->name);
    else
        cluster_short_hostname(name, len);
    if (!cluster_valid_name(name))
        return cluster_usage("node name '%s' is not usable: give one with --name (letters, digits, - _ .)", name);
    return 0;
}
