/* cmd_kept.c — `tidemark kept TRACE --region NAME`: the memory invocations
 * of a region kept, by allocation site.  A block is kept by an invocation
 * when it was allocated in it (or in a region nested in it) and was still
 * live when the invocation ended; `leaks --region` only sees the kept
 * blocks nobody ever freed, which misses a callback whose copies are freed
 * at teardown. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "regions.h"
#include "sites.h"

static const char kept_help[] =
    "usage: tidemark kept TRACE --region NAME [--json] [--limit N] [--depth N]\n"
    "\n"
    "Blocks allocated inside an invocation of region NAME (or of a region\n"
    "nested in it) and still live when that invocation ended, grouped by the\n"
    "site that allocated them, largest first: bytes, blocks, how many\n"
    "invocations kept memory there, how many of those blocks were freed later\n"
    "and when the last of them was.  Also the growth of NAME's live memory per\n"
    "invocation (kept_per_invocation, fitted over all invocations): a region\n"
    "whose memory grows call after call (over 8 bytes per invocation) keeps\n"
    "memory per call even if everything is freed at teardown.\n"
    "\n"
    "  --json     {region, invocations, invocations_keeping, kept_bytes,\n"
    "             kept_blocks, freed_later_blocks, kept_per_invocation,\n"
    "             accumulates, groups: [{bytes, blocks, invocations,\n"
    "             freed_later_blocks, last_free (s or null), stacks, stack}]}\n"
    "  --limit N  sites shown (text default 10, JSON all)\n"
    "  --depth N  frames shown per stack (default: text 12, JSON all)\n"
    "  --native-only, --python-only   frames of one kind only\n"
    "\n"
    "Exit status: 0; 2 for bad input, an unknown region, or a truncated or\n"
    "damaged trace (the report then covers what could be read).\n";

typedef struct kept_group {
    uint64_t key;               /* stack key, or site id once folded */
    uint64_t stack;             /* representative stack */
    uint64_t bytes, blocks, freed_later, last_free_ns, invocations, stacks;
    uint64_t largest;           /* bytes of the representative stack */
} kept_group;

typedef struct table {
    kept_group *v;
    size_t n, cap;
    uint32_t *index;            /* key -> position + 1 */
    size_t icap;
} table;

typedef struct pair_set {
    uint64_t *v;                /* (stack, node) pairs, 2 words each, node + 1 */
    size_t n, cap;              /* cap in pairs, a power of two */
} pair_set;

typedef struct kept {
    tm_trace *t;
    tm_regions reg;
    const char *name;
    uint8_t *match;             /* by string id: 0 unknown, 1 the region, 2 not */
    uint32_t nmatch;
    table groups;
    pair_set seen;
    int oom;
} kept;

static uint64_t mix(uint64_t a, uint64_t b)
{
    return (a * 0x9e3779b97f4a7c15ull) ^ (b * 0xc2b2ae3d27d4eb4full) ^ (a >> 29);
}

static kept_group *table_get(table *g, uint64_t key)
{
    if (2 * (g->n + 1) > g->icap) {
        size_t icap = g->icap ? 2 * g->icap : 256;
        uint32_t *ix = calloc(icap, sizeof *ix);
        if (!ix)
            return NULL;
        for (size_t i = 0; i < g->n; i++) {
            size_t k = mix(g->v[i].key, 0) & (icap - 1);
            while (ix[k])
                k = (k + 1) & (icap - 1);
            ix[k] = (uint32_t)(i + 1);
        }
        free(g->index);
        g->index = ix;
        g->icap = icap;
    }
    size_t k = mix(key, 0) & (g->icap - 1);
    for (; g->index[k]; k = (k + 1) & (g->icap - 1))
        if (g->v[g->index[k] - 1].key == key)
            return &g->v[g->index[k] - 1];
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        kept_group *v = realloc(g->v, cap * sizeof *v);
        if (!v)
            return NULL;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n] = (kept_group){.key = key, .stack = key};
    g->index[k] = (uint32_t)++g->n;
    return &g->v[g->n - 1];
}

static void table_free(table *g)
{
    free(g->v);
    free(g->index);
    memset(g, 0, sizeof *g);
}

/* Adds the pair; true when it was new, false when seen (or out of memory,
 * flagged in *oom). */
static bool pair_add(pair_set *s, uint64_t a, uint64_t b, int *oom)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        uint64_t *v = calloc(2 * cap, sizeof *v);
        if (!v) {
            *oom = 1;
            return false;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->v[2 * i + 1])
                continue;
            size_t k = mix(s->v[2 * i], s->v[2 * i + 1]) & (cap - 1);
            while (v[2 * k + 1])
                k = (k + 1) & (cap - 1);
            v[2 * k] = s->v[2 * i];
            v[2 * k + 1] = s->v[2 * i + 1];
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    b++;
    size_t k = mix(a, b) & (s->cap - 1);
    for (; s->v[2 * k + 1]; k = (k + 1) & (s->cap - 1))
        if (s->v[2 * k] == a && s->v[2 * k + 1] == b)
            return false;
    s->v[2 * k] = a;
    s->v[2 * k + 1] = b;
    s->n++;
    return true;
}

