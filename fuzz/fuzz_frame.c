/* fuzz/fuzz_frame.c - fuzzes the wire-frame decoder, the blocking receiver, and the JSON parse that follows. */
/*
 * The input is a byte stream as a peer would send it on a control connection.
 * It is decoded frame by frame (decode, advance by the returned size, stop on
 * "need more" or an error) with the control-connection limit, checking:
 *   - a frame's size is 16 + its payload length, the payload lies inside the
 *     input, the header fields are the valid ones and re-encode to the input;
 *   - every shorter prefix of a frame is "need more" (the decoder never
 *     commits to a frame early), and an error is already reported from the 16
 *     header bytes alone, with the same message;
 *   - an error has a non-empty, NUL-terminated message, and the verdict does
 *     not depend on the message buffer (none, or a tiny one);
 *   - "need more" and success leave an empty message.
 * Each JSON payload (HELLO/OK/ERROR/REQUEST/EVENT) then goes through
 * json_loadb with JSON_REJECT_DUPLICATES, as the daemon does next.
 * Finally the same stream is written into a pipe and read back with
 * sage__frame_recv, which must return the same frames and then fail exactly
 * as the decoder's end state says (same message for a bad header, "connection
 * closed" at a frame boundary, "middle of a frame" otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/frame.h"
#include "sage/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FRAMES 256
#define FUZZ_PIPE_MAX 32768 /* the pipe check writes the whole input first; stay below the pipe buffer */

static void fail(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_frame: %s\n  message: %s\n", what, why ? why : "");
    abort();
}

static void check_message(const char *why, size_t cap)
{
    if (memchr(why, '\0', cap) == NULL)
        fail("message not NUL-terminated", "");
    if (why[0] == '\0')
        fail("error without a message", why);
}

typedef struct seen {
    uint16_t type;
    uint32_t len;
    size_t off; /* of the payload in the input */
} seen;

static void parse_json(const unsigned char *p, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (j) {
        /* the daemon's next steps: a type check and a key lookup */
        if (json_is_object(j)) {
            (void)json_string_value(json_object_get(j, "op"));
            (void)json_string_value(json_object_get(j, "token"));
            (void)json_string_value(json_object_get(j, "role"));
        }
        json_decref(j);
    } else if (memchr(jerr.text, '\0', sizeof jerr.text) == NULL) {
        fail("jansson error text not NUL-terminated", "");
    }
}

