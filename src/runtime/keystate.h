/* runtime/keystate.h - the engine-kept per-key state of one keyed operator instance. */
#ifndef SAGE_RUNTIME_KEYSTATE_H
#define SAGE_RUNTIME_KEYSTATE_H

#include <stddef.h>
#include <stdint.h>

/* An open-addressing hash table from key bytes (up to SAGE_KEY_MAX) to a
 * zero-filled block of state_size bytes (fixed per table, set at the first
 * lookup). Blocks never move once created (pointers stay valid until
 * sage__keystate_free). Single-threaded: owned by one instance. */
typedef struct sage__keystate sage__keystate;

sage__keystate *sage__keystate_new(void);
void sage__keystate_free(sage__keystate *ks); /* NULL is fine */
/* The state of key (hash = sage__hash64(key, len)), created zeroed on first
 * use. Returns NULL on ENOMEM or when size differs from the table's size. */
void *sage__keystate_get(sage__keystate *ks, uint64_t hash, const void *key, size_t len, size_t size);
size_t sage__keystate_count(const sage__keystate *ks);
size_t sage__keystate_state_size(const sage__keystate *ks);
/* Visit entries in insertion order; stops at the first non-zero return. */
int sage__keystate_foreach(sage__keystate *ks, int (*fn)(const void *key, size_t len, void *state, void *arg),
                           void *arg);

#endif
