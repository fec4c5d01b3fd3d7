/* report_data.c — see report_data.h.  The scan (two passes), the tree of
 * frames the flame graph draws, and the JSON the page reads. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report_data.h"
#include "sites.h"
#include "suppress.h"
#include "tm_vec.h"

/* --- tally ------------------------------------------------------------------------ */

static uint64_t tally_hash(uint64_t stack, uint32_t extra)
{
    uint64_t h = stack * 0x9e3779b97f4a7c15ull ^ (extra + 1) * 0xc2b2ae3d27d4eb4full;
    return h ^ h >> 29;
}

void tm_tally_free(tm_tally *t)
{
    free(t->v);
    memset(t, 0, sizeof *t);
}

tm_tally_entry *tm_tally_find(const tm_tally *t, uint64_t stack, uint32_t extra)
{
    if (!t->cap)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = tally_hash(stack, extra) & mask; t->v[i].used; i = (i + 1) & mask)
        if (t->v[i].stack == stack && t->v[i].extra == extra)
            return &t->v[i];
    return NULL;
}

static int tally_grow(tm_tally *t)
{
    size_t cap = t->cap ? 2 * t->cap : 256;
    tm_tally_entry *v = calloc(cap, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->v[i].used)
            continue;
        size_t k = tally_hash(t->v[i].stack, t->v[i].extra) & (cap - 1);
        while (v[k].used)
            k = (k + 1) & (cap - 1);
        v[k] = t->v[i];
    }
    free(t->v);
    t->v = v;
    t->cap = cap;
    return 0;
}

int tm_tally_add(tm_tally *t, uint64_t stack, uint32_t extra, uint64_t bytes, uint64_t blocks)
{
    tm_tally_entry *e = tm_tally_find(t, stack, extra);
    if (!e) {
        if (2 * (t->n + 1) > t->cap && tally_grow(t) < 0)
            return -ENOMEM;
        size_t mask = t->cap - 1, i = tally_hash(stack, extra) & mask;
        while (t->v[i].used)
            i = (i + 1) & mask;
        e = &t->v[i];
        *e = (tm_tally_entry){.stack = stack, .extra = extra, .used = 1};
        t->n++;
    }
    e->bytes += bytes;
    e->blocks += blocks;
    return 0;
}

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

/* --- pass 2 ------------------------------------------------------------------------ */

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

static tm_incl_frame *incl_thread(tm_report_trace *r, uint32_t thread)
{
    if (thread == UINT32_MAX)
        return NULL;
    if (thread >= r->nincl) {
        size_t n = r->nincl ? 2 * r->nincl : 8;
        while (n <= thread)
            n *= 2;
        void *v = realloc(r->incl, n * sizeof *r->incl);
        if (!v)
            return NULL;
        r->incl = v;
        uint32_t *d = realloc(r->incl_depth, n * sizeof *d);
        if (!d)
            return NULL;
        memset(d + r->nincl, 0, (n - r->nincl) * sizeof *d);
        r->incl_depth = d;
        r->nincl = n;
    }
    return r->incl[thread];
}

static int incl_names_room(tm_report_trace *r, uint32_t name)
{
    size_t old = r->nincl_names;
    if (name < old)
        return 0;
    size_t cap = old;
    if (tm_vec_room(&r->incl_by_name, &cap, name, sizeof *r->incl_by_name, 64))
        return -ENOMEM;
    memset(r->incl_by_name + old, 0, (cap - old) * sizeof *r->incl_by_name);
    r->nincl_names = cap;
    return 0;
}

static int incl_close(tm_report_trace *r, const tm_incl_frame *f)
{
    if (!f->name || incl_names_room(r, f->name) < 0)
        return f->name ? -ENOMEM : 0;
    tm_incl_stats *s = &r->incl_by_name[f->name];
    s->n++;
    s->allocs += f->allocs;
    s->net += (int64_t)f->bytes - (int64_t)f->freed;
    return 0;
}

/* Inclusive counts: an event counts toward every region open on its
 * thread (the regions report counts it toward the innermost only). */
