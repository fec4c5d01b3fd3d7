/* cmd_reports.c — `tidemark peak`, `tidemark top` and `tidemark diff`:
 * stacks holding memory at the heap peak, the most allocating stacks, and
 * two traces compared stack by stack. */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "groups.h"
#include "regions.h"

/* --- shared ----------------------------------------------------------------------- */

typedef struct opts {
    int json;
    tm_stack_opts so;
    int by_count;
    const char *region;         /* peak --region */
} opts;

/* Parses --json --limit --depth [--by]; returns the index of the first
 * positional argument, or -1 after printing a usage error or help. */
static int parse(int argc, char **argv, const char *cmd, const char *help, opts *o,
                 int *exit_code)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'},
        TM_STACK_OPTIONS,
        {"by", required_argument, NULL, 'b'},
        {"region", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c, r;
    *o = (opts){.so = {.limit = -1, .depth = -1}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "jn:d:b:r:h", lo, NULL)) != -1) {
        if ((r = tm_stack_option(cmd, c, &o->so)) != 0) {
            if (r < 0) {
                *exit_code = TM_EXIT_BAD_INPUT;
                return -1;
            }
            continue;
        }
        switch (c) {
        case 'r':
            if (strcmp(cmd, "peak")) {
                *exit_code = tm_usage_error(cmd, "--region is for peak only");
                return -1;
            }
            o->region = optarg;
            break;
        case 'j': o->json = 1; break;
        case 'b':
            if (strcmp(cmd, "top") || (strcmp(optarg, "count") && strcmp(optarg, "bytes"))) {
                *exit_code = tm_usage_error(cmd, "--by count|bytes is for top only");
                return -1;
            }
            o->by_count = !strcmp(optarg, "count");
            break;
        case 'h':
            fputs(help, stdout);
            *exit_code = TM_EXIT_OK;
            return -1;
        default:
            *exit_code = tm_bad_option(cmd, argv);
            return -1;
        }
    }
    if (o->so.limit < 0)
        o->so.limit = o->json ? LLONG_MAX : 10;
    return optind;
}

/* The percentage is the group's share of `total`, counted in what the list
 * is ranked by: bytes, or blocks (allocations) for top --by count. */
static void print_groups(tm_trace *t, const tm_groups *g, const opts *o, const char *noun,
                         const char *what, uint64_t total)
{
    char a[32];
    for (size_t i = 0; i < g->n && (long long)i < o->so.limit; i++) {
        const tm_group *e = &g->v[i];
        uint64_t part = o->by_count ? e->blocks : e->bytes;
        printf("\n%s in %" PRIu64 " %s%s (%.1f%%%s) %s:\n", tm_human_bytes(e->bytes, a),
               e->blocks, noun, e->blocks == 1 ? "" : "s",
               total ? 100.0 * (double)part / (double)total : 0.0,
               o->by_count ? " of the count" : "", what);
        tm_stack_print(stdout, t, e->stack, tm_stack_opts_depth(&o->so, 0), "  ");
    }
    if ((long long)g->n > o->so.limit)
        printf("\n... %zu more stacks (--limit to show them)\n", g->n - (size_t)o->so.limit);
}

static void json_groups(tm_json *j, tm_trace *t, const tm_groups *g, const opts *o,
                        const char *count_key)
{
    tm_json_key(j, "stacks");
    tm_json_array(j);
    for (size_t i = 0; i < g->n && (long long)i < o->so.limit; i++) {
        tm_json_object(j);
        tm_json_ku64(j, "bytes", g->v[i].bytes);
        tm_json_ku64(j, count_key, g->v[i].blocks);
        tm_json_key(j, "stack");
        tm_stack_json(j, t, g->v[i].stack, tm_stack_opts_depth(&o->so, 1));
        tm_json_object_end(j);
    }
    tm_json_array_end(j);
}

/* --- peak --------------------------------------------------------------------------- */

