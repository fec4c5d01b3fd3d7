/* suppress.c — see suppress.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "groups.h"
#include "sites.h"
#include "suppress.h"

/* Glob with only `*`, matching the whole of text. */
static bool glob(const char *p, const char *t)
{
    for (; *p; p++, t++) {
        if (*p == '*') {
            while (p[1] == '*')
                p++;
            if (!p[1])
                return true;
            for (; *t; t++)
                if (glob(p + 1, t))
                    return true;
            return false;
        }
        if (!*t || *p != *t)
            return false;
    }
    return !*t;
}

bool tm_pattern_match(const char *pattern, const char *text)
{
    if (!text)
        return false;
    size_t n = strlen(pattern);
    bool start = n > 0 && pattern[0] == '^';
    bool end = n > (size_t)start && pattern[n - 1] == '$';
    char buf[1024];
    /* Unanchored sides become `*`, so a plain word is a substring match. */
    int len = snprintf(buf, sizeof buf, "%s%.*s%s", start ? "" : "*",
                       (int)(n - start - end), pattern + start, end ? "" : "*");
    if (len < 0 || (size_t)len >= sizeof buf)
        return false;
    return glob(buf, text);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int tm_suppressions_load(tm_suppressions *s, const char *path)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (!f) {
        tm_error("%s: %s", path, strerror(errno));
        return TM_EXIT_BAD_INPUT;
    }
    char line[1024];
    int lineno = 0, rc = TM_EXIT_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        if (strncmp(l, "leak:", 5) != 0 || !*trim(l + 5)) {
            tm_error("%s:%d: expected 'leak:PATTERN', got '%s'", path, lineno, l);
            rc = TM_EXIT_BAD_INPUT;
            break;
        }
        char **p = realloc(s->patterns, (size_t)(s->count + 1) * sizeof *p);
        if (!p || !(p[s->count] = strdup(trim(l + 5)))) {
            if (p)
                s->patterns = p;
            tm_error("%s: out of memory", path);
            rc = TM_EXIT_FAIL;
            break;
        }
        s->patterns = p;
        s->count++;
    }
    fclose(f);
    if (rc == TM_EXIT_OK && (!(s->hits = calloc((size_t)s->count + 1, sizeof *s->hits)) ||
                             !(s->bytes = calloc((size_t)s->count + 1, sizeof *s->bytes)) ||
                             !(s->blocks = calloc((size_t)s->count + 1, sizeof *s->blocks))))
        rc = TM_EXIT_FAIL;
    if (rc != TM_EXIT_OK)
        tm_suppressions_free(s);
    return rc;
}

void tm_suppressions_free(tm_suppressions *s)
{
    for (int i = 0; i < s->count; i++)
        free(s->patterns[i]);
    free(s->patterns);
    free(s->hits);
    free(s->bytes);
    free(s->blocks);
    memset(s, 0, sizeof *s);
}

void tm_suppressions_count(tm_suppressions *s, int k, uint64_t bytes, uint64_t blocks)
{
    if (k >= 0 && k < s->count) {
        s->bytes[k] += bytes;
        s->blocks[k] += blocks;
    }
}

int tm_suppressions_match(tm_suppressions *s, tm_trace *t, tm_stack_key stack)
{
    if (!s->count)
        return -1;
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, stack, frames, TM_MAX_FRAMES);
    for (int k = 0; k < s->count; k++) {
        for (int i = 0; i < n; i++) {
            if (tm_pattern_match(s->patterns[k], frames[i].function) ||
                tm_pattern_match(s->patterns[k], frames[i].file) ||
                tm_pattern_match(s->patterns[k], frames[i].module)) {
                s->hits[k]++;
                return k;
            }
        }
    }
    return -1;
}

/* --- built-in suppressions ----------------------------------------------------- */

/* A rule matches when (a) some frame's function matches one of `through`
 * (or `through` is empty) and (b) the allocation site -- the first frame
 * outside the allocator, see sites.h -- is in a module matching one of
 * `site_modules` (or that list is empty).  Patterns as for
 * --suppressions.  Each rule names only code that runs once per process
 * (start-up, library load, import), so a leak made by the program's own
 * code -- its C extension's init, its functions, its regions -- has its
 * site in its own module or passes through none of these frames. */
typedef struct rule_def {
    const char *const *through;
    const char *const *site_modules;    /* the site's module, or an allocator
                                           frame's before it (ld.so's malloc) */
    const char *const *site_functions;  /* and the site's function */
    const char *const *allocators;      /* the innermost frame's function */
} rule_def;

static const char *const python_startup[] = {
    "^Py_InitializeFromConfig$", "^_Py_PreInitializeFromPyArgv$", "^Py_PreInitialize",
    "^Py_InitializeEx$", "^Py_Initialize$", "^_Py_InitializeMain$", "^Py_FinalizeEx$", NULL};
