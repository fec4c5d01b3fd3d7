/* invocations.c — a callback-shaped region with exact per-invocation
 * numbers, for `tidemark regions`.
 *
 * Expected (asserted by tests/tracer/cases.py):
 *   "cb": 100 invocations; each allocates 16+32+64 bytes and frees the 16
 *   and 32 at once; the 64 is freed by the next invocation (it escapes),
 *   the last one leaks.  So allocs 3/3/3 (total 300), frees 2..3 (total
 *   299), bytes 112 each, net bytes 64 in the first invocation and 0 after
 *   (total 64), 99 blocks / 6336 bytes escaped, 1 block / 64 bytes leaked.
 *   "steady": 50 invocations of malloc(100) + free: net 0, nothing kept.
 */
#include "prog_util.h"
#include "tidemark.h"

static void *carry;

NOINLINE static void cb(void)
{
    tidemark_region_begin("cb");
    free(carry);
    void *a = malloc(16), *b = malloc(32);
    carry = malloc(64);
    CHECK(a && b && carry);
    free(a);
    free(b);
    tidemark_region_end();
}

NOINLINE static void steady(void)
{
    tidemark_region_begin("steady");
    void *p = malloc(100);
    CHECK(p);
    free(p);
    tidemark_region_end();
}

int main(void)
{
    for (int i = 0; i < 100; i++)
        cb();
    for (int i = 0; i < 50; i++)
        steady();
    sink = carry;
    return 0;
}
