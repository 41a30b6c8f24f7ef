/* tests/unit/test_slurm_parse.c - the Slurm client's parsers: counts, gres, sinfo JSON, scontrol, squeue, sbatch. */
#include "check.h"

#include <stdint.h>

#include "cluster/slurm.h"
#include "sage/error.h"

/* ---- counts --------------------------------------------------------------------------- */

static void test_counts(void)
{
    static const struct {
        const char *text;
        int rc;
        int64_t value;
    } t[] = {
        {"0", 0, 0},
        {"2", 0, 2},
        {"10K", 0, 10240},
        {"1k", 0, 1024},
        {"3M", 0, 3 << 20},
        {"2G", 0, INT64_C(2) << 30},
        {"2T", 0, INT64_C(2) << 40}, /* T: the suffix the CLI and the library once disagreed on */
        {"2t", 0, INT64_C(2) << 40},
        {"1P", 0, INT64_C(1) << 50},
        {"8191P", 0, INT64_C(8191) << 50},
        {"9223372036854775807", 0, INT64_MAX},
        {"8192P", SAGE_ETOOBIG, 0},    /* 2^63 */
        {"8388608T", SAGE_ETOOBIG, 0}, /* 2^63 */
        {"99999999999999999999", SAGE_ETOOBIG, 0},
        {"9223372036854775808", SAGE_ETOOBIG, 0},
        {"", SAGE_EINVAL, 0},
        {"x", SAGE_EINVAL, 0},
        {"-1", SAGE_EINVAL, 0},
        {" 2", SAGE_EINVAL, 0},
        {"2 ", SAGE_EINVAL, 0},
        {"+2", SAGE_EINVAL, 0},
        {"2X", SAGE_EINVAL, 0},
        {"2KB", SAGE_EINVAL, 0},
        {"2KiB", SAGE_EINVAL, 0},
        {"1.5G", SAGE_EINVAL, 0},
        {"0x10", SAGE_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t v = -7;
        int rc = sage__slurm_count(t[i].text, &v);
        if (rc != t[i].rc || (rc == 0 && v != t[i].value))
            fprintf(stderr, "  count \"%s\": rc %d value %lld\n", t[i].text, rc, (long long)v);
        CHECK_INT(rc, t[i].rc);
        if (rc == 0)
            CHECK_INT(v, t[i].value);
        else
            CHECK_INT(v, -7); /* untouched on failure */
    }
    CHECK_INT(sage__slurm_count(NULL, NULL), SAGE_EINVAL);
}

/* ---- gres -------------------------------------------------------------------------------- */

/* "name=total/used ..." of a node's gres, in order. */
static void gres_text(const sage__slurm_node *n, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n->ngres && o < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%s%s=%lld/%lld", i ? " " : "", n->g[i].name, (long long)n->g[i].total,
                              (long long)n->g[i].used);
}

