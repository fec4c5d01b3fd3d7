/* bridge.c — tidemark._bridge: Python callables <-> C callbacks.
 *
 *   c_callback(f, name=None)  a Python f(t, y, ydot) as a tm_rhs a C solver
 *                             can call: y and ydot arrive as zero-copy
 *                             ndarray views, cached by data pointer and
 *                             shape, so a steady solver loop allocates
 *                             nothing in the bridge.
 *   py_callable(obj)          a C tm_rhs (any object with __tidemark_rhs__)
 *                             as a Python f(t, y, out=None) -> ydot for
 *                             scipy's solvers; arrays are checked and passed
 *                             through preallocated tm_array structs.
 *   call_rhs(obj, t, y, ydot) calls a tm_rhs from C (tests, benchmarks).
 *   copy_rhs()                a trivial C right-hand side: ydot = y.
 *
 * Every invocation through the bridge opens a tidemark region named after
 * the callback, so `tidemark regions` counts allocations per invocation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <stddef.h>
#include <string.h>
#include <structmember.h>

#include "tidemark.h"
#include "tm_callback.h"

#define MAX_NDIM 8
#define VIEW_CACHE 2

/* --- array views, cached ---------------------------------------------------- */

typedef struct view_slot {
    double *data;
    int ndim;
    npy_intp dims[MAX_NDIM];
    PyObject *view;             /* owned */
} view_slot;

typedef struct view_cache {
    view_slot slots[VIEW_CACHE];
    int next;                   /* round-robin victim */
} view_cache;

static void view_cache_clear(view_cache *c)
{
    for (int i = 0; i < VIEW_CACHE; i++)
        Py_CLEAR(c->slots[i].view);
}

static int same_shape(const view_slot *s, const tm_array *a)
{
    if (s->data != a->data || s->ndim != a->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (s->dims[i] != (npy_intp)a->dims[i])
            return 0;
    return 1;
}

/* A borrowed view of `a`: the cached one when the solver passes the same
 * buffer again, else a new one (which replaces a cache slot). */
static PyObject *view_of(view_cache *c, const tm_array *a, int writeable)
{
    for (int i = 0; i < VIEW_CACHE; i++) {
        view_slot *s = &c->slots[i];
        /* Reused only if Python code kept no reference that could see the
         * buffer change under it: refcount 1 = only the cache holds it. */
        if (s->view && same_shape(s, a) && Py_REFCNT(s->view) == 1)
            return s->view;
    }
    if (a->ndim < 1 || a->ndim > MAX_NDIM) {
        PyErr_Format(PyExc_ValueError, "tm_array with %d dimensions (1..%d supported)",
                     a->ndim, MAX_NDIM);
        return NULL;
    }
    view_slot *s = &c->slots[c->next];
    c->next = (c->next + 1) % VIEW_CACHE;
    npy_intp dims[MAX_NDIM];
    for (int i = 0; i < a->ndim; i++)
        dims[i] = (npy_intp)a->dims[i];
    int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writeable ? NPY_ARRAY_WRITEABLE : 0);
    PyObject *v = PyArray_New(&PyArray_Type, a->ndim, dims, NPY_DOUBLE, NULL, a->data, 0,
                              flags, NULL);
    if (!v)
        return NULL;
    Py_XSETREF(s->view, v);
    s->data = a->data;
    s->ndim = a->ndim;
    memcpy(s->dims, dims, sizeof(npy_intp) * (size_t)a->ndim);
    return v;
}

/* --- c_callback: Python -> C ---------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *func;
    PyObject *name;             /* str */
    const char *cname;          /* UTF-8 of name, lives with it */
    tm_rhs rhs;
    PyObject *capsule;
    view_cache ys, ydots;
} CCallback;

static int ccallback_trampoline(double t, const tm_array *y, tm_array *ydot, void *user_data)
{
    CCallback *self = user_data;
    PyGILState_STATE gil = PyGILState_Ensure();
    tidemark_region_begin(self->cname);
    int rc = -1;
    PyObject *yv = view_of(&self->ys, y, 0);
    PyObject *dv = yv ? view_of(&self->ydots, ydot, 1) : NULL;
    PyObject *tv = dv ? PyFloat_FromDouble(t) : NULL;
    if (tv) {
        PyObject *args[3] = {tv, yv, dv};
        PyObject *res = PyObject_Vectorcall(self->func, args, 3, NULL);
        Py_DECREF(tv);
        if (res) {
            rc = 0;
            /* A function returning ydot instead of writing it: copy. */
            if (res != Py_None && res != dv) {
                if (PyArray_Check(res) || PySequence_Check(res)) {
                    if (PyArray_CopyObject((PyArrayObject *)dv, res) < 0)
                        rc = -1;
                }
            }
            Py_DECREF(res);
        }
    }
    tidemark_region_end();
    PyGILState_Release(gil);
    return rc;
}

