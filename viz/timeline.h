/* timeline.h — heap and RSS over time, region bands and marks, collected in
 * bounded memory while a trace is scanned (buckets double their width when
 * there are too many), and rendered with gnuplot. */
#ifndef TM_TIMELINE_H
#define TM_TIMELINE_H

#include "cli.h"

typedef struct tm_point {
    uint64_t t_ns;
    uint64_t value;             /* the bucket's maximum */
} tm_point;

typedef struct tm_series {
    tm_point *v;
    size_t n, cap;
    uint64_t width_ns;          /* bucket width */
} tm_series;

typedef struct tm_band {
    uint64_t start_ns, end_ns;
    uint32_t name;
    uint32_t thread;            /* the reader's dense thread index: its lane */
} tm_band;

/* Longest label text kept; longer ones end in "..." (tm_fit_name). */
#define TM_LABEL_MAX 128

typedef struct tm_label {
    uint64_t t_ns;
    char text[TM_LABEL_MAX];
} tm_label;

/* The band a thread is building (each thread has its own lane). */
typedef struct tm_open_band {
    uint32_t name;              /* 0 = none */
    uint64_t start;
} tm_open_band;

typedef struct tm_timeline {
    tm_series heap, rss;
    tm_series maps;             /* anonymous maps mapped (tm_maps) */
    uint64_t maps_peak_bytes;
    tm_band *bands;
    size_t nbands, capbands;
    uint64_t band_gap_ns;       /* bands closer than this merge */
    tm_open_band *open;         /* by dense thread index */
    size_t nopen;
    const char *region;         /* only this region's bands, NULL = top level */
    tm_label *marks;
    size_t nmarks, capmarks;
    uint64_t peak_bytes, peak_ns;
    int oom;
} tm_timeline;

void tm_timeline_init(tm_timeline *tl, const char *region);
void tm_timeline_free(tm_timeline *tl);
int tm_timeline_event(tm_timeline *tl, tm_trace *t, const tm_event *ev);
/* Threads with at least one band: one lane each in the plot.  With `lane`,
 * fills lane[i] for the thread of band i (0 = the first thread seen). */
size_t tm_timeline_lanes(const tm_timeline *tl, uint32_t *lane);
void tm_timeline_finish(tm_timeline *tl, tm_trace *t);

/* Writes the data files for one timeline into dir with prefix; returns 0. */
int tm_timeline_write_data(const tm_timeline *tl, tm_trace *t, const char *dir,
                           const char *prefix);
/* Runs gnuplot on a script; returns 0 or prints one line and returns 1. */
int tm_gnuplot(const char *script_path);
/* The gnuplot terminal line for an output path (.png or .svg); NULL when
 * the extension is neither. */
const char *tm_gnuplot_terminal(const char *out, int width, int height, char *buf, size_t len);
/* A temporary directory for plot data; "" on failure. */
int tm_plot_tmpdir(char *buf, size_t len);
void tm_plot_rmdir(const char *dir);

int tm_cmd_timeline(int argc, char **argv);
int tm_cmd_sweep(int argc, char **argv);



/* Emits the gnuplot commands of one timeline panel (data written by
 * tm_timeline_write_data with the same dir and prefix). */
/* True when the panel puts RSS on its own right axis (far above the heap). */
bool tm_timeline_rss_own_axis(const tm_timeline *tl);
void tm_timeline_panel(FILE *f, const tm_timeline *tl, tm_trace *t, const char *dir,
                       const char *prefix, const char *title);
#endif /* TM_TIMELINE_H */
