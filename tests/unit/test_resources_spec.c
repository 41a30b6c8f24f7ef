/* tests/unit/test_resources_spec.c - resource specs: JSON parsing, struct validation, byte quantities. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "sage/resources.h"

#define NAME63                                                                                                         \
    "abcdefghij"                                                                                                       \
    "abcdefghij"                                                                                                       \
    "abcdefghij"                                                                                                       \
    "abcdefghij"                                                                                                       \
    "abcdefghij"                                                                                                       \
    "abcdefghij"                                                                                                       \
    "abc"
#define NAME64 NAME63 "d"

/* ---- JSON table ---------------------------------------------------------- */

typedef struct parse_case {
    const char *json;
    int rc;
    /* good cases: the exact values */
    double cpus, gpus;
    uint64_t memory, osm;
    size_t ncustom;
    const char *names[3];
    double amounts[3];
    /* bad cases: a substring of the message, and the key it must name (NULL: none) */
    const char *msg;
    const char *key;
} parse_case;

#define OK(j, c, g, m, o)                                                                                              \
    {                                                                                                                  \
        j, 0, c, g, m, o, 0, {0}, {0}, NULL, NULL                                                                      \
    }
#define OKC(j, n, n0, a0, n1, a1)                                                                                      \
    {                                                                                                                  \
        j, 0, 0, 0, 0, 0, n, {n0, n1, NULL}, {a0, a1, 0}, NULL, NULL                                                   \
    }
#define BAD(j, m, k)                                                                                                   \
    {                                                                                                                  \
        j, SAGE_ERESOURCES, 0, 0, 0, 0, 0, {0}, {0}, m, k                                                              \
    }

