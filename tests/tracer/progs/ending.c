/* ending.c MODE — leaks 5 x 64 bytes, then ends the process by MODE:
 *   exit      return from main (status 0)
 *   _exit     _exit(7)
 *   abort     abort()           (SIGABRT)
 *   segv      null write        (SIGSEGV)
 *   kill      SIGKILL after 300 ms, so the writer has flushed
 *   busykill  SIGKILL after 300 ms of one malloc(32) + free every 100 us:
 *             far too few events to fill a chunk, so what reaches the file
 *             was sealed on the writer's request (every 100 ms) while the
 *             program kept recording; RSS is sampled meanwhile too
 * Everything allocated before the end is in the trace (for kill: up to the
 * last flush, which covers all of it after 300 ms).
 */
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "prog_util.h"

NOINLINE static void leak_five(void)
{
    static void *keep[5];
    for (int i = 0; i < 5; i++)
        keep[i] = malloc(64);
    sink = keep;
}

/* Opaque to the optimizer, so the faulting store is not removed. */
NOINLINE static void *sink_null(void)
{
    return (void *)(uintptr_t)(sink == (void *)1);
}

int main(int argc, char **argv)
{
    CHECK(argc == 2);
    leak_five();
    const char *m = argv[1];
    if (strcmp(m, "exit") == 0)
        return 0;
    if (strcmp(m, "_exit") == 0)
        _exit(7);
    if (strcmp(m, "abort") == 0)
        abort();
    if (strcmp(m, "segv") == 0)
        *(volatile int *)(uintptr_t)sink_null() = 1;
    if (strcmp(m, "busykill") == 0) {
        struct timespec start, now, pause = {0, 100 * 1000L};
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
            void *p = malloc(32);
            sink = p;
            free(p);
            nanosleep(&pause, NULL);
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while ((now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec) <
                 300 * 1000000L);
        raise(SIGKILL);
    }
    if (strcmp(m, "kill") == 0) {
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
        raise(SIGKILL);
    }
    return 99;
}
