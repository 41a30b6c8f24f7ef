/* cli/cli_client.c - the `sage` command's connection to a JobManager: connect, one request and its reply. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_connect(const cli_opts *o, sage_client **c)
{
    char err[1024];
    int rc = sage_client_connect(o->host, o->port, o->token_file, c, err, sizeof err);
    if (rc == SAGE_EIO) { /* nothing answered (or the connection broke): exit 3 */
        fprintf(stderr, "sage: no JobManager at %s:%d: %s\n", o->host, o->port, err);
        return EXIT_NOJM;
    }
    if (rc != 0) { /* it answered, but refused us (token), or the token file is unusable */
        fprintf(stderr, "sage: the JobManager at %s:%d refused the connection: %s\n", o->host, o->port, err);
        return EXIT_REFUSED;
    }
    return 0;
}

int cli_request(const cli_opts *o, json_t *req, json_t **reply)
{
    sage_client *c;
    int ec = cli_connect(o, &c);
    if (ec) {
        json_decref(req);
        return ec;
    }
    char *txt = json_dumps(req, JSON_COMPACT), *out = NULL, err[4096] = "out of memory";
    json_decref(req);
    int rc = txt ? sage_client_request(c, txt, &out, err, sizeof err) : SAGE_ENOMEM;
    free(txt);
    sage_client_close(c);
    if (rc != 0) {
        fprintf(stderr, "sage: %s\n", err);
        return EXIT_REFUSED;
    }
    json_error_t jerr;
    *reply = json_loads(out, 0, &jerr);
    free(out);
    if (!*reply) {
        fprintf(stderr, "sage: the JobManager's reply is not JSON: %s\n", jerr.text);
        return EXIT_REFUSED;
    }
    return 0;
}

void cli_print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));
    if (s)
        puts(s);
    free(s);
}