static int incl_event(tm_report_trace *r, const tm_event *ev, const tm_block *freed)
{
    tm_incl_frame *fr = incl_thread(r, ev->thread);
    if (!fr)
        return ev->thread == UINT32_MAX ? 0 : -ENOMEM;
    uint32_t *depth = &r->incl_depth[ev->thread];
    uint32_t d = ev->depth < TM_INCL_DEPTH ? ev->depth : TM_INCL_DEPTH;
    switch (ev->kind) {
    case TM_EV_REGION_BEGIN:
        if (ev->depth >= 1 && ev->depth <= TM_INCL_DEPTH)
            fr[ev->depth - 1] = (tm_incl_frame){.name = ev->region};
        *depth = ev->depth;
        break;
    case TM_EV_REGION_END:
        if (ev->depth >= 1 && ev->depth <= TM_INCL_DEPTH && fr[ev->depth - 1].name == ev->region) {
            if (incl_close(r, &fr[ev->depth - 1]) < 0)
                return -ENOMEM;
            fr[ev->depth - 1].name = 0;
        }
        *depth = ev->depth ? ev->depth - 1 : 0;
        break;
    case TM_EV_ALLOC:
        for (uint32_t i = 0; ev->region && i < d && i < *depth; i++) {
            fr[i].allocs++;
            fr[i].bytes += ev->size;
        }
        break;
    case TM_EV_FREE:
        for (uint32_t i = 0; freed && ev->region && i < d && i < *depth; i++)
            fr[i].freed += freed->size;
        break;
    }
    return 0;
}

static int add_peak(const tm_block *b, void *arg)
{
    return tm_groups_add(arg, tm_view_key(b->stack, b->pystack), b->size, 1) < 0;
}

