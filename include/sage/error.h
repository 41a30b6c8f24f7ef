/* sage/error.h - SAGE's error codes: one table, negative values, never renumbered. */
#ifndef SAGE_ERROR_H
#define SAGE_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SAGE_BUILDING_LIBRARY)
#define SAGE_API __attribute__((visibility("default")))
#else
#define SAGE_API
#endif

/* Every SAGE call that can fail returns 0 (SAGE_OK) or one of these negative
 * codes. Codes are stable: new ones are appended, none is ever renumbered.
 * User functions may return any negative value to fail the job; values that
 * are not in this table are reported as "user function error". */
#define SAGE_ERRNO_MAP(X)                                                                                              \
    X(EINVAL, -1, "invalid argument")                                                                                  \
    X(ENOMEM, -2, "out of memory")                                                                                     \
    X(ESTATE, -3, "call not allowed in the current state")                                                             \
    X(ECONFIG, -4, "invalid configuration")                                                                            \
    X(ERESOURCES, -5, "invalid resource specification")                                                                \
    X(EINFEASIBLE, -6, "resources cannot be placed")                                                                   \
    X(EUSER, -7, "user function error")                                                                                \
    X(ECANCELED, -8, "job canceled")                                                                                   \
    X(ETIMEDOUT, -9, "timed out")                                                                                      \
    X(ENOSERVICE, -10, "no such service")                                                                              \
    X(ETOOBIG, -11, "value exceeds its bound")                                                                         \
    X(EIO, -12, "input/output error")                                                                                  \
    X(ESYS, -13, "system call failed")                                                                                 \
    X(EPLAN, -14, "invalid pipeline")                                                                                  \
    X(ENOTFOUND, -15, "not found")                                                                                     \
    X(EPROTO, -16, "protocol error")                                                                                   \
    X(EAUTH, -17, "authentication failed")                                                                             \
    X(EUNSUPPORTED, -18, "not supported in this mode")

typedef enum sage_errno {
    SAGE_OK = 0,
#define SAGE__ERR_ENUM(name, value, text) SAGE_##name = (value),
    SAGE_ERRNO_MAP(SAGE__ERR_ENUM)
#undef SAGE__ERR_ENUM
} sage_errno;

/* Static English text for a code ("success" for 0). Never NULL. */
SAGE_API const char *sage_strerror(int code);
/* The code's name ("SAGE_EINVAL"); "SAGE_UNKNOWN" for a value not in the table. */
SAGE_API const char *sage_err_name(int code);

/* Version of the library, "MAJOR.MINOR.PATCH". Static string. */
SAGE_API const char *sage_version(void);
SAGE_API int sage_version_number(void); /* MAJOR*10000 + MINOR*100 + PATCH */

#ifdef __cplusplus
}
#endif
#endif
