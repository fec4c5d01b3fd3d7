"""Python callables <-> C callbacks, without ctypes and without allocating
per invocation.

    c_callback(f, name=None)   f(t, y, ydot) -> a C right-hand side (tm_rhs)
                               that tidemark's solvers (or any C code taking
                               the __tidemark_rhs__ capsule) call directly
    py_callable(c_rhs)         a C right-hand side -> f(t, y, out=None) -> ydot,
                               for scipy.integrate.ode / solve_ivp

Every invocation through the bridge opens a tidemark region named after the
callback, so `tidemark regions TRACE` shows allocations per invocation.
"""
from ._bridge import c_callback, call_rhs, copy_rhs, py_callable

__all__ = ["c_callback", "py_callable", "call_rhs", "copy_rhs"]