static PyObject *ccallback_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"func", "name", NULL};
    PyObject *func, *name = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:c_callback", kwlist, &func, &name))
        return NULL;
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "c_callback needs a callable f(t, y, ydot), got %.100s",
                     Py_TYPE(func)->tp_name);
        return NULL;
    }
    if (name == Py_None) {
        name = PyObject_GetAttrString(func, "__name__");
        if (!name) {
            PyErr_Clear();
            name = PyUnicode_FromString("callback");
        }
    } else if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "c_callback name must be a str");
        return NULL;
    } else {
        Py_INCREF(name);
    }
    if (!name)
        return NULL;
    CCallback *self = (CCallback *)type->tp_alloc(type, 0);
    if (!self) {
        Py_DECREF(name);
        return NULL;
    }
    self->name = name;
    self->cname = PyUnicode_AsUTF8(name);
    if (!self->cname) {
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(func);
    self->func = func;
    self->rhs = (tm_rhs){.fn = ccallback_trampoline, .user_data = self, .name = self->cname};
    self->capsule = PyCapsule_New(&self->rhs, TM_RHS_CAPSULE, NULL);
    if (!self->capsule) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int ccallback_traverse(CCallback *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    return 0;
}

static int ccallback_clear(CCallback *self)
{
    Py_CLEAR(self->func);
    view_cache_clear(&self->ys);
    view_cache_clear(&self->ydots);
    return 0;
}

static void ccallback_dealloc(CCallback *self)
{
    PyObject_GC_UnTrack(self);
    ccallback_clear(self);
    Py_CLEAR(self->capsule);
    Py_CLEAR(self->name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ccallback_repr(CCallback *self)
{
    return PyUnicode_FromFormat("<tidemark.bridge.c_callback %U>", self->name);
}

static PyMemberDef ccallback_members[] = {
    {TM_RHS_ATTR, T_OBJECT, offsetof(CCallback, capsule), READONLY,
     "PyCapsule 'tidemark.rhs' holding the tm_rhs (valid while this object lives)"},
    {"func", T_OBJECT, offsetof(CCallback, func), READONLY, "the wrapped Python function"},
    {"name", T_OBJECT, offsetof(CCallback, name), READONLY, "region name of invocations"},
    {NULL},
};

static PyTypeObject CCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tidemark.bridge.c_callback",
    .tp_doc = PyDoc_STR("c_callback(f, name=None): a Python f(t, y, ydot) as a C tm_rhs.\n\n"
                        "y and ydot are zero-copy float64 views (ydot writeable); f writes\n"
                        "ydot in place (returning an array instead is copied into ydot).\n"
                        "An exception makes the C call return -1 and stays set for the\n"
                        "Python caller of the solver to re-raise."),
    .tp_basicsize = sizeof(CCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = ccallback_new,
    .tp_dealloc = (destructor)ccallback_dealloc,
    .tp_traverse = (traverseproc)ccallback_traverse,
    .tp_clear = (inquiry)ccallback_clear,
    .tp_repr = (reprfunc)ccallback_repr,
    .tp_members = ccallback_members,
};

/* --- py_callable: C -> Python ----------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *owner;            /* keeps the tm_rhs alive */
    tm_rhs rhs;
    tm_array y, ydot;
    intptr_t ydims[MAX_NDIM], ddims[MAX_NDIM];
    vectorcallfunc vectorcall;
} PyCallable;

/* Borrowed tm_rhs from an object's capsule, or NULL with an exception. */
static const tm_rhs *rhs_of(PyObject *obj)
{
    PyObject *cap = PyObject_GetAttrString(obj, TM_RHS_ATTR);
    if (!cap) {
        PyErr_Format(PyExc_TypeError,
                     "expected a C callback (an object with %s), got %.100s", TM_RHS_ATTR,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    const tm_rhs *r = PyCapsule_GetPointer(cap, TM_RHS_CAPSULE);
    Py_DECREF(cap);
    if (r && !r->fn) {
        PyErr_SetString(PyExc_ValueError, "C callback has no function");
        return NULL;
    }
    return r;
}

/* Checks an argument array and describes it in `a`. */
static int fill_array(PyObject *obj, const char *what, tm_array *a, intptr_t *dims,
                      int writeable)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy.ndarray of float64, got %.100s",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (PyArray_TYPE(arr) != NPY_DOUBLE) {
        PyErr_Format(PyExc_TypeError, "%s must have dtype float64, got %S", what,
                     (PyObject *)PyArray_DESCR(arr));
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr)) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous and aligned "
                     "(use numpy.ascontiguousarray)", what);
        return -1;
    }
    if (writeable && !PyArray_ISWRITEABLE(arr)) {
        PyErr_Format(PyExc_ValueError, "%s must be writeable", what);
        return -1;
    }
    int nd = PyArray_NDIM(arr);
    if (nd < 1 || nd > MAX_NDIM) {
        PyErr_Format(PyExc_ValueError, "%s must have 1 to %d dimensions, got %d", what,
                     MAX_NDIM, nd);
        return -1;
    }
    for (int i = 0; i < nd; i++)
        dims[i] = (intptr_t)PyArray_DIM(arr, i);
    a->ndim = nd;
    a->dims = dims;
    a->data = PyArray_DATA(arr);
    return 0;
}

