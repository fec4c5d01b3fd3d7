/* tm_reader_internal.h — the reader's definition tables (strings, stack
 * nodes, modules, threads and their open regions), shared by the decoder,
 * the symbolizer and the unit tests. */
#ifndef TM_READER_INTERNAL_H
#define TM_READER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tm_reader.h"

#define TM_THREAD_UNKNOWN UINT32_MAX

typedef struct tm_node {
    uint64_t ip;
    uint32_t parent;
    int32_t module;         /* index into modules, -1 = unknown */
    bool defined;
} tm_node;

typedef struct tm_py_node {
    uint32_t parent, file, func, line, flags;
    bool defined;
} tm_py_node;

typedef struct tm_open_region {
    uint32_t name;
    uint64_t invocation;
} tm_open_region;

typedef struct tm_thread_state {
    uint32_t tid;
    uint32_t depth;         /* open regions; may exceed cap (not stored) */
    uint32_t cap;
    tm_open_region *regions;
} tm_thread_state;

/* Definitions whose id runs ahead of the dense array (see tables.c): an
 * open-addressing map of id -> value, `elem` bytes each. */
typedef struct tm_sparse {
    uint8_t *slots;         /* cap entries: u32 id (0 = empty), pad, value */
    uint32_t cap, count;
    size_t elem;
} tm_sparse;

typedef struct tm_reader_tables {
    char **strings;         /* by id; NULL = undefined */
    uint32_t nstrings;      /* ids below this are addressable */
    tm_node *nodes;         /* by id */
    uint32_t nnodes;
    tm_module *modules;     /* every module ever mapped */
    uint32_t nmodules;
    size_t capmodules;
    uint32_t *map;          /* indices of the current map, sorted by start */
    uint32_t nmap;
    size_t capmap;
    tm_thread_state *threads;
    uint32_t nthreads;
    size_t capthreads;
    uint32_t *tid_index;    /* open addressing: tid -> thread index + 1 */
    uint32_t tid_cap;
    uint64_t last_clock_ns;
    tm_py_node *pynodes;    /* by id */
    uint32_t npynodes;
    /* Definitions seen per kind, the highest id of each, and the ones kept
     * sparse because their id ran ahead of the dense array. */
    uint32_t defined_strings, defined_nodes, defined_pynodes;
    uint32_t max_string, max_node, max_pynode;
    /* Node ids a STACK_RESET said were defined elsewhere (a fork child's
     * trace starting above 1): counted as defined for the checks. */
    uint32_t node_skipped, pynode_skipped;
    uint32_t stack_resets;      /* STACK_RESET records */
    tm_sparse sparse_strings, sparse_nodes, sparse_pynodes;
} tm_reader_tables;

/* The definers return -ERANGE for an id of 2^28 or more; an id far ahead
 * of the definitions seen is kept sparse (see ID_SLACK in tables.c). */
int tm_tables_init(tm_reader_tables *t);
void tm_tables_free(tm_reader_tables *t);
int tm_tables_string(tm_reader_tables *t, uint32_t id, const char *s, size_t len);
int tm_tables_node(tm_reader_tables *t, uint32_t id, uint32_t parent, uint64_t ip);
/* STACK_RESET: the tracer's tables start again, ids from next on. */
void tm_tables_stack_reset(tm_reader_tables *t, uint32_t next, int python);
void tm_tables_map_reset(tm_reader_tables *t);
int tm_tables_py_node(tm_reader_tables *t, uint32_t id, const tm_py_node *n);
int tm_tables_module(tm_reader_tables *t, uint64_t bias, uint64_t start, uint64_t end,
                     const uint8_t *build_id, uint32_t idlen, const char *path, size_t pathlen);
/* Dense index of a thread id, adding it on first sight; negative on ENOMEM. */
int64_t tm_tables_thread(tm_reader_tables *t, uint32_t tid);
int tm_tables_region_push(tm_reader_tables *t, uint32_t thread, uint32_t name, uint64_t inv);

/* The definition of an id, or NULL when the trace did not define it. */
const char *tm_tables_string_of(const tm_reader_tables *t, uint32_t id);
const tm_node *tm_tables_node_of(const tm_reader_tables *t, uint32_t id);
const tm_py_node *tm_tables_py_node_of(const tm_reader_tables *t, uint32_t id);
/* After the last record: the kind ("string", "stack node", "Python frame")
 * whose highest id the definitions read cannot justify, with that id and
 * the count; NULL when every kind is consistent. */
const char *tm_tables_unjustified(const tm_reader_tables *t, uint32_t *id, uint32_t *defined);

const tm_reader_tables *tm_reader_tables_of(const tm_reader *r);

#endif /* TM_READER_INTERNAL_H */
