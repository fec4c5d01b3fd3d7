/* ivp_module.c — tidemark._ivp: the C solvers for Python.
 *
 *   Solver(name)              "dopri5" | "cvode-adams" | "cvode-bdf"
 *     .set_rhs(f)             a C callback (object with __tidemark_rhs__) or
 *                             a Python f(t, y, ydot) (wrapped by
 *                             tidemark.bridge.c_callback)
 *     .set_initial_value(y0, t0=0.0)  .set_tolerances(rtol, atol)
 *     .set_max_steps(n)       .integrate(t) -> ndarray   .t   .stats()
 *     .set_linear_solver(name=None)   .set_bandwidth(lower, upper)
 *     .set_max_order(q)       .linear_solver    (CVODE's corrector)
 *   burgers_rhs(n)            the C Burgers right-hand side for grid n;
 *                             .bandwidth its declared Jacobian band
 *
 * A Python exception raised in the right-hand side stops the solver and is
 * re-raised by integrate().  The GIL is released while a C right-hand side
 * runs; the bridge takes it back for Python ones.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <structmember.h>

#include "tm_burgers.h"
#include "tm_solver.h"

/* --- Solver ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    tm_solver *s;
    PyObject *rhs_owner;        /* keeps the tm_rhs alive */
    tm_rhs rhs;
    int python_rhs;             /* the RHS needs the GIL */
    PyArrayObject *shape_of;    /* a y0-shaped array for results */
} Solver;

static PyObject *solver_error(Solver *self, int rc)
{
    if (PyErr_Occurred())
        return NULL;            /* the right-hand side's own exception */
    PyObject *type = rc == TM_SOLVER_EINVAL ? PyExc_ValueError
                     : rc == TM_SOLVER_ENOMEM ? PyExc_MemoryError
                                              : PyExc_RuntimeError;
    PyErr_Format(type, "%s: %s", tm_solver_name(self->s), tm_solver_error(self->s));
    return NULL;
}

/* None for a setter that succeeded, the error otherwise. */
static PyObject *solver_done(Solver *self, int rc)
{
    if (rc)
        return solver_error(self, rc);
    Py_RETURN_NONE;
}

static int solver_init(Solver *self, PyObject *args, PyObject *kw)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s:Solver", &name))
        return -1;
    if (self->s) {
        PyErr_SetString(PyExc_RuntimeError, "Solver already initialized");
        return -1;
    }
    int rc = tm_solver_create(name, &self->s);
    if (rc == TM_SOLVER_EUNKNOWN) {
        PyErr_Format(PyExc_ValueError, "unknown solver '%s' (choose dopri5, cvode-adams, "
                     "cvode-bdf)", name);
        return -1;
    }
    if (rc) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int solver_traverse(Solver *self, visitproc visit, void *arg)
{
    Py_VISIT(self->rhs_owner);
    return 0;
}

static int solver_clear(Solver *self)
{
    Py_CLEAR(self->rhs_owner);
    Py_CLEAR(self->shape_of);
    return 0;
}

