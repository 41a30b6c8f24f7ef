/* tests/unit/test_utf8.c - invalid UTF-8 becomes '?', valid text is untouched. */
#include "check.h"
#include "util/utf8.h"

static void cases(void)
{
    struct {
        const char *in;
        size_t len;
        const char *out;
    } t[] = {
        {"plain ascii", 11, "plain ascii"},
        {"caf\xc3\xa9", 5, "caf\xc3\xa9"},             /* é */
        {"caf\xe9", 4, "caf?"},                        /* Latin-1 byte */
        {"\xe2\x82\xac!", 4, "\xe2\x82\xac!"},         /* € */
        {"\xe2\x82", 2, "??"},                         /* truncated */
        {"\xc0\xaf", 2, "??"},                         /* overlong */
        {"\xed\xa0\x80", 3, "???"},                    /* surrogate */
        {"\xf4\x90\x80\x80", 4, "????"},               /* past U+10FFFF */
        {"\xf0\x9f\x98\x80x", 5, "\xf0\x9f\x98\x80x"}, /* emoji */
        {"a\0b", 3, "a?b"},                            /* NUL */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[16];
        memcpy(buf, t[i].in, t[i].len);
        sage__utf8_clean(buf, t[i].len);
        buf[t[i].len] = 0;
        CHECK_STR(buf, t[i].out);
    }
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(cases);
    return CHECK_DONE();
}
