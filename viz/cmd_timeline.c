/* cmd_timeline.c — `tidemark timeline TRACE -o FILE.png|svg`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "timeline.h"

static const char timeline_help[] =
    "usage: tidemark timeline TRACE -o FILE.png|FILE.svg [--region NAME] [--title TEXT]\n"
    "                         [--keep DIR] [--json]\n"
    "\n"
    "Plots heap bytes in use (traced allocations), anonymous maps (mmap'd\n"
    "memory, when the program mapped any) and RSS over time with gnuplot:\n"
    "shaded bands for top-level regions (or for NAME with --region), one lane\n"
    "per thread that ran regions, dashed lines for marks, the heap peak\n"
    "annotated, the legend right of the plot.  RSS moves to its own right axis\n"
    "when its peak is over 4 times the heap (or maps) peak.  Long traces are downsampled\n"
    "(at most 4000 points per curve, the maximum of each interval kept).\n"
    "\n"
    "  -o, --output FILE  .png or .svg (required); missing folders are created\n"
    "  --keep DIR         keep the data files and plot.gp in DIR (created), to\n"
    "                     edit the plot and redraw it with 'gnuplot DIR/plot.gp'\n"
    "  --region NAME      bands for this region instead of the top-level ones\n"
    "  --title TEXT       plot title (default: the trace file name)\n"
    "  --json             print what was plotted: output, points, rss_points,\n"
    "                     maps_points, maps_peak_bytes,\n"
    "                     bands, lanes, marks, rss_axis (left|right), peak_bytes,\n"
    "                     peak_time, duration\n";

static const char *palette[] = {"#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1",
                                "#d9d9d9"};

/* Longest region name in the key; longer ones end in "..." (the full name
 * is in --json's regions). */
#define TM_KEY_NAME_MAX 40

/* RSS gets its own (right) axis when the heap would be a flat line at the
 * bottom of a shared one: an RSS peak over 4 times the heap peak. */
static uint64_t series_max(const tm_series *s)
{
    uint64_t m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].value > m)
            m = s->v[i].value;
    return m;
}

/* The left axis holds the heap and the anonymous maps. */
static uint64_t left_max(const tm_timeline *tl)
{
    return tl->peak_bytes > tl->maps_peak_bytes ? tl->peak_bytes : tl->maps_peak_bytes;
}

bool tm_timeline_rss_own_axis(const tm_timeline *tl)
{
    return tl->rss.n && series_max(&tl->rss) > 4 * left_max(tl);
}

static void panel_axes(FILE *f, const tm_timeline *tl, double dur, const char *title)
{
    fprintf(f, "set title \"%s\"\nset xlabel \"time (s)\"\n", title);
    fprintf(f, "set xrange [0:%.6f]\nset yrange [0:*]\nset grid\n", dur);
    /* Right of the plotted area, the key never hides a curve, a band or a
     * mark's label. */
    fprintf(f, "set key outside right top vertical\n");
    if (tm_timeline_rss_own_axis(tl))
        fprintf(f, "set ylabel \"%s MiB\"\nset y2label \"RSS MiB\"\nset y2range [0:*]\n"
                   "set y2tics\nset ytics nomirror\n", tl->maps.n ? "heap, maps" : "heap");
    else
        fprintf(f, "set ylabel \"MiB\"\nunset y2label\nunset y2tics\nset ytics mirror\n");
}

/* Region bands, one horizontal lane per thread that ran regions, so one
 * thread's band never hides another's.  Returns the colours' names. */
static int panel_bands(FILE *f, const tm_timeline *tl, tm_trace *t, double dur, uint32_t *names)
{
    int nnames = 0;
    uint32_t *lane = calloc(tl->nbands ? tl->nbands : 1, sizeof *lane);
    size_t nlanes = lane ? tm_timeline_lanes(tl, lane) : 1;
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
        double y0 = lane ? (double)lane[i] / (double)nlanes : 0;
        double y1 = lane ? (double)(lane[i] + 1) / (double)nlanes : 1;
        fprintf(f, "set object rect from %.6f, graph %.4f to %.6f, graph %.4f fc rgb \"%s\" "
                   "fs solid 0.6 noborder behind\n", x0, y0, x1, y1, palette[c]);
    }
    /* Lanes are named after their thread when there is more than one. */
    for (size_t l = 0; lane && nlanes > 1 && l < nlanes; l++) {
        size_t i = 0;
        while (i < tl->nbands && lane[i] != l)
            i++;
        if (i < tl->nbands)
            fprintf(f, "set label %zu \"thread %u\" at graph 0.005, graph %.4f left "
                       "font \",8\" tc rgb \"#333333\" front\n", 2000 + l,
                    tm_reader_thread_tid(t->reader, tl->bands[i].thread),
                    ((double)l + 0.5) / (double)nlanes);
    }
    free(lane);
    return nnames;
}

