/* tm_unwind.h — per-thread stack walks (unwind.c), their memo (memo.c),
 * shared with the stack interner (stacks.c). */
#ifndef TM_UNWIND_H
#define TM_UNWIND_H

#include <stdint.h>

#include "tm_internal.h"

#define TM_WALK_MAX 512
#define TM_RULE_CACHE 512       /* per-thread unwind rules, direct-mapped */
#define TM_NODE_CACHE_BITS 14   /* per-thread trie edges, direct-mapped */
#define TM_NODE_CACHE (1 << TM_NODE_CACHE_BITS)
#define TM_MEMO_BITS 6          /* per-thread memoized walks: sets of ... */
#define TM_MEMO_WAYS 8          /* ... walks from one call site, or colliding */
#define TM_MEMO_FRAMES 64       /* frames a memoized walk may check */
#define TM_MEMO_HINTS 1024      /* first guesses of a lookup's way */

/* A finished walk and the stack node it was interned as, for the next
 * allocation from the same call site: key is the walk's starting point
 * (return address and stack pointer of the hook's caller, and its rbp when
 * the walk used it: code without frame pointers keeps anything in rbp),
 * and the walk is proved unchanged by finding the return address of every
 * frame that decides the node (ip[i]) still in its slot (off[i] bytes
 * above sp0).  Frames further out do not change the stack node.  The
 * checks are padded to a multiple of four with copies of the first, so
 * they run four at a time with no remainder; the offsets come first, on
 * the lines the header is on. */
typedef struct tm_memo {
    uintptr_t ip0, sp0, bp0;
    uint32_t node;
    uint16_t n;                /* checks, a multiple of 4 */
    uint16_t bp0_used;
    uint32_t off[TM_MEMO_FRAMES];
    uintptr_t ip[TM_MEMO_FRAMES];
} tm_memo;

/* Discriminating slots of one call site, learned from failed checks (memo.c). */
#define TM_MEMO_DISC 3
#define TM_MEMO_DISC_SLOTS 256  /* call sites that can have them at once */
typedef struct tm_memo_disc {
    uint32_t tag;              /* the call site's key tag; 0 = none */
    uint32_t off[TM_MEMO_DISC]; /* the slots, bytes above sp0; 0 = not learned */
    uint32_t votes_tag;        /* the call site whose failed checks vote now */
    uint32_t cand;             /* the slot leading the vote */
    uint32_t votes;            /* its lead over the other slots voted for */
    uint32_t votes_since;      /* memo_lookups when this vote began */
} tm_memo_disc;

/* One thread's latest walk, outermost frame first.  ip[] are return
 * addresses as found on the stack; sp[] is the stack pointer just above each
 * return-address slot, known for all positions or (careful walk, a
 * stack set from outside) 0 for all.  node[] caches
 * the trie node of each position for the frames interned last time, counted
 * from node_base. */
typedef struct tm_walk {
    void *next_spare;          /* first: the link among spare states (tm_spares) */
    uintptr_t lo, hi;          /* this thread's stack */
    int bounded;               /* stack bounds known */
    int fast;                  /* bounded, and not TIDEMARK_UNWIND=careful: the fast walk may run */
    int n;
    int node_base, node_n;
    int bp0_used;              /* the latest walk read the caller's rbp */
    uintptr_t ip[TM_WALK_MAX];
    uintptr_t sp[TM_WALK_MAX];
    uint32_t node[TM_WALK_MAX];
    uintptr_t node_ip[TM_WALK_MAX]; /* the ip each node[] was made for */
    uint64_t path[TM_WALK_MAX];     /* hash of the path to each node[] */
    uintptr_t tmp_ip[TM_WALK_MAX];  /* inner frames of the walk in progress */
    uintptr_t tmp_sp[TM_WALK_MAX];
    /* The rules this thread used last, copied out of the shared table (a
     * 1 MiB hash: a probe there is a cache miss; here it is an L1 hit).
     * Valid while the shared table is rcache_table. */
    const void *rcache_table;
    uint64_t rcache[TM_RULE_CACHE * 2];
    /* Trie edges (parent, ip) -> node this thread used lately, indexed by
     * path hash (stacks.c): the shared trie is large and a probe there is
     * a cache miss.  Nodes are never removed, so entries never go stale. */
    struct {
        uint64_t ip;
        uint32_t parent, id;
    } ncache[TM_NODE_CACHE];
    /* Valid while the shared rule table is rcache_table, like rcache. */
    tm_memo memo[(1 << TM_MEMO_BITS) * TM_MEMO_WAYS];
    /* Per set: a hash of each way's key (0 = empty), so a lookup reads one
     * line, not one per way; the way replaced next. */
    _Alignas(32) uint32_t memo_tag[1 << TM_MEMO_BITS][TM_MEMO_WAYS];
    uint8_t memo_next[1 << TM_MEMO_BITS];
    /* By key hash: the way that hit last for the key, tried first (its
     * address is known before the tags are compared). */
    uint8_t memo_hint[TM_MEMO_HINTS];
    /* Call sites reached more ways than a set holds, indexed by hash bits
     * the set index does not use: the key's tag and the offsets from sp0
     * of slots whose return addresses tell the ways apart (memo.c,
     * memo_key), once learned. */
    tm_memo_disc memo_disc[TM_MEMO_DISC_SLOTS];
    uint64_t memo_disc_sets;   /* sets some call site learned slots for */
    uint32_t memo_lookups;     /* a clock for votes (wraps) */
} tm_walk;

