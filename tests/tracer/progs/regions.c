/* regions.c — nested regions and marks through tidemark.h.
 *
 * "outer" once; inside it "inner" 3 times, each allocating 2 x 10 bytes and
 * freeing one of them (so each inner invocation leaks 1 x 10 bytes), and
 * "outer" itself allocating 1 x 1000 bytes that it frees after the inner
 * loop (a block that escapes no invocation).  Marks "phase=1", "phase=2".
 * Expected: leaks --region inner: 3 blocks / 30 bytes; --region outer: 0.
 * Without the preload the calls are no-ops and the program exits 0.
 */
#include "prog_util.h"
#include "tidemark.h"

static void *keep[3];

NOINLINE static void inner_work(int i)
{
    void *a = malloc(10);
    keep[i] = malloc(10);
    free(a);
}

int main(void)
{
    tidemark_mark("phase=1");
    tidemark_region_begin("outer");
    void *big = malloc(1000);
    for (int i = 0; i < 3; i++) {
        tidemark_region_begin("inner");
        inner_work(i);
        tidemark_region_end();
    }
    free(big);
    tidemark_region_end();
    tidemark_region_end(); /* unbalanced: ignored */
    tidemark_mark("phase=2");
    sink = keep;
    return 0;
}