static int feed(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    tm_report_trace *r = arg;
    r->nev++;
    if (tm_regions_event(&r->regions, ev, freed) || tm_timeline_event(&r->tl, t, ev) ||
        incl_event(r, ev, freed) < 0)
        return r->oom = 1;
    int rc = 0;
    tm_tally_entry *e;
    switch (ev->kind) {
    case TM_EV_ALLOC:
        rc = tm_tally_add(&r->alloc, tm_view_key(ev->stack, ev->pystack), 0, ev->size, 1);
        break;
    case TM_EV_FREE:
        if (!freed)
            break;
        rc = range_add(r, freed, bin_of(r, ev->time_ns));
        /* Freed after its invocation ended: it outlived the invocation. */
        if (!rc && freed->region && (e = tm_tally_find(&r->invs, freed->invocation, freed->region)) &&
            e->blocks)
            rc = tm_tally_add(&r->kept, tm_view_key(freed->stack, freed->pystack), freed->region,
                              freed->size, 1);
        break;
    case TM_EV_REGION_BEGIN:
        if (ev->region)
            rc = tm_tally_add(&r->invs, ev->invocation, ev->region, 0, 0);
        break;
    case TM_EV_REGION_END:
        if ((e = tm_tally_find(&r->invs, ev->invocation, ev->region)))
            e->blocks = 1;
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

static int add_exit(const tm_block *b, void *arg)
{
    tm_report_trace *r = arg;
    if (tm_groups_add(&r->leaked, tm_view_key(b->stack, b->pystack), b->size, 1) < 0 ||
        range_add(r, b, r->bins) < 0)
        return 1;
    if (b->region && tm_tally_add(&r->kept, tm_view_key(b->stack, b->pystack), b->region,
                                  b->size, 1) < 0)
        return 1;
    return 0;
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
    if (tm_trace_scan(&r->t, feed, r) || r->oom)
        goto oom;
    tm_regions_finish(&r->regions, &r->t);
    tm_timeline_finish(&r->tl, &r->t);
    for (size_t i = 0; i < r->nincl; i++)
        for (uint32_t k = 0; k < r->incl_depth[i] && k < TM_INCL_DEPTH; k++)
            if (incl_close(r, &r->incl[i][k]) < 0)
                goto oom;
    r->nstats = tm_regions_sorted(&r->regions, &r->t, &r->stats);
    if (tm_heap_foreach(r->t.heap, add_exit, r))
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
    tm_tally_free(&r->invs);
    tm_tally_free(&r->range);
    free(r->incl);
    free(r->incl_depth);
    free(r->incl_by_name);
    if (r->opened)
        rc = tm_trace_close(&r->t);
    memset(r, 0, sizeof *r);
    return rc;
}

/* --- the frame tree ------------------------------------------------------------------- */

/* Frame kinds, the flame graph's colors. */
enum { K_PY_USER, K_PY_LIB, K_NATIVE_USER, K_NATIVE_LIB, K_INTERP, K_UNKNOWN };

static bool has_prefix(const char *s, const char *p)
{
    return s && !strncmp(s, p, strlen(p));
}

/* The module's recorded path, from the basename the symbolizer gives. */
static const char *module_path(const tm_reader *rd, const char *base)
{
    for (uint32_t i = 0; base && i < tm_reader_module_count(rd); i++) {
        const tm_module *m = tm_reader_module(rd, i);
        const char *b = m && m->path ? strrchr(m->path, '/') : NULL;
        if (b && !strcmp(b + 1, base))
            return m->path;
    }
    return base;
}

static int frame_kind(const tm_reader *rd, const tm_frame *f)
{
    if (!strcmp(f->kind, "python")) {
        const char *file = f->file ? f->file : "";
        if (has_prefix(file, "<frozen") || has_prefix(file, "/usr/lib/python") ||
            has_prefix(file, "/usr/local/lib/python") || strstr(file, "/site-packages/") ||
            strstr(file, "/dist-packages/") || strstr(file, "/lib/python3.") ||
            strstr(file, "/tidemark/"))
            return K_PY_LIB;
        return K_PY_USER;
    }
    const char *m = f->module ? module_path(rd, f->module) : "??";
    const char *base = strrchr(m, '/');
    base = base ? base + 1 : m;
    if (has_prefix(base, "python3") || has_prefix(base, "libpython3"))
        return K_INTERP;
    if (!strcmp(m, "??"))
        return K_UNKNOWN;
    if (has_prefix(m, "/usr/") || has_prefix(m, "/lib"))
        return K_NATIVE_LIB;
    return K_NATIVE_USER;
}

/* Strings -> dense indexes (open addressing on an FNV-1a hash); keys are
 * copied. */
typedef struct strmap {
    char **s;
    size_t n, cap;
    uint32_t *idx;              /* index + 1, 0 = empty */
    size_t icap;
} strmap;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void strmap_free(strmap *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->s[i]);
    free(m->s);
    free(m->idx);
    memset(m, 0, sizeof *m);
}

static int strmap_rehash(strmap *m)
{
    size_t cap = m->icap ? 2 * m->icap : 1024;
    uint32_t *v = calloc(cap, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        size_t k = fnv(m->s[i]) & (cap - 1);
        while (v[k])
            k = (k + 1) & (cap - 1);
        v[k] = (uint32_t)i + 1;
    }
    free(m->idx);
    m->idx = v;
    m->icap = cap;
    return 0;
}

/* Index of s (added on first sight), or -1 when memory ran out. */
static long strmap_get(strmap *m, const char *s, bool *added)
{
    if (2 * (m->n + 1) > m->icap && strmap_rehash(m) < 0)
        return -1;
    size_t k = fnv(s) & (m->icap - 1);
    for (; m->idx[k]; k = (k + 1) & (m->icap - 1))
        if (!strcmp(m->s[m->idx[k] - 1], s)) {
            if (added)
                *added = false;
            return m->idx[k] - 1;
        }
    char *copy = strdup(s);
    if (!copy || tm_vec_room(&m->s, &m->cap, m->n, sizeof *m->s, 256)) {
        free(copy);
        return -1;
    }
    m->s[m->n] = copy;
    m->idx[k] = (uint32_t)m->n + 1;
    if (added)
        *added = true;
    return (long)m->n++;
}

typedef struct rframe {
    int kind, line;
    long function, file, module;    /* into strs, -1 = none */
} rframe;

/* The tree of the flame graph: node 0 is the root, every other node a
 * (parent, frame) pair; a stack's frames from the outermost in. */
typedef struct tree {
    strmap strs, frame_keys, node_keys;
    rframe *frames;
    size_t nframes, capframes;
    uint32_t *parent, *frame;
    size_t nnodes, capnodes;
    tm_tally leaf;              /* (stack key, 0) -> blocks = node */
    int oom;
} tree;

static void tree_free(tree *tr)
{
    strmap_free(&tr->strs);
    strmap_free(&tr->frame_keys);
    strmap_free(&tr->node_keys);
    free(tr->frames);
    free(tr->parent);
    free(tr->frame);
    tm_tally_free(&tr->leaf);
}

static long str_of(tree *tr, const char *s)
{
    if (!s)
        return -1;
    long i = strmap_get(&tr->strs, s, NULL);
    if (i < 0)
        tr->oom = 1;
    return i;
}

static long frame_of(tree *tr, const tm_reader *rd, const tm_frame *f)
{
    bool py = !strcmp(f->kind, "python");
    /* Python frames are told apart by line (memray does the same); native
     * ones by function and module, so one function is one box. */
    char key[1024];
    snprintf(key, sizeof key, "%c\x1f%s\x1f%s\x1f%d", py ? 'p' : 'n',
             f->function ? f->function : "??", py ? (f->file ? f->file : "")
                                                  : (f->module ? f->module : "??"),
             py ? f->line : 0);
    bool added;
    long i = strmap_get(&tr->frame_keys, key, &added);
    if (i < 0 || !added)
        return i;
    if (tm_vec_room(&tr->frames, &tr->capframes, tr->nframes, sizeof *tr->frames, 256))
        return -1;
    tr->frames[tr->nframes++] = (rframe){
        .kind = frame_kind(rd, f), .line = f->line, .function = str_of(tr, f->function),
        .file = str_of(tr, f->file), .module = py ? -1 : str_of(tr, f->module)};
    return i;
}

static long node_of(tree *tr, uint32_t parent, uint32_t frame)
{
    char key[32];
    snprintf(key, sizeof key, "%x.%x", parent, frame);
    bool added;
    long i = strmap_get(&tr->node_keys, key, &added);
    if (i < 0 || !added)
        return i < 0 ? i : i + 1;
    if (tm_vec_room(&tr->parent, &tr->capnodes, tr->nnodes, sizeof *tr->parent, 1024))
        return -1;
    size_t cap = tr->capnodes;
    void *v = realloc(tr->frame, cap * sizeof *tr->frame);
    if (!v)
        return -1;
    tr->frame = v;
    tr->parent[tr->nnodes] = parent;
    tr->frame[tr->nnodes] = frame;
    return (long)tr->nnodes++ + 1;      /* node ids from 1: 0 is the root */
}

/* The leaf node of a stack (0 = the root, for a stack with no frames). */
static uint32_t leaf_of(tree *tr, tm_trace *t, tm_stack_key key)
{
    tm_tally_entry *e = tm_tally_find(&tr->leaf, key, 0);
    if (e)
        return (uint32_t)e->blocks;
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, key, frames, TM_MAX_FRAMES);
    /* The allocator's own frames say nothing: the box below is the site. */
    int inner = 0;
    while (inner < n - 1 && tm_is_allocator_frame(&frames[inner]))
        inner++;
    uint32_t node = 0;
    for (int i = n - 1; i >= inner && !tr->oom; i--) {
        long f = frame_of(tr, t->reader, &frames[i]);
        long nd = f < 0 ? -1 : node_of(tr, node, (uint32_t)f);
        if (nd < 0)
            tr->oom = 1;
        else
            node = (uint32_t)nd;
    }
    if (tm_tally_add(&tr->leaf, key, 0, 0, node) < 0)
        tr->oom = 1;
    return node;
}

