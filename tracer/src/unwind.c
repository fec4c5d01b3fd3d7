/* unwind.c — fast native unwinding for x86-64.
 *
 * Unwinding every allocation with libunwind costs ~160 ns on a 60-frame
 * Python stack, most of a traced run's overhead.  Two things make it cheap:
 *
 * 1. Rules cached per return address.  The first time a return address is
 *    seen, libdw reads the module's .eh_frame and we keep the three numbers
 *    a step needs (CFA = rsp|rbp + offset, where the caller's rbp is saved);
 *    after that a step is one hash probe and two loads.  Lookups are
 *    lock-free; inserts happen on the (rare) miss path.
 *
 * 2. Reuse of the unchanged outer stack.  Each thread keeps its previous
 *    walk, outermost frame first, with the stack address of every return
 *    address slot.  When the current walk reaches a frame whose return
 *    address sits at the same slot as in the previous walk, the rest of the
 *    stack is the previous one — provided every outer slot still holds the
 *    same return address, which we check (one load per frame).
 *
 * Anything unusual (no CFI, signal frames, expressions, a stack pointer
 * outside the thread's stack) falls back to libunwind for that event.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_unwind.h"

/* Hands a thread's walk state back at its exit (below). */
static pthread_key_t walk_key;
static int walk_key_made;
static void walk_release(void *p);

/* --- rule cache ------------------------------------------------------------ */

enum rule_kind { RULE_EMPTY = 0, RULE_OK, RULE_END, RULE_BAD };
enum { BP_SAME = 0, BP_AT, BP_UNDEF };
enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };

typedef struct rule {
    uintptr_t ra;          /* key: the return address; written last */
    int32_t cfa_off;
    int16_t bp_off;
    uint8_t cfa_reg;       /* DW_RSP or DW_RBP */
    uint8_t kind_bp;       /* kind | bp rule << 4 */
} rule;

#define RULES_BITS 17
#define RULES_CAP (1u << RULES_BITS)
_Static_assert(RULES_CAP * 16 == TM_HUGE_PAGE, "the rule table fills one huge page");

static rule *rules;        /* replaced wholesale when modules unload */
static int miss_lock;

static inline uint32_t rule_slot(uintptr_t ra)
{
    return (uint32_t)((ra * 0x9e3779b97f4a7c15ull) >> (64 - RULES_BITS));
}

static inline const rule *rule_find(const rule *t, uintptr_t ra)
{
    for (uint32_t i = rule_slot(ra), n = 0; n < 16; i = (i + 1) & (RULES_CAP - 1), n++) {
        uintptr_t k = __atomic_load_n(&t[i].ra, __ATOMIC_ACQUIRE);
        if (k == ra)
            return &t[i];
        if (k == 0)
            return NULL;
    }
    return NULL;
}

/* --- module CFI (miss path) ---------------------------------------------------- */

#define MAX_CFI_MODULES 1024

typedef struct cfi_module {
    uintptr_t bias;
    uintptr_t lo, hi;
    Elf *elf;
    Dwarf_CFI *cfi;
    int fd;
} cfi_module;

static cfi_module *mods;
static int nmods;

typedef struct find_arg {
    uintptr_t pc;
    uintptr_t bias, lo, hi;
    char path[4096];
    int found;
} find_arg;

static int find_module(struct dl_phdr_info *info, size_t size, void *p)
{
    find_arg *a = p;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    int hit = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
        lo = s < lo ? s : lo;
        hi = e > hi ? e : hi;
        if (a->pc >= s && a->pc < e)
            hit = 1;
    }
    if (!hit)
        return 0;
    a->bias = info->dlpi_addr;
    a->lo = lo;
    a->hi = hi;
    const char *name = info->dlpi_name;
    if (!name || !*name) {
        ssize_t n = readlink("/proc/self/exe", a->path, sizeof a->path - 1);
        a->path[n > 0 ? n : 0] = 0;
    } else {
        size_t n = tm_strlen(name);
        if (n >= sizeof a->path)
            n = sizeof a->path - 1;
        memcpy(a->path, name, n);
        a->path[n] = 0;
    }
    a->found = 1;
    return 1;
}

