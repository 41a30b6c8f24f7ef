/* runtime/ckstore.c - the checkpoint store: part and manifest formats, durable writes, checked reads (see ckstore.h). */
#include "runtime/ckstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sage/error.h"
#include "sage/stream.h" /* SAGE_KEY_MAX */
#include "util/err.h"
#include "util/hash.h"
#include "util/json.h"

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ---- part files ---- */

int sage__part_begin(sage__buf *b)
{
    unsigned char hdr[SAGE__PART_HDR] = {0};
    memcpy(hdr, SAGE__PART_MAGIC, 8);
    uint32_t v = SAGE__PART_VERSION;
    memcpy(hdr + 8, &v, 4);
    b->len = 0;
    return sage__buf_append(b, hdr, sizeof hdr);
}

int sage__part_section_begin(sage__buf *b, uint32_t op, uint32_t kind, size_t *mark)
{
    unsigned char h[16] = {0};
    memcpy(h, &op, 4);
    memcpy(h + 4, &kind, 4);
    *mark = b->len;
    return sage__buf_append(b, h, sizeof h);
}

void sage__part_section_end(sage__buf *b, size_t mark)
{
    uint64_t len = b->len - mark - 16;
    memcpy(b->p + mark + 8, &len, 8);
}

int sage__part_section(sage__buf *b, uint32_t op, uint32_t kind, const void *data, size_t len)
{
    size_t mark;
    int rc = sage__part_section_begin(b, op, kind, &mark);
    if (rc == 0 && len)
        rc = sage__buf_append(b, data, len);
    if (rc == 0)
        sage__part_section_end(b, mark);
    return rc;
}

void sage__part_finish(sage__buf *b)
{
    uint64_t len = b->len - SAGE__PART_HDR;
    uint64_t sum = sage__hash64(b->p + SAGE__PART_HDR, (size_t)len);
    memcpy(b->p + 16, &len, 8);
    memcpy(b->p + 24, &sum, 8);
}

uint64_t sage__part_checksum(const void *data, size_t n)
{
    return n >= SAGE__PART_HDR ? rd64((const unsigned char *)data + 24) : 0;
}

static int check_keys(const unsigned char *p, uint64_t len, char *why, size_t wl)
{
    if (len < 16) {
        sage__fmt(why, wl, "a key-state section of %" PRIu64 " bytes is shorter than its header", len);
        return SAGE_EIO;
    }
    uint64_t size = rd64(p), count = rd64(p + 8), off = 16;
    if (size == 0 || size > SAGE__PART_MAX) {
        sage__fmt(why, wl, "a key-state section says its blocks have %" PRIu64 " bytes", size);
        return SAGE_EIO;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (len - off < 4) {
            sage__fmt(why, wl, "key %" PRIu64 " of %" PRIu64 " lies past the section's end", i, count);
            return SAGE_EIO;
        }
        uint32_t kl = rd32(p + off);
        off += 4;
        if (kl > SAGE_KEY_MAX) {
            sage__fmt(why, wl, "key %" PRIu64 " is %u bytes long (at most %d)", i, kl, SAGE_KEY_MAX);
            return SAGE_EIO;
        }
        if (len - off < kl || len - off - kl < size) {
            sage__fmt(why, wl, "key %" PRIu64 " of %" PRIu64 " lies past the section's end", i, count);
            return SAGE_EIO;
        }
        off += kl + size;
    }
    if (off != len) {
        sage__fmt(why, wl, "a key-state section has %" PRIu64 " bytes after its %" PRIu64 " keys", len - off, count);
        return SAGE_EIO;
    }
    return 0;
}