/* --- JSON ----------------------------------------------------------------------------- */

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

static void num(FILE *out, double v)
{
    if (v != v || v > 1e300 || v < -1e300)
        fputs("null", out);
    else
        fprintf(out, "%.9g", v);
}

/* [node, bytes, blocks, ...] for groups (skipping suppressed ones). */
static void groups_json(FILE *out, tree *tr, tm_trace *t, const tm_groups *g)
{
    fputc('[', out);
    const char *sep = "";
    for (size_t i = 0; i < g->n; i++) {
        if (g->v[i].suppressed)
            continue;
        fprintf(out, "%s%u,%" PRIu64 ",%" PRIu64, sep, leaf_of(tr, t, g->v[i].stack),
                g->v[i].bytes, g->v[i].blocks);
        sep = ",";
    }
    fputc(']', out);
}

/* Entries of a tally with the given extra ([node, bytes, blocks, ...]), or
 * for the range view [node, abin, fbin, bytes, blocks, ...]. */
static void tally_json(FILE *out, tree *tr, tm_trace *t, const tm_tally *ta, bool all,
                       uint32_t extra, bool bins)
{
    fputc('[', out);
    const char *sep = "";
    for (size_t i = 0; i < ta->cap; i++) {
        const tm_tally_entry *e = &ta->v[i];
        if (!e->used || (!all && e->extra != extra))
            continue;
        fprintf(out, "%s%u", sep, leaf_of(tr, t, e->stack));
        if (bins)
            fprintf(out, ",%u,%u", e->extra >> 16, e->extra & 0xffff);
        fprintf(out, ",%" PRIu64 ",%" PRIu64, e->bytes, e->blocks);
        sep = ",";
    }
    fputc(']', out);
}