static Dwarf_CFI *cfi_for(uintptr_t pc, uintptr_t *bias)
{
    for (int i = 0; i < nmods; i++)
        if (pc >= mods[i].lo && pc < mods[i].hi) {
            *bias = mods[i].bias;
            return mods[i].cfi;
        }
    if (!mods) {
        mods = tm_pages(MAX_CFI_MODULES * sizeof *mods);
        if (!mods)
            return NULL;
        elf_version(EV_CURRENT);
    }
    static find_arg a; /* miss path is serialized by miss_lock */
    memset(&a, 0, sizeof a);
    a.pc = pc;
    dl_iterate_phdr(find_module, &a);
    if (!a.found)
        return NULL;
    /* Met for the first time since the rules were cleared: it may be new
     * to the module map too.  Added there before this rule is in the
     * table, so no thread records a stack through it before the map has
     * it (the others wait for miss_lock, or find no rule yet). */
    tm_modules_sync();
    if (nmods >= MAX_CFI_MODULES)
        return NULL;
    cfi_module *m = &mods[nmods];
    m->bias = a.bias;
    m->lo = a.lo;
    m->hi = a.hi;
    m->fd = a.path[0] == '/' ? open(a.path, O_RDONLY | O_CLOEXEC) : -1;
    if (m->fd >= 0) {
        m->elf = elf_begin(m->fd, ELF_C_READ_MMAP, NULL);
        m->cfi = m->elf ? dwarf_getcfi_elf(m->elf) : NULL;
    }
    nmods++; /* remembered even without CFI, so we do not retry */
    *bias = m->bias;
    return m->cfi;
}

/* Reads the rule for return address ra from the module's CFI. */
static rule compute_rule(uintptr_t ra)
{
    rule r = {.ra = ra, .kind_bp = RULE_BAD};
    uintptr_t bias;
    Dwarf_CFI *cfi = cfi_for(ra - 1, &bias);
    Dwarf_Frame *f = NULL;
    if (!cfi || dwarf_cfi_addrframe(cfi, ra - 1 - bias, &f) != 0)
        return r;
    Dwarf_Addr start, end;
    bool signal_frame = false;
    Dwarf_Op *ops, mem[3];
    size_t n;
    if (dwarf_frame_info(f, &start, &end, &signal_frame) != DW_RA || signal_frame)
        goto out;
    /* Where the return address lives: undefined marks the outermost
     * frame; anything but "CFA - 8" is unusual here. */
    if (dwarf_frame_register(f, DW_RA, mem, &ops, &n) != 0)
        goto out;
    if (n == 0 && ops == mem) {
        r.kind_bp = RULE_END;
        goto out;
    }
    if (!(n == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst &&
          (int64_t)ops[1].number == -8))
        goto out;
    if (dwarf_frame_cfa(f, &ops, &n) != 0 || n != 1)
        goto out;
    uint64_t reg;
    int64_t off;
    if (ops[0].atom == DW_OP_bregx) {
        reg = ops[0].number;
        off = (int64_t)ops[0].number2;
    } else if (ops[0].atom >= DW_OP_breg0 && ops[0].atom <= DW_OP_breg31) {
        reg = ops[0].atom - DW_OP_breg0;
        off = (int64_t)ops[0].number;
    } else {
        goto out;
    }
    if ((reg != DW_RSP && reg != DW_RBP) || off < 0 || off > INT32_MAX)
        goto out;
    int bp_rule;
    int64_t bp_off = 0;
    if (dwarf_frame_register(f, DW_RBP, mem, &ops, &n) != 0)
        goto out;
    if (n == 0)
        bp_rule = ops == NULL ? BP_SAME : BP_UNDEF;
    else if (n == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst &&
             (int64_t)ops[1].number >= INT16_MIN && (int64_t)ops[1].number < 0) {
        bp_rule = BP_AT;
        bp_off = (int64_t)ops[1].number;
    } else {
        goto out;
    }
    r.cfa_reg = (uint8_t)reg;
    r.cfa_off = (int32_t)off;
    r.bp_off = (int16_t)bp_off;
    r.kind_bp = (uint8_t)(RULE_OK | bp_rule << 4);
out:
    free(f); /* allocated by libdw; our free passes it through */
    return r;
}

static const rule *rule_get(uintptr_t ra)
{
    const rule *t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
    const rule *hit = rule_find(t, ra);
    if (tm_likely(hit != NULL))
        return hit;
    static rule computed; /* returned when the table is full */
    tm_spin_acquire(&miss_lock);
    t = rules;
    hit = rule_find(t, ra);
    if (!hit) {
        rule r = compute_rule(ra);
        for (uint32_t i = rule_slot(ra), k = 0; k < 16; i = (i + 1) & (RULES_CAP - 1), k++) {
            if (t[i].ra == 0) {
                rule *e = (rule *)&t[i];
                e->cfa_off = r.cfa_off;
                e->bp_off = r.bp_off;
                e->cfa_reg = r.cfa_reg;
                e->kind_bp = r.kind_bp;
                __atomic_store_n(&e->ra, ra, __ATOMIC_RELEASE);
                hit = e;
                break;
            }
        }
        if (!hit) {
            computed = r;
            hit = &computed;
        }
    }
    tm_spin_release(&miss_lock);
    return hit;
}

