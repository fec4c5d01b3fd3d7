#!/usr/bin/python3
"""Tracer overhead benchmark: one command, one table.

    PYTHONPATH=build/python /usr/bin/python3 tests/perf/tracer_bench.py [--runs 3] [--quick]

For each workload (A: allocation-heavy Python loop with PYTHONMALLOC=malloc;
B: the seed's Burgers run at N=1001 with scipy's dopri5 and the NumPy
right-hand side) it runs plain, tidemark with stacks off, tidemark with full
native stacks, and heaptrack when installed, interleaved (plain, none, full,
heaptrack, plain, ...) so machine noise hits all modes alike, and prints the
median wall-time ratio to plain, the median peak-RSS increase of the largest
process, and the trace bytes per event.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"

ALLOC_PY = """
import sys
n = int(sys.argv[1])
keep = []
for i in range(n):
    for j in range(1000):
        b = bytearray(600 + (j % 200))
        d = {k: k for k in range(j % 8)}
        if j % 100 == 0:
            keep.append(b)
    if len(keep) > 500:
        del keep[:250]
"""

BURGERS_PY = """
import sys
sys.path.insert(0, %r)
import numpy as np
from scipy.integrate import ode
import burgers_problem as bp
n = int(sys.argv[1])
_, dx = bp.grid(n)
s = ode(lambda t, u: bp.rhs(t, u, dx)).set_integrator(
    "dopri5", rtol=1e-15, atol=1e-15, nsteps=1000)
s.set_initial_value(bp.initial(n), 0.0)
for t in bp.output_times(n):
    s.integrate(t)
""" % os.path.join(ROOT, "samples", "burgers")


def run(cmd, env):
    """Wall seconds and peak RSS (KiB) of the largest process of cmd."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if status != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss


def events_in(tidemark, trace):
    out = subprocess.run([tidemark, "summary", "--json", trace], capture_output=True, text=True)
    if out.returncode not in (0, 2) or not out.stdout:
        return None
    s = json.loads(out.stdout)
    return s["alloc_calls"] + s["free_calls"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()

    lib = os.path.join(args.build, "lib", "libtidemark.so")
    tidemark = os.path.join(args.build, "bin", "tidemark")
    if not os.path.exists(lib):
        raise SystemExit(f"bench: {lib} not built")
    heaptrack = shutil.which("heaptrack")
    work = tempfile.mkdtemp(prefix="tm-bench-")
    alloc_py = os.path.join(work, "alloc.py")
    burgers_py = os.path.join(work, "burgers.py")
    with open(alloc_py, "w") as f:
        f.write(ALLOC_PY)
    with open(burgers_py, "w") as f:
        f.write(BURGERS_PY)

    workloads = [
        ("A alloc-heavy", [PY, alloc_py, "300" if args.quick else "1500"], {"PYTHONMALLOC": "malloc"}),
        ("B burgers N=1001", [PY, burgers_py, "201" if args.quick else "1001"], {}),
    ]
    modes = ["plain", "none", "full"] + (["heaptrack"] if heaptrack else [])
    rows = []
    for name, cmd, extra in workloads:
        wall = {m: [] for m in modes}
        rss = {m: [] for m in modes}
        bpe = []
        for r in range(args.runs):
            for m in modes:
                env = dict(os.environ, **extra)
                trace = os.path.join(work, f"{m}.{r}.trace")
                c = list(cmd)
                if m in ("none", "full"):
                    env.update(LD_PRELOAD=lib, TIDEMARK_OUTPUT=trace,
                               TIDEMARK_STACKS="none" if m == "none" else "full")
                elif m == "heaptrack":
                    c = [heaptrack, "-o", os.path.join(work, f"ht.{r}")] + c
                w, k = run(c, env)
                wall[m].append(w)
                rss[m].append(k)
                if m == "full" and os.path.exists(tidemark):
                    n = events_in(tidemark, trace)
                    if n:
                        bpe.append(os.path.getsize(trace) / n)
                if os.path.exists(trace):
                    os.unlink(trace)
        base = statistics.median(wall["plain"])
        base_rss = statistics.median(rss["plain"])
        for m in modes:
            rows.append((name, m, statistics.median(wall[m]), statistics.median(wall[m]) / base,
                         (statistics.median(rss[m]) - base_rss) / 1024,
                         statistics.median(bpe) if (m == "full" and bpe) else None))
        print(f"bench: {name} done", file=sys.stderr)

    print(f"{'workload':<18} {'mode':<10} {'wall s':>8} {'ratio':>7} {'+RSS MiB':>9} {'B/event':>8}")
    for name, m, w, ratio, drss, b in rows:
        bs = f"{b:8.2f}" if b is not None else f"{'-':>8}"
        print(f"{name:<18} {m:<10} {w:8.2f} {ratio:7.2f} {drss:9.1f} {bs}")
    print(f"(medians of {args.runs} interleaved runs; heaptrack "
          f"{'included' if heaptrack else 'not installed'})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
