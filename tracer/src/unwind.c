/* unwind.c — fast native unwinding for x86-64.
 *
 * Unwinding every allocation with libunwind costs ~160 ns on a 60-frame
 * Python stack, most of a traced run's overhead.  Two things make it cheap:
 *
 * 1. Rules cached per return address.  The first time a return address is
 *    seen, the module's in-memory .eh_frame is read (cfi.c) and we keep the
 *    three numbers a step needs (CFA = rsp|rbp + offset, where the caller's
 *    rbp is saved); after that a step is one hash probe and two loads.
 *    Lookups are lock-free; inserts happen on the (rare) miss path.
 *
 * 2. Reuse of the unchanged outer stack.  Each thread keeps its previous
 *    walk, outermost frame first, with the stack address of every return
 *    address slot.  When the current walk reaches a frame whose return
 *    address sits at the same slot as in the previous walk, the rest of the
 *    stack is the previous one — provided every outer slot still holds the
 *    same return address, which we check (one load per frame).
 *
 * Anything unusual (no CFI, signal frames, expressions, a stack pointer
 * outside the thread's stack) takes the careful walk below for that event.
 * Neither opens a file nor loads a library into the traced process: no
 * libunwind (its memory validation keeps a pipe open in the program's low
 * descriptors), no libdw (it opens the module files and loads libelf, libz,
 * liblzma, libbz2).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ucontext.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tm_cfi.h"
#include "tm_internal.h"
#include "tm_unwind.h"

/* Hands a thread's walk state back at its exit (below). */
static pthread_key_t walk_key;
static int walk_key_made;
static void walk_release(void *p);

/* --- rule cache ------------------------------------------------------------ */

enum rule_kind { RULE_EMPTY = 0, RULE_OK, RULE_END, RULE_BAD, RULE_SIGNAL };
enum { BP_SAME = TM_BP_SAME, BP_AT = TM_BP_AT, BP_UNDEF = TM_BP_UNDEF };
enum { DW_RBP = TM_DW_RBP, DW_RSP = TM_DW_RSP };

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

/* --- rules from the module's CFI (miss path) ------------------------------------ */

/* Reads the rule for return address ra from the in-memory .eh_frame of
 * its module (cfi.c): the call is inside the instruction before ra. */
static rule compute_rule(uintptr_t ra)
{
    tm_cfi_rule c = tm_cfi_rule_at(ra - 1);
    /* Met for the first time since the rules were cleared: the module may
     * be new to the module map too.  Added there before this rule is in
     * the table, so no thread records a stack through it before the map
     * has it (the others wait for miss_lock, or find no rule yet). */
    tm_modules_sync();
    rule r = {.ra = ra, .kind_bp = RULE_BAD};
    switch (c.kind) {
    case TM_CFI_OK:
        r.cfa_reg = c.cfa_reg;
        r.cfa_off = c.cfa_off;
        r.bp_off = c.bp_off;
        r.kind_bp = (uint8_t)(RULE_OK | c.bp_rule << 4);
        break;
    case TM_CFI_END:
        r.kind_bp = RULE_END;
        break;
    case TM_CFI_SIGNAL:
        r.kind_bp = RULE_SIGNAL;
        break;
    }
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
    tm_spin_release(&miss_lock);
}

TM_HIDDEN int tm_unwind_init(void)
{
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
    /* Both may allocate: the tracer's, not the program's (a hook inside a
     * hook would record it, hooks.c). */
    sigset_t old;
    tm_quiet q = tm_quiet_begin_masked(&old);
    w->bounded = stack_bounds(w) == 0;
    w->fast = w->bounded && !tm_cfg.unwind_careful;
    if (walk_key_made)
        pthread_setspecific(walk_key, w);
    tm_quiet_end_masked(q, &old);
    tm_self.walk = w;
    return w;
}

/* --- the careful walk ----------------------------------------------------------------
 *
 * For what the fast walk does not follow: a signal frame, a stack pointer
 * off the thread's stack (a handler on the alternate signal stack), code
 * without usable CFI, TIDEMARK_UNWIND=careful.  Every read is checked:
 * inside the thread's stack or the alternate signal stack a load, anywhere
 * else process_vm_readv on this process, which fails instead of faulting.
 * Where the CFI gives no rule the frame pointer chain is followed.  No
 * slot addresses are kept (sp[] = 0), so nothing is reused from it. */

typedef struct span {
    uintptr_t lo, hi;
} span;

typedef struct careful {
    span stacks[2];
    int n;
} careful;

static careful careful_spans(const tm_walk *w)
{
    careful c = {.n = 0};
    if (w->bounded)
        c.stacks[c.n++] = (span){w->lo, w->hi};
    stack_t alt;
    if (sigaltstack(NULL, &alt) == 0 && !(alt.ss_flags & SS_DISABLE) && alt.ss_size)
        c.stacks[c.n++] = (span){(uintptr_t)alt.ss_sp, (uintptr_t)alt.ss_sp + alt.ss_size};
    return c;
}

