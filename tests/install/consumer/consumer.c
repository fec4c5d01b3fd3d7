/* consumer.c — a user's program built against an installed tidemark (its
 * CMake package or its pkg-config file), nothing else of tidemark linked.
 *
 * Three invocations of region "work", each allocating 100 bytes it frees
 * and 24 bytes it keeps, then a mark "done".  Expected under the tracer:
 * regions: work, 3 invocations, 6 allocations, 372 bytes, net 72;
 * leaks --region work: 3 blocks, 72 bytes.  Without the tracer the calls
 * are no-ops and it exits 0. */
#include <stdlib.h>

#include <tidemark.h>

static void *volatile keep[3];

int main(void)
{
    for (int i = 0; i < 3; i++) {
        tidemark_region_begin("work");
        void *volatile scratch = malloc(100);
        keep[i] = malloc(24);
        free(scratch);
        tidemark_region_end();
    }
    tidemark_mark("done");
    return keep[0] && keep[1] && keep[2] ? 0 : 1;
}
