#!/usr/bin/python3
"""pystacks_bench.py TIDEMARK [PYTHON...] — per interpreter, the cost of
`tidemark run --python-stacks` against native-only stacks (`tidemark run`)
on a Python workload that calls and allocates (nested calls, small lists,
dicts and strings: the allocator is hit by every few bytecodes).

Each (interpreter, mode) runs ROUNDS times, interleaved; the ratio is of
the fastest runs.  Interpreters default to /usr/bin/python3 and every
pyenv version present.  Not part of the test suite: it measures time."""
import glob
import os
import subprocess
import sys
import tempfile
import time

ROUNDS = 5
WORKLOAD = r'''
def leaf(i):
    return [i, str(i), {"k": i}]

def middle(n):
    out = []
    for i in range(n):
        out.append(leaf(i))
    return len(out)

def outer(rounds):
    return sum(middle(2000) for _ in range(rounds))

outer(1000)
'''


def run(tm, py, script, stacks, work):
    trace = os.path.join(work, "b.trace")
    if os.path.exists(trace):
        os.unlink(trace)
    cmd = [tm, "run", *(["--python-stacks"] if stacks else []), "-o", trace, "--", py, script]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    tm = sys.argv[1]
    pythons = sys.argv[2:] or ["/usr/bin/python3"] + sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    with tempfile.TemporaryDirectory() as work:
        script = os.path.join(work, "workload.py")
        with open(script, "w") as f:
            f.write(WORKLOAD)
        print(f"{'interpreter':48} {'native s':>9} {'py-stacks s':>11} {'ratio':>6}")
        for py in pythons:
            if not os.access(py, os.X_OK):
                continue
            best = {False: float("inf"), True: float("inf")}
            for _ in range(ROUNDS):
                for stacks in (False, True):
                    best[stacks] = min(best[stacks], run(tm, py, script, stacks, work))
            print(f"{py:48} {best[False]:9.3f} {best[True]:11.3f} "
                  f"{best[True] / best[False]:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