int sage__part_check(const void *data, size_t n, char *why, size_t wl)
{
    const unsigned char *p = data;
    if (n < SAGE__PART_HDR || memcmp(p, SAGE__PART_MAGIC, 8) != 0) {
        sage__fmt(why, wl, "not a checkpoint part (%zu bytes, no magic)", n);
        return SAGE_EIO;
    }
    if (rd32(p + 8) != SAGE__PART_VERSION) {
        sage__fmt(why, wl, "a part of format version %u (this library reads %u)", rd32(p + 8), SAGE__PART_VERSION);
        return SAGE_EIO;
    }
    uint64_t len = rd64(p + 16);
    if (len != n - SAGE__PART_HDR) {
        sage__fmt(why, wl, "a part says it holds %" PRIu64 " bytes but the file has %zu (truncated?)", len,
                  n - SAGE__PART_HDR);
        return SAGE_EIO;
    }
    if (sage__hash64(p + SAGE__PART_HDR, (size_t)len) != rd64(p + 24)) {
        sage__fmt(why, wl, "a part's checksum does not match its %" PRIu64 " bytes", len);
        return SAGE_EIO;
    }
    for (size_t off = SAGE__PART_HDR; off < n;) {
        if (n - off < 16) {
            sage__fmt(why, wl, "a section header at byte %zu lies past the end", off);
            return SAGE_EIO;
        }
        uint32_t kind = rd32(p + off + 4);
        uint64_t sl = rd64(p + off + 8);
        off += 16;
        if (sl > n - off) {
            sage__fmt(why, wl, "a section of %" PRIu64 " bytes at byte %zu lies past the end", sl, off);
            return SAGE_EIO;
        }
        uint64_t want = kind == SAGE__SEC_COUNTS    ? 24
                        : kind == SAGE__SEC_SOURCE  ? 16
                        : kind == SAGE__SEC_COLLECT ? 16
                                                    : 0;
        if (kind < SAGE__SEC_COUNTS || kind > SAGE__SEC_COLLECT) {
            sage__fmt(why, wl, "a section of unknown kind %u at byte %zu", kind, off - 16);
            return SAGE_EIO;
        }
        if (want && sl != want) {
            sage__fmt(why, wl, "a section of kind %u has %" PRIu64 " bytes (expected %" PRIu64 ")", kind, sl, want);
            return SAGE_EIO;
        }
        if (kind == SAGE__SEC_KEYS && check_keys(p + off, sl, why, wl) != 0)
            return SAGE_EIO;
        off += (size_t)sl;
    }
    return 0;
}

int sage__part_next(const void *data, size_t n, size_t *off, sage__section *sec)
{
    const unsigned char *p = data;
    if (*off < SAGE__PART_HDR)
        *off = SAGE__PART_HDR;
    if (*off >= n)
        return 0;
    sec->op = rd32(p + *off);
    sec->kind = rd32(p + *off + 4);
    sec->len = rd64(p + *off + 8);
    sec->p = p + *off + 16;
    *off += 16 + (size_t)sec->len;
    return 1;
}

/* ---- manifests ---- */

void sage__manifest_free(sage__manifest *m)
{
    free(m->tasks);
    free(m->sinks);
    m->tasks = NULL;
    m->sinks = NULL;
    m->ntasks = m->nsinks = 0;
}

