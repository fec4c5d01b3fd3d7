/* tables.c — the definitions a trace carries: strings, stack nodes, the
 * module map and threads with their open regions.  Ids are dense in a
 * well-formed trace; growth is bounded so a corrupt id cannot ask for
 * gigabytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tm_reader_internal.h"
#include "tm_vec.h"

/* How far an id may run ahead of the definitions of its kind seen so far
 * and still be stored in the dense, id-indexed array.  The tracer numbers
 * each kind densely from 1, mostly in order; a fork child's trace repeats
 * the stack tables in hash order, and a damaged block takes definitions
 * with it.  An id further ahead goes to a sparse map instead, so a crafted
 * id of 2^28 costs one map entry, not a 2 GB array: memory follows what the
 * file defines, never the values of its ids. */
#define ID_SLACK (1u << 18)
#define ID_MAX (1u << 28)

/* Grows an id-indexed array so `id` is addressable.  New entries are zero.
 * Returns 1 when the id is too far ahead for the array (store it sparse). */
static int grow_ids(void **arr, uint32_t *n, size_t elem, uint32_t id, uint32_t defined)
{
    if (id < *n)
        return 0;
    if ((uint64_t)id > (uint64_t)defined + ID_SLACK)
        return 1;
    uint32_t cap = *n ? *n : 64;
    while (cap <= id)
        cap *= 2;
    void *a = realloc(*arr, (size_t)cap * elem);
    if (!a)
        return -ENOMEM;
    memset((char *)a + (size_t)*n * elem, 0, (size_t)(cap - *n) * elem);
    *arr = a;
    *n = cap;
    return 0;
}

/* --- the sparse map ------------------------------------------------------------ */

static size_t sparse_entry(const tm_sparse *m)
{
    return 8 + ((m->elem + 7) & ~(size_t)7);
}

static uint32_t sparse_hash(uint32_t id, uint32_t cap)
{
    return (id * 2654435761u) & (cap - 1);
}

/* The value slot of id, or NULL when absent. */
static void *sparse_find(const tm_sparse *m, uint32_t id)
{
    if (!m->cap)
        return NULL;
    size_t es = sparse_entry(m);
    for (uint32_t h = sparse_hash(id, m->cap);; h = (h + 1) & (m->cap - 1)) {
        uint8_t *e = m->slots + (size_t)h * es;
        uint32_t k;
        memcpy(&k, e, 4);
        if (k == id)
            return e + 8;
        if (k == 0)
            return NULL;
    }
}

