/* runtime/ckstore.h - the checkpoint store: part files and manifests on disk, written durably, read back checked.
 *
 * A checkpoint is a directory holding one part file per task that captured
 * state ("t<i>.part") and a MANIFEST that commits it. Every file is written
 * to a temporary name, fsynced, renamed, and the directory fsynced; the
 * manifest goes last, so a checkpoint without a valid MANIFEST never
 * existed. A run's checkpoints live in "chk-<id>" directories below the
 * run's directory; a savepoint is such a directory anywhere.
 *
 * Part file: magic "SAGECKP\1", u32 version, u32 reserved, u64 payload
 * length, u64 checksum (sage__hash64 of the payload), then the payload: a
 * sequence of sections [u32 op index in the chain][u32 kind][u64 len][len
 * bytes]. Native byte order: a checkpoint is read on the machine kind that
 * wrote it. Manifest: one JSON object, a newline, and "checksum <16 hex
 * digits>\n" over the JSON text. Readers trust nothing: lengths, counts and
 * checksums are checked before anything is used (fuzz/fuzz_checkpoint.c).
 */
#ifndef SAGE_RUNTIME_CKSTORE_H
#define SAGE_RUNTIME_CKSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "sage/error.h"
#include "util/buf.h"

#define SAGE__PART_MAGIC "SAGECKP\1"
#define SAGE__PART_VERSION 1u
#define SAGE__PART_HDR 32u
#define SAGE__PART_MAX ((uint64_t)1 << 40)   /* a part's payload, bytes */
#define SAGE__MANIFEST_MAX ((size_t)8 << 20) /* a manifest, bytes */

/* Section kinds. */
enum {
    SAGE__SEC_COUNTS = 1,  /* u64 records_in, u64 records_out, u64 calls */
    SAGE__SEC_KEYS = 2,    /* u64 state_size, u64 count, count x ([u32 key_len][key][state_size bytes]) */
    SAGE__SEC_USER = 3,    /* the bytes of the operator's snapshot hook */
    SAGE__SEC_SOURCE = 4,  /* u64 next record index, i64 byte offset in the file (-1: none) */
    SAGE__SEC_COLLECT = 5, /* u64 records this instance had collected, u64 bytes of its results file (0: none) */
};

typedef struct sage__section {
    uint32_t op, kind;
    const unsigned char *p;
    uint64_t len;
} sage__section;

/* Start a part in b (its header, filled in by sage__part_finish). */
int sage__part_begin(sage__buf *b);
/* Append one section. */
int sage__part_section(sage__buf *b, uint32_t op, uint32_t kind, const void *data, size_t len);
/* Open a section whose bytes follow with sage__buf_append; close it with sage__part_section_end. */
int sage__part_section_begin(sage__buf *b, uint32_t op, uint32_t kind, size_t *mark);
void sage__part_section_end(sage__buf *b, size_t mark);
/* Fill in the header's length and checksum. */
void sage__part_finish(sage__buf *b);
/* Check a part's bytes: header, checksum, and every section's framing and
 * contents (known kinds, exact sizes, key lengths). 0, or SAGE_EIO with why. */
int sage__part_check(const void *data, size_t n, char *why, size_t why_len);
/* After a successful check: the section at *off (start with 0), advancing
 * *off; 1 with sec filled, 0 past the last. */
int sage__part_next(const void *data, size_t n, size_t *off, sage__section *sec);
uint64_t sage__part_checksum(const void *data, size_t n); /* from a checked part's header */

/* What a manifest says. */
typedef struct sage__manifest_task {
    int chain, instance;
    int finished;   /* the task had ended before the barrier: it does not run again */
    uint64_t bytes; /* its part file's size (0 when finished) */
    uint64_t checksum;
} sage__manifest_task;

typedef struct sage__manifest_sink {
    int op;          /* operator id of a file sink */
    uint64_t length; /* the file's committed length */
    char path[1024]; /* the file ("" unknown): a JobManager cuts it back before a recovery */
} sage__manifest_sink;

typedef struct sage__manifest {
    uint64_t id;
    uint64_t plan_hash;
    int savepoint;
    int64_t taken_ms; /* wall clock, ms since the epoch */
    char job[128];
    size_t ntasks;
    sage__manifest_task *tasks;
    size_t nsinks;
    sage__manifest_sink *sinks;
} sage__manifest;

void sage__manifest_free(sage__manifest *m);
/* The manifest's text (JSON, newline, checksum line) into out. */
int sage__manifest_write(const sage__manifest *m, sage__buf *out);
/* Parse and check a manifest's text: 0, or SAGE_EIO with why. m is
 * allocated on success only. */
int sage__manifest_parse(const void *text, size_t n, sage__manifest *m, char *why, size_t why_len);

/* A checkpoint read back: its manifest and each task's part (NULL when finished). */
typedef struct sage__loaded {
    sage__manifest m;
    unsigned char **parts;
    size_t *part_len;
    char dir[1024];
} sage__loaded;
void sage__loaded_free(sage__loaded *l);

/* Write a checkpoint into dir (created with mode 0700; it must not exist or
 * be empty): parts[i] (NULL for finished tasks) and then the manifest.
 * *bytes gets the size written. 0, or SAGE_EIO / SAGE_EINVAL with why. */
int sage__ckpt_write(const char *dir, sage__manifest *m, sage__buf *const *parts, uint64_t *bytes, char *why,
                     size_t why_len);
/* Read the checkpoint in dir, every checksum checked. */
int sage__ckpt_load(const char *dir, sage__loaded *out, char *why, size_t why_len);
/* The same for one task only (a worker process): the manifest and part `task` (the others stay NULL). */
int sage__ckpt_load_one(const char *dir, size_t task, sage__loaded *out, char *why, size_t why_len);
/* Only the manifest of the checkpoint in dir (checked; the parts are not read). */
int sage__ckpt_read_manifest(const char *dir, sage__manifest *m, char *why, size_t why_len);
/* The pieces of sage__ckpt_write, for checkpoints assembled by several processes: one part file
 * ("t<task>.part", dir must exist), and the manifest that commits them (the directory synced). */
int sage__ckpt_write_part(const char *dir, size_t task, const sage__buf *part, char *why, size_t why_len);
int sage__ckpt_commit(const char *dir, const void *manifest, size_t len, char *why, size_t why_len);
/* The path of checkpoint id below a run's directory. */
int sage__ckpt_path(char *out, size_t len, const char *rundir, uint64_t id);
/* The newest checkpoint of a run directory that loads, trying older ones
 * when it does not; each one skipped is reported through skipped(why).
 * SAGE_ENOTFOUND when none loads. */
int sage__ckpt_load_latest(const char *rundir, sage__loaded *out, void (*skipped)(const char *why, void *arg),
                           void *arg, char *why, size_t why_len);
/* Keep the newest `keep` chk-<id> below rundir, remove the others. */
void sage__ckpt_prune(const char *rundir, size_t keep);
/* mkdir -p, mode 0700 for what it creates. */
int sage__ckpt_mkdirs(const char *path, char *why, size_t why_len);
/* Remove a directory and what it holds (one level of subdirectories deep: a run directory). */
void sage__ckpt_remove(const char *dir);

#endif
