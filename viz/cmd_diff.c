/* cmd_diff.c — `tidemark diff OLD NEW`: leaks, peak and allocations of two
 * traces compared by symbolized stack, so two runs of one program (with
 * different addresses) line up. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "groups.h"

static const char diff_help[] =
    "usage: tidemark diff OLD NEW [--json] [--limit N]\n"
    "\n"
    "Compares two traces: totals (leaked, peak, allocations), then stacks\n"
    "matched by their symbolized frames (function, file, line), ordered by\n"
    "the change in leaked bytes, then in allocation count.\n"
    "\n"
    "  --json   {old: {...}, new: {...}, leaked_bytes_delta, peak_bytes_delta,\n"
    "           alloc_calls_delta, stacks: [{stack: [...], leaked_bytes:\n"
    "           {old, new, delta}, leaked_blocks: {...}, allocs: {...},\n"
    "           alloc_bytes: {...}}]}\n"
    "  --native-only, --python-only   frames of one kind only (traces taken with\n"
    "                       --python-stacks show both, merged)\n";

typedef struct entry {
    char *key;
    tm_stack_key node;          /* a stack of this key, for printing */
    int side;                   /* 0 old, 1 new */
    int64_t leaked_bytes, leaked_blocks, allocs, alloc_bytes;
} entry;

typedef struct side {
    tm_trace t;
    uint64_t leaked_bytes, leaked_blocks;
    tm_groups allocs, leaks;    /* by stack */
    int oom;
} side;

static int on_event(tm_trace *t, const tm_event *ev, const tm_block *freed, void *arg)
{
    side *s = arg;
    if (ev->kind == TM_EV_ALLOC &&
        tm_groups_add(&s->allocs, tm_view_key(ev->stack, ev->pystack), ev->size, 1) < 0)
        return s->oom = 1;
    return 0;
}

static int on_leak(const tm_block *b, void *arg)
{
    side *s = arg;
    if (tm_groups_add(&s->leaks, tm_view_key(b->stack, b->pystack), b->size, 1) < 0)
        return s->oom = 1;
    return 0;
}

/* "function@file:line|..." of the frames (native ones without a line:
 * module+offset), so equal stacks of two runs compare equal. */
static char *stack_key(tm_trace *t, tm_stack_key node)
{
    static tm_frame f[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, node, f, TM_MAX_FRAMES);
    size_t cap = 64, len = 0;
    char *k = malloc(cap);
    if (!k)
        return NULL;
    k[0] = '\0';
    for (int i = 0; i < n; i++) {
        char part[512];
        int m = f[i].file ? snprintf(part, sizeof part, "%s@%s:%d|", f[i].function,
                                     f[i].file, f[i].line)
                          : snprintf(part, sizeof part, "%s@%s+%" PRIx64 "|", f[i].function,
                                     f[i].module, f[i].offset);
        if (m < 0)
            continue;
        if ((size_t)m >= sizeof part)
            m = sizeof part - 1;
        if (len + (size_t)m + 1 > cap) {
            while (len + (size_t)m + 1 > cap)
                cap *= 2;
            char *nk = realloc(k, cap);
            if (!nk) {
                free(k);
                return NULL;
            }
            k = nk;
        }
        memcpy(k + len, part, (size_t)m + 1);
        len += (size_t)m;
    }
    return k;
}

/* Appends one entry per group of g to *v. */
static int add_entries(entry **v, size_t *nv, size_t *cap, side *s, int which, int leaks)
{
    const tm_groups *g = leaks ? &s->leaks : &s->allocs;
    for (size_t i = 0; i < g->n; i++) {
        if (*nv == *cap) {
            *cap = *cap ? 2 * *cap : 1024;
            entry *nvv = realloc(*v, *cap * sizeof **v);
            if (!nvv)
                return -1;
            *v = nvv;
        }
        char *k = stack_key(&s->t, g->v[i].stack);
        if (!k)
            return -1;
        entry e = {.key = k, .node = g->v[i].stack, .side = which};
        if (leaks) {
            e.leaked_bytes = (int64_t)g->v[i].bytes;
            e.leaked_blocks = (int64_t)g->v[i].blocks;
        } else {
            e.allocs = (int64_t)g->v[i].blocks;
            e.alloc_bytes = (int64_t)g->v[i].bytes;
        }
        (*v)[(*nv)++] = e;
    }
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->side - y->side;
}

static int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

typedef struct row {
    entry old, new;             /* zero when absent */
    tm_trace *t;                /* where to print the stack from */
    tm_stack_key node;
} row;

