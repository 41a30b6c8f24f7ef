/* util/errors.c - sage_strerror, sage_err_name and the version calls, generated from the one error table. */
#include "sage/sage.h"

SAGE_API const char *sage_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define SAGE__ERR_TEXT(name, value, text)                                                                              \
    case value: return text;
        SAGE_ERRNO_MAP(SAGE__ERR_TEXT)
#undef SAGE__ERR_TEXT
    default: return code < 0 ? "user function error" : "unknown result";
    }
}

SAGE_API const char *sage_err_name(int code)
{
    switch (code) {
    case 0: return "SAGE_OK";
#define SAGE__ERR_NAME(name, value, text)                                                                              \
    case value: return "SAGE_" #name;
        SAGE_ERRNO_MAP(SAGE__ERR_NAME)
#undef SAGE__ERR_NAME
    default: return "SAGE_UNKNOWN";
    }
}

SAGE_API const char *sage_version(void) { return SAGE_VERSION_STRING; }

SAGE_API int sage_version_number(void)
{
    return SAGE_VERSION_MAJOR * 10000 + SAGE_VERSION_MINOR * 100 + SAGE_VERSION_PATCH;
}
