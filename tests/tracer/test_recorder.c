/* Unit tests of the recorder core (no preload): output path, LD_PRELOAD
 * scrubbing, the blocks the recorder writes, the raw-record encoder, the
 * biased lock and the writer's mailbox.  Stacks: test_stacks.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tm_internal.h"
#include "tm_lock.h"
#include "tm_raw.h"
#include "tm_record.h"
#include "tm_unwind.h"

/* --- output path ------------------------------------------------------------ */

static void test_output_path(void **state)
{
    tm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char out[64];
    strcpy(cfg.output, "/tmp/t.%p.trace");
    assert_int_equal(tm_output_path(&cfg, 4321, 0, out, sizeof out), 0);
    assert_string_equal(out, "/tmp/t.4321.trace");
    strcpy(cfg.output, "run.trace");
    assert_int_equal(tm_output_path(&cfg, 77, 0, out, sizeof out), 0);
    assert_string_equal(out, "run.trace");
    assert_int_equal(tm_output_path(&cfg, 77, 1, out, sizeof out), 0);
    assert_string_equal(out, "run.trace.77");
    strcpy(cfg.output, "%p-%p");
    assert_int_equal(tm_output_path(&cfg, 5, 1, out, sizeof out), 0);
    assert_string_equal(out, "5-5");
    memset(cfg.output, 'x', 100);
    cfg.output[100] = 0;
    assert_int_equal(tm_output_path(&cfg, 5, 0, out, sizeof out), -ENAMETOOLONG);
}

/* --- LD_PRELOAD scrubbing -------------------------------------------------------- */

static void test_env_drop_preload(void **state)
{
    setenv("LD_PRELOAD", "/a/libx.so /b/libtidemark.so:/c/liby.so", 1);
    tm_env_drop_preload();
    assert_string_equal(getenv("LD_PRELOAD"), "/a/libx.so:/c/liby.so");

    setenv("LD_PRELOAD", "/opt/lib/libtidemark.so", 1);
    setenv("TM_AFTER", "still-here", 1);
    tm_env_drop_preload();
    assert_null(getenv("LD_PRELOAD"));
    assert_string_equal(getenv("TM_AFTER"), "still-here");

    /* Similar names are not ours. */
    setenv("LD_PRELOAD", "/x/libnottidemark.so", 1);
    tm_env_drop_preload();
    assert_string_equal(getenv("LD_PRELOAD"), "/x/libnottidemark.so");
    unsetenv("LD_PRELOAD");
}

/* --- blocks ------------------------------------------------------------------------ */

/* A recorder writing to a fresh anonymous file; returns its descriptor. */
static int fresh_recorder(void)
{
    char path[] = "/tmp/tm-recorder-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(tm_recorder_init(fd, getpid()), 0);
    return fd;
}

