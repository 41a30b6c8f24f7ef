/* net/frame.c - SAGE's wire framing: header encode/decode, blocking frame send/recv, authentication tokens. */
/*
 * Design note.
 *
 * One header check (check_header) serves both the incremental decoder and the
 * blocking receiver, so a bad frame gets the same message whichever path sees
 * it. The decoder answers "need more" only while the header or the payload is
 * incomplete; once the 16 header bytes are in, a bad header is reported at
 * once (a peer speaking another protocol must not make us wait for, or
 * allocate, a payload it announced). Checks run magic, version, type, flags,
 * length, and each message names the field and the value seen. Nothing here
 * prints: every failure is a code plus a `why`.
 *
 * Send uses sendmsg(MSG_NOSIGNAL) with a two-element iovec, so a closed peer
 * gives EPIPE instead of killing the process with SIGPIPE; the fd must
 * therefore be a socket. Both directions loop over partial transfers and
 * EINTR. On EAGAIN they wait with poll() if the fd is non-blocking, and
 * report a timeout if it is blocking (EAGAIN then means SO_SNDTIMEO /
 * SO_RCVTIMEO expired), so socket timeouts keep working.
 *
 * Tokens are published atomically: the new token is written and fsync'd in a
 * private temporary file (O_CREAT|O_EXCL, 0600) next to the final path and
 * then hard-linked into place; link() fails with EEXIST if a token is already
 * there, and that token is read and kept instead. A reader (or a second
 * creator racing us) therefore never sees a half-written or empty token file,
 * and a crash mid-write cannot leave a file that blocks every later start.
 * Reading opens with O_NOFOLLOW and checks the opened file (fstat), not the
 * path, so the checks apply to the bytes actually read. Token comparison is
 * constant time in the content; secrets are wiped from stack buffers.
 */
#include "net/frame.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sage/error.h"
#include "util/err.h"

/* ------------------------------------------------------------------------- */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------- */

static void clear_why(char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
}

static void put_be16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint16_t get_be16(const unsigned char *p) { return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]); }

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ------------------------------------------------------------------------- */
/* Header                                                                    */
/* ------------------------------------------------------------------------- */

/* decode returns the frame's total size as a long; where long is 32 bits that caps the payload length. */
#if LONG_MAX > 0xFFFFFFFFL
#define LEN_FITS_LONG(len) 1
#else
#define LEN_FITS_LONG(len) ((len) <= (uint32_t)(LONG_MAX - SAGE__FRAME_HDR))
#endif

static const unsigned char frame_magic[4] = {'S', 'A', 'G', 'E'};

void sage__frame_header(unsigned char *hdr, uint16_t type, uint32_t len)
{
    memcpy(hdr, frame_magic, 4);
    put_be16(hdr + 4, (uint16_t)SAGE__PROTO_VERSION);
    put_be16(hdr + 6, type);
    put_be32(hdr + 8, len);
    put_be32(hdr + 12, 0);
}