int sage__manifest_write(const sage__manifest *m, sage__buf *out)
{
    int bad = 0;
    json_t *o = json_object(), *tasks = json_array(), *sinks = json_array();
    if (!o || !tasks || !sinks) {
        json_decref(o);
        json_decref(tasks);
        json_decref(sinks);
        return SAGE_ENOMEM;
    }
    sage__jset(&bad, o, "format", json_integer(1));
    sage__jset(&bad, o, "checkpoint", json_integer((json_int_t)m->id));
    sage__jset(&bad, o, "plan_hash", sage__json_hex64(m->plan_hash));
    sage__jset(&bad, o, "job", json_string(m->job));
    sage__jset(&bad, o, "savepoint", json_boolean(m->savepoint));
    sage__jset(&bad, o, "taken_at_ms", json_integer(m->taken_ms));
    for (size_t i = 0; i < m->ntasks; i++) {
        const sage__manifest_task *t = &m->tasks[i];
        json_t *jt = json_object();
        if (!jt) {
            bad = 1;
            break;
        }
        sage__jset(&bad, jt, "chain", json_integer(t->chain));
        sage__jset(&bad, jt, "instance", json_integer(t->instance));
        if (t->finished) {
            sage__jset(&bad, jt, "finished", json_true());
        } else {
            sage__jset(&bad, jt, "bytes", json_integer((json_int_t)t->bytes));
            sage__jset(&bad, jt, "checksum", sage__json_hex64(t->checksum));
        }
        sage__jadd(&bad, tasks, jt);
    }
    for (size_t i = 0; i < m->nsinks; i++) {
        json_t *js = json_object();
        if (!js) {
            bad = 1;
            break;
        }
        sage__jset(&bad, js, "op", json_integer(m->sinks[i].op));
        sage__jset(&bad, js, "length", json_integer((json_int_t)m->sinks[i].length));
        if (m->sinks[i].path[0])
            sage__jset(&bad, js, "path", json_string(m->sinks[i].path));
        sage__jadd(&bad, sinks, js);
    }
    sage__jset(&bad, o, "tasks", tasks);
    sage__jset(&bad, o, "file_sinks", sinks);
    o = sage__jdone(bad, o);
    char *text = o ? sage__json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return SAGE_ENOMEM;
    size_t n = strlen(text);
    out->len = 0;
    int rc = sage__buf_append(out, text, n);
    if (rc == 0)
        rc = sage__buf_printf(out, "\nchecksum %016" PRIx64 "\n", sage__hash64(text, n));
    free(text);
    return rc;
}

