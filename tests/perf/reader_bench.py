#!/usr/bin/python3
"""Reporter speed: events per second and peak RSS of summary, regions,
leaks and timeline (data + gnuplot) over one large trace (the allocation-heavy workload A, ~53 M events
at the default size), measured in one run.

    /usr/bin/python3 tests/perf/reader_bench.py [--n 3000] [--build build] [--keep]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import ALLOC_PY  # noqa: E402  (workload A, one definition)


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of one child run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 3):
        sys.exit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest so far; runs go smallest first.
    return wall, max(rss, before) / 1024.0, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--keep", action="store_true", help="keep the trace")
    a = ap.parse_args()
    tm = os.path.join(a.build, "bin", "tidemark")
    work = tempfile.mkdtemp(prefix="tm-reader-bench-")
    script = os.path.join(work, "alloc.py")
    with open(script, "w") as f:
        f.write(ALLOC_PY)
    trace = os.path.join(work, "alloc.trace")
    env = dict(os.environ, PYTHONMALLOC="malloc")
    subprocess.run([tm, "run", "-o", trace, "--", "/usr/bin/python3", script, str(a.n)],
                   env=env, check=True, capture_output=True)
    _, _, out = timed([tm, "summary", "--json", trace])
    s = json.loads(out)
    events = s["alloc_calls"] + s["free_calls"]
    size = os.path.getsize(trace)
    print(f"trace: {events / 1e6:.1f} M allocation events, {size / 2**20:.1f} MiB "
          f"({size / events:.2f} bytes/event), {s['leaked_blocks']} blocks live at exit")
    print(f"{'report':10s} {'wall s':>8s} {'M events/s':>11s} {'peak RSS MiB':>13s}")
    png = os.path.join(work, "timeline.png")
    for report in (["summary"], ["regions"], ["leaks"], ["timeline", "-o", png]):
        wall, rss, _ = timed([tm, *report, "--json", trace])
        print(f"{report[0]:10s} {wall:8.2f} {events / wall / 1e6:11.1f} {rss:13.1f}")
    if a.keep:
        print(f"trace kept: {trace}")
    else:
        os.unlink(trace)
        os.unlink(script)
        os.unlink(png)
        os.rmdir(work)


if __name__ == "__main__":
    main()