static const char *const glibc_one_time[] = {
    "^setlocale$", "^_nl_find_locale$", "^__gconv_open$", "^__gconv_find_transform$",
    "^__wcsmbs_load_conv$", "^tzset_internal$", "^_IO_file_doallocate$",
    "^register_printf_", "^__libc_dlopen_mode$", "^__add_to_environ$", NULL};
static const char *const loader_module[] = {"^ld-linux", "^ld-", NULL};
static const char *const dl_init[] = {"^_dl_init$", NULL};
static const char *const runtime_libraries[] = {
    "^libgfortran", "^libquadmath", "^libopenblas", "^libgomp", "^libstdc++", "^libgcc_s",
    NULL};
/* How CPython 3.11 runs an import: the IMPORT_NAME path calls importlib
 * through PyObject_CallMethodObjArgs (its own frames are static, unnamed
 * in a stripped libpython), extension modules run PyModule_ExecDef or
 * their PyInit_ function. */
static const char *const python_import[] = {
    "^PyImport_", "^PyModule_ExecDef$", "^PyObject_CallMethodObjArgs$", "^PyInit_", NULL};
static const char *const python_runtime[] = {"^libpython", "^python", NULL};
static const char *const numpy_modules[] = {
    "^_multiarray_umath", "^_multiarray_tests", "^_umath_linalg", "^lapack_lite",
    "^_pocketfft", "^mtrand", "^_generator", "^bit_generator", "^_mt19937", "^_pcg64",
    "^_philox", "^_sfc64", "^_bounded_integers", "^_common.cpython", "^libopenblas",
    "^libscipy_openblas", NULL};

static const char *const pyinit[] = {"^PyInit_", NULL};
/* SciPy's C++ (pybind11, pythran) modules: their PyInit_ builds type
 * registries with operator new that live as long as the process. */
static const char *const scipy_cxx_modules[] = {
    "^_distance_pybind.", "^pypocketfft.", "^_uarray.", "^_highs_wrapper.",
    "^_rbfinterp_pythran.", "^_stats_pythran.", NULL};
static const char *const cxx_new[] = {"^_Znwm$", "^_Znam$", "^_ZnwmRKSt9nothrow_t$", NULL};
static const char *const python_object_allocators[] = {
    "^PyType_GenericAlloc$", "^_PyObject_GC_New", "^PyObject_Malloc$", "^PyObject_Calloc$",
    "^_PyObject_New", NULL};

/* CPython 3.9 and 3.10 give a code object an inline cache once it ran
 * often enough (1024 loop iterations): the interpreter's, once per code. */
static const char *const python_code_cache[] = {"^_PyCode_InitOpcache$", NULL};

static const rule_def rule_defs[] = {
    {python_startup, NULL, NULL, NULL},
    {glibc_one_time, NULL, NULL, NULL},
    {NULL, loader_module, NULL, NULL},
    {dl_init, runtime_libraries, NULL, NULL},
    {python_import, python_runtime, NULL, NULL},
    {python_import, numpy_modules, NULL, NULL},
    /* A module's types and objects made by its PyInit_ through Python's
     * own allocator; an init that calls malloc itself stays reported. */
    {NULL, NULL, pyinit, python_object_allocators},
    {pyinit, scipy_cxx_modules, NULL, cxx_new},
    {python_code_cache, python_runtime, NULL, NULL},
};

static tm_default_rule default_rules[] = {
    {"python-startup", "interpreter start-up and shut-down (Py_InitializeFromConfig...)", 0, 0},
    {"glibc-one-time", "glibc's locale, iconv, time zone, stdio buffers, printf tables", 0, 0},
    {"dynamic-loader", "the loader's own records of loaded libraries", 0, 0},
    {"runtime-library-init", "constructors of libgfortran, libquadmath, OpenBLAS...", 0, 0},
    {"python-import", "interpreter objects of imported modules (code, functions, dicts)", 0, 0},
    {"numpy-import", "NumPy's own modules initialising at import", 0, 0},
    {"python-module-init", "Python objects and types an extension's PyInit_ creates", 0, 0},
    {"scipy-cxx-init", "registries SciPy's C++ modules build at import (operator new)", 0, 0},
    {"python-code-cache", "the caches CPython 3.9 and 3.10 give code that runs often "
                          "(_PyCode_InitOpcache)", 0, 0},
    /* Applied by block, not by stack: see tm_numpy_cache_* in cmd_leaks.c. */
    {"numpy-cache", "blocks NumPy keeps in its allocation caches (at most 7 per size)", 0, 0},
    /* Applied by block too: see python_held in cmd_leaks.c. */
    {"python-held-at-exit", "Python objects the process still held at exit, made outside "
                            "any region or in a region's first invocation (module state, "
                            "code, caches)", 0, 0},
};

const int tm_numpy_cache_rule = 9;
const int tm_python_held_rule = 10;


