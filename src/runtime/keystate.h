/* runtime/keystate.h - the engine-kept per-key state of one keyed operator instance. */
#ifndef SAGE_RUNTIME_KEYSTATE_H
#define SAGE_RUNTIME_KEYSTATE_H

#include <stddef.h>
#include <stdint.h>

/* An open-addressing hash table from key bytes (up to SAGE_KEY_MAX) to a
 * zero-filled block of state_size bytes (fixed per table, set at the first
 * lookup). A block is aligned for any object of its size (16 bytes for
 * blocks of 16 bytes or more). Blocks never move once created (pointers
 * stay valid until sage__keystate_free). Single-threaded: owned by one
 * instance. The layout is in keystate.c; it is here only so that the
 * prefetch calls below can be inlined into the task's input loop. */
typedef struct sage__ks_chunk {
    unsigned char *p;
    size_t used, cap; /* bytes */
} sage__ks_chunk;

typedef struct sage__keystate {
    uint64_t *slots; /* 0: empty; else (entry ref + 1) << 32 | the hash's low 32 bits */
    size_t mask;     /* capacity - 1 (capacity is a power of two) */
    size_t count;
    size_t grow_at; /* count that triggers the next doubling (70% of capacity) */
    size_t state_size;
    int size_set;
    unsigned align;         /* of state blocks, from state_size */
    unsigned shift;         /* an entry ref is chunk << shift | 8-byte granule in the chunk */
    sage__ks_chunk *chunks; /* entries in insertion order, chunk after chunk */
    size_t nchunks, chunks_cap;
} sage__keystate;

sage__keystate *sage__keystate_new(void);
void sage__keystate_free(sage__keystate *ks); /* NULL is fine */
/* The state of key (hash = sage__hash64(key, len); only its low 32 bits are
 * used, so a caller may pass just those), created zeroed on first use.
 * Returns NULL on ENOMEM or when size differs from the table's size. */
void *sage__keystate_get(sage__keystate *ks, uint64_t hash, const void *key, size_t len, size_t size);
size_t sage__keystate_count(const sage__keystate *ks);
size_t sage__keystate_state_size(const sage__keystate *ks);
/* Visit entries in insertion order; stops at the first non-zero return. */
int sage__keystate_foreach(sage__keystate *ks, int (*fn)(const void *key, size_t len, void *state, void *arg),
                           void *arg);

/* Hints for a lookup of hash coming soon (they change nothing): first the
 * slot where the probe starts, a few records later (once that slot is
 * likely cached) the entry it points to, if its hash matches. */
static inline void sage__keystate_prefetch_slot(const sage__keystate *ks, uint64_t hash)
{
    __builtin_prefetch(&ks->slots[(size_t)(uint32_t)hash & ks->mask]);
}

static inline void sage__keystate_prefetch_entry(const sage__keystate *ks, uint64_t hash)
{
    uint64_t s = ks->slots[(size_t)(uint32_t)hash & ks->mask];
    if (s && (uint32_t)s == (uint32_t)hash) {
        uint32_t ref = (uint32_t)(s >> 32) - 1;
        const unsigned char *e = ks->chunks[ref >> ks->shift].p + ((size_t)(ref & ((1u << ks->shift) - 1)) << 3);
        __builtin_prefetch(e);
        __builtin_prefetch(e + 31); /* a small entry may straddle two lines */
    }
}

#endif
