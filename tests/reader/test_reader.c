/* test_reader.c — the reader on hand-built traces (ordering, damage,
 * truncation, bad headers), the live-heap model, and suppression patterns. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sites.h"
#include "suppress.h"
#include "tm_reader.h"

/* --- building traces ------------------------------------------------------- */

typedef struct builder {
    uint8_t buf[4096];
    uint8_t *p;
} builder;

static void b_start(builder *b, uint64_t tick, uint64_t ns)
{
    b->p = b->buf;
    *b->p++ = TM_OP_CLOCK;
    b->p = tm_put_u(b->p, tick);
    b->p = tm_put_u(b->p, ns);
}

static void b_u(builder *b, uint64_t v) { b->p = tm_put_u(b->p, v); }
static void b_s(builder *b, int64_t v) { b->p = tm_put_s(b->p, v); }
static void b_op(builder *b, uint8_t op) { *b->p++ = op; }

static void b_string(builder *b, uint32_t id, const char *s)
{
    b_op(b, TM_OP_STRING);
    b_u(b, id);
    b_u(b, strlen(s));
    memcpy(b->p, s, strlen(s));
    b->p += strlen(s);
}

static char path[64];

static FILE *new_trace(uint16_t version)
{
    strcpy(path, "/tmp/tm_test_readerXXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    tm_file_header h = {.version = version, .header_size = sizeof h, .pid = 42,
                        .start_tick = 1000, .start_ns = 5000,
                        .flags = TM_FLAG_TICKS_ARE_NS | TM_FLAG_STACKS};
    memcpy(h.magic, TM_MAGIC, 8);
    fwrite(&h, sizeof h, 1, f);
    return f;
}

static void put_block(FILE *f, uint32_t seq, const builder *b, int corrupt)
{
    uint32_t len = (uint32_t)(b->p - b->buf);
    tm_block_header bh = {.magic = TM_BLOCK_MAGIC, .type = TM_BLOCK_RECORDS,
                          .codec = TM_CODEC_RAW, .seq = seq, .stored_len = len,
                          .raw_len = len, .checksum = tm_crc32c(0, b->buf, len)};
    if (corrupt)
        bh.checksum ^= 1;
    fwrite(&bh, sizeof bh, 1, f);
    fwrite(b->buf, len, 1, f);
}

/* A block with one thread, one allocation of `size` at `addr` and, when
 * `free_it`, its free. */
static void alloc_block(builder *b, uint64_t addr, uint64_t size, int free_it)
{
    b_start(b, 2000, 6000);
    b_op(b, TM_OP_THREAD);
    b_u(b, 7);
    b_op(b, TM_OP_ALLOC | TM_FN_MALLOC);
    b_u(b, size);
    b_s(b, (int64_t)addr);
    b_u(b, 10);
    b_u(b, 0);
    if (free_it) {
        b_op(b, TM_OP_FREE);
        b_s(b, 0);
        b_u(b, 5);
    }
}

static void end_block(builder *b)
{
    b_start(b, 3000, 7000);
    b_op(b, TM_OP_END);
    b_u(b, TM_END_EXIT);
}

static tm_reader *open_ok(void)
{
    tm_reader *r;
    char err[256];
    int rc = tm_reader_open(path, &r, err, sizeof err);
    assert_int_equal(rc, 0);
    return r;
}

/* Reads everything; returns the number of ALLOC events and their sizes. */
static int read_sizes(tm_reader *r, uint64_t *sizes, int max)
{
    tm_event ev;
    int n = 0;
    while (tm_reader_next(r, &ev) > 0)
        if (ev.kind == TM_EV_ALLOC && n < max)
            sizes[n++] = ev.size;
    return n;
}

/* --- tests -------------------------------------------------------------------- */

