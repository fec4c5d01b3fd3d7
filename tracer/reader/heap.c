/* heap.c — the live-block model: an open-addressing table from address to
 * block (linear probing, backward-shift deletion, no tombstones), so a
 * report's memory follows the live heap of the traced process. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tm_reader_internal.h"

typedef struct stash {
    tm_block block;
    int valid;
} stash;

struct tm_heap {
    tm_block *slots;        /* addr 0 = empty */
    uint64_t cap;           /* power of two */
    uint64_t count;
    uint64_t bytes;
    uint64_t unmatched;
    stash *stashes;         /* by thread: the block realloc just released */
    uint32_t nstashes;
};

static inline uint64_t slot_of(uint64_t addr, uint64_t mask)
{
    /* Allocations are 16-byte aligned: mix the bits before masking. */
    uint64_t h = addr * 0x9e3779b97f4a7c15ull;
    return (h >> 20) & mask;
}

tm_heap *tm_heap_new(void)
{
    tm_heap *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cap = 1024;
    h->slots = calloc(h->cap, sizeof *h->slots);
    if (!h->slots) {
        free(h);
        return NULL;
    }
    return h;
}

void tm_heap_free(tm_heap *h)
{
    if (!h)
        return;
    free(h->slots);
    free(h->stashes);
    free(h);
}

static void place(tm_block *slots, uint64_t mask, const tm_block *b)
{
    uint64_t i = slot_of(b->addr, mask);
    while (slots[i].addr)
        i = (i + 1) & mask;
    slots[i] = *b;
}

static int rehash(tm_heap *h, uint64_t cap)
{
    tm_block *s = calloc(cap, sizeof *s);
    if (!s)
        return -ENOMEM;
    for (uint64_t i = 0; i < h->cap; i++)
        if (h->slots[i].addr)
            place(s, cap - 1, &h->slots[i]);
    free(h->slots);
    h->slots = s;
    h->cap = cap;
    return 0;
}

static int insert(tm_heap *h, const tm_block *b)
{
    if (2 * (h->count + 1) > h->cap && rehash(h, 2 * h->cap) < 0)
        return -ENOMEM;
    uint64_t mask = h->cap - 1;
    uint64_t i = slot_of(b->addr, mask);
    while (h->slots[i].addr) {
        if (h->slots[i].addr == b->addr) {
            /* Its free was lost (damaged block): the new block replaces it. */
            h->bytes -= h->slots[i].size;
            h->slots[i] = *b;
            h->bytes += b->size;
            return 0;
        }
        i = (i + 1) & mask;
    }
    h->slots[i] = *b;
    h->count++;
    h->bytes += b->size;
    return 0;
}

static int take(tm_heap *h, uint64_t addr, tm_block *out)
{
    uint64_t mask = h->cap - 1;
    uint64_t i = slot_of(addr, mask);
    while (h->slots[i].addr != addr) {
        if (!h->slots[i].addr)
            return 0;
        i = (i + 1) & mask;
    }
    *out = h->slots[i];
    h->count--;
    h->bytes -= out->size;
    /* Backward shift: pull later entries of the run into the hole. */
    uint64_t hole = i;
    for (uint64_t j = (i + 1) & mask; h->slots[j].addr; j = (j + 1) & mask) {
        uint64_t home = slot_of(h->slots[j].addr, mask);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            h->slots[hole] = h->slots[j];
            hole = j;
        }
    }
    h->slots[hole].addr = 0;
    return 1;
}

static stash *stash_of(tm_heap *h, uint32_t thread)
{
    if (thread == TM_THREAD_UNKNOWN)
        return NULL;
    if (thread >= h->nstashes) {
        uint32_t n = h->nstashes ? h->nstashes : 16;
        while (n <= thread)
            n *= 2;
        stash *s = realloc(h->stashes, n * sizeof *s);
        if (!s)
            return NULL;
        memset(s + h->nstashes, 0, (n - h->nstashes) * sizeof *s);
        h->stashes = s;
        h->nstashes = n;
    }
    return &h->stashes[thread];
}

int tm_heap_apply(tm_heap *h, const tm_event *ev, tm_block *freed)
{
    tm_block b;
    switch (ev->kind) {
    case TM_EV_ALLOC:
        if (!ev->addr)
            return 0;
        b = (tm_block){.addr = ev->addr, .size = ev->size, .time_ns = ev->time_ns,
                       .stack = ev->stack, .thread = ev->thread, .region = ev->region,
                       .invocation = ev->invocation, .pystack = ev->pystack,
                       .domain = ev->domain};
        return insert(h, &b) < 0 ? -ENOMEM : 0;
    case TM_EV_FREE:
        if (!ev->addr)
            return 0;
        if (!take(h, ev->addr, &b)) {
            if (ev->domain == TM_DOMAIN_MALLOC)
                h->unmatched++;
            return 0;
        }
        if (ev->fn == TM_FN_REALLOC || ev->fn == TM_FN_REALLOCARRAY) {
            stash *s = stash_of(h, ev->thread);
            if (s) {
                s->block = b;
                s->valid = 1;
            }
        }
        if (freed)
            *freed = b;
        return 1;
    case TM_EV_REALLOC_FAIL: {
        stash *s = stash_of(h, ev->thread);
        if (s && s->valid && s->block.addr == ev->addr) {
            s->valid = 0;
            return insert(h, &s->block) < 0 ? -ENOMEM : 0;
        }
        return 0;
    }
    default:
        return 0;
    }
}

uint64_t tm_heap_live_bytes(const tm_heap *h) { return h->bytes; }
uint64_t tm_heap_live_blocks(const tm_heap *h) { return h->count; }
uint64_t tm_heap_unmatched_frees(const tm_heap *h) { return h->unmatched; }

int tm_heap_foreach(const tm_heap *h, int (*fn)(const tm_block *b, void *arg), void *arg)
{
    for (uint64_t i = 0; i < h->cap; i++) {
        if (!h->slots[i].addr)
            continue;
        int rc = fn(&h->slots[i], arg);
        if (rc)
            return rc;
    }
    return 0;
}
