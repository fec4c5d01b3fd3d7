#!/usr/bin/python3
"""Per-invocation cost of the bridge, in ns, measured in one run.

    PYTHONPATH=build/python /usr/bin/python3 samples/bridge_bench.py [--n 200000] [--size 1001]

Rows (best of 5 repeats of n calls each):
  python direct        f(t, y, ydot) called from Python
  python->C->python    bridge.call_rhs(c_callback(f), ...): Python calls C,
                       which calls f through the bridge (the seed's path)
  seed ctypes          the seed's approach: ndarray.ctypes.data_as +
                       np.ctypeslib.as_array per call, then f
  C direct             bridge.call_rhs(copy_rhs()): a trivial C RHS
  python->C            py_callable(copy_rhs())(t, y, out)
"""
import argparse
import ctypes
import time

import numpy as np

from tidemark import bridge


def best(fn, n, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(n)
        times.append((time.perf_counter_ns() - t0) / n)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--size", type=int, default=1001)
    a = ap.parse_args()
    y = np.linspace(0, 1, a.size)
    ydot = np.zeros(a.size)

    def f(t, y, ydot):
        pass                    # the cost of the call itself, not of the work

    cb = bridge.c_callback(f)
    call = bridge.call_rhs
    crhs = bridge.copy_rhs()
    pyc = bridge.py_callable(crhs)
    P = ctypes.POINTER(ctypes.c_double)

    def loop_direct(n):
        for _ in range(n):
            f(0.5, y, ydot)

    def loop_bridge(n):
        for _ in range(n):
            call(cb, 0.5, y, ydot)

    def loop_ctypes(n):
        shape = y.shape
        for _ in range(n):
            yp = y.ctypes.data_as(P)
            dp = ydot.ctypes.data_as(P)
            f(0.5, np.ctypeslib.as_array(yp, shape), np.ctypeslib.as_array(dp, shape))

    def loop_c(n):
        for _ in range(n):
            call(crhs, 0.5, y, ydot)

    def loop_pyc(n):
        for _ in range(n):
            pyc(0.5, y, ydot)

    rows = [("python direct", loop_direct), ("python->C->python", loop_bridge),
            ("seed ctypes", loop_ctypes), ("C direct (call_rhs)", loop_c),
            ("python->C (py_callable)", loop_pyc)]
    res = {name: best(fn, a.n) for name, fn in rows}
    base = res["python direct"]
    print(f"bridge cost per invocation, n={a.n}, array size {a.size}")
    print(f"{'path':26s} {'ns/call':>9s} {'vs direct':>10s}")
    for name, _ in rows:
        print(f"{name:26s} {res[name]:9.0f} {res[name] / base:9.2f}x")
    print(f"round trip adds {res['python->C->python'] - base:.0f} ns over a direct Python call "
          f"(target < 300 ns); the seed's ctypes path adds {res['seed ctypes'] - base:.0f} ns")


if __name__ == "__main__":
    main()
