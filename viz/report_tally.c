/* report_tally.c — (stack, extra) -> bytes and blocks, the table behind
 * `tidemark report`'s views (see report_data.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report_data.h"

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
