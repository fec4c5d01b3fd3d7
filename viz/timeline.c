/* timeline.c — see timeline.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timeline.h"
#include "tm_vec.h"

#define MAX_POINTS 4000
#define MAX_BANDS 2000
#define MAX_MARKS 200

void tm_timeline_init(tm_timeline *tl, const char *region)
{
    memset(tl, 0, sizeof *tl);
    tl->heap.width_ns = tl->rss.width_ns = 1000000;   /* 1 ms, doubled as needed */
    tl->band_gap_ns = 1000000;
    tl->region = region;
}

void tm_timeline_free(tm_timeline *tl)
{
    free(tl->heap.v);
    free(tl->rss.v);
    free(tl->bands);
    free(tl->marks);
    memset(tl, 0, sizeof *tl);
}

/* Halves the number of buckets by merging neighbours. */
static void coarsen(tm_series *s)
{
    size_t k = 0;
    s->width_ns *= 2;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t b = s->v[i].t_ns / s->width_ns;
        if (k > 0 && s->v[k - 1].t_ns / s->width_ns == b) {
            if (s->v[i].value > s->v[k - 1].value)
                s->v[k - 1].value = s->v[i].value;
        } else {
            s->v[k++] = s->v[i];
        }
    }
    s->n = k;
}

static int series_add(tm_series *s, uint64_t t, uint64_t value)
{
    if (s->n && s->v[s->n - 1].t_ns / s->width_ns == t / s->width_ns) {
        if (value > s->v[s->n - 1].value)
            s->v[s->n - 1].value = value;
        return 0;
    }
    if (s->n == MAX_POINTS)
        coarsen(s);
    if (tm_vec_room(&s->v, &s->cap, s->n, sizeof *s->v, 256))
        return -ENOMEM;
    s->v[s->n++] = (tm_point){.t_ns = t, .value = value};
    return 0;
}

static void merge_bands(tm_timeline *tl)
{
    tl->band_gap_ns *= 2;
    size_t k = 0;
    for (size_t i = 0; i < tl->nbands; i++) {
        if (k > 0 && tl->bands[k - 1].name == tl->bands[i].name &&
            tl->bands[i].start_ns - tl->bands[k - 1].end_ns < tl->band_gap_ns)
            tl->bands[k - 1].end_ns = tl->bands[i].end_ns;
        else
            tl->bands[k++] = tl->bands[i];
    }
    tl->nbands = k;
}

static int add_band(tm_timeline *tl, uint32_t name, uint64_t start, uint64_t end)
{
    if (tl->nbands && tl->bands[tl->nbands - 1].name == name &&
        start - tl->bands[tl->nbands - 1].end_ns < tl->band_gap_ns) {
        tl->bands[tl->nbands - 1].end_ns = end;
        return 0;
    }
    while (tl->nbands >= MAX_BANDS)
        merge_bands(tl);
    if (tm_vec_room(&tl->bands, &tl->capbands, tl->nbands, sizeof *tl->bands, 64))
        return -ENOMEM;
    tl->bands[tl->nbands++] = (tm_band){.start_ns = start, .end_ns = end, .name = name};
    return 0;
}

static bool band_wanted(tm_timeline *tl, tm_trace *t, const tm_event *ev)
{
    if (tl->region)
        return tm_trace_region_is(t, ev->region, tl->region);
    return ev->depth == 1;
}

int tm_timeline_event(tm_timeline *tl, tm_trace *t, const tm_event *ev)
{
    int rc = 0;
    switch (ev->kind) {
    case TM_EV_ALLOC:
    case TM_EV_FREE:
    case TM_EV_REALLOC_FAIL: {
        uint64_t live = tm_heap_live_bytes(t->heap);
        rc = series_add(&tl->heap, ev->time_ns, live);
        if (live > tl->peak_bytes) {
            tl->peak_bytes = live;
            tl->peak_ns = ev->time_ns;
        }
        break;
    }
    case TM_EV_RSS:
        rc = series_add(&tl->rss, ev->time_ns, ev->size);
        break;
    case TM_EV_REGION_BEGIN:
        if (!tl->open_name && band_wanted(tl, t, ev)) {
            tl->open_name = ev->region;
            tl->open_start = ev->time_ns;
            tl->open_tid = ev->thread;
        }
        break;
    case TM_EV_REGION_END:
        if (tl->open_name == ev->region && tl->open_tid == ev->thread && band_wanted(tl, t, ev)) {
            rc = add_band(tl, ev->region, tl->open_start, ev->time_ns);
            tl->open_name = 0;
        }
        break;
    case TM_EV_MARK:
        if (tl->nmarks < MAX_MARKS) {
            if (tm_vec_room(&tl->marks, &tl->capmarks, tl->nmarks, sizeof *tl->marks, 16))
                return tl->oom = 1;
            tm_label *m = &tl->marks[tl->nmarks++];
            const char *s = tm_reader_string(t->reader, ev->label);
            m->t_ns = ev->time_ns;
            snprintf(m->text, sizeof m->text, "%s", s ? s : "?");
        }
        break;
    }
    if (rc)
        tl->oom = 1;
    return tl->oom;
}

