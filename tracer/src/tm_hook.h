/* tm_hook.h — what an interposed entry point does around the real call:
 * the recursion guard (enter, leave) and recording an allocation with its
 * stack (record_alloc).  Shared by the malloc hooks (hooks.c) and the
 * wrappers of Python's allocator domains (pyalloc.c); inline, so that
 * __builtin_frame_address(0) in record_alloc is the entry point's frame.
 */
#ifndef TM_HOOK_H
#define TM_HOOK_H

#include <errno.h>

#include "tm_internal.h"
#include "tm_record.h"
#include "tm_unwind.h"

/* Returns 1 when this call should be recorded.  Sets the recursion guard;
 * the caller clears it with leave(). */
static inline int enter(void)
{
    if (tm_unlikely(!tm_real.free))
        tm_resolve_real();
    if (tm_self.busy)
        return 0;
    if (tm_unlikely(__atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)) {
        if (!tm_ensure_started())
            return 0;
    }
    tm_self.busy = TM_BUSY_HOOK;
    return 1;
}

/* Events that came from a signal handler while this hook held the
 * recorder's lock go in now (recorder.c, "nested events"). */
static inline void leave(void)
{
    tm_hook_leave();
}

/* An allocation whose stack must be walked: the walk may read files and
 * map memory, so errno is kept.  `frame` is the hook's own, so the walk
 * starts at the hook's caller whatever calls this. */
static __attribute__((noinline)) void record_alloc_walked(int fn, void *p, size_t size,
                                                          const void *frame)
{
    int saved = errno;
    tm_walk *w = tm_walk_self();
    if (w) {
        int keep = tm_unwind_walk_from(w, frame);
        uint32_t stack = tm_record_alloc_full(fn, p, size, w, keep, 0);
        tm_unwind_memo_put(w, frame, stack, tm_cfg.depth);
    } else {
        tm_record_alloc(fn, p, size, NULL, 0, 0);
    }
    errno = saved;
}

/* Records an allocation, leaving errno as the real call did.  Inlined into
 * the hook, so __builtin_frame_address(0) is the hook's frame.  A call site
 * seen before usually needs no walk at all (tm_unwind_memo_find), and then
 * nothing on the way touches errno (the recorder keeps it on its own full
 * path). */
static inline __attribute__((always_inline)) void record_alloc(int fn, void *p, size_t size)
{
    uint32_t stack = 0;
    if (tm_cfg.stacks) {
        const void *frame = __builtin_frame_address(0);
        tm_walk *w = tm_self.walk;
        stack = w ? tm_unwind_memo_find(w, frame) : 0;
        if (!stack) {
            record_alloc_walked(fn, p, size, frame);
            return;
        }
    }
    tm_record_alloc(fn, p, size, NULL, 0, stack);
}

#endif
