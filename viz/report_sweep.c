/* report_sweep.c — the sweep object of `tidemark report` over several
 * traces: the verdict of `tidemark sweep`, by the same rules
 * (sweep_rules.h).  Fewer than 3 distinct values, or a trace without one,
 * give no verdict. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "report_data.h"
#include "sweep_rules.h"

#define MAX_TRACES TM_SWEEP_MAX_RUNS

typedef tm_sweep_criterion criterion;

static int by_param(const void *a, const void *b)
{
    const tm_report_trace *x = *(tm_report_trace *const *)a, *y = *(tm_report_trace *const *)b;
    return (x->param > y->param) - (x->param < y->param);
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
    tm_sweep_run runs[MAX_TRACES];
    for (int i = 0; i < n; i++)
        runs[i] = (tm_sweep_run){.param = v[i]->param, .leaked_bytes = v[i]->leaked_bytes,
                                 .t = &v[i]->t, .stats = v[i]->stats, .nstats = v[i]->nstats};
    static criterion crit[TM_SWEEP_MAX_CRITERIA];
    int nc = tm_sweep_judge(crit, runs, n, param);
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
