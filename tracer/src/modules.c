/* modules.c — the module map: which file is loaded where, with its build
 * id, so the reporter can symbolize offline.
 *
 * Records are encoded into a private scratch area first (dl_iterate_phdr
 * holds the loader's lock; we must not take ours inside it), then appended
 * to the stream in one locked step so no stack node can resolve against a
 * half-written map.
 *
 * The whole map (MAP_RESET, then every module) goes in at start, in a
 * forked child's new trace and after a dlclose.  Objects loaded since are
 * added when a stack walk meets a module for the first time
 * (tm_modules_sync, from unwind.c) and the loader's load count (dlpi_adds)
 * moved since the map was collected: before the stack is recorded.  The
 * tracer does not interpose dlopen: the loader searches the RUNPATH of the
 * object that calls dlopen, and a wrapper would put itself in its place.
 * Only the modules not in the stream yet go in (an import of NumPy and
 * SciPy loads 150 modules in some 90 dlopens), unless the loader unloaded
 * something meanwhile (its dlpi_subs counter moved: glibc unloads some
 * modules itself, not through dlclose), which makes it the whole map again.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_lock.h"

#define SCRATCH_BYTES (4u << 20)
#define MAX_MODULES 8192

#define SEEN_SLOTS 4096 /* a power of two; half of it is used at most */

typedef struct scratch {
    uint8_t *buf;
    size_t used;
    uint32_t n;
    uint32_t offs[MAX_MODULES + 1];
    int only_new;                  /* this pass skips modules in `seen` */
    unsigned long long subs;       /* the loader's unload count at the last pass */
    unsigned long long subs_now, adds_now;
    /* The modules in the stream since its last MAP_RESET, by the address
     * of their program headers (0 = empty slot). */
    uintptr_t seen[SEEN_SLOTS];
    uint32_t nseen;
    int overflow;                  /* more modules than `seen` keeps */
    int full_next;                 /* `seen` is not the stream's: the next map is whole */
    char exe[4096];                /* the main program's path, once read */
} scratch;

/* Adds key to the set; 0 when it was there already.  A full set takes no
 * more (every module then counts as new: whole maps, as before). */
static int see(scratch *s, uintptr_t key)
{
    if (s->nseen >= SEEN_SLOTS / 2) {
        s->overflow = 1;
        return 1;
    }
    uint32_t i = (uint32_t)((key >> 4) * 0x9e3779b1u) & (SEEN_SLOTS - 1);
    for (; s->seen[i]; i = (i + 1) & (SEEN_SLOTS - 1))
        if (s->seen[i] == key)
            return 0;
    s->seen[i] = key;
    s->nseen++;
    return 1;
}

static scratch *scr;
static int scratch_lock;

/* The loader's load and unload counts when the map in the stream was
 * collected (atomic): tm_modules_sync compares without the scratch lock. */
static unsigned long long map_adds, map_subs;

/* dlpi_adds and dlpi_subs, with the glibc that has them (2.4 on). */
#define HAS_COUNTS(size) ((size) >= offsetof(struct dl_phdr_info, dlpi_subs) + \
                          sizeof(((struct dl_phdr_info *)0)->dlpi_subs))

static size_t build_id(const struct dl_phdr_info *info, uint8_t *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *name = p + sizeof *nh;
            const uint8_t *desc = name + ((nh->n_namesz + 3) & ~3u);
            const uint8_t *next = desc + ((nh->n_descsz + 3) & ~3u);
            if (next > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
                size_t n = nh->n_descsz < TM_BUILD_ID_MAX ? nh->n_descsz : TM_BUILD_ID_MAX;
                memcpy(out, desc, n);
                return n;
            }
            p = next;
        }
    }
    return 0;
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    scratch *s = arg;
    if (HAS_COUNTS(size)) {
        s->adds_now = info->dlpi_adds;
        s->subs_now = info->dlpi_subs;
    }
    if (!see(s, (uintptr_t)info->dlpi_phdr) && s->only_new)
        return 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo)
            lo = a;
        if (a + ph->p_memsz > hi)
            hi = a + ph->p_memsz;
    }
    if (hi == 0 || s->n >= MAX_MODULES)
        return 0;

    const char *path = info->dlpi_name;
    if (!path || !*path) {
        /* The main program has no name here. */
        if (!s->exe[0]) {
            ssize_t n = readlink("/proc/self/exe", s->exe, sizeof s->exe - 1);
            s->exe[n > 0 ? n : 0] = 0;
        }
        path = s->exe;
    }
    size_t plen = tm_strlen(path);
    if (plen > TM_STRING_MAX)
        plen = TM_STRING_MAX;
    if (s->used + 64 + TM_BUILD_ID_MAX + plen > SCRATCH_BYTES)
        return 0;

    uint8_t id[TM_BUILD_ID_MAX];
    size_t idlen = build_id(info, id);
    uint8_t *p = s->buf + s->used;
    s->offs[s->n] = (uint32_t)s->used;
    *p++ = TM_OP_MODULE;
    p = tm_put_u(p, info->dlpi_addr);
    p = tm_put_u(p, lo);
    p = tm_put_u(p, hi);
    p = tm_put_u(p, idlen);
    memcpy(p, id, idlen);
    p += idlen;
    p = tm_put_u(p, plen);
    memcpy(p, path, plen);
    p += plen;
    s->used = (size_t)(p - s->buf);
    s->n++;
    s->offs[s->n] = (uint32_t)s->used;
    return 0;
}

