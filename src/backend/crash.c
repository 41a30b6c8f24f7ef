/* backend/crash.c - a worker whose task crashes names the operator whose code it was in.
 *
 * Design note. Operators chained into one task share its thread, so a
 * crash in map "parse" after source "src" looked like the source's. Marking
 * the current operator on every call would cost every record; instead the
 * crash handler finds it from the stack: for each return address of the
 * crashing thread (backtrace), the unwinder's tables give the start of the
 * function that contains it (_Unwind_FindEnclosingFunction, from the FDEs,
 * which static functions have too), and the innermost one that is one of
 * the chain's user functions or hooks (or a cold part of one, found in the
 * program's symbol table) names the operator. Everything the
 * handler writes is prepared when it is armed (one frame and one line per
 * operator); the handler only compares pointers and calls write(2). It runs
 * on an alternate stack, so a stack overflow is caught too, then restores
 * the default action and raises the signal again: the JobManager still
 * sees the process die of it.
 */
#include "backend/crash.h"

#include <elf.h>
#include <execinfo.h>
#include <fcntl.h>
#include <jansson.h>
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unwind.h>

#include "net/frame.h"

#define CRASH_OPS_MAX 64
#define CRASH_FNS_PER_OP 16

typedef struct crash_op {
    const void *fns[CRASH_FNS_PER_OP]; /* its function and hooks */
    int nfns;
    char *frame; /* the EVENT frame, whole */
    size_t frame_len;
    char line[320]; /* for stderr */
    size_t line_len;
} crash_op;

static crash_op g_ops[CRASH_OPS_MAX];
static int g_nops, g_ctl_fd = -1;
static pthread_mutex_t *g_send_mu;
static const int g_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void on_crash(int sig, siginfo_t *info, void *uctx)
{
    (void)info;
    (void)uctx;
    void *pcs[64];
    int n = backtrace(pcs, 64);
    const crash_op *hit = NULL;
    for (int i = 0; i < n && !hit; i++) {
        void *start = _Unwind_FindEnclosingFunction((char *)pcs[i] - 1);
        for (int k = 0; k < g_nops && !hit && start; k++)
            for (int f = 0; f < g_ops[k].nfns; f++)
                if (g_ops[k].fns[f] == start) {
                    hit = &g_ops[k];
                    break;
                }
    }
    if (hit) {
        write_all(2, hit->line, hit->line_len);
        /* a frame the control thread is halfway through would be corrupted: then stderr says it alone */
        if (g_ctl_fd >= 0 && g_send_mu && pthread_mutex_trylock(g_send_mu) == 0)
            write_all(g_ctl_fd, hit->frame, hit->frame_len);
    }
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    raise(sig); /* delivered once we return (the signal is blocked in its handler) */
}

static void add_fn(crash_op *c, const void *fn)
{
    if (fn && c->nfns < CRASH_FNS_PER_OP)
        c->fns[c->nfns++] = fn;
}

/* ---- the main program's symbols: a function's cold part ----
 * GCC moves the unlikely paths of a function (say, a call to abort) into a
 * part of its own, "name.cold", with its own unwind entry: a crash there
 * finds that part's start, not the function's. So for every function of the
 * chain defined in the main program, its cold part is looked up in the
 * program's symbol table (when it has one: a stripped program has not, and
 * a crash in a cold part then names the task's operator, as before). */

typedef struct elf_syms {
    unsigned char *map;
    size_t len;
    const Elf64_Sym *syms;
    size_t nsyms;
    const char *strs;
    size_t strs_len;
    uintptr_t bias; /* where the program is loaded */
} elf_syms;

static int main_bias(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    *(uintptr_t *)arg = info->dlpi_addr; /* the first object is the program itself */
    return 1;
}