/* Replay the stream through sage__frame_recv over a pipe and compare. */
static void check_recv(const uint8_t *data, size_t size, const seen *frames, size_t nframes, long end_rc,
                       const char *end_why, size_t end_off)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return;
    /* Non-blocking writer: if the pipe buffer is smaller than the input, skip the check rather than hang. */
    if (fcntl(pfd[1], F_SETFL, O_NONBLOCK) != 0 || (size > 0 && write(pfd[1], data, size) != (ssize_t)size)) {
        close(pfd[0]);
        close(pfd[1]);
        return;
    }
    close(pfd[1]);
    char why[256];
    for (size_t i = 0; i < nframes; i++) {
        sage__frame f;
        unsigned char *p = NULL;
        int rc = sage__frame_recv(pfd[0], SAGE__CONTROL_FRAME_MAX, &f, &p, why, sizeof why);
        if (rc != 0)
            fail("recv fails on a frame the decoder accepted", why);
        if (f.type != frames[i].type || f.len != frames[i].len || f.payload != p || !p ||
            memcmp(p, data + frames[i].off, f.len) != 0 || p[f.len] != '\0')
            fail("recv and decode disagree on a frame", "");
        if (why[0] != '\0')
            fail("recv success with a message", why);
        free(p);
    }
    if (nframes < FUZZ_MAX_FRAMES) {
        sage__frame f;
        unsigned char *p = (unsigned char *)"x";
        int rc = sage__frame_recv(pfd[0], SAGE__CONTROL_FRAME_MAX, &f, &p, why, sizeof why);
        if (p != NULL)
            fail("recv failure left a payload", why);
        check_message(why, sizeof why);
        if (end_rc < 0) {
            if (rc != end_rc || strcmp(why, end_why) != 0)
                fail("recv and decode disagree on a bad header", why);
        } else if (end_off == size) {
            if (rc != SAGE_EIO || strcmp(why, "connection closed") != 0)
                fail("recv at a frame boundary before EOF is not \"connection closed\"", why);
        } else {
            if (rc != SAGE_EPROTO || strstr(why, "connection closed in the middle of a frame") == NULL)
                fail("recv of a truncated frame is not \"middle of a frame\"", why);
        }
    }
    close(pfd[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint32_t max = SAGE__CONTROL_FRAME_MAX;
    static seen frames[FUZZ_MAX_FRAMES];
    size_t nframes = 0, off = 0;
    long r = 0;
    char why[256], end_why[256] = "";

    while (nframes < FUZZ_MAX_FRAMES) {
        const unsigned char *buf = data + off;
        size_t left = size - off;
        sage__frame f;
        memset(why, 'Z', sizeof why);
        r = sage__frame_decode(buf, left, max, &f, why, sizeof why);

        /* the verdict does not depend on the message buffer */
        sage__frame g;
        char small[8];
        if (sage__frame_decode(buf, left, max, &g, NULL, 0) != r ||
            sage__frame_decode(buf, left, max, &g, small, sizeof small) != r)
            fail("verdict depends on the message buffer", why);

        if (r < 0) {
            if (r != SAGE_EPROTO)
                fail("decode returned an unexpected code", why);
            check_message(why, sizeof why);
            check_message(small, sizeof small);
            if (left < SAGE__FRAME_HDR)
                fail("error reported before the header was complete", why);
            /* a bad header is judged from its 16 bytes alone */
            char why16[256];
            if (sage__frame_decode(buf, SAGE__FRAME_HDR, max, &g, why16, sizeof why16) != r || strcmp(why16, why) != 0)
                fail("error depends on bytes after the header", why);
            snprintf(end_why, sizeof end_why, "%s", why);
            break;
        }
        if (why[0] != '\0')
            fail("success or need-more with a message", why);
        if (r == 0) {
            /* need more: the header is incomplete, or the (valid) header announces more than is here */
            if (left >= SAGE__FRAME_HDR) {
                if (sage__frame_decode(buf, SAGE__FRAME_HDR, max, &g, NULL, 0) != 0)
                    fail("need-more for an invalid header", "");
                uint32_t len = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11];
                if ((uint64_t)SAGE__FRAME_HDR + len <= left)
                    fail("need-more although the whole frame is present", "");
            }
            break;
        }

        /* a frame */
        if ((uint64_t)r != (uint64_t)SAGE__FRAME_HDR + f.len || (size_t)r > left)
            fail("frame size is not 16 + payload length, or exceeds the input", "");
        if (f.payload < buf || f.payload + f.len > buf + left || f.payload != buf + SAGE__FRAME_HDR)
            fail("payload pointer outside the input", "");
        if (f.version != SAGE__PROTO_VERSION || f.type == 0 || f.type > SAGE__MSG_TYPE_MAX || f.flags != 0 ||
            f.len > max)
            fail("decoded header fields are not valid ones", "");
        unsigned char hdr[SAGE__FRAME_HDR];
        sage__frame_header(hdr, f.type, f.len);
        if (memcmp(hdr, buf, SAGE__FRAME_HDR) != 0)
            fail("decoded header does not re-encode to its bytes", "");
        /* prefixes: need more (checked at a few cut points to keep it cheap) */
        size_t cuts[] = {0, 1, SAGE__FRAME_HDR - 1, SAGE__FRAME_HDR, (size_t)r / 2, (size_t)r - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
            if (cuts[i] < (size_t)r && sage__frame_decode(buf, cuts[i], max, &g, NULL, 0) != 0)
                fail("a prefix of a frame is not need-more", "");
        /* trailing bytes do not change the frame */
        if (sage__frame_decode(buf, (size_t)r, max, &g, NULL, 0) != r || g.len != f.len || g.type != f.type)
            fail("decode of the exact frame differs", "");

        switch (f.type) {
        case SAGE__MSG_HELLO:
        case SAGE__MSG_OK:
        case SAGE__MSG_ERROR:
        case SAGE__MSG_REQUEST:
        case SAGE__MSG_EVENT: parse_json(f.payload, f.len); break;
        default: break;
        }
        frames[nframes].type = f.type;
        frames[nframes].len = f.len;
        frames[nframes].off = off + SAGE__FRAME_HDR;
        nframes++;
        off += (size_t)r;
    }

    if (size <= FUZZ_PIPE_MAX)
        check_recv(data, size, frames, nframes, r < 0 ? r : 0, end_why, off);
    return 0;
}