static PyObject *pycallable_call(PyCallable *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *out = NULL;
    if (kwnames) {
        if (PyTuple_GET_SIZE(kwnames) != 1 ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "out") != 0) {
            PyErr_SetString(PyExc_TypeError, "only the keyword 'out' is accepted");
            return NULL;
        }
        out = args[nargs];
    }
    if (nargs == 3 && !out) {
        out = args[2];
        nargs = 2;
    }
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s(t, y, out=None) takes 2 or 3 arguments (%zd given)",
                     self->rhs.name ? self->rhs.name : "rhs", nargs);
        return NULL;
    }
    double t = PyFloat_AsDouble(args[0]);
    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    if (fill_array(args[1], "y", &self->y, self->ydims, 0) < 0)
        return NULL;
    PyObject *res;
    if (out && out != Py_None) {
        if (fill_array(out, "out", &self->ydot, self->ddims, 1) < 0)
            return NULL;
        if (self->ydot.ndim != self->y.ndim ||
            memcmp(self->ddims, self->ydims, sizeof(intptr_t) * (size_t)self->y.ndim)) {
            PyErr_SetString(PyExc_ValueError, "out must have the shape of y");
            return NULL;
        }
        Py_INCREF(out);
        res = out;
    } else {
        res = PyArray_SimpleNew(PyArray_NDIM((PyArrayObject *)args[1]),
                                PyArray_DIMS((PyArrayObject *)args[1]), NPY_DOUBLE);
        if (!res)
            return NULL;
        self->ydot = (tm_array){.ndim = self->y.ndim, .dims = self->ddims,
                                .data = PyArray_DATA((PyArrayObject *)res)};
        memcpy(self->ddims, self->ydims, sizeof(intptr_t) * (size_t)self->y.ndim);
    }
    /* A c_callback opens its own region; one per invocation is enough. */
    int own_region = self->rhs.fn != ccallback_trampoline;
    if (own_region)
        tidemark_region_begin(self->rhs.name);
    int rc = self->rhs.fn(t, &self->y, &self->ydot, self->rhs.user_data);
    if (own_region)
        tidemark_region_end();
    if (rc != 0) {
        Py_DECREF(res);
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_RuntimeError, "right-hand side '%s' failed (returned %d)",
                         self->rhs.name ? self->rhs.name : "?", rc);
        return NULL;
    }
    return res;
}

static PyObject *pycallable_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O:py_callable", &obj))
        return NULL;
    const tm_rhs *r = rhs_of(obj);
    if (!r)
        return NULL;
    PyCallable *self = (PyCallable *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    Py_INCREF(obj);
    self->owner = obj;
    self->rhs = *r;
    if (!self->rhs.name)
        self->rhs.name = "rhs";
    self->vectorcall = (vectorcallfunc)pycallable_call;
    return (PyObject *)self;
}

static int pycallable_traverse(PyCallable *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    return 0;
}

static int pycallable_clear(PyCallable *self)
{
    Py_CLEAR(self->owner);
    return 0;
}

