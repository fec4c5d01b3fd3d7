/* tm_unwind.h — per-thread stack walks (unwind.c) shared with the stack
 * interner (stacks.c). */
#ifndef TM_UNWIND_H
#define TM_UNWIND_H

#include <stdint.h>

#define TM_WALK_MAX 512
#define TM_RULE_CACHE 512       /* per-thread unwind rules, direct-mapped */
#define TM_NODE_CACHE_BITS 14   /* per-thread trie edges, direct-mapped */
#define TM_NODE_CACHE (1 << TM_NODE_CACHE_BITS)

/* One thread's latest walk, outermost frame first.  ip[] are return
 * addresses as found on the stack; sp[] is the stack pointer just above each
 * return-address slot, known for all positions or (libunwind fallback, a
 * stack set from outside) 0 for all.  node[] caches
 * the trie node of each position for the frames interned last time, counted
 * from node_base. */
typedef struct tm_walk {
    uintptr_t lo, hi;          /* this thread's stack */
    int fast;                  /* stack bounds known: the fast walk may run */
    int n;
    int node_base, node_n;
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
} tm_walk;

TM_HIDDEN int tm_unwind_init(void);
/* Forgets cached unwind rules (a module was unloaded). */
TM_HIDDEN void tm_unwind_invalidate(void);
/* The calling thread's walk state, created on first use (NULL: no memory). */
TM_HIDDEN tm_walk *tm_walk_self(void);
/* Walks the stack into w, starting at the caller of the function whose
 * frame (as __builtin_frame_address(0) gives it; the function must keep a
 * frame pointer) is `frame`.  Returns how many outer frames (positions
 * 0..keep-1) are unchanged since the previous walk.  The hooks pass their
 * own frame, so the tracer's frames are neither walked nor stored. */
TM_HIDDEN int tm_unwind_walk_from(tm_walk *w, const void *frame);
/* The same from the caller of tm_unwind_walk. */
TM_HIDDEN int tm_unwind_walk(tm_walk *w);
/* Interns the innermost `depth` frames of w that are not the tracer's own.
 * Cached nodes are reused for the outer frames (the `keep` the walk found
 * unchanged, and beyond while the return addresses are the same).  Lock
 * held. */
TM_HIDDEN uint32_t tm_stack_intern_walk(tm_walk *w, int keep, int depth, tm_node_emit_fn emit);

#endif