static void test_events_decode_exactly(void **state)
{
    (void)state;
    FILE *f = new_trace(TM_FORMAT_VERSION);
    builder b;
    b_start(&b, 2000, 6000);
    b_string(&b, 1, "rhs");
    b_op(&b, TM_OP_THREAD);
    b_u(&b, 99);
    b_op(&b, TM_OP_REGION_BEGIN);
    b_u(&b, 1);
    b_u(&b, 3);
    b_u(&b, 100);                     /* tick 1100 -> 100 ns */
    b_op(&b, TM_OP_ALLOC | TM_FN_CALLOC);
    b_u(&b, 48);
    b_s(&b, 0x7000);
    b_u(&b, 20);
    b_u(&b, 0);
    b_op(&b, TM_OP_ALLOC | TM_FN_MALLOC);
    b_u(&b, 16);
    b_s(&b, -0x100);                  /* 0x6f00 */
    b_u(&b, 1);
    b_u(&b, 0);
    b_op(&b, TM_OP_REGION_END);
    b_u(&b, 1);
    b_op(&b, TM_OP_FREE);
    b_s(&b, 0x100);                   /* 0x7000 */
    b_u(&b, 1);
    b_op(&b, TM_OP_END);
    b_u(&b, TM_END_EXIT);
    b_u(&b, 0);
    put_block(f, 0, &b, 0);
    fclose(f);

    tm_reader *r = open_ok();
    tm_event ev;
    assert_int_equal(tm_reader_next(r, &ev), 1);
    assert_int_equal(ev.kind, TM_EV_REGION_BEGIN);
    assert_string_equal(tm_reader_string(r, ev.region), "rhs");
    assert_int_equal(ev.invocation, 3);
    assert_int_equal(ev.time_ns, 100);
    assert_int_equal(tm_reader_next(r, &ev), 1);
    assert_int_equal(ev.kind, TM_EV_ALLOC);
    assert_int_equal(ev.fn, TM_FN_CALLOC);
    assert_int_equal(ev.addr, 0x7000);
    assert_int_equal(ev.size, 48);
    assert_int_equal(ev.time_ns, 120);
    assert_int_equal(ev.invocation, 3);
    assert_int_equal(ev.depth, 1);
    assert_int_equal(tm_reader_thread_tid(r, ev.thread), 99);
    assert_int_equal(tm_reader_next(r, &ev), 1);
    assert_int_equal(ev.addr, 0x6f00);
    assert_int_equal(tm_reader_next(r, &ev), 1);
    assert_int_equal(ev.kind, TM_EV_REGION_END);
    assert_int_equal(tm_reader_next(r, &ev), 1);
    assert_int_equal(ev.kind, TM_EV_FREE);
    assert_int_equal(ev.addr, 0x7000);
    assert_int_equal(ev.region, 0);   /* outside the region now */
    assert_int_equal(tm_reader_next(r, &ev), 1);
    assert_int_equal(ev.kind, TM_EV_END);
    assert_int_equal(tm_reader_next(r, &ev), 0);
    assert_int_equal(tm_reader_state(r), TM_READ_COMPLETE);
    tm_reader_close(r);
    unlink(path);
}

static void test_swapped_blocks_are_reordered(void **state)
{
    (void)state;
    FILE *f = new_trace(TM_FORMAT_VERSION);
    builder b;
    alloc_block(&b, 0x1000, 1, 0);
    put_block(f, 0, &b, 0);
    alloc_block(&b, 0x2000, 3, 0);
    put_block(f, 2, &b, 0);
    alloc_block(&b, 0x3000, 2, 0);
    put_block(f, 1, &b, 0);
    alloc_block(&b, 0x3000, 2, 0);
    put_block(f, 1, &b, 0);             /* a duplicate is dropped */
    end_block(&b);
    put_block(f, 3, &b, 0);
    fclose(f);

    tm_reader *r = open_ok();
    uint64_t sizes[8];
    assert_int_equal(read_sizes(r, sizes, 8), 3);
    assert_int_equal(sizes[0], 1);
    assert_int_equal(sizes[1], 2);
    assert_int_equal(sizes[2], 3);
    assert_int_equal(tm_reader_state(r), TM_READ_DAMAGED);   /* the duplicate */
    tm_reader_close(r);
    unlink(path);
}

