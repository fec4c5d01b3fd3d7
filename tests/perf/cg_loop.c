/* cg_loop — the C allocation loop of callgrind_bench.py.
 *
 *     cg_loop PAIRS [THREADS [cross]]
 *
 * PAIRS malloc+free pairs in all, split evenly over THREADS threads (1 by
 * default).  Sizes run over 16..527 bytes from a per-thread xorshift; one
 * block in 97 is kept a while in a ring of 64 before it is freed.  With
 * `cross`, each thread allocates a batch, the threads meet at a barrier,
 * and each frees the batch of the next thread: every free is cross-thread.
 * The program prints nothing; the counts are exact by construction. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KEEP_EVERY = 97, RING = 64, BATCH = 4096 };

static long pairs_per_thread;
static int nthreads;
static pthread_barrier_t barrier;
static void **batches;          /* nthreads * BATCH, for `cross` */

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t size_of(uint64_t *s)
{
    return 16 + (size_t)(next(s) % 512);
}

static void *own_loop(void *arg)
{
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (uintptr_t)arg;
    void *ring[RING] = {0};
    unsigned slot = 0;
    for (long i = 0; i < pairs_per_thread; i++) {
        void *p = malloc(size_of(&s));
        if (!p)
            abort();
        *(volatile char *)p = 1;
        if (i % KEEP_EVERY == 0) {
            free(ring[slot]);       /* free(NULL) on the first lap: not counted below */
            ring[slot] = p;
            slot = (slot + 1) % RING;
        } else {
            free(p);
        }
    }
    for (unsigned i = 0; i < RING; i++)
        free(ring[i]);
    return NULL;
}

static void *cross_loop(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull ^ (uintptr_t)arg;
    void **mine = batches + (size_t)me * BATCH;
    void **theirs = batches + (size_t)((me + 1) % nthreads) * BATCH;
    for (long done = 0; done < pairs_per_thread; done += BATCH) {
        long n = pairs_per_thread - done < BATCH ? pairs_per_thread - done : BATCH;
        for (long i = 0; i < n; i++)
            if (!(mine[i] = malloc(size_of(&s))))
                abort();
        pthread_barrier_wait(&barrier);
        for (long i = 0; i < n; i++)
            free(theirs[i]);
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cg_loop PAIRS [THREADS [cross]]\n");
        return 2;
    }
    long pairs = atol(argv[1]);
    nthreads = argc > 2 ? atoi(argv[2]) : 1;
    int cross = argc > 3 && !strcmp(argv[3], "cross");
    if (pairs <= 0 || nthreads < 1 || nthreads > 64) {
        fprintf(stderr, "cg_loop: PAIRS > 0 and 1 <= THREADS <= 64\n");
        return 2;
    }
    pairs_per_thread = pairs / nthreads;
    void *(*loop)(void *) = cross ? cross_loop : own_loop;
    if (cross) {
        batches = calloc((size_t)nthreads * BATCH, sizeof *batches);
        if (!batches || pthread_barrier_init(&barrier, NULL, (unsigned)nthreads))
            return 1;
    }
    pthread_t t[64];
    for (int i = 1; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, loop, (void *)(uintptr_t)i))
            return 1;
    loop((void *)(uintptr_t)0);
    for (int i = 1; i < nthreads; i++)
        pthread_join(t[i], NULL);
    free(batches);
    return 0;
}