static int by_change(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int64_t dx = abs64(x->new.leaked_bytes - x->old.leaked_bytes);
    int64_t dy = abs64(y->new.leaked_bytes - y->old.leaked_bytes);
    if (dx != dy)
        return dx > dy ? -1 : 1;
    dx = abs64(x->new.allocs - x->old.allocs);
    dy = abs64(y->new.allocs - y->old.allocs);
    return (dx < dy) - (dx > dy);
}

static void delta_json(tm_json *j, const char *key, int64_t o, int64_t n)
{
    tm_json_key(j, key);
    tm_json_object(j);
    tm_json_ki64(j, "old", o);
    tm_json_ki64(j, "new", n);
    tm_json_ki64(j, "delta", n - o);
    tm_json_object_end(j);
}

static void totals_json(tm_json *j, const char *key, side *s)
{
    tm_json_key(j, key);
    tm_json_object(j);
    tm_json_kstr(j, "trace", s->t.path);
    tm_json_ku64(j, "alloc_calls", s->t.sum.alloc_calls);
    tm_json_ku64(j, "bytes_allocated", s->t.sum.bytes_allocated);
    tm_json_ku64(j, "peak_bytes", s->t.sum.peak_bytes);
    tm_json_ku64(j, "leaked_bytes", s->leaked_bytes);
    tm_json_ku64(j, "leaked_blocks", s->leaked_blocks);
    tm_json_object_end(j);
}

/* One row of the totals table: old, new and the change in one unit (sizes
 * all human-readable, counts all plain), so the columns compare at sight. */
static void totals_row(const char *what, uint64_t o, uint64_t n, bool bytes)
{
    char a[32], b[32], d[40];
    if (!bytes) {
        printf("%-14s %14" PRIu64 " %14" PRIu64 " %+14" PRId64 "\n", what, o, n,
               (int64_t)n - (int64_t)o);
        return;
    }
    snprintf(d, sizeof d, "%s%s", n >= o ? "+" : "-", tm_human_bytes(n >= o ? n - o : o - n, a));
    printf("%-14s %14s %14s %14s\n", what, tm_human_bytes(o, a), tm_human_bytes(n, b), d);
}

