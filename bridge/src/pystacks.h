/* pystacks.h — the --python-stacks profile hook (pystacks.c). */
#ifndef TM_PYSTACKS_H
#define TM_PYSTACKS_H

#include <Python.h>

/* _enable_python_stacks(): installs the hook on the calling thread; True
 * when the tracer is preloaded, False (and nothing done) otherwise. */
PyObject *tm_enable_python_stacks(PyObject *mod, PyObject *unused);

#endif
