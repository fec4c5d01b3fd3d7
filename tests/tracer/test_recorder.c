/* Unit tests of the recorder core (no preload): stack trie, output path,
 * LD_PRELOAD scrubbing, the blocks the recorder writes, the raw-record
 * encoder and the biased lock. */
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
#include "tm_unwind.h"

/* --- stack trie ------------------------------------------------------------ */

static int emitted;
static uint32_t last_parent;
static uint64_t last_ip;

static void count_emit(uint32_t id, uint32_t parent, uint64_t ip)
{
    emitted++;
    last_parent = parent;
    last_ip = ip;
}

static void test_stack_intern_shares_outer_frames(void **state)
{
    assert_int_equal(tm_stacks_init(), 0);
    emitted = 0;
    /* innermost first: a <- b <- c (c outermost) */
    uintptr_t s1[] = {0xa, 0xb, 0xc};
    uint32_t n1 = tm_stack_intern(s1, 3, count_emit);
    assert_int_equal(emitted, 3);

    /* Same stack again: no new nodes, same id. */
    assert_int_equal(tm_stack_intern(s1, 3, count_emit), n1);
    assert_int_equal(emitted, 3);

    /* Different innermost frame shares b <- c. */
    uintptr_t s2[] = {0xd, 0xb, 0xc};
    uint32_t n2 = tm_stack_intern(s2, 3, count_emit);
    assert_int_equal(emitted, 4);
    assert_int_not_equal(n2, n1);
    assert_int_equal(last_ip, 0xd - 1); /* recorded as return address - 1 */

    /* Back to the first stack after a different one: found in the table,
     * not through the per-thread cache. */
    assert_int_equal(tm_stack_intern(s1, 3, count_emit), n1);
    assert_int_equal(emitted, 4);

    /* A prefix of a known stack is its own (existing) node. */
    uintptr_t s3[] = {0xb, 0xc};
    uint32_t n3 = tm_stack_intern(s3, 2, count_emit);
    assert_int_equal(emitted, 4);
    assert_int_equal(n3, last_parent);
}

static void test_stack_intern_many_grows_table(void **state)
{
    assert_int_equal(tm_stacks_init(), 0);
    emitted = 0;
    /* 100k distinct two-frame stacks sharing an outer frame: forces the
     * table to grow (its first 128k slots take up to 64k nodes). */
    uint32_t first = 0;
    for (uintptr_t i = 0; i < 100000; i++) {
        uintptr_t s[] = {0x100000 + i, 0x42};
        uint32_t id = tm_stack_intern(s, 2, count_emit);
        if (i == 0)
            first = id;
    }
    assert_int_equal(emitted, 100001);
    uintptr_t again[] = {0x100000, 0x42};
    assert_int_equal(tm_stack_intern(again, 2, count_emit), first);
    assert_int_equal(emitted, 100001);
}

/* The per-thread edge cache must never hand out a node for the same return
 * address under another parent, whichever stacks were interned in between. */
static void test_stack_intern_same_ip_other_parent(void **state)
{
    assert_int_equal(tm_stacks_init(), 0);
    uintptr_t a[] = {0x7001, 0x7101, 0x7201};
    uintptr_t b[] = {0x7001, 0x7102, 0x7201};
    uint32_t na = tm_stack_intern(a, 3, count_emit);
    uint32_t nb = tm_stack_intern(b, 3, count_emit);
    assert_int_not_equal(na, nb);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tm_stack_intern(i & 1 ? b : a, 3, count_emit), i & 1 ? nb : na);
        /* Interleave other stacks so the thread's cached chain changes. */
        uintptr_t other[] = {0x9000 + (uintptr_t)i, 0x7101, 0x7201};
        tm_stack_intern(other, 3, count_emit);
    }
    emitted = 0;
    assert_int_equal(tm_stack_intern(a, 3, count_emit), na);
    assert_int_equal(tm_stack_intern(b, 3, count_emit), nb);
    assert_int_equal(emitted, 0);
}

/* --- stack walk --------------------------------------------------------------- */

/* What a hook does with stacks: the memoized node, or a walk interned and
 * remembered.  Counts the walks. */
static int memo_walks;

