/* regions.c — see regions.h.
 *
 * State: one node per invocation (kept to the end: a block names its
 * innermost invocation, and its free may come at any later time), a hash
 * (name, invocation) -> node, the details of open invocations in a pool,
 * and per thread the stack of its open invocations (the parent of a new
 * invocation is the top of its thread's stack).  An allocation adds its
 * size to the live bytes of its node and of every node around it; its
 * free takes it off the same nodes, which is how an invocation's kept
 * bytes (live when it ends) count what nested regions kept. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "regions.h"

struct tm_inv_node {
    uint64_t invocation;
    int64_t live;               /* bytes allocated in it or nested, still live */
    uint32_t name;
    uint32_t parent;            /* node + 1 of the enclosing invocation, 0 = none */
    uint32_t open;              /* tm_inv_open + 1 while open, 0 = ended */
    uint32_t row;               /* row + 1 when rows are kept for its name */
};

struct tm_inv_open {
    uint64_t start_ns;
    uint64_t allocs, frees, bytes, freed;       /* own: events while innermost */
    uint64_t iallocs, ifrees, ibytes, ifreed;   /* inclusive */
    int64_t live_own, peak_own, peak;
    uint32_t next_free;         /* free list, + 1 */
    bool nested;
};

struct tm_region_thread {
    uint32_t *stack;            /* open nodes, outermost first */
    uint32_t n, cap;
    /* The block the thread's last free released, for REALLOC_FAIL. */
    uint64_t stash_addr, stash_size;
    uint32_t stash_region;
    uint64_t stash_invocation;
    bool stash_valid;
};

#define MAX_CHAIN 256

void tm_regions_init(tm_regions *r)
{
    memset(r, 0, sizeof *r);
}

void tm_regions_free(tm_regions *r)
{
    for (uint32_t i = 0; i < r->nthreads; i++)
        free(r->threads[i].stack);
    free(r->threads);
    free(r->by_name);
    free(r->nodes);
    free(r->index);
    free(r->open);
    free(r->name_live);
    free(r->rows);
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

/* Grows a vector of `size`-byte elements to hold `need`, zeroing the new
 * part; false when memory ran out. */
static bool grow(void **v, uint64_t *cap, uint64_t need, size_t size)
{
    if (need <= *cap)
        return true;
    uint64_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*v, n * size);
    if (!p)
        return false;
    memset((char *)p + *cap * size, 0, (n - *cap) * size);
    *v = p;
    *cap = n;
    return true;
}

static tm_region_stats *stats_of(tm_regions *r, uint32_t name)
{
    if (name >= r->nnames) {
        uint64_t cap = r->nnames;
        if (!grow((void **)&r->by_name, &cap, (uint64_t)name + 1, sizeof *r->by_name)) {
            r->oom = 1;
            return NULL;
        }
        r->nnames = (uint32_t)cap;
    }
    tm_region_stats *s = &r->by_name[name];
    s->name = name;
    return s;
}

static int64_t *name_live_of(tm_regions *r, uint32_t name)
{
    if (name >= r->name_live_cap) {
        uint64_t cap = r->name_live_cap;
        if (!grow((void **)&r->name_live, &cap, (uint64_t)name + 1, sizeof *r->name_live)) {
            r->oom = 1;
            return NULL;
        }
        r->name_live_cap = (uint32_t)cap;
    }
    return &r->name_live[name];
}

void tm_regions_want_rows(tm_regions *r, uint32_t name)
{
    tm_region_stats *s = stats_of(r, name);
    if (s)
        s->rows = true;
}

static tm_region_thread *thread_of(tm_regions *r, uint32_t thread)
{
    if (thread >= r->nthreads) {
        uint64_t cap = r->nthreads;
        if (thread > (1u << 24) ||
            !grow((void **)&r->threads, &cap, (uint64_t)thread + 1, sizeof *r->threads)) {
            r->oom = 1;
            return NULL;
        }
        r->nthreads = (uint32_t)cap;
    }
    return &r->threads[thread];
}

/* --- the (name, invocation) -> node index ------------------------------------ */

static uint64_t slot_of(uint32_t name, uint64_t inv, uint64_t mask)
{
    return ((inv * 0x9e3779b97f4a7c15ull) ^ (name * 0xc2b2ae3d27d4eb4full)) >> 17 & mask;
}

