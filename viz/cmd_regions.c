/* cmd_regions.c — `tidemark regions TRACE`: invocation by invocation, does
 * each region allocate, and does it give memory back? */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "regions.h"

static const char regions_help[] =
    "usage: tidemark regions TRACE [--json] [--region NAME] [--limit N]\n"
    "\n"
    "Per region name: invocations; allocations, frees and bytes allocated per\n"
    "invocation (min/mean/max/total); net bytes per invocation (allocated minus\n"
    "freed while it ran); how many invocations kept memory (net > 0); blocks\n"
    "escaping an invocation (allocated inside, freed after it ended); blocks\n"
    "still live at exit.  Events belong to the innermost open region of their\n"
    "thread.  The bridge opens one region per callback invocation.\n"
    "\n"
    "  --json         {\"regions\": [{name, invocations, allocs, frees, bytes,\n"
    "                 net_bytes (each {min, mean, max, total}),\n"
    "                 invocations_net_zero, invocations_net_positive,\n"
    "                 invocations_net_negative, retains, escaped_blocks,\n"
    "                 escaped_bytes, leaked_blocks, leaked_bytes}]}\n"
    "  --region NAME  only that region\n"
    "  --limit N      at most N regions (most invocations first)\n";

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    (void)t;
    return tm_regions_event(arg, ev, freed);
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
        tm_json_object_end(&j);
    }
    tm_json_array_end(&j);
    tm_json_object_end(&j);
    tm_json_end(&j);
}

static void print_text(tm_trace *t, const tm_region_stats *v, size_t n)
{
    if (n == 0) {
        printf("no regions in this trace (tidemark_region_begin/end, tidemark.region(),\n"
               "or the bridge's callbacks open them)\n");
        return;
    }
    printf("%-24s %11s  %-22s %10s  %-26s %9s  %s\n", "region", "invocations",
           "allocs/inv min/mean/max", "bytes/inv", "net bytes/inv min/mean/max",
           "kept mem", "escaped / leaked at exit");
    for (size_t i = 0; i < n; i++) {
        const tm_region_stats *s = &v[i];
        const char *name = tm_reader_string(t->reader, s->name);
        char allocs[48], net[64], a[32], b[32], c[32];
        snprintf(allocs, sizeof allocs, "%" PRId64 " / %.2f / %" PRId64, s->allocs.min,
                 tm_stat_mean(&s->allocs), s->allocs.max);
        snprintf(net, sizeof net, "%" PRId64 " / %.1f / %" PRId64, s->net.min,
                 tm_stat_mean(&s->net), s->net.max);
        char kept[24];
        snprintf(kept, sizeof kept, "%.1f%%",
                 s->invocations ? 100.0 * (double)s->net_positive / (double)s->invocations : 0);
        printf("%-24.24s %11" PRIu64 "  %-22s %10s  %-26s %9s  %" PRIu64 " (%s) / %" PRIu64
               " (%s)\n",
               name ? name : "?", s->invocations, allocs,
               tm_human_bytes((uint64_t)tm_stat_mean(&s->bytes), a), net, kept,
               s->escaped_blocks, tm_human_bytes(s->escaped_bytes, b), s->leaked_blocks,
               tm_human_bytes(s->leaked_bytes, c));
    }
    for (size_t i = 0; i < n; i++)
        if (tm_region_retains(&v[i]))
            printf("\n%s keeps memory in most invocations: a leak per call "
                   "(tidemark leaks --region %s shows where)\n",
                   tm_reader_string(t->reader, v[i].name),
                   tm_reader_string(t->reader, v[i].name));
}

int tm_cmd_regions(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"region", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int json = 0, c;
    long long limit = -1;
    const char *only = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jr:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'r': only = optarg; break;
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

    tm_trace t;
    int rc = tm_trace_open(&t, argv[optind]);
    if (rc)
        return rc;
    tm_regions reg;
    tm_regions_init(&reg);
    if (tm_trace_scan(&t, feed, &reg) || reg.oom) {
        if (reg.oom)
            tm_error("%s: out of memory tracking regions", t.path);
        tm_regions_free(&reg);
        tm_trace_close(&t);
        return TM_EXIT_FAIL;
    }
    if (only && !tm_trace_has_region(&t, only)) {
        tm_error("%s: no region named '%s' in the trace", t.path, only);
        tm_regions_free(&reg);
        tm_trace_close(&t);
        return TM_EXIT_BAD_INPUT;
    }
    tm_regions_finish(&reg, &t);
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
    if (json)
        print_json(&t, v, n);
    else
        print_text(&t, v, n);
    free(v);
    tm_regions_free(&reg);
    return tm_trace_close(&t);
}
