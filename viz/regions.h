/* regions.h — per-region analysis: for every region name, what its
 * invocations allocate and free, what they keep (allocated inside, still
 * live when the invocation ended), what escapes an invocation (allocated
 * inside, freed after it ended) and what is still live at exit.
 *
 * Events belong to the innermost open region of their thread, as the trace
 * format defines.  Each figure comes twice: *own* (exclusive) counts only
 * what happened while the region was the innermost one, *inclusive* counts
 * its nested regions' allocations as well — a test region that calls a
 * leaking callback region keeps what the callback kept.
 *
 * Every invocation is remembered (a 32-byte node: name, enclosing
 * invocation, live bytes) so that a block freed long after its invocation
 * ended can still be charged to it and to every invocation around it. */
#ifndef TM_REGIONS_H
#define TM_REGIONS_H

#include "cli.h"

typedef struct tm_stat {
    uint64_t n;
    int64_t total;
    int64_t min, max;
} tm_stat;

/* One scope of a region's figures, all per invocation. */
typedef struct tm_region_figs {
    tm_stat allocs, frees, bytes, net;
    tm_stat kept;               /* bytes allocated in it, live when it ended */
    tm_stat peak;               /* most bytes allocated in it live at once */
    uint64_t invocations_keeping;   /* kept > 0 */
} tm_region_figs;

typedef struct tm_region_stats {
    uint32_t name;              /* string id */
    uint64_t invocations;
    tm_stat allocs, frees, bytes, net;  /* own (exclusive), per invocation */
    uint64_t net_zero, net_positive, net_negative;  /* invocations by own net */
    uint64_t escaped_blocks, escaped_bytes;
    uint64_t leaked_blocks, leaked_bytes;
    tm_region_figs own, incl;   /* own.allocs..net repeat the fields above */
    bool nested;                /* other regions opened inside it */
    /* Accumulation: live bytes allocated in any invocation of this name,
     * sampled when each invocation ends (k = 1..ends), fitted k -> bytes. */
    uint64_t ends;
    double sk, skk, sl, skl;
    int64_t first_live, last_live;
    bool rows;                  /* keep one row per invocation */
} tm_region_stats;

/* One invocation of a region asked for with tm_regions_want_rows. */
typedef struct tm_region_row {
    uint64_t invocation;        /* the region's own count, from 1 */
    uint64_t start_ns, end_ns;
    uint64_t allocs;            /* inclusive */
    int64_t net_bytes;          /* inclusive */
    int64_t kept_bytes;         /* inclusive, live when it ended */
    int64_t peak_bytes;         /* inclusive */
    int64_t leaked_bytes;       /* of the kept bytes, never freed */
    uint32_t node;
} tm_region_row;

typedef struct tm_inv_node tm_inv_node;
typedef struct tm_inv_open tm_inv_open;
typedef struct tm_region_thread tm_region_thread;

typedef struct tm_regions {
    tm_region_stats *by_name;   /* indexed by string id */
    uint32_t nnames;
    tm_inv_node *nodes;         /* every invocation, in order of opening */
    uint64_t nnodes, nodes_cap;
    uint32_t *index;            /* (name, invocation) -> node + 1 */
    uint64_t index_cap;
    tm_inv_open *open;          /* details of open invocations */
    uint32_t nopen, open_cap, open_free;
    tm_region_thread *threads;
    uint32_t nthreads;
    int64_t *name_live;         /* by string id: live bytes allocated in it */
    uint32_t name_live_cap;
    tm_region_row *rows;
    uint64_t nrows, rows_cap;
    int oom;
} tm_regions;

void tm_regions_init(tm_regions *r);
void tm_regions_free(tm_regions *r);
/* Keeps a row per invocation of region `name` (a string id); call before
 * its first REGION_BEGIN is fed (the REGION_BEGIN hook is early enough). */
void tm_regions_want_rows(tm_regions *r, uint32_t name);
/* Feed every event (a tm_trace_hook body).  Non-zero when out of memory. */
int tm_regions_event(tm_regions *r, const tm_event *ev, const tm_block *freed);
/* After the scan: closes invocations left open and counts blocks leaked. */
void tm_regions_finish(tm_regions *r, tm_trace *t);
/* Region stats in report order (most invocations first, then by name);
 * returns the count, *out is malloc'd. */
size_t tm_regions_sorted(const tm_regions *r, tm_trace *t, tm_region_stats **out);

/* The invocations holding a block: the node it was allocated in and every
 * invocation around it, innermost first, into out[0..max); the count (0
 * for a block allocated outside any region). */
int tm_regions_chain(const tm_regions *r, uint32_t region, uint64_t invocation, uint32_t *out,
                     int max);
uint32_t tm_regions_node_name(const tm_regions *r, uint32_t node);
uint64_t tm_regions_node_invocation(const tm_regions *r, uint32_t node);
bool tm_regions_node_open(const tm_regions *r, uint32_t node);
/* Live bytes allocated in any invocation of name (inclusive), now. */
int64_t tm_regions_name_live(const tm_regions *r, uint32_t name);

#define TM_RETAIN_MIN_INVOCATIONS 20
/* Accumulation (bytes per invocation) above which a region keeps memory
 * call after call: below the smallest block malloc hands out, so a
 * per-call leak of any size is over it, and far above what one-time
 * growth (a cache filled in the first calls) adds when spread over the
 * invocations of a run. */
#define TM_KEPT_THRESHOLD 8.0

/* True when most invocations of the region keep memory (median net > 0),
 * for regions invoked at least TM_RETAIN_MIN_INVOCATIONS times. */
bool tm_region_retains(const tm_region_stats *s);
/* Kept bytes per invocation that accumulate: the fitted growth, per
 * invocation, of the live bytes allocated in the region's invocations,
 * sampled as each one ends (0 below 3 invocations: a result that outlives
 * its one invocation does not accumulate). */
double tm_region_accumulation(const tm_region_stats *s);
/* True when the accumulation is over TM_KEPT_THRESHOLD. */
bool tm_region_accumulates(const tm_region_stats *s);
void tm_stat_json(tm_json *j, const char *key, const tm_stat *s);
double tm_stat_mean(const tm_stat *s);
/* A scope's figures as JSON members (allocs, frees, bytes, net_bytes,
 * kept_bytes, peak_bytes, invocations_keeping). */
void tm_region_figs_json(tm_json *j, const tm_region_figs *f);

int tm_cmd_regions(int argc, char **argv);
int tm_cmd_kept(int argc, char **argv);

#endif /* TM_REGIONS_H */
