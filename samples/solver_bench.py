#!/usr/bin/python3
"""The C solvers on Burgers with the C right-hand side, in one run.

    PYTHONPATH=build/python /usr/bin/python3 samples/solver_bench.py [--n 1001] [--runs 3]
        [--rtol 1e-10] [--atol 1e-10]

Rows, each driven to the seed's output times (every 0.5 dx up to t=2):
  scipy dopri5 + C RHS   scipy ode('dopri5') calling ivp.burgers_rhs through
                         tidemark.bridge.py_callable (stepping to every output)
  dopri5 (own)           tidemark's dopri5 (dense output between steps)
  cvode-adams            SUNDIALS CVODE, Adams with fixed-point iteration
  cvode-bdf (band)       BDF, Newton with the problem's banded Jacobian
  cvode-bdf (spgmr-band) BDF, Newton with GMRES, banded preconditioner
Prints best-of-runs seconds, speed-up over scipy, steps, RHS evaluations and
the largest relative difference from scipy's solution.
"""
import argparse
import os
import sys
import time

import numpy as np
from scipy.integrate import ode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "burgers"))
import burgers_problem as bp  # noqa: E402

from tidemark import bridge, ivp  # noqa: E402


def run_scipy(n, rtol, atol):
    f = bridge.py_callable(ivp.burgers_rhs(n))
    calls = [0]

    def counted(t, u):
        calls[0] += 1
        return f(t, u)

    r = ode(counted).set_integrator("dopri5", rtol=rtol, atol=atol, nsteps=100000)
    r.set_initial_value(bp.initial(n), 0.0)
    for t in bp.output_times(n):
        y = r.integrate(t)
    return y, {"rhs_evals": calls[0], "steps": (calls[0] - 1) // 6}


def run_own(name, n, rtol, atol, linear_solver=None):
    s = ivp.Solver(name)
    s.set_rhs(ivp.burgers_rhs(n))
    if linear_solver:
        s.set_bandwidth(*bp.BANDWIDTH)
        s.set_linear_solver(linear_solver)
    s.set_tolerances(rtol, atol)
    s.set_max_steps(1000000)
    s.set_initial_value(bp.initial(n), 0.0)
    for t in bp.output_times(n):
        y = s.integrate(t)
    return y, s.stats()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1001)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rtol", type=float, default=1e-10)
    ap.add_argument("--atol", type=float, default=1e-10)
    a = ap.parse_args()
    rows = [("scipy dopri5 + C RHS", lambda: run_scipy(a.n, a.rtol, a.atol)),
            ("dopri5 (own)", lambda: run_own("dopri5", a.n, a.rtol, a.atol)),
            ("cvode-adams", lambda: run_own("cvode-adams", a.n, a.rtol, a.atol))]
    for ls in ("band", "spgmr-band"):
        rows.append((f"cvode-bdf ({ls})",
                     lambda ls=ls: run_own("cvode-bdf", a.n, a.rtol, a.atol, ls)))
    results = {}
    for name, fn in rows:
        best = None
        for _ in range(a.runs):
            t0 = time.perf_counter()
            y, st = fn()
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        results[name] = (best, y, st)
    base, ref, _ = results[rows[0][0]]
    print(f"Burgers N={a.n}, C right-hand side, rtol={a.rtol:g} atol={a.atol:g}, "
          f"{len(bp.output_times(a.n))} output times, best of {a.runs}")
    print(f"{'solver':22s} {'seconds':>8s} {'speed-up':>9s} {'steps':>8s} {'rhs evals':>10s} "
          f"{'max rel diff':>13s}")
    for name, _ in rows:
        dt, y, st = results[name]
        diff = np.max(np.abs(y - ref)) / np.max(np.abs(ref))
        print(f"{name:22s} {dt:8.3f} {base / dt:8.2f}x {st['steps']:8d} {st['rhs_evals']:10d} "
              f"{diff:13.2e}")


if __name__ == "__main__":
    main()