/* Where a walk from `frame` starts.  The frame keeps a frame pointer: its
 * caller's return address is at fp+8, the caller's stack pointer after
 * return is fp+16, and the caller's rbp is saved at fp. */
typedef struct walk_start {
    uintptr_t ip, sp, bp;
} walk_start;

static inline walk_start start_at(const void *frame)
{
    const uintptr_t *fp = frame;
    return (walk_start){.ip = fp[1], .sp = (uintptr_t)(fp + 2), .bp = fp[0]};
}

TM_HIDDEN int tm_unwind_init(void);
/* Around fork, when the child goes on tracing: holds the rule-miss lock
 * (taken before the module map's and the recorder's), in parent and child
 * alike released by tm_unwind_fork_done. */
TM_HIDDEN void tm_unwind_fork_prepare(void);
TM_HIDDEN void tm_unwind_fork_done(void);
/* Holds (1) or releases (0) the spare walk states around fork
 * (tm_spares_hold). */
TM_HIDDEN void tm_unwind_spares_hold(int hold);
/* The shared rule table now: memoized walks are valid while a thread's
 * rule cache is of this table. */
TM_HIDDEN const void *tm_unwind_rule_table(void);
/* Forgets a thread's memoized walks (its stack or the rules changed). */
TM_HIDDEN void tm_unwind_memo_clear(tm_walk *w);
/* Forgets cached unwind rules (a module was unloaded). */
TM_HIDDEN void tm_unwind_invalidate(void);
/* The calling thread's walk state, created on first use (NULL: no memory). */
TM_HIDDEN tm_walk *tm_walk_new_self(void);
static inline tm_walk *tm_walk_self(void)
{
    tm_walk *w = tm_self.walk;
    return tm_likely(w != NULL) ? w : tm_walk_new_self();
}
/* Walks the stack into w, starting at the caller of the function whose
 * frame (as __builtin_frame_address(0) gives it; the function must keep a
 * frame pointer) is `frame`.  Returns how many outer frames (positions
 * 0..keep-1) are unchanged since the previous walk.  The hooks pass their
 * own frame, so the tracer's frames are neither walked nor stored. */
TM_HIDDEN int tm_unwind_walk_from(tm_walk *w, const void *frame);
/* The stack node of a walk from `frame` (as for tm_unwind_walk_from) when
 * the thread made the same walk before and every frame that decides the
 * node is still in place; 0 otherwise (walk and intern as usual). */
TM_HIDDEN uint32_t tm_unwind_memo_find(tm_walk *w, const void *frame);
/* Remembers that the walk just made from `frame` was interned as `node`
 * (its innermost `depth` frames). */
TM_HIDDEN void tm_unwind_memo_put(tm_walk *w, const void *frame, uint32_t node, int depth);
/* The same from the caller of tm_unwind_walk. */
TM_HIDDEN int tm_unwind_walk(tm_walk *w);
/* Interns the innermost `depth` frames of w that are not the tracer's own.
 * Cached nodes are reused for the outer frames (the `keep` the walk found
 * unchanged, and beyond while the return addresses are the same).  Lock
 * held. */
TM_HIDDEN uint32_t tm_stack_intern_walk(tm_walk *w, int keep, int depth, tm_node_emit_fn emit);

#endif
