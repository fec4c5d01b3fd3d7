/* cmd_report.c — `tidemark report TRACE... -o FILE.html`: one HTML file
 * that opens from disk with nothing fetched: summary and leak verdict, a
 * flame graph switchable between leaked, peak, allocated, kept per region
 * and a time range picked on the timeline, the regions table, and with
 * several traces the sweep page.
 *
 * The page's script and style (viz/html/) are compiled into the binary
 * (report_assets.c, generated at build time), and the data goes in as one
 * JSON element the script reads; report_data.c gathers it. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_data.h"

extern const char tm_report_js[];
extern const char tm_report_css[];

#define MAX_TRACES 64

static const char report_help[] =
    "usage: tidemark report TRACE... -o FILE.html [--param NAME] [--title TEXT]\n"
    "\n"
    "Writes one self-contained HTML file (no network: script, style and data\n"
    "are inside it) to open in a browser:\n"
    "  - summary of each trace and the leak verdict (built-in suppressions on,\n"
    "    as in 'tidemark leaks');\n"
    "  - a flame graph (icicle) of native and Python frames, of the memory\n"
    "    leaked at exit, live at the heap peak, allocated (bytes or count),\n"
    "    kept per invocation of a region, or allocated in a time range picked\n"
    "    on the timeline and alive at its end; click to zoom, search to\n"
    "    highlight;\n"
    "  - the timeline of heap and RSS with region bands and marks;\n"
    "  - the regions table (sortable; a click shows what the region kept);\n"
    "  - with several traces, the sweep page: the verdict, each criterion\n"
    "    against the parameter, one small timeline per trace.\n"
    "\n"
    "  -o, --output FILE  the HTML file (required; parent folders are created)\n"
    "  --param NAME       the swept parameter, read from the first mark\n"
    "                     'NAME=VALUE' of each trace (default resolution)\n"
    "  --title TEXT       the page's title\n"
    "\n"
    "Exit status: 0; 2 for bad usage, a trace that cannot be read, or a\n"
    "truncated/damaged trace (the report is still written and shows what\n"
    "could be read, with the error).\n";

/* --- the sweep: the verdict of `tidemark sweep`, by the same rules -------------------- */

static int by_param(const void *a, const void *b)
{
    const tm_report_trace *x = *(tm_report_trace *const *)a, *y = *(tm_report_trace *const *)b;
    return (x->param > y->param) - (x->param < y->param);
}

static void values_json(FILE *out, tm_report_trace **v, int n, double (*get)(tm_report_trace *))
{
    fputc('[', out);
    for (int i = 0; i < n; i++) {
        double x = get(v[i]);
        if (isfinite(x))
            fprintf(out, "%s%.9g", i ? "," : "", x);
        else
            fprintf(out, "%snull", i ? "," : "");
    }
    fputc(']', out);
}

/* Leaked as sweep counts it: every block live at exit. */
static double get_leaked(tm_report_trace *r) { return (double)tm_heap_live_bytes(r->t.heap); }
static double get_peak(tm_report_trace *r) { return (double)r->t.sum.peak_bytes; }
static double get_rss(tm_report_trace *r) { return (double)r->t.sum.rss_peak_bytes; }

/* The sweep object: runs in parameter order, criteria with their values,
 * the verdict and its reasons. */
