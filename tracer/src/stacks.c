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
#include <sys/mman.h>

#include "tm_internal.h"
#include "tm_unwind.h"

static uintptr_t self_start, self_end;

TM_HIDDEN void tm_stacks_set_self_range(uintptr_t start, uintptr_t end)
{
    self_start = start;
    self_end = end;
}

/* --- trie ----------------------------------------------------------------
 *
 * Compact (issue 32): a program with a wide call graph makes a new node
 * for nearly every frame of nearly every allocation, and all of it lives
 * in the traced process.  So a node is 8 bytes, (parent id, address
 * index), in an array by id that grows in place (mremap: no copy, no old
 * and new array resident at once); the return addresses are kept once each
 * in an address table; and the lookup of a node by its path is a hash
 * index of 4-byte ids (with a tag), at most three quarters full, rebuilt from the node
 * array when it grows (the old index is the scratch for the rebuild).  On
 * the program of tests/perf/many_stacks.c that is about 13 bytes per node
 * where the 16-byte entries of a half-full table took 32 to 64, and a
 * growth holds 1.5 index sizes where it held 2.5 tables and a by-id copy. */

#define TM_TRIE_FIRST_BITS 19 /* 512 Ki slots: one huge page */
/* An index entry is an id and, above it, a tag of five more bits of the
 * path hash: a probe looks at a node (a cache miss) only when the tags
 * match.  Ids go up to 2^27 - 1 (1.5 GiB of trie). */
#define TRIE_ID_BITS 27
#define TRIE_ID_MASK ((1u << TRIE_ID_BITS) - 1)
/* Ids in the trace are below 2^28 (docs/trace-format.md), across resets. */
#define TRACE_ID_MAX (1u << 28)

typedef struct trie_node {
    uint32_t parent;
    uint32_t ipx;        /* index into trie.ips */
} trie_node;

/* Ids in the tables are local to the tables' generation: the trace's id of
 * a node is trie.base + its local id.  When the tables would outgrow the
 * cap (TIDEMARK_STACK_MEMORY) they are dropped and start again empty
 * (trie_reset), and the trace's ids go on increasing from where they
 * were: an id handed out before stays the same node in the trace, so a
 * thread's cached ids (memoized walks, cached edges) stay right for the
 * reader even while they are no longer in the tables. */
static struct {
    uint32_t base;       /* trace id of local id 0 */
    uint32_t resets;     /* generations so far */
    int reset_pending;   /* the Python table asked for room (py.c) */
    trie_node *node;     /* by local id; [0] unused */
    size_t node_bytes;
    uint32_t count;
    uint32_t *index;     /* slot (path hash) -> id, 0 = empty */
    uint32_t bits;       /* the index has 1 << bits slots */
    uint64_t *ips;       /* by address index */
    size_t ips_bytes;
    uint32_t nips;
    uint32_t *ipindex;   /* slot (address hash) -> address index + 1 */
    uint32_t ipbits;
} trie;

/* A node's slot in the index comes from the hash of its whole path from
 * the root, not of (parent, ip): the path hashes of all positions of a walk
 * follow from the return addresses alone, so the lines of every position
 * can be fetched at once instead of one after the other as each parent
 * becomes known (on a Python program's first stacks each probe is a cache
 * miss).  An id is still only taken when its node's (parent, ip) match, so
 * lookups are exact; a node has one path, so one slot.  The hash is 32
 * bits, so that the rebuild's scratch (a hash per node) fits in the old
 * index; slots are its top bits. */
static inline uint32_t path_step(uint32_t h, uint64_t ip)
{
    return (h ^ (uint32_t)(ip ^ ip >> 29)) * 0x9e3779b1u + 0x7f4a7c15u;
}

static inline uint32_t trie_slot(uint32_t path, uint32_t bits)
{
    return path >> (32 - bits);
}

static inline uint32_t trie_tag(uint32_t path)
{
    return (path * 0x85ebca6bu) >> TRIE_ID_BITS << TRIE_ID_BITS;
}

