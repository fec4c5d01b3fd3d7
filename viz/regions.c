/* regions.c — see regions.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "regions.h"

struct tm_open_inv {
    uint32_t name;              /* 0 = empty slot */
    uint64_t invocation;
    uint64_t allocs, frees;
    uint64_t bytes, freed_bytes;
};

void tm_regions_init(tm_regions *r)
{
    memset(r, 0, sizeof *r);
}

void tm_regions_free(tm_regions *r)
{
    free(r->by_name);
    free(r->open);
    memset(r, 0, sizeof *r);
}

static void stat_add(tm_stat *s, int64_t v)
{
    if (s->n == 0 || v < s->min)
        s->min = v;
    if (s->n == 0 || v > s->max)
        s->max = v;
    s->n++;
    s->total += v;
}

double tm_stat_mean(const tm_stat *s)
{
    return s->n ? (double)s->total / (double)s->n : 0.0;
}

static tm_region_stats *stats_of(tm_regions *r, uint32_t name)
{
    if (name >= r->nnames) {
        uint32_t n = r->nnames ? r->nnames : 64;
        while (n <= name)
            n *= 2;
        tm_region_stats *v = realloc(r->by_name, n * sizeof *v);
        if (!v) {
            r->oom = 1;
            return NULL;
        }
        memset(v + r->nnames, 0, (n - r->nnames) * sizeof *v);
        r->by_name = v;
        r->nnames = n;
    }
    tm_region_stats *s = &r->by_name[name];
    s->name = name;
    return s;
}

static uint64_t inv_slot(uint32_t name, uint64_t inv, uint64_t mask)
{
    return ((inv * 0x9e3779b97f4a7c15ull) ^ (name * 0xc2b2ae3d27d4eb4full)) >> 17 & mask;
}

/* The open invocation's slot, or NULL when it is not open. */
static tm_open_inv *find_open(tm_regions *r, uint32_t name, uint64_t inv)
{
    if (!r->open_cap)
        return NULL;
    uint64_t mask = r->open_cap - 1;
    for (uint64_t i = inv_slot(name, inv, mask); r->open[i].name; i = (i + 1) & mask)
        if (r->open[i].name == name && r->open[i].invocation == inv)
            return &r->open[i];
    return NULL;
}

static int grow_open(tm_regions *r)
{
    uint64_t cap = r->open_cap ? 2 * r->open_cap : 64;
    tm_open_inv *v = calloc(cap, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (uint64_t i = 0; i < r->open_cap; i++) {
        if (!r->open[i].name)
            continue;
        uint64_t k = inv_slot(r->open[i].name, r->open[i].invocation, cap - 1);
        while (v[k].name)
            k = (k + 1) & (cap - 1);
        v[k] = r->open[i];
    }
    free(r->open);
    r->open = v;
    r->open_cap = cap;
    return 0;
}

static void open_inv(tm_regions *r, uint32_t name, uint64_t inv)
{
    if (2 * (r->open_count + 1) > r->open_cap && grow_open(r) < 0) {
        r->oom = 1;
        return;
    }
    uint64_t mask = r->open_cap - 1;
    uint64_t i = inv_slot(name, inv, mask);
    while (r->open[i].name)
        i = (i + 1) & mask;
    r->open[i] = (tm_open_inv){.name = name, .invocation = inv};
    r->open_count++;
}

/* Folds a finished invocation into its name's statistics. */
static void close_counts(tm_regions *r, const tm_open_inv *o)
{
    tm_region_stats *s = stats_of(r, o->name);
    if (!s)
        return;
    int64_t net = (int64_t)o->bytes - (int64_t)o->freed_bytes;
    s->invocations++;
    stat_add(&s->allocs, (int64_t)o->allocs);
    stat_add(&s->frees, (int64_t)o->frees);
    stat_add(&s->bytes, (int64_t)o->bytes);
    stat_add(&s->net, net);
    if (net > 0)
        s->net_positive++;
    else if (net < 0)
        s->net_negative++;
    else
        s->net_zero++;
}

/* Removes slot o, shifting later entries of its run back. */
static void remove_open(tm_regions *r, tm_open_inv *o)
{
    uint64_t mask = r->open_cap - 1;
    uint64_t hole = (uint64_t)(o - r->open);
    for (uint64_t j = (hole + 1) & mask; r->open[j].name; j = (j + 1) & mask) {
        uint64_t home = inv_slot(r->open[j].name, r->open[j].invocation, mask);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            r->open[hole] = r->open[j];
            hole = j;
        }
    }
    r->open[hole].name = 0;
    r->open_count--;
}

