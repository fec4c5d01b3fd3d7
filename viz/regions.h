/* regions.h — per-region analysis: for every region name, what its
 * invocations allocate and free, what escapes an invocation (allocated
 * inside, freed after it ended) and what is still live at exit.
 *
 * Events count toward the innermost open region of their thread, as the
 * trace format defines; an outer region's numbers are its own work, not
 * its nested regions'. */
#ifndef TM_REGIONS_H
#define TM_REGIONS_H

#include "cli.h"

typedef struct tm_stat {
    uint64_t n;
    int64_t total;
    int64_t min, max;
} tm_stat;

typedef struct tm_region_stats {
    uint32_t name;              /* string id */
    uint64_t invocations;
    tm_stat allocs, frees, bytes, net;  /* per invocation */
    uint64_t net_zero, net_positive, net_negative;  /* invocations by net */
    uint64_t escaped_blocks, escaped_bytes;
    uint64_t leaked_blocks, leaked_bytes;
} tm_region_stats;

typedef struct tm_open_inv tm_open_inv;

typedef struct tm_regions {
    tm_region_stats *by_name;   /* indexed by string id */
    uint32_t nnames;
    tm_open_inv *open;          /* open invocations: (name, invocation) */
    uint64_t open_cap, open_count;
    int oom;
} tm_regions;

void tm_regions_init(tm_regions *r);
void tm_regions_free(tm_regions *r);
/* Feed every event (a tm_trace_hook body). */
int tm_regions_event(tm_regions *r, const tm_event *ev, const tm_block *freed);
/* After the scan: closes invocations left open and counts blocks leaked. */
void tm_regions_finish(tm_regions *r, tm_trace *t);
/* Region stats in report order (most invocations first, then by name);
 * returns the count, *out is malloc'd. */
size_t tm_regions_sorted(const tm_regions *r, tm_trace *t, tm_region_stats **out);
#define TM_RETAIN_MIN_INVOCATIONS 20

/* True when most invocations of the region keep memory (median net > 0),
 * for regions invoked at least TM_RETAIN_MIN_INVOCATIONS times. */
bool tm_region_retains(const tm_region_stats *s);
void tm_stat_json(tm_json *j, const char *key, const tm_stat *s);
double tm_stat_mean(const tm_stat *s);

int tm_cmd_regions(int argc, char **argv);

#endif /* TM_REGIONS_H */
