/* report_scan.c — the two passes over a trace behind `tidemark report`
 * (see report_data.h): the first finds the heap peak's event and the
 * duration, which sets the time bins; the second feeds the regions
 * analysis and the timeline and counts every view. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report_data.h"
#include "suppress.h"

/* --- pass 1: when the peak was, how long the trace is ------------------------------ */

typedef struct first_pass {
    uint64_t n, at, bytes;
} first_pass;

static int find_peak(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    first_pass *p = arg;
    (void)freed;
    p->n++;
    if (ev->kind == TM_EV_ALLOC && tm_heap_live_bytes(t->heap) > p->bytes) {
        p->bytes = tm_heap_live_bytes(t->heap);
        p->at = p->n;
    }
    return 0;
}

/* --- the time-range view ------------------------------------------------------------ */

static unsigned bin_of(const tm_report_trace *r, uint64_t t_ns)
{
    uint64_t b = t_ns / r->bin_ns;
    return b >= r->bins ? r->bins - 1 : (unsigned)b;
}

/* Halves the bins: cells whose two bins fall together are alive at no
 * boundary any more and go. */
static int range_coarsen(tm_report_trace *r)
{
    tm_tally old = r->range, out = {0};
    unsigned bins = r->bins / 2;
    for (size_t i = 0; i < old.cap; i++) {
        const tm_tally_entry *e = &old.v[i];
        if (!e->used)
            continue;
        unsigned a = (e->extra >> 16) / 2, f = e->extra & 0xffff;
        f = f >= r->bins ? bins : f / 2;
        if (f > a && tm_tally_add(&out, e->stack, a << 16 | f, e->bytes, e->blocks) < 0) {
            tm_tally_free(&out);
            return -ENOMEM;
        }
    }
    tm_tally_free(&old);
    r->range = out;
    r->bins = bins;
    r->bin_ns *= 2;
    return 0;
}

/* A block's life: allocated in its bin, freed in fbin (bins = never). */
static int range_add(tm_report_trace *r, const tm_block *b, unsigned fbin)
{
    unsigned abin = bin_of(r, b->time_ns);
    if (fbin <= abin)
        return 0;
    if (tm_tally_add(&r->range, tm_view_key(b->stack, b->pystack), abin << 16 | fbin, b->size,
                     1) < 0)
        return -ENOMEM;
    while (r->range.n > TM_REPORT_RANGE_CELLS && r->bins > 1)
        if (range_coarsen(r) < 0)
            return -ENOMEM;
    return 0;
}

/* --- the kept view ------------------------------------------------------------------- */

/* A block freed (or live at exit) after invocations holding it ended was
 * kept by each of them: counted once per region name, for the innermost
 * ended invocation of that name (what `tidemark kept --region` counts). */
