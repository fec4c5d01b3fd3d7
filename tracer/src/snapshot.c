/* snapshot.c — the in-process query API (tidemark_snapshot.h).
 *
 * Off unless the process starts with TIDEMARK_SNAPSHOT=1; then every
 * allocation and free the recorder sees also goes through tm_snap_alloc and
 * tm_snap_free (tm_record.h, recorder.c), which keep:
 *
 *  - an address -> (requested size, region path) table: open addressing
 *    with linear probing in one fixed reservation (MAP_NORESERVE, pages
 *    touched as used), inserts by compare-and-swap on the key, deletes
 *    leave a tombstone that a later insert reuses.  No lock: a free is
 *    seen before the real free runs and an allocation after the real
 *    allocation returns (hooks.c), so an address is out of the table
 *    before anyone can get it again;
 *  - live bytes and blocks, and the peak since tidemark_reset_peak(), as
 *    atomic counters;
 *  - per region name its invocations and the bytes and blocks allocated
 *    inside it (inclusive: a block counts for every distinct name open on
 *    its thread) and still alive.  A block stores its thread's region path
 *    at allocation, a node of a tree of (parent path, name) interned at
 *    region begin, under the recorder's lock.
 *
 * No malloc, no stdio, no lock on the allocation and free paths.  The table
 * never grows: past PROBE_MAX probes a block is not tracked and the
 * snapshot says it is no longer exact.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tidemark_snapshot.h"
#include "tm_internal.h"
#include "tm_lock.h"
#include "tm_snapshot.h"

#define TAB_BITS 25                      /* 32 Mi entries, 512 MiB reserved */
#define TAB_SIZE (1ull << TAB_BITS)
#define PROBE_MAX 4096
#define KEY_EMPTY 0
#define KEY_TOMB 1
#define PATH_BITS 24
#define PATH_MAX_NODES (1u << 20)
#define PATH_HASH (1u << 21)
#define SLOT_MAX (1u << 16)
#define STRID_MAX (1u << 20)
#define NAMES_BYTES (16u << 20)
#define NAME_MAX_LEN 1024
#define SIZE_MAX_TRACKED ((1ull << (64 - PATH_BITS)) - 1)

typedef struct ent {
    uint64_t key;                        /* address, KEY_EMPTY or KEY_TOMB */
    uint64_t val;                        /* size << PATH_BITS | path */
} ent;

typedef struct path_node {
    uint32_t parent;                     /* 0 = root (no region) */
    uint32_t slot;                       /* name slot + 1 */
    uint32_t counts;                     /* the name is not already an ancestor */
} path_node;

typedef struct name_slot {
    const char *name;
    uint64_t invocations;
    uint64_t ended;
    uint64_t kept_bytes;                 /* atomic */
    uint64_t kept_blocks;                /* atomic */
    uint64_t watch_at;                   /* ended count of the watch point */
    uint64_t watch_kept;                 /* UINT64_MAX until reached */
    int watching;
} name_slot;

TM_HIDDEN int tm_snap_on;

static struct {
    ent *tab;
    path_node *paths;
    uint32_t *path_hash;                 /* node id by (parent, slot) hash, 0 = empty */
    uint32_t npaths;
    name_slot *slots;
    uint32_t nslots;                     /* atomic (published) */
    uint32_t *slot_by_str;               /* string id -> slot + 1 */
    char *names;
    uint32_t names_used;
    uint64_t live_bytes, live_blocks, peak;
    int overflow;
} snap;

/* The calling thread's region path at every depth: [0] is the root. */
static TM_TLS uint32_t snap_stack[TM_MAX_REGION_DEPTH + 1];
static TM_TLS uint32_t snap_cur;
/* A realloc's old block, between its REALLOC_FREE and a REALLOC_FAIL. */
static TM_TLS const void *snap_re_ptr;
static TM_TLS uint64_t snap_re_val;

