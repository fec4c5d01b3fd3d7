/* handoff.c — another thread's records between the main thread's
 * allocations.
 *
 * The main thread allocates (the recorder's fast path, once it has the
 * lock's bias); a second thread opens region "side" (and in every other
 * round allocates a block), hands over to the main thread for ROUND
 * allocations, takes the turn back, frees its block and closes the region,
 * ROUNDS times.  Only the side thread's own blocks are inside "side",
 * though its records come between the main thread's: region records alone
 * and allocations are two ways the recorder sees another thread.
 * Expected: regions: side has ROUNDS invocations, ROUNDS / 2 allocations
 * and frees (0 or 1 each); leaks: the kept blocks, 2 * ROUNDS * ROUND of
 * 24 bytes, all from main_keeps.
 * Turns pass through an atomic counter: nothing but the test allocates.
 */
#include <pthread.h>
#include <sched.h>

#include "prog_util.h"
#include "tidemark.h"

#define ROUNDS 10
#define ROUND 50
#define TURNS (4 * ROUNDS) /* begin, main, end, main */

static int turn;
static void *kept[2 * ROUNDS * ROUND];

static void wait_turn(int t)
{
    while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != t)
        sched_yield();
}

static void *side(void *arg)
{
    (void)arg;
    void *own = NULL;
    for (int t = 0; t < TURNS; t += 2) {
        wait_turn(t);
        if (t % 4 == 0) {
            tidemark_region_begin("side");
            if (t % 8 == 4)
                own = malloc(40);
        } else {
            free(own);
            own = NULL;
            tidemark_region_end();
        }
        __atomic_store_n(&turn, t + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

NOINLINE static void main_keeps(int k)
{
    for (int i = 0; i < ROUND; i++) {
        kept[k * ROUND + i] = malloc(24);
        free(malloc(8));
    }
}

int main(void)
{
    free(malloc(8)); /* the tracer starts here, on this thread */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, side, NULL) == 0);
    for (int t = 1; t < TURNS; t += 2) {
        wait_turn(t);
        main_keeps(t / 2);
        __atomic_store_n(&turn, t + 1, __ATOMIC_RELEASE);
    }
    CHECK(pthread_join(t, NULL) == 0);
    sink = kept;
    return 0;
}
