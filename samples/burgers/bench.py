#!/usr/bin/python3
"""The seed benchmark: inviscid Burgers over resolutions, several
implementations, run time normalized to native scipy.

    PYTHONPATH=build/python /usr/bin/python3 samples/burgers/bench.py \\
        [--resolutions 101,201,...] [--runs 3] [--impls native,...] [--out DIR]
        [--leaky-rhs]

Implementations (docs/design.md, "The reference workload"):
  native               scipy ode('dopri5') calling the NumPy right-hand side
  scipy_dopri5_bridge  scipy ode('dopri5') calling the C-wrapped callback:
                       NumPy RHS -> tidemark.bridge.c_callback ->
                       tidemark.bridge.py_callable (the seed's path)
  dopri5, cvode_adams  tidemark's C solvers on the NumPy RHS through the
                       bridge (when tidemark.ivp is built); Adams with
                       fixed-point iteration
  cvode_bdf            CVODE BDF, Newton with a banded Jacobian of the
                       problem's declared bandwidth
  cvode_bdf_krylov     CVODE BDF, Newton with GMRES preconditioned by the
                       banded Jacobian
  *_c_rhs              the same with the C right-hand side

For tidemark's solvers the counters of each run are printed after the
timings (steps, error-test failures, right-hand side calls, nonlinear
iterations and convergence failures, Krylov iterations, Jacobian
evaluations, the last and highest order).

Each run integrates from t=0 to t=2 asking for the solution at every
output time (dt = 0.5 dx), with the seed's settings (rtol = atol = 1e-15,
nsteps = 1000 per output interval).  Under `tidemark run`, each resolution
is marked `resolution=N`, each implementation run is a region `impl:NAME`
and every bridge invocation a region named after the callback.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from scipy.integrate import ode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import burgers_problem as bp  # noqa: E402

import tidemark  # noqa: E402
from tidemark import bridge  # noqa: E402

RTOL = ATOL = 1e-15
NSTEPS = 1000
DEFAULT_RESOLUTIONS = [101, 201, 401, 801, 1001, 2001]
SEED_RESOLUTIONS = [101, 201, 401, 801, 1001, 2001, 4001, 8001, 10001, 20001]

_kept = []
_counters = {}      # (impl, N) -> the solver's stats() of its last run


def make_rhs(n, leaky):
    """The user's NumPy right-hand side, in place: f(t, u, udot)."""
    _, dx = bp.grid(n)
    rhs_into = bp.rhs_into

    def burgers_rhs(t, u, udot):
        rhs_into(t, u, udot, dx)

    def burgers_rhs_leaky(t, u, udot):
        rhs_into(t, u, udot, dx)
        _kept.append(u.copy())     # keeps a reference every call: a leak

    return burgers_rhs_leaky if leaky else burgers_rhs


def run_scipy(f_returning, n):
    times = bp.output_times(n)
    solver = ode(f_returning)
    solver.set_integrator("dopri5", rtol=RTOL, atol=ATOL, nsteps=NSTEPS)
    solver.set_initial_value(bp.initial(n), 0.0)
    for t in times:
        solver.integrate(t)
        if not solver.successful():
            raise RuntimeError(f"scipy dopri5 failed at t={t}")
    return solver.y


def impl_native(n, leaky):
    rhs = make_rhs(n, leaky)

    def f(t, u):
        udot = np.empty_like(u)
        rhs(t, u, udot)
        return udot

    return run_scipy(f, n)


def impl_bridge(n, leaky):
    rhs = make_rhs(n, leaky)
    f = bridge.py_callable(bridge.c_callback(rhs, name=rhs.__name__))
    return run_scipy(f, n)


def solver_impl(impl, name, linear_solver, c_rhs):
    def run(n, leaky):
        from tidemark import ivp
        s = ivp.Solver(name)
        s.set_rhs(ivp.burgers_rhs(n) if c_rhs else make_rhs(n, leaky))
        s.set_tolerances(RTOL, ATOL)
        s.set_max_steps(NSTEPS)
        if linear_solver:
            s.set_bandwidth(*bp.BANDWIDTH)
            s.set_linear_solver(linear_solver)
        s.set_initial_value(bp.initial(n), 0.0)
        y = None
        for t in bp.output_times(n):
            y = s.integrate(t)
        _counters[impl, n] = s.stats()
        return y
    return run


IMPLS = {
    "native": impl_native,
    "scipy_dopri5_bridge": impl_bridge,
}


def have_ivp():
    try:
        from tidemark import ivp  # noqa: F401
        return True
    except ImportError:
        return False


if have_ivp():
    for _name, _solver, _ls in (("dopri5", "dopri5", None),
                                ("cvode_adams", "cvode-adams", None),
                                ("cvode_bdf", "cvode-bdf", "band"),
                                ("cvode_bdf_krylov", "cvode-bdf", "spgmr-band")):
        IMPLS[_name] = solver_impl(_name, _solver, _ls, False)
        IMPLS[_name + "_c_rhs"] = solver_impl(_name + "_c_rhs", _solver, _ls, True)

# BDF's own cost shows in cvode_bdf*_c_rhs; left out by default to keep the
# demo short (BDF takes twice Adams' steps at these tolerances).
DEFAULT_IMPLS = [name for name in IMPLS if not (name.startswith("cvode_bdf") and
                                                name.endswith("_c_rhs"))]

COUNTERS = (("steps", "steps"), ("err_fails", "rejected_steps"), ("rhs", "rhs_evals"),
            ("nl_iters", "nonlinear_iters"), ("nl_fails", "nonlinear_fails"),
            ("lin_iters", "linear_iters"), ("jacs", "jac_evals"))