static void solver_dealloc(Solver *self)
{
    PyObject_GC_UnTrack(self);
    solver_clear(self);
    tm_solver_free(self->s);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(Solver *self)
{
    if (!self->s) {
        PyErr_SetString(PyExc_RuntimeError, "Solver not initialized");
        return 0;
    }
    return 1;
}

static PyObject *solver_set_rhs(Solver *self, PyObject *f)
{
    if (!ready(self))
        return NULL;
    PyObject *owner;
    if (PyObject_HasAttrString(f, TM_RHS_ATTR)) {
        Py_INCREF(f);
        owner = f;
    } else if (PyCallable_Check(f)) {
        PyObject *bridge = PyImport_ImportModule("tidemark.bridge");
        if (!bridge)
            return NULL;
        owner = PyObject_CallMethod(bridge, "c_callback", "O", f);
        Py_DECREF(bridge);
        if (!owner)
            return NULL;
    } else {
        PyErr_Format(PyExc_TypeError, "set_rhs needs a C callback or a callable f(t, y, ydot), "
                     "got %.100s", Py_TYPE(f)->tp_name);
        return NULL;
    }
    PyObject *cap = PyObject_GetAttrString(owner, TM_RHS_ATTR);
    const tm_rhs *r = cap ? PyCapsule_GetPointer(cap, TM_RHS_CAPSULE) : NULL;
    Py_XDECREF(cap);
    if (!r) {
        Py_DECREF(owner);
        return NULL;
    }
    self->rhs = *r;
    /* The bridge's callbacks call Python: they are not GIL-free. */
    self->python_rhs = owner != f || PyObject_HasAttrString(owner, "func");
    Py_XSETREF(self->rhs_owner, owner);
    if (tm_solver_set_rhs(self->s, self->rhs.fn, self->rhs.user_data))
        return solver_error(self, TM_SOLVER_EINVAL);
    Py_RETURN_NONE;
}

static PyObject *solver_set_initial_value(Solver *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"y0", "t0", NULL};
    PyObject *y0;
    double t0 = 0.0;
    if (!ready(self) || !PyArg_ParseTupleAndKeywords(args, kw, "O|d:set_initial_value", kwlist,
                                                     &y0, &t0))
        return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(
        y0, NPY_DOUBLE, 1, TM_SOLVER_MAX_NDIM, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!a)
        return NULL;
    intptr_t dims[TM_SOLVER_MAX_NDIM];
    for (int i = 0; i < PyArray_NDIM(a); i++)
        dims[i] = (intptr_t)PyArray_DIM(a, i);
    int rc = tm_solver_set_initial_value(self->s, t0, PyArray_DATA(a), PyArray_NDIM(a), dims);
    if (rc) {
        Py_DECREF(a);
        return solver_error(self, rc);
    }
    Py_XSETREF(self->shape_of, a);
    Py_RETURN_NONE;
}

static PyObject *solver_set_tolerances(Solver *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"rtol", "atol", NULL};
    double rtol, atol;
    if (!ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kw, "dd:set_tolerances", kwlist, &rtol, &atol))
        return NULL;
    return solver_done(self, tm_solver_set_tolerances(self->s, rtol, atol));
}

static PyObject *solver_set_max_steps(Solver *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (!ready(self) || (n == -1 && PyErr_Occurred()))
        return NULL;
    return solver_done(self, tm_solver_set_max_steps(self->s, n));
}

static PyObject *solver_set_linear_solver(Solver *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", NULL};
    const char *name = NULL;
    if (!ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kw, "|z:set_linear_solver", kwlist, &name))
        return NULL;
    return solver_done(self, tm_solver_set_linear_solver(self->s, name));
}

static PyObject *solver_set_bandwidth(Solver *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"lower", "upper", NULL};
    long lower, upper;
    if (!ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kw, "ll:set_bandwidth", kwlist, &lower, &upper))
        return NULL;
    return solver_done(self, tm_solver_set_bandwidth(self->s, lower, upper));
}

static PyObject *solver_set_max_order(Solver *self, PyObject *arg)
{
    long q = PyLong_AsLong(arg);
    if (!ready(self) || (q == -1 && PyErr_Occurred()))
        return NULL;
    /* Out of int's range is out of every method's range too. */
    int order = q > INT_MAX ? INT_MAX : q < 0 ? -1 : (int)q;
    return solver_done(self, tm_solver_set_max_order(self->s, order));
}

static PyObject *solver_integrate(Solver *self, PyObject *arg)
{
    double t = PyFloat_AsDouble(arg);
    if (!ready(self) || (t == -1.0 && PyErr_Occurred()))
        return NULL;
    if (!self->shape_of) {
        PyErr_SetString(PyExc_RuntimeError, "set_initial_value first");
        return NULL;
    }
    PyObject *out = PyArray_NewLikeArray(self->shape_of, NPY_CORDER, NULL, 0);
    if (!out)
        return NULL;
    double *y = PyArray_DATA((PyArrayObject *)out);
    int rc;
    if (self->python_rhs) {
        rc = tm_solver_integrate(self->s, t, y);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = tm_solver_integrate(self->s, t, y);
        Py_END_ALLOW_THREADS
    }
    if (rc) {
        Py_DECREF(out);
        return solver_error(self, rc);
    }
    return out;
}