/* Does a connection that starts with these four bytes look like HTTP? */
static int looks_like_http(const unsigned char *p)
{
    static const char *const methods[] = {"GET ", "POST", "PUT ", "HEAD"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (memcmp(p, methods[i], 4) == 0)
            return 1;
    return 0;
}

/* Validate the 16 header bytes at hdr; fill *f (payload left NULL).
 * 0 when the header is acceptable, SAGE_EPROTO with `why` otherwise. */
static int check_header(const unsigned char *hdr, uint32_t max_frame, sage__frame *f, char *why, size_t why_len)
{
    if (memcmp(hdr, frame_magic, 4) != 0) {
        uint32_t magic = get_be32(hdr);
        if (looks_like_http(hdr))
            sage__fmt(why, why_len, "bad magic 0x%08" PRIx32 " (expected \"SAGE\"): an HTTP request on the SAGE port",
                      magic);
        else
            sage__fmt(why, why_len, "bad magic 0x%08" PRIx32 " (expected \"SAGE\")", magic);
        return SAGE_EPROTO;
    }
    uint16_t version = get_be16(hdr + 4);
    if (version != SAGE__PROTO_VERSION) {
        sage__fmt(why, why_len, "unsupported protocol version %u (this side speaks %u)", (unsigned)version,
                  (unsigned)SAGE__PROTO_VERSION);
        return SAGE_EPROTO;
    }
    uint16_t type = get_be16(hdr + 6);
    if (type == 0 || type > SAGE__MSG_TYPE_MAX) {
        sage__fmt(why, why_len, "unknown message type %u", (unsigned)type);
        return SAGE_EPROTO;
    }
    uint32_t flags = get_be32(hdr + 12);
    if (flags != 0) {
        sage__fmt(why, why_len, "reserved flags 0x%08" PRIx32 " set", flags);
        return SAGE_EPROTO;
    }
    uint32_t len = get_be32(hdr + 8);
    if (len > max_frame || !LEN_FITS_LONG(len)) {
        sage__fmt(why, why_len, "payload of %" PRIu32 " bytes exceeds the %" PRIu32 "-byte frame limit", len,
                  max_frame);
        return SAGE_EPROTO;
    }
    f->version = version;
    f->type = type;
    f->len = len;
    f->flags = flags;
    f->payload = NULL;
    return 0;
}

long sage__frame_decode(const unsigned char *buf, size_t len, uint32_t max_frame, sage__frame *f, char *why,
                        size_t why_len)
{
    clear_why(why, why_len);
    if (len < SAGE__FRAME_HDR)
        return 0;
    sage__frame h;
    int rc = check_header(buf, max_frame, &h, why, why_len);
    if (rc != 0)
        return rc;
    if (len - SAGE__FRAME_HDR < h.len)
        return 0;
    h.payload = buf + SAGE__FRAME_HDR;
    *f = h;
    return (long)SAGE__FRAME_HDR + (long)h.len;
}

int sage__frame_header_decode(const unsigned char *hdr, uint32_t max_frame, sage__frame *f, char *why, size_t why_len)
{
    clear_why(why, why_len);
    int rc = check_header(hdr, max_frame, f, why, why_len);
    if (rc == 0)
        f->payload = NULL;
    return rc;
}

/* ------------------------------------------------------------------------- */
/* Blocking send / recv                                                      */
/* ------------------------------------------------------------------------- */

/* After EAGAIN: wait for the fd if it is non-blocking (returns 0); on a
 * blocking fd EAGAIN means SO_SNDTIMEO/SO_RCVTIMEO expired (returns -1,
 * errno ETIMEDOUT). Other failures: -1 with errno set. */
static int wait_after_eagain(int fd, short events)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    if (!(fl & O_NONBLOCK)) {
        errno = ETIMEDOUT;
        return -1;
    }
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, -1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

int sage__frame_send(int fd, uint16_t type, const void *payload, uint32_t len)
{
    if (fd < 0 || type == 0 || type > SAGE__MSG_TYPE_MAX || (len > 0 && payload == NULL)) {
        errno = EINVAL;
        return SAGE_EINVAL;
    }
    unsigned char hdr[SAGE__FRAME_HDR];
    sage__frame_header(hdr, type, len);

    struct iovec iov[2];
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof hdr;
    iov[1].iov_base = (void *)payload; /* sendmsg does not write through it */
    iov[1].iov_len = len;
    struct iovec *cur = iov;
    size_t ncur = len > 0 ? 2 : 1;

    while (ncur > 0) {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = cur;
        msg.msg_iovlen = ncur;
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_after_eagain(fd, POLLOUT) == 0)
                    continue;
                return errno == ETIMEDOUT ? SAGE_ETIMEDOUT : SAGE_EIO;
            }
            return SAGE_EIO; /* errno says why: EPIPE, ECONNRESET, ENOTSOCK, ... */
        }
        size_t done = (size_t)n;
        while (ncur > 0 && done >= cur->iov_len) {
            done -= cur->iov_len;
            cur++;
            ncur--;
        }
        if (ncur > 0) {
            cur->iov_base = (unsigned char *)cur->iov_base + done;
            cur->iov_len -= done;
        }
    }
    return 0;
}