static void test_corrupt_block_is_skipped(void **state)
{
    (void)state;
    FILE *f = new_trace(TM_FORMAT_VERSION);
    builder b;
    alloc_block(&b, 0x1000, 1, 0);
    put_block(f, 0, &b, 0);
    alloc_block(&b, 0x2000, 2, 0);
    put_block(f, 1, &b, 1);             /* bad checksum */
    fwrite("garbage", 7, 1, f);         /* and bytes between blocks */
    alloc_block(&b, 0x3000, 3, 0);
    put_block(f, 2, &b, 0);
    end_block(&b);
    put_block(f, 3, &b, 0);
    fclose(f);

    tm_reader *r = open_ok();
    uint64_t sizes[8];
    assert_int_equal(read_sizes(r, sizes, 8), 2);
    assert_int_equal(sizes[0], 1);
    assert_int_equal(sizes[1], 3);
    assert_int_equal(tm_reader_state(r), TM_READ_DAMAGED);
    assert_non_null(strstr(tm_reader_error(r), "checksum"));
    assert_int_equal(tm_reader_stats(r)->blocks_skipped, 1);
    tm_reader_close(r);
    unlink(path);
}

static void test_truncated_trace_reads_to_last_block(void **state)
{
    (void)state;
    FILE *f = new_trace(TM_FORMAT_VERSION);
    builder b;
    alloc_block(&b, 0x1000, 1, 0);
    put_block(f, 0, &b, 0);
    alloc_block(&b, 0x2000, 2, 0);
    put_block(f, 1, &b, 0);
    long full = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, full - 3), 0);   /* cut inside block 1 */

    tm_reader *r = open_ok();
    uint64_t sizes[8];
    assert_int_equal(read_sizes(r, sizes, 8), 1);
    assert_int_equal(tm_reader_state(r), TM_READ_TRUNCATED);
    tm_reader_close(r);
    unlink(path);
}

static void test_bad_headers_are_refused(void **state)
{
    (void)state;
    char err[256];
    tm_reader *r;
    assert_int_equal(tm_reader_open("/nonexistent/trace", &r, err, sizeof err), -ENOENT);
    assert_null(r);

    FILE *f = new_trace(TM_FORMAT_VERSION + 7);
    fclose(f);
    assert_int_equal(tm_reader_open(path, &r, err, sizeof err), -EPROTO);
    assert_non_null(strstr(err, "version"));

    f = fopen(path, "wb");
    fputs("#!/bin/sh\necho not a trace\n........................................", f);
    fclose(f);
    assert_true(tm_reader_open(path, &r, err, sizeof err) < 0);
    assert_non_null(strstr(err, "not a tidemark trace"));

    f = fopen(path, "wb");
    fwrite(TM_MAGIC, 8, 1, f);
    fclose(f);
    assert_true(tm_reader_open(path, &r, err, sizeof err) < 0);
    assert_non_null(strstr(err, "truncated"));
    unlink(path);
}

static void test_heap_realloc_fail_restores(void **state)
{
    (void)state;
    tm_heap *h = tm_heap_new();
    tm_event ev = {.kind = TM_EV_ALLOC, .addr = 0x100, .size = 64, .thread = 0};
    tm_block freed;
    assert_int_equal(tm_heap_apply(h, &ev, NULL), 0);
    ev = (tm_event){.kind = TM_EV_FREE, .addr = 0x100, .fn = TM_FN_REALLOC, .thread = 0};
    assert_int_equal(tm_heap_apply(h, &ev, &freed), 1);
    assert_int_equal(freed.size, 64);
    assert_int_equal(tm_heap_live_blocks(h), 0);
    ev = (tm_event){.kind = TM_EV_REALLOC_FAIL, .addr = 0x100, .thread = 0};
    tm_heap_apply(h, &ev, NULL);
    assert_int_equal(tm_heap_live_blocks(h), 1);
    assert_int_equal(tm_heap_live_bytes(h), 64);
    ev = (tm_event){.kind = TM_EV_FREE, .addr = 0x999, .fn = TM_FN_FREE};
    assert_int_equal(tm_heap_apply(h, &ev, &freed), 0);
    assert_int_equal(tm_heap_unmatched_frees(h), 1);
    tm_heap_free(h);
}

/* Random inserts and removals against a plain array: the table's deletion
 * (backward shift) must never lose or invent a block. */
