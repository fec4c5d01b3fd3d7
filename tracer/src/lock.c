/* lock.c — the recorder's lock, biased towards one thread.
 *
 * Nearly every traced process records almost all of its events from one
 * thread.  An atomic exchange costs about 6 ns on this kind of machine, as
 * much as the rest of a record, so that thread (the owner) enters with plain
 * stores: it says it is inside (owner_in), then checks that nobody asked it
 * to stay out (revoke).  Any other thread takes an ordinary spinlock, raises
 * revoke and calls membarrier(), which makes every running thread of the
 * process execute a full memory barrier.  After that, either the owner sees
 * revoke and backs off, or the other thread sees owner_in and waits: the
 * asymmetric form of Dekker's handshake, with the expensive half on the rare
 * side.
 *
 * membarrier costs microseconds, so when other application threads keep
 * taking the lock the bias is dropped for good and everyone uses the
 * spinlock.  Where membarrier is unavailable there is no bias at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_lock.h"

/* Revocations by application threads (not the tracer's own writer) after
 * which the bias is dropped. */
#define MAX_REVOKES 64

TM_HIDDEN tm_lock_state tm_lk = {.owner = TM_NO_OWNER};

static int barrier_all(void)
{
    return (int)syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
}

TM_HIDDEN void tm_lock_init(uint32_t owner)
{
    tm_lk.spin = 0;
    tm_lk.owner_in = 0;
    tm_lk.revoke = 0;
    tm_lk.revokes = 0;
    tm_lk.exempt = 0;
    tm_self.lock_held = TM_HELD_NONE;
    int saved = errno;
    int ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
             barrier_all() == 0;
    errno = saved;
    __atomic_store_n(&tm_lk.owner, ok ? owner : TM_NO_OWNER, __ATOMIC_RELEASE);
}

TM_HIDDEN void tm_lock_exempt_self(void)
{
    tm_lk.exempt = tm_gettid();
}

/* The spinlock holds its holder's tid, so that a signal handler can tell
 * the lock is held by the very thread it interrupted (tm_lock_is_mine). */
static inline int spin_try(uint32_t me)
{
    uint32_t free_ = 0;
    return __atomic_compare_exchange_n(&tm_lk.spin, &free_, me, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static inline void spin_acquire(uint32_t me)
{
    unsigned spins = 0;
    while (!spin_try(me)) {
        while (__atomic_load_n(&tm_lk.spin, __ATOMIC_RELAXED)) {
            if (++spins < 256)
                __builtin_ia32_pause();
            else
                sched_yield();
        }
    }
}

/* Spinlock held: keeps the owner out.  Returns 0 when the owner did not
 * leave within `spins` (crash paths only; others wait for good). */
static int revoke_owner(uint32_t me, long spins)
{
    __atomic_store_n(&tm_lk.revoke, 1, __ATOMIC_RELAXED);
    int saved = errno;
    barrier_all();
    errno = saved;
    for (long i = 0; __atomic_load_n(&tm_lk.owner_in, __ATOMIC_ACQUIRE); i++) {
        if (spins >= 0 && i >= spins)
            return 0;
        if (i < 256)
            __builtin_ia32_pause();
        else
            sched_yield();
    }
    if (me != tm_lk.exempt && ++tm_lk.revokes >= MAX_REVOKES) {
        /* Contended for real: no more bias.  revoke stays raised, so an
         * owner that read the old owner field still backs off. */
        __atomic_store_n(&tm_lk.owner, TM_NO_OWNER, __ATOMIC_RELEASE);
        tm_self.lock_held = TM_HELD_SPIN;
    } else {
        tm_self.lock_held = TM_HELD_REVOKED;
    }
    return 1;
}

TM_HIDDEN void tm_lock_slow(uint32_t me)
{
    spin_acquire(me);
    uint32_t owner = __atomic_load_n(&tm_lk.owner, __ATOMIC_ACQUIRE);
    if (owner != me && owner != TM_NO_OWNER) {
        revoke_owner(me, -1);
        return;
    }
    tm_self.lock_held = TM_HELD_SPIN;
}

TM_HIDDEN void tm_unlock_slow(int held)
{
    if (held == TM_HELD_REVOKED)
        __atomic_store_n(&tm_lk.revoke, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&tm_lk.spin, 0, __ATOMIC_RELEASE);
}

TM_HIDDEN int tm_trylock_spin(long spins)
{
    uint32_t me = tm_gettid();
    if (tm_lock_is_mine(me))
        return 0; /* this thread stopped inside the recorder */
    for (long i = 0; i < spins; i++) {
        if (spin_try(me)) {
            uint32_t owner = __atomic_load_n(&tm_lk.owner, __ATOMIC_ACQUIRE);
            if (owner == me || owner == TM_NO_OWNER) {
                tm_self.lock_held = TM_HELD_SPIN;
                return 1;
            }
            if (revoke_owner(me, spins))
                return 1;
            /* The owner stays inside (it waits for the writer to free a
             * slot, or it crashed there): give up, as after a failed try. */
            __atomic_store_n(&tm_lk.revoke, 0, __ATOMIC_RELEASE);
            __atomic_store_n(&tm_lk.spin, 0, __ATOMIC_RELEASE);
            return 0;
        }
        __builtin_ia32_pause();
    }
    return 0;
}

TM_HIDDEN int tm_lock_settle_mine(uint32_t me, long spins)
{
    if (__atomic_load_n(&tm_lk.spin, __ATOMIC_RELAXED) != me)
        return 1; /* the owner, inside: everyone else waits for it */
    uint32_t owner = __atomic_load_n(&tm_lk.owner, __ATOMIC_ACQUIRE);
    if (owner == me || owner == TM_NO_OWNER)
        return 1;
    /* Stopped between taking the spinlock and the owner leaving: make sure
     * it stays out (revoking twice is harmless). */
    return revoke_owner(me, spins);
}
