/* tm_format.h — the trace file format, shared by the writer (libtidemark.so)
 * and the reader.  docs/trace-format.md describes the same thing in prose;
 * keep the two in step.
 *
 * A trace is a fixed file header followed by blocks.  Each block is a block
 * header plus a payload of records.  Records inside a block decode on their
 * own: delta state (address, timestamp, current thread) resets at the start
 * of every block, so a reader can resume after a damaged block and a trace
 * cut short is readable up to its last complete block.
 *
 * This header must stay usable inside the preload: no libc calls, no
 * allocation, only inline helpers.
 */
#ifndef TM_FORMAT_H
#define TM_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define TM_MAGIC "TIDEMARK"        /* 8 bytes, no terminator in the file */
/* Version 2 added END's detail field, reason TM_END_WRITE_FAILED and the
 * LOST record.  The reader also reads version 1 (END without detail). */
#define TM_FORMAT_VERSION 2
#define TM_FORMAT_VERSION_MIN 1
#define TM_BLOCK_MAGIC 0x4b4c4254u /* "TBLK" little-endian */

/* File header: 64 bytes, little-endian. */
typedef struct tm_file_header {
    char magic[8];          /* "TIDEMARK" */
    uint16_t version;       /* TM_FORMAT_VERSION */
    uint16_t header_size;   /* sizeof(tm_file_header) */
    uint32_t flags;         /* TM_FLAG_* */
    uint32_t pid;
    uint32_t ppid;
    uint64_t start_tick;    /* timestamp ticks at tracer start */
    uint64_t start_ns;      /* CLOCK_MONOTONIC ns at tracer start */
    uint64_t start_unix_ns; /* CLOCK_REALTIME ns at tracer start */
    uint32_t stack_depth;   /* TIDEMARK_STACK_DEPTH in force */
    uint32_t rss_interval_ms;
    uint32_t page_size;
    uint32_t reserved;
} tm_file_header;

_Static_assert(sizeof(tm_file_header) == 64, "file header is 64 bytes");

#define TM_FLAG_STACKS 0x1u      /* native stacks recorded */
#define TM_FLAG_FOLLOW_FORK 0x2u /* started with --follow-fork */
#define TM_FLAG_TICKS_ARE_NS 0x4u /* ticks are already nanoseconds */
/* Python frames may follow (PY_FRAME / PY_STACK records); informative:
 * the records are self-describing either way. */
#define TM_FLAG_PYTHON 0x8u

/* Block header: 24 bytes, little-endian. */
typedef struct tm_block_header {
    uint32_t magic;      /* TM_BLOCK_MAGIC */
    uint16_t type;       /* TM_BLOCK_* */
    uint16_t codec;      /* TM_CODEC_* */
    uint32_t seq;        /* block sequence number, from 0 */
    uint32_t stored_len; /* payload bytes that follow in the file */
    uint32_t raw_len;    /* payload bytes after decoding */
    uint32_t checksum;   /* CRC-32C of the stored payload */
} tm_block_header;

_Static_assert(sizeof(tm_block_header) == 24, "block header is 24 bytes");

#define TM_BLOCK_RECORDS 1

#define TM_CODEC_RAW 0
#define TM_CODEC_ZSTD 1

/* Largest raw payload of one block. */
#define TM_BLOCK_MAX_RAW (1u << 20)

/* Records.  The first byte is the opcode; fields follow as LEB128 varints
 * (u = unsigned, s = zigzag-signed).  "dts" is the tick delta from the
 * previous timestamped record of the block (the first one is relative to
 * the file header's start_tick).  "daddr" is the zigzag delta from the
 * previous address of the block (the first one is relative to 0). */