static const parse_case parse_cases[] = {
    /* good */
    OK("{\"num_cpus\": 4, \"memory\": \"8GB\"}", 4, 0, UINT64_C(8000000000), 0),
    OK("{\"num_gpus\": 1, \"num_cpus\": 2}", 2, 1, 0, 0),
    OK("{}", 0, 0, 0, 0),
    OK("  {\"num_cpus\": 3}\n", 3, 0, 0, 0),
    OK("{\"num_cpus\": 0}", 0, 0, 0, 0),
    OK("{\"num_cpus\": -0}", 0, 0, 0, 0),
    OK("{\"num_cpus\": 0.5}", 0.5, 0, 0, 0),
    OK("{\"num_cpus\": 0.0001}", 0.0001, 0, 0, 0),
    OK("{\"num_cpus\": 1.2345}", 1.2345, 0, 0, 0),
    OK("{\"num_cpus\": 1e2}", 100, 0, 0, 0),
    OK("{\"num_cpus\": 128}", 128, 0, 0, 0),
    OK("{\"num_gpus\": 0}", 0, 0, 0, 0),
    OK("{\"num_gpus\": 0.25}", 0, 0.25, 0, 0),
    OK("{\"num_gpus\": 0.1}", 0, 0.1, 0, 0),
    OK("{\"num_gpus\": 0.0001}", 0, 0.0001, 0, 0),
    OK("{\"num_gpus\": 1.0}", 0, 1, 0, 0),
    OK("{\"num_gpus\": 8}", 0, 8, 0, 0),
    OK("{\"memory\": 0}", 0, 0, 0, 0),
    OK("{\"memory\": \"0\"}", 0, 0, 0, 0),
    OK("{\"memory\": 1073741824}", 0, 0, UINT64_C(1073741824), 0),
    OK("{\"memory\": 1e9}", 0, 0, UINT64_C(1000000000), 0),
    OK("{\"memory\": \"1.5GiB\"}", 0, 0, UINT64_C(1610612736), 0),
    OK("{\"memory\": \"1.5KiB\"}", 0, 0, UINT64_C(1536), 0),
    OK("{\"memory\": \" 2 TB \"}", 0, 0, UINT64_C(2000000000000), 0),
    OK("{\"memory\": \"9223372036854775807\"}", 0, 0, UINT64_C(9223372036854775807), 0),
    OK("{\"memory\": \"8388607TiB\"}", 0, 0, UINT64_C(9223370937343148032), 0),
    OK("{\"memory\": 9223372036854774784}", 0, 0, UINT64_C(9223372036854774784), 0),
    OK("{\"object_store_memory\": \"512MiB\"}", 0, 0, 0, UINT64_C(536870912)),
    OK("{\"object_store_memory\": 1000}", 0, 0, 0, 1000),
    OK("{\"num_cpus\": 2, \"num_gpus\": 0.5, \"memory\": \"4GiB\", \"object_store_memory\": \"1gb\"}", 2, 0.5,
       UINT64_C(4294967296), UINT64_C(1000000000)),
    OKC("{\"resources\": {\"ssd\": 2, \"accelerator_type:A100\": 0.5}}", 2, "ssd", 2, "accelerator_type:A100", 0.5),
    OKC("{\"resources\": {}}", 0, NULL, 0, NULL, 0),
    OKC("{\"resources\": {\"" NAME63 "\": 1}}", 1, NAME63, 1, NULL, 0),
    OKC("{\"resources\": {\"a.b-c_d:e\": 0.0001}}", 1, "a.b-c_d:e", 0.0001, NULL, 0),
    OKC("{\"resources\": {\"zeta\": 1, \"alpha\": 3}}", 2, "zeta", 1, "alpha", 3),
    OKC("{\"resources\": {\"CPUs\": 1}}", 1, "CPUs", 1, NULL, 0),

    /* num_cpus */
    BAD("{\"num_cpus\": -1}", "-1 is negative, must be >= 0", "\"num_cpus\""),
    BAD("{\"num_cpus\": -0.5}", "must be >= 0", "\"num_cpus\""),
    BAD("{\"num_cpus\": 0.00005}", "5e-05 is finer than the precision of 0.0001", "\"num_cpus\""),
    BAD("{\"num_cpus\": 4.00005}", "precision of 0.0001", "\"num_cpus\""),
    BAD("{\"num_cpus\": \"4\"}", "expected a number, got a string (\"4\")", "\"num_cpus\""),
    BAD("{\"num_cpus\": [4]}", "expected a number, got an array", "\"num_cpus\""),
    BAD("{\"num_cpus\": {}}", "expected a number, got an object", "\"num_cpus\""),
    BAD("{\"num_cpus\": true}", "expected a number, got a boolean", "\"num_cpus\""),
    BAD("{\"num_cpus\": null}", "expected a number, got null", "\"num_cpus\""),
    BAD("{\"num_cpus\": 1e999}", "invalid JSON at line 1 column 18: real number overflow", NULL),
    /* num_gpus */
    BAD("{\"num_gpus\": 1.5}", "key \"num_gpus\": 1.5 is neither a fraction in (0, 1] nor a whole number",
        "\"num_gpus\""),
    BAD("{\"num_gpus\": 2.25}", "neither a fraction in (0, 1] nor a whole number", "\"num_gpus\""),
    BAD("{\"num_gpus\": -1}", "must be >= 0", "\"num_gpus\""),
    BAD("{\"num_gpus\": 0.00005}", "precision of 0.0001", "\"num_gpus\""),
    BAD("{\"num_gpus\": false}", "expected a number, got a boolean (false)", "\"num_gpus\""),
    BAD("{\"num_gpus\": -1e999}", "real number overflow", NULL),
    /* memory, object_store_memory */
    BAD("{\"memory\": 1.5}", "1.5 is not a whole number of bytes", "\"memory\""),
    BAD("{\"memory\": -1}", "must be >= 0", "\"memory\""),
    BAD("{\"memory\": 9223372036854775808}", "9223372036854775808 overflows 2^63 bytes", "\"memory\""),
    BAD("{\"memory\": 9223372036854775807}", "overflows 2^63 bytes", "\"memory\""), /* rounds up to 2^63 as a double */
    BAD("{\"memory\": 1e19}", "overflows 2^63 bytes", "\"memory\""),
    BAD("{\"memory\": 1e999}", "real number overflow", NULL),
    BAD("{\"memory\": \"9223372036854775808\"}", "overflows 2^63 bytes", "\"memory\""),
    BAD("{\"memory\": \"8589934592GiB\"}", "overflows 2^63 bytes", "\"memory\""),
    BAD("{\"memory\": \"9.3EB\"}", "unknown unit \"EB\" (valid units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB",
        "\"memory\""),
    BAD("{\"memory\": \"8XB\"}", "invalid byte quantity \"8XB\": unknown unit \"XB\"", "\"memory\""),
    BAD("{\"memory\": \"1.5B\"}", "\"1.5B\": not a whole number of bytes", "\"memory\""),
    BAD("{\"memory\": \"0.3B\"}", "not a whole number of bytes", "\"memory\""),
    BAD("{\"memory\": \"\"}", "empty", "\"memory\""),
    BAD("{\"memory\": \"-1GB\"}", "a sign is not allowed", "\"memory\""),
    BAD("{\"memory\": \"1e9\"}", "exponent notation is not allowed", "\"memory\""),
    BAD("{\"memory\": true}", "expected a number of bytes or a string such as \"8GB\", got a boolean", "\"memory\""),
    BAD("{\"memory\": null}", "got null", "\"memory\""),
    BAD("{\"object_store_memory\": [1]}", "got an array", "\"object_store_memory\""),
    BAD("{\"object_store_memory\": \"1 PB\"}", "unknown unit \"PB\"", "\"object_store_memory\""),
    BAD("{\"object_store_memory\": 0.5}", "not a whole number of bytes", "\"object_store_memory\""),
    /* unknown keys */
    BAD("{\"num_cpu\": 4}", "unknown key \"num_cpu\" (did you mean \"num_cpus\"?)", "\"num_cpu\""),
    BAD("{\"cpus\": 4}", "unknown key \"cpus\" (did you mean \"num_cpus\"?)", "\"cpus\""),
    BAD("{\"CPU\": 4}", "(did you mean \"num_cpus\"?)", "\"CPU\""),
    BAD("{\"cpuCores\": 4}", "(did you mean \"num_cpus\"?)", "\"cpuCores\""),
    BAD("{\"gpus\": 1}", "unknown key \"gpus\" (did you mean \"num_gpus\"?)", "\"gpus\""),
    BAD("{\"num-gpus\": 1}", "(did you mean \"num_gpus\"?)", "\"num-gpus\""),
    BAD("{\"mem\": \"1GB\"}", "unknown key \"mem\" (did you mean \"memory\"?)", "\"mem\""),
    BAD("{\"memroy\": 1}", "(did you mean \"memory\"?)", "\"memroy\""),
    BAD("{\"object_store\": 1}", "(did you mean \"object_store_memory\"?)", "\"object_store\""),
    BAD("{\"resource\": {}}", "(did you mean \"resources\"?)", "\"resource\""),
    BAD("{\"MEMORY\": 1}", "(did you mean \"memory\"?)", "\"MEMORY\""),
    BAD("{\"foo\": 1}", "unknown key \"foo\" (valid keys: num_cpus, num_gpus, memory, object_store_memory, resources)",
        "\"foo\""),
    BAD("{\"num_cpus\": 1, \"bar\": 1}", "unknown key \"bar\" (valid keys:", "\"bar\""),
    /* custom resources */
    BAD("{\"resources\": {\"CPU\": 1}}", "custom resource \"CPU\" is reserved: use \"num_cpus\"", "\"resources\""),
    BAD("{\"resources\": {\"gpu\": 1}}", "custom resource \"gpu\" is reserved: use \"num_gpus\"", "\"resources\""),
    BAD("{\"resources\": {\"Memory\": 1}}", "custom resource \"Memory\" is reserved: use \"memory\"", "\"resources\""),
    BAD("{\"resources\": {\"object_store_memory\": 1}}", "is reserved: use \"object_store_memory\"", "\"resources\""),
    BAD("{\"resources\": {\"NUM_CPUS\": 1}}", "\"NUM_CPUS\" is reserved: use \"num_cpus\"", "\"resources\""),
    BAD("{\"resources\": {\"num_gpus\": 1}}", "is reserved: use \"num_gpus\"", "\"resources\""),
    BAD("{\"resources\": {\"\": 1}}", "custom resource name \"\" is empty", "\"resources\""),
    BAD("{\"resources\": {\"" NAME64 "\": 1}}", "is too long: 64 bytes, at most 63", "\"resources\""),
    BAD("{\"resources\": {\"my ssd\": 1}}", "custom resource name \"my ssd\" has invalid character ' '",
        "\"resources\""),
    BAD("{\"resources\": {\"caf\\u00e9\": 1}}", "has invalid byte 0xc3", "\"resources\""),
    BAD("{\"resources\": {\"a/b\": 1}}", "has invalid character '/'", "\"resources\""),
    BAD("{\"resources\": {\"ssd\": 0}}", "custom resource \"ssd\": amount 0 must be > 0", "\"resources\""),
    BAD("{\"resources\": {\"ssd\": -2}}", "amount -2 must be > 0", "\"resources\""),
    BAD("{\"resources\": {\"ssd\": \"2\"}}", "custom resource \"ssd\": expected a number, got a string",
        "\"resources\""),
    BAD("{\"resources\": {\"ssd\": 0.00001}}", "precision of 0.0001", "\"resources\""),
    BAD("{\"resources\": [1]}", "expected an object of name -> amount", "\"resources\""),
    BAD("{\"resources\": {\"r0\":1,\"r1\":1,\"r2\":1,\"r3\":1,\"r4\":1,\"r5\":1,\"r6\":1,\"r7\":1,\"r8\":1,"
        "\"r9\":1,\"r10\":1,\"r11\":1,\"r12\":1,\"r13\":1,\"r14\":1,\"r15\":1,\"r16\":1}}",
        "17 custom resources, at most 16 (SAGE_RES_CUSTOM_MAX)", "\"resources\""),
    /* document-level errors */
    BAD("{} x", "invalid JSON at line 1 column 4: end of file expected near 'x'", NULL),
    BAD("{\"num_cpus\": 4,}", "invalid JSON at line 1 column 16:", NULL),
    BAD("{\"num_cpus\" 4}", "invalid JSON at line 1", NULL),
    BAD("{\"num_cpus\": 4", "invalid JSON at line 1", NULL),
    BAD("{\n  \"num_cpus\": 4,\n  \"memory\": }", "invalid JSON at line 3 column", NULL),
    BAD("", "resource spec is empty", NULL),
    BAD("  \n ", "resource spec is empty", NULL),
    BAD("[]", "must be a JSON object such as {\"num_cpus\": 1}, got an array", NULL),
    BAD("4", "must be a JSON object such as {\"num_cpus\": 1}, got a number", NULL),
    BAD("\"num_cpus\"", "got a string", NULL),
    BAD("null", "got null", NULL),
    BAD("{\"num_cpus\": 1, \"num_cpus\": 2}", "duplicate key \"num_cpus\" (each key may appear only once)",
        "\"num_cpus\""),
    BAD("{\"resources\": {\"ssd\": 1, \"ssd\": 2}}", "duplicate key \"ssd\"", "\"ssd\""),
};

