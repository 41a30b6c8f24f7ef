/* cli/cli_service.c - `sage service call`: a running job's service called from the command line.
 *
 * Without --method the payload's bytes are the request and the answer's bytes go to stdout as they are
 * (a C service's own format). With --method M the call has SAGE's JSON form, which Python services
 * answer: the request is "\0json" and {"method": M, "args": [...]} (the payload: a JSON array of the
 * arguments, or one JSON value), the answer "\0json" and {"ok": result} or {"error": type, "message": m};
 * the result is printed as JSON, an error is the exit status 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PAYLOAD_MAX ((size_t)64 << 20)
static const char json_mark[5] = {0, 'j', 's', 'o', 'n'};

/* The payload: the argument, or stdin for "-" (at most PAYLOAD_MAX bytes). NULL with a message. */
static char *read_payload(const char *arg, size_t *len)
{
    if (strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        return strdup(arg);
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n, stdin)) > 0;) {
        n += r;
        if (n == cap) {
            if (cap >= PAYLOAD_MAX) {
                fprintf(stderr, "sage: the payload on stdin exceeds %zu bytes\n", PAYLOAD_MAX);
                free(buf);
                return NULL;
            }
            char *more = realloc(buf, cap * 2);
            if (!more)
                free(buf);
            buf = more;
            cap *= 2;
        }
    }
    if (!buf)
        fprintf(stderr, "sage: out of memory reading the payload\n");
    *len = n;
    return buf;
}

/* --method: the JSON form of the request (malloc'd), or NULL with a message. */
static char *json_request(const char *method, const char *payload, size_t len, size_t *out_len)
{
    json_error_t je;
    json_t *v = json_loadb(payload, len, JSON_DECODE_ANY, &je);
    if (!v) {
        fprintf(stderr, "sage: with --method the payload must be JSON (an array of arguments, or one value): %s\n",
                je.text);
        return NULL;
    }
    json_t *args = json_is_array(v) ? v : json_pack("[o]", v);
    json_t *req = json_pack("{s:s,s:o}", "method", method, "args", args);
    char *txt = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    char *out = txt ? malloc(sizeof json_mark + strlen(txt)) : NULL;
    if (out) {
        memcpy(out, json_mark, sizeof json_mark);
        memcpy(out + sizeof json_mark, txt, strlen(txt));
        *out_len = sizeof json_mark + strlen(txt);
    }
    free(txt);
    return out;
}

int cli_service_call(const cli_opts *o, long long job, const char *service, const char *payload_arg)
{
    size_t plen = 0, rlen = 0;
    char *payload = read_payload(payload_arg, &plen);
    if (!payload)
        return EXIT_REFUSED;
    char *req = payload;
    if (o->method && !(req = json_request(o->method, payload, plen, &plen))) {
        free(payload);
        return EXIT_USAGE;
    }
    if (req != payload)
        free(payload);
    sage_client *c;
    int ec = cli_connect(o, &c);
    if (ec) {
        free(req);
        return ec;
    }
    void *resp = NULL;
    char err[2048];
    int timeout = o->stop_timeout_ms >= 0 ? o->stop_timeout_ms : 30000;
    int rc = sage_client_call(c, job, service, req, plen, timeout, &resp, &rlen, err, sizeof err);
    sage_client_close(c);
    free(req);
    if (rc != 0) {
        fprintf(stderr, "sage: %s\n", err);
        return EXIT_REFUSED;
    }
    ec = 0;
    if (o->method) { /* SAGE's JSON answer */
        json_error_t je;
        json_t *a = rlen >= sizeof json_mark && memcmp(resp, json_mark, sizeof json_mark) == 0
                        ? json_loadb((char *)resp + sizeof json_mark, rlen - sizeof json_mark, 0, &je)
                        : NULL;
        json_t *ok = json_object_get(a, "ok");
        if (ok) {
            char *s = json_dumps(ok, JSON_ENCODE_ANY | JSON_COMPACT);
            puts(s ? s : "null");
            free(s);
        } else {
            const char *type = json_string_value(json_object_get(a, "error"));
            const char *msg = json_string_value(json_object_get(a, "message"));
            if (type)
                fprintf(stderr, "sage: service \"%s\" method %s raised %s: %s\n", service, o->method, type,
                        msg ? msg : "");
            else
                fprintf(stderr,
                        "sage: service \"%s\" did not answer in SAGE's JSON form (is it a Python service? "
                        "without --method its answer is printed as it is)\n",
                        service);
            ec = EXIT_REFUSED;
        }
        json_decref(a);
    } else if (rlen && fwrite(resp, 1, rlen, stdout) != rlen) {
        ec = EXIT_REFUSED;
    }
    free(resp);
    return ec;
}
