/* cmd_report.c — `tidemark report TRACE... -o FILE.html`: one HTML file
 * that opens from disk with nothing fetched: summary and leak verdict, a
 * flame graph switchable between leaked, peak, allocated, kept per region
 * and a time range picked on the timeline, the regions table, and with
 * several traces the sweep page.
 *
 * The page's script and style (viz/html/) are compiled into the binary
 * (report_assets.c, generated at build time), and the data goes in as one
 * JSON element the script reads; report_scan.c gathers it, report_json.c
 * and report_sweep.c write it (report_data.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "report_data.h"
#include "report_tree.h"

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
    "    kept per invocation of a region (as 'tidemark kept --region'), or\n"
    "    allocated in a time range picked on the timeline and alive at its\n"
    "    end; click to zoom, search to highlight, hover for figures;\n"
    "  - the timeline of heap, RSS and anonymous maps with region bands and\n"
    "    marks;\n"
    "  - the regions table of 'tidemark regions' (sortable; a click shows\n"
    "    what the region kept);\n"
    "  - with several traces, the sweep page: the verdict of 'tidemark sweep'\n"
    "    by its rules, each criterion against the parameter, one small\n"
    "    timeline per trace.\n"
    "The page keeps its state in the URL (#view=kept&region=NAME).\n"
    "\n"
    "  -o, --output FILE  the HTML file (required; parent folders are created)\n"
    "  --param NAME       the swept parameter, read from the first mark\n"
    "                     'NAME=VALUE' of each trace (default resolution)\n"
    "  --title TEXT       the page's title\n"
    "\n"
    "Exit status: 0; 2 for bad usage, a trace that cannot be read, or a\n"
    "truncated/damaged trace (the report is still written and shows what\n"
    "could be read, with the error).\n";

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
    tm_rtree tree = {0};
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        if (tm_report_trace_json(&traces[i], &tree, out)) {
            tm_rtree_free(&tree);
            return TM_EXIT_FAIL;
        }
    }
    fputc(']', out);
    /* The tree after the traces: their views made its nodes. */
    fputs(",\"tree\":{", out);
    tm_rtree_json(&tree, out);
    fputc('}', out);
    tm_rtree_free(&tree);
    if (n > 1)
        tm_report_sweep_json(out, traces, n, param);
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
