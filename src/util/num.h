/* util/num.h - strict number parsing: the whole text, in range, or a clear refusal (never atoi). */
#ifndef SAGE_UTIL_NUM_H
#define SAGE_UTIL_NUM_H

#include <stdint.h>

/* Parse s as a decimal integer in [lo, hi]: an optional '-' then digits,
 * nothing before or after (no blanks, no '+', no hex). Returns 0,
 * SAGE_EINVAL (not such a number, or s NULL) or SAGE_ETOOBIG (out of range,
 * including overflow). *out is written only on success. */
int sage__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);
int sage__parse_int(const char *s, int lo, int hi, int *out);

#endif
