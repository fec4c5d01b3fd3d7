/* report_json.c — one trace's JSON object in `tidemark report`'s page (see
 * report_data.h): compact, keys as the other reports' --json name them
 * where the figure is the same one (summary, leaks, regions). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report_data.h"
#include "report_tree.h"

void tm_report_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void tm_report_num(FILE *out, double v)
{
    if (v != v || v > 1e300 || v < -1e300)
        fputs("null", out);
    else
        fprintf(out, "%.9g", v);
}

/* --- the views: [node, bytes, blocks, ...] ------------------------------------------- */

/* Groups, skipping suppressed ones. */
static void groups_json(FILE *out, tm_rtree *tr, tm_trace *t, const tm_groups *g)
{
    fputc('[', out);
    const char *sep = "";
    for (size_t i = 0; i < g->n; i++) {
        if (g->v[i].suppressed)
            continue;
        fprintf(out, "%s%u,%" PRIu64 ",%" PRIu64, sep, tm_rtree_leaf(tr, t, g->v[i].stack),
                g->v[i].bytes, g->v[i].blocks);
        sep = ",";
    }
    fputc(']', out);
}

/* In the allocated and time-range views (`all`), an entry below 1/FINE of
 * the view's bytes and of its blocks is drawn at
 * its outermost COARSE_DEPTH frames: a long trace's many deep one-off
 * stacks (Python objects made all over a program) would otherwise be most
 * of the page, and be too thin to see.  The view's totals stay exact. */
#define FINE 20000
#define COARSE_DEPTH 8

/* Entries of a tally with the given extra (all of them with `all`); with
 * `bins`, the range view's [node, abin, fbin, bytes, blocks, ...]. */
static void tally_json(FILE *out, tm_rtree *tr, tm_trace *t, const tm_tally *ta, bool all,
                       uint32_t extra, bool bins)
{
    uint64_t bytes = 0, blocks = 0;
    for (size_t i = 0; i < ta->cap; i++) {
        const tm_tally_entry *e = &ta->v[i];
        if (e->used && (all || e->extra == extra)) {
            bytes += e->bytes;
            blocks += e->blocks;
        }
    }
    /* By (node, bins): stacks drawn as the same box are one entry. */
    tm_tally by_node = {0};
    for (size_t i = 0; i < ta->cap; i++) {
        const tm_tally_entry *e = &ta->v[i];
        if (!e->used || (!all && e->extra != extra))
            continue;
        bool fine = all && e->bytes * FINE < bytes && e->blocks * FINE < blocks;
        uint32_t node = tm_rtree_leaf_at(tr, t, e->stack, fine ? COARSE_DEPTH : 0);
        if (tm_tally_add(&by_node, node, bins ? e->extra : 0, e->bytes, e->blocks) < 0)
            tr->oom = 1;
    }
    fputc('[', out);
    const char *sep = "";
    for (size_t i = 0; i < by_node.cap; i++) {
        const tm_tally_entry *e = &by_node.v[i];
        if (!e->used)
            continue;
        fprintf(out, "%s%u", sep, (uint32_t)e->stack);
        if (bins)
            fprintf(out, ",%u,%u", e->extra >> 16, e->extra & 0xffff);
        fprintf(out, ",%" PRIu64 ",%" PRIu64, e->bytes, e->blocks);
        sep = ",";
    }
    fputc(']', out);
    tm_tally_free(&by_node);
}

/* --- regions: the keys of `tidemark regions --json` ----------------------------------- */

static void stat_json(FILE *out, const char *key, const tm_stat *s)
{
    fprintf(out, ",\"%s\":{\"min\":%" PRId64 ",\"mean\":", key, s->n ? s->min : 0);
    tm_report_num(out, tm_stat_mean(s));
    fprintf(out, ",\"max\":%" PRId64 ",\"total\":%" PRId64 "}", s->n ? s->max : 0, s->total);
}

static void figs_json(FILE *out, const char *key, const tm_region_figs *f)
{
    fprintf(out, ",\"%s\":{\"invocations_keeping\":%" PRIu64, key, f->invocations_keeping);
    stat_json(out, "allocs", &f->allocs);
    stat_json(out, "frees", &f->frees);
    stat_json(out, "bytes", &f->bytes);
    stat_json(out, "net_bytes", &f->net);
    stat_json(out, "kept_bytes", &f->kept);
    stat_json(out, "peak_bytes", &f->peak);
    fputc('}', out);
}

static const char *string_of(tm_report_trace *r, uint32_t id)
{
    const char *s = tm_reader_string(r->t.reader, id);
    return s ? s : "?";
}