static const char peak_help[] =
    "usage: tidemark peak TRACE [--json] [--limit N] [--depth N] [--region NAME]\n"
    "\n"
    "The stacks holding memory at the heap peak (the moment the most traced\n"
    "bytes were live), largest first.\n"
    "\n"
    "  --json   {peak_bytes, peak_blocks, peak_time (s), region, stacks: [{bytes,\n"
    "           blocks, stack: [{function, file, line, module, address}]}]}\n"
    "  --region NAME   the peak of the memory allocated in region NAME (in its\n"
    "           invocations or in regions nested in them), and the stacks\n"
    "           holding it then\n"
    "  --limit N, --depth N   stacks shown (text default 10) and frames per stack\n"
    "  --native-only, --python-only   frames of one kind only (traces taken with\n"
    "                       --python-stacks show both, merged)\n";

/* Both passes of peak: the first finds the event at the peak, the second
 * stops there.  With --region the live bytes that count are those
 * allocated in the region's invocations (inclusive), followed through the
 * regions analysis. */
typedef struct peak_scan {
    uint64_t n, at, bytes, time_ns;     /* events seen; the peak's event and size */
    uint64_t target;                    /* second pass: stop after this event */
    const char *region;
    tm_regions reg;
    uint32_t ids[16];                   /* string ids naming the region */
    int nids;
    tm_trace *t;
    tm_groups *groups;
    uint64_t blocks, live;
} peak_scan;

static int64_t region_live(const peak_scan *p)
{
    int64_t v = 0;
    for (int i = 0; i < p->nids; i++)
        v += tm_regions_name_live(&p->reg, p->ids[i]);
    return v;
}

/* Follows regions for --region; non-zero when memory ran out. */
static int peak_regions(peak_scan *p, tm_trace *t, const tm_event *ev, const tm_block *freed)
{
    if (!p->region)
        return 0;
    if (ev->kind == TM_EV_REGION_BEGIN && tm_trace_region_is(t, ev->region, p->region)) {
        bool known = false;
        for (int i = 0; i < p->nids; i++)
            known |= p->ids[i] == ev->region;
        if (!known && p->nids < 16)
            p->ids[p->nids++] = ev->region;
    }
    return tm_regions_event(&p->reg, ev, freed);
}

static int count_until(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    peak_scan *p = arg;
    if (peak_regions(p, t, ev, freed))
        return 1;
    return ++p->n >= p->target;
}

static int find_peak(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    peak_scan *p = arg;
    if (peak_regions(p, t, ev, freed))
        return 1;
    p->n++;
    if (ev->kind != TM_EV_ALLOC)
        return 0;
    uint64_t live = p->region ? (uint64_t)region_live(p) : tm_heap_live_bytes(t->heap);
    if (live > p->bytes) {
        p->bytes = live;
        p->at = p->n;
        p->time_ns = ev->time_ns;
    }
    return 0;
}

static int add_live(const tm_block *b, void *arg)
{
    peak_scan *p = arg;
    if (p->region) {
        uint32_t chain[256];
        int n = tm_regions_chain(&p->reg, b->region, b->invocation, chain, 256), in = 0;
        for (int i = 0; i < n && !in; i++)
            for (int k = 0; k < p->nids && !in; k++)
                in = tm_regions_node_name(&p->reg, chain[i]) == p->ids[k];
        if (!in)
            return 0;
    }
    p->blocks++;
    p->live += b->size;
    return tm_groups_add(p->groups, tm_view_key(b->stack, b->pystack), b->size, 1) < 0;
}