/* The word at a, or -1 when it cannot be read. */
static int read_word(const careful *c, uintptr_t a, uintptr_t *out)
{
    for (int i = 0; i < c->n; i++)
        if (a >= c->stacks[i].lo && a + 8 <= c->stacks[i].hi && a + 8 > a) {
            *out = *(const uintptr_t *)a;
            return 0;
        }
    struct iovec local = {out, 8}, remote = {(void *)a, 8};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 8 ? 0 : -1;
}

/* The registers of the next frame out. */
typedef struct regs {
    uintptr_t ip, sp, bp;
    int bp_valid;
} regs;

/* A signal trampoline's caller: the interrupted code, whose registers the
 * kernel saved in the ucontext at sp.  Its ip is not a return address:
 * plus one, so that the usual minus one (rule lookup, symbolization)
 * lands on the interrupted instruction. */
static int step_signal(const careful *c, regs *r)
{
    const size_t g = offsetof(ucontext_t, uc_mcontext.gregs);
    uintptr_t ip, sp, bp;
    if (read_word(c, r->sp + g + REG_RIP * 8, &ip) || read_word(c, r->sp + g + REG_RSP * 8, &sp) ||
        read_word(c, r->sp + g + REG_RBP * 8, &bp))
        return -1;
    *r = (regs){.ip = ip + 1, .sp = sp, .bp = bp, .bp_valid = 1};
    return 0;
}

/* Through the frame record at rbp: saved rbp, then the return address. */
static int step_frame_pointer(const careful *c, regs *r)
{
    uintptr_t fp = r->bp, ip, bp;
    if (!r->bp_valid || fp < r->sp || (fp & 7) || read_word(c, fp, &bp) || read_word(c, fp + 8, &ip))
        return -1;
    *r = (regs){.ip = ip, .sp = fp + 16, .bp = bp, .bp_valid = 1};
    return 0;
}

/* One step by the rule found for r->ip: 1 at the outermost frame. */
static int step_careful(const careful *c, const rule *u, regs *r)
{
    int kind = u->kind_bp & 15;
    if (kind == RULE_END)
        return 1;
    if (kind == RULE_SIGNAL)
        return step_signal(c, r);
    if (kind != RULE_OK || (u->cfa_reg == DW_RBP && !r->bp_valid))
        return step_frame_pointer(c, r);
    uintptr_t cfa = (u->cfa_reg == DW_RSP ? r->sp : r->bp) + (uintptr_t)u->cfa_off, ip, bp = r->bp;
    if (cfa <= r->sp || read_word(c, cfa - 8, &ip))
        return -1;
    switch (u->kind_bp >> 4) {
    case BP_AT:
        if (read_word(c, cfa + u->bp_off, &bp))
            return -1;
        break;
    case BP_UNDEF:
        r->bp_valid = 0;
        break;
    }
    r->ip = ip;
    r->sp = cfa;
    r->bp = bp;
    return 0;
}

static int walk_careful(tm_walk *w, const rule *t, walk_start s)
{
    careful c = careful_spans(w);
    regs r = {.ip = s.ip, .sp = s.sp, .bp = s.bp, .bp_valid = 1};
    int k = 0;
    while (k < TM_WALK_MAX && r.ip != 0) {
        w->tmp_ip[k++] = r.ip;
        uintptr_t sp = r.sp;
        const rule *u = rule_lookup(w, t, r.ip);
        int signal = (u->kind_bp & 15) == RULE_SIGNAL;
        if (step_careful(&c, u, &r) != 0)
            break;
        if (r.sp <= sp && !signal)
            break; /* no progress: only a signal frame may move to another stack */
    }
    for (int i = 0; i < k; i++) {
        w->ip[k - 1 - i] = w->tmp_ip[i];
        w->sp[k - 1 - i] = 0;
    }
    w->n = k;
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

/* The shared rule table, and this thread's cache made valid for it. */
static const rule *rules_for(tm_walk *w)
{
    const rule *t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
    if (tm_unlikely(w->rcache_table != t)) {
        memset(w->rcache, 0, sizeof w->rcache);
        if (w->rcache_table) /* not the first walk: the pages are still untouched */
            tm_unwind_memo_clear(w);
        w->rcache_table = t;
    }
    return t;
}

TM_HIDDEN int tm_unwind_walk_from(tm_walk *w, const void *frame)
{
    walk_start s = start_at(frame);
    if (!w->fast)
        return walk_careful(w, rules_for(w), s);

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
    const rule *t = rules_for(w);

    for (;;) {
        if (sp < w->lo || sp > w->hi || k == TM_WALK_MAX)
            return walk_careful(w, t, s);
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
            return walk_careful(w, t, s);
        if (r->cfa_reg == DW_RBP && bp_initial)
            w->bp0_used = 1; /* the walk depends on the caller's rbp */
        uintptr_t cfa = (r->cfa_reg == DW_RSP ? sp : bp) + (uintptr_t)r->cfa_off;
        if (cfa <= sp || cfa > w->hi)
            return walk_careful(w, t, s);
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
