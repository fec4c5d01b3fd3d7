/* stacks.c — the stack trie: each distinct stack is stored once.
 *
 * A trie node is (parent node, instruction pointer); a stack is the path
 * from its innermost node to the root.  Python stacks share long outer
 * parts, so the trie stores far fewer frames than the stacks have.  The
 * thread's walk (unwind.c) caches the node of every position, so the outer
 * frames the walk found unchanged cost nothing here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "tm_internal.h"
#include "tm_unwind.h"

static uintptr_t self_start, self_end;

TM_HIDDEN void tm_stacks_set_self_range(uintptr_t start, uintptr_t end)
{
    self_start = start;
    self_end = end;
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

/* A node's slot in the table comes from the hash of its whole path from
 * the root, not of (parent, ip): the path hashes of all positions of a walk
 * follow from the return addresses alone, so the lines of every position
 * can be fetched at once instead of one after the other as each parent
 * becomes known (on a Python program's first stacks each probe is a cache
 * miss).  An entry still holds (parent, ip) and is only taken when both
 * match, so lookups are exact; a node has one path, so one slot. */
static inline uint64_t path_step(uint64_t h, uint64_t ip)
{
    return (h ^ ip) * 0x9e3779b97f4a7c15ull;
}

static inline uint64_t trie_slot(uint64_t path, uint64_t cap)
{
    return (path ^ path >> 29) & (cap - 1);
}

static void trie_put(node_entry *t, uint64_t cap, uint64_t path, node_entry e)
{
    uint64_t j = trie_slot(path, cap);
    while (t[j].id)
        j = (j + 1) & (cap - 1);
    t[j] = e;
}

/* The table doubles; paths are recomputed in id order (a parent is always
 * older than its children). */
static int trie_grow(void)
{
    uint64_t cap = trie.cap ? trie.cap * 2 : TM_HUGE_PAGE / sizeof(node_entry);
    node_entry *t = tm_pages_huge(cap * sizeof *t);
    if (!t)
        return -ENOMEM;
    if (trie.count) {
        /* Scratch, by id: each node's entry, then each node's path hash. */
        size_t n = (size_t)trie.count + 1, bytes = n * (sizeof(node_entry) + sizeof(uint64_t));
        node_entry *by_id = tm_pages(bytes);
        if (!by_id) {
            tm_pages_huge_free(t, cap * sizeof *t);
            return -ENOMEM;
        }
        uint64_t *path = (uint64_t *)(by_id + n);
        for (uint64_t i = 0; i < trie.cap; i++)
            if (trie.table[i].id)
                by_id[trie.table[i].id] = trie.table[i];
        for (uint32_t id = 1; id <= trie.count; id++) {
            path[id] = path_step(path[by_id[id].parent], by_id[id].ip);
            trie_put(t, cap, path[id], by_id[id]);
        }
        tm_pages_free(by_id, bytes);
        tm_pages_huge_free(trie.table, trie.cap * sizeof *t);
    }
    trie.table = t;
    trie.cap = cap;
    return 0;
}

TM_HIDDEN int tm_stacks_init(void)
{
    if (tm_unwind_init() < 0)
        return -ENOMEM;
    return trie.table ? 0 : trie_grow();
}

/* path: the hash of the path to the child (path_step of the parent's). */
static uint32_t child_of(uint32_t parent, uint64_t ip, uint64_t path, tm_node_emit_fn emit)
{
    if (trie.count + 1 > trie.cap / 2 && trie_grow() < 0)
        return parent; /* out of memory: truncate the stack here */
    uint64_t i = trie_slot(path, trie.cap);
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

/* The thread's edge cache is indexed by the path hash too, so its lines
 * can be fetched ahead as well; a path maps to one edge, so hits are as
 * likely as with a (parent, ip) index. */
static inline uint32_t path_slot(uint64_t h)
{
    return (uint32_t)(h >> (64 - TM_NODE_CACHE_BITS));
}

static uint32_t cached_child(tm_walk *w, uint64_t path, uint32_t parent, uint64_t ip,
                             tm_node_emit_fn emit)
{
    __typeof__(&w->ncache[0]) e = &w->ncache[path_slot(path)];
    if (tm_likely(e->ip == ip && e->parent == parent && e->id))
        return e->id;
    uint32_t id = child_of(parent, ip, path, emit);
    if (id != parent) {     /* not the out-of-memory truncation */
        e->ip = ip;
        e->parent = parent;
        e->id = id;
    }
    return id;
}

TM_HIDDEN uint32_t tm_stack_intern_walk(tm_walk *w, int keep, int depth, tm_node_emit_fn emit)
{
    int n = w->n;
    while (n > 0 && w->ip[n - 1] >= self_start && w->ip[n - 1] < self_end)
        n--; /* the tracer's own frames (walks start at the hook's caller: a safety net) */
    int base = n > depth ? n - depth : 0;
    int from = base;
    if (base == w->node_base) {
        int cached = w->node_base + w->node_n;
        from = keep < cached ? keep : cached;
        if (from < base)
            from = base;
        /* Same return addresses at the same positions: same nodes, even
         * where the walk could not prove the frames unchanged. */
        while (from < cached && from < n && w->node_ip[from] == w->ip[from])
            from++;
    }
    /* Return addresses point after the call; minus one lands inside the
     * calling instruction, so line lookup names the call site. */
    uint64_t path = from > base ? w->path[from - 1] : 0;
    for (int p = from; p < n; p++) {
        path = path_step(path, w->ip[p] - 1);
        w->path[p] = path;
        __builtin_prefetch(&w->ncache[path_slot(path)]);
    }
    /* Where the thread's cache surely misses (another return address
     * there), the shared table's line is fetched ahead too. */
    for (int p = from; p < n; p++)
        if (w->ncache[path_slot(w->path[p])].ip != w->ip[p] - 1)
            __builtin_prefetch(&trie.table[trie_slot(w->path[p], trie.cap)]);
    uint32_t node = from > base ? w->node[from - 1] : 0;
    for (int p = from; p < n; p++) {
        node = cached_child(w, w->path[p], node, w->ip[p] - 1, emit);
        w->node[p] = node;
        w->node_ip[p] = w->ip[p];
    }
    w->node_base = base;
    w->node_n = n - base;
    return node;
}

TM_HIDDEN uint32_t tm_stack_intern(const uintptr_t *ips, int n, tm_node_emit_fn emit)
{
    tm_walk *w = tm_walk_self();
    if (!w || n > TM_WALK_MAX)
        return 0;
    int keep = 0;
    while (keep < n && keep < w->n && w->ip[keep] == ips[n - 1 - keep])
        keep++;
    for (int p = 0; p < n; p++) {
        w->ip[p] = ips[n - 1 - p];
        w->sp[p] = 0;
    }
    w->n = n;
    return tm_stack_intern_walk(w, keep, n, emit);
}

TM_HIDDEN void tm_stacks_foreach(tm_node_emit_fn emit)
{
    for (uint64_t i = 0; i < trie.cap; i++)
        if (trie.table[i].id)
            emit(trie.table[i].id, trie.table[i].parent, trie.table[i].ip);
}
