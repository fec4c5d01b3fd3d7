"""Run under the tracer (with PYTHONMALLOC=malloc, so Python's own object
allocations are visible too): 100k invocations through each direction of
the bridge; the bridge must add no allocation per invocation to what the
right-hand side itself does (checked by tidemark regions --json)."""
import numpy as np

import tidemark
from tidemark import bridge

N = 100000


def in_place(t, y, ydot):
    np.negative(y, out=ydot)


y = np.arange(50.0)
ydot = np.zeros(50)

# The baseline: the same function called directly, in a region of its own.
direct = tidemark.region("direct")
for _ in range(N):
    with direct:
        in_place(0.5, y, ydot)

# C -> Python: a C caller invoking a Python callback.
cb = bridge.c_callback(in_place, name="py_in_place")
call = bridge.call_rhs
for _ in range(N):
    call(cb, 0.5, y, ydot)
assert (ydot == -y).all()

# Python -> C: a trivial C right-hand side behind py_callable.
f = bridge.py_callable(bridge.copy_rhs())
for _ in range(N):
    f(0.5, y, ydot)
assert (ydot == y).all()