static void test_recorder_writes_checked_blocks(void **state)
{
    tm_clock_init();
    tm_cfg.stacks = 1;
    tm_cfg.depth = 64;
    int fd = fresh_recorder();
    assert_int_equal(tm_stacks_init(), 0);

    /* A walk as the unwinder leaves it: return addresses, outermost first. */
    tm_walk *w = tm_walk_self();
    assert_non_null(w);
    w->ip[0] = 0x2001;
    w->ip[1] = 0x1001;
    w->sp[0] = w->sp[1] = 0;
    w->n = 2;
    tm_record_alloc(TM_FN_MALLOC, (void *)0x5000, 100, w, 0, 0);
    tm_record_free(TM_OP_FREE, (void *)0x5000);
    tm_record_region_begin("rhs");
    tm_record_region_end();
    tm_lock();
    tm_record_end(TM_END_EXIT, 0);
    tm_unlock();
    assert_int_equal(tm_write_sealed(), 1);

    off_t size = lseek(fd, 0, SEEK_END);
    uint8_t *buf = malloc((size_t)size);
    assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
    close(fd);

    tm_file_header h;
    memcpy(&h, buf, sizeof h);
    assert_memory_equal(h.magic, TM_MAGIC, 8);
    assert_int_equal(h.version, TM_FORMAT_VERSION);
    assert_int_equal(h.pid, (uint32_t)getpid());
    assert_int_equal(h.stack_depth, 64);

    tm_block_header b;
    memcpy(&b, buf + sizeof h, sizeof b);
    assert_int_equal(b.magic, TM_BLOCK_MAGIC);
    assert_int_equal(b.seq, 0);
    assert_int_equal(b.codec, TM_CODEC_RAW);
    assert_int_equal((off_t)(sizeof h + sizeof b + b.stored_len), size);
    const uint8_t *p = buf + sizeof h + sizeof b, *end = p + b.stored_len;
    assert_int_equal(tm_crc32c(0, p, b.stored_len), b.checksum);

    /* Opcodes in order, skipping operands. */
    uint64_t v;
    int64_t s;
    assert_int_equal(*p++, TM_OP_CLOCK);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    /* two new stack nodes, outermost first, the inner one a child of the
     * outer one (ids continue from earlier tests: the trie is global) */
    uint64_t node[2], parent[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(*p++, TM_OP_STACK_NODE);
        assert_int_equal(tm_get_u(&p, end, &node[i]), 0);
        assert_int_equal(tm_get_u(&p, end, &parent[i]), 0);
        assert_int_equal(tm_get_u(&p, end, &v), 0);
        assert_int_equal(v, i == 0 ? 0x2000 : 0x1000);
    }
    assert_int_equal(parent[0], 0);
    assert_int_equal(parent[1], node[0]);
    assert_int_equal(*p++, TM_OP_THREAD);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, (uint64_t)gettid());
    assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_MALLOC);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(tm_get_s(&p, end, &s), 0);
    assert_int_equal(s, 0x5000);
    assert_int_equal(tm_get_u(&p, end, &v), 0); /* dts */
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, node[1]); /* the innermost node */
    assert_int_equal(*p++, TM_OP_FREE);
    assert_int_equal(tm_get_s(&p, end, &s), 0);
    assert_int_equal(s, 0); /* same address: delta 0 */
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(*p++, TM_OP_STRING);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 3);
    assert_memory_equal(p, "rhs", 3);
    p += 3;
    assert_int_equal(*p++, TM_OP_REGION_BEGIN);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 1); /* first invocation */
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(*p++, TM_OP_REGION_END);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    /* RSS sampling is off here (rss_interval_ms 0): no HWM before END. */
    assert_int_equal(*p++, TM_OP_END);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, TM_END_EXIT);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 0);
    assert_ptr_equal(p, end);
    free(buf);
}

/* --- raw records -> trace records ------------------------------------------------------ */

static void expect_u(const uint8_t **p, const uint8_t *end, uint64_t want)
{
    uint64_t v = 0;
    assert_int_equal(tm_get_u(p, end, &v), 0);
    assert_int_equal(v, want);
}

static void expect_s(const uint8_t **p, const uint8_t *end, int64_t want)
{
    uint64_t v = 0;
    assert_int_equal(tm_get_u(p, end, &v), 0);
    assert_int_equal(tm_unzigzag(v), want);
}