static void test_gres(void)
{
    static const struct {
        const char *total, *used;
        const char *want; /* the gres_text, or NULL for an error */
        const char *err;  /* part of the message */
    } t[] = {
        {"gpu:2,ssd:4", "gpu:1,ssd:0", "gpu=2/1 ssd=4/0", NULL},
        {"gpu:tesla:1(S:0-1),ssd:0", "gpu:tesla:1(IDX:0),ssd:0", "gpu=1/1 ssd=0/0", NULL},
        {"gpu:2(IDX:0,1),bw:10G", NULL, "gpu=2/0 bw=10737418240/0", NULL},
        {"gpu:2T", NULL, "gpu=2199023255552/0", NULL},
        {"(null)", "N/A", "", NULL},
        {"", "", "", NULL},
        {"gpu", NULL, "gpu=1/0", NULL},
        {"gpu:tesla", NULL, "gpu=1/0", NULL},
        {"gpu:1g.5gb:2", NULL, "gpu=2/0", NULL},
        {"gpu:1g.5gb", NULL, "gpu=1/0", NULL},            /* a type that starts with a digit, no count */
        {"gpu:2,,ssd:1,", NULL, "gpu=2/0 ssd=1/0", NULL}, /* empty items add nothing */
        {"gpu:1,gpu:a100:2", NULL, "gpu=3/0", NULL},      /* types of one name add up */
        {"gpu:tesla:1.5", NULL, NULL, "count \"1.5\" is not a number"},
        {"gpu:tesla:2X", NULL, NULL, "count \"2X\" is not a number"},
        {"gpu:tesla:many", NULL, NULL, "count \"many\" is not a number"},
        {":3", NULL, NULL, "has no name"},
        {"gpu:99999999999999999999", NULL, NULL, "out of range"},
        {"gpu:9223372036854775807,gpu:1", NULL, NULL, "adds up past"},
        {"gpu:2(S:0", NULL, NULL, "unbalanced parentheses"},
        {"0123456789012345678901234567890123456789012345678901234567890123:1", NULL, NULL, "longer than 63"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sage__slurm_node n = {.name = "n1"};
        sage__err e = {0};
        int rc = sage__slurm_parse_gres(&n, t[i].total, 0, &e);
        if (rc == 0)
            rc = sage__slurm_parse_gres(&n, t[i].used, 1, &e);
        char got[512];
        gres_text(&n, got, sizeof got);
        if (t[i].want) {
            if (rc != 0)
                fprintf(stderr, "  gres \"%s\": %s\n", t[i].total, e.msg);
            CHECK_INT(rc, 0);
            CHECK_STR(got, t[i].want);
        } else {
            CHECK_INT(rc, SAGE_EPROTO);
            CHECK_CONTAINS(e.msg, t[i].err);
            CHECK_CONTAINS(e.msg, "node n1"); /* where */
        }
    }
    /* more distinct names than a node may report */
    char many[1024];
    size_t o = 0;
    for (int i = 0; i <= SAGE__SLURM_GRES_MAX; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "%sr%d:1", i ? "," : "", i);
    sage__slurm_node n = {.name = "big"};
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_gres(&n, many, 0, &e), SAGE_EPROTO);
    CHECK_CONTAINS(e.msg, "more than 32 distinct gres names");
}

/* The node both captured outputs describe: vm, mixed, 4 CPUs (2 allocated), 24151 MB (1024), gpu:2, ssd:2, one of each used. */
static void check_vm(const sage__slurm_node *v)
{
    CHECK_STR(v->name, "vm");
    CHECK_STR(v->state, "mixed");
    CHECK_INT(v->cpus, 4);
    CHECK_INT(v->cpus_alloc, 2);
    CHECK_INT(v->mem_mb, 24151);
    CHECK_INT(v->mem_alloc_mb, 1024);
    char g[256];
    gres_text(v, g, sizeof g);
    CHECK_STR(g, "gpu=2/1 ssd=2/1");
}

/* ---- sinfo --json -------------------------------------------------------------------------- */

/* What Slurm 22.05.8 printed for a `sage cluster` head (trimmed to the fields read, plus some). */
static const char *const sinfo_2205 =
    "{\"meta\": {\"Slurm\": {\"release\": \"22.05.8\"}}, \"errors\": [], \"nodes\": [{"
    "\"architecture\": \"x86_64\", \"cores\": 1, \"cpus\": 4, \"gres\": \"gpu:2,ssd:2\", \"gres_drained\": \"N/A\","
    "\"gres_used\": \"gpu:1,ssd:1\", \"name\": \"vm\", \"address\": \"127.0.0.1\", \"hostname\": \"vm\","
    "\"state\": \"mixed\", \"state_flags\": [], \"partitions\": [\"sage\"], \"real_memory\": 24151,"
    "\"reason\": \"\", \"alloc_memory\": 1024, \"alloc_cpus\": 2, \"idle_cpus\": 2, \"owner\": null}]}";

static void test_sinfo_2205(void)
{
    sage__slurm_node *v = NULL;
    size_t n = 0;
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_sinfo(sinfo_2205, &v, &n, &e), 0);
    CHECK_INT(n, 1);
    if (n != 1) {
        free(v);
        return;
    }
    check_vm(&v[0]);
    CHECK_STR(v[0].flags, "");
    CHECK_STR(v[0].address, "127.0.0.1");
    CHECK_STR(v[0].gres, "gpu:2,ssd:2");
    CHECK(sage__slurm_usable(&v[0]));
    CHECK(sage__slurm_gres_find(&v[0], "ssd") != NULL && sage__slurm_gres_find(&v[0], "ssd")->total == 2);
    CHECK(sage__slurm_gres_find(&v[0], "nvme") == NULL);

    sage__node *nodes = NULL;
    size_t m = 0;
    CHECK_INT(sage__slurm_placement_nodes(v, n, &nodes, &m, &e), 0);
    CHECK_INT(m, 1);
    if (m == 1) {
        CHECK_STR(nodes[0].name, "vm");
        CHECK_INT(nodes[0].ncpus, 4);
        CHECK_INT(nodes[0].ngpus, 2);
        CHECK_INT(nodes[0].gpu_ids[1], 1);
        CHECK(nodes[0].memory == (uint64_t)24151 << 20);
        CHECK_INT(nodes[0].ncustom, 1);
        CHECK_STR(nodes[0].custom[0].name, "ssd");
        CHECK(nodes[0].custom[0].amount == 2.0);
    }
    free(nodes);
    free(v);
}