static bool is_region(kept *k, uint32_t name)
{
    if (name >= k->nmatch) {
        uint32_t n = k->nmatch ? k->nmatch : 64;
        while (n <= name)
            n *= 2;
        uint8_t *m = realloc(k->match, n);
        if (!m) {
            k->oom = 1;
            return false;
        }
        memset(m + k->nmatch, 0, n - k->nmatch);
        k->match = m;
        k->nmatch = n;
    }
    if (!k->match[name])
        k->match[name] = tm_trace_region_is(k->t, name, k->name) ? 1 : 2;
    return k->match[name] == 1;
}

/* The innermost ended invocation of the region that holds the block, or -1. */
static int64_t keeper(kept *k, const tm_block *b)
{
    uint32_t chain[256];
    int n = tm_regions_chain(&k->reg, b->region, b->invocation, chain, 256);
    for (int i = 0; i < n; i++)
        if (!tm_regions_node_open(&k->reg, chain[i]) &&
            is_region(k, tm_regions_node_name(&k->reg, chain[i])))
            return chain[i];
    return -1;
}

static void add_kept(kept *k, const tm_block *b, uint64_t freed_ns, bool freed)
{
    int64_t node = keeper(k, b);
    if (node < 0)
        return;
    uint64_t key = tm_view_key(b->stack, b->pystack);
    kept_group *g = table_get(&k->groups, key);
    if (!g) {
        k->oom = 1;
        return;
    }
    g->bytes += b->size;
    g->blocks++;
    if (freed) {
        g->freed_later++;
        if (freed_ns > g->last_free_ns)
            g->last_free_ns = freed_ns;
    }
    if (pair_add(&k->seen, key, (uint64_t)node, &k->oom))
        g->invocations++;
}

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    kept *k = arg;
    (void)t;
    if (tm_regions_event(&k->reg, ev, freed))
        return 1;
    if (ev->kind == TM_EV_FREE && freed && freed->region)
        add_kept(k, freed, ev->time_ns, true);
    return k->oom;
}

static int add_live(const tm_block *b, void *arg)
{
    kept *k = arg;
    if (b->region)
        add_kept(k, b, 0, false);
    return k->oom;
}

