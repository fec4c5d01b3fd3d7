/* tm_reader.h — streaming trace reader, live-heap model and symbolizer.
 *
 * The reports in viz/ are built on three pieces:
 *   tm_reader   decodes a trace file into events, one at a time, in the
 *               order the process performed them; memory stays bounded by
 *               the stack/string/module tables, not by trace length.
 *   tm_heap     the set of live blocks (address -> size, stack, region,
 *               invocation, time) that reports update from events.
 *   tm_symbolizer  turns stack nodes into frames (function, file, line,
 *               module, address) offline with libdw.
 *
 * Functions return 0 (or a count) on success and a negative errno-style
 * code on failure; tm_reader_error() gives a one-line message.
 */
#ifndef TM_READER_H
#define TM_READER_H

#include <stddef.h>
#include <stdint.h>

#include "tm_format.h"

/* --- events ------------------------------------------------------------- */

enum tm_event_kind {
    TM_EV_ALLOC = 1,        /* addr, size, stack, fn */
    TM_EV_FREE,             /* addr; fn = TM_FN_FREE, or TM_FN_REALLOC /
                               TM_FN_REALLOCARRAY when realloc released the
                               block (a REALLOC_FAIL may bring it back) */
    TM_EV_REALLOC_FAIL,     /* addr: the block realloc tried to move lives on */
    TM_EV_REGION_BEGIN,     /* region, invocation: the region just opened */
    TM_EV_REGION_END,       /* region, invocation: the region just closed */
    TM_EV_MARK,             /* label */
    TM_EV_RSS,              /* size = resident bytes */
    TM_EV_END,              /* size = enum tm_end_reason, addr = detail */
    TM_EV_LOST,             /* size = events the tracer could not record */
    /* Anonymous maps (a domain beside the heap; tm_maps models it).
     * Lengths as the program passed them, not rounded to pages. */
    TM_EV_MMAP,             /* addr, size = length, stack */
    TM_EV_MUNMAP,           /* addr, size = length */
    TM_EV_MREMAP,           /* addr, size: the old range; addr2, size2: the
                               new one; fn = flags (bit 0: MREMAP_DONTUNMAP);
                               stack */
};

typedef struct tm_event {
    int kind;               /* enum tm_event_kind */
    uint32_t thread;        /* dense thread index, see tm_reader_thread_tid */
    uint64_t time_ns;       /* since the trace started */
    uint64_t addr;
    uint64_t size;
    uint32_t stack;         /* stack node id, 0 = none */
    uint32_t fn;            /* enum tm_alloc_fn for ALLOC and FREE */
    uint32_t label;         /* string id for MARK */
    /* Innermost open region of the thread when the event happened (for
     * REGION_BEGIN/END: the region itself); 0 = outside any region. */
    uint32_t region;        /* string id of the region's name */
    uint64_t invocation;    /* the region's invocation number, from 1 */
    uint32_t depth;         /* nesting depth of that region, from 1 */
    uint32_t pystack;       /* ALLOC: Python stack node, 0 = none */
    uint32_t domain;        /* ALLOC, FREE, REALLOC_FAIL: enum tm_domain (who
                               handed the block out: malloc, or one of
                               Python's allocator domains) */
    uint64_t addr2, size2;  /* MREMAP: the new range */
} tm_event;

/* --- reader -------------------------------------------------------------- */

typedef struct tm_reader tm_reader;

/* How a read ended (tm_reader_state). */
enum tm_read_state {
    TM_READ_COMPLETE = 0,   /* END record seen, nothing damaged */
    TM_READ_TRUNCATED = 1,  /* file ends without END: process was killed or
                               the trace was cut */
    TM_READ_DAMAGED = 2,    /* blocks were corrupt and skipped */
};

/* Opens PATH and validates the file header.  On failure returns a negative
 * code, sets *out to NULL and writes a one-line message into errbuf. */
int tm_reader_open(const char *path, tm_reader **out, char *errbuf, size_t errlen);
void tm_reader_close(tm_reader *r);

/* Next event: 1 with *ev filled, 0 at the end of the readable data.
 * Damaged blocks are skipped (see tm_reader_state), never fatal. */
int tm_reader_next(tm_reader *r, tm_event *ev);

const tm_file_header *tm_reader_header(const tm_reader *r);
enum tm_read_state tm_reader_state(const tm_reader *r);
/* One line describing the first problem met ("" if none). */
const char *tm_reader_error(const tm_reader *r);
const char *tm_reader_path(const tm_reader *r);

/* Strings (region names, mark labels): NULL for an unknown id. */
const char *tm_reader_string(const tm_reader *r, uint32_t id);
/* Ids below this bound may be defined (a loop bound for lookups by name). */
uint32_t tm_reader_string_bound(const tm_reader *r);
uint32_t tm_reader_thread_count(const tm_reader *r);
/* The traced process's VmHWM from the HWM record read so far (it comes
 * just before END), 0 when there is none. */
uint64_t tm_reader_hwm_bytes(const tm_reader *r);
/* STACK_RESET records read so far: the tracer's stack tables were rebuilt
 * that many times (TIDEMARK_STACK_MEMORY). */
uint32_t tm_reader_stack_resets(const tm_reader *r);
uint32_t tm_reader_thread_tid(const tm_reader *r, uint32_t thread);

/* Stacks: frames of a node from innermost to outermost.  Returns the number
 * of frames written (at most max), or negative for an unknown node. */
typedef struct tm_frame_addr {
    uint64_t ip;            /* as recorded (return address minus one) */
    int32_t module;         /* index into the module table, -1 = unknown */
} tm_frame_addr;
int tm_reader_stack(const tm_reader *r, uint32_t node, tm_frame_addr *out, int max);
uint32_t tm_reader_stack_parent(const tm_reader *r, uint32_t node);