enum tm_op {
    /* ALLOC | fn: u size, s daddr, u dts, u stack (0 = no stack).
     * fn is the entry point (enum tm_alloc_fn). */
    TM_OP_ALLOC = 0x10,
    /* PY_ALLOC + 3 * (domain - 1) + fn (0x19..0x1e): an allocation by one of
     * Python's allocator domains (enum tm_domain), fn TM_FN_MALLOC, _CALLOC
     * or _REALLOC; the fields of ALLOC.  ALLOC | code with code 9..14. */
    TM_OP_PY_ALLOC = 0x19,
    /* FREE: s daddr, u dts.  realloc's free of the old block uses
     * TM_OP_REALLOC_FREE so a failed realloc can restore it. */
    TM_OP_FREE = 0x20,
    TM_OP_REALLOC_FREE = 0x21,
    /* REALLOC_FAIL: s daddr, u dts.  The block freed by the preceding
     * REALLOC_FREE of the same thread and address is live again. */
    TM_OP_REALLOC_FAIL = 0x22,
    /* PY_FREE + 3 * (domain - 1) + k (0x23..0x28): s daddr, u dts.  A free
     * by one of Python's allocator domains: k = 0 free, 1 realloc's free of
     * the old block, 2 realloc failed (as REALLOC_FREE and REALLOC_FAIL). */
    TM_OP_PY_FREE = 0x23,
    /* THREAD: u tid.  Following records belong to this thread. */
    TM_OP_THREAD = 0x30,
    /* REGION_BEGIN: u name (string id), u invocation (from 1), u dts. */
    TM_OP_REGION_BEGIN = 0x40,
    /* REGION_END: u dts.  Closes the current thread's innermost region. */
    TM_OP_REGION_END = 0x41,
    /* MARK: u label (string id), u dts. */
    TM_OP_MARK = 0x42,
    /* STRING: u id (from 1), u len, len bytes (no terminator). */
    TM_OP_STRING = 0x50,
    /* STACK_NODE: u id (from 1), u parent (0 = root), u ip.  A stack is the
     * path from a node to the root; ip is the return address minus one
     * (the exact pc for the innermost frame). */
    TM_OP_STACK_NODE = 0x51,
    /* PY_FRAME: u id (from 1), u parent (0 = root), u file (string id),
     * u function (string id), u line, u flags (bit 0: entry frame — the
     * outermost Python frame of one run of the interpreter loop, i.e. one
     * _PyEval_EvalFrameDefault native frame).  A Python stack is the path
     * from a node to the root, innermost first. */
    TM_OP_PY_FRAME = 0x52,
    /* PY_STACK: u node.  The next ALLOC record of this thread happened with
     * this Python stack. */
    TM_OP_PY_STACK = 0x53,
    /* MAP_RESET: the module map is replaced by the MODULE records that
     * follow.  Stack nodes resolve against the map current when they are
     * defined. */
    TM_OP_MAP_RESET = 0x60,
    /* STACK_RESET: u next_id, u kind (0 stack nodes, 1 Python frames).
     * The tracer dropped that table (the stack tables together reached
     * TIDEMARK_STACK_MEMORY) and starts it again: stacks already
     * defined are defined again as they are met, under new ids, which go
     * on from next_id (ids are never reused; every id defined before stays
     * what it was, and records may still name it).  In a fork child's
     * trace it comes first when the ids it defines start above 1. */
    TM_OP_STACK_RESET = 0x7a,
    /* MODULE: u bias (load address minus link address), u start, u end
     * (runtime address range of the loaded segments), u build_id_len,
     * build id bytes, u path_len, path bytes. */
    TM_OP_MODULE = 0x61,
    /* RSS: u bytes, u dts.  Sampled by the tracer's own thread. */
    TM_OP_RSS = 0x70,
    /* CLOCK: u tick, u ns (absolute CLOCK_MONOTONIC).  Written before each
     * records block by the tracer; ticks convert to time by linear
     * interpolation from the file header's (start_tick, start_ns). */
    TM_OP_CLOCK = 0x71,
    /* LOST: u count (events), u dts.  Events the tracer saw but could not
     * record (counted, never dropped silently); the reader sums them. */
    TM_OP_LOST = 0x72,
    /* Anonymous memory maps (mmap with MAP_ANONYMOUS, munmap, mremap), a
     * domain of their own beside the heap.  Lengths are as the caller gave
     * them; the kernel works in whole pages, and so does the reader.
     * MMAP: s daddr, u len, u dts, u stack (0 = none).  A successful
     * anonymous mmap; whatever it overlaps is replaced (MAP_FIXED).
     * MUNMAP: s daddr, u len, u dts.  A successful munmap, or a file-backed
     * MAP_FIXED mmap over [addr, addr+len): anonymous memory there is gone.
     * MREMAP: s daddr (old address), u old_len, s daddr (new address, from
     * the old one), u new_len, u flags (bit 0: MREMAP_DONTUNMAP, the old
     * range stays mapped), u dts, u stack.  A successful mremap; it moves
     * anonymous memory only when the old range holds some. */
    TM_OP_MMAP = 0x74,
    TM_OP_MUNMAP = 0x75,
    TM_OP_MREMAP = 0x76,
    /* HWM: u bytes.  The kernel's high-water mark of the process's
     * resident set (VmHWM), read as the trace ends, just before END (its
     * time is END's).  Samples (RSS) can miss a short peak; this cannot. */
    TM_OP_HWM = 0x79,
    /* END: u reason (enum tm_end_reason), u detail (version 2: the signal
     * number for TM_END_SIGNAL, the errno for TM_END_WRITE_FAILED, else 0).
     * The process finished tracing; nothing follows. */
    TM_OP_END = 0x7f,
};

