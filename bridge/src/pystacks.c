/* pystacks.c — the interpreter profile hook behind --python-stacks.
 *
 * A module of its own (tidemark._pystacks) so that enabling it at start-up
 * does not import NumPy.  Installed with PyEval_SetProfile, it tells the preload about every
 * Python call and return (and about C functions called from Python, which
 * is how the preload knows a nested interpreter loop starts).  File and
 * function names are interned once per code object: a dict maps each code
 * object (kept alive by it, so its address is never reused) to its two
 * string ids.  Without the preload, enabling is a no-op that returns
 * False.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <frameobject.h>
#if defined(Py_GIL_DISABLED) || defined(Py_DEBUG)
/* Free-threaded and debug builds lay objects and frames out differently
 * (and free-threaded ones have no GIL to keep a shadow stack consistent):
 * enable() refuses them rather than read them wrongly. */
#define TM_UNSUPPORTED_BUILD 1
#elif PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000
/* 3.11 to 3.13: the interpreter's frame layout, compiled from this
 * interpreter's own internal headers, for the frame walker. */
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#define TM_HAVE_WALKER 1
#if PY_VERSION_HEX < 0x030C0000
#define TM_HAVE_PREV_INSTR 1    /* the profile hook's line cache (3.11) */
#endif
#endif

/* Qualified names (Class.method) came with 3.11; before, the plain name. */
#if PY_VERSION_HEX >= 0x030B0000
#define CODE_QUALNAME(code) ((code)->co_qualname)
#else
#define CODE_QUALNAME(code) ((code)->co_name)
#endif

static struct {
    void (*set_walker)(const void *);
    void (*enable)(int (*)(void *));
    uint32_t (*intern)(const char *);
    void (*push)(void *, uint32_t, uint32_t);
    void (*pop)(void);
    void (*c_call)(int);
} api;

static PyObject *code_ids;      /* code object -> (file id << 32 | function id) */

#ifdef TM_HAVE_PREV_INSTR
/* PyFrame_GetLineNumber scans the code's line table from the start: for
 * module-level loops, on every allocation.  The line only depends on the
 * instruction, so it is cached per instruction address (code objects stay
 * alive in code_ids, so addresses are not reused).  Entries pack address
 * and line in one word: threads share the table without tearing. */
#define LINE_CACHE 4096
static uint64_t line_cache[LINE_CACHE];

static int line_of(void *frame)
{
    PyFrameObject *f = frame;
    uint64_t ip = (uint64_t)(uintptr_t)f->f_frame->prev_instr;
    uint64_t *slot = &line_cache[(ip >> 1) & (LINE_CACHE - 1)];
    uint64_t v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (v >> 16 == (ip & 0xffffffffffffull) && v)
        return (int)(v & 0xffff);
    int line = PyFrame_GetLineNumber(f);
    if (line > 0 && line < 0x10000)
        __atomic_store_n(slot, (ip & 0xffffffffffffull) << 16 | (uint64_t)line,
                         __ATOMIC_RELAXED);
    return line;
}
#else
static int line_of(void *frame)
{
    return PyFrame_GetLineNumber((PyFrameObject *)frame);
}
#endif

/* Code objects seen lately -> their ids, by address: hashing a code object
 * (what the dict does) hashes its contents.  Entries stay valid because
 * code_ids keeps every code object it has seen alive.  GIL held. */
#define CODE_CACHE 1024
static struct {
    PyCodeObject *code;
    unsigned long long packed;
} code_cache[CODE_CACHE];