static tm_inv_node *find_node(const tm_regions *r, uint32_t name, uint64_t inv)
{
    if (!r->index_cap || !name)
        return NULL;
    uint64_t mask = r->index_cap - 1;
    for (uint64_t i = slot_of(name, inv, mask); r->index[i]; i = (i + 1) & mask) {
        tm_inv_node *n = &r->nodes[r->index[i] - 1];
        if (n->name == name && n->invocation == inv)
            return n;
    }
    return NULL;
}

static void index_put(uint32_t *index, uint64_t cap, const tm_inv_node *n, uint32_t value)
{
    uint64_t k = slot_of(n->name, n->invocation, cap - 1);
    while (index[k])
        k = (k + 1) & (cap - 1);
    index[k] = value;
}

static bool index_grow(tm_regions *r)
{
    if (2 * (r->nnodes + 1) <= r->index_cap)
        return true;
    uint64_t cap = r->index_cap ? 2 * r->index_cap : 256;
    uint32_t *v = calloc(cap, sizeof *v);
    if (!v)
        return false;
    for (uint64_t i = 0; i < r->nnodes; i++)
        index_put(v, cap, &r->nodes[i], (uint32_t)(i + 1));
    free(r->index);
    r->index = v;
    r->index_cap = cap;
    return true;
}

/* --- open and close ------------------------------------------------------------ */

static tm_inv_open *open_of(tm_regions *r, const tm_inv_node *n)
{
    return n->open ? &r->open[n->open - 1] : NULL;
}

static void begin(tm_regions *r, const tm_event *ev)
{
    if (!ev->region || find_node(r, ev->region, ev->invocation))
        return;
    tm_region_thread *th = thread_of(r, ev->thread);
    tm_region_stats *s = stats_of(r, ev->region);
    if (!th || !s || r->nnodes >= UINT32_MAX - 1 || !index_grow(r) ||
        !grow((void **)&r->nodes, &r->nodes_cap, r->nnodes + 1, sizeof *r->nodes)) {
        r->oom = 1;
        return;
    }
    uint32_t o;
    if (r->open_free) {
        o = r->open_free - 1;
        r->open_free = r->open[o].next_free;
    } else {
        uint64_t cap = r->open_cap;
        if (!grow((void **)&r->open, &cap, (uint64_t)r->nopen + 1, sizeof *r->open)) {
            r->oom = 1;
            return;
        }
        r->open_cap = (uint32_t)cap;
        o = r->nopen++;
    }
    uint64_t cap = th->cap;
    if (!grow((void **)&th->stack, &cap, (uint64_t)th->n + 1, sizeof *th->stack)) {
        r->oom = 1;
        return;
    }
    th->cap = (uint32_t)cap;
    uint32_t idx = (uint32_t)r->nnodes++;
    tm_inv_node *n = &r->nodes[idx];
    *n = (tm_inv_node){.invocation = ev->invocation, .name = ev->region,
                       .parent = th->n ? th->stack[th->n - 1] + 1 : 0, .open = o + 1};
    r->open[o] = (tm_inv_open){.start_ns = ev->time_ns};
    if (n->parent)
        r->open[r->nodes[n->parent - 1].open - 1].nested = true;
    index_put(r->index, r->index_cap, n, idx + 1);
    th->stack[th->n++] = idx;
    if (s->rows) {
        if (!grow((void **)&r->rows, &r->rows_cap, r->nrows + 1, sizeof *r->rows)) {
            r->oom = 1;
            return;
        }
        r->rows[r->nrows] = (tm_region_row){.invocation = ev->invocation,
                                             .start_ns = ev->time_ns, .node = idx};
        n->row = (uint32_t)++r->nrows;
    }
}

