/* tests/unit/test_config.c - the environment's configuration: every key, bad values named, defaults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "graph/graph.h"

typedef struct config_case {
    const char *text;
    int rc;
    const char *msg; /* a substring of the message (bad cases) */
} config_case;

static const config_case cases[] = {
    {"{}", 0, NULL},
    {"  \n{\"max_parallelism\": 8}", 0, NULL},
    {"{\"batch_bytes\": \"64KiB\", \"channel_bytes\": 1048576, \"max_record_bytes\": \"1MB\"}", 0, NULL},
    {"{\"flush_linger_us\": 0}", 0, NULL},
    {"{\"jobmanager\": \"10.0.0.1:7000\", \"token_file\": \"/x/token\"}", 0, NULL},
    {"{\"node\": {\"cpus\": 20, \"gpus\": 2, \"memory\": \"64GB\", \"resources\": {\"ssd\": 2}}}", 0, NULL},
    {"{\"max_parallelism\": 0}", SAGE_ECONFIG, "\"max_parallelism\": expected a whole number from 1 to 1024"},
    {"{\"max_parallelism\": 1025}", SAGE_ECONFIG, "\"max_parallelism\""},
    {"{\"max_parallelism\": \"8\"}", SAGE_ECONFIG, "\"max_parallelism\""},
    {"{\"batch_bytes\": 255}", SAGE_ECONFIG, "\"batch_bytes\": 255 bytes is outside 256..16777216"},
    {"{\"batch_bytes\": \"lots\"}", SAGE_ECONFIG, "config key \"batch_bytes\":"},
    {"{\"batch_bytes\": -1}", SAGE_ECONFIG, "expected bytes"},
    {"{\"channel_bytes\": true}", SAGE_ECONFIG, "\"channel_bytes\": expected bytes"},
    {"{\"max_record_bytes\": \"3GiB\"}", SAGE_ECONFIG, "\"max_record_bytes\""},
    {"{\"flush_linger_us\": 1000001}", SAGE_ECONFIG, "\"flush_linger_us\": expected microseconds from 0 to 1000000"},
    {"{\"jobmanager\": 7}", SAGE_ECONFIG, "\"jobmanager\": expected \"host:port\""},
    {"{\"token_file\": \"\"}", SAGE_ECONFIG, "\"token_file\": expected a path"},
    {"{\"node\": 3}", SAGE_ECONFIG, "\"node\": expected an object"},
    {"{\"node\": {\"cpus\": -1}}", SAGE_ECONFIG, "node config: key \"cpus\""},
    {"{\"node\": {\"gpus\": \"two\"}}", SAGE_ECONFIG, "\"gpus\""},
    {"{\"node\": {\"colour\": \"red\"}}", SAGE_ECONFIG, "colour"},
    {"{\"batchbytes\": 1}", SAGE_ECONFIG, "unknown key \"batchbytes\" (known: max_parallelism"},
    {"{\"batch_bytes\": 1024, \"batch_bytes\": 2048}", SAGE_ECONFIG, "duplicate"},
    {"[1, 2]", SAGE_ECONFIG, "config [1, 2]: unable to open [1, 2]: No such file or directory"}, /* not '{': a path */
    {"{\"max_parallelism\": 8", SAGE_ECONFIG, "config text:"},
    {"{} trailing", SAGE_ECONFIG, "config text:"},
};

static void config_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sage__config cfg;
        sage__config_init(&cfg);
        sage__err err = {0};
        int rc = sage__config_parse(&cfg, cases[i].text, &err);
        if (rc != cases[i].rc)
            fprintf(stderr, "  case %zu: %s -> %d (%s)\n", i, cases[i].text, rc, err.msg);
        CHECK_INT(rc, cases[i].rc);
        CHECK_INT(err.code, cases[i].rc);
        if (cases[i].msg)
            CHECK_CONTAINS(err.msg, cases[i].msg);
        sage__config_free(&cfg);
    }
}

static void defaults_and_values(void)
{
    sage__config cfg;
    sage__config_init(&cfg);
    CHECK_INT(cfg.max_parallelism, 1024);
    CHECK_INT(cfg.batch_bytes, 16384);
    CHECK_INT(cfg.channel_bytes, 262144);
    CHECK_INT(cfg.max_record_bytes, 64 << 20);
    CHECK_INT(cfg.flush_linger_us, 200);
    CHECK_INT(cfg.has_jobmanager, 0);
    sage__err err = {0};
    CHECK_INT(sage__config_parse(&cfg,
                                 "{\"batch_bytes\": \"1MiB\", \"channel_bytes\": 4096, \"jobmanager\": "
                                 "\"example.org:7001\"}",
                                 &err),
              0);
    CHECK_INT(cfg.batch_bytes, 1 << 20);
    CHECK_INT(cfg.channel_bytes, 1 << 20); /* raised to one batch */
    CHECK_INT(cfg.has_jobmanager, 1);
    CHECK_STR(cfg.jm_host, "example.org");
    CHECK_INT(cfg.jm_port, 7001);
    sage__config_free(&cfg);
}

static void config_file(void)
{
    char path[] = "/tmp/sage-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char text[] = "{\"max_parallelism\": 3}\n";
    CHECK_INT(write(fd, text, sizeof text - 1), (long long)(sizeof text - 1));
    close(fd);
    sage__config cfg;
    sage__config_init(&cfg);
    sage__err err = {0};
    CHECK_INT(sage__config_parse(&cfg, path, &err), 0);
    CHECK_INT(cfg.max_parallelism, 3);
    unlink(path);
    CHECK_INT(sage__config_parse(&cfg, path, &err), SAGE_ECONFIG);
    CHECK_CONTAINS(err.msg, path);
    sage__config_free(&cfg);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(config_table);
    RUN(defaults_and_values);
    RUN(config_file);
    return CHECK_DONE();
}
