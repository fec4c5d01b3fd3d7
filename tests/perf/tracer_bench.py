#!/usr/bin/python3
"""Tracer overhead benchmark: one command, one table (docs/performance.md).

    PYTHONPATH=build/python /usr/bin/python3 tests/perf/tracer_bench.py
        [--runs 5] [--quick] [--no-heaptrack] [--json FILE] [--build build]
        [--baseline OTHER_BUILD]

Workloads (docs/performance.md): A, the allocation-heavy Python loop with
PYTHONMALLOC=malloc; B, the seed's Burgers run at N=1001 (scipy's dopri5,
rtol = atol = 1e-15, the NumPy right-hand side).  Modes: plain, the whole
process under `tidemark run --stacks none` and `--stacks full`, and
heaptrack when it is on PATH.

The machine is noisy, so runs are paired: each round runs every mode once,
in an order rotated from round to round, and a mode's ratio and extra peak
RSS are taken against the plain run of the same round.  The table shows the
median over rounds, and the targets of issue 8 with pass/fail.  Beside the
wall-time ratio it shows the ratio of the program's main-thread CPU time
(tests/perf/main_cpu.c, preloaded into every run), which varies less on a
shared machine and leaves out the tracer's own thread; heaptrack's row has
none (its own processes would count).  The exit
status is 0 whatever the numbers (a measurement, not a test), 1 when a run
fails.
"""
import argparse
import glob
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from workloads import ALLOC_PY, BURGERS_PY, PY, ROOT

MODES = ["plain", "tidemark none", "tidemark full", "heaptrack"]
# Issue 8's targets: (workload letter, mode, column, limit, how it reads).
TARGETS = [
    ("A", "tidemark none", "ratio", 1.15, "<=1.15x"),
    ("A", "tidemark full", "ratio", 1.50, "<=1.50x"),
    ("A", "tidemark full", "bytes_per_event", 3.0, "<=3 B/event"),
    ("B", "tidemark full", "ratio", 1.10, "<=1.10x"),
    ("B", "tidemark full", "rss_delta_mib", 30.0, "<=30 MiB"),
]


def fail(what, cmd, code, stderr):
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    sys.exit(f"bench: {what}: `{shlex.join(cmd)}` exited with status {code}"
             + (f": {lines[-1]}" if lines else " (nothing on stderr)"))


def run(what, cmd, env, err_path, cpu_path):
    """Wall seconds, peak RSS (KiB) of cmd's largest process, and the
    largest main-thread CPU seconds among its processes, the program's
    (None when main_cpu.c wrote none).

    wait4 on the direct child gives its ru_maxrss folded with that of every
    descendant it waited for: the traced program under `tidemark run`,
    heaptrack's interpreter under heaptrack."""
    env = dict(env, TM_BENCH_CPU_OUT=cpu_path)
    with open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        with open(err_path, errors="replace") as f:
            fail(what, cmd, p.returncode, f.read())
    try:
        with open(cpu_path) as f:
            cpu = max(float(line) for line in f)
        os.unlink(cpu_path)
    except (OSError, ValueError):
        cpu = None
    return wall, usage.ru_maxrss, cpu


def events_in(tidemark, trace):
    """alloc_calls + free_calls of a trace, from `tidemark summary --json`."""
    cmd = [tidemark, "summary", "--json", trace]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        fail("summary", cmd, p.returncode, p.stderr)
    s = json.loads(p.stdout)
    return s["alloc_calls"] + s["free_calls"]


def mode_cmd(mode, cmd, tools, out):
    """tools: "tidemark", "baseline" (another build's CLI) and "heaptrack"."""
    if mode == "plain":
        return cmd
    if mode == "heaptrack":
        return [tools["heaptrack"], "-o", out] + cmd
    tool, stacks = mode.split()
    return [tools[tool], "run", "-o", out, "--stacks", stacks, "--"] + cmd


