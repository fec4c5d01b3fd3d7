/* cmd_regions.c — `tidemark regions TRACE`: invocation by invocation, does
 * each region allocate, and does it give memory back? */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "regions.h"

static const char regions_help[] =
    "usage: tidemark regions TRACE [--json] [--region NAME] [--limit N]\n"
    "       tidemark regions TRACE --invocations NAME [--json] [--limit N]\n"
    "\n"
    "Per region name: invocations; allocations, frees and bytes allocated per\n"
    "invocation (min/mean/max/total); net bytes per invocation (allocated minus\n"
    "freed while it ran); peak live bytes per invocation (the most bytes\n"
    "allocated in it live at once); kept bytes per invocation (allocated in\n"
    "it, still live when it ended) and how many invocations kept some; blocks\n"
    "escaping an invocation (allocated inside, freed after it ended); blocks\n"
    "still live at exit.  The bridge opens one region per callback invocation.\n"
    "\n"
    "Two scopes: 'own' counts the events of a region while it was the\n"
    "innermost open region of its thread (exclusive); 'incl' also counts the\n"
    "regions nested in it (inclusive), so a test region calling a leaking\n"
    "callback keeps what the callback kept.  The text shows the 'incl' line\n"
    "for regions that had nested regions; escaped and leaked are own.\n"
    "\n"
    "  --json         {\"regions\": [{name, invocations, allocs, frees, bytes,\n"
    "                 net_bytes (own, each {min, mean, max, total}),\n"
    "                 invocations_net_zero, invocations_net_positive,\n"
    "                 invocations_net_negative, retains, escaped_blocks,\n"
    "                 escaped_bytes, leaked_blocks, leaked_bytes, nested,\n"
    "                 kept_per_invocation, accumulates,\n"
    "                 own: {allocs, frees, bytes, net_bytes, kept_bytes,\n"
    "                 peak_bytes, invocations_keeping}, incl: {the same}}]}\n"
    "  --region NAME  only that region\n"
    "  --invocations NAME  one row per invocation of NAME: index, start time,\n"
    "                 allocations, net bytes, kept bytes, peak bytes, and of\n"
    "                 the kept bytes those never freed (inclusive figures);\n"
    "                 names the first invocation that kept memory.  JSON:\n"
    "                 {region, invocations, first_keeping, rows: [{index,\n"
    "                 start, end, allocs, net_bytes, kept_bytes, peak_bytes,\n"
    "                 leaked_bytes}]}\n"
    "  --limit N      at most N regions (most invocations first) or rows\n"
    "\n"
    "A region keeps memory per call when the live bytes allocated in its\n"
    "invocations grow with every invocation (kept_per_invocation, fitted over\n"
    "all invocations, over 8 bytes): `tidemark kept TRACE --region NAME` then\n"
    "shows where.\n";

typedef struct feed_arg {
    tm_regions *reg;
    const char *rows_of;        /* --invocations NAME */
} feed_arg;

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    feed_arg *a = arg;
    if (a->rows_of && ev->kind == TM_EV_REGION_BEGIN &&
        tm_trace_region_is(t, ev->region, a->rows_of))
        tm_regions_want_rows(a->reg, ev->region);
    return tm_regions_event(a->reg, ev, freed);
}

static void print_json(tm_trace *t, const tm_region_stats *v, size_t n)
{
    tm_json j;
    tm_json_report(&j, stdout);
    tm_json_key(&j, "regions");
    tm_json_array(&j);
    for (size_t i = 0; i < n; i++) {
        const tm_region_stats *s = &v[i];
        tm_json_object(&j);
        tm_json_kstr(&j, "name", tm_reader_string(t->reader, s->name));
        tm_json_ku64(&j, "invocations", s->invocations);
        tm_stat_json(&j, "allocs", &s->allocs);
        tm_stat_json(&j, "frees", &s->frees);
        tm_stat_json(&j, "bytes", &s->bytes);
        tm_stat_json(&j, "net_bytes", &s->net);
        tm_json_ku64(&j, "invocations_net_zero", s->net_zero);
        tm_json_ku64(&j, "invocations_net_positive", s->net_positive);
        tm_json_ku64(&j, "invocations_net_negative", s->net_negative);
        tm_json_kbool(&j, "retains", tm_region_retains(s));
        tm_json_ku64(&j, "escaped_blocks", s->escaped_blocks);
        tm_json_ku64(&j, "escaped_bytes", s->escaped_bytes);
        tm_json_ku64(&j, "leaked_blocks", s->leaked_blocks);
        tm_json_ku64(&j, "leaked_bytes", s->leaked_bytes);
        tm_json_kbool(&j, "nested", s->nested);
        tm_json_kdouble(&j, "kept_per_invocation", tm_region_accumulation(s));
        tm_json_kbool(&j, "accumulates", tm_region_accumulates(s));
        tm_json_key(&j, "own");
        tm_json_object(&j);
        tm_region_figs_json(&j, &s->own);
        tm_json_object_end(&j);
        tm_json_key(&j, "incl");
        tm_json_object(&j);
        tm_region_figs_json(&j, &s->incl);
        tm_json_object_end(&j);
        tm_json_object_end(&j);
    }
    tm_json_array_end(&j);
    tm_json_object_end(&j);
    tm_json_end(&j);
}

