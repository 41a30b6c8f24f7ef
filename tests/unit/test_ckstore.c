/* tests/unit/test_ckstore.c - the checkpoint store: part and manifest formats, bad input tables, durable writes, fallback. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "runtime/ckstore.h"
#include "util/hash.h"

static char tmp[256];

static void setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/sage-ckstore-XXXXXX");
    if (!mkdtemp(tmp))
        exit(1);
}
static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
}

/* A part with one section of each kind. */
static void good_part(sage__buf *b)
{
    sage__buf_init(b, 1 << 20);
    sage__part_begin(b);
    uint64_t counts[3] = {10, 9, 3};
    sage__part_section(b, 0, SAGE__SEC_COUNTS, counts, sizeof counts);
    int64_t pos[2] = {7, -1};
    sage__part_section(b, 0, SAGE__SEC_SOURCE, pos, sizeof pos);
    size_t mark;
    sage__part_section_begin(b, 1, SAGE__SEC_KEYS, &mark);
    uint64_t hdr[2] = {8, 2};
    sage__buf_append(b, hdr, sizeof hdr);
    uint32_t kl = 3;
    int64_t st = 5;
    sage__buf_append(b, &kl, 4);
    sage__buf_append(b, "abc", 3);
    sage__buf_append(b, &st, 8);
    kl = 0;
    st = 9;
    sage__buf_append(b, &kl, 4);
    sage__buf_append(b, &st, 8);
    sage__part_section_end(b, mark);
    sage__part_section(b, 1, SAGE__SEC_USER, "user", 4);
    uint64_t n[2] = {4, 120};
    sage__part_section(b, 2, SAGE__SEC_COLLECT, n, sizeof n);
    sage__part_finish(b);
}

static void refix(unsigned char *p, size_t n) /* recompute length and checksum after an edit */
{
    uint64_t len = n - SAGE__PART_HDR, sum = sage__hash64(p + SAGE__PART_HDR, (size_t)len);
    memcpy(p + 16, &len, 8);
    memcpy(p + 24, &sum, 8);
}

static void part_round_trip(void)
{
    sage__buf b;
    good_part(&b);
    char why[256] = "";
    CHECK_INT(sage__part_check(b.p, b.len, why, sizeof why), 0);
    sage__section s;
    int kinds[8], n = 0;
    for (size_t off = 0; n < 8 && sage__part_next(b.p, b.len, &off, &s);)
        kinds[n++] = (int)s.kind;
    CHECK_INT(n, 5);
    CHECK(kinds[0] == SAGE__SEC_COUNTS && kinds[1] == SAGE__SEC_SOURCE && kinds[2] == SAGE__SEC_KEYS &&
          kinds[3] == SAGE__SEC_USER && kinds[4] == SAGE__SEC_COLLECT);
    sage__buf_free(&b);
}

