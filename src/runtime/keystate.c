/* runtime/keystate.c - per-key operator state: an open-addressing table of stable, zero-filled state blocks. */
#include "runtime/keystate.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sage/stream.h" /* SAGE_KEY_MAX */

/* Design: the table is an array of slots {hash, entry pointer}, probed
 * linearly from hash & mask (the low bits; routing between instances uses
 * the high bits, see sage__hash_bucket). Keeping the hash in the slot means
 * a probe rejects non-matching slots without touching the entry; only a
 * full hash match dereferences it (then length, then memcmp).
 *
 * Each key lives in one malloc'ed entry: header, key bytes, then the state
 * block at the next 16-byte boundary. Entries never move: growing (doubling
 * when the load would pass 70%) only rehashes the slot array from the stored
 * hashes, so state pointers stay valid until sage__keystate_free. Entries are
 * also chained in insertion order for foreach. */

#define KS_ALIGN 16
#define KS_MIN_CAP 16

typedef struct ks_entry {
    uint64_t hash;
    size_t key_len;
    struct ks_entry *next; /* insertion order */
    unsigned char key[];   /* key_len bytes, then the state at a 16-byte boundary */
} ks_entry;

typedef struct ks_slot {
    uint64_t hash;
    ks_entry *entry; /* NULL: empty */
} ks_slot;

struct sage__keystate {
    ks_slot *slots;
    size_t mask; /* capacity - 1 (capacity is a power of two) */
    size_t count;
    size_t grow_at; /* count that triggers the next doubling (70% of capacity) */
    size_t state_size;
    int size_set;
    ks_entry *head, *tail;
};

static inline size_t state_offset(size_t key_len)
{
    return (offsetof(ks_entry, key) + key_len + (KS_ALIGN - 1)) & ~(size_t)(KS_ALIGN - 1);
}

static inline void *entry_state(ks_entry *e) { return (unsigned char *)e + state_offset(e->key_len); }

static size_t grow_threshold(size_t cap) { return cap / 10 * 7 + cap % 10 * 7 / 10; }

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
    for (ks_entry *e = ks->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(ks->slots);
    free(ks);
}

static int ks_grow(sage__keystate *ks)
{
    size_t cap = ks->mask + 1;
    if (cap > SIZE_MAX / 2 / sizeof(ks_slot))
        return -1;
    size_t ncap = cap * 2, nmask = ncap - 1;
    ks_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < cap; i++) {
        ks_slot s = ks->slots[i];
        if (!s.entry)
            continue;
        size_t j = (size_t)s.hash & nmask;
        while (ns[j].entry)
            j = (j + 1) & nmask;
        ns[j] = s;
    }
    free(ks->slots);
    ks->slots = ns;
    ks->mask = nmask;
    ks->grow_at = grow_threshold(ncap);
    return 0;
}

static ks_entry *entry_new(uint64_t hash, const void *key, size_t len, size_t size)
{
    size_t off = state_offset(len);
    if (size > SIZE_MAX - off - KS_ALIGN)
        return NULL;
    size_t total = (off + size + (KS_ALIGN - 1)) & ~(size_t)(KS_ALIGN - 1);
    ks_entry *e;
    if (_Alignof(max_align_t) >= KS_ALIGN)
        e = malloc(total);
    else
        e = aligned_alloc(KS_ALIGN, total);
    if (!e)
        return NULL;
    e->hash = hash;
    e->key_len = len;
    e->next = NULL;
    if (len)
        memcpy(e->key, key, len);
    memset((unsigned char *)e + off, 0, total - off);
    return e;
}

void *sage__keystate_get(sage__keystate *ks, uint64_t hash, const void *key, size_t len, size_t size)
{
    if (len > SAGE_KEY_MAX || (len && !key))
        return NULL;
    if (__builtin_expect(!ks->size_set, 0)) {
        ks->state_size = size;
        ks->size_set = 1;
    } else if (__builtin_expect(size != ks->state_size, 0)) {
        return NULL;
    }

    size_t mask = ks->mask, i = (size_t)hash & mask;
    ks_slot *slots = ks->slots;
    for (; slots[i].entry; i = (i + 1) & mask) {
        if (slots[i].hash == hash) {
            ks_entry *e = slots[i].entry;
            if (e->key_len == len && (len == 0 || memcmp(e->key, key, len) == 0))
                return entry_state(e);
        }
    }

    /* Not found: create it (growing first if this insert passes 70% load). */
    if (ks->count + 1 > ks->grow_at) {
        if (ks_grow(ks) != 0)
            return NULL;
        mask = ks->mask;
        slots = ks->slots;
        for (i = (size_t)hash & mask; slots[i].entry; i = (i + 1) & mask)
            ;
    }
    ks_entry *e = entry_new(hash, key, len, size);
    if (!e)
        return NULL;
    slots[i].hash = hash;
    slots[i].entry = e;
    if (ks->tail)
        ks->tail->next = e;
    else
        ks->head = e;
    ks->tail = e;
    ks->count++;
    return entry_state(e);
}

size_t sage__keystate_count(const sage__keystate *ks) { return ks->count; }

size_t sage__keystate_state_size(const sage__keystate *ks) { return ks->state_size; }

int sage__keystate_foreach(sage__keystate *ks, int (*fn)(const void *key, size_t len, void *state, void *arg),
                           void *arg)
{
    for (ks_entry *e = ks->head; e; e = e->next) {
        int rc = fn(e->key, e->key_len, entry_state(e), arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}
