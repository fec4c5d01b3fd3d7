/* hooks.c — the interposed entry points.
 *
 * Each hook resolves the real function, passes straight through when the
 * thread is already inside the tracer (or tracing is off), otherwise calls
 * the real function and hands the result to the recorder.  errno is what
 * glibc left: the recorder's own syscalls never leak into it.
 *
 * Frees are recorded before the real free: once the block is released,
 * another thread may get the same address and record its allocation.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_record.h"
#include "tm_unwind.h"
#include "tm_hook.h"

/* --- bootstrap arena ------------------------------------------------------
 * dlsym may allocate while we are still resolving malloc; those requests are
 * served here and never reach the real free.  The real free is resolved
 * last, so the hooks look at the thread's resolving flag only while it is
 * still unknown. */

#define ARENA_SIZE (64 * 1024)
static _Alignas(64) uint8_t arena[ARENA_SIZE];
static size_t arena_used;

static void *arena_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    size_t start, end;
    size_t cur = __atomic_load_n(&arena_used, __ATOMIC_RELAXED);
    do {
        start = (cur + align - 1) & ~(align - 1);
        end = start + size;
        if (end > ARENA_SIZE || end < start)
            return NULL;
    } while (!__atomic_compare_exchange_n(&arena_used, &cur, end, 1, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    return arena + start; /* static storage starts zeroed: calloc is fine */
}

TM_HIDDEN int tm_in_arena(const void *p)
{
    return (const uint8_t *)p >= arena && (const uint8_t *)p < arena + ARENA_SIZE;
}

/* This thread is inside dlsym looking up the real allocator: its requests
 * go to the arena. */
static inline int bootstrapping(void)
{
    return tm_unlikely(!tm_real.free) && tm_self.resolving;
}

TM_HIDDEN tm_real_fns tm_real;

#define RESOLVE(name) tm_real.name = (__typeof__(tm_real.name))dlsym(RTLD_NEXT, #name)

TM_HIDDEN void tm_resolve_real(void)
{
    if (tm_real.free)
        return;
    tm_self.resolving = 1;
    RESOLVE(malloc);
    RESOLVE(calloc);
    RESOLVE(realloc);
    RESOLVE(reallocarray);
    RESOLVE(posix_memalign);
    RESOLVE(aligned_alloc);
    RESOLVE(memalign);
    RESOLVE(valloc);
    RESOLVE(pvalloc);
    RESOLVE(dlclose);
    RESOLVE(_exit);
    RESOLVE(execve);
    RESOLVE(execv);
    RESOLVE(execvp);
    RESOLVE(execvpe);
    RESOLVE(fexecve);
    /* free last: its presence tells the others are resolved. */
    void (*real_free)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    __atomic_store_n(&tm_real.free, real_free, __ATOMIC_RELEASE);
    tm_self.resolving = 0;
}

/* --- nested calls ----------------------------------------------------------
 * A hook that did not enter passes through to the real function, unless
 * its thread is inside a hook already and not in the tracer's own work: a
 * signal handler that interrupted a hook (or the real allocator calling
 * back).  That call is the program's and is recorded, without a stack
 * (recorder.c, "nested events"), and the thread's state is put back as the
 * interrupted hook left it. */
static inline int nested_begin(int *was)
{
    int b = tm_self.busy;
    if ((b != TM_BUSY_HOOK && b != TM_BUSY_NESTED) ||
        __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)
        return 0;
    *was = b;
    tm_self.busy = TM_BUSY_NESTED;
    return 1;
}

#define PASS_ALLOC(pass, fn, params, args, call, size_expr)                      \
    static __attribute__((noinline)) void *pass params                          \
    {                                                                           \
        int was;                                                                \
        if (!nested_begin(&was))                                                \
            return call args;                                                   \
        void *p = call args;                                                    \
        if (p)                                                                  \
            tm_record_nested_alloc(fn, p, size_expr);                           \
        tm_self.busy = was;                                                     \
        return p;                                                               \
    }

PASS_ALLOC(pass_malloc, TM_FN_MALLOC, (size_t size), (size), tm_real.malloc, size)
PASS_ALLOC(pass_calloc, TM_FN_CALLOC, (size_t n, size_t size), (n, size), tm_real.calloc, n * size)
PASS_ALLOC(pass_aligned_alloc, TM_FN_ALIGNED_ALLOC, (size_t align, size_t size), (align, size),
           tm_real.aligned_alloc, size)
PASS_ALLOC(pass_memalign, TM_FN_MEMALIGN, (size_t align, size_t size), (align, size),
           tm_real.memalign, size)
PASS_ALLOC(pass_valloc, TM_FN_VALLOC, (size_t size), (size), tm_real.valloc, size)
PASS_ALLOC(pass_pvalloc, TM_FN_PVALLOC, (size_t size), (size), tm_real.pvalloc, size)

static __attribute__((noinline)) int pass_posix_memalign(void **out, size_t align, size_t size)
{
    int was;
    if (!nested_begin(&was))
        return tm_real.posix_memalign(out, align, size);
    int rc = tm_real.posix_memalign(out, align, size);
    if (rc == 0 && *out)
        tm_record_nested_alloc(TM_FN_POSIX_MEMALIGN, *out, size);
    tm_self.busy = was;
    return rc;
}

static __attribute__((noinline)) void pass_free(void *p)
{
    int was;
    if (!nested_begin(&was)) {
        tm_real.free(p);
        return;
    }
    tm_record_nested_free(TM_OP_FREE, p);
    tm_self.busy = was;
    tm_real.free(p);
}

static __attribute__((noinline)) void *pass_realloc(int fn, void *p, size_t n, size_t size,
                                                    int is_array, int overflow, size_t total)
{
    int was;
    int nested = nested_begin(&was);
    if (nested && p)
        tm_record_nested_free(TM_OP_REALLOC_FREE, p);
    void *q = is_array ? tm_real.reallocarray(p, n, size) : tm_real.realloc(p, size);
    if (nested) {
        if (q)
            tm_record_nested_alloc(fn, q, total);
        else if (p && (overflow || total != 0))
            tm_record_nested_free(TM_OP_REALLOC_FAIL, p);
        tm_self.busy = was;
    }
    return q;
}

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t size)
{
    if (bootstrapping())
        return arena_alloc(size, 16);
    if (!enter())
        return pass_malloc(size);
    void *p = tm_real.malloc(size);
    if (p)
        record_alloc(TM_FN_MALLOC, p, size);
    leave();
    return p;
}