def measure(label, cmd, env, modes, runs, tools, work):
    """One row per mode: medians over `runs` paired rounds."""
    per = {m: {"wall": [], "ratio": [], "cpu": [], "rss": [], "bpe": []} for m in modes}
    for r in range(runs):
        print(f"bench: {label}: round {r + 1}/{runs}", file=sys.stderr)
        order = modes[r % len(modes):] + modes[:r % len(modes)]
        got = {}
        for m in order:
            out = os.path.join(work, f"{label[0]}.{m.replace(' ', '-')}.{r}.out")
            c = mode_cmd(m, cmd, tools, out)
            wall, rss, cpu = run(f"{label}, {m}", c, env, out + ".stderr", out + ".cpu")
            size = events = None
            if m.split()[0] in ("tidemark", "baseline"):
                events = events_in(tools[m.split()[0]], out)
            outputs = [f for f in glob.glob(out + "*") if not f.endswith((".stderr", ".cpu"))]
            if outputs:      # heaptrack appends .zst or .gz to the name
                size = sum(os.path.getsize(f) for f in outputs)
            for f in glob.glob(out + "*"):
                os.unlink(f)
            got[m] = (wall, rss, size, events, cpu)
        # heaptrack's output is divided by the count tidemark saw this round.
        counted = [got[m][3] for m in ("tidemark full", "tidemark none") if m in got]
        plain_cpu = got["plain"][4]
        for m, (wall, rss, size, events, cpu) in got.items():
            per[m]["wall"].append(wall)
            per[m]["ratio"].append(wall / got["plain"][0])
            if cpu is not None and plain_cpu and m != "heaptrack":
                per[m]["cpu"].append(cpu / plain_cpu)
            per[m]["rss"].append((rss - got["plain"][1]) / 1024)
            n = events or (counted[0] if counted else None)
            if size is not None and n:
                per[m]["bpe"].append(size / n)

    def med(m, key, digits):
        return round(statistics.median(per[m][key]), digits) if per[m][key] else None

    def quartiles(m, key):
        q = statistics.quantiles(per[m][key], n=4, method="inclusive")
        return round(q[0], 3), round(q[2], 3)
    # Noise only ever adds time: the fastest run of each mode against the
    # fastest plain run is the robust companion of the median ratio.
    fastest_plain = min(per["plain"]["wall"])
    return [{"workload": label, "mode": m, "wall_s": med(m, "wall", 3),
             "ratio": med(m, "ratio", 3),
             "ratio_quartiles": quartiles(m, "ratio"),
             "min_ratio": round(min(per[m]["wall"]) / fastest_plain, 3),
             "main_cpu_ratio": med(m, "cpu", 3),
             "rss_delta_mib": med(m, "rss", 2),
             "bytes_per_event": med(m, "bpe", 3)} for m in modes]


def judge(rows):
    """Adds target and pass to every row; returns (row, target, met) per target."""
    checks = []
    for row in rows:
        mine = [t for t in TARGETS if row["workload"][0] == t[0] and row["mode"] == t[1]]
        ok = [row[col] is not None and row[col] <= limit for _, _, col, limit, _ in mine]
        row["target"] = ", ".join(t[4] for t in mine) or None
        row["pass"] = all(ok) if mine else None
        checks += [(row, t, o) for t, o in zip(mine, ok)]
    return checks


def fmt(v, spec, width):
    return f"{v:{width}{spec}}" if v is not None else f"{'-':>{width}}"


