/* kept.c — memory that region invocations keep past their end, with exact
 * numbers, for `tidemark kept`, `regions` (own and inclusive figures,
 * --invocations) and `peak --region` (asserted by tests/tracer/reports_kept.py).
 *
 * "test", once: allocates 1000 B, calls "cb" 10 times, frees the 1000 B.
 *   Each "cb" allocates 48 B it keeps for good and 16 B it frees before it
 *   returns.  cb: 2 allocs, 64 B, net 48, peak 64, kept 48 per invocation,
 *   all 10 keep, 480 B never freed.  test: own 1 alloc, 1000 B, net 0,
 *   kept 0; inclusive 21 allocs, 1640 B, net 480, peak 1496 (1000 + 480 +
 *   16), kept 480 (10 blocks, never freed).
 * "copy", 20 times: keeps 256 B each; all 20 are freed after the loop
 *   (teardown): kept 5120 B in 20 blocks by 20 invocations, all freed
 *   later; live memory grows by 256 B per invocation; nothing leaks.
 *   peak --region copy: 5120 B in 20 blocks.
 * "result", 5 times: returns 512 B that the caller frees before the next
 *   call: each keeps 512 B, 5 blocks freed later, no growth.
 * "late", 6 times: 64 B allocated and freed; from the 4th invocation on it
 *   also keeps 32 B for good: first keeping invocation 4, 96 B leaked.
 */
#include "prog_util.h"
#include "tidemark.h"

static void *kept48[10], *copies[20], *late32[3];

NOINLINE static void cb(int i)
{
    tidemark_region_begin("cb");
    void *scratch = malloc(16);
    kept48[i] = malloc(48);
    CHECK(scratch && kept48[i]);
    sink = scratch;
    free(scratch);
    tidemark_region_end();
}

NOINLINE static void test(void)
{
    tidemark_region_begin("test");
    void *big = malloc(1000);
    CHECK(big);
    sink = big;
    for (int i = 0; i < 10; i++)
        cb(i);
    free(big);
    tidemark_region_end();
}

NOINLINE static void copy(int i)
{
    tidemark_region_begin("copy");
    copies[i] = malloc(256);
    CHECK(copies[i]);
    tidemark_region_end();
}

NOINLINE static void *result(void)
{
    tidemark_region_begin("result");
    void *r = malloc(512);
    CHECK(r);
    tidemark_region_end();
    return r;
}

NOINLINE static void late(int i)
{
    tidemark_region_begin("late");
    void *t = malloc(64);
    CHECK(t);
    sink = t;
    free(t);
    if (i >= 3) {
        late32[i - 3] = malloc(32);
        CHECK(late32[i - 3]);
    }
    tidemark_region_end();
}

int main(void)
{
    test();
    for (int i = 0; i < 20; i++)
        copy(i);
    for (int i = 0; i < 20; i++)
        free(copies[i]);
    for (int i = 0; i < 5; i++) {
        void *r = result();
        sink = r;
        free(r);
    }
    for (int i = 0; i < 6; i++)
        late(i);
    sink = kept48;
    sink = late32;
    sink = NULL;
    return 0;
}
