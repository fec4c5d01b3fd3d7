/* cmd_timeline.c — `tidemark timeline TRACE -o FILE.png|svg`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "timeline.h"

static const char timeline_help[] =
    "usage: tidemark timeline TRACE -o FILE.png|FILE.svg [--region NAME] [--title TEXT]\n"
    "                         [--json]\n"
    "\n"
    "Plots heap bytes in use (traced allocations) and RSS over time with gnuplot:\n"
    "shaded bands for top-level regions (or for NAME with --region), dashed\n"
    "lines for marks, the heap peak annotated.  Long traces are downsampled\n"
    "(at most 4000 points per curve, the maximum of each interval kept).\n"
    "\n"
    "  -o, --output FILE  .png or .svg (required)\n"
    "  --region NAME      bands for this region instead of the top-level ones\n"
    "  --title TEXT       plot title (default: the trace file name)\n"
    "  --json             print what was plotted: output, points, bands, marks,\n"
    "                     peak_bytes, peak_time, duration\n";

static const char *palette[] = {"#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1",
                                "#d9d9d9"};

void tm_timeline_panel(FILE *f, const tm_timeline *tl, tm_trace *t, const char *dir,
                       const char *prefix, const char *title)
{
    double dur = tm_seconds(t->sum.last_time_ns);
    if (dur <= 0)
        dur = 1e-3;
    fprintf(f, "unset object; unset arrow; unset label\n");
    fprintf(f, "set title \"%s\"\nset xlabel \"time (s)\"\nset ylabel \"MiB\"\n", title);
    fprintf(f, "set xrange [0:%.6f]\nset yrange [0:*]\nset grid\nset key top left opaque\n", dur);
    /* One colour per band name, in order of appearance. */
    uint32_t names[6] = {0};
    int nnames = 0;
    for (size_t i = 0; i < tl->nbands; i++) {
        int c = 0;
        while (c < nnames && names[c] != tl->bands[i].name)
            c++;
        if (c == nnames && nnames < 6)
            names[nnames++] = tl->bands[i].name;
        c = c % 6;
        double x0 = tm_seconds(tl->bands[i].start_ns), x1 = tm_seconds(tl->bands[i].end_ns);
        if (x1 <= x0)
            x1 = x0 + dur / 2000;
        fprintf(f, "set object rect from %.6f, graph 0 to %.6f, graph 1 fc rgb \"%s\" "
                   "fs solid 0.6 noborder behind\n", x0, x1, palette[c]);
    }
    for (size_t i = 0; i < tl->nmarks; i++) {
        double x = tm_seconds(tl->marks[i].t_ns);
        fprintf(f, "set arrow from %.6f, graph 0 to %.6f, graph 1 nohead lc rgb \"#777777\" "
                   "dt 2\n", x, x);
        if (tl->nmarks <= 40)
            fprintf(f, "set label %zu \"%s\" at %.6f, graph 0.97 rotate by 90 right "
                       "font \",8\" tc rgb \"#555555\" offset -0.6,0\n", i + 1,
                    tl->marks[i].text, x);
    }
    char peak[32];
    /* Near the right edge the label goes to the left of the point. */
    int left = tm_seconds(tl->peak_ns) > 0.8 * dur;
    fprintf(f, "set label 1000 \"peak %s\" at %.6f, %.6f %s point pt 7 ps 1 "
               "lc rgb \"#1f4e79\" offset %s,0.5 front\n", tm_human_bytes(tl->peak_bytes, peak),
            tm_seconds(tl->peak_ns), (double)tl->peak_bytes / 1048576.0,
            left ? "right" : "left", left ? "-1" : "1");
    fprintf(f, "plot '%s/%sheap.dat' using 1:2 with steps lw 2 lc rgb \"#1f77b4\" "
               "title \"heap in use (traced)\"", dir, prefix);
    if (tl->rss.n)
        fprintf(f, ", '%s/%srss.dat' using 1:2 with lines lw 1.5 lc rgb \"#d62728\" "
                   "title \"RSS\"", dir, prefix);
    for (int c = 0; c < nnames; c++) {
        const char *n = tm_reader_string(t->reader, names[c]);
        char label[64];
        snprintf(label, sizeof label, "region %s", n ? n : "?");
        for (char *p = label; *p; p++)
            if (*p == '"' || *p == '\\')
                *p = '_';
        fprintf(f, ", NaN with boxes fs solid 0.6 lc rgb \"%s\" title \"%s\"", palette[c],
                label);
    }
    fprintf(f, "\n");
}

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    (void)freed;
    return tm_timeline_event(arg, t, ev);
}

int tm_cmd_timeline(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"region", required_argument, NULL, 'r'},
        {"title", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *out = NULL, *region = NULL, *title = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:r:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r': region = optarg; break;
        case 't': title = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(timeline_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("timeline", argv);
        }
    }
    if (argc - optind != 1)
        return tm_usage_error("timeline", "expected one TRACE");
    char term[256];
    if (!out)
        return tm_usage_error("timeline", "-o FILE.png or FILE.svg is required");
    if (!tm_gnuplot_terminal(out, 1400, 600, term, sizeof term))
        return tm_usage_error("timeline", "output must end in .png or .svg: %s", out);

    tm_trace t;
    int rc = tm_trace_open(&t, argv[optind]);
    if (rc)
        return rc;
    /* A plot that cannot be written is said before the trace is scanned;
     * missing folders of the output path are created. */
    int mk = tm_mkdirs_for(out);
    FILE *probe = mk < 0 ? NULL : fopen(out, "a");
    if (!probe) {
        tm_error("cannot write %s: %s", out, strerror(mk < 0 ? -mk : errno));
        tm_trace_discard(&t);
        return TM_EXIT_FAIL;
    }
    fclose(probe);

    tm_timeline tl;
    tm_timeline_init(&tl, region);
    char dir[4096] = "";
    if (tm_trace_scan(&t, feed, &tl) || tl.oom) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    if (region && !tm_trace_has_region(&t, region)) {
        tm_error("%s: no region named '%s' in the trace", t.path, region);
        rc = TM_EXIT_BAD_INPUT;
        goto done;
    }
    tm_timeline_finish(&tl, &t);
    if (tm_plot_tmpdir(dir, sizeof dir) < 0 || tm_timeline_write_data(&tl, &t, dir, "") < 0) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    char script[4200];
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    FILE *f = fopen(script, "w");
    if (!f) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    char ttl[512];
    const char *base = strrchr(t.path, '/');
    snprintf(ttl, sizeof ttl, "%s", title ? title : base ? base + 1 : t.path);
    for (char *p = ttl; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '_';
    fprintf(f, "%s\nset output '%s'\n", term, out);
    tm_timeline_panel(f, &tl, &t, dir, "", ttl);
    fclose(f);
    if (tm_gnuplot(script)) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    if (json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_kstr(&j, "output", out);
        tm_json_ku64(&j, "points", tl.heap.n);
        tm_json_ku64(&j, "rss_points", tl.rss.n);
        tm_json_ku64(&j, "bands", tl.nbands);
        tm_json_ku64(&j, "marks", tl.nmarks);
        tm_json_ku64(&j, "peak_bytes", tl.peak_bytes);
        tm_json_kdouble(&j, "peak_time", tm_seconds(tl.peak_ns));
        tm_json_kdouble(&j, "duration", tm_seconds(t.sum.last_time_ns));
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        printf("timeline written to %s\n", out);
    }
done:
    if (dir[0])
        tm_plot_rmdir(dir);
    tm_timeline_free(&tl);
    int crc = tm_trace_close(&t);
    return rc ? rc : crc;
}
