/* maps.c — the anonymous maps of a trace (tm_maps in tm_reader.h): a sorted
 * array of disjoint page ranges.  Programs hold few maps next to heap
 * blocks (pymalloc's arenas are 1 MiB each), so a range is found by binary
 * search and inserting or removing one moves the tail of the array. */
#include <stdlib.h>
#include <string.h>

#include "tm_reader.h"
#include "tm_vec.h"

struct tm_maps {
    tm_map *v;
    size_t n, cap;
    uint64_t page;
    uint64_t bytes;
};

tm_maps *tm_maps_new(uint64_t page_size)
{
    tm_maps *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    /* A page size that is no power of two (a damaged header) is 4096. */
    m->page = page_size && !(page_size & (page_size - 1)) ? page_size : 4096;
    return m;
}

void tm_maps_free(tm_maps *m)
{
    if (!m)
        return;
    free(m->v);
    free(m);
}

uint64_t tm_maps_bytes(const tm_maps *m) { return m->bytes; }
uint64_t tm_maps_count(const tm_maps *m) { return m->n; }

int tm_maps_foreach(const tm_maps *m, int (*fn)(const tm_map *map, void *arg), void *arg)
{
    for (size_t i = 0; i < m->n; i++) {
        int rc = fn(&m->v[i], arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* [*s, *e) for addr and len in whole pages; 0 when empty.  A range past
 * the top of the address space ends there. */
static int page_range(const tm_maps *m, uint64_t addr, uint64_t len, uint64_t *s, uint64_t *e)
{
    uint64_t mask = m->page - 1;
    *s = addr & ~mask;
    uint64_t end = addr + len;
    if (end < addr)
        end = UINT64_MAX;
    *e = end > UINT64_MAX - mask ? UINT64_MAX & ~mask : (end + mask) & ~mask;
    return *e > *s;
}

/* The first range that ends after addr. */
static size_t first_after(const tm_maps *m, uint64_t addr)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int overlaps(const tm_maps *m, uint64_t s, uint64_t e)
{
    size_t i = first_after(m, s);
    return i < m->n && m->v[i].start < e;
}

static int insert_at(tm_maps *m, size_t i, const tm_map *x)
{
    if (tm_vec_room(&m->v, &m->cap, m->n, sizeof *m->v, 64))
        return -1;
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof *m->v);
    m->v[i] = *x;
    m->n++;
    m->bytes += x->end - x->start;
    return 0;
}

/* Drops [s, e) from every range.  Returns 1 when something was mapped
 * there, negative when out of memory (splitting a range). */
static int remove_range(tm_maps *m, uint64_t s, uint64_t e)
{
    size_t i = first_after(m, s);
    if (i == m->n || m->v[i].start >= e)
        return 0;
    tm_map *a = &m->v[i];
    if (a->start < s && a->end > e) {   /* a hole in one range */
        tm_map tail = *a;
        tail.start = e;
        a->end = s;
        m->bytes -= tail.end - s;
        return insert_at(m, i + 1, &tail) < 0 ? -1 : 1;
    }
    if (a->start < s) {
        m->bytes -= a->end - s;
        a->end = s;
        i++;
    }
    size_t j = i;
    while (j < m->n && m->v[j].end <= e) {
        m->bytes -= m->v[j].end - m->v[j].start;
        j++;
    }
    if (j < m->n && m->v[j].start < e) {
        m->bytes -= e - m->v[j].start;
        m->v[j].start = e;
    }
    memmove(&m->v[i], &m->v[j], (m->n - j) * sizeof *m->v);
    m->n -= j - i;
    return 1;
}

static int add_range(tm_maps *m, const tm_event *ev, uint64_t s, uint64_t e)
{
    if (remove_range(m, s, e) < 0)
        return -1;
    tm_map x = {.start = s, .end = e, .time_ns = ev->time_ns, .stack = ev->stack,
                .thread = ev->thread, .region = ev->region, .invocation = ev->invocation};
    return insert_at(m, first_after(m, s), &x);
}

int tm_maps_apply(tm_maps *m, const tm_event *ev)
{
    uint64_t before = m->bytes, s, e, ns, ne;
    int rc = 0;
    switch (ev->kind) {
    case TM_EV_MMAP:
        if (page_range(m, ev->addr, ev->size, &s, &e))
            rc = add_range(m, ev, s, e);
        break;
    case TM_EV_MUNMAP:
        if (page_range(m, ev->addr, ev->size, &s, &e))
            rc = remove_range(m, s, e);
        break;
    case TM_EV_MREMAP: {
        if (!page_range(m, ev->addr2, ev->size2, &ns, &ne))
            break;
        /* An old length of 0 duplicates a shared map: the old one stays. */
        int dup = ev->size == 0;
        if (dup) {
            s = ev->addr & ~(m->page - 1);
            e = s + m->page;
        } else if (!page_range(m, ev->addr, ev->size, &s, &e)) {
            break;
        }
        int anon = overlaps(m, s, e);
        if (!dup && !(ev->fn & 1))
            rc = remove_range(m, s, e);
        /* What the new range covered is replaced (MREMAP_FIXED); where the
         * old range held no anonymous memory, the new one holds none. */
        if (rc >= 0)
            rc = anon ? add_range(m, ev, ns, ne) : remove_range(m, ns, ne);
        break;
    }
    default:
        return 0;
    }
    if (rc < 0)
        return rc;
    return m->bytes != before;
}
