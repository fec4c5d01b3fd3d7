/* sites.c — see sites.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sites.h"

/* Functions that only pass an allocation on.  Matched exactly: a user
 * function that happens to contain "malloc" in its name is a site. */
static const char *const allocator_functions[] = {
    "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
    "aligned_alloc", "memalign", "valloc", "pvalloc", "strdup", "strndup",
    "__strdup", "__strndup", "__libc_malloc", "__libc_calloc", "__libc_realloc",
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "operator new(unsigned long)", "operator new[](unsigned long)",
    "PyMem_Malloc", "PyMem_Calloc", "PyMem_Realloc", "PyMem_RawMalloc",
    "PyMem_RawCalloc", "PyMem_RawRealloc", "_PyMem_RawMalloc", "_PyMem_RawCalloc",
    "_PyMem_RawRealloc", "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc",
    "_PyObject_Malloc", "_PyObject_Calloc", "_PyObject_Realloc", "pymalloc_alloc",
    "_PyObject_GC_New", "_PyObject_GC_NewVar", "_PyObject_GC_Malloc",
    "_PyObject_GC_Resize", "_PyObject_New", "_PyObject_NewVar", "gc_alloc",
    "PyType_GenericAlloc", "_PyType_AllocNoTrack", "PyDataMem_UserNEW",
    "PyDataMem_UserNEW_ZEROED", "PyDataMem_UserRENEW", "default_malloc",
    "default_calloc", "default_realloc",
};

bool tm_is_allocator_frame(const tm_frame *f)
{
    if (!f->function || strcmp(f->kind, "native"))
        return false;
    for (size_t i = 0; i < sizeof allocator_functions / sizeof *allocator_functions; i++)
        if (!strcmp(f->function, allocator_functions[i]))
            return true;
    return false;
}

static bool unknown(const tm_frame *f)
{
    return !f->function || !strcmp(f->function, "??");
}

static bool starts_with(const char *s, const char *prefix)
{
    return s && !strncmp(s, prefix, strlen(prefix));
}

/* Where a process or thread starts: the profile hook puts the Python
 * frames outside these. */
static const char *const entry_functions[] = {
    "_start", "__libc_start_main", "__libc_start_call_main", "start_thread",
    "clone", "clone3", "__clone3", "__clone",
};

/* Native code that only carries a call from Python to C: the interpreter
 * itself, libffi, the ctypes module and the process and thread entry
 * points.  A frame there is a site only when no Python frame lies
 * further out. */
static bool pass_through(const tm_frame *f)
{
    const char *m = f->module ? strrchr(f->module, '/') : NULL;
    m = m ? m + 1 : f->module;
    if (starts_with(m, "python3") || starts_with(m, "libpython3") ||
        starts_with(m, "libffi.so") || starts_with(m, "_ctypes."))
        return true;
    for (size_t i = 0; f->function && i < sizeof entry_functions / sizeof *entry_functions; i++)
        if (!strcmp(f->function, entry_functions[i]))
            return true;
    return false;
}

int tm_site_frame(const tm_frame *frames, int n)
{
    if (n <= 0)
        return -1;
    /* The last allocator frame among the innermost ones: unnamed frames
     * before it are the allocator's static helpers (stripped libpython's
     * pymalloc, for one), not the caller. */
    int last = -1;
    for (int i = 0; i < n && i < 8; i++)
        if (tm_is_allocator_frame(&frames[i]))
            last = i;
        else if (!unknown(&frames[i]) && last >= 0)
            break;
    int site = last + 1;
    if (site >= n)
        return n - 1;
    /* Python called the allocation through the interpreter or ctypes:
     * the site is the first frame outward that is neither (the Python
     * line, or a C extension's function), not libffi's call-out. */
    int python = site;
    while (python < n && strcmp(frames[python].kind, "python"))
        python++;
    if (python == n)
        return site;
    int i = site;
    while (i < python && pass_through(&frames[i]))
        i++;
    return i;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return fnv(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

uint64_t tm_stack_site(tm_trace *t, tm_stack_key key)
{
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, key, frames, TM_MAX_FRAMES);
    int i = tm_site_frame(frames, n);
    if (i < 0)
        return key | 1ull << 63;        /* no frames: its own site */
    const tm_frame *f = &frames[i];
    uint64_t h = fnv_str(0xcbf29ce484222325ull, f->kind);
    if (!strcmp(f->kind, "python") || f->file) {
        /* Named by source line: the same line is one site. */
        h = fnv_str(fnv_str(h, f->function), f->file);
        h = fnv(h, &f->line, sizeof f->line);
    } else {
        /* Unnamed code: the return address within its module. */
        h = fnv_str(h, f->module);
        h = fnv(h, &f->offset, sizeof f->offset);
        if (!f->offset)
            h = fnv(h, &f->address, sizeof f->address);
    }
    return h ? h : 1;
}

int tm_groups_fold_sites(const tm_groups *by_stack, tm_trace *t, tm_groups *out)
{
    /* out is keyed by site while folding; the representative stacks are
     * put back afterwards (the first, largest, group of each site). */
    tm_groups_init(out);
    uint64_t *rep = malloc((by_stack->n ? by_stack->n : 1) * sizeof *rep);
    if (!rep)
        return -ENOMEM;
    for (size_t i = 0; i < by_stack->n; i++) {
        const tm_group *g = &by_stack->v[i];
        if (g->suppressed)
            continue;
        size_t before = out->n;
        uint64_t site = tm_stack_site(t, g->stack);
        if (tm_groups_add(out, site, g->bytes, g->blocks) < 0) {
            free(rep);
            tm_groups_free(out);
            return -ENOMEM;
        }
        if (out->n > before)
            rep[before] = g->stack;
        tm_groups_find(out, site)->stacks++;
    }
    for (size_t i = 0; i < out->n; i++)
        out->v[i].stack = rep[i];
    free(rep);
    tm_groups_sort_by_bytes(out);
    return 0;
}
