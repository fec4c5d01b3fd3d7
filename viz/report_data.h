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
 * and time bins, never the number of events.
 *
 *   report_scan.c   the two passes: tm_report_trace_load / _free
 *   report_tally.c  the (stack, extra) tables the views count in
 *   report_tree.c   the frame tree and the frames' kinds (report_tree.h)
 *   report_json.c   one trace's JSON object
 *   report_sweep.c  the sweep object over several traces
 *   cmd_report.c    the command and the page around the data */
#ifndef TM_REPORT_DATA_H
#define TM_REPORT_DATA_H

#include <stdio.h>

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

/* The heap curve: live bytes in TM_REPORT_POINTS equal buckets over the
 * trace's duration, each with its lowest and highest value and the value
 * at its end (an event-exact envelope, whatever the trace's length). */
#define TM_REPORT_POINTS 1000

typedef struct tm_heap_bucket {
    uint64_t lo, hi, last;
    bool seen;
} tm_heap_bucket;

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

    tm_timeline tl;             /* RSS, region bands and marks */
    tm_heap_bucket *heap;       /* TM_REPORT_POINTS */
    uint64_t heap_ns;           /* a bucket's width */
    tm_regions regions;         /* the regions report's figures, own and inclusive */
    tm_region_stats *stats;
    size_t nstats;
    tm_groups peak;             /* stack -> bytes, blocks live at the peak */
    uint64_t peak_bytes, peak_blocks;
    tm_groups leaked;           /* live at exit; suppressed groups marked */
    uint64_t leaked_bytes, leaked_blocks, sup_bytes, sup_blocks;
    struct tm_block_rules *rules; /* while the live heap at exit is read */
    tm_tally alloc;             /* (stack, 0) */
    tm_tally kept;              /* (stack, region name): alive when an invocation
                                 * holding it (inclusive) ended, as `kept` counts */
    tm_tally range;             /* (stack, abin << 16 | fbin) */
    unsigned bins;
    uint64_t bin_ns;
} tm_report_trace;

/* Reads the trace (both passes).  Returns 0, or 2 after one line on stderr
 * when it cannot be opened or memory ran out.  A damaged or truncated trace
 * is read as far as it goes: 0, with `damaged` and `error` set. */
int tm_report_trace_load(tm_report_trace *r, const char *path, const char *param);
/* Closes the trace: 2 after one line on stderr when it was damaged or
 * truncated (the report then shows what could be read), else 0. */
int tm_report_trace_free(tm_report_trace *r);
struct tm_rtree;
/* Writes the trace's JSON object (compact) to out, its stacks as leaves of
 * `tree`, the one frame tree of the page (report_tree.h), which every
 * trace adds to and which is written after them; 0, or 2 after one line
 * on stderr when memory ran out. */
int tm_report_trace_json(tm_report_trace *r, struct tm_rtree *tree, FILE *out);
/* Writes ,"sweep":{...}: the verdict of `tidemark sweep` over the traces,
 * by its rules, with each criterion's values in parameter order. */
void tm_report_sweep_json(FILE *out, tm_report_trace *traces, int n, const char *param);

/* A JSON string safe inside a <script> element ('<', '>' and '&' written
 * as \u00XX); NULL -> null. */
void tm_report_str(FILE *out, const char *s);
/* A number, %.9g; non-finite -> null. */
void tm_report_num(FILE *out, double v);

int tm_cmd_report(int argc, char **argv);

#endif /* TM_REPORT_DATA_H */