/* Later data_parser shapes: state as an array, numbers as {"number": N}; one node per partition. */
static void test_sinfo_later(void)
{
    const char *json =
        "{\"nodes\": ["
        "{\"name\": \"a\", \"state\": [\"IDLE\"], \"cpus\": {\"set\": true, \"infinite\": false, \"number\": 8},"
        " \"real_memory\": {\"set\": true, \"number\": 2048}, \"gres\": \"gpu:a100:2(S:0-1)\"},"
        "{\"name\": \"a\", \"state\": [\"IDLE\"], \"cpus\": 8, \"real_memory\": 2048},"
        "{\"name\": \"b\", \"state\": [\"IDLE\", \"DRAIN\"], \"cpus\": 2.0, \"real_memory\": 100, \"gres\": null},"
        "{\"name\": \"c\", \"state\": \"down\", \"state_flags\": [\"NOT_RESPONDING\"], \"cpus\": 2, \"real_memory\": 1}"
        "]}";
    sage__slurm_node *v = NULL;
    size_t n = 0;
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_sinfo(json, &v, &n, &e), 0);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_INT(v[0].cpus, 8);
        CHECK_INT(v[0].mem_mb, 2048);
        CHECK_STR(v[1].state, "idle");
        CHECK_STR(v[1].flags, "DRAIN");
        CHECK(sage__slurm_has_flag(&v[1], "DRAIN"));
        CHECK(!sage__slurm_has_flag(&v[1], "DRA"));
        CHECK(!sage__slurm_usable(&v[1]));
        CHECK_STR(v[2].flags, "NOT_RESPONDING");
        CHECK(!sage__slurm_usable(&v[2]));
        sage__node *nodes = NULL;
        size_t m = 0;
        CHECK_INT(sage__slurm_placement_nodes(v, n, &nodes, &m, &e), 0);
        CHECK_INT(m, 1); /* b drained, c down */
        if (m == 1) {
            CHECK_STR(nodes[0].name, "a");
            CHECK_INT(nodes[0].ngpus, 2);
        }
        free(nodes);
    }
    free(v);
}

