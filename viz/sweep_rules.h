/* sweep_rules.h — the verdict across resolutions, one set of rules for
 * `tidemark sweep` and the sweep page of `tidemark report`.
 *
 * Each criterion is a figure per run fitted by least squares against the
 * parameter and judged on the fitted line: the leaked bytes after the
 * built-in suppressions may grow by at most max(64 KiB, a tenth of the
 * first run's); each region invoked at least 3 times in some run may keep
 * at most TM_KEPT_THRESHOLD bytes per invocation (tm_region_accumulation)
 * at either end of the line. */
#ifndef TM_SWEEP_RULES_H
#define TM_SWEEP_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "regions.h"

#define TM_SWEEP_MAX_RUNS 64
#define TM_SWEEP_MAX_CRITERIA 33 /* leaked bytes and up to 32 regions */

/* What the rules read of one run. */
typedef struct tm_sweep_run {
    double param;               /* the value of the mark NAME=VALUE */
    uint64_t leaked_bytes;      /* at exit, after the built-in suppressions */
    tm_trace *t;                /* for the regions' names */
    const tm_region_stats *stats;
    size_t nstats;
} tm_sweep_run;

typedef struct tm_sweep_criterion {
    const char *kind;           /* "leaked_bytes" or "kept_per_invocation" */
    const char *region;         /* kept: the region's name (a run's string) */
    char name[192];
    double values[TM_SWEEP_MAX_RUNS];
    bool has[TM_SWEEP_MAX_RUNS];
    double slope, intercept, lo, hi, growth, threshold;
    bool pass;
    char explain[384];
} tm_sweep_criterion;

/* Fills crit[0..TM_SWEEP_MAX_CRITERIA) for runs[0..n), sorted by param
 * (n <= TM_SWEEP_MAX_RUNS); `param` names the parameter in the
 * explanations.  Returns how many criteria. */
int tm_sweep_judge(tm_sweep_criterion *crit, const tm_sweep_run *runs, int n, const char *param);

#endif