static int get_u64(json_t *o, const char *key, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int sage__manifest_parse(const void *text, size_t n, sage__manifest *m, char *why, size_t wl)
{
    memset(m, 0, sizeof *m);
    const char *t = text;
    if (n > SAGE__MANIFEST_MAX) {
        sage__fmt(why, wl, "a manifest of %zu bytes (at most %zu)", n, SAGE__MANIFEST_MAX);
        return SAGE_EIO;
    }
    /* the trailer: "\nchecksum <16 hex>\n" */
    static const char tag[] = "\nchecksum ";
    size_t tl = sizeof tag - 1;
    if (n < tl + 17 || memcmp(t + n - 17 - tl, tag, tl) != 0 || t[n - 1] != '\n') {
        sage__fmt(why, wl, "the manifest has no checksum line (truncated?)");
        return SAGE_EIO;
    }
    char hex[17];
    memcpy(hex, t + n - 17, 16);
    hex[16] = '\0';
    size_t jn = n - 17 - tl;
    if (strspn(hex, "0123456789abcdef") != 16 || strtoull(hex, NULL, 16) != sage__hash64(t, jn)) {
        sage__fmt(why, wl, "the manifest's checksum does not match its text");
        return SAGE_EIO;
    }
    json_error_t je;
    int oom = 0;
    json_t *o = sage__json_loadb(t, jn, JSON_REJECT_DUPLICATES, &je, &oom);
    if (!o) {
        sage__fmt(why, wl, "the manifest is not JSON: %s", oom ? "out of memory" : je.text);
        return oom ? SAGE_ENOMEM : SAGE_EIO;
    }
    uint64_t fmt = 0, id = 0, taken = 0;
    json_t *tasks = json_object_get(o, "tasks"), *sinks = json_object_get(o, "file_sinks");
    const char *job = json_string_value(json_object_get(o, "job"));
    json_t *sp = json_object_get(o, "savepoint");
    if (!json_is_object(o) || get_u64(o, "format", 1, &fmt) != 0 || fmt != 1 ||
        get_u64(o, "checkpoint", INT64_MAX, &id) != 0 ||
        sage__json_hex64_get(json_object_get(o, "plan_hash"), &m->plan_hash) != 0 || !job ||
        strlen(job) >= sizeof m->job || !json_is_boolean(sp) || get_u64(o, "taken_at_ms", INT64_MAX, &taken) != 0 ||
        !json_is_array(tasks) || json_array_size(tasks) == 0 || json_array_size(tasks) > 1u << 20 ||
        !json_is_array(sinks) || json_array_size(sinks) > 1u << 20) {
        json_decref(o);
        sage__fmt(why, wl, "the manifest lacks a field or has one of the wrong kind");
        return SAGE_EIO;
    }
    m->id = id;
    m->taken_ms = (int64_t)taken;
    m->savepoint = json_is_true(sp);
    sage__strlcpy(m->job, job, sizeof m->job);
    m->ntasks = json_array_size(tasks);
    m->nsinks = json_array_size(sinks);
    m->tasks = calloc(m->ntasks, sizeof *m->tasks);
    m->sinks = calloc(m->nsinks ? m->nsinks : 1, sizeof *m->sinks);
    if (!m->tasks || !m->sinks) {
        json_decref(o);
        sage__manifest_free(m);
        sage__fmt(why, wl, "out of memory reading a manifest");
        return SAGE_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < m->ntasks && rc == 0; i++) {
        json_t *jt = json_array_get(tasks, i);
        sage__manifest_task *mt = &m->tasks[i];
        uint64_t chain, inst;
        json_t *fin = json_object_get(jt, "finished");
        if (!json_is_object(jt) || get_u64(jt, "chain", INT32_MAX, &chain) != 0 ||
            get_u64(jt, "instance", INT32_MAX, &inst) != 0 || (fin && !json_is_true(fin))) {
            rc = -1;
            break;
        }
        mt->chain = (int)chain;
        mt->instance = (int)inst;
        mt->finished = fin != NULL;
        if (!mt->finished &&
            (get_u64(jt, "bytes", SAGE__PART_MAX + SAGE__PART_HDR, &mt->bytes) != 0 || mt->bytes < SAGE__PART_HDR ||
             sage__json_hex64_get(json_object_get(jt, "checksum"), &mt->checksum) != 0))
            rc = -1;
    }
    for (size_t i = 0; i < m->nsinks && rc == 0; i++) {
        json_t *js = json_array_get(sinks, i);
        uint64_t op;
        json_t *path = json_object_get(js, "path");
        if (!json_is_object(js) || get_u64(js, "op", INT32_MAX, &op) != 0 ||
            get_u64(js, "length", INT64_MAX, &m->sinks[i].length) != 0 ||
            (path && (!json_is_string(path) || !*json_string_value(path) ||
                      strlen(json_string_value(path)) >= sizeof m->sinks[i].path))) {
            rc = -1;
        } else {
            m->sinks[i].op = (int)op;
            if (path)
                sage__strlcpy(m->sinks[i].path, json_string_value(path), sizeof m->sinks[i].path);
        }
    }
    json_decref(o);
    if (rc != 0) {
        sage__manifest_free(m);
        sage__fmt(why, wl, "a task or file sink entry of the manifest is malformed");
        return SAGE_EIO;
    }
    return 0;
}

/* ---- files ---- */

/* Write data to dir/name durably: a temporary name, fsync, rename. */
static int write_durable(int dfd, const char *name, const void *data, size_t n, char *why, size_t wl)
{
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        sage__fmt(why, wl, "creating %s: %s", tmp, strerror(errno));
        return SAGE_EIO;
    }
    const unsigned char *p = data;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            sage__fmt(why, wl, "writing %s: %s", tmp, w < 0 ? strerror(errno) : "no progress");
            close(fd);
            unlinkat(dfd, tmp, 0);
            return SAGE_EIO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        sage__fmt(why, wl, "syncing %s: %s", tmp, strerror(errno));
        unlinkat(dfd, tmp, 0);
        return SAGE_EIO;
    }
    if (renameat(dfd, tmp, dfd, name) != 0) {
        sage__fmt(why, wl, "renaming %s: %s", tmp, strerror(errno));
        unlinkat(dfd, tmp, 0);
        return SAGE_EIO;
    }
    return 0;
}