int tm_cmd_peak(int argc, char **argv)
{
    opts o;
    int rc = TM_EXIT_OK;
    int first = parse(argc, argv, "peak", peak_help, &o, &rc);
    if (first < 0)
        return rc;
    if (argc - first != 1)
        return tm_usage_error("peak", "expected one TRACE");
    /* Two passes: find when the peak happened, then stop there and look.
     * The second pass reads on to the end after looking, so damage before
     * or after the peak is reported once, by the pass that prints. */
    tm_trace t;
    if ((rc = tm_trace_open(&t, argv[first])))
        return rc;
    peak_scan pf = {.region = o.region};
    tm_regions_init(&pf.reg);
    int failed = tm_trace_scan(&t, find_peak, &pf) || pf.reg.oom;
    bool known = !o.region || tm_trace_has_region(&t, o.region);
    tm_regions_free(&pf.reg);
    tm_trace_discard(&t);
    if (failed)
        return TM_EXIT_FAIL;
    if (!known) {
        tm_error("%s: no region named '%s' in the trace", argv[first], o.region);
        return TM_EXIT_BAD_INPUT;
    }
    if ((rc = tm_trace_open(&t, argv[first])))
        return rc;
    tm_groups g;
    tm_groups_init(&g);
    peak_scan s = {.target = pf.at, .region = o.region, .t = &t, .groups = &g};
    tm_regions_init(&s.reg);
    if (pf.at && (tm_trace_scan(&t, count_until, &s) || s.reg.oom)) {
        tm_regions_free(&s.reg);
        tm_groups_free(&g);
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    if (pf.at && tm_heap_foreach(t.heap, add_live, &s)) {
        tm_error("%s: out of memory", t.path);
        tm_regions_free(&s.reg);
        tm_groups_free(&g);
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    tm_regions_free(&s.reg);
    uint64_t bytes = s.live, blocks = s.blocks;
    if (tm_trace_scan(&t, NULL, NULL)) {
        tm_groups_free(&g);
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    uint64_t when = o.region ? pf.time_ns : t.sum.peak_time_ns;
    tm_groups_sort_by_bytes(&g);
    if (o.json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_ku64(&j, "peak_bytes", bytes);
        tm_json_ku64(&j, "peak_blocks", blocks);
        tm_json_kdouble(&j, "peak_time", tm_seconds(when));
        if (o.region)
            tm_json_kstr(&j, "region", o.region);
        json_groups(&j, &t, &g, &o, "blocks");
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        char a[32];
        if (o.region)
            printf("peak of region '%s' (with the regions nested in it): %s in %" PRIu64
                   " blocks at %.3f s\n",
                   o.region, tm_human_bytes(bytes, a), blocks, tm_seconds(when));
        else
            printf("heap peak: %s in %" PRIu64 " blocks at %.3f s\n", tm_human_bytes(bytes, a),
                   blocks, tm_seconds(when));
        print_groups(&t, &g, &o, "block", "live at the peak, allocated at", bytes);
    }
    tm_groups_free(&g);
    return tm_trace_close(&t);
}

/* --- top ------------------------------------------------------------------------------ */

static const char top_help[] =
    "usage: tidemark top TRACE [--by bytes|count] [--json] [--limit N] [--depth N]\n"
    "\n"
    "The stacks that allocate the most over the whole run, by bytes (default)\n"
    "or by number of allocations.\n"
    "\n"
    "  --json   {by, alloc_calls, bytes_allocated, stacks: [{bytes, allocs,\n"
    "           stack: [...]}]}\n"
    "  --native-only, --python-only   frames of one kind only (traces taken with\n"
    "                       --python-stacks show both, merged)\n";

static int count_alloc(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    if (ev->kind == TM_EV_ALLOC)
        return tm_groups_add(arg, tm_view_key(ev->stack, ev->pystack), ev->size, 1) < 0;
    return 0;
}

int tm_cmd_top(int argc, char **argv)
{
    opts o;
    int rc = TM_EXIT_OK;
    int first = parse(argc, argv, "top", top_help, &o, &rc);
    if (first < 0)
        return rc;
    if (argc - first != 1)
        return tm_usage_error("top", "expected one TRACE");
    tm_trace t;
    if ((rc = tm_trace_open(&t, argv[first])))
        return rc;
    tm_groups g;
    tm_groups_init(&g);
    if (tm_trace_scan(&t, count_alloc, &g)) {
        tm_groups_free(&g);
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    if (o.by_count)
        tm_groups_sort_by_blocks(&g);
    else
        tm_groups_sort_by_bytes(&g);
    if (o.json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_kstr(&j, "by", o.by_count ? "count" : "bytes");
        tm_json_ku64(&j, "alloc_calls", t.sum.alloc_calls);
        tm_json_ku64(&j, "bytes_allocated", t.sum.bytes_allocated);
        json_groups(&j, &t, &g, &o, "allocs");
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        char a[32];
        printf("%" PRIu64 " allocations, %s in all; top stacks by %s\n", t.sum.alloc_calls,
               tm_human_bytes(t.sum.bytes_allocated, a), o.by_count ? "count" : "bytes");
        print_groups(&t, &g, &o, "allocation", "by",
                     o.by_count ? t.sum.alloc_calls : t.sum.bytes_allocated);
    }
    tm_groups_free(&g);
    return tm_trace_close(&t);
}