static uint32_t memo_node(tm_walk *w, const void *frame)
{
    uint32_t node = tm_unwind_memo_find(w, frame);
    if (node)
        return node;
    memo_walks++;
    int keep = tm_unwind_walk_from(w, frame);
    node = tm_stack_intern_walk(w, keep, 64, count_emit);
    tm_unwind_memo_put(w, frame, node, 64);
    return node;
}

/* The walk starts at the caller of the function whose frame it is given.
 * Returns the walk's unchanged outer frames, or with walk_memoized set the
 * stack node (memo_node) and the stack pointer of the hook's caller in
 * walk_sp. */
static int walk_memoized;
static uintptr_t walk_sp;

static __attribute__((noinline)) int walk_here(uintptr_t *ra)
{
    *ra = (uintptr_t)__builtin_return_address(0);
    const uintptr_t *frame = __builtin_frame_address(0);
    if (!walk_memoized)
        return tm_unwind_walk_from(tm_walk_self(), frame);
    walk_sp = (uintptr_t)(frame + 2);
    return (int)memo_node(tm_walk_self(), frame);
}

static __attribute__((noinline)) int walk_via_a(uintptr_t *ra)
{
    int keep = walk_here(ra);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
    return keep;
}

static __attribute__((noinline)) int walk_via_b(uintptr_t *ra)
{
    int keep = walk_here(ra);
    __asm__ volatile("" ::: "memory");
    return keep;
}

static __attribute__((noinline)) int caller_x(uintptr_t *ra)
{
    int keep = walk_via_a(ra);
    __asm__ volatile("" ::: "memory");
    return keep;
}

static __attribute__((noinline)) int caller_y(uintptr_t *ra)
{
    int keep = walk_via_a(ra);
    __asm__ volatile("" ::: "memory");
    return keep;
}

/* The thread's walk state, when the fast walk can run here (else the test
 * is skipped). */
static tm_walk *fast_walk(void)
{
    assert_int_equal(tm_stacks_init(), 0);
    tm_walk *w = tm_walk_self();
    assert_non_null(w);
    if (!w->fast)
        skip();
    return w;
}

static void test_unwind_walk_reuses_exact_outer_frames(void **state)
{
    tm_walk *w = fast_walk();
    /* One call site, so the slot of its return address is rewritten with
     * the same value each time; the frames inside it differ the third time. */
    int (*const via[3])(uintptr_t *) = {walk_via_a, walk_via_a, walk_via_b};
    uintptr_t ra[3], ips[3][TM_WALK_MAX];
    int keep[3], n[3];
    for (int i = 0; i < 3; i++) {
        keep[i] = via[i](&ra[i]);
        n[i] = w->n;
        memcpy(ips[i], w->ip, sizeof ips[i]);
    }
    int d = n[0];
    assert_true(d >= 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(n[i], d);
        assert_int_equal(ips[i][d - 1], ra[i]); /* walk_here is not walked */
    }
    /* The same stack again: all of it is reused. */
    assert_int_equal(keep[1], d);
    assert_memory_equal(ips[1], ips[0], sizeof(uintptr_t) * (size_t)d);
    /* walk_via_b instead of walk_via_a: only the innermost frame differs. */
    assert_int_equal(keep[2], d - 1);
    assert_true(ips[2][d - 1] != ips[0][d - 1]);
    assert_memory_equal(ips[2], ips[0], sizeof(uintptr_t) * (size_t)(d - 1));

    /* The innermost frame is the same return address in the same slot,
     * but the frame around it was called from elsewhere: not reused. */
    int (*const callers[2])(uintptr_t *) = {caller_x, caller_y};
    uintptr_t second_outer[2];
    for (int i = 0; i < 2; i++) {
        keep[i] = callers[i](&ra[i]);
        n[i] = w->n;
        second_outer[i] = w->ip[w->n - 2];
    }
    assert_int_equal(n[0], d + 1);
    assert_int_equal(n[1], d + 1);
    assert_int_equal(ra[0], ra[1]);
    assert_true(second_outer[0] != second_outer[1]);
    assert_true(keep[1] <= d - 1);
}

/* --- memoized walks ------------------------------------------------------------ */

