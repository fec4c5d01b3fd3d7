"""IVP solvers in C behind one interface, for Python.

    from tidemark import ivp
    s = ivp.Solver("dopri5")          # or "cvode-adams", "cvode-bdf"
    s.set_rhs(f)                      # f(t, y, ydot) in Python, or a C callback
    s.set_tolerances(1e-8, 1e-10)
    s.set_bandwidth(1, 1)             # CVODE: the Jacobian's band, if known
    s.set_linear_solver("band")       # CVODE: one of ivp.linear_solver_names
    s.set_initial_value(y0, 0.0)
    y = s.integrate(1.0)
    s.stats()                         # steps, rejected_steps, rhs_evals, CVODE's counters

CVODE's corrector: "fixed-point" (Adams' default), or Newton with "dense"
(BDF's default without a bandwidth), "band" (BDF's default with one),
"spgmr" (matrix-free GMRES) or "spgmr-band" (GMRES preconditioned by a
banded Jacobian).  The linear solver, bandwidth and max order are read by
set_initial_value.

A Python right-hand side goes through tidemark.bridge.c_callback (zero-copy
views, one tidemark region per invocation); ivp.burgers_rhs(n) is the
benchmark's right-hand side in C.
"""
from ._ivp import Solver, burgers_rhs, linear_solver_names, solver_names

__all__ = ["Solver", "burgers_rhs", "linear_solver_names", "solver_names"]