static int sparse_grow(tm_sparse *m)
{
    uint32_t cap = m->cap ? 2 * m->cap : 64;
    size_t es = sparse_entry(m);
    uint8_t *slots = calloc(cap, es);
    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++) {
        const uint8_t *e = m->slots + (size_t)i * es;
        uint32_t k;
        memcpy(&k, e, 4);
        if (!k)
            continue;
        uint32_t h = sparse_hash(k, cap), taken;
        for (;; h = (h + 1) & (cap - 1)) {
            memcpy(&taken, slots + (size_t)h * es, 4);
            if (!taken)
                break;
        }
        memcpy(slots + (size_t)h * es, e, es);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

/* The value slot of id, added (zeroed) when absent; NULL on ENOMEM. */
static void *sparse_put(tm_sparse *m, uint32_t id)
{
    void *v = sparse_find(m, id);
    if (v)
        return v;
    if (2 * (m->count + 1) > m->cap && sparse_grow(m) < 0)
        return NULL;
    size_t es = sparse_entry(m);
    uint32_t h = sparse_hash(id, m->cap);
    for (;; h = (h + 1) & (m->cap - 1)) {
        uint32_t k;
        memcpy(&k, m->slots + (size_t)h * es, 4);
        if (!k)
            break;
    }
    uint8_t *e = m->slots + (size_t)h * es;
    memcpy(e, &id, 4);
    m->count++;
    return e + 8;
}

/* Where the definition of `id` goes: its dense slot, or a sparse one. */
static void *slot_for(void **arr, uint32_t *n, size_t elem, tm_sparse *m, uint32_t id,
                      uint32_t defined, int *rc)
{
    *rc = 0;
    if (id >= ID_MAX) {
        *rc = -ERANGE;
        return NULL;
    }
    int g = grow_ids(arr, n, elem, id, defined);
    if (g < 0) {
        *rc = g;
        return NULL;
    }
    void *v = g == 0 ? (char *)*arr + (size_t)id * elem : sparse_put(m, id);
    if (!v)
        *rc = -ENOMEM;
    return v;
}

int tm_tables_init(tm_reader_tables *t)
{
    memset(t, 0, sizeof *t);
    t->tid_cap = 64;
    t->sparse_strings.elem = sizeof(char *);
    t->sparse_nodes.elem = sizeof(tm_node);
    t->sparse_pynodes.elem = sizeof(tm_py_node);
    t->tid_index = calloc(t->tid_cap, sizeof *t->tid_index);
    return t->tid_index ? 0 : -ENOMEM;
}

void tm_tables_free(tm_reader_tables *t)
{
    for (uint32_t i = 0; i < t->nstrings; i++)
        free(t->strings[i]);
    free(t->strings);
    size_t es = sparse_entry(&t->sparse_strings);
    for (uint32_t i = 0; i < t->sparse_strings.cap; i++) {
        char *str;
        memcpy(&str, t->sparse_strings.slots + (size_t)i * es + 8, sizeof str);
        free(str);
    }
    free(t->sparse_strings.slots);
    free(t->sparse_nodes.slots);
    free(t->sparse_pynodes.slots);
    free(t->nodes);
    free(t->pynodes);
    for (uint32_t i = 0; i < t->nmodules; i++)
        free((char *)t->modules[i].path);
    free(t->modules);
    free(t->map);
    for (uint32_t i = 0; i < t->nthreads; i++)
        free(t->threads[i].regions);
    free(t->threads);
    free(t->tid_index);
    memset(t, 0, sizeof *t);
}

int tm_tables_string(tm_reader_tables *t, uint32_t id, const char *s, size_t len)
{
    int rc;
    char **slot = slot_for((void **)&t->strings, &t->nstrings, sizeof *t->strings,
                           &t->sparse_strings, id, t->defined_strings, &rc);
    if (!slot)
        return rc;
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    free(*slot);                /* a fork child's trace may repeat tables */
    *slot = copy;
    t->defined_strings++;
    if (id > t->max_string)
        t->max_string = id;
    return 0;
}

static int32_t module_of(const tm_reader_tables *t, uint64_t ip)
{
    uint32_t lo = 0, hi = t->nmap;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (t->modules[t->map[mid]].start <= ip)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const tm_module *m = &t->modules[t->map[lo - 1]];
    return ip < m->end ? (int32_t)t->map[lo - 1] : -1;
}

int tm_tables_node(tm_reader_tables *t, uint32_t id, uint32_t parent, uint64_t ip)
{
    int rc;
    tm_node *slot = slot_for((void **)&t->nodes, &t->nnodes, sizeof *t->nodes,
                             &t->sparse_nodes, id, t->defined_nodes + t->node_skipped, &rc);
    if (!slot)
        return rc;
    *slot = (tm_node){.ip = ip, .parent = parent, .module = module_of(t, ip), .defined = true};
    t->defined_nodes++;
    if (id > t->max_node)
        t->max_node = id;
    return 0;
}

int tm_tables_py_node(tm_reader_tables *t, uint32_t id, const tm_py_node *n)
{
    int rc;
    tm_py_node *slot = slot_for((void **)&t->pynodes, &t->npynodes, sizeof *t->pynodes,
                                &t->sparse_pynodes, id, t->defined_pynodes + t->pynode_skipped,
                                &rc);
    if (!slot)
        return rc;
    *slot = *n;
    slot->defined = true;
    t->defined_pynodes++;
    if (id > t->max_pynode)
        t->max_pynode = id;
    return 0;
}

const char *tm_tables_string_of(const tm_reader_tables *t, uint32_t id)
{
    if (id < t->nstrings && t->strings[id])
        return t->strings[id];
    char **v = sparse_find(&t->sparse_strings, id);
    return v ? *v : NULL;
}

const tm_node *tm_tables_node_of(const tm_reader_tables *t, uint32_t id)
{
    if (id < t->nnodes && t->nodes[id].defined)
        return &t->nodes[id];
    const tm_node *v = sparse_find(&t->sparse_nodes, id);
    return v && v->defined ? v : NULL;
}

const tm_py_node *tm_tables_py_node_of(const tm_reader_tables *t, uint32_t id)
{
    if (id < t->npynodes && t->pynodes[id].defined)
        return &t->pynodes[id];
    const tm_py_node *v = sparse_find(&t->sparse_pynodes, id);
    return v && v->defined ? v : NULL;
}

/* Ids are dense from 1, so a whole trace defines at least as many of a
 * kind as its highest id, give or take what damaged blocks took. */
const char *tm_tables_unjustified(const tm_reader_tables *t, uint32_t *id, uint32_t *defined)
{
    const struct { const char *kind; uint32_t max, n; } k[] = {
        {"string", t->max_string, t->defined_strings},
        {"stack node", t->max_node, t->defined_nodes + t->node_skipped},
        {"Python frame", t->max_pynode, t->defined_pynodes + t->pynode_skipped},
    };
    for (int i = 0; i < 3; i++)
        if ((uint64_t)k[i].max > (uint64_t)k[i].n + ID_SLACK) {
            *id = k[i].max;
            *defined = k[i].n;
            return k[i].kind;
        }
    return NULL;
}

void tm_tables_stack_reset(tm_reader_tables *t, uint32_t next, int python)
{
    t->stack_resets++;
    uint32_t *skipped = python ? &t->pynode_skipped : &t->node_skipped;
    uint32_t defined = python ? t->defined_pynodes : t->defined_nodes;
    if (next - 1 > defined + *skipped)
        *skipped = next - 1 - defined;
}

void tm_tables_map_reset(tm_reader_tables *t)
{
    t->nmap = 0;
}

int tm_tables_module(tm_reader_tables *t, uint64_t bias, uint64_t start, uint64_t end,
                     const uint8_t *build_id, uint32_t idlen, const char *path, size_t pathlen)
{
    /* A module already known (same path, place and build id) keeps its
     * index, so a map refresh after dlopen does not duplicate it. */
    uint32_t idx = t->nmodules;
    for (uint32_t i = 0; i < t->nmodules; i++) {
        const tm_module *m = &t->modules[i];
        if (m->start == start && m->end == end && m->bias == bias &&
            m->build_id_len == idlen && !memcmp(m->build_id, build_id, idlen) &&
            strlen(m->path) == pathlen && !memcmp(m->path, path, pathlen)) {
            idx = i;
            break;
        }
    }
    if (idx == t->nmodules) {
        if (tm_vec_room(&t->modules, &t->capmodules, t->nmodules, sizeof *t->modules, 32))
            return -ENOMEM;
        char *p = malloc(pathlen + 1);
        if (!p)
            return -ENOMEM;
        memcpy(p, path, pathlen);
        p[pathlen] = '\0';
        tm_module *m = &t->modules[t->nmodules++];
        memset(m, 0, sizeof *m);
        m->path = p;
        m->bias = bias;
        m->start = start;
        m->end = end;
        memcpy(m->build_id, build_id, idlen);
        m->build_id_len = idlen;
    }
    if (tm_vec_room(&t->map, &t->capmap, t->nmap, sizeof *t->map, 32))
        return -ENOMEM;
    /* Insertion keeps the map sorted by start address. */
    uint32_t i = t->nmap++;
    while (i > 0 && t->modules[t->map[i - 1]].start > start) {
        t->map[i] = t->map[i - 1];
        i--;
    }
    t->map[i] = idx;
    return 0;
}

static uint32_t tid_hash(uint32_t tid, uint32_t cap)
{
    return (tid * 2654435761u) & (cap - 1);
}

int64_t tm_tables_thread(tm_reader_tables *t, uint32_t tid)
{
    uint32_t h = tid_hash(tid, t->tid_cap);
    while (t->tid_index[h]) {
        if (t->threads[t->tid_index[h] - 1].tid == tid)
            return t->tid_index[h] - 1;
        h = (h + 1) & (t->tid_cap - 1);
    }
    if (tm_vec_room(&t->threads, &t->capthreads, t->nthreads, sizeof *t->threads, 16))
        return -ENOMEM;
    if (2 * (t->nthreads + 1) > t->tid_cap) {
        uint32_t cap = 2 * t->tid_cap;
        uint32_t *idx = calloc(cap, sizeof *idx);
        if (!idx)
            return -ENOMEM;
        for (uint32_t i = 0; i < t->nthreads; i++) {
            uint32_t k = tid_hash(t->threads[i].tid, cap);
            while (idx[k])
                k = (k + 1) & (cap - 1);
            idx[k] = i + 1;
        }
        free(t->tid_index);
        t->tid_index = idx;
        t->tid_cap = cap;
        h = tid_hash(tid, cap);
        while (t->tid_index[h])
            h = (h + 1) & (cap - 1);
    }
    uint32_t i = t->nthreads++;
    t->threads[i] = (tm_thread_state){.tid = tid};
    t->tid_index[h] = i + 1;
    return i;
}

int tm_tables_region_push(tm_reader_tables *t, uint32_t thread, uint32_t name, uint64_t inv)
{
    tm_thread_state *th = &t->threads[thread];
    if (th->depth == th->cap && th->cap < 4096) {
        uint32_t cap = th->cap ? 2 * th->cap : 8;
        tm_open_region *r = realloc(th->regions, cap * sizeof *r);
        if (!r)
            return -ENOMEM;
        th->regions = r;
        th->cap = cap;
    }
    if (th->depth < th->cap)
        th->regions[th->depth] = (tm_open_region){.name = name, .invocation = inv};
    th->depth++;
    return 0;
}