static void test_encode_chunk_exact(void **state)
{
    const uint64_t start = 1000;
    uint64_t raw[] = {
        tm_raw(TM_RAW_TIME, 100),
        tm_raw(TM_OP_THREAD, 7),
        tm_raw(TM_OP_ALLOC | TM_FN_CALLOC, 0x7f0000001000), 48, 5 | (uint64_t)9 << 32,
        tm_raw(TM_RAW_TIME, 150),
        tm_raw(TM_OP_FREE, 0x7f0000000ff0),
        tm_raw(TM_RAW_TIME, 90), /* an older clock value: time stays */
        tm_raw(TM_OP_REGION_BEGIN, 3), 2,
        tm_raw(TM_OP_RSS, 1 << 20),
        tm_raw(TM_RAW_BYTES, 3), 0x636261, /* "abc", padded */
        tm_raw(TM_OP_REGION_END, 0),
        tm_raw(TM_RAW_SHORT | TM_OP_ALLOC | TM_FN_MALLOC, 0x7f0000000fd0), 24 | (uint64_t)6 << 32,
        (uint64_t)(TM_RAW_TINY + TM_FN_REALLOC) << 56 | (uint64_t)8191 << 43 | 0x7ffffffffff0 >> 4,
    };
    uint8_t out[sizeof raw * TM_RAW_EXPANSION];
    uint8_t *end = tm_encode_chunk(raw, raw + sizeof raw / sizeof raw[0], start, out);
    assert_non_null(end);
    const uint8_t *p = out;
    assert_int_equal(*p++, TM_OP_THREAD);
    expect_u(&p, end, 7);
    assert_int_equal(*p++, TM_OP_PY_STACK);
    expect_u(&p, end, 9);
    assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_CALLOC);
    expect_u(&p, end, 48);
    expect_s(&p, end, 0x7f0000001000);
    expect_u(&p, end, 100); /* from start_tick */
    expect_u(&p, end, 5);
    assert_int_equal(*p++, TM_OP_FREE);
    expect_s(&p, end, -0x10);
    expect_u(&p, end, 50);
    assert_int_equal(*p++, TM_OP_REGION_BEGIN);
    expect_u(&p, end, 3);
    expect_u(&p, end, 2);
    expect_u(&p, end, 0);
    assert_int_equal(*p++, TM_OP_RSS);
    expect_u(&p, end, 1 << 20);
    expect_u(&p, end, 0);
    assert_memory_equal(p, "abc", 3);
    p += 3;
    assert_int_equal(*p++, TM_OP_REGION_END);
    expect_u(&p, end, 0);
    /* the two-word form: size and stack share a word, no Python stack */
    assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_MALLOC);
    expect_u(&p, end, 24);
    expect_s(&p, end, -0x20);
    expect_u(&p, end, 0);
    expect_u(&p, end, 6);
    /* the one-word form: no stack, the largest size and address it holds */
    assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_REALLOC);
    expect_u(&p, end, 8191);
    expect_s(&p, end, 0x7ffffffffff0 - 0x7f0000000fd0);
    expect_u(&p, end, 0);
    expect_u(&p, end, 0);
    assert_ptr_equal(p, end);
}

/* Which allocations take one word, and that the word they take is what
 * the encoder reads back. */
static void test_raw_alloc_tiny(void **state)
{
    const struct {
        uintptr_t addr;
        uint64_t size;
        uint32_t stack;
        uint32_t words;
    } cases[] = {
        {0x7f0000001000, 24, 0, 1},
        {0x10, 0, 0, 1},
        {0x7ffffffffff0, 8191, 0, 1},
        {0x7f0000001000, 8192, 0, 2},      /* size past 13 bits */
        {0x7f0000001008, 24, 0, 2},        /* not 16-byte aligned */
        {0x7f0000001001, 24, 0, 2},
        {(uintptr_t)1 << 47, 24, 0, 2},    /* above 47 bits (five-level paging) */
        {0x7f0000001000, 24, 3, 2},        /* a stack */
        {0x7f0000001000, UINT32_MAX, 0, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const void *ptr = (const void *)cases[i].addr;
        uint32_t words = tm_raw_alloc_words(ptr, cases[i].size, cases[i].stack);
        assert_int_equal(words, cases[i].words);
        uint64_t raw[3] = {0};
        uint64_t *end = tm_raw_put_alloc_short(raw, TM_FN_CALLOC, ptr, cases[i].size,
                                               cases[i].stack);
        assert_ptr_equal(end, raw + words);
        uint8_t out[sizeof raw * TM_RAW_EXPANSION];
        uint8_t *oend = tm_encode_chunk(raw, end, 0, out);
        assert_non_null(oend);
        const uint8_t *p = out;
        assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_CALLOC);
        expect_u(&p, oend, cases[i].size);
        expect_s(&p, oend, (int64_t)cases[i].addr);
        expect_u(&p, oend, 0);
        expect_u(&p, oend, cases[i].stack);
        assert_ptr_equal(p, oend);
    }
}