static void dump_case(const char *table, size_t i, const char *input, const char *err)
{
    fprintf(stderr, "    ^ %s[%zu] input: %s\n      message: %s\n", table, i, input ? input : "(null)", err);
}

static void test_parse_table(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const parse_case *c = &parse_cases[i];
        sage_resources r;
        char err[512];
        memset(&r, 0xA5, sizeof r);
        int before = check__failed_checks;
        int rc = sage_resources_parse(c->json, &r, err, sizeof err);
        CHECK_INT(rc, c->rc);
        if (c->rc == 0) {
            CHECK_STR(err, "");
            CHECK(r.num_cpus == c->cpus);
            CHECK(r.num_gpus == c->gpus);
            CHECK(!signbit(r.num_cpus));
            CHECK(r.memory == c->memory);
            CHECK(r.object_store_memory == c->osm);
            CHECK_INT(r.ncustom, c->ncustom);
            for (size_t k = 0; k < c->ncustom && k < 3; k++) {
                CHECK_STR(r.custom[k].name, c->names[k]);
                CHECK(r.custom[k].amount == c->amounts[k]);
            }
            /* the two forms agree */
            char verr[512];
            CHECK_INT(sage_resources_validate(&r, verr, sizeof verr), 0);
        } else {
            CHECK_CONTAINS(err, c->msg);
            if (c->key)
                CHECK_CONTAINS(err, c->key);
            CHECK(strlen(err) > 0);
        }
        if (check__failed_checks != before)
            dump_case("parse_cases", i, c->json, err);
    }
}

