/* cmd_sweep.c — `tidemark sweep TRACE... -o DIR`: the same program traced at
 * several resolutions; memory against resolution, one timeline panel per
 * run, and the verdict: does memory come back? */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "regions.h"
#include "suppress.h"
#include "timeline.h"

static const char sweep_help[] =
    "usage: tidemark sweep TRACE... -o DIR [--param NAME] [--label N]... [--json]\n"
    "\n"
    "For traces of one program at different values of a parameter (read from\n"
    "the first mark 'resolution=N' of each trace, or given in order with\n"
    "--label), writes DIR/memory-vs-resolution.png (heap peak, leaked at exit\n"
    "and RSS peak; beside it each region's kept bytes per invocation; log x,\n"
    "a tick at every value), DIR/timelines.png (one panel per run) and\n"
    "DIR/sweep.json, prints a table and the verdict.\n"
    "\n"
    "The verdict fits a line through each criterion over all the runs (least\n"
    "squares against the parameter) and judges the fitted line:\n"
    "  leaked bytes     live at exit after the built-in suppressions (as\n"
    "                   `leaks` reports them); FAIL when the fitted growth from\n"
    "                   the smallest to the largest value is over max(64 KiB,\n"
    "                   10% of the smallest run's leaked bytes)\n"
    "  kept per invocation, one per region invoked at least 3 times in some\n"
    "                   run: how much the live memory allocated in the region's\n"
    "                   invocations grows with each invocation (fitted over the\n"
    "                   invocations of a run); FAIL when the fitted line is over\n"
    "                   8 bytes per invocation anywhere in the range: memory\n"
    "                   kept call after call, freed at teardown or never\n"
    "PASS when every criterion passes.\n"
    "\n"
    "  -o, --output DIR  where the plots and sweep.json go (created)\n"
    "  --param NAME      the swept parameter, read from the first mark\n"
    "                    'NAME=VALUE' of each trace (default resolution); at\n"
    "                    least 3 distinct values are needed, else exit 2\n"
    "  --label N         value of the next trace, in order (repeat)\n"
    "  --json            print sweep.json instead of the table: {verdict,\n"
    "                    param, reasons, criteria: [{name, kind, region, unit,\n"
    "                    values, slope, intercept, fitted_low, fitted_high,\n"
    "                    growth, threshold, verdict, explanation}], runs}\n"
    "\n"
    "Exit status: 0 PASS, 3 FAIL, 2 bad input or damaged trace.\n";

#define MAX_RUNS 64
#define MAX_CRITERIA 33         /* leaked bytes and up to 32 regions */
#define LEAK_ALLOWANCE 65536.0

typedef struct run {
    const char *path;
    double resolution;
    tm_trace trace;
    tm_summary sum;
    uint64_t leaked_bytes, leaked_blocks;       /* the live heap at exit */
    uint64_t reported_bytes, reported_blocks;   /* after the built-in suppressions */
    uint32_t threads;
    tm_regions regions;
    tm_region_stats *stats;
    size_t nstats;
    tm_timeline tl;
} run;

typedef struct criterion {
    const char *kind;           /* "leaked_bytes" or "kept_per_invocation" */
    const char *region;         /* kept: the region's name (a run's string) */
    char name[192];
    double values[MAX_RUNS];
    bool has[MAX_RUNS];
    double slope, intercept, lo, hi, growth, threshold;
    bool pass;
    char explain[384];
} criterion;

typedef struct hooks {
    tm_regions *regions;
    tm_timeline *tl;
    double *resolution;
    const char *param;
} hooks;

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    hooks *h = arg;
    if (ev->kind == TM_EV_MARK && *h->resolution <= 0) {
        const char *s = tm_reader_string(t->reader, ev->label);
        size_t n = strlen(h->param);
        if (s && !strncmp(s, h->param, n) && s[n] == '=')
            *h->resolution = strtod(s + n + 1, NULL);
    }
    return tm_regions_event(h->regions, ev, freed) || tm_timeline_event(h->tl, t, ev);
}

static int by_resolution(const void *a, const void *b)
{
    const run *x = a, *y = b;
    return (x->resolution > y->resolution) - (x->resolution < y->resolution);
}

static const char *name_of(run *r, uint32_t id)
{
    const char *s = tm_reader_string(r->trace.reader, id);
    return s ? s : "?";
}

static const tm_region_stats *region_in(run *r, const char *name)
{
    for (size_t k = 0; k < r->nstats; k++)
        if (!strcmp(name_of(r, r->stats[k].name), name))
            return &r->stats[k];
    return NULL;
}

