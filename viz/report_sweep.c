/* report_sweep.c — the sweep object of `tidemark report` over several
 * traces: the verdict of `tidemark sweep`, by its rules (cmd_sweep.c): the
 * leaked bytes after the built-in suppressions, fitted against the
 * parameter, may grow by at most max(64 KiB, a tenth of the first run's);
 * each region invoked at least 3 times somewhere may keep at most
 * TM_KEPT_THRESHOLD bytes per invocation (tm_region_accumulation) at
 * either end of the fitted line.  Fewer than 3 distinct values, or a trace
 * without one, give no verdict. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "report_data.h"

#define MAX_TRACES 64
#define MAX_CRITERIA 33
#define LEAK_ALLOWANCE 65536.0

typedef struct criterion {
    const char *kind, *region;
    char name[192];
    double values[MAX_TRACES];
    bool has[MAX_TRACES];
    double slope, intercept, lo, hi, growth, threshold;
    bool pass;
    char explain[384];
} criterion;

static int by_param(const void *a, const void *b)
{
    const tm_report_trace *x = *(tm_report_trace *const *)a, *y = *(tm_report_trace *const *)b;
    return (x->param > y->param) - (x->param < y->param);
}

static const tm_region_stats *region_in(tm_report_trace *r, const char *name)
{
    for (size_t k = 0; k < r->nstats; k++) {
        const char *s = tm_reader_string(r->t.reader, r->stats[k].name);
        if (s && !strcmp(s, name))
            return &r->stats[k];
    }
    return NULL;
}

/* Least squares line through the runs that have a value. */
static void fit(criterion *c, tm_report_trace **v, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
    for (int i = 0; i < n; i++) {
        if (!c->has[i])
            continue;
        double x = v[i]->param, y = c->values[i];
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        k++;
    }
    double den = k * sxx - sx * sx;
    c->slope = k >= 2 && den > 0 ? (k * sxy - sx * sy) / den : 0.0;
    c->intercept = k > 0 ? (sy - c->slope * sx) / k : 0.0;
    c->lo = c->intercept + c->slope * v[0]->param;
    c->hi = c->intercept + c->slope * v[n - 1]->param;
    c->growth = c->hi - c->lo;
}

static int judge(criterion *crit, tm_report_trace **v, int n, const char *param)
{
    int nc = 0;
    criterion *c = &crit[nc++];
    memset(c, 0, sizeof *c);
    c->kind = "leaked_bytes";
    snprintf(c->name, sizeof c->name, "leaked_bytes");
    for (int i = 0; i < n; i++) {
        c->values[i] = (double)v[i]->leaked_bytes;
        c->has[i] = true;
    }
    fit(c, v, n);
    double tenth = (double)v[0]->leaked_bytes / 10;
    c->threshold = tenth > LEAK_ALLOWANCE ? tenth : LEAK_ALLOWANCE;
    c->pass = c->growth <= c->threshold;
    char a[32], b[32];
    snprintf(c->explain, sizeof c->explain,
             "leaked bytes at exit after suppressions: fitted growth %s%s from %s=%g to %g "
             "(threshold %s)",
             c->growth < 0 ? "-" : "+",
             tm_human_bytes((uint64_t)(c->growth < 0 ? -c->growth : c->growth), a), param,
             v[0]->param, v[n - 1]->param, tm_human_bytes((uint64_t)c->threshold, b));
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i]->nstats && nc < MAX_CRITERIA; k++) {
            const tm_region_stats *s = &v[i]->stats[k];
            const char *name = tm_reader_string(v[i]->t.reader, s->name);
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
                const tm_region_stats *x = region_in(v[r], name);
                if ((c->has[r] = x != NULL))
                    c->values[r] = tm_region_accumulation(x);
            }
            fit(c, v, n);
            c->threshold = TM_KEPT_THRESHOLD;
            double worst = c->lo > c->hi ? c->lo : c->hi;
            c->pass = worst <= c->threshold;
            snprintf(c->explain, sizeof c->explain,
                     "region %s, kept bytes per invocation (how much its live memory grows "
                     "with each call): fitted %.1f at %s=%g, %.1f at %g (threshold %.0f)%s",
                     name, c->lo, param, v[0]->param, c->hi, v[n - 1]->param, c->threshold,
                     c->pass ? "" : ": memory kept call after call");
        }
    }
    return nc;
}

