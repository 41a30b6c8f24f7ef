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
    {"{\"idle_spin_us\": 200}", 0, NULL},
    {"{\"idle_spin_us\": 10001}", SAGE_ECONFIG, "\"idle_spin_us\": expected microseconds from 0 to 10000"},
    {"{\"idle_spin_us\": -1}", SAGE_ECONFIG, "\"idle_spin_us\": expected microseconds"},
    {"{\"idle_spin_us\": \"50\"}", SAGE_ECONFIG, "\"idle_spin_us\": expected microseconds"},
    {"{\"jobmanager\": 7}", SAGE_ECONFIG, "\"jobmanager\": expected \"host:port\""},
    {"{\"token_file\": \"\"}", SAGE_ECONFIG, "\"token_file\": expected a path"},
    {"{\"node\": 3}", SAGE_ECONFIG, "\"node\": expected an object"},
    {"{\"node\": {\"cpus\": -1}}", SAGE_ECONFIG, "node config: key \"cpus\""},
    {"{\"node\": {\"gpus\": \"two\"}}", SAGE_ECONFIG, "\"gpus\""},
    {"{\"node\": {\"colour\": \"red\"}}", SAGE_ECONFIG, "colour"},
    {"{\"batchbytes\": 1}", SAGE_ECONFIG,
     "unknown key \"batchbytes\" (did you mean \"batch_bytes\"? known: max_parallelism"},
    {"{\"zz\": 1}", SAGE_ECONFIG, "unknown key \"zz\" (known: max_parallelism"},
    {"{\"batch_bytes\": 1024, \"batch_bytes\": 2048}", SAGE_ECONFIG, "duplicate"},
    {"[1, 2]", SAGE_ECONFIG, "config [1, 2]: unable to open [1, 2]: No such file or directory"}, /* not '{': a path */
    {"{\"max_parallelism\": 8", SAGE_ECONFIG, "config text:"},
    {"{} trailing", SAGE_ECONFIG, "config text:"},
    /* fault_tolerance: SAGE Kernel's keys and spellings */
    {"{\"fault_tolerance\": {\"strategy\": \"restart\"}}", 0, NULL},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"fixed_delay\", \"max_attempts\": 3, "
     "\"delay\": 1.5}}",
     0, NULL},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"exponential_backoff\", "
     "\"initial_delay\": 0.1, \"max_delay\": 30, \"multiplier\": 2.0, \"max_attempts\": 5}}",
     0, NULL},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"failure_rate\", "
     "\"max_failures_per_interval\": 3, \"interval_seconds\": 60, \"delay\": 1}}",
     0, NULL},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"max_atempts\": 3}}", SAGE_ECONFIG,
     "config key \"fault_tolerance.max_atempts\" is unknown (did you mean \"max_attempts\"?)"},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"zzz\": 3}}", SAGE_ECONFIG, "is unknown (known: strategy"},
    {"{\"fault_tolerance\": {\"strategy\": \"retry\"}}", SAGE_ECONFIG, "\"retry\" is not a strategy"},
    {"{\"fault_tolerance\": {\"restart_strategy\": \"fixed\"}}", SAGE_ECONFIG,
     "\"fault_tolerance.strategy\": expected"},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"linear\"}}", SAGE_ECONFIG,
     "\"fault_tolerance.restart_strategy\": expected \"fixed\""},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"multiplier\": 3}}", SAGE_ECONFIG,
     "\"fault_tolerance.multiplier\" belongs to exponential, not to the chosen \"fixed\""},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"failure_rate\", \"max_attempts\": 3}}",
     SAGE_ECONFIG, "belongs to fixed or exponential, not to the chosen \"failure_rate\""},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"checkpoint_interval\": 3}}", SAGE_ECONFIG,
     "belongs to checkpoint"},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"delay\": -1}}", SAGE_ECONFIG,
     "\"fault_tolerance.delay\": expected seconds from 0 to 86400"},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"max_attempts\": 2.5}}", SAGE_ECONFIG,
     "expected a whole number"},
    {"{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": \"exponential\", \"initial_delay\": 5, "
     "\"max_delay\": 1}}",
     SAGE_ECONFIG, "max_delay\": 1 s is less than initial_delay 5 s"},
    {"{\"fault_tolerance\": 1}", SAGE_ECONFIG, "\"fault_tolerance\": expected an object"},
    {"{\"fault_tolerance\": {\"strategy\": \"checkpoint\", \"checkpoint_interval\": 0.001}}", SAGE_ECONFIG,
     "\"fault_tolerance.checkpoint_interval\": expected seconds from 0.01 to 86400"},
    {"{\"restore_from\": 3}", SAGE_ECONFIG, "\"restore_from\": expected the path of a checkpoint"},
    {"{\"restore_from\": \"\"}", SAGE_ECONFIG, "\"restore_from\": expected the path of a checkpoint"},
    {"{\"fault_toleranse\": {}}", SAGE_ECONFIG, "did you mean \"fault_tolerance\"?"},
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

