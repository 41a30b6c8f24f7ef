/* net/frame.h - SAGE's wire protocol: framing, message types, authentication tokens.
 *
 * Every connection (client -> JobManager, worker -> JobManager, worker ->
 * worker) carries frames:
 *
 *   offset size  field
 *   0      4     magic "SAGE"
 *   4      2     protocol version, big-endian (SAGE__PROTO_VERSION)
 *   6      2     message type, big-endian (sage__msg_type)
 *   8      4     payload length, big-endian (<= the connection's max frame)
 *   12     4     flags / reserved, big-endian (must be 0 for now)
 *   16     ...   payload (JSON text for control messages, raw bytes for data)
 *
 * The first frame on every connection is HELLO, whose JSON payload carries
 * {"token": "<hex>", "role": "client"|"worker"|"peer", ...}; anything else,
 * or a wrong token, closes the connection with a logged reason.
 */
#ifndef SAGE_NET_FRAME_H
#define SAGE_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define SAGE__FRAME_HDR 16u
#define SAGE__PROTO_VERSION 1u
#define SAGE__CONTROL_FRAME_MAX (1u << 20)          /* control connections: 1 MiB */
#define SAGE__DATA_FRAME_MAX ((64u << 20) + 65536u) /* data connections: a max-size record plus headers */
#define SAGE__TOKEN_HEX 64                          /* 32 random bytes, hex */

typedef enum sage__msg_type {
    SAGE__MSG_HELLO = 1,   /* JSON {"token","role",...} */
    SAGE__MSG_OK = 2,      /* JSON reply */
    SAGE__MSG_ERROR = 3,   /* JSON {"code": n, "message": "..."} */
    SAGE__MSG_REQUEST = 4, /* JSON {"op": "...", ...}: client and worker requests */
    SAGE__MSG_EVENT = 5,   /* JSON pushed by the JobManager (job ended, control for workers, log lines) */
    SAGE__MSG_DATA = 6,    /* raw: a batch of records */
    SAGE__MSG_EOS = 7,     /* raw: end-of-stream from one producer */
    SAGE__MSG_CREDIT = 8,  /* raw: u32 big-endian bytes granted back to the sender */
    SAGE__MSG_BARRIER = 9, /* raw: u32 input, u64 checkpoint id (big-endian): a checkpoint barrier */
    SAGE__MSG_CALL = 10,   /* raw: u64 call id (big-endian), then the request: a call to a job's service */
    SAGE__MSG_ANSWER = 11, /* raw: u64 call id, i32 result code (big-endian), then the response bytes */
    SAGE__MSG_LOOP = 12,   /* raw: u32 input, u32 marker (3 probe, 4 inputs ended), u64 round: a feedback loop's */
    SAGE__MSG_TYPE_MAX = 12,
} sage__msg_type;

typedef struct sage__frame {
    uint16_t version;
    uint16_t type;
    uint32_t len;
    uint32_t flags;
    const unsigned char *payload; /* points into the decoder's input */
} sage__frame;

/* Write a frame header for a payload of len bytes into hdr[SAGE__FRAME_HDR]. */
void sage__frame_header(unsigned char *hdr, uint16_t type, uint32_t len);

/* Decode one frame from buf[0..len). Returns:
 *   > 0  the frame's total size (header + payload); *f filled
 *   0    need more bytes (the header or payload is incomplete)
 *   < 0  SAGE_EPROTO: malformed (bad magic, unknown version or type, reserved
 *        bits set, payload longer than max_frame); `why` says which, naming
 *        the field and its value. The connection must be closed. */
long sage__frame_decode(const unsigned char *buf, size_t len, uint32_t max_frame, sage__frame *f, char *why,
                        size_t why_len);

/* Validate the 16 header bytes alone (for readers that then read the payload
 * straight into their own buffer). 0, or SAGE_EPROTO with `why`. */
int sage__frame_header_decode(const unsigned char *hdr, uint32_t max_frame, sage__frame *f, char *why, size_t why_len);

/* Tokens. create: 32 bytes from getrandom(), hex, written to path with mode
 * 0600 (the directory is created 0700 if missing); an existing token is
 * kept. read: refuses a file that group or others may read or write, or
 * whose content is not SAGE__TOKEN_HEX hex digits. */
int sage__token_create(const char *path, char *token, size_t token_len, char *err, size_t err_len);
int sage__token_read(const char *path, char *token, size_t token_len, char *err, size_t err_len);
/* A fresh token (SAGE__TOKEN_HEX hex digits of getrandom()) in token (room for SAGE__TOKEN_HEX + 1). 0, or
 * SAGE_ESYS. */
int sage__token_random(char *token, size_t token_len);
/* Constant-time comparison of two NUL-terminated tokens. 1 when equal. */
int sage__token_equal(const char *a, const char *b);

/* Blocking helpers for simple clients (fd in blocking mode): write a whole
 * frame; read one frame into a malloc'd buffer (*payload, NUL-terminated for
 * convenience, caller frees). Return 0 or a negative SAGE_ code; why says
 * what went wrong. */
int sage__frame_send(int fd, uint16_t type, const void *payload, uint32_t len);
int sage__frame_recv(int fd, uint32_t max_frame, sage__frame *f, unsigned char **payload, char *why, size_t why_len);

#endif