/* Around fork with --follow-fork (lifecycle.c): no other thread is
 * computing a rule while the child is made, or the child's first miss
 * would wait for ever for a thread it does not have. */
TM_HIDDEN void tm_unwind_fork_prepare(void)
{
    tm_spin_acquire(&miss_lock);
}

TM_HIDDEN void tm_unwind_fork_done(void)
{
    tm_spin_release(&miss_lock);
}

TM_HIDDEN const void *tm_unwind_rule_table(void)
{
    return __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
}

TM_HIDDEN void tm_unwind_invalidate(void)
{
    rule *fresh = tm_pages_huge(RULES_CAP * sizeof(rule));
    if (!fresh)
        return;
    tm_spin_acquire(&miss_lock);
    /* Readers may still be in the old table: it stays mapped. */
    __atomic_store_n(&rules, fresh, __ATOMIC_RELEASE);
    for (int i = 0; i < nmods; i++) {
        if (mods[i].elf)
            elf_end(mods[i].elf);
        if (mods[i].fd >= 0)
            close(mods[i].fd);
    }
    nmods = 0;
    tm_spin_release(&miss_lock);
}

TM_HIDDEN int tm_unwind_init(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    if (!walk_key_made && pthread_key_create(&walk_key, walk_release) == 0)
        walk_key_made = 1;
    if (!rules)
        rules = tm_pages_huge(RULES_CAP * sizeof(rule));
    return rules ? 0 : -1;
}

_Static_assert(sizeof(rule) == 16, "a cached rule is two words");

/* The rule for ra through the thread's own cache. */
static inline const rule *rule_lookup(tm_walk *w, const rule *t, uintptr_t ra)
{
    rule *rc = (rule *)w->rcache;
    uint32_t i = (uint32_t)(ra ^ (ra >> 9)) & (TM_RULE_CACHE - 1);
    if (tm_likely(rc[i].ra == ra))
        return &rc[i];
    const rule *r = rule_find(t, ra);
    if (tm_unlikely(!r))
        r = rule_get(ra);
    rc[i] = *r;
    rc[i].ra = ra;
    return &rc[i];
}

/* --- the walk -------------------------------------------------------------------- */

static int stack_bounds(tm_walk *w)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return -1;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -1;
    w->lo = (uintptr_t)addr;
    w->hi = (uintptr_t)addr + size;
    return 0;
}

/* The walk states of threads that exited, for the next threads (not the
 * main thread's, whose exit is the process's). */
static tm_spares spare_walks;
_Static_assert(offsetof(tm_walk, next_spare) == 0, "a spare state's link comes first");

TM_HIDDEN void tm_unwind_spares_hold(int hold)
{
    tm_spares_hold(&spare_walks, hold);
}

static void walk_release(void *p)
{
    tm_self.walk = NULL; /* an allocation after this takes a state anew */
    tm_spares_put(&spare_walks, p);
}

/* A spare state forgets its thread: the stack it walked and what it
 * memoized there.  The rule and trie-edge caches hold facts about code,
 * not threads, and stay. */
static tm_walk *walk_take_spare(void)
{
    tm_walk *w = tm_spares_take(&spare_walks);
    if (w) {
        w->n = 0;
        w->node_base = w->node_n = 0;
        tm_unwind_memo_clear(w);
    }
    return w;
}

TM_HIDDEN tm_walk *tm_walk_new_self(void)
{
    tm_walk *w = walk_take_spare();
    if (!w)
        w = tm_pages(sizeof *w);
    if (!w)
        return NULL;
    w->fast = !tm_cfg.unwind_libunwind && stack_bounds(w) == 0;
    if (walk_key_made)
        pthread_setspecific(walk_key, w);
    tm_self.walk = w;
    return w;
}

/* libunwind for the whole stack: no slot addresses, so nothing to reuse
 * next time. */
static int walk_slow(tm_walk *w)
{
    void **raw = (void **)w->tmp_ip;
    int n = unw_backtrace(raw, TM_WALK_MAX);
    /* The tracer's own frames come first; they are dropped by address when
     * the stack is interned. */
    for (int i = 0; i < n; i++) {
        w->ip[n - 1 - i] = (uintptr_t)raw[i];
        w->sp[n - 1 - i] = 0;
    }
    w->n = n;
    tm_modules_sync(); /* no rules were looked up: see cfi_for */
    return 0;
}