/* Folds an ending invocation into its name's statistics. */
static void close_node(tm_regions *r, tm_inv_node *n, uint64_t time_ns)
{
    tm_inv_open *o = open_of(r, n);
    tm_region_stats *s = stats_of(r, n->name);
    if (!o || !s)
        return;
    int64_t net = (int64_t)o->bytes - (int64_t)o->freed;
    int64_t inet = (int64_t)o->ibytes - (int64_t)o->ifreed;
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
    s->own.allocs = s->allocs;
    s->own.frees = s->frees;
    s->own.bytes = s->bytes;
    s->own.net = s->net;
    stat_add(&s->own.kept, o->live_own);
    stat_add(&s->own.peak, o->peak_own);
    s->own.invocations_keeping += o->live_own > 0;
    stat_add(&s->incl.allocs, (int64_t)o->iallocs);
    stat_add(&s->incl.frees, (int64_t)o->ifrees);
    stat_add(&s->incl.bytes, (int64_t)o->ibytes);
    stat_add(&s->incl.net, inet);
    stat_add(&s->incl.kept, n->live);
    stat_add(&s->incl.peak, o->peak);
    s->incl.invocations_keeping += n->live > 0;
    s->nested |= o->nested;
    int64_t *nl = name_live_of(r, n->name);
    int64_t l = nl ? *nl : 0;
    double k = (double)++s->ends;
    s->sk += k;
    s->skk += k * k;
    s->sl += (double)l;
    s->skl += k * (double)l;
    if (s->ends == 1)
        s->first_live = l;
    s->last_live = l;
    if (n->row) {
        tm_region_row *row = &r->rows[n->row - 1];
        row->end_ns = time_ns;
        row->allocs = o->iallocs;
        row->net_bytes = inet;
        row->kept_bytes = n->live;
        row->peak_bytes = o->peak;
    }
    o->next_free = r->open_free;
    r->open_free = n->open;
    n->open = 0;
}

static void end(tm_regions *r, const tm_event *ev)
{
    tm_inv_node *n = find_node(r, ev->region, ev->invocation);
    if (!n || !n->open)
        return;
    uint32_t idx = (uint32_t)(n - r->nodes);
    tm_region_thread *th = thread_of(r, ev->thread);
    if (th) {
        /* Regions nest per thread: what is open above it ends with it. */
        for (uint32_t i = th->n; i-- > 0;) {
            if (th->stack[i] != idx)
                continue;
            for (uint32_t k = th->n; k-- > i + 1;)
                close_node(r, &r->nodes[th->stack[k]], ev->time_ns);
            th->n = i;
            break;
        }
    }
    close_node(r, n, ev->time_ns);
}

/* --- blocks --------------------------------------------------------------------- */

int tm_regions_chain(const tm_regions *r, uint32_t region, uint64_t invocation, uint32_t *out,
                     int max)
{
    const tm_inv_node *n = find_node(r, region, invocation);
    int k = 0;
    while (n && k < max) {
        out[k++] = (uint32_t)(n - r->nodes);
        n = n->parent ? &r->nodes[n->parent - 1] : NULL;
    }
    return k;
}

uint32_t tm_regions_node_name(const tm_regions *r, uint32_t node)
{
    return node < r->nnodes ? r->nodes[node].name : 0;
}

uint64_t tm_regions_node_invocation(const tm_regions *r, uint32_t node)
{
    return node < r->nnodes ? r->nodes[node].invocation : 0;
}

bool tm_regions_node_open(const tm_regions *r, uint32_t node)
{
    return node < r->nnodes && r->nodes[node].open;
}

int64_t tm_regions_name_live(const tm_regions *r, uint32_t name)
{
    return name < r->name_live_cap ? r->name_live[name] : 0;
}

/* Adds `delta` bytes (an allocation, or minus a release) to every
 * invocation holding a block allocated in (region, invocation), and once
 * to each distinct region name among them. */
static void charge(tm_regions *r, uint32_t region, uint64_t invocation, int64_t delta,
                   bool count)
{
    uint32_t chain[MAX_CHAIN];
    int k = tm_regions_chain(r, region, invocation, chain, MAX_CHAIN);
    for (int i = 0; i < k; i++) {
        tm_inv_node *n = &r->nodes[chain[i]];
        n->live += delta;
        tm_inv_open *o = open_of(r, n);
        if (o) {
            if (i == 0) {
                o->live_own += delta;
                if (o->live_own > o->peak_own)
                    o->peak_own = o->live_own;
            }
            if (n->live > o->peak)
                o->peak = n->live;
            if (count && delta > 0) {
                o->iallocs++;
                o->ibytes += (uint64_t)delta;
            }
        }
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = r->nodes[chain[j]].name == n->name;
        int64_t *nl = seen ? NULL : name_live_of(r, n->name);
        if (nl)
            *nl += delta;
    }
}

/* Counts a release to the invocation the free happened in and those
 * around it (own and inclusive frees, net bytes). */
