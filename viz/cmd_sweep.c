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
#include "timeline.h"

static const char sweep_help[] =
    "usage: tidemark sweep TRACE... -o DIR [--param NAME] [--label N]... [--json]\n"
    "\n"
    "For traces of one program at different resolutions (read from the first\n"
    "mark 'resolution=N' of each trace, or given in order with --label),\n"
    "writes DIR/memory-vs-resolution.png (peak heap, leaked and peak RSS\n"
    "against resolution, log x), DIR/timelines.png (one panel per run) and\n"
    "DIR/sweep.json, prints a table and the verdict.\n"
    "\n"
    "verdict: FAIL when leaked bytes grow with resolution (more than\n"
    "max(64 KiB, 10%) from the smallest to the largest), or when a region keeps\n"
    "memory in most of its invocations (median net bytes per invocation > 0);\n"
    "else PASS.\n"
    "\n"
    "  -o, --output DIR  where the plots and sweep.json go (created)\n"
    "  --param NAME      the swept parameter, read from the first mark\n"
    "                    'NAME=VALUE' of each trace (default resolution); at\n"
    "                    least 3 distinct values are needed, else exit 2\n"
    "  --label N         resolution of the next trace, in order (repeat)\n"
    "  --json            print sweep.json instead of the table\n"
    "\n"
    "Exit status: 0 PASS, 3 FAIL, 2 bad input or damaged trace.\n";

#define MAX_RUNS 64

typedef struct run {
    const char *path;
    double resolution;
    tm_trace trace;
    tm_summary sum;
    uint64_t leaked_bytes, leaked_blocks;
    uint32_t threads;
    tm_regions regions;
    tm_region_stats *stats;
    size_t nstats;
    tm_timeline tl;
} run;

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

static void write_json(FILE *out, run *runs, int n, bool pass, char reasons[][256],
                       int nreasons)
{
    tm_json j;
    tm_json_report(&j, out);
    tm_json_kstr(&j, "verdict", pass ? "PASS" : "FAIL");
    tm_json_key(&j, "reasons");
    tm_json_array(&j);
    for (int i = 0; i < nreasons; i++)
        tm_json_str(&j, reasons[i]);
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
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_object_end(&j);
    }
    tm_json_array_end(&j);
    tm_json_object_end(&j);
    tm_json_end(&j);
}

static int plot(const char *outdir, run *runs, int n)
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
                (double)runs[i].leaked_bytes / 1048576.0,
                (double)runs[i].sum.rss_peak_bytes / 1048576.0);
    fclose(f);
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
    tm_gnuplot_terminal("x.png", 1000, 600, term, sizeof term);
    fprintf(f, "%s\nset output '%s/memory-vs-resolution.png'\n", term, outdir);
    fprintf(f, "set title \"Memory against resolution (%d runs)\"\n"
               "set xlabel \"resolution N (grid points)\"\nset ylabel \"MiB\"\n"
               "set logscale x\nset grid\nset key center right box opaque\nset yrange [0:*]\n"
               "set xrange [%g:%g]\n", n, runs[0].resolution / 1.3,
            runs[n - 1].resolution * 1.3);
    fprintf(f, "plot '%s/sweep.dat' using 1:2 with linespoints lw 2 pt 7 title \"heap peak\", "
               "'' using 1:3 with linespoints lw 2 pt 5 title \"leaked at exit\", "
               "'' using 1:4 with linespoints lw 2 pt 9 title \"RSS peak\"\n", dir);
    int rows = n;
    tm_gnuplot_terminal("x.png", 1400, 260 * rows + 40, term, sizeof term);
    fprintf(f, "reset\n%s\nset output '%s/timelines.png'\n", term, outdir);
    fprintf(f, "set multiplot layout %d,1 title \"Heap and RSS over time, one run per "
               "resolution\"\n", rows);
    for (int i = 0; i < n; i++) {
        char prefix[32], title[128];
        snprintf(prefix, sizeof prefix, "r%d_", i);
        snprintf(title, sizeof title, "N = %g", runs[i].resolution);
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
    if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
        tm_error("%s: %s", outdir, strerror(errno));
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

    char reasons[16][256];
    int nreasons = 0;
    const run *lo = &runs[0], *hi = &runs[n - 1];
    uint64_t allowance = lo->leaked_bytes / 10 > 65536 ? lo->leaked_bytes / 10 : 65536;
    if (n > 1 && hi->leaked_bytes > lo->leaked_bytes + allowance) {
        char a[32], b[32];
        snprintf(reasons[nreasons++], sizeof reasons[0],
                 "leaked bytes grow with resolution: %s at N=%g, %s at N=%g",
                 tm_human_bytes(lo->leaked_bytes, a), lo->resolution,
                 tm_human_bytes(hi->leaked_bytes, b), hi->resolution);
    }
    for (int i = 0; i < n && nreasons < 16; i++) {
        for (size_t k = 0; k < runs[i].nstats && nreasons < 16; k++) {
            const tm_region_stats *s = &runs[i].stats[k];
            if (tm_region_retains(s))
                snprintf(reasons[nreasons++], sizeof reasons[0],
                         "region %s keeps memory in %.0f%% of its %" PRIu64
                         " invocations at N=%g (mean net %+.0f bytes per invocation)",
                         name_of(&runs[i], s->name),
                         100.0 * (double)s->net_positive / (double)s->invocations,
                         s->invocations, runs[i].resolution, tm_stat_mean(&s->net));
        }
    }
    bool pass = nreasons == 0;

    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.json", outdir);
    FILE *f = fopen(path, "w");
    if (!f) {
        tm_error("%s: %s", path, strerror(errno));
        rc = TM_EXIT_FAIL;
        goto done;
    }
    write_json(f, runs, n, pass, reasons, nreasons);
    fclose(f);
    if (plot(outdir, runs, n)) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    if (json) {
        write_json(stdout, runs, n, pass, reasons, nreasons);
    } else {
        char a[32], b[32], d[32];
        printf("%10s %10s %12s %12s %12s  %s\n", "resolution", "duration", "heap peak",
               "leaked", "RSS peak", "regions (invocations, mean net bytes/inv)");
        for (int i = 0; i < n; i++) {
            run *r = &runs[i];
            printf("%10g %9.2fs %12s %12s %12s ", r->resolution,
                   tm_seconds(r->sum.last_time_ns), tm_human_bytes(r->sum.peak_bytes, a),
                   tm_human_bytes(r->leaked_bytes, b), tm_human_bytes(r->sum.rss_peak_bytes, d));
            for (size_t k = 0; k < r->nstats && k < 3; k++)
                printf(" %s (%" PRIu64 ", %+.1f)", name_of(r, r->stats[k].name),
                       r->stats[k].invocations, tm_stat_mean(&r->stats[k].net));
            printf("\n");
        }
        printf("\nplots: %s/memory-vs-resolution.png %s/timelines.png; data: %s/sweep.json\n",
               outdir, outdir, outdir);
        printf("verdict: %s", pass ? "PASS" : "FAIL");
        if (pass)
            printf(" (leaked bytes do not grow with resolution; no region keeps memory "
                   "per invocation)\n");
        else
            printf("\n");
        for (int i = 0; i < nreasons; i++)
            printf("  - %s\n", reasons[i]);
    }
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