def counter_lines(resolutions, impls):
    """One line per solver run: CVODE's counters, per step where it helps."""
    head = f"{'N':>7s} {'implementation':24s} " + " ".join(f"{c:>9s}" for c, _ in COUNTERS)
    lines = ["counters of each solver's last run (per step: rhs/step, nl_iters/step; "
             "order: last/highest)", head + f" {'rhs/step':>8s} {'nl/step':>7s} {'order':>5s}"]
    for n in resolutions:
        for name in impls:
            st = _counters.get((name, n))
            if not st:
                continue
            steps = max(st["steps"], 1)
            lines.append(f"{n:7d} {name:24s} " + " ".join(f"{st[k]:9d}" for _, k in COUNTERS) +
                         f" {st['rhs_evals'] / steps:8.2f} {st['nonlinear_iters'] / steps:7.2f}"
                         f" {st['order']:>2d}/{st['max_order']:<2d}")
    return lines


def write_plot(out, table, resolutions, impls):
    dat = os.path.join(out, "runtime-normalized.dat")
    with open(dat, "w") as f:
        for n in resolutions:
            f.write(f"{n} " + " ".join(f"{table[n][i]['normalized']:.4f}" for i in impls) + "\n")
    script = os.path.join(out, "runtime-normalized.gp")
    cols = ", ".join(
        f"'{dat}' using 1:{k + 2} with linespoints lw 2 pt {5 + k} title \"{name}\""
        for k, name in enumerate(impls))
    with open(script, "w") as f:
        f.write(f"""set terminal pngcairo size 1000,600 font 'Sans,10' noenhanced
set output '{os.path.join(out, "runtime-normalized.png")}'
set title "Burgers: run time normalized to native scipy dopri5"
set xlabel "resolution N (grid points)"
set ylabel "time / native time"
set logscale x
set xrange [{resolutions[0] / 1.3}:{resolutions[-1] * 1.3}]
set grid
set key top right
set yrange [0:*]
plot {cols}
""")
    subprocess.run(["gnuplot", script], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", default=",".join(map(str, DEFAULT_RESOLUTIONS)),
                    help="comma-separated N list, or 'seed' for the seed's full list")
    ap.add_argument("--runs", type=int, default=3, help="repetitions per N and implementation")
    ap.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                    help=f"comma-separated, from {', '.join(IMPLS)} (default: all but "
                         "cvode_bdf*_c_rhs; the first is the baseline)")
    ap.add_argument("--out", help="directory for timings.txt, timings.json, "
                                  "runtime-normalized.png")
    ap.add_argument("--leaky-rhs", action="store_true",
                    help="a right-hand side that keeps a copy of u every call")
    a = ap.parse_args()
    resolutions = SEED_RESOLUTIONS if a.resolutions == "seed" else [
        int(x) for x in a.resolutions.split(",") if x]
    impls = [i for i in a.impls.split(",") if i]
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        ap.error(f"unknown implementation(s) {', '.join(unknown)}; available: {', '.join(IMPLS)}")
    if a.runs < 1:
        ap.error("--runs must be at least 1")

    table = {}
    for n in resolutions:
        tidemark.mark(f"resolution={n}")
        table[n] = {}
        # Interleaved (native, bridge, native, bridge, ...) so machine noise
        # hits every implementation alike.
        samples = {name: [] for name in impls}
        results = {}
        regions = {name: tidemark.region(f"impl:{name}") for name in impls}
        for _ in range(a.runs):
            for name in impls:
                tidemark.mark(f"impl={name}")
                with regions[name]:
                    t0 = time.perf_counter()
                    results[name] = IMPLS[name](n, a.leaky_rhs)
                    samples[name].append(time.perf_counter() - t0)
        ref = results[impls[0]]
        for name in impls:
            err = float(np.max(np.abs(results[name] - ref)) / np.max(np.abs(ref)))
            table[n][name] = {"mean": statistics.mean(samples[name]),
                              "std": statistics.stdev(samples[name]) if a.runs > 1 else 0.0,
                              "max_rel_diff": err}
        base = table[n][impls[0]]["mean"]
        for name in impls:
            table[n][name]["normalized"] = table[n][name]["mean"] / base
        print(f"N={n}: " + "  ".join(f"{name} {table[n][name]['mean']:.3f}s "
                                      f"({table[n][name]['normalized']:.2f}x)"
                                      for name in impls), flush=True)

    lines = [f"Burgers, scipy dopri5 settings rtol=atol={RTOL:g}, nsteps={NSTEPS}, "
             f"{a.runs} run(s) each; time in seconds (mean std), normalized to {impls[0]}",
             f"{'N':>7s} " + " ".join(f"{i:>24s}" for i in impls)]
    for n in resolutions:
        lines.append(f"{n:7d} " + " ".join(
            f"{table[n][i]['mean']:9.3f} {table[n][i]['std']:6.3f} {table[n][i]['normalized']:6.2f}x"
            for i in impls))
    lines += [""] + counter_lines(resolutions, impls)
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "timings.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(a.out, "timings.json"), "w") as f:
            json.dump({"settings": {"rtol": RTOL, "atol": ATOL, "nsteps": NSTEPS,
                                    "runs": a.runs, "baseline": impls[0]},
                       "timings": {str(n): table[n] for n in resolutions},
                       "counters": {str(n): {i: _counters[i, n] for i in impls
                                             if (i, n) in _counters}
                                    for n in resolutions}}, f, indent=2)
        if len(resolutions) > 1:
            write_plot(a.out, table, resolutions, impls)


if __name__ == "__main__":
    main()
