/* runtime/keystate.c - per-key operator state: a compact open-addressing index over an arena of stable state blocks. */
#include "runtime/keystate.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sage/stream.h" /* SAGE_KEY_MAX */

/* Design: two arrays, each touched once per lookup.
 *
 * The index is an array of 8-byte slots: the low 32 bits of the key's hash
 * and a 32-bit reference to the entry (plus one, so that 0 is an empty
 * slot), probed linearly from hash & mask. Routing between instances uses
 * the hash's high bits (see sage__hash_bucket), so the low bits spread the
 * keys of one instance evenly. A probe rejects a slot whose 32 hash bits
 * differ without touching its entry; a match then compares the key's
 * length and bytes. At 70% load the index doubles, rehashed from the bits
 * kept in the slots alone (entries are not read, nor moved).
 *
 * Entries live in an arena of chunks, one after the other in insertion
 * order (so foreach walks memory in order, and keys that arrive in order
 * are adjacent): a 4-byte key length, the key, then the state block at its
 * alignment, the next entry at the next 8-byte boundary. An 8-byte key and
 * an 8-byte counter take 24 bytes, with no allocator header and no list
 * pointer. Chunks double from 4 KiB up to a maximum (1 MiB, or more when the
 * largest possible entry needs it) and are never moved or freed before the
 * table: state pointers stay valid until sage__keystate_free. An entry
 * reference is chunk << shift | offset / 8; 32 bits of references address
 * 32 GiB of entries per table, which bounds it (a lookup that would pass it
 * fails as out of memory).
 *
 * The task's input loop hashes keys a few records ahead and calls the two
 * prefetch hints (keystate.h), so that the index slot and then the entry of
 * a record are in cache by the time its function asks for its state. */

#define KS_MIN_CAP 16
#define KS_CHUNK_FIRST 4096
#define KS_SHIFT_MIN 17 /* chunks of up to 1 MiB (2^17 granules of 8 bytes) */
#define KS_SHIFT_MAX 30

static size_t grow_threshold(size_t cap) { return cap / 10 * 7 + cap % 10 * 7 / 10; }

static inline size_t align_up(size_t v, size_t a) { return (v + (a - 1)) & ~(a - 1); }

/* Offset of the state block of the entry at offset off of a chunk (chunks are 16-byte aligned). */
static inline size_t state_off(const sage__keystate *ks, size_t off, size_t key_len)
{
    return align_up(off + 4 + key_len, ks->align);
}

static inline size_t entry_end(const sage__keystate *ks, size_t off, size_t key_len)
{
    return align_up(state_off(ks, off, key_len) + ks->state_size, 8);
}

static inline unsigned char *state_of(const sage__keystate *ks, unsigned char *e, size_t key_len)
{
    return e + (state_off(ks, (size_t)((uintptr_t)e & 15), key_len) - (size_t)((uintptr_t)e & 15));
}

static inline unsigned char *entry_at(const sage__keystate *ks, uint32_t ref)
{
    return ks->chunks[ref >> ks->shift].p + ((size_t)(ref & ((1u << ks->shift) - 1)) << 3);
}

static inline int key_eq(const unsigned char *a, const void *b, size_t len)
{
    if (len == 8) { /* the common fixed-width key: one compare, no call */
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x == y;
    }
    return len == 0 || memcmp(a, b, len) == 0;
}

sage__keystate *sage__keystate_new(void)
{
    sage__keystate *ks = calloc(1, sizeof *ks);
    if (!ks)
        return NULL;
    ks->slots = calloc(KS_MIN_CAP, sizeof *ks->slots);
    if (!ks->slots) {
        free(ks);
        return NULL;
    }
    ks->mask = KS_MIN_CAP - 1;
    ks->grow_at = grow_threshold(KS_MIN_CAP);
    return ks;
}

void sage__keystate_free(sage__keystate *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->nchunks; i++)
        free(ks->chunks[i].p);
    free(ks->chunks);
    free(ks->slots);
    free(ks);
}

/* The first lookup fixes the block size, its alignment and the chunk size
 * that fits the largest entry (the longest key). 0 or -1 when no entry of
 * that size could ever be addressed. */
static int set_size(sage__keystate *ks, size_t size)
{
    ks->state_size = size;
    ks->size_set = 1;
    /* a block of size bytes holds objects whose alignment divides size */
    ks->align = size >= 16 ? 16u : size == 0 ? 1u : (unsigned)(size & (~size + 1));
    ks->shift = 0;
    size_t max_entry = 4 + SAGE_KEY_MAX + 16 + 8;
    if (size > ((size_t)8 << KS_SHIFT_MAX) - max_entry)
        return -1;
    max_entry += size;
    unsigned shift = KS_SHIFT_MIN;
    while (((size_t)8 << shift) < max_entry)
        shift++;
    ks->shift = shift;
    return 0;
}