/* ---- sage_parse_bytes table ---------------------------------------------- */

typedef struct bytes_case {
    const char *text;
    int rc;
    uint64_t value;
    const char *msg;
} bytes_case;

#define BOK(t, v)                                                                                                      \
    {                                                                                                                  \
        t, 0, v, NULL                                                                                                  \
    }
#define BBAD(t, m)                                                                                                     \
    {                                                                                                                  \
        t, SAGE_ERESOURCES, 0, m                                                                                       \
    }

static const bytes_case bytes_cases[] = {
    BOK("0", 0),
    BOK("1", 1),
    BOK("007", 7),
    BOK("1B", 1),
    BOK("1b", 1),
    BOK("1KB", 1000),
    BOK("1kb", 1000),
    BOK("1kB", 1000),
    BOK("1MB", 1000000),
    BOK("1mb", 1000000),
    BOK("1GB", UINT64_C(1000000000)),
    BOK("1gb", UINT64_C(1000000000)),
    BOK("1TB", UINT64_C(1000000000000)),
    BOK("1tb", UINT64_C(1000000000000)),
    BOK("1KiB", 1024),
    BOK("1kib", 1024),
    BOK("1KIB", 1024),
    BOK("1MiB", 1048576),
    BOK("1mib", 1048576),
    BOK("1GiB", UINT64_C(1073741824)),
    BOK("1gib", UINT64_C(1073741824)),
    BOK("1TiB", UINT64_C(1099511627776)),
    BOK("1tib", UINT64_C(1099511627776)),
    BOK("8GB", UINT64_C(8000000000)),
    BOK("1.5GiB", UINT64_C(1610612736)),
    BOK("1.5KiB", 1536),
    BOK("1.25KiB", 1280),
    BOK("0.5KB", 500),
    BOK("0.001KB", 1),
    BOK("0.0009765625KiB", 1),
    BOK("2.000000000000000000000000000000KiB", 2048),
    BOK("1.099511627776TB", UINT64_C(1099511627776)),
    BOK("123456789.123456789GB", UINT64_C(123456789123456789)),
    BOK(" 42 ", 42),
    BOK("42 MB", 42000000),
    BOK("\t7\tGiB\n", UINT64_C(7516192768)),
    BOK("9223372036854775807", UINT64_C(9223372036854775807)),
    BOK("9223372036854775807B", UINT64_C(9223372036854775807)),
    BOK("8388607TiB", UINT64_C(9223370937343148032)),
    BOK("8388607.99999904632568359375TiB", UINT64_C(9223372036853727232)),
    BOK("9223372.036854775807TB", UINT64_C(9223372036854775807)),
    BBAD("9223372036854775808", "overflows 2^63 bytes"),
    BBAD("18446744073709551616", "overflows 2^63 bytes"),
    BBAD("99999999999999999999999999999", "overflows 2^63 bytes"),
    BBAD("8589934592GiB", "\"8589934592GiB\": overflows 2^63 bytes"),
    BBAD("8388608TiB", "overflows 2^63 bytes"),
    BBAD("9223372.036854775808TB", "overflows 2^63 bytes"),
    BBAD("9.3EB", "unknown unit \"EB\" (valid units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"),
    BBAD("1PiB", "unknown unit \"PiB\""),
    BBAD("4 bytes", "unknown unit \"bytes\""),
    BBAD("1.5B", "invalid byte quantity \"1.5B\": not a whole number of bytes"),
    BBAD("0.3B", "not a whole number of bytes"),
    BBAD("0.5", "not a whole number of bytes"),
    BBAD("0.0001KB", "not a whole number of bytes"),
    BBAD("1.00000000001KiB", "not a whole number of bytes"),
    BBAD("", "empty"),
    BBAD("   ", "empty"),
    BBAD("-1", "a sign is not allowed"),
    BBAD("+1KB", "a sign is not allowed"),
    BBAD("1e9", "exponent notation is not allowed"),
    BBAD("1E+3KB", "exponent notation is not allowed"),
    BBAD("0x1F", "hexadecimal is not allowed"),
    BBAD("inf", "expected a decimal number"),
    BBAD("nan", "expected a decimal number"),
    BBAD(".5GB", "expected a digit before '.'"),
    BBAD("5.GB", "expected a digit after '.'"),
    BBAD("1 2", "unexpected character '2' at offset 2"),
    BBAD("1KB5", "unexpected character '5'"),
    BBAD("1.5.5", "unexpected character '.'"),
    BBAD("1,5GB", "unexpected character ','"),
    BBAD("8 G B", "unexpected character 'B'"),
    BBAD("1GB\x01", "unexpected byte 0x01"),
    BBAD("12345678901234567890123456789012345678901234567890123456789012345", "too long (more than 64 characters)"),
};

