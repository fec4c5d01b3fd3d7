/* tm_record.h — allocations and frees into the recorder (recorder.c), with
 * the short path inline in the hooks.
 *
 * The usual event, from the lock's owner with nothing else due, is the
 * owner's two stores (tm_lock.h), one comparison with the bound the full
 * path left (recorder.c, "allocations and frees") and its words.  Inline,
 * it costs the hook no call and no second look-up of the thread's state.
 */
#ifndef TM_RECORD_H
#define TM_RECORD_H

#include "tm_internal.h"
#include "tm_lock.h"
#include "tm_raw.h"

/* Where the next record goes, and how far the owner's short path may fill:
 * its line holds nothing else. */
typedef struct tm_cursor {
    _Alignas(64) uint64_t *wpos;
    uintptr_t limit; /* atomic; see recorder.c for the closed values */
} tm_cursor;

extern TM_HIDDEN tm_cursor tm_cur;

/* A record is in the stream once tm_cur.wpos is past it: its words are
 * stored first, in the compiler's order too (no instruction), so that a
 * signal handler ending the stream on this thread (tm_end_stream) finds
 * every record before tm_cur.wpos whole. */
static inline void tm_commit(uint64_t *end)
{
    __atomic_signal_fence(__ATOMIC_RELEASE);
    tm_cur.wpos = end;
}

/* The full paths, out of line: everything but the usual event. */
TM_HIDDEN uint32_t tm_record_alloc_full(int fn, const void *ptr, size_t size,
                                        struct tm_walk *walk, int keep, uint32_t stack);
TM_HIDDEN void tm_record_free_full(int op, const void *ptr);

/* 1 when the event needs nothing but its `words`: then the owner holds the
 * lock (leave with tm_unlock_owner) and they go at tm_cur.wpos.  0: lock
 * not held, take the full path. */
static inline int tm_owner_reserve(uint32_t words)
{
    if (!tm_lock_owner_try(tm_self.tid)) /* tid 0 until known: never the owner */
        return 0;
    if (tm_likely((uintptr_t)(tm_cur.wpos + words) <=
                  __atomic_load_n(&tm_cur.limit, __ATOMIC_RELAXED)))
        return 1;
    tm_unlock_owner();
    return 0;
}

/* walk: the thread's stack walk to intern, keep: its unchanged outer
 * frames (tm_unwind_walk); or walk NULL and stack the stack node already
 * known (0 = none).  Returns the stack node recorded.  Always inline: the
 * one-word form's test made GCC keep it out of line, a call per event. */
static inline __attribute__((always_inline)) uint32_t
tm_record_alloc(int fn, const void *ptr, size_t size, struct tm_walk *walk, int keep,
                uint32_t stack)
{
    if (tm_likely(!walk && size <= UINT32_MAX) &&
        tm_owner_reserve(tm_raw_alloc_words(ptr, size, stack))) {
        tm_commit(tm_raw_put_alloc_short(tm_cur.wpos, (unsigned)fn, ptr, size, stack));
        tm_unlock_owner();
        return stack;
    }
    return tm_record_alloc_full(fn, ptr, size, walk, keep, stack);
}

static inline __attribute__((always_inline)) void tm_record_free(int op, const void *ptr)
{
    if (tm_likely(tm_owner_reserve(1))) {
        uint64_t *w = tm_cur.wpos;
        *w = tm_raw((unsigned)op, (uintptr_t)ptr);
        tm_commit(w + 1);
        tm_unlock_owner();
        return;
    }
    tm_record_free_full(op, ptr);
}

#endif