/* The defaults are SAGE Kernel's; the delay of each restart follows the strategy. */
static void fault_tolerance_values(void)
{
    sage__config cfg;
    sage__config_init(&cfg);
    sage__err err = {0};
    CHECK_INT(cfg.ft.strategy, SAGE__FT_NONE); /* fail fast without the key */
    CHECK_INT(sage__config_parse(&cfg, "{\"fault_tolerance\": {\"strategy\": \"restart\"}}", &err), 0);
    CHECK_INT(cfg.ft.strategy, SAGE__FT_RESTART);
    CHECK_INT(cfg.ft.restart, SAGE__RESTART_FIXED);
    CHECK_INT(cfg.ft.max_attempts, 3);
    CHECK(cfg.ft.delay == 5);
    CHECK(sage__ft_delay(&cfg.ft, 2) == 5);
    CHECK_INT(sage__config_parse(&cfg,
                                 "{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": "
                                 "\"exponential\", \"initial_delay\": 0.5, \"max_delay\": 3}}",
                                 &err),
              0);
    CHECK_INT(cfg.ft.max_attempts, 5); /* exponential's own default */
    CHECK(sage__ft_delay(&cfg.ft, 1) == 0.5);
    CHECK(sage__ft_delay(&cfg.ft, 2) == 1);
    CHECK(sage__ft_delay(&cfg.ft, 3) == 2);
    CHECK(sage__ft_delay(&cfg.ft, 4) == 3); /* capped */
    CHECK(sage__ft_delay(&cfg.ft, 40) == 3);
    CHECK_INT(sage__config_parse(&cfg,
                                 "{\"fault_tolerance\": {\"strategy\": \"restart\", \"restart_strategy\": "
                                 "\"failure_rate\"}}",
                                 &err),
              0);
    CHECK_INT(cfg.ft.max_failures_per_interval, 5);
    CHECK(cfg.ft.interval_seconds == 60 && cfg.ft.delay == 5);
    char d[128];
    sage__ft_describe(&cfg.ft, d, sizeof d);
    CHECK_STR(d, "restart: delay 5s, at most 5 failures in 60s");
    sage__config_free(&cfg);
}

/* What a remote env sends (sage__ft_json) reads back as the same strategy; the strategy's verdicts. */
static void fault_tolerance_round_trip(void)
{
    static const char *const texts[] = {
        "{\"strategy\": \"restart\", \"max_attempts\": 7, \"delay\": 0.25}",
        "{\"strategy\": \"restart\", \"restart_strategy\": \"exponential\", \"initial_delay\": 0.5, "
        "\"max_delay\": 3, \"multiplier\": 1.5, \"max_attempts\": 2}",
        "{\"strategy\": \"restart\", \"restart_strategy\": \"failure_rate\", \"max_failures_per_interval\": 2, "
        "\"interval_seconds\": 10, \"delay\": 1}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        sage__ft_config a = {0}, b = {0};
        sage__err err = {0};
        json_t *v = json_loads(texts[i], 0, NULL);
        CHECK_INT(sage__ft_parse(&a, v, &err), 0);
        json_decref(v);
        json_t *sent = sage__ft_json(&a);
        CHECK(sent != NULL);
        CHECK_INT(sage__ft_parse(&b, sent, &err), 0); /* only the chosen strategy's keys: none refused */
        CHECK_STR(err.msg, "");
        json_decref(sent);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
    }
    /* fixed: max_attempts restarts, then no more */
    sage__ft_config ft = {0};
    sage__err err = {0};
    json_t *v = json_loads(texts[0], 0, NULL);
    CHECK_INT(sage__ft_parse(&ft, v, &err), 0);
    json_decref(v);
    CHECK(sage__ft_may_restart(&ft, 7, 0, NULL, NULL));
    CHECK(!sage__ft_may_restart(&ft, 8, 0, NULL, NULL));
    /* failure_rate: at most 2 failures within 10 s */
    v = json_loads(texts[2], 0, NULL);
    CHECK_INT(sage__ft_parse(&ft, v, &err), 0);
    json_decref(v);
    double at[3];
    int n = 0;
    CHECK(sage__ft_may_restart(&ft, 1, 100.0, at, &n));
    CHECK(sage__ft_may_restart(&ft, 2, 105.0, at, &n));
    CHECK(!sage__ft_may_restart(&ft, 3, 109.0, at, &n)); /* three within 10 s */
    n = 0;
    CHECK(sage__ft_may_restart(&ft, 1, 100.0, at, &n));
    CHECK(sage__ft_may_restart(&ft, 2, 105.0, at, &n));
    CHECK(sage__ft_may_restart(&ft, 3, 111.0, at, &n)); /* the first fell out of the window */
    sage__ft_config none = {0};
    CHECK(!sage__ft_may_restart(&none, 1, 0, NULL, NULL));
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
    RUN(fault_tolerance_values);
    RUN(fault_tolerance_round_trip);
    RUN(config_file);
    return CHECK_DONE();
}
