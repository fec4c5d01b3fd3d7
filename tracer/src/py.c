/* py.c — Python frames for allocations (tidemark run --python-stacks).
 *
 * Two ways in.  On CPython 3.11, tidemark._pystacks registers a frame walker
 * and the recorder reads the thread's interpreter frames at each allocation
 * (bottom of this file).  Elsewhere (or with TIDEMARK_PYTHON_HOOK=1) the
 * module installs an interpreter profile hook that reports every Python
 * call and return here; each thread keeps a shadow stack of its Python
 * frames.  At an allocation the recorder asks for the Python stack:
 * the line of every frame but the innermost was fixed when it made its
 * call (and is cached with the trie node of the path so far), so the cost
 * is one line lookup for the innermost frame and, when its line changed,
 * one trie probe.  Nodes (file, function, line, entry flag) form a trie
 * like the native stacks and are written once as PY_FRAME records.
 *
 * "Entry" frames — the outermost Python frame of one run of the
 * interpreter loop — let the reader put Python frames in place of the
 * matching _PyEval_EvalFrameDefault native frame.  A Python call made
 * while a C function called from Python is running starts a new loop.
 */
#include <pthread.h>
#include <string.h>

#include "tm_internal.h"

#define PY_MAX 512

typedef struct py_entry {
    void *frame;                /* PyFrameObject*, alive until its return */
    uint32_t file, func;        /* string ids */
    uint32_t line;              /* for outer frames: the line of their call */
    uint32_t node;              /* trie node of the path to here, 0 = unknown */
    uint8_t entry;
    uint8_t in_c_call;          /* a C function called from this frame runs */
} py_entry;

typedef struct py_stack {
    void *next_spare;           /* first: the link among spare states (tm_spares) */
    int depth;                  /* may exceed PY_MAX (frames not kept) */
    py_entry e[PY_MAX];
} py_stack;

static TM_TLS py_stack *self_stack;

/* A thread's state from a thread that exited, or new pages (below). */
static void *thread_state(int kind, size_t size);
enum { STATE_STACK, STATE_WALK, STATE_KINDS };
static int (*get_line)(void *frame);
static const struct tm_py_walker *walker;
TM_HIDDEN int tm_py_on;

/* After either way in changed: whether allocations look for Python frames. */
static void py_on_update(void)
{
    int on = __atomic_load_n(&walker, __ATOMIC_ACQUIRE) ||
             __atomic_load_n(&get_line, __ATOMIC_ACQUIRE);
    __atomic_store_n(&tm_py_on, on, __ATOMIC_RELEASE);
    tm_recorder_poke();
}

/* The Python frame trie, shared, under the recorder lock. */
typedef struct py_node {
    uint32_t id, parent, file, func, line, flags;
} py_node;

/* Ids are the trace's: they go on increasing when the table is dropped at
 * the stack memory cap (py_reset), as the native trie's do (stacks.c); a
 * cached id of an earlier generation (at most base) stays right for the
 * trace but is not in the table, so it is never a parent here. */
static struct {
    py_node *table;
    uint64_t cap, count;       /* count: ids handed out, all generations */
    uint64_t used;             /* entries in the table */
    uint32_t base;             /* ids up to base are of earlier generations */
    uint32_t resets;
} trie;

#define PY_ID_MAX (1u << 28)   /* trace ids are below 2^28 */

static inline int py_current(uint32_t id)
{
    return id > trie.base;
}

TM_HIDDEN size_t tm_py_stack_bytes(void)
{
    return (size_t)(trie.cap * sizeof(py_node));
}

/* Dropped at the cap: empty again, ids go on from count + 1. */
static int py_reset(void)
{
    if (trie.table)
        tm_pages_free(trie.table, trie.cap * sizeof *trie.table);
    trie.table = NULL;
    trie.cap = 0;
    trie.used = 0;
    trie.base = (uint32_t)trie.count;
    trie.resets++;
    tm_emit_stack_reset_locked(trie.base + 1, 1);
    return 0;
}

static uint64_t node_hash(const py_node *k)
{
    uint64_t h = k->parent * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t)k->file * 0xc2b2ae3d27d4eb4full + k->func;
    h ^= ((uint64_t)k->line << 1 | k->flags) * 0x165667b19e3779f9ull;
    return h ^ (h >> 29);
}