static int profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    switch (what) {
    case PyTrace_CALL: {
        PyCodeObject *code = PyFrame_GetCode(frame);
        size_t slot = ((uintptr_t)code >> 4) & (CODE_CACHE - 1);
        if (code_cache[slot].code == code) {
            Py_DECREF(code);
            api.push(frame, (uint32_t)(code_cache[slot].packed >> 32),
                     (uint32_t)code_cache[slot].packed);
            break;
        }
        PyObject *ids = PyDict_GetItemWithError(code_ids, (PyObject *)code);
        unsigned long long packed;
        if (ids) {
            packed = PyLong_AsUnsignedLongLong(ids);
        } else {
            if (PyErr_Occurred()) {
                Py_DECREF(code);
                return -1;
            }
            const char *file = PyUnicode_AsUTF8(code->co_filename);
            const char *func = PyUnicode_AsUTF8(CODE_QUALNAME(code));
            if (!file || !func) {
                Py_DECREF(code);
                return -1;
            }
            packed = (unsigned long long)api.intern(file) << 32 | api.intern(func);
            PyObject *v = PyLong_FromUnsignedLongLong(packed);
            if (!v || PyDict_SetItem(code_ids, (PyObject *)code, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(code);
                return -1;
            }
            Py_DECREF(v);
        }
        code_cache[slot].code = code;      /* alive: code_ids holds it */
        code_cache[slot].packed = packed;
        Py_DECREF(code);
        api.push(frame, (uint32_t)(packed >> 32), (uint32_t)packed);
        break;
    }
    case PyTrace_RETURN:
        api.pop();
        break;
    case PyTrace_C_CALL:
        api.c_call(1);
        break;
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
        api.c_call(0);
        break;
    }
    return 0;
}

#ifdef TM_HAVE_WALKER
/* --- the frame walker (3.11-3.13): read at allocation time, no hook ---------------- */

typedef struct tm_py_ref {
    void *code;
    void *instr;
    uint64_t key;
    int entry;
} tm_py_ref;

/* What changed between versions: where a thread's innermost frame is, the
 * frame's code object and instruction, and how the first frame of one run
 * of the interpreter loop is known.  3.11 flags it (is_entry); from 3.12
 * each run of the loop pushes a shim frame owned by the C stack, and the
 * frame just above one is the entry frame.  3.12 points at the last
 * instruction started (prev_instr), 3.13 at the one executing (instr_ptr);
 * either lies inside the line being run. */
#if PY_VERSION_HEX >= 0x030D0000
#define TOP_FRAME(ts) ((ts)->current_frame)
#define FRAME_CODE(f) (PyCode_Check((f)->f_executable) ? (PyCodeObject *)(f)->f_executable : NULL)
#define FRAME_INSTR(f) ((f)->instr_ptr)
#else
#define TOP_FRAME(ts) ((ts)->cframe ? (ts)->cframe->current_frame : NULL)
#define FRAME_CODE(f) ((f)->f_code)
#define FRAME_INSTR(f) ((f)->prev_instr)
#endif

static int is_shim(const _PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030C0000
    return f->owner == FRAME_OWNED_BY_CSTACK;
#else
    (void)f;
    return 0;
#endif
}

static int is_entry(const _PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030C0000
    return !f->previous || is_shim(f->previous);
#else
    return f->is_entry;
#endif
}

/* Runs inside malloc, in any thread, with or without the GIL: it only
 * reads the calling thread's own frames, which cannot change meanwhile. */
static int walk_frames(tm_py_ref *out, int max)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (!ts)
        return 0;
    int n = 0;
    for (_PyInterpreterFrame *f = TOP_FRAME(ts); f && n < max; f = f->previous) {
        if (is_shim(f) || _PyFrame_IsIncomplete(f))
            continue;
        PyCodeObject *code = FRAME_CODE(f);
        if (!code)
            continue;
        uint64_t key = (uint64_t)(uintptr_t)code * 0x9e3779b97f4a7c15ull ^
                       (uint64_t)(uintptr_t)code->co_qualname ^
                       (uint64_t)(uintptr_t)code->co_filename << 1 ^
                       (uint64_t)code->co_firstlineno << 48;
        out[n++] = (tm_py_ref){.code = code, .instr = FRAME_INSTR(f), .key = key | 1,
                               .entry = is_entry(f)};
    }
    return n;
}

