/* fuzz/fuzz_resources.c - fuzzes resource specs: JSON parsing, struct validation and byte quantities. */
/*
 * Each input is tried three ways: as a JSON resource spec, as a byte quantity,
 * and (when it parses) through sage_resources_validate, which must accept
 * whatever the parser accepted. Failures must come with a non-empty,
 * NUL-terminated message, and smaller error buffers (or none) must not change
 * the verdict. A successful byte quantity is also checked against a
 * floating-point re-computation of the same text.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sage/resources.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 4096

static void fail(const char *what, const char *input, const char *err)
{
    fprintf(stderr, "fuzz_resources: %s\n  input: %s\n  message: %s\n", what, input, err ? err : "");
    abort();
}

/* The message after a failure: non-empty and NUL-terminated within the buffer. */
static void check_message(const char *err, size_t cap, const char *input)
{
    if (memchr(err, '\0', cap) == NULL)
        fail("message not NUL-terminated", input, "");
    if (err[0] == '\0')
        fail("failure without a message", input, err);
}

/* Recompute a byte quantity in floating point: number, optional spaces, unit. */
static int float_bytes(const char *text, double *out)
{
    static const struct {
        const char *name;
        double mult;
    } units[] = {
        {"b", 1},           {"kb", 1e3},           {"mb", 1e6},
        {"gb", 1e9},        {"tb", 1e12},          {"kib", 1024.0},
        {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0},
    };
    char num[80], unit[80];
    size_t nn = 0, nu = 0;
    const char *p = text;
    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    while (((*p >= '0' && *p <= '9') || *p == '.') && nn + 1 < sizeof num)
        num[nn++] = *p++;
    num[nn] = '\0';
    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    while (((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) && nu + 1 < sizeof unit) {
        unit[nu++] = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        p++;
    }
    unit[nu] = '\0';
    char *end = NULL;
    double v = strtod(num, &end);
    if (nn == 0 || !end || *end != '\0')
        return -1;
    double mult = nu == 0 ? 1 : 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0)
            mult = units[i].mult;
    if (mult == 0)
        return -1;
    *out = v * mult;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    /* JSON form */
    sage_resources r;
    char err[512], small[8];
    int rc = sage_resources_parse(text, &r, err, sizeof err);
    if (rc != 0 && rc != SAGE_ERESOURCES)
        fail("parse returned an unexpected code", text, err);
    if (rc != 0) {
        check_message(err, sizeof err, text);
    } else {
        if (err[0] != '\0')
            fail("success with a message", text, err);
        char verr[512];
        if (sage_resources_validate(&r, verr, sizeof verr) != 0)
            fail("validate refuses what parse accepted", text, verr);
        if (r.ncustom > SAGE_RES_CUSTOM_MAX || r.memory >= (UINT64_C(1) << 63) ||
            r.object_store_memory >= (UINT64_C(1) << 63))
            fail("parsed values out of range", text, "");
    }
    sage_resources r2;
    if (sage_resources_parse(text, &r2, NULL, 0) != rc || sage_resources_parse(text, &r2, small, sizeof small) != rc)
        fail("verdict depends on the error buffer", text, err);
    if (rc != 0 && memchr(small, '\0', sizeof small) == NULL)
        fail("truncated message not NUL-terminated", text, small);

    /* byte quantity */
    uint64_t v = 0;
    rc = sage_parse_bytes(text, &v, err, sizeof err);
    if (rc != 0 && rc != SAGE_ERESOURCES)
        fail("parse_bytes returned an unexpected code", text, err);
    if (rc != 0) {
        check_message(err, sizeof err, text);
    } else {
        if (v >= (UINT64_C(1) << 63))
            fail("byte quantity >= 2^63", text, "");
        double f;
        if (float_bytes(text, &f) != 0)
            fail("parse_bytes accepted text the float oracle cannot read", text, "");
        if (fabs(f - (double)v) > 1e-9 * fmax(1.0, f))
            fail("parse_bytes disagrees with the float oracle", text, "");
    }
    uint64_t v2 = 0;
    if (sage_parse_bytes(text, &v2, NULL, 0) != rc || sage_parse_bytes(text, &v2, small, sizeof small) != rc || v2 != v)
        fail("parse_bytes verdict depends on the error buffer", text, err);

    free(text);
    return 0;
}