static PyObject *solver_stats(Solver *self, PyObject *unused)
{
    if (!ready(self))
        return NULL;
    tm_solver_stats st;
    tm_solver_get_stats(self->s, &st);
    return Py_BuildValue("{s:l,s:l,s:l,s:l,s:l,s:l,s:l,s:l,s:l,s:i,s:i}", "steps", st.steps,
                         "rejected_steps", st.rejected_steps, "rhs_evals", st.rhs_evals,
                         "nonlinear_iters", st.nonlinear_iters, "nonlinear_fails",
                         st.nonlinear_fails, "linear_iters", st.linear_iters, "linear_fails",
                         st.linear_fails, "jac_evals", st.jac_evals, "linear_setups",
                         st.linear_setups, "order", st.order, "max_order", st.max_order);
}

static PyObject *solver_get_t(Solver *self, void *closure)
{
    return ready(self) ? PyFloat_FromDouble(tm_solver_t(self->s)) : NULL;
}

static PyObject *solver_get_name(Solver *self, void *closure)
{
    return ready(self) ? PyUnicode_FromString(tm_solver_name(self->s)) : NULL;
}

static PyObject *solver_get_linear_solver(Solver *self, void *closure)
{
    return ready(self) ? PyUnicode_FromString(tm_solver_linear_solver(self->s)) : NULL;
}

static PyMethodDef solver_methods[] = {
    {"set_rhs", (PyCFunction)solver_set_rhs, METH_O,
     "set_rhs(f): a C callback, or a Python f(t, y, ydot) writing ydot in place"},
    {"set_initial_value", (PyCFunction)(void (*)(void))solver_set_initial_value,
     METH_VARARGS | METH_KEYWORDS, "set_initial_value(y0, t0=0.0)"},
    {"set_tolerances", (PyCFunction)(void (*)(void))solver_set_tolerances,
     METH_VARARGS | METH_KEYWORDS, "set_tolerances(rtol, atol)"},
    {"set_max_steps", (PyCFunction)solver_set_max_steps, METH_O,
     "set_max_steps(n): most steps one integrate() may take"},
    {"integrate", (PyCFunction)solver_integrate, METH_O, "integrate(t) -> y(t) (a new array)"},
    {"set_linear_solver", (PyCFunction)(void (*)(void))solver_set_linear_solver,
     METH_VARARGS | METH_KEYWORDS,
     "set_linear_solver(name=None): CVODE's corrector, one of linear_solver_names "
     "(None = the method's default); read by the next set_initial_value"},
    {"set_bandwidth", (PyCFunction)(void (*)(void))solver_set_bandwidth,
     METH_VARARGS | METH_KEYWORDS,
     "set_bandwidth(lower, upper): the Jacobian's band, for 'band' and 'spgmr-band'"},
    {"set_max_order", (PyCFunction)solver_set_max_order, METH_O,
     "set_max_order(q): cap CVODE's order (Adams <= 12, BDF <= 5; 0 = no cap)"},
    {"stats", (PyCFunction)solver_stats, METH_NOARGS,
     "stats() -> {'steps', 'rejected_steps', 'rhs_evals', 'nonlinear_iters', "
     "'nonlinear_fails', 'linear_iters', 'linear_fails', 'jac_evals', 'linear_setups', "
     "'order', 'max_order'}"},
    {NULL},
};

static PyGetSetDef solver_getset[] = {
    {"t", (getter)solver_get_t, NULL, "the time of the last integrate()", NULL},
    {"name", (getter)solver_get_name, NULL, "the method", NULL},
    {"linear_solver", (getter)solver_get_linear_solver, NULL,
     "the corrector's linear solver the next set_initial_value uses ('none' for dopri5)", NULL},
    {NULL},
};

static PyTypeObject SolverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tidemark.ivp.Solver",
    .tp_doc = PyDoc_STR("Solver(name): an IVP solver, 'dopri5', 'cvode-adams' or 'cvode-bdf'"),
    .tp_basicsize = sizeof(Solver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)solver_init,
    .tp_dealloc = (destructor)solver_dealloc,
    .tp_traverse = (traverseproc)solver_traverse,
    .tp_clear = (inquiry)solver_clear,
    .tp_methods = solver_methods,
    .tp_getset = solver_getset,
};

/* --- burgers_rhs ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    tm_burgers b;
    tm_rhs rhs;
    PyObject *capsule;
    PyObject *bandwidth;        /* (lower, upper), for Solver.set_bandwidth */
} Burgers;

