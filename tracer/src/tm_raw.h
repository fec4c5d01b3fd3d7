/* tm_raw.h — the in-memory form of events, between the recorder and the
 * writer thread.
 *
 * On the hot path an event is a few 64-bit words stored into the chunk being
 * filled; the writer thread turns each sealed chunk into trace records
 * (varints, address and time deltas; docs/trace-format.md) and compresses
 * them, on its own core.  A raw record starts with one word whose top byte
 * is the opcode and whose low 56 bits are its first operand:
 *
 *   ALLOC|code    [op|addr] [size] [stack | py stack << 32]
 *                 (code: malloc's entry point or Python's domain and
 *                 entry point, below TM_ALLOC_CODES; tm_format.h)
 *   ALLOC|code + TM_RAW_SHORT   [op|addr] [size | stack << 32]
 *                 (size below 2^32 and no Python stack: nearly every
 *                 allocation; fewer bytes through the ring)
 *   TM_RAW_TINY + code        [op|size << 43|addr >> 4]
 *                 (no stack at all, size below 2^13, the address 16-byte
 *                 aligned and below 2^47: nearly every allocation with
 *                 --stacks none, one word instead of two)
 *   FREE, REALLOC_FREE, REALLOC_FAIL, PY_FREE + k   [op|addr]
 *   THREAD        [op|tid]
 *   REGION_BEGIN  [op|name] [invocation]
 *   REGION_END    [op]
 *   MARK          [op|label]
 *   RSS           [op|bytes]
 *   MMAP          [op|addr] [len] [stack]
 *   MUNMAP        [op|addr] [len]
 *   MREMAP        [op|flags] [old addr] [old len] [new addr] [new len] [stack]
 *   TIME          [op|ticks since the file header's start_tick]
 *   BYTES         [op|len] then len bytes of encoded records, padded to a word
 *
 * Events take the latest TIME before them; records that need no time
 * (strings, stack nodes, the module map, END) travel as BYTES.  Every chunk
 * starts with a TIME record, so chunks encode independently.
 *
 * Addresses from malloc fit in 56 bits on x86-64 (user space is below 2^47,
 * 2^56 with five-level paging).
 */
#ifndef TM_RAW_H
#define TM_RAW_H

#include <stdint.h>

#include "tm_format.h"

enum tm_raw_op {
    TM_RAW_TIME = 0x01,
    TM_RAW_BYTES = 0x02,
    TM_RAW_SHORT = 0x80,  /* added to an ALLOC opcode: the two-word form */
    TM_RAW_TINY = 0xa0,   /* plus code (below TM_ALLOC_CODES): the one-word form */
    /* every other raw opcode is the trace opcode itself (enum tm_op) */
};

#define TM_RAW_ARG_MASK ((UINT64_C(1) << 56) - 1)

static inline uint64_t tm_raw(unsigned op, uint64_t arg)
{
    return (uint64_t)op << 56 | (arg & TM_RAW_ARG_MASK);
}

static inline unsigned tm_raw_op(uint64_t w)
{
    return (unsigned)(w >> 56);
}

static inline uint64_t tm_raw_arg(uint64_t w)
{
    return w & TM_RAW_ARG_MASK;
}

#define TM_RAW_TINY_SIZE_BITS 13
#define TM_RAW_TINY_ADDR_BITS 43 /* of the address >> 4 */

/* 1 when an allocation fits the one-word form.  One test: the stack, the
 * size's high bits and the address's misaligned or high bits are all 0. */
static inline int tm_raw_alloc_is_tiny(const void *ptr, uint64_t size, uint32_t stack)
{
    const uintptr_t addr_bad = ~(((uintptr_t)1 << (TM_RAW_TINY_ADDR_BITS + 4)) - 16);
    return (((uintptr_t)ptr & addr_bad) | size >> TM_RAW_TINY_SIZE_BITS | stack) == 0;
}

/* The one-word form's fields, from its low 56 bits (tm_raw_arg). */
static inline uint64_t tm_raw_tiny_addr(uint64_t arg)
{
    return (arg & ((UINT64_C(1) << TM_RAW_TINY_ADDR_BITS) - 1)) << 4;
}

static inline uint64_t tm_raw_tiny_size(uint64_t arg)
{
    return arg >> TM_RAW_TINY_ADDR_BITS;
}

/* Words the short forms take for an allocation (size below 2^32, no
 * Python stack). */
static inline uint32_t tm_raw_alloc_words(const void *ptr, uint64_t size, uint32_t stack)
{
    return 2 - (uint32_t)tm_raw_alloc_is_tiny(ptr, size, stack);
}

/* An allocation in its shortest form at w (size below 2^32, no Python
 * stack): one word or two, as tm_raw_alloc_words says.  Returns the word
 * after it. */
static inline uint64_t *tm_raw_put_alloc_short(uint64_t *w, unsigned fn, const void *ptr,
                                               uint64_t size, uint32_t stack)
{
    if (tm_raw_alloc_is_tiny(ptr, size, stack)) {
        w[0] = (uint64_t)(TM_RAW_TINY + fn) << 56 | size << TM_RAW_TINY_ADDR_BITS |
               (uintptr_t)ptr >> 4;
        return w + 1;
    }
    w[0] = tm_raw(TM_RAW_SHORT | TM_OP_ALLOC | fn, (uintptr_t)ptr);
    w[1] = size | (uint64_t)stack << 32;
    return w + 2;
}

/* Words a BYTES record of len bytes takes, header included. */
static inline uint32_t tm_raw_bytes_words(uint32_t len)
{
    return 1 + (len + 7) / 8;
}

/* Most encoded bytes one raw word can turn into: a FREE (one word) becomes
 * opcode + address delta + time delta, up to 21 bytes. */
#define TM_RAW_EXPANSION 3

/* Encodes the raw records [w, end) of one chunk into trace records at out
 * (room for TM_RAW_EXPANSION bytes per raw byte).  Returns the end of the
 * output, or NULL when the chunk is malformed. */
uint8_t *tm_encode_chunk(const uint64_t *w, const uint64_t *end, uint64_t start_tick,
                         uint8_t *out);

#endif