/* Sizes and address deltas at every varint length, up to ten bytes, read
 * back exactly; each varint takes its own length (tm_put_u's). */
static void test_encode_varint_lengths(void **state)
{
    uint64_t sizes[] = {0, 1, 127, 128, 16383, 16384, (UINT64_C(1) << 49) - 1,
                        UINT64_C(1) << 49, (UINT64_C(1) << 56) - 1, UINT64_C(1) << 56,
                        UINT64_MAX};
    uint64_t addrs[] = {0x10, 0x7f0000001000, 0x20, 0x7fffffffffff, 0xffffffffffffff, 0x40,
                        0x80, 0x7f, 0x4000, 0x3fff, 0xabcdef0123456};
    enum { N = sizeof sizes / sizeof sizes[0] };
    _Static_assert(sizeof addrs / sizeof addrs[0] == N, "one address per size");
    uint64_t raw[3 * N];
    for (int i = 0; i < N; i++) {
        raw[3 * i] = tm_raw(TM_OP_ALLOC | TM_FN_MALLOC, addrs[i]);
        raw[3 * i + 1] = sizes[i];
        raw[3 * i + 2] = 0;
    }
    uint8_t out[sizeof raw * TM_RAW_EXPANSION];
    uint8_t *end = tm_encode_chunk(raw, raw + 3 * N, 0, out);
    assert_non_null(end);
    const uint8_t *p = out;
    uint64_t prev = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_MALLOC);
        const uint8_t *q = p;
        uint8_t want[16];
        expect_u(&p, end, sizes[i]);
        assert_int_equal(p - q, tm_put_u(want, sizes[i]) - want);
        q = p;
        expect_s(&p, end, (int64_t)(addrs[i] - prev));
        assert_int_equal(p - q, tm_put_s(want, (int64_t)(addrs[i] - prev)) - want);
        prev = addrs[i];
        expect_u(&p, end, 0);
        expect_u(&p, end, 0);
    }
    assert_ptr_equal(p, end);
}

static void test_encode_chunk_rejects_malformed(void **state)
{
    uint8_t out[256];
    uint64_t cut_alloc[] = {tm_raw(TM_OP_ALLOC, 0x1000), 16};
    assert_null(tm_encode_chunk(cut_alloc, cut_alloc + 2, 0, out));
    uint64_t cut_short[] = {tm_raw(TM_RAW_SHORT | TM_OP_ALLOC, 0x1000)};
    assert_null(tm_encode_chunk(cut_short, cut_short + 1, 0, out));
    uint64_t cut_bytes[] = {tm_raw(TM_RAW_BYTES, 20), 0};
    assert_null(tm_encode_chunk(cut_bytes, cut_bytes + 2, 0, out));
    uint64_t unknown[] = {tm_raw(0x7e, 0)};
    assert_null(tm_encode_chunk(unknown, unknown + 1, 0, out));
    uint64_t cut_region[] = {tm_raw(TM_OP_REGION_BEGIN, 1)};
    assert_null(tm_encode_chunk(cut_region, cut_region + 1, 0, out));
}

/* --- the biased lock ---------------------------------------------------------------------- */

#define LOCK_ROUNDS 5000
static volatile long shared_count;
static int others_running;

/* One locked increment, made slow so two threads inside at once would
 * lose updates. */
static void locked_increment(void)
{
    tm_lock();
    long v = shared_count;
    for (int k = 0; k < 50; k++)
        __builtin_ia32_pause();
    shared_count = v + 1;
    tm_unlock();
}

