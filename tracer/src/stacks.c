/* stacks.c — native stacks: unwinding with libunwind and interning into a
 * trie so each distinct stack is stored once.
 *
 * A trie node is (parent node, instruction pointer); a stack is the path
 * from its innermost node to the root.  Python stacks share long outer
 * parts, so the trie stores far fewer frames than the stacks have.  Each
 * thread remembers the node chain of its previous stack: the unchanged
 * outer part of the next stack costs one comparison per frame instead of a
 * hash lookup.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <errno.h>
#include <libunwind.h>
#include <string.h>

#include "tm_internal.h"

static uintptr_t self_start, self_end;

TM_HIDDEN void tm_stacks_set_self_range(uintptr_t start, uintptr_t end)
{
    self_start = start;
    self_end = end;
}

TM_HIDDEN int tm_unwind(uintptr_t *ips, int max)
{
    void *raw[TM_MAX_DEPTH + 16];
    int want = max + 16 < (int)(sizeof raw / sizeof raw[0]) ? max + 16
                                                            : (int)(sizeof raw / sizeof raw[0]);
    int n = unw_backtrace(raw, want);
    int i = 0;
    /* Drop the tracer's own frames (hooks, recorder) at the inner end. */
    while (i < n && (uintptr_t)raw[i] >= self_start && (uintptr_t)raw[i] < self_end)
        i++;
    int out = 0;
    for (; i < n && out < max; i++) {
        uintptr_t ip = (uintptr_t)raw[i];
        if (ip == 0)
            break;
        /* Return addresses point after the call; minus one lands inside
         * the calling instruction, so line lookup names the call site. */
        ips[out++] = ip - 1;
    }
    return out;
}

/* --- trie ---------------------------------------------------------------- */

typedef struct node_entry {
    uint64_t ip;
    uint32_t parent;
    uint32_t id;         /* 0 = empty */
} node_entry;

static struct {
    node_entry *table;
    uint64_t cap;        /* power of two */
    uint32_t count;
} trie;

/* Per-thread cache of the previous stack, outermost first. */
typedef struct stack_cache {
    int n;
    uintptr_t ips[TM_MAX_DEPTH];
    uint32_t nodes[TM_MAX_DEPTH];
} stack_cache;

/* Node ids never change (a forked child re-emits the same table), so a
 * cached chain stays valid for the life of the thread. */
static TM_TLS stack_cache *cache;

static inline uint64_t node_hash(uint32_t parent, uint64_t ip)
{
    uint64_t h = (ip ^ ((uint64_t)parent << 32 | parent)) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static int trie_grow(void)
{
    uint64_t cap = trie.cap ? trie.cap * 2 : (1u << 16);
    node_entry *t = tm_pages(cap * sizeof *t);
    if (!t)
        return -ENOMEM;
    for (uint64_t i = 0; i < trie.cap; i++) {
        node_entry *e = &trie.table[i];
        if (!e->id)
            continue;
        uint64_t j = node_hash(e->parent, e->ip) & (cap - 1);
        while (t[j].id)
            j = (j + 1) & (cap - 1);
        t[j] = *e;
    }
    if (trie.table)
        tm_pages_free(trie.table, trie.cap * sizeof *t);
    trie.table = t;
    trie.cap = cap;
    return 0;
}

TM_HIDDEN int tm_stacks_init(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    return trie.table ? 0 : trie_grow();
}

static uint32_t child_of(uint32_t parent, uint64_t ip, tm_node_emit_fn emit)
{
    if (trie.count + 1 > trie.cap / 2 && trie_grow() < 0)
        return parent; /* out of memory: truncate the stack here */
    uint64_t i = node_hash(parent, ip) & (trie.cap - 1);
    for (;; i = (i + 1) & (trie.cap - 1)) {
        node_entry *e = &trie.table[i];
        if (!e->id)
            break;
        if (e->ip == ip && e->parent == parent)
            return e->id;
    }
    node_entry *e = &trie.table[i];
    e->ip = ip;
    e->parent = parent;
    e->id = ++trie.count;
    emit(e->id, parent, ip);
    return e->id;
}

TM_HIDDEN uint32_t tm_stack_intern(const uintptr_t *ips, int n, tm_node_emit_fn emit)
{
    if (tm_unlikely(!cache)) {
        cache = tm_pages(sizeof *cache);
        if (!cache)
            return 0;
    }
    stack_cache *c = cache;
    /* Common outer part with the previous stack of this thread. */
    int same = 0;
    while (same < n && same < c->n && c->ips[same] == ips[n - 1 - same])
        same++;
    uint32_t node = same ? c->nodes[same - 1] : 0;
    for (int k = same; k < n; k++) {
        uintptr_t ip = ips[n - 1 - k];
        node = child_of(node, ip, emit);
        c->ips[k] = ip;
        c->nodes[k] = node;
    }
    c->n = n;
    return node;
}

TM_HIDDEN void tm_stacks_foreach(tm_node_emit_fn emit)
{
    for (uint64_t i = 0; i < trie.cap; i++)
        if (trie.table[i].id)
            emit(trie.table[i].id, trie.table[i].parent, trie.table[i].ip);
}