void tm_timeline_panel(FILE *f, const tm_timeline *tl, tm_trace *t, const char *dir,
                       const char *prefix, const char *title)
{
    double dur = tm_seconds(t->sum.last_time_ns);
    if (dur <= 0)
        dur = 1e-3;
    fprintf(f, "unset object; unset arrow; unset label\n");
    panel_axes(f, tl, dur, title);
    uint32_t names[6] = {0};
    int nnames = panel_bands(f, tl, t, dur, names);
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
    if (tl->maps.n)
        fprintf(f, ", '%s/%smaps.dat' using 1:2 with steps lw 2 lc rgb \"#2ca02c\" "
                   "title \"anonymous maps\"", dir, prefix);
    if (tl->rss.n)
        fprintf(f, ", '%s/%srss.dat' using 1:2%s with lines lw 1.5 lc rgb \"#d62728\" "
                   "title \"RSS%s\"", dir, prefix,
                tm_timeline_rss_own_axis(tl) ? " axes x1y2" : "",
                tm_timeline_rss_own_axis(tl) ? " (right axis)" : "");
    for (int c = 0; c < nnames; c++) {
        const char *n = tm_reader_string(t->reader, names[c]);
        /* The key is beside the plot: a long name would squeeze it. */
        char name[TM_KEY_NAME_MAX + 1], label[TM_KEY_NAME_MAX + 16];
        snprintf(label, sizeof label, "region %s", tm_fit_name(n ? n : "?", name, sizeof name));
        for (char *p = label; *p; p++)
            if (*p == '"' || *p == '\\')
                *p = '_';
        fprintf(f, ", NaN with boxes fs solid 0.6 lc rgb \"%s\" title \"%s\"", palette[c],
                label);
    }
    fprintf(f, "\n");
}

/* The names of the regions drawn, in full, once each. */
static void json_band_names(tm_json *j, const tm_timeline *tl, tm_trace *t)
{
    tm_json_key(j, "regions");
    tm_json_array(j);
    for (size_t i = 0; i < tl->nbands; i++) {
        size_t k = 0;
        while (k < i && tl->bands[k].name != tl->bands[i].name)
            k++;
        if (k == i) {
            const char *n = tm_reader_string(t->reader, tl->bands[i].name);
            tm_json_str(j, n ? n : "?");
        }
    }
    tm_json_array_end(j);
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
        {"keep", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *out = NULL, *region = NULL, *title = NULL, *keep = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:r:t:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r': region = optarg; break;
        case 't': title = optarg; break;
        case 'j': json = 1; break;
        case 'k': keep = optarg; break;
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
    if (keep) {
        int mk = tm_mkdirs(keep);
        if (mk < 0) {
            tm_error("cannot create %s: %s", keep, strerror(-mk));
            rc = TM_EXIT_FAIL;
            goto done;
        }
        snprintf(dir, sizeof dir, "%s", keep);
    } else if (tm_plot_tmpdir(dir, sizeof dir) < 0) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    if (tm_timeline_write_data(&tl, &t, dir, "") < 0) {
        tm_error("cannot write the plot data in %s: %s", dir, strerror(errno));
        rc = TM_EXIT_FAIL;
        goto done;
    }
    char script[4200];
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    FILE *f = fopen(script, "w");
    if (!f) {
        tm_error("cannot write %s: %s", script, strerror(errno));
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
        tm_json_ku64(&j, "maps_points", tl.maps.n);
        tm_json_ku64(&j, "maps_peak_bytes", tl.maps_peak_bytes);
        tm_json_ku64(&j, "bands", tl.nbands);
        tm_json_ku64(&j, "lanes", tm_timeline_lanes(&tl, NULL));
        tm_json_ku64(&j, "marks", tl.nmarks);
        tm_json_kstr(&j, "rss_axis", tm_timeline_rss_own_axis(&tl) ? "right" : "left");
        json_band_names(&j, &tl, &t);
        tm_json_ku64(&j, "peak_bytes", tl.peak_bytes);
        tm_json_kdouble(&j, "peak_time", tm_seconds(tl.peak_ns));
        tm_json_kdouble(&j, "duration", tm_seconds(t.sum.last_time_ns));
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        printf("timeline written to %s\n", out);
    }
done:
    if (dir[0] && !keep)
        tm_plot_rmdir(dir);
    tm_timeline_free(&tl);
    int crc = tm_trace_close(&t);
    return rc ? rc : crc;
}
