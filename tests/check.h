/* tests/check.h - the tiny test harness every SAGE test uses: cases, checks, a summary line. */
#ifndef SAGE_TESTS_CHECK_H
#define SAGE_TESTS_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check__failed_checks;
static int check__case_failed;
static int check__passed, check__failed;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);     \
            check__failed_checks++;                                                        \
            check__case_failed = 1;                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_INT(a, b)                                                                    \
    do {                                                                                   \
        long long check__a = (long long)(a), check__b = (long long)(b);                    \
        if (check__a != check__b) {                                                        \
            fprintf(stderr, "  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, \
                    #a, #b, check__a, check__b);                                           \
            check__failed_checks++;                                                        \
            check__case_failed = 1;                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_STR(a, b)                                                                    \
    do {                                                                                   \
        const char *check__a = (a), *check__b = (b);                                       \
        if (!check__a || !check__b || strcmp(check__a, check__b) != 0) {                   \
            fprintf(stderr, "  %s:%d: %s == %s failed:\n    got:      \"%s\"\n    expected: \"%s\"\n", \
                    __FILE__, __LINE__, #a, #b, check__a ? check__a : "(null)",            \
                    check__b ? check__b : "(null)");                                       \
            check__failed_checks++;                                                        \
            check__case_failed = 1;                                                        \
        }                                                                                  \
    } while (0)

/* Substring check, for messages whose tail varies. */
#define CHECK_CONTAINS(hay, needle)                                                        \
    do {                                                                                   \
        const char *check__h = (hay), *check__n = (needle);                                \
        if (!check__h || !strstr(check__h, check__n)) {                                    \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
                    check__h ? check__h : "(null)", check__n);                             \
            check__failed_checks++;                                                        \
            check__case_failed = 1;                                                        \
        }                                                                                  \
    } while (0)

#define RUN(fn)                                                                            \
    do {                                                                                   \
        check__case_failed = 0;                                                            \
        fn();                                                                              \
        if (check__case_failed) {                                                          \
            check__failed++;                                                               \
            fprintf(stderr, "FAIL %s\n", #fn);                                             \
        } else {                                                                           \
            check__passed++;                                                               \
            printf("ok   %s\n", #fn);                                                      \
        }                                                                                  \
        fflush(stdout);                                                                    \
    } while (0)

#define CHECK_DONE()                                                                       \
    (printf("%d passed, %d failed\n", check__passed, check__failed), check__failed ? 1 : 0)

#endif
