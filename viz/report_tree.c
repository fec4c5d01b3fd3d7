/* report_tree.c — see report_tree.h: the flame graph's tree of frames, the
 * frames' kinds (colors), and the tree's JSON. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "report_tree.h"
#include "sites.h"
#include "tm_vec.h"

/* --- frame kinds ------------------------------------------------------------------- */

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

/* Python files under an installed prefix (the standard library, site- and
 * dist-packages, tidemark's own package) are libraries; any other file is
 * the user's own code.  Native frames: the interpreter's binary or
 * libpython, system libraries (/usr, /lib), else the user's own. */
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

/* --- strings to dense indexes ------------------------------------------------------ */

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void strmap_free(tm_strmap *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->s[i]);
    free(m->s);
    free(m->idx);
    memset(m, 0, sizeof *m);
}

static int strmap_rehash(tm_strmap *m)
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
static long strmap_get(tm_strmap *m, const char *s, bool *added)
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

/* --- the tree ---------------------------------------------------------------------- */

void tm_rtree_free(tm_rtree *tr)
{
    strmap_free(&tr->strs);
    strmap_free(&tr->frame_keys);
    strmap_free(&tr->node_keys);
    free(tr->frames);
    free(tr->parent);
    free(tr->frame);
    tm_tally_free(&tr->leaf);
    memset(tr, 0, sizeof *tr);
}

void tm_rtree_next_trace(tm_rtree *tr)
{
    tm_tally_free(&tr->leaf);
}

static long str_of(tm_rtree *tr, const char *s)
{
    if (!s)
        return -1;
    long i = strmap_get(&tr->strs, s, NULL);
    if (i < 0)
        tr->oom = 1;
    return i;
}

static long frame_of(tm_rtree *tr, const tm_reader *rd, const tm_frame *f)
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
    tr->frames[tr->nframes++] = (tm_rframe){
        .kind = frame_kind(rd, f), .line = f->line, .function = str_of(tr, f->function),
        .file = str_of(tr, f->file), .module = py ? -1 : str_of(tr, f->module)};
    return i;
}

static long node_of(tm_rtree *tr, uint32_t parent, uint32_t frame)
{
    char key[32];
    snprintf(key, sizeof key, "%x.%x", parent, frame);
    bool added;
    long i = strmap_get(&tr->node_keys, key, &added);
    if (i < 0 || !added)
        return i < 0 ? i : i + 1;
    if (tm_vec_room(&tr->parent, &tr->capnodes, tr->nnodes, sizeof *tr->parent, 1024))
        return -1;
    void *v = realloc(tr->frame, tr->capnodes * sizeof *tr->frame);
    if (!v)
        return -1;
    tr->frame = v;
    tr->parent[tr->nnodes] = parent;
    tr->frame[tr->nnodes] = frame;
    return (long)tr->nnodes++ + 1;      /* node ids from 1: 0 is the root */
}

uint32_t tm_rtree_leaf(tm_rtree *tr, tm_trace *t, tm_stack_key key)
{
    return tm_rtree_leaf_at(tr, t, key, 0);
}

uint32_t tm_rtree_leaf_at(tm_rtree *tr, tm_trace *t, tm_stack_key key, int depth)
{
    tm_tally_entry *e = tm_tally_find(&tr->leaf, key, (uint32_t)depth);
    if (e)
        return (uint32_t)e->blocks;
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, key, frames, TM_MAX_FRAMES);
    /* The allocator's own frames say nothing: the box below is the site. */
    int inner = 0;
    while (inner < n - 1 && tm_is_allocator_frame(&frames[inner]))
        inner++;
    int last = depth > 0 && n - depth > inner ? n - depth : inner;
    uint32_t node = 0;
    for (int i = n - 1; i >= last && !tr->oom; i--) {
        long f = frame_of(tr, t->reader, &frames[i]);
        long nd = f < 0 ? -1 : node_of(tr, node, (uint32_t)f);
        if (nd < 0)
            tr->oom = 1;
        else
            node = (uint32_t)nd;
    }
    if (tm_tally_add(&tr->leaf, key, (uint32_t)depth, 0, node) < 0)
        tr->oom = 1;
    return node;
}

void tm_rtree_json(const tm_rtree *tr, FILE *out)
{
    fputs("\"strs\":[", out);
    for (size_t i = 0; i < tr->strs.n; i++) {
        fputs(i ? "," : "", out);
        tm_report_str(out, tr->strs.s[i]);
    }
    fputs("],\"frames\":[", out);
    for (size_t i = 0; i < tr->nframes; i++) {
        const tm_rframe *f = &tr->frames[i];
        fprintf(out, "%s%d,%ld,%ld,%d,%ld", i ? "," : "", f->kind, f->function, f->file, f->line,
                f->module);
    }
    /* Node i + 1 as (its id minus its parent's, frame): a parent is made
     * just before its first child, so the first number is mostly 1. */
    fputs("],\"nodes\":[", out);
    for (size_t i = 0; i < tr->nnodes; i++)
        fprintf(out, "%s%zu,%u", i ? "," : "", i + 1 - tr->parent[i], tr->frame[i]);
    fputc(']', out);
}