static void test_bytes_table(void)
{
    for (size_t i = 0; i < sizeof bytes_cases / sizeof bytes_cases[0]; i++) {
        const bytes_case *c = &bytes_cases[i];
        uint64_t v = 12345;
        char err[512];
        int before = check__failed_checks;
        int rc = sage_parse_bytes(c->text, &v, err, sizeof err);
        CHECK_INT(rc, c->rc);
        if (c->rc == 0) {
            CHECK(v == c->value);
            if (v != c->value)
                fprintf(stderr, "  got %" PRIu64 ", expected %" PRIu64 "\n", v, c->value);
            CHECK_STR(err, "");
        } else {
            CHECK_CONTAINS(err, c->msg);
            CHECK_CONTAINS(err, "invalid byte quantity");
        }
        if (check__failed_checks != before)
            dump_case("bytes_cases", i, c->text, err);
    }
}

/* ---- sage_resources_validate table ---------------------------------------- */

enum { V_PLAIN, V_UNTERMINATED, V_FULL16 };

typedef struct validate_case {
    const char *label;
    double cpus, gpus;
    uint64_t memory, osm;
    size_t ncustom;
    const char *names[3];
    double amounts[3];
    int special;
    int rc;
    const char *msg;
} validate_case;

#define VOK(l, c, g, m, o)                                                                                             \
    {                                                                                                                  \
        l, c, g, m, o, 0, {0}, {0}, V_PLAIN, 0, NULL                                                                   \
    }