/* mkdir -p with mode 0700 for what it creates. */
int sage__ckpt_mkdirs(const char *path, char *why, size_t wl)
{
    char p[1024];
    if (sage__strlcpy(p, path, sizeof p) >= sizeof p) {
        sage__fmt(why, wl, "the path \"%s\" is too long", path);
        return SAGE_EINVAL;
    }
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                sage__fmt(why, wl, "creating \"%s\": %s", p, strerror(errno));
                return SAGE_EIO;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    return 0;
}

int sage__ckpt_write_part(const char *dir, size_t task, const sage__buf *part, char *why, size_t wl)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        sage__fmt(why, wl, "\"%s\": %s", dir, strerror(errno));
        return SAGE_EIO;
    }
    char name[32], w[256];
    snprintf(name, sizeof name, "t%zu.part", task);
    int rc = write_durable(dfd, name, part->p, part->len, w, sizeof w);
    close(dfd);
    if (rc != 0)
        sage__fmt(why, wl, "\"%s\": %s", dir, w);
    return rc;
}

int sage__ckpt_commit(const char *dir, const void *manifest, size_t len, char *why, size_t wl)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        sage__fmt(why, wl, "\"%s\": %s", dir, strerror(errno));
        return SAGE_EIO;
    }
    char w[256];
    int rc = write_durable(dfd, "MANIFEST", manifest, len, w, sizeof w);
    if (rc == 0 && fsync(dfd) != 0) {
        snprintf(w, sizeof w, "syncing the directory: %s", strerror(errno));
        rc = SAGE_EIO;
    }
    close(dfd);
    if (rc != 0)
        sage__fmt(why, wl, "\"%s\": %s", dir, w);
    return rc;
}

int sage__ckpt_write(const char *dir, sage__manifest *m, sage__buf *const *parts, uint64_t *bytes, char *why, size_t wl)
{
    int rc = sage__ckpt_mkdirs(dir, why, wl);
    if (rc != 0)
        return rc;
    DIR *d = opendir(dir);
    if (!d) {
        sage__fmt(why, wl, "opening \"%s\": %s", dir, strerror(errno));
        return SAGE_EIO;
    }
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            sage__fmt(why, wl, "\"%s\" is not empty (it holds \"%s\")", dir, e->d_name);
            closedir(d);
            return SAGE_EINVAL;
        }
    int dfd = dirfd(d);
    uint64_t total = 0;
    char name[32], w[256];
    for (size_t i = 0; i < m->ntasks && rc == 0; i++) {
        if (m->tasks[i].finished)
            continue;
        snprintf(name, sizeof name, "t%zu.part", i);
        rc = write_durable(dfd, name, parts[i]->p, parts[i]->len, w, sizeof w);
        m->tasks[i].bytes = parts[i]->len;
        m->tasks[i].checksum = sage__part_checksum(parts[i]->p, parts[i]->len);
        total += parts[i]->len;
    }
    sage__buf mb;
    sage__buf_init(&mb, SAGE__MANIFEST_MAX);
    if (rc == 0 && (rc = sage__manifest_write(m, &mb)) != 0)
        snprintf(w, sizeof w, "out of memory writing the manifest");
    if (rc == 0)
        rc = write_durable(dfd, "MANIFEST", mb.p, mb.len, w, sizeof w);
    total += mb.len;
    sage__buf_free(&mb);
    if (rc == 0 && fsync(dfd) != 0) {
        snprintf(w, sizeof w, "syncing the directory: %s", strerror(errno));
        rc = SAGE_EIO;
    }
    closedir(d);
    if (rc != 0) {
        sage__fmt(why, wl, "checkpoint %" PRIu64 " in \"%s\": %s", m->id, dir, w);
        return rc == SAGE_ENOMEM ? rc : SAGE_EIO;
    }
    /* the parent learns the new directory's name durably too */
    char parent[1024];
    sage__strlcpy(parent, dir, sizeof parent);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0) {
            fsync(pfd);
            close(pfd);
        }
    }
    if (bytes)
        *bytes = total;
    return 0;
}

