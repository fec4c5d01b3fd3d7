/* pyalloc.c — Python's allocator domains, traced (docs/architecture.md,
 * "Python's allocators").
 *
 * CPython serves most objects (and PyMem_Malloc requests) of up to 512
 * bytes from its own small-object allocator, pymalloc, which carves them
 * out of 1 MiB arenas it maps itself: the malloc hooks never see them.  The
 * tidemark Python module (tidemark._regions, imported at start-up by the
 * _autostart that `tidemark run` puts first on PYTHONPATH) calls
 * tidemark_py_allocator() with the GIL held; it saves the interpreter's
 * allocators of the MEM and OBJ domains (PyMem_GetAllocator) and puts
 * wrappers in their place (PyMem_SetAllocator).  Each wrapper calls the
 * saved allocator — so blocks from before the wrap free where they came
 * from — and records the event with its domain (TM_OP_PY_ALLOC,
 * TM_OP_PY_FREE) through the same recorder, stacks and region tagging as a
 * malloc hook.  The RAW domain is malloc itself and stays with the hooks.
 *
 * No double count: while the saved allocator runs, the thread's guard is
 * TM_BUSY_PYALLOC, so what pymalloc asks malloc for (requests above 512
 * bytes, the debug hooks' headers) is not recorded a second time, and
 * pymalloc's arenas are not object leaks: they are recorded by the maps
 * hooks, as anonymous maps (maps.c).  (A signal handler that allocates
 * while the saved allocator runs is not recorded either: rare, and the
 * thread is then inside the interpreter's allocator, which a handler may
 * not call.)  Frees the reader never saw
 * allocated (blocks from before the wrap) are ignored by the reader.
 *
 * Nothing is ever unwrapped: the interpreter may free a block through the
 * wrappers until its last moment, after tracing ended (they then only
 * delegate).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "tm_hook.h"

/* CPython's PyMemAllocatorEx (stable since 3.5) and its domains. */
typedef struct py_allocator {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} py_allocator;

enum { PY_DOMAIN_RAW = 0, PY_DOMAIN_MEM = 1, PY_DOMAIN_OBJ = 2 };

#define MARKER "tidemark:python_allocator="

/* The saved allocators, by tm_domain (index 0 unused). */
static py_allocator saved[TM_DOMAIN_COUNT];
static int installed; /* atomic */

/* One wrapper set per domain: the domain is a constant in each, so the
 * codes fold at compile time. */