/* The highest position below j whose slot no longer holds the return
 * address the previous walk found there, or -1 when all are unchanged.
 * Only called for a previous fast walk, whose sp[] are all known.  Slots
 * are checked four at a time without branches: they are independent
 * loads, and usually all match. */
static inline int first_changed(const tm_walk *w, int j)
{
    int m = j - 1;
    for (; m >= 3; m -= 4) {
        uintptr_t d = (*(const uintptr_t *)(w->sp[m] - 8) ^ w->ip[m]) |
                      (*(const uintptr_t *)(w->sp[m - 1] - 8) ^ w->ip[m - 1]) |
                      (*(const uintptr_t *)(w->sp[m - 2] - 8) ^ w->ip[m - 2]) |
                      (*(const uintptr_t *)(w->sp[m - 3] - 8) ^ w->ip[m - 3]);
        if (d)
            break;
    }
    for (; m >= 0; m--)
        if (*(const uintptr_t *)(w->sp[m] - 8) != w->ip[m])
            return m;
    return -1;
}

/* Outer frames 0..j of the previous walk stay; the k new inner ones
 * (innermost first in inner_ip/inner_sp) follow them. */
static int join_outer(tm_walk *w, int j, int k)
{
    for (int q = 0; q < k; q++) {
        w->ip[j + k - q] = w->tmp_ip[q];
        w->sp[j + k - q] = w->tmp_sp[q];
    }
    w->n = j + 1 + k;
    return j + 1;
}

TM_HIDDEN int tm_unwind_walk_from(tm_walk *w, const void *frame)
{
    if (!w->fast)
        return walk_slow(w);

    walk_start s = start_at(frame);
    uintptr_t ip = s.ip, sp = s.sp, bp = s.bp;
    int bp_valid = 1, bp_initial = 1;
    w->bp0_used = 0;

    uintptr_t *inner_ip = w->tmp_ip, *inner_sp = w->tmp_sp;
    int k = 0;
    /* The previous walk, scanned from its innermost frame; one without
     * slot addresses (libunwind) cannot be reused. */
    int j = w->n > 0 && w->sp[0] ? w->n - 1 : -1;
    /* A position of the previous walk whose slot changed: every candidate
     * further in includes it in its check and would fail. */
    int changed = -1;
    const rule *t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
    if (tm_unlikely(w->rcache_table != t)) {
        memset(w->rcache, 0, sizeof w->rcache);
        if (w->rcache_table) /* not the first walk: the pages are still untouched */
            tm_unwind_memo_clear(w);
        w->rcache_table = t;
    }

    for (;;) {
        if (sp < w->lo || sp > w->hi || k == TM_WALK_MAX)
            return walk_slow(w);
        /* Same return address in the same slot as last time?  Then the rest
         * of the stack is the previous one, provided every outer slot still
         * holds the same return address.  If one does not, this activation
         * was re-created under another caller: keep walking, a frame
         * further out may still be the same. */
        while (j >= 0 && w->sp[j] < sp)
            j--;
        if (j >= 0 && w->sp[j] == sp) {
            if (w->ip[j] == ip && (changed < 0 || j < changed)) {
                changed = first_changed(w, j);
                if (changed < 0)
                    return join_outer(w, j, k);
            }
            j--;
        }
        inner_ip[k] = ip;
        inner_sp[k] = sp;
        k++;

        const rule *r = rule_lookup(w, t, ip);
        int kind = r->kind_bp & 15;
        if (kind == RULE_END)
            break;
        if (kind != RULE_OK || (r->cfa_reg == DW_RBP && !bp_valid))
            return walk_slow(w);
        if (r->cfa_reg == DW_RBP && bp_initial)
            w->bp0_used = 1; /* the walk depends on the caller's rbp */
        uintptr_t cfa = (r->cfa_reg == DW_RSP ? sp : bp) + (uintptr_t)r->cfa_off;
        if (cfa <= sp || cfa > w->hi)
            return walk_slow(w);
        switch (r->kind_bp >> 4) {
        case BP_AT:
            bp = *(const uintptr_t *)(cfa + r->bp_off);
            bp_initial = 0;
            break;
        case BP_UNDEF:
            bp_valid = 0;
            break;
        }
        ip = *(const uintptr_t *)(cfa - 8);
        sp = cfa;
        if (ip == 0)
            break;
    }
    return join_outer(w, -1, k);
}

__attribute__((noinline)) TM_HIDDEN int tm_unwind_walk(tm_walk *w)
{
    return tm_unwind_walk_from(w, __builtin_frame_address(0));
}