static const char *minmax(const tm_stat *s, char *out, size_t len, int bytes)
{
    if (bytes) {
        char a[32], b[32], c[32];
        snprintf(out, len, "%s / %s / %s", tm_human_bytes((uint64_t)(s->min > 0 ? s->min : 0), a),
                 tm_human_bytes((uint64_t)(tm_stat_mean(s) > 0 ? tm_stat_mean(s) : 0), b),
                 tm_human_bytes((uint64_t)(s->max > 0 ? s->max : 0), c));
    } else {
        snprintf(out, len, "%" PRId64 " / %.2f / %" PRId64, s->min, tm_stat_mean(s), s->max);
    }
    return out;
}

/* The widest name shown in the column; a longer one gets a line of its
 * own above its figures (never cut). */
#define NAME_COLUMN_MAX 40

/* Widths of the columns that hold min / mean / max. */
typedef struct widths {
    int name, allocs, peak;
} widths;

static void fit_widths(const tm_region_figs *f, widths *w)
{
    char buf[96];
    int a = (int)strlen(minmax(&f->allocs, buf, sizeof buf, 0));
    int p = (int)strlen(minmax(&f->peak, buf, sizeof buf, 1));
    w->allocs = a > w->allocs ? a : w->allocs;
    w->peak = p > w->peak ? p : w->peak;
}

static void print_scope(const tm_region_stats *s, const tm_region_figs *f, const char *scope,
                        const char *name, const widths *w, bool own)
{
    char allocs[64], net[96], peak[96], a[32], b[32], c[32], kept[64];
    int64_t net_mean = (int64_t)tm_stat_mean(&f->net);
    snprintf(net, sizeof net, "%s%s", net_mean < 0 ? "-" : "",
             tm_human_bytes((uint64_t)(net_mean < 0 ? -net_mean : net_mean), a));
    snprintf(kept, sizeof kept, "%s (%.0f%%)",
             tm_human_bytes((uint64_t)(tm_stat_mean(&f->kept) > 0 ? tm_stat_mean(&f->kept) : 0), c),
             s->invocations ? 100.0 * (double)f->invocations_keeping / (double)s->invocations : 0);
    printf("%-*s %-4s %11" PRIu64 "  %-*s %10s %10s  %-*s %-16s", w->name, name, scope,
           s->invocations, w->allocs, minmax(&f->allocs, allocs, sizeof allocs, 0),
           tm_human_bytes((uint64_t)tm_stat_mean(&f->bytes), b), net, w->peak,
           minmax(&f->peak, peak, sizeof peak, 1), kept);
    if (own)
        printf("  %" PRIu64 " (%s) / %" PRIu64 " (%s)", s->escaped_blocks,
               tm_human_bytes(s->escaped_bytes, a), s->leaked_blocks,
               tm_human_bytes(s->leaked_bytes, b));
    printf("\n");
}

static void print_text(tm_trace *t, const tm_region_stats *v, size_t n)
{
    if (n == 0) {
        printf("no regions in this trace (tidemark_region_begin/end, tidemark.region(),\n"
               "or the bridge's callbacks open them)\n");
        return;
    }
    widths w = {.name = 6, .allocs = 23, .peak = 26};
    bool any_nested = false;
    for (size_t i = 0; i < n; i++) {
        const char *name = tm_reader_string(t->reader, v[i].name);
        int len = name ? (int)strlen(name) : 1;
        if (len > w.name && len <= NAME_COLUMN_MAX)
            w.name = len;
        any_nested |= v[i].nested;
        fit_widths(&v[i].own, &w);
        if (v[i].nested)
            fit_widths(&v[i].incl, &w);
    }
    printf("%-*s %-4s %11s  %-*s %10s %10s  %-*s %-16s  %s\n", w.name, "region", "",
           "invocations", w.allocs, "allocs/inv min/mean/max", "bytes/inv", "net/inv", w.peak,
           "peak live/inv min/mean/max",
           "kept/inv (inv%)", "escaped / leaked at exit");
    for (size_t i = 0; i < n; i++) {
        const tm_region_stats *s = &v[i];
        const char *name = tm_reader_string(t->reader, s->name);
        name = name ? name : "?";
        if ((int)strlen(name) > w.name) {
            printf("%s\n", name);
            name = "";
        }
        print_scope(s, &s->own, "own", name, &w, true);
        if (s->nested)
            print_scope(s, &s->incl, "incl", "", &w, false);
    }
    printf("\nown: while the region was the innermost open region (exclusive)%s\n",
           any_nested ? "; incl: with the regions nested in it (inclusive)" : "");
    for (size_t i = 0; i < n; i++) {
        const tm_region_stats *s = &v[i];
        if (!tm_region_retains(s) && !tm_region_accumulates(s))
            continue;
        const char *name = tm_reader_string(t->reader, s->name);
        char a[32];
        double acc = tm_region_accumulation(s);
        printf("\n%s keeps memory call after call (%s more live after each of its %" PRIu64
               " invocations): tidemark kept --region %s shows where\n",
               name, tm_human_bytes((uint64_t)(acc > 0 ? acc : 0), a), s->invocations, name);
    }
}