/* Read exactly want bytes into buf. Returns the number of bytes read before
 * EOF (== want when complete), or -1 with errno set on failure (ETIMEDOUT
 * when a blocking fd's receive timeout expired); *got says how far it came. */
static ssize_t read_full(int fd, unsigned char *buf, size_t want, size_t *got)
{
    *got = 0;
    while (*got < want) {
        size_t chunk = want - *got;
        if (chunk > (size_t)SSIZE_MAX)
            chunk = (size_t)SSIZE_MAX;
        ssize_t n = read(fd, buf + *got, chunk);
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_after_eagain(fd, POLLIN) == 0)
                continue;
        }
        return -1;
    }
    return (ssize_t)*got;
}

static int read_error(int err, size_t got, uint64_t total, const char *what, char *why, size_t why_len)
{
    if (err == ETIMEDOUT) {
        sage__fmt(why, why_len, "timed out waiting for %s (got %zu of %" PRIu64 " bytes)", what, got, total);
        return SAGE_ETIMEDOUT;
    }
    sage__fmt(why, why_len, "read failed while receiving %s: %s", what, strerror(err));
    return SAGE_EIO;
}

int sage__frame_recv(int fd, uint32_t max_frame, sage__frame *f, unsigned char **payload, char *why, size_t why_len)
{
    clear_why(why, why_len);
    if (payload)
        *payload = NULL;
    if (fd < 0 || !f || !payload) {
        sage__fmt(why, why_len, "invalid argument to sage__frame_recv");
        return SAGE_EINVAL;
    }

    unsigned char hdr[SAGE__FRAME_HDR];
    size_t got = 0;
    if (read_full(fd, hdr, sizeof hdr, &got) < 0)
        return read_error(errno, got, SAGE__FRAME_HDR, "a frame header", why, why_len);
    if (got == 0) {
        sage__fmt(why, why_len, "connection closed");
        return SAGE_EIO;
    }
    if (got < sizeof hdr) {
        sage__fmt(why, why_len, "connection closed in the middle of a frame (got %zu of %u header bytes)", got,
                  SAGE__FRAME_HDR);
        return SAGE_EPROTO;
    }

    sage__frame h;
    int rc = check_header(hdr, max_frame, &h, why, why_len);
    if (rc != 0)
        return rc;

    unsigned char *buf = malloc((size_t)h.len + 1);
    if (!buf) {
        sage__fmt(why, why_len, "cannot allocate %" PRIu32 " bytes for a frame payload", h.len);
        return SAGE_ENOMEM;
    }
    uint64_t total = (uint64_t)SAGE__FRAME_HDR + h.len;
    if (read_full(fd, buf, h.len, &got) < 0) {
        int err = errno;
        free(buf);
        return read_error(err, SAGE__FRAME_HDR + got, total, "a frame payload", why, why_len);
    }
    if (got < h.len) {
        free(buf);
        sage__fmt(why, why_len, "connection closed in the middle of a frame (got %" PRIu64 " of %" PRIu64 " bytes)",
                  (uint64_t)SAGE__FRAME_HDR + got, total);
        return SAGE_EPROTO;
    }
    buf[h.len] = '\0';
    h.payload = buf;
    *f = h;
    *payload = buf;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------- */

#define TOKEN_RAW (SAGE__TOKEN_HEX / 2)

static void to_hex(const unsigned char *raw, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

static int fill_random(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const char *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

int sage__token_read(const char *path, char *token, size_t token_len, char *err, size_t err_len)
{
    clear_why(err, err_len);
    if (!path || !*path || !token || token_len < SAGE__TOKEN_HEX + 1) {
        sage__fmt(err, err_len, "sage__token_read: %s", !path || !*path ? "no path given" : "token buffer too small");
        return SAGE_EINVAL;
    }
    token[0] = '\0';

    /* O_NONBLOCK: opening a FIFO planted at the path must not hang; fstat refuses it below. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            sage__fmt(err, err_len, "token file %s does not exist", path);
            return SAGE_ENOTFOUND;
        }
        if (e == ELOOP) {
            sage__fmt(err, err_len, "token file %s is a symbolic link; refusing to follow it", path);
            return SAGE_EAUTH;
        }
        sage__fmt(err, err_len, "cannot open token file %s: %s", path, strerror(e));
        return SAGE_ESYS;
    }

    int rc = 0;
    struct stat st;
    char buf[SAGE__TOKEN_HEX + 2];
    if (fstat(fd, &st) != 0) {
        sage__fmt(err, err_len, "cannot stat token file %s: %s", path, strerror(errno));
        rc = SAGE_ESYS;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        sage__fmt(err, err_len, "token file %s is not a regular file", path);
        rc = SAGE_EAUTH;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        sage__fmt(err, err_len, "token file %s is owned by uid %lu, not by this user (uid %lu)", path,
                  (unsigned long)st.st_uid, (unsigned long)geteuid());
        rc = SAGE_EAUTH;
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        sage__fmt(err, err_len, "token file %s is %s by others (mode %04o); chmod 600 %s", path,
                  (st.st_mode & 044) ? "readable" : "writable", (unsigned)(st.st_mode & 07777), path);
        rc = SAGE_EAUTH;
        goto out;
    }

    /* Read one byte more than the longest valid content to detect a long file. */
    size_t got = 0;
    for (;;) {
        if (got == sizeof buf)
            break;
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        sage__fmt(err, err_len, "cannot read token file %s: %s", path, strerror(errno));
        rc = SAGE_ESYS;
        goto out;
    }
    size_t digits = got;
    if (got == SAGE__TOKEN_HEX + 1 && buf[SAGE__TOKEN_HEX] == '\n')
        digits = SAGE__TOKEN_HEX;
    if (digits != SAGE__TOKEN_HEX) {
        sage__fmt(err, err_len,
                  "token file %s does not hold a token: expected %d hex digits and an optional newline, found %s%zu "
                  "bytes",
                  path, SAGE__TOKEN_HEX, got == sizeof buf ? "more than " : "", got == sizeof buf ? got - 1 : got);
        rc = SAGE_EAUTH;
        goto out;
    }
    for (size_t i = 0; i < SAGE__TOKEN_HEX; i++) {
        char c = buf[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            sage__fmt(err, err_len, "token file %s does not hold a token: byte %zu is not a hex digit", path, i);
            rc = SAGE_EAUTH;
            goto out;
        }
        token[i] = c;
    }
    token[SAGE__TOKEN_HEX] = '\0';

out:
    if (rc != 0)
        explicit_bzero(token, SAGE__TOKEN_HEX + 1);
    explicit_bzero(buf, sizeof buf);
    close(fd);
    return rc;
}

/* The directory part of path, malloc'd: "." for a bare name, "/" for "/name". NULL when out of memory. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

/* Create the parent directory of path (one level) with mode 0700 if it is missing. */
static int make_parent_dir(const char *path, char *err, size_t err_len)
{
    char *dir = dir_of(path);
    if (!dir) {
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    int rc = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sage__fmt(err, err_len, "cannot create directory %s for token file %s: %s", dir, path, strerror(errno));
        rc = SAGE_ESYS;
    }
    free(dir);
    return rc;
}

/* fsync the directory holding path, so a new entry in it is durable (best effort). */
static void sync_parent_dir(const char *path)
{
    char *dir = dir_of(path);
    if (!dir)
        return;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
}

int sage__token_create(const char *path, char *token, size_t token_len, char *err, size_t err_len)
{
    clear_why(err, err_len);
    if (!path || !*path || !token || token_len < SAGE__TOKEN_HEX + 1) {
        sage__fmt(err, err_len, "sage__token_create: %s", !path || !*path ? "no path given" : "token buffer too small");
        return SAGE_EINVAL;
    }
    token[0] = '\0';

    int rc = make_parent_dir(path, err, err_len);
    if (rc != 0)
        return rc;

    /* A token already published at path wins. (Checked again atomically by link() below.) */
    if (access(path, F_OK) == 0 || errno != ENOENT)
        return sage__token_read(path, token, token_len, err, err_len);

    unsigned char raw[TOKEN_RAW];
    char text[SAGE__TOKEN_HEX + 2];
    if (fill_random(raw, sizeof raw) != 0) {
        sage__fmt(err, err_len, "getrandom failed: %s", strerror(errno));
        return SAGE_ESYS;
    }
    to_hex(raw, sizeof raw, text);
    explicit_bzero(raw, sizeof raw);
    text[SAGE__TOKEN_HEX] = '\n';
    text[SAGE__TOKEN_HEX + 1] = '\0';

    /* The private temporary file next to path: path + ".tmp." + 16 random hex digits. */
    size_t plen = strlen(path);
    size_t tlen = plen + sizeof ".tmp." - 1 + 16 + 1;
    char *tmp = malloc(tlen);
    if (!tmp) {
        explicit_bzero(text, sizeof text);
        sage__fmt(err, err_len, "out of memory");
        return SAGE_ENOMEM;
    }
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        unsigned char salt[8];
        char salt_hex[17];
        if (fill_random(salt, sizeof salt) != 0) {
            sage__fmt(err, err_len, "getrandom failed: %s", strerror(errno));
            rc = SAGE_ESYS;
            goto done;
        }
        to_hex(salt, sizeof salt, salt_hex);
        snprintf(tmp, tlen, "%s.tmp.%s", path, salt_hex);
        fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST) {
            sage__fmt(err, err_len, "cannot create token file %s: %s", tmp, strerror(errno));
            rc = SAGE_ESYS;
            goto done;
        }
    }
    if (fd < 0) {
        sage__fmt(err, err_len, "cannot create a temporary file next to token file %s", path);
        rc = SAGE_ESYS;
        goto done;
    }
    /* fchmod: a umask that strips the owner's bits must not leave an unreadable token. */
    if (fchmod(fd, 0600) != 0 || write_full(fd, text, SAGE__TOKEN_HEX + 1) != 0 || fsync(fd) != 0) {
        sage__fmt(err, err_len, "cannot write token file %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        rc = SAGE_ESYS;
        goto done;
    }
    if (close(fd) != 0) {
        sage__fmt(err, err_len, "cannot write token file %s: %s", tmp, strerror(errno));
        unlink(tmp);
        rc = SAGE_ESYS;
        goto done;
    }
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST) { /* someone else published a token first: keep theirs */
            rc = sage__token_read(path, token, token_len, err, err_len);
            goto done;
        }
        sage__fmt(err, err_len, "cannot create token file %s: %s", path, strerror(e));
        rc = SAGE_ESYS;
        goto done;
    }
    unlink(tmp);
    sync_parent_dir(path);
    memcpy(token, text, SAGE__TOKEN_HEX);
    token[SAGE__TOKEN_HEX] = '\0';
    rc = 0;

done:
    explicit_bzero(text, sizeof text);
    free(tmp);
    return rc;
}

int sage__token_random(char *token, size_t token_len)
{
    unsigned char raw[SAGE__TOKEN_HEX / 2];
    if (token_len < SAGE__TOKEN_HEX + 1 || fill_random(raw, sizeof raw) != 0)
        return SAGE_ESYS;
    to_hex(raw, sizeof raw, token);
    return 0;
}

int sage__token_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    /* Every byte position up to the longer length is visited; the shorter
     * string reads as zeros past its end. Lengths enter the same accumulator. */
    volatile unsigned diff = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    diff |= (unsigned)((la ^ lb) != 0);
    /* An empty token never matches: an unset expected token must not accept an empty HELLO. */
    diff |= (unsigned)(n == 0);
    return diff == 0;
}
