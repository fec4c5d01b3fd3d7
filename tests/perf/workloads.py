"""The reference workloads of the benchmarks, defined once.

ALLOC_PY is workload A (allocation-heavy Python: bytearrays and small
dicts, one in a hundred kept a while; run with PYTHONMALLOC=malloc so each
object is a malloc), BURGERS_PY workload B (the Burgers problem of
samples/burgers integrated by SciPy's dopri5 with a Python right-hand
side), PYMALLOC_PY a pymalloc-heavy loop (small tuples, strs, dicts and
lists, nothing reaching malloc: with Python's allocators traced, every
object is an event; issue 23).  All take the size as argv[1].
"""
import os

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

PYMALLOC_PY = """
import sys
n = int(sys.argv[1])
keep = []
for i in range(n):
    for j in range(1000):
        t = (i, j, str(j))
        d = {"k": j, "t": t}
        l = [t, d]
        if j % 100 == 0:
            keep.append(l)
    if len(keep) > 500:
        del keep[:250]
"""
