/* resources/spec.c - parse and validate resource requests: JSON text, the struct form, byte quantities. */
/*
 * Design. One set of value checkers (check_cpus, check_gpus, check_amount,
 * check_bytes_number, check_name) is shared by the JSON parser and by
 * sage_resources_validate, so a request accepted in one form is accepted in
 * the other (fuzz/fuzz_resources.c asserts exactly that).
 *
 * JSON is parsed by jansson with duplicate keys rejected and integers decoded
 * as reals, so an oversized integer reaches our own range checks instead of
 * failing inside the parser; jansson's own errors are wrapped with their line
 * and column.
 *
 * jansson (2.14) does not always say when an allocation failed inside
 * json_loads: it may return NULL with an empty message, report a syntax error
 * ("invalid token", "string or '}' expected"), or even succeed with one byte
 * missing from a token longer than 15 bytes (its lexer ignores a failed buffer
 * growth), so a long custom resource name would be accepted misspelt. The text
 * is therefore parsed twice (sage__json_loadb, util/json.c): the parser is deterministic, so two
 * parses that disagree (one fails, the messages differ, the values differ)
 * mean an allocation failed, and the call returns SAGE_ENOMEM. A lasting
 * shortage makes the second parse fail at its first allocation, with jansson's
 * empty message: SAGE_ENOMEM too. tests/unit/test_alloc_torture.c fails every
 * allocation of the parser in turn.
 *
 * Byte quantities are computed exactly in integers, never through a double:
 * the value is I.F * 2^a * 5^b (every unit is a product of powers of 2 and 5),
 * so the fraction digits F (trailing zeros dropped, d digits) are divided by
 * 2^(d-a) and 5^(d-b) by decimal long division; a remainder means the result
 * is not a whole number of bytes ("1.5B"), otherwise the quotient is scaled
 * back up and added to I * 2^a * 5^b with overflow checks against 2^63.
 *
 * Every message names the key it is about first: key "num_gpus": ...
 */
#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sage/resources.h"
#include "util/json.h"
#include "util/suggest.h"
#include "util/err.h"

#define SPEC_PRECISION_STEPS 10000.0           /* 1 / 0.0001 */
#define SPEC_BYTES_LIMIT 9223372036854775808.0 /* 2^63, exclusive, as a double */
#define SPEC_BYTES_MAX UINT64_C(9223372036854775807)
#define SPEC_BYTES_TEXT_MAX 64 /* longest byte-quantity text, in bytes */
#define SPEC_MSG_MAX 512       /* inner message buffers */
#define SPEC_NAME_RULE "names are 1 to 63 characters of A-Z a-z 0-9 _ . : -"
#define SPEC_UNIT_LIST "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
#define SPEC_KEY_LIST "num_cpus, num_gpus, memory, object_store_memory, resources"

/* ---- messages --------------------------------------------------------- */

/* Append to dst (NUL-terminated, capacity cap) without overflowing. */
static void append_char(char *dst, size_t cap, size_t *len, char c)
{
    if (*len + 1 < cap) {
        dst[*len] = c;
        (*len)++;
        dst[*len] = '\0';
    }
}

/* Write s as a double-quoted string into dst: quotes, backslashes and control
 * bytes escaped, at most max_bytes bytes of s (then "..." inside the quotes,
 * cut on a UTF-8 character boundary). */
static void quote_str(char *dst, size_t cap, const char *s, size_t max_bytes)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    if (cap == 0)
        return;
    dst[0] = '\0';
    size_t n = strnlen(s, max_bytes + 1);
    int cut = n > max_bytes;
    if (cut) {
        n = max_bytes;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    append_char(dst, cap, &len, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            append_char(dst, cap, &len, '\\');
            append_char(dst, cap, &len, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            append_char(dst, cap, &len, '\\');
            append_char(dst, cap, &len, 'x');
            append_char(dst, cap, &len, hex[c >> 4]);
            append_char(dst, cap, &len, hex[c & 15]);
        } else {
            append_char(dst, cap, &len, (char)c);
        }
    }
    if (cut) {
        append_char(dst, cap, &len, '.');
        append_char(dst, cap, &len, '.');
        append_char(dst, cap, &len, '.');
    }
    append_char(dst, cap, &len, '"');
}