void tm_timeline_finish(tm_timeline *tl, tm_trace *t)
{
    if (tl->open_name)
        add_band(tl, tl->open_name, tl->open_start, t->sum.last_time_ns);
    tl->open_name = 0;
}

/* gnuplot strings are double-quoted: keep labels printable and quote-free. */
static void clean_label(char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            *s = '_';
}

int tm_timeline_write_data(const tm_timeline *tl, tm_trace *t, const char *dir,
                           const char *prefix)
{
    char path[4096];
    static const char *names[] = {"heap", "rss"};
    const tm_series *series[] = {&tl->heap, &tl->rss};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s%s.dat", dir, prefix, names[k]);
        FILE *f = fopen(path, "w");
        if (!f)
            return -1;
        fprintf(f, "0 0\n");
        for (size_t i = 0; i < series[k]->n; i++)
            fprintf(f, "%.6f %.6f\n", tm_seconds(series[k]->v[i].t_ns),
                    (double)series[k]->v[i].value / 1048576.0);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/%sbands.dat", dir, prefix);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < tl->nbands; i++) {
        const char *n = tm_reader_string(t->reader, tl->bands[i].name);
        char label[64];
        snprintf(label, sizeof label, "%s", n ? n : "?");
        clean_label(label);
        fprintf(f, "%.6f %.6f \"%s\"\n", tm_seconds(tl->bands[i].start_ns),
                tm_seconds(tl->bands[i].end_ns), label);
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/%smarks.dat", dir, prefix);
    f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < tl->nmarks; i++) {
        char label[64];
        snprintf(label, sizeof label, "%s", tl->marks[i].text);
        clean_label(label);
        fprintf(f, "%.6f \"%s\"\n", tm_seconds(tl->marks[i].t_ns), label);
    }
    fclose(f);
    return 0;
}

const char *tm_gnuplot_terminal(const char *out, int width, int height, char *buf, size_t len)
{
    const char *dot = strrchr(out, '.');
    if (dot && !strcmp(dot, ".png"))
        snprintf(buf, len, "set terminal pngcairo size %d,%d font 'Sans,10' noenhanced",
                 width, height);
    else if (dot && !strcmp(dot, ".svg"))
        snprintf(buf, len, "set terminal svg size %d,%d font 'Sans,10' noenhanced dynamic",
                 width, height);
    else
        return NULL;
    return buf;
}

/* gnuplot's own words for the failure: the message of its
 * '"script" line N: message' line. */
static void gnuplot_reason(const char *log, char *out, size_t len)
{
    FILE *f = fopen(log, "r");
    char line[512];
    out[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *msg = strstr(line, "\" line ");
        if (msg && (msg = strchr(msg, ':')))
            snprintf(out, len, "%s", msg + 1 + (msg[1] == ' '));
    }
    if (f)
        fclose(f);
    if (!out[0])
        snprintf(out, len, "gnuplot reported an error");
}

int tm_gnuplot(const char *script)
{
    char log[4200];
    snprintf(log, sizeof log, "%s.log", script);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        tm_error("fork: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        /* gnuplot's chatter goes nowhere; its errors are summarized below. */
        FILE *devnull = freopen("/dev/null", "w", stdout);
        FILE *errlog = freopen(log, "w", stderr);
        (void)devnull;
        (void)errlog;
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        tm_error("gnuplot not found (apt-get install gnuplot-nox)");
        return 1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[512];
        gnuplot_reason(log, why, sizeof why);
        tm_error("gnuplot could not draw the plot: %s", why);
        return 1;
    }
    return 0;
}

int tm_plot_tmpdir(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "%s/tidemark-plot-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(buf)) {
        tm_error("cannot create a temporary directory: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void tm_plot_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}
