/* fuzz/fuzz_checkpoint.c - fuzzes the checkpoint readers: part files (sections, per-key state) and manifests.
 *
 * The first byte picks what the rest is: 0 a part file as found on disk, 1 a
 * part whose header length and checksum are recomputed first (so mutations
 * reach the sections instead of stopping at the checksum), 2 a manifest as
 * found, 3 a manifest whose checksum line is recomputed. A part that passes
 * sage__part_check is then walked as a restore walks it; a manifest that
 * parses must hold what the parser promises. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ckstore.h"
#include "sage/stream.h"
#include "util/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_part(const unsigned char *p, size_t n)
{
    char why[256];
    if (sage__part_check(p, n, why, sizeof why) != 0) {
        if (!why[0]) {
            fprintf(stderr, "fuzz_checkpoint: a part refused without a reason\n");
            abort();
        }
        return;
    }
    sage__section s;
    uint64_t sum = 0;
    for (size_t off = 0; sage__part_next(p, n, &off, &s);) {
        if (s.p < p || s.len > n || s.p + s.len > p + n) {
            fprintf(stderr, "fuzz_checkpoint: a checked section lies outside the part\n");
            abort();
        }
        if (s.kind == SAGE__SEC_KEYS) { /* as restore_keys reads it */
            uint64_t st, count;
            memcpy(&st, s.p, 8);
            memcpy(&count, s.p + 8, 8);
            size_t o = 16;
            for (uint64_t i = 0; i < count; i++) {
                uint32_t kl;
                memcpy(&kl, s.p + o, 4);
                if (kl > SAGE_KEY_MAX)
                    abort();
                sum += s.p[o + 4 + kl + st - 1]; /* the last byte of the state block */
                o += 4 + kl + (size_t)st;
            }
        } else if (s.len) {
            sum += s.p[s.len - 1];
        }
    }
    (void)sum;
}

static void walk_manifest(const unsigned char *p, size_t n)
{
    sage__manifest m;
    char why[256];
    if (sage__manifest_parse(p, n, &m, why, sizeof why) != 0) {
        if (!why[0]) {
            fprintf(stderr, "fuzz_checkpoint: a manifest refused without a reason\n");
            abort();
        }
        return;
    }
    if (m.ntasks == 0 || !m.tasks) {
        fprintf(stderr, "fuzz_checkpoint: a manifest accepted without tasks\n");
        abort();
    }
    for (size_t i = 0; i < m.ntasks; i++)
        if (m.tasks[i].chain < 0 || m.tasks[i].instance < 0 ||
            (!m.tasks[i].finished && m.tasks[i].bytes < SAGE__PART_HDR))
            abort();
    sage__buf out;
    sage__buf_init(&out, SAGE__MANIFEST_MAX);
    if (sage__manifest_write(&m, &out) == 0) { /* what it wrote reads back the same */
        sage__manifest m2;
        if (sage__manifest_parse(out.p, out.len, &m2, why, sizeof why) != 0 || m2.ntasks != m.ntasks || m2.id != m.id ||
            m2.plan_hash != m.plan_hash) {
            fprintf(stderr, "fuzz_checkpoint: a manifest did not survive writing and reading: %s\n", why);
            abort();
        }
        sage__manifest_free(&m2);
    }
    sage__buf_free(&out);
    sage__manifest_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    size_t n = size - 1;
    unsigned char *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    if (mode == 1 && n >= SAGE__PART_HDR) {
        uint64_t len = n - SAGE__PART_HDR, sum = sage__hash64(p + SAGE__PART_HDR, (size_t)len);
        memcpy(p + 16, &len, 8);
        memcpy(p + 24, &sum, 8);
    }
    if (mode == 3) { /* recompute the checksum line over what precedes "\nchecksum " */
        static const char tag[] = "\nchecksum ";
        size_t tl = sizeof tag - 1;
        if (n >= tl + 17 && memcmp(p + n - 17 - tl, tag, tl) == 0) {
            char hex[17];
            snprintf(hex, sizeof hex, "%016" PRIx64, sage__hash64(p, n - 17 - tl));
            memcpy(p + n - 17, hex, 16);
        }
    }
    if (mode <= 1)
        walk_part(p, n);
    else
        walk_manifest(p, n);
    free(p);
    return 0;
}
