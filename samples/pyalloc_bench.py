#!/usr/bin/python3
"""pyalloc_bench.py [--build DIR] [--runs N] [--quick] — what tracing
Python's allocators costs (issue 23): workload B (the seed's Burgers run,
N=1001, default pymalloc) and a pymalloc-heavy loop (small tuples, strs,
lists and dicts, nothing reaching malloc), both from tests/perf/workloads.py,
each

    plain                  /usr/bin/python3 SCRIPT
    full, allocators       tidemark run -- ... (native stacks, Python's
                           allocators traced: the default)
    full, allocators off   tidemark run --python-allocator off -- ...
    none, allocators       tidemark run --stacks none -- ...

Rounds alternate the modes; the ratio is of median wall times to plain's,
in this one run.  Events are the traced allocation and free calls (tidemark
summary).  Not part of the test suite: it measures time, and prints what it
measured whatever the numbers (target: B with full stacks and allocators
traced <= 1.5x plain)."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests", "perf"))
from workloads import BURGERS_PY, PY, PYMALLOC_PY, ROOT  # noqa: E402

MODES = [
    ("plain", None),
    ("full, allocators", []),
    ("full, allocators off", ["--python-allocator", "off"]),
    ("none, allocators", ["--stacks", "none"]),
]


def once(tm, opts, cmd, work):
    trace = os.path.join(work, "b.trace")
    if os.path.exists(trace):
        os.unlink(trace)
    full = cmd if opts is None else [tm, "run", "-o", trace, *opts, "--", *cmd]
    t = time.perf_counter()
    p = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(full)}: exit {p.returncode}: "
                 f"{(p.stderr.strip().splitlines() or [''])[-1]}")
    events = None
    if opts is not None:
        s = json.loads(subprocess.run([tm, "summary", "--json", trace], check=True,
                                      capture_output=True, text=True).stdout)
        events = (s["alloc_calls"] + s["free_calls"], s["python_allocator"])
    return wall, events


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="B at N=201, the loop at n=100")
    args = ap.parse_args()
    tm = os.path.join(args.build, "bin", "tidemark")
    env_path = os.path.join(args.build, "python")
    os.environ["PYTHONPATH"] = env_path
    nb, nl = (201, 100) if args.quick else (1001, 1000)
    work = tempfile.mkdtemp(prefix="tm-pyalloc-bench-")
    try:
        b = os.path.join(work, "burgers.py")
        loop = os.path.join(work, "pymalloc.py")
        with open(b, "w") as f:
            f.write(BURGERS_PY)
        with open(loop, "w") as f:
            f.write(PYMALLOC_PY)
        workloads = [(f"B Burgers N={nb}", [PY, b, str(nb)]),
                     (f"pymalloc loop n={nl}", [PY, loop, str(nl)])]
        print(f"load average {os.getloadavg()[0]:.2f}, {args.runs} rounds, medians")
        print(f"{'workload':22} {'mode':22} {'wall s':>8} {'ratio':>7} {'events':>10} "
              f"{'python_allocator':>16}")
        for label, cmd in workloads:
            walls = {m: [] for m, _ in MODES}
            events = {}
            for _ in range(args.runs):
                for mode, opts in MODES:
                    w, e = once(tm, opts, cmd, work)
                    walls[mode].append(w)
                    events[mode] = e
            base = statistics.median(walls["plain"])
            for mode, _ in MODES:
                med = statistics.median(walls[mode])
                e = events[mode]
                print(f"{label:22} {mode:22} {med:8.3f} {med / base:6.2f}x "
                      f"{e[0] if e else '-':>10} {e[1] if e else '-':>16}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