def print_table(rows, checks, runs, quick, heaptrack_note, load0):
    print(f"{'workload':<22} {'mode':<14} {'wall s':>7} {'ratio':>6} {'min ratio':>9} "
          f"{'CPU ratio':>9} {'+RSS MiB':>9} {'B/event':>8}  {'target':<24} pass")
    for r in rows:
        passed = {True: "yes", False: "NO", None: ""}[r["pass"]]
        print(f"{r['workload']:<22} {r['mode']:<14} {fmt(r['wall_s'], '.2f', 7)} "
              f"{fmt(r['ratio'], '.2f', 6)} {fmt(r['min_ratio'], '.2f', 9)} "
              f"{fmt(r['main_cpu_ratio'], '.2f', 9)} "
              f"{fmt(r['rss_delta_mib'], '.1f', 9)} "
              f"{fmt(r['bytes_per_event'], '.2f', 8)}  {r['target'] or '':<24} {passed}")
    print()
    print(f"targets met: {sum(ok for _, _, ok in checks)} of {len(checks)}")
    for row, (_, mode, col, limit, text), ok in checks:
        shown = "missing" if row[col] is None else f"{row[col]:.3f}"
        spread = ""
        if col == "ratio":
            q1, q3 = row["ratio_quartiles"]
            spread = f"; rounds' middle half {q1:.3f}-{q3:.3f}"
            if q1 <= limit <= q3:
                spread += ", the target within it: too noisy to settle"
        print(f"  {'PASS' if ok else 'FAIL'}  {row['workload'][0]} {mode:<14} {col} "
              f"{shown} (target {text}{spread})")
    print(f"\nratio, +RSS: medians over {runs} paired rounds (order rotated per round), each "
          "run against the plain run of its round; wall s: median seconds.\n"
          "min ratio: the mode's fastest run over plain's fastest (the machine's speed "
          "drifts; noise only adds time).\n"
          "CPU ratio: the main thread's CPU seconds over plain's, median over rounds "
          "(without the tracer's own thread).\n"
          "+RSS: peak RSS of the largest process minus plain's (heaptrack's interpreter "
          "counts).\nB/event: output bytes / (alloc_calls + free_calls); heaptrack's file "
          "over the event count tidemark measured in the same round.")
    print(f"1-minute load average: {load0:.1f} before, {os.getloadavg()[0]:.1f} after, on "
          f"{os.cpu_count()} CPUs (the tracer's writer thread needs a free core).")
    if heaptrack_note:
        print(heaptrack_note)
    if quick:
        print("--quick: small workloads, start-up dominates; the targets are for the "
              "full-size run.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, help="paired rounds, at least 3 (default 5, 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="small workloads (a smoke run)")
    ap.add_argument("--no-heaptrack", action="store_true", help="skip heaptrack (slow)")
    ap.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--baseline", metavar="DIR",
                    help="another build (e.g. of an older commit) measured in the same rounds "
                         "as 'baseline none' and 'baseline full': the fair way to compare "
                         "two versions on a noisy machine")
    args = ap.parse_args()
    helper = os.path.join(args.build, "lib", "libtm_maincpu.so")
    if not os.path.exists(helper):
        sys.exit(f"bench: {helper} not built (cmake --build build)")
    os.environ["LD_PRELOAD"] = helper + (":" + os.environ["LD_PRELOAD"]
                                         if os.environ.get("LD_PRELOAD") else "")
    runs = args.runs if args.runs is not None else (3 if args.quick else 5)
    if runs < 3:
        ap.error("--runs must be at least 3 (medians of paired rounds)")

    tidemark = os.path.join(args.build, "bin", "tidemark")
    if not os.access(tidemark, os.X_OK):
        sys.exit(f"bench: {tidemark} not built (cmake --build build)")
    heaptrack = None if args.no_heaptrack else shutil.which("heaptrack")
    note = ("heaptrack: skipped (--no-heaptrack)" if args.no_heaptrack else
            None if heaptrack else "heaptrack: not on PATH, skipped")
    modes = [m for m in MODES if m != "heaptrack" or heaptrack]
    tools = {"tidemark": tidemark, "heaptrack": heaptrack}
    if args.baseline:
        tools["baseline"] = os.path.join(args.baseline, "bin", "tidemark")
        if not os.access(tools["baseline"], os.X_OK):
            sys.exit(f"bench: {tools['baseline']} not built")
        modes[3:3] = ["baseline none", "baseline full"]

    load0 = os.getloadavg()[0]
    work = tempfile.mkdtemp(prefix="tm-bench-")
    try:
        alloc_py = os.path.join(work, "alloc.py")
        burgers_py = os.path.join(work, "burgers.py")
        with open(alloc_py, "w") as f:
            f.write(ALLOC_PY)
        with open(burgers_py, "w") as f:
            f.write(BURGERS_PY)
        na, nb = (300, 201) if args.quick else (3000, 1001)
        workloads = [
            (f"A alloc-heavy n={na}", [PY, alloc_py, str(na)], {"PYTHONMALLOC": "malloc"}),
            (f"B Burgers N={nb}", [PY, burgers_py, str(nb)], {}),
        ]
        rows = []
        for label, cmd, extra in workloads:
            rows += measure(label, cmd, dict(os.environ, **extra), modes, runs, tools, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    checks = judge(rows)
    print_table(rows, checks, runs, args.quick, note, load0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
            f.write("\n")
        print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
