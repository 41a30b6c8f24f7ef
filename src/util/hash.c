/* util/hash.c - sage__hash64: the fixed, seedless 64-bit key hash (stable across runs, processes and hosts). */
#include "util/hash.h"

#include <string.h>

/* Algorithm (written for SAGE; the output is frozen, see hash.h):
 *
 *   K1 = 0x6a09e667f3bcc909, K2 = 0xbb67ae8584caa73b: the first 64 fraction
 *   bits of sqrt(2) and sqrt(3) (both odd, so multiplying by them is a
 *   bijection on 64-bit words).
 *
 *   mix(w)  = ((w * K1) ^ ((w * K1) >> 32)) * K2
 *             (the multiply spreads low bits upward, the xorshift folds the
 *             high half back down, the second multiply spreads it again)
 *
 *   h = K2
 *   for each whole 8-byte word w of the input, read little-endian:
 *       h = rotl(h ^ mix(w), 29) * K1         (rotate+multiply: order matters)
 *   if 1..7 bytes remain, pack them little-endian into t (upper bytes zero):
 *       h = rotl(h ^ mix(t), 29) * K1
 *   h ^= len * K2                             (so zero padding cannot alias)
 *   finalize: h ^= h >> 32; h *= K1; h ^= h >> 29; h *= K2; h ^= h >> 32
 *
 * Words are always interpreted little-endian (byte-swapped on big-endian
 * hosts) and the tail is assembled byte by byte, so every host computes the
 * same value. Loads go through memcpy: any alignment is fine. */

#define SAGE__HASH_K1 UINT64_C(0x6a09e667f3bcc909)
#define SAGE__HASH_K2 UINT64_C(0xbb67ae8584caa73b)

static inline uint64_t load64_le(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64u - r)); }

static inline uint64_t mix_word(uint64_t w)
{
    w *= SAGE__HASH_K1;
    w ^= w >> 32;
    return w * SAGE__HASH_K2;
}

static inline uint64_t absorb(uint64_t h, uint64_t w) { return rotl64(h ^ mix_word(w), 29) * SAGE__HASH_K1; }

uint64_t sage__hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = SAGE__HASH_K2;
    size_t words = len / 8, rest = len % 8;

    for (size_t i = 0; i < words; i++, p += 8)
        h = absorb(h, load64_le(p));
    if (rest) {
        uint64_t t = 0;
        for (size_t i = 0; i < rest; i++)
            t |= (uint64_t)p[i] << (8 * i);
        h = absorb(h, t);
    }
    h ^= (uint64_t)len * SAGE__HASH_K2;

    h ^= h >> 32;
    h *= SAGE__HASH_K1;
    h ^= h >> 29;
    h *= SAGE__HASH_K2;
    h ^= h >> 32;
    return h;
}