int tm_cmd_diff(int argc, char **argv)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'},
        {"limit", required_argument, NULL, 'n'},
        {"native-only", no_argument, &tm_stack_view, TM_VIEW_NATIVE},
        {"python-only", no_argument, &tm_stack_view, TM_VIEW_PYTHON},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int json = 0, c;
    long long limit = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jn:h", lo, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'n':
            if ((limit = tm_parse_count(optarg)) < 0)
                return tm_usage_error("diff", "--limit wants a number, got '%s'", optarg);
            break;
        case 0: break;
        case 'h': fputs(diff_help, stdout); return TM_EXIT_OK;
        default: return tm_bad_option("diff", argv);
        }
    }
    if (argc - optind != 2)
        return tm_usage_error("diff", "expected OLD and NEW traces");
    if (limit < 0)
        limit = json ? 1000000000 : 10;

    side s[2];
    memset(s, 0, sizeof s);
    int rc = TM_EXIT_OK, opened = 0;
    entry *v = NULL;
    row *rows = NULL;
    size_t nv = 0, cap = 0, nrows = 0;
    for (int i = 0; i < 2; i++) {
        if ((rc = tm_trace_open(&s[i].t, argv[optind + i])))
            goto done;
        opened++;
        tm_groups_init(&s[i].allocs);
        tm_groups_init(&s[i].leaks);
        if (tm_trace_scan(&s[i].t, on_event, &s[i]) || s[i].oom ||
            tm_heap_foreach(s[i].t.heap, on_leak, &s[i])) {
            rc = TM_EXIT_FAIL;
            goto done;
        }
        s[i].leaked_bytes = tm_heap_live_bytes(s[i].t.heap);
        s[i].leaked_blocks = tm_heap_live_blocks(s[i].t.heap);
        if (add_entries(&v, &nv, &cap, &s[i], i, 0) < 0 ||
            add_entries(&v, &nv, &cap, &s[i], i, 1) < 0) {
            rc = TM_EXIT_FAIL;
            goto done;
        }
    }
    qsort(v, nv, sizeof *v, by_key);
    rows = calloc(nv ? nv : 1, sizeof *rows);
    if (!rows) {
        rc = TM_EXIT_FAIL;
        goto done;
    }
    /* Merge entries with equal keys (one stack may have several nodes when
     * its frames symbolize alike) into rows of old and new. */
    for (size_t i = 0; i < nv;) {
        row *r = &rows[nrows++];
        size_t k = i;
        for (; k < nv && !strcmp(v[k].key, v[i].key); k++) {
            entry *e = v[k].side ? &r->new : &r->old;
            e->leaked_bytes += v[k].leaked_bytes;
            e->leaked_blocks += v[k].leaked_blocks;
            e->allocs += v[k].allocs;
            e->alloc_bytes += v[k].alloc_bytes;
            r->t = &s[v[k].side].t;
            r->node = v[k].node;
        }
        i = k;
    }
    qsort(rows, nrows, sizeof *rows, by_change);
    size_t changed = 0;
    for (size_t i = 0; i < nrows; i++)
        changed += rows[i].old.leaked_bytes != rows[i].new.leaked_bytes ||
                   rows[i].old.allocs != rows[i].new.allocs;

    if (json) {
        tm_json j;
        tm_json_report(&j, stdout);
        totals_json(&j, "old", &s[0]);
        totals_json(&j, "new", &s[1]);
        tm_json_ki64(&j, "leaked_bytes_delta",
                     (int64_t)s[1].leaked_bytes - (int64_t)s[0].leaked_bytes);
        tm_json_ki64(&j, "peak_bytes_delta",
                     (int64_t)s[1].t.sum.peak_bytes - (int64_t)s[0].t.sum.peak_bytes);
        tm_json_ki64(&j, "alloc_calls_delta",
                     (int64_t)s[1].t.sum.alloc_calls - (int64_t)s[0].t.sum.alloc_calls);
        tm_json_key(&j, "stacks");
        tm_json_array(&j);
        for (size_t i = 0, shown = 0; i < nrows && (long long)shown < limit; i++) {
            row *r = &rows[i];
            if (r->old.leaked_bytes == r->new.leaked_bytes && r->old.allocs == r->new.allocs)
                continue;
            shown++;
            tm_json_object(&j);
            tm_json_key(&j, "stack");
            tm_stack_json(&j, r->t, r->node, 0);
            delta_json(&j, "leaked_bytes", r->old.leaked_bytes, r->new.leaked_bytes);
            delta_json(&j, "leaked_blocks", r->old.leaked_blocks, r->new.leaked_blocks);
            delta_json(&j, "allocs", r->old.allocs, r->new.allocs);
            delta_json(&j, "alloc_bytes", r->old.alloc_bytes, r->new.alloc_bytes);
            tm_json_object_end(&j);
        }
        tm_json_array_end(&j);
        tm_json_object_end(&j);
        tm_json_end(&j);
    } else {
        printf("%-14s %14s %14s %14s\n", "", "old", "new", "delta");
        totals_row("leaked", s[0].leaked_bytes, s[1].leaked_bytes, true);
        totals_row("heap peak", s[0].t.sum.peak_bytes, s[1].t.sum.peak_bytes, true);
        totals_row("allocations", s[0].t.sum.alloc_calls, s[1].t.sum.alloc_calls, false);
        printf("\n%zu of %zu stacks changed\n", changed, nrows);
        for (size_t i = 0, shown = 0; i < nrows && (long long)shown < limit; i++) {
            row *r = &rows[i];
            if (r->old.leaked_bytes == r->new.leaked_bytes && r->old.allocs == r->new.allocs)
                continue;
            shown++;
            printf("\nleaked %+" PRId64 " bytes (%" PRId64 " -> %" PRId64 "), allocations %+"
                   PRId64 " (%" PRId64 " -> %" PRId64 ") at:\n",
                   r->new.leaked_bytes - r->old.leaked_bytes, r->old.leaked_bytes,
                   r->new.leaked_bytes, r->new.allocs - r->old.allocs, r->old.allocs,
                   r->new.allocs);
            tm_stack_print(stdout, r->t, r->node, 8, "  ");
        }
    }
done:
    for (size_t i = 0; i < nv; i++)
        free(v[i].key);
    free(v);
    free(rows);
    for (int i = 0; i < 2; i++) {
        tm_groups_free(&s[i].allocs);
        tm_groups_free(&s[i].leaks);
    }
    int crc = TM_EXIT_OK;
    for (int i = 0; i < opened; i++) {
        int r = tm_trace_close(&s[i].t);
        if (r)
            crc = r;
    }
    return rc ? rc : crc;
}