/* Python frames (traces taken with --python-stacks). */
typedef struct tm_pyframe {
    const char *file, *function;   /* "?" when undefined */
    uint32_t line;
    uint32_t parent;        /* the calling frame's node, 0 = outermost */
    int entry;              /* outermost frame of one interpreter-loop run */
} tm_pyframe;
/* Returns 0 and fills *out, or -ENOENT for an unknown node. */
int tm_reader_pyframe(const tm_reader *r, uint32_t node, tm_pyframe *out);

typedef struct tm_module {
    const char *path;
    uint64_t bias, start, end;
    uint8_t build_id[TM_BUILD_ID_MAX];
    uint32_t build_id_len;
} tm_module;
uint32_t tm_reader_module_count(const tm_reader *r);
const tm_module *tm_reader_module(const tm_reader *r, uint32_t index);

/* How Python's allocator domains were recorded: "traced" (wrapped, every
 * object allocation is an event), "malloc" (PYTHONMALLOC=malloc was in
 * force: they were mallocs), "off" (a Python process whose small objects,
 * served by pymalloc, went unseen) or "none" (not a Python process).  From
 * the marker strings the tracer writes (docs/trace-format.md) and, without
 * one, the module map; meaningful once the trace has been read. */
const char *tm_reader_python_allocator(const tm_reader *r);

/* Counters of what was read so far. */
typedef struct tm_read_stats {
    uint64_t events, blocks, bytes;
    uint64_t blocks_skipped;
    uint64_t unmatched_frees;   /* maintained by tm_heap */
} tm_read_stats;
const tm_read_stats *tm_reader_stats(const tm_reader *r);

/* --- live heap ------------------------------------------------------------ */

typedef struct tm_block {
    uint64_t addr, size;
    uint64_t time_ns;
    uint32_t stack;
    uint32_t thread;
    uint32_t region;        /* innermost region at allocation, 0 = none */
    uint64_t invocation;
    uint32_t pystack;       /* Python stack node, 0 = none */
    uint32_t domain;        /* enum tm_domain */
} tm_block;

typedef struct tm_heap tm_heap;

tm_heap *tm_heap_new(void);
void tm_heap_free(tm_heap *h);
/* Applies an ALLOC/FREE/REALLOC_FAIL event.  For FREE, copies the released
 * block into *freed (if not NULL) and returns 1; returns 0 when the event
 * did not match a live block (free of an unknown address, counted unless
 * a Python domain freed it: blocks from before its allocators were
 * wrapped), and 0 for other event kinds.  Returns negative only when out of memory. */
int tm_heap_apply(tm_heap *h, const tm_event *ev, tm_block *freed);
uint64_t tm_heap_live_bytes(const tm_heap *h);
uint64_t tm_heap_live_blocks(const tm_heap *h);
uint64_t tm_heap_unmatched_frees(const tm_heap *h);
/* Calls fn for every live block (unspecified order); stops early and
 * returns fn's value when fn returns non-zero. */
int tm_heap_foreach(const tm_heap *h, int (*fn)(const tm_block *b, void *arg), void *arg);

/* --- anonymous maps ---------------------------------------------------------
 *
 * The anonymous memory mapped through mmap/mremap and not unmapped yet, as
 * page ranges (the header's page size): a partial munmap splits a map, an
 * mmap over mapped memory (MAP_FIXED) replaces what it covers, an mremap
 * moves the anonymous memory of its old range, and an munmap or mremap of
 * a range that holds none (a file map, a map from before the trace) changes
 * nothing. */

typedef struct tm_map {
    uint64_t start, end;    /* page-aligned, end exclusive */
    uint64_t time_ns;
    uint32_t stack;
    uint32_t thread;
    uint32_t region;
    uint64_t invocation;
} tm_map;

typedef struct tm_maps tm_maps;

/* page_size 0 = 4096. */
tm_maps *tm_maps_new(uint64_t page_size);
void tm_maps_free(tm_maps *m);
/* Applies an MMAP/MUNMAP/MREMAP event (others are ignored).  Returns 1
 * when the mapped bytes changed, 0 when not, negative when out of memory. */
int tm_maps_apply(tm_maps *m, const tm_event *ev);
uint64_t tm_maps_bytes(const tm_maps *m);   /* mapped now */
uint64_t tm_maps_count(const tm_maps *m);   /* distinct ranges now */
int tm_maps_foreach(const tm_maps *m, int (*fn)(const tm_map *map, void *arg), void *arg);

/* --- symbolizer ------------------------------------------------------------ */

typedef struct tm_symbol {
    const char *function;   /* "??" when unknown */
    const char *file;       /* NULL when unknown */
    int line;               /* 0 when unknown */
    const char *module;     /* basename of the module path, "??" if none */
    uint64_t address;       /* the ip as recorded */
    uint64_t offset;        /* ip relative to the module's load bias */
} tm_symbol;

typedef struct tm_symbolizer tm_symbolizer;

/* The symbolizer reads module files from disk when first needed and warns
 * once (through tm_symbolizer_warning) when a file's build id differs from
 * the one recorded.  Strings it returns live as long as the symbolizer. */
tm_symbolizer *tm_symbolizer_new(const tm_reader *r);
void tm_symbolizer_free(tm_symbolizer *s);
int tm_symbolize(tm_symbolizer *s, const tm_frame_addr *frame, tm_symbol *out);
/* Frames of a stack node, symbolized, innermost first, with the tracer's
 * own frames (libtidemark.so) dropped.  Returns the count written. */
int tm_symbolize_stack(tm_symbolizer *s, uint32_t node, tm_symbol *out, int max);
const char *tm_symbolizer_warning(const tm_symbolizer *s);

#endif /* TM_READER_H */
