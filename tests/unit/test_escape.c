/* tests/unit/test_escape.c - util/escape.c: what a log line or a table cell shows of user text. */
#include "check.h"

#include "util/escape.h"

static const char *esc(const char *in, size_t len, size_t cap)
{
    static char out[256];
    sage__escape(out, cap, in, len);
    return out;
}

#define E(lit) esc(lit, sizeof lit - 1, 256)

static void visible(void)
{
    CHECK_STR(E("plain text"), "plain text");
    CHECK_STR(E("x\nFORGED line\x1b[31m"), "x\\nFORGED line\\e[31m");
    CHECK_STR(E("\t\r\n"), "\\t\\r\\n");
    CHECK_STR(E("back\\slash"), "back\\\\slash"); /* reversible: a backslash is doubled */
    CHECK_STR(E("nul\0here"), "nul\\x00here");
    CHECK_STR(E("\x01\x1f\x7f"), "\\x01\\x1f\\x7f");
    CHECK_STR(E("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac"); /* valid UTF-8 stays */
    CHECK_STR(E("caf\xe9"), "caf\\xe9");                                  /* not UTF-8 */
    CHECK_STR(E("\xc2\x9b"
                "31m"),
              "\\xc2\\x9b31m"); /* C1 CSI */
    CHECK_STR(E("a\xe2\x80\xae"
                "b"),
              "a\\xe2\\x80\\xaeb"); /* right-to-left override */
    CHECK_STR(E("a\xe2\x80\xa8"
                "b"),
              "a\\xe2\\x80\\xa8b"); /* line separator */
    CHECK_STR(E("\xe2\x81\xa6"
                "x"),
              "\\xe2\\x81\\xa6x");                   /* an isolate */
    CHECK_STR(E("\xed\xa0\x80"), "\\xed\\xa0\\x80"); /* a surrogate is not UTF-8 */
    CHECK_STR(esc(NULL, 5, 16), "");
    char out[16];
    CHECK_STR(sage__escape_str(out, sizeof out, "a\nb"), "a\\nb");
    CHECK_STR(sage__escape_str(out, sizeof out, NULL), "");
}

static void bounded(void)
{
    CHECK_STR(esc("abcdefghij", 10, 8), "abcd...");
    CHECK_STR(esc("abcd", 4, 5), "abcd");                    /* fits exactly */
    CHECK_STR(esc("ab\n\n\n\n", 6, 10), "ab\\n\\n...");      /* an escape is never cut */
    CHECK_STR(esc("aaaa\xc3\xa9\xc3\xa9", 8, 8), "aaaa..."); /* nor a character */
    CHECK_STR(esc("\x1b\x1b\x1b", 3, 4), "...");
    CHECK_STR(esc("abc", 3, 3), "");
    char one[1] = {'x'};
    CHECK_INT(sage__escape(one, 1, "abc", 3), 0);
    CHECK_INT(one[0], 0);
    CHECK_INT(sage__escape(one, 0, "abc", 3), 0);
    /* the worst case: every byte four */
    static char in[64], out[257];
    memset(in, 0x01, sizeof in);
    CHECK_INT(sage__escape(out, sizeof out, in, sizeof in), 256);
    CHECK_INT(sage__escape(out, 256, in, sizeof in), 63 * 4 + 3); /* 63 escapes, then "..." */
    CHECK_STR(out + 63 * 4, "...");
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(visible);
    RUN(bounded);
    return CHECK_DONE();
}
