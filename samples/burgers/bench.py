#!/usr/bin/python3
"""The seed benchmark: inviscid Burgers over resolutions, several
implementations, run time normalized to native scipy.

    PYTHONPATH=build/python /usr/bin/python3 samples/burgers/bench.py \\
        [--resolutions 101,201,...] [--runs 3] [--impls native,...] [--out DIR]
        [--leaky-rhs]

Implementations (DESIGN.md, context/000):
  native               scipy ode('dopri5') calling the NumPy right-hand side
  scipy_dopri5_bridge  scipy ode('dopri5') calling the C-wrapped callback:
                       NumPy RHS -> tidemark.bridge.c_callback ->
                       tidemark.bridge.py_callable (the seed's path)
  dopri5, cvode_adams, cvode_bdf  tidemark's C solvers on the NumPy RHS
                       through the bridge (when tidemark.ivp is built)
  *_c_rhs              the same with the C right-hand side

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


def solver_impl(name, c_rhs):
    def run(n, leaky):
        from tidemark import ivp
        s = ivp.Solver(name)
        s.set_rhs(ivp.burgers_rhs(n) if c_rhs else make_rhs(n, leaky))
        s.set_tolerances(RTOL, ATOL)
        s.set_max_steps(NSTEPS)
        s.set_initial_value(bp.initial(n), 0.0)
        y = None
        for t in bp.output_times(n):
            y = s.integrate(t)
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
    for _name, _solver in (("dopri5", "dopri5"), ("cvode_adams", "cvode-adams"),
                           ("cvode_bdf", "cvode-bdf")):
        IMPLS[_name] = solver_impl(_solver, False)
        IMPLS[_name + "_c_rhs"] = solver_impl(_solver, True)


# BDF with a dense direct solver factors an N x N Jacobian: fine at N=101,
# hopeless at N=2001, so it runs only when asked for.
DEFAULT_IMPLS = [name for name in IMPLS if not name.startswith("cvode_bdf")]


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
                         "cvode_bdf*, whose dense Jacobian costs O(N^3) per setup)")
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
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "timings.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(a.out, "timings.json"), "w") as f:
            json.dump({"settings": {"rtol": RTOL, "atol": ATOL, "nsteps": NSTEPS,
                                    "runs": a.runs, "baseline": impls[0]},
                       "timings": {str(n): table[n] for n in resolutions}}, f, indent=2)
        if len(resolutions) > 1:
            write_plot(a.out, table, resolutions, impls)


if __name__ == "__main__":
    main()