/* Least squares line through the runs that have a value. */
static void fit(criterion *c, const run *runs, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
    for (int i = 0; i < n; i++) {
        if (!c->has[i])
            continue;
        double x = runs[i].resolution, y = c->values[i];
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        k++;
    }
    double den = k * sxx - sx * sx;
    c->slope = k >= 2 && den > 0 ? (k * sxy - sx * sy) / den : 0.0;
    c->intercept = k > 0 ? (sy - c->slope * sx) / k : 0.0;
    c->lo = c->intercept + c->slope * runs[0].resolution;
    c->hi = c->intercept + c->slope * runs[n - 1].resolution;
    c->growth = c->hi - c->lo;
}

static int judge(criterion *crit, run *runs, int n, const char *param)
{
    int nc = 0;
    criterion *c = &crit[nc++];
    memset(c, 0, sizeof *c);
    c->kind = "leaked_bytes";
    snprintf(c->name, sizeof c->name, "leaked_bytes");
    for (int i = 0; i < n; i++) {
        c->values[i] = (double)runs[i].reported_bytes;
        c->has[i] = true;
    }
    fit(c, runs, n);
    double tenth = (double)runs[0].reported_bytes / 10;
    c->threshold = tenth > LEAK_ALLOWANCE ? tenth : LEAK_ALLOWANCE;
    c->pass = c->growth <= c->threshold;
    char a[32], b[32];
    snprintf(c->explain, sizeof c->explain,
             "leaked bytes at exit after suppressions: fitted growth %s%s from %s=%g to %g "
             "(threshold %s)",
             c->growth < 0 ? "-" : "+",
             tm_human_bytes((uint64_t)(c->growth < 0 ? -c->growth : c->growth), a), param,
             runs[0].resolution, runs[n - 1].resolution, tm_human_bytes((uint64_t)c->threshold, b));

    /* One kept criterion per region name invoked often enough somewhere. */
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < runs[i].nstats && nc < MAX_CRITERIA; k++) {
            const tm_region_stats *s = &runs[i].stats[k];
            const char *name = name_of(&runs[i], s->name);
            if (s->invocations < 3)
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
                     name, c->lo, param, runs[0].resolution, c->hi, runs[n - 1].resolution,
                     c->threshold, c->pass ? "" : ": memory kept call after call");
        }
    }
    return nc;
}