static int syms_open(elf_syms *e)
{
    memset(e, 0, sizeof *e);
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    e->len = (size_t)st.st_size;
    e->map = mmap(NULL, e->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (e->map == MAP_FAILED) {
        e->map = NULL;
        return -1;
    }
    const Elf64_Ehdr *h = (const Elf64_Ehdr *)e->map;
    if (memcmp(h->e_ident, ELFMAG, SELFMAG) != 0 || h->e_ident[EI_CLASS] != ELFCLASS64 || h->e_shoff == 0 ||
        h->e_shentsize != sizeof(Elf64_Shdr) || h->e_shoff > e->len ||
        (e->len - h->e_shoff) / sizeof(Elf64_Shdr) < h->e_shnum)
        return -1;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->map + h->e_shoff);
    for (size_t i = 0; i < h->e_shnum; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= h->e_shnum)
            continue;
        const Elf64_Shdr *str = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > e->len || sh[i].sh_size > e->len - sh[i].sh_offset || str->sh_offset > e->len ||
            str->sh_size > e->len - str->sh_offset)
            return -1;
        e->syms = (const Elf64_Sym *)(e->map + sh[i].sh_offset);
        e->nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
        e->strs = (const char *)(e->map + str->sh_offset);
        e->strs_len = str->sh_size;
    }
    dl_iterate_phdr(main_bias, &e->bias);
    return e->syms ? 0 : -1;
}

static const char *sym_name(const elf_syms *e, const Elf64_Sym *s)
{
    return s->st_name < e->strs_len && memchr(e->strs + s->st_name, 0, e->strs_len - s->st_name)
               ? e->strs + s->st_name
               : NULL;
}

/* The cold part of function fn (NULL: none known). */
static const void *cold_part(const elf_syms *e, const void *fn)
{
    const char *name = NULL;
    for (size_t i = 0; i < e->nsyms && !name; i++)
        if (ELF64_ST_TYPE(e->syms[i].st_info) == STT_FUNC && e->syms[i].st_value &&
            e->bias + e->syms[i].st_value == (uintptr_t)fn)
            name = sym_name(e, &e->syms[i]);
    if (!name)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < e->nsyms; i++) {
        const char *s = sym_name(e, &e->syms[i]);
        if (s && e->syms[i].st_value && strncmp(s, name, n) == 0 && strcmp(s + n, ".cold") == 0)
            return (const void *)(e->bias + e->syms[i].st_value);
    }
    return NULL;
}

void sage__crash_arm(const sage__task *t, int ctl_fd, pthread_mutex_t *send_mu)
{
    void *warm[4];
    backtrace(warm, 4); /* loads the unwinder now: the handler must not be the first to */
    elf_syms syms;
    int have_syms = syms_open(&syms) == 0;
    for (size_t k = 0; k < t->nops && g_nops < CRASH_OPS_MAX; k++) {
        const sage__op *op = t->ops[k].op;
        crash_op *c = &g_ops[g_nops];
        memset(c, 0, sizeof *c);
        add_fn(c, (const void *)op->fn.map); /* the union's members share one representation */
        add_fn(c, (const void *)op->open);
        add_fn(c, (const void *)op->close);
        add_fn(c, (const void *)op->snapshot);
        add_fn(c, (const void *)op->restore);
        add_fn(c, (const void *)op->reduce);
        for (size_t i = 0; op->cofns && i < op->ninputs; i++)
            add_fn(c, (const void *)op->cofns[i]);
        for (int f = 0, n = c->nfns; have_syms && f < n; f++)
            add_fn(c, cold_part(&syms, c->fns[f]));
        json_t *ev = json_pack("{s:s,s:s,s:i}", "event", "crash", "operator", op->name, "instance", t->instance);
        char *txt = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        json_decref(ev);
        size_t len = txt ? strlen(txt) : 0;
        c->frame = txt ? malloc(SAGE__FRAME_HDR + len) : NULL;
        if (c->frame) {
            sage__frame_header((unsigned char *)c->frame, SAGE__MSG_EVENT, (uint32_t)len);
            memcpy(c->frame + SAGE__FRAME_HDR, txt, len);
            c->frame_len = SAGE__FRAME_HDR + len;
        }
        free(txt);
        int l = snprintf(c->line, sizeof c->line, "sage worker: operator \"%s\" instance %d crashed in its code\n",
                         op->name, t->instance);
        c->line_len = l > 0 && (size_t)l < sizeof c->line ? (size_t)l : 0;
        g_nops++;
    }
    if (syms.map)
        munmap(syms.map, syms.len);
    g_ctl_fd = ctl_fd;
    g_send_mu = send_mu;
    static char altstack[64 * 1024];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {.sa_sigaction = on_crash, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof g_signals / sizeof g_signals[0]; i++)
        sigaction(g_signals[i], &sa, NULL);
}