static void *reserve(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

TM_HIDDEN void tm_snap_init(void)
{
    const char *v = getenv("TIDEMARK_SNAPSHOT");
    if (!v || strcmp(v, "1") != 0 || snap.tab)
        return;
    snap.tab = reserve(TAB_SIZE * sizeof(ent));
    snap.paths = reserve(PATH_MAX_NODES * sizeof(path_node));
    snap.path_hash = reserve(PATH_HASH * sizeof(uint32_t));
    snap.slots = reserve(SLOT_MAX * sizeof(name_slot));
    snap.slot_by_str = reserve(STRID_MAX * sizeof(uint32_t));
    snap.names = reserve(NAMES_BYTES);
    if (!snap.tab || !snap.paths || !snap.path_hash || !snap.slots || !snap.slot_by_str ||
        !snap.names) {
        tm_diag("TIDEMARK_SNAPSHOT: cannot map the snapshot tables; snapshots off", NULL, NULL);
        return;
    }
    snap.npaths = 1; /* node 0 is the root */
    __atomic_store_n(&tm_snap_on, 1, __ATOMIC_RELEASE);
}

static inline uint64_t hash_addr(const void *p)
{
    return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> (64 - TAB_BITS);
}

/* Adds (sign +1) or takes away (-1) a block's bytes from every name its
 * path counts for. */
static inline void path_account(uint32_t path, uint64_t size, int sign)
{
    while (path) {
        const path_node *n = &snap.paths[path];
        if (n->counts) {
            name_slot *s = &snap.slots[n->slot - 1];
            if (sign > 0) {
                __atomic_add_fetch(&s->kept_bytes, size, __ATOMIC_RELAXED);
                __atomic_add_fetch(&s->kept_blocks, 1, __ATOMIC_RELAXED);
            } else {
                __atomic_sub_fetch(&s->kept_bytes, size, __ATOMIC_RELAXED);
                __atomic_sub_fetch(&s->kept_blocks, 1, __ATOMIC_RELAXED);
            }
        }
        path = n->parent;
    }
}

static inline void count_live(uint64_t size)
{
    uint64_t live = __atomic_add_fetch(&snap.live_bytes, size, __ATOMIC_RELAXED);
    __atomic_add_fetch(&snap.live_blocks, 1, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&snap.peak, __ATOMIC_RELAXED);
    while (live > peak &&
           !__atomic_compare_exchange_n(&snap.peak, &peak, live, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

static void insert(const void *ptr, uint64_t val)
{
    uint64_t key = (uint64_t)(uintptr_t)ptr;
    uint64_t h = hash_addr(ptr);
    for (uint32_t i = 0; i < PROBE_MAX; i++) {
        ent *e = &snap.tab[(h + i) & (TAB_SIZE - 1)];
        uint64_t k = __atomic_load_n(&e->key, __ATOMIC_RELAXED);
        while (k == KEY_EMPTY || k == KEY_TOMB) {
            if (__atomic_compare_exchange_n(&e->key, &k, key, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED)) {
                __atomic_store_n(&e->val, val, __ATOMIC_RELEASE);
                return;
            }
        }
    }
    __atomic_store_n(&snap.overflow, 1, __ATOMIC_RELAXED);
}

TM_HIDDEN void tm_snap_alloc_slow(const void *ptr, size_t size)
{
    uint64_t sz = size > SIZE_MAX_TRACKED ? SIZE_MAX_TRACKED : size;
    uint32_t path = snap_cur;
    insert(ptr, sz << PATH_BITS | path);
    count_live(sz);
    path_account(path, sz, 1);
}

static void drop(uint64_t val)
{
    uint64_t size = val >> PATH_BITS;
    __atomic_sub_fetch(&snap.live_bytes, size, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&snap.live_blocks, 1, __ATOMIC_RELAXED);
    path_account((uint32_t)(val & ((1u << PATH_BITS) - 1)), size, -1);
}

TM_HIDDEN void tm_snap_free_slow(int op, const void *ptr)
{
    /* 0 free, 1 realloc's free of the old block, 2 the realloc failed; for
     * malloc's FREE ops and Python's domains' alike (tm_py_free_op). */
    unsigned kind = op >= TM_OP_PY_FREE ? (unsigned)(op - TM_OP_PY_FREE) % 3
                                        : (unsigned)(op - TM_OP_FREE);
    if (kind == 2) {
        /* The realloc failed: its old block lives on, as it was. */
        if (snap_re_ptr == ptr) {
            uint64_t val = snap_re_val;
            snap_re_ptr = NULL;
            insert(ptr, val);
            count_live(val >> PATH_BITS);
            path_account((uint32_t)(val & ((1u << PATH_BITS) - 1)), val >> PATH_BITS, 1);
        }
        return;
    }
    uint64_t key = (uint64_t)(uintptr_t)ptr;
    uint64_t h = hash_addr(ptr);
    for (uint32_t i = 0; i < PROBE_MAX; i++) {
        ent *e = &snap.tab[(h + i) & (TAB_SIZE - 1)];
        uint64_t k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
        if (k == KEY_EMPTY)
            return; /* not a block we know (allocated before snapshots were on) */
        if (k == key) {
            uint64_t val = __atomic_load_n(&e->val, __ATOMIC_ACQUIRE);
            __atomic_store_n(&e->key, KEY_TOMB, __ATOMIC_RELEASE);
            if (kind == 1) {
                snap_re_ptr = ptr;
                snap_re_val = val;
            }
            drop(val);
            return;
        }
    }
}

/* --- regions (recorder's lock held) ------------------------------------------- */

static uint32_t slot_for(uint32_t str, const char *name)
{
    if (str < STRID_MAX && snap.slot_by_str[str])
        return snap.slot_by_str[str];
    uint32_t n = snap.nslots;
    size_t len = tm_strlen(name);
    if (len > NAME_MAX_LEN)
        len = NAME_MAX_LEN;
    if (n >= SLOT_MAX || str >= STRID_MAX || snap.names_used + len + 1 > NAMES_BYTES)
        return 0;
    char *copy = snap.names + snap.names_used;
    memcpy(copy, name, len);
    copy[len] = '\0';
    snap.names_used += (uint32_t)len + 1;
    name_slot *s = &snap.slots[n];
    s->name = copy;
    s->watch_kept = UINT64_MAX;
    snap.slot_by_str[str] = n + 1;
    __atomic_store_n(&snap.nslots, n + 1, __ATOMIC_RELEASE);
    return n + 1;
}

static uint32_t path_child(uint32_t parent, uint32_t slot)
{
    uint32_t h = (uint32_t)(((uint64_t)parent * 0x9E3779B1u + slot) * 0x85EBCA77u) &
                 (PATH_HASH - 1);
    for (;; h = (h + 1) & (PATH_HASH - 1)) {
        uint32_t id = snap.path_hash[h];
        if (!id)
            break;
        if (snap.paths[id].parent == parent && snap.paths[id].slot == slot)
            return id;
    }
    if (snap.npaths >= PATH_MAX_NODES || snap.npaths >= (1u << PATH_BITS)) {
        snap.overflow = 1;
        return parent;
    }
    uint32_t id = snap.npaths++;
    path_node *n = &snap.paths[id];
    n->parent = parent;
    n->slot = slot;
    n->counts = 1;
    for (uint32_t a = parent; a; a = snap.paths[a].parent)
        if (snap.paths[a].slot == slot)
            n->counts = 0;
    snap.path_hash[h] = id;
    return id;
}

TM_HIDDEN void tm_snap_region_begin(uint32_t str, const char *name, int depth)
{
    if (!tm_snap_on)
        return;
    uint32_t slot = slot_for(str, name);
    uint32_t parent = depth <= TM_MAX_REGION_DEPTH ? snap_stack[depth] : snap_cur;
    if (slot) {
        snap.slots[slot - 1].invocations++;
        snap_cur = path_child(parent, slot);
    } else {
        snap.overflow = 1;
        snap_cur = parent;
    }
    if (depth + 1 <= TM_MAX_REGION_DEPTH)
        snap_stack[depth + 1] = snap_cur;
}

TM_HIDDEN void tm_snap_region_end(int depth)
{
    if (!tm_snap_on)
        return;
    uint32_t ending = snap_cur;
    if (depth <= TM_MAX_REGION_DEPTH)
        snap_cur = snap_stack[depth];
    if (!ending || ending == snap_cur)
        return;
    name_slot *s = &snap.slots[snap.paths[ending].slot - 1];
    s->ended++;
    if (s->watching && s->ended == s->watch_at)
        s->watch_kept = __atomic_load_n(&s->kept_bytes, __ATOMIC_RELAXED);
}

/* --- the exported entry points ---------------------------------------------- */

#define EXPORT __attribute__((visibility("default")))

EXPORT int tidemark_snapshot(struct tidemark_snapshot *out)
{
    if (!__atomic_load_n(&tm_snap_on, __ATOMIC_ACQUIRE))
        return -1;
    out->version = TIDEMARK_SNAPSHOT_VERSION;
    out->exact = !__atomic_load_n(&snap.overflow, __ATOMIC_RELAXED);
    out->live_bytes = __atomic_load_n(&snap.live_bytes, __ATOMIC_RELAXED);
    out->live_blocks = __atomic_load_n(&snap.live_blocks, __ATOMIC_RELAXED);
    out->peak_bytes = __atomic_load_n(&snap.peak, __ATOMIC_RELAXED);
    out->regions = __atomic_load_n(&snap.nslots, __ATOMIC_ACQUIRE);
    out->reserved = 0;
    return 0;
}

EXPORT int tidemark_snapshot_region(uint32_t i, struct tidemark_snapshot_region *out)
{
    if (!__atomic_load_n(&tm_snap_on, __ATOMIC_ACQUIRE) ||
        i >= __atomic_load_n(&snap.nslots, __ATOMIC_ACQUIRE))
        return -1;
    const name_slot *s = &snap.slots[i];
    out->name = s->name;
    out->invocations = __atomic_load_n(&s->invocations, __ATOMIC_RELAXED);
    out->kept_bytes = __atomic_load_n(&s->kept_bytes, __ATOMIC_RELAXED);
    out->kept_blocks = __atomic_load_n(&s->kept_blocks, __ATOMIC_RELAXED);
    int watching = __atomic_load_n(&s->watching, __ATOMIC_RELAXED);
    uint64_t at = __atomic_load_n(&s->watch_at, __ATOMIC_RELAXED);
    uint64_t ended = __atomic_load_n(&s->ended, __ATOMIC_RELAXED);
    out->watch_invocations = watching && ended > at ? ended - at : 0;
    out->watch_kept_bytes =
        watching ? __atomic_load_n(&s->watch_kept, __ATOMIC_RELAXED) : UINT64_MAX;
    return 0;
}

EXPORT void tidemark_reset_peak(void)
{
    if (!__atomic_load_n(&tm_snap_on, __ATOMIC_ACQUIRE))
        return;
    __atomic_store_n(&snap.peak, __atomic_load_n(&snap.live_bytes, __ATOMIC_RELAXED),
                     __ATOMIC_RELAXED);
}

EXPORT int tidemark_snapshot_watch(const char *name, uint64_t after)
{
    if (!__atomic_load_n(&tm_snap_on, __ATOMIC_ACQUIRE) || !name ||
        __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)
        return -1;
    tm_quiet q = tm_quiet_begin();
    tm_lock();
    uint32_t str = tm_intern_string_locked(name);
    uint32_t slot = str ? slot_for(str, name) : 0;
    if (slot) {
        name_slot *s = &snap.slots[slot - 1];
        /* The end of the after-th invocation from now, or now. */
        s->watch_at = s->ended + after;
        s->watch_kept = after ? UINT64_MAX : __atomic_load_n(&s->kept_bytes, __ATOMIC_RELAXED);
        s->watching = 1;
    }
    tm_unlock();
    tm_quiet_end(q);
    return slot ? 0 : -1;
}

EXPORT int tidemark_flush(void)
{
    if (__atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)
        return -1;
    tm_quiet q = tm_quiet_begin();
    int ok = 0;
    for (int i = 0; i < 100 && !(ok = tm_try_seal_current()); i++)
        ;
    tm_write_all_sealed(2000000000ull);
    tm_quiet_end(q);
    return ok ? 0 : -1;
}