static void test_sinfo_bad(void)
{
    static const struct {
        const char *json, *err;
    } t[] = {
        {"", "printed no JSON"},
        {"{\"nodes\": [", "printed no JSON"},
        {"sinfo: error: plugin serializer/json not found", "printed no JSON"},
        {"{\"errors\": []}", "no \"nodes\" array"},
        {"{\"nodes\": {}}", "no \"nodes\" array"},
        {"{\"nodes\": [1]}", "nodes[0] is not an object"},
        {"{\"nodes\": [{\"state\": \"idle\", \"cpus\": 1, \"real_memory\": 1}]}", "nodes[0] has no \"name\""},
        {"{\"nodes\": [{\"name\": \"\", \"state\": \"idle\"}]}", "nodes[0] has no \"name\""},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"real_memory\": 1}]}", "node n1 has no \"cpus\""},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1}]}", "node n1 has no \"real_memory\""},
        {"{\"nodes\": [{\"name\": \"n1\", \"cpus\": 1, \"real_memory\": 1}]}", "node n1 has no \"state\""},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": [], \"cpus\": 1, \"real_memory\": 1}]}",
         "node n1 has no \"state\""},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": [3], \"cpus\": 1, \"real_memory\": 1}]}", "holds a non-string"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": \"4\", \"real_memory\": 1}]}",
         "node n1: \"cpus\" is not a number"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": -1, \"real_memory\": 1}]}",
         "\"cpus\" is -1, not a whole number"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1.5, \"real_memory\": 1}]}",
         "\"cpus\" is 1.5, not a whole number"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1e300, \"real_memory\": 1}]}",
         "not a whole number"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 99999999999999999999, \"real_memory\": 1}]}",
         "printed no JSON"}, /* jansson refuses an integer past 2^63 */
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1, \"real_memory\": 1152921504606846976}]}",
         "real_memory 1152921504606846976 MB is out of range"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": {\"infinite\": true}, \"real_memory\": 1}]}",
         "\"cpus\" is infinite"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1, \"real_memory\": 1, \"gres\": 5}]}",
         "must be strings"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1, \"real_memory\": 1, \"gres\": "
         "\"gpu:x:y\"}]}",
         "node n1: gres \"gpu:x:y\""},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"cpus\": 1, \"real_memory\": 1, \"address\": 7}]}",
         "\"address\" is not a string"},
        {"{\"nodes\": [{\"name\": \"n1\", \"state\": \"idle\", \"state_flags\": \"DRAIN\", \"cpus\": 1, "
         "\"real_memory\": 1}]}",
         "\"state_flags\" is not an array"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sage__slurm_node *v = (sage__slurm_node *)&v; /* must stay as it is on failure */
        size_t n = 99;
        sage__err e = {0};
        int rc = sage__slurm_parse_sinfo(t[i].json, &v, &n, &e);
        if (rc == 0 || !strstr(e.msg, t[i].err))
            fprintf(stderr, "  case %zu: %s\n", i, e.msg);
        CHECK_INT(rc, SAGE_EPROTO);
        CHECK_CONTAINS(e.msg, t[i].err);
        CHECK(v == (sage__slurm_node *)&v && n == 99);
    }
    /* a name longer than the field */
    char json[1024];
    snprintf(json, sizeof json,
             "{\"nodes\": [{\"name\": \"%0200d\", \"state\": \"idle\", \"cpus\": 1, \"real_memory\": 1}]}", 7);
    sage__slurm_node *v = NULL;
    size_t n = 0;
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_sinfo(json, &v, &n, &e), SAGE_EPROTO);
    CHECK_CONTAINS(e.msg, "longer than 127 characters");
}

static void test_placement_limits(void)
{
    sage__slurm_node v[2] = {{.name = "huge", .state = "idle", .cpus = 5000, .mem_mb = 1}, {.name = "down"}};
    snprintf(v[1].state, sizeof v[1].state, "down");
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_gres(&v[0], "gpu:100", 0, &e), 0);
    sage__node *nodes = NULL;
    size_t m = 0;
    CHECK_INT(sage__slurm_placement_nodes(v, 2, &nodes, &m, &e), 0);
    CHECK_INT(m, 1);
    if (m == 1) {
        CHECK_INT(nodes[0].ncpus, SAGE__NODE_CPUS_MAX); /* at most what SAGE places on */
        CHECK_INT(nodes[0].ngpus, SAGE__NODE_GPUS_MAX);
    }
    free(nodes);

    /* every node down */
    sage__err e2 = {0};
    CHECK_INT(sage__slurm_placement_nodes(&v[1], 1, &nodes, &m, &e2), SAGE_EINFEASIBLE);
    CHECK_CONTAINS(e2.msg, "no usable node (1 listed");

    /* more custom resources than an operator may name */
    sage__slurm_node x = {.name = "wide", .state = "idle", .cpus = 1, .mem_mb = 1};
    char many[512];
    size_t o = 0;
    for (int i = 0; i <= SAGE_RES_CUSTOM_MAX; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "%sr%d:1", i ? "," : "", i);
    sage__err e3 = {0};
    CHECK_INT(sage__slurm_parse_gres(&x, many, 0, &e3), 0);
    CHECK_INT(sage__slurm_placement_nodes(&x, 1, &nodes, &m, &e3), SAGE_ECONFIG);
    CHECK_CONTAINS(e3.msg, "node wide: gres \"r16\" does not fit");

    /* a Slurm name longer than a SAGE node name */
    sage__slurm_node y = {.state = "idle", .cpus = 1, .mem_mb = 1};
    memset(y.name, 'n', 80);
    sage__err e4 = {0};
    CHECK_INT(sage__slurm_placement_nodes(&y, 1, &nodes, &m, &e4), SAGE_ECONFIG);
    CHECK_CONTAINS(e4.msg, "its name is longer than 63 characters");
}