static void test_heap_matches_reference(void **state)
{
    (void)state;
    enum { N = 20000 };
    static uint64_t live[N];
    static int is_live[N];
    tm_heap *h = tm_heap_new();
    uint64_t bytes = 0, blocks = 0, seed = 12345;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int i = (int)((seed >> 33) % N);
        tm_event ev = {.addr = 0x10000 + (uint64_t)i * 16, .thread = 0};
        if (!is_live[i]) {
            ev.kind = TM_EV_ALLOC;
            ev.size = (uint64_t)i % 97 + 1;
            live[i] = ev.size;
            is_live[i] = 1;
            bytes += ev.size;
            blocks++;
        } else {
            ev.kind = TM_EV_FREE;
            ev.fn = TM_FN_FREE;
            is_live[i] = 0;
            bytes -= live[i];
            blocks--;
        }
        assert_true(tm_heap_apply(h, &ev, NULL) >= 0);
    }
    assert_int_equal(tm_heap_live_bytes(h), bytes);
    assert_int_equal(tm_heap_live_blocks(h), blocks);
    assert_int_equal(tm_heap_unmatched_frees(h), 0);
    tm_heap_free(h);
}

static void test_suppression_patterns(void **state)
{
    (void)state;
    assert_true(tm_pattern_match("leak", "leak_seven"));
    assert_true(tm_pattern_match("seven", "leak_seven"));
    assert_false(tm_pattern_match("^seven", "leak_seven"));
    assert_true(tm_pattern_match("^leak_*n$", "leak_seven"));
    assert_false(tm_pattern_match("leak$", "leak_seven"));
    assert_true(tm_pattern_match("libpython*.so", "libpython3.11.so.1.0"));
    assert_false(tm_pattern_match("x", NULL));
}

static tm_frame nat(const char *fn, const char *module)
{
    return (tm_frame){.kind = "native", .function = fn, .module = module};
}

static tm_frame pyf(const char *fn, const char *file, int line)
{
    return (tm_frame){.kind = "python", .function = fn, .file = file, .line = line};
}

/* The site of an allocation: past the allocator; past the interpreter,
 * libffi and the process entry only when a Python frame lies outward. */
static void test_site_frame(void **state)
{
    (void)state;
    tm_frame ctypes[] = {
        nat("malloc", "libc.so.6"), nat("??", "libffi.so.8"), nat("ffi_call", "libffi.so.8"),
        nat("PyCFuncPtr_call", "_ctypes.cpython-311-x86_64-linux-gnu.so"),
        nat("_PyEval_EvalFrameDefault", "python3.11"), pyf("leak", "a.py", 7),
        pyf("<module>", "a.py", 9),
    };
    assert_int_equal(tm_site_frame(ctypes, 7), 5);
    /* Without Python frames the first frame past malloc is the site. */
    assert_int_equal(tm_site_frame(ctypes, 5), 1);
    /* The profile hook appends the Python frames after _start. */
    tm_frame hook[] = {
        nat("malloc", "libc.so.6"), nat("PyCFuncPtr_call", "_ctypes.so"),
        nat("pymain_main", "libpython3.10.so.1.0"),
        nat("__libc_start_main", "libc.so.6"), nat("_start", "python3.10"),
        pyf("leak", "a.py", 3),
    };
    assert_int_equal(tm_site_frame(hook, 6), 5);
    /* A C extension called from Python is its own site. */
    tm_frame ext[] = {
        nat("PyMem_Malloc", "python3.11"), nat("grow", "_mine.so"),
        nat("_PyEval_EvalFrameDefault", "python3.11"), pyf("f", "a.py", 1),
    };
    assert_int_equal(tm_site_frame(ext, 4), 1);
    assert_int_equal(tm_site_frame(ext, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_decode_exactly),
        cmocka_unit_test(test_swapped_blocks_are_reordered),
        cmocka_unit_test(test_corrupt_block_is_skipped),
        cmocka_unit_test(test_truncated_trace_reads_to_last_block),
        cmocka_unit_test(test_bad_headers_are_refused),
        cmocka_unit_test(test_heap_realloc_fail_restores),
        cmocka_unit_test(test_heap_matches_reference),
        cmocka_unit_test(test_suppression_patterns),
        cmocka_unit_test(test_site_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