static int grow(void)
{
    uint64_t cap = trie.cap ? 2 * trie.cap : 4096;
    /* The cap covers native and Python tables together; the larger one
     * gives way (a growth holds the old table and the new one). */
    uint64_t limit = tm_cfg.stack_memory, native = tm_stacks_bytes();
    if (limit && trie.cap && native + (trie.cap + cap) * sizeof(py_node) > limit) {
        if (trie.cap * sizeof(py_node) >= native) {
            py_reset();
            cap = 4096;
        } else {
            tm_stacks_request_reset();
        }
    }
    py_node *t = tm_pages(cap * sizeof *t);
    if (!t)
        return -1;
    for (uint64_t i = 0; i < trie.cap; i++) {
        if (!trie.table[i].id)
            continue;
        uint64_t k = node_hash(&trie.table[i]) & (cap - 1);
        while (t[k].id)
            k = (k + 1) & (cap - 1);
        t[k] = trie.table[i];
    }
    if (trie.table)
        tm_pages_free(trie.table, trie.cap * sizeof *trie.table);
    trie.table = t;
    trie.cap = cap;
    return 0;
}

static uint32_t child(uint32_t parent, const py_entry *e, uint32_t line)
{
    if (trie.count + 1 >= PY_ID_MAX)
        return parent;
    if (trie.used + 1 > trie.cap / 4 * 3 && grow() < 0)
        return parent;
    if (parent && !py_current(parent))
        return 0; /* the table was dropped just now: the walk starts again */
    py_node k = {.parent = parent, .file = e->file, .func = e->func, .line = line,
                 .flags = e->entry};
    uint64_t i = node_hash(&k) & (trie.cap - 1);
    for (;; i = (i + 1) & (trie.cap - 1)) {
        py_node *n = &trie.table[i];
        if (!n->id)
            break;
        if (n->parent == parent && n->file == k.file && n->func == k.func &&
            n->line == line && n->flags == k.flags)
            return n->id;
    }
    k.id = (uint32_t)++trie.count;
    trie.used++;
    trie.table[i] = k;
    tm_emit_py_frame_locked(k.id, parent, k.file, k.func, line, k.flags);
    return k.id;
}

static uint32_t walk_stack_locked(const struct tm_py_walker *w);

static __attribute__((noinline)) uint32_t py_stack_locked(void)
{
    const struct tm_py_walker *w = __atomic_load_n(&walker, __ATOMIC_ACQUIRE);
    if (w)
        return walk_stack_locked(w);
    py_stack *s = self_stack;
    if (!s || s->depth <= 0 || !get_line)
        return 0;
    int n = s->depth < PY_MAX ? s->depth : PY_MAX;
    uint32_t node = 0, resets = trie.resets;
    int restarted = 0;
    for (int i = 0; i < n; i++) {
        py_entry *e = &s->e[i];
        /* A node of an earlier generation of the table counts as unknown. */
        if (i == n - 1) {
            uint32_t line = (uint32_t)get_line(e->frame);
            if (line != e->line || !py_current(e->node)) {
                e->line = line;
                e->node = child(node, e, line);
            }
        } else if (!py_current(e->node)) {
            e->node = child(node, e, e->line);
        }
        if (tm_unlikely(trie.resets != resets)) {
            /* Dropped for this node: the whole stack again, once. */
            resets = trie.resets;
            if (restarted++)
                return 0;
            node = 0;
            i = -1;
            continue;
        }
        node = e->node;
    }
    return node;
}

/* On every allocation's full path: without Python stacks, one load. */
TM_HIDDEN uint32_t tm_py_stack_locked(void)
{
    if (tm_likely(!__atomic_load_n(&tm_py_on, __ATOMIC_RELAXED)))
        return 0;
    return py_stack_locked();
}

TM_HIDDEN void tm_py_foreach(void (*emit)(uint32_t, uint32_t, uint32_t, uint32_t, uint32_t,
                                         uint32_t))
{
    /* A fork child's trace: ids start above base (STACK_RESET says so). */
    if (trie.base)
        tm_emit_stack_reset_locked(trie.base + 1, 1);
    for (uint64_t i = 0; i < trie.cap; i++)
        if (trie.table[i].id)
            emit(trie.table[i].id, trie.table[i].parent, trie.table[i].file,
                 trie.table[i].func, trie.table[i].line, trie.table[i].flags);
}

/* --- the API the profile hook calls (exported) ----------------------------------- */

#define EXPORT __attribute__((visibility("default")))

EXPORT void tidemark_py_enable(int (*line_of)(void *frame))
{
    __atomic_store_n(&get_line, line_of, __ATOMIC_RELEASE);
    py_on_update();
}

EXPORT uint32_t tidemark_py_intern(const char *s)
{
    if (!tm_ensure_started())
        return 0;
    return tm_intern_string(s);
}