static void series_json(FILE *out, const tm_series *s)
{
    fputc('[', out);
    for (size_t i = 0; i < s->n; i++)
        fprintf(out, "%s%.6f,%" PRIu64, i ? "," : "", tm_seconds(s->v[i].t_ns), s->v[i].value);
    fputc(']', out);
}

static void stat_json(FILE *out, const char *key, const tm_stat *s)
{
    fprintf(out, ",\"%s\":{\"min\":%" PRId64 ",\"mean\":", key, s->n ? s->min : 0);
    num(out, tm_stat_mean(s));
    fprintf(out, ",\"max\":%" PRId64 ",\"total\":%" PRId64 "}", s->n ? s->max : 0, s->total);
}

static const char *region_name(tm_report_trace *r, uint32_t id)
{
    const char *s = tm_reader_string(r->t.reader, id);
    return s ? s : "?";
}

static void regions_json(FILE *out, tm_report_trace *r, tree *tr)
{
    fputs(",\"regions\":[", out);
    for (size_t i = 0; i < r->nstats; i++) {
        const tm_region_stats *s = &r->stats[i];
        fprintf(out, "%s{\"name\":", i ? "," : "");
        tm_report_str(out, region_name(r, s->name));
        fprintf(out, ",\"invocations\":%" PRIu64, s->invocations);
        stat_json(out, "allocs", &s->allocs);
        stat_json(out, "frees", &s->frees);
        stat_json(out, "bytes", &s->bytes);
        stat_json(out, "net_bytes", &s->net);
        fprintf(out, ",\"invocations_net_positive\":%" PRIu64 ",\"retains\":%s", s->net_positive,
                tm_region_retains(s) ? "true" : "false");
        fprintf(out, ",\"escaped_blocks\":%" PRIu64 ",\"escaped_bytes\":%" PRIu64
                     ",\"leaked_blocks\":%" PRIu64 ",\"leaked_bytes\":%" PRIu64,
                s->escaped_blocks, s->escaped_bytes, s->leaked_blocks, s->leaked_bytes);
        uint64_t kept = s->escaped_bytes + s->leaked_bytes;
        fprintf(out, ",\"kept_bytes\":%" PRIu64 ",\"kept_bytes_per_invocation\":", kept);
        num(out, s->invocations ? (double)kept / (double)s->invocations : 0);
        const tm_incl_stats *in = s->name < r->nincl_names ? &r->incl_by_name[s->name] : NULL;
        fputs(",\"incl_allocs_mean\":", out);
        num(out, in && in->n ? (double)in->allocs / (double)in->n : 0);
        fputs(",\"incl_net_bytes_mean\":", out);
        num(out, in && in->n ? (double)in->net / (double)in->n : 0);
        fputs(",\"kept\":", out);
        tally_json(out, tr, &r->t, &r->kept, false, s->name, false);
        fputc('}', out);
    }
    fputc(']', out);
}

