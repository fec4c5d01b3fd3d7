/* sweep_rules.c — the verdict across resolutions (sweep_rules.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "sweep_rules.h"

#define LEAK_ALLOWANCE 65536.0

static const tm_region_stats *region_in(const tm_sweep_run *r, const char *name)
{
    for (size_t k = 0; k < r->nstats; k++) {
        const char *s = tm_reader_string(r->t->reader, r->stats[k].name);
        if (s && !strcmp(s, name))
            return &r->stats[k];
    }
    return NULL;
}

/* Least squares line through the runs that have a value. */
static void fit(tm_sweep_criterion *c, const tm_sweep_run *runs, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
    for (int i = 0; i < n; i++) {
        if (!c->has[i])
            continue;
        double x = runs[i].param, y = c->values[i];
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        k++;
    }
    double den = k * sxx - sx * sx;
    c->slope = k >= 2 && den > 0 ? (k * sxy - sx * sy) / den : 0.0;
    c->intercept = k > 0 ? (sy - c->slope * sx) / k : 0.0;
    c->lo = c->intercept + c->slope * runs[0].param;
    c->hi = c->intercept + c->slope * runs[n - 1].param;
    c->growth = c->hi - c->lo;
}

int tm_sweep_judge(tm_sweep_criterion *crit, const tm_sweep_run *runs, int n, const char *param)
{
    int nc = 0;
    tm_sweep_criterion *c = &crit[nc++];
    memset(c, 0, sizeof *c);
    c->kind = "leaked_bytes";
    snprintf(c->name, sizeof c->name, "leaked_bytes");
    for (int i = 0; i < n; i++) {
        c->values[i] = (double)runs[i].leaked_bytes;
        c->has[i] = true;
    }
    fit(c, runs, n);
    double tenth = (double)runs[0].leaked_bytes / 10;
    c->threshold = tenth > LEAK_ALLOWANCE ? tenth : LEAK_ALLOWANCE;
    c->pass = c->growth <= c->threshold;
    char a[32], b[32];
    snprintf(c->explain, sizeof c->explain,
             "leaked bytes at exit after suppressions: fitted growth %s%s from %s=%g to %g "
             "(threshold %s)",
             c->growth < 0 ? "-" : "+",
             tm_human_bytes((uint64_t)(c->growth < 0 ? -c->growth : c->growth), a), param,
             runs[0].param, runs[n - 1].param, tm_human_bytes((uint64_t)c->threshold, b));

    /* One kept criterion per region name invoked often enough somewhere. */
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < runs[i].nstats && nc < TM_SWEEP_MAX_CRITERIA; k++) {
            const tm_region_stats *s = &runs[i].stats[k];
            const char *name = tm_reader_string(runs[i].t->reader, s->name);
            if (!name || s->invocations < 3)
                continue;
            bool known = false;
            for (int q = 1; q < nc && !known; q++)
                known = !strcmp(crit[q].region, name);
            if (known)
                continue;
            c = &crit[nc++];
            memset(c, 0, sizeof *c);
            c->kind = "kept_per_invocation";
            c->region = name;
            snprintf(c->name, sizeof c->name, "kept_per_invocation:%s", name);
            for (int r = 0; r < n; r++) {
                const tm_region_stats *x = region_in(&runs[r], name);
                if ((c->has[r] = x != NULL))
                    c->values[r] = tm_region_accumulation(x);
            }
            fit(c, runs, n);
            c->threshold = TM_KEPT_THRESHOLD;
            double worst = c->lo > c->hi ? c->lo : c->hi;
            c->pass = worst <= c->threshold;
            snprintf(c->explain, sizeof c->explain,
                     "region %s, kept bytes per invocation (how much its live memory grows "
                     "with each call): fitted %.1f at %s=%g, %.1f at %g (threshold %.0f)%s",
                     name, c->lo, param, runs[0].param, c->hi, runs[n - 1].param, c->threshold,
                     c->pass ? "" : ": memory kept call after call");
        }
    }
    return nc;
}
