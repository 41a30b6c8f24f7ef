/* util/json.h - reading JSON that tells a failed allocation apart from bad input. */
#ifndef SAGE_UTIL_JSON_H
#define SAGE_UTIL_JSON_H

#include <jansson.h>
#include <stdint.h>

/* Parse text[0..len) with jansson's flags. jansson (2.14) does not always
 * say when an allocation failed inside its parser: it may return NULL with
 * an empty message, report a syntax error ("invalid token", "string or '}'
 * expected"), or even succeed with one byte missing from a token longer than
 * 15 bytes (its lexer ignores a failed buffer growth). The text is therefore
 * parsed twice: the parser is deterministic, so two parses that disagree
 * (one fails, the messages differ, the values differ) mean an allocation
 * failed. Returns the tree; or NULL with *oom set (out of memory); or NULL
 * with jansson's message in *je (the text is not such JSON). */
json_t *sage__json_loadb(const char *text, size_t len, size_t flags, json_error_t *je, int *oom);

/* The same for a file: read whole (at most max bytes), then parsed as text.
 * On a read failure: NULL, *oom 0, and the reason in je->text (its line -1). */
json_t *sage__json_load_file(const char *path, size_t max, size_t flags, json_error_t *je, int *oom);

/* json_dumps that never returns a silently shortened text: jansson (2.14)
 * may skip part of the output when an allocation fails inside it, so the
 * value is written twice and the two texts must agree. malloc'd text, or
 * NULL when out of memory. */
char *sage__json_dumps(const json_t *v, size_t flags);

/* Building JSON: json_object_set_new / json_array_append_new that remember a
 * failure (an allocation, or a NULL value from a failed constructor) in
 * *bad. The value is stolen either way, as jansson does. */
static inline void sage__jset(int *bad, json_t *o, const char *key, json_t *v)
{
    if (json_object_set_new(o, key, v) != 0)
        *bad = 1;
}
static inline void sage__jadd(int *bad, json_t *a, json_t *v)
{
    if (json_array_append_new(a, v) != 0)
        *bad = 1;
}
/* The finished value, or NULL (released) when anything failed. */
static inline json_t *sage__jdone(int bad, json_t *v)
{
    if (bad) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* A 64-bit value as a JSON string of 16 lower-case hex digits (NULL when out of memory), and back: 0, or -1
 * when v is not such a string. For hashes and checksums, which JSON numbers cannot hold whole. */
json_t *sage__json_hex64(uint64_t v);
int sage__json_hex64_get(const json_t *v, uint64_t *out);

#endif