/* Finds the address range of this library. */
static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t *range = arg;
    uintptr_t me = (uintptr_t)&find_self;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (me >= a && me < a + ph->p_memsz) {
            range[0] = UINTPTR_MAX;
            range[1] = 0;
            for (int j = 0; j < info->dlpi_phnum; j++) {
                const ElfW(Phdr) *q = &info->dlpi_phdr[j];
                if (q->p_type != PT_LOAD)
                    continue;
                uintptr_t b = info->dlpi_addr + q->p_vaddr;
                if (b < range[0])
                    range[0] = b;
                if (b + q->p_memsz > range[1])
                    range[1] = b + q->p_memsz;
            }
            return 1;
        }
    }
    return 0;
}

TM_HIDDEN void tm_modules_self_range(uintptr_t *start, uintptr_t *end)
{
    uintptr_t range[2] = {0, 0};
    dl_iterate_phdr(find_self, range);
    *start = range[0];
    *end = range[1];
}

/* One pass over the loaded modules into the scratch area. */
static void collect(int only_new)
{
    if (!only_new) {
        memset(scr->seen, 0, sizeof scr->seen);
        scr->nseen = 0;
    }
    scr->overflow = 0;
    scr->used = 0;
    scr->n = 0;
    scr->only_new = only_new;
    dl_iterate_phdr(add_module, scr);
}

/* The scratch area, made on first use; scratch_lock held. */
static int have_scratch(void)
{
    if (!scr) {
        scr = tm_pages(sizeof *scr);
        if (scr)
            scr->buf = tm_pages(SCRATCH_BYTES);
        if (!scr || !scr->buf) {
            scr = NULL;
            return 0;
        }
        scr->full_next = 1;
    }
    return 1;
}

/* Appends what collect() found to the stream, after MAP_RESET when it is
 * the whole map.  scratch_lock held, the recorder's lock not. */
static void append(int only_new)
{
    static const uint8_t reset = TM_OP_MAP_RESET;
    scr->subs = scr->subs_now;
    scr->full_next = 0;
    tm_lock();
    if (!only_new)
        tm_append_locked(&reset, 1);
    for (uint32_t i = 0; i < scr->n; i++)
        tm_append_locked(scr->buf + scr->offs[i], scr->offs[i + 1] - scr->offs[i]);
    tm_unlock();
    __atomic_store_n(&map_adds, scr->adds_now, __ATOMIC_RELEASE);
    __atomic_store_n(&map_subs, scr->subs_now, __ATOMIC_RELEASE);
}

static void emit(int only_new)
{
    /* One emitter at a time: the scratch area is shared. */
    tm_spin_acquire(&scratch_lock);
    if (!have_scratch()) {
        tm_spin_release(&scratch_lock);
        return;
    }
    if (scr->full_next)
        only_new = 0;
    collect(only_new);
    if (only_new && (scr->subs_now != scr->subs || scr->overflow)) {
        only_new = 0; /* something was unloaded, or too many to track */
        collect(only_new);
    }
    append(only_new);
    tm_spin_release(&scratch_lock);
}

/* Around fork, when the child goes on tracing (lifecycle.c).  The child's
 * map is collected in the parent, before the fork: in the child,
 * dl_iterate_phdr could wait for ever on the loader's lock, held at the
 * fork by another thread of the parent, which the child does not have. */
TM_HIDDEN void tm_modules_fork_prepare(void)
{
    tm_spin_acquire(&scratch_lock);
    if (have_scratch())
        collect(0);
}

TM_HIDDEN void tm_modules_fork_parent(void)
{
    if (scr)
        scr->full_next = 1; /* `seen` is the child's now, not the stream's */
    tm_spin_release(&scratch_lock);
}

TM_HIDDEN void tm_modules_fork_child(int emit_map)
{
    if (scr && emit_map)
        append(0);
    tm_spin_release(&scratch_lock);
}

TM_HIDDEN void tm_modules_emit(void)
{
    emit(0);
}

/* The counts are the loader's, the same in every module's info: the
 * first is enough. */
static int read_counts(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *counts = arg;
    if (HAS_COUNTS(size)) {
        counts[0] = info->dlpi_adds;
        counts[1] = info->dlpi_subs;
    }
    return 1;
}

TM_HIDDEN void tm_modules_sync(void)
{
    if (__atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)
        return; /* no stream to add to (the unwinder's own tests) */
    unsigned long long counts[2] = {0, 0};
    dl_iterate_phdr(read_counts, counts);
    if (counts[0] == __atomic_load_n(&map_adds, __ATOMIC_ACQUIRE) &&
        counts[1] == __atomic_load_n(&map_subs, __ATOMIC_ACQUIRE))
        return;
    emit(1);
}