/* Read a whole file of at most max bytes. */
static int read_file(int dfd, const char *name, uint64_t max, unsigned char **out, size_t *len, char *why, size_t wl)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        sage__fmt(why, wl, "%s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SAGE_EIO;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        sage__fmt(why, wl, "%s: not a regular file of at most %" PRIu64 " bytes", name, max);
        close(fd);
        return SAGE_EIO;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        sage__fmt(why, wl, "%s: out of memory", name);
        return SAGE_ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(p);
        sage__fmt(why, wl, "%s: short read", name);
        return SAGE_EIO;
    }
    *out = p;
    *len = n;
    return 0;
}

void sage__loaded_free(sage__loaded *l)
{
    if (l->parts)
        for (size_t i = 0; i < l->m.ntasks; i++)
            free(l->parts[i]);
    free(l->parts);
    free(l->part_len);
    l->parts = NULL;
    l->part_len = NULL;
    sage__manifest_free(&l->m);
}

static int load(const char *dir, size_t only, sage__loaded *out, char *why, size_t wl);

int sage__ckpt_load(const char *dir, sage__loaded *out, char *why, size_t wl)
{
    return load(dir, SIZE_MAX, out, why, wl);
}

int sage__ckpt_load_one(const char *dir, size_t task, sage__loaded *out, char *why, size_t wl)
{
    int rc = load(dir, task, out, why, wl);
    if (rc == 0 && task >= out->m.ntasks) {
        sage__fmt(why, wl, "checkpoint \"%s\" has %zu tasks, not task %zu", dir, out->m.ntasks, task);
        sage__loaded_free(out);
        return SAGE_EINVAL;
    }
    return rc;
}

/* only: the one task whose part is read (SIZE_MAX: all). */
static int load(const char *dir, size_t only, sage__loaded *out, char *why, size_t wl)
{
    memset(out, 0, sizeof *out);
    sage__strlcpy(out->dir, dir, sizeof out->dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        sage__fmt(why, wl, "\"%s\": %s", dir, strerror(errno));
        return errno == ENOENT ? SAGE_ENOTFOUND : SAGE_EIO;
    }
    unsigned char *mt = NULL;
    size_t mn = 0;
    char w[256];
    int rc = read_file(dfd, "MANIFEST", SAGE__MANIFEST_MAX, &mt, &mn, w, sizeof w);
    if (rc == 0) {
        rc = sage__manifest_parse(mt, mn, &out->m, w, sizeof w);
        free(mt);
    }
    if (rc == 0) {
        out->parts = calloc(out->m.ntasks, sizeof *out->parts);
        out->part_len = calloc(out->m.ntasks, sizeof *out->part_len);
        if (!out->parts || !out->part_len) {
            rc = SAGE_ENOMEM;
            snprintf(w, sizeof w, "out of memory");
        }
    }
    for (size_t i = 0; rc == 0 && i < out->m.ntasks; i++) {
        const sage__manifest_task *t = &out->m.tasks[i];
        if (t->finished || (only != SIZE_MAX && i != only))
            continue;
        char name[32], pw[200];
        snprintf(name, sizeof name, "t%zu.part", i);
        rc = read_file(dfd, name, t->bytes, &out->parts[i], &out->part_len[i], w, sizeof w);
        if (rc == 0 &&
            (out->part_len[i] != t->bytes || sage__part_checksum(out->parts[i], out->part_len[i]) != t->checksum)) {
            snprintf(w, sizeof w, "%s does not match the manifest (size or checksum)", name);
            rc = SAGE_EIO;
        }
        if (rc == 0 && sage__part_check(out->parts[i], out->part_len[i], pw, sizeof pw) != 0) {
            snprintf(w, sizeof w, "%s: %s", name, pw);
            rc = SAGE_EIO;
        }
    }
    close(dfd);
    if (rc != 0) {
        sage__fmt(why, wl, "checkpoint \"%s\": %s", dir, w);
        sage__loaded_free(out);
    }
    return rc;
}