/* UTF-8 of a str without allocating (inside malloc): ASCII data is inline;
 * other strings only if their UTF-8 form is already cached. */
static const char *utf8_of(PyObject *s)
{
    if (!s || !PyUnicode_Check(s) || !PyUnicode_IS_READY(s))
        return "?";
    if (PyUnicode_IS_COMPACT_ASCII(s))
        return (const char *)(((PyASCIIObject *)s) + 1);
    const char *u = ((PyCompactUnicodeObject *)s)->utf8;
    return u ? u : "<non-ascii name>";
}

static void code_names(void *code, const char **file, const char **func)
{
    PyCodeObject *c = code;
    *file = utf8_of(c->co_filename);
    *func = utf8_of(c->co_qualname);
}

static int code_line(void *code, void *instr)
{
    PyCodeObject *c = code;
    int offset = (int)((_Py_CODEUNIT *)instr - _PyCode_CODE(c)) * (int)sizeof(_Py_CODEUNIT);
    return PyCode_Addr2Line(c, offset);
}

static const struct {
    int (*frames)(tm_py_ref *, int);
    void (*names)(void *, const char **, const char **);
    int (*line)(void *, void *);
} frame_walker = {walk_frames, code_names, code_line};
#endif

/* Which way in was taken goes into the trace as a string, for `tidemark
 * summary` (docs/trace-format.md). */
#define MODE_MARKER "tidemark:python_stacks="

static PyObject *enable(PyObject *mod, PyObject *unused)
{
#ifdef TM_UNSUPPORTED_BUILD
    PyErr_SetString(PyExc_RuntimeError,
                    "free-threaded and debug builds of CPython are not supported");
    return NULL;
#endif
#ifdef TM_HAVE_WALKER
    /* 3.11-3.13: read the frames at allocation time; nothing to install. */
    void (*set_walker)(const void *) =
        (void (*)(const void *))dlsym(RTLD_DEFAULT, "tidemark_py_set_walker");
    uint32_t (*intern)(const char *) =
        (uint32_t(*)(const char *))dlsym(RTLD_DEFAULT, "tidemark_py_intern");
    if (set_walker && intern && !getenv("TIDEMARK_PYTHON_HOOK")) {
        intern(MODE_MARKER "walker");
        set_walker(&frame_walker);
        return PyLong_FromLong(2);
    }
#endif
    if (!api.push) {
        api.enable = (void (*)(int (*)(void *)))dlsym(RTLD_DEFAULT, "tidemark_py_enable");
        api.intern = (uint32_t(*)(const char *))dlsym(RTLD_DEFAULT, "tidemark_py_intern");
        api.pop = (void (*)(void))dlsym(RTLD_DEFAULT, "tidemark_py_pop");
        api.c_call = (void (*)(int))dlsym(RTLD_DEFAULT, "tidemark_py_c_call");
        void (*push)(void *, uint32_t, uint32_t) =
            (void (*)(void *, uint32_t, uint32_t))dlsym(RTLD_DEFAULT, "tidemark_py_push");
        if (!api.enable || !api.intern || !api.pop || !api.c_call || !push)
            return PyLong_FromLong(0);  /* not running under the tracer */
        api.push = push;
        api.intern(MODE_MARKER "hook");
        api.enable(line_of);
    }
    if (!code_ids && !(code_ids = PyDict_New()))
        return NULL;
    PyEval_SetProfile(profile, NULL);
    return PyLong_FromLong(1);
}

static PyMethodDef methods[] = {
    {"enable", enable, METH_NOARGS,
     "enable() -> 0 (no tracer), 1 (profile hook on this thread), 2 (frames read at "
     "allocation time, all threads)"},
    {NULL},
};

static struct PyModuleDef pystacks_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tidemark._pystacks",
    .m_doc = "Python frames for the tracer (tidemark run --python-stacks)",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__pystacks(void)
{
    return PyModuleDef_Init(&pystacks_module);
}