#define VBAD(l, c, g, m, o, msg)                                                                                       \
    {                                                                                                                  \
        l, c, g, m, o, 0, {0}, {0}, V_PLAIN, SAGE_ERESOURCES, msg                                                      \
    }
#define VC(l, n, n0, a0, n1, a1, rc, msg)                                                                              \
    {                                                                                                                  \
        l, 0, 0, 0, 0, n, {n0, n1, NULL}, {a0, a1, 0}, V_PLAIN, rc, msg                                                \
    }

static const validate_case validate_cases[] = {
    VOK("zero", 0, 0, 0, 0),
    VOK("typical", 4, 1, UINT64_C(8000000000), UINT64_C(1000000000)),
    VOK("fractions", 0.5, 0.25, 0, 0),
    VOK("whole gpus", 1, 8, 0, 0),
    VOK("max bytes", 0, 0, UINT64_C(9223372036854775807), UINT64_C(9223372036854775807)),
    VBAD("negative cpus", -1, 0, 0, 0, "key \"num_cpus\": -1 is negative, must be >= 0"),
    VBAD("nan cpus", NAN, 0, 0, 0, "key \"num_cpus\": nan is not a finite number"),
    VBAD("inf cpus", INFINITY, 0, 0, 0, "key \"num_cpus\": inf is not a finite number"),
    VBAD("fine cpus", 0.00005, 0, 0, 0, "key \"num_cpus\": 5e-05 is finer than the precision of 0.0001"),
    VBAD("1.5 gpus", 0, 1.5, 0, 0, "key \"num_gpus\": 1.5 is neither a fraction in (0, 1] nor a whole number"),
    VBAD("negative gpus", 0, -0.5, 0, 0, "key \"num_gpus\": -0.5 is negative"),
    VBAD("nan gpus", 0, NAN, 0, 0, "key \"num_gpus\": nan is not a finite number"),
    VBAD("fine gpus", 0, 0.12345, 0, 0, "key \"num_gpus\": 0.12345 is finer than the precision of 0.0001"),
    VBAD("memory 2^63", 0, 0, UINT64_C(9223372036854775808), 0,
         "key \"memory\": 9223372036854775808 overflows 2^63 bytes"),
    VBAD("osm max", 0, 0, 0, UINT64_MAX, "key \"object_store_memory\": 18446744073709551615 overflows 2^63 bytes"),
    VC("custom ok", 2, "ssd", 2, "tpu", 0.5, 0, NULL),
    VC("custom 63", 1, NAME63, 1, NULL, 0, 0, NULL),
    VC("custom empty name", 1, "", 1, NULL, 0, SAGE_ERESOURCES,
       "key \"resources\": custom resource name \"\" is empty"),
    VC("custom reserved CPU", 1, "CPU", 1, NULL, 0, SAGE_ERESOURCES,
       "key \"resources\": custom resource \"CPU\" is reserved: use \"num_cpus\""),
    VC("custom reserved gpu", 1, "gpu", 1, NULL, 0, SAGE_ERESOURCES, "is reserved: use \"num_gpus\""),
    VC("custom reserved memory", 1, "MEMORY", 1, NULL, 0, SAGE_ERESOURCES, "is reserved: use \"memory\""),
    VC("custom space", 1, "a b", 1, NULL, 0, SAGE_ERESOURCES, "has invalid character ' '"),
    VC("custom zero", 1, "ssd", 0, NULL, 0, SAGE_ERESOURCES, "custom resource \"ssd\": amount 0 must be > 0"),
    VC("custom nan", 1, "ssd", NAN, NULL, 0, SAGE_ERESOURCES, "custom resource \"ssd\": nan is not a finite number"),
    VC("custom inf", 1, "ssd", INFINITY, NULL, 0, SAGE_ERESOURCES, "is not a finite number"),
    VC("custom fine", 1, "ssd", 0.00001, NULL, 0, SAGE_ERESOURCES, "precision of 0.0001"),
    VC("custom duplicate", 2, "ssd", 1, "ssd", 2, SAGE_ERESOURCES,
       "custom resource \"ssd\" appears twice (custom[0] and custom[1])"),
    {"unterminated name",
     0,
     0,
     0,
     0,
     1,
     {0},
     {0},
     V_UNTERMINATED,
     SAGE_ERESOURCES,
     "key \"resources\": custom[0] name is not NUL-terminated within 64 bytes"},
    {"16 custom", 0, 0, 0, 0, 16, {0}, {0}, V_FULL16, 0, NULL},
    {"17 custom",
     0,
     0,
     0,
     0,
     17,
     {0},
     {0},
     V_FULL16,
     SAGE_ERESOURCES,
     "key \"resources\": 17 custom resources, at most 16 (SAGE_RES_CUSTOM_MAX)"},
};

