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
#define NO_THREAD UINT32_MAX    /* the reader's thread of RSS, END... events */

void tm_timeline_init(tm_timeline *tl, const char *region)
{
    memset(tl, 0, sizeof *tl);
    tl->heap.width_ns = tl->rss.width_ns = tl->maps.width_ns = 1000000; /* 1 ms, doubled */
    tl->band_gap_ns = 1000000;
    tl->region = region;
}

void tm_timeline_free(tm_timeline *tl)
{
    free(tl->heap.v);
    free(tl->rss.v);
    free(tl->maps.v);
    free(tl->bands);
    free(tl->marks);
    free(tl->open);
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

/* Bands looked back over for one to extend: neighbours in time of the
 * same region and thread, when several threads interleave theirs. */
#define BAND_LOOKBACK 64

static tm_band *band_to_extend(tm_band *v, size_t n, const tm_band *b, uint64_t gap)
{
    for (size_t k = n, seen = 0; k > 0 && seen < BAND_LOOKBACK; k--, seen++) {
        tm_band *o = &v[k - 1];
        if (o->name == b->name && o->thread == b->thread && b->start_ns >= o->end_ns &&
            b->start_ns - o->end_ns < gap)
            return o;
    }
    return NULL;
}

static void merge_bands(tm_timeline *tl)
{
    tl->band_gap_ns *= 2;
    size_t k = 0;
    for (size_t i = 0; i < tl->nbands; i++) {
        tm_band *o = band_to_extend(tl->bands, k, &tl->bands[i], tl->band_gap_ns);
        if (o)
            o->end_ns = tl->bands[i].end_ns > o->end_ns ? tl->bands[i].end_ns : o->end_ns;
        else
            tl->bands[k++] = tl->bands[i];
    }
    tl->nbands = k;
}

static int add_band(tm_timeline *tl, uint32_t name, uint32_t thread, uint64_t start,
                    uint64_t end)
{
    tm_band b = {.start_ns = start, .end_ns = end, .name = name, .thread = thread};
    tm_band *o = band_to_extend(tl->bands, tl->nbands, &b, tl->band_gap_ns);
    /* Merging doubles the gap each round: after some 64 rounds every band
     * of one name and thread is one band, so the loop ends. */
    for (int round = 0; !o && tl->nbands >= MAX_BANDS && round < 64; round++) {
        merge_bands(tl);
        o = band_to_extend(tl->bands, tl->nbands, &b, tl->band_gap_ns);
    }
    if (o) {
        o->end_ns = end;
        return 0;
    }
    if (tl->nbands >= MAX_BANDS)
        return 0;       /* more distinct (region, thread) pairs than bands */
    if (tm_vec_room(&tl->bands, &tl->capbands, tl->nbands, sizeof *tl->bands, 64))
        return -ENOMEM;
    tl->bands[tl->nbands++] = b;
    return 0;
}

static tm_open_band *open_band(tm_timeline *tl, uint32_t thread)
{
    if (thread == NO_THREAD)
        return NULL;
    if (thread >= tl->nopen) {
        size_t n = tl->nopen ? tl->nopen : 8;
        while (n <= thread)
            n *= 2;
        tm_open_band *v = realloc(tl->open, n * sizeof *v);
        if (!v)
            return NULL;
        memset(v + tl->nopen, 0, (n - tl->nopen) * sizeof *v);
        tl->open = v;
        tl->nopen = n;
    }
    return &tl->open[thread];
}

size_t tm_timeline_lanes(const tm_timeline *tl, uint32_t *lane)
{
    uint32_t seen[64];
    size_t nseen = 0, nlanes = 0;
    for (size_t i = 0; i < tl->nbands; i++) {
        size_t k = 0;
        while (k < nseen && seen[k] != tl->bands[i].thread)
            k++;
        if (k == nseen) {
            nlanes++;
            if (nseen < 64)
                seen[nseen++] = tl->bands[i].thread;
            else
                k = 63;     /* threads past 64 share the last lane */
        }
        if (lane)
            lane[i] = (uint32_t)k;
    }
    return nlanes < 64 ? nlanes : 64;
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
    case TM_EV_MMAP:
    case TM_EV_MUNMAP:
    case TM_EV_MREMAP: {
        uint64_t mapped = tm_maps_bytes(t->maps);
        rc = series_add(&tl->maps, ev->time_ns, mapped);
        if (mapped > tl->maps_peak_bytes)
            tl->maps_peak_bytes = mapped;
        break;
    }
    case TM_EV_REGION_BEGIN:
    case TM_EV_REGION_END: {
        if (!band_wanted(tl, t, ev))
            break;
        tm_open_band *o = open_band(tl, ev->thread);
        if (!o) {
            if (ev->thread != NO_THREAD)
                rc = -ENOMEM;
        } else if (ev->kind == TM_EV_REGION_BEGIN && !o->name) {
            *o = (tm_open_band){.name = ev->region, .start = ev->time_ns};
        } else if (ev->kind == TM_EV_REGION_END && o->name == ev->region) {
            rc = add_band(tl, ev->region, ev->thread, o->start, ev->time_ns);
            o->name = 0;
        }
        break;
    }
    case TM_EV_MARK:
        if (tl->nmarks < MAX_MARKS) {
            if (tm_vec_room(&tl->marks, &tl->capmarks, tl->nmarks, sizeof *tl->marks, 16))
                return tl->oom = 1;
            tm_label *m = &tl->marks[tl->nmarks++];
            const char *s = tm_reader_string(t->reader, ev->label);
            m->t_ns = ev->time_ns;
            tm_fit_name(s ? s : "?", m->text, sizeof m->text);
        }
        break;
    }
    if (rc)
        tl->oom = 1;
    return tl->oom;
}

void tm_timeline_finish(tm_timeline *tl, tm_trace *t)
{
    for (size_t i = 0; i < tl->nopen; i++)
        if (tl->open[i].name) {
            add_band(tl, tl->open[i].name, (uint32_t)i, tl->open[i].start,
                     t->sum.last_time_ns);
            tl->open[i].name = 0;
        }
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
    static const char *names[] = {"heap", "rss", "maps"};
    const tm_series *series[] = {&tl->heap, &tl->rss, &tl->maps};
    for (int k = 0; k < 3; k++) {
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
        char label[TM_LABEL_MAX];
        tm_fit_name(n ? n : "?", label, sizeof label);
        clean_label(label);
        fprintf(f, "%.6f %.6f \"%s\" %u\n", tm_seconds(tl->bands[i].start_ns),
                tm_seconds(tl->bands[i].end_ns), label,
                tm_reader_thread_tid(t->reader, tl->bands[i].thread));
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/%smarks.dat", dir, prefix);
    f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < tl->nmarks; i++) {
        char label[TM_LABEL_MAX];
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