static int print_rows(tm_trace *t, const tm_regions *reg, const char *name, long long limit,
                      int json)
{
    uint64_t n = reg->nrows, first = 0;
    for (uint64_t i = 0; i < n && !first; i++)
        if (reg->rows[i].kept_bytes > 0)
            first = reg->rows[i].invocation;
    uint64_t shown = limit >= 0 && (uint64_t)limit < n ? (uint64_t)limit : n;
    if (json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_kstr(&j, "region", name);
        tm_json_ku64(&j, "invocations", n);
        tm_json_key(&j, "first_keeping");
        if (first)
            tm_json_u64(&j, first);
        else
            tm_json_null(&j);
        tm_json_key(&j, "rows");
        tm_json_array(&j);
        for (uint64_t i = 0; i < shown; i++) {
            const tm_region_row *r = &reg->rows[i];
            tm_json_object(&j);
            tm_json_ku64(&j, "index", r->invocation);
            tm_json_kdouble(&j, "start", tm_seconds(r->start_ns));
            tm_json_kdouble(&j, "end", tm_seconds(r->end_ns));
            tm_json_ku64(&j, "allocs", r->allocs);
            tm_json_ki64(&j, "net_bytes", r->net_bytes);
            tm_json_ki64(&j, "kept_bytes", r->kept_bytes);
            tm_json_ki64(&j, "peak_bytes", r->peak_bytes);
            tm_json_ki64(&j, "leaked_bytes", r->leaked_bytes);
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_object_end(&j);
        tm_json_end(&j);
        return 0;
    }
    printf("%s: %" PRIu64 " invocation%s (figures include nested regions)\n", name, n,
           n == 1 ? "" : "s");
    printf("%10s %12s %8s %12s %12s %12s %14s\n", "invocation", "start (s)", "allocs",
           "net bytes", "kept bytes", "peak bytes", "never freed");
    for (uint64_t i = 0; i < shown; i++) {
        const tm_region_row *r = &reg->rows[i];
        printf("%10" PRIu64 " %12.6f %8" PRIu64 " %12" PRId64 " %12" PRId64 " %12" PRId64
               " %14" PRId64 "\n",
               r->invocation, tm_seconds(r->start_ns), r->allocs, r->net_bytes, r->kept_bytes,
               r->peak_bytes, r->leaked_bytes);
    }
    if (shown < n)
        printf("... %" PRIu64 " more (--limit to show them)\n", n - shown);
    if (first)
        printf("first invocation that kept memory: %" PRIu64 "\n", first);
    else
        printf("no invocation kept memory\n");
    (void)t;
    return 0;
}

int tm_cmd_regions(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"region", required_argument, NULL, 'r'},
        {"invocations", required_argument, NULL, 'i'},
        {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int json = 0, c;
    long long limit = -1;
    const char *only = NULL, *rows_of = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jr:i:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'r': only = optarg; break;
        case 'i': rows_of = optarg; break;
        case 'n':
            if ((limit = tm_parse_count(optarg)) < 0)
                return tm_usage_error("regions", "--limit wants a number, got '%s'", optarg);
            break;
        case 'h': fputs(regions_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("regions", argv);
        }
    }
    if (argc - optind != 1)
        return tm_usage_error("regions", "expected one TRACE");
    if (only && rows_of)
        return tm_usage_error("regions", "--region and --invocations do not go together");

    tm_trace t;
    int rc = tm_trace_open(&t, argv[optind]);
    if (rc)
        return rc;
    tm_regions reg;
    tm_regions_init(&reg);
    feed_arg fa = {.reg = &reg, .rows_of = rows_of};
    if (tm_trace_scan(&t, feed, &fa) || reg.oom) {
        if (reg.oom)
            tm_error("%s: out of memory tracking regions", t.path);
        tm_regions_free(&reg);
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    const char *wanted = only ? only : rows_of;
    if (wanted && !tm_trace_has_region(&t, wanted)) {
        tm_error("%s: no region named '%s' in the trace", t.path, wanted);
        tm_regions_free(&reg);
        tm_trace_close(&t);
        return TM_EXIT_BAD_INPUT;
    }
    tm_regions_finish(&reg, &t);
    if (rows_of) {
        print_rows(&t, &reg, rows_of, limit, json);
        tm_regions_free(&reg);
        return tm_trace_close(&t);
    }
    tm_region_stats *v;
    size_t n = tm_regions_sorted(&reg, &t, &v);
    if (only) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (tm_trace_region_is(&t, v[i].name, only))
                v[k++] = v[i];
        n = k;
    }
    if (limit >= 0 && (size_t)limit < n)
        n = (size_t)limit;
    if (json) {
        print_json(&t, v, n);
    } else {
        print_text(&t, v, n);
        const char *note = tm_python_allocator_note(&t);
        if (note)
            printf("\n%s\n", note);
    }
    free(v);
    tm_regions_free(&reg);
    return tm_trace_close(&t);
}
