/* util/hash.h - the fixed, seedless 64-bit hash that routes keys (stable across runs, processes and hosts). */
#ifndef SAGE_UTIL_HASH_H
#define SAGE_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Never change this function's output: key routing of every deployed job
 * depends on it (tests pin golden values). */
uint64_t sage__hash64(const void *data, size_t len);

/* Map a hash to [0, n) with a multiply instead of a modulo (uses the high 32 bits). */
static inline uint32_t sage__hash_bucket(uint64_t h, uint32_t n) { return (uint32_t)(((h >> 32) * (uint64_t)n) >> 32); }

#endif