static void test_unwind_memo_is_exact(void **state)
{
    fast_walk();
    /* One call site in this function, so the callers differ only where
     * the steps say. */
    struct {
        int (*caller)(uintptr_t *);
        int invalidate_first;
        int walks_after; /* walks made so far once the step is done */
    } step[] = {
        {caller_x, 0, 1},
        /* The same stack again: no walk, the same node. */
        {caller_x, 0, 1},
        /* The same call site and stack pointer (so the same key), reached
         * from another caller: the memo must not answer. */
        {caller_y, 0, 2},
        /* Both stacks stay remembered. */
        {caller_x, 0, 2},
        {caller_y, 0, 2},
        /* Rules replaced (a module was unloaded): nothing memoized is
         * trusted any more. */
        {caller_x, 1, 3},
    };
    enum { N = sizeof step / sizeof step[0] };
    uint32_t node[N];
    uintptr_t ra[N], sp[N];
    memo_walks = 0;
    walk_memoized = 1;
    for (int i = 0; i < N; i++) {
        if (step[i].invalidate_first)
            tm_unwind_invalidate();
        node[i] = (uint32_t)step[i].caller(&ra[i]);
        sp[i] = walk_sp;
        assert_int_equal(memo_walks, step[i].walks_after);
        assert_int_equal(ra[i], ra[0]);
        assert_int_equal(sp[i], sp[0]);
    }
    walk_memoized = 0;
    assert_true(node[0] != 0);
    assert_int_equal(node[1], node[0]);
    assert_true(node[2] != node[0]);
    assert_int_equal(node[3], node[0]);
    assert_int_equal(node[4], node[2]);
    assert_int_equal(node[5], node[0]);
}

/* One call site reached from more callers than a memo set has ways: once
 * the slot that tells them apart is learned, every stack is remembered,
 * and each still gets its own node. */
#define CALLER(i)                                                              \
    static __attribute__((noinline)) int many_##i(uintptr_t *ra)               \
    {                                                                          \
        int keep = walk_via_a(ra);                                             \
        __asm__ volatile("" ::: "memory");                                     \
        return keep;                                                           \
    }
CALLER(0) CALLER(1) CALLER(2) CALLER(3) CALLER(4) CALLER(5) CALLER(6) CALLER(7)
CALLER(8) CALLER(9) CALLER(10) CALLER(11) CALLER(12) CALLER(13) CALLER(14) CALLER(15)

static void test_unwind_memo_learns_crowded_call_site(void **state)
{
    fast_walk();
    int (*const many[])(uintptr_t *) = {many_0, many_1, many_2,  many_3,  many_4,  many_5,
                                        many_6, many_7, many_8,  many_9,  many_10, many_11,
                                        many_12, many_13, many_14, many_15};
    enum { CALLERS = sizeof many / sizeof many[0], ROUNDS = 8 };
    _Static_assert(CALLERS > TM_MEMO_WAYS, "more callers than ways");
    uint32_t node[ROUNDS][CALLERS];
    uintptr_t ra, sp = 0;
    int walks_before_last = 0;
    walk_memoized = 1;
    memo_walks = 0;
    for (int r = 0; r < ROUNDS; r++) {
        if (r == ROUNDS - 1)
            walks_before_last = memo_walks;
        for (int i = 0; i < CALLERS; i++) {
            node[r][i] = (uint32_t)many[i](&ra);
            if (!sp)
                sp = walk_sp;
            assert_int_equal(walk_sp, sp); /* one key */
        }
    }
    walk_memoized = 0;
    /* Round-robin over 8 ways would walk every time. */
    assert_int_equal(memo_walks, walks_before_last);
    assert_true(memo_walks < 3 * CALLERS);
    for (int i = 0; i < CALLERS; i++) {
        assert_int_equal(node[ROUNDS - 1][i], node[0][i]);
        for (int j = 0; j < i; j++)
            assert_true(node[0][i] != node[0][j]);
    }
}

/* Fewer callers than a set has ways: every stack fits, but a lookup may
 * check the other callers' walks before its own.  Those checks teach the
 * slot that tells the callers apart too, so lookups go straight to theirs. */