static void write_json(FILE *out, run *runs, int n, bool pass, const criterion *crit, int nc,
                       const char *param)
{
    tm_json j;
    tm_json_report(&j, out);
    tm_json_kstr(&j, "verdict", pass ? "PASS" : "FAIL");
    tm_json_kstr(&j, "param", param);
    tm_json_key(&j, "reasons");
    tm_json_array(&j);
    for (int i = 0; i < nc; i++)
        if (!crit[i].pass)
            tm_json_str(&j, crit[i].explain);
    tm_json_array_end(&j);
    tm_json_key(&j, "criteria");
    tm_json_array(&j);
    for (int i = 0; i < nc; i++) {
        const criterion *c = &crit[i];
        tm_json_object(&j);
        tm_json_kstr(&j, "name", c->name);
        tm_json_kstr(&j, "kind", c->kind);
        tm_json_kstr(&j, "region", c->region);
        tm_json_kstr(&j, "unit", c->region ? "bytes per invocation" : "bytes");
        tm_json_key(&j, "values");
        tm_json_array(&j);
        for (int r = 0; r < n; r++) {
            if (c->has[r])
                tm_json_double(&j, c->values[r]);
            else
                tm_json_null(&j);
        }
        tm_json_array_end(&j);
        tm_json_kdouble(&j, "slope", c->slope);
        tm_json_kdouble(&j, "intercept", c->intercept);
        tm_json_kdouble(&j, "fitted_low", c->lo);
        tm_json_kdouble(&j, "fitted_high", c->hi);
        tm_json_kdouble(&j, "growth", c->growth);
        tm_json_kdouble(&j, "threshold", c->threshold);
        tm_json_kstr(&j, "verdict", c->pass ? "PASS" : "FAIL");
        tm_json_kstr(&j, "explanation", c->explain);
        tm_json_object_end(&j);
    }
    tm_json_array_end(&j);
    tm_json_key(&j, "runs");
    tm_json_array(&j);
    for (int i = 0; i < n; i++) {
        run *r = &runs[i];
        tm_json_object(&j);
        tm_json_kstr(&j, "trace", r->path);
        tm_json_kdouble(&j, "resolution", r->resolution);
        tm_json_kdouble(&j, "duration", tm_seconds(r->sum.last_time_ns));
        tm_json_ku64(&j, "alloc_calls", r->sum.alloc_calls);
        tm_json_ku64(&j, "peak_bytes", r->sum.peak_bytes);
        tm_json_ku64(&j, "leaked_bytes", r->leaked_bytes);
        tm_json_ku64(&j, "leaked_blocks", r->leaked_blocks);
        tm_json_ku64(&j, "reported_leaked_bytes", r->reported_bytes);
        tm_json_ku64(&j, "reported_leaked_blocks", r->reported_blocks);
        tm_json_ku64(&j, "rss_peak_bytes", r->sum.rss_peak_bytes);
        tm_json_key(&j, "regions");
        tm_json_array(&j);
        for (size_t k = 0; k < r->nstats; k++) {
            const tm_region_stats *s = &r->stats[k];
            tm_json_object(&j);
            tm_json_kstr(&j, "name", name_of(r, s->name));
            tm_json_ku64(&j, "invocations", s->invocations);
            tm_json_kdouble(&j, "allocs_mean", tm_stat_mean(&s->allocs));
            tm_json_kdouble(&j, "net_bytes_mean", tm_stat_mean(&s->net));
            tm_json_ku64(&j, "invocations_net_positive", s->net_positive);
            tm_json_kbool(&j, "retains", tm_region_retains(s));
            tm_json_ku64(&j, "leaked_bytes", s->leaked_bytes);
            tm_json_kdouble(&j, "kept_bytes_mean", tm_stat_mean(&s->incl.kept));
            tm_json_kdouble(&j, "kept_per_invocation", tm_region_accumulation(s));
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_object_end(&j);
    }
    tm_json_array_end(&j);
    tm_json_object_end(&j);
    tm_json_end(&j);
}

/* gnuplot's tick list: a labelled tick at every swept value. */
static void xtics(FILE *f, const run *runs, int n)
{
    fprintf(f, "set xtics (");
    for (int i = 0; i < n; i++) {
        if (i && runs[i].resolution == runs[i - 1].resolution)
            continue;
        fprintf(f, "%s\"%g\" %g", i ? ", " : "", runs[i].resolution, runs[i].resolution);
    }
    fprintf(f, ")\nset mxtics default\n");
}

static int by_worst(const void *a, const void *b)
{
    const criterion *x = *(const criterion *const *)a, *y = *(const criterion *const *)b;
    double wx = x->lo > x->hi ? x->lo : x->hi, wy = y->lo > y->hi ? y->lo : y->hi;
    for (int i = 0; i < MAX_RUNS; i++) {
        if (x->has[i] && x->values[i] > wx)
            wx = x->values[i];
        if (y->has[i] && y->values[i] > wy)
            wy = y->values[i];
    }
    return (wx < wy) - (wx > wy);
}

#define PLOT_REGIONS 8

static int plot(const char *outdir, run *runs, int n, const criterion *crit, int nc,
                const char *param)
{
    char dir[4096];
    if (tm_plot_tmpdir(dir, sizeof dir) < 0)
        return 1;
    char path[4200], term[256];
    int rc = 1;
    snprintf(path, sizeof path, "%s/sweep.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        goto out;
    for (int i = 0; i < n; i++)
        fprintf(f, "%g %.6f %.6f %.6f\n", runs[i].resolution,
                (double)runs[i].sum.peak_bytes / 1048576.0,
                (double)runs[i].reported_bytes / 1048576.0,
                (double)runs[i].sum.rss_peak_bytes / 1048576.0);
    fclose(f);
    /* Kept per invocation: the regions with the largest values. */
    const criterion *kept[MAX_CRITERIA];
    int nk = 0;
    for (int i = 0; i < nc; i++)
        if (crit[i].region)
            kept[nk++] = &crit[i];
    qsort(kept, (size_t)nk, sizeof *kept, by_worst);
    if (nk > PLOT_REGIONS)
        nk = PLOT_REGIONS;
    for (int k = 0; k < nk; k++) {
        snprintf(path, sizeof path, "%s/kept%d.dat", dir, k);
        if (!(f = fopen(path, "w")))
            goto out;
        for (int i = 0; i < n; i++)
            if (kept[k]->has[i])
                fprintf(f, "%g %.6f\n", runs[i].resolution, kept[k]->values[i]);
        fclose(f);
    }
    for (int i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "r%d_", i);
        if (tm_timeline_write_data(&runs[i].tl, &runs[i].trace, dir, prefix) < 0)
            goto out;
    }
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    f = fopen(path, "w");
    if (!f)
        goto out;
    tm_gnuplot_terminal("x.png", 1600, 620, term, sizeof term);
    fprintf(f, "%s\nset output '%s/memory-vs-resolution.png'\n", term, outdir);
    fprintf(f, "set multiplot layout 1,2 title \"Memory against %s (%d runs)\"\n", param, n);
    fprintf(f, "set xlabel \"%s\"\nset logscale x\nset grid\nset xrange [%g:%g]\n", param,
            runs[0].resolution / 1.3, runs[n - 1].resolution * 1.3);
    xtics(f, runs, n);
    fprintf(f, "set title \"heap and RSS peak, leaked at exit (after suppressions)\"\n"
               "set ylabel \"MiB\"\nset yrange [0:*]\n"
               "set key below box opaque\nset bmargin 6\nset xlabel offset 0,0.3\n");
    fprintf(f, "plot '%s/sweep.dat' using 1:2 with linespoints lw 2 pt 7 title \"heap peak\", "
               "'' using 1:3 with linespoints lw 2 pt 5 title \"leaked at exit\", "
               "'' using 1:4 with linespoints lw 2 pt 9 title \"RSS peak\"\n", dir);
    fprintf(f, "set title \"kept bytes per invocation, by region (FAIL over %.0f)\"\n"
               "set ylabel \"bytes per invocation\"\nset yrange [0:*]\n", TM_KEPT_THRESHOLD);
    fprintf(f, "plot %g with lines dt 2 lc rgb \"#cc0000\" title \"threshold\"", TM_KEPT_THRESHOLD);
    for (int k = 0; k < nk; k++) {
        char title[96];
        tm_fit_name(kept[k]->region, title, sizeof title);
        for (char *p = title; *p; p++)
            if (*p == '"' || *p == '\\')
                *p = '\'';
        fprintf(f, ", '%s/kept%d.dat' using 1:2 with linespoints lw 2 pt %d title \"%s\" noenhanced",
                dir, k, 5 + 2 * k, title);
    }
    fprintf(f, "\nunset multiplot\n");
    int rows = n;
    tm_gnuplot_terminal("x.png", 1400, 260 * rows + 40, term, sizeof term);
    fprintf(f, "reset\n%s\nset output '%s/timelines.png'\n", term, outdir);
    fprintf(f, "set multiplot layout %d,1 title \"Heap and RSS over time, one run per "
               "%s\"\n", rows, param);
    for (int i = 0; i < n; i++) {
        char prefix[32], title[128];
        snprintf(prefix, sizeof prefix, "r%d_", i);
        snprintf(title, sizeof title, "%s = %g", param, runs[i].resolution);
        tm_timeline_panel(f, &runs[i].tl, &runs[i].trace, dir, prefix, title);
    }
    fprintf(f, "unset multiplot\n");
    fclose(f);
    rc = tm_gnuplot(path);
out:
    tm_plot_rmdir(dir);
    return rc;
}

int tm_cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"label", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"param", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *outdir = NULL, *param = "resolution";
    double labels[MAX_RUNS];
    int nlabels = 0, json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:l:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': outdir = optarg; break;
        case 'l': {
            char *end;
            double v = strtod(optarg, &end);
            if (*end || v <= 0 || nlabels == MAX_RUNS)
                return tm_usage_error("sweep", "--label wants a positive number, got '%s'",
                                      optarg);
            labels[nlabels++] = v;
            break;
        }
        case 'j': json = 1; break;
        case 'p': param = optarg; break;
        case 'h': fputs(sweep_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("sweep", argv);
        }
    }
    int n = argc - optind;
    if (n < 1 || n > MAX_RUNS)
        return tm_usage_error("sweep", "expected 1 to %d TRACEs", MAX_RUNS);
    if (!outdir)
        return tm_usage_error("sweep", "-o DIR is required");
    if (nlabels && nlabels != n)
        return tm_usage_error("sweep", "%d --label for %d traces", nlabels, n);
    int mk = tm_mkdirs(outdir);     /* and its missing parents */
    if (mk < 0) {
        tm_error("%s: %s", outdir, strerror(-mk));
        return TM_EXIT_FAIL;
    }

    run *runs = calloc((size_t)n, sizeof *runs);
    if (!runs)
        return TM_EXIT_FAIL;
    int rc = TM_EXIT_OK, opened = 0;
    for (int i = 0; i < n; i++, opened++) {
        run *r = &runs[i];
        r->path = argv[optind + i];
        r->resolution = nlabels ? labels[i] : 0;
        if ((rc = tm_trace_open(&r->trace, r->path)))
            goto done;
        tm_regions_init(&r->regions);
        tm_timeline_init(&r->tl, NULL);
        hooks h = {.regions = &r->regions, .tl = &r->tl, .resolution = &r->resolution,
                   .param = param};
        if (tm_trace_scan(&r->trace, feed, &h) || r->regions.oom || r->tl.oom) {
            rc = TM_EXIT_FAIL;
            opened++;
            goto done;
        }
        tm_regions_finish(&r->regions, &r->trace);
        tm_timeline_finish(&r->tl, &r->trace);
        r->nstats = tm_regions_sorted(&r->regions, &r->trace, &r->stats);
        r->sum = r->trace.sum;
        r->leaked_bytes = tm_heap_live_bytes(r->trace.heap);
        r->leaked_blocks = tm_heap_live_blocks(r->trace.heap);
        if (tm_leaks_after_defaults(&r->trace, NULL, &r->reported_bytes, &r->reported_blocks)) {
            tm_error("%s: out of memory", r->path);
            rc = TM_EXIT_FAIL;
            opened++;
            goto done;
        }
        if (tm_reader_state(r->trace.reader) != TM_READ_COMPLETE) {
            rc = TM_EXIT_BAD_INPUT;     /* closing the trace says why */
            opened++;
            goto done;
        }
        if (r->resolution <= 0) {
            tm_error("%s: no value of %s (a mark '%s=N' in the trace, or --label N)", r->path,
                     param, param);
            rc = TM_EXIT_BAD_INPUT;
            opened++;
            goto done;
        }
    }
    qsort(runs, (size_t)n, sizeof *runs, by_resolution);
    /* A trend needs three points: fewer distinct values prove nothing. */
    int distinct = 1;
    for (int i = 1; i < n; i++)
        distinct += runs[i].resolution != runs[i - 1].resolution;
    if (distinct < 3) {
        tm_error("sweep: %d distinct value%s of %s; at least 3 are needed", distinct,
                 distinct == 1 ? "" : "s", param);
        rc = TM_EXIT_BAD_INPUT;
        goto done;
    }

    criterion *crit = calloc(MAX_CRITERIA, sizeof *crit);
    if (!crit) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    int nc = judge(crit, runs, n, param);
    bool pass = true;
    for (int i = 0; i < nc; i++)
        pass &= crit[i].pass;

    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.json", outdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        tm_error("%s: %s", path, strerror(errno));
        free(crit);
        rc = TM_EXIT_FAIL;
        goto done;
    }
    write_json(f, runs, n, pass, crit, nc, param);
    fclose(f);
    if (plot(outdir, runs, n, crit, nc, param)) {
        free(crit);
        rc = TM_EXIT_FAIL;
        goto done;
    }
    if (json) {
        write_json(stdout, runs, n, pass, crit, nc, param);
    } else {
        char a[32], b[32], d[32];
        printf("%10s %10s %12s %12s %12s  %s\n", param, "duration", "heap peak",
               "leaked", "RSS peak", "regions (invocations, kept bytes/inv)");
        for (int i = 0; i < n; i++) {
            run *r = &runs[i];
            printf("%10g %9.2fs %12s %12s %12s ", r->resolution,
                   tm_seconds(r->sum.last_time_ns), tm_human_bytes(r->sum.peak_bytes, a),
                   tm_human_bytes(r->reported_bytes, b), tm_human_bytes(r->sum.rss_peak_bytes, d));
            for (size_t k = 0; k < r->nstats && k < 3; k++)
                printf(" %s (%" PRIu64 ", %.1f)", name_of(r, r->stats[k].name),
                       r->stats[k].invocations, tm_region_accumulation(&r->stats[k]));
            printf("\n");
        }
        printf("\nplots: %s/memory-vs-resolution.png %s/timelines.png; data: %s/sweep.json\n",
               outdir, outdir, outdir);
        printf("criteria (a line fitted over all %d runs):\n", n);
        for (int i = 0; i < nc; i++)
            printf("  %s  %s\n", crit[i].pass ? "PASS" : "FAIL", crit[i].explain);
        printf("verdict: %s\n", pass ? "PASS" : "FAIL");
        for (int i = 0; i < n; i++) {
            const char *note = tm_python_allocator_note(&runs[i].trace);
            if (note) { /* one line for the sweep, not one per run */
                printf("%s\n", note);
                break;
            }
        }
    }
    free(crit);
    if (!pass)
        rc = TM_EXIT_FOUND;
done:
    for (int i = 0; i < opened && i < n; i++) {
        free(runs[i].stats);
        tm_regions_free(&runs[i].regions);
        tm_timeline_free(&runs[i].tl);
        tm_trace_close(&runs[i].trace);
    }
    free(runs);
    return rc;
}