static void sweep_json(FILE *out, tm_report_trace *traces, int n, const char *param)
{
    tm_report_trace *v[MAX_TRACES];
    for (int i = 0; i < n; i++)
        v[i] = &traces[i];
    qsort(v, (size_t)n, sizeof *v, by_param);
    int distinct = 0;
    for (int i = 0; i < n; i++)
        distinct += v[i]->param > 0 && (i == 0 || v[i]->param != v[i - 1]->param);
    fputs(",\"sweep\":{\"param\":", out);
    tm_report_str(out, param);
    fputs(",\"order\":[", out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%ld", i ? "," : "", (long)(v[i] - traces));
    fputs("],\"values\":", out);
    fputc('[', out);
    for (int i = 0; i < n; i++)
        if (v[i]->param > 0)
            fprintf(out, "%s%.9g", i ? "," : "", v[i]->param);
        else
            fprintf(out, "%snull", i ? "," : "");
    fputs("],\"peak_bytes\":", out);
    values_json(out, v, n, get_peak);
    fputs(",\"rss_peak_bytes\":", out);
    values_json(out, v, n, get_rss);
    if (distinct < 3 || v[0]->param <= 0) {
        fprintf(out, ",\"verdict\":null,\"reasons\":[\"%d distinct value%s of %s",
                distinct, distinct == 1 ? "" : "s", param);
        fputs(" (marks NAME=VALUE): a verdict needs at least 3\"],\"criteria\":[]}", out);
        return;
    }
    /* Leaked bytes must not grow: more than max(64 KiB, 10%) from the
     * smallest value to the largest fails (sweep's rule). */
    char reasons[16][256];
    int nreasons = 0;
    double lo = get_leaked(v[0]), hi = get_leaked(v[n - 1]);
    double allowance = lo / 10 > 65536 ? lo / 10 : 65536;
    bool leak_ok = !(n > 1 && hi > lo + allowance);
    if (!leak_ok) {
        char a[32], b[32];
        snprintf(reasons[nreasons++], sizeof reasons[0],
                 "leaked bytes grow with %s: %s at %g, %s at %g", param,
                 tm_human_bytes((uint64_t)lo, a), v[0]->param, tm_human_bytes((uint64_t)hi, b),
                 v[n - 1]->param);
    }
    fputs(",\"criteria\":[{\"name\":\"leaked bytes\",\"values\":", out);
    values_json(out, v, n, get_leaked);
    fprintf(out, ",\"threshold\":%.9g,\"verdict\":\"%s\"}", lo + allowance,
            leak_ok ? "PASS" : "FAIL");
    /* Per region: mean net bytes per invocation; fails where most
     * invocations keep memory. */
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i]->nstats; k++) {
            const char *name = tm_reader_string(v[i]->t.reader, v[i]->stats[k].name);
            bool seen = false;
            for (int p = 0; p < i && !seen; p++)
                for (size_t q = 0; q < v[p]->nstats && !seen; q++)
                    seen = tm_trace_region_is(&v[p]->t, v[p]->stats[q].name, name ? name : "");
            for (size_t q = 0; q < k && !seen; q++)
                seen = tm_trace_region_is(&v[i]->t, v[i]->stats[q].name, name ? name : "");
            if (seen || !name)
                continue;
            bool fail = false;
            fputs(",{\"name\":", out);
            char label[300];
            snprintf(label, sizeof label, "region %s: net bytes per invocation", name);
            tm_report_str(out, label);
            fputs(",\"values\":[", out);
            for (int p = 0; p < n; p++) {
                const tm_region_stats *s = NULL;
                for (size_t q = 0; q < v[p]->nstats && !s; q++)
                    if (tm_trace_region_is(&v[p]->t, v[p]->stats[q].name, name))
                        s = &v[p]->stats[q];
                if (s)
                    fprintf(out, "%s%.9g", p ? "," : "", tm_stat_mean(&s->net));
                else
                    fprintf(out, "%snull", p ? "," : "");
                if (s && tm_region_retains(s)) {
                    fail = true;
                    if (nreasons < 16)
                        snprintf(reasons[nreasons++], sizeof reasons[0],
                                 "region %s keeps memory in %.0f%% of its %" PRIu64
                                 " invocations at %s=%g",
                                 name, 100.0 * (double)s->net_positive / (double)s->invocations,
                                 s->invocations, param, v[p]->param);
                }
            }
            fprintf(out, "],\"threshold\":0,\"verdict\":\"%s\"}", fail ? "FAIL" : "PASS");
        }
    }
    fprintf(out, "],\"verdict\":\"%s\",\"reasons\":[", nreasons ? "FAIL" : "PASS");
    for (int i = 0; i < nreasons; i++) {
        fputs(i ? "," : "", out);
        tm_report_str(out, reasons[i]);
    }
    fputs("]}", out);
}

/* --- the page ------------------------------------------------------------------------ */

static int write_page(FILE *out, tm_report_trace *traces, int n, const char *param,
                      const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", out);
    for (const char *p = title; *p; p++) {
        if (*p == '<')
            fputs("&lt;", out);
        else if (*p == '&')
            fputs("&amp;", out);
        else
            fputc(*p, out);
    }
    fprintf(out, "</title>\n<style>\n%s</style>\n</head><body>\n"
                 "<div id=\"tm-errors\"></div><div id=\"app\">loading...</div>\n"
                 "<script type=\"application/json\" id=\"tm-data\">",
            tm_report_css);
    fputs("{\"schema_version\":1,\"tool\":\"tidemark " TM_VERSION "\",\"title\":", out);
    tm_report_str(out, title);
    fputs(",\"traces\":[", out);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        if (tm_report_trace_json(&traces[i], out))
            return TM_EXIT_FAIL;
    }
    fputc(']', out);
    if (n > 1)
        sweep_json(out, traces, n, param);
    fputs("}</script>\n<script>\n", out);
    fputs(tm_report_js, out);
    fputs("</script>\n</body></html>\n", out);
    return 0;
}

int tm_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"param", required_argument, NULL, 'p'},
        {"title", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *output = NULL, *param = "resolution", *title = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'p': param = optarg; break;
        case 't': title = optarg; break;
        case 'h': fputs(report_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("report", argv);
        }
    }
    int n = argc - optind;
    if (n < 1 || n > MAX_TRACES)
        return tm_usage_error("report", "expected 1 to %d TRACEs", MAX_TRACES);
    if (!output)
        return tm_usage_error("report", "-o FILE.html is required");
    if (!*param || strchr(param, '='))
        return tm_usage_error("report", "--param wants a name, got '%s'", param);

    tm_report_trace *traces = calloc((size_t)n, sizeof *traces);
    if (!traces)
        return TM_EXIT_FAIL;
    int rc = TM_EXIT_OK, loaded = 0;
    for (; loaded < n; loaded++) {
        if ((rc = tm_report_trace_load(&traces[loaded], argv[optind + loaded], param))) {
            loaded++;
            goto done;
        }
    }
    char deftitle[512];
    if (!title) {
        const char *base = strrchr(argv[optind], '/');
        snprintf(deftitle, sizeof deftitle, "tidemark report: %s%s", base ? base + 1 : argv[optind],
                 n > 1 ? " and more" : "");
        title = deftitle;
    }
    int e = tm_mkdirs_for(output);
    FILE *out = e < 0 ? NULL : fopen(output, "w");
    if (!out) {
        tm_error("%s: %s", output, strerror(e < 0 ? -e : errno));
        rc = TM_EXIT_FAIL;
        goto done;
    }
    rc = write_page(out, traces, n, param, title);
    if (fflush(out) || ferror(out)) {
        tm_error("%s: %s", output, strerror(errno));
        rc = TM_EXIT_FAIL;
    }
    fclose(out);
    if (!rc)
        printf("report: %s\n", output);
done:
    for (int i = 0; i < loaded; i++) {
        int crc = tm_report_trace_free(&traces[i]);
        if (!rc)
            rc = crc;
    }
    free(traces);
    return rc;
}
