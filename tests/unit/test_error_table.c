/* tests/unit/test_error_table.c - the error table, sage_strerror/sage_err_name and the version calls. */
#include "check.h"
#include "sage/sage.h"

static void table(void)
{
    CHECK_STR(sage_strerror(0), "success");
    CHECK_STR(sage_strerror(SAGE_EINFEASIBLE), "resources cannot be placed");
    CHECK_STR(sage_err_name(SAGE_ECANCELED), "SAGE_ECANCELED");
    CHECK_STR(sage_err_name(-999), "SAGE_UNKNOWN");
    CHECK_STR(sage_strerror(-999), "user function error");
    /* codes are stable: a renumbering would break every caller */
    CHECK_INT(SAGE_EINVAL, -1);
    CHECK_INT(SAGE_EUSER, -7);
    CHECK_INT(SAGE_EUNSUPPORTED, -18);
    int distinct = 1;
#define SAGE__CHECK_NAME(name, value, text) distinct &= strcmp(sage_err_name(value), "SAGE_" #name) == 0;
    SAGE_ERRNO_MAP(SAGE__CHECK_NAME)
#undef SAGE__CHECK_NAME
    CHECK(distinct);
}

static void version(void)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", SAGE_VERSION_MAJOR, SAGE_VERSION_MINOR, SAGE_VERSION_PATCH);
    CHECK_STR(sage_version(), expect);
    CHECK_INT(sage_version_number(), SAGE_VERSION_MAJOR * 10000 + SAGE_VERSION_MINOR * 100 + SAGE_VERSION_PATCH);
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(table);
    RUN(version);
    return CHECK_DONE();
}