static void test_validate_table(void)
{
    for (size_t i = 0; i < sizeof validate_cases / sizeof validate_cases[0]; i++) {
        const validate_case *c = &validate_cases[i];
        sage_resources r;
        memset(&r, 0, sizeof r);
        r.num_cpus = c->cpus;
        r.num_gpus = c->gpus;
        r.memory = c->memory;
        r.object_store_memory = c->osm;
        r.ncustom = c->ncustom;
        if (c->special == V_PLAIN) {
            for (size_t k = 0; k < c->ncustom && k < 3; k++) {
                snprintf(r.custom[k].name, sizeof r.custom[k].name, "%s", c->names[k]);
                r.custom[k].amount = c->amounts[k];
            }
        } else if (c->special == V_UNTERMINATED) {
            memset(r.custom[0].name, 'a', sizeof r.custom[0].name);
            r.custom[0].amount = 1;
        } else {
            for (size_t k = 0; k < SAGE_RES_CUSTOM_MAX; k++) {
                snprintf(r.custom[k].name, sizeof r.custom[k].name, "res%zu", k);
                r.custom[k].amount = 1;
            }
        }
        char err[512];
        int before = check__failed_checks;
        int rc = sage_resources_validate(&r, err, sizeof err);
        CHECK_INT(rc, c->rc);
        if (c->rc == 0)
            CHECK_STR(err, "");
        else
            CHECK_CONTAINS(err, c->msg);
        if (check__failed_checks != before)
            dump_case("validate_cases", i, c->label, err);
    }
}

/* ---- special cases -------------------------------------------------------- */

