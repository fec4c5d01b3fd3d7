"""IVP solvers in C behind one interface, for Python.

    from tidemark import ivp
    s = ivp.Solver("dopri5")          # or "cvode-adams", "cvode-bdf"
    s.set_rhs(f)                      # f(t, y, ydot) in Python, or a C callback
    s.set_tolerances(1e-8, 1e-10)
    s.set_initial_value(y0, 0.0)
    y = s.integrate(1.0)
    s.stats()                         # {'steps', 'rejected_steps', 'rhs_evals'}

A Python right-hand side goes through tidemark.bridge.c_callback (zero-copy
views, one tidemark region per invocation); ivp.burgers_rhs(n) is the
benchmark's right-hand side in C.
"""
from ._ivp import Solver, burgers_rhs, solver_names

__all__ = ["Solver", "burgers_rhs", "solver_names"]