static void regions_json(FILE *out, tm_report_trace *r, tm_rtree *tr)
{
    fputs(",\"regions\":[", out);
    for (size_t i = 0; i < r->nstats; i++) {
        const tm_region_stats *s = &r->stats[i];
        fprintf(out, "%s{\"name\":", i ? "," : "");
        tm_report_str(out, string_of(r, s->name));
        fprintf(out, ",\"invocations\":%" PRIu64, s->invocations);
        stat_json(out, "allocs", &s->allocs);
        stat_json(out, "frees", &s->frees);
        stat_json(out, "bytes", &s->bytes);
        stat_json(out, "net_bytes", &s->net);
        fprintf(out, ",\"invocations_net_zero\":%" PRIu64 ",\"invocations_net_positive\":%" PRIu64
                     ",\"invocations_net_negative\":%" PRIu64 ",\"retains\":%s",
                s->net_zero, s->net_positive, s->net_negative,
                tm_region_retains(s) ? "true" : "false");
        fprintf(out, ",\"escaped_blocks\":%" PRIu64 ",\"escaped_bytes\":%" PRIu64
                     ",\"leaked_blocks\":%" PRIu64 ",\"leaked_bytes\":%" PRIu64 ",\"nested\":%s",
                s->escaped_blocks, s->escaped_bytes, s->leaked_blocks, s->leaked_bytes,
                s->nested ? "true" : "false");
        fputs(",\"kept_per_invocation\":", out);
        tm_report_num(out, tm_region_accumulation(s));
        fprintf(out, ",\"accumulates\":%s", tm_region_accumulates(s) ? "true" : "false");
        figs_json(out, "own", &s->own);
        figs_json(out, "incl", &s->incl);
        /* The kept view of this region: [node, bytes, blocks, ...]. */
        fputs(",\"kept\":", out);
        tally_json(out, tr, &r->t, &r->kept, false, s->name, false);
        fputc('}', out);
    }
    fputc(']', out);
}

/* --- timeline ------------------------------------------------------------------------- */

static void series_json(FILE *out, const tm_series *s)
{
    fputc('[', out);
    for (size_t i = 0; i < s->n; i++)
        fprintf(out, "%s%.6f,%" PRIu64, i ? "," : "", tm_seconds(s->v[i].t_ns), s->v[i].value);
    fputc(']', out);
}

static void timeline_json(FILE *out, tm_report_trace *r)
{
    const tm_timeline *tl = &r->tl;
    /* The heap: [t, low, high, ...] at each bucket's start, a bucket
     * without events carrying the last value on. */
    fprintf(out, ",\"timeline\":{\"bucket\":%.9f,\"heap\":[", tm_seconds(r->heap_ns));
    uint64_t last = 0;
    for (size_t i = 0; r->heap && i < TM_REPORT_POINTS && i * r->heap_ns <= r->duration_ns; i++) {
        const tm_heap_bucket *b = &r->heap[i];
        fprintf(out, "%s%.9f,%" PRIu64 ",%" PRIu64, i ? "," : "", tm_seconds(i * r->heap_ns),
                b->seen ? (b->lo < last ? b->lo : last) : last,
                b->seen ? (b->hi > last ? b->hi : last) : last);
        if (b->seen)
            last = b->last;
    }
    fputc(']', out);
    fputs(",\"rss\":", out);
    series_json(out, &tl->rss);
    fputs(",\"maps\":", out);
    series_json(out, &tl->maps);
    uint32_t *lane = calloc(tl->nbands ? tl->nbands : 1, sizeof *lane);
    fprintf(out, ",\"lanes\":%zu,\"bands\":[", lane ? tm_timeline_lanes(tl, lane) : 0);
    for (size_t i = 0; lane && i < tl->nbands; i++) {
        fprintf(out, "%s[%.6f,%.6f,", i ? "," : "", tm_seconds(tl->bands[i].start_ns),
                tm_seconds(tl->bands[i].end_ns));
        tm_report_str(out, string_of(r, tl->bands[i].name));
        fprintf(out, ",%u]", lane[i]);
    }
    free(lane);
    fputs("],\"marks\":[", out);
    for (size_t i = 0; i < tl->nmarks; i++) {
        fprintf(out, "%s[%.6f,", i ? "," : "", tm_seconds(tl->marks[i].t_ns));
        tm_report_str(out, tl->marks[i].text);
        fputc(']', out);
    }
    fputs("]}", out);
}

/* --- summary -------------------------------------------------------------------------- */

/* Markers the preload and the bridge intern as "tidemark:KEY=VALUE"
 * strings (how Python frames and Python's allocator were recorded,
 * docs/trace-format.md). */
