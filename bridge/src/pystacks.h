/* pystacks.h — the --python-stacks profile hook (pystacks.c). */
#ifndef TM_PYSTACKS_H
#define TM_PYSTACKS_H

#include <Python.h>

/* _enable_python_stacks(): 0 when the tracer is not preloaded (nothing
 * done); 2 when the frames are read at allocation time (CPython 3.11, all
 * threads); 1 when a profile hook was installed on the calling thread
 * (other versions, or TIDEMARK_PYTHON_HOOK=1). */
PyObject *tm_enable_python_stacks(PyObject *mod, PyObject *unused);

#endif