static PyObject *burgers_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n:burgers_rhs", &n))
        return NULL;
    if (n < 3) {
        PyErr_Format(PyExc_ValueError, "burgers_rhs needs n >= 3, got %zd", n);
        return NULL;
    }
    Burgers *self = (Burgers *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    tm_burgers_init(&self->b, n);
    self->rhs = (tm_rhs){.fn = tm_burgers_rhs, .user_data = &self->b, .name = "burgers_c_rhs"};
    self->capsule = PyCapsule_New(&self->rhs, TM_RHS_CAPSULE, NULL);
    self->bandwidth = Py_BuildValue("(ii)", TM_BURGERS_LOWER, TM_BURGERS_UPPER);
    if (!self->capsule || !self->bandwidth) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void burgers_dealloc(Burgers *self)
{
    Py_CLEAR(self->capsule);
    Py_CLEAR(self->bandwidth);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* burgers_rhs(n)(t, y) -> ydot, for checking against the NumPy version. */
static PyObject *burgers_call(Burgers *self, PyObject *args, PyObject *kw)
{
    double t;
    PyObject *yo;
    if (!PyArg_ParseTuple(args, "dO", &t, &yo))
        return NULL;
    PyArrayObject *y = (PyArrayObject *)PyArray_FROMANY(yo, NPY_DOUBLE, 1, 1,
                                                        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!y)
        return NULL;
    PyObject *out = PyArray_NewLikeArray(y, NPY_CORDER, NULL, 0);
    if (!out) {
        Py_DECREF(y);
        return NULL;
    }
    intptr_t dim = PyArray_DIM(y, 0);
    tm_array ya = {1, &dim, PyArray_DATA(y)}, da = {1, &dim, PyArray_DATA((PyArrayObject *)out)};
    int rc = tm_burgers_rhs(t, &ya, &da, &self->b);
    Py_DECREF(y);
    if (rc) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "y must have %zd points", (Py_ssize_t)self->b.n);
        return NULL;
    }
    return out;
}

static PyMemberDef burgers_members[] = {
    {TM_RHS_ATTR, T_OBJECT, offsetof(Burgers, capsule), READONLY, "the tm_rhs capsule"},
    {"bandwidth", T_OBJECT, offsetof(Burgers, bandwidth), READONLY,
     "(lower, upper): the Jacobian band the problem declares (see tm_burgers.h)"},
    {NULL},
};

static PyTypeObject BurgersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tidemark.ivp.burgers_rhs",
    .tp_doc = PyDoc_STR("burgers_rhs(n): the Burgers right-hand side in C for grid n"),
    .tp_basicsize = sizeof(Burgers),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = burgers_new,
    .tp_dealloc = (destructor)burgers_dealloc,
    .tp_call = (ternaryfunc)burgers_call,
    .tp_members = burgers_members,
};

/* --- module ---------------------------------------------------------------------------- */

/* A NULL-terminated C list of names as a module-level tuple. */
static int add_names(PyObject *m, const char *attr, const char *const *names)
{
    Py_ssize_t n = 0;
    while (names[n])
        n++;
    PyObject *list = PyTuple_New(n);
    if (!list)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (!name) {
            Py_DECREF(list);
            return -1;
        }
        PyTuple_SET_ITEM(list, i, name);
    }
    if (PyModule_AddObject(m, attr, list) < 0) {
        Py_DECREF(list);
        return -1;
    }
    return 0;
}

static int ivp_exec(PyObject *m)
{
    if (_import_array() < 0)
        return -1;
    PyTypeObject *types[] = {&SolverType, &BurgersType};
    const char *names[] = {"Solver", "burgers_rhs"};
    for (int i = 0; i < 2; i++) {
        if (PyType_Ready(types[i]) < 0)
            return -1;
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            return -1;
        }
    }
    if (add_names(m, "solver_names", tm_solver_names) < 0)
        return -1;
    return add_names(m, "linear_solver_names", tm_linear_solver_names);
}

static PyModuleDef_Slot ivp_slots[] = {
    {Py_mod_exec, ivp_exec},
    {0, NULL},
};

static struct PyModuleDef ivp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tidemark._ivp",
    .m_doc = "C IVP solvers (see tidemark.ivp)",
    .m_size = 0,
    .m_slots = ivp_slots,
};

PyMODINIT_FUNC PyInit__ivp(void)
{
    return PyModuleDef_Init(&ivp_module);
}