static void markers_json(FILE *out, tm_report_trace *r)
{
    static const char prefix[] = "tidemark:";
    fputs(",\"recorded\":{", out);
    const char *sep = "";
    for (uint32_t id = 1; id < tm_reader_string_bound(r->t.reader); id++) {
        const char *s = tm_reader_string(r->t.reader, id);
        const char *eq = s && !strncmp(s, prefix, sizeof prefix - 1) ? strchr(s, '=') : NULL;
        if (!eq || eq - s - (long)sizeof prefix + 1 > 64)
            continue;
        char key[80];
        snprintf(key, sizeof key, "%.*s", (int)(eq - s - (long)sizeof prefix + 1),
                 s + sizeof prefix - 1);
        fputs(sep, out);
        tm_report_str(out, key);
        fputc(':', out);
        tm_report_str(out, eq + 1);
        sep = ",";
    }
    fputc('}', out);
}

static void summary_json(FILE *out, tm_report_trace *r)
{
    const tm_summary *s = &r->t.sum;
    fprintf(out, ",\"summary\":{\"duration\":%.6f,\"alloc_calls\":%" PRIu64
                 ",\"free_calls\":%" PRIu64 ",\"bytes_allocated\":%" PRIu64
                 ",\"peak_bytes\":%" PRIu64 ",\"peak_blocks\":%" PRIu64 ",\"peak_time\":%.6f"
                 ",\"leaked_bytes\":%" PRIu64 ",\"leaked_blocks\":%" PRIu64
                 ",\"threads\":%u,\"rss_peak_bytes\":%" PRIu64 ",\"lost_events\":%" PRIu64
                 ",\"events\":%" PRIu64 ",\"maps_bytes\":%" PRIu64 ",\"maps_peak_bytes\":%" PRIu64
                 ",\"maps_peak_time\":%.6f,\"maps_count\":%" PRIu64 ",\"mmap_calls\":%" PRIu64
                 ",\"pid\":%u,\"end\":",
            tm_seconds(s->last_time_ns), s->alloc_calls, s->free_calls, s->bytes_allocated,
            s->peak_bytes, s->peak_blocks, tm_seconds(s->peak_time_ns),
            tm_heap_live_bytes(r->t.heap), tm_heap_live_blocks(r->t.heap),
            tm_reader_thread_count(r->t.reader), s->rss_peak_bytes, s->lost_events, r->nev,
            r->t.maps ? tm_maps_bytes(r->t.maps) : 0, s->maps_peak_bytes,
            tm_seconds(s->maps_peak_time_ns), r->t.maps ? tm_maps_count(r->t.maps) : 0,
            s->mmap_calls, tm_reader_header(r->t.reader)->pid);
    tm_report_str(out, tm_end_reason_name(s->end_reason));
    fputc('}', out);
    markers_json(out, r);
    fprintf(out, ",\"leaks\":{\"leaked_bytes\":%" PRIu64 ",\"leaked_blocks\":%" PRIu64
                 ",\"suppressed_bytes\":%" PRIu64 ",\"suppressed_blocks\":%" PRIu64
                 ",\"verdict\":\"%s\"}",
            r->leaked_bytes, r->leaked_blocks, r->sup_bytes, r->sup_blocks,
            r->leaked_blocks ? "LEAK" : "CLEAN");
    fprintf(out, ",\"peak\":{\"bytes\":%" PRIu64 ",\"blocks\":%" PRIu64 "}", r->peak_bytes,
            r->peak_blocks);
}

int tm_report_trace_json(tm_report_trace *r, tm_rtree *tree, FILE *out)
{
    tm_rtree_next_trace(tree);
    fputs("{\"trace\":", out);
    tm_report_str(out, r->path);
    fputs(",\"error\":", out);
    tm_report_str(out, r->damaged ? r->error : NULL);
    fputs(",\"param\":", out);
    if (r->param > 0)
        tm_report_num(out, r->param);
    else
        fputs("null", out);
    summary_json(out, r);
    fputs(",\"views\":{\"leaked\":", out);
    groups_json(out, tree, &r->t, &r->leaked);
    fputs(",\"peak\":", out);
    groups_json(out, tree, &r->t, &r->peak);
    fputs(",\"allocated\":", out);
    tally_json(out, tree, &r->t, &r->alloc, true, 0, false);
    fputs("}", out);
    fprintf(out, ",\"range\":{\"bins\":%u,\"bin\":%.9f,\"cells\":", r->bins,
            tm_seconds(r->bin_ns));
    tally_json(out, tree, &r->t, &r->range, true, 0, true);
    fputc('}', out);
    regions_json(out, r, tree);
    timeline_json(out, r);
    fputc('}', out);
    if (tree->oom) {
        tm_error("%s: out of memory building the report", r->path);
        return TM_EXIT_FAIL;
    }
    return 0;
}