static void timeline_json(FILE *out, tm_report_trace *r)
{
    const tm_timeline *tl = &r->tl;
    fputs(",\"timeline\":{\"heap\":", out);
    series_json(out, &tl->heap);
    fputs(",\"rss\":", out);
    series_json(out, &tl->rss);
    uint32_t *lane = calloc(tl->nbands ? tl->nbands : 1, sizeof *lane);
    fprintf(out, ",\"lanes\":%zu,\"bands\":[", lane ? tm_timeline_lanes(tl, lane) : 0);
    for (size_t i = 0; lane && i < tl->nbands; i++) {
        fprintf(out, "%s[%.6f,%.6f,", i ? "," : "", tm_seconds(tl->bands[i].start_ns),
                tm_seconds(tl->bands[i].end_ns));
        tm_report_str(out, region_name(r, tl->bands[i].name));
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

/* Markers the preload interns as "tidemark:KEY=VALUE" strings (how Python
 * frames and Python's allocator were recorded). */
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

int tm_report_trace_json(tm_report_trace *r, FILE *out)
{
    tree tr = {0};
    const tm_summary *s = &r->t.sum;
    fputs("{\"trace\":", out);
    tm_report_str(out, r->path);
    fputs(",\"error\":", out);
    tm_report_str(out, r->damaged ? r->error : NULL);
    fputs(",\"param\":", out);
    if (r->param > 0)
        num(out, r->param);
    else
        fputs("null", out);
    fprintf(out, ",\"summary\":{\"duration\":%.6f,\"alloc_calls\":%" PRIu64
                 ",\"free_calls\":%" PRIu64 ",\"bytes_allocated\":%" PRIu64
                 ",\"peak_bytes\":%" PRIu64 ",\"peak_blocks\":%" PRIu64 ",\"peak_time\":%.6f"
                 ",\"leaked_bytes\":%" PRIu64 ",\"leaked_blocks\":%" PRIu64
                 ",\"threads\":%u,\"rss_peak_bytes\":%" PRIu64 ",\"lost_events\":%" PRIu64
                 ",\"pid\":%u,\"end\":",
            tm_seconds(s->last_time_ns), s->alloc_calls, s->free_calls, s->bytes_allocated,
            s->peak_bytes, s->peak_blocks, tm_seconds(s->peak_time_ns),
            tm_heap_live_bytes(r->t.heap), tm_heap_live_blocks(r->t.heap),
            tm_reader_thread_count(r->t.reader), s->rss_peak_bytes, s->lost_events,
            tm_reader_header(r->t.reader)->pid);
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
    fputs(",\"views\":{\"leaked\":", out);
    groups_json(out, &tr, &r->t, &r->leaked);
    fputs(",\"peak\":", out);
    groups_json(out, &tr, &r->t, &r->peak);
    fputs(",\"allocated\":", out);
    tally_json(out, &tr, &r->t, &r->alloc, true, 0, false);
    fputs("}", out);
    fprintf(out, ",\"range\":{\"bins\":%u,\"bin\":%.9f,\"cells\":", r->bins,
            tm_seconds(r->bin_ns));
    tally_json(out, &tr, &r->t, &r->range, true, 0, true);
    fputc('}', out);
    regions_json(out, r, &tr);
    timeline_json(out, r);
    /* The tree last: the views above made its nodes. */
    fputs(",\"strs\":[", out);
    for (size_t i = 0; i < tr.strs.n; i++) {
        fputs(i ? "," : "", out);
        tm_report_str(out, tr.strs.s[i]);
    }
    fputs("],\"frames\":[", out);
    for (size_t i = 0; i < tr.nframes; i++) {
        const rframe *f = &tr.frames[i];
        fprintf(out, "%s%d,%ld,%ld,%d,%ld", i ? "," : "", f->kind, f->function, f->file, f->line,
                f->module);
    }
    fputs("],\"nodes\":[", out);
    for (size_t i = 0; i < tr.nnodes; i++)
        fprintf(out, "%s%u,%u", i ? "," : "", tr.parent[i], tr.frame[i]);
    fputs("]}", out);
    int oom = tr.oom;
    tree_free(&tr);
    if (oom) {
        tm_error("%s: out of memory building the report", r->path);
        return TM_EXIT_FAIL;
    }
    return 0;
}
