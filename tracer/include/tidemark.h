/* tidemark.h — the region API.
 *
 * Programs include this header to mark regions and points on the trace
 * timeline.  Linking against it does not require the tracer: each call looks
 * the tracer's entry point up once (dlsym) and is a no-op of a few ns when
 * libtidemark.so is not preloaded.
 *
 *   tidemark_region_begin("rhs");   ...   tidemark_region_end();
 *   tidemark_mark("resolution=1001");
 *
 * Regions nest per thread; every allocation and free is tagged with the
 * innermost open region of its thread and that region's invocation number.
 */
#ifndef TIDEMARK_H
#define TIDEMARK_H

#ifdef __cplusplus
extern "C" {
#endif

#ifdef TIDEMARK_IMPLEMENTATION
/* Inside libtidemark.so: the real, exported entry points. */
void tidemark_region_begin(const char *name);
void tidemark_region_end(void);
void tidemark_mark(const char *label);
#else

#include <dlfcn.h>

typedef void (*tidemark__str_fn)(const char *);
typedef void (*tidemark__void_fn)(void);

static void tidemark__noop_str(const char *s) { (void)s; }
static void tidemark__noop_void(void) {}

/* Resolve once per translation unit; a racing first call resolves twice,
 * which is harmless.  RTLD_DEFAULT finds the preloaded tracer. */
static inline void *tidemark__resolve(void **slot, const char *sym, void *noop)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (fn == (void *)0) {
        fn = dlsym(RTLD_DEFAULT, sym);
        if (fn == (void *)0)
            fn = noop;
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

static inline void tidemark_region_begin(const char *name)
{
    static void *fn;
    ((tidemark__str_fn)tidemark__resolve(&fn, "tidemark_region_begin",
                                         (void *)tidemark__noop_str))(name);
}

static inline void tidemark_region_end(void)
{
    static void *fn;
    ((tidemark__void_fn)tidemark__resolve(&fn, "tidemark_region_end",
                                          (void *)tidemark__noop_void))();
}

static inline void tidemark_mark(const char *label)
{
    static void *fn;
    ((tidemark__str_fn)tidemark__resolve(&fn, "tidemark_mark",
                                         (void *)tidemark__noop_str))(label);
}

#endif /* TIDEMARK_IMPLEMENTATION */

#ifdef __cplusplus
}
#endif

#endif /* TIDEMARK_H */
