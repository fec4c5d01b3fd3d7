/* maps.c — anonymous memory maps: mmap, mmap64, munmap and mremap.
 *
 * Anonymous maps are a domain of their own beside the heap (MMAP, MUNMAP
 * and MREMAP records, docs/trace-format.md).  What is seen, and what is
 * not counted twice:
 *
 *  - Only calls through the dynamic symbols reach these hooks.  glibc's
 *    own maps (malloc's mmap'd chunks for large blocks, thread stacks,
 *    the loader's) use its internal __mmap and are never seen: a large
 *    malloc is a heap block, once, not also a map.
 *  - The tracer's pages come from the kernel directly (tm_sys_mmap), and
 *    anything the tracer maps from inside a hook (busy) passes through.
 *  - What programs and libraries map themselves is seen: their own
 *    anonymous maps, allocators built on mmap (pymalloc's arenas among
 *    them: its objects are the Python domain's, its arenas are maps).
 *
 * Every munmap and every file-backed MAP_FIXED mmap is recorded as
 * MUNMAP (the reader drops whatever anonymous memory it knew in the
 * range, nothing when it knew none), every mremap as MREMAP (the reader
 * moves the range when it held anonymous memory).  The recorder's lock is
 * held across the system call and its record, so the record's place among
 * all threads' events is the kernel's order: no other thread can map a
 * range this one just unmapped and record it first.  These calls are
 * rare next to malloc; a waiting thread waits one system call.
 *
 * Failed calls are not recorded; results and errno are the real call's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tm_internal.h"
#include "tm_lock.h"
#include "tm_unwind.h"

#define EXPORT __attribute__((visibility("default")))

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);
typedef void *(*mremap_fn)(void *, size_t, size_t, int, ...);

/* An mmap may come from inside another allocator holding its own lock
 * (jemalloc maps its chunks so, and pymalloc its arenas under the GIL):
 * these hooks allocate nothing and take no lock but the recorder's.  So
 * the real functions are looked up in a constructor, not at the first
 * call (dlsym may allocate); a call before it goes to the kernel directly,
 * with the same results. */
static mmap_fn real_mmap;
static munmap_fn real_munmap;
static mremap_fn real_mremap;

__attribute__((constructor(101))) static void maps_resolve(void)
{
    __atomic_store_n(&real_mmap, (mmap_fn)dlsym(RTLD_NEXT, "mmap"), __ATOMIC_RELEASE);
    __atomic_store_n(&real_munmap, (munmap_fn)dlsym(RTLD_NEXT, "munmap"), __ATOMIC_RELEASE);
    __atomic_store_n(&real_mremap, (mremap_fn)dlsym(RTLD_NEXT, "mremap"), __ATOMIC_RELEASE);
}

static void *call_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    mmap_fn f = __atomic_load_n(&real_mmap, __ATOMIC_ACQUIRE);
    return f ? f(addr, len, prot, flags, fd, off) : tm_sys_mmap(addr, len, prot, flags, fd, off);
}

static int call_munmap(void *addr, size_t len)
{
    munmap_fn f = __atomic_load_n(&real_munmap, __ATOMIC_ACQUIRE);
    return f ? f(addr, len) : tm_sys_munmap(addr, len);
}

static void *call_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
    mremap_fn f = __atomic_load_n(&real_mremap, __ATOMIC_ACQUIRE);
    if (f)
        return f(old, old_len, new_len, flags, new_addr);
    return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

/* 1 when this call is to be recorded, with the recursion guard up (leave
 * with tm_self.busy = *was).  Unlike the allocation hooks, a map never
 * starts tracing: starting allocates.  Inside a wrapped Python allocator
 * (TM_BUSY_PYALLOC) maps are recorded: pymalloc's arenas. */
static int enter(int *was)
{
    *was = tm_self.busy;
    if ((*was != TM_BUSY_NONE && *was != TM_BUSY_PYALLOC) ||
        __atomic_load_n(&tm_state, __ATOMIC_ACQUIRE) != TM_STATE_ON)
        return 0;
    tm_self.busy = TM_BUSY_HOOK;
    return 1;
}

/* The guard back as enter found it; a hook that was the thread's outermost
 * puts in what a signal handler recorded meanwhile (tm_hook_leave). */
static inline void leave(int was)
{
    if (was == TM_BUSY_NONE)
        tm_hook_leave();
    else
        tm_self.busy = was;
}

/* The caller's stack, walked before the lock is taken, with the thread's
 * walk state if it has one already (making one allocates); NULL without.
 * errno is kept. */
static tm_walk *walk_from(const void *frame, int *keep)
{
    *keep = 0;
    tm_walk *w = tm_self.walk;
    if (!tm_cfg.stacks || !w)
        return NULL;
    int saved = errno;
    *keep = tm_unwind_walk_from(w, frame);
    errno = saved;
    return w;
}

/* Inline: `frame` is the hook's own frame, alive while the walk runs. */
static inline __attribute__((always_inline)) void *mmap_traced(void *addr, size_t len, int prot, int flags,
                                                   int fd, off_t off, const void *frame, int was)
{
    int anon = (flags & MAP_ANONYMOUS) != 0, keep = 0;
    tm_walk *w = anon ? walk_from(frame, &keep) : NULL;
    tm_lock();
    void *p = call_mmap(addr, len, prot, flags, fd, off);
    int e = errno;
    if (p != MAP_FAILED) {
        uint64_t words[1] = {len};
        tm_record_map_locked(anon ? TM_OP_MMAP : TM_OP_MUNMAP, (uintptr_t)p, words, 1, w, keep,
                             anon);
    }
    tm_unlock();
    leave(was);
    errno = e;
    return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    /* A file-backed map that replaces nothing is nothing of ours. */
    int was;
    if (!(flags & (MAP_ANONYMOUS | MAP_FIXED)) || !enter(&was))
        return call_mmap(addr, len, prot, flags, fd, off);
    return mmap_traced(addr, len, prot, flags, fd, off, __builtin_frame_address(0), was);
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
    int was;
    if (!enter(&was))
        return call_munmap(addr, len);
    tm_lock();
    int rc = call_munmap(addr, len);
    int e = errno;
    if (rc == 0) {
        uint64_t words[1] = {len};
        tm_record_map_locked(TM_OP_MUNMAP, (uintptr_t)addr, words, 1, NULL, 0, 0);
    }
    tm_unlock();
    leave(was);
    errno = e;
    return rc;
}

static inline __attribute__((always_inline)) void *mremap_traced(void *old, size_t old_len, size_t new_len,
                                                     int flags, void *new_addr,
                                                     const void *frame, int was)
{
    int keep;
    tm_walk *w = walk_from(frame, &keep);
    tm_lock();
    void *p = call_mremap(old, old_len, new_len, flags, new_addr);
    int e = errno;
    if (p != MAP_FAILED) {
        uint64_t words[4] = {(uintptr_t)old, old_len, (uintptr_t)p, new_len};
        tm_record_map_locked(TM_OP_MREMAP, (flags & MREMAP_DONTUNMAP) ? 1 : 0, words, 4, w,
                             keep, 1);
    }
    tm_unlock();
    leave(was);
    errno = e;
    return p;
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *new_addr = NULL;
    /* glibc reads the fifth argument for these flags, and only then. */
    if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
        va_list ap;
        va_start(ap, flags);
        new_addr = va_arg(ap, void *);
        va_end(ap);
    }
    int was;
    if (!enter(&was))
        return call_mremap(old, old_len, new_len, flags, new_addr);
    return mremap_traced(old, old_len, new_len, flags, new_addr, __builtin_frame_address(0),
                         was);
}