static void *exempt_counter(void *arg)
{
    tm_lock_exempt_self(); /* its revocations never drop the bias */
    for (int i = 0; i < LOCK_ROUNDS; i++)
        locked_increment();
    __atomic_sub_fetch(&others_running, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *plain_counter(void *arg)
{
    for (int i = 0; i < LOCK_ROUNDS; i++)
        locked_increment();
    __atomic_sub_fetch(&others_running, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void run_counters(void *(*other)(void *), int others)
{
    pthread_t t[4];
    shared_count = 0;
    others_running = others;
    for (int i = 0; i < others; i++)
        assert_int_equal(pthread_create(&t[i], NULL, other, NULL), 0);
    /* The owner, on its fast path, for as long as the others run. */
    long mine = 0;
    while (__atomic_load_n(&others_running, __ATOMIC_ACQUIRE) > 0 || mine < LOCK_ROUNDS) {
        locked_increment();
        mine++;
    }
    for (int i = 0; i < others; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(shared_count, mine + (long)LOCK_ROUNDS * others);
}

static void test_biased_lock_excludes(void **state)
{
    /* Every acquisition by the other thread revokes the owner's bias. */
    tm_lock_init(tm_gettid());
    run_counters(exempt_counter, 1);
    /* Application threads: the bias is revoked, then dropped for good. */
    tm_lock_init(tm_gettid());
    run_counters(plain_counter, 3);
}

/* The writer never waits for the lock: whoever holds it may be waiting for
 * the writer to free a slot. */
static int writer_result = -1;

static void *writer_tries(void *arg)
{
    tm_lock_exempt_self();
    writer_result = tm_try_record_rss(4096) + tm_try_seal_current();
    return NULL;
}

static void test_writer_gives_up_busy_lock(void **state)
{
    int fd = fresh_recorder();
    pthread_t t;
    tm_lock(); /* the owner stays inside */
    assert_int_equal(pthread_create(&t, NULL, writer_tries, NULL), 0);
    pthread_join(t, NULL);
    tm_unlock();
    assert_int_equal(writer_result, 0);
    /* With the lock free, both go through. */
    assert_int_equal(pthread_create(&t, NULL, writer_tries, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(writer_result, 2);
    close(fd);
}

/* The one raw block written since `start`, read back (fd closed): *p at
 * its first record after the CLOCK, *end at its end.  Free the result. */
static uint8_t *read_one_block(int fd, off_t start, const uint8_t **p, const uint8_t **end)
{
    off_t size = lseek(fd, 0, SEEK_END) - start;
    uint8_t *buf = malloc((size_t)size);
    assert_int_equal(pread(fd, buf, (size_t)size, start), size);
    close(fd);
    tm_block_header b;
    memcpy(&b, buf, sizeof b);
    assert_int_equal(b.codec, TM_CODEC_RAW);
    *p = buf + sizeof b;
    *end = *p + b.stored_len;
    uint64_t v;
    assert_int_equal(*(*p)++, TM_OP_CLOCK);
    assert_int_equal(tm_get_u(p, *end, &v), 0);
    assert_int_equal(tm_get_u(p, *end, &v), 0);
    return buf;
}

/* The writer's mail is taken by the next thread that records once the
 * writer's clock moved: the RSS sample goes in before that event, and the
 * chunk is sealed at the record after it. */
static void test_mail_taken_on_the_way(void **state)
{
    int fd = fresh_recorder();
    off_t start = lseek(fd, 0, SEEK_END);

    assert_int_equal(tm_post_rss(12345), 1);
    assert_int_equal(tm_post_rss(999), 0); /* the first is still there */
    tm_post_seal(1);
    uint32_t sealed = tm_sealed_count();
    tm_record_free(TM_OP_FREE, (void *)0x6000); /* the clock has not moved */
    assert_int_equal(tm_sealed_count(), sealed);
    __atomic_store_n(&tm_clock_hint, tm_ticks() + 1000, __ATOMIC_RELAXED);
    tm_recorder_poke(); /* as the writer does */
    tm_record_free(TM_OP_FREE, (void *)0x6010);
    assert_int_equal(tm_take_back_rss(), 0); /* taken */
    assert_int_equal(tm_sealed_count(), sealed);
    tm_record_free(TM_OP_FREE, (void *)0x6020);
    assert_int_equal(tm_sealed_count(), sealed + 1);
    assert_int_equal(tm_write_sealed(), 1);

    const uint8_t *p, *end;
    uint8_t *buf = read_one_block(fd, start, &p, &end);
    uint64_t v;
    int64_t s;
    assert_int_equal(*p++, TM_OP_THREAD);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(*p++, TM_OP_FREE);
    assert_int_equal(tm_get_s(&p, end, &s), 0);
    assert_int_equal(s, 0x6000);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(*p++, TM_OP_RSS);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 12345);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_true(v >= 1000); /* at the writer's clock */
    assert_int_equal(*p++, TM_OP_FREE);
    assert_int_equal(tm_get_s(&p, end, &s), 0);
    assert_int_equal(s, 0x10);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 0);
    assert_ptr_equal(p, end); /* 0x6020 went to the next chunk */
    free(buf);

    /* A sample nobody took goes back to the writer, once. */
    assert_int_equal(tm_post_rss(777), 1);
    assert_int_equal(tm_take_back_rss(), 1);
    assert_int_equal(tm_take_back_rss(), 0);
}

/* Python frames coming on reach the very next allocation, though the
 * recorder's short path was open: the allocation carries its Python stack. */
static int line_seven(void *frame)
{
    (void)frame;
    return 7;
}

void tidemark_py_enable(int (*line_of)(void *frame));
void tidemark_py_push(void *frame, uint32_t file, uint32_t func);
void tidemark_py_pop(void);

static void test_python_on_reaches_next_allocation(void **state)
{
    int fd = fresh_recorder();
    off_t start = lseek(fd, 0, SEEK_END);
    tm_record_free(TM_OP_FREE, (void *)0x7000); /* full path: opens the short path */
    tm_record_free(TM_OP_FREE, (void *)0x7010); /* short path */
    tidemark_py_enable(line_seven);
    tidemark_py_push((void *)0x1, 1, 2);
    tm_record_alloc(TM_FN_MALLOC, (void *)0x7100, 32, NULL, 0, 0);
    tidemark_py_pop();
    tidemark_py_enable(NULL);
    tm_lock();
    tm_record_end(TM_END_EXIT, 0);
    tm_unlock();
    assert_int_equal(tm_write_sealed(), 1);

    const uint8_t *p, *end;
    uint8_t *buf = read_one_block(fd, start, &p, &end);
    uint64_t v, node;
    int64_t s;
    assert_int_equal(*p++, TM_OP_THREAD);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(*p++, TM_OP_FREE);
        assert_int_equal(tm_get_s(&p, end, &s), 0);
        assert_int_equal(tm_get_u(&p, end, &v), 0);
    }
    assert_int_equal(*p++, TM_OP_PY_FRAME); /* id, parent, file, function, line, flags */
    assert_int_equal(tm_get_u(&p, end, &node), 0);
    uint64_t want[] = {0, 1, 2, 7, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tm_get_u(&p, end, &v), 0);
        assert_int_equal(v, want[i]);
    }
    assert_int_equal(*p++, TM_OP_PY_STACK);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, node);
    assert_int_equal(*p++, TM_OP_ALLOC | TM_FN_MALLOC);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, 32);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_path),
        cmocka_unit_test(test_env_drop_preload),
        cmocka_unit_test(test_recorder_writes_checked_blocks),
        cmocka_unit_test(test_encode_chunk_exact),
        cmocka_unit_test(test_raw_alloc_tiny),
        cmocka_unit_test(test_encode_varint_lengths),
        cmocka_unit_test(test_encode_chunk_rejects_malformed),
        cmocka_unit_test(test_biased_lock_excludes),
        cmocka_unit_test(test_writer_gives_up_busy_lock),
        cmocka_unit_test(test_mail_taken_on_the_way),
        cmocka_unit_test(test_python_on_reaches_next_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