#define WRAPPERS(NAME, D)                                                                   \
    static void *NAME##_malloc(void *ctx, size_t size)                                      \
    {                                                                                       \
        (void)ctx;                                                                          \
        const py_allocator *o = &saved[D];                                                  \
        if (!enter())                                                                       \
            return o->malloc(o->ctx, size);                                                 \
        tm_self.busy = TM_BUSY_PYALLOC;                                                     \
        void *p = o->malloc(o->ctx, size);                                                  \
        tm_self.busy = TM_BUSY_HOOK;                                                        \
        if (p)                                                                              \
            record_alloc((int)tm_py_alloc_code(D, TM_FN_MALLOC), p, size);                  \
        leave();                                                                            \
        return p;                                                                           \
    }                                                                                       \
    static void *NAME##_calloc(void *ctx, size_t n, size_t size)                            \
    {                                                                                       \
        (void)ctx;                                                                          \
        const py_allocator *o = &saved[D];                                                  \
        if (!enter())                                                                       \
            return o->calloc(o->ctx, n, size);                                              \
        tm_self.busy = TM_BUSY_PYALLOC;                                                     \
        void *p = o->calloc(o->ctx, n, size);                                               \
        tm_self.busy = TM_BUSY_HOOK;                                                        \
        if (p)                                                                              \
            record_alloc((int)tm_py_alloc_code(D, TM_FN_CALLOC), p, n * size);              \
        leave();                                                                            \
        return p;                                                                           \
    }                                                                                       \
    /* The old block is recorded released first, as realloc's hook does. */                 \
    static void *NAME##_realloc(void *ctx, void *p, size_t size)                            \
    {                                                                                       \
        (void)ctx;                                                                          \
        const py_allocator *o = &saved[D];                                                  \
        if (!enter())                                                                       \
            return o->realloc(o->ctx, p, size);                                             \
        if (p)                                                                              \
            tm_record_free((int)tm_py_free_op(D, 1), p);                                    \
        tm_self.busy = TM_BUSY_PYALLOC;                                                     \
        void *q = o->realloc(o->ctx, p, size);                                              \
        tm_self.busy = TM_BUSY_HOOK;                                                        \
        if (q)                                                                              \
            record_alloc((int)tm_py_alloc_code(D, TM_FN_REALLOC), q, size);                 \
        else if (p)                                                                         \
            tm_record_free((int)tm_py_free_op(D, 2), p); /* p is still valid */             \
        leave();                                                                            \
        return q;                                                                           \
    }                                                                                       \
    /* Recorded before the block is released; the malloc hooks stay out while             \
     * the saved free runs (it may call free(); pymalloc may munmap an arena). */           \
    static void NAME##_free(void *ctx, void *p)                                             \
    {                                                                                       \
        (void)ctx;                                                                          \
        const py_allocator *o = &saved[D];                                                  \
        if (!p || !enter()) {                                                               \
            o->free(o->ctx, p);                                                             \
            return;                                                                         \
        }                                                                                   \
        tm_record_free((int)tm_py_free_op(D, 0), p);                                        \
        tm_self.busy = TM_BUSY_PYALLOC;                                                     \
        o->free(o->ctx, p);                                                                 \
        leave();                                                                            \
    }

WRAPPERS(mem, TM_DOMAIN_PYMEM)
WRAPPERS(obj, TM_DOMAIN_PYOBJ)

/* PYTHONMALLOC=malloc (or malloc_debug): every Python allocation is a
 * malloc already, seen by the hooks. */
static int python_uses_malloc(void)
{
    const char *m = getenv("PYTHONMALLOC");
    return m && (strcmp(m, "malloc") == 0 || strcmp(m, "malloc_debug") == 0);
}

#define EXPORT __attribute__((visibility("default")))

/* Called by the tidemark Python module with the GIL held, given CPython's
 * PyMem_GetAllocator and PyMem_SetAllocator.  Returns 2 when the MEM and
 * OBJ domains are traced (now or already), 1 when PYTHONMALLOC=malloc made
 * that unneeded, 0 when not tracing or TIDEMARK_PYTHON_ALLOCATOR=off.  The
 * trace gets a marker string saying which (docs/trace-format.md). */
EXPORT int tidemark_py_allocator(void (*get)(int domain, void *allocator),
                                 void (*set)(int domain, void *allocator))
{
    if (!get || !set || !tm_ensure_started())
        return 0;
    if (__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
        return 2;
    if (!tm_cfg.python_allocator)
        return 0;
    tm_quiet q = tm_quiet_begin();
    int rc;
    if (python_uses_malloc()) {
        tm_intern_string(MARKER "malloc");
        rc = 1;
    } else {
        static py_allocator mem = {NULL, mem_malloc, mem_calloc, mem_realloc, mem_free};
        static py_allocator obj = {NULL, obj_malloc, obj_calloc, obj_realloc, obj_free};
        get(PY_DOMAIN_MEM, &saved[TM_DOMAIN_PYMEM]);
        get(PY_DOMAIN_OBJ, &saved[TM_DOMAIN_PYOBJ]);
        __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
        set(PY_DOMAIN_MEM, &mem);
        set(PY_DOMAIN_OBJ, &obj);
        tm_intern_string(MARKER "traced");
        rc = 2;
    }
    tm_quiet_end(q);
    return rc;
}