static int kept_add(tm_report_trace *r, const tm_block *b)
{
    uint32_t chain[256], names[256];
    int n = tm_regions_chain(&r->regions, b->region, b->invocation, chain, 256), nn = 0;
    for (int i = 0; i < n; i++) {
        if (tm_regions_node_open(&r->regions, chain[i]))
            continue;
        uint32_t name = tm_regions_node_name(&r->regions, chain[i]);
        bool seen = false;
        for (int k = 0; k < nn && !seen; k++)
            seen = names[k] == name;
        if (seen)
            continue;
        names[nn++] = name;
        if (tm_tally_add(&r->kept, tm_view_key(b->stack, b->pystack), name, b->size, 1) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* --- the heap curve ------------------------------------------------------------------ */

static void heap_add(tm_report_trace *r, uint64_t t_ns, uint64_t live)
{
    uint64_t k = t_ns / r->heap_ns;
    tm_heap_bucket *b = &r->heap[k < TM_REPORT_POINTS ? k : TM_REPORT_POINTS - 1];
    if (!b->seen || live < b->lo)
        b->lo = live;
    if (!b->seen || live > b->hi)
        b->hi = live;
    b->last = live;
    b->seen = true;
}

/* --- pass 2 ------------------------------------------------------------------------ */

static int add_peak(const tm_block *b, void *arg)
{
    return tm_groups_add(arg, tm_view_key(b->stack, b->pystack), b->size, 1) < 0;
}

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    tm_report_trace *r = arg;
    r->nev++;
    if (tm_regions_event(&r->regions, ev, freed) || tm_timeline_event(&r->tl, t, ev))
        return r->oom = 1;
    int rc = 0;
    switch (ev->kind) {
    case TM_EV_ALLOC:
        heap_add(r, ev->time_ns, tm_heap_live_bytes(t->heap));
        rc = tm_tally_add(&r->alloc, tm_view_key(ev->stack, ev->pystack), 0, ev->size, 1);
        break;
    case TM_EV_FREE:
        if (!freed)
            break;
        heap_add(r, ev->time_ns, tm_heap_live_bytes(t->heap));
        rc = range_add(r, freed, bin_of(r, ev->time_ns));
        if (!rc && freed->region)
            rc = kept_add(r, freed);
        break;
    case TM_EV_MARK:
        if (r->param <= 0 && r->param_name) {
            const char *s = tm_reader_string(t->reader, ev->label);
            size_t n = strlen(r->param_name);
            if (s && !strncmp(s, r->param_name, n) && s[n] == '=')
                r->param = strtod(s + n + 1, NULL);
        }
        break;
    }
    if (!rc && r->nev == r->peak_at) {
        r->peak_bytes = tm_heap_live_bytes(t->heap);
        r->peak_blocks = tm_heap_live_blocks(t->heap);
        rc = tm_heap_foreach(t->heap, add_peak, &r->peak);
    }
    if (rc)
        r->oom = 1;
    return r->oom;
}

/* A block live at exit: in the time-range and kept views, and leaked
 * unless a built-in rule by block takes it, as in `leaks` (stack rules are
 * applied to the groups afterwards). */
static int add_exit(const tm_block *b, void *arg)
{
    tm_report_trace *r = arg;
    if (range_add(r, b, r->bins) < 0 || (b->region && kept_add(r, b) < 0))
        return 1;
    if (tm_block_rule(r->rules, b) >= 0) {
        r->sup_bytes += b->size;
        r->sup_blocks++;
        return 0;
    }
    return tm_groups_add(&r->leaked, tm_view_key(b->stack, b->pystack), b->size, 1) < 0;
}

int tm_report_trace_load(tm_report_trace *r, const char *path, const char *param)
{
    int rc;
    memset(r, 0, sizeof *r);
    r->path = path;
    r->param_name = param;
    tm_timeline_init(&r->tl, NULL);
    tm_regions_init(&r->regions);
    tm_groups_init(&r->peak);
    tm_groups_init(&r->leaked);
    if ((rc = tm_trace_open(&r->t, path)))
        return rc;
    /* Pass 1: the peak's event and the duration, which sets the bins. */
    first_pass p = {0};
    int failed = tm_trace_scan(&r->t, find_peak, &p);
    r->duration_ns = r->t.sum.last_time_ns;
    tm_trace_discard(&r->t);
    if (failed)
        return TM_EXIT_FAIL;
    if ((rc = tm_trace_open(&r->t, path)))
        return rc;
    r->opened = 1;
    r->peak_at = p.at;
    r->bins = TM_REPORT_BINS;
    r->bin_ns = r->duration_ns / TM_REPORT_BINS + 1;
    r->heap_ns = r->duration_ns / TM_REPORT_POINTS + 1;
    if (!(r->heap = calloc(TM_REPORT_POINTS, sizeof *r->heap)))
        goto oom;
    if (tm_trace_scan(&r->t, feed, r) || r->oom)
        goto oom;
    tm_regions_finish(&r->regions, &r->t);
    tm_timeline_finish(&r->tl, &r->t);
    if (r->regions.oom)
        goto oom;
    r->nstats = tm_regions_sorted(&r->regions, &r->t, &r->stats);
    tm_block_rules rules;
    r->rules = &rules;
    int failed_exit = tm_block_rules_init(&rules, &r->t) < 0 ||
                      tm_heap_foreach(r->t.heap, add_exit, r) || rules.oom;
    tm_block_rules_free(&rules);
    r->rules = NULL;
    if (failed_exit)
        goto oom;

    /* The leak verdict is `leaks`' one: built-in suppressions applied. */
    tm_groups_sort_by_bytes(&r->leaked);
    for (size_t i = 0; i < r->leaked.n; i++) {
        tm_group *g = &r->leaked.v[i];
        g->suppressed = tm_default_match(&r->t, g->stack) >= 0;
        if (g->suppressed) {
            r->sup_bytes += g->bytes;
            r->sup_blocks += g->blocks;
        } else {
            r->leaked_bytes += g->bytes;
            r->leaked_blocks += g->blocks;
        }
    }
    if (tm_reader_state(r->t.reader) != TM_READ_COMPLETE) {
        r->damaged = 1;
        snprintf(r->error, sizeof r->error, "%s", tm_reader_error(r->t.reader));
    } else if (r->t.sum.end_reason == TM_END_WRITE_FAILED) {
        r->damaged = 1;
        snprintf(r->error, sizeof r->error, "writing the trace failed: %s",
                 strerror(r->t.sum.end_detail));
    }
    return 0;
oom:
    tm_error("%s: out of memory building the report", path);
    return TM_EXIT_FAIL;
}

int tm_report_trace_free(tm_report_trace *r)
{
    int rc = 0;
    tm_timeline_free(&r->tl);
    tm_regions_free(&r->regions);
    free(r->stats);
    tm_groups_free(&r->peak);
    tm_groups_free(&r->leaked);
    tm_tally_free(&r->alloc);
    tm_tally_free(&r->kept);
    tm_tally_free(&r->range);
    free(r->heap);
    if (r->opened)
        rc = tm_trace_close(&r->t);
    memset(r, 0, sizeof *r);
    return rc;
}