static void test_null_arguments(void)
{
    sage_resources r;
    char err[256];
    uint64_t v;
    CHECK_INT(sage_resources_parse(NULL, &r, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "resource spec is NULL");
    CHECK_INT(sage_resources_parse("{}", NULL, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "NULL output");
    CHECK_INT(sage_resources_validate(NULL, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "NULL");
    CHECK_INT(sage_parse_bytes(NULL, &v, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "NULL text");
    CHECK_INT(sage_parse_bytes("1GB", NULL, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "NULL output");
}

static void test_no_error_buffer(void)
{
    sage_resources r;
    uint64_t v;
    char err[8] = "xxxxxxx";
    CHECK_INT(sage_resources_parse("{\"num_gpus\": 1.5}", &r, NULL, 0), SAGE_ERESOURCES);
    CHECK_INT(sage_resources_parse("{\"num_gpus\": 1.5}", &r, NULL, 100), SAGE_ERESOURCES);
    CHECK_INT(sage_resources_parse("{\"num_gpus\": 1.5}", &r, err, 0), SAGE_ERESOURCES);
    CHECK_STR(err, "xxxxxxx"); /* err_len 0: untouched */
    CHECK_INT(sage_resources_parse("{\"num_gpus\": 1}", &r, NULL, 0), 0);
    CHECK_INT(sage_parse_bytes("1XB", &v, NULL, 0), SAGE_ERESOURCES);
    CHECK_INT(sage_parse_bytes("1GB", &v, NULL, 0), 0);
    CHECK(v == UINT64_C(1000000000));
    sage_resources bad;
    memset(&bad, 0, sizeof bad);
    bad.num_cpus = -1;
    CHECK_INT(sage_resources_validate(&bad, NULL, 0), SAGE_ERESOURCES);
}

static void test_truncation(void)
{
    const char *json = "{\"num_gpus\": 1.5}";
    char full[512], small[16], one[1] = {'x'};
    sage_resources r;
    CHECK_INT(sage_resources_parse(json, &r, full, sizeof full), SAGE_ERESOURCES);
    memset(small, 'Z', sizeof small);
    CHECK_INT(sage_resources_parse(json, &r, small, sizeof small), SAGE_ERESOURCES);
    CHECK_INT(strlen(small), sizeof small - 1);
    CHECK(strncmp(small, full, sizeof small - 1) == 0);
    CHECK_INT(sage_resources_parse(json, &r, one, sizeof one), SAGE_ERESOURCES);
    CHECK_INT(one[0], 0);
    uint64_t v;
    memset(small, 'Z', sizeof small);
    CHECK_INT(sage_parse_bytes("9.3EB", &v, small, sizeof small), SAGE_ERESOURCES);
    CHECK_INT(strlen(small), sizeof small - 1);
}

static void test_output_zeroed(void)
{
    sage_resources r;
    memset(&r, 0xFF, sizeof r);
    CHECK_INT(sage_resources_parse("{\"num_cpus\": 2}", &r, NULL, 0), 0);
    CHECK(r.num_gpus == 0 && r.memory == 0 && r.object_store_memory == 0 && r.ncustom == 0);
    CHECK_STR(r.custom[0].name, "");
    /* on error nothing half-parsed is left behind */
    memset(&r, 0xFF, sizeof r);
    CHECK_INT(sage_resources_parse("{\"num_cpus\": 2, \"resources\": {\"ssd\": 1, \"CPU\": 1}}", &r, NULL, 0),
              SAGE_ERESOURCES);
    CHECK(r.num_cpus == 0 && r.ncustom == 0);
    CHECK_STR(r.custom[0].name, "");
    uint64_t v = 99;
    CHECK_INT(sage_parse_bytes("nope", &v, NULL, 0), SAGE_ERESOURCES);
    CHECK(v == 0);
}

static void test_sixteen_custom_json(void)
{
    char json[1024];
    size_t len = 0;
    len += (size_t)snprintf(json + len, sizeof json - len, "{\"resources\": {");
    for (int i = 0; i < SAGE_RES_CUSTOM_MAX; i++)
        len += (size_t)snprintf(json + len, sizeof json - len, "%s\"r%d\": %d", i ? ", " : "", i, i + 1);
    snprintf(json + len, sizeof json - len, "}}");
    sage_resources r;
    char err[256];
    CHECK_INT(sage_resources_parse(json, &r, err, sizeof err), 0);
    CHECK_INT(r.ncustom, SAGE_RES_CUSTOM_MAX);
    CHECK_STR(r.custom[15].name, "r15");
    CHECK(r.custom[15].amount == 16);
    CHECK_INT(sage_resources_validate(&r, err, sizeof err), 0);
}

static void test_long_unknown_key(void)
{
    /* a long key is quoted, cut, and gets no suggestion */
    char json[512], err[512];
    char key[201];
    memset(key, 'k', 200);
    key[200] = '\0';
    snprintf(json, sizeof json, "{\"%s\": 1}", key);
    sage_resources r;
    CHECK_INT(sage_resources_parse(json, &r, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "unknown key \"kkkk");
    CHECK_CONTAINS(err, "...\" (valid keys:");
    /* quotes and control characters in a key are escaped */
    CHECK_INT(sage_resources_parse("{\"a\\\"b\\n\": 1}", &r, err, sizeof err), SAGE_ERESOURCES);
    CHECK_CONTAINS(err, "unknown key \"a\\\"b\\x0a\"");
}

static size_t parse_case_count(void) { return sizeof parse_cases / sizeof parse_cases[0]; }
static size_t bytes_case_count(void) { return sizeof bytes_cases / sizeof bytes_cases[0]; }
static size_t validate_case_count(void) { return sizeof validate_cases / sizeof validate_cases[0]; }

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    printf("table cases: %zu parse, %zu bytes, %zu validate\n", parse_case_count(), bytes_case_count(),
           validate_case_count());
    RUN(test_parse_table);
    RUN(test_bytes_table);
    RUN(test_validate_table);
    RUN(test_null_arguments);
    RUN(test_no_error_buffer);
    RUN(test_truncation);
    RUN(test_output_zeroed);
    RUN(test_sixteen_custom_json);
    RUN(test_long_unknown_key);
    return CHECK_DONE();
}
