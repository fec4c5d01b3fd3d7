/* report_data.h — what `tidemark report` puts into its HTML page for one
 * trace, gathered in two passes (the first finds the heap peak and the
 * duration, the second everything else) and written as one compact JSON
 * object: summary and leak verdict, one tree of merged native and Python
 * frames with per-view byte and block counts at its nodes (leaked at exit,
 * live at the peak, allocated, kept per region, and blocks binned by when
 * they were allocated and freed for the time-range view), the timeline and
 * the regions table.
 *
 * The page aggregates, so its size follows the number of distinct stacks
 * and time bins, never the number of events. */
#ifndef TM_REPORT_DATA_H
#define TM_REPORT_DATA_H

#include "groups.h"
#include "regions.h"
#include "timeline.h"

/* (stack, extra) -> bytes and blocks: an open-addressing table, because
 * the report's keys carry a second part (a region, or two time bins) that
 * tm_groups' single stack key has no room for. */
typedef struct tm_tally_entry {
    uint64_t stack;
    uint32_t extra;
    uint32_t used;
    uint64_t bytes, blocks;
} tm_tally_entry;

typedef struct tm_tally {
    tm_tally_entry *v;
    size_t n, cap;
} tm_tally;

void tm_tally_free(tm_tally *t);
/* Adds to the entry of (stack, extra); 0 or -ENOMEM. */
int tm_tally_add(tm_tally *t, uint64_t stack, uint32_t extra, uint64_t bytes,
                 uint64_t blocks);
tm_tally_entry *tm_tally_find(const tm_tally *t, uint64_t stack, uint32_t extra);

/* Time bins of the range view: blocks allocated in bin a and freed in bin
 * f > a (or never: f = bins) are kept; a block freed in the bin it was
 * allocated in is alive at no bin boundary and is dropped.  The bins halve
 * while more than TM_REPORT_RANGE_CELLS cells are in use. */
#define TM_REPORT_BINS 256
#define TM_REPORT_RANGE_CELLS 150000

/* One open region invocation on one thread, for inclusive counts. */
typedef struct tm_incl_frame {
    uint32_t name;
    uint64_t allocs, bytes, freed;
} tm_incl_frame;

#define TM_INCL_DEPTH 64

typedef struct tm_incl_stats {
    uint64_t n, allocs;
    int64_t net;
} tm_incl_stats;

typedef struct tm_report_trace {
    const char *path;
    tm_trace t;
    int opened;
    int oom;
    int damaged;                /* the reader's state was not complete */
    char error[512];            /* why, when damaged */
    double param;               /* the swept parameter's value, 0 = none */
    const char *param_name;

    uint64_t peak_at;           /* events up to and including the peak */
    uint64_t duration_ns;
    uint64_t nev;

    tm_timeline tl;
    tm_regions regions;
    tm_region_stats *stats;
    size_t nstats;
    tm_groups peak;             /* stack -> bytes, blocks live at the peak */
    uint64_t peak_bytes, peak_blocks;
    tm_groups leaked;           /* unsuppressed, live at exit */
    uint64_t leaked_bytes, leaked_blocks, sup_bytes, sup_blocks;
    tm_tally alloc;             /* (stack, 0) */
    tm_tally kept;              /* (stack, region name) */
    tm_tally invs;              /* (invocation, region name): blocks = 1 once ended */
    tm_tally range;             /* (stack, abin << 16 | fbin) */
    unsigned bins;
    uint64_t bin_ns;

    tm_incl_frame (*incl)[TM_INCL_DEPTH];   /* by dense thread index */
    uint32_t *incl_depth;
    size_t nincl;
    tm_incl_stats *incl_by_name;            /* by string id */
    size_t nincl_names;
} tm_report_trace;

/* Reads the trace (both passes).  Returns 0, or 2 after one line on stderr
 * when it cannot be opened or memory ran out.  A damaged or truncated trace
 * is read as far as it goes: 0, with `damaged` and `error` set. */
int tm_report_trace_load(tm_report_trace *r, const char *path, const char *param);
/* Closes the trace: 2 after one line on stderr when it was damaged or
 * truncated (the report then shows what could be read), else 0. */
int tm_report_trace_free(tm_report_trace *r);
/* Writes the trace's JSON object (compact) to out. */
int tm_report_trace_json(tm_report_trace *r, FILE *out);

/* Compact JSON bits shared with cmd_report.c: a string safe inside a
 * <script> element ('<' written as \u003c). */
void tm_report_str(FILE *out, const char *s);

int tm_cmd_report(int argc, char **argv);

#endif /* TM_REPORT_DATA_H */
