/* snapshot.c — tidemark._snapshot: the preload's in-process query API
 * (tracer/include/tidemark_snapshot.h) for Python, looked up with dlsym.
 *
 *   available()          1 when the preload is there with snapshots on
 *   totals()             (live_bytes, live_blocks, peak_bytes, exact)
 *   region(name)         (invocations, kept_bytes, kept_blocks,
 *                        watch_invocations, watch_kept_bytes or None) or None
 *   regions()            {name: (invocations, kept_bytes, ...)}
 *   reset_peak()         peak := live
 *   watch(name, after)   see tidemark_snapshot_watch
 *   flush()              everything recorded so far into the trace file
 *
 * Every figure is read before any Python object is made, so the objects
 * this module returns are not in them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <string.h>

#include "tidemark_snapshot.h"

static struct {
    int (*snapshot)(struct tidemark_snapshot *);
    int (*region)(uint32_t, struct tidemark_snapshot_region *);
    void (*reset_peak)(void);
    int (*watch)(const char *, uint64_t);
    int (*flush)(void);
    int looked;
} api;

static const char off_msg[] =
    "tidemark snapshots need the tracer: run under `tidemark pytest` (or `tidemark run` "
    "with TIDEMARK_SNAPSHOT=1 in the environment)";

static int ready(void)
{
    if (!api.looked) {
        api.snapshot = (int (*)(struct tidemark_snapshot *))dlsym(RTLD_DEFAULT, "tidemark_snapshot");
        api.region = (int (*)(uint32_t, struct tidemark_snapshot_region *))dlsym(
            RTLD_DEFAULT, "tidemark_snapshot_region");
        api.reset_peak = (void (*)(void))dlsym(RTLD_DEFAULT, "tidemark_reset_peak");
        api.watch = (int (*)(const char *, uint64_t))dlsym(RTLD_DEFAULT, "tidemark_snapshot_watch");
        api.flush = (int (*)(void))dlsym(RTLD_DEFAULT, "tidemark_flush");
        api.looked = 1;
    }
    struct tidemark_snapshot s;
    return api.snapshot && api.region && api.reset_peak && api.watch && api.flush &&
           api.snapshot(&s) == 0;
}

static int need(void)
{
    if (ready())
        return 1;
    PyErr_SetString(PyExc_RuntimeError, off_msg);
    return 0;
}

static PyObject *available(PyObject *m, PyObject *unused)
{
    return PyBool_FromLong(ready());
}

static PyObject *totals(PyObject *m, PyObject *unused)
{
    struct tidemark_snapshot s;
    if (!need() || api.snapshot(&s) != 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, off_msg);
        return NULL;
    }
    return Py_BuildValue("(KKKO)", (unsigned long long)s.live_bytes,
                         (unsigned long long)s.live_blocks, (unsigned long long)s.peak_bytes,
                         s.exact ? Py_True : Py_False);
}

static PyObject *region_tuple(const struct tidemark_snapshot_region *r)
{
    PyObject *watch_kept;
    if (r->watch_kept_bytes == UINT64_MAX) {
        watch_kept = Py_None;
        Py_INCREF(watch_kept);
    } else {
        watch_kept = PyLong_FromUnsignedLongLong(r->watch_kept_bytes);
        if (!watch_kept)
            return NULL;
    }
    return Py_BuildValue("(KKKKN)", (unsigned long long)r->invocations,
                         (unsigned long long)r->kept_bytes, (unsigned long long)r->kept_blocks,
                         (unsigned long long)r->watch_invocations, watch_kept);
}

static PyObject *region(PyObject *m, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name || !need())
        return NULL;
    struct tidemark_snapshot_region r;
    for (uint32_t i = 0; api.region(i, &r) == 0; i++)
        if (strcmp(r.name, name) == 0)
            return region_tuple(&r);
    Py_RETURN_NONE;
}

/* Regions as they were when the call began: figures first, objects after. */
static PyObject *regions(PyObject *m, PyObject *unused)
{
    struct tidemark_snapshot s;
    if (!need() || api.snapshot(&s) != 0)
        return NULL;
    size_t n = s.regions;
    struct tidemark_snapshot_region *rs = PyMem_RawMalloc((n ? n : 1) * sizeof *rs);
    if (!rs)
        return PyErr_NoMemory();
    size_t got = 0;
    while (got < n && api.region((uint32_t)got, &rs[got]) == 0)
        got++;
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < got; i++) {
        PyObject *t = region_tuple(&rs[i]);
        if (!t || PyDict_SetItemString(d, rs[i].name, t) < 0)
            Py_CLEAR(d);
        Py_XDECREF(t);
    }
    PyMem_RawFree(rs);
    return d;
}

static PyObject *reset_peak(PyObject *m, PyObject *unused)
{
    if (!need())
        return NULL;
    api.reset_peak();
    Py_RETURN_NONE;
}

static PyObject *watch(PyObject *m, PyObject *args)
{
    const char *name;
    unsigned long long after;
    if (!PyArg_ParseTuple(args, "sK:watch", &name, &after) || !need())
        return NULL;
    if (api.watch(name, after) != 0) {
        PyErr_Format(PyExc_RuntimeError, "tidemark: cannot watch region %s", name);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *flush(PyObject *m, PyObject *unused)
{
    if (!need())
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = api.flush();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(rc == 0);
}

static PyMethodDef methods[] = {
    {"available", available, METH_NOARGS, "1 when the tracer is there with snapshots on"},
    {"totals", totals, METH_NOARGS, "(live_bytes, live_blocks, peak_bytes, exact)"},
    {"region", region, METH_O, "one region's figures, or None"},
    {"regions", regions, METH_NOARGS, "every region's figures"},
    {"reset_peak", reset_peak, METH_NOARGS, "peak_bytes := live_bytes"},
    {"watch", watch, METH_VARARGS, "watch(name, after): the kept bytes at a region's watch point"},
    {"flush", flush, METH_NOARGS, "everything recorded so far into the trace file"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tidemark._snapshot", "the preload's in-process query API", -1,
    methods,
};

PyMODINIT_FUNC PyInit__snapshot(void)
{
    return PyModule_Create(&module);
}
