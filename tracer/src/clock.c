/* clock.c — event timestamps.
 *
 * On x86-64 with an invariant TSC, events carry raw rdtsc ticks (about half
 * the cost of clock_gettime here); the writer puts a (tick, ns) CLOCK record
 * before every block so the reader converts exactly.  Elsewhere ticks are
 * CLOCK_MONOTONIC nanoseconds.
 */
#include <time.h>

#include "tm_internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

static int use_tsc;

/* The coarse clock: ticks, refreshed by the writer thread (tm_clock_refresh). */
TM_HIDDEN uint64_t tm_clock_hint;

TM_HIDDEN void tm_clock_refresh(void)
{
    __atomic_store_n(&tm_clock_hint, tm_ticks(), __ATOMIC_RELAXED);
}

TM_HIDDEN uint64_t tm_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

TM_HIDDEN void tm_clock_init(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    /* CPUID 0x80000007 EDX bit 8: the TSC runs at a constant rate in all
     * power states and is synchronized across cores. */
    if (__get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8)))
        use_tsc = 1;
#endif
    tm_clock_refresh();
}

TM_HIDDEN int tm_ticks_are_ns(void)
{
    return !use_tsc;
}

TM_HIDDEN uint64_t tm_ticks(void)
{
#if defined(__x86_64__)
    if (tm_likely(use_tsc))
        return __rdtsc();
#endif
    return tm_mono_ns();
}