EXPORT void tidemark_py_push(void *frame, uint32_t file, uint32_t func)
{
    py_stack *s = self_stack;
    if (!s) {
        s = thread_state(STATE_STACK, sizeof *s);
        if (!s)
            return;
        s->depth = 0;
        self_stack = s;
    }
    if (s->depth >= PY_MAX) {
        s->depth++;
        return;
    }
    uint8_t entry = 1;
    if (s->depth > 0) {
        py_entry *top = &s->e[s->depth - 1];
        /* The caller's line is fixed from now until this call returns. */
        uint32_t line = get_line ? (uint32_t)get_line(top->frame) : 0;
        if (line != top->line) {
            top->line = line;
            top->node = 0;
        }
        entry = top->in_c_call;
    }
    s->e[s->depth++] = (py_entry){.frame = frame, .file = file, .func = func, .entry = entry};
}

EXPORT void tidemark_py_pop(void)
{
    py_stack *s = self_stack;
    if (s && s->depth > 0)
        s->depth--;
}

/* A C function called from the innermost Python frame starts (1) or ends (0). */
EXPORT void tidemark_py_c_call(int starting)
{
    py_stack *s = self_stack;
    if (s && s->depth > 0 && s->depth <= PY_MAX)
        s->e[s->depth - 1].in_c_call = (uint8_t)starting;
}

/* --- the frame-chain walker (CPython 3.11) ---------------------------------------
 *
 * Where tidemark._pystacks knows the interpreter's frame layout, it registers
 * a walker instead of the profile hook: at an allocation the recorder reads
 * the thread's interpreter frames directly (code, instruction, entry flag),
 * so Python calls cost nothing extra; only allocations pay, and they reuse
 * the outer part of the previous walk of their thread.
 */

typedef struct tm_py_ref {
    void *code;
    void *instr;
    uint64_t key;               /* identifies the code object (address + names) */
    int entry;
} tm_py_ref;

typedef struct tm_py_walker {
    int (*frames)(tm_py_ref *out, int max);     /* innermost first */
    void (*names)(void *code, const char **file, const char **func);
    int (*line)(void *code, void *instr);
} tm_py_walker;

EXPORT void tidemark_py_set_walker(const tm_py_walker *w)
{
    __atomic_store_n(&walker, w, __ATOMIC_RELEASE);
    py_on_update();
}

/* Code objects -> string ids, and instruction -> line, both under the
 * recorder lock. */
typedef struct code_info {
    uint64_t key;
    uint32_t file, func;
} code_info;

#define CODE_CAP (1u << 14)
#define LINE_CAP (1u << 14)

static code_info *codes;
static struct line_entry {
    uint64_t instr, key;
    uint32_t line;
} *lines;

static int code_ids(const tm_py_walker *w, const tm_py_ref *r, uint32_t *file, uint32_t *func)
{
    if (!codes && !(codes = tm_pages(CODE_CAP * sizeof *codes)))
        return -1;
    uint32_t i = (uint32_t)(r->key * 0x9e3779b97f4a7c15ull >> 40) & (CODE_CAP - 1);
    for (uint32_t k = 0; k < 16; k++, i = (i + 1) & (CODE_CAP - 1)) {
        if (codes[i].key == r->key) {
            *file = codes[i].file;
            *func = codes[i].func;
            return 0;
        }
        if (!codes[i].key)
            break;
    }
    const char *f = "?", *fn = "?";
    w->names(r->code, &f, &fn);
    *file = tm_intern_string_locked(f);
    *func = tm_intern_string_locked(fn);
    if (!codes[i].key || codes[i].key != r->key)  /* full probe run: overwrite */
        codes[i] = (code_info){.key = r->key, .file = *file, .func = *func};
    return 0;
}

static uint32_t line_of_ref(const tm_py_walker *w, const tm_py_ref *r)
{
    if (!lines && !(lines = tm_pages(LINE_CAP * sizeof *lines)))
        return (uint32_t)w->line(r->code, r->instr);
    uint64_t ip = (uint64_t)(uintptr_t)r->instr;
    struct line_entry *e = &lines[(ip >> 1 ^ r->key) & (LINE_CAP - 1)];
    if (e->instr == ip && e->key == r->key)
        return e->line;
    uint32_t line = (uint32_t)w->line(r->code, r->instr);
    *e = (struct line_entry){.instr = ip, .key = r->key, .line = line};
    return line;
}

/* The previous walk of this thread, outermost first, with its nodes. */
#define EDGE_CACHE 1024