EXPORT void *calloc(size_t n, size_t size)
{
    if (bootstrapping()) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total))
            return NULL;
        return arena_alloc(total, 16);
    }
    if (!enter())
        return pass_calloc(n, size);
    void *p = tm_real.calloc(n, size);
    if (p)
        record_alloc(TM_FN_CALLOC, p, n * size);
    leave();
    return p;
}

/* A free needs no errno saving: the recorder's free path makes a system
 * call only when it seals a chunk or waits for the lock from another
 * thread, and those keep errno themselves (seal_locked, revoke_owner). */
EXPORT void free(void *p)
{
    if (tm_unlikely(p == NULL || tm_in_arena(p)))
        return;
    if (!enter()) {
        pass_free(p);
        return;
    }
    tm_record_free(TM_OP_FREE, p);
    /* The guard is down before the real free, which then runs as a tail
     * call: nothing of the tracer's is held any more, and the address
     * cannot be handed out again before the real free returns. */
    leave();
    tm_real.free(p);
}

/* realloc and reallocarray: the old block is recorded as released first (it
 * may be reused by another thread as soon as the real call returns); a
 * failed call records that it lives on. */
static inline __attribute__((always_inline)) void *realloc_common(int fn, void *p, size_t n,
                                                                   size_t size, int is_array)
{
    if (p && tm_in_arena(p)) {
        /* Moving out of the bootstrap arena: the arena block has no size
         * header, so copy what can be there. */
        size_t total;
        if (__builtin_mul_overflow(n, size, &total)) {
            errno = ENOMEM;
            return NULL;
        }
        void *q = malloc(total);
        if (q && total) {
            size_t avail = (size_t)(arena + ARENA_SIZE - (uint8_t *)p);
            memcpy(q, p, total < avail ? total : avail);
        }
        return q;
    }
    size_t total;
    int overflow = __builtin_mul_overflow(n, size, &total);
    int rec = enter();
    if (!rec)
        return pass_realloc(fn, p, n, size, is_array, overflow, total);
    if (p)
        tm_record_free(TM_OP_REALLOC_FREE, p);
    void *q = is_array ? tm_real.reallocarray(p, n, size) : tm_real.realloc(p, size);
    if (q)
        record_alloc(fn, q, total);
    else if (p && (overflow || total != 0))
        tm_record_free(TM_OP_REALLOC_FAIL, p); /* p is still valid */
    leave();
    return q;
}

