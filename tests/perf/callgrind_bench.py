#!/usr/bin/python3
"""Tracer cost in instructions per event, from callgrind (docs/performance.md).

    /usr/bin/python3 tests/perf/callgrind_bench.py [--build build]
        [--baseline OTHER_BUILD] [--quick] [--only c,a,threads]
        [--threads 1,2,4,8] [--top 6] [--json FILE]

Wall-clock ratios on a shared 2-core machine swing by +-10 %; counted
instructions do not: callgrind gives the same total twice whatever else
the machine does.  Each workload runs under callgrind (every thread in its
own count, --separate-threads) plainly and under the preload with
`TIDEMARK_STACKS=none` and `full`.  The tracer's cost per event is

    allocating threads: (traced program threads - plain program threads) / events
    writer thread:      the writer's instructions / events

where events = allocations + frees the trace holds (each malloc and each
free is one event).  Workloads:

    c        the C loop (cg_loop): 2 M malloc(16..527)+free pairs, 1 in 97
             kept a while
    a        workload A: the allocation-heavy Python loop, PYTHONMALLOC=malloc,
             20 k iterations
    p        a pymalloc-heavy Python loop (small tuples, strs, dicts, lists)
             with Python's allocators traced (the _autostart on PYTHONPATH
             of the traced runs only, as `tidemark run` puts it): its
             events are PyObject_Malloc's and PyMem_Malloc's, 100 k
             iterations; not in the default set
    b        workload B (tracer_bench.py's Burgers run) at N=201 (101 with
             --quick), default pymalloc, Python's allocators traced as in p;
             not in the default set
    threads  the C loop's 2 M pairs split over 1, 2, 4, 8 threads, each
             thread freeing its own blocks, and a `cross` variant in which
             every free is of another thread's block

With --baseline, every traced run is repeated with OTHER_BUILD's preload
and the table gains the ratio new/old per cell.  The exit status is 0
whatever the numbers (a measurement, not a test), 1 when a run fails.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from workloads import ALLOC_PY, BURGERS_PY, PY, PYMALLOC_PY, ROOT


# Set in a workload's environment: the traced runs get it as PYTHONPATH.
TRACED_PYTHONPATH = "TM_CG_TRACED_PYTHONPATH"


def fail(msg):
    sys.exit(f"callgrind_bench: {msg}")


class Run:
    """One program under callgrind: instructions per thread, the writer's
    apart, and the events of its trace."""

    def __init__(self, program, threads, writer, events, files):
        self.program, self.threads, self.writer = program, threads, writer
        self.events, self.files = events, files


def callgrind(argv, env, work, tag, tidemark):
    out = os.path.join(work, tag)
    os.makedirs(out)
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
           f"--callgrind-out-file={out}/cg.%p", *argv]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
    if p.returncode != 0:
        fail(f"{tag}: exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
    program = writer = 0
    threads = 0
    files = {"program": [], "writer": []}
    for f in sorted(glob.glob(os.path.join(out, "cg.*-*"))):
        with open(f, errors="replace") as fh:
            text = fh.read()
        m = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
        if not m:
            continue
        ir = int(m.group(1))
        if re.search(r"^fn=\(\d+\) writer_main(\.\S+)?$", text, re.M):  # .lto_priv.N
            writer += ir
            files["writer"].append(f)
        else:
            program += ir
            threads += 1
            files["program"].append(f)
    events = 0
    traces = glob.glob(os.path.join(out, "t.trace*"))
    if traces:
        # The valgrind launcher is traced too (it execs the tool): the
        # guest's trace is the one with the most events.
        for t in traces:
            s = subprocess.run([tidemark, "summary", "--json", t], capture_output=True, text=True)
            if s.returncode == 0:
                d = json.loads(s.stdout)
                events = max(events, d["alloc_calls"] + d["free_calls"])
    return Run(program, threads, writer, events, files)


def functions(files):
    """Exclusive instructions per function over files."""
    by_fn = {}
    for f in files:
        p = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", f],
                           capture_output=True, text=True)
        for line in p.stdout.splitlines():
            m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*)$", line)
            if not m or "PROGRAM TOTALS" in line or "=>" in line:
                continue
            name = m.group(2)
            name = re.sub(r"^/\S*/([^/]+:)", r"\1", name)
            by_fn[name] = by_fn.get(name, 0) + int(m.group(1).replace(",", ""))
    return by_fn


def top(by_fn, n, minus=None):
    """The n functions with the most instructions (beyond minus's)."""
    minus = minus or {}
    diff = {k: v - minus.get(k, 0) for k, v in by_fn.items()}
    return sorted(diff.items(), key=lambda kv: -kv[1])[:n]


def workloads(args, build):
    loop = os.path.join(build, "bin", "cg_loop")
    pairs = 200_000 if args.quick else 2_000_000
    n_a = 4 if args.quick else 20
    items = []
    if "c" in args.only:
        items.append(("C loop", [loop, str(pairs)], {}))
    if "a" in args.only:
        src = os.path.join(args.work, "alloc.py")
        with open(src, "w") as f:
            f.write(ALLOC_PY)
        items.append(("A", [PY, src, str(n_a)], {"PYTHONMALLOC": "malloc"}))
    if "p" in args.only:
        src = os.path.join(args.work, "pymalloc.py")
        with open(src, "w") as f:
            f.write(PYMALLOC_PY)
        start = os.path.join(build, "python", "tidemark", "_autostart")
        items.append(("P pymalloc", [PY, src, str(5 * n_a)], {TRACED_PYTHONPATH: start}))
    if "b" in args.only:
        src = os.path.join(args.work, "burgers.py")
        with open(src, "w") as f:
            f.write(BURGERS_PY)
        start = os.path.join(build, "python", "tidemark", "_autostart")
        items.append((f"B Burgers", [PY, src, "101" if args.quick else "201"],
                      {TRACED_PYTHONPATH: start}))
    if "threads" in args.only:
        for t in args.threads:
            items.append((f"C loop, {t} threads", [loop, str(pairs), str(t)], {}))
            if t > 1:
                items.append((f"C loop, {t} threads, cross frees",
                              [loop, str(pairs), str(t), "cross"], {}))
    return items


def traced_env(base, lib, stacks):
    env = dict(base)
    env.update(LD_PRELOAD=lib, TIDEMARK_STACKS=stacks, TIDEMARK_FOLLOW_FORK="1",
               TIDEMARK_OUTPUT="t.trace", TIDEMARK_RSS_INTERVAL_MS="10")
    if TRACED_PYTHONPATH in env:
        env["PYTHONPATH"] = env.pop(TRACED_PYTHONPATH)
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--baseline", help="another build directory to compare against")
    ap.add_argument("--quick", action="store_true", help="a tenth of the events")
    ap.add_argument("--only", default="c,a,threads")
    ap.add_argument("--threads", default="1,2,4,8")
    ap.add_argument("--top", type=int, default=6, help="top functions per thread group")
    ap.add_argument("--json")
    args = ap.parse_args()
    args.only = set(args.only.split(","))
    args.threads = [int(t) for t in args.threads.split(",")]
    if not shutil.which("valgrind"):
        fail("valgrind is not installed (apt-get install valgrind)")
    builds = {"new": os.path.abspath(args.build)}
    if args.baseline:
        builds["old"] = os.path.abspath(args.baseline)
    for name, b in builds.items():
        for need in ("lib/libtidemark.so", "bin/tidemark", "bin/cg_loop"):
            if not os.path.exists(os.path.join(b, need)):
                fail(f"{b}/{need} is missing (build it first)")
    tidemark = os.path.join(builds["new"], "bin", "tidemark")
    args.work = tempfile.mkdtemp(prefix="tm-cg-")
    results = []
    try:
        for label, argv, extra in workloads(args, builds["new"]):
            base = dict(os.environ, **extra)
            base.pop("LD_PRELOAD", None)
            plain = callgrind(argv, base, args.work, f"{len(results)}-plain", tidemark)
            row = {"workload": label, "plain_instructions": plain.program}
            plain_fns = functions(plain.files["program"])
            for stacks in ("none", "full"):
                for which, b in builds.items():
                    lib = os.path.join(b, "lib", "libtidemark.so")
                    r = callgrind(argv, traced_env(base, lib, stacks), args.work,
                                  f"{len(results)}-{stacks}-{which}", tidemark)
                    if not r.events:
                        fail(f"{label}, stacks {stacks}: the trace holds no events")
                    cell = {
                        "events": r.events,
                        "alloc_per_event": (r.program - plain.program) / r.events,
                        "writer_per_event": r.writer / r.events,
                    }
                    cell["total_per_event"] = cell["alloc_per_event"] + cell["writer_per_event"]
                    # Every thread's instructions over the plain run's.
                    cell["instructions_ratio"] = (r.program + r.writer) / plain.program
                    if which == "new":
                        cell["top_alloc"] = top(functions(r.files["program"]), args.top, plain_fns)
                        cell["top_writer"] = top(functions(r.files["writer"]), args.top)
                    row[f"{stacks}_{which}"] = cell
                    print(f"  {label}, stacks {stacks}, {which}: "
                          f"{cell['total_per_event']:.1f} instr/event", file=sys.stderr)
            results.append(row)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)

    print("\ntracer instructions per event (callgrind; traced minus plain, / events)\n")
    hdr = "| workload | events | stacks | allocating threads | writer | total | traced/plain |"
    if args.baseline:
        hdr += " old total | new/old |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    one = {}
    for row in results:
        for stacks in ("none", "full"):
            c = row[f"{stacks}_new"]
            line = (f"| {row['workload']} | {c['events']} | {stacks} | "
                    f"{c['alloc_per_event']:.1f} | {c['writer_per_event']:.1f} | "
                    f"{c['total_per_event']:.1f} | {c['instructions_ratio']:.2f}x |")
            if args.baseline:
                o = row[f"{stacks}_old"]
                line += f" {o['total_per_event']:.1f} | {c['total_per_event'] / o['total_per_event']:.3f} |"
            if row["workload"] == "C loop, 1 threads":
                one[stacks] = c["total_per_event"]
            m = re.match(r"C loop, (\d+) threads", row["workload"])
            if m and m.group(1) != "1" and stacks in one:
                line += f" ({c['total_per_event'] / one[stacks]:.2f}x one thread)"
            print(line)
    for row in results:
        for stacks in ("none", "full"):
            c = row[f"{stacks}_new"]
            print(f"\n{row['workload']}, stacks {stacks}: top functions")
            for group in ("alloc", "writer"):
                print("  allocating threads (traced minus plain):" if group == "alloc"
                      else "  writer thread:")
                for fn, ir in c[f"top_{group}"]:
                    print(f"    {ir / c['events']:8.1f}/event  {fn}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"schema_version": 1, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
