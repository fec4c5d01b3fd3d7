/* tm_lock.h — the recorder's lock (lock.c), with its fast paths inline:
 * they run twice per event. */
#ifndef TM_LOCK_H
#define TM_LOCK_H

#include "tm_internal.h"

#define TM_NO_OWNER UINT32_MAX   /* matches no thread id */

enum { TM_HELD_NONE = 0, TM_HELD_FAST, TM_HELD_SPIN, TM_HELD_REVOKED };

typedef struct tm_lock_state {
    /* The owner's line: read by the owner on every entry. */
    _Alignas(64) uint32_t owner;  /* the bias owner's tid */
    int owner_in;                 /* written by the owner only */
    int revoke;                   /* raised by a spinlock holder */
    /* Everyone else's line. */
    _Alignas(64) uint32_t spin;   /* the holder's tid, 0 = free */
    uint32_t revokes;
    uint32_t exempt;              /* the writer thread's tid: its revokes are expected */
} tm_lock_state;

extern TM_HIDDEN tm_lock_state tm_lk;

TM_HIDDEN void tm_lock_slow(uint32_t me);
TM_HIDDEN void tm_unlock_slow(int held);
/* Thread `me` holds the lock, or is half-way in or out: a signal handler
 * on it must not wait for the lock (the holder is what it interrupted). */
static inline int tm_lock_is_mine(uint32_t me)
{
    return (__atomic_load_n(&tm_lk.owner, __ATOMIC_RELAXED) == me &&
            __atomic_load_n(&tm_lk.owner_in, __ATOMIC_RELAXED)) ||
           __atomic_load_n(&tm_lk.spin, __ATOMIC_RELAXED) == me;
}
/* After tm_lock_is_mine: makes the interrupted hold a whole one (a
 * spinlock holder stopped before the owner left waits, at most about
 * `spins` yields, for it to leave).  1 when the stream is this thread's
 * alone. */
TM_HIDDEN int tm_lock_settle_mine(uint32_t me, long spins);

/* The owner's way in alone: 1 when thread `me` holds the bias and got in;
 * it leaves with tm_unlock_owner().  Two plain stores and a load. */
static inline int tm_lock_owner_try(uint32_t me)
{
    if (__atomic_load_n(&tm_lk.owner, __ATOMIC_RELAXED) != me)
        return 0;
    __atomic_store_n(&tm_lk.owner_in, 1, __ATOMIC_RELAXED);
    /* The compiler must not sink the store below the load; the CPU's
     * side of the ordering comes from the revoker's membarrier. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (tm_likely(!__atomic_load_n(&tm_lk.revoke, __ATOMIC_ACQUIRE)))
        return 1;
    __atomic_store_n(&tm_lk.owner_in, 0, __ATOMIC_RELEASE);
    return 0;
}

static inline void tm_unlock_owner(void)
{
    __atomic_store_n(&tm_lk.owner_in, 0, __ATOMIC_RELEASE);
}

static inline void tm_lock(void)
{
    uint32_t me = tm_gettid();
    if (tm_likely(tm_lock_owner_try(me))) {
        tm_self.lock_held = TM_HELD_FAST;
        return;
    }
    tm_lock_slow(me);
}

static inline void tm_unlock(void)
{
    int held = tm_self.lock_held;
    tm_self.lock_held = TM_HELD_NONE;
    if (tm_likely(held == TM_HELD_FAST))
        tm_unlock_owner();
    else
        tm_unlock_slow(held);
}

#endif
