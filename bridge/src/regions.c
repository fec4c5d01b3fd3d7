/* regions.c — tidemark._regions: the region API for Python code.
 *
 *   region(name)   with tidemark.region("step"): ... tags the allocations
 *                  inside (nestable, per thread; one `with` = one invocation)
 *   mark(label)    a point on the trace timeline
 *
 * A module of its own, without NumPy, so that it builds and works on every
 * interpreter tidemark supports (the NumPy bridge is tidemark._bridge).
 * Importing it under the tracer also traces Python's allocators (below).
 * Without the preload, both cost a symbol lookup once and nothing after.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <dlfcn.h>

#include "tidemark.h"

/* --- region ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *name;
    const char *cname;
} Region;

static PyObject *region_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *name;
    if (!PyArg_ParseTuple(args, "U:region", &name))
        return NULL;
    Region *self = (Region *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    Py_INCREF(name);
    self->name = name;
    self->cname = PyUnicode_AsUTF8(name);
    if (!self->cname) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void region_dealloc(Region *self)
{
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *region_enter(Region *self, PyObject *unused)
{
    tidemark_region_begin(self->cname);
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *region_exit(Region *self, PyObject *const *args, Py_ssize_t nargs)
{
    tidemark_region_end();
    Py_RETURN_FALSE;
}

static PyMethodDef region_methods[] = {
    {"__enter__", (PyCFunction)region_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))region_exit, METH_FASTCALL, NULL},
    {NULL},
};

static PyMemberDef region_members[] = {
    {"name", T_OBJECT, offsetof(Region, name), READONLY, NULL},
    {NULL},
};

static PyTypeObject RegionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tidemark.region",
    .tp_doc = PyDoc_STR("with tidemark.region(name): ... — a traced region (nestable, per "
                        "thread); reusable, each `with` is one invocation."),
    .tp_basicsize = sizeof(Region),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = region_new,
    .tp_dealloc = (destructor)region_dealloc,
    .tp_methods = region_methods,
    .tp_members = region_members,
};

static PyObject *regions_mark(PyObject *mod, PyObject *arg)
{
    const char *label = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (!label) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "mark(label) needs a str");
        return NULL;
    }
    tidemark_mark(label);
    Py_RETURN_NONE;
}

/* --- Python's allocators ------------------------------------------------------------
 *
 * Under the tracer, importing this module hands the interpreter's
 * allocator API to the preload (tidemark_py_allocator, tracer/src/pyalloc.c),
 * which wraps the MEM and OBJ domains so that every object allocation is an
 * event (TIDEMARK_PYTHON_ALLOCATOR=off: not).  Called with the GIL held, as
 * PyMem_SetAllocator needs; once per process (the preload keeps it). */

static const char *allocator_mode = "none";

static void trace_allocators(void)
{
    typedef int (*install_fn)(void (*)(int, void *), void (*)(int, void *));
    install_fn install = (install_fn)dlsym(RTLD_DEFAULT, "tidemark_py_allocator");
    if (!install)
        return; /* not under the tracer */
    switch (install((void (*)(int, void *))PyMem_GetAllocator,
                    (void (*)(int, void *))PyMem_SetAllocator)) {
    case 2: allocator_mode = "traced"; break;
    case 1: allocator_mode = "malloc"; break;
    default: allocator_mode = "off"; break;
    }
}

static PyObject *regions_python_allocator(PyObject *mod, PyObject *unused)
{
    return PyUnicode_FromString(allocator_mode);
}

/* --- module ------------------------------------------------------------------------- */

static PyMethodDef regions_methods[] = {
    {"mark", regions_mark, METH_O, "mark(label): a point on the trace timeline"},
    {"python_allocator", regions_python_allocator, METH_NOARGS,
     "python_allocator() -> 'traced' (Python's allocators are traced), 'malloc' "
     "(PYTHONMALLOC=malloc: they are mallocs), 'off' (not traced) or 'none' (no tracer)"},
    {NULL},
};

static int regions_exec(PyObject *m)
{
    trace_allocators();
    if (PyType_Ready(&RegionType) < 0)
        return -1;
    Py_INCREF(&RegionType);
    if (PyModule_AddObject(m, "region", (PyObject *)&RegionType) < 0) {
        Py_DECREF(&RegionType);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot regions_slots[] = {
    {Py_mod_exec, regions_exec},
    {0, NULL},
};

static struct PyModuleDef regions_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tidemark._regions",
    .m_doc = "the region API (tidemark.region, tidemark.mark)",
    .m_size = 0,
    .m_methods = regions_methods,
    .m_slots = regions_slots,
};

PyMODINIT_FUNC PyInit__regions(void)
{
    return PyModuleDef_Init(&regions_module);
}