/* Describe one byte for a message: 'x' for printable ASCII, else byte 0xNN. */
static void describe_byte(char *dst, size_t cap, unsigned char c)
{
    if (c > 0x20 && c < 0x7f && c != '\'')
        snprintf(dst, cap, "character '%c'", c);
    else if (c == ' ')
        snprintf(dst, cap, "character ' ' (space)");
    else
        snprintf(dst, cap, "byte 0x%02x", c);
}

/* The shortest text that reads back as v (whole numbers without exponent). */
static void fmt_num(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, "%s", v < 0 ? "-inf" : "inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e21) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        char *end = NULL;
        double back = strtod(buf, &end);
        if (end && *end == '\0' && back == v)
            return;
    }
    snprintf(buf, cap, "%.17g", v);
}

static const char *json_type_phrase(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "a boolean (true)";
    case JSON_FALSE: return "a boolean (false)";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

/* key "num_cpus": expected a number, got a string ("4") */
static void type_err(char *err, size_t err_len, const char *what, const char *expected, const json_t *v)
{
    if (json_is_string(v)) {
        char q[96];
        quote_str(q, sizeof q, json_string_value(v), 32);
        sage__fmt(err, err_len, "%s: expected %s, got a string (%s)", what, expected, q);
    } else {
        sage__fmt(err, err_len, "%s: expected %s, got %s", what, expected, json_type_phrase(v));
    }
}

/* ---- ASCII helpers (no locale) ---------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int ascii_caseeq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (lower(*a) != lower(*b))
            return 0;
    return *a == *b;
}

static int ascii_caseeq_n(const char *a, size_t alen, const char *b)
{
    if (strlen(b) != alen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower(a[i]) != lower(b[i]))
            return 0;
    return 1;
}

/* ---- value checkers, shared by the JSON and struct forms -------------- */

/* v is a multiple of 0.0001 within floating tolerance. */
static int on_precision_grid(double v)
{
    if (fabs(v) >= 1e11) /* every double this large is within tolerance */
        return 1;
    double steps = v * SPEC_PRECISION_STEPS;
    double tol = fmax(1e-6, fabs(steps) * 1e-12);
    return fabs(steps - nearbyint(steps)) <= tol;
}

static int check_finite_nonneg(double v, const char *what, char *err, size_t err_len)
{
    char num[64];
    fmt_num(num, sizeof num, v);
    if (!isfinite(v)) {
        sage__fmt(err, err_len, "%s: %s is not a finite number", what, num);
        return -1;
    }
    if (v < 0) {
        sage__fmt(err, err_len, "%s: %s is negative, must be >= 0", what, num);
        return -1;
    }
    return 0;
}

static int check_grid(double v, const char *what, char *err, size_t err_len)
{
    if (!on_precision_grid(v)) {
        char num[64];
        fmt_num(num, sizeof num, v);
        sage__fmt(err, err_len, "%s: %s is finer than the precision of 0.0001", what, num);
        return -1;
    }
    return 0;
}

static int check_cpus(double v, char *err, size_t err_len)
{
    const char *what = "key \"num_cpus\"";
    if (check_finite_nonneg(v, what, err, err_len))
        return -1;
    return check_grid(v, what, err, err_len);
}

static int check_gpus(double v, char *err, size_t err_len)
{
    const char *what = "key \"num_gpus\"";
    if (check_finite_nonneg(v, what, err, err_len))
        return -1;
    if (v == 0 || v == floor(v))
        return 0;
    if (v < 1)
        return check_grid(v, what, err, err_len);
    char num[64];
    fmt_num(num, sizeof num, v);
    sage__fmt(err, err_len, "%s: %s is neither a fraction in (0, 1] nor a whole number", what, num);
    return -1;
}

/* A custom amount: > 0, finite, 0.0001 precision. */
static int check_amount(double v, const char *what, char *err, size_t err_len)
{
    char num[64];
    fmt_num(num, sizeof num, v);
    if (!isfinite(v)) {
        sage__fmt(err, err_len, "%s: %s is not a finite number", what, num);
        return -1;
    }
    if (!(v > 0)) {
        sage__fmt(err, err_len, "%s: amount %s must be > 0", what, num);
        return -1;
    }
    return check_grid(v, what, err, err_len);
}

/* A byte count given as a JSON number. */
static int check_bytes_number(double v, const char *what, uint64_t *out, char *err, size_t err_len)
{
    if (check_finite_nonneg(v, what, err, err_len))
        return -1;
    char num[64];
    fmt_num(num, sizeof num, v);
    if (v != floor(v)) {
        sage__fmt(err, err_len, "%s: %s is not a whole number of bytes", what, num);
        return -1;
    }
    if (v >= SPEC_BYTES_LIMIT) {
        sage__fmt(err, err_len, "%s: %s overflows 2^63 bytes (at most %" PRIu64 ")", what, num, SPEC_BYTES_MAX);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int check_bytes_u64(uint64_t v, const char *what, char *err, size_t err_len)
{
    if (v > SPEC_BYTES_MAX) {
        sage__fmt(err, err_len, "%s: %" PRIu64 " overflows 2^63 bytes (at most %" PRIu64 ")", what, v, SPEC_BYTES_MAX);
        return -1;
    }
    return 0;
}

static const struct {
    const char *name, *use;
} reserved_names[] = {
    {"CPU", "num_cpus"},      {"GPU", "num_gpus"},
    {"memory", "memory"},     {"object_store_memory", "object_store_memory"},
    {"num_cpus", "num_cpus"}, {"num_gpus", "num_gpus"},
};

static int name_char_ok(char c) { return is_digit(c) || is_alpha(c) || c == '_' || c == '.' || c == ':' || c == '-'; }

/* A custom resource name of len bytes (len may exceed the limit). */
static int check_name(const char *name, size_t len, char *err, size_t err_len)
{
    char q[SAGE_RES_NAME_MAX * 4 + 16];
    quote_str(q, sizeof q, name, SAGE_RES_NAME_MAX + 1);
    if (len == 0) {
        sage__fmt(err, err_len, "key \"resources\": custom resource name \"\" is empty (" SPEC_NAME_RULE ")");
        return -1;
    }
    if (len > SAGE_RES_NAME_MAX) {
        sage__fmt(err, err_len, "key \"resources\": custom resource name %s is too long: %zu bytes, at most %d", q, len,
                  SAGE_RES_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char_ok(name[i])) {
            char what[48];
            describe_byte(what, sizeof what, (unsigned char)name[i]);
            sage__fmt(err, err_len, "key \"resources\": custom resource name %s has invalid %s (" SPEC_NAME_RULE ")", q,
                      what);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++) {
        if (ascii_caseeq(name, reserved_names[i].name)) {
            sage__fmt(err, err_len, "key \"resources\": custom resource %s is reserved: use \"%s\"", q,
                      reserved_names[i].use);
            return -1;
        }
    }
    return 0;
}

/* ---- byte quantities --------------------------------------------------- */

static const struct {
    const char *name;
    unsigned p2, p5; /* the unit is 2^p2 * 5^p5 bytes */
} byte_units[] = {
    {"B", 0, 0},    {"KB", 3, 3},   {"MB", 6, 6},   {"GB", 9, 9},   {"TB", 12, 12},
    {"KiB", 10, 0}, {"MiB", 20, 0}, {"GiB", 30, 0}, {"TiB", 40, 0},
};

/* Divide the decimal number digits[0..n) (values 0..9) by div in place;
 * returns the remainder. */
static unsigned divide_digits(unsigned char *digits, size_t n, unsigned div)
{
    unsigned rem = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cur = rem * 10 + digits[i];
        digits[i] = (unsigned char)(cur / div);
        rem = cur % div;
    }
    return rem;
}

/* Parse text into *out; on error write the reason (without the text) to msg. */
static int parse_bytes_reason(const char *text, uint64_t *out, char *msg, size_t msg_len)
{
    const char *p = text;
    while (is_space(*p))
        p++;
    if (*p == '\0') {
        sage__fmt(msg, msg_len, "empty: expected a number of bytes such as \"8GB\" or \"512MiB\"");
        return -1;
    }
    if (*p == '-' || *p == '+') {
        sage__fmt(msg, msg_len, "a sign is not allowed (sizes are non-negative numbers such as \"8GB\")");
        return -1;
    }
    if (*p == '.') {
        sage__fmt(msg, msg_len, "expected a digit before '.'");
        return -1;
    }
    if (!is_digit(*p)) {
        sage__fmt(msg, msg_len, "expected a decimal number such as \"8GB\" or \"1.5GiB\"");
        return -1;
    }

    /* Integer part, exactly; anything >= 2^63 overflows whatever the unit. */
    uint64_t ipart = 0;
    int overflow = 0;
    for (; is_digit(*p); p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (ipart > (SPEC_BYTES_MAX - dgt) / 10)
            overflow = 1;
        else
            ipart = ipart * 10 + dgt;
    }
    if (!overflow && (*p == 'x' || *p == 'X') && ipart == 0 && p[-1] == '0') {
        sage__fmt(msg, msg_len, "hexadecimal is not allowed (use decimal digits)");
        return -1;
    }

    /* Fraction digits, trailing zeros dropped. */
    unsigned char frac[SPEC_BYTES_TEXT_MAX];
    size_t nfrac = 0;
    if (*p == '.') {
        p++;
        if (!is_digit(*p)) {
            sage__fmt(msg, msg_len, "expected a digit after '.'");
            return -1;
        }
        for (; is_digit(*p); p++)
            if (nfrac < sizeof frac)
                frac[nfrac++] = (unsigned char)(*p - '0');
        while (nfrac > 0 && frac[nfrac - 1] == 0)
            nfrac--;
    }
    if ((*p == 'e' || *p == 'E') && (is_digit(p[1]) || p[1] == '+' || p[1] == '-')) {
        sage__fmt(msg, msg_len, "exponent notation is not allowed (use a unit such as \"GB\")");
        return -1;
    }

    /* Unit. */
    while (is_space(*p))
        p++;
    const char *unit = p;
    while (is_alpha(*p))
        p++;
    size_t unit_len = (size_t)(p - unit);
    while (is_space(*p))
        p++;
    if (*p != '\0') {
        char what[48];
        describe_byte(what, sizeof what, (unsigned char)*p);
        sage__fmt(msg, msg_len, "unexpected %s at offset %zu", what, (size_t)(p - text));
        return -1;
    }
    unsigned p2 = 0, p5 = 0;
    if (unit_len > 0) {
        size_t i, n = sizeof byte_units / sizeof byte_units[0];
        for (i = 0; i < n; i++)
            if (ascii_caseeq_n(unit, unit_len, byte_units[i].name))
                break;
        if (i == n) {
            sage__fmt(msg, msg_len, "unknown unit \"%.*s\" (valid units: " SPEC_UNIT_LIST ", case-insensitive)",
                      (int)unit_len, unit);
            return -1;
        }
        p2 = byte_units[i].p2;
        p5 = byte_units[i].p5;
    }
    if (overflow) {
        sage__fmt(msg, msg_len, "overflows 2^63 bytes (at most %" PRIu64 ")", SPEC_BYTES_MAX);
        return -1;
    }

    /* fraction * 2^p2 * 5^p5 / 10^nfrac, exactly, or "not whole". */
    for (size_t k = p2; k < nfrac; k++)
        if (divide_digits(frac, nfrac, 2) != 0)
            goto not_whole;
    for (size_t k = p5; k < nfrac; k++)
        if (divide_digits(frac, nfrac, 5) != 0)
            goto not_whole;
    uint64_t fpart = 0; /* now < the unit, at most 2^40 */
    for (size_t i = 0; i < nfrac; i++)
        fpart = fpart * 10 + frac[i];
    for (size_t k = nfrac; k < p2; k++)
        fpart *= 2;
    for (size_t k = nfrac; k < p5; k++)
        fpart *= 5;

    uint64_t mult = 1;
    for (unsigned k = 0; k < p2; k++)
        mult *= 2;
    for (unsigned k = 0; k < p5; k++)
        mult *= 5;
    if (ipart > (SPEC_BYTES_MAX - fpart) / mult) {
        sage__fmt(msg, msg_len, "overflows 2^63 bytes (at most %" PRIu64 ")", SPEC_BYTES_MAX);
        return -1;
    }
    *out = ipart * mult + fpart;
    return 0;

not_whole:
    sage__fmt(msg, msg_len, "not a whole number of bytes");
    return -1;
}

/* The full message: invalid byte quantity "TEXT": reason. */
static int parse_bytes_msg(const char *text, uint64_t *out, char *err, size_t err_len)
{
    char q[SPEC_BYTES_TEXT_MAX * 4 + 16];
    if (!text) {
        sage__fmt(err, err_len, "invalid byte quantity: NULL text");
        return -1;
    }
    size_t n = strnlen(text, SPEC_BYTES_TEXT_MAX + 1);
    if (n > SPEC_BYTES_TEXT_MAX) {
        quote_str(q, sizeof q, text, 24);
        sage__fmt(err, err_len, "invalid byte quantity %s: too long (more than %d characters)", q, SPEC_BYTES_TEXT_MAX);
        return -1;
    }
    char reason[SPEC_MSG_MAX];
    if (parse_bytes_reason(text, out, reason, sizeof reason) == 0)
        return 0;
    quote_str(q, sizeof q, text, SPEC_BYTES_TEXT_MAX);
    sage__fmt(err, err_len, "invalid byte quantity %s: %s", q, reason);
    return -1;
}

SAGE_API int sage_parse_bytes(const char *text, uint64_t *out, char *err, size_t err_len)
{
    uint64_t v = 0;
    if (err && err_len)
        err[0] = '\0';
    if (out)
        *out = 0;
    if (!out) {
        sage__fmt(err, err_len, "invalid byte quantity: NULL output");
        return SAGE_ERESOURCES;
    }
    if (parse_bytes_msg(text, &v, err, err_len) != 0)
        return SAGE_ERESOURCES;
    *out = v;
    return SAGE_OK;
}

/* ---- unknown-key suggestions ------------------------------------------- */

static const char *const valid_keys[] = {"num_cpus", "num_gpus", "memory", "object_store_memory", "resources"};

/* Spellings from Ray, Flink, Kubernetes and habit, normalized (see normalize_key). */
static const struct {
    const char *alias, *key;
} key_aliases[] = {
    {"cpu", "num_cpus"},
    {"cpus", "num_cpus"},
    {"ncpu", "num_cpus"},
    {"ncpus", "num_cpus"},
    {"vcpu", "num_cpus"},
    {"vcpus", "num_cpus"},
    {"cores", "num_cpus"},
    {"numcores", "num_cpus"},
    {"cpucores", "num_cpus"},
    {"vcores", "num_cpus"},
    {"gpu", "num_gpus"},
    {"gpus", "num_gpus"},
    {"ngpu", "num_gpus"},
    {"ngpus", "num_gpus"},
    {"nvidia.com/gpu", "num_gpus"},
    {"mem", "memory"},
    {"ram", "memory"},
    {"heap", "memory"},
    {"heapmemory", "memory"},
    {"taskheapmemory", "memory"},
    {"memorybytes", "memory"},
    {"objectstore", "object_store_memory"},
    {"objectstoremem", "object_store_memory"},
    {"objstoremem", "object_store_memory"},
    {"objstorememory", "object_store_memory"},
    {"storememory", "object_store_memory"},
    {"managedmemory", "object_store_memory"},
    {"customresources", "resources"},
    {"extendedresources", "resources"},
    {"custom", "resources"},
};

#define SPEC_KEY_CMP_MAX 64

/* Lowercase, with '_', '-' and spaces dropped; 0 if the key is too long. */
static int normalize_key(const char *key, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *key; key++) {
        if (*key == '_' || *key == '-' || *key == ' ')
            continue;
        if (n + 1 >= cap)
            return 0;
        buf[n++] = lower(*key);
    }
    buf[n] = '\0';
    return 1;
}

static const char *suggest_key(const char *key)
{
    char norm[SPEC_KEY_CMP_MAX + 1], vnorm[SPEC_KEY_CMP_MAX + 1];
    size_t nkeys = sizeof valid_keys / sizeof valid_keys[0];
    if (strlen(key) > SPEC_KEY_CMP_MAX || !normalize_key(key, norm, sizeof norm))
        return NULL;
    for (size_t i = 0; i < nkeys; i++)
        if (normalize_key(valid_keys[i], vnorm, sizeof vnorm) && strcmp(norm, vnorm) == 0)
            return valid_keys[i];
    for (size_t i = 0; i < sizeof key_aliases / sizeof key_aliases[0]; i++)
        if (strcmp(norm, key_aliases[i].alias) == 0)
            return key_aliases[i].key;
    return sage__suggest(key, valid_keys, nkeys);
}

/* ---- JSON form ---------------------------------------------------------- */

static void report_json_error(const json_error_t *je, char *err, size_t err_len)
{
    enum json_error_code code = json_error_code(je);
    if (code == json_error_duplicate_key) {
        const char *near = strstr(je->text, "near '");
        if (near) {
            const char *tok = near + 6;
            size_t tlen = strlen(tok);
            if (tlen > 0 && tok[tlen - 1] == '\'')
                tlen--;
            sage__fmt(err, err_len,
                      "invalid JSON at line %d column %d: duplicate key %.*s (each key may appear only once)", je->line,
                      je->column, (int)tlen, tok);
            return;
        }
    }
    sage__fmt(err, err_len, "invalid JSON at line %d column %d: %s%s", je->line, je->column, je->text,
              code == json_error_numeric_overflow ? " (numbers must be finite)" : "");
}

static int parse_bytes_key(const char *key, const json_t *v, uint64_t *out, char *err, size_t err_len)
{
    char what[64];
    snprintf(what, sizeof what, "key \"%s\"", key);
    if (json_is_number(v))
        return check_bytes_number(json_number_value(v), what, out, err, err_len);
    if (json_is_string(v)) {
        char inner[SPEC_MSG_MAX];
        if (parse_bytes_msg(json_string_value(v), out, inner, sizeof inner) == 0)
            return 0;
        sage__fmt(err, err_len, "%s: %s", what, inner);
        return -1;
    }
    type_err(err, err_len, what, "a number of bytes or a string such as \"8GB\"", v);
    return -1;
}

static int parse_custom(const json_t *obj, sage_resources *out, char *err, size_t err_len)
{
    const char *what = "key \"resources\"";
    if (!json_is_object(obj)) {
        type_err(err, err_len, what, "an object of name -> amount such as {\"ssd\": 1}", obj);
        return -1;
    }
    size_t n = json_object_size(obj);
    if (n > SAGE_RES_CUSTOM_MAX) {
        sage__fmt(err, err_len, "%s: %zu custom resources, at most %d (SAGE_RES_CUSTOM_MAX)", what, n,
                  SAGE_RES_CUSTOM_MAX);
        return -1;
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        size_t len = strlen(name);
        if (check_name(name, len, err, err_len))
            return -1;
        char wname[SAGE_RES_NAME_MAX + 64];
        snprintf(wname, sizeof wname, "%s: custom resource \"%s\"", what, name);
        if (!json_is_number(v)) {
            type_err(err, err_len, wname, "a number", v);
            return -1;
        }
        double amount = json_number_value(v);
        if (check_amount(amount, wname, err, err_len))
            return -1;
        if (out->ncustom >= SAGE_RES_CUSTOM_MAX) { /* cannot happen: size checked above */
            sage__fmt(err, err_len, "%s: more than %d custom resources", what, SAGE_RES_CUSTOM_MAX);
            return -1;
        }
        sage_resource_amount *c = &out->custom[out->ncustom++];
        memcpy(c->name, name, len + 1); /* len <= SAGE_RES_NAME_MAX, checked */
        c->amount = amount;
    }
    return 0;
}

static int parse_root(const json_t *root, sage_resources *out, char *err, size_t err_len)
{
    if (!json_is_object(root)) {
        sage__fmt(err, err_len, "resource spec must be a JSON object such as {\"num_cpus\": 1}, got %s",
                  json_type_phrase(root));
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v)
    {
        if (strcmp(key, "num_cpus") == 0 || strcmp(key, "num_gpus") == 0) {
            int cpus = key[4] == 'c';
            const char *what = cpus ? "key \"num_cpus\"" : "key \"num_gpus\"";
            if (!json_is_number(v)) {
                type_err(err, err_len, what, "a number", v);
                return -1;
            }
            double d = json_number_value(v) + 0.0; /* -0 becomes 0 */
            if (cpus ? check_cpus(d, err, err_len) : check_gpus(d, err, err_len))
                return -1;
            if (cpus)
                out->num_cpus = d;
            else
                out->num_gpus = d;
        } else if (strcmp(key, "memory") == 0) {
            if (parse_bytes_key(key, v, &out->memory, err, err_len))
                return -1;
        } else if (strcmp(key, "object_store_memory") == 0) {
            if (parse_bytes_key(key, v, &out->object_store_memory, err, err_len))
                return -1;
        } else if (strcmp(key, "resources") == 0) {
            if (parse_custom(v, out, err, err_len))
                return -1;
        } else {
            char q[SPEC_KEY_CMP_MAX * 4 + 16];
            quote_str(q, sizeof q, key, SPEC_KEY_CMP_MAX);
            const char *s = suggest_key(key);
            if (s)
                sage__fmt(err, err_len, "unknown key %s (did you mean \"%s\"?)", q, s);
            else
                sage__fmt(err, err_len, "unknown key %s (valid keys: " SPEC_KEY_LIST ")", q);
            return -1;
        }
    }
    return 0;
}

#define SPEC_JSON_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY)

SAGE_API int sage_resources_parse(const char *json, sage_resources *out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!json) {
        sage__fmt(err, err_len, "resource spec is NULL: expected a JSON object such as {\"num_cpus\": 1}");
        return SAGE_ERESOURCES;
    }
    if (!out) {
        sage__fmt(err, err_len, "resource spec: NULL output");
        return SAGE_ERESOURCES;
    }
    const char *p = json;
    while (is_space(*p))
        p++;
    if (*p == '\0') {
        sage__fmt(err, err_len, "resource spec is empty: expected a JSON object such as {\"num_cpus\": 1}");
        return SAGE_ERESOURCES;
    }
    json_error_t je;
    int oom;
    json_t *root = sage__json_loadb(json, strlen(json), SPEC_JSON_FLAGS, &je, &oom);
    if (oom) {
        sage__fmt(err, err_len, "resource spec: out of memory");
        return SAGE_ENOMEM;
    }
    if (!root) {
        report_json_error(&je, err, err_len);
        return SAGE_ERESOURCES;
    }
    int rc = parse_root(root, out, err, err_len);
    json_decref(root);
    if (rc != 0) {
        memset(out, 0, sizeof *out);
        return SAGE_ERESOURCES;
    }
    return SAGE_OK;
}

/* ---- struct form -------------------------------------------------------- */

SAGE_API int sage_resources_validate(const sage_resources *r, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (!r) {
        sage__fmt(err, err_len, "resource request is NULL");
        return SAGE_ERESOURCES;
    }
    if (check_cpus(r->num_cpus, err, err_len) || check_gpus(r->num_gpus, err, err_len) ||
        check_bytes_u64(r->memory, "key \"memory\"", err, err_len) ||
        check_bytes_u64(r->object_store_memory, "key \"object_store_memory\"", err, err_len))
        return SAGE_ERESOURCES;
    if (r->ncustom > SAGE_RES_CUSTOM_MAX) {
        sage__fmt(err, err_len, "key \"resources\": %zu custom resources, at most %d (SAGE_RES_CUSTOM_MAX)", r->ncustom,
                  SAGE_RES_CUSTOM_MAX);
        return SAGE_ERESOURCES;
    }
    for (size_t i = 0; i < r->ncustom; i++) {
        const sage_resource_amount *c = &r->custom[i];
        if (!memchr(c->name, '\0', sizeof c->name)) {
            sage__fmt(err, err_len, "key \"resources\": custom[%zu] name is not NUL-terminated within %zu bytes", i,
                      sizeof c->name);
            return SAGE_ERESOURCES;
        }
        if (check_name(c->name, strlen(c->name), err, err_len))
            return SAGE_ERESOURCES;
        char wname[SAGE_RES_NAME_MAX + 64];
        snprintf(wname, sizeof wname, "key \"resources\": custom resource \"%s\"", c->name);
        if (check_amount(c->amount, wname, err, err_len))
            return SAGE_ERESOURCES;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->custom[j].name, c->name) == 0) {
                sage__fmt(err, err_len, "%s appears twice (custom[%zu] and custom[%zu])", wname, j, i);
                return SAGE_ERESOURCES;
            }
        }
    }
    return SAGE_OK;
}