/* Each row: an edit of the good part, and the words its refusal must contain. */
static void part_bad_input_table(void)
{
    struct {
        const char *name;
        size_t off;      /* byte to change (from the start), or SIZE_MAX: none */
        unsigned char v; /* its new value */
        size_t cut;      /* bytes cut from the end */
        int fix;         /* recompute length and checksum (so the structure is what is refused) */
        const char *want;
    } rows[] = {
        {"bad magic", 0, 'X', 0, 0, "no magic"},
        {"newer version", 8, 2, 0, 0, "format version 2"},
        {"truncated", SIZE_MAX, 0, 5, 0, "truncated?"},
        {"flipped payload byte", 40, 0xff, 0, 0, "checksum does not match"},
        {"unknown kind", 32 + 4, 9, 0, 1, "unknown kind 9"},
        {"counts of the wrong size", 32 + 8, 23, 0, 1, "expected 24"},
        {"section past the end", 32 + 8 + 7, 1, 0, 1, "past the end"},
        {"header cut short", SIZE_MAX, 0, 0, 2, "past the end"},
        {"key too long", 32 + 16 + 24 + 16 + 16 + 16 + 16 + 1, 0xff, 0, 1, "key 0 is"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sage__buf b;
        good_part(&b);
        if (rows[i].off != SIZE_MAX)
            b.p[rows[i].off] = rows[i].v;
        b.len -= rows[i].cut;
        if (rows[i].fix == 2) { /* a payload that ends inside a section header */
            b.len = SAGE__PART_HDR + 10;
            refix(b.p, b.len);
        } else if (rows[i].fix) {
            refix(b.p, b.len);
        }
        char why[256] = "";
        int rc = sage__part_check(b.p, b.len, why, sizeof why);
        if (rc != SAGE_EIO || !strstr(why, rows[i].want))
            fprintf(stderr, "  row \"%s\": rc %d, \"%s\" (want \"%s\")\n", rows[i].name, rc, why, rows[i].want);
        CHECK_INT(rc, SAGE_EIO);
        CHECK(strstr(why, rows[i].want) != NULL);
        sage__buf_free(&b);
    }
    char why[256];
    CHECK_INT(sage__part_check("", 0, why, sizeof why), SAGE_EIO);
}

static sage__manifest sample(sage__manifest_task *tasks, sage__manifest_sink *sinks)
{
    tasks[0] = (sage__manifest_task){.chain = 0, .instance = 0, .bytes = 100, .checksum = 0x0123456789abcdefull};
    tasks[1] = (sage__manifest_task){.chain = 1, .instance = 0, .finished = 1};
    sinks[0] = (sage__manifest_sink){.op = 2, .length = 10};
    sage__manifest m =
        {.id = 3, .plan_hash = 0xdeadbeefull, .taken_ms = 1, .ntasks = 2, .tasks = tasks, .nsinks = 1, .sinks = sinks};
    strcpy(m.job, "wc");
    return m;
}

static void manifest_round_trip(void)
{
    sage__manifest_task tasks[2];
    sage__manifest_sink sinks[1];
    sage__manifest m = sample(tasks, sinks), r;
    sage__buf out;
    sage__buf_init(&out, 1 << 20);
    CHECK_INT(sage__manifest_write(&m, &out), 0);
    char why[256] = "";
    CHECK_INT(sage__manifest_parse(out.p, out.len, &r, why, sizeof why), 0);
    CHECK(r.id == 3 && r.plan_hash == 0xdeadbeefull && r.ntasks == 2 && r.nsinks == 1);
    CHECK(r.tasks[0].checksum == 0x0123456789abcdefull && r.tasks[0].bytes == 100 && !r.tasks[0].finished);
    CHECK(r.tasks[1].finished && r.sinks[0].op == 2 && r.sinks[0].length == 10);
    CHECK_STR(r.job, "wc");
    sage__manifest_free(&r);
    sage__buf_free(&out);
}

/* Manifest text with a correct checksum line. */
static size_t with_sum(const char *json, char *out, size_t cap)
{
    return (size_t)snprintf(out, cap, "%s\nchecksum %016" PRIx64 "\n", json, sage__hash64(json, strlen(json)));
}

static void manifest_bad_input_table(void)
{
    struct {
        const char *name, *text;
        int raw; /* use text as is (no checksum line added) */
        const char *want;
    } rows[] = {
        {"empty", "", 1, "no checksum line"},
        {"no trailer", "{}", 1, "no checksum line"},
        {"wrong checksum", "{}\nchecksum 0000000000000000\n", 1, "checksum does not match"},
        {"upper-case hex", "{}\nchecksum 00000000000000AB\n", 1, "checksum does not match"},
        {"not JSON", "{", 0, "not JSON"},
        {"an array", "[]", 0, "lacks a field"},
        {"no tasks",
         "{\"format\":1,\"checkpoint\":1,\"plan_hash\":\"0000000000000001\",\"job\":\"j\",\"savepoint\":false,"
         "\"taken_at_ms\":1,\"tasks\":[],\"file_sinks\":[]}",
         0, "lacks a field"},
        {"format 2",
         "{\"format\":2,\"checkpoint\":1,\"plan_hash\":\"0000000000000001\",\"job\":\"j\",\"savepoint\":false,"
         "\"taken_at_ms\":1,\"tasks\":[{\"chain\":0,\"instance\":0,\"finished\":true}],\"file_sinks\":[]}",
         0, "lacks a field"},
        {"short hash",
         "{\"format\":1,\"checkpoint\":1,\"plan_hash\":\"01\",\"job\":\"j\",\"savepoint\":false,"
         "\"taken_at_ms\":1,\"tasks\":[{\"chain\":0,\"instance\":0,\"finished\":true}],\"file_sinks\":[]}",
         0, "lacks a field"},
        {"negative chain",
         "{\"format\":1,\"checkpoint\":1,\"plan_hash\":\"0000000000000001\",\"job\":\"j\",\"savepoint\":"
         "false,\"taken_at_ms\":1,\"tasks\":[{\"chain\":-1,\"instance\":0,\"finished\":true}],"
         "\"file_sinks\":[]}",
         0, "malformed"},
        {"part too small",
         "{\"format\":1,\"checkpoint\":1,\"plan_hash\":\"0000000000000001\",\"job\":\"j\",\"savepoint\":"
         "false,\"taken_at_ms\":1,\"tasks\":[{\"chain\":0,\"instance\":0,\"bytes\":3,\"checksum\":"
         "\"0000000000000001\"}],\"file_sinks\":[]}",
         0, "malformed"},
        {"finished false",
         "{\"format\":1,\"checkpoint\":1,\"plan_hash\":\"0000000000000001\",\"job\":\"j\",\"savepoint\":"
         "false,\"taken_at_ms\":1,\"tasks\":[{\"chain\":0,\"instance\":0,\"finished\":false}],"
         "\"file_sinks\":[]}",
         0, "malformed"},
        {"duplicate key", "{\"format\":1,\"format\":1}", 0, "not JSON"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char text[2048];
        size_t n = rows[i].raw ? (size_t)snprintf(text, sizeof text, "%s", rows[i].text)
                               : with_sum(rows[i].text, text, sizeof text);
        sage__manifest m;
        char why[256] = "";
        int rc = sage__manifest_parse(text, n, &m, why, sizeof why);
        if (rc != SAGE_EIO || !strstr(why, rows[i].want))
            fprintf(stderr, "  row \"%s\": rc %d, \"%s\" (want \"%s\")\n", rows[i].name, rc, why, rows[i].want);
        CHECK_INT(rc, SAGE_EIO);
        CHECK(strstr(why, rows[i].want) != NULL);
        CHECK(m.tasks == NULL);
    }
}

/* Write checkpoint id of one part and one finished task under rundir. */
static int write_ckpt(const char *rundir, uint64_t id)
{
    char dir[512];
    sage__ckpt_path(dir, sizeof dir, rundir, id);
    sage__buf part, *parts[2];
    good_part(&part);
    parts[0] = &part;
    parts[1] = NULL;
    sage__manifest_task tasks[2];
    sage__manifest_sink sinks[1];
    sage__manifest m = sample(tasks, sinks);
    m.id = id;
    uint64_t bytes = 0;
    char why[256];
    int rc = sage__ckpt_write(dir, &m, parts, &bytes, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "  %s\n", why);
    sage__buf_free(&part);
    return rc;
}

static void write_load_prune(void)
{
    char run[300], why[512];
    snprintf(run, sizeof run, "%s/run", tmp);
    for (uint64_t id = 1; id <= 4; id++)
        CHECK_INT(write_ckpt(run, id), 0);
    CHECK_INT(write_ckpt(run, 4), SAGE_EINVAL); /* not empty */
    sage__loaded l;
    CHECK_INT(sage__ckpt_load_latest(run, &l, NULL, NULL, why, sizeof why), 0);
    CHECK(l.m.id == 4 && l.parts[0] && l.parts[1] == NULL && l.part_len[0] > SAGE__PART_HDR);
    sage__loaded_free(&l);
    /* the newest is corrupt (a part cut short): the one before is used, and the skip is reported */
    char p[600];
    snprintf(p, sizeof p, "%s/chk-4/t0.part", run);
    CHECK_INT(truncate(p, 40), 0);
    int skips = 0;
    void skipped(const char *w, void *arg);
    CHECK_INT(sage__ckpt_load_latest(run, &l, skipped, &skips, why, sizeof why), 0);
    CHECK(l.m.id == 3);
    CHECK_INT(skips, 1);
    sage__loaded_free(&l);
    /* a missing manifest: never committed */
    snprintf(p, sizeof p, "%s/chk-3/MANIFEST", run);
    CHECK_INT(unlink(p), 0);
    CHECK_INT(sage__ckpt_load_latest(run, &l, skipped, &skips, why, sizeof why), 0);
    CHECK(l.m.id == 2);
    sage__loaded_free(&l);
    sage__ckpt_prune(run, 1);
    snprintf(p, sizeof p, "%s/chk-1", run);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/chk-4", run);
    CHECK(access(p, F_OK) == 0);
    sage__ckpt_remove(run);
    CHECK(access(run, F_OK) != 0);
    CHECK_INT(sage__ckpt_load_latest(run, &l, NULL, NULL, why, sizeof why), SAGE_ENOTFOUND);
}

void skipped(const char *w, void *arg)
{
    (*(int *)arg)++;
    CHECK(strstr(w, "does not match the manifest") != NULL || strstr(w, "MANIFEST") != NULL);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    setup();
    atexit(cleanup);
    RUN(part_round_trip);
    RUN(part_bad_input_table);
    RUN(manifest_round_trip);
    RUN(manifest_bad_input_table);
    RUN(write_load_prune);
    return CHECK_DONE();
}