EXPORT void *realloc(void *p, size_t size)
{
    if (bootstrapping() && !p)
        return arena_alloc(size, 16);
    return realloc_common(TM_FN_REALLOC, p, 1, size, 0);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    if (tm_unlikely(!tm_real.free))
        tm_resolve_real();
    return realloc_common(TM_FN_REALLOCARRAY, p, n, size, 1);
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    if (bootstrapping()) {
        *out = arena_alloc(size, align);
        return *out ? 0 : ENOMEM;
    }
    if (!enter())
        return pass_posix_memalign(out, align, size);
    int rc = tm_real.posix_memalign(out, align, size);
    if (rc == 0 && *out)
        record_alloc(TM_FN_POSIX_MEMALIGN, *out, size);
    leave();
    return rc;
}

#define ALIGNED_HOOK(name, fn, params, args, size_expr)                         \
    EXPORT void *name params                                                   \
    {                                                                          \
        if (!enter())                                                          \
            return pass_##name args;                                           \
        void *p = tm_real.name args;                                           \
        if (p)                                                                 \
            record_alloc(fn, p, size_expr);                                    \
        leave();                                                               \
        return p;                                                              \
    }

ALIGNED_HOOK(aligned_alloc, TM_FN_ALIGNED_ALLOC, (size_t align, size_t size), (align, size), size)
ALIGNED_HOOK(memalign, TM_FN_MEMALIGN, (size_t align, size_t size), (align, size), size)
ALIGNED_HOOK(valloc, TM_FN_VALLOC, (size_t size), (size), size)
/* pvalloc rounds the request up to whole pages; record what the caller asked. */
ALIGNED_HOOK(pvalloc, TM_FN_PVALLOC, (size_t size), (size), size)

/* --- module map and process end ------------------------------------------------ */

EXPORT int dlclose(void *h)
{
    if (tm_unlikely(!tm_real.free))
        tm_resolve_real();
    int rc = tm_real.dlclose(h);
    if (rc == 0 && !tm_self.busy && __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) == TM_STATE_ON) {
        sigset_t old;
        tm_quiet q = tm_quiet_begin_masked(&old);
        tm_unwind_invalidate();
        tm_modules_emit();
        tm_quiet_end_masked(q, &old);
    }
    return rc;
}

EXPORT void _exit(int status)
{
    if (tm_unlikely(!tm_real.free))
        tm_resolve_real();
    if (tm_is_traced_process()) { /* a vfork child shares our state: hands off */
        tm_self.busy = TM_BUSY_TRACER;
        tm_finish(TM_END__EXIT);
    }
    tm_real._exit(status);
}

EXPORT void _Exit(int status) __attribute__((alias("_exit")));

/* --- region API -------------------------------------------------------------------- */

#define TIDEMARK_IMPLEMENTATION
#include "tidemark.h"

EXPORT void tidemark_region_begin(const char *name)
{
    if (!enter())
        return;
    tm_record_region_begin(name ? name : "(null)");
    leave();
}

EXPORT void tidemark_region_end(void)
{
    if (!enter())
        return;
    tm_record_region_end();
    leave();
}

EXPORT void tidemark_mark(const char *label)
{
    if (!enter())
        return;
    tm_record_mark(label ? label : "(null)");
    leave();
}