enum tm_alloc_fn {
    TM_FN_MALLOC = 0,
    TM_FN_CALLOC = 1,
    TM_FN_REALLOC = 2,
    TM_FN_REALLOCARRAY = 3,
    TM_FN_POSIX_MEMALIGN = 4,
    TM_FN_ALIGNED_ALLOC = 5,
    TM_FN_MEMALIGN = 6,
    TM_FN_VALLOC = 7,
    TM_FN_PVALLOC = 8,
    TM_FN_FREE = 9,     /* reader only: a FREE released by free() */
    TM_FN_COUNT
};

/* ALLOC | code: codes 0..8 are malloc's entry points (enum tm_alloc_fn),
 * 9..14 Python's domains (TM_OP_PY_ALLOC). */
#define TM_ALLOC_CODES 15

/* Who handed a block out.  Python's domains are traced by wrapping the
 * interpreter's allocators (PyMem_SetAllocator); the RAW domain is malloc. */
enum tm_domain {
    TM_DOMAIN_MALLOC = 0, /* the C allocator (malloc and friends) */
    TM_DOMAIN_PYMEM = 1,  /* PyMem_Malloc & co. */
    TM_DOMAIN_PYOBJ = 2,  /* PyObject_Malloc & co. (pymalloc by default) */
    TM_DOMAIN_COUNT
};

/* The ALLOC code of a Python-domain allocation (fn: malloc, calloc, realloc). */
static inline unsigned tm_py_alloc_code(unsigned domain, unsigned fn)
{
    return (unsigned)(TM_OP_PY_ALLOC - TM_OP_ALLOC) + 3 * (domain - 1) + fn;
}

/* The FREE opcode of a Python-domain free (k: 0 free, 1 realloc free, 2 fail). */
static inline unsigned tm_py_free_op(unsigned domain, unsigned k)
{
    return (unsigned)TM_OP_PY_FREE + 3 * (domain - 1) + k;
}

enum tm_end_reason {
    TM_END_EXIT = 0,   /* exit() or return from main */
    TM_END__EXIT = 1,  /* _exit() */
    TM_END_SIGNAL = 2, /* fatal signal */
    TM_END_EXEC = 3,   /* exec replaced the process image */
    TM_END_WRITE_FAILED = 4, /* writing the trace failed; detail = errno */
};

/* Largest encoded record other than STRING and MODULE. */
#define TM_RECORD_MAX 64
/* Longest string or module path stored; longer ones are truncated. */
#define TM_STRING_MAX 4096
#define TM_BUILD_ID_MAX 64

/* --- varint codec ------------------------------------------------------ */

static inline uint8_t *tm_put_u(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t tm_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t tm_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline uint8_t *tm_put_s(uint8_t *p, int64_t v)
{
    return tm_put_u(p, tm_zigzag(v));
}

/* Decodes one varint from [*p, end).  Returns 0, or -1 when the input ends
 * or the varint is longer than 10 bytes. */
static inline int tm_get_u(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const uint8_t *q = *p;
    while (q < end && shift < 70) {
        uint8_t b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static inline int tm_get_s(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    uint64_t u;
    if (tm_get_u(p, end, &u) < 0)
        return -1;
    *out = tm_unzigzag(u);
    return 0;
}

/* CRC-32C (Castagnoli), bitwise-table-free slice: fast enough for blocks
 * written off the hot path and read once. */
uint32_t tm_crc32c(uint32_t crc, const void *data, size_t len);

#endif /* TM_FORMAT_H */
