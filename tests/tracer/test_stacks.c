/* Unit tests of stacks (no preload): the stack trie (stacks.c), the fast
 * walk with its reuse of unchanged outer frames (unwind.c) and the memo of
 * finished walks (memo.c). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tm_internal.h"
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