typedef struct walk_cache {
    void *next_spare;           /* first: the link among spare states (tm_spares) */
    int n;
    tm_py_ref ref[PY_MAX];
    uint32_t node[PY_MAX];
    tm_py_ref tmp[PY_MAX];
    /* (parent node, code, instruction) -> node, for the innermost frames
     * that change at every allocation; trie nodes are never removed. */
    struct {
        uint64_t key, instr;
        uint32_t parent, node;
    } edge[EDGE_CACHE];
} walk_cache;

static TM_TLS walk_cache *self_walk;

/* --- per-thread state --------------------------------------------------------------
 *
 * A thread's shadow stack and walk cache go back to a spare list when the
 * thread exits (a thread-specific key's destructor), for the next threads:
 * a program that keeps replacing its threads maps as many as it ever ran
 * at once.  A walk cache keeps its edges (facts about code, not threads). */

static struct {
    tm_spares spare[STATE_KINDS];
    pthread_once_t once;
    pthread_key_t key;
    int key_made;
} states = {.once = PTHREAD_ONCE_INIT};

_Static_assert(offsetof(py_stack, next_spare) == 0 && offsetof(walk_cache, next_spare) == 0,
               "a spare state's link comes first");

static void release_states(void *unused)
{
    (void)unused;
    py_stack *s = self_stack;
    walk_cache *c = self_walk;
    self_stack = NULL; /* a push after this takes a state anew */
    self_walk = NULL;
    if (s)
        tm_spares_put(&states.spare[STATE_STACK], s);
    if (c)
        tm_spares_put(&states.spare[STATE_WALK], c);
}

TM_HIDDEN void tm_py_spares_hold(int hold)
{
    for (int k = 0; k < STATE_KINDS; k++)
        tm_spares_hold(&states.spare[k], hold);
}

static void make_key(void)
{
    states.key_made = pthread_key_create(&states.key, release_states) == 0;
}

static void *thread_state(int kind, size_t size)
{
    void *p = tm_spares_take(&states.spare[kind]);
    if (!p && !(p = tm_pages(size)))
        return NULL;
    sigset_t old;
    tm_quiet q = tm_quiet_begin_masked(&old); /* these may allocate: the tracer's */
    pthread_once(&states.once, make_key);
    if (states.key_made)
        pthread_setspecific(states.key, &states); /* any value but NULL */
    tm_quiet_end_masked(q, &old);
    return p;
}

static uint32_t walk_stack_locked(const tm_py_walker *w)
{
    walk_cache *c = self_walk;
    if (!c) {
        c = thread_state(STATE_WALK, sizeof *c);
        if (!c)
            return 0;
        c->n = 0;
        self_walk = c;
    }
    int n = w->frames(c->tmp, PY_MAX);
    uint32_t node = 0, resets = trie.resets;
    int same = 1, restarted = 0;
again:
    for (int i = 0; i < n; i++) {
        const tm_py_ref *r = &c->tmp[n - 1 - i];    /* outermost first */
        /* Nodes of an earlier generation of the table are not reused. */
        if (same && i < c->n && c->ref[i].key == r->key && c->ref[i].instr == r->instr &&
            c->ref[i].entry == r->entry && py_current(c->node[i])) {
            node = c->node[i];
            continue;
        }
        same = 0;
        uint64_t ip = (uint64_t)(uintptr_t)r->instr;
        uint64_t ekey = r->key ^ (uint64_t)(r->entry != 0) << 1;   /* entry is part of a node */
        uint32_t h = (uint32_t)((ip >> 1 ^ ekey ^ node * 0x9e3779b1ull) & (EDGE_CACHE - 1));
        uint32_t parent = node;
        if (c->edge[h].key == ekey && c->edge[h].instr == ip && c->edge[h].parent == parent &&
            py_current(c->edge[h].node)) {
            node = c->edge[h].node;
        } else {
            uint32_t file, func;
            if (code_ids(w, r, &file, &func) < 0) {
                n = i;
                break;
            }
            py_entry e = {.file = file, .func = func, .entry = (uint8_t)r->entry};
            node = child(parent, &e, line_of_ref(w, r));
            if (tm_unlikely(trie.resets != resets)) {
                /* Dropped for this node: the whole walk again, once. */
                resets = trie.resets;
                c->n = 0;
                if (restarted++)
                    return 0;
                node = 0;
                same = 0;
                goto again;
            }
            if (node != parent) {
                c->edge[h].key = ekey;
                c->edge[h].instr = ip;
                c->edge[h].parent = parent;
                c->edge[h].node = node;
            }
        }
        c->ref[i] = *r;
        c->node[i] = node;
    }
    c->n = n;
    return node;
}