static int by_bytes(const void *a, const void *b)
{
    const kept_group *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

/* One group per site: the distinct stacks folded in, the largest shown. */
static int fold_sites(kept *k, table *out)
{
    memset(out, 0, sizeof *out);
    qsort(k->groups.v, k->groups.n, sizeof *k->groups.v, by_bytes);
    for (size_t i = 0; i < k->groups.n; i++) {
        const kept_group *s = &k->groups.v[i];
        kept_group *g = table_get(out, tm_stack_site(k->t, s->key));
        if (!g)
            return -ENOMEM;
        if (!g->stacks || s->bytes > g->largest) {
            g->stack = s->stack;
            g->largest = s->bytes;
        }
        g->stacks++;
        g->bytes += s->bytes;
        g->blocks += s->blocks;
        g->freed_later += s->freed_later;
        g->invocations += s->invocations;
        if (s->last_free_ns > g->last_free_ns)
            g->last_free_ns = s->last_free_ns;
    }
    qsort(out->v, out->n, sizeof *out->v, by_bytes);
    return 0;
}

int tm_cmd_kept(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"region", required_argument, NULL, 'r'},
        TM_STACK_OPTIONS,
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int json = 0, c, r;
    tm_stack_opts so = {.limit = -1, .depth = -1};
    const char *name = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jr:n:d:h", opts, NULL)) != -1) {
        if ((r = tm_stack_option("kept", c, &so)) != 0) {
            if (r < 0)
                return TM_EXIT_BAD_INPUT;
            continue;
        }
        switch (c) {
        case 'j': json = 1; break;
        case 'r': name = optarg; break;
        case 'h': fputs(kept_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("kept", argv);
        }
    }
    if (argc - optind != 1)
        return tm_usage_error("kept", "expected one TRACE");
    if (!name)
        return tm_usage_error("kept", "--region NAME is required");

    kept k = {.name = name};
    tm_trace t;
    int rc = tm_trace_open(&t, argv[optind]);
    if (rc)
        return rc;
    k.t = &t;
    tm_regions_init(&k.reg);
    table sites = {0};
    if (tm_trace_scan(&t, feed, &k))
        goto fail;
    if (!tm_trace_has_region(&t, name)) {
        tm_error("%s: no region named '%s' in the trace", t.path, name);
        rc = TM_EXIT_BAD_INPUT;
        goto out;
    }
    tm_regions_finish(&k.reg, &t);
    if (tm_heap_foreach(t.heap, add_live, &k) || k.oom || fold_sites(&k, &sites) < 0)
        goto fail;

    uint64_t invocations = 0, keeping = 0, bytes = 0, blocks = 0, freed_later = 0;
    double acc = 0;
    tm_region_stats *v;
    size_t n = tm_regions_sorted(&k.reg, &t, &v);
    for (size_t i = 0; i < n; i++) {
        if (!tm_trace_region_is(&t, v[i].name, name))
            continue;
        invocations += v[i].invocations;
        keeping += v[i].incl.invocations_keeping;
        double a = tm_region_accumulation(&v[i]);
        acc = a > acc ? a : acc;
    }
    free(v);
    for (size_t i = 0; i < sites.n; i++) {
        bytes += sites.v[i].bytes;
        blocks += sites.v[i].blocks;
        freed_later += sites.v[i].freed_later;
    }
    size_t shown = 0, max_shown = tm_stack_opts_shown(&so, json);
    if (json) {
        tm_json j;
        tm_json_report(&j, stdout);
        tm_json_kstr(&j, "region", name);
        tm_json_ku64(&j, "invocations", invocations);
        tm_json_ku64(&j, "invocations_keeping", keeping);
        tm_json_ku64(&j, "kept_bytes", bytes);
        tm_json_ku64(&j, "kept_blocks", blocks);
        tm_json_ku64(&j, "freed_later_blocks", freed_later);
        tm_json_kdouble(&j, "kept_per_invocation", acc);
        tm_json_kbool(&j, "accumulates", acc > TM_KEPT_THRESHOLD);
        tm_json_key(&j, "groups");
        tm_json_array(&j);
        for (size_t i = 0; i < sites.n && shown < max_shown; i++, shown++) {
            const kept_group *g = &sites.v[i];
            tm_json_object(&j);
            tm_json_ku64(&j, "bytes", g->bytes);
            tm_json_ku64(&j, "blocks", g->blocks);
            tm_json_ku64(&j, "invocations", g->invocations);
            tm_json_ku64(&j, "freed_later_blocks", g->freed_later);
            tm_json_key(&j, "last_free");
            if (g->freed_later)
                tm_json_double(&j, tm_seconds(g->last_free_ns));
            else
                tm_json_null(&j);
            tm_json_ku64(&j, "stacks", g->stacks);
            tm_json_key(&j, "stack");
            tm_stack_json(&j, &t, g->stack, tm_stack_opts_depth(&so, 1));
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        char a[32], b[32];
        printf("region '%s' (with the regions nested in it): %" PRIu64 " invocation%s, %" PRIu64
               " kept memory past their end: %s in %" PRIu64 " block%s, %" PRIu64
               " of them freed later, %" PRIu64 " never\n",
               name, invocations, invocations == 1 ? "" : "s", keeping,
               tm_human_bytes(bytes, a), blocks, blocks == 1 ? "" : "s", freed_later,
               blocks - freed_later);
        printf("live memory of '%s' grows by %s per invocation (fitted over its invocations): %s\n",
               name, tm_human_bytes((uint64_t)(acc > 0 ? acc : 0), b),
               acc > TM_KEPT_THRESHOLD ? "it keeps memory call after call"
                                       : "it does not accumulate");
        for (size_t i = 0; i < sites.n && shown < max_shown; i++, shown++) {
            const kept_group *g = &sites.v[i];
            printf("\n%s in %" PRIu64 " block%s (%.1f%%) kept by %" PRIu64 " invocation%s",
                   tm_human_bytes(g->bytes, a), g->blocks, g->blocks == 1 ? "" : "s",
                   bytes ? 100.0 * (double)g->bytes / (double)bytes : 0.0, g->invocations,
                   g->invocations == 1 ? "" : "s");
            if (g->freed_later)
                printf(", %" PRIu64 " freed later (the last at %.3f s)", g->freed_later,
                       tm_seconds(g->last_free_ns));
            else
                printf(", never freed");
            if (g->stacks > 1)
                printf("; one site, %" PRIu64 " stacks (largest shown)", g->stacks);
            printf(", allocated at:\n");
            tm_stack_print(stdout, &t, g->stack, tm_stack_opts_depth(&so, 0), "  ");
        }
        if (sites.n > shown)
            printf("\n... %zu more sites (--limit to show them)\n", sites.n - shown);
    }
    rc = TM_EXIT_OK;
out:
    table_free(&sites);
    table_free(&k.groups);
    free(k.seen.v);
    free(k.match);
    tm_regions_free(&k.reg);
    {
        int crc = tm_trace_close(&t);
        return rc ? rc : crc;
    }
fail:
    if (k.oom || k.reg.oom)
        tm_error("%s: out of memory", t.path);
    table_free(&sites);
    table_free(&k.groups);
    free(k.seen.v);
    free(k.match);
    tm_regions_free(&k.reg);
    tm_trace_close(&t);
    return TM_EXIT_FAIL;
}