int tm_regions_event(tm_regions *r, const tm_event *ev, const tm_block *freed)
{
    tm_open_inv *o;
    switch (ev->kind) {
    case TM_EV_REGION_BEGIN:
        if (ev->region)
            open_inv(r, ev->region, ev->invocation);
        break;
    case TM_EV_REGION_END:
        if ((o = find_open(r, ev->region, ev->invocation))) {
            close_counts(r, o);
            remove_open(r, o);
        }
        break;
    case TM_EV_ALLOC:
        if (ev->region && (o = find_open(r, ev->region, ev->invocation))) {
            o->allocs++;
            o->bytes += ev->size;
        }
        break;
    case TM_EV_FREE:
        if (ev->region && (o = find_open(r, ev->region, ev->invocation))) {
            o->frees++;
            if (freed)
                o->freed_bytes += freed->size;
        }
        /* A block from an invocation that has ended escaped it. */
        if (freed && freed->region && !find_open(r, freed->region, freed->invocation)) {
            tm_region_stats *s = stats_of(r, freed->region);
            if (s) {
                s->escaped_blocks++;
                s->escaped_bytes += freed->size;
            }
        }
        break;
    case TM_EV_REALLOC_FAIL:
        /* The release just counted did not happen. */
        if (ev->region && (o = find_open(r, ev->region, ev->invocation)) && o->frees) {
            o->frees--;
        }
        break;
    }
    return r->oom;
}

static int count_leak(const tm_block *b, void *arg)
{
    tm_regions *r = arg;
    if (b->region) {
        tm_region_stats *s = stats_of(r, b->region);
        if (s) {
            s->leaked_blocks++;
            s->leaked_bytes += b->size;
        }
    }
    return 0;
}

void tm_regions_finish(tm_regions *r, tm_trace *t)
{
    /* Invocations open when tracing stopped end there. */
    for (uint64_t i = 0; i < r->open_cap; i++)
        if (r->open[i].name)
            close_counts(r, &r->open[i]);
    memset(r->open, 0, r->open_cap * sizeof *r->open);
    r->open_count = 0;
    tm_heap_foreach(t->heap, count_leak, r);
}

static tm_trace *sort_trace;

static int by_invocations(const void *a, const void *b)
{
    const tm_region_stats *x = a, *y = b;
    if (x->invocations != y->invocations)
        return x->invocations > y->invocations ? -1 : 1;
    const char *nx = tm_reader_string(sort_trace->reader, x->name);
    const char *ny = tm_reader_string(sort_trace->reader, y->name);
    return strcmp(nx ? nx : "", ny ? ny : "");
}

size_t tm_regions_sorted(const tm_regions *r, tm_trace *t, tm_region_stats **out)
{
    size_t n = 0;
    *out = malloc((r->nnames ? r->nnames : 1) * sizeof **out);
    if (!*out)
        return 0;
    for (uint32_t i = 1; i < r->nnames; i++) {
        const tm_region_stats *s = &r->by_name[i];
        if (s->invocations || s->leaked_blocks || s->escaped_blocks)
            (*out)[n++] = *s;
    }
    sort_trace = t;
    qsort(*out, n, sizeof **out, by_invocations);
    return n;
}

bool tm_region_retains(const tm_region_stats *s)
{
    /* Judged per invocation only with enough invocations to tell a leak
     * per call from one-off growth (a cache, an arena). */
    return s->invocations >= TM_RETAIN_MIN_INVOCATIONS && 2 * s->net_positive > s->invocations;
}

void tm_stat_json(tm_json *j, const char *key, const tm_stat *s)
{
    tm_json_key(j, key);
    tm_json_object(j);
    tm_json_ki64(j, "min", s->n ? s->min : 0);
    tm_json_kdouble(j, "mean", tm_stat_mean(s));
    tm_json_ki64(j, "max", s->n ? s->max : 0);
    tm_json_ki64(j, "total", s->total);
    tm_json_object_end(j);
}