/* ---- scontrol ------------------------------------------------------------------------------ */

static void test_scontrol_nodes(void)
{
    const char *text =
        "NodeName=vm Arch=x86_64 CoresPerSocket=1  CPUAlloc=2 CPUEfctv=4 CPUTot=4 CPULoad=1.33 Gres=gpu:2,ssd:2 "
        "GresDrain=N/A GresUsed=gpu:1,ssd:1 NodeAddr=127.0.0.1 NodeHostName=vm RealMemory=24151 AllocMem=1024 "
        "State=MIXED ThreadsPerCore=1\n"
        "\n"
        "NodeName=w2 CPUTot=2 RealMemory=100 State=IDLE*+DRAIN+DYNAMIC_NORM Gres=(null) Reason=Kill task failed "
        "[root@2026-12-05T14:08:48]\n"
        "NodeName=vm CPUTot=4 RealMemory=1 State=IDLE\n";
    sage__slurm_node *v = NULL;
    size_t n = 0;
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_scontrol_nodes(text, &v, &n, &e), 0);
    CHECK_INT(n, 2);
    if (n == 2) {
        check_vm(&v[0]);
        CHECK_STR(v[1].state, "idle");
        CHECK_STR(v[1].flags, "DRAIN+DYNAMIC_NORM");
        CHECK(sage__slurm_has_flag(&v[1], "DYNAMIC_NORM"));
        CHECK_STR(v[1].reason, "Kill task failed [root@2026-12-05T14:08:48]");
        CHECK_STR(v[1].gres, "");
    }
    free(v);

    static const struct {
        const char *text, *err;
    } bad[] = {
        {"NodeName=n1 CPUTot=x RealMemory=1 State=IDLE", "node n1: CPUTot=x is not a whole number"},
        {"NodeName=n1 CPUTot=-4 RealMemory=1 State=IDLE", "CPUTot=-4 is not a whole number"},
        {"NodeName=n1 RealMemory=1 State=IDLE", "node n1: no CPUTot"},
        {"NodeName=n1 CPUTot=1 State=IDLE", "node n1: no RealMemory"},
        {"NodeName=n1 CPUTot=1 RealMemory=1", "node n1: no State"},
        {"NodeName= CPUTot=1 RealMemory=1 State=IDLE", "without a name"},
        {"NodeName=n1 CPUTot=1 RealMemory=99999999999999999999 State=IDLE", "RealMemory=99999999999999999999 is not"},
        {"NodeName=n1 CPUTot=1 RealMemory=1 State=IDLE Gres=gpu:(", "unbalanced"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sage__err e2 = {0};
        CHECK_INT(sage__slurm_parse_scontrol_nodes(bad[i].text, &v, &n, &e2), SAGE_EPROTO);
        CHECK_CONTAINS(e2.msg, bad[i].err);
    }
    /* nothing but other lines: no node */
    CHECK_INT(sage__slurm_parse_scontrol_nodes("No nodes in the system\n", &v, &n, &e), 0);
    CHECK_INT(n, 0);
    free(v);
}