static void values_json(FILE *out, tm_report_trace **v, int n, int which)
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        fputs(i ? "," : "", out);
        double x = which == 0 ? v[i]->param
                 : which == 1 ? (double)v[i]->t.sum.peak_bytes
                              : (double)v[i]->t.sum.rss_peak_bytes;
        if (which == 0 && x <= 0)
            fputs("null", out);
        else
            tm_report_num(out, x);
    }
    fputc(']', out);
}

void tm_report_sweep_json(FILE *out, tm_report_trace *traces, int n, const char *param)
{
    if (n > MAX_TRACES)
        n = MAX_TRACES;
    tm_report_trace *v[MAX_TRACES];
    for (int i = 0; i < n; i++)
        v[i] = &traces[i];
    qsort(v, (size_t)n, sizeof *v, by_param);
    int distinct = 0, missing = 0;
    for (int i = 0; i < n; i++) {
        missing += v[i]->param <= 0;
        distinct += v[i]->param > 0 && (i == 0 || v[i]->param != v[i - 1]->param);
    }
    fputs(",\"sweep\":{\"param\":", out);
    tm_report_str(out, param);
    fputs(",\"order\":[", out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%ld", i ? "," : "", (long)(v[i] - traces));
    fputs("],\"values\":", out);
    values_json(out, v, n, 0);
    fputs(",\"peak_bytes\":", out);
    values_json(out, v, n, 1);
    fputs(",\"rss_peak_bytes\":", out);
    values_json(out, v, n, 2);
    if (missing || distinct < 3) {
        char why[256];
        if (missing)
            snprintf(why, sizeof why, "%d trace%s without a value of %s (a mark '%s=N')",
                     missing, missing == 1 ? "" : "s", param, param);
        else
            snprintf(why, sizeof why, "%d distinct value%s of %s; at least 3 are needed",
                     distinct, distinct == 1 ? "" : "s", param);
        fputs(",\"verdict\":null,\"reasons\":[", out);
        tm_report_str(out, why);
        fputs("],\"criteria\":[]}", out);
        return;
    }
    static criterion crit[MAX_CRITERIA];
    int nc = judge(crit, v, n, param);
    bool pass = true;
    for (int i = 0; i < nc; i++)
        pass = pass && crit[i].pass;
    fprintf(out, ",\"verdict\":\"%s\",\"reasons\":[", pass ? "PASS" : "FAIL");
    const char *sep = "";
    for (int i = 0; i < nc; i++)
        if (!crit[i].pass) {
            fputs(sep, out);
            tm_report_str(out, crit[i].explain);
            sep = ",";
        }
    fputs("],\"criteria\":[", out);
    for (int i = 0; i < nc; i++) {
        const criterion *c = &crit[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", out);
        tm_report_str(out, c->name);
        fputs(",\"kind\":", out);
        tm_report_str(out, c->kind);
        fputs(",\"region\":", out);
        tm_report_str(out, c->region);
        fputs(",\"unit\":", out);
        tm_report_str(out, c->region ? "bytes per invocation" : "bytes");
        fputs(",\"values\":[", out);
        for (int r = 0; r < n; r++) {
            fputs(r ? "," : "", out);
            if (c->has[r])
                tm_report_num(out, c->values[r]);
            else
                fputs("null", out);
        }
        fputs("]", out);
        const char *k[] = {"slope", "intercept", "fitted_low", "fitted_high", "growth",
                           "threshold"};
        double x[] = {c->slope, c->intercept, c->lo, c->hi, c->growth, c->threshold};
        for (int q = 0; q < 6; q++) {
            fprintf(out, ",\"%s\":", k[q]);
            tm_report_num(out, x[q]);
        }
        fprintf(out, ",\"verdict\":\"%s\",\"explanation\":", c->pass ? "PASS" : "FAIL");
        tm_report_str(out, c->explain);
        fputc('}', out);
    }
    fputs("]}", out);
}