static void test_unwind_memo_learns_from_slow_hits(void **state)
{
    fast_walk();
    int (*const few[])(uintptr_t *) = {many_0, many_1, many_2, many_3, many_4, many_5, many_6};
    enum { CALLERS = sizeof few / sizeof few[0], ROUNDS = 6 };
    _Static_assert(CALLERS < TM_MEMO_WAYS, "all callers fit in a set");
    tm_unwind_invalidate(); /* a fresh memo: nothing learned yet */
    uint32_t node[ROUNDS][CALLERS];
    uintptr_t ra;
    walk_memoized = 1;
    memo_walks = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < CALLERS; i++)
            node[r][i] = (uint32_t)few[i](&ra);
    walk_memoized = 0;
    assert_true(tm_walk_self()->memo_disc_sets != 0);
    /* Each caller walked once, and once more when its key changed. */
    assert_true(memo_walks <= 2 * CALLERS);
    for (int i = 0; i < CALLERS; i++) {
        for (int r = 1; r < ROUNDS; r++)
            assert_int_equal(node[r][i], node[0][i]);
        for (int j = 0; j < i; j++)
            assert_true(node[0][i] != node[0][j]);
    }
}

/* Checks that fail rarely are not worth a learned slot (every later lookup
 * from the call site would read it): a caller that comes back once in 300
 * lookups teaches nothing. */
static void test_unwind_memo_ignores_rare_failures(void **state)
{
    fast_walk();
    tm_unwind_invalidate();
    uintptr_t ra;
    uint32_t node0 = 0, node1 = 0;
    walk_memoized = 1;
    memo_walks = 0;
    for (int r = 0; r < 40; r++) {
        for (int i = 0; i < 300; i++)
            node0 = (uint32_t)many_0(&ra);
        node1 = (uint32_t)many_1(&ra);
    }
    walk_memoized = 0;
    assert_int_equal(tm_walk_self()->memo_disc_sets, 0);
    assert_int_equal(memo_walks, 2); /* both stacks stayed remembered */
    assert_true(node0 != 0 && node1 != 0 && node0 != node1);
}

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
    tm_record_end(TM_END_EXIT);
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
    assert_int_equal(*p++, TM_OP_END);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(v, TM_END_EXIT);
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
    tm_record_free(TM_OP_FREE, (void *)0x6010);
    assert_int_equal(tm_take_back_rss(), 0); /* taken */
    assert_int_equal(tm_sealed_count(), sealed);
    tm_record_free(TM_OP_FREE, (void *)0x6020);
    assert_int_equal(tm_sealed_count(), sealed + 1);
    assert_int_equal(tm_write_sealed(), 1);

    off_t size = lseek(fd, 0, SEEK_END) - start;
    uint8_t *buf = malloc((size_t)size);
    assert_int_equal(pread(fd, buf, (size_t)size, start), size);
    close(fd);
    tm_block_header b;
    memcpy(&b, buf, sizeof b);
    assert_int_equal(b.codec, TM_CODEC_RAW);
    const uint8_t *p = buf + sizeof b, *end = p + b.stored_len;
    uint64_t v;
    int64_t s;
    assert_int_equal(*p++, TM_OP_CLOCK);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
    assert_int_equal(tm_get_u(&p, end, &v), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_intern_shares_outer_frames),
        cmocka_unit_test(test_stack_intern_many_grows_table),
        cmocka_unit_test(test_stack_intern_same_ip_other_parent),
        cmocka_unit_test(test_unwind_walk_reuses_exact_outer_frames),
        cmocka_unit_test(test_unwind_memo_is_exact),
        cmocka_unit_test(test_unwind_memo_learns_crowded_call_site),
        cmocka_unit_test(test_unwind_memo_learns_from_slow_hits),
        cmocka_unit_test(test_unwind_memo_ignores_rare_failures),
        cmocka_unit_test(test_output_path),
        cmocka_unit_test(test_env_drop_preload),
        cmocka_unit_test(test_recorder_writes_checked_blocks),
        cmocka_unit_test(test_encode_chunk_exact),
        cmocka_unit_test(test_encode_chunk_rejects_malformed),
        cmocka_unit_test(test_biased_lock_excludes),
        cmocka_unit_test(test_writer_gives_up_busy_lock),
        cmocka_unit_test(test_mail_taken_on_the_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