static void count_free(tm_regions *r, const tm_event *ev, uint64_t size, int sign)
{
    uint32_t chain[MAX_CHAIN];
    int k = tm_regions_chain(r, ev->region, ev->invocation, chain, MAX_CHAIN);
    for (int i = 0; i < k; i++) {
        tm_inv_open *o = open_of(r, &r->nodes[chain[i]]);
        if (!o)
            continue;
        if (i == 0 && (sign > 0 || o->frees)) {
            o->frees += (uint64_t)sign;
            o->freed += sign > 0 ? size : -size;
        }
        if (sign > 0 || o->ifrees) {
            o->ifrees += (uint64_t)sign;
            o->ifreed += sign > 0 ? size : -size;
        }
    }
}

int tm_regions_event(tm_regions *r, const tm_event *ev, const tm_block *freed)
{
    tm_inv_node *n;
    tm_inv_open *o;
    tm_region_thread *th;
    switch (ev->kind) {
    case TM_EV_REGION_BEGIN:
        begin(r, ev);
        break;
    case TM_EV_REGION_END:
        end(r, ev);
        break;
    case TM_EV_ALLOC:
        if (ev->region && (n = find_node(r, ev->region, ev->invocation)) && (o = open_of(r, n))) {
            o->allocs++;
            o->bytes += ev->size;
            charge(r, ev->region, ev->invocation, (int64_t)ev->size, true);
        }
        break;
    case TM_EV_FREE:
        if (ev->region)
            count_free(r, ev, freed ? freed->size : 0, 1);
        if (!freed)
            break;
        if (freed->region)
            charge(r, freed->region, freed->invocation, -(int64_t)freed->size, false);
        /* A block from an invocation that has ended escaped it. */
        if (freed->region && (n = find_node(r, freed->region, freed->invocation)) && !n->open) {
            tm_region_stats *s = stats_of(r, freed->region);
            if (s) {
                s->escaped_blocks++;
                s->escaped_bytes += freed->size;
            }
        }
        if ((th = thread_of(r, ev->thread)))
            *th = (tm_region_thread){.stack = th->stack, .n = th->n, .cap = th->cap,
                                     .stash_addr = freed->addr, .stash_size = freed->size,
                                     .stash_region = freed->region,
                                     .stash_invocation = freed->invocation, .stash_valid = true};
        break;
    case TM_EV_REALLOC_FAIL:
        /* The release just counted did not happen: the block lives on. */
        th = thread_of(r, ev->thread);
        if (!th || !th->stash_valid || th->stash_addr != ev->addr)
            break;
        th->stash_valid = false;
        if (ev->region)
            count_free(r, ev, th->stash_size, -1);
        if (th->stash_region) {
            charge(r, th->stash_region, th->stash_invocation, (int64_t)th->stash_size, false);
            n = find_node(r, th->stash_region, th->stash_invocation);
            tm_region_stats *s = stats_of(r, th->stash_region);
            if (n && !n->open && s && s->escaped_blocks) {
                s->escaped_blocks--;
                s->escaped_bytes -= th->stash_size;
            }
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
    /* Invocations open when tracing stopped end there, innermost first. */
    for (uint64_t i = r->nnodes; i-- > 0;)
        if (r->nodes[i].open)
            close_node(r, &r->nodes[i], t->sum.last_time_ns);
    for (uint32_t i = 0; i < r->nthreads; i++)
        r->threads[i].n = 0;
    for (uint64_t i = 0; i < r->nrows; i++)
        r->rows[i].leaked_bytes = r->nodes[r->rows[i].node].live;
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

double tm_region_accumulation(const tm_region_stats *s)
{
    if (s->ends < 3)
        return 0.0;
    /* Least squares slope of live bytes against the invocation count. */
    double n = (double)s->ends;
    double den = n * s->skk - s->sk * s->sk;
    return den > 0 ? (n * s->skl - s->sk * s->sl) / den : 0.0;
}

bool tm_region_accumulates(const tm_region_stats *s)
{
    return tm_region_accumulation(s) > TM_KEPT_THRESHOLD;
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

void tm_region_figs_json(tm_json *j, const tm_region_figs *f)
{
    tm_stat_json(j, "allocs", &f->allocs);
    tm_stat_json(j, "frees", &f->frees);
    tm_stat_json(j, "bytes", &f->bytes);
    tm_stat_json(j, "net_bytes", &f->net);
    tm_stat_json(j, "kept_bytes", &f->kept);
    tm_stat_json(j, "peak_bytes", &f->peak);
    tm_json_ku64(j, "invocations_keeping", f->invocations_keeping);
}
