/* util/suggest.h - "did you mean": the known word nearest to a misspelt one. */
#ifndef SAGE_UTIL_SUGGEST_H
#define SAGE_UTIL_SUGGEST_H

#include <stddef.h>

#define SAGE__SUGGEST_MAX 64 /* longer words are never near anything */

/* Optimal string alignment distance (Levenshtein plus adjacent swaps),
 * ASCII case-insensitive; (size_t)-1 when a word is longer than
 * SAGE__SUGGEST_MAX bytes. */
size_t sage__edit_distance(const char *a, const char *b);
/* The choice nearest to word when it is near enough to be a slip (at most 2
 * edits, and at most a third of the choice), else NULL. */
const char *sage__suggest(const char *word, const char *const *choices, size_t n);

#endif
