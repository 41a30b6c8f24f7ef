/* tests/unit/test_frame.c - net/frame: decoder table, header round trip, tokens, send/recv over socketpairs. */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "net/frame.h"
#include "sage/error.h"

/* ------------------------------------------------------------------------- */
/* Decoder table                                                             */
/* ------------------------------------------------------------------------- */

#define BIG 2000000u

typedef struct dcase {
    const char *name;
    const char *raw; /* when set: the input is these raw bytes (raw_len of them), fields below unused */
    size_t raw_len;
    const char *magic; /* 4 bytes */
    unsigned version, type;
    uint32_t len, flags;
    size_t avail; /* payload bytes actually present */
    size_t extra; /* bytes after the payload (the start of a next frame) */
    uint32_t max;
    long want; /* > 0 frame size, 0 need more, < 0 error code */
    const char *why_exact;
    const char *why_has;
} dcase;

#define CTL SAGE__CONTROL_FRAME_MAX
#define HTTP_GET "GET / HTTP/1.1\r\nHost: localhost:7077\r\n\r\n"
#define HTTP_POST "POST /api/jobs HTTP/1.1\r\nContent-Length: 0\r\n\r\n"

static const dcase dcases[] = {
    /* valid frames of every type, empty and non-empty payloads */
    {"hello", NULL, 0, "SAGE", 1, 1, 20, 0, 20, 0, CTL, 36, NULL, NULL},
    {"hello_empty", NULL, 0, "SAGE", 1, 1, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    {"ok", NULL, 0, "SAGE", 1, 2, 11, 0, 11, 0, CTL, 27, NULL, NULL},
    {"ok_empty", NULL, 0, "SAGE", 1, 2, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    {"error", NULL, 0, "SAGE", 1, 3, 40, 0, 40, 0, CTL, 56, NULL, NULL},
    {"error_empty", NULL, 0, "SAGE", 1, 3, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    {"request", NULL, 0, "SAGE", 1, 4, 17, 0, 17, 0, CTL, 33, NULL, NULL},
    {"request_empty", NULL, 0, "SAGE", 1, 4, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    {"event", NULL, 0, "SAGE", 1, 5, 300, 0, 300, 0, CTL, 316, NULL, NULL},
    {"event_empty", NULL, 0, "SAGE", 1, 5, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    {"data", NULL, 0, "SAGE", 1, 6, 5000, 0, 5000, 0, SAGE__DATA_FRAME_MAX, 5016, NULL, NULL},
    {"data_empty", NULL, 0, "SAGE", 1, 6, 0, 0, 0, 0, SAGE__DATA_FRAME_MAX, 16, NULL, NULL},
    {"eos", NULL, 0, "SAGE", 1, 7, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    {"eos_payload", NULL, 0, "SAGE", 1, 7, 8, 0, 8, 0, CTL, 24, NULL, NULL},
    {"credit", NULL, 0, "SAGE", 1, 8, 4, 0, 4, 0, CTL, 20, NULL, NULL},
    {"credit_empty", NULL, 0, "SAGE", 1, 8, 0, 0, 0, 0, CTL, 16, NULL, NULL},
    /* trailing bytes (a next frame) do not change the answer */
    {"trailing_bytes", NULL, 0, "SAGE", 1, 4, 10, 0, 10, 7, CTL, 26, NULL, NULL},
    /* incomplete payload: need more */
    {"payload_missing", NULL, 0, "SAGE", 1, 4, 10, 0, 0, 0, CTL, 0, NULL, NULL},
    {"payload_short_by_one", NULL, 0, "SAGE", 1, 4, 10, 0, 9, 0, CTL, 0, NULL, NULL},
    {"payload_half", NULL, 0, "SAGE", 1, 6, 5000, 0, 2500, 0, SAGE__DATA_FRAME_MAX, 0, NULL, NULL},
    /* magic */
    {"bad_magic", NULL, 0, "GET ", 1, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "bad magic 0x47455420 (expected \"SAGE\"): an HTTP request on the SAGE port", NULL},
    {"bad_magic_one_bit", NULL, 0, "SAGF", 1, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "bad magic 0x53414746 (expected \"SAGE\")", NULL},
    {"bad_magic_lowercase", NULL, 0, "sage", 1, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "bad magic 0x73616765 (expected \"SAGE\")", NULL},
    {"bad_magic_zero", NULL, 0, "\0\0\0\0", 1, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "bad magic 0x00000000 (expected \"SAGE\")", NULL},
    {"http_get", HTTP_GET, sizeof HTTP_GET - 1, NULL, 0, 0, 0, 0, 0, 0, CTL, SAGE_EPROTO, NULL,
     "an HTTP request on the SAGE port"},
    {"http_post", HTTP_POST, sizeof HTTP_POST - 1, NULL, 0, 0, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "bad magic 0x504f5354 (expected \"SAGE\"): an HTTP request on the SAGE port", NULL},
    {"tls_hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00", 16, NULL, 0, 0, 0, 0, 0, 0, CTL,
     SAGE_EPROTO, "bad magic 0x16030102 (expected \"SAGE\")", NULL},
    /* version */
    {"version_0", NULL, 0, "SAGE", 0, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "unsupported protocol version 0 (this side speaks 1)", NULL},
    {"version_2", NULL, 0, "SAGE", 2, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "unsupported protocol version 2 (this side speaks 1)", NULL},
    {"version_7", NULL, 0, "SAGE", 7, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "unsupported protocol version 7 (this side speaks 1)", NULL},
    {"version_ffff", NULL, 0, "SAGE", 0xFFFF, 1, 0, 0, 0, 0, CTL, SAGE_EPROTO,
     "unsupported protocol version 65535 (this side speaks 1)", NULL},
    /* type */
    {"type_0", NULL, 0, "SAGE", 1, 0, 0, 0, 0, 0, CTL, SAGE_EPROTO, "unknown message type 0", NULL},
    {"type_13", NULL, 0, "SAGE", 1, 13, 0, 0, 0, 0, CTL, SAGE_EPROTO, "unknown message type 13", NULL},
    {"type_99", NULL, 0, "SAGE", 1, 99, 0, 0, 0, 0, CTL, SAGE_EPROTO, "unknown message type 99", NULL},
    {"type_ffff", NULL, 0, "SAGE", 1, 0xFFFF, 0, 0, 0, 0, CTL, SAGE_EPROTO, "unknown message type 65535", NULL},
    {"type_0100", NULL, 0, "SAGE", 1, 0x0100, 0, 0, 0, 0, CTL, SAGE_EPROTO, "unknown message type 256", NULL},
    /* flags */
    {"flags_1", NULL, 0, "SAGE", 1, 4, 0, 1, 0, 0, CTL, SAGE_EPROTO, "reserved flags 0x00000001 set", NULL},
    {"flags_high", NULL, 0, "SAGE", 1, 4, 0, 0x80000000u, 0, 0, CTL, SAGE_EPROTO, "reserved flags 0x80000000 set",
     NULL},
    /* length against the limit */
    {"len_eq_max", NULL, 0, "SAGE", 1, 6, 64, 0, 64, 0, 64, 80, NULL, NULL},
    {"len_max_plus_1", NULL, 0, "SAGE", 1, 6, 65, 0, 65, 0, 64, SAGE_EPROTO,
     "payload of 65 bytes exceeds the 64-byte frame limit", NULL},
    {"len_ctl_max_need_more", NULL, 0, "SAGE", 1, 4, CTL, 0, 0, 0, CTL, 0, NULL, NULL},
    {"len_ctl_max_plus_1", NULL, 0, "SAGE", 1, 4, CTL + 1, 0, 0, 0, CTL, SAGE_EPROTO,
     "payload of 1048577 bytes exceeds the 1048576-byte frame limit", NULL},
    {"len_2000000", NULL, 0, "SAGE", 1, 4, BIG, 0, 0, 0, CTL, SAGE_EPROTO,
     "payload of 2000000 bytes exceeds the 1048576-byte frame limit", NULL},
    {"len_u32_max", NULL, 0, "SAGE", 1, 6, 0xFFFFFFFFu, 0, 0, 0, SAGE__DATA_FRAME_MAX, SAGE_EPROTO,
     "payload of 4294967295 bytes exceeds the 67174400-byte frame limit", NULL},
    {"max_0_empty_ok", NULL, 0, "SAGE", 1, 7, 0, 0, 0, 0, 0, 16, NULL, NULL},
    {"max_0_one_byte", NULL, 0, "SAGE", 1, 7, 1, 0, 1, 0, 0, SAGE_EPROTO,
     "payload of 1 bytes exceeds the 0-byte frame limit", NULL},
    /* a bad header is reported without waiting for its payload */
    {"bad_version_no_payload_yet", NULL, 0, "SAGE", 2, 4, 100, 0, 0, 0, CTL, SAGE_EPROTO,
     "unsupported protocol version 2 (this side speaks 1)", NULL},
    {"bad_type_partial_payload", NULL, 0, "SAGE", 1, 42, 100, 0, 30, 0, CTL, SAGE_EPROTO, "unknown message type 42",
     NULL},
    /* several faults: the first field in header order is named */
    {"magic_before_version", NULL, 0, "XAGE", 9, 0, BIG, 1, 0, 0, CTL, SAGE_EPROTO, NULL, "bad magic"},
    {"version_before_type", NULL, 0, "SAGE", 9, 0, BIG, 1, 0, 0, CTL, SAGE_EPROTO, NULL, "protocol version 9"},
    {"type_before_flags", NULL, 0, "SAGE", 1, 0, BIG, 1, 0, 0, CTL, SAGE_EPROTO, NULL, "message type 0"},
    {"flags_before_length", NULL, 0, "SAGE", 1, 4, BIG, 2, 0, 0, CTL, SAGE_EPROTO, NULL, "reserved flags 0x00000002"},
};

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A raw header with arbitrary field values. */
static void raw_header(unsigned char *h, const char *magic, unsigned version, unsigned type, uint32_t len,
                       uint32_t flags)
{
    memcpy(h, magic, 4);
    put16(h + 4, version);
    put16(h + 6, type);
    put32(h + 8, len);
    put32(h + 12, flags);
}

/* Build a case's input in an exact-size allocation; *n gets its size. */
static unsigned char *build(const dcase *c, size_t *n)
{
    if (c->raw) {
        unsigned char *b = malloc(c->raw_len);
        if (b)
            memcpy(b, c->raw, c->raw_len);
        *n = c->raw_len;
        return b;
    }
    *n = SAGE__FRAME_HDR + c->avail + c->extra;
    unsigned char *b = malloc(*n);
    if (!b)
        return NULL;
    raw_header(b, c->magic, c->version, c->type, c->len, c->flags);
    for (size_t i = 0; i < c->avail + c->extra; i++)
        b[SAGE__FRAME_HDR + i] = (unsigned char)('a' + i % 26);
    return b;
}

static void test_decode_table(void)
{
    CHECK(sizeof dcases / sizeof dcases[0] >= 25);
    for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++) {
        const dcase *c = &dcases[i];
        size_t n;
        unsigned char *b = build(c, &n);
        CHECK(b != NULL);
        if (!b)
            continue;
        sage__frame f;
        memset(&f, 0xAB, sizeof f);
        char why[256];
        snprintf(why, sizeof why, "stale"); /* must be cleared or replaced */
        long r = sage__frame_decode(b, n, c->max, &f, why, sizeof why);
        if (r != c->want)
            fprintf(stderr, "  case %s: got %ld (%s), want %ld\n", c->name, r, why, c->want);
        CHECK_INT(r, c->want);
        if (c->want > 0 && r == c->want) {
            CHECK_INT(f.version, 1);
            CHECK_INT(f.type, c->type);
            CHECK_INT(f.len, c->len);
            CHECK_INT(f.flags, 0);
            CHECK(f.payload == b + SAGE__FRAME_HDR);
            if (c->len > 0)
                CHECK(f.payload[0] == 'a');
            CHECK_STR(why, "");
        } else if (c->want == 0) {
            CHECK_STR(why, "");
        } else {
            if (c->why_exact)
                CHECK_STR(why, c->why_exact);
            if (c->why_has)
                CHECK_CONTAINS(why, c->why_has);
            /* The verdict does not depend on the message buffer. */
            char small[10];
            CHECK_INT(sage__frame_decode(b, n, c->max, &f, NULL, 0), r);
            CHECK_INT(sage__frame_decode(b, n, c->max, &f, small, sizeof small), r);
            CHECK(memchr(small, '\0', sizeof small) != NULL);
            CHECK_INT(strlen(small), sizeof small - 1);
        }
        free(b);
    }
}

/* Every prefix of the 16 header bytes is "need more", valid or not (the
 * decoder judges a header only once it is complete). */
static void test_truncated_header(void)
{
    unsigned char good[SAGE__FRAME_HDR + 3], bad[SAGE__FRAME_HDR];
    sage__frame_header(good, SAGE__MSG_REQUEST, 3);
    memcpy(good + SAGE__FRAME_HDR, "abc", 3);
    raw_header(bad, "GET ", 9, 0, 0xFFFFFFFFu, 7);
    for (size_t n = 0; n < SAGE__FRAME_HDR; n++) {
        sage__frame f;
        char why[128] = "stale";
        unsigned char *copy = malloc(n ? n : 1); /* exact size: a read past n is an error under ASan/valgrind */
        CHECK(copy != NULL);
        if (!copy)
            return;
        memcpy(copy, good, n);
        CHECK_INT(sage__frame_decode(copy, n, CTL, &f, why, sizeof why), 0);
        CHECK_STR(why, "");
        memcpy(copy, bad, n);
        CHECK_INT(sage__frame_decode(copy, n, CTL, &f, why, sizeof why), 0);
        free(copy);
    }
    sage__frame f;
    CHECK_INT(sage__frame_decode(NULL, 0, CTL, &f, NULL, 0), 0);
    /* with the whole header, but not the payload */
    for (size_t n = SAGE__FRAME_HDR; n < sizeof good; n++)
        CHECK_INT(sage__frame_decode(good, n, CTL, &f, NULL, 0), 0);
    CHECK_INT(sage__frame_decode(good, sizeof good, CTL, &f, NULL, 0), (long)sizeof good);
}

static void test_back_to_back(void)
{
    static const char p1[] = "{\"op\":\"job_list\"}";
    static const char p2[] = "{\"ok\":true}";
    unsigned char buf[2 * SAGE__FRAME_HDR + sizeof p1 + sizeof p2 + SAGE__FRAME_HDR];
    size_t n = 0;
    sage__frame_header(buf + n, SAGE__MSG_REQUEST, sizeof p1 - 1);
    n += SAGE__FRAME_HDR;
    memcpy(buf + n, p1, sizeof p1 - 1);
    n += sizeof p1 - 1;
    sage__frame_header(buf + n, SAGE__MSG_OK, sizeof p2 - 1);
    n += SAGE__FRAME_HDR;
    memcpy(buf + n, p2, sizeof p2 - 1);
    n += sizeof p2 - 1;
    sage__frame_header(buf + n, SAGE__MSG_EOS, 0);
    n += SAGE__FRAME_HDR;

    sage__frame f;
    char why[128];
    long r = sage__frame_decode(buf, n, CTL, &f, why, sizeof why);
    CHECK_INT(r, SAGE__FRAME_HDR + sizeof p1 - 1);
    CHECK_INT(f.type, SAGE__MSG_REQUEST);
    CHECK(f.len == sizeof p1 - 1 && memcmp(f.payload, p1, f.len) == 0);
    size_t off = (size_t)r;
    r = sage__frame_decode(buf + off, n - off, CTL, &f, why, sizeof why);
    CHECK_INT(r, SAGE__FRAME_HDR + sizeof p2 - 1);
    CHECK_INT(f.type, SAGE__MSG_OK);
    CHECK(f.len == sizeof p2 - 1 && memcmp(f.payload, p2, f.len) == 0);
    CHECK(f.payload == buf + off + SAGE__FRAME_HDR);
    off += (size_t)r;
    r = sage__frame_decode(buf + off, n - off, CTL, &f, why, sizeof why);
    CHECK_INT(r, SAGE__FRAME_HDR);
    CHECK_INT(f.type, SAGE__MSG_EOS);
    CHECK_INT(f.len, 0);
    off += (size_t)r;
    CHECK_INT(off, n);
    CHECK_INT(sage__frame_decode(buf + off, 0, CTL, &f, why, sizeof why), 0);
    /* a stream that ends 9 bytes into the second header: the first frame, then need more */
    CHECK_INT(sage__frame_decode(buf, SAGE__FRAME_HDR + sizeof p1 - 1 + 9, CTL, &f, why, sizeof why),
              SAGE__FRAME_HDR + sizeof p1 - 1);
    CHECK_INT(sage__frame_decode(buf + SAGE__FRAME_HDR + sizeof p1 - 1, 9, CTL, &f, why, sizeof why), 0);
}

static void test_header_round_trip(void)
{
    /* golden bytes */
    unsigned char h[SAGE__FRAME_HDR];
    sage__frame_header(h, SAGE__MSG_REQUEST, 0x01020304u);
    static const unsigned char want[SAGE__FRAME_HDR] = {'S', 'A', 'G', 'E', 0, 1, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0};
    CHECK(memcmp(h, want, sizeof want) == 0);

    static const uint32_t lens[] = {0, 1, 255, 256, 65535, 65536, 1u << 20, 0x7FFFFFFFu, 0xFFFFFFFFu};
    for (unsigned t = 1; t <= SAGE__MSG_TYPE_MAX; t++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            sage__frame_header(h, (uint16_t)t, lens[i]);
            sage__frame f;
            char why[128];
            long r = sage__frame_decode(h, sizeof h, 0xFFFFFFFFu, &f, why, sizeof why);
            if (lens[i] == 0) {
                CHECK_INT(r, SAGE__FRAME_HDR);
                CHECK_INT(f.type, t);
                CHECK_INT(f.len, 0);
                CHECK_INT(f.version, SAGE__PROTO_VERSION);
            } else {
                CHECK_INT(r, 0); /* header fine, payload still to come */
            }
            /* the fields are where the layout says */
            CHECK_INT(((unsigned)h[6] << 8) | h[7], t);
            CHECK_INT(((uint32_t)h[8] << 24) | ((uint32_t)h[9] << 16) | ((uint32_t)h[10] << 8) | h[11], lens[i]);
        }
    }
    /* a real round trip with payload */
    static const char p[] = "{\"token\":\"x\",\"role\":\"client\"}";
    unsigned char buf[SAGE__FRAME_HDR + sizeof p];
    sage__frame_header(buf, SAGE__MSG_HELLO, sizeof p - 1);
    memcpy(buf + SAGE__FRAME_HDR, p, sizeof p - 1);
    sage__frame f;
    CHECK_INT(sage__frame_decode(buf, SAGE__FRAME_HDR + sizeof p - 1, CTL, &f, NULL, 0),
              SAGE__FRAME_HDR + sizeof p - 1);
    CHECK_INT(f.type, SAGE__MSG_HELLO);
    CHECK(memcmp(f.payload, p, sizeof p - 1) == 0);
}

/* ------------------------------------------------------------------------- */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sage-test-frame-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int is_token(const char *t)
{
    if (strlen(t) != SAGE__TOKEN_HEX)
        return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static void write_file(const char *path, const char *content, size_t n, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(write(fd, content, n) == (ssize_t)n);
    CHECK(fchmod(fd, mode) == 0);
    close(fd);
}

static const char hex64[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void test_token_create_read(void)
{
    make_tmpdir();
    char dir[512], path[600], tok[SAGE__TOKEN_HEX + 1], tok2[SAGE__TOKEN_HEX + 1], err[512];
    snprintf(dir, sizeof dir, "%s/conf", tmpdir); /* missing: created 0700 */
    snprintf(path, sizeof path, "%s/token", dir);

    CHECK_INT(sage__token_create(path, tok, sizeof tok, err, sizeof err), 0);
    CHECK_STR(err, "");
    CHECK(is_token(tok));
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
    CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
    CHECK_INT(st.st_size, SAGE__TOKEN_HEX + 1);
    CHECK_INT(count_entries(dir), 1); /* no temporary file left behind */

    /* the file holds the token and a newline */
    char content[128] = {0};
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(read(fd, content, sizeof content - 1) == SAGE__TOKEN_HEX + 1);
    close(fd);
    CHECK(memcmp(content, tok, SAGE__TOKEN_HEX) == 0 && content[SAGE__TOKEN_HEX] == '\n');

    CHECK_INT(sage__token_read(path, tok2, sizeof tok2, err, sizeof err), 0);
    CHECK_STR(tok2, tok);
    CHECK_STR(err, "");

    /* existing token kept */
    memset(tok2, 0, sizeof tok2);
    CHECK_INT(sage__token_create(path, tok2, sizeof tok2, err, sizeof err), 0);
    CHECK_STR(tok2, tok);
    CHECK_INT(count_entries(dir), 1);

    /* another path gets another token */
    char path2[600];
    snprintf(path2, sizeof path2, "%s/token2", tmpdir);
    CHECK_INT(sage__token_create(path2, tok2, sizeof tok2, err, sizeof err), 0);
    CHECK(is_token(tok2));
    CHECK(strcmp(tok, tok2) != 0);

    /* a relative path in the current directory */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(tmpdir) == 0);
    CHECK_INT(sage__token_create("relative-token", tok2, sizeof tok2, err, sizeof err), 0);
    CHECK_INT(sage__token_read("relative-token", tok, sizeof tok, err, sizeof err), 0);
    CHECK_STR(tok, tok2);
    CHECK(chdir(cwd) == 0);

    /* buffers too small, missing path */
    char small[SAGE__TOKEN_HEX];
    CHECK_INT(sage__token_read(path, small, sizeof small, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(sage__token_create(path, small, sizeof small, err, sizeof err), SAGE_EINVAL);
    CHECK_INT(sage__token_read(NULL, tok, sizeof tok, err, sizeof err), SAGE_EINVAL);

    /* a missing file */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope", tmpdir);
    CHECK_INT(sage__token_read(missing, tok, sizeof tok, err, sizeof err), SAGE_ENOTFOUND);
    CHECK_CONTAINS(err, "does not exist");

    /* a parent two levels down is not created (one level only) */
    char deep[600];
    snprintf(deep, sizeof deep, "%s/a/b/token", tmpdir);
    CHECK_INT(sage__token_create(deep, tok, sizeof tok, err, sizeof err), SAGE_ESYS);
    CHECK_CONTAINS(err, "cannot create directory");
    rm_rf(tmpdir);
}

static void test_token_refused(void)
{
    make_tmpdir();
    char path[600], tok[SAGE__TOKEN_HEX + 1], err[1024], want[2048];
    snprintf(path, sizeof path, "%s/token", tmpdir);

    /* readable by others: the exact message, with the fix */
    write_file(path, hex64, SAGE__TOKEN_HEX, 0644);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    snprintf(want, sizeof want, "token file %s is readable by others (mode 0644); chmod 600 %s", path, path);
    CHECK_STR(err, want);
    CHECK_STR(tok, ""); /* nothing leaked into the output on failure */
    /* create keeps (and refuses) the existing file rather than replacing it */
    CHECK_INT(sage__token_create(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_STR(err, want);
    write_file(path, hex64, SAGE__TOKEN_HEX, 0640);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "readable by others (mode 0640)");
    write_file(path, hex64, SAGE__TOKEN_HEX, 0620);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "writable by others (mode 0620); chmod 600");
    write_file(path, hex64, SAGE__TOKEN_HEX, 0601);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    write_file(path, hex64, SAGE__TOKEN_HEX, 0400);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), 0);
    CHECK_STR(tok, hex64);

    /* content */
    static const struct {
        const char *name, *content;
        int ok;
    } contents[] = {
        {"exact", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1},
        {"newline", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 1},
        {"uppercase", "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", 1},
        {"empty", "", 0},
        {"short", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", 0},
        {"short_newline", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 0},
        {"long", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", 0},
        {"two_newlines", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n", 0},
        {"crlf", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 0},
        {"trailing_space", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ", 0},
        {"leading_space", " 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", 0},
        {"non_hex", "0123456789abcdefg123456789abcdef0123456789abcdef0123456789abcdef", 0},
        {"non_hex_last", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdez", 0},
        {"much_longer",
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         0},
    };
    for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++) {
        write_file(path, contents[i].content, strlen(contents[i].content), 0600);
        memset(tok, 'x', sizeof tok);
        int rc = sage__token_read(path, tok, sizeof tok, err, sizeof err);
        if ((rc == 0) != contents[i].ok)
            fprintf(stderr, "  content %s: rc %d (%s)\n", contents[i].name, rc, err);
        CHECK_INT(rc, contents[i].ok ? 0 : SAGE_EAUTH);
        if (contents[i].ok) {
            CHECK_STR(tok, hex64); /* uppercase is normalised */
        } else {
            CHECK_CONTAINS(err, "does not hold a token");
            CHECK_STR(tok, "");
        }
    }
    write_file(path, "0123456789abcdefg", 17, 0600);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "found 17 bytes");
    write_file(path, contents[7].content, strlen(contents[7].content), 0600);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "found more than 65 bytes");
    write_file(path, contents[11].content, strlen(contents[11].content), 0600);
    CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "byte 16 is not a hex digit");

    /* a symlink to a perfectly good token is refused (O_NOFOLLOW) */
    char target[600], link_path[600];
    snprintf(target, sizeof target, "%s/real", tmpdir);
    snprintf(link_path, sizeof link_path, "%s/link", tmpdir);
    write_file(target, hex64, SAGE__TOKEN_HEX, 0600);
    CHECK(symlink(target, link_path) == 0);
    CHECK_INT(sage__token_read(target, tok, sizeof tok, err, sizeof err), 0);
    CHECK_INT(sage__token_read(link_path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "symbolic link");
    CHECK_INT(sage__token_create(link_path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "symbolic link");
    /* a dangling symlink is not followed to create a file elsewhere */
    char dangling[600], dangling_target[600];
    snprintf(dangling, sizeof dangling, "%s/dangling", tmpdir);
    snprintf(dangling_target, sizeof dangling_target, "%s/elsewhere", tmpdir);
    CHECK(symlink(dangling_target, dangling) == 0);
    CHECK_INT(sage__token_create(dangling, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK(access(dangling_target, F_OK) != 0);

    /* not a regular file: a directory, a FIFO (must not hang) */
    char sub[600], fifo[600];
    snprintf(sub, sizeof sub, "%s/dir", tmpdir);
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    CHECK(mkdir(sub, 0700) == 0);
    CHECK_INT(sage__token_read(sub, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "not a regular file");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK_INT(sage__token_read(fifo, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
    CHECK_CONTAINS(err, "not a regular file");

    /* owned by someone else (only testable as root) */
    if (geteuid() == 0) {
        write_file(path, hex64, SAGE__TOKEN_HEX, 0600);
        CHECK(chown(path, 12345, (gid_t)-1) == 0);
        CHECK_INT(sage__token_read(path, tok, sizeof tok, err, sizeof err), SAGE_EAUTH);
        CHECK_CONTAINS(err, "owned by uid 12345");
    }
    rm_rf(tmpdir);
}

/* Several threads create the same token at once: all end up with the same one. */
#define RACERS 8
static char race_path[600];
static char race_tok[RACERS][SAGE__TOKEN_HEX + 1];
static int race_rc[RACERS];
static pthread_barrier_t race_barrier;

static void *racer(void *arg)
{
    int i = (int)(intptr_t)arg;
    char err[512];
    pthread_barrier_wait(&race_barrier);
    race_rc[i] = sage__token_create(race_path, race_tok[i], sizeof race_tok[i], err, sizeof err);
    if (race_rc[i] != 0)
        fprintf(stderr, "  racer %d: %s\n", i, err);
    return NULL;
}

static void test_token_create_race(void)
{
    for (int round = 0; round < 20; round++) {
        make_tmpdir();
        snprintf(race_path, sizeof race_path, "%s/d/token", tmpdir);
        pthread_barrier_init(&race_barrier, NULL, RACERS);
        pthread_t th[RACERS];
        for (int i = 0; i < RACERS; i++)
            pthread_create(&th[i], NULL, racer, (void *)(intptr_t)i);
        for (int i = 0; i < RACERS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&race_barrier);
        for (int i = 0; i < RACERS; i++) {
            CHECK_INT(race_rc[i], 0);
            CHECK_STR(race_tok[i], race_tok[0]);
        }
        char dir[700];
        snprintf(dir, sizeof dir, "%s/d", tmpdir);
        CHECK_INT(count_entries(dir), 1);
        rm_rf(tmpdir);
    }
}

static void test_token_equal(void)
{
    char a[SAGE__TOKEN_HEX + 1], b[SAGE__TOKEN_HEX + 1];
    memcpy(a, hex64, sizeof a);
    memcpy(b, hex64, sizeof b);
    CHECK_INT(sage__token_equal(a, b), 1);
    CHECK_INT(sage__token_equal(a, a), 1);
    b[SAGE__TOKEN_HEX - 1] = 'e'; /* differ in the last char */
    CHECK_INT(sage__token_equal(a, b), 0);
    memcpy(b, hex64, sizeof b);
    b[0] = '1'; /* differ in the first char */
    CHECK_INT(sage__token_equal(a, b), 0);
    memcpy(b, hex64, sizeof b);
    b[SAGE__TOKEN_HEX - 1] = '\0'; /* a prefix */
    CHECK_INT(sage__token_equal(a, b), 0);
    CHECK_INT(sage__token_equal(b, a), 0);
    CHECK_INT(sage__token_equal("abc", "abcd"), 0);
    CHECK_INT(sage__token_equal("abc", "abc"), 1);
    CHECK_INT(sage__token_equal("", a), 0);
    CHECK_INT(sage__token_equal(a, ""), 0);
    CHECK_INT(sage__token_equal("", ""), 0); /* an empty token never matches */
    CHECK_INT(sage__token_equal(NULL, a), 0);
    CHECK_INT(sage__token_equal(a, NULL), 0);
    CHECK_INT(sage__token_equal(NULL, NULL), 0);
    /* a difference only in the high bit */
    CHECK_INT(sage__token_equal("a\x80", "a\x00"), 0);
}

/* ------------------------------------------------------------------------- */
/* send / recv                                                               */
/* ------------------------------------------------------------------------- */

#define BIG_PAYLOAD SAGE__CONTROL_FRAME_MAX /* 1 MiB: the control limit, exactly */

typedef struct sender_arg {
    int fd;
    unsigned char *payload;
    int rc[3];
    int delay_ms;
} sender_arg;

static void *sender(void *p)
{
    sender_arg *a = p;
    if (a->delay_ms)
        usleep((useconds_t)a->delay_ms * 1000);
    a->rc[0] = sage__frame_send(a->fd, SAGE__MSG_DATA, a->payload, BIG_PAYLOAD);
    a->rc[1] = sage__frame_send(a->fd, SAGE__MSG_OK, "{\"ok\":true}", 11);
    a->rc[2] = sage__frame_send(a->fd, SAGE__MSG_EOS, NULL, 0);
    return NULL;
}

static void run_big_transfer(int nonblocking_receiver)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    if (nonblocking_receiver)
        CHECK(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) == 0);
    sender_arg a = {.fd = sv[0], .delay_ms = nonblocking_receiver ? 50 : 0};
    a.payload = malloc(BIG_PAYLOAD);
    CHECK(a.payload != NULL);
    if (!a.payload)
        return;
    for (size_t i = 0; i < BIG_PAYLOAD; i++)
        a.payload[i] = (unsigned char)((i * 2654435761u) >> 13);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sender, &a) == 0);

    sage__frame f;
    unsigned char *p = NULL;
    char why[256];
    CHECK_INT(sage__frame_recv(sv[1], SAGE__CONTROL_FRAME_MAX, &f, &p, why, sizeof why), 0);
    CHECK_STR(why, "");
    CHECK_INT(f.type, SAGE__MSG_DATA);
    CHECK_INT(f.version, 1);
    CHECK_INT(f.flags, 0);
    CHECK_INT(f.len, BIG_PAYLOAD);
    CHECK(p != NULL && f.payload == p);
    if (p) {
        CHECK(memcmp(p, a.payload, BIG_PAYLOAD) == 0);
        CHECK_INT(p[BIG_PAYLOAD], 0);
    }
    free(p);
    CHECK_INT(sage__frame_recv(sv[1], SAGE__CONTROL_FRAME_MAX, &f, &p, why, sizeof why), 0);
    CHECK_INT(f.type, SAGE__MSG_OK);
    CHECK_INT(f.len, 11);
    CHECK_STR((char *)p, "{\"ok\":true}");
    free(p);
    CHECK_INT(sage__frame_recv(sv[1], SAGE__CONTROL_FRAME_MAX, &f, &p, why, sizeof why), 0);
    CHECK_INT(f.type, SAGE__MSG_EOS);
    CHECK_INT(f.len, 0);
    CHECK(p != NULL && p[0] == 0); /* an empty payload is still a (NUL) buffer */
    free(p);
    pthread_join(th, NULL);
    CHECK_INT(a.rc[0], 0);
    CHECK_INT(a.rc[1], 0);
    CHECK_INT(a.rc[2], 0);
    /* then the peer goes away */
    close(sv[0]);
    CHECK_INT(sage__frame_recv(sv[1], SAGE__CONTROL_FRAME_MAX, &f, &p, why, sizeof why), SAGE_EIO);
    CHECK_STR(why, "connection closed");
    CHECK(p == NULL);
    close(sv[1]);
    free(a.payload);
}

static void test_send_recv_big(void) { run_big_transfer(0); }

static void test_send_recv_nonblocking(void) { run_big_transfer(1); }

/* Write raw bytes to one end of a socketpair, optionally close it, and receive on the other. */
static int recv_raw(const void *bytes, size_t n, int close_after, uint32_t max, char *why, size_t why_len,
                    sage__frame *f, unsigned char **p)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    if (n)
        CHECK(write(sv[0], bytes, n) == (ssize_t)n);
    if (close_after)
        close(sv[0]);
    int rc = sage__frame_recv(sv[1], max, f, p, why, why_len);
    if (!close_after)
        close(sv[0]);
    close(sv[1]);
    return rc;
}

static void test_recv_errors(void)
{
    sage__frame f;
    unsigned char *p = (unsigned char *)"sentinel";
    char why[256];

    /* oversized: refused from the header alone, nothing allocated or read */
    unsigned char h[SAGE__FRAME_HDR + 8];
    raw_header(h, "SAGE", 1, SAGE__MSG_REQUEST, 2000000u, 0);
    CHECK_INT(recv_raw(h, SAGE__FRAME_HDR, 0, SAGE__CONTROL_FRAME_MAX, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "payload of 2000000 bytes exceeds the 1048576-byte frame limit");
    CHECK(p == NULL);
    raw_header(h, "SAGE", 1, SAGE__MSG_DATA, SAGE__CONTROL_FRAME_MAX + 1, 0);
    CHECK_INT(recv_raw(h, SAGE__FRAME_HDR, 0, SAGE__CONTROL_FRAME_MAX, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "payload of 1048577 bytes exceeds the 1048576-byte frame limit");

    /* the same header messages as the decoder */
    raw_header(h, "SAGE", 7, SAGE__MSG_REQUEST, 0, 0);
    CHECK_INT(recv_raw(h, SAGE__FRAME_HDR, 0, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "unsupported protocol version 7 (this side speaks 1)");
    raw_header(h, "SAGE", 1, 99, 0, 0);
    CHECK_INT(recv_raw(h, SAGE__FRAME_HDR, 0, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "unknown message type 99");
    raw_header(h, "SAGE", 1, 4, 0, 1);
    CHECK_INT(recv_raw(h, SAGE__FRAME_HDR, 0, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "reserved flags 0x00000001 set");
    CHECK_INT(recv_raw(HTTP_GET, sizeof HTTP_GET - 1, 0, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_CONTAINS(why, "an HTTP request on the SAGE port");

    /* closed before any byte */
    p = (unsigned char *)"sentinel";
    CHECK_INT(recv_raw(NULL, 0, 1, CTL, why, sizeof why, &f, &p), SAGE_EIO);
    CHECK_STR(why, "connection closed");
    CHECK(p == NULL);

    /* closed inside the header */
    CHECK_INT(recv_raw("SAGE\0", 5, 1, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "connection closed in the middle of a frame (got 5 of 16 header bytes)");
    sage__frame_header(h, SAGE__MSG_REQUEST, 0);
    CHECK_INT(recv_raw(h, SAGE__FRAME_HDR - 1, 1, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_CONTAINS(why, "middle of a frame (got 15 of 16");

    /* closed inside the payload */
    unsigned char part[SAGE__FRAME_HDR + 40];
    sage__frame_header(part, SAGE__MSG_REQUEST, 100);
    memset(part + SAGE__FRAME_HDR, 'x', 40);
    CHECK_INT(recv_raw(part, sizeof part, 1, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "connection closed in the middle of a frame (got 56 of 116 bytes)");
    CHECK(p == NULL);
    /* header complete, no payload byte */
    CHECK_INT(recv_raw(part, SAGE__FRAME_HDR, 1, CTL, why, sizeof why, &f, &p), SAGE_EPROTO);
    CHECK_STR(why, "connection closed in the middle of a frame (got 16 of 116 bytes)");

    /* a whole frame followed by close: the frame, then "connection closed" */
    unsigned char whole[SAGE__FRAME_HDR + 3];
    sage__frame_header(whole, SAGE__MSG_EVENT, 3);
    memcpy(whole + SAGE__FRAME_HDR, "{ }", 3);
    CHECK_INT(recv_raw(whole, sizeof whole, 1, CTL, why, sizeof why, &f, &p), 0);
    CHECK_STR((char *)p, "{ }");
    free(p);

    /* no why buffer at all */
    CHECK_INT(recv_raw(NULL, 0, 1, CTL, NULL, 0, &f, &p), SAGE_EIO);
    /* bad arguments */
    CHECK_INT(sage__frame_recv(-1, CTL, &f, &p, why, sizeof why), SAGE_EINVAL);
}

static void test_recv_timeout(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    CHECK(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    sage__frame f;
    unsigned char *p;
    char why[256];
    CHECK_INT(sage__frame_recv(sv[1], CTL, &f, &p, why, sizeof why), SAGE_ETIMEDOUT);
    CHECK_CONTAINS(why, "timed out waiting for a frame header (got 0 of 16 bytes)");
    unsigned char part[SAGE__FRAME_HDR + 4];
    sage__frame_header(part, SAGE__MSG_REQUEST, 10);
    memcpy(part + SAGE__FRAME_HDR, "{\"op", 4);
    CHECK(write(sv[0], part, sizeof part) == (ssize_t)sizeof part);
    CHECK_INT(sage__frame_recv(sv[1], CTL, &f, &p, why, sizeof why), SAGE_ETIMEDOUT);
    CHECK_CONTAINS(why, "timed out waiting for a frame payload (got 20 of 26 bytes)");
    CHECK(p == NULL);
    close(sv[0]);
    close(sv[1]);
}

static void test_send_errors(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    close(sv[1]);
    /* a closed peer: EPIPE, not SIGPIPE (the test would die) */
    errno = 0;
    CHECK_INT(sage__frame_send(sv[0], SAGE__MSG_OK, "{}", 2), SAGE_EIO);
    CHECK_INT(errno, EPIPE);
    close(sv[0]);

    /* not a socket */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    CHECK_INT(sage__frame_send(pfd[1], SAGE__MSG_OK, "{}", 2), SAGE_EIO);
    CHECK_INT(errno, ENOTSOCK);
    close(pfd[0]);
    close(pfd[1]);

    /* invalid arguments */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK_INT(sage__frame_send(sv[0], 0, "{}", 2), SAGE_EINVAL);
    CHECK_INT(sage__frame_send(sv[0], SAGE__MSG_TYPE_MAX + 1, "{}", 2), SAGE_EINVAL);
    CHECK_INT(sage__frame_send(sv[0], SAGE__MSG_OK, NULL, 2), SAGE_EINVAL);
    CHECK_INT(sage__frame_send(-1, SAGE__MSG_OK, "{}", 2), SAGE_EINVAL);
    /* nothing was written by the refused calls */
    CHECK_INT(sage__frame_send(sv[0], SAGE__MSG_CREDIT, "\0\0\1\0", 4), 0);
    sage__frame f;
    unsigned char *p;
    CHECK_INT(sage__frame_recv(sv[1], CTL, &f, &p, NULL, 0), 0);
    CHECK_INT(f.type, SAGE__MSG_CREDIT);
    CHECK_INT(f.len, 4);
    CHECK(memcmp(p, "\0\0\1\0", 4) == 0);
    free(p);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_decode_table);
    RUN(test_truncated_header);
    RUN(test_back_to_back);
    RUN(test_header_round_trip);
    RUN(test_token_create_read);
    RUN(test_token_refused);
    RUN(test_token_create_race);
    RUN(test_token_equal);
    RUN(test_send_recv_big);
    RUN(test_send_recv_nonblocking);
    RUN(test_recv_errors);
    RUN(test_recv_timeout);
    RUN(test_send_errors);
    return CHECK_DONE();
}