static void pycallable_dealloc(PyCallable *self)
{
    PyObject_GC_UnTrack(self);
    pycallable_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *pycallable_repr(PyCallable *self)
{
    return PyUnicode_FromFormat("<tidemark.bridge.py_callable %s>", self->rhs.name);
}

static PyMemberDef pycallable_members[] = {
    {"owner", T_OBJECT, offsetof(PyCallable, owner), READONLY, "the wrapped C callback"},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(PyCallable, vectorcall), READONLY},
    {NULL},
};

static PyTypeObject PyCallableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tidemark.bridge.py_callable",
    .tp_doc = PyDoc_STR("py_callable(c_rhs): a C right-hand side as f(t, y, out=None) -> ydot.\n\n"
                        "y must be a C-contiguous float64 ndarray; ydot is a new array, or\n"
                        "`out` filled in place."),
    .tp_basicsize = sizeof(PyCallable),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = pycallable_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(PyCallable, vectorcall),
    .tp_dealloc = (destructor)pycallable_dealloc,
    .tp_traverse = (traverseproc)pycallable_traverse,
    .tp_clear = (inquiry)pycallable_clear,
    .tp_repr = (reprfunc)pycallable_repr,
    .tp_members = pycallable_members,
};

/* --- helpers for tests and benchmarks -------------------------------------------- */

static int copy_rhs_fn(double t, const tm_array *y, tm_array *ydot, void *user_data)
{
    intptr_t n = tm_array_size(y);
    memcpy(ydot->data, y->data, sizeof(double) * (size_t)n);
    return 0;
}

static const tm_rhs copy_rhs_value = {.fn = copy_rhs_fn, .name = "copy_rhs"};

static PyObject *bridge_copy_rhs(PyObject *mod, PyObject *unused)
{
    /* A module-level object carrying the capsule: a SimpleNamespace. */
    PyObject *cap = PyCapsule_New((void *)&copy_rhs_value, TM_RHS_CAPSULE, NULL);
    if (!cap)
        return NULL;
    PyObject *types = PyImport_ImportModule("types");
    PyObject *ns = types ? PyObject_CallMethod(types, "SimpleNamespace", NULL) : NULL;
    Py_XDECREF(types);
    if (!ns || PyObject_SetAttrString(ns, TM_RHS_ATTR, cap) < 0) {
        Py_XDECREF(ns);
        Py_DECREF(cap);
        return NULL;
    }
    Py_DECREF(cap);
    return ns;
}

static PyObject *bridge_call_rhs(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "call_rhs(c_rhs, t, y, ydot)");
        return NULL;
    }
    const tm_rhs *r = rhs_of(args[0]);
    if (!r)
        return NULL;
    double t = PyFloat_AsDouble(args[1]);
    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    intptr_t yd[MAX_NDIM], dd[MAX_NDIM];
    tm_array y, ydot;
    if (fill_array(args[2], "y", &y, yd, 0) < 0 || fill_array(args[3], "ydot", &ydot, dd, 1) < 0)
        return NULL;
    int rc = r->fn(t, &y, &ydot, r->user_data);
    if (rc != 0) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_RuntimeError, "right-hand side failed (returned %d)", rc);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- module ------------------------------------------------------------------------- */

static PyMethodDef bridge_methods[] = {
    {"copy_rhs", bridge_copy_rhs, METH_NOARGS, "a trivial C right-hand side: ydot = y"},
    {"call_rhs", (PyCFunction)(void (*)(void))bridge_call_rhs, METH_FASTCALL,
     "call_rhs(c_rhs, t, y, ydot): call a C right-hand side from C"},
    {NULL},
};

static int bridge_exec(PyObject *m)
{
    if (_import_array() < 0)
        return -1;
    PyTypeObject *types[] = {&CCallbackType, &PyCallableType};
    const char *names[] = {"c_callback", "py_callable"};
    for (int i = 0; i < 2; i++) {
        if (PyType_Ready(types[i]) < 0)
            return -1;
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot bridge_slots[] = {
    {Py_mod_exec, bridge_exec},
    {0, NULL},
};

static struct PyModuleDef bridge_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tidemark._bridge",
    .m_doc = "C callback bridge (see tidemark.bridge)",
    .m_size = 0,
    .m_methods = bridge_methods,
    .m_slots = bridge_slots,
};

PyMODINIT_FUNC PyInit__bridge(void)
{
    return PyModuleDef_Init(&bridge_module);
}