int tm_default_rules(tm_default_rule **rules)
{
    *rules = default_rules;
    return (int)(sizeof default_rules / sizeof *default_rules);
}

static bool any_match(const char *const *patterns, const char *text)
{
    for (; patterns && *patterns; patterns++)
        if (tm_pattern_match(*patterns, text))
            return true;
    return false;
}

bool tm_is_numpy_module(const char *module)
{
    return any_match(numpy_modules, module);
}

int tm_default_match(tm_trace *t, tm_stack_key stack)
{
    static tm_frame frames[TM_MAX_FRAMES];
    int n = tm_stack_frames(t, stack, frames, TM_MAX_FRAMES);
    int site = tm_site_frame(frames, n);
    if (site < 0)
        return -1;
    for (int r = 0; r < (int)(sizeof rule_defs / sizeof *rule_defs); r++) {
        const rule_def *d = &rule_defs[r];
        bool module = !d->site_modules;
        for (int i = 0; i <= site && !module; i++)
            module = any_match(d->site_modules, frames[i].module);
        if (!module)
            continue;
        if (d->site_functions && !any_match(d->site_functions, frames[site].function))
            continue;
        if (d->allocators && !any_match(d->allocators, frames[0].function))
            continue;
        bool through = !d->through;
        for (int i = 0; i < n && !through; i++)
            through = any_match(d->through, frames[i].function);
        if (through)
            return r;
    }
    return -1;
}

/* --- rules by block: NumPy's allocation caches, Python objects held at exit ----- */

#define NUMPY_CACHED_BELOW 1024     /* NumPy caches blocks smaller than this */
#define NUMPY_CACHE_SLOTS 7         /* and keeps this many of each size */


static uint64_t cache_key(uint64_t site, uint64_t size)
{
    uint64_t h = (site ^ (size * 0x9e3779b97f4a7c15ull)) * 0xc2b2ae3d27d4eb4full;
    return h ^ (h >> 31);
}

/* The NumPy site of a small block's stack, or 0. */
static uint64_t numpy_site(tm_block_rules *c, uint64_t key)
{
    tm_group *g = tm_groups_find(&c->site_of, key);
    if (!g) {
        static tm_frame frames[TM_MAX_FRAMES];
        int n = tm_stack_frames(c->t, key, frames, TM_MAX_FRAMES);
        int i = tm_site_frame(frames, n);
        bool numpy = i >= 0 && !strcmp(frames[i].kind, "native") &&
                     tm_is_numpy_module(frames[i].module);
        /* Memory a stack rule explains (NumPy's import) stays that rule's. */
        numpy = numpy && tm_default_match(c->t, key) < 0;
        if (tm_groups_add(&c->site_of, key, numpy ? tm_stack_site(c->t, key) : 0,
                          numpy ? 1 : 2) < 0) {
            c->oom = 1;
            return 0;
        }
        g = tm_groups_find(&c->site_of, key);
    }
    return g && g->blocks == 1 ? g->bytes : 0;
}

static int count_cached(const tm_block *b, void *arg)
{
    tm_block_rules *c = arg;
    if (b->size >= NUMPY_CACHED_BELOW)
        return 0;
    uint64_t site = numpy_site(c, tm_view_key(b->stack, b->pystack));
    if (site && tm_groups_add(&c->count, cache_key(site, b->size), 0, 1) < 0)
        c->oom = 1;
    return c->oom;
}

/* True when the block is one NumPy's caches may hold. */
static bool numpy_cached(tm_block_rules *c, const tm_block *b)
{
    if (b->size >= NUMPY_CACHED_BELOW)
        return false;
    uint64_t site = numpy_site(c, tm_view_key(b->stack, b->pystack));
    tm_group *g = site ? tm_groups_find(&c->count, cache_key(site, b->size)) : NULL;
    return g && g->blocks <= NUMPY_CACHE_SLOTS;
}

int tm_block_rules_init(tm_block_rules *c, tm_trace *t)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    tm_groups_init(&c->site_of);
    tm_groups_init(&c->count);
    tm_heap_foreach(t->heap, count_cached, c);
    return c->oom ? -ENOMEM : 0;
}

void tm_block_rules_free(tm_block_rules *c)
{
    tm_groups_free(&c->site_of);
    tm_groups_free(&c->count);
}

/* A Python object the process held at exit that no per-call leak explains
 * (tm_python_held_rule): made outside any region or in its region's first
 * invocation. */
static bool python_held(const tm_block *b)
{
    return b->domain != TM_DOMAIN_MALLOC && (b->region == 0 || b->invocation <= 1);
}

int tm_block_rule(tm_block_rules *c, const tm_block *b)
{
    if (numpy_cached(c, b))
        return tm_numpy_cache_rule;
    if (python_held(b))
        return tm_python_held_rule;
    return -1;
}