static void test_other_outputs(void)
{
    char out[256];
    sage__slurm_job_state("JobId=2 JobName=wrap JobState=RUNNING Reason=None Dependency=(null)\n", out, sizeof out);
    CHECK_STR(out, "JobState=RUNNING Reason=None");
    sage__slurm_job_state("JobId=2 JobState=CANCELLED\n", out, sizeof out);
    CHECK_STR(out, "JobState=CANCELLED");
    sage__slurm_job_state("slurm_load_jobs error: Invalid job id specified\n", out, sizeof out);
    CHECK_STR(out, "");

    const char *config = "Configuration data as of 2026-12-05T14:08:50\n"
                         "AuthInfo                = socket=/x/cluster/munge.socket\n"
                         "GresTypes               = gpu,ssd\n"
                         "SlurmdPort              = 27818\n";
    sage__slurm_config_value(config, "AuthInfo", out, sizeof out);
    CHECK_STR(out, "socket=/x/cluster/munge.socket");
    sage__slurm_config_value(config, "SlurmdPort", out, sizeof out);
    CHECK_STR(out, "27818");
    sage__slurm_config_value(config, "Gres", out, sizeof out); /* a prefix of GresTypes is not it */
    CHECK_STR(out, "");

    static const struct {
        const char *text;
        long long id; /* 0: an error */
    } ids[] = {{"123\n", 123}, {"45;cluster\n", 45}, {"7", 7},    {"", 0},      {"\n", 0},
               {"abc\n", 0},   {"0\n", 0},           {"-3\n", 0}, {"12 \n", 0}, {"99999999999999999999\n", 0}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        long long id = -1;
        sage__err e = {0};
        int rc = sage__slurm_parse_jobid(ids[i].text, &id, &e);
        CHECK_INT(rc, ids[i].id ? 0 : SAGE_EPROTO);
        if (ids[i].id)
            CHECK_INT(id, ids[i].id);
        else
            CHECK_CONTAINS(e.msg, "sbatch printed");
    }

    char st[64], re[128];
    sage__err e = {0};
    CHECK_INT(sage__slurm_parse_queue_state("PENDING|Resources\n", st, sizeof st, re, sizeof re, &e), 0);
    CHECK_STR(st, "PENDING");
    CHECK_STR(re, "Resources");
    CHECK_INT(sage__slurm_parse_queue_state("", st, sizeof st, re, sizeof re, &e), 0);
    CHECK_STR(st, "");
    CHECK_INT(sage__slurm_parse_queue_state("RUNNING\n", st, sizeof st, re, sizeof re, &e), SAGE_EPROTO);
    CHECK_CONTAINS(e.msg, "not STATE|REASON");
    sage__err e2 = {0};
    CHECK_INT(sage__slurm_parse_queue_state("|x\n", st, sizeof st, re, sizeof re, &e2), SAGE_EPROTO);
    /* a heterogeneous job: one line per component; RUNNING only when every component runs */
    CHECK_INT(sage__slurm_parse_queue_state("RUNNING|None\nPENDING|Resources\n", st, sizeof st, re, sizeof re, &e), 0);
    CHECK_STR(st, "PENDING");
    CHECK_STR(re, "Resources");
    CHECK_INT(sage__slurm_parse_queue_state("RUNNING|None\nRUNNING|None\n", st, sizeof st, re, sizeof re, &e), 0);
    CHECK_STR(st, "RUNNING");
    CHECK_INT(sage__slurm_parse_queue_state("RUNNING|None\nCANCELLED|None\nPENDING|x", st, sizeof st, re, sizeof re,
                                            &e),
              0);
    CHECK_STR(st, "CANCELLED");
    CHECK_INT(sage__slurm_parse_queue_state("RUNNING|None\nbad\n", st, sizeof st, re, sizeof re, &e), SAGE_EPROTO);
}

static long long steps_seen[8][2];
static int nsteps;
static void on_step(long long job, long long step, const char *name, void *arg)
{
    (void)arg;
    if (nsteps < 8 && strncmp(name, "sage-", 5) == 0) {
        steps_seen[nsteps][0] = job;
        steps_seen[nsteps++][1] = step;
    }
}

static void test_steps(void)
{
    const char *text = "12.0|sage-1-0\n12.batch|batch\n12.extern|extern\nx|y\n|\n12.3|sage-1-2\n12.|sage-1-9\n.4|z";
    CHECK_INT(sage__slurm_each_step(text, on_step, NULL), 2);
    CHECK_INT(nsteps, 2);
    CHECK_INT(steps_seen[0][0], 12);
    CHECK_INT(steps_seen[0][1], 0);
    CHECK_INT(steps_seen[1][1], 3);
    CHECK_INT(sage__slurm_each_step("", on_step, NULL), 0);
    nsteps = 0; /* steps of a heterogeneous job's components */
    CHECK_INT(sage__slurm_each_step("40+1.2|sage-3-4\n40+0.0|sage-3-0\n40+x.1|sage-3-1\n", on_step, NULL), 2);
    CHECK_INT(steps_seen[0][0], 40);
    CHECK_INT(steps_seen[0][1], 2);
    CHECK_INT(steps_seen[1][1], 0);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(test_counts);
    RUN(test_gres);
    RUN(test_sinfo_2205);
    RUN(test_sinfo_later);
    RUN(test_sinfo_bad);
    RUN(test_placement_limits);
    RUN(test_scontrol_nodes);
    RUN(test_other_outputs);
    RUN(test_steps);
    return CHECK_DONE();
}