static int ks_grow(sage__keystate *ks)
{
    size_t cap = ks->mask + 1;
    if (cap >= ((size_t)1 << 31) || cap > SIZE_MAX / 2 / sizeof(uint64_t))
        return -1; /* positions come from 32 hash bits */
    size_t ncap = cap * 2, nmask = ncap - 1;
    uint64_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < cap; i++) {
        uint64_t s = ks->slots[i];
        if (!s)
            continue;
        size_t j = (size_t)(uint32_t)s & nmask;
        while (ns[j])
            j = (j + 1) & nmask;
        ns[j] = s;
    }
    free(ks->slots);
    ks->slots = ns;
    ks->mask = nmask;
    ks->grow_at = grow_threshold(ncap);
    return 0;
}

/* Room for an entry of key_len at the end of the arena: its offset in the
 * last chunk (a new chunk when it does not fit), or -1 when out of memory. */
static int arena_reserve(sage__keystate *ks, size_t key_len, size_t *off)
{
    if (!ks->shift)
        return -1; /* set_size refused the block size: no entry can be made */
    if (ks->nchunks) {
        sage__ks_chunk *c = &ks->chunks[ks->nchunks - 1];
        if (entry_end(ks, c->used, key_len) <= c->cap) {
            *off = c->used;
            return 0;
        }
    }
    size_t max_cap = (size_t)8 << ks->shift, need = entry_end(ks, 0, key_len);
    size_t cap = ks->nchunks ? ks->chunks[ks->nchunks - 1].cap * 2 : KS_CHUNK_FIRST;
    while (cap < need)
        cap *= 2;
    if (cap > max_cap)
        cap = max_cap;
    if (ks->nchunks >= ((size_t)1 << (32 - ks->shift)) - 1)
        return -1; /* the references are used up (and the all-ones one is never made) */
    if (ks->nchunks == ks->chunks_cap) {
        size_t ncap = ks->chunks_cap ? ks->chunks_cap * 2 : 8;
        sage__ks_chunk *nc = realloc(ks->chunks, ncap * sizeof *nc);
        if (!nc)
            return -1;
        ks->chunks = nc;
        ks->chunks_cap = ncap;
    }
    unsigned char *p;
    if (_Alignof(max_align_t) >= 16)
        p = malloc(cap);
    else
        p = aligned_alloc(16, cap);
    if (!p)
        return -1;
    ks->chunks[ks->nchunks++] = (sage__ks_chunk){p, 0, cap};
    *off = 0;
    return 0;
}

void *sage__keystate_get(sage__keystate *ks, uint64_t hash, const void *key, size_t len, size_t size)
{
    if (len > SAGE_KEY_MAX || (len && !key))
        return NULL;
    if (__builtin_expect(!ks->size_set, 0)) {
        if (set_size(ks, size) != 0)
            return NULL;
    } else if (__builtin_expect(size != ks->state_size, 0)) {
        return NULL;
    }

    uint32_t h32 = (uint32_t)hash;
    size_t mask = ks->mask, i = (size_t)h32 & mask;
    uint64_t *slots = ks->slots;
    for (uint64_t s; (s = slots[i]) != 0; i = (i + 1) & mask) {
        if ((uint32_t)s == h32) {
            unsigned char *e = entry_at(ks, (uint32_t)(s >> 32) - 1);
            uint32_t el;
            memcpy(&el, e, 4);
            if (el == len && key_eq(e + 4, key, len))
                return state_of(ks, e, len);
        }
    }

    /* Not found: create it (growing first if this insert passes 70% load). */
    if (ks->count + 1 > ks->grow_at) {
        if (ks_grow(ks) != 0)
            return NULL;
        mask = ks->mask;
        slots = ks->slots;
        for (i = (size_t)h32 & mask; slots[i]; i = (i + 1) & mask)
            ;
    }
    size_t off;
    if (arena_reserve(ks, len, &off) != 0)
        return NULL;
    sage__ks_chunk *c = &ks->chunks[ks->nchunks - 1];
    unsigned char *e = c->p + off;
    uint32_t el = (uint32_t)len;
    memcpy(e, &el, 4);
    if (len)
        memcpy(e + 4, key, len);
    unsigned char *st = state_of(ks, e, len);
    memset(st, 0, size);
    c->used = entry_end(ks, off, len);
    uint32_t ref = (uint32_t)((ks->nchunks - 1) << ks->shift | off >> 3);
    slots[i] = (uint64_t)(ref + 1) << 32 | h32;
    ks->count++;
    return st;
}

size_t sage__keystate_count(const sage__keystate *ks) { return ks->count; }

size_t sage__keystate_state_size(const sage__keystate *ks) { return ks->state_size; }

int sage__keystate_foreach(sage__keystate *ks, int (*fn)(const void *key, size_t len, void *state, void *arg),
                           void *arg)
{
    /* ks->chunks and used are read again every step: fn may add keys */
    for (size_t k = 0; k < ks->nchunks; k++) {
        for (size_t off = 0; off < ks->chunks[k].used;) {
            unsigned char *e = ks->chunks[k].p + off;
            uint32_t el;
            memcpy(&el, e, 4);
            int rc = fn(e + 4, el, state_of(ks, e, el), arg);
            if (rc != 0)
                return rc;
            off = entry_end(ks, off, el);
        }
    }
    return 0;
}
