/* groups.c — see groups.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "groups.h"
#include "tm_vec.h"

void tm_groups_init(tm_groups *g)
{
    memset(g, 0, sizeof *g);
}

void tm_groups_free(tm_groups *g)
{
    free(g->v);
    free(g->index);
    memset(g, 0, sizeof *g);
}

static size_t slot(uint64_t stack, size_t cap)
{
    return (size_t)((stack * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static int reindex(tm_groups *g, size_t cap)
{
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < g->n; i++) {
        size_t k = slot(g->v[i].stack, cap);
        while (idx[k])
            k = (k + 1) & (cap - 1);
        idx[k] = (uint32_t)(i + 1);
    }
    free(g->index);
    g->index = idx;
    g->icap = cap;
    return 0;
}

int tm_groups_add(tm_groups *g, uint64_t stack, uint64_t bytes, uint64_t blocks)
{
    if (2 * (g->n + 1) > g->icap && reindex(g, g->icap ? 2 * g->icap : 256) < 0)
        return -ENOMEM;
    size_t k = slot(stack, g->icap);
    while (g->index[k]) {
        tm_group *e = &g->v[g->index[k] - 1];
        if (e->stack == stack) {
            e->bytes += bytes;
            e->blocks += blocks;
            return 0;
        }
        k = (k + 1) & (g->icap - 1);
    }
    if (tm_vec_room(&g->v, &g->cap, g->n, sizeof *g->v, 64))
        return -ENOMEM;
    g->v[g->n] = (tm_group){.stack = stack, .bytes = bytes, .blocks = blocks};
    g->index[k] = (uint32_t)++g->n;
    return 0;
}

tm_group *tm_groups_find(tm_groups *g, uint64_t stack)
{
    if (!g->icap)
        return NULL;
    for (size_t k = slot(stack, g->icap); g->index[k]; k = (k + 1) & (g->icap - 1))
        if (g->v[g->index[k] - 1].stack == stack)
            return &g->v[g->index[k] - 1];
    return NULL;
}

static int cmp3(uint64_t a1, uint64_t b1, uint64_t a2, uint64_t b2, uint64_t s1, uint64_t s2)
{
    if (a1 != b1)
        return a1 > b1 ? -1 : 1;
    if (a2 != b2)
        return a2 > b2 ? -1 : 1;
    return s1 < s2 ? -1 : s1 > s2;
}

static int by_bytes(const void *a, const void *b)
{
    const tm_group *x = a, *y = b;
    return cmp3(x->bytes, y->bytes, x->blocks, y->blocks, x->stack, y->stack);
}

static int by_blocks(const void *a, const void *b)
{
    const tm_group *x = a, *y = b;
    return cmp3(x->blocks, y->blocks, x->bytes, y->bytes, x->stack, y->stack);
}

/* Sorting moves entries, so the index is rebuilt afterwards. */
void tm_groups_sort_by_bytes(tm_groups *g)
{
    qsort(g->v, g->n, sizeof *g->v, by_bytes);
    reindex(g, g->icap ? g->icap : 256);
}

void tm_groups_sort_by_blocks(tm_groups *g)
{
    qsort(g->v, g->n, sizeof *g->v, by_blocks);
    reindex(g, g->icap ? g->icap : 256);
}
