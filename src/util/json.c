/* util/json.c - JSON parsed twice, so that a failed allocation inside jansson is never taken for bad input. */
#include "util/json.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sage/error.h"
#include "util/buf.h"

/* jansson's own report of a failed allocation: its code or no message at all. */
static int out_of_memory(const json_error_t *je)
{
    return je->text[0] == '\0' || json_error_code(je) == json_error_out_of_memory;
}

json_t *sage__json_loadb(const char *text, size_t len, size_t flags, json_error_t *je, int *oom)
{
    json_error_t je2;
    json_t *a = json_loadb(text, len, flags, je);
    json_t *b = json_loadb(text, len, flags, &je2);
    if (a && b)
        *oom = !json_equal(a, b);
    else if (a || b)
        *oom = 1;
    else
        *oom = out_of_memory(je) || out_of_memory(&je2) || je->line != je2.line || je->column != je2.column ||
               strcmp(je->text, je2.text) != 0;
    json_decref(b);
    if (*oom) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static void read_error(json_error_t *je, const char *path, const char *why)
{
    memset(je, 0, sizeof *je);
    je->line = je->column = -1;
    snprintf(je->text, sizeof je->text, "unable to open %s: %s", path, why);
}

json_t *sage__json_load_file(const char *path, size_t max, size_t flags, json_error_t *je, int *oom)
{
    *oom = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *oom = errno == ENOMEM;
        read_error(je, path, strerror(errno));
        return NULL;
    }
    sage__buf b;
    sage__buf_init(&b, max);
    for (;;) {
        int rc = sage__buf_reserve(&b, 4096);
        if (rc != 0) {
            *oom = rc == SAGE_ENOMEM;
            read_error(je, path, rc == SAGE_ETOOBIG ? "the file is too large" : "out of memory");
            break;
        }
        ssize_t n = read(fd, b.p + b.len, 4096);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            read_error(je, path, strerror(errno));
            break;
        }
        if (n == 0) {
            close(fd);
            json_t *root = sage__json_loadb((const char *)b.p, b.len, flags, je, oom);
            sage__buf_free(&b);
            return root;
        }
        b.len += (size_t)n;
    }
    close(fd);
    sage__buf_free(&b);
    return NULL;
}

static int to_buf(const char *text, size_t len, void *arg) { return sage__buf_append(arg, text, len) == 0 ? 0 : -1; }

char *sage__json_dumps(const json_t *v, size_t flags)
{
    sage__buf a, b;
    sage__buf_init(&a, (size_t)1 << 30);
    sage__buf_init(&b, (size_t)1 << 30);
    int ok = json_dump_callback(v, to_buf, &a, flags) == 0 && json_dump_callback(v, to_buf, &b, flags) == 0 &&
             a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
    sage__buf_free(&b);
    char *text = ok ? sage__buf_detach(&a, NULL) : NULL;
    sage__buf_free(&a);
    return text;
}

json_t *sage__json_hex64(uint64_t v)
{
    char s[17];
    snprintf(s, sizeof s, "%016" PRIx64, v);
    return json_string(s);
}

int sage__json_hex64_get(const json_t *v, uint64_t *out)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16)
        return -1;
    *out = strtoull(s, NULL, 16);
    return 0;
}