static inline uint32_t ip_slot(uint64_t ip, uint32_t bits)
{
    return (uint32_t)((ip * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

/* Grows a mapping made by tm_pages to at least `need` bytes, doubling. */
static int map_grow(void **p, size_t *bytes, size_t need)
{
    size_t nb = *bytes;
    while (nb < need)
        nb *= 2;
    void *q = mremap(*p, *bytes, nb, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return -ENOMEM;
    *p = q;
    *bytes = nb;
    /* Probed all over like the index: huge pages where they fit. */
    madvise(q, nb, MADV_HUGEPAGE);
    return 0;
}

/* Small indexes (under a small cap) are ordinary pages: a huge page would
 * be resident whole. */
static uint32_t *index_map(uint32_t bits)
{
    size_t bytes = (size_t)4 << bits;
    return bytes < TM_HUGE_PAGE ? tm_pages(bytes) : tm_pages_huge(bytes);
}

static void index_unmap(uint32_t *t, uint32_t bits)
{
    size_t bytes = (size_t)4 << bits;
    if (bytes < TM_HUGE_PAGE)
        tm_pages_free(t, bytes);
    else
        tm_pages_huge_free(t, bytes);
}

/* The first index: one huge page, or an eighth of a small cap. */
static uint32_t first_bits(void)
{
    uint64_t cap = tm_cfg.stack_memory;
    uint32_t bits = TM_TRIE_FIRST_BITS;
    while (cap && bits > 12 && ((uint64_t)4 << bits) > cap / 8)
        bits--;
    return bits;
}

static int index_grow(void)
{
    uint32_t bits = trie.bits ? trie.bits + 1 : first_bits();
    if (bits > 32)
        return -ENOMEM;
    uint32_t *t = index_map(bits);
    if (!t)
        return -ENOMEM;
    if (trie.index) {
        /* Paths are recomputed in id order (a parent is always older than
         * its children), each kept in the old index, which has a slot per
         * node and more. */
        uint32_t *path = trie.index, mask = (1u << bits) - 1;
        path[0] = 0;
        for (uint32_t id = 1; id <= trie.count; id++) {
            trie_node nd = trie.node[id];
            uint32_t h = path_step(path[nd.parent], trie.ips[nd.ipx]);
            path[id] = h;
            uint32_t j = trie_slot(h, bits);
            while (t[j])
                j = (j + 1) & mask;
            t[j] = id | trie_tag(h);
        }
        index_unmap(trie.index, trie.bits);
    }
    trie.index = t;
    trie.bits = bits;
    return 0;
}

static int ipindex_grow(void)
{
    uint32_t bits = trie.ipbits ? trie.ipbits + 1 : 12;
    uint32_t *t = tm_pages((size_t)4 << bits);
    if (!t)
        return -ENOMEM;
    uint32_t mask = (1u << bits) - 1;
    for (uint32_t x = 0; x < trie.nips; x++) {
        uint32_t j = ip_slot(trie.ips[x], bits);
        while (t[j])
            j = (j + 1) & mask;
        t[j] = x + 1;
    }
    if (trie.ipindex)
        tm_pages_free(trie.ipindex, (size_t)4 << trie.ipbits);
    trie.ipindex = t;
    trie.ipbits = bits;
    return 0;
}

/* The index of return address ip in trie.ips, added when new; UINT32_MAX
 * when out of memory. */
static uint32_t ip_index(uint64_t ip)
{
    uint32_t mask = (1u << trie.ipbits) - 1;
    for (uint32_t j = ip_slot(ip, trie.ipbits);; j = (j + 1) & mask) {
        uint32_t x = trie.ipindex[j];
        if (!x)
            break;
        if (trie.ips[x - 1] == ip)
            return x - 1;
    }
    if ((trie.nips + 1) * 4ull > (3ull << trie.ipbits)) {
        if (ipindex_grow() < 0)
            return UINT32_MAX;
        mask = (1u << trie.ipbits) - 1;
    }
    if ((trie.nips + 1) * sizeof(uint64_t) > trie.ips_bytes &&
        map_grow((void **)&trie.ips, &trie.ips_bytes, (trie.nips + 1) * sizeof(uint64_t)) < 0)
        return UINT32_MAX;
    uint32_t j = ip_slot(ip, trie.ipbits);
    while (trie.ipindex[j])
        j = (j + 1) & mask;
    trie.ips[trie.nips] = ip;
    trie.ipindex[j] = ++trie.nips;
    return trie.nips - 1;
}

/* Node arrays on huge pages only under a cap that leaves room for them. */
static int node_huge(void)
{
    return !tm_cfg.stack_memory || tm_cfg.stack_memory >= 64ull << 20;
}

static int trie_alloc(void)
{
    trie.node_bytes = TM_HUGE_PAGE;
    trie.ips_bytes = 64 << 10;
    trie.node = tm_pages(trie.node_bytes);
    trie.ips = tm_pages(trie.ips_bytes);
    if (!trie.node || !trie.ips || ipindex_grow() < 0 || index_grow() < 0)
        return -ENOMEM;
    if (node_huge())
        madvise(trie.node, trie.node_bytes, MADV_HUGEPAGE);
    return 0;
}

static void trie_free(void)
{
    if (trie.node)
        tm_pages_free(trie.node, trie.node_bytes);
    if (trie.ips)
        tm_pages_free(trie.ips, trie.ips_bytes);
    if (trie.ipindex)
        tm_pages_free(trie.ipindex, (size_t)4 << trie.ipbits);
    if (trie.index)
        index_unmap(trie.index, trie.bits);
    uint32_t base = trie.base, resets = trie.resets;
    memset(&trie, 0, sizeof trie); /* reset_pending too */
    trie.base = base;
    trie.resets = resets;
}

/* STACK_RESET (tm_format.h): ids of the kind (0 native, 1 Python) go on
 * from next.  Lock held. */
TM_HIDDEN void tm_emit_stack_reset_locked(uint32_t next, int kind)
{
    uint8_t rec[1 + 10 + 10], *p = rec;
    *p++ = TM_OP_STACK_RESET;
    p = tm_put_u(p, next);
    p = tm_put_u(p, (uint64_t)kind);
    tm_append_locked(rec, (size_t)(p - rec));
}

static void emit_reset(uint32_t next)
{
    tm_emit_stack_reset_locked(next, 0);
}

TM_HIDDEN void tm_stacks_request_reset(void)
{
    trie.reset_pending = 1;
}

/* The tables are dropped and start again, empty and small.  0, or -ENOMEM
 * when even those cannot be mapped, or the trace's ids are spent. */
static int trie_reset(void)
{
    uint64_t next = (uint64_t)trie.base + trie.count + 1;
    if (next >= TRACE_ID_MAX)
        return -ENOMEM;
    trie_free();
    trie.base = (uint32_t)next - 1;
    trie.resets++;
    emit_reset((uint32_t)next);
    return trie_alloc();
}

/* What the tables hold resident: nodes, addresses and both indexes. */
static inline uint64_t trie_resident(void)
{
    return (uint64_t)trie.count * sizeof(trie_node) + ((uint64_t)4 << trie.bits) +
           (uint64_t)trie.nips * sizeof(uint64_t) + ((uint64_t)4 << trie.ipbits);
}

TM_HIDDEN int tm_stacks_init(void)
{
    if (tm_unwind_init() < 0)
        return -ENOMEM;
    return trie.index ? 0 : trie_alloc();
}

TM_HIDDEN size_t tm_stacks_bytes(void)
{
    return (size_t)trie_resident();
}

TM_HIDDEN uint32_t tm_stacks_resets(void)
{
    return trie.resets;
}

/* A new node's room: the index grown when due, the node array, all within
 * the cap (a growth holds the old index and the new one at once).  1 when
 * the tables had to be dropped for it (trie_reset), -1 when there is no
 * room, else 0. */
static int make_room(void)
{
    int grow = (trie.count + 1) * 4ull > (3ull << trie.bits);
    uint64_t cap = tm_cfg.stack_memory, py = tm_py_stack_bytes();
    if (cap)
        cap = py < cap ? cap - py : 1; /* the cap is shared with Python frames */
    if (tm_unlikely((uint64_t)trie.base + trie.count + 1 >= TRACE_ID_MAX))
        return -1; /* the trace's ids are spent: stacks are cut to what is known */
    if (tm_unlikely(trie.count + 1 > TRIE_ID_MASK || trie.reset_pending ||
                    (cap && trie_resident() + sizeof(trie_node) +
                                (grow ? (uint64_t)8 << trie.bits : 0) > cap)))
        return trie_reset() < 0 ? -1 : 1;
    if (grow && index_grow() < 0)
        return -1;
    return 0;
}

/* path: the hash of the path to the child (path_step of the parent's).
 * fresh: the parent was made just now, so the child is surely new.
 * parent and the result are trace ids; parent is of this generation (or
 * 0).  After a reset, 0: the walk is interned again from the root. */
static uint32_t child_of(uint32_t gparent, uint64_t ip, uint32_t path, int fresh,
                         tm_node_emit_fn emit)
{
    uint32_t parent = gparent ? gparent - trie.base : 0;
    uint32_t bits = trie.bits, mask = (1u << bits) - 1, i = trie_slot(path, bits);
    uint32_t tag = trie_tag(path);
    /* Found: no more than the probes (the address compared through the
     * small address table, which stays in cache). */
    if (!fresh)
        for (;; i = (i + 1) & mask) {
            uint32_t e = trie.index[i];
            if (!e)
                break;
            if ((e & ~TRIE_ID_MASK) != tag)
                continue;
            uint32_t id = e & TRIE_ID_MASK;
            if (trie.node[id].parent == parent && trie.ips[trie.node[id].ipx] == ip)
                return trie.base + id;
        }
    /* New: room for it first (the index may grow, or the tables be
     * dropped), then the first free slot from its path. */
    uint32_t ipx = ip_index(ip);
    if (ipx == UINT32_MAX)
        return gparent; /* out of memory: truncate the stack here */
    int room = make_room();
    if (room < 0)
        return gparent;
    if (room > 0)
        return 0;
    if ((trie.count + 2) * sizeof(trie_node) > trie.node_bytes &&
        map_grow((void **)&trie.node, &trie.node_bytes,
                 (trie.count + 2) * sizeof(trie_node)) < 0)
        return gparent;
    if (trie.bits != bits) {
        mask = (1u << trie.bits) - 1;
        i = trie_slot(path, trie.bits);
    }
    while (trie.index[i])
        i = (i + 1) & mask;
    uint32_t id = ++trie.count;
    trie.node[id] = (trie_node){parent, ipx};
    trie.index[i] = id | tag;
    emit(trie.base + id, gparent, ip);
    return trie.base + id;
}

/* The thread's edge cache is indexed by the path hash too, so its lines
 * can be fetched ahead as well; a path maps to one edge, so hits are as
 * likely as with a (parent, ip) index. */
static inline uint32_t path_slot(uint32_t h)
{
    return h >> (32 - TM_NODE_CACHE_BITS);
}

static uint32_t cached_child(tm_walk *w, uint32_t path, uint32_t parent, uint64_t ip,
                             int fresh, tm_node_emit_fn emit)
{
    __typeof__(&w->ncache[0]) e = &w->ncache[path_slot(path)];
    /* An edge of an earlier generation (e->id at most base) is not taken:
     * the walk goes on in this one. */
    if (tm_likely(e->ip == ip && e->parent == parent && e->id > trie.base))
        return e->id;
    uint32_t id = child_of(parent, ip, path, fresh, emit);
    if (id != parent && id) { /* not the out-of-memory truncation, not a reset */
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
    /* The cached nodes are of this generation of the tables, or none is. */
    if (base == w->node_base && w->node_n > 0 && w->node[base] > trie.base) {
        int cached = w->node_base + w->node_n;
        from = keep < cached ? keep : cached;
        if (from < base)
            from = base;
        /* Same return addresses at the same positions: same nodes, even
         * where the walk could not prove the frames unchanged. */
        while (from < cached && from < n && w->node_ip[from] == w->ip[from])
            from++;
    }
    uint32_t resets = trie.resets;
    int restarted = 0;
again:;
    /* Return addresses point after the call; minus one lands inside the
     * calling instruction, so line lookup names the call site. */
    uint32_t path = from > base ? (uint32_t)w->path[from - 1] : 0;
    for (int p = from; p < n; p++) {
        path = path_step(path, w->ip[p] - 1);
        w->path[p] = path;
        __builtin_prefetch(&w->ncache[path_slot(path)]);
    }
    /* Where the thread's cache surely misses (another return address
     * there), the shared index's line is fetched ahead too, and then the
     * node its first probe names. */
    int misses = 0;
    for (int p = from; p < n; p++)
        if (w->ncache[path_slot((uint32_t)w->path[p])].ip != w->ip[p] - 1) {
            __builtin_prefetch(&trie.index[trie_slot((uint32_t)w->path[p], trie.bits)]);
            misses++;
        }
    /* With one miss there is nothing to overlap. */
    if (misses > 1)
        for (int p = from; p < n; p++)
            if (w->ncache[path_slot((uint32_t)w->path[p])].ip != w->ip[p] - 1)
                __builtin_prefetch(&trie.node[trie.index[trie_slot((uint32_t)w->path[p], trie.bits)] &
                                              TRIE_ID_MASK]);
    uint32_t node = from > base ? w->node[from - 1] : 0;
    uint32_t made = trie.base + trie.count;
    for (int p = from; p < n; p++) {
        /* Once a node is new, so are all its descendants. */
        node = cached_child(w, (uint32_t)w->path[p], node, w->ip[p] - 1, node > made, emit);
        if (tm_unlikely(trie.resets != resets)) {
            /* The tables were dropped for this node: the whole walk again
             * in the new ones (once; a second reset truncates it). */
            resets = trie.resets;
            if (restarted++) {
                w->node_n = 0;
                return 0;
            }
            from = base;
            goto again;
        }
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

/* The fork child's new trace: after a reset its ids start at base + 1
 * (a STACK_RESET says so), and the ids this thread cached from earlier
 * generations, defined only in the parent's trace, are forgotten. */
TM_HIDDEN void tm_stacks_foreach(tm_node_emit_fn emit)
{
    if (trie.base) {
        emit_reset(trie.base + 1);
        tm_walk *w = tm_self.walk;
        if (w) {
            tm_unwind_memo_clear(w);
            memset(w->ncache, 0, sizeof w->ncache);
            w->node_n = 0;
        }
    }
    for (uint32_t id = 1; id <= trie.count; id++) {
        uint32_t parent = trie.node[id].parent;
        emit(trie.base + id, parent ? trie.base + parent : 0, trie.ips[trie.node[id].ipx]);
    }
}
