/* test_bridge_c.c — the bridge from the C side, as a solver sees it: an
 * embedded interpreter wraps Python functions with tidemark.bridge.c_callback
 * and C code calls them through the tm_rhs in the capsule. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tm_callback.h"

static PyObject *globals;

/* Runs Python source in the test's namespace. */
static void run(const char *src)
{
    PyObject *r = PyRun_String(src, Py_file_input, globals, globals);
    if (!r)
        PyErr_Print();
    assert_non_null(r);
    Py_DECREF(r);
}

static const tm_rhs *rhs_of(const char *name)
{
    PyObject *cb = PyDict_GetItemString(globals, name);
    assert_non_null(cb);
    PyObject *cap = PyObject_GetAttrString(cb, TM_RHS_ATTR);
    assert_non_null(cap);
    const tm_rhs *r = PyCapsule_GetPointer(cap, TM_RHS_CAPSULE);
    Py_DECREF(cap);   /* the callback object keeps the tm_rhs alive */
    assert_non_null(r);
    return r;
}

static void test_c_calls_python(void **state)
{
    run("import numpy as np\n"
        "from tidemark import bridge\n"
        "calls = []\n"
        "def scale(t, y, ydot):\n"
        "    calls.append(t)\n"
        "    ydot[:] = t * y\n"
        "cb = bridge.c_callback(scale)\n");
    const tm_rhs *r = rhs_of("cb");
    assert_string_equal(r->name, "scale");
    double y[4] = {1, 2, 3, 4}, ydot[4] = {0};
    intptr_t dims[1] = {4};
    tm_array ya = {1, dims, y}, da = {1, dims, ydot};
    for (int i = 0; i < 1000; i++) {
        y[0] = i;
        assert_int_equal(r->fn(2.0, &ya, &da, r->user_data), 0);
        assert_true(ydot[0] == 2.0 * i && ydot[3] == 8.0);
    }
    run("assert len(calls) == 1000 and calls[-1] == 2.0\n");
}

static void test_two_dimensional_views(void **state)
{
    run("def shape(t, y, ydot):\n"
        "    assert y.shape == (2, 3) and not y.flags.writeable and ydot.flags.writeable\n"
        "    ydot[...] = y.T.sum()\n"
        "cb2 = bridge.c_callback(shape)\n");
    const tm_rhs *r = rhs_of("cb2");
    double y[6] = {1, 2, 3, 4, 5, 6}, ydot[6];
    intptr_t dims[2] = {2, 3};
    tm_array ya = {2, dims, y}, da = {2, dims, ydot};
    assert_int_equal(r->fn(0.0, &ya, &da, r->user_data), 0);
    for (int i = 0; i < 6; i++)
        assert_true(ydot[i] == 21.0);
}

static void test_exception_is_an_error_code(void **state)
{
    run("def bad(t, y, ydot):\n"
        "    raise ValueError('no good at %g' % t)\n"
        "cb3 = bridge.c_callback(bad)\n");
    const tm_rhs *r = rhs_of("cb3");
    double y[1] = {1}, ydot[1];
    intptr_t dims[1] = {1};
    tm_array ya = {1, dims, y}, da = {1, dims, ydot};
    assert_int_not_equal(r->fn(0.5, &ya, &da, r->user_data), 0);
    /* The exception waits for the Python caller to re-raise it. */
    assert_non_null(PyErr_Occurred());
    assert_true(PyErr_ExceptionMatches(PyExc_ValueError));
    PyErr_Clear();
}

int main(void)
{
    Py_Initialize();
    PyObject *main = PyImport_AddModule("__main__");
    globals = PyModule_GetDict(main);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_calls_python),
        cmocka_unit_test(test_two_dimensional_views),
        cmocka_unit_test(test_exception_is_an_error_code),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    Py_Finalize();
    return failed;
}
