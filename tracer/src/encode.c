/* encode.c — raw chunks to trace records, on the writer thread.
 *
 * The hot path stores fixed-width words (tm_raw.h); here they become the
 * compact records of docs/trace-format.md: varints, addresses as deltas from
 * the previous address of the block, times as deltas from the previous
 * timestamped record.  Delta state starts afresh with every chunk, which is
 * one block in the file.
 */
#include <string.h>

#include "tm_raw.h"

typedef struct enc {
    uint8_t *out;
    uint64_t prev_addr;
    uint64_t prev_ts;      /* ticks of the previous timestamped record */
    uint64_t now;          /* latest TIME seen, never decreasing */
} enc;

static inline void put_addr(enc *e, uint64_t a)
{
    e->out = tm_put_s(e->out, (int64_t)(a - e->prev_addr));
    e->prev_addr = a;
}

static inline void put_ts(enc *e)
{
    e->out = tm_put_u(e->out, e->now - e->prev_ts);
    e->prev_ts = e->now;
}

/* An allocation: a Python stack first when it has one (stacks >> 32). */
static inline void put_alloc(enc *e, unsigned op, uint64_t addr, uint64_t size, uint64_t stacks)
{
    uint32_t py = (uint32_t)(stacks >> 32);
    if (py) {
        *e->out++ = TM_OP_PY_STACK;
        e->out = tm_put_u(e->out, py);
    }
    *e->out++ = (uint8_t)op;
    e->out = tm_put_u(e->out, size);
    put_addr(e, addr);
    put_ts(e);
    e->out = tm_put_u(e->out, (uint32_t)stacks);
}

uint8_t *tm_encode_chunk(const uint64_t *w, const uint64_t *end, uint64_t start_tick,
                         uint8_t *out)
{
    enc e = {.out = out, .prev_ts = start_tick, .now = start_tick};
    while (w < end) {
        uint64_t head = *w++;
        unsigned op = tm_raw_op(head);
        uint64_t arg = tm_raw_arg(head);
        if (op - TM_RAW_TINY < TM_ALLOC_CODES) {
            put_alloc(&e, TM_OP_ALLOC + (op - TM_RAW_TINY), tm_raw_tiny_addr(arg),
                      tm_raw_tiny_size(arg), 0);
            continue;
        }
        unsigned alloc_op = op & ~TM_RAW_SHORT;
        if (alloc_op >= TM_OP_ALLOC && alloc_op < TM_OP_ALLOC + TM_ALLOC_CODES) {
            if (op & TM_RAW_SHORT) {
                if (end - w < 1)
                    return NULL;
                put_alloc(&e, alloc_op, arg, (uint32_t)w[0], w[0] >> 32);
                w += 1;
            } else {
                if (end - w < 2)
                    return NULL;
                put_alloc(&e, alloc_op, arg, w[0], w[1]);
                w += 2;
            }
            continue;
        }
        switch (op) {
        case TM_OP_FREE:
        case TM_OP_REALLOC_FREE:
        case TM_OP_REALLOC_FAIL:
        case TM_OP_PY_FREE:
        case TM_OP_PY_FREE + 1:
        case TM_OP_PY_FREE + 2:
        case TM_OP_PY_FREE + 3:
        case TM_OP_PY_FREE + 4:
        case TM_OP_PY_FREE + 5:
            *e.out++ = (uint8_t)op;
            put_addr(&e, arg);
            put_ts(&e);
            break;
        case TM_RAW_TIME:
            if (start_tick + arg > e.now)
                e.now = start_tick + arg;
            break;
        case TM_OP_THREAD:
        case TM_OP_MARK:
            *e.out++ = (uint8_t)op;
            e.out = tm_put_u(e.out, arg);
            if (op == TM_OP_MARK)
                put_ts(&e);
            break;
        case TM_OP_REGION_BEGIN:
            if (w == end)
                return NULL;
            *e.out++ = (uint8_t)op;
            e.out = tm_put_u(e.out, arg);
            e.out = tm_put_u(e.out, *w++);
            put_ts(&e);
            break;
        case TM_OP_REGION_END:
            *e.out++ = (uint8_t)op;
            put_ts(&e);
            break;
        case TM_OP_RSS:
        case TM_OP_LOST:
            *e.out++ = (uint8_t)op;
            e.out = tm_put_u(e.out, arg);
            put_ts(&e);
            break;
        case TM_OP_MMAP:
        case TM_OP_MUNMAP:
            if (end - w < (op == TM_OP_MMAP ? 2 : 1))
                return NULL;
            *e.out++ = (uint8_t)op;
            put_addr(&e, arg);
            e.out = tm_put_u(e.out, *w++);
            put_ts(&e);
            if (op == TM_OP_MMAP)
                e.out = tm_put_u(e.out, *w++);
            break;
        case TM_OP_MREMAP:
            if (end - w < 5)
                return NULL;
            *e.out++ = (uint8_t)op;
            put_addr(&e, w[0]);
            e.out = tm_put_u(e.out, w[1]);
            put_addr(&e, w[2]);
            e.out = tm_put_u(e.out, w[3]);
            e.out = tm_put_u(e.out, arg);
            put_ts(&e);
            e.out = tm_put_u(e.out, w[4]);
            w += 5;
            break;
        case TM_RAW_BYTES: {
            uint32_t words = tm_raw_bytes_words((uint32_t)arg) - 1;
            if ((uint64_t)(end - w) < words)
                return NULL;
            memcpy(e.out, w, arg);
            e.out += arg;
            w += words;
            break;
        }
        default:
            return NULL;
        }
    }
    return e.out;
}