int sage__ckpt_read_manifest(const char *dir, sage__manifest *m, char *why, size_t wl)
{
    memset(m, 0, sizeof *m);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        sage__fmt(why, wl, "checkpoint \"%s\": %s", dir, strerror(errno));
        return errno == ENOENT ? SAGE_ENOTFOUND : SAGE_EIO;
    }
    unsigned char *text = NULL;
    size_t n = 0;
    char w[512];
    int rc = read_file(dfd, "MANIFEST", SAGE__MANIFEST_MAX, &text, &n, w, sizeof w);
    close(dfd);
    if (rc == 0) {
        rc = sage__manifest_parse(text, n, m, w, sizeof w);
        free(text);
    }
    if (rc != 0)
        sage__fmt(why, wl, "checkpoint \"%s\": %s", dir, w);
    return rc;
}

int sage__ckpt_path(char *out, size_t len, const char *rundir, uint64_t id)
{
    int n = snprintf(out, len, "%s/chk-%" PRIu64, rundir, id);
    return n < 0 || (size_t)n >= len ? SAGE_ETOOBIG : 0;
}

/* The ids of rundir's chk-<id> entries, newest first. */
static size_t list_ids(const char *rundir, uint64_t **ids)
{
    *ids = NULL;
    DIR *d = opendir(rundir);
    if (!d)
        return 0;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *s = e->d_name;
        if (strncmp(s, "chk-", 4) != 0 || !s[4] || strspn(s + 4, "0123456789") != strlen(s + 4) || strlen(s + 4) > 18)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *v = realloc(*ids, cap * sizeof *v);
            if (!v)
                break;
            *ids = v;
        }
        (*ids)[n++] = strtoull(s + 4, NULL, 10);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* insertion sort, descending: a handful of entries */
        for (size_t j = i; j > 0 && (*ids)[j] > (*ids)[j - 1]; j--) {
            uint64_t t = (*ids)[j];
            (*ids)[j] = (*ids)[j - 1];
            (*ids)[j - 1] = t;
        }
    return n;
}

int sage__ckpt_load_latest(const char *rundir, sage__loaded *out, void (*skipped)(const char *why, void *arg),
                           void *arg, char *why, size_t wl)
{
    uint64_t *ids;
    size_t n = list_ids(rundir, &ids);
    for (size_t i = 0; i < n; i++) {
        char dir[1100], w[512];
        if (sage__ckpt_path(dir, sizeof dir, rundir, ids[i]) != 0)
            continue;
        int rc = sage__ckpt_load(dir, out, w, sizeof w);
        if (rc == 0) {
            free(ids);
            return 0;
        }
        if (rc == SAGE_ENOMEM) {
            free(ids);
            sage__fmt(why, wl, "%s", w);
            return rc;
        }
        if (skipped)
            skipped(w, arg);
    }
    free(ids);
    sage__fmt(why, wl, "no committed checkpoint in \"%s\"", rundir);
    return SAGE_ENOTFOUND;
}

static void remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        int dfd = dirfd(d);
        for (struct dirent *e; (e = readdir(d));)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dfd, e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

void sage__ckpt_prune(const char *rundir, size_t keep)
{
    uint64_t *ids;
    size_t n = list_ids(rundir, &ids);
    for (size_t i = keep; i < n; i++) {
        char dir[1100];
        if (sage__ckpt_path(dir, sizeof dir, rundir, ids[i]) == 0)
            remove_flat(dir);
    }
    free(ids);
}

void sage__ckpt_remove(const char *dir)
{
    sage__ckpt_prune(dir, 0);
    remove_flat(dir);
}
